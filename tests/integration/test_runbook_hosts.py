"""The steps of docs/runbooks.md "Add a host" and "Replace a dead host" on a real 4-host lab:
playbooks/site.yml with examples/lamp.yml (2 lamp stacks, at most one per host, one LB, a global
exporter), etcd on h2 only (the record store; the runbooks change no etcd member).

One chain of site.yml runs, in file order, each test starting from the state the previous left:

- add a host (h3 joins the inventory): only its global instance starts, nothing moves, no container
  elsewhere is recreated, the next run changes nothing;
- stackfleet_rebalance moves at most max_moves kept instances onto it, the LB still serves both;
- replace a dead host: h1's engine dies, the run moves its instances to live hosts (exit 0); h1
  leaves the inventory and h4 (the replacement) joins: nothing moves, h4 runs only its global
  instance, the next run changes nothing.

    STACKFLEET_TEST_LAB_PREFIX=.. STACKFLEET_TEST_NET=.. .venv/bin/pytest tests/integration/test_runbook_hosts.py -v
"""
import os
import re
import shutil

import pytest
import yaml
from conftest import REPO, ansible_playbook, instances_answering, lab_spec, running_lab

LAB = lab_spec("rh", hosts=4)
CLUSTER_FILTER = {"label": "io.stackfleet.cluster=lab"}
KEYS = ("lamp-1", "lamp-2", "lb-1")


class Fleet:
    def __init__(self, lab, directory):
        self.lab, self.directory = lab, directory
        with open(lab.inventory_path) as handle:
            self.base = yaml.safe_load(handle)
        shutil.copytree(os.path.join(REPO, "inventories", "lab", "group_vars"), os.path.join(directory, "group_vars"))

    def inventory(self, indices):
        """The inventory's stackfleet_hosts are the hosts `indices` (what an operator edits)."""
        doc = yaml.safe_load(yaml.safe_dump(self.base))
        every = doc["all"]["children"]["stackfleet_hosts"]["hosts"]
        doc["all"]["children"]["stackfleet_hosts"]["hosts"] = {self.lab.host(i).name: every[self.lab.host(i).name] for i in indices}
        doc["all"]["children"]["etcd"] = {"hosts": {self.lab.host(2).name: {}}}
        doc["all"]["vars"]["stackfleet_etcd_endpoints"] = [self.lab.host(2).etcd_endpoint]
        with open(os.path.join(self.directory, "hosts.yml"), "w") as handle:
            yaml.safe_dump(doc, handle)
        return self.directory

    def site(self, indices, **extra):
        return ansible_playbook("playbooks/site.yml", self.inventory(indices), extra_vars=extra)

    def containers(self, index):
        """name -> (id, instance) of the lab cluster's running containers on host `index`."""
        return {c.name: (c.id, c.labels.get("io.stackfleet.instance"))
                for c in self.lab.docker_client(index).containers.list(filters=CLUSTER_FILTER)}

    def where(self, indices):
        """instance -> hosts running it, over the hosts `indices`."""
        found = {}
        for index in indices:
            for _name, (_id, instance) in self.containers(index).items():
                found.setdefault(instance, set()).add(index)
        return found

    def lb_answers(self, indices, want):
        address = next(self.lab.host(i).address for i in indices if "lab.lb-1.lb" in self.containers(i))
        return instances_answering(address, want)


def moves(run):
    """(instance, reason) of each 'Instances that moved' line of a site.yml run."""
    return sorted(re.findall(r'"msg": "(\S+) moved from .*\[([a-z-]+)\]"', run.stdout))


def unchanged(run):
    return {h: c["changed"] for h, c in run.recap.items()} == {h: 0 for h in run.recap}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with running_lab(**LAB) as lab:
        fleet = Fleet(lab, str(tmp_path_factory.mktemp("inventory")))
        first = fleet.site((1, 2))
        assert first.rc == 0, first.stdout[-4000:] + first.stderr[-2000:]
        yield fleet


def test_add_a_host_only_its_global_instance_starts_and_nothing_moves(fleet):
    lab = fleet.lab
    before = {i: fleet.containers(i) for i in (1, 2)}
    run = fleet.site((1, 2, 3))                                  # runbook step 2
    assert run.rc == 0, run.stdout[-4000:]
    assert moves(run) == [] and "moved 0" in run.stdout          # step 3: the summary
    assert {i: fleet.containers(i) for i in (1, 2)} == before    # not one container recreated
    new = lab.host(3).name
    assert sorted(fleet.containers(3)) == ["lab.node-exporter-%s.node-exporter" % new]
    again = fleet.site((1, 2, 3), stackfleet_manage_docker=False, stackfleet_manage_etcd=False)
    assert again.rc == 0 and unchanged(again), again.stdout[-3000:]


def test_rebalance_moves_at_most_max_moves_instances_onto_the_new_host(fleet):
    run = fleet.site((1, 2, 3), stackfleet_rebalance={"max_moves": 1})   # runbook step 4
    assert run.rc == 0, run.stdout[-4000:]
    moved = moves(run)
    assert len(moved) == 1 and moved[0][1] == "rebalance", moved
    where = fleet.where((1, 2, 3))
    assert where[moved[0][0]] == {3}, where                     # it runs on the new host, once (old copy removed)
    assert {k: len(where.get(k, ())) for k in KEYS} == {k: 1 for k in KEYS}, where
    assert fleet.lb_answers((1, 2, 3), {"lamp-1", "lamp-2"}) == {"lamp-1", "lamp-2"}
    again = fleet.site((1, 2, 3), stackfleet_manage_docker=False, stackfleet_manage_etcd=False)
    assert again.rc == 0 and unchanged(again) and moves(again) == [], again.stdout[-3000:]


def test_replace_a_dead_host(fleet):
    lab = fleet.lab
    lost = sorted(k for k, hosts in fleet.where((1,)).items() if k in KEYS)
    assert lost, "nothing of lamp/lb runs on h1: the scenario would prove nothing (%s)" % fleet.where((1, 2, 3))
    lab.stop_docker(1)                                          # h1 dies
    run = fleet.site((1, 2, 3))                                 # runbook step 1: the run moves its instances
    assert run.rc == 0, run.stdout[-4000:]
    assert "hosts down: %s" % lab.host(1).name in run.stdout
    assert moves(run) == [(k, "host-missing") for k in lost], run.stdout[-3000:]
    live = fleet.where((2, 3))
    assert {k: len(live.get(k, ())) for k in KEYS} == {k: 1 for k in KEYS}, live

    before = {i: fleet.containers(i) for i in (2, 3)}
    replaced = fleet.site((2, 3, 4))                            # steps 2-3: h1 out of the inventory, h4 in
    assert replaced.rc == 0, replaced.stdout[-4000:]
    assert moves(replaced) == [] and lab.host(1).name not in replaced.recap
    assert {i: fleet.containers(i) for i in (2, 3)} == before
    assert sorted(fleet.containers(4)) == ["lab.node-exporter-%s.node-exporter" % lab.host(4).name]
    assert fleet.lb_answers((2, 3), {"lamp-1", "lamp-2"}) == {"lamp-1", "lamp-2"}
    again = fleet.site((2, 3, 4), stackfleet_manage_docker=False, stackfleet_manage_etcd=False)  # step 4
    assert again.rc == 0 and unchanged(again) and moves(again) == [], again.stdout[-3000:]

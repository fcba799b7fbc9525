"""A kept instance blocking a new placement (issue 9, section 2) on a real 3-host lab with etcd:
playbooks/site.yml moves exactly the blocking instance (reason `repair`), the new deploy runs,
nothing else is touched, the LB still serves, and the next run changes nothing.

h1 and h2 have ssd disks (docs/lab.md). The first stack file keeps lamp off h2 and pins lb to h2;
the second drops those rules (both stay valid where they are) and adds `blog`: ssd only, port
8080 (taken by lamp on h1) and conflicting with lb (on h2). A fresh plan fits; keeping
everything does not; moving lb-1 alone is enough.
"""
import os
import shutil
import time

import pytest
import yaml
from conftest import REPO, ansible_playbook, instances_answering, lab_spec, running_lab

LAB = lab_spec("fp", hosts=3)
CLUSTER_FILTER = {"label": "io.stackfleet.cluster=lab"}


def stack_files(directory, lab):
    with open(os.path.join(REPO, "examples", "lamp.yml")) as handle:
        base = yaml.safe_load(handle)
    h2 = lab.host(2).name
    first = yaml.safe_load(yaml.safe_dump(base))
    first["deploy"]["lamp"]["constraint"] = "name != '%s'" % h2
    first["deploy"]["lb"]["host"] = h2
    second = yaml.safe_load(yaml.safe_dump(base))
    second["services"]["blog"] = {
        "image": "local/busybox-web:1", "ports": ["8080:8080"], "env": {"PORT": "8080", "INSTANCE": "{{ instance.id }}"},
        "restart": "unless-stopped", "network_mode": "host", "resources": {"cpus": 0.25, "memory": "32m"}}
    second["deploy"]["blog"] = {"count": 1, "constraint": "labels.disk == 'ssd'", "conflicts": ["lb"]}
    paths = []
    for name, body in (("first.yml", first), ("second.yml", second)):
        path = os.path.join(directory, name)
        with open(path, "w") as handle:
            yaml.safe_dump(body, handle, sort_keys=False)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def repair_lab(tmp_path_factory):
    """The lab, an inventory with etcd on every host (the state store keeps the placement), and the
    first stack file converged."""
    with running_lab(**LAB) as lab:
        inventory = tmp_path_factory.mktemp("inventory")
        with open(lab.inventory_path) as handle:
            hosts = yaml.safe_load(handle)
        hosts["all"]["children"]["etcd"] = {"hosts": {h.name: {} for h in lab.hosts}}
        (inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))
        shutil.copytree(os.path.join(REPO, "inventories", "lab", "group_vars"), str(inventory / "group_vars"))
        first, second = stack_files(str(tmp_path_factory.mktemp("stacks")), lab)  # not in the inventory directory
        run = ansible_playbook("playbooks/site.yml", str(inventory), extra_vars={"stackfleet_stack_file": first})
        assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
        yield lab, str(inventory), second


def containers(lab, index):
    """name -> (id, state) of the lab cluster's containers on host `index`."""
    return {c.name: (c.id, c.status) for c in lab.docker_client(index).containers.list(all=True, filters=CLUSTER_FILTER)}


def lb_answers(lab, want, timeout=15):
    address = next(lab.host(i).address for i in (1, 2, 3) if "lab.lb-1.lb" in containers(lab, i))
    return instances_answering(address, want, timeout)


def test_a_kept_lb_blocking_blog_is_the_only_instance_that_moves(repair_lab):
    lab, inventory, second = repair_lab
    h2 = lab.host(2).name
    before = {i: containers(lab, i) for i in (1, 2, 3)}
    assert "lab.lb-1.lb" in before[2] and "lab.lamp-1.web" in {**before[1], **before[3]}
    lamps = {n: c for i in (1, 3) for n, c in before[i].items() if n.startswith("lab.lamp-")}
    assert len(lamps) == 4, before

    began = time.monotonic()
    run = ansible_playbook("playbooks/site.yml", inventory, extra_vars={"stackfleet_stack_file": second})
    print("site.yml with a repair move: %.1f s" % (time.monotonic() - began))
    assert run.rc == 0, run.stdout[-5000:] + run.stderr[-2000:]
    moves = [line for line in run.stdout.splitlines() if "moved from" in line]
    assert any("lb-1 moved from %s" % h2 in line and "repair" in line for line in moves), moves
    assert not any(key in line for line in moves for key in ("lamp-1 moved", "lamp-2 moved", "node-exporter")), moves

    after = {i: containers(lab, i) for i in (1, 2, 3)}
    assert {n: c for i in (1, 3) for n, c in after[i].items() if n.startswith("lab.lamp-")} == lamps  # untouched
    assert after[2].get("lab.blog-1.blog", (None, None))[1] == "running"
    lb_hosts = [i for i in (1, 2, 3) if after[i].get("lab.lb-1.lb", (None, None))[1] == "running"]
    assert len(lb_hosts) == 1 and lb_hosts[0] in (1, 3), after  # once, off h2
    assert "lab.lb-1.lb" not in after[2]
    for i in (1, 2, 3):
        name = "lab.node-exporter-%s.node-exporter" % lab.host(i).name
        assert after[i][name] == before[i][name]
    assert lb_answers(lab, {"lamp-1", "lamp-2"}) == {"lamp-1", "lamp-2"}

    again = ansible_playbook("playbooks/site.yml", inventory, extra_vars={"stackfleet_stack_file": second})
    assert again.rc == 0 and {h: c["changed"] for h, c in again.recap.items()} == {h: 0 for h in again.recap}, again.stdout[-3000:]
    assert "moved from" not in again.stdout

"""The whole flow on a real 3-host lab, as the demo runs it: playbooks/site.yml (engines → etcd
→ plan under the lock → converge → summary) twice, HTTP through the load balancer, plan.yml
changing nothing, and one host's engine down."""
import os
import shutil
import urllib.request

import pytest
from conftest import REPO, lab_spec

LAB = lab_spec("s", hosts=3)
STACK_FILE = os.path.join(REPO, "examples", "lamp.yml")


@pytest.fixture(scope="module")
def site_lab(tmp_path_factory):
    """The lab plus an inventory directory laid out like inventories/lab/."""
    from conftest import running_lab

    with running_lab(**LAB) as lab:
        inventory = tmp_path_factory.mktemp("inventory")
        os.symlink(lab.inventory_path, str(inventory / "hosts.yml"))
        shutil.copytree(os.path.join(REPO, "inventories", "lab", "group_vars"), str(inventory / "group_vars"))
        (inventory / "lab.stackfleet.yml").write_text(
            "plugin: stackfleet.cluster.stacks\nstack_file: %s\nhost_groups: [stackfleet_hosts]\nprevious_placement: docker\n" % STACK_FILE)
        yield lab, str(inventory)


def _lb_address(lab):
    """The address of the host whose engine runs lb-1."""
    for index, host in enumerate(lab.hosts, start=1):
        if lab.docker_client(index).containers.list(filters={"name": "^lab.lb-1.lb$"}):
            return host.address
    raise AssertionError("no host runs lab.lb-1.lb")


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as response:  # the lab's own namespace
        return response.read().decode()


def test_site_converges_then_changes_nothing(site_lab, run_playbook):
    lab, inventory = site_lab
    first = run_playbook("playbooks/site.yml", inventory)
    assert first.rc == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert all(first.recap[h.name]["failed"] == 0 for h in lab.hosts)
    assert sum(first.recap[h.name]["changed"] for h in lab.hosts) >= 3

    second = run_playbook("playbooks/site.yml", inventory)
    assert second.rc == 0, second.stdout[-4000:]
    assert {host: counts["changed"] for host, counts in second.recap.items()} == {host: 0 for host in second.recap}

    lb = _lb_address(lab)
    answers = {_get("http://%s/" % lb).split()[0] for _attempt in range(4)}
    assert answers == {"instance=lamp-1", "instance=lamp-2"}  # round robin over both web instances


def test_plan_changes_nothing_and_draws_the_map(site_lab, run_playbook, tmp_path):
    lab, inventory = site_lab
    scaled = tmp_path / "lamp3.yml"
    with open(STACK_FILE) as handle:
        scaled.write_text(handle.read().replace("count: 2", "count: 3"))
    run = run_playbook("playbooks/plan.yml", inventory, extra_vars={"stackfleet_stack_file": str(scaled)}, diff=True)
    assert run.rc == 0, run.stdout[-4000:]
    # Check mode: a host reports "changed" for what it WOULD do (lamp-3 lands somewhere).
    assert sum(run.recap[h.name]["changed"] for h in lab.hosts) >= 1
    assert "+++ after: lab.lamp-3.mysql (created)" in run.stdout  # the diff against what runs
    with open(os.path.join(REPO, "site-output", "placement.html")) as handle:
        page = handle.read()
    assert 'class="unit added"' in page and "lamp-3" in page
    again = run_playbook("playbooks/site.yml", inventory)  # nothing was changed by plan.yml
    assert again.rc == 0 and all(again.recap[h.name]["changed"] == 0 for h in lab.hosts), again.stdout[-3000:]


def test_an_engine_down_is_left_out_of_the_run(site_lab, run_playbook):
    lab, inventory = site_lab
    down = lab.hosts[1]
    lab.stop_docker(2)
    try:
        run = run_playbook("playbooks/site.yml", inventory)
    finally:
        lab.start_docker(2)
    # The probe finds it down: no play touches it, the run converges the others and exits 0
    # (issue 9; the host-loss scenarios are in test_faults_hosts.py).
    assert run.rc == 0, run.stdout[-4000:]
    assert "hosts down: %s" % down.name in run.stdout and down.address in run.stdout  # the probe's error names the engine
    assert down.name not in run.recap
    assert all(run.recap[h.name]["failed"] == 0 for h in lab.hosts if h is not down), run.stdout[-3000:]
    # The next run, with the engine back, repairs the host (stale copies of what moved are removed).
    again = run_playbook("playbooks/site.yml", inventory, extra_vars={"stack_lock_wait_timeout": 0})
    assert again.rc == 0, again.stdout[-4000:]


SCALE_STACK = """
cluster: scale
services:
  db:
    image: local/busybox:1
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
    network_mode: none
  app:
    image: local/busybox:1
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
    env: {DB: "{{ instance.services.db.name }}"}
    network_mode: none
stacks:
  lamp: {services: [db, app]}
deploy:
  lamp: {count: 5, max_per_host: 2}
"""


def _cluster_containers(lab, cluster):
    """name -> id of every container labelled with `cluster`, over all lab hosts."""
    found = {}
    for index in range(1, LAB["hosts"] + 1):
        client = lab.docker_client(index)
        for container in client.containers.list(all=True, filters={"label": "io.stackfleet.cluster=%s" % cluster}):
            found[container.name] = container.id
    return found


def test_scale_5_to_3_removes_exactly_lamp_4_and_5(site_lab, run_playbook, tmp_path):
    lab, inventory = site_lab
    stack = tmp_path / "scale.yml"
    stack.write_text(SCALE_STACK)
    foreign = lab.docker_client(1).containers.run("local/busybox:1", ["sleep", "600"], name="hand-made", detach=True,
                                                  network_mode="none")
    try:
        first = run_playbook("playbooks/site.yml", inventory, extra_vars={"stackfleet_stack_file": str(stack)})
        assert first.rc == 0, first.stdout[-4000:]
        before = _cluster_containers(lab, "scale")
        assert sorted(before) == sorted("scale.lamp-%d.%s" % (i, s) for i in range(1, 6) for s in ("db", "app"))
        lab_stack = _cluster_containers(lab, "lab")  # the demo stack of the earlier tests: another cluster

        scaled = run_playbook("playbooks/site.yml", inventory,
                              extra_vars={"stackfleet_stack_file": str(stack), "stackfleet_scale": "lamp=3"})
        assert scaled.rc == 0, scaled.stdout[-4000:]
        after = _cluster_containers(lab, "scale")
        assert set(before) - set(after) == {"scale.lamp-4.db", "scale.lamp-4.app", "scale.lamp-5.db", "scale.lamp-5.app"}
        assert all(after[name] == before[name] for name in after)  # the rest untouched, same containers
        assert _cluster_containers(lab, "lab") == lab_stack  # other clusters' containers never touched
        lab.docker_client(1).containers.get(foreign.id)  # a container without stackfleet labels survives
    finally:
        foreign.remove(force=True)

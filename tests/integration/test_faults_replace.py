"""Faults on the change path of `containers` on real labs (issue 8, §1, §2 and §5): nothing running
is destroyed before its replacement is proven.

Each case asserts the state of every container afterwards (IDs, config hashes, running), that a
re-run repairs everything, and that a further run changes nothing. Lab `fr` (1 host) takes the
module through real ansible-playbook runs; lab `fr2` (2 hosts) runs playbooks/site.yml to show
the two-phase rollout never has two load balancers down at once.

    STACKFLEET_TEST_LAB_PREFIX=.. STACKFLEET_TEST_NET=.. .venv/bin/pytest tests/integration/test_faults_replace.py -v
"""
from __future__ import annotations

import os
import shutil
import sys
import threading
import time

import pytest
from conftest import REPO, ansible_playbook, lab_spec, running_lab

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_containers_module as tcm  # noqa: E402  # the module's play() helpers

LAB = lab_spec("fr", hosts=1)
SITE_LAB = lab_spec("fr2", hosts=2)
CLUSTER = tcm.CLUSTER
BAD_IMAGE = "local/busybox:no-such-tag"
CRASH = ["sh", "-c", "echo boom-crash-output; exit 3"]


@pytest.fixture(scope="module")
def lab():
    with running_lab(**LAB) as up:
        yield up


@pytest.fixture(scope="module")
def host(lab):
    return lab.host(1)


@pytest.fixture
def client(lab):
    c = lab.docker_client(1)
    for container in c.containers.list(all=True):
        container.remove(force=True)
    yield c


def converge(lab, host, docs, **kw):
    return tcm.converge(lab, host, docs, **kw)


def doc(i, **over):
    return tcm.doc(i, **over)


def state(client):
    """Every container: name -> (id, config hash, running)."""
    return {c.name: (c.id, c.labels.get("io.stackfleet.config-hash"), c.status == "running")
            for c in client.containers.list(all=True)}


def acts(result):
    return tcm.acts(result)


def assert_converged_and_idempotent(lab, host, client, docs, **kw):
    """A run repairs everything; the next changes nothing (and its check mode agrees)."""
    rc, res, _out = converge(lab, host, docs, **kw)
    assert rc == 0, res.get("msg")
    after = state(client)
    assert set(after) == {d["name"] for d in docs} and all(running for _i, _h, running in after.values()), after
    rc, checked, _out = converge(lab, host, docs, check=True, **kw)
    assert rc == 0 and not checked["changed"], checked["actions"]
    rc, res, _out = converge(lab, host, docs, **kw)
    assert rc == 0 and not res["changed"], res["actions"]
    assert state(client) == after
    return after


def test_bad_image_tag_leaves_the_old_container_running(lab, host, client):
    docs = [doc(1), doc(2)]
    assert converge(lab, host, docs)[0] == 0
    before = state(client)
    bad = [doc(1, image=BAD_IMAGE, env={"PASSWORD": "new"}), doc(2, env={"PASSWORD": "new"})]
    rc, res, _out = converge(lab, host, bad)
    assert rc != 0
    assert host.docker_url in res["msg"] and "it.web-1.web" in res["msg"] and BAD_IMAGE in res["msg"], res["msg"]
    # nothing was replaced on the host: the failed image holds the whole rollout
    assert acts(res) == {"it.web-1.web": "failed", "it.web-2.web": "pending"}
    assert state(client) == before
    # fixing the tag converges; the run after that changes nothing
    fixed = [doc(1, env={"PASSWORD": "new"}), doc(2, env={"PASSWORD": "new"})]
    after = assert_converged_and_idempotent(lab, host, client, fixed)
    assert all(after[n][0] != before[n][0] for n in after)


def test_image_that_exits_at_once_is_rolled_back_and_stops_the_rollout(lab, host, client):
    docs = [doc(i) for i in (1, 2, 3)]
    assert converge(lab, host, docs)[0] == 0
    before = state(client)
    crashing = [doc(i, command=CRASH) for i in (1, 2, 3)]
    started = time.monotonic()
    rc, res, _out = converge(lab, host, crashing, max_parallel=1)
    print("rolled back in a run of %.1f s" % (time.monotonic() - started))  # figure for docs/containers.md (pytest -s)
    assert rc != 0
    assert "it.web-1.web: rolled back" in res["msg"] and "boom-crash-output" in res["msg"], res["msg"]
    assert acts(res) == {"it.web-1.web": "rolled back", "it.web-2.web": "pending", "it.web-3.web": "pending"}
    assert {p["name"] for p in res["pending"]} == {"it.web-2.web", "it.web-3.web"}
    assert state(client) == before  # same IDs, same hashes, all running, no temporary container left
    assert_converged_and_idempotent(lab, host, client, docs)


def test_a_document_missing_a_field_is_rejected_before_any_api_call(lab, host, client):
    docs = [doc(1), doc(2)]
    assert converge(lab, host, docs)[0] == 0
    before = state(client)
    since = tcm.quiet_second()
    broken = [doc(1, env={"PASSWORD": "new"}), doc(2, volumes=[{"target": "/data"}])]
    rc, res, _out = converge(lab, host, broken)
    until = int(time.time()) + 1
    assert rc != 0 and "source" in res["msg"], res["msg"]
    assert state(client) == before and tcm.events(client, since, until) == []


def _leftover(client, name, old_doc):
    """The temporary container an interrupted replacement leaves (created from a changed document)."""
    from ansible_collections.stackfleet.cluster.plugins.module_utils import _converge, _docker

    args = _docker.create_arguments(client.api, old_doc, _converge.temp_name(name))
    return client.api.create_container(**args)["Id"]


def test_check_mode_equals_the_next_real_run(lab, host, client):
    docs = [doc(i) for i in (1, 2, 3, 4)]
    assert converge(lab, host, docs)[0] == 0
    client.containers.get("it.web-2.web").stop(timeout=0)  # start
    _leftover(client, "it.web-3.web", doc(3, env={"PASSWORD": "half-done"}))  # interrupted replacement
    wanted = [doc(1, env={"PASSWORD": "rotated"}), doc(2), doc(3), doc(5)]  # replace, start, keep, create; 4 removed
    for kw in ({"replace": False}, {}):
        rc, checked, _out = converge(lab, host, wanted, check=True, **kw)
        assert rc == 0
        rc, real, _out = converge(lab, host, wanted, **kw)
        assert rc == 0, real.get("msg")
        assert checked["actions"] == real["actions"] and checked["pending"] == real["pending"], kw
        assert checked["changed"] == real["changed"]
    assert acts(real) == {"it.web-1.web": "recreated", "it.web-2.web": "unchanged", "it.web-3.web": "unchanged",
                          "it.web-5.web": "unchanged"}
    assert_converged_and_idempotent(lab, host, client, wanted)


def test_engine_killed_mid_replacement_is_repaired_by_the_next_run(lab, host, client):
    slow = {"test": ["CMD", "sh", "-c", "test -e /tmp/ready"], "interval": 0.5, "timeout": 2.0, "retries": 100,
            "start_period": 0.0}
    docs = [doc(1), doc(2)]
    assert converge(lab, host, docs)[0] == 0
    before = state(client)
    # the replacement never turns healthy: the run waits in the batch while the engine is killed
    changed = [doc(i, healthcheck=slow, env={"PASSWORD": "v2"}) for i in (1, 2)]
    result = {}
    runner = threading.Thread(target=lambda: result.update(out=converge(lab, host, changed, wait="healthy", wait_timeout=60)))
    runner.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(c.name.endswith(".sf-next") and c.status == "running" for c in client.containers.list()):
            break
        time.sleep(0.2)
    else:
        pytest.fail("no replacement started")
    lab.stop_docker(1)
    runner.join(120)
    lab.start_docker(1)
    rc, res, _out = result["out"]
    assert rc != 0 and "it.web-1.web" in res["msg"]
    left = {c.name for c in client.containers.list(all=True)}
    assert left >= {"it.web-1.web", "it.web-2.web"}  # the old containers are still there
    assert client.containers.get("it.web-1.web").id == before["it.web-1.web"][0]
    # the next run removes the leftover, and replaces what still needs replacing
    fixed = [doc(i, env={"PASSWORD": "v2"}) for i in (1, 2)]
    after = assert_converged_and_idempotent(lab, host, client, fixed)
    assert all(after[n][0] != before[n][0] for n in after)


def test_host_partitioned_mid_replacement_is_repaired_by_the_next_run(lab, host, client):
    slow = {"test": ["CMD", "sh", "-c", "test -e /tmp/ready"], "interval": 0.5, "timeout": 2.0, "retries": 100,
            "start_period": 0.0}
    docs = [doc(1), doc(2)]
    assert converge(lab, host, docs)[0] == 0
    before = state(client)
    changed = [doc(i, healthcheck=slow, env={"PASSWORD": "v3"}) for i in (1, 2)]
    result = {}
    runner = threading.Thread(target=lambda: result.update(
        out=converge(lab, host, changed, wait="healthy", wait_timeout=60, timeout=5)))
    runner.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(c.name.endswith(".sf-next") and c.status == "running" for c in client.containers.list()):
            break
        time.sleep(0.2)
    else:
        pytest.fail("no replacement started")
    lab.disconnect(1)
    try:
        runner.join(180)
    finally:
        lab.reconnect(1)
    rc, res, _out = result["out"]
    assert rc != 0 and host.docker_url in res["msg"], res["msg"]
    # the engine kept running behind the partition: the old container is stopped, not removed
    assert client.containers.get("it.web-1.web").id == before["it.web-1.web"][0]
    fixed = [doc(i, env={"PASSWORD": "v3"}) for i in (1, 2)]
    after = assert_converged_and_idempotent(lab, host, client, fixed)
    assert all(after[n][0] != before[n][0] for n in after)


# ---- site.yml: two-phase rollout on 2 hosts -------------------------------------------------------------------

LB_STACK = """
cluster: twophase
services:
  lb:
    image: local/busybox:1
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
    env: {BACKENDS: "%s"}
    restart: unless-stopped
    network_mode: host
  app:
    image: local/busybox:1
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
    env: {VERSION: "%s"}
    network_mode: host
deploy:
  lb:
    global: true
  app:
    count: 2
    max_per_host: 1
"""
SITE_VARS = {"stackfleet_manage_docker": False, "stackfleet_manage_etcd": False, "stack_state_store": False}


@pytest.fixture(scope="module")
def site_lab(tmp_path_factory):
    with running_lab(**SITE_LAB) as up:
        inventory = tmp_path_factory.mktemp("inventory")
        os.symlink(up.inventory_path, str(inventory / "hosts.yml"))
        shutil.copytree(os.path.join(REPO, "inventories", "lab", "group_vars"), str(inventory / "group_vars"))
        yield up, str(inventory), inventory


def lb_down_windows(client, since, until):
    """(die, start) times, in seconds, of the lb containers on one engine between `since` and
    `until`, from the engine's own events: exact, where sampling misses a gap shorter than its
    period on a loaded machine. A window is an lb that died until the next lb started there."""
    windows, down_at = [], None
    events = client.events(since=since, until=until, decode=True,
                           filters={"type": "container", "label": "io.stackfleet.deploy=lb", "event": ["die", "start"]})
    for event in sorted(events, key=lambda e: e["timeNano"]):
        when = event["timeNano"] / 1e9
        if event["Action"] == "die" and down_at is None:
            down_at = when
        elif event["Action"] == "start" and down_at is not None:
            windows.append((down_at, when))
            down_at = None
    return windows


def _stack(folder, backends, version):
    path = folder / ("stack-%s-%s.yml" % (backends, version))
    path.write_text(LB_STACK % (backends, version))
    return str(path)


def _lb_ids(lab):
    return {i: [c.id for c in lab.docker_client(i).containers.list(filters={"label": "io.stackfleet.deploy=lb"})]
            for i in range(1, len(lab.hosts) + 1)}


def test_site_replaces_load_balancers_one_host_at_a_time(site_lab, tmp_path):
    lab, inventory, _folder = site_lab
    first = ansible_playbook("playbooks/site.yml", inventory, extra_vars=dict(SITE_VARS, stackfleet_stack_file=_stack(tmp_path, "a", "1")))
    assert first.rc == 0, first.stdout[-4000:]
    before = _lb_ids(lab)
    assert all(len(ids) == 1 for ids in before.values()), before

    changed = dict(SITE_VARS, stackfleet_stack_file=_stack(tmp_path, "b", "2"))  # both lbs and both apps drift at once
    checked = ansible_playbook("playbooks/site.yml", inventory, extra_vars=changed, check=True)
    assert checked.rc == 0 and _lb_ids(lab) == before, checked.stdout[-3000:]
    assert sum(checked.recap[h.name]["changed"] for h in lab.hosts) >= 2
    since = int(time.time())
    started = time.monotonic()
    run = ansible_playbook("playbooks/site.yml", inventory, extra_vars=changed)
    run_seconds = time.monotonic() - started
    assert run.rc == 0, run.stdout[-4000:]
    after = _lb_ids(lab)
    assert all(after[i] != before[i] for i in after), (before, after)  # both replaced
    until = int(time.time()) + 1
    windows = [lb_down_windows(lab.docker_client(i), since, until) for i in range(1, len(lab.hosts) + 1)]
    print("lb down windows (s): %s; site.yml run %.1f s" % (  # figures for docs/containers.md (pytest -s)
        [[round(end - start, 3) for start, end in w] for w in windows], run_seconds))
    assert all(windows), windows  # each host's lb was down for a moment (stopped before its successor started)
    for a_start, a_end in windows[0]:
        for b_start, b_end in windows[1]:
            assert a_end <= b_start or b_end <= a_start, "both load balancers down at once: %s" % windows

    again = ansible_playbook("playbooks/site.yml", inventory, extra_vars=changed)
    assert again.rc == 0 and all(again.recap[h.name]["changed"] == 0 for h in lab.hosts), again.stdout[-3000:]


def test_site_stops_the_rollout_at_the_first_failed_host(site_lab, tmp_path):
    lab, inventory, _folder = site_lab
    good = dict(SITE_VARS, stackfleet_stack_file=_stack(tmp_path, "c", "3"))
    assert ansible_playbook("playbooks/site.yml", inventory, extra_vars=good).rc == 0
    before = {i: {c.name: c.id for c in lab.docker_client(i).containers.list(all=True)} for i in (1, 2)}
    crash = tmp_path / "crash.yml"
    crash.write_text((LB_STACK % ("c", "3")).replace('command: ["sh", "-c", "trap', 'command: ["sh", "-c", "exit 3; trap', 1))
    run = ansible_playbook("playbooks/site.yml", inventory, extra_vars=dict(SITE_VARS, stackfleet_stack_file=str(crash)))
    assert run.rc != 0 and "rolled back" in run.stdout, run.stdout[-4000:]
    after = {i: {c.name: c.id for c in lab.docker_client(i).containers.list(all=True)} for i in (1, 2)}
    assert after == before  # the first host rolled back; the second was never touched
    assert ansible_playbook("playbooks/site.yml", inventory, extra_vars=good).rc == 0


ROLE_PLAY = """
- hosts: all
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: stackfleet.cluster.stack
      vars:
        stack_cluster: twophase
        stack_plan_containers: {planned-1: [], planned-2: []}
"""


def test_stack_role_refuses_a_host_the_plan_does_not_cover(tmp_path):
    """No lab needed: the role fails before the module runs (0.1 converged such a host as empty, pruning it)."""
    (tmp_path / "play.yml").write_text(ROLE_PLAY)
    (tmp_path / "hosts.ini").write_text("[stackfleet_hosts]\nstray-host ansible_connection=local\n")
    run = ansible_playbook(str(tmp_path / "play.yml"), str(tmp_path / "hosts.ini"))
    assert run.rc != 0
    assert "stray-host has no entry in the plan's containers map (planned hosts: planned-1, planned-2)" in run.stdout, run.stdout[-3000:]
    assert "Converge this host's containers" not in run.stdout

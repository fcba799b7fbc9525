"""site.yml with stackfleet_converge_mode=cluster on a real 3-host lab (issue 11 §2): one controller
task converges every host. First converge, a second run that changes nothing, the same containers
as the per-host mode (a host-mode run on the same stack file changes nothing), an image change
replaced one host at a time (engine events: no two hosts' replacements overlap), and one host
that cannot converge (its image is missing): the other hosts converge, nothing is replaced
anywhere, the run fails naming that host, the lock is released, the next run repairs."""
import json
import os
import re
import shutil
import sys
import time

import pytest
import yaml
from ansible_collections.stackfleet.cluster.plugins.module_utils import _etcd, _state
from conftest import REPO, lab_spec

LAB = lab_spec("cw", hosts=3)
CLUSTER = "cw"
PER_HOST = 2
IMAGE = "local/busybox:1"

STACK = """cluster: %(cluster)s
services:
  app:
    image: %(image)s
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
    env: {APP_ID: "{{ instance.id }}"%(env)s}
    restart: unless-stopped
    network_mode: host
deploy:
  app: {count: %(count)d, max_per_host: %(per_host)d, update: {parallelism: %(per_host)d}}
"""

CLUSTER_MODE = {"stackfleet_converge_mode": "cluster"}


@pytest.fixture(scope="module")
def cw_lab(tmp_path_factory):
    """The lab, an inventory with etcd on every host (bootstrapped by the first run) and stack files."""
    from conftest import running_lab

    with running_lab(**LAB) as lab:
        work = tmp_path_factory.mktemp("cw")
        with open(lab.inventory_path) as handle:
            doc = yaml.safe_load(handle)
        doc["all"]["vars"]["stackfleet_etcd_endpoints"] = [host.etcd_endpoint for host in lab.hosts]
        os.makedirs(str(work / "inventory" / "group_vars"))
        (work / "inventory" / "hosts.yml").write_text(yaml.safe_dump(doc))
        shutil.copy(os.path.join(REPO, "inventories", "lab", "group_vars", "all.yml"), str(work / "inventory" / "group_vars" / "all.yml"))
        for index in range(1, len(lab.hosts) + 1):
            lab.docker_client(index).images.get(IMAGE).tag("local/busybox", "2")
        yield lab, str(work / "inventory"), work


def stack(work, image, extra=0, level=None):
    """The stack file's variables: `extra` instances more than PER_HOST per host, `level` an env value more."""
    path = work / ("stack-%s-%d%s.yml" % (image.replace("/", "_").replace(":", "_"), extra, "-" + level if level else ""))
    path.write_text(STACK % {"cluster": CLUSTER, "image": image, "count": 3 * PER_HOST + extra, "per_host": PER_HOST + (1 if extra else 0),
                             "env": ', LEVEL: "%s"' % level if level else ""})
    return {"stackfleet_stack_file": str(path)}


def running(lab):
    """host name -> {container name: image} of the cluster's running containers."""
    out = {}
    for index, host in enumerate(lab.hosts, start=1):
        out[host.name] = {c.name: c.attrs["Config"]["Image"] for c in lab.docker_client(index).containers.list(
            filters={"label": "io.stackfleet.cluster=" + CLUSTER})}
    return out


def failed_text(run):
    return run.stdout[-5000:] + run.stderr[-2000:]


def test_first_converge_then_nothing_changes(cw_lab, run_playbook):
    lab, inventory, work = cw_lab
    first = run_playbook("playbooks/site.yml", inventory, dict(stack(work, IMAGE), **CLUSTER_MODE))
    assert first.rc == 0, failed_text(first)
    assert "stackfleet.cluster.stack : Converge every live host at once, replacing none yet" in first.stdout
    assert "Converge this host (no replacements)" not in first.stdout  # the per-host plays had no hosts
    now = running(lab)
    assert all(len(names) == PER_HOST for names in now.values()), now
    assert {image for names in now.values() for image in names.values()} == {IMAGE}

    again = run_playbook("playbooks/site.yml", inventory, dict(stack(work, IMAGE), **CLUSTER_MODE))
    assert again.rc == 0, failed_text(again)
    assert {host: counts["changed"] for host, counts in again.recap.items()} == {host: 0 for host in again.recap}, failed_text(again)
    assert running(lab) == now


def test_host_mode_finds_the_same_containers(cw_lab, run_playbook):
    lab, inventory, work = cw_lab
    before = {index: {c.id for c in lab.docker_client(index).containers.list(all=True)} for index in range(1, 4)}
    run = run_playbook("playbooks/site.yml", inventory, stack(work, IMAGE))  # the default mode: a play per host
    assert run.rc == 0, failed_text(run)
    assert "Converge this host (no replacements)" in run.stdout
    assert {host: counts["changed"] for host, counts in run.recap.items()} == {host: 0 for host in run.recap}, failed_text(run)
    assert {index: {c.id for c in lab.docker_client(index).containers.list(all=True)} for index in range(1, 4)} == before


def test_an_image_change_is_replaced_one_host_at_a_time(cw_lab, run_playbook):
    lab, inventory, work = cw_lab
    since = int(time.time())
    time.sleep(1.1)  # events have 1 s resolution in `since`
    run = run_playbook("playbooks/site.yml", inventory, dict(stack(work, "local/busybox:2"), **CLUSTER_MODE))
    assert run.rc == 0, failed_text(run)
    until = int(time.time()) + 1
    assert {image for names in running(lab).values() for image in names.values()} == {"local/busybox:2"}
    windows = []
    for index, host in enumerate(lab.hosts, start=1):
        stamps = [e["timeNano"] for e in lab.docker_client(index).api.events(since=since, until=until, decode=True)
                  if e.get("Type") == "container" and e.get("Action") in ("create", "stop", "start", "destroy", "rename")]
        assert stamps, "no replacement on %s" % host.name
        windows.append((min(stamps), max(stamps), host.name))
    windows.sort()
    for (_start, end, host), (start, _end, later) in zip(windows[:-1], windows[1:], strict=True):
        assert end < start, "replacements on %s and %s overlap" % (host, later)
    assert [name for _s, _e, name in windows] == [host.name for host in lab.hosts]  # in inventory order


def test_a_failed_host_stops_the_rollout_and_the_next_run_repairs(cw_lab, run_playbook):
    lab, inventory, work = cw_lab
    for index in (1, 3):  # local/busybox:3 is missing on the second host only (and cannot be pulled there)
        lab.docker_client(index).images.get(IMAGE).tag("local/busybox", "3")
    before = running(lab)
    bad = lab.hosts[1].name
    changed = dict(stack(work, "local/busybox:3", extra=3), **CLUSTER_MODE)
    run = run_playbook("playbooks/site.yml", inventory, changed, args=["-e", "stack_pull=never"])
    assert run.rc != 0
    assert "%s did not converge" % bad in run.stdout and "local/busybox:3" in run.stdout, failed_text(run)
    assert [line for line in run.stdout.splitlines() if "did not converge" in line and "msg" in line] == [
        line for line in run.stdout.splitlines() if "did not converge" in line and bad in line and "msg" in line]
    after = running(lab)
    # The other hosts converged their phase 1 (the new instance each gets is created), nothing was replaced anywhere.
    for host in (lab.hosts[0].name, lab.hosts[2].name):
        assert set(before[host]) < set(after[host]), (host, before[host], after[host])
        assert {name: image for name, image in after[host].items() if name in before[host]} == before[host]
    assert after[bad] == before[bad]
    assert "TASK [Release the lock]" in run.stdout.split("PLAY [Release the lock and summarise]")[1]

    lab.docker_client(2).images.get(IMAGE).tag("local/busybox", "3")
    repair = run_playbook("playbooks/site.yml", inventory, changed, args=["-e", "stack_pull=never"])
    assert repair.rc == 0, failed_text(repair)
    final = running(lab)
    assert all(len(names) == PER_HOST + 1 for names in final.values()), final
    assert {image for names in final.values() for image in names.values()} == {"local/busybox:3"}


# The state the tests above leave: local/busybox:3 everywhere (pull never), PER_HOST + 1 per host.
SETTLED = dict(image="local/busybox:3", extra=3)
PULL_NEVER = ["-e", "stack_pull=never"]
FAULT_CALLBACKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_plugins")


def engines(lab, indexes=(1, 2, 3)):
    """host index -> {container id: (name, status)} of every container on the engine, any owner or state."""
    return {index: {c.id: (c.name, c.status) for c in lab.docker_client(index).containers.list(all=True)} for index in indexes}


def etcd(lab):
    return _etcd.EtcdClient([host.etcd_endpoint for host in lab.hosts], ca_cert=lab.ca_cert, client_cert=lab.client_cert,
                            client_key=lab.client_key)


def diffs(stdout, cluster_mode):
    """{(host, container name, action)} of every diff a --diff run printed. Cluster mode names the host in each
    header ("+++ after: host: name (action)"); host mode prints each host's diffs before its "changed: [host" line."""
    found, waiting = set(), []
    for line in stdout.splitlines():
        match = re.match(r"^\+\+\+ after: (?:(\S+): )?(\S+) \(([a-z ]+)\)$", line)
        if match and cluster_mode:
            found.add(match.groups())
        elif match:
            waiting.append(match.group(2, 3))
        changed = re.match(r"^changed: \[([^\] ]+)", line)
        if changed and not cluster_mode:
            found.update((changed.group(1), name, action) for name, action in waiting)
            waiting = []
    return found


def test_check_and_diff_change_nothing_and_show_the_same_as_host_mode(cw_lab, run_playbook):
    """--check --diff in cluster mode with a pending change (one instance fewer, an env value more): reports the
    change per host as host mode does, changes no engine, holds no lock, writes no placement; then it is applied."""
    lab, inventory, work = cw_lab
    change = stack(work, SETTLED["image"], extra=SETTLED["extra"] - 1, level="check")
    before, record = engines(lab), _state.read_record(etcd(lab), CLUSTER)

    checked = run_playbook("playbooks/site.yml", inventory, dict(change, **CLUSTER_MODE), check=True, diff=True, args=PULL_NEVER)
    assert checked.rc == 0, failed_text(checked)
    assert checked.recap["localhost"]["changed"] > 0, failed_text(checked)
    assert engines(lab) == before  # same containers, same states, on every engine
    assert _state.read_lock(etcd(lab), CLUSTER) is None
    assert _state.read_record(etcd(lab), CLUSTER).revision == record.revision
    cluster_diffs = diffs(checked.stdout, cluster_mode=True)
    # Every container is recreated (the env value), on every host; the one instance fewer is removed on its host.
    assert {(host, name) for host, name, action in cluster_diffs if action == "recreated"} == {
        (host, name) for host, names in running(lab).items() for name in names if name != "%s.app-9.app" % CLUSTER}
    removed = {(host, name) for host, name, action in cluster_diffs if action == "removed"}
    assert [name for _host, name in removed] == ["%s.app-9.app" % CLUSTER], cluster_diffs
    assert "LEVEL" in checked.stdout and "check" not in re.findall(r"LEVEL.*", checked.stdout)[0]  # the value is masked

    host_mode = run_playbook("playbooks/site.yml", inventory, change, check=True, diff=True, args=PULL_NEVER)
    assert host_mode.rc == 0, failed_text(host_mode)
    assert engines(lab) == before and _state.read_lock(etcd(lab), CLUSTER) is None
    assert diffs(host_mode.stdout, cluster_mode=False) == cluster_diffs
    assert {host for host, counts in host_mode.recap.items() if counts["changed"] and host != "localhost"} == {
        host for host, _name, _action in cluster_diffs}

    applied = run_playbook("playbooks/site.yml", inventory, dict(change, **CLUSTER_MODE), args=PULL_NEVER)
    assert applied.rc == 0, failed_text(applied)
    now = running(lab)
    assert sum(len(names) for names in now.values()) == 3 * PER_HOST + SETTLED["extra"] - 1
    assert all(set(names).isdisjoint(before_names) for names, before_names in zip(
        [{c.id for c in lab.docker_client(i).containers.list(filters={"label": "io.stackfleet.cluster=" + CLUSTER})}
         for i in range(1, 4)], [set(b) for b in before.values()], strict=True))  # every container replaced
    again = run_playbook("playbooks/site.yml", inventory, dict(change, **CLUSTER_MODE), args=PULL_NEVER)
    assert again.rc == 0, failed_text(again)
    assert {host: counts["changed"] for host, counts in again.recap.items()} == {host: 0 for host in again.recap}, failed_text(again)
    assert running(lab) == now


def test_an_engine_lost_after_the_plan_fails_that_host_and_the_next_run_repairs(cw_lab, run_playbook):
    """One host's dockerd stops after the probe and the plan, as phase 1 starts (a callback runs the lab helper when
    that task starts, before it reaches any host). The other hosts converge their phase 1, nothing is replaced or
    removed anywhere, the run fails naming the host and its engine's error, the lock is released; with the engine
    back, the next run repairs and the one after changes nothing."""
    lab, inventory, work = cw_lab
    lost = lab.hosts[1]
    before, before_running = engines(lab), running(lab)
    # One instance more (created in phase 1 on some host) and an env change (replaced in phase 2: never reached).
    change = dict(stack(work, SETTLED["image"], extra=SETTLED["extra"], level="lost"), **CLUSTER_MODE)
    fault = {"ANSIBLE_CALLBACK_PLUGINS": FAULT_CALLBACKS, "ANSIBLE_CALLBACKS_ENABLED": "stackfleet_fault_at",
             "STACKFLEET_FAULT_AT_TASK": "Converge every live host at once, replacing none yet",
             "STACKFLEET_FAULT_COMMAND": json.dumps([sys.executable, os.path.join(REPO, "tests", "lab", "lab.py"), "stop-docker",
                                                     str(lost.index), "--name", lab.name])}
    try:
        run = run_playbook("playbooks/site.yml", inventory, change, args=PULL_NEVER, env=fault)
        assert "FAULT INJECTED" in run.stdout and lost.dockerd_pid() is None, failed_text(run)
        assert run.rc != 0
        failures = re.findall(r'"msg": "(\S+) did not converge: ([^"]*)', run.stdout)  # the summary's one failure per host
        assert [host for host, _why in failures] == [lost.name], failed_text(run)
        assert "cannot reach the Docker engine at %s" % lost.docker_url in failures[0][1], failures
        assert "TASK [Release the lock]" in run.stdout.split("PLAY [Release the lock and summarise]")[1]
        assert _state.read_lock(etcd(lab), CLUSTER) is None
        after = engines(lab, (1, 3))
        for index in (1, 3):  # phase 1 only: what ran still runs (same ids), at most one instance created
            assert set(before[index]) <= set(after[index]), (index, before[index], after[index])
            assert {cid: after[index][cid] for cid in before[index]} == before[index]
            assert len(set(after[index]) - set(before[index])) <= 1
        assert sum(len(after[i]) - len(before[i]) for i in (1, 3)) <= 1
    finally:
        lab.start_docker(lost.index)
    assert set(running(lab)[lost.name]) == set(before_running[lost.name])  # its containers came back untouched

    repair = run_playbook("playbooks/site.yml", inventory, change, args=PULL_NEVER)
    assert repair.rc == 0, failed_text(repair)
    final = running(lab)
    assert sum(len(names) for names in final.values()) == 3 * PER_HOST + SETTLED["extra"]
    again = run_playbook("playbooks/site.yml", inventory, change, args=PULL_NEVER)
    assert again.rc == 0, failed_text(again)
    assert {host: counts["changed"] for host, counts in again.recap.items()} == {host: 0 for host in again.recap}, failed_text(again)

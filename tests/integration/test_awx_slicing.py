"""AWX job slicing on a real 4-host lab with etcd (issue 11 §3, docs/awx.md "Job slicing").

The plan job (playbooks/rollout_plan.yml) plans once under the lock and records the rollout; two
slices of the converge job (playbooks/rollout_converge.yml --limit, one half each) run at the same
time, as AWX runs a sliced job on two execution nodes; the finishing run releases the lock. Each
test uses its own cluster name, so its keys and containers are its own.
"""
import concurrent.futures
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _etcd, _rollout, _state
from conftest import CA_BUNDLE_ENV, REPO, VENV_BIN, lab_spec, running_lab

LAB = lab_spec("sl", hosts=4, etcd=True)

STACK = """
cluster: {cluster}
services:
  app:
    image: local/busybox:1
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
    env: {{VERSION: "{version}"}}
    network_mode: none
deploy:
  app: {{count: {count}, max_per_host: 1}}
"""


@pytest.fixture(scope="module")
def slicing_lab(tmp_path_factory):
    with running_lab(**LAB) as lab:
        inventory = tmp_path_factory.mktemp("inventory")
        os.symlink(lab.inventory_path, str(inventory / "hosts.yml"))
        shutil.copytree(os.path.join(REPO, "inventories", "lab", "group_vars"), str(inventory / "group_vars"))
        (inventory / "host_vars").mkdir()
        yield lab, str(inventory)


def stack_file(tmp_path, cluster, version="1", count=4):
    path = tmp_path / ("%s.yml" % cluster)
    path.write_text(STACK.format(cluster=cluster, version=version, count=count))
    return str(path)


def client(lab):
    return _etcd.EtcdClient(lab.etcd_endpoints, ca_cert=lab.ca_cert, client_cert=lab.client_cert, client_key=lab.client_key)


def _seconds(stamp):
    """Docker's RFC 3339 time with up to 9 fractional digits (trailing zeros dropped) as comparable seconds."""
    whole, _dot, fraction = stamp.rstrip("Z").partition(".")
    return time.mktime(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (fraction or "0"))


def running(lab, cluster):
    """[(container name, host, created, started)] of the cluster's containers, over every lab host."""
    found = []
    for index, host in enumerate(lab.hosts, start=1):
        for container in lab.docker_client(index).containers.list(all=True, filters={"label": "io.stackfleet.cluster=%s" % cluster}):
            found.append((container.name, host.name, _seconds(container.attrs["Created"]),
                          _seconds(container.attrs["State"]["StartedAt"])))
    return found


def where(lab, cluster):
    """container name -> host; a name on two hosts fails (an old copy left behind)."""
    found = running(lab, cluster)
    names = [name for name, _host, _created, _started in found]
    assert len(names) == len(set(names)), found
    return {name: host for name, host, _created, _started in found}


def plan(run_playbook, inventory, stack, **extra):
    started = time.monotonic()
    run = run_playbook("playbooks/rollout_plan.yml", inventory, extra_vars=dict(stackfleet_stack_file=stack, **extra))
    return run, time.monotonic() - started


def converge(run_playbook, inventory, stack, revision, limit=None, **extra):
    extra_vars = dict(stackfleet_stack_file=stack, **extra)
    if revision is not None:
        extra_vars["stackfleet_plan_revision"] = revision
    started = time.monotonic()
    run = run_playbook("playbooks/rollout_converge.yml", inventory, extra_vars=extra_vars,
                       args=("--limit", ",".join(limit)) if limit else ())
    return run, time.monotonic() - started


def concurrently(run_playbook, inventory, stack, revision, halves, **extra):
    """Both slices at once; [(run, seconds)] in the order of `halves`."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(halves)) as pool:
        futures = [pool.submit(converge, run_playbook, inventory, stack, revision, half, **extra) for half in halves]
        return [future.result() for future in futures]


def expected(record, cluster):
    return {"%s.%s.app" % (cluster, key): host for key, host in record.placement.items()}


def test_two_concurrent_slices_converge_the_recorded_plan(slicing_lab, run_playbook, tmp_path):
    lab, inventory = slicing_lab
    names = [h.name for h in lab.hosts]
    halves = [names[:2], names[2:]]
    stack = stack_file(tmp_path, "sla")
    run, plan_seconds = plan(run_playbook, inventory, stack)
    assert run.rc == 0, run.stdout[-4000:]
    record = _state.read_record(client(lab), "sla")
    assert _state.read_lock(client(lab), "sla").holder.startswith("rollout-")  # kept for the workflow

    slices = concurrently(run_playbook, inventory, stack, record.revision, halves)
    for (run, _seconds), half in zip(slices, halves, strict=True):
        assert run.rc == 0, run.stdout[-4000:]
        assert sorted(h for h in run.recap if h != "localhost") == half  # each slice touched only its hosts
    assert where(lab, "sla") == expected(record, "sla")  # everything where the plan job put it
    assert _state.read_record(client(lab), "sla").revision == record.revision  # no slice re-planned
    print("\nplan job %.1f s, slices %.1f s and %.1f s (concurrent)" % (plan_seconds, slices[0][1], slices[1][1]))

    again = concurrently(run_playbook, inventory, stack, record.revision, halves)
    for run, _seconds in again:
        assert run.rc == 0, run.stdout[-4000:]
        assert {h: c["changed"] for h, c in run.recap.items()} == {h: 0 for h in run.recap}, run.stdout[-3000:]

    finish, _seconds = converge(run_playbook, inventory, stack, record.revision, stackfleet_rollout_finish=True)
    assert finish.rc == 0, finish.stdout[-4000:]
    assert _state.read_lock(client(lab), "sla") is None  # the finishing run released it

    # An image/env change: phase 2 replaces on one host at a time across both slices (the <cluster>.replace lock):
    # every replacement is created only after the previous one started, whichever slice it belongs to.
    changed = stack_file(tmp_path, "sla", version="2")
    run, _seconds = plan(run_playbook, inventory, changed)
    assert run.rc == 0, run.stdout[-4000:]
    revision = _state.read_record(client(lab), "sla").revision
    for run, _seconds in concurrently(run_playbook, inventory, changed, revision, halves):
        assert run.rc == 0, run.stdout[-4000:]
    replaced = sorted(running(lab, "sla"), key=lambda found: found[2])
    assert len(replaced) == 4 and len({host for _n, host, _c, _s in replaced}) == 4
    for (_n1, _h1, _created, started), (_n2, _h2, created_next, _started) in zip(replaced, replaced[1:], strict=False):
        assert created_next >= started, replaced  # never two hosts replacing at once
    assert where(lab, "sla") == expected(_state.read_record(client(lab), "sla"), "sla")


def test_a_stale_or_missing_plan_fails_and_changes_nothing(slicing_lab, run_playbook, tmp_path):
    lab, inventory = slicing_lab
    names = [h.name for h in lab.hosts]
    stack = stack_file(tmp_path, "slb")

    # No plan job ever ran for this cluster.
    run, _seconds = converge(run_playbook, inventory, stack, 1, names[:2])
    assert run.rc != 0
    assert "cluster 'slb' has no recorded rollout" in run.stdout and "rollout_plan.yml" in run.stdout, run.stdout[-3000:]
    assert running(lab, "slb") == []

    run, _seconds = plan(run_playbook, inventory, stack)
    assert run.rc == 0, run.stdout[-4000:]
    first = _state.read_record(client(lab), "slb").revision
    # Someone re-planned (a new plan job taking the unfinished rollout over, scaled to 2).
    run, _seconds = plan(run_playbook, inventory, stack_file(tmp_path, "slb", count=2), stackfleet_rollout_takeover=True)
    assert run.rc == 0, run.stdout[-4000:]
    second = _state.read_record(client(lab), "slb").revision
    assert second > first

    run, _seconds = converge(run_playbook, inventory, stack, first, names[:2])
    assert run.rc != 0
    assert "given plan revision %d but the placement record is at revision %d" % (first, second) in run.stdout, run.stdout[-3000:]
    assert "nothing was changed" in run.stdout
    run, _seconds = converge(run_playbook, inventory, stack, None, names[2:])  # no revision at all
    assert run.rc != 0 and "no stackfleet_plan_revision was given" in run.stdout, run.stdout[-3000:]
    assert running(lab, "slb") == []

    # A plain site.yml meanwhile waits for the rollout's lock and names it.
    site = run_playbook("playbooks/site.yml", inventory, extra_vars={
        "stackfleet_stack_file": stack, "stackfleet_manage_docker": False, "stackfleet_manage_etcd": False,
        "stack_lock_wait_timeout": 0})
    assert site.rc != 0 and "is held by rollout-" in site.stdout, site.stdout[-3000:]
    assert running(lab, "slb") == []
    lock = _state.read_lock(client(lab), "slb")
    _state.release_lock(client(lab), "slb", lock.holder)


def test_a_move_across_slices_keeps_the_old_copy_until_the_new_host_reported(slicing_lab, run_playbook, tmp_path):
    lab, inventory = slicing_lab
    names = [h.name for h in lab.hosts]
    stack = stack_file(tmp_path, "slc", count=2)
    run, _seconds = plan(run_playbook, inventory, stack)
    assert run.rc == 0, run.stdout[-4000:]
    revision = _state.read_record(client(lab), "slc").revision
    finish, _seconds = converge(run_playbook, inventory, stack, revision, stackfleet_rollout_finish=True)  # unsliced
    assert finish.rc == 0, finish.stdout[-4000:]

    # Drain the host of app-1: the next plan moves it.
    old_host = _state.read_record(client(lab), "slc").placement["app-1"]
    drain = os.path.join(inventory, "host_vars", old_host + ".yml")
    with open(drain, "w") as handle:
        handle.write("stackfleet_drain: true\n")
    try:
        run, _seconds = plan(run_playbook, inventory, stack)
    finally:
        os.remove(drain)
    assert run.rc == 0, run.stdout[-4000:]
    record = _state.read_record(client(lab), "slc")
    new_host = record.placement["app-1"]
    assert new_host != old_host
    first_half = [old_host] + [h for h in names if h not in (old_host, new_host)][:1]
    second_half = [h for h in names if h not in first_half]

    # The old host's slice first: the new host has not reported, so the old copy stays.
    run, _seconds = converge(run_playbook, inventory, stack, record.revision, first_half)
    assert run.rc == 0, run.stdout[-4000:]
    assert where(lab, "slc")["slc.app-1.app"] == old_host
    assert "kept until their new host reports converged" in run.stdout
    # The new host's slice: app-1 runs there now; it cannot touch the old host's copy.
    run, _seconds = converge(run_playbook, inventory, stack, record.revision, second_half)
    assert run.rc == 0, run.stdout[-4000:]
    on_hosts = [host for name, host, _c, _s in running(lab, "slc") if name == "slc.app-1.app"]
    assert sorted(on_hosts) == sorted([old_host, new_host]), on_hosts
    assert _rollout.not_converged(record.placement, _rollout.read_rollout(client(lab), "slc")[1], record.revision) == []
    # The finishing run removes it, the new host having reported, and releases the lock.
    finish, _seconds = converge(run_playbook, inventory, stack, record.revision, stackfleet_rollout_finish=True)
    assert finish.rc == 0, finish.stdout[-4000:]
    assert where(lab, "slc") == expected(record, "slc")
    assert _state.read_lock(client(lab), "slc") is None


def test_slices_as_awx_runs_them(slicing_lab, tmp_path):
    """The workflow through ansible-runner, AWX's engine: etcd only through the stackfleet etcd credential's
    environment (no stackfleet_etcd_* variables), one JOB_ID per job, and the plan job's set_stats artifact
    passed to the slices as their extra variables, as an AWX workflow passes it."""
    import ansible_runner
    import yaml

    lab, _inventory = slicing_lab
    names = [h.name for h in lab.hosts]
    with open(lab.inventory_path) as handle:
        inventory = yaml.safe_load(handle)
    for name in [k for k in inventory["all"]["vars"] if k.startswith("stackfleet_etcd_")]:
        del inventory["all"]["vars"][name]
    inventory["all"]["vars"]["stackfleet_stack_file"] = stack_file(tmp_path, "sld")
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    credential = {"ETCDCTL_ENDPOINTS": ",".join(lab.etcd_endpoints), "ETCDCTL_CACERT": lab.ca_cert, "ETCDCTL_CERT": lab.client_cert,
                  "ETCDCTL_KEY": lab.client_key}

    def job(job_id, playbook, extravars, limit=None):
        (tmp_path / ("job-%d" % job_id)).mkdir()
        run = ansible_runner.run(private_data_dir=str(tmp_path / ("job-%d" % job_id)), project_dir=REPO, playbook=playbook,
                                 inventory=str(tmp_path / "inventory.yml"), extravars=extravars, limit=limit, quiet=True,
                                 envvars=dict(credential, JOB_ID=str(job_id), ANSIBLE_NOCOLOR="1"))
        stats = [e["event_data"] for e in run.events if e["event"] == "playbook_on_stats"]
        return run, (stats[0].get("artifact_data") or {}) if stats else {}

    run, artifacts = job(101, "playbooks/rollout_plan.yml", {})
    assert run.rc == 0, run.stdout.read()[-4000:]
    revision = artifacts["stackfleet_plan_revision"]
    assert revision == _state.read_record(client(lab), "sld").revision
    assert artifacts["stackfleet_rollout_result"]["holder"] == _state.read_lock(client(lab), "sld").holder

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        slices = list(pool.map(lambda args: job(*args), [(102, "playbooks/rollout_converge.yml", artifacts, ",".join(names[:2])),
                                                         (103, "playbooks/rollout_converge.yml", artifacts, ",".join(names[2:]))]))
    for (run, result), half in zip(slices, [names[:2], names[2:]], strict=True):
        assert run.rc == 0, run.stdout.read()[-4000:]
        assert result["stackfleet_slice_result"]["hosts"] == sorted(half) and result["stackfleet_slice_result"]["revision"] == revision
    rollout, converged = _rollout.read_rollout(client(lab), "sld")
    assert rollout.planned_by == "awx-job-101" and converged == {name: revision for name in names}
    assert where(lab, "sld") == expected(_state.read_record(client(lab), "sld"), "sld")

    run, _artifacts = job(104, "playbooks/rollout_converge.yml", dict(artifacts, stackfleet_rollout_finish=True))
    assert run.rc == 0, run.stdout.read()[-4000:]
    assert _state.read_lock(client(lab), "sld") is None


# Healthy 2 s after it starts: with stack_wait=healthy a replacement waits that long between starting the new
# container and removing the old one, the window the killed-slice test kills a job in.
SLOW_STACK = """
cluster: {cluster}
services:
  app:
    image: local/busybox:1
    command: ["sh", "-c", "trap 'exit 0' TERM; (sleep 2; touch /tmp/ready) & sleep 2147483647 & wait"]
    env: {{VERSION: "{version}"}}
    network_mode: none
    healthcheck: {{test: ["CMD", "test", "-f", "/tmp/ready"], interval: 1, timeout: 2, retries: 3, start_period: 30}}
deploy:
  app: {{count: 4, max_per_host: 1}}
"""


def slow_stack_file(tmp_path, cluster, version):
    path = tmp_path / ("%s-%s.yml" % (cluster, version))
    path.write_text(SLOW_STACK.format(cluster=cluster, version=version))
    return str(path)


def start_slice(inventory, stack, revision, limit):
    """A converge slice's job, started on its own (kill_job kills it with every process it started)."""
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, os.path.join(REPO, "playbooks", "rollout_converge.yml"),
            "-e", json.dumps({"stackfleet_stack_file": stack, "stackfleet_plan_revision": revision, "stack_wait": "healthy"}),
            "--limit", ",".join(limit)]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1", PYTHONUNBUFFERED="1",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    for name in CA_BUNDLE_ENV:
        env.pop(name, None)
    return subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _children():
    """pid -> its child pids, from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                ppid = int(handle.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry))
    return children


def kill_job(root):
    """SIGKILL `root` and every process it started, whatever their session: what a lost execution node does to a
    job. (ansible-core's workers call setsid, so a signal to ansible-playbook's process group leaves them, and the
    module they run, to finish the task.) Each is stopped first, so that none starts another meanwhile."""
    stopped = []
    for _round in range(10):
        tree, found, todo = _children(), [], [root]
        while todo and len(found) < 1000:
            pid = todo.pop()
            found.append(pid)
            todo.extend(tree.get(pid, []))
        new = [pid for pid in found if pid not in stopped]
        if not new:
            break
        for pid in new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        stopped.extend(new)
    for pid in stopped:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return stopped


def copies(lab, cluster, hosts=None):
    """container name (a temporary `.sf-next` one under its instance's name) -> [(host, running, temporary)]."""
    found = {}
    for index, host in enumerate(lab.hosts, start=1):
        if hosts is not None and host.name not in hosts:
            continue
        for container in lab.docker_client(index).containers.list(all=True, filters={"label": "io.stackfleet.cluster=%s" % cluster}):
            found.setdefault(container.name.removesuffix(".sf-next"), []).append(
                (host.name, container.status == "running", container.name.endswith(".sf-next")))
    return found


def container_changes(run):
    """Hosts whose containers a run changed (the stack role's converge task), not counting its reports to etcd."""
    hosts, converging = set(), False
    for line in run.stdout.splitlines():
        if line.startswith("TASK ["):
            converging = line.startswith("TASK [stackfleet.cluster.stack : Converge this host's containers]")
        elif converging and line.startswith("changed: ["):
            hosts.add(line[len("changed: ["):].split("]")[0].split(" ")[0])
    return hosts


def test_a_slice_killed_while_replacing_leaves_a_copy_running_and_the_documented_repair_converges(slicing_lab, run_playbook, tmp_path):
    """One slice's job is killed (SIGKILL to it and every process it started) while it replaces, the other slice running at
    the same time: every instance still has a copy running, the other slice finishes, the rollout's lock outlives the
    dead job only for its lease (stackfleet_rollout_ttl), and the documented repair (the plan job again taking the
    rollout over, then the slices, then the finishing job) converges everything; the finishing run changes nothing."""
    lab, inventory = slicing_lab
    names = [h.name for h in lab.hosts]
    killed, other = names[:2], names[2:]
    ttl = 120  # longer than the surviving slice takes (it renews the lease when it starts and when it reports)
    healthy = {"stack_wait": "healthy"}
    run, _seconds = plan(run_playbook, inventory, slow_stack_file(tmp_path, "sle", "1"))
    assert run.rc == 0, run.stdout[-4000:]
    first, _seconds = converge(run_playbook, inventory, slow_stack_file(tmp_path, "sle", "1"),
                               _state.read_record(client(lab), "sle").revision, stackfleet_rollout_finish=True, **healthy)
    assert first.rc == 0, first.stdout[-4000:]

    changed = slow_stack_file(tmp_path, "sle", "2")  # an env change: every container is replaced in phase 2
    run, _seconds = plan(run_playbook, inventory, changed, stackfleet_rollout_ttl=ttl)
    assert run.rc == 0, run.stdout[-4000:]
    revision = _state.read_record(client(lab), "sle").revision
    victim = start_slice(inventory, changed, revision, killed)
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            survivor = pool.submit(converge, run_playbook, inventory, changed, revision, other, **healthy)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and victim.poll() is None:
                if any(sorted((up, temporary) for _host, up, temporary in found) == [(False, False), (True, True)]
                       for found in copies(lab, "sle", killed).values()):
                    break  # the new copy runs, the old one is stopped: the middle of a replacement
                time.sleep(0.05)
            assert victim.poll() is None, "the slice ended before it replaced: %s" % victim.communicate()[0][-3000:]
            killed_processes = kill_job(victim.pid)
            victim.communicate(timeout=60)
            survived, survivor_seconds = survivor.result()
    finally:
        if victim.poll() is None:
            kill_job(victim.pid)
            victim.communicate(timeout=60)
    left = copies(lab, "sle")
    assert sorted(left) == ["sle.app-%d.app" % i for i in range(1, 5)], left
    assert all(any(up for _host, up, _temporary in found) for found in left.values()), left  # never both gone
    interrupted = sorted(name for name, found in left.items() if len(found) == 2)  # the old copy and the new one
    assert interrupted, left  # the job was killed in the middle of a replacement
    assert survived.rc == 0, survived.stdout[-4000:]  # the other slice waited out the dead one's replacement lock
    reported = _rollout.read_rollout(client(lab), "sle")[1]
    assert sorted(host for host, at in reported.items() if at == revision) == other, reported  # only its hosts reported

    # Nobody renews the rollout's lock any more: etcd expires it stackfleet_rollout_ttl after the other slice's report
    # (measured once with a ttl of 45 s: gone 76 s after the kill; the other slice, which renewed it last, ran 47 s).
    # The ttl here is short, yet longer than a slice takes on a loaded machine; the repair below takes the rollout over.
    lock = _state.read_lock(client(lab), "sle")
    assert lock is not None and lock.holder.startswith("rollout-") and 0 < lock.ttl_left <= ttl, lock
    print("\n%d processes killed; surviving slice %.1f s; the rollout's lock has %d s of its %d s lease left; interrupted: %s" % (
        len(killed_processes), survivor_seconds, lock.ttl_left, ttl, ", ".join(interrupted) or "none"))

    # The repair: the plan job again, taking the dead rollout over (once its lease ran out, without), both slices,
    # the finishing job, which converges every host again and finds nothing left to change.
    run, _seconds = plan(run_playbook, inventory, changed, stackfleet_rollout_takeover=True)
    assert run.rc == 0, run.stdout[-4000:]
    assert _state.read_lock(client(lab), "sle").holder != lock.holder
    assert _state.read_record(client(lab), "sle").revision == revision  # nothing moved: the same placement revision,
    assert not any(_rollout.read_rollout(client(lab), "sle")[1].values())  # but the dead rollout's reports count for none
    repaired = concurrently(run_playbook, inventory, changed, revision, [killed, other], **healthy)
    for run, _seconds in repaired:
        assert run.rc == 0, run.stdout[-4000:]
    said = " ".join((repaired[0][0].stdout + repaired[0][0].stderr).split())  # warnings are wrapped
    for name in interrupted:  # its phase 1 kept the new copy running (a warning), its phase 2 replaced the old one
        assert "%s.sf-next runs in place of the stopped %s" % (name, name) in said, repaired[0][0].stderr[-3000:]
    finish, _seconds = converge(run_playbook, inventory, changed, revision, stackfleet_rollout_finish=True, **healthy)
    assert finish.rc == 0, finish.stdout[-4000:]
    assert container_changes(finish) == set(), finish.stdout[-3000:]
    assert _state.read_lock(client(lab), "sle") is None
    assert where(lab, "sle") == expected(_state.read_record(client(lab), "sle"), "sle")
    for index in range(1, len(lab.hosts) + 1):
        for container in lab.docker_client(index).containers.list(all=True, filters={"label": "io.stackfleet.cluster=sle"}):
            assert container.status == "running" and "VERSION=2" in container.attrs["Config"]["Env"], container.name

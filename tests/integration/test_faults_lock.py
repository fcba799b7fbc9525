"""Faults around the run lock on a real 1-host lab with etcd (issue 8, §4 and §5).

The lock must live exactly as long as the run: released when planning fails, kept alive
through a run longer than its lease, and dropped within a minute when ansible-playbook is
interrupted (SIGINT to its process group, as Ctrl-C sends it) or killed (SIGKILL), so the next
run waits at most that long. A second run at once waits, then fails naming the holder, or gets
the lock when the first lets go.

    STACKFLEET_TEST_LAB_PREFIX=.. STACKFLEET_TEST_NET=.. .venv/bin/pytest tests/integration/test_faults_lock.py -v
"""
import contextlib
import json
import os
import signal
import subprocess
import time

import lab_etcd
import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _etcd, _state
from ansible_collections.stackfleet.cluster.plugins.plugin_utils import _lock_keeper
from conftest import REPO, VENV_BIN, ansible_playbook, lab_spec, running_lab

LAB = lab_spec("fl", hosts=1, etcd=True)
CLUSTER = "faultlock"
HOLD = os.path.join(REPO, "tests", "integration", "playbooks", "hold_lock.yml")
# One service with a host port: two instances never fit the lab's one host (an infeasible scale).
STACK = """\
cluster: %s
services:
  web:
    image: local/busybox:1
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
    ports: ["8089:8089"]
    network_mode: host
deploy:
  web:
    count: 1
""" % CLUSTER
# site.yml without the engine and etcd roles: the lab runs both already.
SITE_VARS = {"stackfleet_manage_docker": False, "stackfleet_manage_etcd": False, "stack_lock_wait_timeout": 0}


@pytest.fixture(scope="module")
def lock_lab(tmp_path_factory):
    with running_lab(**LAB) as lab:
        folder = tmp_path_factory.mktemp("stack")
        stack_file = folder / "stack.yml"
        stack_file.write_text(STACK)
        yield lab, str(stack_file)


def etcd_client(lab):
    return _etcd.EtcdClient(lab.etcd_endpoints, ca_cert=lab.ca_cert, client_cert=lab.client_cert,
                            client_key=lab.client_key)


def containers(lab):
    """Every container on the lab's host: name → (ID, config hash, running)."""
    found = lab.docker_client(1).containers.list(all=True)
    return {c.name: (c.id, c.labels.get("io.stackfleet.config-hash"), c.status == "running") for c in found
            if c.name != lab_etcd.CONTAINER}


def run_env():
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""), PYTHONUNBUFFERED="1")
    for name in ("ETCDCTL_ENDPOINTS", "ETCD_ENDPOINTS"):
        env.pop(name, None)
    return env


@contextlib.contextmanager
def holding(lab, stack_file, log_path, hold=300, at_work=True, **extra):
    """ansible-playbook holding the lock (hold_lock.yml) in its own process group; yields
    (process, holder) once the lock is taken. Whatever is left of the group is killed after."""
    extra = dict({"stackfleet_stack_file": stack_file, "hold_seconds": hold}, **extra)
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", lab.inventory_path, HOLD, "-e", json.dumps(extra)]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, cwd=REPO, env=run_env(), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        holder = wait_for_holder(lab, lambda h: h.endswith(":%d" % proc.pid), 60, proc, log_path)
        # The run is at work once its lock task has finished and the long task runs.
        deadline = time.monotonic() + 60
        while at_work and "TASK [Work for a while]" not in open(log_path).read():
            assert time.monotonic() < deadline and proc.poll() is None, open(log_path).read()[-3000:]
            time.sleep(0.1)
        if at_work:
            time.sleep(1)  # inside the task (a signal while ansible forks a worker can leave it waiting)
        yield proc, holder
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test started (a sleep may outlive its parent)
        proc.wait(timeout=30)
        with contextlib.suppress(FileNotFoundError):  # the keeper's log of a run that died (kept by design)
            os.unlink(_lock_keeper.state_path(CLUSTER, proc.pid)[:-len(".json")] + ".log")


def wait_for_holder(lab, wanted, timeout, proc=None, log_path=None):
    client = etcd_client(lab)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lock = _state.read_lock(client, CLUSTER)
        if lock is not None and wanted(lock.holder):
            return lock.holder
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError("no holder as wanted; run output:\n" + (open(log_path).read()[-3000:] if log_path else ""))


def seconds_until_free(lab, timeout=90):
    client = etcd_client(lab)
    started = time.monotonic()
    while _state.read_lock(client, CLUSTER) is not None:
        assert time.monotonic() - started < timeout, "lock still held after %ss" % timeout
        time.sleep(0.1)
    return time.monotonic() - started


def take_at_once(lab, stack_file, **extra):
    """A second run that must get the lock without waiting (wait_timeout 0); returns (run, seconds)."""
    started = time.monotonic()
    run = ansible_playbook(HOLD, lab, dict({"stackfleet_stack_file": stack_file, "hold_seconds": 0,
                                            "stack_lock_wait_timeout": 0}, **extra))
    return run, time.monotonic() - started


# ---------------------------------------------------------------- planning failure


@pytest.mark.parametrize("keep_alive", [False, True], ids=["released-by-rescue", "with-keeper"])
def test_planning_failure_releases_the_lock(lock_lab, keep_alive):
    """An infeasible scale fails site.yml in the plan play: the lock is given back by the play
    itself (keep_alive false and a long TTL prove it is not the keeper or the lease doing it),
    the error names the placement problem, no container is touched, and the next run proceeds."""
    lab, stack_file = lock_lab
    first = ansible_playbook("playbooks/site.yml", lab, dict(SITE_VARS, stackfleet_stack_file=stack_file))
    assert first.rc == 0, first.stdout[-3000:]
    before = containers(lab)
    assert list(before) == [CLUSTER + ".web-1.web"] and all(running for _i, _h, running in before.values())

    failed = ansible_playbook("playbooks/site.yml", lab, dict(
        SITE_VARS, stackfleet_stack_file=stack_file, stackfleet_scale="web=3", stack_lock_ttl=600,
        stack_lock_keep_alive=keep_alive))
    assert failed.rc != 0
    assert "planning failed, lock released" in failed.stdout and "web" in failed.stdout, failed.stdout[-3000:]
    assert "Release the lock (planning failed)" in failed.stdout
    assert _state.read_lock(etcd_client(lab), CLUSTER) is None  # released, not left to a 600 s lease
    assert containers(lab) == before  # same IDs, hashes, running

    again = ansible_playbook("playbooks/site.yml", lab, dict(SITE_VARS, stackfleet_stack_file=stack_file))
    assert again.rc == 0, again.stdout[-3000:]
    assert all(counts["changed"] == 0 for counts in again.recap.values()), again.recap  # idempotent
    assert containers(lab) == before


def test_bad_stack_file_releases_the_lock(lock_lab, tmp_path):
    """A stack file that names its cluster but does not validate fails planning; the lock goes."""
    lab, stack_file = lock_lab
    ansible_playbook("playbooks/site.yml", lab, dict(SITE_VARS, stackfleet_stack_file=stack_file))
    before = containers(lab)
    bad = tmp_path / "bad.yml"
    bad.write_text(STACK.replace("count: 1", "count: many"))
    failed = ansible_playbook("playbooks/site.yml", lab,
                              dict(SITE_VARS, stackfleet_stack_file=str(bad), stack_lock_ttl=600, stack_lock_keep_alive=False))
    assert failed.rc != 0 and "planning failed, lock released" in failed.stdout, failed.stdout[-3000:]
    assert "count" in failed.stdout
    assert _state.read_lock(etcd_client(lab), CLUSTER) is None
    assert containers(lab) == before

    missing = ansible_playbook("playbooks/site.yml", lab, dict(SITE_VARS, stackfleet_stack_file=str(tmp_path / "nope.yml")))
    assert missing.rc != 0 and "nope.yml" in missing.stdout + missing.stderr
    assert _state.read_lock(etcd_client(lab), CLUSTER) is None  # never taken: its name comes from the file
    assert containers(lab) == before


# ---------------------------------------------------------------- interrupted and killed runs


def test_ctrl_c_drops_the_lock_within_a_minute(lock_lab, tmp_path):
    lab, stack_file = lock_lab
    with holding(lab, stack_file, str(tmp_path / "run.log")) as (proc, holder):
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole foreground group
        proc.wait(timeout=60)
        freed = seconds_until_free(lab)
    assert proc.returncode != 0
    assert freed < 60
    run, took = take_at_once(lab, stack_file)
    assert run.rc == 0, run.stdout[-3000:]
    print("\nCtrl-C: lock free %.1fs after ansible-playbook exited; next run took %.1fs" % (freed, took))


def test_sigkill_drops_the_lock_within_a_minute(lock_lab, tmp_path):
    lab, stack_file = lock_lab
    with holding(lab, stack_file, str(tmp_path / "run.log")) as (proc, holder):
        killed = time.monotonic()
        os.kill(proc.pid, signal.SIGKILL)  # ansible-playbook alone: its workers and the sleep live on
        proc.wait(timeout=30)
        freed = seconds_until_free(lab)
        assert freed < 60
        waited_from_kill = time.monotonic() - killed
        # A new run that is willing to wait gets the lock (at once, here).
        run, took = take_at_once(lab, stack_file, stack_lock_wait_timeout=60)
        assert run.rc == 0, run.stdout[-3000:]
    print("\nSIGKILL: lock free %.1fs after the kill; next run took %.1fs" % (waited_from_kill, took))


def test_sigkill_the_moment_the_lock_is_taken_drops_it_at_once(lock_lab, tmp_path):
    """The whole run (workers included) killed inside the lock task, as the key appears: the keeper,
    started before the take, finds the lease itself and revokes it. (The timing is not controlled
    here; the window between the take and a keeper started after it is unit-tested:
    test_lock_keeper.py::test_a_run_killed_right_after_the_take_is_revoked.)"""
    lab, stack_file = lock_lab
    with holding(lab, stack_file, str(tmp_path / "run.log"), at_work=False) as (proc, holder):
        killed = time.monotonic()
        os.killpg(proc.pid, signal.SIGKILL)  # the whole run, workers included, mid-task
        proc.wait(timeout=30)
        freed = seconds_until_free(lab)
        waited_from_kill = time.monotonic() - killed
    assert freed < 15, "lock held %.1fs after the kill: it waited for the lease" % freed
    print("\nSIGKILL as the lock was taken: lock free %.1fs after the kill" % waited_from_kill)


# ---------------------------------------------------------------- long and concurrent runs


def test_a_run_longer_than_the_lease_keeps_the_lock_and_a_second_run_waits(lock_lab, tmp_path):
    """TTL 3 s (renewed every second) held for 12 s: a run at second 8 is refused naming the
    holder; one willing to wait gets the lock as soon as the first releases."""
    lab, stack_file = lock_lab
    client = etcd_client(lab)
    with holding(lab, stack_file, str(tmp_path / "run.log"), hold=12, stack_lock_ttl=3) as (proc, holder):
        taken = _state.read_lock(client, CLUSTER)
        time.sleep(8)  # well past the 3 s lease
        still = _state.read_lock(client, CLUSTER)
        assert still is not None and (still.holder, still.revision, still.lease_id) == (taken.holder, taken.revision, taken.lease_id)
        refused, _took = take_at_once(lab, stack_file)
        assert refused.rc != 0
        assert "is held by %s" % holder in refused.stdout, refused.stdout[-2000:]
        started = time.monotonic()
        waited = ansible_playbook(HOLD, lab, {"stackfleet_stack_file": stack_file, "hold_seconds": 0,
                                              "stack_lock_wait_timeout": 60})
        took = time.monotonic() - started
        assert waited.rc == 0, waited.stdout[-3000:]
        assert proc.wait(timeout=30) == 0  # the first run released its own lock: it still held it
    assert _state.read_lock(client, CLUSTER) is None
    print("\nlong run: lease 3 s held 12 s; a waiting run got the lock after %.1fs" % took)


# ---------------------------------------------------------------- no state store


def test_plan_without_etcd(lock_lab, tmp_path, monkeypatch):
    """An inventory without etcd endpoints (and none in the environment) plans and diffs without
    a state store; 0.1 took `lookup('env', A, B)`'s "," for endpoints and failed on 127.0.0.1:2379."""
    import yaml

    lab, stack_file = lock_lab
    for name in ("ETCDCTL_ENDPOINTS", "ETCD_ENDPOINTS"):
        monkeypatch.delenv(name, raising=False)
    with open(lab.inventory_path) as handle:
        inventory = yaml.safe_load(handle)
    for key in [k for k in inventory["all"]["vars"] if k.startswith("stackfleet_etcd_")]:
        del inventory["all"]["vars"][key]
    del inventory["all"]["children"]["etcd"]
    path = tmp_path / "no-etcd.yml"
    path.write_text(yaml.safe_dump(inventory))
    before = containers(lab)
    run = ansible_playbook("playbooks/plan.yml", str(path), {"stackfleet_stack_file": stack_file})
    assert run.rc == 0, run.stdout[-3000:]
    assert "Read the previous placement from etcd" in run.stdout
    assert "skipping: [localhost]" in run.stdout.split("Read the previous placement from etcd", 1)[1].split("TASK", 1)[0]
    assert containers(lab) == before

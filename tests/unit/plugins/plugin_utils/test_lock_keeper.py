"""The lock keeper's loop against a fake etcd and a fake clock (no processes, no network)."""

from __future__ import annotations

import os
import socket

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import EtcdConnectionError
from ansible_collections.stackfleet.cluster.plugins.plugin_utils import _lock_keeper


class FakeEtcd:
    def __init__(self, ttl=30, fail_renewals=0):
        self.ttl = ttl
        self.renewals = []
        self.revoked = []
        self.fail_renewals = fail_renewals
        self.fail_revokes = 0

    def lease_keepalive(self, lease_id):
        if self.fail_renewals:
            self.fail_renewals -= 1
            raise EtcdConnectionError("cannot reach etcd: timed out")
        self.renewals.append(lease_id)
        return 0 if lease_id in self.revoked else self.ttl

    def lease_revoke(self, lease_id):
        if self.fail_revokes:
            self.fail_revokes -= 1
            raise EtcdConnectionError("cannot reach etcd: refused")
        self.revoked.append(lease_id)


def run(etcd, owner_alive_until, interval=10.0, clock=None):
    clock = clock or FakeClock()
    why = _lock_keeper.keep(etcd, 7, 4242, "start", interval, sleep=clock.sleep, clock=clock,
                            is_alive=lambda pid, start: clock.now < owner_alive_until)
    return why, clock


def test_renews_every_interval_while_the_run_lives_then_revokes():
    etcd = FakeEtcd()
    why, clock = run(etcd, owner_alive_until=95.0)
    assert why == "owner gone"
    assert len(etcd.renewals) == 9  # at 10, 20, .. 90 s
    assert etcd.revoked == [7]
    assert clock.now - 95.0 <= _lock_keeper.POLL  # noticed within one poll


def test_a_lease_that_is_gone_stops_the_keeper_without_revoking():
    etcd = FakeEtcd(ttl=0)
    why, _clock = run(etcd, owner_alive_until=1e9)
    assert why == "lease lost" and etcd.revoked == []


def test_etcd_unreachable_for_a_moment_is_retried_within_the_lease():
    etcd = FakeEtcd(fail_renewals=3)
    why, _clock = run(etcd, owner_alive_until=30.0)
    assert why == "owner gone"
    assert etcd.renewals  # renewed once etcd answered again, well before the next interval
    assert etcd.revoked == [7]


def test_revoke_is_retried_then_given_up_to_the_ttl():
    etcd = FakeEtcd()
    etcd.fail_revokes = 2
    why, _clock = run(etcd, owner_alive_until=1.0)
    assert why == "owner gone" and etcd.revoked == [7]
    etcd = FakeEtcd()
    etcd.fail_revokes = 10_000
    why, clock = run(etcd, owner_alive_until=1.0, interval=1.0)
    assert why == "owner gone" and etcd.revoked == [] and clock.now < 10


def test_alive_knows_this_process_and_a_recycled_pid():
    me = os.getpid()
    start = _lock_keeper.process_start(me)
    assert _lock_keeper.alive(me, start)
    if start is not None:  # Linux: another start time is another process
        assert not _lock_keeper.alive(me, str(int(start) + 1))
    assert not _lock_keeper.alive(0)


def test_state_files_are_private(tmp_path, monkeypatch):
    monkeypatch.setattr(_lock_keeper.tempfile, "gettempdir", lambda: str(tmp_path))
    path = _lock_keeper.state_path("prod", 42)
    assert path == os.path.join(str(tmp_path), "stackfleet-%d" % os.getuid(), "lock-prod-42.json")
    assert os.stat(os.path.dirname(path)).st_mode & 0o777 == 0o700
    os.chmod(os.path.dirname(path), 0o777)
    with pytest.raises(_lock_keeper.KeeperError, match="private"):
        _lock_keeper.run_dir()


def test_stop_without_a_keeper_is_a_no_op(tmp_path, monkeypatch):
    monkeypatch.setattr(_lock_keeper.tempfile, "gettempdir", lambda: str(tmp_path))
    assert _lock_keeper.stop("prod", 42) is None


# ---------------------------------------------------------------- before the take: finding the lease

import json  # noqa: E402

from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import KeyValue  # noqa: E402
from fake_clock import FakeClock


class FakeLockStore(FakeEtcd):
    """FakeEtcd plus the lock key: `takes` maps a poll number to the (holder, lease) written then."""

    def __init__(self, takes, **kwargs):
        super().__init__(**kwargs)
        self.takes = dict(takes)
        self.polls = 0
        self.current = None

    def get(self, key):
        assert key == "/stackfleet/prod/lock"
        self.polls += 1
        if self.polls in self.takes:
            self.current = self.takes[self.polls]
        if self.current is None:
            return 1, None
        holder, lease = self.current
        value = json.dumps({"holder": holder, "since": "", "lease_id": lease, "ttl": 30}).encode()
        return 1, KeyValue(b"/stackfleet/prod/lock", value, 5, 5, 1, lease)


def test_the_keeper_finds_its_holders_lease_once_taken():
    etcd = FakeLockStore({1: ("other:1", 3), 4: ("ctl:42", 7)})
    clock = FakeClock()
    lease, ttl = _lock_keeper.find_lease(etcd, "prod", "ctl:42", 42, None, sleep=clock.sleep,
                                         is_alive=lambda pid, start: True)
    assert (lease, ttl) == (7, 30) and etcd.polls == 4  # someone else's lock is not ours


def test_a_run_that_ends_before_taking_the_lock_leaves_nothing_to_revoke():
    etcd = FakeLockStore({})
    clock = FakeClock()
    why = _lock_keeper.run(etcd, "prod", "ctl:42", 42, None, 30, sleep=clock.sleep, clock=clock,
                           is_alive=lambda pid, start: clock.now < 3)
    assert why == "owner gone" and etcd.revoked == []


def test_a_run_killed_right_after_the_take_is_revoked():
    """The window a keeper started after the take would miss: the lock appears as the run dies."""
    etcd = FakeLockStore({2: ("ctl:42", 7)})
    clock = FakeClock()
    alive_checks = []

    def is_alive(pid, start):
        alive_checks.append(1)
        return len(alive_checks) < 2  # dead from the second check on, as the key appears

    why = _lock_keeper.run(etcd, "prod", "ctl:42", 42, None, 30, sleep=clock.sleep, clock=clock, is_alive=is_alive)
    assert why == "owner gone" and etcd.revoked == [7]


def test_a_lost_lease_is_looked_for_again_while_the_run_lives():
    etcd = FakeLockStore({1: ("ctl:42", 7), 2: ("ctl:42", 8)}, ttl=30)
    clock = FakeClock()
    found = []
    etcd.lease_keepalive = lambda lease: 0 if lease == 7 else 30  # lease 7 ran out; the run took the lock again
    why = _lock_keeper.run(etcd, "prod", "ctl:42", 42, None, 30, sleep=clock.sleep, clock=clock,
                           is_alive=lambda pid, start: clock.now < 60, found=lambda lease, i: found.append(lease))
    assert found == [7, 8] and why == "owner gone" and etcd.revoked == [8]


# ---------------------------------------------------------------- the forked keeper (a real process, no etcd)

def test_a_forked_keeper_runs_detached_and_ends_with_its_run(tmp_path, monkeypatch):
    """spawn() forks the keeper into its own session; it writes its state, waits for a lock that
    never comes (nothing listens on the endpoint), and ends, removing its state, once the run is gone."""
    import subprocess
    import sys
    import time

    monkeypatch.setattr(_lock_keeper.tempfile, "gettempdir", lambda: str(tmp_path))
    run = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # stands for ansible-playbook
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: connections are refused
    connection = {"endpoints": ["http://127.0.0.1:%d" % port], "ca_cert": None, "client_cert": None, "client_key": None,
                  "validate_certs": True, "user": None, "password": None, "timeout": 1.0}
    try:
        current, proc = _lock_keeper.spawn(connection, "prod", "ctl:1", 30, run.pid)
        assert current is None and isinstance(proc, _lock_keeper.Forked)
        state = _lock_keeper.wait_started(proc, "prod", run.pid)
        assert state["pid"] == proc.pid and state["owner_pid"] == run.pid and state["lease_id"] == 0
        assert os.getsid(proc.pid) == proc.pid  # its own session: a Ctrl-C to the run does not reach it
        assert _lock_keeper.spawn(connection, "prod", "ctl:1", 30, run.pid) == (state, None)  # one keeper per lock and run
    finally:
        run.kill()
        run.wait()
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.returncode == 0
    assert not os.path.exists(_lock_keeper.state_path("prod", run.pid))
    with open(_lock_keeper.state_path("prod", run.pid)[:-len(".json")] + ".log") as log:
        assert "waiting for ctl:1 to take lock 'prod'" in log.read()


def test_a_zombie_is_not_alive():
    """An ended process its parent has not reaped yet (a run whose parent waits, a keeper whose
    worker is gone and whose new parent reaps late) counts as gone."""
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = _lock_keeper.process_start(proc.pid)
    deadline = time.monotonic() + 10
    while _lock_keeper._stat(proc.pid)[0] != "Z" and time.monotonic() < deadline:  # ended, not reaped: we do not wait() yet
        time.sleep(0.02)
    try:
        assert not _lock_keeper.alive(proc.pid, start) and not _lock_keeper.alive(proc.pid)
    finally:
        proc.wait()
    assert _lock_keeper.alive(os.getpid(), _lock_keeper.process_start(os.getpid()))

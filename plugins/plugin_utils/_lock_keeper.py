# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lock keeper: keeps a run lock's lease alive exactly as long as the run that took it.

`etcd_lock`'s action plugin starts one keeper per lock and run, on the controller, just
before it takes the lock, as a detached process in its own session: a fork of the task's worker
(`spawn`), which has every module it needs loaded already.

The keeper finds the lease of its holder's lock in etcd, then renews it (`/lease/keepalive`)
every `interval` seconds (ttl/3) while the ansible-playbook process that took the lock (its PID and start time) is alive. When that
process is gone (normal end without release, Ctrl-C, SIGKILL, a crashed controller process)
it revokes the lease, so the lock goes at once, and exits. Releasing the lock, then, stops the
keeper (SIGTERM, found by its state file). If the keeper itself dies, the short lease runs
out after `ttl` seconds: that is the bound on how long a dead run can block the next one.

State files live in a private folder of the temporary directory, one per lock and run:
`<tmp>/stackfleet-<uid>/lock-<name>-<ansible-playbook pid>.json` (and `.log`).
All etcd traffic goes through `_etcd.EtcdClient`.
"""

from __future__ import annotations

import gc
import io
import json
import os
import signal
import stat
import sys
import tempfile
import time
import traceback
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import EtcdClient, EtcdError, client_from_params
from ansible_collections.stackfleet.cluster.plugins.module_utils._state import decode_lock, lock_key

POLL = 0.5  # seconds between checks that the run is still there
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class KeeperError(Exception):
    """The keeper could not be started (the message carries its log)."""


# ---------------------------------------------------------------- processes

def _stat(pid: int) -> t.Optional[t.List[str]]:
    """The fields of /proc/<pid>/stat from field 3 (the state) on, None when unknown."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            raw = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    return raw.rpartition(")")[2].split()  # the command name may contain spaces and ')'


def process_start(pid: int) -> t.Optional[str]:
    """The process's start time in clock ticks since boot (Linux /proc), None when unknown.
    Together with the PID it names one process: a recycled PID has another start time."""
    fields = _stat(pid)
    return fields[19] if fields and len(fields) > 19 else None  # field 22 of stat; fields[0] is field 3


def alive(pid: int, start: t.Optional[str] = None) -> bool:
    """True while process `pid` runs (and, when `start` is known, is the same process). A zombie
    has ended: whoever reaps it (its parent, or PID 1 for a keeper whose worker is gone) may take
    its time, and a dead run or keeper must not count as running meanwhile."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, belongs to someone else
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):
        return False
    if start is not None and fields is not None:
        return len(fields) > 19 and fields[19] == start
    return True


# ---------------------------------------------------------------- the loop

def keep(client: t.Any, lease_id: int, owner_pid: int, owner_start: t.Optional[str], interval: float,
         log: t.Callable[[str], None] = lambda text: None, sleep: t.Callable[[float], None] = time.sleep,
         clock: t.Callable[[], float] = time.monotonic, is_alive: t.Callable[[int, t.Optional[str]], bool] = alive,
         poll: float = POLL) -> str:
    """Renew `lease_id` every `interval` seconds while the owner process lives.

    Returns why it stopped: "owner gone" (the lease was revoked), "lease lost" (etcd no
    longer knows the lease: it ran out or was revoked by a release).
    """
    next_renewal = clock() + interval
    while True:
        if not is_alive(owner_pid, owner_start):
            log("process %d is gone: revoking lease %x" % (owner_pid, lease_id))
            revoke(client, lease_id, log, sleep, clock, deadline=clock() + max(interval * 3, 5.0))
            return "owner gone"
        if clock() >= next_renewal:
            try:
                ttl = client.lease_keepalive(lease_id)
            except EtcdError as err:  # etcd unreachable for a moment: try again soon, within the lease
                log("renewing lease %x failed: %s" % (lease_id, err))
                next_renewal = clock() + min(1.0, interval)
            else:
                if ttl <= 0:
                    log("lease %x no longer exists: the lock is gone" % lease_id)
                    return "lease lost"
                next_renewal = clock() + interval
        sleep(poll)


def find_lease(client: t.Any, name: str, holder: str, owner_pid: int, owner_start: t.Optional[str],
               log: t.Callable[[str], None] = lambda text: None, sleep: t.Callable[[float], None] = time.sleep,
               is_alive: t.Callable[[int, t.Optional[str]], bool] = alive, poll: float = 1.0) -> t.Tuple[int, int]:
    """Wait until `holder` holds lock `name`; returns (lease, ttl), or (0, 0) when the owner
    process ended first. The keeper starts before the lock is taken, so that a run interrupted
    between taking it and starting the keeper is covered too: the owner's liveness is read
    before the key, so a lock taken just before the owner died is still found (and revoked)."""
    while True:
        owner_alive = is_alive(owner_pid, owner_start)
        try:
            kv = client.get(lock_key(name))[1]
        except EtcdError as err:
            log("reading lock %r failed: %s" % (name, err))
            kv = None
        if kv is not None and kv.lease:
            lock = decode_lock(kv.value, kv.create_revision, kv.lease)
            if lock.holder == holder:
                return lock.lease_id, lock.ttl
        if not owner_alive:
            return 0, 0
        sleep(poll)


def run(client: t.Any, name: str, holder: str, owner_pid: int, owner_start: t.Optional[str], ttl: int,
        log: t.Callable[[str], None] = lambda text: None, found: t.Callable[[int, float], None] = lambda lease, i: None,
        **timing: t.Any) -> str:
    """The keeper's life: find this run's lease, keep it; when it is lost (ran out, broken with
    force), look for the lock again while the run lives. Returns why it ended."""
    find_timing = {k: v for k, v in timing.items() if k in ("sleep", "is_alive")}
    while True:
        lease_id, granted = find_lease(client, name, holder, owner_pid, owner_start, log=log, **find_timing)
        if not lease_id:
            return "owner gone"
        interval = max((granted or ttl) / 3.0, 0.5)
        found(lease_id, interval)
        log("keeping lease %x of lock %r every %.1fs while process %d runs" % (lease_id, name, interval, owner_pid))
        why = keep(client, lease_id, owner_pid, owner_start, interval, log=log, **timing)
        if why == "owner gone":
            return why


def revoke(client: t.Any, lease_id: int, log: t.Callable[[str], None], sleep: t.Callable[[float], None],
           clock: t.Callable[[], float], deadline: float) -> bool:
    """Revoke the lease, retrying until `deadline` (then it runs out by itself)."""
    while True:
        try:
            client.lease_revoke(lease_id)
            return True
        except EtcdError as err:
            log("revoking lease %x failed: %s" % (lease_id, err))
            if clock() >= deadline:
                return False
            sleep(1.0)


# ---------------------------------------------------------------- files

def run_dir() -> str:
    """A folder only this user can write, for keeper state files and logs."""
    path = os.path.join(tempfile.gettempdir(), "stackfleet-%d" % os.getuid())
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise KeeperError("%s is not a private folder of this user; remove it" % path)
    return path


def state_path(name: str, owner_pid: int) -> str:
    return os.path.join(run_dir(), "lock-%s-%d.json" % (name, owner_pid))


def read_state(path: str) -> t.Optional[t.Dict[str, t.Any]]:
    try:
        with open(path) as handle:
            doc = json.load(handle)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _write_state(path: str, doc: t.Mapping[str, t.Any]) -> None:
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        json.dump(doc, handle)
    os.replace(tmp, path)


def _is_keeper(doc: t.Mapping[str, t.Any]) -> bool:
    pid = int(doc.get("pid") or 0)
    return alive(pid, doc.get("pid_start"))


# ---------------------------------------------------------------- controller side

def spawn(connection: t.Mapping[str, t.Any], name: str, holder: str, ttl: int,
          owner_pid: int) -> t.Tuple[t.Optional[t.Dict[str, t.Any]], t.Optional[Forked]]:
    """Fork the keeper of lock `name` for the run `owner_pid` without waiting for it (the caller
    takes the lock meanwhile, then calls wait_started). Forked before the lock is taken: it finds
    the lease of `holder` itself, so a run interrupted right after the take is covered. A fork of
    this process has every module it needs loaded (a new interpreter spent 0.3-0.8 s importing
    them). Returns (state, None) when this run already has a keeper for the lock (it keeps whatever
    lease the holder has), else (None, the new process)."""
    path = state_path(name, owner_pid)
    current = read_state(path)
    if current and _is_keeper(current):
        return current, None
    prune_logs()
    job = {"connection": dict(connection), "name": name, "holder": holder, "ttl": ttl, "owner_pid": owner_pid,
           "owner_start": process_start(owner_pid), "state_file": path}
    return None, _fork(job, _log_path(path))


class Forked:
    """The forked keeper, as wait_started sees it (our child until this worker exits)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: t.Optional[int] = None

    def poll(self) -> t.Optional[int]:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def wait(self) -> t.Optional[int]:
        while self.poll() is None:
            time.sleep(0.02)
        return self.returncode


def _fork(job: t.Mapping[str, t.Any], log_path: str) -> Forked:
    """Fork the keeper, in its own session, its output in `log_path`. The child never returns:
    it serves the job and leaves with os._exit (no atexit handler or finaliser of the parent's
    objects - Ansible's worker queues - runs in it)."""
    pid = os.fork()
    if pid:
        return Forked(pid)
    code = 1
    inherited = (sys.stdin, sys.stdout, sys.stderr)  # kept referenced: collecting them would close 0-2
    try:
        gc.freeze()  # nor is any other object of the parent collected here, closing a descriptor number we reuse
        os.setsid()
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        null_fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null_fd, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.closerange(3, 1 << 16)  # the parent's pipes to ansible-playbook, sockets, files: none is ours
        sys.stdout = sys.stderr = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        code = serve(job)
    except BaseException:  # pylint: disable=broad-except  # whatever happens, the child must not return into the worker
        try:
            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:  # pylint: disable=broad-except
            pass
    finally:
        del inherited
        os._exit(code)  # pylint: disable=protected-access


def wait_started(proc: Forked, name: str, owner_pid: int) -> t.Dict[str, t.Any]:
    """Wait until the keeper `proc` has written its state (it runs); KeeperError with its log if
    it exits or does not within START_TIMEOUT (then it is killed)."""
    path = state_path(name, owner_pid)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        state = read_state(path)
        if state and state.get("pid") == proc.pid:
            return state
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    with open(_log_path(path), errors="replace") as handle:
        raise KeeperError("the lock keeper did not start (exit %s): %s" % (proc.poll(), handle.read()[-2000:]))


def _log_path(state_file: str) -> str:
    return state_file[:-len(".json")] + ".log"


def stop(name: str, owner_pid: int) -> t.Optional[t.Dict[str, t.Any]]:
    """Stop the keeper of lock `name` for run `owner_pid`, if there is one; returns its state."""
    path = state_path(name, owner_pid)
    current = read_state(path)
    if not current:
        return None
    pid = int(current.get("pid") or 0)
    if _is_keeper(current):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + STOP_TIMEOUT
        while alive(pid, current.get("pid_start")) and time.monotonic() < deadline:
            time.sleep(0.05)
    _remove(path)
    _remove(_log_path(path))  # a released lock leaves nothing; an abandoned one leaves its log
    return current


def prune_logs(max_age: float = 7 * 86400.0) -> None:
    """Forget the logs of keepers of runs that ended without releasing, after a week."""
    folder = run_dir()
    for entry in os.listdir(folder):
        path = os.path.join(folder, entry)
        try:
            if entry.endswith(".log") and time.time() - os.lstat(path).st_mtime > max_age:
                os.unlink(path)
        except OSError:
            pass


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------- keeper side

def _log(text: str) -> None:
    sys.stdout.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), text))
    sys.stdout.flush()


def _stopped(signum: int, frame: t.Any) -> None:
    raise SystemExit(0)


def serve(job: t.Mapping[str, t.Any]) -> int:
    """The keeper's whole life for `job` (see the module's docstring)."""
    signal.signal(signal.SIGTERM, _stopped)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meant for the run must not stop us first
    path = job["state_file"]
    client: EtcdClient = client_from_params(job["connection"])
    state = {"pid": os.getpid(), "pid_start": process_start(os.getpid()), "lease_id": 0, "interval": 0.0,
             "owner_pid": job["owner_pid"], "name": job["name"], "holder": job["holder"]}
    _write_state(path, state)
    _log("waiting for %s to take lock %r while process %d runs" % (job["holder"], job["name"], job["owner_pid"]))

    def found(lease_id: int, interval: float) -> None:
        _write_state(path, dict(state, lease_id=lease_id, interval=interval))

    try:
        why = run(client, job["name"], job["holder"], int(job["owner_pid"]), job.get("owner_start"), int(job["ttl"]),
                  log=_log, found=found)
        _log("stopped: " + why)
    except SystemExit:
        _log("stopped: released")
        return 0  # stop() removes the state file
    current = read_state(path)
    if current and current.get("pid") == os.getpid():
        _remove(path)
    return 0

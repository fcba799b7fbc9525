"""Processes of the lab: dockerd start/stop by PID, and the sweep that finds what a
crashed run left behind.

A process belongs to the lab when it lives in one of the lab's network namespaces
or its command line names the lab's state directory; nothing is ever matched by
program name, so other engineers' daemons on the same machine are never touched.
"""
import os
import signal
import time


def alive(pid):
    """True while the process exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    if state == "Z":
        _reap(pid)
        return False
    return True


def _reap(pid):
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child: init reaps it


def read_pidfile(path):
    try:
        with open(path) as handle:
            return int(handle.read().strip() or 0) or None
    except (FileNotFoundError, ValueError):
        return None


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def terminate(pids, timeout=15.0):
    """SIGTERM, wait up to `timeout`, then SIGKILL each process group that is left."""
    pids = [pid for pid in pids if alive(pid)]
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    for pid in pids:
        if alive(pid):
            _signal_group(pid, signal.SIGKILL)
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _signal_group(pid, sig):
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        pass


def _netns_inode(path):
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _ancestors():
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            with open("/proc/%d/stat" % pid) as handle:
                pid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ValueError, IndexError):
            break
    return pids


def leftovers(netns_paths, state_dir):
    """PIDs running inside the lab's namespaces, or daemons (dockerd, its containerd,
    shims) whose arguments name a host directory of the lab's state directory."""
    inodes = {ino for ino in (_netns_inode(p) for p in netns_paths) if ino}
    marker = state_dir.rstrip("/") + "/h"
    spared = _ancestors()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spared:
            continue
        pid = int(entry)
        try:
            in_ns = os.stat("/proc/%d/ns/net" % pid).st_ino in inodes
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if in_ns or marker in cmdline(pid):
            found.append(pid)
    return found

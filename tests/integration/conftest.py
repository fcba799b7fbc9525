"""Fixtures for integration tests: real labs (network namespaces, dockerd over TLS,
etcd) and `ansible-playbook` runs against their inventory.

Test labs get their names and subnets from `lab_spec()` only, so they never meet the demo lab
(`sf`, 10.231.0.0/24), each other, or the subnets other people use on shared machines
(10.232-10.238). Two test runs at once (two checkouts, or engineers) set
STACKFLEET_TEST_LAB_PREFIX and STACKFLEET_TEST_NET apart. Set STACKFLEET_LAB_KEEP=1 to leave a
session's labs up for debugging.
"""
import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
sys.path.insert(0, os.path.join(REPO, "tests", "lab"))

from lab import Lab  # noqa: E402

#: Test labs are `<prefix><suffix>` on 10.<net>.<slot>.0/24; one slot per lab of the suite.
LAB_PREFIX = os.environ.get("STACKFLEET_TEST_LAB_PREFIX", "sf")
TEST_NET = int(os.environ.get("STACKFLEET_TEST_NET", "241"))
FORBIDDEN_NETS = range(232, 239)  # taken by others on shared machines
LAB_SLOTS = {
    "t": 1, "te": 2, "c": 3, "r": 4, "s": 5, "tp": 6, "td": 7, "tf": 8, "e": 9, "bc": 10,
    # fault-injection suites (tests/integration/test_faults_*.py)
    "fr": 20, "fr2": 21, "fu": 22, "fl": 23, "fl2": 24, "fs": 25, "fs2": 26, "fh": 27, "fh2": 28,
    # host healing and status (issue 9)
    "fh3": 29, "fh4": 30, "st": 31, "st2": 32, "fp": 33,
    # the real LAMP images, dynamic ports, stateful services (issue 12); AWX/ansible-runner (issue 10)
    "im": 34, "lp": 35, "lp2": 36, "dp": 37, "aw": 38, "aw2": 39, "fq": 40, "fe": 41,
    # runbooks: add/replace a host, etcd snapshot and restore (issue 10 §4)
    "rh": 42, "eb": 43, "tr": 44,
    # the cluster-wide converge mode (issue 11 §2)
    "cw": 45, "cw2": 46,
    # AWX job slicing: plan job, then concurrent sliced converges (issue 11 §3)
    "sl": 47, "sl2": 48,
    # docker_host's steady-state fast path: drifted or stopped hosts are repaired (issue 11 §2)
    "dh": 50,
}


#: Under pytest-xdist each worker runs its own labs: worker k (gw<k>) adds k to the prefix and
#: k * WORKER_SLOT_STRIDE to the slot, so two workers never share a namespace name or a subnet.
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
WORKER_SLOT_STRIDE = 100


def lab_spec(suffix, **params):
    """Name and subnet of the suite's lab `suffix` (a key of LAB_SLOTS), plus Lab parameters."""
    if TEST_NET in FORBIDDEN_NETS or not 0 < TEST_NET < 256:
        raise ValueError("STACKFLEET_TEST_NET=%d: use 1-255 outside 232-238 (others' lab subnets)" % TEST_NET)
    slot = LAB_SLOTS[suffix] + WORKER * WORKER_SLOT_STRIDE
    if slot > 255:
        raise ValueError("xdist worker %d: no free lab slot for %r (run at most 2 workers)" % (WORKER, suffix))
    prefix = LAB_PREFIX + (str(WORKER) if WORKER else "")
    return dict(name=prefix + suffix, subnet="10.%d.%d.0/24" % (TEST_NET, slot), **params)


TLS_LAB = lab_spec("t", hosts=3)
ETCD_LAB = lab_spec("te", hosts=3, etcd=True)
LAB_TOOLS = ("dockerd", "nsenter", "ip", "iptables", "openssl", "busybox", "haproxy", "etcd")
LAB_FIXTURES = {"lab", "etcd_lab", "lab_factory"}


def pytest_configure(config):
    # CI timeouts send SIGTERM; turn it into KeyboardInterrupt so lab teardown still runs.
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, signal.default_int_handler)


def pytest_collection_modifyitems(items):
    for item in items:
        if LAB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.lab)


def require_lab():
    if os.geteuid() != 0:
        pytest.skip("the lab needs root: it creates network namespaces, a bridge, iptables rules and dockerd daemons")
    missing = [tool for tool in LAB_TOOLS if not shutil.which(tool)]
    if missing:
        pytest.skip("the lab needs %s (apt-get install docker.io etcd-server busybox-static haproxy iproute2 iptables openssl)" % ", ".join(missing))


@contextlib.contextmanager
def running_lab(**params):
    """A lab that is up inside the block and torn down after it, whatever happens."""
    require_lab()
    lab = Lab(**params)
    lab.down()  # whatever an interrupted earlier run left behind
    try:
        yield lab.up()
    finally:
        if os.environ.get("STACKFLEET_LAB_KEEP") != "1":
            lab.down()


@pytest.fixture(scope="session")
def lab():
    """3 hosts, Docker API over TLS, no etcd running (the etcd image and certificates are there)."""
    with running_lab(**TLS_LAB) as up:
        yield up


@pytest.fixture(scope="session")
def etcd_lab():
    """3 hosts, Docker over TLS, and a healthy 3-member etcd cluster over TLS."""
    with running_lab(**ETCD_LAB) as up:
        yield up


@pytest.fixture
def lab_factory():
    """Brings up extra labs for one test (`lab_factory(name=..., subnet=...)`); all go down after it."""
    with contextlib.ExitStack() as stack:
        yield lambda **params: stack.enter_context(running_lab(**params))


@dataclasses.dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    recap: dict  # host -> {"ok": n, "changed": n, "unreachable": n, "failed": n, "skipped": n, ...}


def parse_recap(stdout):
    recap = {}
    _head, marker, tail = stdout.rpartition("PLAY RECAP")
    if not marker:
        return recap
    for line in tail.splitlines()[1:]:
        match = re.match(r"^(\S+)\s+:\s+(.*)$", line.strip())
        if match:
            recap[match.group(1)] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return recap


# requests lets these override a client's own CA file, so docker SDK / community.docker calls
# to the lab's engines fail verification wherever they are set (they are on the dev machine).
CA_BUNDLE_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def ansible_playbook(playbook, inventory, extra_vars=None, check=False, diff=False, args=(), env=None, timeout=900, keep_ca_env=False):
    """Runs ansible-playbook from the repository root with its ansible.cfg.

    `inventory` is a path or a `Lab`; `playbook` is absolute or relative to the repository root.
    CA_BUNDLE_ENV is dropped unless `keep_ca_env` (to test code that must cope with it).
    """
    if isinstance(inventory, Lab):
        inventory = inventory.inventory_path
    argv = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory, os.path.join(REPO, playbook)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    argv += (["--check"] if check else []) + (["--diff"] if diff else []) + list(args)
    run_env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
                   PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""), PYTHONUNBUFFERED="1")
    if not keep_ca_env:
        for name in CA_BUNDLE_ENV:
            run_env.pop(name, None)
    run_env.update(env or {})
    proc = subprocess.run(argv, cwd=REPO, env=run_env, capture_output=True, text=True, timeout=timeout, check=False)
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, parse_recap(proc.stdout))


@pytest.fixture
def run_playbook():
    """`run_playbook(playbook, lab_or_inventory, extra_vars=..., check=...)` -> PlaybookRun."""
    return ansible_playbook


def etcd_post(endpoints, path, body, context):
    """POST to etcd's JSON gateway at the first of `endpoints` that answers (TLS `context`)."""
    for endpoint in endpoints:
        request = urllib.request.Request(endpoint + path, data=json.dumps(body).encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=3, context=context) as resp:  # the lab's own members
                return json.loads(resp.read())
        except OSError:
            continue
    raise AssertionError("no etcd endpoint answered %s" % path)


def instances_answering(address, want, timeout=15):
    """The instances answering HTTP through the load balancer at `address` (each busybox web
    server names its instance), polled until they are `want`: haproxy health-checks a new backend
    every second, so a converge that just changed backends needs a moment."""
    seen = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = set()
        for _attempt in range(3 * len(want)):
            try:
                with urllib.request.urlopen("http://%s/" % address, timeout=3) as response:
                    seen.add(response.read().decode().split()[0].partition("=")[2])
            except OSError:
                pass
        if seen == want:
            break
        time.sleep(1)
    return seen

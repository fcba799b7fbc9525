# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The etcd modules and the state store against REAL etcd 3.4 members.

Each member runs in its own network namespace (`<lab>-h1`.., bridge `<lab>br0`, on the
subnet conftest.lab_spec("e") gives) as the testbed recipe describes; daemons are tracked by pidfile
and everything is torn down unconditionally by the fixtures. Needs root.

    .venv/bin/pytest tests/integration/test_etcd_modules.py -v
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import typing as t

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, ".ansible", "collections")
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
MODULES = os.path.join(ROOT, "plugins", "modules")

from ansible_collections.stackfleet.cluster.plugins.module_utils import _etcd, _state  # noqa: E402
from conftest import lab_spec  # noqa: E402

LAB = lab_spec("e")
NS_PREFIX = LAB["name"]  # namespaces <lab>-h1.., veths v<lab>-h1..
BRIDGE = NS_PREFIX + "br0"
NET_PREFIX = LAB["subnet"].rsplit(".", 1)[0]  # "10.241.9"
SUBNET_GW = NET_PREFIX + ".1"
ETCD = shutil.which("etcd") or "/usr/bin/etcd"

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
    pytest.mark.skipif(not os.path.exists(ETCD), reason="needs /usr/bin/etcd"),
]

TIMINGS: t.Dict[str, t.List[float]] = {}


def timed(label: str, func: t.Callable[[], t.Any]) -> t.Any:
    start = time.monotonic()
    try:
        return func()
    finally:
        TIMINGS.setdefault(label, []).append(time.monotonic() - start)


def sh(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=30)


# ---------------------------------------------------------------- the lab

class Network:
    """Bridge + per-host namespaces. Idempotent set-up, unconditional teardown."""

    def __init__(self, hosts: t.Sequence[str]):
        self.hosts = list(hosts)

    @staticmethod
    def ip(host: str) -> str:
        return "%s.%d" % (NET_PREFIX, 10 + int(host.rsplit("h", 1)[1]))

    def up(self) -> None:
        self.down()
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        sh("ip", "addr", "add", SUBNET_GW + "/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        sh("iptables", "-I", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT")
        for host in self.hosts:
            ns, veth = NS_PREFIX + "-" + host, "v" + NS_PREFIX + "-" + host
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
            sh("ip", "link", "set", veth, "master", BRIDGE, "up")
            sh("ip", "netns", "exec", ns, "ip", "addr", "add", self.ip(host) + "/24", "dev", "eth0")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "eth0", "up")
            sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def down(self) -> None:
        for host in self.hosts:
            sh("ip", "netns", "del", NS_PREFIX + "-" + host, check=False)
            sh("ip", "link", "del", "v" + NS_PREFIX + "-" + host, check=False)
        sh("ip", "link", "del", BRIDGE, check=False)
        while sh("iptables", "-D", "FORWARD", "-i", BRIDGE, "-o", BRIDGE, "-j", "ACCEPT", check=False).returncode == 0:
            pass


class PKI:
    """A throw-away CA plus one server/peer cert per host and one client cert (openssl)."""

    def __init__(self, workdir: str):
        self.dir = os.path.join(workdir, "pki")
        os.makedirs(self.dir, exist_ok=True)
        self.ca = os.path.join(self.dir, "ca.pem")
        self._ca_key = os.path.join(self.dir, "ca-key.pem")
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=sfe-test-ca",
           "-keyout", self._ca_key, "-out", self.ca)
        self.client_cert, self.client_key = self.issue("client", None)

    def issue(self, name: str, ip: t.Optional[str]) -> t.Tuple[str, str]:
        key, csr, cert = (os.path.join(self.dir, "%s%s" % (name, s)) for s in ("-key.pem", ".csr", ".pem"))
        ext = os.path.join(self.dir, name + ".ext")
        san = "IP:%s,IP:127.0.0.1" % ip if ip else "DNS:%s" % name
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n" % san)
        sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name, "-keyout", key, "-out", csr)
        sh("openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self._ca_key, "-CAcreateserial",
           "-days", "2", "-extfile", ext, "-out", cert)
        return cert, key


class EtcdLab:
    """etcd members as processes in the lab namespaces, tracked by pidfile."""

    def __init__(self, workdir: str, net: Network, pki: t.Optional[PKI], token: str):
        self.workdir, self.net, self.pki, self.token = workdir, net, pki, token
        self.scheme = "https" if pki else "http"

    def peer_url(self, host: str) -> str:
        return "%s://%s:2380" % (self.scheme, self.net.ip(host))

    def client_url(self, host: str) -> str:
        return "%s://%s:2379" % (self.scheme, self.net.ip(host))

    def pidfile(self, host: str) -> str:
        return os.path.join(self.workdir, host, "etcd.pid")

    def start(self, host: str, initial: t.Sequence[str], state: str = "new") -> None:
        hostdir = os.path.join(self.workdir, host)
        os.makedirs(hostdir, exist_ok=True)
        cmd = ["nsenter", "--net=/var/run/netns/%s-%s" % (NS_PREFIX, host), ETCD, "--name", host,
               "--data-dir", os.path.join(hostdir, "data"),
               "--listen-peer-urls", self.peer_url(host), "--initial-advertise-peer-urls", self.peer_url(host),
               "--listen-client-urls", self.client_url(host), "--advertise-client-urls", self.client_url(host),
               "--initial-cluster", ",".join("%s=%s" % (h, self.peer_url(h)) for h in initial),
               "--initial-cluster-token", self.token, "--initial-cluster-state", state]
        if self.pki:
            cert, key = self.pki.issue(host, self.net.ip(host))
            cmd += ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", self.pki.ca, "--client-cert-auth",
                    "--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", self.pki.ca,
                    "--peer-client-cert-auth"]
        with open(os.path.join(hostdir, "etcd.log"), "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        with open(self.pidfile(host), "w") as f:
            f.write(str(proc.pid))

    def stop(self, host: str) -> None:
        try:
            with open(self.pidfile(host)) as f:
                pid = int(f.read())
        except (OSError, ValueError):
            return
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    if os.waitpid(pid, os.WNOHANG)[0] == pid:
                        break
                except ChildProcessError:
                    break
                time.sleep(0.05)
            else:
                continue
            break
        os.unlink(self.pidfile(host))

    def stop_all(self) -> None:
        for host in self.net.hosts:
            self.stop(host)

    def conn(self) -> t.Dict[str, t.Any]:
        """Connection options as module parameters."""
        opts: t.Dict[str, t.Any] = {"endpoints": [self.client_url(h) for h in ("h1", "h2", "h3")], "timeout": 3}
        if self.pki:
            opts.update(ca_cert=self.pki.ca, client_cert=self.pki.client_cert, client_key=self.pki.client_key)
        return opts

    def client(self, hosts: t.Sequence[str] = ("h1", "h2", "h3")) -> _etcd.EtcdClient:
        opts = self.conn()
        opts["endpoints"] = [self.client_url(h) for h in hosts]
        return _etcd.EtcdClient(**opts)

    def wait_healthy(self, hosts: t.Sequence[str], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if all(self.client([h]).health()[0] for h in hosts):
                    return
            except _etcd.EtcdError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("etcd members %s not healthy after %ss" % (hosts, timeout))
            time.sleep(0.2)


def _make_lab(tls: bool) -> t.Iterator[EtcdLab]:
    workdir = tempfile.mkdtemp(prefix="sfe-etcd-")
    net = Network(["h1", "h2", "h3", "h4"])
    lab = None
    try:
        net.up()
        lab = EtcdLab(workdir, net, PKI(workdir) if tls else None, "sfe-%d" % os.getpid())
        for host in ("h1", "h2", "h3"):
            lab.start(host, ["h1", "h2", "h3"])
        lab.wait_healthy(["h1", "h2", "h3"])
        yield lab
    finally:
        if lab is not None:
            lab.stop_all()
        net.down()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def tls_lab() -> t.Iterator[EtcdLab]:
    yield from _make_lab(tls=True)


@pytest.fixture
def plain_lab() -> t.Iterator[EtcdLab]:
    yield from _make_lab(tls=False)


@pytest.fixture(scope="module", autouse=True)
def report_timings() -> t.Iterator[None]:
    yield
    for label, values in sorted(TIMINGS.items()):
        sys.stderr.write("\nTIMING %-28s n=%-3d min=%.3fs max=%.3fs mean=%.3fs" % (
            label, len(values), min(values), max(values), sum(values) / len(values)))
    sys.stderr.write("\n")


# ---------------------------------------------------------------- running modules

def run_module(name: str, args: t.Mapping[str, t.Any], check: bool = False,
               env: t.Optional[t.Mapping[str, str]] = None) -> t.Dict[str, t.Any]:
    """Run a module file the way Ansible does (args as JSON file), return its result."""
    payload = dict(args)
    payload["_ansible_check_mode"] = check
    payload["_ansible_diff"] = True
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, f)
    full_env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    full_env.update(env or {})
    try:
        proc = subprocess.run([os.path.join(VENV_BIN, "python"), os.path.join(MODULES, name + ".py"), f.name],
                              capture_output=True, text=True, timeout=120, env=full_env, check=False)
    finally:
        os.unlink(f.name)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("module %s printed no JSON: %s %s" % (name, proc.stdout, proc.stderr))


def run_ansible(module: str, args: t.Mapping[str, t.Any], check: bool = False,
                env: t.Optional[t.Mapping[str, str]] = None) -> t.Dict[str, t.Any]:
    """`ansible localhost -m stackfleet.cluster.<module>`; the raw result comes from `--tree`
    (the json callback would overwrite the module's own `action` key with the task's)."""
    tree = tempfile.mkdtemp(prefix="sfe-tree-")
    cmd = [os.path.join(VENV_BIN, "ansible"), "localhost", "-m", "stackfleet.cluster." + module, "--tree", tree]
    if args:
        cmd += ["-a", json.dumps(dict(args))]
    if check:
        cmd.append("--check")
    full_env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    full_env.update(env or {})
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=full_env, cwd=ROOT, check=False)
        try:
            with open(os.path.join(tree, "localhost")) as f:
                return json.load(f)
        except (OSError, ValueError):
            raise AssertionError("ansible wrote no result: %s %s" % (proc.stdout, proc.stderr))
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def run_playbook(playbook: str, extra_vars: t.Mapping[str, t.Any], workdir: str) -> t.Tuple[int, str]:
    path = os.path.join(workdir, "play.yml")
    with open(path, "w") as f:
        f.write(playbook)
    vars_path = os.path.join(workdir, "vars.json")
    with open(vars_path, "w") as f:
        json.dump(dict(extra_vars), f)
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", "ansible_python_interpreter=" + os.path.join(VENV_BIN, "python"),
                           path, "-e", "@" + vars_path], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="0"), check=False)
    return proc.returncode, proc.stdout + proc.stderr


# ---------------------------------------------------------------- tests: the client

def test_client_basics_tls(tls_lab: EtcdLab) -> None:
    client = tls_lab.client()
    assert client.version()["etcdserver"].startswith("3.4")
    assert client.request("/kv/range", {"key": _etcd.b64("x")}) is not None
    cluster_id, members = client.member_list()
    assert cluster_id and len(members) == 3
    assert {m.name for m in members} == {"h1", "h2", "h3"}
    assert not any(m.is_learner for m in members)
    status = client.status(tls_lab.client_url("h1"))
    assert status["leader"] in {m.id for m in members}
    rev = client.put("/sfe/k", "v1")
    revision, kv = client.get("/sfe/k")
    assert kv is not None and kv.value == b"v1" and kv.mod_revision == rev == revision
    ok, _revision, _responses = client.txn([_etcd.txn_compare("/sfe/k", "CREATE", 0)], [_etcd.txn_put("/sfe/k", "v2")])
    assert ok is False  # "succeeded" is omitted from the JSON when false
    lease, ttl = client.lease_grant(5)
    assert lease and ttl >= 5
    assert client.lease_keepalive(lease) >= 5
    assert 0 < client.lease_timetolive(lease) <= 5
    client.lease_revoke(lease)
    assert client.lease_timetolive(lease) == -1


def test_client_failover_names_endpoints(plain_lab: EtcdLab) -> None:
    dead = "http://%s.14:2379" % NET_PREFIX  # h4's namespace exists but runs no etcd
    client = _etcd.EtcdClient([dead, plain_lab.client_url("h2")], timeout=2)
    assert client.member_list()[1]
    assert client.endpoints[0] == plain_lab.client_url("h2")  # sticky after failover
    only_dead = _etcd.EtcdClient([dead], timeout=1)
    with pytest.raises(_etcd.EtcdConnectionError, match=NET_PREFIX.replace(".", r"\.") + r"\.14:2379"):
        only_dead.member_list()


# ---------------------------------------------------------------- tests: etcd_member

def test_member_add_learner_start_promote_remove_tls(tls_lab: EtcdLab) -> None:
    conn = tls_lab.conn()
    h4 = {"name": "h4", "peer_urls": [tls_lab.peer_url("h4")]}

    result = run_module("etcd_member", dict(conn, **h4), check=True)
    assert result["changed"] and result["action"] == "added_learner", result
    assert len(tls_lab.client().member_list()[1]) == 3  # check mode changed nothing

    result = timed("member add (learner)", lambda: run_ansible("etcd_member", dict(conn, **h4)))
    assert result["changed"] and result["action"] == "added_learner", result
    assert result["member"]["learner"] and not result["member"]["started"]
    assert result["member"]["id_hex"] == "%x" % result["member"]["id"]

    again = run_module("etcd_member", dict(conn, **h4))
    assert not again["changed"] and again["action"] == "waiting_for_learner", again
    assert "start etcd" in json.dumps(again.get("warnings")), again  # 2.19: warnings are summaries

    tls_lab.start("h4", ["h1", "h2", "h3", "h4"], state="existing")
    result = timed("member promote", lambda: run_module("etcd_member", dict(conn, **h4)))
    assert result["changed"] and result["action"] == "promoted", result
    assert result["member"]["name"] == "h4" and not result["member"]["learner"]
    assert all(m["healthy"] for m in result["members"]), result["members"]

    again = run_ansible("etcd_member", dict(conn, **h4))
    assert not again["changed"] and again.get("action") == "none", again

    result = run_module("etcd_member", dict(conn, state="absent", **h4), check=True)
    assert result["changed"] and result["action"] == "removed"
    assert len(tls_lab.client().member_list()[1]) == 4

    result = timed("member remove", lambda: run_ansible("etcd_member", dict(conn, state="absent", **h4)))
    assert result["changed"] and result["action"] == "removed", result
    assert {m["name"] for m in result["members"]} == {"h1", "h2", "h3"}
    again = run_ansible("etcd_member", dict(conn, state="absent", name="h4"))
    assert not again["changed"] and again.get("action") == "none", again

    # steady state (etcd refuses reconfiguration with code 14 for ~5 s after a member becomes active,
    # which the calls above absorb by retrying): the cost of the calls themselves
    time.sleep(6)
    added = timed("member add (module, steady)", lambda: run_module("etcd_member", dict(conn, **h4)))
    assert added["action"] == "added_learner", added
    removed = timed("member remove (module, steady)", lambda: run_module("etcd_member", dict(conn, state="absent", **h4)))
    assert removed["action"] == "removed", removed
    client = tls_lab.client()
    for _attempt in range(3):
        time.sleep(1)
        new = timed("member add (_etcd)", lambda: _etcd.retry(lambda: client.member_add([tls_lab.peer_url("h4")], True), 10))
        timed("member remove (_etcd)", lambda m=new: _etcd.retry(lambda: client.member_remove(m.id), 10))


def test_member_refusals_and_repair(plain_lab: EtcdLab) -> None:
    conn = plain_lab.conn()
    plain_lab.stop("h3")

    result = run_module("etcd_member", dict(conn, name="h4", peer_urls=[plain_lab.peer_url("h4")]))
    assert result.get("failed") and "quorum impossible" in result["msg"], result
    assert "h3" in result["msg"]
    assert len(plain_lab.client().member_list()[1]) == 3

    result = run_module("etcd_member", dict(conn, state="absent", name="h2", peer_urls=[plain_lab.peer_url("h2")]))
    assert result.get("failed") and "without quorum" in result["msg"], result

    # repair: the dead member may go while h1+h2 keep quorum
    result = timed("member remove (unhealthy)", lambda: run_module(
        "etcd_member", dict(conn, state="absent", name="h3", peer_urls=[plain_lab.peer_url("h3")])))
    assert result["changed"] and result["action"] == "removed", result
    assert {m["name"] for m in result["members"]} == {"h1", "h2"}

    plain_lab.stop("h2")  # now 2 voters, one down: removing the healthy one would leave none
    result = run_module("etcd_member", dict(conn, state="absent", name="h1", peer_urls=[plain_lab.peer_url("h1")],
                                            wait_timeout=5))
    assert result.get("failed"), result
    assert "quorum" in result["msg"], result


# ---------------------------------------------------------------- tests: etcd_cluster_info

def test_cluster_info_and_env_fallbacks_tls(tls_lab: EtcdLab) -> None:
    """Every connection option comes from etcdctl's environment variables (as an AWX credential injects them)."""
    env = {"ETCDCTL_ENDPOINTS": ",".join(tls_lab.conn()["endpoints"]), "ETCDCTL_CACERT": tls_lab.pki.ca,
           "ETCDCTL_CERT": tls_lab.pki.client_cert, "ETCDCTL_KEY": tls_lab.pki.client_key,
           "ETCDCTL_COMMAND_TIMEOUT": "3s"}
    info = run_ansible("etcd_cluster_info", {}, env=env)
    assert not info["changed"] and info.get("healthy"), info
    assert info["version"]["server"].startswith("3.4")
    assert len(info["members"]) == 3 and info["quorum"] == 2 and info["fault_tolerance"] == 1
    assert sum(m["is_leader"] for m in info["members"]) == 1
    assert info["leader"]["name"] in {"h1", "h2", "h3"}
    assert info["revision"] >= 1 and len(info["cluster_id"]) >= 8
    assert run_module("etcd_cluster_info", {}, env=env)["invocation"]["module_args"]["timeout"] == 3.0

    no_tls = run_module("etcd_cluster_info", {}, env={"ETCD_ENDPOINTS": env["ETCDCTL_ENDPOINTS"], "ETCD_TIMEOUT": "2"})
    assert no_tls.get("failed") and NET_PREFIX + ".11:2379" in no_tls["msg"], no_tls  # names the endpoint

    tls_lab.stop("h2")
    info = run_module("etcd_cluster_info", {}, env=env)
    assert not info["healthy"] and info["fault_tolerance"] == 0
    down = [m for m in info["members"] if not m["healthy"]]
    assert [m["name"] for m in down] == ["h2"] and "unreachable" in down[0]["reason"]


def test_auth_user_password_from_env(plain_lab: EtcdLab) -> None:
    client = plain_lab.client()
    client.request("/auth/user/add", {"name": "root", "password": "s3cret-pw"})
    client.request("/auth/user/grant", {"user": "root", "role": "root"})
    client.request("/auth/enable", {})
    endpoints = ",".join(plain_lab.conn()["endpoints"])
    denied = run_module("stack_state_info", {"cluster": "auth"}, env={"ETCDCTL_ENDPOINTS": endpoints})
    assert denied.get("failed") and "user name is empty" in denied["msg"], denied
    ok = run_module("stack_state", {"cluster": "auth", "placement": {"a-1": "h1"}},
                    env={"ETCDCTL_ENDPOINTS": endpoints, "ETCDCTL_USER": "root", "ETCDCTL_PASSWORD": "s3cret-pw"})
    assert ok["changed"] and ok["revision"] > 0, ok
    assert "s3cret-pw" not in json.dumps(ok)  # no_log
    joined = run_module("stack_state_info", {"cluster": "auth"},
                        env={"ETCDCTL_ENDPOINTS": endpoints, "ETCDCTL_USER": "root:s3cret-pw"})
    assert joined["placement"] == {"a-1": "h1"}, joined
    wrong = run_module("stack_state_info", {"cluster": "auth"},
                       env={"ETCDCTL_ENDPOINTS": endpoints, "ETCDCTL_USER": "root", "ETCDCTL_PASSWORD": "nope"})
    assert wrong.get("failed") and "authentication failed" in wrong["msg"], wrong


# ---------------------------------------------------------------- tests: etcd_lock

def test_lock_acquire_wait_release_expire(plain_lab: EtcdLab) -> None:
    conn = plain_lab.conn()
    lock = dict(conn, name="prod", ttl=30)

    check = run_module("etcd_lock", dict(lock, holder="run-a"), check=True)
    assert check["changed"] and _state.read_lock(plain_lab.client(), "prod") is None

    first = timed("lock acquire (module)", lambda: run_module("etcd_lock", dict(lock, holder="run-a")))
    assert first["changed"] and first["lock"]["holder"] == "run-a", first
    value = json.loads(plain_lab.client().get("/stackfleet/prod/lock")[1].value)
    assert value["holder"] == "run-a" and value["lease_id"] == first["lock"]["lease_id"] and value["since"]

    again = run_module("etcd_lock", dict(lock, holder="run-a"))
    assert not again["changed"] and again["lock"]["since"] == first["lock"]["since"]  # refreshed, same lock

    start = time.monotonic()
    other = run_module("etcd_lock", dict(lock, holder="run-b", wait_timeout=2))
    waited = time.monotonic() - start
    assert other.get("failed") and "held by run-a since %s" % first["lock"]["since"] in other["msg"], other
    assert waited >= 2, waited

    wrong = run_module("etcd_lock", dict(lock, holder="run-b", state="released"))
    assert wrong.get("failed") and "run-a" in wrong["msg"]

    released = timed("lock release (module)",
                     lambda: run_module("etcd_lock", dict(lock, holder="run-a", state="released")))
    assert released["changed"]
    assert plain_lab.client().lease_timetolive(first["lock"]["lease_id"]) == -1  # lease revoked too
    assert not run_module("etcd_lock", dict(lock, holder="run-a", state="released"))["changed"]

    # run-b waits while run-a holds a short lease it never releases: the lease expiry frees it
    short = run_module("etcd_lock", dict(lock, holder="run-a", ttl=3))
    assert short["changed"]
    start = time.monotonic()
    taken = run_module("etcd_lock", dict(lock, holder="run-b", wait_timeout=15))
    assert taken["changed"] and taken["lock"]["holder"] == "run-b", taken
    assert 1.5 <= time.monotonic() - start <= 10

    client = plain_lab.client()
    for _round in range(5):  # library-level latency, without the module process start-up
        timed("lock acquire (_state)", lambda: _state.acquire_lock(client, "bench", "me", 10))
        timed("lock release (_state)", lambda: _state.release_lock(client, "bench", "me"))


def test_lock_holder_is_stable_across_tasks_of_a_playbook(plain_lab: EtcdLab, tmp_path) -> None:
    playbook = """
- hosts: localhost
  gather_facts: false
  tasks:
    - stackfleet.cluster.etcd_lock: {name: pb, endpoints: "{{ endpoints }}", ttl: 20}
      register: first
    - stackfleet.cluster.etcd_lock: {name: pb, endpoints: "{{ endpoints }}", ttl: 20}
      register: second
    - ansible.builtin.assert:
        that:
          - first is changed
          - second is not changed
          - first.holder == second.holder
    - stackfleet.cluster.etcd_lock: {name: pb, endpoints: "{{ endpoints }}", state: released}
      register: released
    - ansible.builtin.assert:
        that: released is changed
"""
    rc, out = run_playbook(playbook, {"endpoints": plain_lab.conn()["endpoints"]}, str(tmp_path))
    assert rc == 0, out
    assert "failed=0" in out


# ---------------------------------------------------------------- tests: stack_state

def test_stack_state_put_get_conflict(tls_lab: EtcdLab, tmp_path) -> None:
    conn = tls_lab.conn()
    empty = run_module("stack_state_info", dict(conn, cluster="prod"))
    assert empty["placement"] == {} and empty["revision"] == 0 and not empty["changed"]

    placement = {"lamp-1": "node-1", "lamp-2": "node-3"}
    check = run_module("stack_state", dict(conn, cluster="prod", placement=placement), check=True)
    assert check["changed"] and run_module("stack_state_info", dict(conn, cluster="prod"))["revision"] == 0

    put = run_ansible("stack_state", dict(conn, cluster="prod", placement=placement, spec_hash="abc",
                                          expected_revision=0))
    assert put["changed"] and put["revision"] > 0 and put["updated_at"].endswith("Z"), put
    again = run_ansible("stack_state", dict(conn, cluster="prod", placement=placement, spec_hash="abc"))
    assert not again["changed"] and again["revision"] == put["revision"]

    got = run_module("stack_state_info", dict(conn, cluster="prod"))
    assert got["placement"] == placement and got["revision"] == put["revision"] and got["spec_hash"] == "abc"
    raw = json.loads(tls_lab.client().get("/stackfleet/prod/placement")[1].value)
    assert set(raw) == {"placement", "spec_hash", "updated_at", "updated_by"}

    moved = dict(placement, **{"lamp-2": "node-2"})
    stale = run_module("stack_state", dict(conn, cluster="prod", placement=moved,
                                           expected_revision=put["revision"] - 1))
    assert stale.get("failed") and stale["revision"] == put["revision"], stale
    assert "expected revision" in stale["msg"]
    ok = run_module("stack_state", dict(conn, cluster="prod", placement=moved,
                                        expected_revision=put["revision"]))
    assert ok["changed"] and ok["revision"] > put["revision"]
    assert ok["diff"]["before"]["placement"]["lamp-2"] == "node-3" and ok["diff"]["after"]["placement"]["lamp-2"] == "node-2"

    bad = run_module("stack_state_info", dict(conn, cluster="a/b"))
    assert bad.get("failed") and "key segment" in bad["msg"]

    # untrusted data: Jinja stored in etcd comes back verbatim and is never rendered by a playbook
    _state.write_placement(tls_lab.client(), "evil", {"x-1": "{{ lookup('env', 'HOME') }}"})
    playbook = """
- hosts: localhost
  gather_facts: false
  tasks:
    - stackfleet.cluster.stack_state_info: {cluster: evil, endpoints: "{{ endpoints }}", ca_cert: "{{ ca }}",
                                            client_cert: "{{ cert }}", client_key: "{{ key }}"}
      register: st
    - ansible.builtin.assert:
        that: st.placement['x-1'] == '{' ~ "{ lookup('env', 'HOME') }" ~ '}'
    - ansible.builtin.debug: {msg: "{{ st.placement['x-1'] }}"}
"""
    rc, out = run_playbook(playbook, {"endpoints": conn["endpoints"], "ca": conn["ca_cert"],
                                      "cert": conn["client_cert"], "key": conn["client_key"]}, str(tmp_path))
    assert rc == 0, out
    assert "lookup('env', 'HOME')" in out and os.environ.get("HOME", "/root") + '"' not in out

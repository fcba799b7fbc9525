# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""stackfleet.cluster.containers through REAL `ansible-playbook` runs against a real TLS dockerd.

The lab (tests/lab/lab.py) runs here as its own instance (conftest.lab_spec("c"), one host)
so these tests can stop, break and hand-edit its engine without disturbing other suites.
Needs root.

    .venv/bin/pytest tests/integration/test_containers_module.py -v
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))

import docker  # noqa: E402
from conftest import lab_spec  # noqa: E402
from lab import Lab  # noqa: E402

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")]

CLUSTER = "it"
LAB = lab_spec("c", hosts=1)
IMAGE = "local/busybox:1"
#: A service that stops at SIGTERM at once (a bare `sleep` as PID 1 ignores it and waits for SIGKILL).
SERVE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: converge
      stackfleet.cluster.containers: {args}
      environment: {env}
"""


@pytest.fixture(scope="module")
def lab():
    lab = Lab(**LAB)
    try:
        yield lab.up()
    finally:
        lab.down()


@pytest.fixture(scope="module")
def host(lab):
    return lab.host(1)


@pytest.fixture(scope="module")
def client(lab):
    kwargs = dict(lab.docker_client_kwargs(1), version="1.41")
    c = docker.DockerClient(**kwargs)
    c.api.trust_env = False  # else REQUESTS_CA_BUNDLE replaces the lab CA (psf/requests#3829)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(autouse=True)
def clean(client):
    """Each test starts from an engine without containers."""
    for c in client.containers.list(all=True, sparse=True):
        c.remove(force=True)
    yield


def tls_args(lab, host):
    return {"docker_host": host.docker_url, "validate_certs": True, "ca_path": lab.ca_cert,
            "client_cert": lab.client_cert, "client_key": lab.client_key}


def doc(i, **over):
    d = {"name": "%s.web-%d.web" % (CLUSTER, i), "cluster": CLUSTER, "deploy": "web", "instance": "web-%d" % i,
         "service": "web", "host": LAB["name"] + "-h1", "image": IMAGE, "command": SERVE, "entrypoint": None,
         "env": {"PASSWORD": "hunter2-%d" % i}, "ports": [], "volumes": [], "labels": {"team": "web"},
         "restart": "unless-stopped", "network_mode": "host", "resources": {"cpus": 0.1, "memory_mb": 32},
         "healthcheck": None}
    d.update(over)
    return d


def play(args, env=None, check=False, diff=False):
    """Runs one real ansible-playbook; returns (rc, the task's result, raw stdout)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "play.yml")
        with open(path, "w") as handle:
            handle.write(PLAYBOOK.format(args=json.dumps(args), env=json.dumps(env or {})))
        inventory = os.path.join(tmp, "inventory")
        with open(inventory, "w") as handle:
            handle.write("localhost ansible_connection=local ansible_python_interpreter=%s/.venv/bin/python\n" % ROOT)
        cmd = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inventory, path]
        cmd += ["--check"] * check + ["--diff"] * diff
        run_env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                       ANSIBLE_INVENTORY_ENABLED="ansible.builtin.ini")
        for k in [k for k in run_env if k.startswith("DOCKER_")]:
            del run_env[k]
        proc = subprocess.run(cmd, cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300, check=False)
    out = json.loads(proc.stdout)
    result = out["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return proc.returncode, result, proc.stdout


def converge(lab, host, docs, **kw):
    extra = {k: kw.pop(k) for k in list(kw) if k not in ("env", "check", "diff")}
    return play(dict(tls_args(lab, host), cluster=CLUSTER, containers=docs, **extra), **kw)


def acts(result):
    return {a["name"]: a["action"] for a in result["actions"]}


def snapshot(client):
    return {c.name: (c.id, c.attrs["Created"], c.status) for c in client.containers.list(all=True)}


def quiet_second():
    """A start time for an event window that no earlier call falls into (events have 1 s resolution)."""
    time.sleep(1.05)
    return int(time.time())


def events(client, since, until):
    return [e for e in client.api.events(since=since, until=until, decode=True) if e.get("Type") == "container"]


def test_converge_then_second_run_makes_no_write_call(lab, host, client):
    docs = [doc(i) for i in (1, 2, 3)]
    rc, res, _stdout = converge(lab, host, docs)
    assert rc == 0 and res["changed"], res
    assert set(acts(res).values()) == {"created"}
    before = snapshot(client)
    assert [s for _cid, _created, s in before.values()] == ["running"] * 3
    c = client.containers.get("it.web-1.web")
    assert c.labels["io.stackfleet.cluster"] == CLUSTER and c.labels["io.stackfleet.instance"] == "web-1"
    assert "PASSWORD=hunter2-1" in c.attrs["Config"]["Env"] and c.attrs["HostConfig"]["NanoCpus"] == 100_000_000

    since = quiet_second()
    rc, res, _stdout = converge(lab, host, docs)
    until = int(time.time()) + 1
    assert rc == 0 and not res["changed"], res
    assert set(acts(res).values()) == {"unchanged"}
    assert snapshot(client) == before
    assert events(client, since, until) == []


def test_hand_edits_are_repaired_and_nothing_else_changes(lab, host, client):
    docs = [doc(i) for i in range(1, 6)]
    assert converge(lab, host, docs)[0] == 0
    before = snapshot(client)
    client.containers.get("it.web-1.web").kill()
    client.containers.get("it.web-2.web").remove(force=True)
    client.containers.get("it.web-3.web").rename("copied-by-hand")
    old4 = client.containers.get("it.web-4.web")
    old4.remove(force=True)  # recreated by hand, with other env and without the hash label
    client.containers.run(IMAGE, SERVE, name="it.web-4.web", detach=True, network_mode="host",
                          environment={"PASSWORD": "changed"}, labels={"io.stackfleet.cluster": CLUSTER})

    rc, res, _stdout = converge(lab, host, docs)
    assert rc == 0 and res["changed"]
    assert acts(res) == {"copied-by-hand": "removed", "it.web-1.web": "started", "it.web-2.web": "created",
                         "it.web-3.web": "created", "it.web-4.web": "recreated", "it.web-5.web": "unchanged"}
    reasons = {a["name"]: a["reason"] for a in res["actions"]}
    assert "renamed by hand" in reasons["copied-by-hand"] and "env.PASSWORD" in reasons["it.web-4.web"]
    after = snapshot(client)
    assert after["it.web-5.web"] == before["it.web-5.web"] and after["it.web-1.web"][0] == before["it.web-1.web"][0]
    assert set(after) == {d["name"] for d in docs} and {s for _cid, _created, s in after.values()} == {"running"}
    assert "PASSWORD=hunter2-4" in client.containers.get("it.web-4.web").attrs["Config"]["Env"]
    assert not converge(lab, host, docs)[1]["changed"]


def test_scale_down_removes_exactly_the_missing_and_spares_foreign(lab, host, client):
    foreign = client.containers.run(IMAGE, ["sleep", "3600"], name="not-ours", detach=True, network_mode="host")
    other_cluster = client.containers.run(IMAGE, ["sleep", "3600"], name="prod.web-1.web", detach=True, network_mode="host",
                                          labels={"io.stackfleet.cluster": "prod"})
    docs = [doc(i) for i in range(1, 5)]
    assert converge(lab, host, docs)[0] == 0
    before = snapshot(client)
    rc, res, _stdout = converge(lab, host, docs[:2])
    assert rc == 0
    assert acts(res) == {"it.web-1.web": "unchanged", "it.web-2.web": "unchanged", "it.web-3.web": "removed", "it.web-4.web": "removed"}
    after = snapshot(client)
    assert set(after) == {"it.web-1.web", "it.web-2.web", "not-ours", "prod.web-1.web"}
    assert all(after[n] == before[n] for n in after)
    assert foreign.id == after["not-ours"][0] and other_cluster.id == after["prod.web-1.web"][0]
    # an empty list removes nothing and warns; prune_all empties the host of the cluster's containers, still nothing else
    rc, res, _stdout = converge(lab, host, [])
    assert rc == 0 and not res["changed"] and "prune_all" in " ".join(res["warnings"]), res
    assert set(snapshot(client)) == {"it.web-1.web", "it.web-2.web", "not-ours", "prod.web-1.web"}
    assert set(acts(converge(lab, host, [], prune_all=True)[1]).values()) == {"removed"}
    assert set(snapshot(client)) == {"not-ours", "prod.web-1.web"}


def test_foreign_container_with_a_desired_name_is_an_error_and_survives(lab, host, client):
    squatter = client.containers.run(IMAGE, ["sleep", "3600"], name="it.web-2.web", detach=True, network_mode="host")
    rc, res, _stdout = converge(lab, host, [doc(1), doc(2)])
    assert rc != 0 and "it.web-2.web" in res["msg"] and "not managed by this cluster" in res["msg"]
    assert snapshot(client) == {"it.web-2.web": (squatter.id, squatter.attrs["Created"], "running")}


def test_check_mode_and_diff_report_exactly_what_a_real_run_does(lab, host, client):
    docs = [doc(i) for i in (1, 2, 3)]
    assert converge(lab, host, docs)[0] == 0
    client.containers.get("it.web-3.web").stop(timeout=0)
    before = snapshot(client)
    changed = [doc(1, env={"PASSWORD": "rotated-secret"}), doc(2), doc(3), doc(4)]
    since = quiet_second()
    rc, checked, raw = converge(lab, host, changed, check=True, diff=True)
    until = int(time.time()) + 1
    assert rc == 0 and checked["changed"]
    assert snapshot(client) == before and events(client, since, until) == []
    assert acts(checked) == {"it.web-1.web": "recreated", "it.web-2.web": "unchanged", "it.web-3.web": "started",
                             "it.web-4.web": "created"}
    diffs = {d["after_header"].split()[0]: d for d in checked["diff"]}
    assert set(diffs) == {"it.web-1.web", "it.web-3.web", "it.web-4.web"}
    # a replaced container's diff names the fields that changed, env values masked
    web1 = diffs["it.web-1.web"]
    assert web1["before"]["env.PASSWORD"] != web1["after"]["env.PASSWORD"] and diffs["it.web-4.web"]["before"] == {}
    assert "hunter2" not in json.dumps(web1) and "rotated-secret" not in json.dumps(web1)
    assert "rotated-secret" not in raw and "hunter2" not in raw
    rc, real, raw = converge(lab, host, changed, diff=True)
    assert rc == 0 and real["actions"] == checked["actions"]
    assert "rotated-secret" not in raw
    assert "PASSWORD=rotated-secret" in client.containers.get("it.web-1.web").attrs["Config"]["Env"]


def test_container_that_cannot_start_fails_the_run_after_the_rest(lab, host, client):
    docs = [doc(1), doc(2, command=["/no/such/binary"]), doc(3), doc(4, command=["sh", "-c", "echo boom; exit 3"])]
    rc, res, _stdout = converge(lab, host, docs)
    assert rc != 0
    assert "it.web-2.web" in res["msg"] and "no/such/binary" in res["msg"]
    assert "it.web-4.web" in res["msg"] and "boom" in res["msg"]
    assert len(res["errors"]) == 2
    state = {n: s for n, (_cid, _created, s) in snapshot(client).items()}
    assert state["it.web-1.web"] == "running" and state["it.web-3.web"] == "running"


def test_wait_healthy_in_batches_and_unhealthy_fails(lab, host, client):
    hc = {"test": ["CMD", "true"], "interval": 0.5, "timeout": 2.0, "retries": 2, "start_period": 0.0}
    bad = dict(hc, test=["CMD", "false"])
    docs = [doc(i, healthcheck=hc) for i in (1, 2, 3)] + [doc(4, healthcheck=bad)]
    rc, res, _stdout = converge(lab, host, docs, wait="healthy", wait_timeout=30, max_parallel=2)
    assert rc != 0 and res["errors"] == ["it.web-4.web: unhealthy"], res
    health = {c.name: c.attrs["State"].get("Health", {}).get("Status") for c in client.containers.list()}
    assert health["it.web-1.web"] == health["it.web-2.web"] == health["it.web-3.web"] == "healthy"


def test_rolling_replacement_one_at_a_time(lab, host, client):
    hc = {"test": ["CMD", "true"], "interval": 0.5, "timeout": 2.0, "retries": 2, "start_period": 0.0}
    docs = [doc(i, healthcheck=hc) for i in (1, 2, 3)]
    assert converge(lab, host, docs, wait="none")[0] == 0
    old_ids = {c.id for c in client.containers.list(all=True)}  # their health events go on until removed
    since = quiet_second()
    new = [doc(i, healthcheck=hc, env={"V": "2"}) for i in (1, 2, 3)]
    rc, res, _stdout = converge(lab, host, new, wait="healthy", max_parallel=1)
    assert rc == 0 and set(acts(res).values()) == {"recreated"}
    log = [(e["Actor"]["Attributes"]["name"].replace(".sf-next", ""), e["status"]) for e in events(client, since, int(time.time()) + 1)
           if (e["status"] in ("stop", "destroy") and e["id"] in old_ids)
           or (e["id"] not in old_ids and (e["status"] == "start" or e["status"].startswith("health_status: healthy")))]
    # the old one is stopped (not removed) before the new one starts on its ports, and removed only once the new one is
    # healthy; each container is healthy before the next one is touched
    order = [(n, s.split(":")[0]) for n, s in log]
    assert order == [(n, s) for i in (1, 2, 3) for n, s in
                     [("it.web-%d.web" % i, "stop"), ("it.web-%d.web" % i, "start"), ("it.web-%d.web" % i, "health_status"),
                      ("it.web-%d.web" % i, "destroy")]]


def test_unreachable_engine_names_the_url(lab, host):
    url = "tcp://%s:2999" % host.address
    rc, res, _stdout = play({"cluster": CLUSTER, "containers": [doc(1)], "docker_host": url, "tls": False, "timeout": 5})
    assert rc != 0 and "cannot reach the Docker engine at %s" % url in res["msg"]


def test_plaintext_tcp_is_refused_unless_asked_for(lab, host):
    rc, res, _stdout = play({"cluster": CLUSTER, "containers": [], "docker_host": host.docker_url})
    assert rc != 0 and "refusing to talk to the Docker engine at %s without TLS" % host.docker_url in res["msg"]


@pytest.fixture
def cert_path(lab):
    """A DOCKER_CERT_PATH directory laid out as the docker CLI expects."""
    with tempfile.TemporaryDirectory() as tmp:
        for src, dst in ((lab.ca_cert, "ca.pem"), (lab.client_cert, "cert.pem"), (lab.client_key, "key.pem")):
            os.symlink(src, os.path.join(tmp, dst))
        yield tmp


def test_env_fallbacks(lab, host, client, cert_path):
    env = {"DOCKER_HOST": host.docker_url, "DOCKER_CERT_PATH": cert_path, "DOCKER_TIMEOUT": "17",
           "DOCKER_API_VERSION": "1.40", "DOCKER_TLS_HOSTNAME": host.name}
    base = {"cluster": CLUSTER, "containers": [doc(1)]}
    # DOCKER_CERT_PATH alone: tcp:// defaults to verified TLS with ca.pem/cert.pem/key.pem
    rc, res, _stdout = play(base, env=dict(env))
    assert rc == 0 and acts(res) == {"it.web-1.web": "created"}, res
    args = res["invocation"]["module_args"]
    assert (args["docker_host"], args["timeout"], args["api_version"], args["tls_hostname"]) == (
        host.docker_url, 17, "1.40", host.name)
    # DOCKER_API_VERSION really reaches the engine
    rc, res, _stdout = play(base, env=dict(env, DOCKER_API_VERSION="1.99"))
    assert rc != 0 and "1.99 is too new" in res["msg"], res["msg"]
    # DOCKER_TLS_HOSTNAME is what the certificate is checked against
    rc, res, _stdout = play(base, env=dict(env, DOCKER_TLS_HOSTNAME="not-the-engine.example"))
    assert rc != 0 and "not-the-engine.example" in res["msg"]
    # DOCKER_TLS_VERIFY=0 with DOCKER_TLS=1: encrypted, unverified (a wrong hostname no longer matters)
    rc, res, _stdout = play(base, env=dict(env, DOCKER_TLS="1", DOCKER_TLS_VERIFY="0", DOCKER_TLS_HOSTNAME="not-the-engine.example"))
    assert rc == 0 and not res["changed"], res
    # DOCKER_TLS_VERIFY=1 without a CA in the task: ca.pem from DOCKER_CERT_PATH
    rc, res, _stdout = play(base, env=dict(env, DOCKER_TLS_VERIFY="1"))
    assert rc == 0 and not res["changed"]
    # DOCKER_TLS=0: plain text requested, which a --tlsverify engine refuses
    rc, res, _stdout = play(base, env=dict(env, DOCKER_TLS="0"))
    assert rc != 0 and res["invocation"]["module_args"]["tls"] is False


def test_explicit_tls_options_with_the_lab_ca_and_tls_hostname(lab, host):
    args = dict(tls_args(lab, host), cluster=CLUSTER, containers=[doc(1)], tls_hostname=host.name)
    rc, res, _stdout = play(args)
    assert rc == 0 and res["changed"]
    rc, res, _stdout = play(dict(args, ca_path=lab.client_cert))  # a CA that did not sign the engine's certificate
    assert rc != 0 and "certificate verify failed" in res["msg"]


def test_env_values_never_reach_vvv_output_or_diff(lab, host, client):
    """-vvv prints each task's full result (invocation.module_args included) and the diff; the
    module's syslog line is covered by tests/unit/plugins/modules/test_containers_module_args.py."""
    secret, rotated = "s3cr3t-value-4711", "r0tated-value-0815"
    docs = [doc(1, env={"PASSWORD": secret, "FLAG": "1"}), doc(2, env={"PASSWORD": secret, "FLAG": "1"})]
    assert converge(lab, host, docs)[0] == 0
    changed = [doc(1, env={"PASSWORD": rotated, "FLAG": "1"}), doc(2, env={"PASSWORD": rotated, "FLAG": "1"}, command=["/no/such"])]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "play.yml")
        args = dict(tls_args(lab, host), cluster=CLUSTER, containers=changed)
        with open(path, "w") as handle:
            handle.write(PLAYBOOK.format(args=json.dumps(args), env="{}"))
        inventory = os.path.join(tmp, "inventory")
        with open(inventory, "w") as handle:
            handle.write("localhost ansible_connection=local ansible_python_interpreter=%s/.venv/bin/python\n" % ROOT)
        run_env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_INVENTORY_ENABLED="ansible.builtin.ini")
        outputs = []
        for extra in (["--check"], []):
            proc = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inventory, path, "-vvv", "--diff"] + extra,
                                  cwd=ROOT, env=run_env, capture_output=True, text=True, timeout=300, check=False)
            outputs.append(proc.stdout + proc.stderr)
    assert "it.web-2.web" in outputs[1] and "no/such" in outputs[1]  # the real run failed on web-2, with its error shown
    assert "PASSWORD" in outputs[0] and "it.web-1.web" in outputs[0]
    for text in outputs:
        assert secret not in text and rotated not in text
        assert "web-********" not in text  # values are not masked as substrings of other text
    assert "PASSWORD=%s" % rotated in client.containers.get("it.web-1.web").attrs["Config"]["Env"]

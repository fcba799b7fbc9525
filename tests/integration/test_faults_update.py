"""Issue 8 §1/§5: what Docker changes in place is changed in place, on a real lab engine.

A raised memory limit, a hand `docker update --memory` and a hand restart-policy change are
`updated` with `docker update`: same container id, not restarted (State.StartedAt unchanged),
the engine reports the new value, and the next run changes nothing. Check mode reports what the
next real run does. An image change still recreates, and the diff names `image` (env values never
appear). A container created by 0.1 (its label is the hash of the whole document) is kept.
Each test asserts every container of the host afterwards (ids, hash labels, running).

    STACKFLEET_TEST_LAB_PREFIX=qb STACKFLEET_TEST_NET=212 .venv/bin/pytest tests/integration/test_faults_update.py -v
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
sys.path.insert(0, os.path.join(ROOT, ".ansible", "collections"))

import docker  # noqa: E402
from ansible_collections.stackfleet.cluster.plugins.module_utils import _docker  # noqa: E402
from ansible_collections.stackfleet.cluster.plugins.module_utils._desired import config_hash  # noqa: E402
from conftest import lab_spec, running_lab  # noqa: E402

pytestmark = [pytest.mark.lab, pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces")]

CLUSTER = "fu"
LAB = lab_spec("fu", hosts=1)
IMAGE = "local/busybox:1"
OTHER_IMAGE = "local/busybox-web:1"
MIB = 1024 * 1024
HASH = "io.stackfleet.config-hash"
SERVE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
SECRET = "hunter2-never-shown"
PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: converge
      stackfleet.cluster.containers: {args}
"""


@pytest.fixture(scope="module")
def lab():
    with running_lab(**LAB) as up:
        yield up


@pytest.fixture(scope="module")
def client(lab):
    c = docker.DockerClient(**dict(lab.docker_client_kwargs(1), version="1.41"))
    c.api.trust_env = False  # else REQUESTS_CA_BUNDLE replaces the lab CA (psf/requests#3829)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(autouse=True)
def clean(client):
    for c in client.containers.list(all=True, sparse=True):
        c.remove(force=True)
    yield


def doc(i, **over):
    d = {"name": "%s.db-%d.db" % (CLUSTER, i), "cluster": CLUSTER, "deploy": "db", "instance": "db-%d" % i, "service": "db",
         "host": LAB["name"] + "-h1", "image": IMAGE, "command": SERVE, "entrypoint": None,
         "env": {"DB_HOST": "10.0.0.%d" % i, "DB_PASSWORD": SECRET}, "ports": [], "volumes": [], "labels": {"team": "data"},
         "restart": "unless-stopped", "network_mode": "host", "resources": {"cpus": 0.1, "memory_mb": 32}, "healthcheck": None}
    d.update(over)
    return d


def converge(lab, docs, check=False, diff=False):
    """One real ansible-playbook run of the containers module; returns (rc, task result, stdout)."""
    host = lab.host(1)
    args = {"cluster": CLUSTER, "containers": docs, "docker_host": host.docker_url, "validate_certs": True,
            "ca_path": lab.ca_cert, "client_cert": lab.client_cert, "client_key": lab.client_key}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "play.yml")
        with open(path, "w") as handle:
            handle.write(PLAYBOOK.format(args=json.dumps(args)))
        inventory = os.path.join(tmp, "inventory")
        with open(inventory, "w") as handle:
            handle.write("localhost ansible_connection=local ansible_python_interpreter=%s/.venv/bin/python\n" % ROOT)
        cmd = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inventory, path] + ["--check"] * check + ["--diff"] * diff
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                   ANSIBLE_INVENTORY_ENABLED="ansible.builtin.ini")
        for name in [k for k in env if k.startswith("DOCKER_") or k in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")]:
            del env[name]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return proc.returncode, result, proc.stdout


def acts(result):
    return {a["name"]: a["action"] for a in result["actions"]}


def changes(result):
    return {a["name"]: a.get("changes") for a in result["actions"]}


def state(client):
    """Every container of the host: name → (id, StartedAt, status, hash label, Memory, NanoCpus, restart policy)."""
    found = {}
    for c in client.containers.list(all=True):
        host = c.attrs["HostConfig"]
        found[c.name] = (c.id, c.attrs["State"]["StartedAt"], c.status, c.labels.get(HASH), host["Memory"], host["NanoCpus"],
                         host["RestartPolicy"]["Name"])
    return found


def check_then_apply(lab, docs, expected):
    """Check mode reports `expected`; the real run then does exactly that; a third run changes nothing."""
    rc, planned, _out = converge(lab, docs, check=True)
    assert rc == 0 and acts(planned) == expected, planned
    rc, done, out = converge(lab, docs, diff=True)
    assert rc == 0 and acts(done) == expected, done
    assert done["changed"] == planned["changed"] == any(a != "unchanged" for a in expected.values())
    assert changes(done) == changes(planned)
    assert SECRET not in out
    rc, again, _out = converge(lab, docs)
    assert rc == 0 and not again["changed"] and set(acts(again).values()) == {"unchanged"}, again
    return done


def test_a_raised_memory_limit_is_updated_in_place(lab, client):
    docs = [doc(1), doc(2)]
    assert converge(lab, docs)[0] == 0
    before = state(client)
    assert before["fu.db-1.db"][4] == 32 * MIB and before["fu.db-1.db"][2] == "running"

    docs[0] = doc(1, resources={"cpus": 0.1, "memory_mb": 64})
    done = check_then_apply(lab, docs, {"fu.db-1.db": "updated", "fu.db-2.db": "unchanged"})
    assert changes(done)["fu.db-1.db"] == ["resources.memory_mb: 32 → 64"]
    (diff,) = done["diff"]
    assert diff["before"] == {"resources.memory_mb": 32} and diff["after"] == {"resources.memory_mb": 64}
    after = state(client)
    # same container, never restarted, the engine has the new limit; the other one untouched
    assert after["fu.db-1.db"][:4] == before["fu.db-1.db"][:4]
    assert after["fu.db-1.db"][4] == 64 * MIB
    assert client.containers.get("fu.db-1.db").attrs["HostConfig"]["MemorySwap"] == 128 * MIB
    assert after["fu.db-2.db"] == before["fu.db-2.db"]
    # and well above the old MemorySwap (2 x 32 MiB), which Docker refuses without a new MemorySwap
    docs[0] = doc(1, resources={"cpus": 0.5, "memory_mb": 512})
    check_then_apply(lab, docs, {"fu.db-1.db": "updated", "fu.db-2.db": "unchanged"})
    final = state(client)
    assert final["fu.db-1.db"][:4] == before["fu.db-1.db"][:4] and final["fu.db-1.db"][4:6] == (512 * MIB, 500_000_000)
    assert final["fu.db-2.db"] == before["fu.db-2.db"]


def test_hand_edits_of_memory_and_restart_policy_are_repaired_in_place(lab, client):
    docs = [doc(1), doc(2)]
    assert converge(lab, docs)[0] == 0
    before = state(client)
    client.api.update_container("fu.db-1.db", mem_limit=128 * MIB, memswap_limit=256 * MIB)  # docker update --memory 128m
    client.api.update_container("fu.db-2.db", restart_policy={"Name": "no"})  # docker update --restart no
    edited = state(client)
    assert edited["fu.db-1.db"][4] == 128 * MIB and edited["fu.db-2.db"][6] == "no"

    done = check_then_apply(lab, docs, {"fu.db-1.db": "updated", "fu.db-2.db": "updated"})
    assert changes(done) == {"fu.db-1.db": ["resources.memory_mb: 128 → 32"], "fu.db-2.db": ["restart: no → unless-stopped"]}
    assert state(client) == before  # same ids, not restarted, values as the documents say


def test_check_mode_reports_a_stopped_and_edited_container_as_the_real_run_handles_it(lab, client):
    docs = [doc(1)]
    assert converge(lab, docs)[0] == 0
    before = state(client)
    client.api.update_container("fu.db-1.db", mem_limit=16 * MIB)
    client.containers.get("fu.db-1.db").stop(timeout=5)
    done = check_then_apply(lab, docs, {"fu.db-1.db": "updated"})
    assert "then start it" in done["actions"][0]["reason"]
    after = state(client)
    assert after["fu.db-1.db"][0] == before["fu.db-1.db"][0] and after["fu.db-1.db"][2] == "running"
    assert after["fu.db-1.db"][4] == 32 * MIB


def test_an_image_change_still_recreates_and_the_diff_names_the_fields(lab, client):
    docs = [doc(1), doc(2)]
    assert converge(lab, docs)[0] == 0
    before = state(client)
    docs[0] = doc(1, image=OTHER_IMAGE, env={"DB_HOST": "10.0.0.99", "DB_PASSWORD": SECRET})
    done = check_then_apply(lab, docs, {"fu.db-1.db": "recreated", "fu.db-2.db": "unchanged"})
    assert changes(done)["fu.db-1.db"] == ["image: %s → %s" % (IMAGE, OTHER_IMAGE), "env.DB_HOST: changed"]
    (diff,) = done["diff"]
    assert diff["before"]["image"] == IMAGE and diff["after"]["image"] == OTHER_IMAGE
    assert "env.DB_HOST" in diff["before"] and "env.DB_HOST" in diff["after"]
    assert "10.0.0.99" not in json.dumps(done) and "10.0.0.1" not in json.dumps(done)
    after = state(client)
    assert after["fu.db-1.db"][0] != before["fu.db-1.db"][0] and after["fu.db-1.db"][2] == "running"
    assert after["fu.db-1.db"][3] == config_hash(docs[0]) and after["fu.db-2.db"] == before["fu.db-2.db"]


def test_a_container_created_by_0_1_is_kept_and_a_new_limit_recreates_it_once(lab, client):
    # What 0.1 created: the same container, its label the hash of the whole document.
    d = doc(1)
    kwargs = _docker.create_arguments(client.api, d)
    kwargs["labels"] = dict(kwargs["labels"], **{HASH: config_hash(d, legacy=True)})
    client.api.start(client.api.create_container(**kwargs)["Id"])
    before = state(client)
    assert before["fu.db-1.db"][3] != config_hash(d)

    rc, res, _out = converge(lab, [d])
    assert rc == 0 and not res["changed"] and state(client) == before  # upgrading recreates nothing
    client.api.update_container("fu.db-1.db", mem_limit=48 * MIB)  # a hand edit is repaired in place, label kept
    check_then_apply(lab, [d], {"fu.db-1.db": "updated"})
    assert state(client) == before
    # Its label cannot move in place: the first in-place change in the document recreates it, under the current hash.
    d2 = doc(1, resources={"cpus": 0.1, "memory_mb": 64})
    check_then_apply(lab, [d2], {"fu.db-1.db": "recreated"})
    after = state(client)
    assert after["fu.db-1.db"][0] != before["fu.db-1.db"][0] and after["fu.db-1.db"][3] == config_hash(d2) == config_hash(d)


def test_the_real_configuration_of_a_fresh_container_reads_back_as_its_document(lab, client):
    # No false differences from what dockerd 20.10 reports: every field, image defaults netted out.
    from ansible_collections.stackfleet.cluster.plugins.module_utils import _difference

    rich = doc(3, image=OTHER_IMAGE, command=None, network_mode="bridge", restart="on-failure:3",
               ports=[{"container_port": 80, "protocol": "tcp", "host_port": 18080, "host_ip": ""},
                      {"container_port": 53, "protocol": "udp", "host_port": 18053, "host_ip": "127.0.0.1"}],
               volumes=[{"source": "fu-data", "target": "/data", "read_only": False},
                        {"source": "fu-conf", "target": "/conf", "read_only": True}],
               resources={"cpus": 0.3, "memory_mb": 48}, labels={"team": "data", "tier": "1"},
               healthcheck={"test": ["CMD", "true"], "interval": 2.5, "timeout": 3.0, "retries": 2, "start_period": 0.0})
    docs = [doc(1), rich]
    rc, res, _out = converge(lab, docs)
    assert rc == 0 and set(acts(res).values()) == {"created"}, res
    host = lab.host(1)
    engine = _docker.connect(_docker.resolve_endpoint({"docker_host": host.docker_url, "validate_certs": True, "ca_path": lab.ca_cert,
                                                       "client_cert": lab.client_cert, "client_key": lab.client_key}, environ={}))
    observed = engine.list_cluster(CLUSTER)
    real = engine.configs(observed, [d["name"] for d in docs])
    assert set(real) == {d["name"] for d in docs}
    for d in docs:
        assert _difference.differences(real[d["name"]], d) == [], d["name"]
    rc, res, _out = converge(lab, docs)
    assert rc == 0 and not res["changed"] and set(acts(res).values()) == {"unchanged"}

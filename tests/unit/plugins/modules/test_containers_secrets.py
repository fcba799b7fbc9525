"""The containers module and secrets: a missing secret fails before the engine is reached; the
planner sees only the hashable form ({secret, sha256}); only the create call gets the value."""
from __future__ import annotations

import io
import json
import sys

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.stackfleet.cluster.plugins.module_utils import _converge_tasks, _docker, _host_converge, _secrets
from ansible_collections.stackfleet.cluster.plugins.module_utils._converge import DocumentError
from ansible_collections.stackfleet.cluster.plugins.modules import containers

VALUE = "s3cr3t-db-value"


def doc(name="it.db-1.db", **env):
    return {"name": name, "cluster": "it", "deploy": "db", "instance": name.split(".")[1], "service": "db",
            "image": "local/busybox:1", "env": env}


class FakeEngine:
    url = "unix:///fake.sock"

    def __init__(self):
        self.secrets = None

    def list_cluster(self, cluster):
        return []

    def image_ids(self, refs):
        return {ref: "sha256:" + "a" * 64 for ref in refs}

    def foreign_names(self, cluster, names):
        return {}

    def configs(self, observed, names):
        return {}


def run(args, monkeypatch):
    """main() with `args`; returns (result, syslog lines, engines connected, docs the planner got)."""
    logged, engines, planned = [], [], []
    monkeypatch.setattr(basic, "has_journal", False)
    monkeypatch.setattr(basic.syslog, "syslog", lambda *a: logged.append(a[-1]))

    def connect(endpoint):
        engines.append(FakeEngine())
        return engines[-1]

    def plan(docs, *rest, **kwargs):
        planned.extend(docs)
        raise DocumentError("stop here (unit test)")

    monkeypatch.setattr(_converge_tasks, "connect", connect)
    monkeypatch.setattr(_host_converge, "plan", plan)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    with patch_module_args(dict({"cluster": "it", "docker_host": "unix:///nonexistent.sock"}, **args)):
        with pytest.raises(SystemExit):
            containers.main()
    return json.loads(out.getvalue()), logged, engines, planned


def test_a_missing_secret_fails_before_the_engine_is_reached_naming_secret_container_and_key(monkeypatch):
    docs = [doc(DB_PASSWORD={"secret": "db_password"}), doc("it.app-1.app", KEY={"secret": "api_key"}, PW={"secret": "db_password"})]
    result, logged, engines, planned = run({"containers": docs, "secrets": {"db_password": VALUE}}, monkeypatch)
    assert result["failed"] and engines == [] and planned == []
    assert "secret 'api_key' for it.app-1.app env KEY" in result["msg"] and "nothing was changed" in result["msg"]
    assert "db_password" not in result["msg"].split("nothing was changed")[1]  # given: not reported
    assert VALUE not in json.dumps(result) and not any(VALUE in line for line in logged)


def test_the_planner_sees_digests_and_the_engine_keeps_the_values_for_create(monkeypatch):
    docs = [doc(DB_PASSWORD={"secret": "db_password"}, PLAIN="x"), doc("it.plain-1.plain", PLAIN="y")]
    result, logged, engines, planned = run({"containers": docs, "secrets": {"db_password": VALUE}}, monkeypatch)
    assert planned[0]["env"] == {"DB_PASSWORD": {"secret": "db_password", "sha256": _secrets.digest("it.db-1.db", VALUE)}, "PLAIN": "x"}
    assert planned[1] == docs[1]  # no reference: the document as given, so its hash is the 0.1 hash
    assert engines[0].secrets == {"db_password": VALUE}
    assert VALUE not in json.dumps(result) and not any(VALUE in line for line in logged)


class FakeAPI:
    def create_host_config(self, **kwargs):
        return kwargs


def test_create_arguments_give_docker_the_values_and_label_the_digest_hash():
    hashed = _secrets.hashable(doc(DB_PASSWORD={"secret": "db_password"}, PLAIN="x"), {"db_password": VALUE})
    args = _docker.create_arguments(FakeAPI(), hashed, None, {"db_password": VALUE})
    assert args["environment"] == {"DB_PASSWORD": VALUE, "PLAIN": "x"}
    assert VALUE not in json.dumps(args["labels"])
    rotated = _docker.create_arguments(FakeAPI(), _secrets.hashable(hashed, {"db_password": "new"}), None, {"db_password": "new"})
    assert rotated["labels"]["io.stackfleet.config-hash"] != args["labels"]["io.stackfleet.config-hash"]
    with pytest.raises(_secrets.SecretError):
        _docker.create_arguments(FakeAPI(), hashed, None, {})
    assert _docker.create_arguments(FakeAPI(), doc(PLAIN="x"))["environment"] == {"PLAIN": "x"}

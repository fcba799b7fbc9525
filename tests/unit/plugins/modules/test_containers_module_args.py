"""The containers module's arguments: typed documents rejected before any engine call, hash-stable
documents (no keys added by validation), and env values kept out of the "Invoked with" log line."""
from __future__ import annotations

import io
import json
import sys

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from ansible_collections.stackfleet.cluster.plugins.module_utils import _converge_tasks, _host_converge
from ansible_collections.stackfleet.cluster.plugins.module_utils._desired import config_hash
from ansible_collections.stackfleet.cluster.plugins.modules import containers

SECRET = "hunter2-very-secret"


def doc(**over):
    d = {"name": "it.web-1.web", "cluster": "it", "deploy": "web", "instance": "web-1", "service": "web", "host": "h1",
         "image": "local/busybox:1", "command": ["sleep", "1000"], "entrypoint": None, "env": {"PASSWORD": SECRET, "N": "1"},
         "ports": [{"container_port": 80, "protocol": "tcp", "host_port": 8080, "host_ip": ""}],
         "volumes": [{"source": "data", "target": "/data", "read_only": False}], "labels": {"team": "web"},
         "restart": "unless-stopped", "network_mode": None, "resources": {"cpus": 0.5, "memory_mb": 64}, "healthcheck": None}
    d.update(over)
    return d


def run(args, monkeypatch, engine_calls=None):
    """main() with `args`; returns (exit result, syslog lines). The engine is never reachable:
    connect() records that it was called and fails."""
    logged = []
    calls = engine_calls if engine_calls is not None else []
    monkeypatch.setattr(basic, "has_journal", False)
    monkeypatch.setattr(basic.syslog, "syslog", lambda *a: logged.append(a[-1]))

    def no_engine(endpoint):
        calls.append(endpoint.url)
        raise _host_converge.EngineError("no engine in unit tests")  # the class main() catches (another test may reload _docker)

    monkeypatch.setattr(_converge_tasks, "connect", no_engine)
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    with patch_module_args(dict({"cluster": "it", "docker_host": "unix:///nonexistent.sock"}, **args)):
        with pytest.raises(SystemExit):
            containers.main()
    return json.loads(out.getvalue()), logged


def test_env_values_are_not_in_the_invocation_log_line_nor_the_result(monkeypatch):
    result, logged = run({"containers": [doc(env={"PASSWORD": SECRET, "REF": {"secret": "db"}})],
                          "secrets": {"db": "db-secret-value"}}, monkeypatch)
    invoked = [line for line in logged if "Invoked with" in line]
    assert len(invoked) == 1
    assert SECRET not in invoked[0] and "db-secret-value" not in invoked[0]
    assert "PASSWORD" in invoked[0] and "********" in invoked[0]  # names stay, values are masked
    text = json.dumps(result)
    assert SECRET not in text and "db-secret-value" not in text
    assert result["invocation"]["module_args"]["containers"][0]["env"] == {"PASSWORD": "********", "REF": "********"}
    # masking is per value, not per substring: a short value does not eat other text
    assert "it.web-1.web" in invoked[0] and "web-********" not in text


def test_a_volume_without_source_is_rejected_before_any_engine_call(monkeypatch):
    calls = []
    bad = doc(volumes=[{"target": "/data"}])
    result, _logged = run({"containers": [doc(name="it.web-2.web", instance="web-2"), bad]}, monkeypatch, calls)
    assert result["failed"] and "source" in result["msg"] and "volumes" in result["msg"]
    assert calls == []


@pytest.mark.parametrize("over, word", [({"ports": [{"host_port": 80}]}, "container_port"), ({"image": None}, "image"),
                                        ({"pull": "sometimes"}, "pull"), ({"resources": {"cpus": "lots"}}, "cpus")])
def test_malformed_documents_are_rejected_before_any_engine_call(monkeypatch, over, word):
    calls = []
    result, _logged = run({"containers": [doc(**over)]}, monkeypatch, calls)
    assert result["failed"] and word in result["msg"] and calls == []


def test_validation_adds_no_keys_so_the_hash_is_the_0_1_hash(monkeypatch):
    given = {"name": "it.web-1.web", "cluster": "it", "image": "local/busybox:1", "env": {"A": "b"},
             "healthcheck": {"test": ["CMD", "true"]}, "resources": {"cpus": 1}}
    seen = []
    monkeypatch.setattr(_host_converge, "validate", lambda docs, cluster: seen.extend(docs))
    run({"containers": [given]}, monkeypatch)
    assert seen == [dict(given, resources={"cpus": 1.0})]
    assert config_hash(seen[0]) == config_hash(given)

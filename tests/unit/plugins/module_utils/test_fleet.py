# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_fleet: one call per engine, all at once, a deadline per call, every failure kept per host."""

from __future__ import annotations

import threading
import time

from ansible_collections.stackfleet.cluster.plugins.module_utils import _docker, _fleet
from ansible_collections.stackfleet.cluster.plugins.module_utils._fleet import Outcome, endpoint_params, run, split


def test_every_host_gets_its_value_or_its_error_and_nothing_is_raised():
    def fn(host, item):
        if host == "bad":
            raise RuntimeError("engine said no")
        if host == "empty":
            raise ValueError()
        return item * 2

    out = run({"a": 1, "bad": 2, "c": 3, "empty": 4}, fn, deadline=5)
    assert list(out) == ["a", "bad", "c", "empty"]
    assert (out["a"].ok, out["a"].value, out["a"].error) == (True, 2, None)
    assert (out["bad"].ok, out["bad"].error) == (False, "engine said no")
    assert out["empty"].error == "ValueError"  # an exception without text still says something
    assert split(out) == ({"a": 2, "c": 6}, {"bad": "engine said no", "empty": "ValueError"})


def test_calls_run_concurrently_not_one_after_the_other():
    def fn(_host, _item):
        time.sleep(0.5)
        return True

    begin = time.monotonic()
    out = run({"h%d" % i: i for i in range(8)}, fn, deadline=5, max_workers=8)
    assert all(o.ok for o in out.values())
    assert time.monotonic() - begin < 1.5  # 8 x 0.5 s one after the other would be 4 s


def test_max_workers_bounds_the_calls_at_once():
    lock = threading.Lock()
    running, peak = [0], [0]

    def fn(_host, _item):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1

    run({"h%d" % i: i for i in range(9)}, fn, deadline=5, max_workers=3)
    assert peak[0] == 3


def test_a_hung_host_is_given_up_at_its_deadline_and_does_not_hold_up_the_others():
    release = threading.Event()

    def fn(host, _item):
        if host == "hung":
            release.wait(30)  # a daemon thread: left behind, never joined
            return "late"
        time.sleep(0.05)
        return "ok"

    try:
        begin = time.monotonic()
        # One worker: the hosts queued behind the hung one still run (a fresh worker takes over).
        out = run({"a": 0, "hung": 0, "z1": 0, "z2": 0}, fn, deadline=0.5, max_workers=1)
        took = time.monotonic() - begin
    finally:
        release.set()
    assert out["hung"].ok is False and out["hung"].error == "no answer within 0.5 s"
    assert out["hung"].seconds >= 0.5
    assert [out[h].value for h in ("a", "z1", "z2")] == ["ok", "ok", "ok"]
    assert took < 2


def test_a_late_answer_does_not_overwrite_the_timeout():
    gate = threading.Event()

    def fn(_host, _item):
        gate.wait(5)
        return "late"

    out = run({"slow": 0}, fn, deadline=0.2)
    gate.set()
    time.sleep(0.1)
    assert out["slow"] == Outcome("slow", False, None, "no answer within 0.2 s", out["slow"].seconds)


def test_no_hosts_no_threads():
    assert run({}, lambda h, i: 1 / 0, deadline=1) == {}


def test_endpoint_params_fill_what_the_host_leaves_unset_like_the_containers_module():
    env = {"DOCKER_TLS_VERIFY": "1", "STACKFLEET_DOCKER_CA_PATH": "/env/ca.pem", "DOCKER_HOST": "tcp://env:2376"}
    params = endpoint_params({"docker_host": "tcp://10.0.0.1:2376", "client_cert": "/c.pem"}, env)
    assert params["docker_host"] == "tcp://10.0.0.1:2376"  # the host's own value wins over DOCKER_HOST
    assert params["validate_certs"] is True and params["ca_path"] == "/env/ca.pem" and params["client_cert"] == "/c.pem"
    assert params["api_version"] == "auto" and params["timeout"] == 60 and params["tls"] is None
    assert endpoint_params(None, {})["docker_host"] == _docker.DEFAULT_DOCKER_HOST
    assert endpoint_params({"docker_url": "tcp://alias:1", "tls": False}, {})["docker_host"] == "tcp://alias:1"
    assert endpoint_params({}, {"DOCKER_TLS_VERIFY": "0"})["validate_certs"] is False


def test_probe_reports_up_down_and_why(monkeypatch):
    seen = []

    class FakeEngine:
        def __init__(self, endpoint):
            self.endpoint = endpoint

        def version(self):
            return {"Version": "20.10.24", "ApiVersion": "1.41"}

    def fake_connect(endpoint):
        seen.append(endpoint)
        if "dead" in endpoint.url:
            raise _docker.EngineError("cannot reach the Docker engine at %s: Connection refused\n   retried" % endpoint.url)
        return FakeEngine(endpoint)

    monkeypatch.setattr(_fleet, "connect", fake_connect)
    engines = {"n1": {"docker_host": "tcp://n1:2376", "tls": True, "timeout": 60}, "dead": {"docker_host": "tcp://dead:2376", "tls": True},
               "plain": {"docker_host": "tcp://plain:2375"}}  # refused before any call: no TLS choice made
    result = _fleet.probe(engines, timeout=1.5, environ={})
    assert result["up"] == ["n1"] and result["down"] == ["dead", "plain"]
    assert result["engines"]["n1"]["version"] == "20.10.24" and result["engines"]["n1"]["api_version"] == "1.41"
    assert result["engines"]["n1"]["error"] is None
    assert result["engines"]["dead"]["error"] == "cannot reach the Docker engine at tcp://dead:2376: Connection refused retried"
    assert "refusing to talk to the Docker engine at tcp://plain:2375 without TLS" in result["engines"]["plain"]["error"]
    assert result["engines"]["dead"]["version"] is None
    assert {e.timeout for e in seen} == {1.5}  # the probe's timeout, not the host's own 60 s


def test_probe_of_a_closed_port_is_down_within_the_timeout():
    begin = time.monotonic()
    result = _fleet.probe({"closed": {"docker_host": "tcp://127.0.0.1:9", "tls": False}}, timeout=2, environ={})
    assert result["down"] == ["closed"] and "cannot reach the Docker engine at tcp://127.0.0.1:9" in result["engines"]["closed"]["error"]
    assert time.monotonic() - begin < 4


def test_errors_are_one_line_with_the_socket_reason():
    refused = ("cannot reach the Docker engine at tcp://10.0.0.12:2376: HTTPSConnectionPool(host='10.0.0.12', port=2376): Max retries "
               "exceeded with url: /version (Caused by NewConnectionError(\"HTTPSConnection(host='10.0.0.12', port=2376): Failed to "
               "establish a new connection: [Errno 111] Connection refused\"))")
    timeout = ("cannot reach the Docker engine at tcp://10.0.0.14:2376: HTTPSConnectionPool(host='10.0.0.14', port=2376): Max retries "
               "exceeded with url: /version (Caused by ConnectTimeoutError(<urllib3.connection.HTTPSConnection object at 0x7f>, "
               "'Connection to 10.0.0.14 timed out. (connect timeout=3)'))")
    assert _fleet.short_error(refused) == "cannot reach the Docker engine at tcp://10.0.0.12:2376: Connection refused"
    assert _fleet.short_error(timeout) == "cannot reach the Docker engine at tcp://10.0.0.14:2376: timed out. (connect timeout=3)"
    assert _fleet.short_error("refusing to talk\n  plain") == "refusing to talk plain"
    assert len(_fleet.short_error("x" * 1000)) == 400


def test_engine_version_is_one_request_and_free_after_negotiation():
    calls = []

    class Api:
        def version(self, api_version=True):
            calls.append(api_version)
            return {"Version": "20.10.24", "ApiVersion": "1.41"}

    negotiated = _docker.Engine(Api(), "tcp://h:2376", {"Version": "24.0.7", "ApiVersion": "1.43"})
    assert negotiated.version()["Version"] == "24.0.7" and calls == []
    engine = _docker.Engine(Api(), "tcp://h:2376")
    assert engine.version()["ApiVersion"] == "1.41" and engine.version()["Version"] == "20.10.24"
    assert calls == [False]  # GET /version without the API version prefix, once

# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_host_converge: the fleet run of cluster_converge (fake engines: the pure scheduling and safety rules),
and the filters site.yml builds its input and reads its result with."""

from __future__ import annotations

import threading
import time

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.stackfleet.cluster.plugins.filter.converge_errors import converge_errors
from ansible_collections.stackfleet.cluster.plugins.filter.converge_hosts import converge_hosts
from ansible_collections.stackfleet.cluster.plugins.module_utils import _plan_documents
from ansible_collections.stackfleet.cluster.plugins.module_utils._docker import EngineError
from ansible_collections.stackfleet.cluster.plugins.module_utils._host_converge import Options, _host_entry, converge_fleet


def doc(host, n=1, **over):
    d = {"name": "it.app-%s-%d.app" % (host, n), "cluster": "it", "deploy": "app", "instance": "app-%s-%d" % (host, n),
         "service": "app", "host": host, "image": "busybox:1", "command": ["sleep", "1000"]}
    d.update(over)
    return d


class FakeEngine:
    """An empty engine that has every image; `apply` records when it ran and what it was asked."""

    def __init__(self, url, log, fail=None, delay=0.0):
        self.url, self.log, self.fail, self.delay = url, log, fail, delay
        self.secrets, self.outcomes = {}, {}

    def list_cluster(self, _cluster):
        return []

    def image_ids(self, refs):
        return {ref: "sha256:" + ref for ref in refs}

    def pull(self, ref):
        raise AssertionError("no pull expected: %s" % ref)

    def foreign_names(self, _cluster, _names):
        return {}

    def configs(self, _observed, _names):
        return {}

    def apply(self, todo, *_args):
        start = time.monotonic()
        time.sleep(self.delay)
        self.log.append((self.url, start, time.monotonic(), [a.action for a in todo.actions]))
        return [self.fail] if self.fail else []


def fleet(hosts, opts=None, fail=None, down=(), delay=0.0, **kwargs):
    """converge_fleet over fake engines: host h at tcp://h:2376; `fail` host -> a container error, `down` hosts refuse."""
    log, connected = [], []
    urls = {h: "tcp://%s:2376" % h for h in hosts}

    def connect(host, _connection):
        connected.append(host)
        if host in down:
            raise EngineError("cannot reach the Docker engine at %s: Connection refused" % urls[host])
        return FakeEngine(urls[host], log, (fail or {}).get(host), delay)

    specs = {h: {"containers": docs, "connection": {"docker_host": urls[h]}} for h, docs in hosts.items()}
    report = converge_fleet("it", specs, opts or Options(), connect, kwargs.pop("urls", urls), **kwargs)
    return report, log, connected


def test_every_host_converges_concurrently_and_reports_its_actions():
    hosts = {"h%d" % i: [doc("h%d" % i)] for i in range(6)}
    begin = time.monotonic()
    report, log, _connected = fleet(hosts, delay=0.4, host_parallel=6)
    assert time.monotonic() - begin < 1.6  # 6 x 0.4 s one after the other would be 2.4 s
    assert not report["failed"] and report["changed"] and report["failed_hosts"] == []
    assert list(report["hosts"]) == list(hosts)
    assert all(entry["actions"][0]["action"] == "created" for entry in report["hosts"].values())
    assert len(log) == 6


def test_the_pool_is_bounded():
    active, peak, lock = [0], [0], threading.Lock()

    class Counting(FakeEngine):
        def apply(self, todo, *args):
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            try:
                return super().apply(todo, *args)
            finally:
                with lock:
                    active[0] -= 1

    urls = {"h%d" % i: "tcp://h%d:2376" % i for i in range(8)}
    specs = {h: {"containers": [doc(h)], "connection": {}} for h in urls}
    report = converge_fleet("it", specs, Options(), lambda h, _c: Counting(urls[h], [], None, 0.1), urls, host_parallel=2)
    assert not report["failed"] and peak[0] == 2


def test_a_failed_host_does_not_stop_the_others_and_is_named_with_why():
    hosts = {"a": [doc("a")], "b": [doc("b")], "c": [doc("c")], "d": [doc("d")]}
    report, log, _connected = fleet(hosts, fail={"c": "it.app-c-1.app: create: no space left"}, down={"b"})
    assert report["failed"] and report["failed_hosts"] == ["b", "c"]
    assert {url for url, *_rest in log} == {"tcp://a:2376", "tcp://c:2376", "tcp://d:2376"}
    assert report["hosts"]["b"]["msg"] == "tcp://b:2376: cannot reach the Docker engine at tcp://b:2376: Connection refused"
    assert report["hosts"]["c"]["msg"] == "1 container error(s) on tcp://c:2376: it.app-c-1.app: create: no space left"
    assert not report["hosts"]["a"]["failed"] and report["hosts"]["a"]["changed"]
    assert "b: tcp://b:2376" in report["msg"] and "c: 1 container error(s)" in report["msg"]


def test_a_missing_secret_touches_no_host_and_fails_every_host():
    hosts = {"a": [doc("a")], "b": [doc("b", env={"PW": {"secret": "db"}})]}
    report, log, connected = fleet(hosts)
    assert connected == [] and log == []
    assert report["failed_hosts"] == ["a", "b"]
    assert all("secret 'db' for it.app-b-1.app env PW" in e["msg"] and "nothing was changed" in e["msg"]
               for e in report["hosts"].values())


def test_a_malformed_document_touches_no_host_and_names_its_host():
    hosts = {"a": [doc("a")], "b": [doc("b", cluster="other")]}
    report, _log, connected = fleet(hosts)
    assert connected == [] and report["failed_hosts"] == ["a", "b"]
    assert report["hosts"]["a"]["msg"].startswith("hosts.b.containers: ")


def test_two_hosts_on_one_engine_are_refused():
    hosts = {"a": [doc("a")], "b": [doc("b")], "c": [doc("c")]}
    report, _log, connected = fleet(hosts, urls={"a": "unix:///var/run/docker.sock", "b": "unix:///var/run/docker.sock",
                                                 "c": "tcp://c:2376"})
    assert connected == [] and report["failed"]
    assert "unix:///var/run/docker.sock (a, b)" in report["msg"]


def test_serial_goes_in_order_one_host_at_a_time_and_stops_at_the_first_failure():
    hosts = {"c": [doc("c")], "a": [doc("a")], "d": [doc("d")], "b": [doc("b")]}
    report, log, connected = fleet(hosts, fail={"a": "it.app-a-1.app: rolled back"}, delay=0.05, serial=True, host_parallel=8)
    assert connected == ["c", "a"]  # the order given, nothing after the failed host
    assert log[0][2] <= log[1][1]  # one after the other
    assert report["failed_hosts"] == ["a"] and report["skipped_hosts"] == ["d", "b"]
    assert report["hosts"]["d"]["skipped"] and not report["hosts"]["d"]["failed"]
    assert report["hosts"]["d"]["msg"] == "not converged: the rollout stopped at a"


def test_check_mode_writes_nothing():
    report, log, _connected = fleet({"a": [doc("a")]}, opts=Options(check_mode=True, diff=True))
    assert log == [] and report["changed"]
    assert report["diff"][0]["after_header"] == "a: it.app-a-1.app (created)"


def test_unchanged_actions_can_be_left_out_of_the_report():
    value = dict(changed=False, failed=False, msg="", errors=[], pulled=[], pending=[], deferred=[],
                 actions=[{"name": "x", "action": "unchanged"}, {"name": "y", "action": "removed"}])
    assert [a["name"] for a in _host_entry(value, 0.5, report_unchanged=False)["actions"]] == ["y"]
    assert len(_host_entry(value, 0.5, report_unchanged=True)["actions"]) == 2


def test_converge_hosts_keeps_the_order_and_uses_the_engines_filter():
    hostvars = {"b": {"stackfleet_docker_host": "tcp://b:2376", "stackfleet_docker_tls": "true"},
                "a": {"stackfleet_docker_host": "tcp://a:2376"}}
    out = converge_hosts(["b", "a"], {"a": [doc("a")], "b": []}, hostvars)
    assert list(out) == ["b", "a"]
    assert out["b"] == {"containers": [], "connection": {"docker_host": "tcp://b:2376", "tls": True}}
    assert out["a"]["containers"] == [doc("a")]


def test_converge_hosts_expands_a_compact_plan_for_the_listed_hosts_only():
    full = {h: [dict(doc(h), deploy="app", service="app", instance="app-%s" % h, host=h, name="it.app-%s.app" % h, env={"H": h})]
            for h in ("a", "b")}
    containers, templates = _plan_documents.compact(full)
    out = converge_hosts(["b"], containers, {"b": {}}, templates)
    assert out == {"b": {"containers": full["b"], "connection": {}}}
    containers["b"][0]["template"] = "gone.app"
    with pytest.raises(AnsibleFilterError, match="names template 'gone.app'"):
        converge_hosts(["b"], containers, {"b": {}}, templates)


def test_converge_hosts_refuses_a_host_the_plan_does_not_cover():
    with pytest.raises(AnsibleFilterError, match="c not in the plan's containers map"):
        converge_hosts(["a", "c"], {"a": []}, {"a": {}, "c": {}})


def test_converge_errors_names_the_failed_hosts_or_all_of_them():
    assert converge_errors({"failed": False}, ["a"]) == {}
    result = {"failed": True, "msg": "2 of 3", "failed_hosts": ["b"], "hosts": {"a": {"msg": ""}, "b": {"msg": "why b"}}}
    assert converge_errors(result, ["a", "b"]) == {"b": "why b"}
    assert converge_errors({"failed": True, "msg": "template error"}, ["a", "b"]) == {"a": "template error", "b": "template error"}

"""The inventory plugin's verdict groups and per-host verdicts (option `status`)."""
from ansible_collections.stackfleet.cluster.plugins.module_utils import _status
from ansible_collections.stackfleet.cluster.plugins.plugin_utils import _inventory


def entry(name, verdict, expected, found=()):
    return {"name": name, "verdict": verdict, "expected_host": expected, "found": [{"host": h} for h in found]}


RESULT = {"containers": [
    entry("p.a-1.web", "ok", "h1", ["h1"]),
    entry("p.a-1.db", "stopped", "h1", ["h1"]),
    entry("p.a-2.web", "duplicate", "h2", ["h2", "h1"]),
    entry("p.b-1.lb", "host-down", "h3"),
    entry("p.old-1.web", "orphan", None, ["h2"]),
]}


def test_every_verdict_has_a_group_of_the_hosts_with_such_a_container():
    groups, _per_host = _inventory.status_groups(RESULT, ["h3", "h1", "h2", "h4"])
    assert groups == {"stackfleet_status_host_down": ["h3"], "stackfleet_status_missing": [], "stackfleet_status_duplicate": ["h2"],
                      "stackfleet_status_drifted": [], "stackfleet_status_stopped": ["h1"], "stackfleet_status_unhealthy": [],
                      "stackfleet_status_orphan": ["h2"], "stackfleet_status_ok": ["h1"]}


def test_each_host_gets_only_its_own_containers():
    _groups, per_host = _inventory.status_groups(RESULT, ["h1", "h2", "h3", "h4"])
    assert per_host == {"h1": {"ok": ["p.a-1.web"], "stopped": ["p.a-1.db"]},
                        "h2": {"duplicate": ["p.a-2.web"], "orphan": ["p.old-1.web"]},
                        "h3": {"host-down": ["p.b-1.lb"]}, "h4": {}}
    assert set(_status.VERDICTS) == {g[len("stackfleet_status_"):].replace("_", "-") for g in _inventory.status_groups(RESULT, [])[0]}

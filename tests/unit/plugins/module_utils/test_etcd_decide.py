"""The etcd role's decision, every mode and every host action (pure, no etcd)."""

from __future__ import annotations

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _etcd, _etcd_decide
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd_decide import DecisionError, decide

TOKEN = "stackfleet-0123abcd"
RECORD = {"token": TOKEN, "state": "new", "initial_cluster": "h1=https://10.0.0.11:2380", "bootstrapped": True}


def peer(i):
    return "https://10.0.0.1%d:2380" % i


def member(i, started=True, healthy=True, learner=False, url=None):
    return {"id": i, "name": "h%d" % i if started else "", "peer_urls": [url or peer(i)], "started": started,
            "healthy": healthy, "learner": learner}


_DEFAULT_RECORD = object()


def host(i, data=True, record=_DEFAULT_RECORD, url=None):
    record = dict(RECORD) if record is _DEFAULT_RECORD else record
    return {"host": "h%d" % i, "name": "h%d" % i, "peer_url": url or peer(i), "data": data, "record": record}


THREE = [host(1), host(2), host(3)]


def test_bootstrap_when_there_is_nothing():
    d = decide([], [host(1, data=False, record=None), host(2, data=False, record=None)])
    assert d["mode"] == "bootstrap" and d["token"] == "" and not d["has_quorum"]
    assert d["summary"] == "mode bootstrap; 0 member(s) answering"


def test_members_mode_keeps_a_healthy_cluster():
    d = decide([member(1), member(2), member(3)], THREE)
    assert d["mode"] == "members" and d["has_quorum"] and d["token"] == TOKEN
    assert d["actions"] == {"h1": "keep", "h2": "keep", "h3": "keep"}
    assert d["keeping"] == ["h1", "h2", "h3"] and d["joining"] == d["repairing"] == d["retiring"] == []
    assert d["removal_limit"] == 1 and d["removals_refused"] == ""


def test_restart_when_no_quorum_but_records_name_a_token():
    d = decide([member(1, healthy=False), member(2, healthy=False), member(3)], THREE)
    assert d["mode"] == "restart" and d["token"] == TOKEN
    d = decide([], THREE)  # nothing answers at all: the records say there was a cluster
    assert d["mode"] == "restart"


def test_rebootstrap_when_records_without_token_or_unhealthy_members():
    unbootstrapped = dict(RECORD, bootstrapped=False)
    d = decide([], [host(1, record=unbootstrapped), host(2, data=False, record=None)])
    assert d["mode"] == "rebootstrap"
    d = decide([member(1, healthy=False)], [host(1, data=False, record=None)])
    assert d["mode"] == "rebootstrap"


def test_foreign_data_is_refused():
    with pytest.raises(DecisionError, match="h2 hold etcd data without a stackfleet bootstrap record"):
        decide([], [host(1, data=False, record=None), host(2, data=True, record=None)])


def test_tokens_that_disagree_are_refused():
    with pytest.raises(DecisionError, match="different cluster tokens"):
        decide([], [host(1), host(2, record=dict(RECORD, token="other"))])


def test_join_a_new_host_and_unstarted_members_first():
    members = [member(1), member(2), member(3), member(5, started=False, healthy=False, learner=True)]
    hosts = THREE + [host(4, data=False, record=None), host(5, data=False, record=None)]
    d = decide(members, hosts)
    assert d["mode"] == "members"
    assert d["actions"]["h4"] == d["actions"]["h5"] == "join"
    assert d["joining"] == ["h5", "h4"]  # h5 exists (never started): it goes first


def test_repair_a_member_whose_data_is_gone_or_that_is_named():
    d = decide([member(1), member(2), member(3)], [host(1), host(2, data=False), host(3)], repair_hosts=["h3"])
    assert d["actions"] == {"h1": "keep", "h2": "repair", "h3": "repair"} and d["repairing"] == ["h2", "h3"]
    assert d["keeping"] == ["h1"]


def test_retire_members_that_left_the_group_within_the_fault_tolerance():
    members = [member(i) for i in range(1, 6)]
    d = decide(members, THREE)
    assert [m["name"] for m in d["retiring"]] == ["h4", "h5"] and d["removal_limit"] == 2
    assert d["removals_refused"] == ""
    d = decide(members, [host(1), host(2)])
    assert "refusing to remove 3 members (h3, h4, h5) of 5" in d["removals_refused"]
    assert decide(members, [host(1), host(2)], max_removals=3)["removals_refused"] == ""
    assert "remove ['h3', 'h4', 'h5']" in d["summary"]


def test_a_differently_spelled_peer_url_of_a_live_member_keeps_it():
    """0.1 compared verbatim: HTTPS://10.0.0.12:2380/ did not match the member etcd lists as
    https://10.0.0.12:2380, so h2 was sent down the join path, which wipes its data directory."""
    spelled = "HTTPS://10.0.0.12:2380/"
    d = decide([member(1), member(2), member(3)], [host(1), host(2, url=spelled), host(3)])
    assert d["actions"]["h2"] == "keep"
    assert d["joining"] == [] and d["repairing"] == [] and d["retiring"] == []
    # and the other way round: etcd holds the odd spelling, the inventory the plain one
    d = decide([member(1), member(2, url="https://10.0.0.12:2380/"), member(3)], THREE)
    assert d["actions"]["h2"] == "keep" and d["retiring"] == []


def test_the_same_rule_as_etcd_member():
    assert _etcd.normalise_url is _etcd_decide.normalise_url
    assert _etcd_decide.normalise_url("HTTPS://Node-1:2380/") == "https://node-1:2380"


def test_learners_do_not_count_for_quorum():
    members = [member(1), member(2, healthy=False), member(3, healthy=False), member(4, learner=True)]
    assert not _etcd_decide.has_quorum(members)
    assert _etcd_decide.has_quorum([member(1), member(2), member(3, healthy=False), member(4, learner=True, healthy=False)])
    assert not _etcd_decide.has_quorum([])


def test_malformed_host_entries_are_errors():
    with pytest.raises(DecisionError, match="peer_url"):
        decide([], [{"host": "h1"}])
    with pytest.raises(DecisionError, match="mapping"):
        decide([], [dict(host(1), record="garbage")])


# The steady-state fast path's first half: only a cluster exactly as declared is steady.

def with_client(i, **kw):
    return dict(member(i, **kw), client_urls=["https://10.0.0.1%d:2379" % i])


def host_client(i, **kw):
    return dict(host(i, **kw), client_url="https://10.0.0.1%d:2379" % i)


def test_a_cluster_as_declared_is_steady():
    d = decide([with_client(i) for i in (1, 2, 3)], [host_client(i) for i in (1, 2, 3)])
    assert d["steady"] and d["unsteady"] == "" and d["summary"].endswith("; steady")
    # without a declared client URL, only the rest is compared (etcd_plan's client_url is optional)
    assert decide([member(1), member(2), member(3)], THREE)["steady"]


@pytest.mark.parametrize("members, hosts, why", [
    ([], THREE, "mode restart"),
    ([member(1), member(2)], THREE, "join ['h3']"),
    ([member(1), member(2), member(3), member(4)], THREE, "members to remove: h4"),
    ([member(1), member(2), member(3, healthy=False)], THREE, "member h3 (h3) is not a started, healthy voting member"),
    ([member(1), member(2), member(3, learner=True)], THREE, "member h3 (h3) is not a started, healthy voting member"),
    ([member(1), member(2), member(3)], [host(1), host(2), host(3, data=False)], "repair ['h3']"),
    ([member(1), member(2), dict(member(3), name="old")], THREE, "member h3 (h3) runs under the name 'old'"),
    ([member(1), member(2), member(3)], [host(1), host(2), host(3, record=None)], "bootstrap record is missing"),
    ([member(1), member(2), member(3)], [host(1), host(2), host(3, record=dict(RECORD, initial_cluster=""))],
     "bootstrap record is missing or incomplete"),
    ([member(1), member(2), member(3)], [host(1), host(2), host(3, record=dict(RECORD, bootstrapped=False))],
     "bootstrap record is missing or incomplete"),
])
def test_anything_not_as_declared_is_not_steady(members, hosts, why):
    d = decide(members, hosts)
    assert not d["steady"] and why in d["unsteady"], d["unsteady"]


def test_a_changed_client_url_is_not_steady():
    hosts = [host_client(1), host_client(2), dict(host(3), client_url="https://node-3:2379")]
    d = decide([with_client(i) for i in (1, 2, 3)], hosts)
    assert not d["steady"] and "advertises client URLs ['https://10.0.0.13:2379'], not https://node-3:2379" in d["unsteady"]
    # spelled differently, the same URL is steady
    hosts[2]["client_url"] = "HTTPS://10.0.0.13:2379/"
    assert decide([with_client(i) for i in (1, 2, 3)], hosts)["steady"]


def test_repair_hosts_are_not_steady():
    d = decide([member(1), member(2), member(3)], THREE, repair_hosts=["h2"])
    assert not d["steady"] and "repair ['h2']" in d["unsteady"]

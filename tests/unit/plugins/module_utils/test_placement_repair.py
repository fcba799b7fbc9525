"""Unit tests for moves (contract 2 of issue 9), repair, drain and rebalance."""

from __future__ import annotations

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _desired, _spec
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import Host
from ansible_collections.stackfleet.cluster.plugins.module_utils._placement import MOVE_REASONS, PlacementError, plan
from test_placement_check import check_plan, deploy, host, label_is, spec, svc


def errors_of(sp, hosts, previous=None, **kw):
    with pytest.raises(PlacementError) as info:
        plan(sp, hosts, previous, **kw)
    return info.value.errors


def drained(h):
    return Host(h.name, h.labels, h.capacity, h.facts, h.address, drain=True)


def moves_of(p):
    return [(m.key, m.source, m.target, m.reason) for m in p.moves]


# --- the example: a kept lb-1 blocks blog on the only free ssd host ---------------------


def blog_case():
    hosts = [host("node-1", disk="ssd"), host("node-2"), host("node-3", disk="ssd")]
    services = [svc("lamp", ports=[8080]), svc("lb", ports=[80]), svc("blog", ports=[8080])]
    before = spec(services, [deploy("lamp", count=1, **label_is("disk", "ssd")), deploy("lb", count=1)])
    after = spec(services, [deploy("lamp", count=1, **label_is("disk", "ssd")), deploy("lb", count=1),
                            deploy("blog", count=1, conflicts=("lb",), **label_is("disk", "ssd"))])
    previous = {"lamp-1": "node-1", "lb-1": "node-3"}
    return hosts, before, after, previous


def test_kept_instance_blocking_a_new_one_is_moved_and_nothing_else():
    hosts, _before, after, previous = blog_case()
    p = plan(after, hosts, previous)
    assert p.assignments == {"lamp-1": "node-1", "lb-1": "node-2", "blog-1": "node-3"}
    assert moves_of(p) == [("lb-1", "node-3", "node-2", "repair")]
    assert p.moves[0].why == "lb-1 moved from node-3 to node-2 to make room for blog-1 on node-3 (blog conflicts with lb)."
    assert p.moved == ["lb-1"] and p.added == ["blog-1"]
    assert check_plan(after, hosts, p) == []
    assert p.summary().endswith("; moves: lb-1 node-3 -> node-2 (repair)")


def test_without_repair_the_error_names_the_port_holder_and_the_conflict():
    hosts, _before, after, previous = blog_case()
    assert errors_of(after, hosts, previous, repair=False) == [
        "deploy.blog: ports: instance blog-1 needs 8080/tcp; the 1 host open to it has one taken: 8080/tcp on node-1 by lamp (lamp-1); "
        "1 more eligible run instances blog conflicts with: node-3 (lb-1); fix: publish blog's 8080/tcp as \"auto:8080\" "
        "(each instance gets a free host port of host_port_range), give it another host port, or add hosts"]


def test_a_conflict_on_the_only_eligible_host_is_reported_as_a_conflict():
    hosts = [host("node-1"), host("node-3", disk="ssd")]
    sp = spec([svc("lb"), svc("blog")], [deploy("lb", count=1, host="node-3"),
                                         deploy("blog", count=1, conflicts=("lb",), **label_is("disk", "ssd"))])
    errors = errors_of(sp, hosts)
    assert errors == ["deploy.blog: conflicts: the 1 eligible host (node-3) runs lb-1, which blog conflicts with"]


def test_repair_that_cannot_help_says_so_after_the_rule():
    hosts = [host("node-1", disk="ssd")]
    sp = spec([svc("lb"), svc("blog")], [deploy("lb", count=1), deploy("blog", count=1, conflicts=("lb",), **label_is("disk", "ssd"))])
    errors = errors_of(sp, hosts, {"lb-1": "node-1"})
    assert errors[0] == "deploy.blog: conflicts: the 1 eligible host (node-1) runs lb-1, which blog conflicts with"
    assert errors[1].startswith("deploy.blog: repair: moving kept instances found no plan either (")


def test_repair_moves_one_of_two_blockers_when_one_is_enough():
    # web needs 2 cpus and no host has 2 free; moving one kept worker frees them (9 of 9 cpus used).
    hosts = [host("node-1", cpus=2), host("node-2", cpus=2), host("node-3", cpus=5)]
    services = [svc("worker", cpus=1), svc("web", cpus=2), svc("big", cpus=3)]
    sp = spec(services, [deploy("worker", count=4), deploy("big", count=1, host="node-3"), deploy("web", count=1)])
    previous = {"worker-1": "node-1", "worker-2": "node-1", "worker-3": "node-2", "worker-4": "node-3"}
    p = plan(sp, hosts, previous)
    repairs = [m for m in p.moves if m.reason == "repair"]
    assert len(p.moves) == len(repairs) == 1
    assert check_plan(sp, hosts, p) == []
    assert "to free cpus and memory on" in repairs[0].why and "for web-1" in repairs[0].why


def test_repair_chains_when_the_moved_instance_needs_room_too():
    # blog fits only node-3 (ssd), where lb-1 is kept; lb can go to neither node-1 (web holds port 80)
    # nor node-2 (cache-1, which lb conflicts with) until cache-1 moves too: two moves, not more.
    hosts = [host("node-1"), host("node-2"), host("node-3", disk="ssd")]
    services = [svc("web", ports=[80]), svc("lb", ports=[80]), svc("blog"), svc("cache")]
    sp = spec(services, [deploy("web", count=1, host="node-1"), deploy("cache", count=1),
                         deploy("lb", count=1, conflicts=("cache",)),
                         deploy("blog", count=1, conflicts=("lb",), **label_is("disk", "ssd"))])
    previous = {"web-1": "node-1", "lb-1": "node-3", "cache-1": "node-2"}
    p = plan(sp, hosts, previous)
    assert check_plan(sp, hosts, p) == []
    assert moves_of(p) == [("cache-1", "node-2", "node-1", "repair"), ("lb-1", "node-3", "node-2", "repair")]
    assert "for lb-1" in p.moves[0].why and "for blog-1" in p.moves[1].why


def test_repair_is_deterministic():
    hosts, _before, after, previous = blog_case()
    first = plan(after, hosts, previous)
    second = plan(after, list(reversed(hosts)), dict(reversed(list(previous.items()))))
    assert first.assignments == second.assignments and first.moves == second.moves


# --- reasons ------------------------------------------------------------------------------------


def test_move_reasons_host_missing_and_ineligible():
    sp = spec([svc("a"), svc("b")], [deploy("a", count=2), deploy("b", count=1, **label_is("disk", "ssd"))])
    hosts = [host("node-1", disk="ssd"), host("node-2", disk="ssd"), host("node-3")]
    p = plan(sp, hosts, {"a-1": "node-9", "a-2": "node-1", "b-1": "node-3"})
    assert moves_of(p) == [("a-1", "node-9", p.assignments["a-1"], "host-missing"),
                           ("b-1", "node-3", p.assignments["b-1"], "ineligible")]
    assert p.moves[0].why.endswith("because node-9 is not among the given hosts (down or removed).")
    assert p.moves[1].why.endswith("because node-3 no longer matches the constraint \"labels.disk == 'ssd'\".")
    assert p.moves[0].as_dict() == {"key": "a-1", "from": "node-9", "to": p.assignments["a-1"], "reason": "host-missing",
                                    "why": p.moves[0].why}
    assert set(MOVE_REASONS) == {"host-missing", "drained", "ineligible", "repair", "rebalance"}


def test_lowered_max_per_host_moves_the_excess_as_ineligible():
    sp = spec([svc("w")], [deploy("w", count=3, max_per_host=2)])
    p = plan(sp, [host("node-1"), host("node-2")], {"w-1": "node-1", "w-2": "node-1", "w-3": "node-1"})
    assert moves_of(p) == [("w-3", "node-1", "node-2", "ineligible")]
    assert "max_per_host 2" in p.moves[0].why


# --- drain --------------------------------------------------------------------------------------


def test_drained_host_gets_nothing_and_its_instances_move():
    sp = spec([svc("a"), svc("agent")], [deploy("a", count=2), deploy("agent", is_global=True)])
    hosts = [host("node-1"), host("node-2"), host("node-3")]
    before = plan(sp, hosts)
    on_3 = sorted(k for k, h in before.assignments.items() if h == "node-3" and k.startswith("a-"))
    hosts[2] = drained(hosts[2])
    after = plan(sp, hosts, before.assignments)
    assert "node-3" not in after.assignments.values()
    assert [m.key for m in after.moves] == on_3 and all(m.reason == "drained" for m in after.moves)
    assert after.removed == ["agent-node-3"]
    assert all(m.why.endswith("because node-3 is drained.") for m in after.moves)
    containers = _desired.render(sp, after.assignments, hosts)
    assert containers["node-3"] == []  # present, so converge empties it


def test_drain_in_host_documents_is_validated():
    hosts = _spec.load_hosts([{"name": "a", "drain": True}, {"name": "b", "drain": False}, {"name": "c"}])
    assert [h.drain for h in hosts] == [True, False, False]
    with pytest.raises(_spec.SpecError) as info:
        _spec.load_hosts([{"name": "a", "drain": "maybe"}])
    assert "drain" in str(info.value) and "true or false" in str(info.value)


def test_pinned_to_a_drained_host_and_everything_drained_are_errors():
    sp = spec([svc("db")], [deploy("db", count=1, host="node-1")])
    assert errors_of(sp, [drained(host("node-1")), host("node-2")]) == ["deploy.db: host: pinned host 'node-1' is drained"]
    sp = spec([svc("db")], [deploy("db", count=1)])
    assert errors_of(sp, [drained(host("node-1"))]) == ["deploy.db: count: needs 1 instances, all 1 hosts are drained"]


# --- rebalance ----------------------------------------------------------------------------------


def test_adding_hosts_moves_nothing_unless_rebalance_is_asked():
    sp = spec([svc("w", cpus=1)], [deploy("w", count=6)])
    small = [host("node-%d" % i, cpus=4) for i in (1, 2)]
    before = plan(sp, small)
    grown = small + [host("node-3", cpus=4), host("node-4", cpus=4)]
    assert plan(sp, grown, before.assignments).moves == []
    p = plan(sp, grown, before.assignments, rebalance={"max_moves": 2})
    assert len(p.moves) == 2 and {m.reason for m in p.moves} == {"rebalance"}
    assert {m.target for m in p.moves} == {"node-3", "node-4"}
    assert check_plan(sp, grown, p) == []
    full = plan(sp, grown, before.assignments, rebalance={"max_moves": 10})
    assert len(full.moves) <= 10
    assert sorted(collect(full).values()) == [1, 1, 2, 2]  # as even as whole units allow
    assert "to spread load (rebalance: " in full.moves[0].why


def collect(p):
    out = {}
    for h in p.assignments.values():
        out[h] = out.get(h, 0) + 1
    return out


def test_rebalance_keeps_spread_over_a_label_and_every_rule():
    sp = spec([svc("w", cpus=1, ports=[80])], [deploy("w", count=4, spread="rack")])
    hosts = [host("n1", cpus=4, rack="r1"), host("n2", cpus=4, rack="r1"), host("n3", cpus=4, rack="r2"), host("n4", cpus=4, rack="r2")]
    before = plan(sp, hosts)
    grown = hosts + [host("n5", cpus=4, rack="r3")]
    p = plan(sp, grown, before.assignments, rebalance={"max_moves": 3})
    assert len(p.moves) <= 3
    assert check_plan(sp, grown, p, check_spread=False) == []


def test_binpack_rebalance_empties_the_least_used_host():
    sp = spec([svc("w", cpus=1)], [deploy("w", count=4)], strategy="binpack")
    hosts = [host("node-%d" % i, cpus=4) for i in (1, 2, 3)]
    previous = {"w-1": "node-1", "w-2": "node-1", "w-3": "node-2", "w-4": "node-3"}
    p = plan(sp, hosts, previous, rebalance={"max_moves": 1})
    assert len(p.moves) == 1 and p.moves[0].reason == "rebalance"
    assert len(set(p.assignments.values())) == 2
    assert "to empty" in p.moves[0].why
    assert plan(sp, hosts, previous, rebalance={"max_moves": 0}).moves == []


def test_repair_finds_a_plan_the_engine_misses_from_scratch():
    """The lab case (tests/integration/test_placement_repair.py): from scratch lamp takes both ssd
    hosts before blog is placed and the plan fails; keeping lamp where it is and moving lb-1 fits."""
    hosts = [host("h1", disk="ssd"), host("h2", disk="ssd"), host("h3", disk="hdd")]
    services = [svc("lamp", ports=[8080, 3306]), svc("lb", ports=[80]), svc("blog", ports=[8080]), svc("agent")]
    sp = spec(services, [deploy("lamp", count=2, max_per_host=1), deploy("lb", count=1, conflicts=("lb",)),
                         deploy("agent", is_global=True),
                         deploy("blog", count=1, conflicts=("lb",), **label_is("disk", "ssd"))])
    with pytest.raises(PlacementError):
        plan(sp, hosts)
    previous = {"lamp-1": "h1", "lamp-2": "h3", "lb-1": "h2", "agent-h1": "h1", "agent-h2": "h2", "agent-h3": "h3"}
    p = plan(sp, hosts, previous)
    assert moves_of(p) == [("lb-1", "h2", p.assignments["lb-1"], "repair")] and p.assignments["blog-1"] == "h2"
    assert check_plan(sp, hosts, p) == []

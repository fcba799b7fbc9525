"""Property tests: for random specs and hosts every plan obeys every rule, is deterministic and stable."""

from __future__ import annotations

import dataclasses
import os
import random

from ansible_collections.stackfleet.cluster.plugins.module_utils._model import Host, Spec
from ansible_collections.stackfleet.cluster.plugins.module_utils._placement import MOVE_REASONS, PlacementError, plan
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_placement_check import check_plan, deploy, host, label_is, svc

# PLACEMENT_EXAMPLES=2000 for a longer soak than the suite can afford on every run.
SETTINGS = settings(max_examples=int(os.environ.get("PLACEMENT_EXAMPLES", "150")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

SERVICE_NAMES = ("s0", "s1", "s2", "s3", "s4")


@st.composite
def hosts_strategy(draw, min_size=2, max_size=10):
    n = draw(st.integers(min_size, max_size))
    names = draw(st.permutations(["h%02d" % i for i in range(n)]))  # input order must not matter
    out = []
    for name in names:
        labels = {}
        rack = draw(st.sampled_from(["r1", "r2", "r3", None]))
        if rack:
            labels["rack"] = rack
        if draw(st.booleans()):
            labels["disk"] = "ssd"
        if draw(st.integers(0, 4)) == 0:
            out.append(host(name, **labels))
        else:
            out.append(host(name, cpus=draw(st.sampled_from([2, 4, 8])), memory_mb=draw(st.sampled_from([2048, 4096, 8192])), **labels))
    return out


@st.composite
def spec_strategy(draw):
    services = [svc(name, cpus=draw(st.sampled_from([0, 0.25, 0.5, 1.0])), memory_mb=draw(st.sampled_from([0, 128, 512, 1024])),
                    ports=draw(st.sampled_from([()] * 9 + [(80,), ((53, "udp"),)])))
                for name in SERVICE_NAMES]
    deploys = []
    for n in range(draw(st.integers(1, 4))):
        key = "d%d" % n
        if draw(st.booleans()):
            members = (draw(st.sampled_from(SERVICE_NAMES)),)
        else:
            members = tuple(draw(st.lists(st.sampled_from(SERVICE_NAMES), min_size=2, max_size=2, unique=True)))
        kw = {}
        if draw(st.integers(0, 6)) == 0:
            kw["is_global"] = True
        else:
            kw["count"] = draw(st.integers(0, 6))
            kw["spread"] = draw(st.sampled_from([None, "rack"]))
            kw["max_per_host"] = draw(st.sampled_from([None, None, 1, 2, 3]))
            if draw(st.integers(0, 9)) == 0:
                kw["host"] = "h00"
        if draw(st.integers(0, 3)) == 0:
            kw.update(label_is("disk", "ssd"))
        earlier = ["d%d" % i for i in range(n)]
        if draw(st.integers(0, 2)) == 0:
            kw["conflicts"] = (draw(st.sampled_from(earlier + [key])),)
        if earlier and draw(st.integers(0, 5)) == 0:
            target = draw(st.sampled_from(earlier))
            if target not in kw.get("conflicts", ()):
                kw["affinity"] = (target,)
        deploys.append(deploy(key, members, colocate=draw(st.booleans()), **kw))
    strategy = draw(st.sampled_from(["spread", "binpack"]))
    return Spec("test", strategy, {s.name: s for s in services}, {}, {d.key: d for d in deploys})


def _plan_or_none(sp, hosts, previous=None, **kw):
    try:
        return plan(sp, hosts, previous, **kw)
    except PlacementError as exc:
        assert exc.errors and all(e.startswith(("deploy.", "hosts:")) for e in exc.errors), exc.errors
        return None


@SETTINGS
@given(spec_strategy(), hosts_strategy())
def test_every_plan_satisfies_every_rule(sp, hosts):
    p = _plan_or_none(sp, hosts)
    assume(p is not None)
    assert check_plan(sp, hosts, p) == []
    assert set(p.added) == set(p.assignments) and p.moved == p.removed == []


@SETTINGS
@given(spec_strategy(), hosts_strategy(), st.randoms(use_true_random=False))
def test_deterministic_whatever_the_host_order(sp, hosts, rnd):
    first = _plan_or_none(sp, hosts)
    shuffled = list(hosts)
    rnd.shuffle(shuffled)
    second = _plan_or_none(sp, shuffled)
    assert (first is None) == (second is None)
    if first is not None:
        assert list(first.assignments.items()) == list(second.assignments.items())


@SETTINGS
@given(spec_strategy(), hosts_strategy(min_size=2), st.randoms(use_true_random=False))
def test_losing_hosts_moves_their_units_and_others_only_to_repair(sp, hosts, rnd):
    before = _plan_or_none(sp, hosts)
    assume(before is not None)
    lost = {h.name for h in rnd.sample(hosts, rnd.randint(1, len(hosts) - 1))}
    remaining = [h for h in hosts if h.name not in lost]
    after = _plan_or_none(sp, remaining, before.assignments)
    assume(after is not None)
    assert check_plan(sp, remaining, after, check_spread=False) == []
    on_lost = {k for k, h in before.assignments.items() if h in lost and k in after.assignments}
    reasons = {m.key: m.reason for m in after.moves}
    assert [m.key for m in after.moves] == after.moved
    assert {k for k, r in reasons.items() if r == "host-missing"} == on_lost
    assert set(reasons.values()) <= {"host-missing", "repair"}
    if "repair" in reasons.values():  # others moved only because keeping them left no plan
        assert _plan_or_none(sp, remaining, before.assignments, repair=False) is None
    else:
        assert set(after.moved) == on_lost
    for key, host_name in before.assignments.items():
        if host_name not in lost and reasons.get(key) != "repair":
            assert after.assignments[key] == host_name
    assert set(after.removed) == {k for k in before.assignments if k not in after.assignments}


@SETTINGS
@given(spec_strategy(), hosts_strategy(max_size=8))
def test_adding_a_host_moves_nothing(sp, hosts):
    before = _plan_or_none(sp, hosts)
    assume(before is not None)
    grown = hosts + [host("h99", rack="r9", disk="ssd")]
    after = _plan_or_none(sp, grown, before.assignments)
    assume(after is not None)
    assert check_plan(sp, grown, after, check_spread=False) == []
    if after.moves:  # only when the new host's global instances cannot run next to what stays (affinity)
        assert {m.reason for m in after.moves} == {"repair"}
        assert _plan_or_none(sp, grown, before.assignments, repair=False) is None
        return
    assert after.moved == [] and after.removed == []
    assert all(after.assignments[k] == h for k, h in before.assignments.items())
    assert all(after.assignments[k] == "h99" for k in after.added)


@SETTINGS
@given(spec_strategy(), hosts_strategy(), st.data())
def test_scale_down_removes_the_highest_indices_and_moves_nothing(sp, hosts, data):
    before = _plan_or_none(sp, hosts)
    assume(before is not None)
    needed = {a for d in sp.deploys.values() for a in d.affinity}  # shrinking those may strand their followers
    counted = [d for d in sp.deploys.values() if not d.is_global and d.count > 0 and d.key not in needed]
    assume(counted)
    d = data.draw(st.sampled_from(counted))
    new_count = data.draw(st.integers(0, d.count - 1))
    smaller = dataclasses.replace(sp, deploys={**sp.deploys, d.key: dataclasses.replace(d, count=new_count)})
    after = plan(smaller, hosts, before.assignments)  # fewer units never make a feasible plan infeasible
    gone = {k for k, u in before.units.items() if u.deploy == d.key and u.index > new_count}
    assert set(after.removed) == gone and after.moved == [] and after.added == []
    assert after.assignments == {k: h for k, h in before.assignments.items() if k not in gone}


@SETTINGS
@given(spec_strategy(), hosts_strategy())
def test_replanning_an_unchanged_cluster_changes_nothing(sp, hosts):
    before = _plan_or_none(sp, hosts)
    assume(before is not None)
    after = plan(sp, hosts, before.assignments)
    assert after.assignments == before.assignments
    assert (after.moved, after.added, after.removed, after.moves) == ([], [], [], [])


# --- moves, repair, drain, rebalance (issue 9) ------------------------------------------------


@SETTINGS
@given(spec_strategy(), hosts_strategy(), st.randoms(use_true_random=False))
def test_with_any_previous_placement_a_plan_exists_when_a_fresh_one_does(sp, hosts, rnd):
    """Repair: a kept unit never makes planning fail where a plan without `previous` fits; it moves
    kept units only when keeping them all leaves no plan, and only units that were valid where they were."""
    fresh = _plan_or_none(sp, hosts)
    assume(fresh is not None)
    given_names = [h.name for h in hosts]
    previous = {k: rnd.choice(given_names + ["gone"]) for k in fresh.assignments if rnd.random() < 0.8}
    p = plan(sp, hosts, previous)  # must not raise
    assert check_plan(sp, hosts, p, check_spread=False) == []
    assert [m.key for m in p.moves] == p.moved
    assert all(m.reason in MOVE_REASONS and m.reason != "rebalance" and m.why.endswith(".") for m in p.moves)
    assert all((m.reason == "host-missing") == (m.source == "gone") for m in p.moves)
    strict = _plan_or_none(sp, hosts, previous, repair=False)
    repairs = [m for m in p.moves if m.reason == "repair"]
    if strict is not None:  # keeping every kept unit works: nothing moves for repair
        assert strict.assignments == p.assignments and strict.moves == p.moves and not repairs
    assert len(repairs) <= sum(1 for h in previous.values() if h != "gone")


# Cases with more than one repair move are rare, so most generated cases are discarded: a fifth of
# the budget keeps this property at the cost of the others (PLACEMENT_EXAMPLES raises it too).
@settings(SETTINGS, max_examples=max(20, SETTINGS.max_examples // 5))
@given(spec_strategy(), hosts_strategy(), st.randoms(use_true_random=False))
def test_repair_moves_one_instance_when_moving_one_is_enough(sp, hosts, rnd):
    """Whenever some single kept unit, placed afresh elsewhere, makes the plan fit with every other
    unit kept, the repair moves one unit only."""
    fresh = _plan_or_none(sp, hosts)
    assume(fresh is not None)
    names = [h.name for h in hosts]
    previous = {k: rnd.choice(names) for k in fresh.assignments if rnd.random() < 0.8}
    p = plan(sp, hosts, previous)
    repairs = [m for m in p.moves if m.reason == "repair"]
    assume(len(repairs) > 1)
    for key in previous:
        if key in p.assignments:
            one = _plan_or_none(sp, hosts, dict(previous, **{key: "gone"}), repair=False)
            assert one is None or one.assignments[key] == previous[key], (key, [m.why for m in repairs])


@SETTINGS
@given(spec_strategy(), hosts_strategy(min_size=2), st.randoms(use_true_random=False))
def test_drained_hosts_get_nothing_and_only_lose_their_units(sp, hosts, rnd):
    before = _plan_or_none(sp, hosts)
    assume(before is not None)
    drain = {h.name for h in rnd.sample(hosts, rnd.randint(1, len(hosts) - 1))}
    marked = [Host(h.name, h.labels, h.capacity, drain=h.name in drain) for h in hosts]
    after = _plan_or_none(sp, marked, before.assignments)
    assume(after is not None)
    assert not drain & set(after.assignments.values())
    assert check_plan(sp, [h for h in hosts if h.name not in drain], after, check_spread=False) == []
    for m in after.moves:
        if m.source in drain:
            assert m.reason == "drained"
        elif m.reason == "ineligible":  # its affinity target moved away (drained or repaired)
            assert sp.deploys[after.units[m.key].deploy].affinity, m.why
        else:
            assert m.reason == "repair", m.why
    assert {m.key for m in after.moves if m.reason == "drained"} == {
        k for k, h in before.assignments.items() if h in drain and k in after.assignments}


@SETTINGS
@given(spec_strategy(), hosts_strategy(max_size=8), st.integers(0, 4), st.randoms(use_true_random=False))
def test_rebalance_moves_at_most_max_moves_kept_units_and_keeps_every_rule(sp, hosts, max_moves, rnd):
    before = _plan_or_none(sp, hosts)
    assume(before is not None)
    grown = hosts + [host("h98", rack="r1", disk="ssd"), host("h99", cpus=8, memory_mb=8192, rack="r3")]
    after = _plan_or_none(sp, grown, before.assignments, rebalance={"max_moves": max_moves})
    assume(after is not None)
    rebalanced = [m for m in after.moves if m.reason == "rebalance"]
    assert len(rebalanced) <= max_moves and {m.reason for m in after.moves} <= {"rebalance", "repair"}
    if len(rebalanced) < len(after.moves):  # repair: a new host's global instance needs a unit there (affinity)
        assert _plan_or_none(sp, grown, before.assignments, repair=False) is None
    assert check_plan(sp, grown, after, check_spread=False) == []
    assert set(after.added) == {k for k in after.assignments if k not in before.assignments}
    shuffled = list(grown)
    rnd.shuffle(shuffled)
    again = plan(sp, shuffled, dict(reversed(list(before.assignments.items()))), rebalance={"max_moves": max_moves})
    assert list(again.assignments.items()) == list(after.assignments.items()) and again.moves == after.moves


@SETTINGS
@given(spec_strategy(), hosts_strategy(), st.randoms(use_true_random=False))
def test_repair_is_deterministic_whatever_the_order(sp, hosts, rnd):
    fresh = _plan_or_none(sp, hosts)
    assume(fresh is not None)
    names = [h.name for h in hosts]
    previous = {k: rnd.choice(names) for k in fresh.assignments}
    first = plan(sp, hosts, previous)
    shuffled = list(hosts)
    rnd.shuffle(shuffled)
    items = list(previous.items())
    rnd.shuffle(items)
    second = plan(sp, shuffled, dict(items))
    assert list(first.assignments.items()) == list(second.assignments.items()) and first.moves == second.moves


def test_random_large_cluster_plans_are_valid():
    """A few bigger random clusters than hypothesis draws, to exercise the heaps and spread groups."""
    rnd = random.Random(7)
    for _cluster in range(5):
        hosts = [host("n%03d" % i, cpus=rnd.choice([2, 4, 8]), memory_mb=rnd.choice([4096, 8192]), rack="r%d" % (i % 7),
                      **({"disk": "ssd"} if rnd.random() < 0.4 else {})) for i in range(120)]
        sp = Spec("t", rnd.choice(["spread", "binpack"]),
                  {s.name: s for s in [svc("db", 1, 1024), svc("web", 0.5, 256), svc("lb", 0.25, 64, ports=[80]), svc("agent", 0.1, 32)]},
                  {"app": ("db", "web")},
                  {"app": deploy("app", ("db", "web"), count=150, spread="rack", max_per_host=3),
                   "ssd-app": deploy("ssd-app", ("db", "web"), colocate=False, count=40, spread="rack", **label_is("disk", "ssd")),
                   "lb": deploy("lb", count=30, conflicts=("lb",)),
                   "agent": deploy("agent", is_global=True)})
        p = plan(sp, hosts)
        assert check_plan(sp, hosts, p) == []

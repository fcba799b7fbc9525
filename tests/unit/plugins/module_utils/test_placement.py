"""Unit tests for the placement engine: one rule or message per test."""

from __future__ import annotations

import collections
import os
import subprocess
import sys

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _spec
from ansible_collections.stackfleet.cluster.plugins.module_utils._placement import PlacementError, plan
from test_placement_check import check_plan, deploy, host, label_is, spec, svc


def hosts_n(n, **kw):
    return [host("node-%d" % i, **kw) for i in range(1, n + 1)]


def errors_of(sp, hosts, previous=None):
    with pytest.raises(PlacementError) as info:
        plan(sp, hosts, previous)
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def per_host(p, deploy_key=None):
    return collections.Counter(u.host for u in p.units.values() if deploy_key in (None, u.deploy))


# --- keys and counts ---------------------------------------------------------------------------


def test_keys_for_stacks_lone_services_split_stacks_and_globals():
    sp = spec([svc("mysql"), svc("web"), svc("lb"), svc("agent")], [
        deploy("lamp", ("mysql", "web"), count=2), deploy("split", ("mysql", "web"), colocate=False, count=1),
        deploy("lb", count=1), deploy("agent", is_global=True)])
    hosts = hosts_n(2)
    p = plan(sp, hosts)
    assert list(p.assignments) == ["lamp-1", "lamp-2", "split-1.mysql", "split-1.web", "lb-1", "agent-node-1", "agent-node-2"]
    assert p.units["lamp-2"].services == ("mysql", "web") and p.units["lamp-2"].index == 2
    assert p.units["split-1.web"].instance == "split-1" and p.units["split-1.web"].services == ("web",)
    assert p.units["agent-node-2"].index is None and p.units["agent-node-2"].host == "node-2"
    assert check_plan(sp, hosts, p) == []


def test_summary_counts_deploys_hosts_and_changes():
    sp = spec([svc("a")], [deploy("a", count=3)])
    p = plan(sp, hosts_n(2))
    assert p.summary() == "3 units on 2 hosts (a 3 on 2 hosts); moved 0, added 3, removed 0"


def test_global_runs_once_on_each_eligible_host_only():
    hosts = [host("a", disk="ssd"), host("b"), host("c", disk="ssd")]
    sp = spec([svc("agent")], [deploy("agent", is_global=True, **label_is("disk", "ssd"))])
    assert plan(sp, hosts).assignments == {"agent-a": "a", "agent-c": "c"}


# --- constraint and pin -------------------------------------------------------------------------


def test_constraint_limits_hosts_and_reports_no_match():
    hosts = [host("a", disk="ssd"), host("b")]
    sp = spec([svc("db")], [deploy("db", count=3, **label_is("disk", "ssd"))])
    assert set(plan(sp, hosts).assignments.values()) == {"a"}
    sp = spec([svc("db")], [deploy("db", count=1, **label_is("disk", "nvme"))])
    assert errors_of(sp, hosts) == ["deploy.db: constraint: no host matches \"labels.disk == 'nvme'\" (2 hosts)"]


def test_pinned_host_and_its_errors():
    sp = spec([svc("db")], [deploy("db", count=2, host="node-2")])
    assert set(plan(sp, hosts_n(3)).assignments.values()) == {"node-2"}
    assert errors_of(spec([svc("db")], [deploy("db", count=1, host="node-9")]), hosts_n(3)) == [
        "deploy.db: host: pinned host 'node-9' is not among the 3 hosts"]
    sp = spec([svc("db")], [deploy("db", count=1, host="node-1", **label_is("disk", "ssd"))])
    assert errors_of(sp, hosts_n(3)) == ["deploy.db: host: pinned host 'node-1' does not satisfy the constraint \"labels.disk == 'ssd'\""]


# --- conflicts and max_per_host ------------------------------------------------------------------


def test_self_conflict_is_one_instance_per_host_and_reports_shortage():
    sp = spec([svc("lb")], [deploy("lb", count=3, conflicts=("lb",))])
    assert sorted(per_host(plan(sp, hosts_n(3))).values()) == [1, 1, 1]
    sp = spec([svc("lb")], [deploy("lb", count=4, conflicts=("lb",))])
    assert errors_of(sp, hosts_n(3)) == ["deploy.lb: conflicts: needs 4 hosts free of lb, 3 eligible"]


def test_conflicts_are_symmetric_whoever_lists_them():
    sp = spec([svc("a"), svc("b")], [deploy("a", count=2), deploy("b", count=2, conflicts=("a",))])
    p = plan(sp, hosts_n(4))
    assert not {p.assignments["a-1"], p.assignments["a-2"]} & {p.assignments["b-1"], p.assignments["b-2"]}


def test_conflict_with_another_deploy_that_took_every_host():
    sp = spec([svc("a"), svc("b")], [deploy("a", is_global=True), deploy("b", count=1, conflicts=("a",))])
    assert errors_of(sp, hosts_n(2)) == [
        "deploy.b: conflicts: all 2 eligible hosts run instances b conflicts with: node-1 (a-node-1), node-2 (a-node-2)"]


def test_max_per_host_and_its_shortage():
    sp = spec([svc("w")], [deploy("w", count=5, max_per_host=2)])
    assert max(per_host(plan(sp, hosts_n(3))).values()) == 2
    sp = spec([svc("w")], [deploy("w", count=7, max_per_host=2)])
    assert errors_of(sp, hosts_n(3)) == ["deploy.w: max_per_host: 7 instances at most 2 per host need 4 hosts, 3 eligible"]


def test_split_stack_counts_instances_not_units_for_limits():
    """colocate: false: an instance's services may share a host; max_per_host counts instances."""
    sp = spec([svc("db", cpus=1), svc("web", cpus=1)], [deploy("app", ("db", "web"), colocate=False, count=2, max_per_host=1)])
    hosts = hosts_n(2, cpus=2)
    p = plan(sp, hosts)
    assert check_plan(sp, hosts, p) == []
    for host_name, n in per_host(p).items():
        assert len({p.units[k].instance for k, h in p.assignments.items() if h == host_name}) == 1, (host_name, n)


def test_colocated_stack_keeps_its_services_together():
    sp = spec([svc("db", cpus=1), svc("web", cpus=1)], [deploy("app", ("db", "web"), count=2)])
    p = plan(sp, hosts_n(2, cpus=2))
    assert sorted(p.assignments) == ["app-1", "app-2"] and len(set(p.assignments.values())) == 2


# --- spread ---------------------------------------------------------------------------------------


def test_spread_is_even_over_label_values():
    hosts = [host("a%d" % i, rack="r1") for i in range(4)] + [host("b0", rack="r2"), host("c0", rack="r3")]
    sp = spec([svc("w")], [deploy("w", count=6, spread="rack")])
    p = plan(sp, hosts)
    racks = collections.Counter(next(h.labels["rack"] for h in hosts if h.name == x) for x in p.assignments.values())
    assert racks == {"r1": 2, "r2": 2, "r3": 2}


def test_spread_puts_hosts_without_the_label_in_their_own_group():
    hosts = [host("a", rack="r1"), host("b", rack="r2"), host("c")]
    p = plan(spec([svc("w")], [deploy("w", count=3, spread="rack")]), hosts)
    assert sorted(p.assignments.values()) == ["a", "b", "c"]


def test_spread_gives_way_where_a_value_is_full():
    hosts = [host("a", cpus=1, rack="r1"), host("b", cpus=8, rack="r2")]
    sp = spec([svc("w", cpus=1)], [deploy("w", count=5, spread="rack")])
    p = plan(sp, hosts)
    assert per_host(p) == {"a": 1, "b": 4}
    assert check_plan(sp, hosts, p) == []


# --- capacity and ports -----------------------------------------------------------------------------


def test_capacity_error_names_instance_needs_and_best_host():
    hosts = [host("node-%d" % i, cpus=2, memory_mb=4096) for i in range(1, 4)]
    sp = spec([svc("mysql", cpus=1.0, memory_mb=1024, ports=[3306]), svc("web", cpus=0.5, memory_mb=512, ports=[8080])],
              [deploy("lamp", ("mysql", "web"), count=5)])
    assert errors_of(sp, hosts) == [
        "deploy.lamp: ports: instance lamp-4 (and 1 more) needs 3306/tcp,8080/tcp; all 3 hosts open to it have one taken: "
        "3306/tcp on node-1, node-2, node-3 by mysql (lamp-1, lamp-2, lamp-3); 8080/tcp on node-1, node-2, node-3 by web "
        "(lamp-1, lamp-2, lamp-3); fix: publish mysql's 3306/tcp and web's 8080/tcp as \"auto:3306\" and \"auto:8080\" "
        "(each instance gets a free host port of host_port_range), give it another host port, or add hosts"]
    sp = spec([svc("big", cpus=1.5, memory_mb=512)], [deploy("big", count=4)])
    assert errors_of(sp, hosts) == [
        "deploy.big: capacity: instance big-4 needs cpus 1.5, memory 512 MiB; no eligible host has room "
        "(3 eligible, best has cpus 0.5, memory 3584 MiB free)"]


def test_host_ports_are_never_shared_but_protocols_differ():
    sp = spec([svc("dns", ports=[(53, "udp")]), svc("web", ports=[53])], [deploy("dns", count=1), deploy("web", count=1)])
    assert len(set(plan(sp, hosts_n(1)).assignments.values())) == 1
    sp = spec([svc("a", ports=[80]), svc("b", ports=[80])], [deploy("a", count=1), deploy("b", count=1)])
    p = plan(sp, hosts_n(2))
    assert p.assignments["a-1"] != p.assignments["b-1"]


def test_one_instance_publishing_a_port_twice_is_reported():
    sp = spec([svc("a", ports=[80]), svc("b", ports=[80])], [deploy("s", ("a", "b"), count=1)])
    assert errors_of(sp, hosts_n(2)) == ["deploy.s: ports: services a and b of one instance both publish 80/tcp"]


def test_global_that_does_not_fit_names_the_hosts():
    hosts = [host("a", cpus=1), host("b", cpus=4)]
    sp = spec([svc("agent", cpus=2)], [deploy("agent", is_global=True)])
    assert errors_of(sp, hosts) == [
        "deploy.agent: capacity: global instance needs cpus 2, memory 0 MiB; cannot run on 1 of 2 eligible hosts: "
        "a (cpus 1, memory unlimited free)"]


# --- affinity and strategy ---------------------------------------------------------------------------


def test_affinity_lands_next_to_its_target_and_reports_when_impossible():
    sp = spec([svc("db"), svc("cache")], [deploy("cache", count=2, affinity=("db",)), deploy("db", count=1)])
    p = plan(sp, hosts_n(4))
    assert p.assignments["cache-1"] == p.assignments["cache-2"] == p.assignments["db-1"]
    sp = spec([svc("db"), svc("cache", ports=[80])], [deploy("cache", count=2, affinity=("db",)), deploy("db", count=1)])
    assert errors_of(sp, hosts_n(4)) == [
        "deploy.cache: ports: instance cache-2 needs 80/tcp; the 1 host open to it has one taken: 80/tcp on node-1 by cache (cache-1); "
        "fix: publish cache's 80/tcp as \"auto:80\" (each instance gets a free host port of host_port_range), give it another host "
        "port, or add hosts"]
    sp = spec([svc("db"), svc("cache")], [deploy("db", count=1, **label_is("disk", "ssd")),
                                          deploy("cache", count=1, affinity=("db",))])
    errors = errors_of(sp, hosts_n(2))
    assert errors[0].startswith("deploy.db: constraint") and errors[1].startswith("deploy.cache: affinity: needs a host running db")


def test_spread_strategy_uses_least_loaded_hosts_and_binpack_fills_the_largest_first():
    hosts = [host("a", cpus=4, memory_mb=4096), host("b", cpus=8, memory_mb=8192), host("c", cpus=4, memory_mb=4096)]
    services = [svc("w", cpus=1, memory_mb=512)]
    assert per_host(plan(spec(services, [deploy("w", count=3)]), hosts)) == {"a": 1, "b": 1, "c": 1}
    assert per_host(plan(spec(services, [deploy("w", count=9)], strategy="binpack"), hosts)) == {"b": 8, "a": 1}


# --- ordering -----------------------------------------------------------------------------------------


def test_scarce_and_squeezed_deploys_are_placed_first():
    """File order would fail both: `wide` first would take the ssd hosts; `chain` before `narrow`
    would take the only hosts `narrow` may use."""
    hosts = [host("h%d" % i, **({"disk": "ssd"} if i < 2 else {})) for i in range(6)]
    sp = spec([svc("wide"), svc("ssd"), svc("chain"), svc("narrow")], [
        deploy("wide", count=4, conflicts=("wide", "ssd")),
        deploy("ssd", count=2, conflicts=("ssd",), **label_is("disk", "ssd")),
        deploy("chain", count=2, conflicts=("narrow",)),
        deploy("narrow", count=2, conflicts=("wide", "narrow"))])
    p = plan(sp, hosts)
    assert check_plan(sp, hosts, p) == []


def test_all_infeasibilities_are_reported_at_once():
    sp = spec([svc("a"), svc("b"), svc("c")], [
        deploy("a", count=3, conflicts=("a",)), deploy("b", count=1, host="nowhere"), deploy("c", count=5, max_per_host=1)])
    assert [e.split(":")[:2] for e in errors_of(sp, hosts_n(2))] == [
        ["deploy.a", " conflicts"], ["deploy.b", " host"], ["deploy.c", " max_per_host"]]


def test_duplicate_host_names_are_refused():
    assert errors_of(spec([svc("a")], [deploy("a", count=1)]), [host("x"), host("x")]) == ["hosts: duplicate host names: x"]


# --- stability --------------------------------------------------------------------------------------


def test_previous_placement_is_kept_even_where_a_fresh_plan_would_differ():
    sp = spec([svc("w")], [deploy("w", count=3)])
    previous = {"w-1": "node-3", "w-2": "node-3", "w-3": "node-1"}
    p = plan(sp, hosts_n(3), previous)
    assert p.assignments == previous and (p.moved, p.added, p.removed) == ([], [], [])


def test_lowered_max_per_host_moves_only_the_excess_highest_index_first():
    sp = spec([svc("w")], [deploy("w", count=4, max_per_host=2)])
    previous = {"w-1": "node-1", "w-2": "node-1", "w-3": "node-1", "w-4": "node-2"}
    p = plan(sp, hosts_n(3), previous)
    assert p.moved == ["w-3"] and p.assignments["w-1"] == p.assignments["w-2"] == "node-1"


def test_scale_down_then_up_reuses_ids_and_global_ids_follow_hosts():
    sp = spec([svc("w"), svc("agent")], [deploy("w", count=5), deploy("agent", is_global=True)])
    first = plan(sp, hosts_n(3))
    smaller = spec([svc("w"), svc("agent")], [deploy("w", count=3), deploy("agent", is_global=True)])
    down = plan(smaller, hosts_n(3), first.assignments)
    assert down.removed == ["w-4", "w-5"] and down.moved == []
    shrunk = plan(sp, hosts_n(3)[1:], down.assignments)
    assert "agent-node-1" in shrunk.removed and shrunk.added == ["w-4", "w-5"]
    assert shrunk.assignments["agent-node-2"] == "node-2"
    assert set(shrunk.moved) == {k for k, h in down.assignments.items() if h == "node-1" and not k.startswith("agent")}


def test_units_on_hosts_that_became_ineligible_move():
    sp = spec([svc("db")], [deploy("db", count=2, **label_is("disk", "ssd"))])
    hosts = [host("a", disk="ssd"), host("b", disk="ssd"), host("c")]
    p = plan(sp, hosts, {"db-1": "a", "db-2": "c"})
    assert p.moved == ["db-2"] and p.assignments == {"db-1": "a", "db-2": "b"}


# --- determinism and the YAML path -------------------------------------------------------------------


_HASH_SEED_SCRIPT = """
import sys
sys.path.insert(0, %r)
sys.path.insert(0, %r)
from test_placement_check import deploy, host, spec, svc
from ansible_collections.stackfleet.cluster.plugins.module_utils._placement import plan
hosts = [host("n%%d" %% i, rack="r%%d" %% (i %% 3), cpus=4) for i in range(30)]
sp = spec([svc("a", cpus=0.5), svc("b", cpus=1), svc("c", ports=[80])],
          [deploy("a", count=20, spread="rack"), deploy("b", count=25, max_per_host=2, conflicts=("c",)),
           deploy("c", count=8, conflicts=("c",))], strategy=sys.argv[1])
print(sorted(plan(sp, hosts).assignments.items()))
"""


@pytest.mark.parametrize("strategy", ["spread", "binpack"])
def test_same_plan_under_different_hash_seeds(strategy):
    here = os.path.dirname(os.path.abspath(__file__))
    collections_path = [p for p in sys.path if p.endswith(os.path.join(".ansible", "collections"))][0]
    script = _HASH_SEED_SCRIPT % (collections_path, here)
    outputs = {subprocess.run([sys.executable, "-c", script, strategy], env=dict(os.environ, PYTHONHASHSEED=seed),
                              capture_output=True, text=True, check=True, timeout=60).stdout for seed in ("1", "2", "3")}
    assert len(outputs) == 1


def test_plans_a_stack_file_loaded_by_spec():
    sp = _spec.load_data({
        "cluster": "prod",
        "services": {"mysql": {"image": "mariadb:11", "ports": ["3306:3306"], "resources": {"cpus": 1.0, "memory": "1g"}},
                     "web": {"image": "php:8-apache", "ports": ["8080:80"], "resources": {"cpus": 0.5, "memory": "512m"}},
                     "lb": {"image": "haproxy:2.9", "ports": ["80:80"]},
                     "node-exporter": {"image": "prom/node-exporter", "network_mode": "host"}},
        "stacks": {"lamp": {"services": ["mysql", "web"]}},
        "deploy": {"lamp": {"count": 5, "constraint": "labels.disk == 'ssd' && capacity.memory_mb >= `2048`", "spread": "rack",
                            "max_per_host": 2},
                   "lb": {"count": 2, "conflicts": ["lb"]},
                   "node-exporter": {"global": True}}})
    hosts = _spec.load_hosts([{"name": "node-%d" % i, "labels": {"rack": "r%d" % (i % 3), "disk": "ssd"},
                               "capacity": {"cpus": 4, "memory_mb": 8192}} for i in range(1, 7)])
    p = plan(sp, hosts)
    assert check_plan(sp, hosts, p) == []
    assert len(p.assignments) == 5 + 2 + 6

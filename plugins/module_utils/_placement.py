# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The placement engine: which host runs every instance of every deploy.

Pure and deterministic: `plan(spec, hosts, previous)` either returns a `Placement`
that satisfies every rule of docs/stack-format.md or raises `PlacementError` with
every infeasibility it found. It is a greedy heuristic (docs/placement.md):

1. keep every unit of `previous` that is still valid where it is;
2. place the rest deploy by deploy, most constrained first (pinned, global, then
   fewest eligible hosts; affinity targets before the deploys that follow them);
3. within a deploy pick, per unit, the least-filled spread group and in it the best
   host by strategy, from a heap built once per deploy (no scan over all hosts);
4. only when keeping every kept unit leaves no plan: repair, moving the fewest kept
   units found by a bounded search (`_repair`, docs/placement.md "Repair");
5. only when asked: rebalance, at most `max_moves` kept units (`_placement_rebalance`).
Every kept unit that changes host is a `Move` with its reason.
"""

from __future__ import annotations

import dataclasses
import heapq
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._model import Deploy, Host, Spec, port_id
from ansible_collections.stackfleet.cluster.plugins.module_utils._placement_explain import global_unplaced, port_holder_names, unplaced
from ansible_collections.stackfleet.cluster.plugins.module_utils._placement_hosts import (
    UNLIMITED,
    HostTable,
    Shape,
    fmt_ports,
    fmt_range,
    natural_key,
)
from ansible_collections.stackfleet.cluster.plugins.module_utils._placement_rebalance import rebalance as _rebalance
from ansible_collections.stackfleet.cluster.plugins.module_utils._placement_repair import candidates as _repair_candidates
from ansible_collections.stackfleet.cluster.plugins.module_utils._placement_repair import others as _repair_others
from ansible_collections.stackfleet.cluster.plugins.module_utils._spec import quoted_fields

#: Why a kept unit changed host (contract 2 of issue 9; docs/placement.md "Moves").
MOVE_REASONS = ("host-missing", "drained", "ineligible", "repair", "rebalance")
#: Why a stateful unit was held on its host instead of moved (docs/placement.md "Held").
HELD_REASONS = ("host-missing", "drained", "ineligible")
#: Repair search bounds (docs/placement.md "Repair"): single moves tried, rounds of growing
#: the released set, and plan attempts in all (each attempt is one full keep + place pass).
REPAIR_SINGLES = 16
REPAIR_ROUNDS = 4
REPAIR_ATTEMPTS = 48
#: Moves listed by name in `Placement.summary()`; the rest are counted.
SUMMARY_MOVES = 20


class PlacementError(ValueError):
    """The plan is infeasible. `errors` holds one message per deploy and rule."""

    def __init__(self, errors: t.Sequence[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


@dataclasses.dataclass(frozen=True)
class Unit:
    """Services placed together on one host: a whole stack instance, or one service of it (colocate: false)."""

    key: str  # placement key: lamp-3, lamp-3.web, node-exporter-node-3
    deploy: str
    instance: str  # lamp-3, node-exporter-node-3
    index: t.Optional[int]  # None for a global deploy
    services: t.Tuple[str, ...]
    host: str


@dataclasses.dataclass(frozen=True)
class Move:
    """A placement key that was in `previous` and now runs on another host, and why."""

    key: str
    source: str  # the previous host
    target: str
    reason: str  # one of MOVE_REASONS
    why: str  # one sentence

    def as_dict(self) -> t.Dict[str, str]:
        return {"key": self.key, "from": self.source, "to": self.target, "reason": self.reason, "why": self.why}


@dataclasses.dataclass(frozen=True)
class Held:
    """A unit with a stateful service that stays on its previous host although that host is
    missing, drained or no longer eligible: its data is there (docs/placement.md "Held")."""

    key: str
    instance: str
    host: str
    reason: str  # one of HELD_REASONS
    why: str  # one sentence: the instance, the host, the reason and the two choices

    def as_dict(self) -> t.Dict[str, str]:
        return {"key": self.key, "host": self.host, "reason": self.reason, "why": self.why}


@dataclasses.dataclass
class Placement:
    assignments: t.Dict[str, str]  # placement key -> host name
    units: t.Dict[str, Unit]
    moved: t.List[str]  # in previous and now, on another host
    added: t.List[str]  # new in this plan
    removed: t.List[str]  # in previous, gone now
    moves: t.List[Move] = dataclasses.field(default_factory=list)  # one per key of `moved`, same order
    held: t.List[Held] = dataclasses.field(default_factory=list)  # naturally sorted by key
    #: what `ports` is built from, when asked: (id(shape) -> its published (service, Port)s, units)
    port_sources: t.List[t.Any] = dataclasses.field(default_factory=list, repr=False, compare=False)

    @property
    def ports(self) -> t.Dict[str, t.Dict[str, t.List[t.Dict[str, t.Any]]]]:
        """Placement key -> service -> published ports [{container_port, protocol, host_ip, host_port}],
        static and dynamic (with the host port chosen), only for units that publish some. Built on
        first use: a plan whose caller does not read it does not pay for it."""
        cached = self.__dict__.get("_ports")
        if cached is None:
            cached = self.__dict__["_ports"] = {u.key: _unit_ports(published[id(u.shape)], u.ports)
                                                for published, units in self.port_sources for u in units
                                                if id(u.shape) in published}
        return cached

    @property
    def missing_hosts(self) -> t.List[str]:
        """Hosts that were not given but hold a held unit: render their documents too."""
        return sorted({h.host for h in self.held if h.reason == "host-missing"})

    def summary(self) -> str:
        per_deploy: t.Dict[str, t.List[str]] = {}
        for unit in self.units.values():
            per_deploy.setdefault(unit.deploy, []).append(unit.host)
        parts = ["%s %d on %d hosts" % (d, len(h), len(set(h))) for d, h in per_deploy.items()]
        text = "%d units on %d hosts (%s); moved %d, added %d, removed %d" % (
            len(self.assignments), len(set(self.assignments.values())), ", ".join(parts) or "nothing",
            len(self.moved), len(self.added), len(self.removed))
        if self.moves:
            listed = ["%s %s -> %s (%s)" % (m.key, m.source, m.target, m.reason) for m in self.moves[:SUMMARY_MOVES]]
            more = len(self.moves) - SUMMARY_MOVES
            text += "; moves: " + ", ".join(listed) + (", and %d more" % more if more > 0 else "")
        if self.held:
            listed = ["%s on %s (%s)" % (h.key, h.host, h.reason) for h in self.held[:SUMMARY_MOVES]]
            more = len(self.held) - SUMMARY_MOVES
            text += "; held (stateful, not moved; allow_move moves them): " + ", ".join(listed) + (
                ", and %d more" % more if more > 0 else "")
        return text


class _Extras:
    """What only units with dynamic ports or stateful services need, as class defaults, so that
    creating the thousands of other units costs what it did (set on the instance when used):
    `ports` the host ports of shape.dynamic once placed, `prefer` the same from previous_ports,
    `hold` stateful with a previous host and not in allow_move (never moves), `held` the (reason,
    clause) of a unit held where it could not stay otherwise."""

    ports: t.Tuple[t.Any, ...] = ()
    prefer: t.Tuple[t.Any, ...] = ()
    hold = False
    held: t.Optional[t.Tuple[str, str]] = None


class _Pending(_Extras):
    """A unit while it is being planned; `host` is a host index, -1 until placed.

    `prev` is its host name in `previous` (None: new); `kept` whether it stayed there in this
    attempt; `avoid` a host index it may not take (its old host, when repair moves it); `left`
    the (reason, clause) of a unit that was in `previous` and could not stay."""

    __slots__ = ("key", "instance", "index", "shape", "fixed", "host", "prev", "kept", "avoid", "left")

    def __init__(self, key: str, instance: str, index: t.Optional[int], shape: Shape, fixed: int = -1):
        self.key, self.instance, self.index, self.shape, self.fixed, self.host = key, instance, index, shape, fixed, -1
        self.prev: t.Optional[str] = None
        self.kept = False
        self.avoid = -1
        self.left: t.Optional[t.Tuple[str, str]] = None


class _Rules:
    """One deploy, compiled against the host list: eligible hosts, symmetric conflicts, its units."""

    def __init__(self, deploy: Deploy, order: int, shapes: t.List[Shape], eligible: t.List[int],
                 others: t.FrozenSet[str], exclusive: bool):
        self.deploy = deploy
        self.order = order
        self.shapes = shapes
        self.eligible = eligible
        self.eligible_set = frozenset(eligible)
        self.others = others  # other deploys that may not share a host with this one
        self.exclusive = exclusive  # at most one instance per host
        self.max_per_host = deploy.max_per_host if deploy.max_per_host else UNLIMITED
        self.affinity = tuple(deploy.affinity)
        self.units: t.List[_Pending] = []
        self.failed = False


def plan(spec: Spec, hosts: t.Sequence[Host], previous: t.Optional[t.Mapping[str, str]] = None,
         rebalance: t.Optional[t.Mapping[str, t.Any]] = None, repair: bool = True,
         previous_ports: t.Optional[t.Mapping[str, t.Any]] = None, allow_move: t.Iterable[str] = ()) -> Placement:
    """Place every unit of `spec` on `hosts`, keeping what `previous` placed where it is still valid.

    When keeping all of it leaves no plan, move the fewest kept units the bounded repair
    search finds (`repair=False` turns that off, for tests). `rebalance={"max_moves": N}`
    then moves at most N kept units to improve spread or packing.

    `previous_ports` (the `ports` of the previous plan: key -> service -> [{container_port,
    protocol, host_ip, host_port}]) keeps the dynamic host ports of units that stay. A unit with
    a stateful service never moves off its previous host unless its instance id (or key) is in
    `allow_move`: it is held there (`Placement.held`) even when that host is missing or drained."""
    previous = dict(previous or {})
    errors: t.List[str] = []
    held_hosts = _held_hosts(spec, previous, frozenset(allow_move or ())) if previous else {}
    given = {h.name for h in hosts}
    missing = [Host(name=n, labels={}, capacity=None) for n in sorted({h for _d, h in held_hosts.values() if h not in given})]
    reserved = _static_ports(spec)
    table = HostTable(hosts, reserved, missing)
    if len(table.index) != len(table.names):
        dupes = sorted({n for n in table.names if table.names.count(n) > 1})
        raise PlacementError(["hosts: duplicate host names: %s" % ", ".join(dupes)])
    rules = _compile(spec, table, errors, held_hosts)
    _check_keys(rules, errors)
    order = _order(rules, errors)
    if previous:
        for r in rules.values():
            for unit in r.units:
                unit.prev = previous.get(unit.key)
        for r in rules.values() if held_hosts or previous_ports else ():
            for unit in r.units:
                if unit.prev is not None:
                    unit.hold = unit.key in held_hosts
                    if unit.shape.dynamic and previous_ports:
                        unit.prefer = _preferred(unit.shape, previous_ports.get(unit.key))
    attempt = _Attempt(spec, hosts, rules, order, bool(previous), reserved, missing, bool(held_hosts))
    table, failed, failures = attempt.run({}, table)
    if attempt.hold_errors:
        raise PlacementError(errors + attempt.hold_errors)
    base_left = {u.key: u.left for r in rules.values() for u in r.units if u.left is not None} if previous else {}
    repaired: t.Dict[str, str] = {}
    if failed and not errors and repair and any(u.kept for r in rules.values() for u in r.units):
        found = _repair(attempt, table, failures)
        if found is not None:
            table, repaired = found
            failed = []
        else:
            failed.append("deploy.%s: repair: moving kept instances found no plan either (%d plans tried)" % (
                failures[0][0].deploy.key if failures else "?", attempt.count))
    errors.extend(failed)
    if errors:
        raise PlacementError(errors)
    rebalanced: t.Dict[str, str] = {}
    max_moves = int((rebalance or {}).get("max_moves") or 0)
    if max_moves > 0:
        rebalanced = _rebalance(table, rules, spec.strategy, max_moves)
    return _result(spec, table, rules, previous, repaired, rebalanced, base_left, attempt.holding)


def _static_ports(spec: Spec) -> t.FrozenSet[t.Tuple[int, str]]:
    """Every static host port of the file, when it has dynamic ports (never handed out dynamically:
    a static port inside a host_port_range stays free for the service that names it, on any host)."""
    if not any(p.dynamic for s in spec.services.values() for p in s.ports):
        return frozenset()
    return frozenset(port for s in spec.services.values() for port in s.host_ports)


def _held_hosts(spec: Spec, previous: t.Mapping[str, str], allow: t.AbstractSet[str]) -> t.Dict[str, t.Tuple[str, str]]:
    """Placement key -> (instance, previous host) of every unit that must not move: it has a
    stateful service, `previous` placed it, and neither its instance id nor its key is in `allow`.
    Global deploys are not held: their instances are tied to their host and never move anyway."""
    if not any(s.stateful for s in spec.services.values()):
        return {}
    found: t.Dict[str, t.Tuple[str, str]] = {}
    for deploy in spec.deploys.values():
        if deploy.is_global or not any(spec.services[n].stateful for n in deploy.services if n in spec.services):
            continue
        shapes = _shapes(spec, deploy)
        split = len(shapes) > 1
        for n in range(1, deploy.count + 1):
            instance = "%s-%d" % (deploy.key, n)
            if instance in allow:
                continue
            for shape in shapes:
                key = "%s.%s" % (instance, shape.services[0]) if split else instance
                if shape.stateful and key not in allow and key in previous:
                    found[key] = (instance, str(previous[key]))
    return found


def _preferred(shape: Shape, ports: t.Any) -> t.Tuple[t.Optional[int], ...]:
    """The previous host port of each of the shape's dynamic ports, from untrusted input: entries
    that do not parse are ignored (the unit then gets a fresh port)."""
    found: t.Dict[t.Tuple[str, str], int] = {}
    if isinstance(ports, t.Mapping):
        for service, entries in ports.items():
            for entry in entries if isinstance(entries, (list, tuple)) else ():
                try:
                    found[(str(service), port_id(entry))] = int(entry["host_port"])
                except (KeyError, TypeError, ValueError, AttributeError):
                    continue
    return tuple(found.get((name, port_id(port.__dict__))) for name, port, _range in shape.dynamic)


class _Attempt:
    """One keep + place pass over fresh host bookkeeping, with some kept units released."""

    def __init__(self, spec: Spec, hosts: t.Sequence[Host], rules: t.Dict[str, _Rules], order: t.List[_Rules], keep: bool,
                 reserved: t.AbstractSet[t.Tuple[int, str]] = frozenset(), missing: t.Sequence[Host] = (), holding: bool = False):
        self.spec, self.hosts, self.rules, self.order, self.keep = spec, hosts, rules, order, keep
        self.reserved, self.missing = reserved, missing
        self.holding = keep and holding  # some unit is held (stateful, not in allow_move)
        self.extras = self.holding or any(s.dynamic for r in rules.values() for s in r.shapes)
        self.hold_errors: t.List[str] = []
        self.count = 0

    def run(self, released: t.Mapping[str, bool], table: t.Optional[HostTable] = None
            ) -> t.Tuple[HostTable, t.List[str], t.List[t.Tuple[_Rules, t.List[_Pending]]]]:
        """`released`: key -> True to keep it off its previous host (a repair move), False to
        let the engine choose freely (possibly the same host again)."""
        self.count += 1
        table = table if table is not None else HostTable(self.hosts, self.reserved, self.missing)
        if self.count > 1:  # the first run finds the units as _compile made them
            for r in self.rules.values():
                for unit in r.units:
                    unit.host, unit.kept, unit.avoid, unit.left = -1, False, -1, None
                    if self.extras:
                        unit.ports, unit.held = (), None
                    if unit.key in released and released[unit.key] and not unit.hold:
                        unit.avoid = table.index.get(unit.prev or "", -1)
        if self.holding:
            self.hold_errors = []
            _hold(table, self.order, self.hold_errors, self.rules)
        for r in self.order if self.keep else ():
            _keep(table, r, released, self.holding, self.rules)
        errors: t.List[str] = []
        failures: t.List[t.Tuple[_Rules, t.List[_Pending]]] = []
        done: t.Set[str] = set()
        for r in _most_constrained_first(table, self.rules, self.order):
            if r.deploy.is_global:
                _place_global(table, r, errors, failures, self.rules)
            else:
                compact = any(o in self.rules and o not in done for o in r.others)
                _place_counted(table, r, self.spec.strategy, compact, errors, failures, self.rules)
            done.add(r.deploy.key)
        if self.holding:
            _held_affinity(table, self.order)
        return table, errors, failures


def _repair(attempt: _Attempt, table: HostTable, failures: t.List[t.Tuple[_Rules, t.List[_Pending]]]
            ) -> t.Optional[t.Tuple[HostTable, t.Dict[str, str]]]:
    """The fewest kept units to move so that a plan exists, by a bounded, deterministic search
    (docs/placement.md "Repair"). Returns the final table and key -> clause of each unit moved.

    1. one unit: each candidate (kept units on the hosts the failed units were eligible for,
       the ones that block them most directly first), then any other kept unit, moved off its host;
    2. a few: release every candidate, then the candidates of the failure that follows, round
       by round; then put back each released unit whose move is not needed (latest first);
    3. a fresh plan (every kept unit released, free to stay, i.e. a plan without previous):
       if it fits, put back each of its moves that need not move; else there is no plan.
    The fresh plan comes last: the greedy engine can miss a plan from scratch that keeping
    most units and moving one finds.
    """
    rules = attempt.rules
    base_kept = {u.key for r in rules.values() for u in r.units if u.kept}
    first = _repair_candidates(table, rules, failures)  # reads the base attempt's unit state: before any run
    singles = (first + _repair_others(rules, failures, (k for k, _c in first)))[:REPAIR_SINGLES]
    for key, why in singles:
        table2, errors, _f = attempt.run({key: True})
        if not errors:
            return table2, {key: why}
    released: t.Dict[str, str] = dict(first)
    for _round in range(REPAIR_ROUNDS):
        if not released or attempt.count >= REPAIR_ATTEMPTS:
            break
        current, errors, current_failures = attempt.run(dict.fromkeys(released, True))
        if not errors:
            return _shrink(attempt, released, True, ran=current)
        # candidates read the units' state: only right after the run whose failures they explain
        new = [(k, c) for k, c in _repair_candidates(current, rules, current_failures) if k not in released]
        if not new:
            break
        released.update(new)
    fresh = {u.key: False for r in rules.values() for u in r.units if u.prev is not None and not u.hold}  # a plan without previous
    current, errors, _f = attempt.run(fresh)
    if errors:
        return None
    blocked = failures[0][1][0].key if failures else "the new instances"
    clause = "so that %s can be placed (keeping every instance left it no host)" % blocked
    fresh_moved = {u.key: clause for r in rules.values() for u in r.units
                   if u.key in base_kept and u.host >= 0 and current.names[u.host] != u.prev}
    return _shrink(attempt, fresh_moved, False, fallback=(fresh_moved, fresh))


def _shrink(attempt: _Attempt, released: t.Dict[str, str], avoid: bool,
            fallback: t.Optional[t.Tuple[t.Dict[str, str], t.Dict[str, bool]]] = None, ran: t.Optional[HostTable] = None
            ) -> t.Optional[t.Tuple[HostTable, t.Dict[str, str]]]:
    """Put back released units whose move is not needed, latest first, within the attempt bound;
    re-runs the last plan that worked so the units hold its answer. `ran`: the table of the
    attempt that just succeeded with exactly `released` (not run again)."""
    good = dict(released)
    if ran is not None:
        table, errors = ran, []
    else:
        table, errors, _f = attempt.run(dict.fromkeys(good, avoid))
    if errors:
        if fallback is None:
            return None
        table, errors, _f = attempt.run(fallback[1])
        return (table, fallback[0]) if not errors else None
    last_ok = True
    for key in reversed(list(released)):
        if len(good) <= 1 or attempt.count >= REPAIR_ATTEMPTS:
            break
        trial = {k: c for k, c in good.items() if k != key}
        table, errors, _f = attempt.run(dict.fromkeys(trial, avoid))
        last_ok = not errors
        if last_ok:
            good = trial
    if not last_ok:
        table, errors, _f = attempt.run(dict.fromkeys(good, avoid))
    moved = {}
    for r in attempt.rules.values():
        for u in r.units:
            if u.key in good and u.host >= 0 and table.names[u.host] != u.prev:
                moved[u.key] = good[u.key]
    return table, moved


# --- compiling deploys ------------------------------------------------------------------------


def _compile(spec: Spec, table: HostTable, errors: t.List[str],
             held_hosts: t.Optional[t.Mapping[str, t.Tuple[str, str]]] = None) -> t.Dict[str, _Rules]:
    conflicts: t.Dict[str, t.Set[str]] = {k: set() for k in spec.deploys}
    for key, deploy in spec.deploys.items():
        for other in deploy.conflicts:
            conflicts[key].add(other)
            if other in conflicts:
                conflicts[other].add(key)
    documents: t.List[t.Optional[t.Dict[str, t.Any]]] = [None] * len(table)
    verdicts: t.Dict[t.Any, t.List[int]] = {}  # one evaluation per distinct constraint
    rules = {}
    for order, (key, deploy) in enumerate(spec.deploys.items()):
        shapes = _shapes(spec, deploy)
        eligible = _eligible(deploy, table, documents, verdicts, errors)
        r = _Rules(deploy, order, shapes, eligible if eligible is not None else [],
                   frozenset(conflicts[key] - {key}), key in conflicts[key])
        rules[key] = r
        problem = None if eligible is not None else "reported"
        held_out = len({instance for k, (instance, host) in (held_hosts or {}).items()
                        if instance.rsplit("-", 1)[0] == key and table.index.get(host) not in r.eligible_set})
        problem = problem or _precheck(spec, r, table.given, sum(table.drained) - (len(table) - table.given), held_out)
        if problem:
            r.failed = True
            if problem != "reported":
                errors.append(problem)
            continue
        r.units = _units(r, table)
    return rules


def _shapes(spec: Spec, deploy: Deploy) -> t.List[Shape]:
    services = [spec.services[name] for name in deploy.services]
    if deploy.colocate or len(services) == 1:
        return [Shape(services)]
    return [Shape([s]) for s in services]


def _eligible(deploy: Deploy, table: HostTable, documents: t.List[t.Any], verdicts: t.Dict[t.Any, t.List[int]],
              errors: t.List[str]) -> t.Optional[t.List[int]]:
    """Host indexes that satisfy the constraint and the pin; None after reporting an error."""
    fn = deploy.constraint_fn
    if fn is None:
        matching = [i for i in range(len(table)) if not table.drained[i]]
    else:
        cache_key = deploy.constraint or id(fn)
        if cache_key not in verdicts:
            found = []
            for i in range(len(table)):
                if documents[i] is None:
                    documents[i] = table.hosts[i].document()
                try:
                    ok = fn(documents[i])
                except Exception as exc:  # a constraint is user code in effect: report, do not crash
                    errors.append("deploy.%s: constraint: cannot evaluate on host %s: %s" % (deploy.key, table.names[i], exc))
                    return None
                if ok and not table.drained[i]:
                    found.append(i)
            verdicts[cache_key] = found
        matching = verdicts[cache_key]
    if deploy.host is None:
        return matching
    pinned = table.index.get(deploy.host)
    if pinned is None or table.missing[pinned]:
        errors.append("deploy.%s: host: pinned host %r is not among the %d hosts" % (deploy.key, deploy.host, table.given))
        return None
    if table.drained[pinned]:
        errors.append("deploy.%s: host: pinned host %r is drained" % (deploy.key, deploy.host))
        return None
    if fn is not None and pinned not in set(matching):
        errors.append("deploy.%s: host: pinned host %r does not satisfy the constraint %r" % (deploy.key, deploy.host, deploy.constraint))
        return None
    return [pinned]


def _precheck(spec: Spec, r: _Rules, n_hosts: int, n_drained: int = 0, held_out: int = 0) -> t.Optional[str]:
    """Infeasibilities visible before anything is placed. `held_out`: instances held on hosts
    that are not eligible (missing, drained, ...): they need no eligible host."""
    key, deploy = r.deploy.key, r.deploy
    for target in r.affinity:
        if target not in spec.deploys:
            return "deploy.%s: affinity: no deploy named %r" % (key, target)
    for shape in r.shapes:
        seen: t.Dict[t.Tuple[int, str], str] = {}
        for name in shape.services:
            for port in sorted(spec.services[name].host_ports):
                if port in seen:
                    return "deploy.%s: ports: services %s and %s of one instance both publish %s" % (
                        key, seen[port], name, fmt_ports([port]))
                seen[port] = name
    if deploy.is_global or deploy.count <= 0:
        return None
    eligible = len(r.eligible)
    if not eligible:
        drained = ", %d drained" % n_drained if n_drained else ""
        if deploy.constraint:
            quoting = quoted_fields(deploy.constraint)
            return "deploy.%s: constraint: no host matches %r (%d hosts%s)%s" % (
                key, deploy.constraint, n_hosts, drained, "; " + quoting if quoting else "")
        if n_drained:
            return "deploy.%s: count: needs %d instances, all %d hosts are drained" % (key, deploy.count, n_hosts)
        return "deploy.%s: count: needs %d instances, there are no hosts" % (key, deploy.count)
    count = deploy.count - held_out
    if r.exclusive and count > eligible:
        return "deploy.%s: conflicts: needs %d hosts free of %s, %d eligible" % (key, count, key, eligible)
    if r.max_per_host < UNLIMITED and -(-count // r.max_per_host) > eligible:
        return "deploy.%s: max_per_host: %d instances at most %d per host need %d hosts, %d eligible" % (
            key, count, r.max_per_host, -(-count // r.max_per_host), eligible)
    return None


def _units(r: _Rules, table: HostTable) -> t.List[_Pending]:
    key = r.deploy.key
    split = len(r.shapes) > 1
    units = []
    if r.deploy.is_global:
        instances = [("%s-%s" % (key, table.names[i]), None, i) for i in r.eligible]
    else:
        instances = [("%s-%d" % (key, n), n, -1) for n in range(1, r.deploy.count + 1)]
    for instance, index, fixed in instances:
        for shape in r.shapes:
            unit_key = "%s.%s" % (instance, shape.services[0]) if split else instance
            units.append(_Pending(unit_key, instance, index, shape, fixed))
    return units


def _check_keys(rules: t.Dict[str, _Rules], errors: t.List[str]) -> None:
    owner: t.Dict[str, str] = {}
    for key, r in rules.items():
        for unit in r.units:
            if unit.key in owner:
                errors.append("deploy.%s: placement key %s is also a key of deploy %s; rename one deploy" % (key, unit.key, owner[unit.key]))
                r.failed = True
                break
            owner[unit.key] = key


def _order(rules: t.Dict[str, _Rules], errors: t.List[str]) -> t.List[_Rules]:
    """Most constrained first, but every affinity target before the deploys that follow it."""

    def priority(r: _Rules) -> t.Tuple[int, int, int, int]:
        kind = 0 if r.deploy.host else 1 if r.deploy.is_global else 2
        return (kind, len(r.eligible), -len(r.units), r.order)

    waiting = {k: {a for a in r.affinity if a in rules and a != k} for k, r in rules.items()}
    followers: t.Dict[str, t.List[str]] = {k: [] for k in rules}
    for k, targets in waiting.items():
        for target in targets:
            followers[target].append(k)
    ready = [(priority(r), k) for k, r in rules.items() if not waiting[k]]
    heapq.heapify(ready)
    order = []
    while ready:
        _rank, k = heapq.heappop(ready)
        order.append(rules[k])
        for f in followers[k]:
            waiting[f].discard(k)
            if not waiting[f]:
                heapq.heappush(ready, (priority(rules[f]), f))
    for k in sorted(k for k, w in waiting.items() if w):
        errors.append("deploy.%s: affinity: cycle through %s" % (k, ", ".join(sorted(waiting[k]))))
    return order


def _most_constrained_first(table: HostTable, rules: t.Dict[str, _Rules], order: t.List[_Rules]) -> t.Iterator[_Rules]:
    """Yield deploys to place, re-ranked after each one: pinned, then global, then least slack
    (hosts still open to it minus hosts it needs). Placing a deploy shrinks the room of the
    deploys that conflict with it, so a deploy squeezed by an earlier one moves up the queue.
    Affinity targets still come before their followers (`order` is topological)."""
    remaining = list(order)
    done: t.Set[str] = set()
    slack: t.Dict[str, int] = {}
    while remaining:
        best, best_rank = -1, None
        for n, r in enumerate(remaining):
            if any(a in rules and a not in done for a in r.affinity):
                continue
            key = r.deploy.key
            if key not in slack:
                slack[key] = _slack(table, r)
            rank = (0 if r.deploy.host else 1 if r.deploy.is_global else 2, slack[key], -len(r.units), r.order)
            if best_rank is None or rank < best_rank:
                best, best_rank = n, rank
        if best < 0:  # only deploys waiting on an affinity cycle, already reported
            return
        r = remaining.pop(best)
        yield r
        done.add(r.deploy.key)
        for other in remaining:
            if r.deploy.key in other.others or r.deploy.key in other.affinity:
                slack.pop(other.deploy.key, None)


def _slack(table: HostTable, r: _Rules) -> int:
    pending = {u.instance for u in r.units if u.host < 0}
    if not pending or r.failed:
        return 0
    need = len(pending) if r.exclusive else -(-len(pending) // r.max_per_host) if r.max_per_host < UNLIMITED else 1
    open_hosts = sum(1 for i in r.eligible if not (r.others and table.runs_any(i, r.others))
                     and (not r.affinity or table.runs_all(i, r.affinity)))
    return open_hosts - need


# --- keeping and placing -----------------------------------------------------------------------


def _keep(table: HostTable, r: _Rules, released: t.Mapping[str, bool], holding: bool = False,
          all_rules: t.Optional[t.Mapping[str, _Rules]] = None) -> None:
    """Keep each unit where `previous` put it while every rule still holds there (in unit order,
    so when a lowered limit evicts some, the highest indices move). A unit that cannot stay
    records why in `left`; a released unit (repair) is not kept."""
    if r.failed:
        return
    key = r.deploy.key
    dynamic = any(shape.dynamic for shape in r.shapes)
    for unit in r.units:
        name = unit.prev
        if name is None or (holding and unit.hold):  # held units were placed by _hold, first
            continue
        i = table.index.get(name, -1)
        if i < 0:
            unit.left = ("host-missing", "%s is not among the given hosts (down or removed)" % name)
            continue
        if table.drained[i]:  # (a missing host that holds a stateful unit is in the table, drained)
            missing = table.missing[i]
            unit.left = ("host-missing", "%s is not among the given hosts (down or removed)" % name) if missing else (
                "drained", "%s is drained" % name)
            continue
        if unit.key in released:
            continue
        if i not in r.eligible_set or (unit.fixed >= 0 and i != unit.fixed):
            unit.left = ("ineligible", _not_eligible(r, name))
            continue
        if r.others and table.runs_any(i, r.others):
            hit = sorted(d for d in r.others if d in table.placed[i])
            unit.left = ("ineligible", "%s runs %s, which %s conflicts with" % (name, ", ".join(hit), key))
            continue
        if r.affinity and not table.runs_all(i, r.affinity):
            missing = sorted(d for d in r.affinity if d not in table.placed[i])
            unit.left = ("ineligible", "%s no longer runs %s, which %s needs next to it (affinity)" % (name, ", ".join(missing), key))
            continue
        if table.fits(i, unit.shape, key, unit.instance, r.exclusive, r.max_per_host):
            table.add(i, unit.shape, key, unit.instance, counted=not r.deploy.is_global)
            if dynamic and unit.shape.dynamic:
                unit.ports = table.take_ports(i, unit.shape, unit.prefer)
            unit.host = i
            unit.kept = True
        else:
            unit.left = ("ineligible", _no_room(table, r, unit, i, all_rules))


def _hold(table: HostTable, order: t.List[_Rules], errors: t.List[str], all_rules: t.Optional[t.Mapping[str, _Rules]] = None) -> None:
    """Put every held unit (stateful, not allowed to move) on its previous host before anything
    else is kept or placed, so what conflicts with it there moves instead. When the host is
    missing, drained or no longer eligible it stays all the same, with the reason in `held`.
    Two held units on one host that publish the same static port cannot both stay: an error."""
    for r in order:
        if r.failed:
            continue
        key = r.deploy.key
        for unit in r.units:
            if not unit.hold:
                continue
            name = t.cast(str, unit.prev)
            i = table.index[name]
            taken = table.ports[i] & unit.shape.ports
            short = table.short_range(i, unit.shape.needs) if unit.shape.needs else None
            if taken or short:
                held_by = port_holder_names(table, i, taken, all_rules) if taken else ""
                what = "port %s there is taken by another held instance%s" % (fmt_ports(taken), ", " + held_by if held_by else "") if taken else (
                    "its host_port_range %s is exhausted there" % fmt_range(*t.cast(t.Tuple[str, int, int], short)))
                errors.append("deploy.%s: stateful: %s cannot be held on %s: %s; move one of them with allow_move"
                              " or change the stack file" % (key, unit.key, name, what))
                continue
            why: t.Optional[t.Tuple[str, str]] = None
            if table.missing[i]:
                why = ("host-missing", "%s is not among the given hosts (down or removed)" % name)
            elif table.drained[i]:
                why = ("drained", "%s is drained" % name)
            elif i not in r.eligible_set:
                why = ("ineligible", _not_eligible(r, name))
            elif r.others and table.runs_any(i, r.others):
                hit = sorted(d for d in r.others if d in table.placed[i])
                why = ("ineligible", "%s runs %s, which %s conflicts with" % (name, ", ".join(hit), key))
            elif not table.fits(i, unit.shape, key, unit.instance, r.exclusive, r.max_per_host):
                why = ("ineligible", _no_room(table, r, unit, i, all_rules))
            table.add(i, unit.shape, key, unit.instance)
            if unit.shape.dynamic:
                unit.ports = table.take_ports(i, unit.shape, unit.prefer)
            unit.host, unit.kept, unit.held = i, True, why


def _held_affinity(table: HostTable, order: t.List[_Rules]) -> None:
    """A held unit whose affinity target no longer runs on its host is held there 'ineligible'."""
    for r in order:
        if not r.affinity:
            continue
        for unit in r.units:
            if unit.hold and unit.held is None and unit.host >= 0 and not table.runs_all(unit.host, r.affinity):
                name = table.names[unit.host]
                missing = sorted(d for d in r.affinity if d not in table.placed[unit.host])
                unit.held = ("ineligible", "%s no longer runs %s, which %s needs next to it (affinity)" % (
                    name, ", ".join(missing), r.deploy.key))


def _not_eligible(r: _Rules, name: str) -> str:
    if r.deploy.host:
        return "%s is pinned to %s now" % (r.deploy.key, r.deploy.host)
    if r.deploy.constraint:
        return "%s no longer matches the constraint %r" % (name, r.deploy.constraint)
    return "%s is no longer eligible for %s" % (name, r.deploy.key)


def _no_room(table: HostTable, r: _Rules, unit: _Pending, i: int, all_rules: t.Optional[t.Mapping[str, _Rules]] = None) -> str:
    name = table.names[i]
    mine = table.placed[i].get(r.deploy.key)
    if mine and unit.instance not in mine:
        if r.exclusive:
            return "%s already runs another %s instance (it conflicts with itself)" % (name, r.deploy.key)
        if len(mine) >= r.max_per_host:
            return "%s already runs max_per_host %d %s instances" % (name, r.max_per_host, r.deploy.key)
    taken = table.ports[i] & unit.shape.ports
    if taken:
        held_by = port_holder_names(table, i, taken, all_rules)
        return "port %s on %s is taken%s" % (fmt_ports(taken), name, " by " + held_by if held_by else "")
    short = table.short_range(i, unit.shape.needs) if unit.shape.needs else None
    if short:
        return "host_port_range %s on %s is exhausted" % (fmt_range(*short), name)
    return "%s has no room for %s (%s)" % (name, unit.shape.describe(), table.describe_free(i))


def _place_global(table: HostTable, r: _Rules, errors: t.List[str], failures: t.List[t.Any],
                  rules: t.Mapping[str, _Rules]) -> None:
    if r.failed:
        return
    key = r.deploy.key
    failed = []
    for unit in r.units:
        if unit.host >= 0:
            continue
        i = unit.fixed
        if (not table.runs_any(i, r.others) and table.runs_all(i, r.affinity)
                and table.fits(i, unit.shape, key, unit.instance, r.exclusive, r.max_per_host)):
            table.add(i, unit.shape, key, unit.instance, counted=False)
            if unit.shape.dynamic:
                unit.ports = table.take_ports(i, unit.shape, unit.prefer)
            unit.host = i
        else:
            failed.append(unit)
    if failed:
        errors.extend(global_unplaced(table, r, failed, rules))
        failures.append((r, failed))


def _place_counted(table: HostTable, r: _Rules, strategy: str, compact: bool, errors: t.List[str],
                   failures: t.List[t.Any], rules: t.Mapping[str, _Rules]) -> None:
    """Place the pending units of a counted deploy. `compact`: deploys that conflict with this one
    are still to come, so fill hosts it already runs on before opening new ones (leave them room)."""
    pending = [u for u in r.units if u.host < 0]
    if r.failed or not pending:
        return
    key = r.deploy.key
    dynamic = any(shape.dynamic for shape in r.shapes)
    by_strategy = table.binpack_key if strategy == "binpack" else table.spread_key
    placed = table.placed

    def score(i: int) -> t.Tuple[t.Any, ...]:
        return ((0 if key in placed[i] else 1),) + by_strategy(i) if compact else by_strategy(i)

    label = r.deploy.spread
    group_of = ([table.hosts[i].labels.get(label, "") for i in range(len(table))] if label else None)
    candidates = [i for i in r.eligible
                  if not (r.others and table.runs_any(i, r.others)) and (not r.affinity or table.runs_all(i, r.affinity))]
    shape_ids = {id(s): n for n, s in enumerate(r.shapes)}
    # Per shape: group value -> heap of host entries; heap of (units of this shape in group, value).
    heaps: t.List[t.Dict[str, t.List[t.Tuple[t.Any, ...]]]] = []
    counts: t.List[t.Dict[str, int]] = []
    groups: t.List[t.List[t.Tuple[int, str]]] = []
    for _shape in r.shapes:
        by_group: t.Dict[str, t.List[t.Tuple[t.Any, ...]]] = {}
        for i in candidates:
            by_group.setdefault(group_of[i] if group_of else "", []).append(score(i))
        for heap in by_group.values():
            heapq.heapify(heap)
        count = dict.fromkeys(by_group, 0)
        heaps.append(by_group)
        counts.append(count)
    missing = table.missing if table.given != len(table) else None  # a missing host's labels are unknown
    for unit in r.units:
        if unit.host >= 0 and group_of and not (missing and missing[unit.host]):
            value = group_of[unit.host]
            count = counts[shape_ids[id(unit.shape)]]
            if value in count:
                count[value] += 1
    for count in counts:
        group_heap = [(c, v) for v, c in count.items()]
        heapq.heapify(group_heap)
        groups.append(group_heap)
    version = table.version
    single = len(r.shapes) == 1
    # A split instance under a per-host limit: its services first try the hosts its siblings
    # took, so one instance does not use up the limit on several hosts.
    siblings_first = not single and (r.exclusive or r.max_per_host < UNLIMITED)
    open_set = frozenset(candidates) if siblings_first else frozenset()
    hosts_of: t.Dict[str, t.List[int]] = {}
    for n, unit in enumerate(pending):
        s = shape_ids[id(unit.shape)]
        found = None
        for i in hosts_of.get(unit.instance, ()) if siblings_first else ():
            value = group_of[i] if group_of else ""
            if (i in open_set and i != unit.avoid and (not group_of or counts[s][value] <= _least_count(groups[s], counts[s]))
                    and table.fits(i, unit.shape, key, unit.instance, r.exclusive, r.max_per_host)):
                found = (i, value)  # only where spread allows it
                break
        found = found or _take(table, r, unit, heaps[s], counts[s], groups[s], version)
        if found is None:
            more = sum(1 for u in pending[n + 1:] if u.shape is unit.shape)
            errors.append(unplaced(table, r, unit, more, rules))
            failures.append((r, [unit]))
            return
        i, value = found
        table.add(i, unit.shape, key, unit.instance)
        if dynamic and unit.shape.dynamic:
            unit.ports = table.take_ports(i, unit.shape, unit.prefer)
        unit.host = i
        if siblings_first:
            hosts_of.setdefault(unit.instance, []).append(i)
        counts[s][value] += 1
        heapq.heappush(groups[s], (counts[s][value], value))
        if single and (r.exclusive or len(table.placed[i][key]) >= r.max_per_host):
            continue  # this host is done for this deploy
        entry = score(i)
        for by_group in heaps:
            heap = by_group.get(value)
            if heap is not None:
                heapq.heappush(heap, entry)


def _least_count(groups: t.List[t.Tuple[int, str]], counts: t.Dict[str, int]) -> int:
    """The unit count of the emptiest spread value that may still have room."""
    while groups and groups[0][0] != counts[groups[0][1]]:
        heapq.heappop(groups)
    return groups[0][0] if groups else UNLIMITED


def _take(table: HostTable, r: _Rules, unit: _Pending, heaps: t.Dict[str, t.List[t.Tuple[t.Any, ...]]],
          counts: t.Dict[str, int], groups: t.List[t.Tuple[int, str]], version: t.List[int]) -> t.Optional[t.Tuple[int, str]]:
    """Pop the best host that fits `unit` from the least-filled spread group that still has one.

    Hosts that do not fit are dropped for good: while one deploy is placed hosts only fill up,
    so a host that cannot take this unit cannot take a later one of the same shape either.
    """
    key, shape, instance, exclusive, limit = r.deploy.key, unit.shape, unit.instance, r.exclusive, r.max_per_host
    fits = table.fits
    avoid = unit.avoid
    aside: t.List[t.Tuple[t.Any, ...]] = []  # (heap, entry, group entry) of the avoided host, put back after
    found = None
    while groups:
        count, value = groups[0]
        if count != counts[value]:
            heapq.heappop(groups)  # stale: the group has been filled since
            continue
        heap = heaps[value]
        skipped = None
        while heap:
            entry = heapq.heappop(heap)
            i = entry[-2]
            if entry[-1] != version[i]:
                continue
            if i == avoid:  # this unit is moving off this host (repair); others may still take it
                skipped = entry
                continue
            if fits(i, shape, key, instance, exclusive, limit):
                found = (i, value)
                break
        group = heapq.heappop(groups)  # taken: the caller pushes its new count; else no host left for this unit
        if skipped is not None:
            aside.append((heap, skipped, group))
        if found is not None:
            break
    for heap, entry, group in aside:
        heapq.heappush(heap, entry)
        if found is None or group[1] != found[1]:
            heapq.heappush(groups, group)
    return found


# --- result --------------------------------------------------------------------------------------


def _result(spec: Spec, table: HostTable, rules: t.Dict[str, _Rules], previous: t.Mapping[str, str],
            repaired: t.Mapping[str, str], rebalanced: t.Mapping[str, str],
            base_left: t.Mapping[str, t.Tuple[str, str]], holding: bool = False) -> Placement:
    units: t.Dict[str, Unit] = {}
    sources: t.List[t.Tuple[t.Dict[int, t.List[t.Tuple[str, t.Any]]], t.List[_Pending]]] = []
    held: t.List[Held] = []
    for key, r in sorted(rules.items(), key=lambda kv: kv[1].order):
        published = _published(spec, r.shapes)
        if published:
            sources.append((published, r.units))  # Placement.ports is built from them when asked
        for u in r.units:
            units[u.key] = Unit(u.key, key, u.instance, u.index, u.shape.services, table.names[u.host])
        if holding:
            held.extend(_held(u, table.names[u.host]) for u in r.units if u.held is not None)
    assignments = {k: u.host for k, u in units.items()}
    moved = sorted((k for k, h in assignments.items() if k in previous and previous[k] != h), key=natural_key)
    added = sorted((k for k in assignments if k not in previous), key=natural_key)
    removed = sorted((k for k in previous if k not in assignments), key=natural_key)
    pending = {u.key: u for r in rules.values() for u in r.units if u.key in previous} if moved else {}
    moves = [_move(pending[k], previous[k], assignments[k], repaired, rebalanced, base_left.get(k)) for k in moved]
    held.sort(key=lambda h: natural_key(h.key))
    return Placement(assignments, units, moved, added, removed, moves, held, sources)


def _published(spec: Spec, shapes: t.Sequence[Shape]) -> t.Dict[int, t.List[t.Tuple[str, t.Any]]]:
    """id(shape) -> (service, Port) of every port it publishes, static or dynamic, in service order."""
    found = {}
    for shape in shapes:
        entries = [(name, port) for name in shape.services for port in spec.services[name].ports
                   if port.host_port is not None or port.dynamic]
        if entries:
            found[id(shape)] = entries
    return found


def _unit_ports(entries: t.Sequence[t.Tuple[str, t.Any]], dynamic: t.Sequence[int]) -> t.Dict[str, t.List[t.Dict[str, t.Any]]]:
    """service -> [{container_port, protocol, host_ip, host_port}] with the chosen dynamic host ports
    (`dynamic` follows Shape.dynamic: service order, then the service's port order, as `entries`)."""
    result: t.Dict[str, t.List[t.Dict[str, t.Any]]] = {}
    chosen = iter(dynamic)
    for name, port in entries:
        host_port = next(chosen, None) if port.dynamic else port.host_port
        result.setdefault(name, []).append({"container_port": port.container_port, "protocol": port.protocol,
                                            "host_ip": port.host_ip, "host_port": host_port})
    return result


def _held(unit: _Pending, host: str) -> Held:
    reason, clause = t.cast(t.Tuple[str, str], unit.held)
    why = ("%s stays on %s because %s and it runs a stateful service whose data is there: wait for %s, or move it with"
           " allow_move (-e stackfleet_allow_move=%s), accepting that its data does not follow." % (
               unit.key, host, clause, host, unit.instance))
    return Held(unit.key, unit.instance, host, reason, why)


def _move(unit: _Pending, source: str, target: str, repaired: t.Mapping[str, str], rebalanced: t.Mapping[str, str],
          base_left: t.Optional[t.Tuple[str, str]]) -> Move:
    reason, clause = unit.left or base_left or ("ineligible", "")
    if reason not in ("host-missing", "drained"):
        if unit.key in repaired:
            reason, clause = "repair", repaired[unit.key]
        elif unit.key in rebalanced:
            reason, clause = "rebalance", rebalanced[unit.key]
        elif not clause:
            clause = "%s could not keep it" % source
    if reason in ("repair", "rebalance"):
        why = "%s moved from %s to %s %s." % (unit.key, source, target, clause)
    else:
        why = "%s moved from %s to %s because %s." % (unit.key, source, target, clause)
    return Move(unit.key, source, target, reason, why)

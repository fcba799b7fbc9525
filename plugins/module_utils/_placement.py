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
   host by strategy, from a heap built once per deploy (no scan over all hosts).
"""

from __future__ import annotations

import dataclasses
import heapq
import re
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._model import Deploy, Host, Spec
from ansible_collections.stackfleet.cluster.plugins.module_utils._placement_explain import global_unplaced, unplaced
from ansible_collections.stackfleet.cluster.plugins.module_utils._placement_hosts import UNLIMITED, HostTable, Shape, fmt_ports


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


@dataclasses.dataclass
class Placement:
    assignments: t.Dict[str, str]  # placement key -> host name
    units: t.Dict[str, Unit]
    moved: t.List[str]  # in previous and now, on another host
    added: t.List[str]  # new in this plan
    removed: t.List[str]  # in previous, gone now

    def summary(self) -> str:
        per_deploy: t.Dict[str, t.List[str]] = {}
        for unit in self.units.values():
            per_deploy.setdefault(unit.deploy, []).append(unit.host)
        parts = ["%s %d on %d hosts" % (d, len(h), len(set(h))) for d, h in per_deploy.items()]
        return "%d units on %d hosts (%s); moved %d, added %d, removed %d" % (
            len(self.assignments), len(set(self.assignments.values())), ", ".join(parts) or "nothing",
            len(self.moved), len(self.added), len(self.removed))


class _Pending:
    """A unit while it is being planned; `host` is a host index, -1 until placed."""

    __slots__ = ("key", "instance", "index", "shape", "fixed", "host")

    def __init__(self, key: str, instance: str, index: t.Optional[int], shape: Shape, fixed: int = -1):
        self.key, self.instance, self.index, self.shape, self.fixed, self.host = key, instance, index, shape, fixed, -1


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


def plan(spec: Spec, hosts: t.Sequence[Host], previous: t.Optional[t.Mapping[str, str]] = None) -> Placement:
    """Place every unit of `spec` on `hosts`, keeping what `previous` placed where it is still valid."""
    previous = dict(previous or {})
    errors: t.List[str] = []
    table = HostTable(hosts)
    if len(table.index) != len(table.names):
        dupes = sorted({n for n in table.names if table.names.count(n) > 1})
        raise PlacementError(["hosts: duplicate host names: %s" % ", ".join(dupes)])
    rules = _compile(spec, table, errors)
    _check_keys(rules, errors)
    order = _order(rules, errors)
    if previous:
        for r in order:
            _keep(table, r, previous)
    done: t.Set[str] = set()
    for r in _most_constrained_first(table, rules, order):
        if r.deploy.is_global:
            _place_global(table, r, errors)
        else:
            compact = any(o in rules and o not in done for o in r.others)
            _place_counted(table, r, spec.strategy, compact, errors)
        done.add(r.deploy.key)
    if errors:
        raise PlacementError(errors)
    return _result(table, rules, previous)


# --- compiling deploys ------------------------------------------------------------------------


def _compile(spec: Spec, table: HostTable, errors: t.List[str]) -> t.Dict[str, _Rules]:
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
        problem = problem or _precheck(spec, r, len(table))
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
        matching = list(range(len(table)))
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
                if ok:
                    found.append(i)
            verdicts[cache_key] = found
        matching = verdicts[cache_key]
    if deploy.host is None:
        return matching
    pinned = table.index.get(deploy.host)
    if pinned is None:
        errors.append("deploy.%s: host: pinned host %r is not among the %d hosts" % (deploy.key, deploy.host, len(table)))
        return None
    if fn is not None and pinned not in set(matching):
        errors.append("deploy.%s: host: pinned host %r does not satisfy the constraint %r" % (deploy.key, deploy.host, deploy.constraint))
        return None
    return [pinned]


def _precheck(spec: Spec, r: _Rules, n_hosts: int) -> t.Optional[str]:
    """Infeasibilities visible before anything is placed."""
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
        if deploy.constraint:
            return "deploy.%s: constraint: no host matches %r (%d hosts)" % (key, deploy.constraint, n_hosts)
        return "deploy.%s: count: needs %d instances, there are no hosts" % (key, deploy.count)
    if r.exclusive and deploy.count > eligible:
        return "deploy.%s: conflicts: needs %d hosts free of %s, %d eligible" % (key, deploy.count, key, eligible)
    if r.max_per_host < UNLIMITED and -(-deploy.count // r.max_per_host) > eligible:
        return "deploy.%s: max_per_host: %d instances at most %d per host need %d hosts, %d eligible" % (
            key, deploy.count, r.max_per_host, -(-deploy.count // r.max_per_host), eligible)
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


def _keep(table: HostTable, r: _Rules, previous: t.Mapping[str, str]) -> None:
    """Keep each unit where `previous` put it while every rule still holds there (in unit order,
    so when a lowered limit evicts some, the highest indices move)."""
    if r.failed:
        return
    key = r.deploy.key
    for unit in r.units:
        i = table.index.get(previous.get(unit.key, ""), -1)
        if i < 0 or i not in r.eligible_set or (unit.fixed >= 0 and i != unit.fixed):
            continue
        if r.others and table.runs_any(i, r.others):
            continue
        if r.affinity and not table.runs_all(i, r.affinity):
            continue
        if table.fits(i, unit.shape, key, unit.instance, r.exclusive, r.max_per_host):
            table.add(i, unit.shape, key, unit.instance, counted=not r.deploy.is_global)
            unit.host = i


def _place_global(table: HostTable, r: _Rules, errors: t.List[str]) -> None:
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
            unit.host = i
        else:
            failed.append(unit)
    if failed:
        errors.extend(global_unplaced(table, r, failed))


def _place_counted(table: HostTable, r: _Rules, strategy: str, compact: bool, errors: t.List[str]) -> None:
    """Place the pending units of a counted deploy. `compact`: deploys that conflict with this one
    are still to come, so fill hosts it already runs on before opening new ones (leave them room)."""
    pending = [u for u in r.units if u.host < 0]
    if r.failed or not pending:
        return
    key = r.deploy.key
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
    for unit in r.units:
        if unit.host >= 0 and group_of:
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
            if (i in open_set and (not group_of or counts[s][value] <= _least_count(groups[s], counts[s]))
                    and table.fits(i, unit.shape, key, unit.instance, r.exclusive, r.max_per_host)):
                found = (i, value)  # only where spread allows it
                break
        found = found or _take(table, r, unit, heaps[s], counts[s], groups[s], version)
        if found is None:
            more = sum(1 for u in pending[n + 1:] if u.shape is unit.shape)
            errors.append(unplaced(table, r, unit, more))
            return
        i, value = found
        table.add(i, unit.shape, key, unit.instance)
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
    while groups:
        count, value = groups[0]
        if count != counts[value]:
            heapq.heappop(groups)  # stale: the group has been filled since
            continue
        heap = heaps[value]
        while heap:
            entry = heapq.heappop(heap)
            i = entry[-2]
            if entry[-1] == version[i] and fits(i, shape, key, instance, exclusive, limit):
                heapq.heappop(groups)
                return i, value
        heapq.heappop(groups)  # no host of this group can take another unit
    return None


# --- result --------------------------------------------------------------------------------------


def _natural(key: str) -> t.List[t.Any]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", key)]


def _result(table: HostTable, rules: t.Dict[str, _Rules], previous: t.Mapping[str, str]) -> Placement:
    units: t.Dict[str, Unit] = {}
    for key, r in sorted(rules.items(), key=lambda kv: kv[1].order):
        for u in r.units:
            units[u.key] = Unit(u.key, key, u.instance, u.index, u.shape.services, table.names[u.host])
    assignments = {k: u.host for k, u in units.items()}
    moved = sorted((k for k, h in assignments.items() if k in previous and previous[k] != h), key=_natural)
    added = sorted((k for k in assignments if k not in previous), key=_natural)
    removed = sorted((k for k in previous if k not in assignments), key=_natural)
    return Placement(assignments, units, moved, added, removed)

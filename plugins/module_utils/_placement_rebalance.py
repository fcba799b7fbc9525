# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Opt-in rebalance: move at most `max_moves` kept units to improve the plan (docs/placement.md).

Runs after a plan was found, on its host table. Only units kept from `previous` move (new
and already moved units were just placed by the strategy), each at most once, and only to a
host where every rule holds (eligibility, conflicts, affinity of the unit and of the units
it leaves, ports, capacity, max_per_host, and spread over a label never gets more uneven).

- spread: take a unit from the most loaded host (load, then containers) and give it to the
  least loaded host that takes it, when that host stays below the source's old load; repeat.
- binpack: empty the least used hosts: a host whose counted units can all move to hosts
  already in use (fullest first) within the remaining budget is emptied; next host.

Deterministic: hosts and units are visited in fixed orders, ties broken by host index and key.
"""

from __future__ import annotations

import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._placement_hosts import UNLIMITED, HostTable, natural_key

#: Source hosts examined per spread move (bounds the work on large fleets).
SOURCES_PER_MOVE = 64
#: Candidate moves checked in all; rebalance stops there with the moves found so far
#: (about a second of work: a fleet where few moves are possible must not stall the plan).
CHECKS = 300_000


class _Mover:
    def __init__(self, table: HostTable, rules: t.Mapping[str, t.Any]):
        self.table, self.rules = table, rules
        self.followers: t.Dict[str, t.Set[str]] = {}
        for key, r in rules.items():
            for target in r.affinity:
                self.followers.setdefault(target, set()).add(key)
        self.on: t.Dict[int, t.List[t.Tuple[str, t.Any]]] = {}  # host -> movable (deploy, unit)
        for key, r in rules.items():
            if r.deploy.is_global or r.deploy.host:
                continue
            for u in r.units:
                if u.kept and u.host >= 0 and not u.hold:  # a held (stateful) unit never moves
                    self.on.setdefault(u.host, []).append((key, u))
        for units in self.on.values():
            units.sort(key=lambda du: (-rules[du[0]].order, [(-a, b, c) for a, b, c in natural_key(du[1].key)]))
        self.spread_counts: t.Dict[t.Tuple[str, int], t.Dict[str, int]] = {}
        self.checks = 0

    @property
    def tired(self) -> bool:
        return self.checks >= CHECKS

    def _group(self, r: t.Any, i: int) -> str:
        return self.table.hosts[i].labels.get(r.deploy.spread, "")

    def _counts(self, key: str, r: t.Any, shape: t.Any) -> t.Dict[str, int]:
        slot = (key, id(shape))
        if slot not in self.spread_counts:
            counts: t.Dict[str, int] = {}
            for u in r.units:
                if u.shape is shape and u.host >= 0:
                    value = self._group(r, u.host)
                    counts[value] = counts.get(value, 0) + 1
            self.spread_counts[slot] = counts
        return self.spread_counts[slot]

    def can_move(self, key: str, u: t.Any, j: int) -> bool:
        self.checks += 1
        table, r, s = self.table, self.rules[key], u.host
        if j == s or j not in r.eligible_set:
            return False
        if r.others and table.runs_any(j, r.others):
            return False
        if r.affinity and not table.runs_all(j, r.affinity):
            return False
        if not table.fits(j, u.shape, key, u.instance, r.exclusive, r.max_per_host):
            return False
        here = table.placed[s].get(key, {})
        last = len(here) == 1 and here.get(u.instance) == 1
        if last and any(f in table.placed[s] for f in self.followers.get(key, ())):
            return False  # a unit that follows this deploy (affinity) would be left alone
        if r.deploy.spread:
            source, target = self._group(r, s), self._group(r, j)
            counts = self._counts(key, r, u.shape)
            if source != target and counts.get(target, 0) >= counts.get(source, 0):
                return False
        return True

    def move(self, key: str, u: t.Any, j: int, undo: bool = False) -> None:
        """Move `u` to host `j`; a moved unit is no longer movable (each moves once) unless
        this undoes its move (then it is movable from `j` again)."""
        table, r, s = self.table, self.rules[key], u.host
        table.remove(s, u.shape, key, u.instance, dynamic=u.ports)
        table.add(j, u.shape, key, u.instance)
        if u.shape.dynamic:
            u.ports = table.take_ports(j, u.shape, u.ports)
        if r.deploy.spread:
            counts = self._counts(key, r, u.shape)
            source, target = self._group(r, s), self._group(r, j)
            counts[source] -= 1
            counts[target] = counts.get(target, 0) + 1
        if undo:
            self.on.setdefault(j, []).append((key, u))
        else:
            self.on[s].remove((key, u))
        u.host = j

    def load_with(self, i: int, shape: t.Any) -> t.Tuple[float, int]:
        """(load, containers) of host i with `shape` added."""
        table = self.table
        cpu = mem = 0.0
        if table.cap_cpu[i] < UNLIMITED:
            cpu = (table.cap_cpu[i] - table.free_cpu[i] + shape.milli_cpus) / table.cap_cpu[i]
        if table.cap_mem[i] < UNLIMITED:
            mem = (table.cap_mem[i] - table.free_mem[i] + shape.memory_mb) / table.cap_mem[i]
        return (cpu if cpu > mem else mem, table.containers[i] + len(shape.services))


def rebalance(table: HostTable, rules: t.Mapping[str, t.Any], strategy: str, max_moves: int) -> t.Dict[str, str]:
    """Move at most `max_moves` kept units; returns key -> clause saying why each moved."""
    mover = _Mover(table, rules)
    if strategy == "binpack":
        return _binpack(mover, max_moves)
    return _spread(mover, max_moves)


def _spread(mover: _Mover, budget: int) -> t.Dict[str, str]:
    table = mover.table
    moved: t.Dict[str, str] = {}

    def key_of(i: int) -> t.Tuple[float, int]:
        return (table.load(i), table.containers[i])

    while len(moved) < budget and not mover.tired:
        sources = sorted((i for i, units in mover.on.items() if units), key=lambda i: (-table.load(i), -table.containers[i], i))
        targets = sorted(range(len(table)), key=lambda i: (key_of(i), i))
        done = False
        for s in sources[:SOURCES_PER_MOVE]:
            before = key_of(s)
            for key, u in list(mover.on[s]):
                for j in targets:
                    if key_of(j) >= before or mover.tired:
                        break  # the rest are at least as loaded as the source
                    if mover.load_with(j, u.shape) >= before or not mover.can_move(key, u, j):
                        continue
                    load_j = table.load(j)
                    mover.move(key, u, j)
                    moved[u.key] = "to spread load (rebalance: %s was at %d%% with %d containers, %s at %d%%)" % (
                        table.names[s], round(before[0] * 100), before[1], table.names[j], round(load_j * 100))
                    done = True
                    break
                if done:
                    break
            if done:
                break
        if not done:
            break
    return moved


def _binpack(mover: _Mover, budget: int) -> t.Dict[str, str]:
    table = mover.table
    moved: t.Dict[str, str] = {}
    # Least used hosts first; only hosts whose every counted unit may move can be emptied.
    sources = sorted((i for i in range(len(table)) if table.counted[i] and len(mover.on.get(i, ())) == table.counted[i]),
                     key=lambda i: (table.counted[i], table.load(i), i))
    for s in sources:
        if mover.tired:
            break
        units = list(mover.on.get(s, ()))
        if not units or table.counted[s] != len(units) or len(moved) + len(units) > budget:
            continue
        trail = []
        for key, u in units:
            targets = sorted((j for j in range(len(table)) if j != s and table.counted[j]), key=table.binpack_key)
            target = next((j for j in targets if mover.can_move(key, u, j)), None)
            if target is None:
                break
            mover.move(key, u, target)
            trail.append((key, u, target))
        if len(trail) == len(units):
            for _key, u, _target in trail:
                moved[u.key] = "to empty %s (rebalance, binpack: its %d unit%s fit on hosts in use)" % (
                    table.names[s], len(units), "" if len(units) == 1 else "s")
            continue
        for key, u, _target in reversed(trail):  # could not empty it: put everything back
            mover.move(key, u, s, undo=True)
    return moved

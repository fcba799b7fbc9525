# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which kept units a repair may move, most promising first (docs/placement.md "Repair").

Only runs after keeping every kept unit left no plan. A candidate is a kept unit that can
move (counted, not pinned) on a host one of the failed units was eligible for that blocks
it there: ranked by how directly it blocks (a declared conflict, then a shared host port,
then resources: first a unit whose move alone frees enough; units of the failed unit's own
deploy last: its per-host limit, a port or room a sibling service holds), then the smaller
unit (fewer containers restart), then its key. Deterministic, O(units on those hosts).
"""

from __future__ import annotations

import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._placement_hosts import HostTable, fmt_ports, fmt_range, natural_key


def movable(rules: t.Mapping[str, t.Any]) -> t.Dict[int, t.List[t.Tuple[str, t.Any]]]:
    """Host index -> (deploy key, unit) of the kept units a repair may move (never a held,
    stateful one: docs/placement.md "Held")."""
    on: t.Dict[int, t.List[t.Tuple[str, t.Any]]] = {}
    for key, r in rules.items():
        if r.deploy.is_global or r.deploy.host:
            continue
        for u in r.units:
            if u.kept and u.host >= 0 and not u.hold:
                on.setdefault(u.host, []).append((key, u))
    return on


def candidates(table: HostTable, rules: t.Mapping[str, t.Any], failures: t.Sequence[t.Tuple[t.Any, t.Sequence[t.Any]]]
               ) -> t.List[t.Tuple[str, str]]:
    """(unit key, clause saying what its move makes room for), best first, each key once."""
    on = movable(rules)
    best: t.Dict[str, t.Tuple[t.Any, ...]] = {}
    for n, (r, units) in enumerate(failures):
        unit = units[0]
        key = r.deploy.key
        hosts = sorted({u.fixed for u in units}) if r.deploy.is_global else r.eligible
        what = ("the global %s" % unit.key) if r.deploy.is_global else unit.key
        need_cpu, need_mem = unit.shape.milli_cpus, unit.shape.memory_mb
        for i in hosts:
            name = table.names[i]
            short = table.free_cpu[i] < need_cpu or table.free_mem[i] < need_mem
            exhausted = {slot for slot, n in unit.shape.needs if table.free_in_range(i, *slot, need=n) < n} if unit.shape.needs else ()
            mine = table.placed[i].get(key)
            limit = bool(mine) and unit.instance not in mine and (r.exclusive or len(mine) >= r.max_per_host)
            for other, u in on.get(i, ()):
                if other == key:  # its own deploy (its own instance too): a per-host limit, a sibling's port or room
                    if limit:
                        kind, clause = 4, "to make room for %s on %s (%s's per-host limit)" % (what, name, key)
                    elif unit.shape.ports and not unit.shape.ports.isdisjoint(u.shape.ports):
                        kind, clause = 4, "to free port %s on %s for %s" % (fmt_ports(unit.shape.ports & u.shape.ports), name, what)
                    elif short and (u.shape.milli_cpus or u.shape.memory_mb):
                        kind, clause = 5, "to free cpus and memory on %s for %s" % (name, what)
                    elif u.instance == unit.instance:
                        kind, clause = 6, "so that %s's services can be placed together" % unit.instance
                    else:
                        continue
                elif other in r.others:
                    kind, clause = 0, "to make room for %s on %s (%s conflicts with %s)" % (what, name, key, other)
                elif unit.shape.ports and not unit.shape.ports.isdisjoint(u.shape.ports):
                    kind, clause = 1, "to free port %s on %s for %s" % (fmt_ports(unit.shape.ports & u.shape.ports), name, what)
                elif exhausted and any(slot in exhausted for slot, _n in u.shape.needs):
                    kind, clause = 1, "to free a port of host_port_range %s on %s for %s" % (
                        ", ".join(fmt_range(*slot) for slot, _n in u.shape.needs if slot in exhausted), name, what)
                elif short and (u.shape.milli_cpus or u.shape.memory_mb):
                    alone = (table.free_cpu[i] + u.shape.milli_cpus >= need_cpu
                             and table.free_mem[i] + u.shape.memory_mb >= need_mem)
                    kind, clause = (2 if alone else 3), "to free cpus and memory on %s for %s" % (name, what)
                else:
                    continue
                rank = (kind, n, len(u.shape.services), natural_key(u.key), clause)
                if u.key not in best or rank < best[u.key]:
                    best[u.key] = rank
    ordered = sorted(best.items(), key=lambda kv: kv[1])
    return [(k, rank[-1]) for k, rank in ordered]


def others(rules: t.Mapping[str, t.Any], failures: t.Sequence[t.Tuple[t.Any, t.Sequence[t.Any]]],
           skip: t.Iterable[str]) -> t.List[t.Tuple[str, str]]:
    """Every other kept unit that may move, by key: tried one at a time after the candidates
    (within the singles bound), for what the blocker rules above do not see (the greedy
    engine's own order, e.g.)."""
    skip = set(skip)
    what = failures[0][1][0].key if failures else "the new instances"
    keys = sorted((u.key for units in movable(rules).values() for _d, u in units if u.key not in skip), key=natural_key)
    return [(k, "so that %s can be placed (keeping every instance left it no host)" % what) for k in keys]

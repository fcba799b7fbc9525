# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Why a unit could not be placed, in words a user can act on.

Only runs after the engine has failed, so it may look at every eligible host: it
names the deploy, the rule that binds and the numbers behind it.
"""

from __future__ import annotations

import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._placement_hosts import (
    UNLIMITED,
    HostTable,
    fmt_needs,
    fmt_ports,
    fmt_range,
    natural_key,
)

_LIST_AT_MOST = 5


def _names(keys: t.Iterable[str]) -> str:
    return ", ".join(sorted(keys))


def _hosts_needed(rules: t.Any) -> int:
    count = rules.deploy.count
    if rules.exclusive:
        return count
    if rules.max_per_host < UNLIMITED:
        return -(-count // rules.max_per_host)
    return 1


def _listed(items: t.Sequence[str]) -> str:
    return ", ".join(items[:_LIST_AT_MOST]) + (", ..." if len(items) > _LIST_AT_MOST else "")


def conflicting_instances(table: HostTable, i: int, deploys: t.Iterable[str]) -> t.List[str]:
    """Instances on host i of the given deploys, naturally sorted."""
    placed = table.placed[i]
    return sorted((inst for d in deploys if d in placed for inst in placed[d]), key=natural_key)


def _publisher(shapes: t.Sequence[t.Any], port: t.Tuple[int, str]) -> t.Optional[str]:
    for shape in shapes:
        if port in shape.ports:
            return t.cast(str, shape.publishers.get(port, ("?", 0))[0])
    return None


def port_takers(table: HostTable, hosts: t.Iterable[int], ports: t.AbstractSet[t.Any],
                all_rules: t.Optional[t.Mapping[str, t.Any]]) -> str:
    """Who holds which of `ports` on `hosts`, one clause per port and holding service, in port
    then host order: `80/tcp on a, b by web (lamp-1, lamp-2); 443/tcp on c by lb (lb-1)`."""
    groups: t.Dict[t.Tuple[t.Tuple[int, str], str], t.Tuple[t.List[int], t.List[str]]] = {}
    for i in sorted(hosts):
        for port in sorted(table.ports[i] & ports):
            held = False
            for d, instances in sorted(table.placed[i].items()):
                r = (all_rules or {}).get(d)
                service = _publisher(r.shapes, port) if r is not None else None
                if service is None:
                    continue
                held = True
                where, who = groups.setdefault((port, service), ([], []))
                if i not in where:
                    where.append(i)
                who.extend(instances)
            if not held:
                groups.setdefault((port, ""), ([], []))[0].append(i)
    clauses = []
    for (port, service), (where, who) in sorted(groups.items(), key=lambda g: (g[0][0], g[1][0][0], g[0][1])):
        clause = "%s on %s" % (fmt_ports([port]), _listed([table.names[i] for i in where]))
        if service:
            clause += " by %s (%s)" % (service, _listed(sorted(set(who), key=natural_key)))
        clauses.append(clause)
    return "; ".join(clauses)


def port_holder_names(table: HostTable, i: int, ports: t.AbstractSet[t.Any], all_rules: t.Optional[t.Mapping[str, t.Any]]) -> str:
    """Who holds `ports` on host i, per service: `web (lamp-1), lb (lb-1)`; empty when unknown."""
    found: t.Dict[str, t.List[str]] = {}
    for port in sorted(ports):
        for d, instances in sorted(table.placed[i].items()):
            r = (all_rules or {}).get(d)
            service = _publisher(r.shapes, port) if r is not None else None
            if service is not None:
                found.setdefault(service, []).extend(instances)
    return ", ".join("%s (%s)" % (service, _listed(sorted(set(who), key=natural_key))) for service, who in sorted(found.items()))


def port_fix(shape: t.Any, taken: t.AbstractSet[t.Tuple[int, str]]) -> str:
    """What to change so that a unit publishing `taken` static ports can share a host."""
    mine = sorted(p for p in taken if p in shape.publishers)
    if not mine:
        return ""
    by_service: t.Dict[str, t.List[t.Tuple[int, str]]] = {}
    for p in mine:
        by_service.setdefault(shape.publishers[p][0], []).append(p)
    owners = ["%s's %s" % (service, fmt_ports(ports)) for service, ports in sorted(by_service.items())]
    autos = ['"auto:%d%s"' % (shape.publishers[p][1], "" if p[1] == "tcp" else "/" + p[1]) for p in mine]
    return ("; fix: publish %s as %s (each instance gets a free host port of host_port_range), "
            "give it another host port, or add hosts" % (" and ".join(owners), " and ".join(autos)))


def range_holders(table: HostTable, i: int, slot: t.Tuple[str, int, int], all_rules: t.Optional[t.Mapping[str, t.Any]]) -> t.List[str]:
    """Instances on host i of deploys with dynamic ports in the range `slot`."""
    if not all_rules:
        return []
    found = []
    for d, instances in table.placed[i].items():
        r = all_rules.get(d)
        if r is not None and any(s == slot for shape in r.shapes for s, _n in shape.needs):
            found.extend(instances)
    return sorted(found, key=natural_key)


def unplaced(table: HostTable, rules: t.Any, unit: t.Any, more: int, all_rules: t.Optional[t.Mapping[str, t.Any]] = None) -> str:
    """The message for a counted deploy's unit that found no host (`more` of its kind wait behind it)."""
    key = rules.deploy.key
    eligible = rules.eligible
    conflicted = [i for i in eligible if table.runs_any(i, rules.others)]
    free = [i for i in eligible if not table.runs_any(i, rules.others)]
    candidates = [i for i in free if table.runs_all(i, rules.affinity)]
    if not candidates:
        if free and rules.affinity:
            return "deploy.%s: affinity: needs a host running %s; none of the %d eligible hosts free of conflicts does" % (
                key, _names(rules.affinity), len(free))
        if not conflicted:
            return "deploy.%s: conflicts: needs %d hosts free of %s, %d eligible" % (key, _hosts_needed(rules), _names(rules.others), 0)
        if len(conflicted) == 1:
            i = conflicted[0]
            return "deploy.%s: conflicts: the 1 eligible host (%s) runs %s, which %s conflicts with" % (
                key, table.names[i], ", ".join(conflicting_instances(table, i, rules.others)), key)
        hosts = ["%s (%s)" % (table.names[i], ", ".join(conflicting_instances(table, i, rules.others))) for i in conflicted]
        return "deploy.%s: conflicts: all %d eligible hosts run instances %s conflicts with: %s" % (
            key, len(conflicted), key, _listed(hosts))
    open_hosts = [i for i in candidates if _takes_new_instance(table, rules, i)]
    if not open_hosts:
        if rules.exclusive:
            return "deploy.%s: conflicts: needs %d hosts free of %s, %d eligible" % (
                key, rules.deploy.count, _names(rules.others | {key}), len(candidates))
        return "deploy.%s: max_per_host: %d instances at most %d per host need %d hosts, %d eligible" % (
            key, rules.deploy.count, rules.max_per_host, _hosts_needed(rules), len(candidates))
    shape = unit.shape
    clash = {i for i in open_hosts if shape.ports and not table.ports[i].isdisjoint(shape.ports)}
    exhausted = {i: table.short_range(i, shape.needs) for i in open_hosts if shape.needs and i not in clash}
    exhausted = {i: slot for i, slot in exhausted.items() if slot is not None}
    roomy = [i for i in open_hosts if i not in clash and i not in exhausted]
    what = "instance %s" % unit.instance if unit.key == unit.instance else "unit %s" % unit.key
    tail = "" if not more else " (and %d more)" % more
    blocked = ""
    if conflicted:
        hosts = ["%s (%s)" % (table.names[i], ", ".join(conflicting_instances(table, i, rules.others))) for i in conflicted]
        blocked = "; %d more eligible run instances %s conflicts with: %s" % (len(conflicted), key, _listed(hosts))
    if exhausted and not roomy and not clash:
        ranges = sorted({fmt_range(*slot) for slot in exhausted.values()})
        holders = ["%s (%s)" % (table.names[i], ", ".join(range_holders(table, i, exhausted[i], all_rules)) or "taken")
                   for i in sorted(exhausted)]
        return "deploy.%s: ports: %s%s needs %s; host_port_range %s is exhausted on all %d hosts open to it: %s%s" % (
            key, what, tail, fmt_needs(shape.needs), ", ".join(ranges), len(exhausted), _listed(holders), blocked)
    taken: t.Set[t.Tuple[int, str]] = set()
    for i in clash:
        taken |= table.ports[i] & shape.ports
    if clash and not roomy:
        hosts = "the 1 host open to it has one taken" if len(clash) == 1 else "all %d hosts open to it have one taken" % len(clash)
        return "deploy.%s: ports: %s%s needs %s; %s: %s%s%s" % (
            key, what, tail, fmt_ports(shape.ports), hosts, port_takers(table, clash, shape.ports, all_rules), blocked,
            port_fix(shape, taken))
    notes = ["%d eligible" % len(eligible)]
    if roomy:
        best = max(roomy, key=lambda i: (table.free_cpu[i], table.free_mem[i], -i))
        notes.append("best has %s" % table.describe_free(best))
    if clash:
        notes.append("%d have a port taken: %s" % (len(clash), port_takers(table, clash, shape.ports, all_rules)))
    if exhausted:
        notes.append("%d have host_port_range %s exhausted" % (len(exhausted), ", ".join(sorted({fmt_range(*s) for s in exhausted.values()}))))
    return "deploy.%s: capacity: %s%s needs %s; no eligible host has room (%s)%s" % (
        key, what, tail, shape.describe(), ", ".join(notes), blocked)  # no port fix: capacity binds first


def _takes_new_instance(table: HostTable, rules: t.Any, i: int) -> bool:
    mine = table.placed[i].get(rules.deploy.key)
    return not mine or not (rules.exclusive or len(mine) >= rules.max_per_host)


def global_unplaced(table: HostTable, rules: t.Any, units: t.Sequence[t.Any],
                    all_rules: t.Optional[t.Mapping[str, t.Any]] = None) -> t.List[str]:
    """Messages for a global deploy's instances whose own host cannot take them, one per rule."""
    key = rules.deploy.key
    by_rule: t.Dict[str, t.List[str]] = {}
    taken: t.Set[t.Tuple[int, str]] = set()
    for unit in units:
        i = unit.fixed
        name = table.names[i]
        hit = conflicting_instances(table, i, rules.others)
        if hit:
            by_rule.setdefault("conflicts", []).append("%s (runs %s)" % (name, ", ".join(hit)))
        elif not table.runs_all(i, rules.affinity):
            missing = sorted(d for d in rules.affinity if d not in table.placed[i])
            by_rule.setdefault("affinity", []).append("%s (runs no %s)" % (name, ", ".join(missing)))
        elif unit.shape.ports and not table.ports[i].isdisjoint(unit.shape.ports):
            taken |= table.ports[i] & unit.shape.ports
            by_rule.setdefault("ports", []).append("%s (%s)" % (name, port_takers(table, [i], unit.shape.ports, all_rules)))
        elif unit.shape.needs and table.short_range(i, unit.shape.needs):
            slot = t.cast(t.Tuple[str, int, int], table.short_range(i, unit.shape.needs))
            by_rule.setdefault("ports", []).append("%s (host_port_range %s exhausted)" % (name, fmt_range(*slot)))
        else:
            by_rule.setdefault("capacity", []).append("%s (%s)" % (name, table.describe_free(i)))
    messages = []
    need = units[0].shape.describe()
    for rule in sorted(by_rule):
        hosts = by_rule[rule]
        listed = "; ".join(hosts[:_LIST_AT_MOST]) + ("; ..." if len(hosts) > _LIST_AT_MOST else "")
        fix = port_fix(units[0].shape, taken) if rule == "ports" else ""
        messages.append("deploy.%s: %s: global instance needs %s; cannot run on %d of %d eligible hosts: %s%s" % (
            key, rule, need, len(hosts), len(rules.eligible), listed, fix))
    return messages

"""An independent checker for placements, written from stack-format.md rather than from the engine.

`check_plan()` returns every rule a placement breaks; the property tests assert it returns
nothing for every plan the engine produces. The tests at the bottom make sure the checker
itself catches each kind of violation.
"""

from __future__ import annotations

import collections
import dataclasses

from ansible_collections.stackfleet.cluster.plugins.module_utils._model import Deploy, Host, Port, Resources, Service, Spec

EPSILON = 1e-9


def svc(name, cpus=0.0, memory_mb=0, ports=()):
    """A service; `ports` are host ports, `80` or `(53, "udp")`."""
    published = tuple(Port(p, "tcp", p) if isinstance(p, int) else Port(p[0], p[1], p[0]) for p in ports)
    return Service(name, "img/" + name, Resources(cpus, memory_mb), published, {})


def host(name, cpus=None, memory_mb=None, **labels):
    capacity = None if cpus is None and memory_mb is None else Resources(cpus or 0, memory_mb or 0)
    return Host(name, labels, capacity)


def spec(services, deploys, strategy="spread", stacks=None):
    """`deploys`: Deploy objects; a deploy's services default to a lone service named like its key."""
    return Spec("test", strategy, {s.name: s for s in services}, stacks or {}, {d.key: d for d in deploys})


def deploy(key, services=None, **kw):
    services = tuple(services or (key,))
    return Deploy(key, services, len(services) > 1 or key not in services, **kw)


def label_is(label, value):
    """A compiled constraint like `labels.<label> == '<value>'`."""
    return dict(constraint="labels.%s == '%s'" % (label, value), constraint_fn=lambda doc: doc["labels"].get(label) == value)


def eligible_hosts(d, hosts):
    return [h for h in hosts if (d.constraint_fn is None or d.constraint_fn(h.document())) and (d.host is None or h.name == d.host)]


def expected_units(sp, hosts):
    """placement key -> (deploy key, instance id, services) as docs/architecture.md defines them."""
    out = {}
    for d in sp.deploys.values():
        if d.is_global:
            instances = ["%s-%s" % (d.key, h.name) for h in eligible_hosts(d, hosts)]
        else:
            instances = ["%s-%d" % (d.key, n) for n in range(1, d.count + 1)]
        split = not d.colocate and len(d.services) > 1
        for inst in instances:
            if split:
                for s in d.services:
                    out["%s.%s" % (inst, s)] = (d.key, inst, (s,))
            else:
                out[inst] = (d.key, inst, tuple(d.services))
    return out


def _limit(h, what):
    if h.capacity is None:
        return None
    value = getattr(h.capacity, what)
    return value if value > 0 else None


@dataclasses.dataclass
class _HostUse:
    cpus: float = 0.0
    memory_mb: int = 0
    ports: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    instances: dict = dataclasses.field(default_factory=lambda: collections.defaultdict(set))


def _usage(sp, units, assignments):
    use = collections.defaultdict(_HostUse)
    for key, host_name in assignments.items():
        deploy_key, inst, services = units[key]
        u = use[host_name]
        for s in services:
            service = sp.services[s]
            u.cpus += service.resources.cpus
            u.memory_mb += service.resources.memory_mb
            for p in service.host_ports:
                u.ports[p] += 1
        u.instances[deploy_key].add(inst)
    return use


def _conflicting(sp, a, b):
    return b in sp.deploys[a].conflicts or a in sp.deploys[b].conflicts


def could_take_new_instance(sp, d, services, h, u):
    """Whether host `h` (usage `u`) could take one more unit with `services` of a new instance of `d`."""
    if any(_conflicting(sp, d.key, other) for other in u.instances if other != d.key):
        return False
    if any(a not in u.instances for a in d.affinity):
        return False
    mine = len(u.instances.get(d.key, ()))
    if mine and (d.key in d.conflicts or (d.max_per_host and mine >= d.max_per_host)):
        return False
    need = [sp.services[s] for s in services]
    cpus, mem = _limit(h, "cpus"), _limit(h, "memory_mb")
    if cpus is not None and u.cpus + sum(s.resources.cpus for s in need) > cpus + EPSILON:
        return False
    if mem is not None and u.memory_mb + sum(s.resources.memory_mb for s in need) > mem:
        return False
    return not any(u.ports[p] for s in need for p in s.host_ports)


def check_plan(sp, hosts, placement, check_spread=True):
    """Every rule of stack-format.md the placement breaks, as readable strings (empty = valid)."""
    problems = []
    by_name = {h.name: h for h in hosts}
    units = expected_units(sp, hosts)
    got = placement.assignments
    if set(got) != set(units):
        problems.append("keys: missing %s, unexpected %s" % (sorted(set(units) - set(got)), sorted(set(got) - set(units))))
        return problems
    for key, unit in placement.units.items():
        if (unit.deploy, unit.instance, unit.services, unit.host) != units[key][:3] + (got[key],):
            problems.append("%s: Unit record %r disagrees with the assignment" % (key, unit))
    for key, host_name in got.items():
        d = sp.deploys[units[key][0]]
        if host_name not in by_name:
            problems.append("%s: unknown host %s" % (key, host_name))
            return problems
        if by_name[host_name] not in eligible_hosts(d, hosts):
            problems.append("%s: host %s is not eligible (constraint/pin)" % (key, host_name))
        if d.is_global and units[key][1] != "%s-%s" % (d.key, host_name):
            problems.append("%s: global instance on another host %s" % (key, host_name))
    use = _usage(sp, units, got)
    for host_name, u in sorted(use.items()):
        h = by_name[host_name]
        cpus, mem = _limit(h, "cpus"), _limit(h, "memory_mb")
        if cpus is not None and u.cpus > cpus + EPSILON:
            problems.append("%s: cpus %.3f > %s" % (host_name, u.cpus, cpus))
        if mem is not None and u.memory_mb > mem:
            problems.append("%s: memory %d > %d" % (host_name, u.memory_mb, mem))
        for port, n in u.ports.items():
            if n > 1:
                problems.append("%s: port %s used %d times" % (host_name, port, n))
        for dk, insts in u.instances.items():
            d = sp.deploys[dk]
            if dk in d.conflicts and len(insts) > 1:
                problems.append("%s: %d instances of self-conflicting %s" % (host_name, len(insts), dk))
            if d.max_per_host and len(insts) > d.max_per_host:
                problems.append("%s: %d instances of %s > max_per_host %d" % (host_name, len(insts), dk, d.max_per_host))
            for other in u.instances:
                if other != dk and _conflicting(sp, dk, other):
                    problems.append("%s: conflicting %s and %s share it" % (host_name, dk, other))
            for a in d.affinity:
                if a not in u.instances:
                    problems.append("%s: %s needs %s on the host" % (host_name, dk, a))
    if check_spread:
        problems.extend(_spread_problems(sp, hosts, units, got, use))
    return problems


def _spread_problems(sp, hosts, units, got, use):
    """Counts per label value differ by at most 1, unless the emptier value has no host with room left."""
    problems = []
    for d in sp.deploys.values():
        if not d.spread or d.is_global or d.host:
            continue
        eligible = eligible_hosts(d, hosts)
        shapes = {units[k][2] for k in units if units[k][0] == d.key}
        for services in shapes:
            counts = collections.Counter({h.labels.get(d.spread, ""): 0 for h in eligible})
            for k, h in got.items():
                if units[k][0] == d.key and units[k][2] == services:
                    counts[next(x for x in hosts if x.name == h).labels.get(d.spread, "")] += 1
            top = max(counts.values(), default=0)
            for value, n in counts.items():
                if n >= top - 1:
                    continue
                roomy = [h.name for h in eligible if h.labels.get(d.spread, "") == value
                         and could_take_new_instance(sp, d, services, h, use[h.name])]
                if roomy:
                    problems.append("%s: spread over %r: %r has %d, another value %d, yet %s have room" % (
                        d.key, d.spread, value, n, top, roomy))
    return problems


# --- the checker catches what it should ----------------------------------------------------------


def _fake(sp, hosts, assignments):
    units = expected_units(sp, hosts)
    from ansible_collections.stackfleet.cluster.plugins.module_utils._placement import Placement, Unit

    return Placement(dict(assignments), {k: Unit(k, units[k][0], units[k][1], None, units[k][2], h) for k, h in assignments.items()},
                     [], [], [])


def test_checker_flags_each_rule():
    hosts = [host("a", cpus=1, memory_mb=1024, rack="r1"), host("b", rack="r1"), host("c", rack="r2")]
    sp = spec([svc("lb", ports=[80]), svc("big", cpus=2), svc("w")], [
        deploy("lb", count=2, conflicts=("lb",)), deploy("big", count=1), deploy("w", count=3, spread="rack", max_per_host=2)])
    ok = _fake(sp, hosts, {"lb-1": "a", "lb-2": "b", "big-1": "b", "w-1": "a", "w-2": "b", "w-3": "c"})
    assert check_plan(sp, hosts, ok) == []
    bad = _fake(sp, hosts, {"lb-1": "a", "lb-2": "a", "big-1": "a", "w-1": "b", "w-2": "b", "w-3": "b"})
    text = "\n".join(check_plan(sp, hosts, bad))
    for expected in ("self-conflicting lb", "port (80, 'tcp') used 2 times", "cpus 2.000 > 1", "3 instances of w > max_per_host 2",
                     "spread over 'rack'"):
        assert expected in text
    assert "missing ['w-3']" in check_plan(sp, hosts, _fake(sp, hosts, {"lb-1": "a", "lb-2": "b", "big-1": "b", "w-1": "a", "w-2": "b"}))[0]


def test_checker_flags_conflicts_affinity_and_constraint():
    hosts = [host("a", disk="ssd"), host("b")]
    sp = spec([svc("x"), svc("y"), svc("z")], [
        deploy("x", count=1, **label_is("disk", "ssd")), deploy("y", count=1, conflicts=("x",)), deploy("z", count=1, affinity=("x",))])
    text = "\n".join(check_plan(sp, hosts, _fake(sp, hosts, {"x-1": "b", "y-1": "b", "z-1": "a"})))
    for expected in ("x-1: host b is not eligible", "conflicting y and x", "z needs x on the host"):
        assert expected in text

"""Placement engine benchmark (docs/performance.md, "Placement").

    .venv/bin/python bench/placement.py            # full run, ~1-2 minutes on 2 cores
    .venv/bin/python bench/placement.py --quick    # smoke run for CI, a few seconds
    .venv/bin/python bench/placement.py --check    # also verify every plan with the unit tests' checker

W1  ~10,000 containers onto 1,000 hosts of three sizes (zone, rack labels): LAMP stacks, 30 %
    of them constrained to ssd hosts, spread over racks with max_per_host; an api spread over
    zones; workers; 100 load balancers that conflict with each other; a global agent.
W2  W1 re-planned after 5 % of the hosts are lost (half at random, half one whole rack).
W3  hard anti-affinity: count = 95 % of hosts with `conflicts` on itself, plus a conflict
    chain between stacks, at 100, 1,000 and 5,000 hosts.
W4  W1 with `strategy: binpack`; hosts used against a lower bound.
W5  repair: W1 re-planned with a new deploy that needs port 80 on every host of one rack, where
    kept load balancers hold it: the engine moves exactly those (docs/placement.md "Repair").
W6  rebalance: W1 planned on 95 % of the hosts, re-planned on all with rebalance max_moves 100.
W7  dynamic ports: W1 with `auto` ports on mysql and web and mysql stateful, then W2's host loss.
A naive first-fit placer (below) runs side by side on W1 and W4.

Specs are built through `_spec.load_data`, so constraints are real compiled JMESPath.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import random
import sys
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".ansible", "collections"))

from ansible_collections.stackfleet.cluster.plugins.module_utils import _spec  # noqa: E402
from ansible_collections.stackfleet.cluster.plugins.module_utils._placement import plan  # noqa: E402

SIZES = (("small", 4, 8192), ("medium", 8, 16384), ("large", 16, 65536))  # name, cpus, memory_mb


def make_hosts(n, hosts_per_rack=20, zones=3, seed=1, random_ssd=False):
    """`n` hosts: 40 % small, 40 % medium, 20 % large, mixed within racks; 30 % have ssd disks:
    every rack's large hosts and a quarter of its medium ones, or (`random_ssd`) any 30 % at random."""
    rnd = random.Random(seed)
    docs = []
    for i in range(n):
        size = SIZES[0] if i % 5 in (0, 1) else SIZES[1] if i % 5 in (2, 3) else SIZES[2]
        rack = i // hosts_per_rack
        labels = {"zone": "z%d" % (rack % zones), "rack": "r%03d" % rack, "size": size[0]}
        if (rnd.random() < 0.3) if random_ssd else (i % 10 in (2, 4, 9)):
            labels["disk"] = "ssd"
        docs.append({"name": "node-%05d" % i, "labels": labels, "capacity": {"cpus": size[1], "memory_mb": size[2]}})
    return _spec.load_hosts(docs)


def w1_stack(scale, strategy="spread"):
    """W1 at `scale` (1.0 = 1,000 hosts); counts scale with the host count."""

    def n(count):
        return max(1, int(count * scale))

    return {
        "cluster": "bench",
        "strategy": strategy,
        "services": {
            "mysql": {"image": "mariadb:11", "resources": {"cpus": 1.0, "memory": "1g"}},
            "web": {"image": "php:8-apache", "resources": {"cpus": 0.5, "memory": "512m"}},
            "api": {"image": "api:1", "resources": {"cpus": 0.25, "memory": "256m"}},
            "worker": {"image": "worker:1", "resources": {"cpus": 0.5, "memory": "1g"}},
            "lb": {"image": "haproxy:2.9", "ports": ["80:80", "443:443"], "resources": {"cpus": 0.5, "memory": "256m"}},
            "agent": {"image": "node-exporter:1", "ports": ["9100:9100"], "resources": {"cpus": 0.05, "memory": "64m"}},
        },
        "stacks": {"lamp": {"services": ["mysql", "web"]}},
        "deploy": {
            "lamp": {"count": n(1400), "spread": "rack", "max_per_host": 4},
            "lamp-ssd": {"count": n(600), "constraint": "labels.disk == 'ssd'", "spread": "rack", "max_per_host": 4},
            "api": {"count": n(3000), "spread": "zone"},
            "worker": {"count": n(2800)},
            "lb": {"count": n(100), "conflicts": ["lb"]},
            "agent": {"global": True},
        },
    }


def _stacks_for_lamp_ssd(data):
    # lamp-ssd deploys the lamp stack under another key: a stack of the same services.
    data["stacks"]["lamp-ssd"] = {"services": ["mysql", "web"]}
    return data


def w1_spec(scale, strategy="spread"):
    return _spec.load_data(_stacks_for_lamp_ssd(w1_stack(scale, strategy)), source="W1")


def w3_spec(n_hosts):
    """Anti-affinity at scale: `anti` on 95 % of hosts, one per host; g0..g4 a conflict chain, g0 also against anti."""
    services = {"anti": {"image": "anti:1", "resources": {"cpus": 0.1, "memory": "64m"}}}
    deploy = {"anti": {"count": int(n_hosts * 0.95), "conflicts": ["anti"]}}
    for g in range(5):
        services["g%d" % g] = {"image": "g:1", "resources": {"cpus": 0.25, "memory": "128m"}}
        body = {"count": max(1, int(n_hosts * (0.04 if g == 0 else 0.1))), "max_per_host": 2}
        body["conflicts"] = ["anti"] if g == 0 else ["g%d" % (g - 1)]
        deploy["g%d" % g] = body
    return _spec.load_data({"cluster": "w3", "services": services, "stacks": {}, "deploy": deploy}, source="W3")


# --- figures ---------------------------------------------------------------------------------------


def containers_of(placement):
    return sum(len(u.services) for u in placement.units.values())


def load_stats(placement, hosts, spec):
    """(min, max, standard deviation) of host load: the larger of a host's cpu and memory fractions."""
    cap = {h.name: h.capacity for h in hosts}
    used = {h.name: (0.0, 0) for h in hosts}
    for unit in placement.units.values():
        cpus, mem = used.get(unit.host, (0.0, 0))
        for name in unit.services:
            res = spec.services[name].resources
            cpus, mem = cpus + res.cpus, mem + res.memory_mb
        used[unit.host] = (cpus, mem)
    loads = [max(c / cap[h].cpus, m / cap[h].memory_mb) for h, (c, m) in used.items()]
    mean = sum(loads) / len(loads)
    return min(loads), max(loads), math.sqrt(sum((x - mean) ** 2 for x in loads) / len(loads))


def timed(fn, repeat):
    """Best of `repeat` wall times (the machine is shared; the minimum is the least disturbed)."""
    best, result = math.inf, None
    for _attempt in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_mib(fn):
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2 ** 20


def hosts_used(placement, spec):
    """Hosts running a non-global unit (a global deploy runs everywhere by definition)."""
    return len({u.host for u in placement.units.values() if not spec.deploys[u.deploy].is_global})


def lower_bound(spec, hosts):
    """Fewest hosts that could hold the non-global demand, filling the largest hosts first,
    after each host's global reservations: max over cpu and memory (ignores every other rule)."""
    demand_cpu = demand_mem = 0.0
    global_cpu = global_mem = 0.0
    for d in spec.deploys.values():
        cpu = sum(spec.services[s].resources.cpus for s in d.services)
        mem = sum(spec.services[s].resources.memory_mb for s in d.services)
        if d.is_global:
            global_cpu, global_mem = global_cpu + cpu, global_mem + mem
        else:
            demand_cpu, demand_mem = demand_cpu + cpu * d.count, demand_mem + mem * d.count
    bound = 0
    for demand, what, reserved in ((demand_cpu, "cpus", global_cpu), (demand_mem, "memory_mb", global_mem)):
        room = sorted((getattr(h.capacity, what) - reserved for h in hosts), reverse=True)
        used = total = 0
        while total < demand - 1e-9:
            total += room[used]
            used += 1
        bound = max(bound, used)
    return bound


def naive_first_fit(spec, hosts):
    """unit key -> (host, deploy key). The baseline: every unit onto the first host in name order where every hard rule holds,
    checked from scratch (eligibility is precomputed per deploy, as is only fair). No spread,
    no scoring, no ordering by scarcity."""
    hosts = sorted(hosts, key=lambda h: h.name)
    free = {h.name: [h.capacity.cpus if h.capacity else math.inf, h.capacity.memory_mb if h.capacity else math.inf] for h in hosts}
    ports = {h.name: set() for h in hosts}
    running = {h.name: {} for h in hosts}  # deploy -> instance count
    conflicts = {k: set(d.conflicts) for k, d in spec.deploys.items()}
    for k, d in spec.deploys.items():
        for c in d.conflicts:
            conflicts.setdefault(c, set()).add(k)
    out = {}
    for key, d in spec.deploys.items():
        eligible = [h.name for h in hosts if d.constraint_fn is None or d.constraint_fn(h.document())]
        cpu = sum(spec.services[s].resources.cpus for s in d.services)
        mem = sum(spec.services[s].resources.memory_mb for s in d.services)
        need_ports = set().union(*(spec.services[s].host_ports for s in d.services))

        def fits(h, key=key, d=d, cpu=cpu, mem=mem, need_ports=need_ports):
            mine = running[h].get(key, 0)
            if mine and (key in conflicts[key] or (d.max_per_host and mine >= d.max_per_host)):
                return False
            if any(c in running[h] for c in conflicts[key] if c != key):
                return False
            return free[h][0] >= cpu - 1e-9 and free[h][1] >= mem and not (ports[h] & need_ports)

        def put(h, unit, key=key, cpu=cpu, mem=mem, need_ports=need_ports):
            free[h][0] -= cpu
            free[h][1] -= mem
            ports[h] |= need_ports
            running[h][key] = running[h].get(key, 0) + 1
            out[unit] = (h, key)

        if d.is_global:
            for h in eligible:
                if fits(h):
                    put(h, "%s-%s" % (key, h))
            continue
        for index in range(1, d.count + 1):
            for h in eligible:
                if fits(h):
                    put(h, "%s-%d" % (key, index))
                    break
            else:
                out["%s-%d" % (key, index)] = (None, key)  # the baseline fails where the engine does not
    return out


def naive_hosts_used(spec, assignment):
    return len({h for h, key in assignment.values() if h and not spec.deploys[key].is_global})


def naive_unplaced(assignment):
    return sum(1 for h, _key in assignment.values() if h is None)


# --- workloads -------------------------------------------------------------------------------------


def check(spec, hosts, placement, check_spread=True):
    sys.path.insert(0, os.path.join(ROOT, "tests", "unit", "plugins", "module_utils"))
    from test_placement_check import check_plan

    problems = check_plan(spec, hosts, placement, check_spread=check_spread)
    if problems:
        raise SystemExit("INVALID PLAN:\n" + "\n".join(problems[:20]))


def run(args):
    scale = 0.1 if args.quick else 1.0
    repeat = 1 if args.quick else 3
    w3_sizes = (100, 500) if args.quick else (100, 1000, 5000)
    rows = []

    def row(name, value, goal=""):
        rows.append((name, value, goal))
        print("%-58s %16s  %s" % (name, value, goal), flush=True)

    hosts = make_hosts(int(1000 * scale))
    spec = w1_spec(scale)
    t1, p1 = timed(lambda: plan(spec, hosts), repeat)
    units = len(p1.units)
    if args.check:
        check(spec, hosts, p1)
    row("W1 hosts / units / containers", "%d / %d / %d" % (len(hosts), units, containers_of(p1)))
    row("W1 plan time (s)", "%.3f" % t1)
    row("W1 placements/s (units)", "%.0f" % (units / t1), "goal >= 20,000")
    row("W1 containers/s", "%.0f" % (containers_of(p1) / t1))
    row("W1 peak traced memory (MiB)", "%.1f" % peak_mib(lambda: plan(spec, hosts)))
    tn, naive = timed(lambda: naive_first_fit(spec, hosts), 1)
    row("W1 naive first-fit time (s)", "%.3f" % tn)
    row("W1 speed: engine / naive first-fit", "%.1fx" % (tn / t1))
    row("W1 naive first-fit units it could not place", "%d" % naive_unplaced(naive))

    # W2: lose 5 % of the hosts, half at random and half one whole rack.
    rnd = random.Random(2)
    lose = max(2, len(hosts) // 20)
    rack = "r%03d" % (len(hosts) // 20 // 2)
    lost = {h.name for h in hosts if h.labels["rack"] == rack}
    others = [h.name for h in hosts if h.name not in lost]
    lost |= set(rnd.sample(others, max(1, lose - len(lost))))
    remaining = [h for h in hosts if h.name not in lost]
    t2, p2 = timed(lambda: plan(spec, remaining, p1.assignments), repeat)
    if args.check:
        check(spec, remaining, p2, check_spread=False)
    minimum = sum(1 for k, h in p1.assignments.items() if h in lost and k in p2.assignments)
    row("W2 hosts lost / units that were on them", "%d / %d" % (len(lost), minimum))
    row("W2 re-plan time (s)", "%.3f" % t2)
    row("W2 moved / minimum possible", "%.2f" % (len(p2.moved) / minimum if minimum else 1.0), "goal 1.00")

    # W3: hard anti-affinity at scale.
    for n in w3_sizes:
        h3 = make_hosts(n, seed=3)
        s3 = w3_spec(n)
        t3, p3 = timed(lambda s3=s3, h3=h3: plan(s3, h3), repeat)
        if args.check:
            check(s3, h3, p3)
        row("W3 %5d hosts: units, time (s)" % n, "%d, %.3f" % (len(p3.units), t3))
        row("W3 %5d hosts: placements/s" % n, "%.0f" % (len(p3.units) / t3), "goal >= 5,000 at 5,000 hosts" if n == 5000 else "")
        if n == w3_sizes[-1]:
            row("W3 %5d hosts: peak traced memory (MiB)" % n, "%.1f" % peak_mib(lambda s3=s3, h3=h3: plan(s3, h3)))

    # W4: binpack on W1.
    s4 = w1_spec(scale, "binpack")
    t4, p4 = timed(lambda: plan(s4, hosts), repeat)
    if args.check:
        check(s4, hosts, p4)
    bound = lower_bound(s4, hosts)
    used = hosts_used(p4, s4)
    naive4 = naive_first_fit(s4, hosts)
    row("W4 binpack time (s)", "%.3f" % t4)
    row("W4 hosts used / lower bound", "%d / %d = %.3f" % (used, bound, used / bound), "goal <= 1.05")
    row("W4 naive first-fit units it could not place", "%d" % naive_unplaced(naive4))
    naive_used = naive_hosts_used(s4, naive4)
    row("W4 naive first-fit hosts used / lower bound", "%d / %d = %.3f" % (naive_used, bound, naive_used / bound))
    hr = make_hosts(int(1000 * scale), random_ssd=True)
    pr = plan(s4, hr)
    if args.check:
        check(s4, hr, pr)
    row("W4r (ssd on random hosts) hosts used / lower bound", "%d / %d = %.3f" % (
        hosts_used(pr, s4), lower_bound(s4, hr), hosts_used(pr, s4) / lower_bound(s4, hr)), "rules force small hosts open")
    row("W1 spread: hosts used (engine, naive)", "%d, %d" % (hosts_used(p1, spec), naive_hosts_used(spec, naive)))

    # W5: a new deploy needs port 80 on every host of rack r000, where kept lbs publish it.
    data = _stacks_for_lamp_ssd(w1_stack(scale))
    rack = {h.name for h in hosts if h.labels["rack"] == "r000"}
    data["services"]["edge"] = {"image": "edge:1", "ports": ["80:8081"], "resources": {"cpus": 0.05, "memory": "32m"}}
    data["deploy"]["edge"] = {"count": len(rack), "constraint": "labels.rack == 'r000'"}
    s5 = _spec.load_data(data, source="W5")
    blockers = sorted(k for k, h in p1.assignments.items() if k.startswith("lb-") and h in rack)
    t5, p5 = timed(lambda: plan(s5, hosts, p1.assignments), repeat)
    if args.check:
        check(s5, hosts, p5)
    row("W5 repair: kept lbs blocking / moved", "%d / %d" % (len(blockers), len(p5.moved)), "goal equal")
    row("W5 repair re-plan time (s)", "%.3f" % t5)

    # W6: hosts were added; rebalance moves at most 100 kept units onto them.
    fewer = [h for n, h in enumerate(hosts) if n % 20 != 7]
    p6a = plan(spec, fewer)
    t6, p6 = timed(lambda: plan(spec, hosts, p6a.assignments, rebalance={"max_moves": 100}), repeat)
    if args.check:
        check(spec, hosts, p6, check_spread=False)
    row("W6 rebalance: hosts added / moves (max_moves 100)", "%d / %d" % (len(hosts) - len(fewer), len(p6.moves)))
    row("W6 rebalance re-plan time (s)", "%.3f" % t6)
    plain = plan(spec, hosts, p6a.assignments)
    row("W6 host load min / max / std dev, without rebalance", "%.2f / %.2f / %.3f" % load_stats(plain, hosts, spec))
    row("W6 host load min / max / std dev, with rebalance", "%.2f / %.2f / %.3f" % load_stats(p6, hosts, spec))

    # W7: W1 with dynamic host ports on mysql and web (`auto`) and mysql stateful; then W2's host loss.
    data = _stacks_for_lamp_ssd(w1_stack(scale))
    data["services"]["mysql"].update(ports=["auto:3306"], stateful=True)
    data["services"]["web"]["ports"] = ["auto:80"]
    s7 = _spec.load_data(data, source="W7")
    t7, p7 = timed(lambda: plan(s7, hosts), repeat)
    if args.check:
        check(s7, hosts, p7)
    row("W7 auto ports: plan time (s), dynamic ports", "%.3f, %d" % (t7, sum(
        1 for services in p7.ports.values() for entries in services.values() for e in entries if e["host_port"] >= 20000)))
    t7b, p7b = timed(lambda: plan(s7, remaining, p7.assignments, previous_ports=p7.ports), repeat)
    stayed = [k for k, h in p7b.assignments.items() if p7.assignments.get(k) == h and k in p7.ports]
    row("W7 host loss: re-plan time (s)", "%.3f" % t7b)
    row("W7 units that stayed / kept their ports", "%d / %d" % (len(stayed), sum(p7b.ports[k] == p7.ports[k] for k in stayed)),
        "goal equal")
    row("W7 stateful instances held / moved", "%d / %d" % (len(p7b.held), sum(
        1 for k in p7b.moved if any(s7.services[s].stateful for s in p7b.units[k].services))), "goal moved 0")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the scale, one repetition: a CI smoke run")
    parser.add_argument("--check", action="store_true", help="verify every plan with tests/unit/.../test_placement_check.py")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the figures claim
    print("python %s on %s, %d cpus online, pinned to one" % (platform.python_version(), platform.machine(), os.cpu_count() or 0))
    run(args)


if __name__ == "__main__":
    main()

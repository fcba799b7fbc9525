"""Inventory plugin benchmark (docs/performance.md, "Inventory").

    .venv/bin/python bench/inventory.py            # 100, 1,000 and 5,000 hosts, ~1 minute on 2 cores
    .venv/bin/python bench/inventory.py --quick    # smoke run: 20 and 100 hosts, a few seconds
    .venv/bin/python bench/inventory.py --sizes 100 300 --export   # other sizes; also `--list --export` (AWX)
    .venv/bin/python bench/inventory.py --sizes 100 --play 1000    # and site.yml's per-host vars at 1,000 hosts

The workload of issue 13, its counts growing with the hosts (figures at 1,000 hosts): a stack
`shop` of two services (web, app) x2,000, `cache` x1,000, `edge` x100 that conflicts with itself,
a global `agent`: 6,100 containers. Hosts are inline in the source (`hosts:`), in 50 racks of 3
zones; `previous_placement: none`, so nothing outside is read.

Per size, a real `ansible-inventory --list` of a `stackfleet.cluster.stacks` source (the
repository's ansible.cfg): wall time, bytes written to stdout, peak RSS of that child
(os.wait4's rusage), the size of one placed host's variables and of localhost's (where the
cluster-wide variables live), and, in this process, the engine's own time for the same work the
plugin does (`_placement.plan` + `_desired.render`). Then the growth: per host, and each size
against the smallest (linear growth is the size ratio). Last, what site.yml's converge plays template
per host at 1,000 hosts (`--play`): the expressions of before (each host's complement of the placement,
missing secrets over the whole plan on every host) and of now (made once, referenced per host).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(ROOT, ".ansible", "collections")
sys.path.insert(0, COLLECTIONS)

from ansible.parsing.dataloader import DataLoader  # noqa: E402
from ansible.plugins.loader import init_plugin_loader  # noqa: E402
from ansible.template import Templar, trust_as_template  # noqa: E402

init_plugin_loader([COLLECTIONS])  # before the collection is imported: the filters resolve by FQCN

from ansible_collections.stackfleet.cluster.plugins.module_utils import _desired, _placement, _spec  # noqa: E402

VENV_BIN = os.path.join(ROOT, ".venv", "bin")
ZONES, RACKS = 3, 50


def stack(n_hosts):
    """The issue's workload; counts per 1,000 hosts (at least 1 each)."""
    scale = n_hosts / 1000.0

    def n(count):
        return max(1, int(round(count * scale)))

    return {
        "cluster": "bench",
        "services": {
            "web": {"image": "shop-web:1", "resources": {"cpus": 0.25, "memory": "256m"}},
            "app": {"image": "shop-app:1", "env": {"DB_HOST": "db.internal", "CACHE": "cache"},
                    "resources": {"cpus": 0.25, "memory": "512m"}},
            "cache": {"image": "redis:7", "resources": {"cpus": 0.25, "memory": "512m"}},
            "edge": {"image": "haproxy:2.9", "ports": ["80:80", "443:443"], "resources": {"cpus": 0.5, "memory": "256m"}},
            "agent": {"image": "node-exporter:1", "ports": ["9100:9100"], "resources": {"cpus": 0.05, "memory": "64m"}},
        },
        "stacks": {"shop": {"services": ["web", "app"]}},
        "deploy": {
            "shop": {"count": n(2000), "spread": "zone"},
            "cache": {"count": n(1000)},
            "edge": {"count": n(100), "conflicts": ["edge"]},
            "agent": {"global": True},
        },
    }


def host_documents(n_hosts):
    docs = []
    for i in range(n_hosts):
        rack = i % RACKS
        docs.append({"name": "node-%05d" % i, "address": "10.%d.%d.%d" % (rack // 100 + 1, rack % 100, i // RACKS % 250 + 1),
                     "labels": {"zone": "z%d" % (rack % ZONES), "rack": "r%02d" % rack, "disk": "ssd" if i % 3 else "hdd"},
                     "capacity": {"cpus": 8, "memory_mb": 16384}})
    return docs


def write_source(directory, n_hosts):
    """(config path, stack data, host documents) of an inventory source of its own, stack file beside it."""
    data, docs = stack(n_hosts), host_documents(n_hosts)
    with open(os.path.join(directory, "stacks.yml"), "w") as handle:
        yaml.safe_dump(data, handle, sort_keys=False)
    inventory = os.path.join(directory, "inventory")
    os.mkdir(inventory)
    config = os.path.join(inventory, "bench.stackfleet.yml")
    with open(config, "w") as handle:
        yaml.safe_dump({"plugin": "stackfleet.cluster.stacks", "stack_file": "../stacks.yml", "host_groups": [],
                        "previous_placement": "none", "hosts": docs}, handle, sort_keys=False)
    return config, data, docs


def engine_time(data, docs, repeat):
    """Best wall time of what the plugin asks of the engine: plan and render every container."""
    spec = _spec.load_data(data, source="bench")
    hosts = _spec.load_hosts(docs)
    best, containers = float("inf"), 0
    for _attempt in range(repeat):
        start = time.perf_counter()
        placement = _placement.plan(spec, hosts, {})
        rendered = _desired.render(spec, placement.assignments, hosts, placement.ports)
        best = min(best, time.perf_counter() - start)
        containers = sum(len(v) for v in rendered.values())
    return best, containers


#: What a converge play of site.yml templates for every host, before (<= 0.3.0) and now. `per host` is rendered
#: once per host; `once` once per play (set_fact on localhost, or run_once), then only referenced.
PLAY_EXPRESSIONS = (
    ("own containers: stack_plan_containers[inventory_hostname]", "per host",
     "{{ stack_plan_containers[inventory_hostname] }}"),
    ("before: moved keys, each host's complement of the placement", "per host",
     "{{ stackfleet_plan.placement | dict2items | rejectattr('value', 'equalto', inventory_hostname) | map(attribute='key') | list }}"),
    ("now: every key of the plan (stackfleet_plan_keys)", "once", "{{ stackfleet_plan.placement | join(',') }}"),
    ("now: stackfleet_plan_keys as each host's defer_removal", "per host", "{{ stackfleet_plan_keys }}"),
    ("(for comparison: the same keys as a list)", "per host", "{{ stackfleet_plan_key_list }}"),
    ("before: missing_secrets over the whole plan", "per host",
     "{{ stack_plan_containers | stackfleet.cluster.missing_secrets({}) }}"),
    ("now: missing_secrets over the whole plan (run_once)", "once",
     "{{ stack_plan_containers | stackfleet.cluster.missing_secrets({}) }}"),
)


def play_costs(data, docs, samples=10):
    """(label, per host or once, seconds per rendering, seconds per play at len(docs) hosts) of PLAY_EXPRESSIONS,
    rendered with Ansible's Templar over the real plan (mean over `samples` hosts)."""
    spec, hosts = _spec.load_data(data, source="bench"), _spec.load_hosts(docs)
    placement = _placement.plan(spec, hosts, {})
    containers = _desired.render(spec, placement.assignments, hosts, placement.ports)
    plan = {"cluster": spec.cluster, "placement": placement.assignments, "containers": containers}
    keys = list(placement.assignments)
    joined = ",".join(keys)
    names = [d["name"] for d in docs[:samples]]
    rows = []
    for label, kind, expression in PLAY_EXPRESSIONS:
        start = time.perf_counter()
        for name in names:
            variables = {"stackfleet_plan": plan, "stack_plan_containers": containers, "stackfleet_plan_keys": joined,
                         "stackfleet_plan_key_list": keys,
                         "inventory_hostname": name}
            Templar(loader=DataLoader(), variables=variables).template(trust_as_template(expression))
        each = (time.perf_counter() - start) / len(names)
        rows.append((label, kind, each, each * (len(docs) if kind == "per host" else 1)))
    return rows


def ansible_inventory(config, export=False):
    """(wall seconds, stdout bytes, peak RSS MiB, CPU seconds, parsed output) of one `ansible-inventory --list`."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="1", PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    argv = [os.path.join(VENV_BIN, "ansible-inventory"), "-i", config, "--list"] + (["--export"] if export else [])
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=err)  # pylint: disable=consider-using-with
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit("ansible-inventory failed (rc %d): %s" % (proc.returncode, err.read().decode(errors="replace")[-3000:]))
    return wall, len(text), usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime, json.loads(text)


def var_bytes(listing, host):
    """Bytes of one host's variables as ansible-inventory wrote them (0 when absent)."""
    value = listing.get("_meta", {}).get("hostvars", {}).get(host)
    return len(json.dumps(value, sort_keys=True)) if value is not None else 0


def measure(n_hosts, repeat, export=False):
    with tempfile.TemporaryDirectory(prefix="sf-bench-inventory-") as directory:
        config, data, docs = write_source(directory, n_hosts)
        engine, containers = engine_time(data, docs, repeat)
        wall, size, rss, cpu, listing = ansible_inventory(config, export=export)
    hostvars = listing["_meta"]["hostvars"]
    placed = len(listing.get("stackfleet_hosts", {}).get("hosts", []))
    one = var_bytes(listing, docs[0]["name"])
    return {"hosts": n_hosts, "placed": placed, "containers": containers, "engine": engine, "wall": wall, "cpu": cpu, "bytes": size,
            "rss": rss, "host_vars": one, "localhost_vars": var_bytes(listing, "localhost"), "hostvars_entries": len(hostvars)}


def run(args):
    rows = []

    def row(name, value, goal=""):
        rows.append((name, value, goal))
        print("%-62s %18s  %s" % (name, value, goal), flush=True)

    results = []
    for n in args.sizes:
        r = measure(n, 1 if args.quick else 3, export=args.export)
        results.append(r)
        tag = "%5d hosts" % n
        row("%s: placed hosts / containers" % tag, "%d / %d" % (r["placed"], r["containers"]))
        row("%s: engine plan + render (s)" % tag, "%.3f" % r["engine"])
        row("%s: ansible-inventory --list%s wall (s)" % (tag, " --export" if args.export else ""), "%.2f" % r["wall"],
            "goal < 5" if n == 1000 else "goal < 30" if n == 5000 else "")
        row("%s: CPU time of ansible-inventory (s)" % tag, "%.2f" % r["cpu"])
        row("%s: output (MB)" % tag, "%.2f" % (r["bytes"] / 1e6), "goal < 15" if n == 1000 else "")
        row("%s: peak RSS of ansible-inventory (MiB)" % tag, "%.0f" % r["rss"])
        row("%s: one host's vars / localhost's vars (bytes)" % tag, "%d / %d" % (r["host_vars"], r["localhost_vars"]))
        row("%s: per host: ms, output bytes" % tag, "%.2f, %.0f" % (1000 * r["wall"] / n, r["bytes"] / n))
    base = results[0]
    for r in results[1:]:
        tag = "%5d / %d hosts" % (r["hosts"], base["hosts"])
        ratio = r["hosts"] / base["hosts"]
        goal = "goal <= 12x" if (r["hosts"], base["hosts"]) == (1000, 100) else "linear: %.0fx" % ratio
        row("%s: time ratio (linear = %.0fx)" % (tag, ratio), "%.1fx" % (r["wall"] / base["wall"]), goal)
        row("%s: output ratio" % tag, "%.1fx" % (r["bytes"] / base["bytes"]), goal)
        row("%s: peak RSS ratio" % tag, "%.1fx" % (r["rss"] / base["rss"]))
        row("%s: one host's vars ratio" % tag, "%.2fx" % (r["host_vars"] / base["host_vars"]), "goal ~1x")
    if args.play:
        n = args.play
        print("site.yml's converge vars at %d hosts, rendered by Ansible's Templar (mean of 10 hosts):" % n)
        for label, kind, each, play in play_costs(stack(n), host_documents(n)):
            row("  %s" % label, "%.1f ms %s" % (1000 * each, kind), "%.2f s per play" % play)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 and 100 hosts, one engine repetition: a smoke run")
    parser.add_argument("--sizes", type=int, nargs="+", help="host counts (default 100 1000 5000)")
    parser.add_argument("--export", action="store_true", help="run `ansible-inventory --list --export` (what AWX runs)")
    parser.add_argument("--play", type=int, metavar="HOSTS",
                        help="also time site.yml's per-host converge vars at HOSTS (default 1,000; 100 with --quick; 0: no)")
    args = parser.parse_args()
    if not args.sizes:
        args.sizes = [20, 100] if args.quick else [100, 1000, 5000]
    if args.play is None:
        args.play = 100 if args.quick else 1000
    print("python %s on %s, %d cpus online, load average %.1f" % (
        platform.python_version(), platform.machine(), os.cpu_count() or 0, os.getloadavg()[0]))
    run(args)


if __name__ == "__main__":
    main()

"""Beyond the lab, by simulation (issue 11 §4; docs/performance.md "Beyond the lab: simulated engines").

    .venv/bin/python bench/scale_sim.py                 # 100, 1,000, 5,000 hosts; records of 1k/10k/100k instances
    .venv/bin/python bench/scale_sim.py --quick         # 100 hosts, records of 1k/10k: < 60 s
    .venv/bin/python bench/scale_sim.py --sizes 100,1000 --latency-ms 2 --modes direct,playbook

What it measures, each at every size:

  converge   the cluster-wide converge path against simulated engines (bench/sim_engine.py, one
             process, one loopback port per host, per-call latency --latency-ms): a first converge
             (empty engines) and a no-change converge of the issue's workload (bench/inventory.py's
             stack: ~6.1 containers per host). Two ways: `direct` calls the module's pure core
             (_host_converge.converge_fleet, what stackfleet.cluster.cluster_converge runs) in this
             process; `playbook` runs stackfleet.cluster.cluster_converge through ansible-playbook
             on localhost (module arguments passed as an extra-vars file).
  inventory  the stackfleet.cluster.stacks inventory plugin (bench/inventory.py's measure():
             ansible-inventory --list wall time, and the plan + render alone).
  record     the etcd placement record (plugins/module_utils/_state.py) at 1,000 / 10,000 / 100,000
             instances against a real etcd on loopback (default limits): write (compare-and-swap,
             sharded when over 1 MiB) and read time, bytes, chunks.

The simulated engines answer over plain HTTP on 127.0.0.1: TLS to real engines is measured on
the lab (bench/converge.py, bench/site.py). Nothing here leaves loopback.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import inventory as inventory_bench  # noqa: E402  (bench/inventory.py: the workload and the plugin measure)
from ansible_collections.stackfleet.cluster.plugins.module_utils import _desired, _docker, _etcd, _placement, _spec, _state  # noqa: E402

VENV_BIN = os.path.join(ROOT, ".venv", "bin")
ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_range(count: int, start: int = 20000) -> int:
    """A base port with `count` free loopback ports above it."""
    base = start
    while base + count < 65000:
        busy = None
        for port in range(base, base + count):
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port))
                except OSError:
                    busy = port
                    break
        if busy is None:
            return base
        base = busy + 1
    raise SystemExit("no %d free loopback ports" % count)


# ---------------------------------------------------------------- workload

def workload(n_hosts):
    """(cluster, {host: [container documents]}, images) of the issue's stack on n hosts."""
    data, docs = inventory_bench.stack(n_hosts), inventory_bench.host_documents(n_hosts)
    spec = _spec.load_data(data, source="bench")
    hosts = _spec.load_hosts(docs)
    placement = _placement.plan(spec, hosts, {})
    rendered = _desired.render(spec, placement.assignments, hosts, placement.ports)
    images = sorted({doc["image"] for containers in rendered.values() for doc in containers})
    return data["cluster"], {doc["name"]: list(rendered.get(doc["name"], [])) for doc in docs}, images


class SimEngines:
    """bench/sim_engine.py in a child process, one engine per host."""

    def __init__(self, count, images, latency_ms, write_latency_ms):
        self.base = free_range(count)
        command = [sys.executable, os.path.join(ROOT, "bench", "sim_engine.py"), "--engines", str(count),
                   "--base-port", str(self.base), "--latency-ms", str(latency_ms)]
        if write_latency_ms is not None:
            command += ["--write-latency-ms", str(write_latency_ms)]
        for image in images:
            command += ["--image", image]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            self.close()
            raise SystemExit("the simulated engines did not start: %r" % line)
        self.calls = 0

    def url(self, index):
        return "tcp://127.0.0.1:%d" % (self.base + index)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                line = self.proc.stdout.readline()
                if line.startswith("calls"):
                    self.calls = int(line.split()[1])
                self.proc.wait(timeout=30)
            except (subprocess.TimeoutExpired, OSError, ValueError):
                self.proc.kill()
                self.proc.wait(timeout=10)


def fleet_hosts(rendered, sim):
    return {host: {"containers": docs, "connection": {"docker_host": sim.url(index), "tls": False, "timeout": 120}}
            for index, (host, docs) in enumerate(rendered.items())}


def converge_direct(cluster, hosts, host_parallel, max_parallel):
    from ansible_collections.stackfleet.cluster.plugins.module_utils import _host_converge  # the module's core

    def connect(host, _connection):
        return _docker.connect(_docker.resolve_endpoint(hosts[host]["connection"]))

    start = time.perf_counter()
    report = _host_converge.converge_fleet(cluster, hosts, _host_converge.Options(max_parallel=max_parallel), connect,
                                           {h: v["connection"]["docker_host"] for h, v in hosts.items()},
                                           host_parallel=host_parallel, report_unchanged=False)
    seconds = time.perf_counter() - start
    if report["failed"]:
        raise SystemExit("direct converge failed: %s" % str(report["msg"])[:2000])
    changed = sum(1 for value in report["hosts"].values() if value.get("changed"))
    return seconds, changed


PLAYBOOK = """\
- name: Cluster-wide converge against simulated engines (bench/scale_sim.py)
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Converge every host
      stackfleet.cluster.cluster_converge:
        cluster: "{{ sim_cluster }}"
        hosts: "{{ sim_hosts }}"
        host_parallel: "{{ sim_host_parallel }}"
        max_parallel: "{{ sim_max_parallel }}"
        report_unchanged: false
      register: converged
    - name: Count
      ansible.builtin.debug:
        msg: "changed hosts: {{ converged.hosts | dict2items | selectattr('value.changed') | list | length }}"
"""


def converge_playbook(cluster, hosts, host_parallel, max_parallel, workdir):
    playbook = os.path.join(workdir, "converge.yml")
    with open(playbook, "w") as handle:
        handle.write(PLAYBOOK)
    extra = os.path.join(workdir, "vars.json")
    with open(extra, "w") as handle:
        json.dump({"sim_cluster": cluster, "sim_hosts": hosts, "sim_host_parallel": host_parallel,
                   "sim_max_parallel": max_parallel}, handle)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), PATH=VENV_BIN + os.pathsep + os.environ["PATH"],
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_PYTHON_INTERPRETER=sys.executable)
    start = time.perf_counter()
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", playbook, "-e", "@" + extra],
                          env=env, capture_output=True, text=True, timeout=3600, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit("ansible-playbook failed (%d):\n%s\n%s" % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    changed = 0
    for line in proc.stdout.splitlines():
        if "changed hosts:" in line:
            changed = int(line.rsplit(":", 1)[1].strip().strip('"'))
    return seconds, changed


def module_available():
    if not os.path.exists(os.path.join(ROOT, "plugins", "modules", "cluster_converge.py")):
        return "plugins/modules/cluster_converge.py does not exist"
    tracked = subprocess.run(["git", "-C", ROOT, "ls-files", "--error-unmatch", "plugins/modules/cluster_converge.py"],
                             capture_output=True, check=False).returncode == 0
    return "" if tracked else "cluster_converge.py is not committed yet (measured from the working tree)"


def measure_converge(n_hosts, modes, args):
    cluster, rendered, images = workload(n_hosts)
    containers = sum(len(docs) for docs in rendered.values())
    rows = []
    for mode in modes:
        sim = SimEngines(n_hosts, images, args.latency_ms, args.write_latency_ms)
        try:
            hosts = fleet_hosts(rendered, sim)
            with tempfile.TemporaryDirectory(prefix="sf-scale-sim-") as workdir:
                if mode == "direct":
                    run = functools.partial(converge_direct, cluster, hosts, args.host_parallel, args.max_parallel)
                else:
                    run = functools.partial(converge_playbook, cluster, hosts, args.host_parallel, args.max_parallel, workdir)
                first, first_changed = run()
                again, again_changed = run()
        finally:
            sim.close()
        rows.append({"hosts": n_hosts, "containers": containers, "mode": mode, "first": first, "first_changed": first_changed,
                     "no_change": again, "no_change_changed": again_changed, "engine_calls": sim.calls})
        print("  converge %-8s %5d hosts %6d containers: first %7.2f s (%d hosts changed), no-change %7.2f s "
              "(%d changed); %d engine calls" % (mode, n_hosts, containers, first, first_changed, again, again_changed,
                                                 sim.calls), flush=True)
    return rows


# ---------------------------------------------------------------- etcd record

class LoopbackEtcd:
    def __init__(self):
        self.data = tempfile.mkdtemp(prefix="sf-scale-etcd-")
        self.url, peer = "http://127.0.0.1:%d" % free_port(), "http://127.0.0.1:%d" % free_port()
        log = open(os.path.join(self.data, "etcd.log"), "w")  # noqa: SIM115 (kept for the process' life)
        self.proc = subprocess.Popen([ETCD, "--name", "bench", "--data-dir", os.path.join(self.data, "data"),
                                      "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                                      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                                      "--initial-cluster", "bench=" + peer], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as answer:
                    if json.load(answer).get("health") == "true":
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise SystemExit("etcd did not start on loopback")
            time.sleep(0.2)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.data, ignore_errors=True)


def record_of(n, generation=0):
    """n instances of 61 services over n/20 hosts, a third with one published port."""
    hosts = max(1, n // 20)
    placement, ports = {}, {}
    for i in range(n):
        key = "svc%02d-%d" % (i % 61, i + 1)
        placement[key] = "node-%05d" % ((i + generation) % hosts)
        if i % 3 == 0:
            ports[key] = {"svc%02d" % (i % 61): [{"container_port": 80, "protocol": "tcp", "host_ip": "",
                                                  "host_port": 20000 + i % 40000}]}
    return placement, ports


def measure_records(sizes, repeat):
    if not os.path.exists(ETCD):
        print("  record: no etcd binary (apt-get install etcd-server): skipped")
        return []
    etcd = LoopbackEtcd()
    rows = []
    try:
        client = _etcd.EtcdClient([etcd.url], timeout=60)
        for n in sizes:
            cluster = "bench-%d" % n
            client.delete(_state.cluster_prefix(cluster), prefix=True)
            placement, ports = record_of(n)
            size = len(_state.encode_placement(placement, "x" * 64, "2026-12-03T00:00:00Z", "bench", ports).encode())
            writes, reads, rewrites = [], [], []
            revision = 0
            for attempt in range(repeat):
                moved, moved_ports = record_of(n, attempt + 1)
                start = time.perf_counter()
                record = _state.write_placement(client, cluster, moved, expected_revision=revision, spec_hash="x" * 64,
                                                updated_by="bench", ports=moved_ports)[0]
                writes.append(time.perf_counter() - start)
                revision = record.revision
                start = time.perf_counter()
                read = _state.read_record(client, cluster)
                reads.append(time.perf_counter() - start)
                assert read is not None and read.placement == moved
                start = time.perf_counter()
                _state.write_placement(client, cluster, moved, expected_revision=revision, spec_hash="x" * 64,
                                       updated_by="bench", ports=moved_ports)
                rewrites.append(time.perf_counter() - start)
            chunk_keys = len(client.range(_state.chunk_prefix(cluster), prefix=True, keys_only=True)[1])
            row = {"instances": n, "bytes": size, "chunks": record.chunks, "chunk_keys": chunk_keys,
                   "write": min(writes), "read": min(reads), "unchanged_write": min(rewrites)}
            rows.append(row)
            values = (n, size, record.chunks, chunk_keys, row["write"], row["read"], row["unchanged_write"])
            print("  record %7d instances: %9d bytes, %2d chunk(s) (%d chunk keys stored); write %6.3f s, read %6.3f s, "
                  "unchanged write %6.3f s" % values, flush=True)
            client.delete(_state.cluster_prefix(cluster), prefix=True)
    finally:
        etcd.close()
    return rows


# ---------------------------------------------------------------- report

def ratio(rows, key, value, small, large):
    by = {row[key]: row[value] for row in rows}
    if small in by and large in by and by[small]:
        return "%.1fx" % (by[large] / by[small])
    return "-"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 hosts, records of 1,000 and 10,000: < 60 s")
    parser.add_argument("--sizes", default="100,1000,5000", help="host counts (default 100,1000,5000)")
    parser.add_argument("--records", default="1000,10000,100000", help="record sizes in instances")
    parser.add_argument("--modes", default="direct,playbook", help="converge ways: direct, playbook")
    parser.add_argument("--latency-ms", type=float, default=2.0, help="simulated per-call latency (default 2)")
    parser.add_argument("--write-latency-ms", type=float, default=None, help="per write call (default: --latency-ms)")
    parser.add_argument("--host-parallel", type=int, default=16, help="cluster_converge host_parallel (default 16)")
    parser.add_argument("--max-parallel", type=int, default=16, help="containers at once per host (default 16: site.yml's)")
    parser.add_argument("--repeat", type=int, default=2, help="record writes/reads, best of (default 2)")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: converge, inventory, record")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.records, args.repeat = "100", "1000,10000", 1
    sizes = [int(s) for s in args.sizes.split(",") if s]
    skip = set(filter(None, args.skip.split(",")))
    modes = [m for m in args.modes.split(",") if m]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    note = module_available()
    if "playbook" in modes and note.startswith("plugins/"):
        print("playbook mode skipped: " + note)
        modes.remove("playbook")
    elif note:
        print("note: " + note)
    print("simulated engines: %.1f ms per read call, %s ms per write call, host_parallel %d, max_parallel %d; %d CPUs"
          % (args.latency_ms, args.write_latency_ms if args.write_latency_ms is not None else args.latency_ms,
             args.host_parallel, args.max_parallel, os.cpu_count() or 0), flush=True)
    figures = {"converge": [], "inventory": [], "record": [], "latency_ms": args.latency_ms, "host_parallel": args.host_parallel,
               "max_parallel": args.max_parallel}
    for n in sizes:
        if "converge" not in skip:
            figures["converge"] += measure_converge(n, modes, args)
        if "inventory" not in skip:
            row = inventory_bench.measure(n, 1)
            figures["inventory"].append(row)
            print("  inventory %5d hosts %6d containers: ansible-inventory --list %6.2f s (plan + render %.2f s), %d bytes"
                  % (n, row["containers"], row["wall"], row["engine"], row["bytes"]), flush=True)
    if "record" not in skip:
        figures["record"] = measure_records([int(s) for s in args.records.split(",") if s], args.repeat)

    print("\ngrowth (cost at the larger size / cost at the smaller):")
    for mode in modes:
        rows = [r for r in figures["converge"] if r["mode"] == mode]
        for value in ("first", "no_change"):
            values = (mode, value, ratio(rows, "hosts", value, 100, 1000), ratio(rows, "hosts", value, 1000, 5000))
            print("  converge %-8s %-9s 1,000/100 %s   5,000/1,000 %s" % values)
    if figures["inventory"]:
        values = (ratio(figures["inventory"], "hosts", "wall", 100, 1000), ratio(figures["inventory"], "hosts", "wall", 1000, 5000))
        print("  inventory --list      1,000/100 %s   5,000/1,000 %s" % values)
    for value in ("write", "read"):
        values = (value, ratio(figures["record"], "instances", value, 1000, 10000),
                  ratio(figures["record"], "instances", value, 10000, 100000))
        print("  record %-6s 10,000/1,000 %s   100,000/10,000 %s" % values)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=1, default=str)


if __name__ == "__main__":
    main()

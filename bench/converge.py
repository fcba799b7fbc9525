"""Converge benchmark (docs/performance.md, "Converge"). Run as root.

    .venv/bin/python bench/converge.py               # 100 containers over 4 lab hosts
    .venv/bin/python bench/converge.py --per-host 5  # smoke run
    .venv/bin/python bench/converge.py --repeat 3    # the no-change converge best of 3 per side (default 2)

Brings up its own lab (tests/lab/lab.py, instance `sfb`, TLS dockerd per host) and times real
`ansible-playbook` runs, one play over the 4 hosts (forks 4), for the same containers:

  stackfleet   one stackfleet.cluster.containers task per host
  loop         community.docker.docker_container looped over the host's containers
               (the usual playbook; the collection is bundled in the `ansible` package)

Each is timed on: a first converge (empty hosts), a no-change converge, a converge where one
container's env changed, and one where one container's memory limit was raised (stackfleet:
`docker update` in place). Between the two, every container is removed.

It also times the reads one stackfleet run makes per host, straight through `_docker` on the
same lab with the 25 containers per host in place: the listing and image listing, and the
inspects that read each container's real configuration (in-place fields, field-level diffs).
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))

from lab import Lab  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, ".ansible", "collections"))
from ansible_collections.stackfleet.cluster.plugins.module_utils import _docker  # noqa: E402

CLUSTER = "bench"
IMAGE = "local/busybox:1"
#: A service that stops at SIGTERM at once, so neither side waits out a stop timeout.
SERVE = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]

STACKFLEET = """
- hosts: all
  gather_facts: false
  tasks:
    - stackfleet.cluster.containers:
        cluster: {cluster}
        containers: "{{{{ docs[inventory_hostname] }}}}"
        max_parallel: 5
        wait: running
        docker_host: "{{{{ docker_url }}}}"
        validate_certs: true
        ca_path: {ca}
        client_cert: {cert}
        client_key: {key}
"""

LOOP = """
- hosts: all
  gather_facts: false
  tasks:
    - community.docker.docker_container:
        name: "{{{{ item.name }}}}"
        image: "{{{{ item.image }}}}"
        command: "{{{{ item.command }}}}"
        env: "{{{{ item.env }}}}"
        labels: "{{{{ item.labels }}}}"
        restart_policy: "{{{{ item.restart }}}}"
        network_mode: "{{{{ item.network_mode }}}}"
        cpus: "{{{{ item.resources.cpus }}}}"
        memory: "{{{{ item.resources.memory_mb }}}}M"
        state: started
        docker_host: "{{{{ docker_url }}}}"
        validate_certs: true
        ca_path: {ca}
        client_cert: {cert}
        client_key: {key}
      loop: "{{{{ docs[inventory_hostname] }}}}"
      loop_control: {{label: "{{{{ item.name }}}}"}}
"""


def documents(hosts, per_host, drift=False, memory=16):
    docs = {}
    for h, host in enumerate(hosts):
        docs[host.name] = []
        for i in range(1, per_host + 1):
            inst = "app-%d" % (h * per_host + i)
            env = {"APP_ID": inst, "DB_PASSWORD": "secret-%d" % i}
            if drift and h == 0 and i == 1:
                env["DB_PASSWORD"] = "rotated"
            docs[host.name].append({
                "name": "%s.%s.app" % (CLUSTER, inst), "cluster": CLUSTER, "deploy": "app", "instance": inst, "service": "app",
                "host": host.name, "image": IMAGE, "command": SERVE, "entrypoint": None, "env": env,
                "ports": [], "volumes": [], "labels": {"team": "bench"}, "restart": "unless-stopped", "network_mode": "host",
                "resources": {"cpus": 0.05, "memory_mb": memory if h == 0 and i == 1 else 16}, "healthcheck": None})
    return docs


def time_reads(lab, cluster, repeat=20):
    """Per host, median seconds of (listing + image listing) and of the inspects (Engine.configs)."""
    base, extra, counts = [], [], []
    for host in lab.hosts:
        engine = _docker.connect(_docker.resolve_endpoint({
            "docker_host": host.docker_url, "validate_certs": True, "ca_path": lab.ca_cert,
            "client_cert": lab.client_cert, "client_key": lab.client_key}, environ={}))
        for _round in range(repeat):
            start = time.perf_counter()
            observed = engine.list_cluster(cluster)
            engine.image_ids([IMAGE])
            middle = time.perf_counter()
            configs = engine.configs(observed, [o.name for o in observed])
            end = time.perf_counter()
            base.append(middle - start)
            extra.append(end - middle)
        counts.append(len(configs))
    base.sort()
    extra.sort()
    return base[len(base) // 2], extra[len(extra) // 2], counts


def run_play(workdir, playbook, docs):
    with open(os.path.join(workdir, "docs.json"), "w") as handle:
        json.dump({"docs": docs}, handle)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_INVENTORY_ENABLED="ansible.builtin.ini",
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default", ANSIBLE_FORKS="4")
    # docker_container's client lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE replace ca_path (psf/requests#3829):
    # unset for both sides, so the loop can reach the lab's TLS engines at all.
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        env.pop(name, None)
    start = time.monotonic()
    proc = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", os.path.join(workdir, "inventory"),
                           "-e", "@" + os.path.join(workdir, "docs.json"), os.path.join(workdir, playbook)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False)
    took = time.monotonic() - start
    if proc.returncode:
        sys.exit("%s failed:\n%s\n%s" % (playbook, proc.stdout[-3000:], proc.stderr[-2000:]))
    changed = sum(int(part.split("=")[1]) for line in proc.stdout.splitlines() if "changed=" in line
                  for part in line.split() if part.startswith("changed="))
    return took, changed


def remove_all(lab):
    for host in lab.hosts:
        engine = host.engine
        for container in engine.containers():
            engine.remove(container["Id"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-host", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=2,
                        help="no-change runs per side; the fastest counts (a shared machine's load comes in bursts)")
    args = parser.parse_args()
    lab = Lab(name=os.environ.get("STACKFLEET_BENCH_LAB", "sfb"), subnet=os.environ.get("STACKFLEET_BENCH_SUBNET", "10.248.0.0/24"), hosts=4)
    try:
        lab.up()
        with tempfile.TemporaryDirectory() as workdir:
            with open(os.path.join(workdir, "inventory"), "w") as handle:
                for host in lab.hosts:
                    handle.write("%s ansible_connection=local ansible_python_interpreter=%s/.venv/bin/python docker_url=%s\n"
                                 % (host.name, ROOT, host.docker_url))
            tls = dict(cluster=CLUSTER, ca=lab.ca_cert, cert=lab.client_cert, key=lab.client_key)
            for name, text in (("stackfleet.yml", STACKFLEET), ("loop.yml", LOOP)):
                with open(os.path.join(workdir, name), "w") as handle:
                    handle.write(text.format(**tls))
            base, drifted = documents(lab.hosts, args.per_host), documents(lab.hosts, args.per_host, drift=True)
            raised = documents(lab.hosts, args.per_host, drift=True, memory=32)
            results = {}
            for label, playbook in (("stackfleet", "stackfleet.yml"), ("loop", "loop.yml")):
                remove_all(lab)
                first = run_play(workdir, playbook, base)
                unchanged = [run_play(workdir, playbook, base) for _run in range(max(1, args.repeat))]
                results[label] = [first, min(unchanged)] + [run_play(workdir, playbook, docs) for docs in (drifted, raised)]
                results[label + " no-change runs"] = [took for took, _changed in unchanged]
                if label == "stackfleet":
                    reads = time_reads(lab, CLUSTER)
        remove_all(lab)
    finally:
        lab.down()

    total = args.per_host * len(lab.hosts)
    print("converge benchmark: %d containers over %d hosts (TLS dockerd per host), forks 4, %s, Python %s, %d cores" % (
        total, len(lab.hosts), platform.machine(), platform.python_version(), os.cpu_count()))
    print("%-22s %14s %14s %8s   hosts changed (stackfleet / loop)" % ("scenario", "stackfleet s", "loop s", "ratio"))
    for i, scenario in enumerate(("first converge", "no-change converge", "one-container drift", "one memory limit raised")):
        (sf, sf_changed), (lp, lp_changed) = results["stackfleet"][i], results["loop"][i]
        print("%-22s %14.2f %14.2f %7.1fx   %d / %d" % (scenario, sf, lp, lp / sf, sf_changed, lp_changed))
    (listing, inspects, counts) = reads
    print("reads per host (median of 20 x %d hosts): listing + image listing %.1f ms; inspects of %d containers %.1f ms "
          "(%.2f ms per container)" % (len(counts), listing * 1e3, max(counts), inspects * 1e3, inspects * 1e3 / max(1, *counts)))
    print("no-change runs (s): stackfleet %s, loop %s; load average at the end %.1f" % (
        ", ".join("%.2f" % x for x in results["stackfleet no-change runs"]),
        ", ".join("%.2f" % x for x in results["loop no-change runs"]), os.getloadavg()[0]))
    ratio = results["loop"][1][0] / results["stackfleet"][1][0]
    print("goal: no-change converge >= 10x faster than the loop: %s (%.1fx)" % ("met" if ratio >= 10 else "NOT met", ratio))


if __name__ == "__main__":
    main()

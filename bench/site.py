"""site.yml benchmark (docs/performance.md, "site.yml as the cluster grows"). Run as root.

    .venv/bin/python bench/site.py                    # 4, 8 and 16 hosts x 25 containers
    .venv/bin/python bench/site.py --quick            # smoke: 2 hosts x 5 containers, no peer
    .venv/bin/python bench/site.py --hosts 4 --profile  # also the slowest tasks of the no-change run
    .venv/bin/python bench/site.py --hosts 4,8 --mode both --no-image --no-peer  # per-host plays vs cluster mode

What users run is `site.yml`, not the containers module: for each size it brings up its own lab
(tests/lab/lab.py, instance `sfs`, TLS dockerd per host; etcd members on the first three hosts,
bootstrapped by the etcd role as in production) and times real `ansible-playbook` runs:

  first       site.yml on empty hosts (etcd bootstrap, plan, N x 25 containers created)
  no-change   site.yml again (best of --repeat): what a scheduled run costs every time
  image       site.yml after the service's image changed: every container replaced, rolling
  floor       a playbook that lists each host's containers once with community.docker.docker_host_info
              (the least any tool must do to know a host is right), the same hosts, forks, TLS

and prints seconds per run and per host, and each run's ratio to the floor. --mode cluster runs site.yml with
stackfleet_converge_mode=cluster (one controller task converges every host, issue 11 §2); --mode both runs
both modes on the same lab, each from empty hosts: engines and etcd are then prepared first by an untimed
`site.yml --skip-tags stack`, so "first" is the containers' first converge with etcd up, in either mode. At the smallest size
it also runs the usual peer on the same containers: a community.docker.docker_container loop
(bench/converge.py's playbook), first and no-change.
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
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import converge  # noqa: E402  # the docker_container loop peer and its documents
from lab import Lab  # noqa: E402

CLUSTER = "bench"
FORKS = 16
PROFILE_LINES = 15  # --profile-lines
ETCD_MEMBERS = 3

STACK = """cluster: %(cluster)s
services:
  app:
    image: %(image)s
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
    env: {APP_ID: "{{ instance.id }}"}
    labels: {team: bench}
    restart: unless-stopped
    network_mode: host
    resources: {cpus: 0.01, memory: 16m}
deploy:
  app: {count: %(count)d, max_per_host: %(per_host)d, update: {parallelism: %(per_host)d}}
"""

FLOOR = """
- name: List each host's containers once
  hosts: stackfleet_hosts
  gather_facts: false
  tasks:
    - name: Containers of the cluster
      community.docker.docker_host_info:
        containers: true
        containers_filters: {label: "io.stackfleet.cluster=%(cluster)s"}
        docker_host: "{{ stackfleet_docker_host }}"
        tls: true
        validate_certs: true
        ca_path: "{{ stackfleet_docker_ca_path }}"
        client_cert: "{{ stackfleet_docker_client_cert }}"
        client_key: "{{ stackfleet_docker_client_key }}"
"""


def clean_env(**extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_FORKS=str(FORKS), ANSIBLE_NOCOLOR="1", **extra)
    # requests lets these replace the lab CA given to TLS clients (psf/requests#3829).
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        env.pop(name, None)
    return env


def write_inventory(lab, folder):
    """The lab's inventory with etcd on the first three hosts (a 16-member etcd is not a production shape)."""
    with open(lab.inventory_path) as handle:
        doc = yaml.safe_load(handle)
    members = [host.name for host in lab.hosts[:ETCD_MEMBERS]]
    doc["all"]["children"]["etcd"]["hosts"] = {name: {} for name in members}
    doc["all"]["vars"]["stackfleet_etcd_endpoints"] = [host.etcd_endpoint for host in lab.hosts[:ETCD_MEMBERS]]
    os.makedirs(os.path.join(folder, "group_vars"), exist_ok=True)
    with open(os.path.join(folder, "hosts.yml"), "w") as handle:
        yaml.safe_dump(doc, handle)
    with open(os.path.join(ROOT, "inventories", "lab", "group_vars", "all.yml")) as source, \
            open(os.path.join(folder, "group_vars", "all.yml"), "w") as target:
        target.write(source.read())
    return folder


def run(playbook, inventory, extra_vars=None, profile=False, args=()):
    """(seconds, changed on all hosts, the slowest tasks when profiling)."""
    args = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inventory, playbook] + list(args)
    if extra_vars:
        args += ["-e", json.dumps(extra_vars)]
    env = (clean_env(ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT=str(max(PROFILE_LINES, 20)))
           if profile else clean_env())
    start = time.monotonic()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600, check=False)
    took = time.monotonic() - start
    if proc.returncode:
        sys.exit("%s failed (rc %d):\n%s\n%s" % (playbook, proc.returncode, proc.stdout[-4000:], proc.stderr[-2000:]))
    changed = sum(int(part.split("=")[1]) for line in proc.stdout.splitlines() if "changed=" in line
                  for part in line.split() if part.startswith("changed="))
    slowest = []
    if profile:
        # profile_tasks ends with "<task name> ---- 1.23s" lines, slowest first
        slowest = [line.strip() for line in proc.stdout.splitlines() if line.rstrip().endswith("s") and " ---" in line][:PROFILE_LINES]
    return took, changed, slowest


def tag_image(lab, source, target):
    repository, tag = target.rsplit(":", 1)
    for index in range(1, len(lab.hosts) + 1):
        lab.docker_client(index).images.get(source).tag(repository, tag)


def bench_mode(lab, site, inventory, stacks, mode, repeat, profile, image):
    """first / no-change / image runs of site.yml in one converge mode, from the hosts as they are."""
    extra = {"stackfleet_converge_mode": mode}
    out = {}
    out["first"] = run(site, inventory, dict(extra, stackfleet_stack_file=stacks["1"]))
    no_change = [run(site, inventory, dict(extra, stackfleet_stack_file=stacks["1"]), profile=profile and i == 0)
                 for i in range(max(1, repeat))]
    out["no-change"] = min(no_change, key=lambda r: r[0])
    out["no-change runs"] = [r[0] for r in no_change]
    out["slowest"] = no_change[0][2]
    out["image"] = run(site, inventory, dict(extra, stackfleet_stack_file=stacks["2"])) if image else (float("nan"), 0, [])
    return out


def bench_size(hosts, per_host, repeat, peer, profile, subnet, modes=("host",), image=True):
    lab = Lab(name=os.environ.get("STACKFLEET_BENCH_LAB", "sfs"), subnet=subnet, hosts=hosts)
    lab.down()
    out = {"hosts": hosts, "per_host": per_host, "modes": {}}
    try:
        lab.up()
        tag_image(lab, converge.IMAGE, "local/busybox:2")
        with tempfile.TemporaryDirectory() as work:
            inventory = write_inventory(lab, os.path.join(work, "inventory"))
            stacks = {}
            for version in ("1", "2"):
                stacks[version] = os.path.join(work, "stack-%s.yml" % version)
                with open(stacks[version], "w") as handle:
                    handle.write(STACK % {"cluster": CLUSTER, "image": "local/busybox:%s" % version,
                                          "count": hosts * per_host, "per_host": per_host})
            floor = os.path.join(work, "floor.yml")
            with open(floor, "w") as handle:
                handle.write(FLOOR % {"cluster": CLUSTER})
            site = os.path.join(ROOT, "playbooks", "site.yml")
            if len(modes) > 1:  # every mode's first run from empty hosts with etcd up
                run(site, inventory, {"stackfleet_stack_file": stacks["1"]}, args=["--skip-tags", "stack"])
            for mode in modes:
                if len(modes) > 1:
                    converge.remove_all(lab)
                out["modes"][mode] = bench_mode(lab, site, inventory, stacks, mode, repeat, profile, image)
            out["floor"] = min((run(floor, inventory) for _run in range(max(1, repeat))), key=lambda r: r[0])
            running = sum(len(lab.docker_client(i).containers.list(filters={"label": "io.stackfleet.cluster=" + CLUSTER}))
                          for i in range(1, hosts + 1))
            out["running"] = running
            if peer:
                out["peer"] = run_peer(lab, work, per_host)
    finally:
        lab.down()
    return out


def run_peer(lab, work, per_host):
    """docker_container looped over the same number of containers per host, on emptied hosts."""
    converge.remove_all(lab)
    peer = os.path.join(work, "peer")
    os.makedirs(peer)
    with open(os.path.join(peer, "inventory"), "w") as handle:
        for host in lab.hosts:
            handle.write("%s ansible_connection=local ansible_python_interpreter=%s/.venv/bin/python docker_url=%s\n"
                         % (host.name, ROOT, host.docker_url))
    with open(os.path.join(peer, "loop.yml"), "w") as handle:
        handle.write(converge.LOOP.format(ca=lab.ca_cert, cert=lab.client_cert, key=lab.client_key))
    docs = converge.documents(lab.hosts, per_host)
    first = converge.run_play(peer, "loop.yml", docs)
    again = converge.run_play(peer, "loop.yml", docs)
    return first, again


def report(results, repeat):
    print("site.yml benchmark: %s, Python %s, %d cores, forks %d, etcd on %d hosts; load average at the end %.1f" % (
        platform.machine(), platform.python_version(), os.cpu_count(), FORKS, min(ETCD_MEMBERS, results[0]["hosts"]), os.getloadavg()[0]))
    print("%-7s %6s %6s | %9s %9s %9s %7s | %8s %8s %8s | %7s %7s" % (
        "mode", "hosts", "ctrs", "first s", "nochg s", "image s", "floor s", "first/h", "nochg/h", "image/h", "nochg/fl", "image/fl"))
    for r in results:
        for mode, m in r["modes"].items():
            hosts, floor = r["hosts"], r["floor"][0]
            first, nochg, image = m["first"][0], m["no-change"][0], m["image"][0]
            print("%-7s %6d %6d | %9.1f %9.1f %9.1f %7.1f | %8.2f %8.2f %8.2f | %6.1fx %6.1fx" % (
                mode, hosts, r["running"], first, nochg, image, floor, first / hosts, nochg / hosts, image / hosts,
                nochg / floor, image / floor))
    for r in results:
        for mode, m in r["modes"].items():
            print("  %s mode, %d hosts: no-change runs %s s (best of %d); changed on the no-change run: %d" % (
                mode, r["hosts"], ", ".join("%.1f" % x for x in m["no-change runs"]), repeat, m["no-change"][1]))
            if m["no-change"][1]:
                print("  WARNING: the no-change run changed something")
            if m["slowest"]:
                print("  slowest tasks of the first no-change run at %d hosts (%s mode):" % (r["hosts"], mode))
                for line in m["slowest"]:
                    print("    " + line)
        if "peer" in r:
            (first, _c1), (again, _c2) = r["peer"]
            print("  peer at %d hosts (community.docker.docker_container loop, same containers): first %.1f s, no-change %.1f s" % (
                r["hosts"], first, again))
    for mode in results[0]["modes"]:
        if len(results) > 1:
            small, large = results[0]["modes"][mode], results[-1]["modes"][mode]
            growth = (large["no-change"][0] / results[-1]["hosts"]) / (small["no-change"][0] / results[0]["hosts"])
            print("%s mode: no-change per-host cost at %d hosts / at %d hosts: %.2f (1.0 = flat)" % (
                mode, results[-1]["hosts"], results[0]["hosts"], growth))
        ratio = results[-1]["modes"][mode]["no-change"][0] / results[-1]["floor"][0]
        print("%s mode: goal no-change site.yml within 2x of the floor at %d hosts: %s (%.1fx)" % (
            mode, results[-1]["hosts"], "met" if ratio <= 2 else "NOT met", ratio))


def main():
    global PROFILE_LINES  # pylint: disable=global-statement  # one setting for every run of this process
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", default="4,8,16", help="comma-separated lab sizes (default 4,8,16)")
    parser.add_argument("--per-host", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=2, help="no-change and floor runs per size; the fastest counts")
    parser.add_argument("--no-peer", action="store_true", help="skip the docker_container loop at the smallest size")
    parser.add_argument("--profile", action="store_true", help="print the slowest tasks of a no-change run")
    parser.add_argument("--profile-lines", type=int, default=PROFILE_LINES, help="how many of the slowest tasks --profile prints")
    parser.add_argument("--quick", action="store_true", help="2 hosts x 5 containers, no peer: a smoke run")
    parser.add_argument("--mode", choices=["host", "cluster", "both"], default="host",
                        help="stackfleet_converge_mode of the site.yml runs (both: each from empty hosts, same lab)")
    parser.add_argument("--no-image", action="store_true", help="skip the image-change run")
    args = parser.parse_args()
    PROFILE_LINES = args.profile_lines
    sizes = [2] if args.quick else [int(x) for x in args.hosts.split(",")]
    per_host = 5 if args.quick else args.per_host
    base = os.environ.get("STACKFLEET_BENCH_SUBNET", "10.248.%d.0/24")
    results = []
    for i, hosts in enumerate(sizes):
        results.append(bench_size(hosts, per_host, args.repeat, peer=(i == 0 and not args.quick and not args.no_peer),
                                  profile=args.profile, subnet=base % (10 + i) if "%d" in base else base,
                                  modes=("host", "cluster") if args.mode == "both" else (args.mode,), image=not args.no_image))
    report(results, args.repeat)


if __name__ == "__main__":
    main()

"""stack_plan through ansible-playbook (docs/performance.md, "stack_plan's result").

    .venv/bin/python bench/plan_result.py            # 1,000 hosts (6,100 containers) against 10 hosts, 7 runs each
    .venv/bin/python bench/plan_result.py --quick    # smoke: 100 against 10 hosts, 2 runs each

What a run pays for planning is not the engine (~0.1 s at 1,000 hosts) but Ansible moving the
result: every value of it is copied and tagged by the worker, the callback and `register`. The
workload is bench/inventory.py's (issue 13's 6,100 containers at 1,000 hosts). For each form of
the `documents` option, a playbook on localhost reads the host documents from a file and runs
stack_plan once; the big run's cost minus the tiny run's (the same playbook on 10 hosts) is what
the plan's size costs, reported as containers placed per second, by wall time and by CPU time of
ansible-playbook and its children (the better figure on a shared machine). Best of N runs.
The issue's goal: >= 20,000 placements/s at 1,000 hosts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import inventory  # noqa: E402  # the workload: stack() and host_documents()

PLAYBOOK = """- name: Plan once
  hosts: localhost
  gather_facts: false
  vars:
    host_documents: "{{ lookup('ansible.builtin.file', playbook_dir ~ '/hosts.json') | ansible.builtin.from_json }}"
  tasks:
    - name: Plan
      stackfleet.cluster.stack_plan:
        stack_file: "{{ playbook_dir }}/stacks.yml"
        hosts: "{{ host_documents }}"
        documents: "{{ documents }}"
      register: plan
    - name: Count
      ansible.builtin.debug:
        msg: "{{ plan.placement | length }} placement keys"
"""


def workload(directory, n_hosts):
    os.makedirs(directory)
    with open(os.path.join(directory, "stacks.yml"), "w") as handle:
        yaml.safe_dump(inventory.stack(n_hosts), handle, sort_keys=False)
    with open(os.path.join(directory, "hosts.json"), "w") as handle:
        json.dump(inventory.host_documents(n_hosts), handle)
    with open(os.path.join(directory, "play.yml"), "w") as handle:
        handle.write(PLAYBOOK)
    return os.path.join(directory, "play.yml")


def containers_of(n_hosts):
    data = inventory.stack(n_hosts)
    per_instance = {"shop": 2}
    return sum(d["count"] * per_instance.get(k, 1) for k, d in data["deploy"].items() if "count" in d) + n_hosts  # + global agent


def one_run(playbook, documents):
    """(wall s, CPU s of ansible-playbook and its children)."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", "localhost,", "-c", "local",
                           "-e", "ansible_python_interpreter=" + sys.executable, "-e", "documents=" + documents, playbook],
                          env=env, capture_output=True, text=True, check=False, timeout=600)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit("ansible-playbook failed:\n" + proc.stdout[-3000:] + proc.stderr[-3000:])
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 against 10 hosts, 2 runs each")
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    big, runs = (100, 2) if args.quick else (args.hosts, args.runs)
    tiny = 10
    print("stack_plan through ansible-playbook: %d hosts (%d containers) against %d hosts, best of %d; %s, %d CPUs, load %.1f"
          % (big, containers_of(big), tiny, runs, platform.python_version(), os.cpu_count(), os.getloadavg()[0]))
    with tempfile.TemporaryDirectory(prefix="sf-plan-bench-") as scratch:
        plays = {n: workload(os.path.join(scratch, str(n)), n) for n in (tiny, big)}
        rows = {}
        for documents in ("full", "compact"):
            best = {}
            for n in (tiny, big):
                samples = [one_run(plays[n], documents) for attempt in range(runs)]
                best[n] = (min(s[0] for s in samples), min(s[1] for s in samples))
            rows[documents] = best
            wall = best[big][0] - best[tiny][0]
            cpu = best[big][1] - best[tiny][1]
            line = "  documents=%-8s tiny %.2f s wall %.2f s CPU | big %.2f s wall %.2f s CPU" % (
                documents, best[tiny][0], best[tiny][1], best[big][0], best[big][1])
            print(line + " | big - tiny: %.2f s wall = %s/s, %.2f s CPU = %s/s" % (
                wall, rate(containers_of(big), wall), cpu, rate(containers_of(big), cpu)))
        full_cpu = rows["full"][big][1] - rows["full"][tiny][1]
        compact_cpu = rows["compact"][big][1] - rows["compact"][tiny][1]
        print("  compact against full (CPU, big - tiny): %.1fx less; goal >= 20,000 placements/s at 1,000 hosts" % (
            full_cpu / compact_cpu if compact_cpu > 0 else float("nan")))


def rate(count, seconds):
    return "{:,.0f}".format(count / seconds) if seconds > 0 else "n/a (below the noise)"


if __name__ == "__main__":
    main()

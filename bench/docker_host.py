"""docker_host fast path benchmark (docs/performance.md, "docker_host fast path"). Run as root.

    .venv/bin/python bench/docker_host.py                        # 1 and 8 managed hosts, 5 steady runs each
    .venv/bin/python bench/docker_host.py --hosts 16 --repeat 3
    .venv/bin/python bench/docker_host.py --checkout /tmp/before  # the same on another checkout (before/after)

What a scheduled run costs on hosts that are already right: the docker_host role with
docker_host_manage (the fast path: one raw read per host, the comparison on the controller, the
endpoint check) on N inventory hosts. Each host is this machine through a local connection on the
role's raw (CoreOS) path with its files under its own scratch root, as in
tests/integration/test_docker_host_fast_path.py; `systemctl` is a stand-in on PATH that reports the
state of one real lab dockerd (tests/lab, instance `dhb`, TLS), which every host's endpoint check asks.
The first run writes every host's files and (re)starts the engine; then --repeat steady runs are
timed (wall time of ansible-playbook, and the role's tasks summed by ansible.posix.profile_tasks),
and the fastest counts. Each steady run must report changed=0.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))

from lab import Lab  # noqa: E402

FORKS = 16
PLAYBOOK = "tests/integration/playbooks/docker_host_fast_path.yml"

SYSTEMCTL = """#!/bin/sh
# systemctl stand-in for docker.service on every bench host: the state of the one lab dockerd.
for arg in "$@"; do case "$arg" in --*) ;; *) set -- "$@" "$arg" ;; esac; shift; done
case "$1" in
  show) echo {state}/docker.service ;;
  is-enabled) echo enabled ;;
  is-active) if [ -f {pidfile} ] && kill -0 "$(cat {pidfile})" 2>/dev/null; then echo active; else echo inactive; exit 3; fi ;;
  enable|daemon-reload) ;;
  start|restart) {python} -c "import sys; sys.path.insert(0, '{lab_dir}'); from lab import Lab; \\
lab = Lab(name='{name}', subnet='{subnet}', hosts=1); lab.stop_docker(1); lab.start_docker(1)" ;;
  *) echo "systemctl stand-in: $*: not handled" >&2; exit 1 ;;
esac
"""

VENDOR_UNIT = "[Service]\nExecStart=/usr/bin/dockerd -H fd:// --containerd=/run/containerd/containerd.sock\n"


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env.update(extra)
    return env


def prepare(work, lab, hosts):
    """Stand-in systemctl, scratch roots and the inventory; returns (inventory path, PATH)."""
    state = os.path.join(work, "state")
    bin_dir = os.path.join(work, "bin")
    os.makedirs(state)
    os.makedirs(bin_dir)
    with open(os.path.join(state, "docker.service"), "w") as handle:
        handle.write(VENDOR_UNIT)
    h1 = lab.host(1)
    fake = os.path.join(bin_dir, "systemctl")
    with open(fake, "w") as handle:
        handle.write(SYSTEMCTL.format(state=state, pidfile=h1.docker_pidfile, python=sys.executable,
                                      lab_dir=os.path.join(ROOT, "tests", "lab"), name=lab.name, subnet=lab.subnet))
    os.chmod(fake, os.stat(fake).st_mode | stat.S_IEXEC)
    inventory = {"engines": {"hosts": {"e%d" % i: {"sf_bench_root": os.path.join(work, "e%d" % i)} for i in range(1, hosts + 1)},
                             "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}
    path = os.path.join(work, "hosts.json")
    with open(path, "w") as handle:
        json.dump(inventory, handle)
    # Extra vars: the role's vars/main.yml outranks inventory variables, and the paths must never be the
    # machine's own /etc/docker. Each host's paths are templated from its own sf_bench_root.
    extra = {
        "_docker_host_coreos_ids": ["debian"],  # this Debian machine takes the raw-only path
        "_docker_host_daemon_json": "{{ sf_bench_root }}/etc/docker/daemon.json",
        "_docker_host_dropin_dir": "{{ sf_bench_root }}/etc/systemd/system/docker.service.d",
        "_docker_host_pidfile": h1.docker_pidfile,
        "docker_host_tls_dir": "{{ sf_bench_root }}/etc/docker/tls",
        "docker_host_tls_ca_cert": lab.ca_cert, "docker_host_tls_cert": h1.server_cert, "docker_host_tls_key": h1.server_key,
        "docker_host_check_address": h1.address, "docker_host_tls_client_cert": lab.client_cert,
        "docker_host_tls_client_key": lab.client_key, "docker_host_daemon_options": {"log-driver": "json-file"},
    }
    return path, extra, bin_dir + os.pathsep + os.environ.get("PATH", "")


def run(checkout, inventory, extra, path, profile):
    argv = [os.path.join(ROOT, ".venv", "bin", "ansible-playbook"), "-i", inventory, "--forks", str(FORKS),
            "-e", json.dumps(extra), os.path.join(checkout, PLAYBOOK)]
    env = clean_env(ANSIBLE_CONFIG=os.path.join(checkout, "ansible.cfg"), ANSIBLE_NOCOLOR="1", PATH=path)
    if profile:
        env.update(ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="100")
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=900, check=False)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit("ansible-playbook failed (%d):\n%s\n%s" % (proc.returncode, proc.stdout[-4000:], proc.stderr[-2000:]))
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", proc.stdout.rpartition("PLAY RECAP")[2]))
    tasks = {}
    for line in proc.stdout.splitlines():
        match = re.match(r"^(.*?) -{3,} (\d+\.\d+)s$", line.strip())
        if match:
            tasks[match.group(1).strip()] = float(match.group(2))
    return {"seconds": round(seconds, 2), "changed": changed, "tasks": tasks}


def bench(checkout, lab, hosts, repeat):
    with tempfile.TemporaryDirectory(prefix="sf-bench-dh-") as work:
        inventory, extra, path = prepare(work, lab, hosts)
        first = run(checkout, inventory, extra, path, profile=False)
        missing = [i for i in range(1, hosts + 1) if not os.path.isfile(os.path.join(work, "e%d" % i, "etc/docker/daemon.json"))]
        if missing:
            raise SystemExit("the first run did not write the scratch daemon.json of host(s) %s" % missing)
        steady = [run(checkout, inventory, extra, path, profile=True) for _index in range(repeat)]
    if any(r["changed"] for r in steady):
        raise SystemExit("a steady run changed something: %s" % [r["changed"] for r in steady])
    best = min(steady, key=lambda r: r["seconds"])
    return {"hosts": hosts, "first_s": first["seconds"], "steady_s": [r["seconds"] for r in steady],
            "best_s": best["seconds"], "role_tasks_s": round(sum(best["tasks"].values()), 2),
            "slowest": sorted(best["tasks"].items(), key=lambda item: -item[1])[:5]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--hosts", default="1,8", help="comma-separated managed host counts")
    parser.add_argument("--repeat", type=int, default=5, help="steady runs per size; the fastest counts")
    parser.add_argument("--checkout", default=ROOT, help="checkout whose role and ansible.cfg run (default: this one)")
    parser.add_argument("--name", default="dhb")
    parser.add_argument("--subnet", default=os.environ.get("STACKFLEET_BENCH_DH_SUBNET", "10.224.60.0/24"))
    args = parser.parse_args()
    lab = Lab(name=args.name, subnet=args.subnet, hosts=1)
    lab.up()
    try:
        for hosts in (int(n) for n in args.hosts.split(",")):
            print(json.dumps(bench(os.path.abspath(args.checkout), lab, hosts, args.repeat)), flush=True)
    finally:
        lab.down()


if __name__ == "__main__":
    main()

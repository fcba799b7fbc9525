"""docker_host restarts engines one host at a time (issue 8 §4): three hosts notify the restart
handler at once; a fake `systemctl` records each restart's start and end, and no two overlap.
No lab needed: the hosts are local connections and the handler is the role's own raw one."""
import os
import stat

from conftest import ansible_playbook

FAKE_SYSTEMCTL = """#!/bin/sh
# systemctl stand-in: a restart takes 1 s; log "<start> <end> <args>"
start=$(date +%s.%N)
case "$*" in *restart*) sleep 1 ;; esac
echo "$start $(date +%s.%N) $*" >> "{log}"
"""


def test_engine_restarts_go_one_host_at_a_time(tmp_path):
    log = tmp_path / "restarts.log"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL.format(log=log))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("engines:\n  hosts:\n    e1: {}\n    e2: {}\n    e3: {}\n  vars:\n    ansible_connection: local\n")
    run = ansible_playbook("tests/integration/playbooks/docker_host_restarts.yml", str(inventory), args=("--forks", "5"),
                           env={"PATH": str(bin_dir) + os.pathsep + os.environ["PATH"]})
    assert run.rc == 0, run.stdout[-3000:] + run.stderr[-2000:]
    restarts = sorted((float(a), float(b)) for a, b, *rest in (line.split() for line in log.read_text().splitlines())
                      if "restart" in rest)
    assert len(restarts) == 3, log.read_text()
    for (_start, end), (next_start, _end) in zip(restarts, restarts[1:], strict=False):
        assert next_start >= end, "two engines restarted at the same time: %s" % restarts

"""The etcd role's snapshot timer (tasks_from: snapshot, etcd_snapshot_schedule) on two hosts that are
local connections with a fake `systemctl` on PATH (the lab's hosts run no systemd): the units are
written with the schedule and the script, the timer enabled and started; the same run again changes
nothing; an empty schedule disables and removes it; then nothing changes. No lab needed."""
import os
import stat

import yaml
from conftest import ansible_playbook

FAKE_SYSTEMCTL = """#!/bin/sh
# systemctl stand-in: logs each call; enable/disable keep a state file that is-enabled/is-active read
echo "$*" >> "{log}"
case "$1" in
  enable) touch "{state}" ;;
  disable) rm -f "{state}" ;;
  is-enabled|is-active) test -e "{state}" ;;
esac
"""


def test_the_snapshot_timer_is_installed_kept_and_removed(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "systemctl.log"
    hosts = {}
    for name in ("t1", "t2"):
        base = tmp_path / name
        hosts[name] = {
            "ansible_connection": "local", "etcd_snapshot_systemd": True,
            "etcd_systemd_dir": str(base / "systemd"), "etcd_snapshot_script": str(base / "etcd-snapshot.sh"),
            "stackfleet_etcd_data_dir": str(base / "etcd"), "stackfleet_etcd_peer_url": "https://%s.example:2380" % name,
            "stackfleet_etcd_endpoint": "https://%s.example:2379" % name}
    # both "hosts" are this machine: one fake systemctl, one state for the unit name they share
    fake = bin_dir / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL.format(log=log, state=tmp_path / "timer-enabled"))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"etcd": {"hosts": hosts}}))
    env = {"PATH": str(bin_dir) + os.pathsep + os.environ["PATH"]}

    def run(schedule):
        result = ansible_playbook("playbooks/etcd_snapshot.yml", str(inventory), env=env,
                                  extra_vars={"etcd_snapshot_now": False, "etcd_snapshot_schedule": schedule})
        assert result.rc == 0, result.stdout[-4000:] + result.stderr[-2000:]
        return {h: c["changed"] for h, c in result.recap.items()}

    assert run("*-*-* 03:30:00") == {"t1": 2, "t2": 2}          # the script and the timer
    for name in hosts:
        units = tmp_path / name / "systemd"
        timer = (units / "stackfleet-etcd-snapshot-stackfleet.timer").read_text()
        service = (units / "stackfleet-etcd-snapshot-stackfleet.service").read_text()
        assert "OnCalendar=*-*-* 03:30:00\n" in timer and "Persistent=true" in timer and "WantedBy=timers.target" in timer
        assert "ExecStart=/bin/sh %s\n" % (tmp_path / name / "etcd-snapshot.sh") in service
        script = (tmp_path / name / "etcd-snapshot.sh").read_text()
        assert "snapshot save" in script and stat.S_IMODE(os.stat(tmp_path / name / "etcd-snapshot.sh").st_mode) == 0o700
    calls = log.read_text().splitlines()
    assert calls.count("enable stackfleet-etcd-snapshot-stackfleet.timer") == 2 and "daemon-reload" in calls

    assert run("*-*-* 03:30:00") == {"t1": 0, "t2": 0}

    assert run("") == {"t1": 1, "t2": 1}
    assert not any(any((tmp_path / name / "systemd").glob("stackfleet-etcd-snapshot-*")) for name in hosts)
    assert "disable --now stackfleet-etcd-snapshot-stackfleet.timer" in log.read_text()
    assert run("") == {"t1": 0, "t2": 0}

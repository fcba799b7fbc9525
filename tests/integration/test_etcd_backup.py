"""etcd backup and restore with the etcd role on a real 3-host lab (etcd run as containers by the
role, TLS everywhere), the steps of docs/runbooks.md "Back up etcd" and "Restore etcd from a snapshot":

bootstrap -> write keys -> playbooks/etcd_snapshot.yml (one healthy member, etcdctl in its running
container, the file on its host, retention) -> a key written after the snapshot -> every member's
container and data destroyed -> a restore with a file missing is refused and changes nothing ->
playbooks/etcd_restore.yml (new token, members started one at a time) -> the keys of the snapshot
are back, the later one is not, 3 healthy members -> the restore again changes nothing, and so do
the role's converge and a snapshot run that only checks the script.

    STACKFLEET_TEST_LAB_PREFIX=.. STACKFLEET_TEST_NET=.. .venv/bin/pytest tests/integration/test_etcd_backup.py -v -s
"""
import base64
import json
import os
import re
import shutil
import stat
import time
import urllib.request

import pytest
import yaml
from conftest import ansible_playbook, etcd_post, lab_spec, running_lab

LAB = lab_spec("eb", hosts=3)
CLUSTER = "stackfleet"
ROLE_PLAY = [{"name": "Converge etcd", "hosts": "etcd", "gather_facts": False, "roles": ["stackfleet.cluster.etcd"]}]
KEYS = {"/backup-test/k%02d" % i: "value-%d" % i for i in range(20)}


def b64(text):
    return base64.b64encode(text.encode()).decode()


class Etcd:
    def __init__(self, lab, directory):
        self.lab, self.directory = lab, directory
        self.context = lab.etcd_ssl_context()
        with open(lab.inventory_path) as handle:
            doc = yaml.safe_load(handle)
        for host in lab.hosts:  # what the role reads on a real host: its own engine, a backup folder
            doc["all"]["children"]["stackfleet_hosts"]["hosts"][host.name].update(
                etcd_host_docker_env={"DOCKER_HOST": "unix://" + host.docker_socket},
                etcd_snapshot_dir=os.path.join(host.dir, "backup"),
                etcd_snapshot_script=os.path.join(host.dir, "etcd-snapshot.sh"))
        self.inventory = os.path.join(directory, "hosts.yml")
        with open(self.inventory, "w") as handle:
            yaml.safe_dump(doc, handle)
        self.role_play = os.path.join(directory, "role.yml")
        with open(self.role_play, "w") as handle:
            yaml.safe_dump(ROLE_PLAY, handle)

    def run(self, playbook, **extra):
        started = time.monotonic()
        run = ansible_playbook(playbook, self.inventory, extra_vars=extra)
        print("TIMING %-40s %.1fs rc=%d" % (os.path.basename(playbook) + " " + json.dumps(extra)[:60], time.monotonic() - started, run.rc))
        return run

    def post(self, path, body):
        return etcd_post(self.lab.etcd_endpoints, path, body, self.context)

    def put(self, key, value):
        self.post("/v3/kv/put", {"key": b64(key), "value": b64(value)})

    def keys(self, prefix="/backup-test/"):
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        kvs = self.post("/v3/kv/range", {"key": b64(prefix), "range_end": b64(end)}).get("kvs") or []
        return {base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode() for kv in kvs}

    def healthy_members(self):
        names = []
        for member in self.post("/v3/cluster/member/list", {})["members"]:
            if member.get("isLearner") or not member.get("clientURLs"):
                continue
            try:
                with urllib.request.urlopen(member["clientURLs"][0] + "/health", timeout=3, context=self.context) as resp:
                    if json.loads(resp.read()).get("health") == "true":
                        names.append(member["name"])
            except (OSError, ValueError):
                pass
        return sorted(names)

    def record(self, index):
        with open(self.lab.host(index).etcd_data_dir + ".stackfleet.json") as handle:
            return json.load(handle)

    def containers(self):
        """name -> id of the etcd containers of every host."""
        found = {}
        for index in range(1, 4):
            for c in self.lab.docker_client(index).containers.list(all=True, filters={"label": "io.stackfleet.cluster=%s-etcd" % CLUSTER}):
                found[c.name] = c.id
        return found


def changed(run):
    return {host: counts["changed"] for host, counts in run.recap.items()}


@pytest.fixture(scope="module")
def etcd(tmp_path_factory):
    with running_lab(**LAB) as lab:
        cluster = Etcd(lab, str(tmp_path_factory.mktemp("etcd-backup")))
        run = cluster.run(cluster.role_play)
        assert run.rc == 0, run.stdout[-4000:]
        assert cluster.healthy_members() == sorted(h.name for h in lab.hosts)
        yield cluster


def snapshot_line(run):
    match = re.search(r'"msg": "etcd snapshot of %s from (\S+): (\S+):(\S+) \(revision (\d+), (\d+) keys' % CLUSTER, run.stdout)
    assert match, run.stdout[-3000:]
    return match.group(2), match.group(3), int(match.group(4))


def test_snapshot_restore_and_idempotence(etcd):
    lab = etcd.lab
    for key, value in KEYS.items():
        etcd.put(key, value)

    # Back up: three snapshots with a write between each, etcd_snapshot_keep=2 keeps the newest two.
    taken = []
    for number in range(3):
        run = etcd.run("playbooks/etcd_snapshot.yml", etcd_snapshot_keep=2)
        assert run.rc == 0, run.stdout[-4000:]
        taken.append(snapshot_line(run))
        etcd.put("/backup-test/after-%d" % number, "written after snapshot %d" % number)
    host, path, revision = taken[1]
    assert host == lab.host(1).name, taken  # the first healthy member of the group
    backup_dir = os.path.dirname(path)
    assert sorted(os.listdir(backup_dir)) == sorted(os.path.basename(p) for _h, p, _r in taken[1:]), os.listdir(backup_dir)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [r for _h, _p, r in taken] == sorted(r for _h, _p, r in taken) and len({r for _h, _p, r in taken}) == 3
    assert not os.path.exists(os.path.join(lab.host(1).etcd_data_dir, "stackfleet-snapshot.db"))  # nothing left in the data dir

    # The snapshot to restore is the second one: the keys, and after-0, not after-1 or after-2.
    want = dict(KEYS, **{"/backup-test/after-0": "written after snapshot 0"})
    token_before = etcd.record(1)["token"]

    # Disaster: every member's container and data gone.
    for index in range(1, 4):
        for c in lab.docker_client(index).containers.list(all=True, filters={"label": "io.stackfleet.cluster=%s-etcd" % CLUSTER}):
            c.remove(force=True)
        shutil.rmtree(lab.host(index).etcd_data_dir)

    # A file that is not on every host is refused before anything is touched.
    missing = os.path.join(lab.host(1).dir, "no-such-snapshot.db")
    refused = etcd.run("playbooks/etcd_restore.yml", etcd_restore_snapshot=missing)
    assert refused.rc != 0 and "must be the same file on every member host; nothing was changed" in refused.stdout, refused.stdout[-3000:]
    assert "%s: missing" % lab.host(1).name in refused.stdout
    assert etcd.containers() == {}

    started = time.monotonic()
    run = etcd.run("playbooks/etcd_restore.yml", etcd_restore_snapshot=path)
    assert run.rc == 0, run.stdout[-5000:]
    print("TIMING restore of 3 members: %.1fs" % (time.monotonic() - started))
    assert "etcd restore: 3 members rebuilt from %s" % path in run.stdout
    assert etcd.healthy_members() == sorted(h.name for h in lab.hosts)
    assert etcd.keys() == want
    records = [etcd.record(i) for i in range(1, 4)]
    assert len({r["token"] for r in records}) == 1 and records[0]["token"] != token_before
    assert all(r["bootstrapped"] and r["state"] == "new" and r["restored"] for r in records), records
    ids = etcd.containers()

    # Idempotence: the same restore again, the role's converge, a snapshot run that only checks the script.
    again = etcd.run("playbooks/etcd_restore.yml", etcd_restore_snapshot=path)
    assert again.rc == 0 and set(changed(again).values()) == {0}, again.stdout[-4000:]
    assert "every member was restored from %s" % path in again.stdout
    role = etcd.run(etcd.role_play)
    assert role.rc == 0 and set(changed(role).values()) == {0}, role.stdout[-4000:]
    scripts = etcd.run("playbooks/etcd_snapshot.yml", etcd_snapshot_now=False, etcd_snapshot_keep=2)  # same settings
    assert scripts.rc == 0 and set(changed(scripts).values()) == {0}, scripts.stdout[-4000:]
    assert etcd.containers() == ids and etcd.keys() == want

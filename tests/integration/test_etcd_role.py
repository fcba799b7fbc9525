"""The stackfleet.cluster.etcd role on a real lab: real ansible-playbook runs against five
network-namespace hosts with their own dockerd (TLS), etcd 3.4 run as containers by the role.

One lab, one story, because every step starts from the cluster the previous one left:
bootstrap 3 -> re-run (changed=0, the steady-state fast path) -> a container change is not skipped -> placement written -> grow to 5 while a second run waits
for the lock and fails -> shrink to 3 -> repair a member whose container and data are gone ->
removing 2 of 3 at once is refused -> the placement is still there. `-s` prints TIMING lines.
"""
import base64
import json
import os
import subprocess
import threading
import time
import urllib.request

import pytest
import yaml
from conftest import etcd_post, lab_spec

LAB = lab_spec("r", hosts=5)
H1, H2, H3 = ("%s-h%d" % (LAB["name"], i) for i in (1, 2, 3))
CLUSTER = "stackfleet"  # etcd_cluster_name's default: lock name, container label prefix

ROLE_PLAY = [{"name": "Converge etcd", "hosts": "etcd", "gather_facts": False, "roles": ["stackfleet.cluster.etcd"]}]
STATE_PLAY = [{
    "name": "Placement record", "hosts": H1, "gather_facts": False,
    "module_defaults": {"group/stackfleet.cluster.etcd": {
        "endpoints": "{{ stackfleet_etcd_endpoints }}", "ca_cert": "{{ stackfleet_etcd_ca_path }}",
        "client_cert": "{{ stackfleet_etcd_client_cert }}", "client_key": "{{ stackfleet_etcd_client_key }}"}},
    "tasks": [
        {"name": "Write", "stackfleet.cluster.stack_state": {"cluster": "lamp", "placement": "{{ placement }}"},
         "when": "placement is defined", "delegate_to": "localhost"},
        {"name": "Read", "stackfleet.cluster.stack_state_info": {"cluster": "lamp"}, "register": "read", "delegate_to": "localhost"},
        {"name": "Save", "ansible.builtin.copy": {"content": "{{ read.placement | to_json }}", "dest": "{{ out }}"},
         "delegate_to": "localhost"},
    ],
}]
PLACEMENT = {"web-1": H1, "web-2": H2, "db-1": H3}


class Cluster:
    """The lab, inventories with a given etcd group, and direct looks at etcd and Docker."""

    def __init__(self, lab, tmp_path, run_playbook):
        self.lab, self.tmp, self.run_playbook = lab, tmp_path, run_playbook
        self.context = lab.etcd_ssl_context()
        with open(lab.inventory_path) as handle:
            self.inventory = yaml.safe_load(handle)
        for name, play in (("role.yml", ROLE_PLAY), ("state.yml", STATE_PLAY)):
            (tmp_path / name).write_text(yaml.safe_dump(play, sort_keys=False))
        self.timings = {}

    def hosts(self, count):
        return [self.lab.host(i).name for i in range(1, count + 1)]

    def inventory_for(self, members):
        """The lab inventory with `etcd` = `members` (the other hosts stay in the inventory)."""
        doc = json.loads(json.dumps(self.inventory))
        doc["all"]["children"]["etcd"] = {"hosts": {name: {} for name in members}}
        path = self.tmp / ("inventory-%s.yml" % "-".join(name.rsplit("-", 1)[1] for name in members))
        path.write_text(yaml.safe_dump(doc))
        return str(path)

    def converge(self, members, step=None, extra_vars=None):
        started = time.monotonic()
        run = self.run_playbook(str(self.tmp / "role.yml"), self.inventory_for(members), extra_vars=extra_vars)
        if step:
            self.timings[step] = time.monotonic() - started
            print("TIMING %-10s %.1fs" % (step, self.timings[step]))
        return run

    def state(self, extra_vars=None):
        out = self.tmp / "placement.json"
        run = self.run_playbook(str(self.tmp / "state.yml"), self.lab, extra_vars=dict(extra_vars or {}, out=str(out)))
        assert run.rc == 0, run.stdout[-3000:]
        return json.loads(out.read_text())

    def post(self, path, body, endpoints=None):
        return etcd_post(endpoints or self.lab.etcd_endpoints, path, body, self.context)

    def members(self):
        return self.post("/v3/cluster/member/list", {})["members"]

    def healthy(self, endpoint):
        try:
            with urllib.request.urlopen(endpoint + "/health", timeout=3, context=self.context) as resp:
                return json.loads(resp.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def assert_healthy(self, names):
        """Exactly `names` are members, all voting, started and healthy at their client URLs."""
        members = self.members()
        assert sorted(m.get("name", "") for m in members) == sorted(names), members
        assert not any(m.get("isLearner") for m in members), members
        for member in members:
            assert self.healthy(member["clientURLs"][0]), member

    def lock_holder(self):
        key = base64.b64encode(("/stackfleet/%s/lock" % CLUSTER).encode()).decode()
        kvs = self.post("/v3/kv/range", {"key": key}).get("kvs") or []
        return json.loads(base64.b64decode(kvs[0]["value"])) if kvs else None

    def docker(self, index, *args):
        host = self.lab.host(index)
        return subprocess.run(["docker", "-H", "unix://" + host.docker_socket] + list(args),
                              capture_output=True, text=True, timeout=60, check=True).stdout

    def etcd_containers(self, index):
        out = self.docker(index, "ps", "-a", "--filter", "label=io.stackfleet.cluster=%s-etcd" % CLUSTER,
                          "--format", "{{.Names}} {{.State}}")
        return out.split()


def changed(run):
    return sum(host["changed"] for host in run.recap.values())


@pytest.fixture
def cluster(lab_factory, tmp_path, run_playbook):
    return Cluster(lab_factory(**LAB), tmp_path, run_playbook)


def test_etcd_role_lifecycle(cluster):
    three, five = cluster.hosts(3), cluster.hosts(5)

    run = cluster.converge(three, "bootstrap")
    assert run.rc == 0, run.stdout[-4000:]
    cluster.assert_healthy(three)
    record = json.loads(open(cluster.lab.host(1).etcd_data_dir + ".stackfleet.json").read())
    assert record["state"] == "new" and record["bootstrapped"] and record["token"].startswith(CLUSTER + "-")

    run = cluster.converge(three, "re-run")
    assert run.rc == 0 and changed(run) == 0, run.stdout[-4000:]
    # ... by the steady-state fast path: one read, then the role ends (no lock, no per-member converge).
    assert "etcd: steady" in run.stdout and "Take the cluster's lock" not in run.stdout, run.stdout[-4000:]

    # A declared change only the members' containers show (their restart policy, updated in place) is
    # never skipped: the check-mode read sees it, the full path converges it, and the next run is steady.
    policy = ["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "%s-etcd.%s" % (CLUSTER, three[2])]
    run = cluster.converge(three, "policy", extra_vars={"etcd_restart_policy": "always"})
    assert run.rc == 0 and changed(run) > 0, run.stdout[-4000:]
    assert "a member container would change" in run.stdout and "Take the cluster's lock" in run.stdout, run.stdout[-4000:]
    assert cluster.docker(3, *policy).strip() == "always"
    run = cluster.converge(three, extra_vars={"etcd_restart_policy": "always"})
    assert run.rc == 0 and changed(run) == 0 and "etcd: steady" in run.stdout, run.stdout[-4000:]
    run = cluster.converge(three)   # back to the default policy before the cluster grows
    assert run.rc == 0 and changed(run) > 0 and cluster.docker(3, *policy).strip() == "unless-stopped", run.stdout[-4000:]

    assert cluster.state({"placement": PLACEMENT}) == PLACEMENT

    # Grow, while a second run for the same change waits for the lock and gives up.
    first = {}
    grow = threading.Thread(target=lambda: first.update(run=cluster.converge(five, "grow")))
    grow.start()
    deadline = time.monotonic() + 30
    while cluster.lock_holder() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    holder = cluster.lock_holder()
    assert holder, "the first run never took the lock"
    second = cluster.converge(five, extra_vars={"etcd_lock_wait_timeout": 2})
    grow.join(300)
    assert second.rc != 0
    assert "is held by %s" % holder["holder"] in second.stdout, second.stdout[-3000:]
    assert first["run"].rc == 0, first["run"].stdout[-4000:]
    cluster.assert_healthy(five)
    assert cluster.lock_holder() is None, "the lock outlived the run"

    run = cluster.converge(three, "shrink", extra_vars={"etcd_retired_hosts": five[3:]})
    assert run.rc == 0, run.stdout[-4000:]
    cluster.assert_healthy(three)
    assert cluster.etcd_containers(4) == [] and cluster.etcd_containers(5) == []

    # Repair: h2's container and data are gone.
    cluster.docker(2, "rm", "-f", "%s-etcd.%s" % (CLUSTER, three[1]))
    subprocess.run(["rm", "-rf", cluster.lab.host(2).etcd_data_dir], check=True)
    before = {m["name"]: m["ID"] for m in cluster.members()}
    run = cluster.converge(three, "repair")
    assert run.rc == 0, run.stdout[-4000:]
    cluster.assert_healthy(three)
    after = {m["name"]: m["ID"] for m in cluster.members()}
    assert after[three[1]] != before[three[1]] and after[three[0]] == before[three[0]]
    assert os.path.isdir(os.path.join(cluster.lab.host(2).etcd_data_dir, "member"))

    # Removing 2 of 3 at once is refused before anything changes.
    ids = sorted(after.values())
    run = cluster.converge(three[:1], extra_vars={"etcd_retired_hosts": three[1:]})
    assert run.rc != 0 and "refusing to remove 2 members" in run.stdout, run.stdout[-3000:]
    assert sorted(m["ID"] for m in cluster.members()) == ids
    assert [c for c in cluster.etcd_containers(3) if "running" in c]
    assert cluster.lock_holder() is None

    run = cluster.converge(three)
    assert run.rc == 0 and changed(run) == 0, run.stdout[-4000:]
    assert cluster.state() == PLACEMENT
    print("TIMINGS " + json.dumps({step: round(seconds, 1) for step, seconds in cluster.timings.items()}))

"""playbooks/status.yml on a real 3-host lab: after site.yml every container is ok (changed=0, the assert
passes); then one run sees each verdict at once - a container stopped, one killed, one crashed (restarted by
its policy: ok, restart count 1), one removed, a copy started by hand on another host, a limit changed by
hand, a stack file changed but not converged, a container of the cluster the plan does not have - and the
assert mode fails naming them; an engine stopped makes its host's containers host-down."""
import json
import os
import shutil
import subprocess
import time

import pytest
from conftest import CA_BUNDLE_ENV, REPO, VENV_BIN, ansible_playbook, lab_spec

LAB = lab_spec("st", hosts=3)
STACK_FILE = os.path.join(REPO, "examples", "lamp.yml")
LABELS = ("io.stackfleet.cluster", "io.stackfleet.deploy", "io.stackfleet.instance", "io.stackfleet.service", "io.stackfleet.config-hash")


@pytest.fixture(scope="module")
def status_lab(tmp_path_factory):
    """The lab with examples/lamp.yml converged by site.yml, and an inventory laid out like inventories/lab/."""
    from conftest import running_lab

    with running_lab(**LAB) as lab:
        inventory = tmp_path_factory.mktemp("inventory")
        os.symlink(lab.inventory_path, str(inventory / "hosts.yml"))
        shutil.copytree(os.path.join(REPO, "inventories", "lab", "group_vars"), str(inventory / "group_vars"))
        (inventory / "lab.stackfleet.yml").write_text(
            "plugin: stackfleet.cluster.stacks\nstack_file: %s\nhost_groups: [stackfleet_hosts]\nprevious_placement: docker\n"
            "status: true\n" % STACK_FILE)  # verdicts from the listing the previous placement reads anyway
        site = ansible_playbook("playbooks/site.yml", str(inventory))
        assert site.rc == 0, site.stdout[-4000:] + site.stderr[-2000:]
        yield lab, str(inventory)


def _status(run_playbook, inventory, out, **extra_vars):
    started = time.monotonic()
    run = run_playbook("playbooks/status.yml", inventory, extra_vars=dict(stackfleet_status_output_dir=str(out), **extra_vars))
    seconds = time.monotonic() - started
    report = None
    if os.path.exists(str(out / "status.json")):
        with open(str(out / "status.json")) as handle:
            report = json.load(handle)
    return run, report, seconds


def _inventory(inventory):
    """`ansible-inventory --list`, with the unsafe markers of untrusted strings removed."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    for name in CA_BUNDLE_ENV:
        env.pop(name, None)
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-inventory"), "-i", inventory, "--list"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]

    def plain(value):
        if isinstance(value, dict):
            return value["__ansible_unsafe"] if set(value) == {"__ansible_unsafe"} else {k: plain(v) for k, v in value.items()}
        return [plain(v) for v in value] if isinstance(value, list) else value

    return plain(json.loads(proc.stdout))


def _verdicts(report):
    return {entry["name"]: entry["verdict"] for entry in report["containers"]}


def _find(lab, name):
    """(host, container) of the container `name`, wherever it runs."""
    for index, host in enumerate(lab.hosts, start=1):
        found = lab.docker_client(index).containers.list(all=True, filters={"name": "^%s$" % name})
        if found:
            return host, found[0]
    raise AssertionError("no host runs %s" % name)


def test_all_ok_changes_nothing_and_the_assert_passes(status_lab, run_playbook, tmp_path):
    lab, inventory = status_lab
    run, report, seconds = _status(run_playbook, inventory, tmp_path, stackfleet_status_assert=True)
    assert run.rc == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert run.recap["localhost"]["changed"] == 0 and run.recap["localhost"]["failed"] == 0
    print("status.yml, everything ok: %.1f s" % seconds)
    assert report["ok"] and report["counts"]["ok"] == 8 and report["problems"] == []
    assert set(_verdicts(report).values()) == {"ok"}
    for host in lab.hosts:
        facts = report["hosts"][host.name]
        assert facts["reachable"] and facts["engine_version"] and facts["ours"] >= 2 and facts["foreign"] >= 0
        assert facts["capacity"] == {"cpus": 2, "memory_mb": 4096}
    entry = report["containers"][0]
    assert set(entry["found"][0]) == {"host", "name", "id", "state", "status", "health", "restart_count", "started_at",
                                      "image", "image_id", "config_hash_matches"}
    assert entry["found"][0]["config_hash_matches"] is True and entry["found"][0]["restart_count"] == 0
    assert "INSTANCE" in run.stdout and "lab: 8 containers on 3 hosts: 8 ok" in run.stdout
    with open(str(tmp_path / "status.html")) as handle:
        page = handle.read()
    assert page.count('class="unit ok"') == 8 and "zone: z1" in page and "rack: r2" in page


def test_each_state_gets_its_verdict_and_the_assert_names_them(status_lab, run_playbook, tmp_path):
    lab, inventory = status_lab
    exporter = ["lab.node-exporter-%s.node-exporter" % h.name for h in lab.hosts]
    _find(lab, "lab.lamp-1.mysql")[1].stop(timeout=1)                       # stopped
    _find(lab, "lab.lamp-1.web")[1].kill()                                 # docker kill: it stays exited
    _find(lab, "lab.lamp-2.mysql")[1].remove(force=True)                   # missing
    os.kill(_find(lab, exporter[1])[1].attrs["State"]["Pid"], 9)           # a crash: its restart policy restarts it
    _find(lab, exporter[0])[1].update(mem_limit="64m", memswap_limit="128m")  # a limit changed by hand
    web_host, web = _find(lab, "lab.lamp-2.web")                           # a copy of lamp-2.web by hand on another host
    other = [h for h in lab.hosts if h.name != web_host.name][0]
    other_client = lab.docker_client(lab.hosts.index(other) + 1)
    labels = {k: v for k, v in web.labels.items() if k in LABELS}
    other_client.containers.run("local/busybox:1", ["sleep", "600"], name="by-hand", labels=labels, detach=True, network_mode="none")
    other_client.containers.run("local/busybox:1", ["sleep", "600"], name="lab.lamp-9.web", detach=True, network_mode="none",
                                labels=dict(labels, **{"io.stackfleet.instance": "lamp-9"}))  # ours, not in the plan
    changed = tmp_path / "lamp.yml"                                        # the stack file changed, not converged yet
    with open(STACK_FILE) as handle:
        changed.write_text(handle.read().replace('BACKEND_PORT: "8080"', 'BACKEND_PORT: "8081"'))
    time.sleep(1.5)  # the crashed one is restarted

    run, report, seconds = _status(run_playbook, inventory, tmp_path / "after", stackfleet_status_assert=True,
                                   stackfleet_stack_file=str(changed))
    print("status.yml, every verdict: %.1f s" % seconds)
    assert run.rc != 0 and run.recap["localhost"]["failed"] == 1 and run.recap["localhost"]["changed"] == 0, run.stdout[-3000:]
    assert _verdicts(report) == {
        "lab.lamp-1.mysql": "stopped", "lab.lamp-1.web": "stopped", "lab.lamp-2.mysql": "missing", "lab.lamp-2.web": "duplicate",
        exporter[0]: "drifted", exporter[1]: "ok", exporter[2]: "ok", "lab.lb-1.lb": "drifted", "lab.lamp-9.web": "orphan"}
    assert report["counts"] == {"host-down": 0, "missing": 1, "duplicate": 1, "drifted": 2, "stopped": 2, "unhealthy": 0,
                                "orphan": 1, "ok": 2}
    entries = {e["name"]: e for e in report["containers"]}
    assert "resources.memory_mb: 64 → 0" in entries[exporter[0]]["reason"]
    assert entries["lab.lb-1.lb"]["reason"].startswith("configuration changed") and "env.BACKEND_PORT: changed" in entries["lab.lb-1.lb"]["reason"]
    assert entries["lab.lb-1.lb"]["found"][0]["config_hash_matches"] is False
    assert [f["host"] for f in entries["lab.lamp-2.web"]["found"]] == [web_host.name, other.name]
    assert entries["lab.lamp-1.web"]["found"][0]["state"] == "exited"
    crashed = entries[exporter[1]]["found"][0]
    assert crashed["restart_count"] == 1 and crashed["state"] == "running" and "restarted 1 time" in entries[exporter[1]]["reason"]
    # The assert names every container that is not ok; the table shows the verdicts in capitals.
    for problem in ("lab.lamp-1.mysql: stopped", "lab.lamp-1.web: stopped", "lab.lamp-2.mysql: missing", "lab.lamp-2.web: duplicate",
                    "lab.lb-1.lb: drifted", "lab.lamp-9.web: orphan", exporter[0] + ": drifted"):
        assert problem in run.stdout, run.stdout[-3000:]
    assert "DUPLICATE" in run.stdout and "%s +%s" % (web_host.name, other.name) in run.stdout

    # The inventory plugin (status: true) has the verdicts of the listing it reads anyway: groups of hosts per
    # verdict, and on each host only its own containers. (Not what needs inspect or the changed stack file.)
    listing = _inventory(inventory)
    mysql_host = _find(lab, "lab.lamp-1.mysql")[0].name
    missing_host = [e["expected_host"] for e in report["containers"] if e["name"] == "lab.lamp-2.mysql"][0]
    assert listing["stackfleet_status_stopped"]["hosts"] == [mysql_host]
    assert listing["stackfleet_status_missing"]["hosts"] == [missing_host]
    assert listing["stackfleet_status_duplicate"]["hosts"] == [web_host.name]
    assert listing["stackfleet_status_orphan"]["hosts"] == [other.name]
    assert "hosts" not in listing.get("stackfleet_status_host_down", {})
    own = listing["_meta"]["hostvars"][mysql_host]["stackfleet_status"]
    assert own["stopped"] == ["lab.lamp-1.mysql", "lab.lamp-1.web"]
    mine = {e["name"] for e in report["containers"] if (e["expected_host"] or e["found"][0]["host"]) == mysql_host}
    assert {name for names in own.values() for name in names} == mine  # its own containers, never the cluster's
    assert listing["_meta"]["hostvars"]["localhost"]["stackfleet_status_counts"]["stopped"] == 2  # cluster-wide: on localhost
    assert "stackfleet_status_counts" not in listing["_meta"]["hostvars"][mysql_host]

    # site.yml repairs all of it (the copy by hand and the orphan carry the cluster's label: they are removed).
    repair = run_playbook("playbooks/site.yml", inventory)
    assert repair.rc == 0, repair.stdout[-4000:]
    run, report, _seconds = _status(run_playbook, inventory, tmp_path / "repaired", stackfleet_status_assert=True)
    assert run.rc == 0 and report["ok"], report["problems"]


def test_an_engine_down_makes_its_containers_host_down(status_lab, run_playbook, tmp_path):
    lab, inventory = status_lab
    down = lab.hosts[2]
    lab.stop_docker(3)
    try:
        run, report, seconds = _status(run_playbook, inventory, tmp_path, stackfleet_status_assert=True)
    finally:
        lab.start_docker(3)
    print("status.yml, one engine down: %.1f s" % seconds)
    assert run.rc != 0 and report is not None, run.stdout[-3000:]
    assert not report["hosts"][down.name]["reachable"] and report["hosts"][down.name]["error"]
    on_down = [e for e in report["containers"] if e["expected_host"] == down.name]
    assert on_down and all(e["verdict"] == "host-down" for e in on_down)
    assert all(e["verdict"] == "ok" for e in report["containers"] if e["expected_host"] != down.name)
    assert report["counts"]["host-down"] == len(on_down)
    assert "HOST-DOWN" in run.stdout and "host-down" in run.stdout

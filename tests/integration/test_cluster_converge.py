"""site.yml with stackfleet_converge_mode=cluster on a real 3-host lab (issue 11 §2): one controller
task converges every host. First converge, a second run that changes nothing, the same containers
as the per-host mode (a host-mode run on the same stack file changes nothing), an image change
replaced one host at a time (engine events: no two hosts' replacements overlap), and one host
that cannot converge (its image is missing): the other hosts converge, nothing is replaced
anywhere, the run fails naming that host, the lock is released, the next run repairs."""
import os
import shutil
import time

import pytest
import yaml
from conftest import REPO, lab_spec

LAB = lab_spec("cw", hosts=3)
CLUSTER = "cw"
PER_HOST = 2
IMAGE = "local/busybox:1"

STACK = """cluster: %(cluster)s
services:
  app:
    image: %(image)s
    command: ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1 & wait $!; done"]
    env: {APP_ID: "{{ instance.id }}"}
    restart: unless-stopped
    network_mode: host
deploy:
  app: {count: %(count)d, max_per_host: %(per_host)d, update: {parallelism: %(per_host)d}}
"""

CLUSTER_MODE = {"stackfleet_converge_mode": "cluster"}


@pytest.fixture(scope="module")
def cw_lab(tmp_path_factory):
    """The lab, an inventory with etcd on every host (bootstrapped by the first run) and stack files."""
    from conftest import running_lab

    with running_lab(**LAB) as lab:
        work = tmp_path_factory.mktemp("cw")
        with open(lab.inventory_path) as handle:
            doc = yaml.safe_load(handle)
        doc["all"]["vars"]["stackfleet_etcd_endpoints"] = [host.etcd_endpoint for host in lab.hosts]
        os.makedirs(str(work / "inventory" / "group_vars"))
        (work / "inventory" / "hosts.yml").write_text(yaml.safe_dump(doc))
        shutil.copy(os.path.join(REPO, "inventories", "lab", "group_vars", "all.yml"), str(work / "inventory" / "group_vars" / "all.yml"))
        for index in range(1, len(lab.hosts) + 1):
            lab.docker_client(index).images.get(IMAGE).tag("local/busybox", "2")
        yield lab, str(work / "inventory"), work


def stack(work, image, extra=0):
    path = work / ("stack-%s-%d.yml" % (image.replace("/", "_").replace(":", "_"), extra))
    path.write_text(STACK % {"cluster": CLUSTER, "image": image, "count": 3 * PER_HOST + extra, "per_host": PER_HOST + (1 if extra else 0)})
    return {"stackfleet_stack_file": str(path)}


def running(lab):
    """host name -> {container name: image} of the cluster's running containers."""
    out = {}
    for index, host in enumerate(lab.hosts, start=1):
        out[host.name] = {c.name: c.attrs["Config"]["Image"] for c in lab.docker_client(index).containers.list(
            filters={"label": "io.stackfleet.cluster=" + CLUSTER})}
    return out


def failed_text(run):
    return run.stdout[-5000:] + run.stderr[-2000:]


def test_first_converge_then_nothing_changes(cw_lab, run_playbook):
    lab, inventory, work = cw_lab
    first = run_playbook("playbooks/site.yml", inventory, dict(stack(work, IMAGE), **CLUSTER_MODE))
    assert first.rc == 0, failed_text(first)
    assert "stackfleet.cluster.stack : Converge every live host at once, replacing none yet" in first.stdout
    assert "Converge this host (no replacements)" not in first.stdout  # the per-host plays had no hosts
    now = running(lab)
    assert all(len(names) == PER_HOST for names in now.values()), now
    assert {image for names in now.values() for image in names.values()} == {IMAGE}

    again = run_playbook("playbooks/site.yml", inventory, dict(stack(work, IMAGE), **CLUSTER_MODE))
    assert again.rc == 0, failed_text(again)
    assert {host: counts["changed"] for host, counts in again.recap.items()} == {host: 0 for host in again.recap}, failed_text(again)
    assert running(lab) == now


def test_host_mode_finds_the_same_containers(cw_lab, run_playbook):
    lab, inventory, work = cw_lab
    before = {index: {c.id for c in lab.docker_client(index).containers.list(all=True)} for index in range(1, 4)}
    run = run_playbook("playbooks/site.yml", inventory, stack(work, IMAGE))  # the default mode: a play per host
    assert run.rc == 0, failed_text(run)
    assert "Converge this host (no replacements)" in run.stdout
    assert {host: counts["changed"] for host, counts in run.recap.items()} == {host: 0 for host in run.recap}, failed_text(run)
    assert {index: {c.id for c in lab.docker_client(index).containers.list(all=True)} for index in range(1, 4)} == before


def test_an_image_change_is_replaced_one_host_at_a_time(cw_lab, run_playbook):
    lab, inventory, work = cw_lab
    since = int(time.time())
    time.sleep(1.1)  # events have 1 s resolution in `since`
    run = run_playbook("playbooks/site.yml", inventory, dict(stack(work, "local/busybox:2"), **CLUSTER_MODE))
    assert run.rc == 0, failed_text(run)
    until = int(time.time()) + 1
    assert {image for names in running(lab).values() for image in names.values()} == {"local/busybox:2"}
    windows = []
    for index, host in enumerate(lab.hosts, start=1):
        stamps = [e["timeNano"] for e in lab.docker_client(index).api.events(since=since, until=until, decode=True)
                  if e.get("Type") == "container" and e.get("Action") in ("create", "stop", "start", "destroy", "rename")]
        assert stamps, "no replacement on %s" % host.name
        windows.append((min(stamps), max(stamps), host.name))
    windows.sort()
    for (_start, end, host), (start, _end, later) in zip(windows[:-1], windows[1:], strict=True):
        assert end < start, "replacements on %s and %s overlap" % (host, later)
    assert [name for _s, _e, name in windows] == [host.name for host in lab.hosts]  # in inventory order


def test_a_failed_host_stops_the_rollout_and_the_next_run_repairs(cw_lab, run_playbook):
    lab, inventory, work = cw_lab
    for index in (1, 3):  # local/busybox:3 is missing on the second host only (and cannot be pulled there)
        lab.docker_client(index).images.get(IMAGE).tag("local/busybox", "3")
    before = running(lab)
    bad = lab.hosts[1].name
    changed = dict(stack(work, "local/busybox:3", extra=3), **CLUSTER_MODE)
    run = run_playbook("playbooks/site.yml", inventory, changed, args=["-e", "stack_pull=never"])
    assert run.rc != 0
    assert "%s did not converge" % bad in run.stdout and "local/busybox:3" in run.stdout, failed_text(run)
    assert [line for line in run.stdout.splitlines() if "did not converge" in line and "msg" in line] == [
        line for line in run.stdout.splitlines() if "did not converge" in line and bad in line and "msg" in line]
    after = running(lab)
    # The other hosts converged their phase 1 (the new instance each gets is created), nothing was replaced anywhere.
    for host in (lab.hosts[0].name, lab.hosts[2].name):
        assert set(before[host]) < set(after[host]), (host, before[host], after[host])
        assert {name: image for name, image in after[host].items() if name in before[host]} == before[host]
    assert after[bad] == before[bad]
    assert "TASK [Release the lock]" in run.stdout.split("PLAY [Release the lock and summarise]")[1]

    lab.docker_client(2).images.get(IMAGE).tag("local/busybox", "3")
    repair = run_playbook("playbooks/site.yml", inventory, changed, args=["-e", "stack_pull=never"])
    assert repair.rc == 0, failed_text(repair)
    final = running(lab)
    assert all(len(names) == PER_HOST + 1 for names in final.values()), final
    assert {image for names in final.values() for image in names.values()} == {"local/busybox:3"}

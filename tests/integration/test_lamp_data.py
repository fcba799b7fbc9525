"""The seed's own example on real images: examples/seed.yml (five LAMP stacks of MariaDB +
Apache/PHP, two HAProxy load balancers) converged by site.yml on a 3-host lab, so instances
share hosts on planner-chosen ports. Every page view writes a row into its own instance's
database; after each change below every row is still there and the same instance answers:
(a) a rolling web image change, during which requests through both load balancers never fail,
(b) a MariaDB config change that replaces its containers, (c) a host's engine restarted,
(d) a run with nothing changed. Then the stateful path: a host lost holds its instances (the run
fails naming them and the choice), `stackfleet_allow_move` moves one with an empty database, and
the host's return removes its old copies."""
import os
import shutil
import threading
import time
import urllib.request

import pytest
import yaml
from conftest import REPO, lab_spec

LAB = lab_spec("lp", hosts=3, images=("lamp",))
SEED = os.path.join(REPO, "examples", "seed.yml")
SECRETS = {"db_password": "lab-app-secret", "db_root_password": "lab-root-secret"}
LOOP_LIMIT = 600.0  # seconds: the request loop always ends, whatever the run does


@pytest.fixture(scope="module")
def seed_lab(tmp_path_factory):
    """The lab, an inventory laid out like inventories/demo/, and the stack file as a copy the tests edit."""
    from conftest import running_lab

    with running_lab(**LAB) as lab:
        work = tmp_path_factory.mktemp("seed")
        inventory = work / "inventory"
        inventory.mkdir()
        os.symlink(lab.inventory_path, str(inventory / "hosts.yml"))
        shutil.copytree(os.path.join(REPO, "inventories", "demo", "group_vars"), str(inventory / "group_vars"),
                        ignore=shutil.ignore_patterns("secrets.yml"))
        stack = work / "seed.yml"
        shutil.copy(SEED, str(stack))
        (inventory / "seed.stackfleet.yml").write_text(
            "plugin: stackfleet.cluster.stacks\nstack_file: %s\nhost_groups: [stackfleet_hosts]\nprevious_placement: docker\n" % stack)
        yield lab, str(inventory), stack


def _site(run_playbook, seed_lab, **extra):
    lab, inventory, stack = seed_lab
    return run_playbook("playbooks/site.yml", inventory, extra_vars=dict({"stackfleet_stack_file": str(stack),
                                                                          "stackfleet_secrets": SECRETS}, **extra))


def _edit(stack, change):
    doc = yaml.safe_load(stack.read_text())
    change(doc)
    stack.write_text(yaml.safe_dump(doc, sort_keys=False))


def _containers(lab):
    """{container name: (host name, container)} of the seed cluster on every reachable host."""
    found = {}
    for index, host in enumerate(lab.hosts, start=1):
        try:
            listed = lab.docker_client(index).containers.list(all=True, filters={"label": "io.stackfleet.cluster=seed"})
        except Exception:  # noqa: BLE001 - a stopped engine has nothing to list
            continue
        for container in listed:
            found[container.name] = (host.name, container)
    return found


def _web_endpoints(lab):
    """{instance: "address:port"} of every running web container, from its published port."""
    addresses = {host.name: host.address for host in lab.hosts}
    out = {}
    for name, (host, container) in _containers(lab).items():
        if name.endswith(".web") and container.status == "running":
            binding = container.ports["80/tcp"][0]
            out[name.split(".")[1]] = "%s:%s" % (addresses[host], binding["HostPort"])
    return out


def _lb_addresses(lab):
    addresses = {host.name: host.address for host in lab.hosts}
    return sorted(addresses[host] for name, (host, c) in _containers(lab).items() if name.endswith(".lb") and c.status == "running")


def _page(address, timeout=5):
    with urllib.request.urlopen("http://%s/" % address, timeout=timeout) as response:  # the lab's own namespace
        return dict(word.split("=", 1) for word in response.read().decode().split())


def _page_when_up(address, deadline=90):
    """The page, once the instance answers (MariaDB may still be starting after a restart)."""
    end = time.monotonic() + deadline
    while True:
        try:
            return _page(address)
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(1)


def _visit_each(lab, times=1):
    """Visits every instance directly `times` times; returns {instance: (host, visits)} after the last visit."""
    seen = {}
    for instance, address in sorted(_web_endpoints(lab).items()):
        for _visit in range(times):
            page = _page_when_up(address)
        assert page["instance"] == instance
        seen[instance] = (page["host"], int(page["visits"]))
    return seen


def _instances_through(address, want, deadline=60):
    seen = set()
    end = time.monotonic() + deadline
    while seen != want and time.monotonic() < end:
        try:
            seen.add(_page(address)["instance"])
        except OSError:
            time.sleep(0.5)
    return seen


def _not_lb(ids):
    return {name: ident for name, ident in ids.items() if not name.endswith(".lb")}


def _assert_rows_kept(lab, before):
    """Every instance answers from the same host, counting more visits than before: no row lost
    (requests through the load balancers in between add rows too)."""
    after = _visit_each(lab)
    assert sorted(after) == sorted(before), (before, after)
    for instance, (host, visits) in after.items():
        assert host == before[instance][0] and visits > before[instance][1], (instance, before, after)
    return after


class _RequestLoop(threading.Thread):
    """Requests through the load balancers, alternately, until stopped; counts what fails."""

    def __init__(self, addresses):
        super().__init__(daemon=True)
        self.addresses = addresses
        self.stopped = threading.Event()
        self.total = 0
        self.failed = []

    def run(self):
        end = time.monotonic() + LOOP_LIMIT
        while not self.stopped.is_set() and time.monotonic() < end:
            address = self.addresses[self.total % len(self.addresses)]
            self.total += 1
            try:
                _page(address, timeout=10)
            except Exception as exc:  # noqa: BLE001 - every kind of failure counts
                self.failed.append("%s: %s" % (address, exc))
            time.sleep(0.05)

    def stop(self):
        self.stopped.set()
        self.join(30)


def test_five_lamp_stacks_answer_through_both_load_balancers_then_nothing_changes(seed_lab, run_playbook):
    lab = seed_lab[0]
    first = _site(run_playbook, seed_lab)
    assert first.rc == 0, first.stdout[-5000:] + first.stderr[-2000:]
    second = _site(run_playbook, seed_lab)
    assert second.rc == 0, second.stdout[-4000:]
    assert {host: counts["changed"] for host, counts in second.recap.items()} == {host: 0 for host in second.recap}

    endpoints = _web_endpoints(lab)
    assert sorted(endpoints) == ["lamp-%d" % i for i in range(1, 6)]
    assert len(set(endpoints.values())) == 5  # instances sharing a host got distinct ports
    lbs = _lb_addresses(lab)
    assert len(lbs) == 2
    for lb in lbs:
        assert _instances_through(lb, set(endpoints)) == set(endpoints)
    _visit_each(lab, times=3)


def test_a_rolling_web_image_change_fails_no_request_and_keeps_every_row(seed_lab, run_playbook):
    lab, _inventory, stack = seed_lab
    before = _visit_each(lab)
    for index in range(1, len(lab.hosts) + 1):
        lab.docker_client(index).images.get("local/lamp-web:1").tag("local/lamp-web", "2")
    _edit(stack, lambda doc: doc["services"]["web"].update(image="local/lamp-web:2"))

    loop = _RequestLoop(_lb_addresses(lab))
    loop.start()
    try:
        run = _site(run_playbook, seed_lab)
    finally:
        loop.stop()
    assert run.rc == 0, run.stdout[-5000:]
    print("rolling web image change: %d requests through both load balancers, %d failed" % (loop.total, len(loop.failed)))
    assert loop.total > 50
    assert loop.failed == []
    assert {c.attrs["Config"]["Image"] for name, (_h, c) in _containers(lab).items() if name.endswith(".web")} == {"local/lamp-web:2"}
    _assert_rows_kept(lab, before)


def test_a_mariadb_change_replaces_its_containers_and_keeps_every_row(seed_lab, run_playbook):
    lab, _inventory, stack = seed_lab
    before = _visit_each(lab)
    ids = {name: c.id for name, (_h, c) in _containers(lab).items() if name.endswith(".mysql")}
    _edit(stack, lambda doc: doc["services"]["mysql"].update(command=["--max-connections=120"]))
    run = _site(run_playbook, seed_lab)
    assert run.rc == 0, run.stdout[-5000:]
    now = {name: c.id for name, (_h, c) in _containers(lab).items() if name.endswith(".mysql")}
    assert set(now) == set(ids) and not set(now.values()) & set(ids.values())  # every one replaced
    _assert_rows_kept(lab, before)


def test_an_engine_restart_then_a_run_with_nothing_changed_keep_every_row(seed_lab, run_playbook):
    lab = seed_lab[0]
    before = _visit_each(lab)
    busiest = max(range(1, len(lab.hosts) + 1),
                  key=lambda i: sum(1 for _n, (h, _c) in _containers(lab).items() if h == lab.hosts[i - 1].name))
    lab.stop_docker(busiest)
    lab.start_docker(busiest)
    before = _assert_rows_kept(lab, before)
    run = _site(run_playbook, seed_lab)
    assert run.rc == 0, run.stdout[-5000:]
    assert {host: counts["changed"] for host, counts in run.recap.items()} == {host: 0 for host in run.recap}
    _assert_rows_kept(lab, before)


def test_a_lost_host_holds_its_stateful_instances_until_a_move_is_allowed(seed_lab, run_playbook):
    lab = seed_lab[0]
    before = _visit_each(lab)
    lost = 1
    lost_name = lab.hosts[lost - 1].name
    held = sorted(k for k, (host, _v) in before.items() if host == lost_name)
    assert held, before
    moved, still_held = held[0], held[1:]
    others = {name: c.id for name, (h, c) in _containers(lab).items() if h != lost_name}
    lab.stop_docker(lost)
    try:
        run = _site(run_playbook, seed_lab)
        assert run.rc != 0, run.stdout[-4000:]
        for instance in held:
            assert "stackfleet_allow_move=%s" % instance in run.stdout, run.stdout[-5000:]
        # Nothing moved: no copy of a held instance anywhere else, every other instance's containers
        # as they were; the load balancers (replaced: their backends changed) name only live instances.
        assert _not_lb({name: c.id for name, (h, c) in _containers(lab).items()}) == _not_lb(others)
        live = set(_web_endpoints(lab))
        assert live == set(before) - set(held)
        for lb in _lb_addresses(lab):
            assert _instances_through(lb, live) == live

        allowed = _site(run_playbook, seed_lab, stackfleet_allow_move=moved)
        assert (allowed.rc != 0) == bool(still_held), allowed.stdout[-5000:]
        for instance in still_held:  # the others are still held, and said so
            assert "stackfleet_allow_move=%s" % instance in allowed.stdout, allowed.stdout[-5000:]
        assert "stackfleet_allow_move=%s" % moved not in allowed.stdout, allowed.stdout[-5000:]
        page = _page_when_up(_web_endpoints(lab)[moved])
        assert page["host"] != lost_name
        assert page["visits"] == "1"  # its data stayed on the lost host: an empty database, as the operator accepted
        moved_to = page["host"]
    finally:
        lab.start_docker(lost)
    back = _site(run_playbook, seed_lab)
    assert back.rc == 0, back.stdout[-5000:]
    copies = sorted((n, h) for n, (h, _c) in _containers(lab).items() if n.startswith("seed.%s." % moved))
    assert copies == [("seed.%s.mysql" % moved, moved_to), ("seed.%s.web" % moved, moved_to)]  # old copy removed
    for instance in still_held:  # back on their host with their rows
        host, visits = _visit_each(lab)[instance]
        assert host == lost_name and visits > before[instance][1]
    again = _site(run_playbook, seed_lab)
    assert again.rc == 0, again.stdout[-4000:]
    assert {host: counts["changed"] for host, counts in again.recap.items()} == {host: 0 for host in again.recap}

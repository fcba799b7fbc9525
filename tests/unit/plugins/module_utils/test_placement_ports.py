"""Dynamic host ports (`auto:80`, host_port_range) and stateful services held on their host.

Unit tests for the stack file syntax, the planner, references, documents, the etcd record and
the Docker-label path, then hypothesis properties: ports never collide on a host, plans are
deterministic whatever the host order, a unit that stays keeps its ports, and a stateful unit
never moves without allow_move.
"""

from __future__ import annotations

import json
import os

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _desired, _spec, _state
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import (
    LABEL_PORTS,
    Host,
    Port,
    Resources,
    Service,
    Spec,
    parse_ports_label,
    ports_label,
)
from ansible_collections.stackfleet.cluster.plugins.module_utils._placement import PlacementError, plan
from ansible_collections.stackfleet.cluster.plugins.plugin_utils import _inventory
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_placement_check import check_plan, deploy, host

SETTINGS = settings(max_examples=int(os.environ.get("PORTS_EXAMPLES", "80")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

LAMP = """
cluster: c
services:
  db: {image: m, ports: ["auto:3306"], stateful: true, volumes: ["{{ instance.id }}-db:/var/lib/mysql"]}
  web:
    image: w
    ports: ["auto:80"]
    env: {DB_HOST: "{{ instance.services.db.host }}", DB_PORT: "{{ instance.services.db.port }}"}
  lb: {image: h, ports: ["80:80"], env: {BACKENDS: "{{ deploy.lamp.web.addresses }}"}}
stacks:
  lamp: {services: [db, web]}
deploy:
  lamp: {count: 5}
  lb: {count: 2, conflicts: [lb]}
"""


def _hosts(*names, **kw):
    return _spec.load_hosts([dict(name=n, address="10.0.0.%d" % (i + 1), **kw) for i, n in enumerate(names)])


def _load(text):
    return _spec.load_text(text, source="stacks.yml")


def _errors(text):
    with pytest.raises(_spec.SpecError) as caught:
        _load(text)
    return caught.value.errors


def _one_service(ports, extra=""):
    return "cluster: c\n%sservices:\n  web: {image: w, ports: %s}\ndeploy:\n  web: {count: 1}\n" % (extra, json.dumps(ports))


# --- the stack file ------------------------------------------------------------------------------


def test_auto_ports_parse_with_protocol_and_address():
    sp = _load(_one_service(["auto:80", "auto:53/udp", "127.0.0.1:auto:81", "[::1]:auto:82", "8080:8080", "9000"]))
    ports = sp.services["web"].ports
    assert [(p.container_port, p.protocol, p.host_ip, p.host_port, p.dynamic) for p in ports] == [
        (53, "udp", "", None, True), (80, "tcp", "", None, True), (81, "tcp", "127.0.0.1", None, True),
        (82, "tcp", "::1", None, True), (8080, "tcp", "", 8080, False), (9000, "tcp", "", None, False)]
    assert sp.services["web"].host_port_range == (20000, 32000)
    assert sp.services["web"].stateful is False


def test_host_port_range_top_level_and_per_service():
    sp = _load("""
cluster: c
host_port_range: "30000-30099"
services:
  a: {image: a, ports: ["auto:80"]}
  b: {image: b, ports: ["auto:80"], host_port_range: "40000-40009", stateful: true}
deploy:
  a: {count: 1}
  b: {count: 1}
""")
    assert sp.services["a"].host_port_range == (30000, 30099)
    assert sp.services["b"].host_port_range == (40000, 40009)
    assert sp.services["b"].stateful is True


@pytest.mark.parametrize("ports, extra, message", [
    (["auto:80-81"], "", "services.web.ports[0]: 'auto' takes one container port, not a range, got 'auto:80-81'"),
    (["auto"], "", "services.web.ports[0]: expected 'host:container[/proto]'"),
    (["auto:x"], "", "services.web.ports[0]: expected 'auto:container[/proto]' with one container port"),
    (["auto:80", "auto:80"], "", "services.web.ports[1]: container port 80/tcp is published with 'auto' twice"),
    (["auto:80/icmp"], "", "services.web.ports[0]: unknown protocol 'icmp'"),
    (["nothost:auto:80"], "", "services.web.ports[0]: invalid host IP 'nothost'"),
    (["auto:80"], "host_port_range: 30000\n", "host_port_range: expected a host port range 'low-high'"),
    (["auto:80"], "host_port_range: '3-2'\n", "host_port_range: expected a host port range 'low-high'"),
    (["auto:80"], "host_port_range: '1-70000'\n", "host_port_range: expected a host port range 'low-high'"),
])
def test_bad_auto_ports_name_file_and_key(ports, extra, message):
    errors = _errors(_one_service(ports, extra))
    assert any(e.startswith("stacks.yml: " + message) for e in errors), errors


def test_auto_with_network_mode_host_is_an_error():
    errors = _errors("cluster: c\nservices:\n  web: {image: w, network_mode: host, ports: ['auto:80']}\n")
    assert errors[0].startswith("stacks.yml: services.web.ports[0]: with network_mode host the container listens on the host's"
                                " port itself, so the host port must equal the container port; 'auto' cannot choose one")


def test_service_keys_are_checked():
    errors = _errors("cluster: c\nservices:\n  web: {image: w, stateful: maybe, host_port_range: '1-2-3'}\n")
    assert any("services.web.stateful: expected true or false" in e for e in errors), errors
    assert any("services.web.host_port_range: expected a host port range" in e for e in errors), errors


def test_port_reference_needs_a_published_port():
    errors = _errors("""
cluster: c
services:
  db: {image: m, ports: ["3306"]}
  web: {image: w, env: {P: "{{ instance.services.db.port }}"}}
stacks:
  s: {services: [db, web]}
deploy:
  s: {count: 1}
""")
    assert any("services.web.env.P: '{{ instance.services.db.port }}': service 'db' publishes no host port" in e for e in errors), errors


# --- the planner ---------------------------------------------------------------------------------


def test_instances_on_one_host_get_distinct_ports_and_documents_carry_them():
    sp = _load(LAMP)
    hosts = _hosts("a", "b", "c", "d")
    p = plan(sp, hosts)
    by_host = {}
    for key, services in p.ports.items():
        for entries in services.values():
            for e in entries:
                slot = (p.assignments[key], e["host_port"], e["protocol"])
                assert slot not in by_host, (slot, key, by_host.get(slot))
                by_host[slot] = key
    docs = {d["name"]: d for ds in _desired.render(sp, p.assignments, hosts, p.ports).values() for d in ds}
    for n in range(1, 6):
        web, db = docs["c.lamp-%d.web" % n], docs["c.lamp-%d.db" % n]
        assert web["ports"][0]["host_port"] == p.ports["lamp-%d" % n]["web"][0]["host_port"]
        assert web["env"]["DB_PORT"] == str(db["ports"][0]["host_port"])
        assert db["labels"][LABEL_PORTS] == "3306/tcp=%d" % db["ports"][0]["host_port"]
        assert 20000 <= db["ports"][0]["host_port"] <= 32000
    backends = docs["c.lb-1.lb"]["env"]["BACKENDS"].split(",")
    assert backends == ["%s:%d" % (docs["c.lamp-%d.web" % n]["env"]["DB_HOST"], docs["c.lamp-%d.web" % n]["ports"][0]["host_port"])
                        for n in range(1, 6)]
    assert "lb-1" in p.ports and p.ports["lb-1"]["lb"] == [{"container_port": 80, "protocol": "tcp", "host_ip": "", "host_port": 80}]


def test_static_addresses_reference_is_unchanged():
    sp = _load("""
cluster: c
services:
  web: {image: w, ports: ["8080:80"]}
  lb: {image: h, env: {B: "{{ deploy.web.web.addresses }}"}}
deploy:
  web: {count: 2}
  lb: {count: 1}
""")
    hosts = _hosts("a", "b")
    p = plan(sp, hosts)
    docs = {d["name"]: d for ds in _desired.render(sp, p.assignments, hosts, p.ports).values() for d in ds}
    assert docs["c.lb-1.lb"]["env"]["B"] == "10.0.0.1,10.0.0.2"
    assert LABEL_PORTS not in docs["c.web-1.web"]["labels"]


def test_rendering_without_the_plans_ports_is_an_error():
    sp = _load(LAMP)
    hosts = _hosts("a", "b")
    p = plan(sp, hosts)
    with pytest.raises(_desired.RenderError) as caught:
        _desired.render(sp, p.assignments, hosts)
    assert "no host port for 'auto' port 3306/tcp of db in lamp-1; render with the plan's ports" in str(caught.value)


def test_dynamic_ports_avoid_every_static_port_of_the_file():
    sp = _load("""
cluster: c
host_port_range: "20000-20003"
services:
  a: {image: a, ports: ["auto:80"]}
  b: {image: b, ports: ["20000:80", "20002:81"]}
deploy:
  a: {count: 2}
  b: {count: 1, host: h2}
""")
    p = plan(sp, _hosts("h1", "h2"))
    assert sorted(e["host_port"] for k in ("a-1", "a-2") for e in p.ports[k]["a"]) == [20001, 20003]


def test_an_exhausted_range_makes_the_host_ineligible_and_the_error_names_it():
    sp = _load("""
cluster: c
services:
  a: {image: a, ports: ["auto:80"], host_port_range: "20000-20001"}
deploy:
  a: {count: 5}
""")
    p = plan(sp, _hosts("h1", "h2", "h3")[:2] + _hosts("h3"))
    assert len(p.assignments) == 5  # 2 per host at most
    with pytest.raises(PlacementError) as caught:
        plan(sp, _hosts("h1", "h2"))
    assert caught.value.errors == [
        "deploy.a: ports: instance a-5 needs 1 from 20000-20001/tcp; host_port_range 20000-20001/tcp is exhausted on all 2 hosts"
        " open to it: h1 (a-1, a-3), h2 (a-2, a-4)"]


def test_ports_are_stable_when_the_unit_stays_and_deterministic():
    sp = _load(LAMP.replace("count: 5", "count: 6"))
    hosts = _hosts("a", "b", "c")
    first = plan(sp, hosts)
    assert plan(sp, list(reversed(hosts))).ports == first.ports
    # scale down lamp-1 (frees the lowest ports), then back: the others keep theirs
    smaller = plan(_spec.with_counts(sp, {"lamp": 5}), hosts, first.assignments, previous_ports=first.ports)
    assert dict(smaller.ports) == {k: v for k, v in first.ports.items() if k != "lamp-6"}
    # a port the previous plan chose that is now free lower down is kept all the same
    previous_ports = json.loads(json.dumps(first.ports))
    previous_ports["lamp-1"]["db"][0]["host_port"] = 25000
    again = plan(sp, hosts, first.assignments, previous_ports=previous_ports)
    assert again.ports["lamp-1"]["db"][0]["host_port"] == 25000
    assert {k: v for k, v in again.ports.items() if k != "lamp-1"} == {k: v for k, v in first.ports.items() if k != "lamp-1"}


def test_previous_ports_that_no_longer_fit_are_replaced():
    sp = _load(LAMP)
    hosts = _hosts("a", "b")
    first = plan(sp, hosts)
    bad = json.loads(json.dumps(first.ports))
    bad["lamp-1"]["db"][0]["host_port"] = 80  # outside the range, and the lb's static port
    bad["lamp-2"]["web"] = [{"container_port": "x"}]  # garbage: ignored
    again = plan(sp, hosts, first.assignments, previous_ports=bad)
    assert 20000 <= again.ports["lamp-1"]["db"][0]["host_port"] <= 32000
    assert again.ports["lamp-2"] == first.ports["lamp-2"]


def test_repair_frees_a_range_for_a_new_deploy():
    sp = _load("""
cluster: c
services:
  a: {image: a, ports: ["auto:80"], host_port_range: "20000-20000"}
  b: {image: b, ports: ["auto:80"], host_port_range: "20000-20000"}
deploy:
  a: {count: 1}
  b: {count: 1, host: h1}
""")
    p = plan(sp, _hosts("h1", "h2"), {"a-1": "h1"})
    assert p.assignments == {"a-1": "h2", "b-1": "h1"}
    assert p.moves[0].reason == "repair" and "to free a port of host_port_range 20000-20000/tcp on h1 for b-1" in p.moves[0].why


def test_rebalance_moves_units_with_their_ports():
    sp = _load(LAMP.replace("stateful: true, ", ""))
    first = plan(sp, _hosts("a", "b"))
    p = plan(sp, _hosts("a", "b", "c", "d"), first.assignments, previous_ports=first.ports, rebalance={"max_moves": 3})
    assert p.moves and all(m.reason == "rebalance" for m in p.moves)
    _assert_no_collision(sp, p)


# --- stateful: held ------------------------------------------------------------------------------


def test_a_stateful_instance_on_a_missing_host_is_held_there():
    sp = _load(LAMP)
    hosts = _hosts("a", "b", "c", "d")
    first = plan(sp, hosts)
    lost = first.assignments["lamp-3"]
    rest = [h for h in hosts if h.name != lost]
    p = plan(sp, rest, first.assignments, previous_ports=first.ports)
    assert p.assignments["lamp-3"] == lost
    assert all(p.assignments[k] == first.assignments[k] for k in first.assignments if k.startswith("lamp-"))
    assert p.ports == {k: v for k, v in first.ports.items() if k in p.ports} and set(p.ports) == set(first.ports)
    held = [h for h in p.held if h.key == "lamp-3"][0]
    assert held.reason == "host-missing" and held.host == lost
    assert held.why == ("lamp-3 stays on %s because %s is not among the given hosts (down or removed) and it runs a stateful"
                        " service whose data is there: wait for %s, or move it with allow_move (-e stackfleet_allow_move=lamp-3),"
                        " accepting that its data does not follow." % (lost, lost, lost))
    assert lost in p.missing_hosts
    assert "held (stateful, not moved; allow_move moves them): " in p.summary() and "lamp-3 on %s (host-missing)" % lost in p.summary()
    docs = _desired.render(sp, p.assignments, rest + [Host(lost, {}, None)], p.ports)
    assert any(d["instance"] == "lamp-3" for d in docs[lost])
    # an lb that was there moves; with allow_move lamp-3 moves too, as before
    moved = plan(sp, rest, first.assignments, previous_ports=first.ports, allow_move=["lamp-3"])
    assert moved.assignments["lamp-3"] != lost and not [h for h in moved.held if h.key == "lamp-3"]
    assert [m.reason for m in moved.moves if m.key == "lamp-3"] == ["host-missing"]


def test_held_instance_on_a_drained_or_ineligible_host():
    sp = _load(LAMP)
    hosts = _hosts("a", "b", "c")
    first = plan(sp, hosts)
    node = first.assignments["lamp-1"]
    drained = [Host(h.name, h.labels, h.capacity, address=h.address, drain=h.name == node) for h in hosts]
    p = plan(sp, drained, first.assignments, previous_ports=first.ports)
    on_node = sorted(k for k, h in first.assignments.items() if h == node and k.startswith("lamp"))
    assert [(h.key, h.host, h.reason) for h in p.held] == [(k, node, "drained") for k in on_node]
    docs = _desired.render(sp, p.assignments, drained, p.ports)
    assert {d["instance"] for d in docs[node]} == set(on_node)
    labelled = LAMP.replace("lamp: {count: 5}", "lamp: {count: 5, constraint: \"labels.disk == 'ssd'\"}")
    ssd = _spec.load_hosts([{"name": h.name, "labels": {"disk": "ssd"}} for h in hosts])
    first = plan(_load(labelled), ssd)
    node = first.assignments["lamp-2"]
    changed = _spec.load_hosts([{"name": h.name, "labels": {"disk": "hdd" if h.name == node else "ssd"}} for h in hosts])
    p = plan(_load(labelled), changed, first.assignments)
    assert p.assignments["lamp-2"] == node
    assert [h.reason for h in p.held if h.key == "lamp-2"] == ["ineligible"]
    assert "no longer matches the constraint" in [h.why for h in p.held if h.key == "lamp-2"][0]


def test_held_units_do_not_make_the_rest_infeasible():
    sp = _load("""
cluster: c
services:
  db: {image: m, stateful: true, ports: ["auto:3306"]}
  lb: {image: h, ports: ["80:80"]}
deploy:
  db: {count: 3, conflicts: [db]}
  lb: {count: 2, conflicts: [lb]}
""")
    hosts = _hosts("a", "b", "c")
    first = plan(sp, hosts)
    p = plan(sp, _hosts("a", "b"), first.assignments, previous_ports=first.ports)
    assert {k: h for k, h in p.assignments.items() if k.startswith("db")} == {k: h for k, h in first.assignments.items() if k.startswith("db")}
    assert {p.assignments["lb-1"], p.assignments["lb-2"]} == {"a", "b"}
    assert [h.host for h in p.held] == ["c"]


def test_conflicts_with_a_held_unit_count_on_its_host():
    sp = _load("""
cluster: c
services:
  db: {image: m, stateful: true}
  x: {image: x}
deploy:
  db: {count: 1}
  x: {count: 1, conflicts: [db]}
""")
    hosts = _hosts("a", "b")
    p = plan(sp, hosts, {"db-1": "a", "x-1": "b"})
    assert p.assignments == {"db-1": "a", "x-1": "b"}
    # a new constraint that makes db ineligible on a: db is held there, x still avoids it
    sp2 = _load("""
cluster: c
services:
  db: {image: m, stateful: true}
  x: {image: x}
deploy:
  db: {count: 1, host: b}
  x: {count: 1, conflicts: [db]}
""")
    p = plan(sp2, hosts, {"db-1": "a", "x-1": "a"})
    assert p.assignments == {"db-1": "a", "x-1": "b"} and [h.reason for h in p.held] == ["ineligible"]


def test_repair_and_rebalance_never_move_a_stateful_unit():
    sp = _load("""
cluster: c
services:
  db: {image: m, stateful: true, resources: {cpus: 1}}
  blog: {image: b, resources: {cpus: 1}}
deploy:
  db: {count: 1}
  blog: {count: 1, host: a, conflicts: [db]}
""")
    with pytest.raises(PlacementError) as caught:
        plan(sp, _hosts("a", "b"), {"db-1": "a"})
    assert "deploy.blog: conflicts: the 1 eligible host (a) runs db-1, which blog conflicts with" in str(caught.value)
    assert plan(sp, _hosts("a", "b"), {"db-1": "a"}, allow_move=["db-1"]).assignments == {"db-1": "b", "blog-1": "a"}
    sp = _load(LAMP)
    first = plan(sp, _hosts("a", "b"))
    p = plan(sp, _hosts("a", "b", "c", "d"), first.assignments, previous_ports=first.ports, rebalance={"max_moves": 10})
    assert all(not m.key.startswith("lamp") for m in p.moves)
    stateless = {k: s.__class__(**dict(s.__dict__, stateful=False)) for k, s in sp.services.items()}
    assert plan(sp.__class__(**{**sp.__dict__, "services": stateless}),
                _hosts("a", "b", "c", "d"), first.assignments, rebalance={"max_moves": 10}).moves  # not stateful: some move


def test_two_held_units_on_one_static_port_are_an_error():
    sp = _load("""
cluster: c
services:
  db: {image: m, stateful: true, ports: ["3306:3306"]}
deploy:
  db: {count: 2}
""")
    with pytest.raises(PlacementError) as caught:
        plan(sp, _hosts("a", "b"), {"db-1": "a", "db-2": "a"})
    assert caught.value.errors == ["deploy.db: stateful: db-2 cannot be held on a: port 3306/tcp there is taken by another held"
                                   " instance, db (db-1); move one of them with allow_move or change the stack file"]


# --- the record and the labels -------------------------------------------------------------------


def test_the_record_carries_ports_and_old_records_read_without():
    ports = {"lamp-1": {"web": [{"container_port": 80, "protocol": "tcp", "host_ip": "", "host_port": 20000}]}}
    raw = _state.encode_placement({"lamp-1": "a"}, "h", "t", "me", ports)
    record = _state.decode_placement(raw.encode(), 3)
    assert record.ports == ports and record.placement == {"lamp-1": "a"}
    old = json.dumps({"placement": {"lamp-1": "a"}, "spec_hash": "h", "updated_at": "t", "updated_by": "me"})
    assert _state.decode_placement(old.encode(), 3).ports == {}
    assert "ports" not in json.loads(_state.encode_placement({"lamp-1": "a"}, "h", "t", "me", {}))
    assert _state.record_result("c", record)["ports"] == ports
    with pytest.raises(_state.StateError):
        _state.decode_placement(json.dumps({"placement": {}, "ports": {"x": {"s": [{"host_port": "y"}]}}}).encode(), 4)


def test_ports_come_back_from_docker_labels():
    sp = _load(LAMP)
    hosts = _hosts("a", "b")
    first = plan(sp, hosts)
    docs = _desired.render(sp, first.assignments, hosts, first.ports)
    labels_by_host = {h: [dict(d["labels"], **{"io.stackfleet.cluster": "c", "io.stackfleet.instance": d["instance"],
                                               "io.stackfleet.service": d["service"], "io.stackfleet.deploy": d["deploy"]})
                          for d in ds] for h, ds in docs.items()}
    placement, _notes = _inventory.previous_from_labels(sp, labels_by_host)
    ports = _inventory.previous_ports_from_labels(sp, placement, labels_by_host)
    assert ports == {k: {s: [e for e in v if e["host_port"] >= 20000] for s, v in services.items()}
                     for k, services in first.ports.items() if k.startswith("lamp")}
    assert plan(sp, hosts, placement, previous_ports=ports).ports == first.ports


def test_ports_label_round_trip():
    entries = [{"container_port": 80, "protocol": "tcp", "host_ip": "", "host_port": 20001},
               {"container_port": 53, "protocol": "udp", "host_ip": "::1", "host_port": 20002},
               {"container_port": 81, "protocol": "sctp", "host_ip": "127.0.0.1", "host_port": 20003}]
    assert parse_ports_label(ports_label(entries)) == entries
    assert parse_ports_label("garbage,80/tcp=x,=") == []


# --- properties ----------------------------------------------------------------------------------


def _svc(name, ports, stateful=False, port_range=(20000, 20004), cpus=0.0):
    return Service(name, "img/" + name, Resources(cpus, 0), tuple(ports), {}, host_port_range=port_range, stateful=stateful)


@st.composite
def port_specs(draw):
    """Services with static and `auto` ports in small ranges (so they run out), some stateful."""
    services = []
    for n in range(4):
        ports = []
        for _i in range(draw(st.integers(0, 2))):
            proto = draw(st.sampled_from(["tcp", "tcp", "udp"]))
            if draw(st.integers(0, 3)) == 0:
                number = draw(st.sampled_from([80, 20001, 20003]))
                if (number, proto) not in {(p.host_port, p.protocol) for p in ports}:
                    ports.append(Port(number, proto, number))
            else:
                cport = draw(st.integers(1, 3))
                if (cport, proto) not in {(p.container_port, p.protocol) for p in ports if p.dynamic}:
                    ports.append(Port(cport, proto, None, "", True))
        low = draw(st.sampled_from([20000, 20002]))
        services.append(_svc("s%d" % n, ports, stateful=draw(st.booleans()), port_range=(low, low + draw(st.integers(2, 8))),
                             cpus=draw(st.sampled_from([0, 0.5, 1]))))
    deploys = []
    for n in range(draw(st.integers(1, 3))):
        members = tuple(draw(st.lists(st.sampled_from([s.name for s in services]), min_size=1, max_size=2, unique=True)))
        colocate = draw(st.booleans())
        if colocate and len(members) > 1:  # a colocated instance may not publish a static port twice
            seen = [p.host_key for m in members for p in next(s for s in services if s.name == m).ports if p.host_key]
            if len(seen) != len(set(seen)):
                members = members[:1]
        kw = {"count": draw(st.integers(0, 4))}
        if draw(st.integers(0, 4)) == 0:
            kw["conflicts"] = ("d%d" % n,)
        deploys.append(deploy("d%d" % n, members, colocate=colocate, **kw))
    return Spec("test", draw(st.sampled_from(["spread", "binpack"])), {s.name: s for s in services}, {}, {d.key: d for d in deploys})


@st.composite
def port_hosts(draw):
    n = draw(st.integers(2, 6))
    names = draw(st.permutations(["h%d" % i for i in range(n)]))
    return [host(name) if draw(st.booleans()) else host(name, cpus=2, memory_mb=0) for name in names]


def _plan(sp, hosts, *args, **kw):
    try:
        return plan(sp, hosts, *args, **kw)
    except PlacementError as exc:
        assert exc.errors and all(e.startswith(("deploy.", "hosts:")) for e in exc.errors), exc.errors
        return None


def _assert_no_collision(sp, p):
    static = {key for s in sp.services.values() for key in s.host_ports}
    used = {}
    for key, services in p.ports.items():
        where = p.assignments[key]
        for name, entries in services.items():
            service = sp.services[name]
            assert len(entries) == sum(1 for port in service.ports if port.dynamic or port.host_port is not None)
            for entry, port in zip(list(entries), [q for q in service.ports if q.dynamic or q.host_port is not None], strict=True):
                slot = (where, entry["host_port"], entry["protocol"])
                assert slot not in used, (slot, key, used.get(slot))
                used[slot] = key
                if port.dynamic:
                    low, high = service.host_port_range
                    assert low <= entry["host_port"] <= high
                    assert (entry["host_port"], entry["protocol"]) not in static
    for key, unit in p.units.items():  # every unit that publishes something is in ports
        assert (key in p.ports) == any(q.dynamic or q.host_port is not None for s in unit.services for q in sp.services[s].ports)


@SETTINGS
@given(port_specs(), port_hosts())
def test_ports_never_collide_and_every_rule_holds(sp, hosts):
    p = _plan(sp, hosts)
    if p is None:
        return
    _assert_no_collision(sp, p)
    assert check_plan(sp, hosts, p) == []


@SETTINGS
@given(port_specs(), port_hosts(), st.randoms(use_true_random=False))
def test_ports_are_deterministic_whatever_the_host_order(sp, hosts, rnd):
    p = _plan(sp, hosts)
    shuffled = list(hosts)
    rnd.shuffle(shuffled)
    q = _plan(sp, shuffled)
    assert (p is None) == (q is None)
    if p is not None:
        assert (p.assignments, p.ports) == (q.assignments, q.ports)


@SETTINGS
@given(port_specs(), port_hosts(), st.randoms(use_true_random=False))
def test_a_unit_that_stays_keeps_its_ports(sp, hosts, rnd):
    p = _plan(sp, hosts)
    if p is None:
        return
    kept = [h for h in hosts if rnd.random() < 0.7] or hosts[:1]
    q = _plan(sp, kept, p.assignments, previous_ports=p.ports, allow_move=list(p.assignments))
    if q is None:
        return
    _assert_no_collision(sp, q)
    event("kept with dynamic ports: %s" % any(p.assignments.get(k) == w and k in q.ports for k, w in q.assignments.items()))
    for key, where in q.assignments.items():
        if p.assignments.get(key) == where:
            assert q.ports.get(key) == p.ports.get(key), key


@SETTINGS
@given(port_specs(), port_hosts(), st.randoms(use_true_random=False))
def test_a_stateful_unit_never_moves_without_allow_move(sp, hosts, rnd):
    p = _plan(sp, hosts)
    if p is None:
        return
    given_hosts = []
    for h in hosts:
        roll = rnd.random()
        if roll < 0.25:
            continue  # lost
        given_hosts.append(Host(h.name, h.labels, h.capacity, drain=roll < 0.35))
    allow = [k for k in p.assignments if rnd.random() < 0.2]
    q = _plan(sp, given_hosts, p.assignments, previous_ports=p.ports, allow_move=allow, rebalance={"max_moves": 2})
    if q is None:
        return
    _assert_no_collision(sp, q)
    names = {h.name for h in given_hosts}
    drained = {h.name for h in given_hosts if h.drain}
    held = {h.key: h for h in q.held}
    event("held: %s" % bool(held))
    event("stateful units: %s" % any(sp.services[s].stateful for u in p.units.values() for s in u.services))
    for key, unit in p.units.items():
        stateful = any(sp.services[s].stateful for s in unit.services)
        if not stateful or key not in q.assignments or unit.instance in allow or key in allow:
            continue
        assert q.assignments[key] == unit.host, key
        if unit.host not in names:
            assert held[key].reason == "host-missing" and key in q.ports or not p.ports.get(key)
        elif unit.host in drained:
            assert held[key].reason == "drained"
        if key in p.ports:
            assert q.ports[key] == p.ports[key], key
    for key in q.moved:
        assert not any(sp.services[s].stateful for s in q.units[key].services) or q.units[key].instance in allow or key in allow

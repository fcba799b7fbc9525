# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container documents from spec + placement, references, and the config hash."""

from __future__ import annotations

import os

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _desired, _spec

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
HOSTS = _spec.load_hosts([
    {"name": "n1", "address": "10.0.0.1"},
    {"name": "n2", "address": "10.0.0.2"},
    {"name": "n3"},  # no address: siblings reach it by name
])


def _spec_of(text):
    return _spec.load_text(text, "stacks.yml")


FORMAT_DOC = _spec.load_file(os.path.join(ROOT, "tests", "unit", "data", "good", "lamp-format-doc.yml"))
FORMAT_DOC_PLACEMENT = {
    "lamp-1": "n1", "lamp-2": "n2", "lamp-3": "n3", "lamp-4": "n1", "lamp-5": "n2",
    "lb-1": "n3", "lb-2": "n1",
    "node-exporter-n1": "n1", "node-exporter-n2": "n2",  # n3 not eligible
}


def test_format_doc_documents():
    containers = _desired.render(FORMAT_DOC, FORMAT_DOC_PLACEMENT, HOSTS)
    assert list(containers) == ["n1", "n2", "n3"]
    assert [d["name"] for d in containers["n1"]] == [
        "prod.lamp-1.mysql", "prod.lamp-1.web", "prod.lamp-4.mysql", "prod.lamp-4.web",
        "prod.lb-2.lb", "prod.node-exporter-n1.node-exporter"]
    assert [d["name"] for d in containers["n3"]] == ["prod.lamp-3.mysql", "prod.lamp-3.web", "prod.lb-1.lb"]
    mysql = containers["n1"][0]
    assert mysql == {
        "name": "prod.lamp-1.mysql", "cluster": "prod", "deploy": "lamp", "instance": "lamp-1", "service": "mysql", "host": "n1",
        "image": "mariadb:11",
        "command": ["mysqld", "--max-connections=500"],
        "entrypoint": None,
        "env": {"MARIADB_DATABASE": "app"},
        "ports": [{"container_port": 3306, "protocol": "tcp", "host_port": 3306, "host_ip": ""}],
        "volumes": [{"source": "mysql-data", "target": "/var/lib/mysql", "read_only": False}],
        "labels": {"team": "data"},
        "restart": "unless-stopped",
        "network_mode": "host",
        "resources": {"cpus": 1.0, "memory_mb": 1024},
        "healthcheck": {"test": ["CMD", "mysqladmin", "ping"], "interval": 5.0, "timeout": 30.0, "retries": 10, "start_period": 0.0},
        "update": {"parallelism": 1},
    }
    assert list(mysql)[:7] == ["name", "cluster", "deploy", "instance", "service", "host", "image"]
    web_on = {d["instance"]: d["env"]["DB_HOST"] for docs in containers.values() for d in docs if d["service"] == "web"}
    assert web_on == {"lamp-1": "10.0.0.1", "lamp-4": "10.0.0.1", "lamp-2": "10.0.0.2", "lamp-5": "10.0.0.2", "lamp-3": "n3"}
    exporter = containers["n2"][-1]
    assert (exporter["name"], exporter["instance"], exporter["deploy"]) == ("prod.node-exporter-n2.node-exporter", "node-exporter-n2", "node-exporter")


def test_documents_do_not_share_mutable_state():
    containers = _desired.render(FORMAT_DOC, FORMAT_DOC_PLACEMENT, HOSTS)
    containers["n1"][0]["env"]["X"] = "1"
    containers["n1"][0]["ports"][0]["host_port"] = 1
    assert "X" not in FORMAT_DOC.services["mysql"].config["env"]
    again = _desired.render(FORMAT_DOC, FORMAT_DOC_PLACEMENT, HOSTS)
    assert again["n1"][0]["ports"][0]["host_port"] == 3306 and "X" not in again["n1"][2]["env"]


def test_hosts_without_containers_are_present():
    spec = _spec_of("cluster: c\nservices: {a: {image: x}}\ndeploy: {a: {count: 1}}\n")
    containers = _desired.render(spec, {"a-1": "n2"}, HOSTS)
    assert {host: [d["name"] for d in docs] for host, docs in containers.items()} == {"n1": [], "n2": ["c.a-1.a"], "n3": []}
    assert _desired.render(_spec_of("cluster: c\n"), {}, HOSTS) == {"n1": [], "n2": [], "n3": []}


REFS = """\
cluster: prod
services:
  db:
    image: x
    volumes: ["{{ cluster }}-{{ instance.id }}-data:/data", "/srv/{{ instance.index }}:/backup"]
  web:
    image: x
    command: ["serve", "--db={{ instance.services.db.host }}", "--id={{ instance.id }}", "--n={{ instance.index }}"]
    entrypoint: ["/init", "{{ instance.host }}@{{ instance.address }}"]
    env:
      DB_NAME: "{{ instance.services.db.name }}"
      SELF: "{{instance.services.web.name}}"
      CLUSTER: "{{ cluster }}"
      LITERAL: "{{ something.else }} {{ name }}"
  lb:
    image: x
    env: {BACKENDS: "{{ deploy.app.web.addresses }}", DBS: "{{ deploy.app.db.addresses }}", AGENTS: "{{ deploy.agent.agent.addresses }}"}
  agent:
    image: x
    env: {ME: "{{ instance.id }} on {{ instance.host }}"}
stacks:
  app: {services: [db, web], colocate: false}
deploy:
  app: {count: 3}
  lb: {count: 1}
  agent: {global: true}
"""
REFS_PLACEMENT = {
    "app-1.db": "n1", "app-1.web": "n2",
    "app-2.db": "n3", "app-2.web": "n2",
    "app-3.db": "n2", "app-3.web": "n1",
    "lb-1": "n3",
    "agent-n3": "n3", "agent-n1": "n1",
}


def _by_name(containers):
    return {d["name"]: d for docs in containers.values() for d in docs}


def test_references_resolve_across_hosts():
    docs = _by_name(_desired.render(_spec_of(REFS), REFS_PLACEMENT, HOSTS))
    web1 = docs["prod.app-1.web"]
    assert web1["host"] == "n2"
    assert web1["command"] == ["serve", "--db=10.0.0.1", "--id=app-1", "--n=1"]
    assert web1["entrypoint"] == ["/init", "n2@10.0.0.2"]
    assert web1["env"] == {"DB_NAME": "prod.app-1.db", "SELF": "prod.app-1.web", "CLUSTER": "prod",
                           "LITERAL": "{{ something.else }} {{ name }}"}
    assert docs["prod.app-2.web"]["command"][1] == "--db=n3"  # n3 has no address: its name
    assert docs["prod.app-2.db"]["volumes"] == [
        {"source": "/srv/2", "target": "/backup", "read_only": False},
        {"source": "prod-app-2-data", "target": "/data", "read_only": False}]
    lb = docs["prod.lb-1.lb"]
    # instance order, one entry per host
    assert lb["env"] == {"BACKENDS": "10.0.0.2,10.0.0.1", "DBS": "10.0.0.1,n3,10.0.0.2", "AGENTS": "10.0.0.1,n3"}
    assert docs["prod.agent-n3.agent"]["env"] == {"ME": "agent-n3 on n3"}


def test_addresses_leave_out_instances_held_on_an_unavailable_host():
    """A stateful instance held on a down host keeps its placement, but a load balancer must not
    name it: haproxy refuses to start on a backend it cannot resolve, taking every instance down."""
    docs = _by_name(_desired.render(_spec_of(REFS), REFS_PLACEMENT, HOSTS, unavailable=["n3"]))
    assert docs["prod.lb-1.lb"]["env"] == {"BACKENDS": "10.0.0.2,10.0.0.1", "DBS": "10.0.0.1,10.0.0.2", "AGENTS": "10.0.0.1"}
    assert docs["prod.app-2.web"]["command"][1] == "--db=n3"  # the held instance's own documents are unchanged
    # a host missing from `hosts` altogether (down for the run) is rendered by name all the same
    alone = _desired.render(_spec_of(REFS), REFS_PLACEMENT, HOSTS[:2], unavailable=["n3"])
    assert _by_name(alone)["prod.lb-1.lb"]["env"] == docs["prod.lb-1.lb"]["env"]
    assert sorted(d["name"] for d in alone["n3"]) == sorted(d["name"] for d in _desired.render(_spec_of(REFS), REFS_PLACEMENT, HOSTS)["n3"])


def test_addresses_of_a_deploy_scaled_to_zero_are_empty():
    spec = _spec_of("cluster: c\nservices:\n  web: {image: x}\n  lb: {image: x, env: {B: '[{{ deploy.web.web.addresses }}]'}}\n"
                    "deploy:\n  web: {count: 0}\n  lb: {count: 1}\n")
    assert _desired.render(spec, {"lb-1": "n1"}, HOSTS)["n1"][0]["env"] == {"B": "[]"}


def test_resolved_values_are_never_scanned_again():
    hosts = _spec.load_hosts([{"name": "n1", "address": "{{cluster}}"}])
    spec = _spec_of("cluster: c\nservices: {a: {image: x, env: {H: '{{ instance.address }}', C: '{{ cluster }}'}}}\ndeploy: {a: {count: 1}}\n")
    assert _desired.render(spec, {"a-1": "n1"}, hosts)["n1"][0]["env"] == {"H": "{{cluster}}", "C": "c"}


@pytest.mark.parametrize("placement, message", [
    ({k: v for k, v in REFS_PLACEMENT.items() if k != "app-2.web"}, "stacks.yml: placement: no host for app-2.web (deploy.app needs 3 instances)"),
    (dict(REFS_PLACEMENT, **{"app-4.db": "n1"}), "stacks.yml: placement: key app-4.db matches no instance of the stack file"),
    (dict(REFS_PLACEMENT, **{"app-1": "n1"}), "stacks.yml: placement: key app-1 matches no instance of the stack file"),
    (dict(REFS_PLACEMENT, **{"lb-1": "n9"}), "stacks.yml: placement: lb-1 runs on host 'n9', which is not among the given hosts"),
    (dict(REFS_PLACEMENT, **{"agent-n9": "n9"}), "stacks.yml: placement: key agent-n9 matches no instance of the stack file"),
])
def test_placement_that_does_not_fit_the_spec(placement, message):
    with pytest.raises(_desired.RenderError) as caught:
        _desired.render(_spec_of(REFS), placement, HOSTS)
    assert message in caught.value.errors
    assert isinstance(caught.value, _spec.SpecError)  # callers catch both with SpecError


def test_a_placement_key_of_two_deploys_is_reported():
    # global deploy "a" on host "b-1" and deploy "a-b" instance 1 are both "a-b-1"
    spec = _spec_of("cluster: c\nservices:\n  a: {image: x}\n  a-b: {image: x}\ndeploy:\n  a: {global: true}\n  a-b: {count: 1}\n")
    hosts = _spec.load_hosts([{"name": "b-1"}])
    with pytest.raises(_desired.RenderError) as caught:
        _desired.render(spec, {"a-b-1": "b-1"}, hosts)
    assert caught.value.errors == ["stacks.yml: placement: key a-b-1 is an instance of both deploy.a and deploy.a-b; rename one deploy"]


def test_render_time_reference_errors_for_hand_built_specs():
    spec = _spec_of("cluster: c\nservices: {a: {image: x}}\ndeploy: {a: {global: true}}\n")
    spec.services["a"].config["env"]["N"] = "{{ instance.index }}"  # bypasses validation on purpose
    with pytest.raises(_desired.RenderError) as caught:
        _desired.render(spec, {"a-n1": "n1"}, HOSTS)
    assert caught.value.errors == ["stacks.yml: container c.a-n1.a: '{{ instance.index }}' is not defined for global deploy 'a'"]


# --- config hash


def _doc():
    return _by_name(_desired.render(FORMAT_DOC, FORMAT_DOC_PLACEMENT, HOSTS))["prod.lamp-1.mysql"]


#: The hash written on containers created now: without the in-place fields (resources, restart).
HASH_CURRENT = "be4dd13ddca781f6a56da3b2b375d009819ac9d96ade4f6d5307375ffa79686f"


def test_config_hash_is_pinned():
    # Changing either value recreates every container of every cluster: only on purpose.
    assert _desired.config_hash(_doc()) == HASH_CURRENT
    assert _desired.config_hash(_doc(), legacy=True) == "a12f52d375b029e40c4b37edc86f64c73a72516a34d33d3e37869c924a8833c5"


#: Every document of the contract's example under FORMAT_DOC_PLACEMENT, hashed by 0.1 (computed before
#: pull/update/secrets existed). New bookkeeping keys (`update` is now in every document) must not move them.
HASHES_0_1 = {
    "prod.lamp-1.mysql": "a12f52d375b029e40c4b37edc86f64c73a72516a34d33d3e37869c924a8833c5",
    "prod.lamp-1.web": "ae086746111de83033efbee87091e9917078d7da6c6151606258aff9abd0294f",
    "prod.lamp-2.mysql": "07a5228d690da1cc303b596b912a57b9268d63c4cc156773191975b4785c3f91",
    "prod.lamp-2.web": "b4e6dba980e3ac6fcb5af293361ff29be621e2fcdad8410acd1e1e926cd61252",
    "prod.lamp-3.mysql": "cf13826884f4a6fe5d94f90bfdd316975143933d4b4362511b5333ecc3ae2719",
    "prod.lamp-3.web": "34bf24fa6092dfe46c4f812c0149d61ab65a4b2f28a6ae891e4d0e2068e1ba46",
    "prod.lamp-4.mysql": "a3eb3854db64889ebb343d3b841559cb2d4f0be10b6820efad5e2d46060b72b6",
    "prod.lamp-4.web": "c1ed757e7a61234438b0be7e91c6445c122c25f3880bdac39bfabd1db5f227df",
    "prod.lamp-5.mysql": "4a08834fb27f7516da616553ba9a6bbf61f904e867554044788eefcb2e0ee5bf",
    "prod.lamp-5.web": "46aaf7223816200dd93a0a4be7ad5f2834d6cacac9f5ef0c7bc822090c6cf7fe",
    "prod.lb-1.lb": "96c3c2c61e769c56cd111eeae461197796142e357d75c4eef5ed2f876ece296d",
    "prod.lb-2.lb": "b4b644615e9ce2e104ff6651f09c1ad42396fa7bd8e02d73358dd4fb5378fc47",
    "prod.node-exporter-n1.node-exporter": "2c2bcbfb2a4400bac4a87a552097e3b2b29d4cb913d187b10cd1e0018fd5efdf",
    "prod.node-exporter-n2.node-exporter": "2a27fbb0cb95290344fd405387066473fc3c2da740af08244572fa8670acd411",
}

#: The 0.1 document of prod.lamp-1.mysql, written out: its hash must never move.
DOC_0_1 = {
    "name": "prod.lamp-1.mysql", "cluster": "prod", "deploy": "lamp", "instance": "lamp-1", "service": "mysql", "host": "n1",
    "image": "mariadb:11", "command": ["mysqld", "--max-connections=500"], "entrypoint": None, "env": {"MARIADB_DATABASE": "app"},
    "ports": [{"container_port": 3306, "protocol": "tcp", "host_port": 3306, "host_ip": ""}],
    "volumes": [{"source": "mysql-data", "target": "/var/lib/mysql", "read_only": False}], "labels": {"team": "data"},
    "restart": "unless-stopped", "network_mode": "host", "resources": {"cpus": 1.0, "memory_mb": 1024},
    "healthcheck": {"test": ["CMD", "mysqladmin", "ping"], "interval": 5.0, "timeout": 30.0, "retries": 10, "start_period": 0.0},
}


def test_config_hash_of_every_rendered_document_is_the_0_1_hash():
    docs = _by_name(_desired.render(FORMAT_DOC, FORMAT_DOC_PLACEMENT, HOSTS))
    assert {name: _desired.config_hash(doc, legacy=True) for name, doc in docs.items()} == HASHES_0_1


def test_config_hash_of_a_literal_0_1_document_is_pinned():
    assert _desired.config_hash(DOC_0_1, legacy=True) == "a12f52d375b029e40c4b37edc86f64c73a72516a34d33d3e37869c924a8833c5"
    assert _desired.config_hash(DOC_0_1) == HASH_CURRENT


@pytest.mark.parametrize("change", [{"restart": "always"}, {"resources": {"cpus": 2.0, "memory_mb": 4096}}, {"resources": {}}])
def test_in_place_fields_move_only_the_legacy_hash(change):
    # docker update applies them to the running container: they must not force a new one.
    doc = _doc()
    assert _desired.config_hash(dict(doc, **change)) == _desired.config_hash(doc)
    assert _desired.config_hash(dict(doc, **change), legacy=True) != _desired.config_hash(doc, legacy=True)


def test_config_hash_ignores_bookkeeping_order_and_number_spelling():
    doc = _doc()
    reordered = dict(reversed(list(doc.items())))
    reordered["env"] = dict(reversed(list(doc["env"].items())))
    moved = dict(doc, host="n9")
    integral = dict(doc, resources={"cpus": 1, "memory_mb": 1024.0}, healthcheck=dict(doc["healthcheck"], interval=5))
    as_tuples = dict(doc, command=tuple(doc["command"]))
    assert len({_desired.config_hash(d) for d in (doc, reordered, moved, integral, as_tuples)}) == 1
    assert len({_desired.config_hash(d, legacy=True) for d in (doc, reordered, moved, integral, as_tuples)}) == 1


@pytest.mark.parametrize("change", [
    {"image": "mariadb:11.1"},
    {"env": {"MARIADB_DATABASE": "app2"}},
    {"command": None},
    {"ports": []},
    {"labels": {}},
    {"instance": "lamp-2"},
])
def test_config_hash_changes_with_the_container(change):
    doc = _doc()
    assert _desired.config_hash(dict(doc, **change)) != _desired.config_hash(doc)


def test_pull_update_and_secret_references_in_documents():
    spec = _spec_of("cluster: c\nservices:\n  db: {image: x, pull: always, env: {PW: {secret: db_password}, U: '{{ instance.id }}'}}\n"
                    "  web: {image: y}\n"
                    "deploy:\n  db: {count: 1, update: {parallelism: 2}}\n  web: {count: 1}\n")
    docs = _by_name(_desired.render(spec, {"db-1": "n1", "web-1": "n2"}, HOSTS))
    db, web = docs["c.db-1.db"], docs["c.web-1.web"]
    assert db["env"] == {"PW": {"secret": "db_password"}, "U": "db-1"}  # the reference, never a value
    assert (db["pull"], db["update"]) == ("always", {"parallelism": 2})
    assert "pull" not in web and web["update"] == {"parallelism": 1}


@pytest.mark.parametrize("bookkeeping", [{"pull": "always"}, {"pull": "never"}, {"update": {"parallelism": 5}}, {"host": "n9"}])
def test_pull_and_update_are_bookkeeping_not_configuration(bookkeeping):
    doc = _doc()
    assert set(bookkeeping) <= set(_desired.BOOKKEEPING_FIELDS)
    assert _desired.config_hash(dict(doc, **bookkeeping)) == _desired.config_hash(doc)
    without = {k: v for k, v in doc.items() if k not in ("pull", "update")}
    assert _desired.config_hash(without) == _desired.config_hash(doc)


def test_config_hash_is_sha256_hex():
    value = _desired.config_hash({"image": "x"})
    assert len(value) == 64 and int(value, 16) >= 0


def test_config_hash_includes_the_name():
    assert _desired.config_hash(dict(_doc(), name="prod.lamp-9.mysql")) != _desired.config_hash(_doc())


@pytest.mark.parametrize("example", ["lamp-format-doc.yml", "lamp.yml"])
def test_render_takes_the_planners_placement_as_it_is(example):
    from ansible_collections.stackfleet.cluster.plugins.module_utils import _placement as placement

    spec = _spec.load_file(os.path.join(ROOT, "examples", example))
    hosts = _spec.load_hosts([
        {"name": "node-%d" % i, "address": "10.231.0.%d" % (10 + i), "labels": {"rack": "r%d" % (i % 3), "disk": "ssd"},
         "capacity": {"cpus": 8, "memory_mb": 16384}}
        for i in range(1, 7)])
    plan = placement.plan(spec, hosts, {})
    containers = _desired.render(spec, plan.assignments, hosts)
    covered = set()
    for host, host_docs in containers.items():
        for doc in host_docs:
            assert doc["host"] == host
            assert "{{" not in "".join(doc["env"].values())
            assert plan.assignments[doc["instance"]] == host  # both examples are colocated
            covered.add(doc["instance"])
    assert covered == set(plan.assignments)

"""The pure parts of the stacks inventory plugin: group names, host documents, labels → placement,
Docker parameters from host vars, untrusted marking, machine records, and the cheap verify_file."""
from __future__ import annotations

import json

import pytest
from ansible.template import Templar, is_trusted_as_template, trust_as_template
from ansible_collections.stackfleet.cluster.plugins.filter.host_documents import host_documents
from ansible_collections.stackfleet.cluster.plugins.inventory.stacks import InventoryModule
from ansible_collections.stackfleet.cluster.plugins.module_utils import _machines, _placement, _spec
from ansible_collections.stackfleet.cluster.plugins.module_utils._state import StateError
from ansible_collections.stackfleet.cluster.plugins.plugin_utils import _inventory

STACK = """
cluster: prod
services:
  mysql: {image: mariadb:11}
  web: {image: php:8-apache}
  node-exporter: {image: prom/node-exporter}
  api: {image: api:1}
  worker: {image: worker:1}
stacks:
  lamp: {services: [mysql, web]}
  pipeline: {services: [api, worker], colocate: false}
deploy:
  lamp: {count: 2}
  pipeline: {count: 1}
  node-exporter: {global: true}
"""


@pytest.fixture(scope="module")
def spec():
    return _spec.load_text(STACK, source="stacks.yml")


def labels(instance, service, deploy, cluster="prod"):
    return {"io.stackfleet.cluster": cluster, "io.stackfleet.deploy": deploy,
            "io.stackfleet.instance": instance, "io.stackfleet.service": service}


@pytest.mark.parametrize("name, kind, group", [
    ("lamp", "", "stackfleet_lamp"),
    ("node-exporter", "", "stackfleet_node_exporter"),
    ("node-exporter", "service", "stackfleet_service_node_exporter"),
    ("lamp", "stack", "stackfleet_stack_lamp"),
    ("a.b-c", "", "stackfleet_a_b_c"),
])
def test_group_names_are_valid_ansible_group_names(name, kind, group):
    assert _inventory.group_name(name, kind) == group


def test_every_deploy_service_and_stack_has_a_group_with_the_hosts_running_it(spec):
    hosts = _spec.load_hosts([{"name": "n1"}, {"name": "n2"}])
    placement = _placement.plan(spec, hosts)
    groups, warnings = _inventory.placement_groups(spec, placement.units.values())
    assert warnings == []
    assert set(groups) == {
        "stackfleet_lamp", "stackfleet_pipeline", "stackfleet_node_exporter",
        "stackfleet_service_mysql", "stackfleet_service_web", "stackfleet_service_node_exporter",
        "stackfleet_service_api", "stackfleet_service_worker", "stackfleet_stack_lamp", "stackfleet_stack_pipeline"}
    assert groups["stackfleet_node_exporter"] == ["n1", "n2"]
    lamp_hosts = sorted({placement.assignments["lamp-1"], placement.assignments["lamp-2"]})
    assert groups["stackfleet_lamp"] == groups["stackfleet_stack_lamp"] == groups["stackfleet_service_mysql"] == lamp_hosts
    assert groups["stackfleet_service_api"] == [placement.assignments["pipeline-1.api"]]


def test_groups_exist_when_empty_and_name_collisions_are_reported():
    spec = _spec.load_text("cluster: c\nservices:\n  a-b: {image: x}\n  a_b: {image: y}\ndeploy:\n  a-b: {count: 0}\n  a_b: {count: 0}\n")
    groups, warnings = _inventory.placement_groups(spec, [])
    assert groups["stackfleet_a_b"] == [] and groups["stackfleet_service_a_b"] == []
    assert any("deploy a-b and deploy a_b share the group name stackfleet_a_b" in w for w in warnings)


def test_host_instances_groups_placement_keys_by_host():
    assert _inventory.host_instances({"lamp-1": "n1", "lb-1": "n2", "lamp-2": "n1"}) == {"n1": ["lamp-1", "lamp-2"], "n2": ["lb-1"]}


def test_host_document_is_what_the_host_documents_filter_builds():
    hostvars = {"stackfleet_labels": {"rack": "r1"}, "stackfleet_capacity": {"cpus": 2, "memory_mb": 4096},
                "ansible_host": "10.0.0.1", "ansible_facts": {"os": "flatcar"}, "unrelated": 1}
    assert _inventory.host_document("n1", hostvars) == host_documents(["n1"], {"n1": hostvars})[0] == {
        "name": "n1", "labels": {"rack": "r1"}, "capacity": {"cpus": 2, "memory_mb": 4096},
        "address": "10.0.0.1", "facts": {"os": "flatcar"}, "drain": False}
    assert _inventory.host_document("bare", {}) == {"name": "bare", "labels": {}, "drain": False}
    assert _inventory.host_document("d", {"stackfleet_drain": "yes"})["drain"] is True


def test_previous_placement_from_labels_uses_placement_keys(spec):
    found = {
        "n2": [labels("lamp-1", "mysql", "lamp"), labels("lamp-1", "web", "lamp"),
               labels("pipeline-1", "api", "pipeline"), labels("node-exporter-n2", "node-exporter", "node-exporter")],
        "n1": [labels("pipeline-1", "worker", "pipeline"), labels("lamp-9", "web", "lamp", cluster="other"),
               {"team": "data"}],
    }
    placement, notes = _inventory.previous_from_labels(spec, found)
    assert placement == {"lamp-1": "n2", "pipeline-1.api": "n2", "pipeline-1.worker": "n1", "node-exporter-n2": "n2"}
    assert notes == []


def test_a_key_on_two_hosts_stays_on_the_first_by_name(spec):
    found = {"n3": [labels("lamp-1", "web", "lamp")], "n1": [labels("lamp-1", "mysql", "lamp")]}
    placement, notes = _inventory.previous_from_labels(spec, found)
    assert placement == {"lamp-1": "n1"}
    assert notes == ["lamp-1 runs on both n1 and n3; keeping it on n1"]


def test_labels_of_a_removed_deploy_keep_their_instance_key(spec):
    placement, _notes = _inventory.previous_from_labels(spec, {"n1": [labels("old-1", "x", "old")]})
    assert placement == {"old-1": "n1"}  # plan() reports it as removed


def test_docker_params_from_host_vars():
    assert _inventory.docker_params({"ansible_host": "10.0.0.1"}) is None
    params = _inventory.docker_params({"stackfleet_docker_host": "tcp://10.0.0.1:2376", "stackfleet_docker_tls": "true",
                                       "stackfleet_docker_ca_path": "/ca.pem", "stackfleet_docker_client_cert": "",
                                       "stackfleet_docker_validate_certs": "no"}, timeout=7)
    assert params == {"docker_host": "tcp://10.0.0.1:2376", "tls": True, "validate_certs": False, "ca_path": "/ca.pem", "timeout": 7}
    assert _inventory.docker_params({"stackfleet_docker_host": "tcp://h:2376", "stackfleet_docker_timeout": 3}, timeout=7)["timeout"] == 3


def test_untrusted_strips_template_trust_everywhere_and_templar_leaves_it_alone():
    trusted = trust_as_template("{{ 7*6 }}")
    assert is_trusted_as_template(trusted)
    value = _inventory.untrusted({"labels": {"note": trusted}, "list": [trusted], "n": 1, "none": None})
    assert value == {"labels": {"note": "{{ 7*6 }}"}, "list": ["{{ 7*6 }}"], "n": 1, "none": None}
    assert not is_trusted_as_template(value["labels"]["note"]) and not is_trusted_as_template(value["list"][0])
    templar = Templar(variables={"v": value})
    assert templar.template(trust_as_template("{{ v.labels.note }}")) == "{{ 7*6 }}"
    assert templar.template(trusted) == 42  # what would happen without untrusted()


def test_container_documents_carry_only_secret_references_and_stay_untrusted_when_nested():
    from ansible_collections.stackfleet.cluster.plugins.module_utils import _desired

    spec = _spec.load_text("cluster: c\nservices:\n  db:\n    image: x\n    env: {PW: {secret: db_password}, T: '{{ 7*6 }}'}\n"
                           "deploy: {db: {count: 1}}\n")
    hosts = _spec.load_hosts([{"name": "n1"}])
    docs = _desired.render(spec, _placement.plan(spec, hosts).assignments, hosts)["n1"]
    # as if a loader had trusted every string: untrusted() must strip it inside the nested reference too
    trusted = [dict(d, env={"PW": {"secret": trust_as_template("{{ 7*6 }}")}, "T": trust_as_template(d["env"]["T"])}) for d in docs]
    value = _inventory.untrusted(trusted)
    assert docs[0]["env"] == {"PW": {"secret": "db_password"}, "T": "{{ 7*6 }}"}
    assert not is_trusted_as_template(value[0]["env"]["PW"]["secret"]) and not is_trusted_as_template(value[0]["env"]["T"])
    templar = Templar(variables={"v": value})
    assert templar.template(trust_as_template("{{ v[0].env }}")) == {"PW": {"secret": "{{ 7*6 }}"}, "T": "{{ 7*6 }}"}


@pytest.mark.parametrize("path, wanted", [
    ("prod.stackfleet.yml", True), ("prod.stackfleet.yaml", True), ("stackfleet.yml", False),
    ("prod.yml", False), ("prod.stackfleet.yml.bak", False)])
def test_verify_file_is_a_suffix_check(tmp_path, path, wanted):
    target = tmp_path / path
    target.write_text("plugin: stackfleet.cluster.stacks\n")
    assert InventoryModule().verify_file(str(target)) is wanted
    assert InventoryModule().verify_file(str(tmp_path / "missing.stackfleet.yml")) is False


def test_machine_keys_and_documents():
    assert _machines.machine_key("prod", "node-3") == "/stackfleet/prod/machines/node-3"
    assert _machines.decode_machine("/stackfleet/prod/machines/n1", b'{"labels": {"rack": "r1"}}') == {
        "name": "n1", "labels": {"rack": "r1"}}
    doc = {"name": "n1", "address": "10.0.0.1"}
    assert _machines.decode_machine("/stackfleet/prod/machines/n1", _machines.encode_machine(doc).encode()) == doc
    for raw, problem in ((b"{nope", "not a JSON host document"), (b"[1]", "expected a JSON object"),
                         (json.dumps({"name": "n2"}).encode(), "the key names 'n1'")):
        with pytest.raises(StateError, match=problem):
            _machines.decode_machine("/stackfleet/prod/machines/n1", raw)
    for bad in ("", "a/b", "tab\there"):
        with pytest.raises(StateError):
            _machines.machine_key("prod", bad)

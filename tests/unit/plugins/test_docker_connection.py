"""One mapping of stackfleet_docker_* variables to the containers module's connection options,
for the inventory plugin, the stack role and the etcd role alike (issue 8 §4)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.stackfleet.cluster.plugins.filter.docker_connection import docker_connection
from ansible_collections.stackfleet.cluster.plugins.module_utils._docker import CONNECTION_ARGSPEC
from ansible_collections.stackfleet.cluster.plugins.plugin_utils import _inventory

HOST = {
    "ansible_host": "10.0.0.1",
    "stackfleet_docker_host": "tcp://10.0.0.1:2376",
    "stackfleet_docker_tls": "yes",
    "stackfleet_docker_validate_certs": "false",
    "stackfleet_docker_ca_path": "/ca.pem",
    "stackfleet_docker_client_cert": "/cert.pem",
    "stackfleet_docker_client_key": "/key.pem",
    "stackfleet_docker_tls_hostname": "node-1",
    "stackfleet_docker_api_version": "1.41",
    "stackfleet_docker_timeout": 30,
}


def test_every_variable_maps_to_a_module_option():
    assert set(_inventory.DOCKER_VARS.values()) <= set(CONNECTION_ARGSPEC)
    assert docker_connection(HOST) == {
        "docker_host": "tcp://10.0.0.1:2376", "tls": True, "validate_certs": False, "ca_path": "/ca.pem",
        "client_cert": "/cert.pem", "client_key": "/key.pem", "tls_hostname": "node-1", "api_version": "1.41",
        "timeout": 30}


def test_unset_and_empty_variables_are_left_to_the_module():
    assert docker_connection({"stackfleet_docker_host": "tcp://h:2376", "stackfleet_docker_tls": "",
                              "stackfleet_docker_ca_path": None}) == {"docker_host": "tcp://h:2376"}


def test_default_host_only_when_the_host_names_none():
    assert docker_connection({}, default_host="tcp://10.0.0.9:2376") == {"docker_host": "tcp://10.0.0.9:2376"}
    assert docker_connection(HOST, default_host="tcp://other:2376")["docker_host"] == "tcp://10.0.0.1:2376"


def test_the_inventory_plugin_reads_the_same_mapping():
    assert _inventory.docker_params(HOST) == docker_connection(HOST)
    assert _inventory.docker_params({"stackfleet_docker_tls": True}) is None  # no engine named: not read
    assert _inventory.docker_params({"stackfleet_docker_host": "tcp://h:2376"}, timeout=5) == {
        "docker_host": "tcp://h:2376", "timeout": 5}


def test_not_a_mapping():
    with pytest.raises(AnsibleFilterError, match="hostvars"):
        docker_connection(["a"])

# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engines filter: host name -> connection options, through the one stackfleet_docker_* mapping."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.stackfleet.cluster.plugins.filter.docker_connection import docker_connection
from ansible_collections.stackfleet.cluster.plugins.filter.engines import FilterModule, engines

HOSTVARS = {
    "n1": {"stackfleet_docker_host": "tcp://10.0.0.11:2376", "stackfleet_docker_tls": "yes", "stackfleet_docker_ca_path": "/ca.pem",
           "stackfleet_docker_timeout": 20, "ansible_host": "10.0.0.11"},
    "n2": {"stackfleet_docker_host": "tcp://10.0.0.12:2376", "stackfleet_docker_validate_certs": False, "stackfleet_docker_tls": True},
    "n3": {"ansible_host": "10.0.0.13"},
}


def test_each_host_gets_what_docker_connection_gives_it():
    assert engines(["n1", "n2", "n3"], HOSTVARS) == {name: docker_connection(HOSTVARS[name]) for name in ("n1", "n2", "n3")}
    assert engines(["n1"], HOSTVARS) == {"n1": {"docker_host": "tcp://10.0.0.11:2376", "tls": True, "ca_path": "/ca.pem", "timeout": 20}}
    assert engines(["n3"], HOSTVARS) == {"n3": {}}  # nothing set: the module's defaults and environment apply
    assert engines((), HOSTVARS) == {}


@pytest.mark.parametrize("names, match", [("n1", "list of host names"), (["nope"], "'nope' is not an inventory host")])
def test_bad_input_is_an_error(names, match):
    with pytest.raises(AnsibleFilterError, match=match):
        engines(names, HOSTVARS)


def test_registered():
    assert FilterModule().filters()["engines"] is engines

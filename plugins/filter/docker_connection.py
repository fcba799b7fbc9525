# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: docker_connection
short_description: The containers module's connection options from a host's stackfleet_docker_* variables
version_added: 0.2.0
description:
  - The one mapping of the C(stackfleet_docker_*) host variables to the connection options of
    M(stackfleet.cluster.containers), used by the C(stacks) inventory plugin, the C(stack) role and the C(etcd) role alike.
  - C(stackfleet_docker_host) → O(stackfleet.cluster.containers#module:docker_host), C(stackfleet_docker_tls) → C(tls),
    C(stackfleet_docker_validate_certs) → C(validate_certs), C(stackfleet_docker_ca_path) → C(ca_path),
    C(stackfleet_docker_client_cert) → C(client_cert), C(stackfleet_docker_client_key) → C(client_key),
    C(stackfleet_docker_tls_hostname) → C(tls_hostname), C(stackfleet_docker_api_version) → C(api_version),
    C(stackfleet_docker_timeout) → C(timeout).
  - Only variables that are set (not empty) appear; everything else is left to the module's defaults, including its
    secure-by-default rule for V(tcp://) engines (TLS verified when a CA is known, plain text only with C(tls=false)).
options:
  _input:
    description: A host's variables, for example C(hostvars[inventory_hostname]).
    type: dict
    required: true
  default_host:
    description: The engine URL to use when the host has no C(stackfleet_docker_host).
    type: str
author:
  - stackfleet maintainers (@stackfleet)
"""

EXAMPLES = r"""
- name: Converge with the host's own connection settings
  stackfleet.cluster.containers:
    cluster: prod
    containers: []
    docker_host: "{{ conn.docker_host | default(omit) }}"
    tls: "{{ conn.tls | default(omit) }}"
    validate_certs: "{{ conn.validate_certs | default(omit) }}"
    ca_path: "{{ conn.ca_path | default(omit) }}"
    client_cert: "{{ conn.client_cert | default(omit) }}"
    client_key: "{{ conn.client_key | default(omit) }}"
  vars:
    conn: "{{ hostvars[inventory_hostname] | stackfleet.cluster.docker_connection(default_host='tcp://' ~ ansible_host ~ ':2376') }}"
"""

RETURN = r"""
_value:
  description: Connection options of M(stackfleet.cluster.containers), only those the variables set.
  type: dict
  sample: {docker_host: "tcp://10.0.0.11:2376", tls: true, ca_path: /etc/stackfleet/ca.pem}
"""

import typing as t

from ansible.errors import AnsibleFilterError
from ansible_collections.stackfleet.cluster.plugins.plugin_utils._inventory import docker_options


def docker_connection(variables: t.Mapping[str, t.Any], default_host: t.Optional[str] = None) -> t.Dict[str, t.Any]:
    if not isinstance(variables, t.Mapping):
        raise AnsibleFilterError("docker_connection expects a host's variables (hostvars[host]), got %s"
                                 % type(variables).__name__)
    options = docker_options(variables)
    if default_host and not options.get("docker_host"):
        options["docker_host"] = default_host
    return options


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"docker_connection": docker_connection}

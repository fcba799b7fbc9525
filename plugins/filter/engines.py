# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: engines
short_description: Every host's Docker engine connection options, keyed by host name
version_added: 0.3.0
description:
  - Turns a list of inventory host names into the O(stackfleet.cluster.engine_probe#module:engines) mapping of
    M(stackfleet.cluster.engine_probe) (and of the modules that read the whole fleet at once), host name to the
    connection options of M(stackfleet.cluster.containers) that the host's C(stackfleet_docker_*) variables set.
  - Built with the same one mapping as the P(stackfleet.cluster.docker_connection#filter) filter, so the probe reaches each
    engine exactly as the converge does. Options a host does not set are left out; the module fills them from the
    environment and the defaults the same way M(stackfleet.cluster.containers) does.
options:
  _input:
    description: Inventory host names, for example C(groups['stackfleet_hosts']).
    type: list
    elements: str
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: dict
    required: true
author:
  - stackfleet maintainers (@stackfleet)
"""

EXAMPLES = r"""
- name: Probe every engine of the group at once
  stackfleet.cluster.engine_probe:
    engines: "{{ groups['stackfleet_hosts'] | stackfleet.cluster.engines(hostvars) }}"
  register: probe
"""

RETURN = r"""
_value:
  description:
    - Host name to its connection options (C(docker_host), C(tls), C(validate_certs), C(ca_path), C(client_cert),
      C(client_key), C(tls_hostname), C(api_version), C(timeout)), only those the variables set.
  type: dict
  sample: {node-1: {docker_host: "tcp://10.0.0.11:2376", tls: true, ca_path: /etc/stackfleet/ca.pem}}
"""

import typing as t

from ansible.errors import AnsibleFilterError
from ansible_collections.stackfleet.cluster.plugins.plugin_utils._inventory import docker_options


def engines(names: t.Any, hostvars: t.Any) -> t.Dict[str, t.Dict[str, t.Any]]:
    if isinstance(names, (str, bytes)) or not isinstance(names, t.Iterable):
        raise AnsibleFilterError("engines expects a list of host names, got %s" % type(names).__name__)
    result: t.Dict[str, t.Dict[str, t.Any]] = {}
    for name in names:
        if name not in hostvars:
            raise AnsibleFilterError("engines: %r is not an inventory host" % (name,))
        result[str(name)] = docker_options(hostvars[name])
    return result


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"engines": engines}

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: converge_hosts
short_description: The hosts map of cluster_converge, from a plan's containers map and the hosts' connection variables
version_added: 0.5.0
description:
  - Turns a list of inventory host names into the O(stackfleet.cluster.cluster_converge#module:hosts) mapping of
    M(stackfleet.cluster.cluster_converge), host name to C({containers, connection}) - the host's documents from the
    plan's containers map and its engine's connection options, built by the P(stackfleet.cluster.engines#filter) filter
    (the hosts' C(stackfleet_docker_*) variables), so every engine is reached as the probe and the per-host converge reach it.
  - Keeps the order of the list (M(stackfleet.cluster.cluster_converge) with O(stackfleet.cluster.cluster_converge#module:serial)
    converges in that order).
  - A host the plan does not cover is refused, never taken as "no containers".
options:
  _input:
    description: Inventory host names, for example the live hosts of the run.
    type: list
    elements: str
    required: true
  containers:
    description: The plan's containers map, host name to its list of container documents (C(stack_plan)'s C(containers)).
    type: dict
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: dict
    required: true
  templates:
    description:
      - The plan's C(templates), when O(containers) is in the compact form (M(stackfleet.cluster.stack_plan) with
        O(stackfleet.cluster.stack_plan#module:documents=compact)); each listed host's entries are expanded to full documents.
      - Omitted or empty for a plan in the full form.
    type: dict
    default: {}
author:
  - stackfleet maintainers (@stackfleet)
"""

EXAMPLES = r"""
- name: Converge every live host of the plan from the controller
  stackfleet.cluster.cluster_converge:
    cluster: "{{ plan.cluster }}"
    hosts: "{{ live_hosts | stackfleet.cluster.converge_hosts(plan.containers, hostvars) }}"

- name: The same from a compact plan (stack_plan with documents=compact)
  stackfleet.cluster.cluster_converge:
    cluster: "{{ plan.cluster }}"
    hosts: "{{ live_hosts | stackfleet.cluster.converge_hosts(plan.containers, hostvars, plan.templates) }}"
"""

RETURN = r"""
_value:
  description: Host name to C({containers, connection}).
  type: dict
  sample:
    node-1:
      containers: [{name: prod.web-1.web, cluster: prod, image: "web:2"}]
      connection: {docker_host: "tcp://10.0.0.11:2376", ca_path: /etc/stackfleet/ca.pem}
"""

import typing as t

from ansible.errors import AnsibleFilterError
from ansible_collections.stackfleet.cluster.plugins.filter.engines import engines
from ansible_collections.stackfleet.cluster.plugins.module_utils import _plan_documents


def converge_hosts(names: t.Any, containers: t.Any, hostvars: t.Any, templates: t.Any = None) -> t.Dict[str, t.Dict[str, t.Any]]:
    if isinstance(names, (str, bytes)) or not isinstance(names, t.Iterable):
        raise AnsibleFilterError("converge_hosts expects a list of host names, got %s" % type(names).__name__)
    if not isinstance(containers, t.Mapping):
        raise AnsibleFilterError("converge_hosts: containers must be the plan's map of host name to documents, got %s"
                                 % type(containers).__name__)
    names = [str(name) for name in names]
    uncovered = [name for name in names if name not in containers]
    if uncovered:
        raise AnsibleFilterError(
            "converge_hosts: %s not in the plan's containers map (planned hosts: %s); an empty list would be a guess, "
            "refusing to converge them" % (", ".join(uncovered), ", ".join(sorted(str(h) for h in containers)) or "none"))
    connections = engines(names, hostvars)
    try:
        # Only the listed hosts are expanded: phase 2 and removal name a few hosts of a large plan.
        return {name: {"containers": _plan_documents.expand(containers[name], templates or {}, name), "connection": connections[name]}
                for name in names}
    except _plan_documents.DocumentsError as exc:
        raise AnsibleFilterError("converge_hosts: %s" % exc) from exc


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"converge_hosts": converge_hosts}

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: plan_containers
short_description: The full container documents of a plan, of one host or of every host
version_added: 0.5.0
description:
  - Takes a plan's C(containers) (as M(stackfleet.cluster.stack_plan) returns it, in either form of its
    C(documents) option) and its C(templates), and returns full container documents, the input of
    M(stackfleet.cluster.containers).
  - With O(host), the list of that host's documents (an empty list when the plan has no entry for it);
    without, a mapping of every host to its documents.
  - Full documents pass through unchanged, so a task need not know which form the plan has.
options:
  _input:
    description: The plan's C(containers) (host name to entries).
    type: dict
    required: true
  templates:
    description: The plan's C(templates); may be omitted or empty for a plan in the full form.
    type: dict
    default: {}
  host:
    description: Only this host's documents.
    type: str
author:
  - stackfleet maintainers (@stackfleet)
"""

EXAMPLES = r"""
- name: Converge this host from a compact plan made once on the controller
  stackfleet.cluster.containers:
    cluster: "{{ plan.cluster }}"
    containers: "{{ plan.containers | stackfleet.cluster.plan_containers(plan.templates, inventory_hostname) }}"

- name: Every host's documents, for the status module
  stackfleet.cluster.stack_status:
    cluster: "{{ plan.cluster }}"
    containers: "{{ plan.containers | stackfleet.cluster.plan_containers(plan.templates | default({})) }}"
"""

RETURN = r"""
_value:
  description: A list of documents (with O(host)), or host name to list of documents.
  type: raw
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.stackfleet.cluster.plugins.module_utils import _plan_documents


def plan_containers(containers, templates=None, host=None):
    """Only the asked host's entries are expanded: a converge play calls this once per host."""
    if not isinstance(containers, dict):
        raise AnsibleFilterError("plan_containers expects a plan's containers (a mapping of host name to entries), got %s"
                                 % type(containers).__name__)
    templates = templates or {}
    try:
        if host is not None:
            return _plan_documents.expand(containers.get(host) or (), templates, host)
        return _plan_documents.expand_all(containers, templates)
    except _plan_documents.DocumentsError as exc:
        raise AnsibleFilterError("plan_containers: %s" % exc) from exc


class FilterModule:
    def filters(self):
        return {"plan_containers": plan_containers}

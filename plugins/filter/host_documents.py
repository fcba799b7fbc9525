# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: host_documents
short_description: Build stackfleet host documents from inventory hosts
version_added: 0.1.0
description:
  - Turns a list of inventory host names into the host documents that
    M(stackfleet.cluster.stack_plan) places onto.
  - Each document takes C(labels) from the host variable C(stackfleet_labels), C(capacity) from
    C(stackfleet_capacity), C(address) from C(ansible_host) and, when facts were gathered,
    C(facts) from C(ansible_facts).
  - C(drain) is the host variable C(stackfleet_drain) read as a boolean (default V(false));
    a drained host receives no instance and the ones placed there move (version 0.3.0).
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
- name: Plan over every host of the group
  stackfleet.cluster.stack_plan:
    stack_file: stacks.yml
    hosts: "{{ groups['stackfleet_hosts'] | stackfleet.cluster.host_documents(hostvars) }}"
"""

RETURN = r"""
_value:
  description: One host document per host name, in the given order.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean


def host_documents(names, hostvars):
    """Host variables → host documents; `stack_plan` validates the result."""
    if not isinstance(names, (list, tuple)):
        raise AnsibleFilterError("host_documents expects a list of host names, got %s" % type(names).__name__)
    documents = []
    for name in names:
        if name not in hostvars:
            raise AnsibleFilterError("host_documents: %r is not an inventory host" % (name,))
        hv = hostvars[name]
        doc = {"name": name, "labels": hv.get("stackfleet_labels") or {}, "drain": _drain(name, hv.get("stackfleet_drain"))}
        if hv.get("stackfleet_capacity"):
            doc["capacity"] = hv["stackfleet_capacity"]
        if hv.get("ansible_host"):
            doc["address"] = hv["ansible_host"]
        if hv.get("ansible_facts"):
            doc["facts"] = hv["ansible_facts"]
        documents.append(doc)
    return documents


def _drain(name, value):
    if value is None or value == "":
        return False
    try:
        return boolean(value, strict=True)
    except TypeError as exc:
        raise AnsibleFilterError("host_documents: host %s: stackfleet_drain: %s" % (name, exc))


class FilterModule:
    def filters(self):
        return {"host_documents": host_documents}

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: converge_errors
short_description: Host name to why it did not converge, from a cluster_converge result
version_added: 0.5.0
description:
  - Turns the registered result of M(stackfleet.cluster.cluster_converge) into host name to error message, for each host
    in its C(failed_hosts) (the message M(stackfleet.cluster.containers) would have failed with on that host).
  - When the task failed before any host was converged (a refused argument, a template error in its options), every host
    of O(hosts) gets the task's message.
  - A result that did not fail gives an empty mapping.
options:
  _input:
    description: The registered result of M(stackfleet.cluster.cluster_converge).
    type: dict
    required: true
  hosts:
    description: The hosts the task was given, blamed all together for a failure that names no host.
    type: list
    elements: str
    required: true
author:
  - stackfleet maintainers (@stackfleet)
"""

EXAMPLES = r"""
- name: Remember why each host failed
  ansible.builtin.set_fact:
    errors: "{{ errors | default({}) | combine(converged | stackfleet.cluster.converge_errors(live_hosts)) }}"
  when: converged is failed
"""

RETURN = r"""
_value:
  description: Host name to its error message.
  type: dict
  sample: {node-2: "tcp://10.0.0.12:2376: cannot reach the Docker engine at tcp://10.0.0.12:2376: Connection refused"}
"""

import typing as t

from ansible.errors import AnsibleFilterError


def converge_errors(result: t.Any, hosts: t.Any) -> t.Dict[str, str]:
    if not isinstance(result, t.Mapping):
        raise AnsibleFilterError("converge_errors expects a registered cluster_converge result, got %s" % type(result).__name__)
    if not result.get("failed"):
        return {}
    per_host = result.get("hosts") or {}
    failed = [h for h in result.get("failed_hosts") or [] if h in per_host]
    if failed:
        return {str(h): str(per_host[h].get("msg") or "failed") for h in failed}
    return {str(h): str(result.get("msg") or "failed") for h in hosts or []}


class FilterModule:
    def filters(self) -> t.Dict[str, t.Callable[..., t.Any]]:
        return {"converge_errors": converge_errors}

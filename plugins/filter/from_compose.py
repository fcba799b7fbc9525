# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: from_compose
short_description: Turn a docker-compose document into a stack file, naming what it cannot express
version_added: 0.4.0
description:
  - "Takes a parsed docker-compose file (compose specification or the version 2/3 formats) and a cluster name, and
    returns the stackfleet stack-file document: every service with an image becomes a service and a deploy of its own
    (C(count) from C(deploy.replicas), or C(global=true) for C(deploy.mode=global))."
  - "Converted: C(image), C(command), C(entrypoint), C(environment) (list and mapping), C(ports) (short and long
    syntax; a port docker-compose publishes on a random host port becomes V(auto:PORT)), C(expose) (a port that is not
    published), C(volumes) (named, bind and long syntax), C(labels), C(restart) and C(deploy.restart_policy),
    C(healthcheck), C(network_mode), C(pull_policy), C(deploy.replicas), C(deploy.mode=global),
    C(deploy.placement.constraints) on C(node.hostname) and C(node.labels.X) (a JMESPath C(constraint)),
    C(deploy.placement.preferences) spread over a node label (C(spread)), C(deploy.placement.max_replicas_per_node)
    (C(max_per_host)), C(deploy.resources.limits) and C(cpus)/C(mem_limit) (C(resources)),
    C(deploy.update_config.parallelism) (C(update.parallelism)), and C(${VAR}) interpolation (O(variables) over O(dotenv))."
  - "Every other key, and every value the stack file cannot say, is named in the list of unsupported items, one
    line each (C(services.web.depends_on: not expressible; ...)), with what to write instead where the stack-file
    validator knows it. Nothing is dropped silently."
  - The result is validated with the collection's own stack-file validation before it is returned; a conversion that
    does not give a valid stack file (two mounts on one target, say) fails with every problem, each naming its key path.
  - The mapping is described in the collection's docs/compose.md.
options:
  _input:
    description: The docker-compose document, parsed (for example C(lookup('file', 'compose.yaml') | from_yaml)).
    type: dict
    required: true
  cluster:
    description: The cluster name of the stack file (letters, digits, C(_) and C(-)).
    type: str
    required: true
  with_warnings:
    description:
      - Return C({stack, unsupported}) instead of the stack document alone.
    type: bool
    default: false
  project_dir:
    description:
      - The compose file's folder. Relative bind-mount sources (C(./data:/data)) are resolved against it, as
        docker-compose does. Without it they are listed as unsupported.
    type: str
  variables:
    description:
      - Values for C(${VAR}), C(${VAR:-default}) and C($VAR) in the compose file (docker-compose takes them from the shell
        and C(.env)). An unset variable becomes an empty string and is listed as unsupported; C(${VAR:?message}) fails.
        C($$) is a literal C($).
    type: dict
    default: {}
  dotenv:
    description:
      - The text of the compose project's C(.env) file (C(NAME=value) lines, C(#) comments, quoted values), whose values
        O(variables) override, as the shell's variables override C(.env) for docker-compose.
    type: str
author:
  - stackfleet maintainers (@stackfleet)
"""

EXAMPLES = r"""
- name: Convert compose.yaml into a stack file for cluster prod
  ansible.builtin.set_fact:
    converted: "{{ lookup('ansible.builtin.file', 'compose.yaml') | from_yaml
                   | stackfleet.cluster.from_compose('prod', with_warnings=true, project_dir=playbook_dir) }}"

- name: Write the stack file
  ansible.builtin.copy:
    content: "{{ converted.stack | to_nice_yaml(indent=2, sort_keys=false) }}"
    dest: stacks.yml
    mode: "0644"

- name: Say what the stack file does not express
  ansible.builtin.debug:
    msg: "{{ converted.unsupported }}"

- name: The stack document alone
  ansible.builtin.debug:
    msg: "{{ {'services': {'web': {'image': 'nginx:1.27', 'ports': ['8080:80']}}} | stackfleet.cluster.from_compose('demo') }}"
"""

RETURN = r"""
_value:
  description:
    - The stack-file document (C(cluster), C(services), C(deploy)).
    - "With O(with_warnings=true), a mapping with C(stack) (that document) and C(unsupported): a list of strings, one per
      compose key or value the stack file cannot express, each C(<key path>: <what happened>; <what to write instead>),
      in file order."
  type: dict
"""

from ansible.errors import AnsibleFilterError
from ansible.utils.unsafe_proxy import wrap_var
from ansible_collections.stackfleet.cluster.plugins.module_utils import _compose, _spec


def from_compose(compose, cluster, with_warnings=False, project_dir=None, variables=None, dotenv=None):
    """A docker-compose document → a validated stack-file document (and, with_warnings, what it cannot express)."""
    try:
        conversion = _compose.convert(compose, cluster, project_dir=project_dir, variables=variables, dotenv=dotenv)
    except _compose.ComposeError as exc:
        raise AnsibleFilterError("from_compose: %s" % exc)
    try:
        _spec.load_data(conversion.stack, source="converted compose file")
    except _spec.SpecError as exc:
        raise AnsibleFilterError("from_compose: the converted stack file is not valid; fix the compose file or convert by hand."
                                 "\n%s%s" % (exc, "\nnot expressible:\n" + "\n".join(conversion.unsupported)
                                             if conversion.unsupported else ""))
    # Data read from a compose file is never a template (volume sources carry stackfleet's own {{ cluster }}).
    return wrap_var(conversion.as_dict() if with_warnings else conversion.stack)


class FilterModule:
    def filters(self):
        return {"from_compose": from_compose}

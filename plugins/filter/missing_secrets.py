# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: missing_secrets
short_description: Name every secret reference of a plan that has no value
version_added: 0.2.0
description:
  - "Takes container documents (a plan's C(containers) map of host name to documents, or one host's list) and the
    secret values by name, and returns one line per C(env) value written as C({secret: NAME}) whose secret is not
    given, naming the secret, the container and the env key."
  - The C(stack) role runs it over the whole plan on every host before any host is converged, so a missing secret
    fails the run before anything changes anywhere. The result never contains a value.
options:
  _input:
    description: Container documents, as a mapping of host name to documents or as a list.
    type: raw
    required: true
  secrets:
    description: Secret values by name (C(stackfleet_secrets)).
    type: dict
    required: true
  templates:
    description:
      - The plan's C(templates), when its C(containers) map is in the compact form (M(stackfleet.cluster.stack_plan)
        with O(stackfleet.cluster.stack_plan#module:documents=compact)); omitted or empty for full documents.
    type: dict
    default: {}
    version_added: 0.5.0
author:
  - stackfleet maintainers (@stackfleet)
"""

EXAMPLES = r"""
- name: Refuse a plan whose secrets are not all given
  ansible.builtin.fail:
    msg: "{{ missing | join('; ') }}"
  vars:
    missing: "{{ plan.containers | stackfleet.cluster.missing_secrets(stackfleet_secrets | default({})) }}"
  when: missing | length > 0
"""

RETURN = r"""
_value:
  description: One C(secret 'NAME' for CONTAINER env KEY) line per missing secret reference, sorted; empty when all are given.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.stackfleet.cluster.plugins.module_utils import _plan_documents, _secrets


def missing_secrets(documents, secrets, templates=None):
    """Container documents and secret values → what is missing (names only, never values)."""
    if isinstance(documents, dict):
        if templates:
            try:
                documents = _plan_documents.expand_all(documents, templates)
            except _plan_documents.DocumentsError as exc:
                raise AnsibleFilterError("missing_secrets: %s" % exc) from exc
        documents = [doc for docs in documents.values() for doc in docs or ()]
    if not isinstance(documents, (list, tuple)) or not all(isinstance(doc, dict) for doc in documents):
        raise AnsibleFilterError("missing_secrets expects container documents (a host → documents mapping or a list)")
    if secrets is not None and not isinstance(secrets, dict):
        raise AnsibleFilterError("missing_secrets expects the secrets as a mapping of name to value")
    try:
        _secrets.check(documents, secrets)
    except _secrets.SecretError as exc:
        return sorted("secret '%s' for %s env %s" % (secret, container, key) for container, key, secret in exc.missing)
    return []


class FilterModule:
    def filters(self):
        return {"missing_secrets": missing_secrets}

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_state
short_description: Store a cluster's placement record in etcd
version_added: 0.1.0
description:
  - The placement record remembers where every placement key went, so the next plan keeps containers where they are.
  - It is stored as JSON under C(/stackfleet/<cluster>/placement) (see C(docs/etcd.md)) with the placement, a hash of
    the stack file it came from, when and by whom it was written.
  - Writes are compare-and-swap on the key's revision, so two runs cannot silently overwrite each other.
    Storing the same placement and O(spec_hash) again changes nothing.
  - M(stackfleet.cluster.stack_state_info) reads the record.
extends_documentation_fragment:
  - stackfleet.cluster.etcd
  - stackfleet.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  cluster:
    description:
      - Cluster name (the stack file's C(cluster)). Letters, digits, C(.), C(_) and C(-).
    type: str
    required: true
  placement:
    description:
      - Placement key to host name, as M(stackfleet.cluster.stack_plan) returns it.
    type: dict
    required: true
  spec_hash:
    description:
      - Hash of the stack file the placement was computed from, stored alongside it.
    type: str
    default: ""
  updated_by:
    description:
      - Who writes the record; defaults to C(awx-job-<id>) from E(JOB_ID) / E(AWX_JOB_ID), otherwise C(<hostname>).
    type: str
  expected_revision:
    description:
      - Write only if the stored record still has this revision (RV(stackfleet.cluster.stack_state_info#module:revision)
        of an earlier read); V(0) means "only if there is no record yet". The task fails on a mismatch and writes nothing.
    type: int
  ports:
    description:
      - The host ports of the plan, as M(stackfleet.cluster.stack_plan) returns them (RV(stackfleet.cluster.stack_plan#module:ports)),
        stored with the placement so that the next plan keeps each instance's dynamic (V(auto)) host ports.
      - Left empty, the record has no C(ports) field, as records written before 0.4.0.
    type: dict
    default: {}
    version_added: 0.4.0
author:
  - stackfleet maintainers (@stackfleet)
"""

EXAMPLES = r"""
- name: Read the previous placement
  stackfleet.cluster.stack_state_info:
    cluster: prod
  register: previous

- name: Store the new plan, unless someone else stored one meanwhile
  stackfleet.cluster.stack_state:
    cluster: prod
    placement: "{{ plan.placement }}"
    ports: "{{ plan.ports }}"
    spec_hash: "{{ lookup('ansible.builtin.file', 'stacks.yml') | hash('sha256') }}"
    expected_revision: "{{ previous.revision }}"
"""

RETURN = r"""
placement:
  description: The stored placement.
  returned: always
  type: dict
  sample: {lamp-1: node-1, lamp-2: node-3}
revision:
  description: The record's etcd modification revision after the write (in check mode, the current one).
  returned: always
  type: int
  sample: 17
updated_at:
  description: When the record was written (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2025-01-31T10:00:00Z"
updated_by:
  description: Who wrote it.
  returned: always
  type: str
spec_hash:
  description: The stack file hash stored with it.
  returned: always
  type: str
ports:
  description: The stored host ports (placement key to service to a list of ports); empty when the record has none.
  returned: always
  type: dict
  version_added: 0.4.0
  sample: {lamp-1: {web: [{container_port: 80, protocol: tcp, host_ip: "", host_port: 20000}]}}
key:
  description: The etcd key of the record.
  returned: always
  type: str
  sample: /stackfleet/prod/placement
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd_tasks import STATE_SPEC, run_state
from ansible_collections.stackfleet.cluster.plugins.module_utils._task import TaskFailed


def main() -> None:
    module = AnsibleModule(argument_spec=STATE_SPEC, supports_check_mode=True)
    try:
        result = run_state(module.params, module.check_mode, module._diff)
    except TaskFailed as err:
        module.fail_json(msg=str(err), **err.fields)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

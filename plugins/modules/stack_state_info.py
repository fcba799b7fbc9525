#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_state_info
short_description: Read a cluster's placement record from etcd
version_added: 0.1.0
description:
  - Reads the placement record M(stackfleet.cluster.stack_state) stores under C(/stackfleet/<cluster>/placement)
    (see C(docs/etcd.md)).
  - Values read from etcd are data written by whoever can write to etcd. They are returned as they are;
    ansible-core 2.19 and newer treat module results as untrusted, so Jinja in them is never rendered.
extends_documentation_fragment:
  - stackfleet.cluster.etcd
  - stackfleet.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: N/A
options:
  cluster:
    description:
      - Cluster name (the stack file's C(cluster)). Letters, digits, C(.), C(_) and C(-).
    type: str
    required: true
author:
  - stackfleet maintainers (@stackfleet)
"""

EXAMPLES = r"""
- name: Read the previous placement
  stackfleet.cluster.stack_state_info:
    cluster: prod
  register: previous
"""

RETURN = r"""
placement:
  description: Placement key to host name; empty when there is no record. Untrusted data from etcd.
  returned: always
  type: dict
  sample: {lamp-1: node-1, lamp-2: node-3}
revision:
  description:
    - The record's etcd modification revision, V(0) when there is none.
    - Pass it to M(stackfleet.cluster.stack_state) as O(stackfleet.cluster.stack_state#module:expected_revision).
  returned: always
  type: int
  sample: 17
updated_at:
  description: When the record was written (UTC, ISO 8601); empty when there is none.
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
  description:
    - The host ports of the recorded plan (placement key to service to a list of C(container_port), C(protocol),
      C(host_ip), C(host_port)); empty for records written before 0.4.0 or without published ports. Untrusted data from etcd.
    - Pass it to M(stackfleet.cluster.stack_plan) as O(stackfleet.cluster.stack_plan#module:previous_ports).
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
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd_tasks import STATE_INFO_SPEC, run_state_info
from ansible_collections.stackfleet.cluster.plugins.module_utils._task import TaskFailed


def main() -> None:
    module = AnsibleModule(argument_spec=STATE_INFO_SPEC, supports_check_mode=True)
    try:
        result = run_state_info(module.params, module.check_mode, module._diff)
    except TaskFailed as err:
        module.fail_json(msg=str(err), **err.fields)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: etcd_cluster_info
short_description: Members, leader and health of an etcd cluster
version_added: 0.1.0
description:
  - Lists the members of an etcd cluster with the health of each (probed at its own client URLs), the leader,
    the store revision, the cluster ID and versions. Changes nothing.
extends_documentation_fragment:
  - stackfleet.cluster.etcd
  - stackfleet.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: N/A
options: {}
author:
  - stackfleet maintainers (@stackfleet)
"""

EXAMPLES = r"""
- name: Read the cluster
  stackfleet.cluster.etcd_cluster_info:
    endpoints: ["https://10.0.0.11:2379", "https://10.0.0.12:2379"]
    ca_cert: /etc/etcd/ca.pem
    client_cert: /etc/etcd/client.pem
    client_key: /etc/etcd/client-key.pem
  register: etcd

- name: Stop when the cluster cannot lose another member
  ansible.builtin.assert:
    that: etcd.fault_tolerance >= 1
    fail_msg: "{{ etcd.members | rejectattr('healthy') | map(attribute='name') | list }} unhealthy"
"""

RETURN = r"""
cluster_id:
  description: Cluster ID in hexadecimal.
  returned: always
  type: str
  sample: cdf818194e3a8c32
version:
  description: Versions reported by the endpoint that answered.
  returned: always
  type: dict
  contains:
    server: {description: "etcd server version.", type: str, sample: 3.4.23}
    cluster: {description: "Cluster version (the lowest common one).", type: str, sample: 3.4.0}
leader:
  description: The leader member (empty when no member reports one).
  returned: always
  type: dict
  contains:
    id: {description: "Member ID, decimal.", type: int}
    id_hex: {description: "Member ID, hexadecimal.", type: str}
    name: {description: "Member name.", type: str}
revision:
  description: Current store revision.
  returned: always
  type: int
  sample: 42
healthy:
  description: Whether every voting member is healthy.
  returned: always
  type: bool
has_quorum:
  version_added: 0.2.0
  description:
    - Whether a healthy majority of the voting members answers (the rule M(stackfleet.cluster.etcd_plan) decides by).
  returned: always
  type: bool
quorum:
  description: Voting members needed for a majority.
  returned: always
  type: int
  sample: 2
fault_tolerance:
  description: How many more voting members may fail before the cluster loses quorum, given the current health.
  returned: always
  type: int
  sample: 1
members:
  description: Every member with its probed state.
  returned: always
  type: list
  elements: dict
  contains:
    id: {description: "Member ID, decimal.", type: int}
    id_hex: {description: "Member ID as C(etcdctl) prints it.", type: str}
    name: {description: "Member name (empty until started).", type: str}
    peer_urls: {description: "Peer URLs.", type: list, elements: str}
    client_urls: {description: "Client URLs (empty until started).", type: list, elements: str}
    learner: {description: "Whether the member is a non-voting learner.", type: bool}
    started: {description: "Whether the member has started.", type: bool}
    healthy: {description: "Whether it answered as itself, knows a leader, has no alarm and its /health is true.", type: bool}
    reason: {description: "Why it is not healthy (empty when healthy).", type: str}
    is_leader: {description: "Whether it is the leader.", type: bool}
    raft_index: {description: "Its raft index (0 if it did not answer).", type: int}
    db_size: {description: "Its database size in bytes (0 if it did not answer).", type: int}
    server_version: {description: "Its etcd version (empty if it did not answer).", type: str}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd_tasks import CLUSTER_INFO_SPEC, run_cluster_info
from ansible_collections.stackfleet.cluster.plugins.module_utils._task import TaskFailed


def main() -> None:
    module = AnsibleModule(argument_spec=CLUSTER_INFO_SPEC, supports_check_mode=True)
    try:
        result = run_cluster_info(module.params, module.check_mode, module._diff)
    except TaskFailed as err:
        module.fail_json(msg=str(err), **err.fields)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

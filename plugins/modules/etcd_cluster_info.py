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

import typing as t

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import (
    CONNECTION_ARGSPEC,
    EtcdClient,
    EtcdError,
    client_from_params,
    id_hex,
)
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd_decide import has_quorum
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd_membership import (
    probe_members,
    quorum,
)


def cluster_info(client: EtcdClient) -> t.Dict[str, t.Any]:
    cluster_id, members = client.member_list()
    health = probe_members(client, members)
    versions = client.version()
    revision = client.range("/stackfleet/")[0]
    leaders = {h.leader for h in health.values() if h.healthy and h.leader}
    leader_id = leaders.pop() if len(leaders) == 1 else 0
    voters = [m for m in members if not m.is_learner]
    healthy_voters = sum(1 for m in voters if health[m.id].healthy)
    rows = []
    for m in members:
        h = health[m.id]
        rows.append(dict(m.to_result(), healthy=h.healthy, reason=h.reason, is_leader=m.id == leader_id,
                         raft_index=h.raft_index, db_size=h.db_size, server_version=h.version))
    leader = next(({"id": m.id, "id_hex": m.hex_id, "name": m.name} for m in members if m.id == leader_id), {})
    return {
        "cluster_id": id_hex(cluster_id),
        "version": {"server": versions["etcdserver"], "cluster": versions["etcdcluster"]},
        "leader": leader,
        "revision": revision,
        "healthy": healthy_voters == len(voters),
        "has_quorum": has_quorum(rows),
        "quorum": quorum(len(voters)),
        "fault_tolerance": max(healthy_voters - quorum(len(voters)), 0),
        "members": rows,
    }


def main() -> None:
    module = AnsibleModule(argument_spec=dict(CONNECTION_ARGSPEC), supports_check_mode=True)
    try:
        result = cluster_info(client_from_params(module.params))
    except EtcdError as err:
        module.fail_json(msg=str(err), code=err.code)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()

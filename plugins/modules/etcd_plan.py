#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: etcd_plan
short_description: Decide what the etcd role does in this run (bootstrap, restart, join, repair, retire, keep)
version_added: 0.2.0
description:
  - A pure decision from what the C(stackfleet.cluster.etcd) role gathered - the members etcd reports and, per host of
    the group, its peer URL, whether its data directory holds etcd data, and its bootstrap record. Talks to nothing
    and changes nothing; the role carries the decision out.
  - The mode is V(members) when a healthy majority of the voting members answers (change membership one member at a
    time), V(restart) when none does but hosts hold a bootstrap record with a cluster token (start them again),
    V(rebootstrap) when records or unhealthy members exist but no token, and V(bootstrap) when there is nothing.
    Data without a bootstrap record while no member answers is refused, as are records naming different tokens.
  - Per host, V(keep) a started member with its data, V(repair) a started member whose data directory is gone (or that
    is named in O(repair_hosts)), V(join) anything else. Members whose peer URLs belong to no host are retiring.
  - Peer URLs are compared normalised (scheme and host case-folded, no trailing slash), as
    M(stackfleet.cluster.etcd_member) matches members, so a differently spelled URL of a live member keeps it.
  - RV(steady) says whether membership and records are exactly as declared (the first part of the role's steady-state
    fast path; the role then checks every member's container). RV(unsteady) says why not.
extends_documentation_fragment:
  - stackfleet.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  members:
    description:
      - The members as M(stackfleet.cluster.etcd_cluster_info) returns them (its C(members)); empty when nothing answers.
      - Each needs C(peer_urls); C(name), C(started), C(learner) and C(healthy) default to empty or false.
    type: list
    elements: dict
    default: []
  hosts:
    description:
      - The hosts of the etcd group, in the group's order.
    type: list
    elements: dict
    required: true
    suboptions:
      host:
        description: Inventory host name.
        type: str
        required: true
      name:
        description: Member name (default O(hosts[].host)).
        type: str
      peer_url:
        description: The peer URL the member advertises.
        type: str
        required: true
      client_url:
        description:
          - The client URL the member advertises. When set, RV(steady) also needs the member to list it.
        type: str
        version_added: 0.5.0
      data:
        description: Whether the host's data directory holds etcd data (C(<data dir>/member) exists).
        type: bool
        default: false
      record:
        description: The host's bootstrap record (C(<data dir>.stackfleet.json)), or null when there is none.
        type: dict
  repair_hosts:
    description:
      - Hosts to rebuild although their member runs (removed, wiped, added again), one at a time.
    type: list
    elements: str
    default: []
  max_removals:
    description:
      - How many retiring members one run may remove. V(-1) means the cluster's fault tolerance,
        C((voting members - 1) // 2).
    type: int
    default: -1
notes:
  - Pure computation on the controller; runs in check mode as in a real run.
author:
  - stackfleet maintainers (@stackfleet)
"""

EXAMPLES = r"""
- name: Read the members
  stackfleet.cluster.etcd_cluster_info:
  register: cluster
  failed_when: false

- name: Decide
  stackfleet.cluster.etcd_plan:
    members: "{{ cluster.members | default([]) }}"
    hosts:
      - {host: node-1, name: node-1, peer_url: "https://10.0.0.11:2380", data: true,
         record: {token: prod-3f2a, state: new, bootstrapped: true}}
      - {host: node-2, name: node-2, peer_url: "https://10.0.0.12:2380", data: false}
  register: decision

- name: Show it
  ansible.builtin.debug:
    msg: "{{ decision.summary }}"
"""

RETURN = r"""
mode:
  description: What this run does to the cluster.
  returned: success
  type: str
  choices: [members, restart, rebootstrap, bootstrap]
  sample: members
has_quorum:
  description: Whether a healthy majority of the voting members answered.
  returned: success
  type: bool
token:
  description: The cluster token the bootstrap records name (empty when none does).
  returned: success
  type: str
actions:
  description: Each host's part in V(members) mode - C(keep), C(repair) or C(join).
  returned: success
  type: dict
  sample: {node-1: keep, node-2: join}
keeping:
  description: Hosts whose member stays as it is (converged one at a time).
  returned: success
  type: list
  elements: str
repairing:
  description: Hosts whose member is removed, wiped and added again, in group order.
  returned: success
  type: list
  elements: str
joining:
  description: Hosts to add, members that exist but never started first (etcd allows one learner at a time).
  returned: success
  type: list
  elements: str
retiring:
  description: Members whose peer URLs belong to no host of the group (removed one at a time), as given in O(members).
  returned: success
  type: list
  elements: dict
removal_limit:
  description: How many members this run may remove.
  returned: success
  type: int
removals_refused:
  description: Why the retiring members may not all be removed in this run; empty when they may.
  returned: success
  type: str
steady:
  description:
    - Whether membership and records are exactly as declared - mode V(members), every host kept, nothing to repair,
      join or remove, every member started, voting and healthy under its host's name, peer and client URL, every
      bootstrap record complete with the cluster's token. Says nothing about the members' containers.
  returned: success
  type: bool
  version_added: 0.5.0
unsteady:
  description: Why RV(steady) is false (the first reason found); empty when it is true.
  returned: success
  type: str
  sample: "member node-2 (node-2) is not a started, healthy voting member: connection refused"
  version_added: 0.5.0
summary:
  description: One line for the log.
  returned: success
  type: str
  sample: "mode members; 3 member(s) answering; join ['node-4'], repair [], remove []"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd_tasks import PLAN_SPEC, run_plan
from ansible_collections.stackfleet.cluster.plugins.module_utils._task import TaskFailed


def main() -> None:
    module = AnsibleModule(argument_spec=PLAN_SPEC, supports_check_mode=True)
    try:
        result = run_plan(module.params, module.check_mode, module._diff)
    except TaskFailed as err:
        module.fail_json(msg=str(err), **err.fields)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: stack_plan
short_description: Compute where every container of a stack file runs
version_added: 0.1.0
description:
  - Reads a stackfleet stack file (services, stacks, deploy counts and placement rules),
    validates all of it, and places every stack instance and service instance on the
    given hosts.
  - Honours count and global deploys, JMESPath constraints over host documents,
    conflicts, max_per_host, colocation, spread over a host label, pinned hosts,
    affinity and capacity (cpus, memory, host ports), with the C(spread) or
    C(binpack) strategy.
  - Deterministic and stable. Given O(previous_placement), every instance that is
    still valid stays on its host; only instances on lost, drained or now-ineligible hosts and
    new instances move. Scaling down removes the highest indices.
  - When keeping every kept instance leaves no plan (a kept instance blocks a new one), it
    moves the fewest kept instances its bounded search finds, and says why in RV(moves).
    If no plan exists, the error names the rule and the instances that block it.
  - A host document with C(drain=true) receives no instance; the instances placed there move.
  - With O(rebalance), at most O(rebalance.max_moves) kept instances move to improve spread or packing.
  - Port entries such as V(auto:80) get a host port chosen from the service's C(host_port_range), reserved
    on the instance's host like a static one; an instance that stays on its host keeps its ports when
    O(previous_ports) is given. RV(ports) returns them (version 0.4.0).
  - An instance with a C(stateful=true) service is never moved (repair, rebalance, or because its host
    is missing, drained or no longer eligible) unless its id is in O(allow_move); it is held on its
    host and listed in RV(held) (version 0.4.0).
  - Changes nothing anywhere. It returns the placement and, per host, the container
    documents that M(stackfleet.cluster.containers) converges.
  - An invalid stack file or an infeasible request fails with every problem at once,
    each naming the file, the key path and the rule, before any host is touched.
author:
  - stackfleet maintainers (@stackfleet)
extends_documentation_fragment:
  - stackfleet.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff shows the previous and the new placement (placement key to host).
      - Since 0.4.0 the task reports C(changed) when the new placement differs from O(previous_placement), so
        C(--diff) shows that diff; see the notes.
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
    details:
      - Since 0.5.0 an action plugin does the work on the controller, in the task's own process; no module is
        sent to or run on the target.
options:
  stack_file:
    description:
      - Path to the stack file on the controller (before 0.5.0, on the host that ran the module).
      - Mutually exclusive with O(stack).
    type: path
  stack:
    description:
      - The stack file's content as a dictionary.
      - Mutually exclusive with O(stack_file).
    type: dict
  hosts:
    description:
      - The host documents to place onto. Each has C(name) and optionally C(address),
        C(labels), C(capacity) (C(cpus), C(memory_mb)), C(facts) and C(drain); see the stack file reference.
      - A host with C(drain=true) (version 0.3.0) receives no instance, counted or global; instances
        kept there move and its RV(containers) entry is an empty list.
      - Leave out hosts that are down for this run; their instances move (reason C(host-missing)).
      - The P(stackfleet.cluster.host_documents#filter) filter builds this list from inventory hosts.
    type: list
    elements: dict
    required: true
  scale:
    description:
      - "Override the C(count) of some deploys for this plan, a mapping of deploy key to count,
        for example V({lamp: 5, lb: 2}) or, from an AWX survey, the string V(lamp=5 lb=2)."
      - The stack file stays the source of truth; a later plan without O(scale) returns to its counts.
    type: dict
    default: {}
  previous_placement:
    description:
      - The placement of the previous run, a mapping of placement key (for example V(lamp-3)) to host name.
      - Usually read from the etcd state store with M(stackfleet.cluster.stack_state).
    type: dict
    default: {}
  rebalance:
    description:
      - Move kept instances to improve the plan by the stack file's strategy. Off by default, so
        adding a host moves nothing.
      - C(spread) moves instances from the most loaded hosts to less loaded ones; C(binpack) empties
        the least used hosts into hosts already in use. Every rule holds after each move, and spread
        over a label never becomes more uneven.
    type: dict
    version_added: 0.3.0
    suboptions:
      max_moves:
        description: At most this many kept instances (placement keys) move.
        type: int
        required: true
  previous_ports:
    description:
      - The host ports of the previous run, in the shape of RV(ports) (placement key to service to a list of
        C(container_port), C(protocol), C(host_ip), C(host_port)).
      - An instance that stays on its host keeps the host ports of its V(auto) ports; one that moves
        tries the same numbers on its new host. Entries that do not match a dynamic port are ignored.
      - Usually read from the etcd state store with M(stackfleet.cluster.stack_state_info) (RV(stackfleet.cluster.stack_state_info#module:ports)).
    type: dict
    default: {}
    version_added: 0.4.0
  allow_move:
    description:
      - Instance ids (for example V(lamp-3)) or placement keys whose stateful services may move to another host.
      - Without it, an instance with a C(stateful=true) service stays on its previous host even when that host is
        missing, drained or no longer eligible (RV(held)); its data volume is on that host and does not follow a move.
    type: list
    elements: str
    default: []
    version_added: 0.4.0
  documents:
    description:
      - The form of RV(containers).
      - V(full) gives every container document whole, ready for M(stackfleet.cluster.containers).
      - V(compact) gives one document per deploy and service in RV(templates) and, per container, only its
        C(instance), its C(template) and the fields that differ from that template (no C(name), no C(host)).
        At 1,000 hosts it is about 20 times fewer values for Ansible to copy, and the task's cost on the controller
        falls from 1.3 s to about 0.3 s (docs/performance.md). Expand a host's entries with
        P(stackfleet.cluster.plan_containers#filter); the C(stack) role and C(site.yml) use this form.
    type: str
    choices: [full, compact]
    default: full
    version_added: 0.5.0
notes:
  - The module changes nothing anywhere; it computes. Since 0.4.0 C(changed) says whether the plan differs from
    O(previous_placement) (an instance moved, added or removed), as P(ansible.utils.fact_diff#module) reports a
    difference, so that C(--diff) shows the placement change and a re-plan that keeps everything reports
    C(changed=false). Without O(previous_placement) there is nothing to differ from, and C(changed) is false.
  - Values taken from the stack file are data, never templates. Sibling references such as
    C({{ instance.services.mysql.host }}) are resolved by stackfleet's own restricted resolver,
    not by Jinja.
seealso:
  - module: stackfleet.cluster.containers
  - module: stackfleet.cluster.stack_state
  - plugin: stackfleet.cluster.stacks
    plugin_type: inventory
"""

EXAMPLES = r"""
- name: Plan the LAMP stacks over the inventory's hosts
  stackfleet.cluster.stack_plan:
    stack_file: "{{ playbook_dir }}/../examples/lamp.yml"
    hosts: "{{ groups['stackfleet_hosts'] | stackfleet.cluster.host_documents(hostvars) }}"
  register: plan
  delegate_to: localhost
  run_once: true

- name: Re-plan after a host was lost, keeping everything else where it is
  stackfleet.cluster.stack_plan:
    stack_file: stacks.yml
    hosts:
      - {name: node-1, labels: {rack: r1, disk: ssd}, capacity: {cpus: 4, memory_mb: 8192}}
      - {name: node-2, labels: {rack: r2, disk: ssd}, capacity: {cpus: 4, memory_mb: 8192}}
    previous_placement: "{{ plan.placement }}"

- name: Scale the LAMP stacks to 7 for this run (an AWX survey answer)
  stackfleet.cluster.stack_plan:
    stack_file: stacks.yml
    hosts: "{{ groups['stackfleet_hosts'] | stackfleet.cluster.host_documents(hostvars) }}"
    scale: "lamp=7"

- name: After adding hosts, move at most 3 instances to spread the load
  stackfleet.cluster.stack_plan:
    stack_file: stacks.yml
    hosts: "{{ groups['stackfleet_hosts'] | stackfleet.cluster.host_documents(hostvars) }}"
    previous_placement: "{{ plan.placement }}"
    rebalance:
      max_moves: 3

- name: An inline stack
  stackfleet.cluster.stack_plan:
    stack:
      cluster: demo
      services:
        web: {image: "local/busybox-web:1", ports: ["8080:8080"]}
      deploy:
        web: {count: 2, conflicts: [web]}
    hosts: [{name: a}, {name: b}]
"""

RETURN = r"""
cluster:
  description: The cluster name from the stack file.
  returned: success
  type: str
  sample: prod
placement:
  description: Placement key to host name.
  returned: success
  type: dict
  sample: {"lamp-1": "node-1", "lamp-2": "node-3", "lb-1": "node-2", "node-exporter-node-1": "node-1"}
containers:
  description:
    - Host name to the list of container documents desired on it, sorted by name.
      Every given host is present, with an empty list when nothing runs there.
    - The input of M(stackfleet.cluster.containers) for that host.
    - With O(documents=compact), each entry is C(template), C(instance) and the fields that differ from RV(templates).
  returned: success
  type: dict
  sample:
    node-1:
      - name: prod.lamp-1.mysql
        cluster: prod
        deploy: lamp
        instance: lamp-1
        service: mysql
        host: node-1
        image: mariadb:11
        command: null
        entrypoint: null
        env: {MARIADB_DATABASE: app}
        ports: [{container_port: 3306, protocol: tcp, host_port: 3306, host_ip: ""}]
        volumes: [{source: mysql-data, target: /var/lib/mysql, read_only: false}]
        labels: {team: data}
        restart: unless-stopped
        network_mode: null
        resources: {cpus: 1.0, memory_mb: 1024}
        healthcheck: null
moves:
  description:
    - Every placement key of O(previous_placement) that now runs on another host, sorted by key
      (new and scaled-away keys are not moves), and why it moved.
    - C(reason) is V(host-missing) (its host is not among O(hosts), down or removed), V(drained),
      V(ineligible) (a rule no longer holds there), V(repair) (moved so that a plan exists) or
      V(rebalance); C(why) is one sentence.
  returned: success
  type: list
  elements: dict
  version_added: 0.3.0
  contains:
    key:
      description: The placement key, for example V(lamp-3) or V(lamp-3.web).
      type: str
    from:
      description: The host of O(previous_placement).
      type: str
    to:
      description: The host it runs on now.
      type: str
    reason:
      description: Why it moved.
      type: str
      choices: [host-missing, drained, ineligible, repair, rebalance]
    why:
      description: One sentence naming the host, the rule, or what the move made room for.
      type: str
  sample:
    - key: lb-1
      from: node-3
      to: node-1
      reason: repair
      why: "lb-1 moved from node-3 to node-1 to make room for blog-1 on node-3 (blog conflicts with lb)."
moved:
  description: Placement keys that existed before and now run on another host.
  returned: success
  type: list
  elements: str
  sample: ["lamp-2"]
added:
  description: Placement keys that are new in this plan.
  returned: success
  type: list
  elements: str
  sample: ["lamp-5"]
removed:
  description: Placement keys of the previous placement that no longer exist (scale-down, removed deploys, gone hosts of global deploys).
  returned: success
  type: list
  elements: str
  sample: ["lamp-6"]
templates:
  description:
    - With O(documents=compact), the document fields shared by the instances of each deploy and service, keyed
      C(<deploy>.<service>); a compact RV(containers) entry is its template updated with the entry's fields, named
      C(<cluster>.<instance>.<service>), with C(host) the host's name.
  returned: when O(documents=compact)
  type: dict
  version_added: 0.5.0
  sample:
    lamp.web:
      cluster: prod
      deploy: lamp
      service: web
      image: local/lamp-web:1
      env: {DB_PORT: "3306"}
ports:
  description:
    - Placement key to service to the host ports it publishes, static and V(auto) (with the host port chosen),
      for the instances that publish any. Pass it back as O(previous_ports) (the role stores it in etcd with the placement).
  returned: success
  type: dict
  version_added: 0.4.0
  sample:
    lamp-1:
      web: [{container_port: 80, protocol: tcp, host_ip: "", host_port: 20000}]
      mysql: [{container_port: 3306, protocol: tcp, host_ip: "", host_port: 20001}]
held:
  description:
    - Instances with a stateful service that stay on their previous host although it is missing (V(host-missing)),
      drained (V(drained)) or no longer eligible (V(ineligible)), sorted by key. They keep their host in RV(placement)
      and their ports; for a missing host, RV(containers) has that host's documents too.
    - C(why) names the instance, the host, the reason and the two choices (wait for the host, or move it with
      O(allow_move) accepting that its data does not follow).
  returned: success
  type: list
  elements: dict
  version_added: 0.4.0
  contains:
    key:
      description: The placement key.
      type: str
    host:
      description: The host it is held on.
      type: str
    reason:
      description: Why it could not stay there otherwise.
      type: str
      choices: [host-missing, drained, ineligible]
    why:
      description: One sentence.
      type: str
  sample:
    - key: lamp-3
      host: node-3
      reason: host-missing
      why: "lamp-3 stays on node-3 because node-3 is not among the given hosts (down or removed) and it runs a stateful service
        whose data is there: wait for node-3, or move it with allow_move (-e stackfleet_allow_move=lamp-3), accepting that its
        data does not follow."
summary:
  description:
    - A short human summary of the plan; since 0.3.0 it ends with the moves (key, from, to, reason), the first 20 by name.
    - Since 0.4.0 it then lists the held instances (key, host, reason).
  returned: success
  type: str
  sample: "12 units on 5 hosts (lamp 5 on 5 hosts, lb 2 on 2 hosts, node-exporter 5 on 5 hosts); moved 2, added 0, removed 1;
    moves: lamp-2 node-1 -> node-5 (host-missing), lb-2 node-1 -> node-2 (host-missing)"
"""

import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    from ansible_collections.stackfleet.cluster.plugins.module_utils import _plan_task
except ImportError as exc:  # yaml or jmespath missing on the host that runs the module
    IMPORT_ERROR = exc
    IMPORT_TRACEBACK = traceback.format_exc()
    ARGUMENT_SPEC = {}
else:
    IMPORT_ERROR = None
    IMPORT_TRACEBACK = None
    ARGUMENT_SPEC = _plan_task.ARGUMENT_SPEC


def main():
    # The action plugin of the same name does this work on the controller (plugins/action/stack_plan.py);
    # this runs only when the module is executed by itself.
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, mutually_exclusive=[("stack_file", "stack")],
                           required_one_of=[("stack_file", "stack")], supports_check_mode=True)
    if IMPORT_ERROR is not None:
        module.fail_json(msg=missing_required_lib("PyYAML and jmespath"), exception=IMPORT_TRACEBACK)
    try:
        result, warnings = _plan_task.run(module.params, diff=module._diff)
    except _plan_task.PlanTaskError as exc:
        for warning in exc.warnings:
            module.warn(warning)
        module.fail_json(msg=str(exc), errors=exc.errors)
    for warning in warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

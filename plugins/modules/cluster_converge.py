#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_converge
short_description: Converge the stackfleet containers of many hosts at once, from the controller
version_added: 0.5.0
description:
  - Does what M(stackfleet.cluster.containers) does on one host, on every host of O(hosts), from where the module runs
    (the controller), at most O(host_parallel) hosts at once. One task instead of one per host, for fleets where
    Ansible's per-host task overhead costs more than the work (C(site.yml) with C(stackfleet_converge_mode=cluster),
    C(docs/containers.md) "Cluster-wide converge mode").
  - Each host is converged exactly as M(stackfleet.cluster.containers) converges it (the same code), with the options of
    this module, and reports the same actions, pending and deferred containers and errors.
  - "Before any host is touched, every host's documents are validated, every C({secret: NAME}) reference of every host
    must have a value in O(secrets), and no two hosts may reach the same engine; otherwise no host is touched and every
    host fails with the reason."
  - A host that fails (its engine does not answer, a container cannot be created, a replacement is rolled back) does not
    stop the others. The module fails once every host is done, naming each failed host and why (RV(failed_hosts),
    RV(hosts)).
  - With O(serial), the hosts are converged one at a time in the order of O(hosts), and the first host that fails ends
    the run; the hosts after it are not touched (RV(skipped_hosts)). C(site.yml) replaces drifted containers this way.
author:
  - stackfleet maintainers (@stackfleet)
extends_documentation_fragment:
  - stackfleet.cluster.attributes
attributes:
  check_mode:
    support: full
    description: Reports per host the actions a real run would take, without any write call.
  diff_mode:
    support: full
    description: As M(stackfleet.cluster.containers), one diff per changed container, its headers naming the host.
options:
  cluster:
    description:
      - Name of the cluster whose containers this call owns.
    type: str
    required: true
  hosts:
    description:
      - Host name to what that host runs and how to reach its engine. The P(stackfleet.cluster.converge_hosts#filter)
        filter builds it from a plan's containers map and the hosts' C(stackfleet_docker_*) variables.
      - C(containers) is the host's list of container documents, exactly as O(stackfleet.cluster.containers#module:containers)
        takes them (C(docs/architecture.md) "Container documents"); an empty list empties the host of the cluster's
        containers when O(prune_all) is set. Env values are never logged or returned.
      - C(connection) holds the connection options of M(stackfleet.cluster.containers) for this host (C(docker_host),
        C(tls), C(validate_certs), C(ca_path), C(client_cert), C(client_key), C(tls_hostname), C(api_version),
        C(timeout)); what it leaves unset falls back to the environment variables and defaults of that module. Every host
        must reach its own engine.
    type: dict
    required: true
  host_parallel:
    description:
      - How many hosts are converged at once (threads on the controller). Within one host O(max_parallel) applies.
    type: int
    default: 16
  serial:
    description:
      - Converge one host at a time, in the order of O(hosts), and stop at the first host that fails. O(host_parallel) is
        then not used.
    type: bool
    default: false
  report_unchanged:
    description:
      - Whether RV(hosts) lists the V(unchanged) actions too. V(false) keeps the result small on large fleets (C(site.yml)
        passes V(false)); changes, pending, deferred and failed containers are always listed.
    type: bool
    default: true
  prune:
    description: As O(stackfleet.cluster.containers#module:prune), on every host.
    type: bool
    default: true
  prune_all:
    description: As O(stackfleet.cluster.containers#module:prune_all), on every host.
    type: bool
    default: false
  defer_removal:
    description:
      - As O(stackfleet.cluster.containers#module:defer_removal), the placement keys the plan runs on another host now. One
        list for all hosts (every key of the plan may be given; each host ignores its own keys).
    type: list
    elements: str
    default: []
  replace:
    description: As O(stackfleet.cluster.containers#module:replace), on every host.
    type: bool
    default: true
  pull:
    description: As O(stackfleet.cluster.containers#module:pull), on every host.
    type: str
    choices: [missing, always, never]
    default: missing
  secrets:
    description:
      - "Secret values by name, for C(env) values written as C({secret: NAME}) in any host's documents."
    type: dict
    default: {}
  max_parallel:
    description: As O(stackfleet.cluster.containers#module:max_parallel), within each host.
    type: int
    default: 1
  wait:
    description: As O(stackfleet.cluster.containers#module:wait).
    type: str
    choices: [none, running, healthy]
    default: running
  wait_timeout:
    description: As O(stackfleet.cluster.containers#module:wait_timeout).
    type: int
    default: 60
  stop_timeout:
    description: As O(stackfleet.cluster.containers#module:stop_timeout).
    type: int
notes:
  - Every engine is reached from where the module runs, as M(stackfleet.cluster.containers) with
    C(stack_run_on=controller); the stack role's C(stack_docker_*) overrides do not apply, the hosts' C(stackfleet_docker_*)
    variables do.
seealso:
  - module: stackfleet.cluster.containers
  - module: stackfleet.cluster.engine_probe
"""

EXAMPLES = r"""
- name: Converge every live host of the plan at once, replacing none yet
  stackfleet.cluster.cluster_converge:
    cluster: "{{ plan.cluster }}"
    hosts: "{{ live_hosts | stackfleet.cluster.converge_hosts(plan.containers, hostvars) }}"
    replace: false
    defer_removal: "{{ plan.placement.keys() | list }}"
    secrets: "{{ stackfleet_secrets | default({}) }}"
    host_parallel: 32
    report_unchanged: false
  register: converged
  ignore_errors: true   # converged.failed_hosts names the hosts that failed, the others converged

- name: Then replace, one host at a time, stopping at the first host that fails
  stackfleet.cluster.cluster_converge:
    cluster: "{{ plan.cluster }}"
    hosts: "{{ live_hosts | select('in', converged.hosts | dict2items | selectattr('value.pending') | map(attribute='key'))
               | stackfleet.cluster.converge_hosts(plan.containers, hostvars) }}"
    serial: true
  when: converged.failed_hosts | length == 0

- name: Two lab engines without TLS
  stackfleet.cluster.cluster_converge:
    cluster: lab
    hosts:
      node-1:
        connection: {docker_host: "tcp://10.231.0.11:2375", tls: false}
        containers:
          - {name: lab.web-1.web, cluster: lab, deploy: web, instance: web-1, service: web, image: local/busybox:1,
             command: [httpd, -f, -p, "8080"], network_mode: host}
      node-2:
        connection: {docker_host: "tcp://10.231.0.12:2375", tls: false}
        containers: []
    prune_all: true
"""

RETURN = r"""
hosts:
  description:
    - Per host, what its converge did (in check mode, would do). A host not converged because O(serial) stopped before
      it has C(skipped=true).
  returned: always
  type: dict
  contains:
    changed:
      description: Whether anything changed on the host.
      type: bool
    failed:
      description: Whether the host failed.
      type: bool
    msg:
      description: Why it failed, as M(stackfleet.cluster.containers) says it (the engine and each container's error); empty otherwise.
      type: str
    errors:
      description: Each container's error, as RV(stackfleet.cluster.containers#module:errors).
      type: list
      elements: str
    actions:
      description:
        - As RV(stackfleet.cluster.containers#module:actions) (name, action, reason, changes); without the V(unchanged)
          ones when O(report_unchanged=false).
      type: list
      elements: dict
    pending:
      description: As RV(stackfleet.cluster.containers#module:pending).
      type: list
      elements: dict
    deferred:
      description: As RV(stackfleet.cluster.containers#module:deferred).
      type: list
      elements: dict
    pulled:
      description: As RV(stackfleet.cluster.containers#module:pulled).
      type: list
      elements: str
    seconds:
      description: How long the host's converge took.
      type: float
    skipped:
      description: Present (true) for a host O(serial) did not reach.
      type: bool
  sample:
    node-1: {changed: true, failed: false, msg: "", errors: [], pulled: [], pending: [], deferred: [], seconds: 1.52,
             actions: [{name: prod.web-2.web, action: created, reason: missing, changes: []}]}
    node-2: {changed: false, failed: true, errors: [], actions: [], pending: [], deferred: [], pulled: [], seconds: 0.003,
             msg: "tcp://10.0.0.12:2376: cannot reach the Docker engine at tcp://10.0.0.12:2376: Connection refused"}
failed_hosts:
  description: The hosts that failed, in the order of O(hosts).
  returned: always
  type: list
  elements: str
  sample: [node-2]
skipped_hosts:
  description: With O(serial), the hosts after the first failed one, not touched.
  returned: always
  type: list
  elements: str
  sample: []
"""

from ansible_collections.stackfleet.cluster.plugins.module_utils._converge_tasks import CLUSTER_SPEC, run_cluster, scrubbed_cluster
from ansible_collections.stackfleet.cluster.plugins.module_utils._invocation import ScrubbingModule
from ansible_collections.stackfleet.cluster.plugins.module_utils._task import TaskFailed


class Module(ScrubbingModule):
    """The containers module's scrubbing logger, over every host's documents."""

    scrub = staticmethod(scrubbed_cluster)


def main():
    module = Module(argument_spec=CLUSTER_SPEC, supports_check_mode=True)
    try:
        result = run_cluster(module.params, module.check_mode, module._diff)
    except TaskFailed as err:
        result = dict(err.fields, failed=True, msg=str(err))
    for warning in result.pop("warnings", ()):
        module.warn(warning)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

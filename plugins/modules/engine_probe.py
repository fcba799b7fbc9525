#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_probe
short_description: Tell which hosts' Docker engines answer, probing all of them at once
version_added: 0.3.0
description:
  - Asks every Docker engine of O(engines) for its version (C(GET /version)), all engines at once from where the module
    runs (the controller), each with one attempt bounded by O(timeout). An engine that does not answer in time, refuses
    the connection, fails the TLS handshake or answers with an error is B(down); the others are B(up).
  - C(site.yml) and C(plan.yml) run it first; down hosts are left out of the plan for this run (their instances are
    placed on live hosts) and are not converged, so a dead host costs one O(timeout), not minutes of retries.
  - Each engine is reached with the connection options of M(stackfleet.cluster.containers) (TLS as configured);
    options a host leaves unset fall back to the environment variables and defaults of that module.
  - A failure on one host is that host's result; the module itself fails only on malformed options.
author:
  - stackfleet maintainers (@stackfleet)
extends_documentation_fragment:
  - stackfleet.cluster.attributes
attributes:
  check_mode:
    support: full
    description: The probe only reads; it runs the same in check mode.
  diff_mode:
    support: N/A
options:
  engines:
    description:
      - Host name to its engine's connection options, as the P(stackfleet.cluster.engines#filter) filter builds them
        from the hosts' C(stackfleet_docker_*) variables.
      - Each value takes the connection options of M(stackfleet.cluster.containers) (C(docker_host), C(tls),
        C(validate_certs), C(ca_path), C(client_cert), C(client_key), C(tls_hostname), C(api_version)); their
        C(timeout) is ignored here, O(timeout) applies.
    type: dict
    required: true
  timeout:
    description:
      - Seconds each engine gets to answer (connect, TLS handshake and the answer each bounded by it). One attempt, no
        retry. A call still running O(timeout) plus 2 seconds after it started is given up.
    type: float
    default: 3
  max_workers:
    description:
      - How many engines are probed at once.
    type: int
    default: 16
notes:
  - An engine that answers is not necessarily able to run containers (a full disk, a broken image store); the converge
    then fails for that host as before. The probe decides only whether a host takes part in this run.
seealso:
  - module: stackfleet.cluster.containers
  - name: Runbooks
    description: What to do when a host died, came back, or leaves for good (docs/runbooks.md of the collection).
    link: https://github.com/stackfleet/stackfleet.cluster/blob/main/docs/runbooks.md
"""

EXAMPLES = r"""
- name: Probe every engine
  stackfleet.cluster.engine_probe:
    engines: "{{ groups['stackfleet_hosts'] | stackfleet.cluster.engines(hostvars) }}"
    timeout: 3
  register: probe

- name: Plan with the live hosts only
  stackfleet.cluster.stack_plan:
    stack_file: stacks.yml
    hosts: "{{ probe.up | stackfleet.cluster.host_documents(hostvars) }}"
"""

RETURN = r"""
up:
  description: Hosts whose engine answered, sorted.
  returned: always
  type: list
  elements: str
  sample: [node-1, node-3]
down:
  description: Hosts whose engine did not answer, sorted.
  returned: always
  type: list
  elements: str
  sample: [node-2]
engines:
  description: Per host, what the probe found.
  returned: always
  type: dict
  contains:
    up:
      description: Whether the engine answered.
      type: bool
    version:
      description: The engine's version (C(Version) of C(GET /version)); null when down. Data read from the engine.
      type: str
    api_version:
      description: The highest API version the engine speaks; null when down.
      type: str
    error:
      description: Why the host is down (the connection or TLS error, or that it gave no answer in time); null when up.
      type: str
    seconds:
      description: How long the probe of this host took.
      type: float
  sample:
    node-1: {up: true, version: "20.10.24", api_version: "1.41", error: null, seconds: 0.031}
    node-2: {up: false, version: null, api_version: null, seconds: 3.004,
             error: "cannot reach the Docker engine at tcp://10.0.0.12:2376: ... timed out"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackfleet.cluster.plugins.module_utils._fleet import PROBE_SPEC, run_probe
from ansible_collections.stackfleet.cluster.plugins.module_utils._task import TaskFailed


def main():
    module = AnsibleModule(argument_spec=PROBE_SPEC, supports_check_mode=True)
    try:
        result = run_probe(module.params)
    except TaskFailed as err:
        module.fail_json(msg=str(err), **err.fields)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: containers
short_description: Converge all of one host's stackfleet containers in one call
version_added: 0.1.0
description:
  - Brings the containers of one O(cluster) on one Docker engine to the list of container documents in O(containers)
    (the per-host output of M(stackfleet.cluster.stack_plan), see C(docs/architecture.md)).
  - Creates what is missing, recreates what drifted, starts what is stopped or paused, and (with O(prune)) removes
    containers of the cluster that are no longer desired. Containers without the label C(io.stackfleet.cluster=<cluster>)
    are never touched; a desired name taken by such a container is an error.
  - Drift is decided from the C(io.stackfleet.config-hash) label the module wrote (a hash of the desired document), the
    image id the desired image reference points to now, the container state and the labels stackfleet set, never by
    comparing options with what the daemon reports back, so values the daemon normalises cause no recreate.
  - The host is read with one container listing (filtered by the cluster label) and one image listing; a run with nothing
    to do makes no write call.
author:
  - stackfleet maintainers (@stackfleet)
extends_documentation_fragment:
  - stackfleet.cluster.docker
attributes:
  check_mode:
    support: full
    description: Reports the same actions a real run would take, without any write call.
  diff_mode:
    support: full
    description: One diff per changed container; before is the observed container, after the desired document.
options:
  cluster:
    description:
      - Name of the cluster whose containers this call owns.
    type: str
    required: true
  containers:
    description:
      - The container documents for this host, as C(docs/architecture.md) "Container documents" defines them
        (keys C(name), C(cluster), C(deploy), C(instance), C(service), C(image), C(command), C(entrypoint), C(env),
        C(ports), C(volumes), C(labels), C(restart), C(network_mode), C(resources), C(healthcheck)).
      - Every document must belong to O(cluster). An empty list with O(prune=true) removes all of the cluster's containers.
      - Values of C(env) are never shown in the diff, the return values or the logged module arguments (the names are).
    type: list
    elements: dict
    required: true
  prune:
    description:
      - Remove containers that carry the cluster label but are not in O(containers).
    type: bool
    default: true
  max_parallel:
    description:
      - How many containers are created, recreated or started at once. V(1) is a rolling update
        - with O(wait), each one is up before the next is replaced.
    type: int
    default: 1
  wait:
    description:
      - What a created, recreated or started container must reach before the next batch.
      - V(healthy) waits for the healthcheck when the container has one, otherwise for V(running).
    type: str
    choices: [none, running, healthy]
    default: running
  wait_timeout:
    description:
      - Seconds to wait for each batch to reach O(wait).
    type: int
    default: 60
  stop_timeout:
    description:
      - Seconds a container being removed or replaced gets between SIGTERM and SIGKILL.
      - When not set, each container's own stop timeout applies (Docker's default is 10 seconds).
    type: int
notes:
  - A container that fails to be created, to start or to reach O(wait) does not stop the run; all other containers are
    handled first and the module then fails with every error, each naming its container.
  - Missing images are pulled before anything else (not in check mode, where their containers show as to be created or
    recreated).
  - A container edited by hand is repaired when the edit is visible in one listing - removed, stopped, paused, renamed,
    or recreated without the stackfleet labels or with other ones. A hand-made copy that carries the exact labels of
    the original (including the config hash) is taken as the original.
seealso:
  - name: Container documents
    description: The input contract, in docs/architecture.md of the collection.
    link: https://github.com/stackfleet/stackfleet.cluster/blob/main/docs/architecture.md
  - module: community.docker.docker_container
"""

EXAMPLES = r"""
- name: Converge this host's containers from the plan
  stackfleet.cluster.containers:
    cluster: prod
    containers: "{{ plan.containers[inventory_hostname] | default([]) }}"
    docker_host: "tcp://{{ ansible_host }}:2376"
    validate_certs: true
    ca_path: /etc/stackfleet/ca.pem
    client_cert: /etc/stackfleet/cert.pem
    client_key: /etc/stackfleet/key.pem
    max_parallel: 2
    wait: healthy
  delegate_to: localhost

- name: Same, with the connection from the environment (AWX credentials inject these)
  stackfleet.cluster.containers:
    cluster: prod
    containers: "{{ plan.containers[inventory_hostname] | default([]) }}"
  environment:
    DOCKER_HOST: "tcp://{{ ansible_host }}:2376"
    DOCKER_CERT_PATH: /etc/stackfleet/certs
    DOCKER_TLS_VERIFY: "1"
  delegate_to: localhost

- name: A lab engine without TLS (plain text only when asked for)
  stackfleet.cluster.containers:
    cluster: lab
    docker_host: tcp://10.231.0.11:2375
    tls: false
    containers:
      - name: lab.web-1.web
        cluster: lab
        deploy: web
        instance: web-1
        service: web
        image: local/busybox:1
        command: [httpd, -f, -p, "8080"]
        network_mode: host
        restart: unless-stopped
"""

RETURN = r"""
actions:
  description: What was (or in check mode would be) done to each container, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
    action:
      description: One of V(created), V(recreated), V(started), V(removed), V(unchanged).
      type: str
    reason:
      description: Why, for example V(missing), V(configuration changed (hash ...)), V(container is exited).
      type: str
  sample:
    - {name: prod.lamp-1.mysql, action: unchanged, reason: up to date (running)}
    - {name: prod.lamp-1.web, action: recreated, reason: configuration changed (hash 1f2e... -> 9a8b...)}
containers:
  description:
    - The cluster's containers on this host after the run (before it, in check mode), sorted by name. Env is not included.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
    id:
      description: Container id.
      type: str
    image:
      description: Image reference it was created from.
      type: str
    image_id:
      description: Image id it runs.
      type: str
    state:
      description: Docker state, for example V(running) or V(exited).
      type: str
    status:
      description: Docker's status text (uptime, health).
      type: str
    created:
      description: Creation time in seconds since the epoch.
      type: int
    config_hash:
      description: The C(io.stackfleet.config-hash) label.
      type: str
    labels:
      description: All labels of the container.
      type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackfleet.cluster.plugins.module_utils._converge import (
    DocumentError,
    config_hash,
    missing_names,
    plan,
    scrub_doc,
    validate,
)
from ansible_collections.stackfleet.cluster.plugins.module_utils._docker import (
    CONNECTION_ARGSPEC,
    EngineError,
    connect,
    resolve_endpoint,
)


def _diff(actions):
    """One before/after pair per changed container; env values masked."""
    diffs = []
    for action in actions:
        if not action.changes:
            continue
        before = action.observed.summary() if action.observed else {}
        after = dict(scrub_doc(action.doc), config_hash=config_hash(action.doc)) if action.doc else {}
        diffs.append(dict(before=before, after=after,
                          before_header="%s (%s)" % (action.name, "observed" if before else "absent"),
                          after_header="%s (%s)" % (action.name, action.action)))
    return diffs


def _scrubbed_invocation(params):
    """`module_args` as Ansible would log them, but without env values."""
    args = dict(params)
    args["containers"] = [scrub_doc(d) if isinstance(d, dict) else d for d in params["containers"]]
    return {"module_args": args}


def main():
    argument_spec = dict(
        cluster=dict(type="str", required=True),
        containers=dict(type="list", elements="dict", required=True),
        prune=dict(type="bool", default=True),
        max_parallel=dict(type="int", default=1),
        wait=dict(type="str", default="running", choices=["none", "running", "healthy"]),
        wait_timeout=dict(type="int", default=60),
        stop_timeout=dict(type="int"),
    )
    argument_spec.update(CONNECTION_ARGSPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    invocation = _scrubbed_invocation(params)
    docs = params["containers"]
    cluster = params["cluster"]
    result = dict(changed=False, actions=[], containers=[], invocation=invocation)
    if params["max_parallel"] < 1:
        module.fail_json(msg="max_parallel must be at least 1", **result)

    try:
        validate(docs, cluster)
        engine = connect(resolve_endpoint(params))
        observed = engine.list_cluster(cluster)
        refs = sorted({d["image"] for d in docs})
        image_ids = engine.image_ids(refs)
        errors = []
        absent = [ref for ref in refs if image_ids[ref] is None]
        if absent and not module.check_mode:
            for ref in absent:
                try:
                    engine.pull(ref)
                except EngineError as exc:
                    errors.append(str(exc))
            image_ids = engine.image_ids(refs)
        missing = missing_names(docs, observed)
        foreign = engine.foreign_names(cluster, missing) if missing else {}
        todo = plan(docs, observed, image_ids, prune=params["prune"], foreign=foreign)
    except (DocumentError, EngineError) as exc:
        module.fail_json(msg=str(exc), **result)

    result["actions"] = [a.report() for a in todo.actions]
    result["changed"] = todo.changed
    for warning in todo.warnings:
        module.warn(warning)
    if module._diff:
        result["diff"] = _diff(todo.actions)

    final = observed
    if todo.changed and not module.check_mode:
        errors.extend(engine.apply(todo, params["max_parallel"], params["wait"], params["wait_timeout"], params["stop_timeout"]))
        try:
            final = engine.list_cluster(cluster)
        except EngineError as exc:
            errors.append(str(exc))
    result["containers"] = [o.summary() for o in sorted(final, key=lambda o: o.name)]
    if errors:
        module.fail_json(msg="%d container error(s) on %s: %s" % (len(errors), engine.url, "; ".join(errors)),
                         errors=errors, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

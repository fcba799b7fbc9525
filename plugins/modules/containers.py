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
  - Creates what is missing, replaces what drifted, starts what is stopped or paused, and (with O(prune)) removes
    containers of the cluster that are no longer desired. Containers without the label C(io.stackfleet.cluster=<cluster>)
    are never touched; a desired name taken by such a container is an error.
  - Nothing running is destroyed before its replacement is proven. Every image the host needs is resolved (and, by
    O(pull), pulled) before anything is stopped. A replacement is created under the temporary name C(<name>.sf-next),
    then the old container is stopped, the new one started and waited for (O(wait)); if it fails, the new one is removed
    and the old one started again (same id, action V(rolled back)); only after success is the old one removed and the
    new one renamed. Volumes are never removed.
  - The first batch of replacements that fails ends the rollout on the host; replacements after it are left as they
    are and listed in RV(pending).
  - Drift is decided from the C(io.stackfleet.config-hash) label the module wrote (a hash of the desired document without
    C(resources) and C(restart)), the image id the desired image reference points to now, the container state and the
    labels stackfleet set, never by comparing options with what the daemon reports back, so values the daemon normalises
    cause no recreate.
  - C(resources) (cpu and memory limits) and C(restart) are compared with the container's real configuration (one
    inspect per container) and changed in place with C(docker update) (action V(updated), same container id, no
    restart); a hand edit of them is repaired the same way. Lifting a limit (to V(0)) needs a new container.
  - The host is read with one container listing (filtered by the cluster label), one image listing and one inspect per
    existing desired container (plus one per distinct image); a run with nothing to do makes no write call.
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
    description:
      - One diff per changed container. For an updated or recreated container, before and after name each field that
        changed (C(image), C(env.DB_HOST), C(resources.memory_mb), ...) with its old and new value; env values are
        never shown, only that they changed. For a created or removed one, the document or the observed container.
options:
  cluster:
    description:
      - Name of the cluster whose containers this call owns.
    type: str
    required: true
  containers:
    description:
      - The container documents for this host, as C(docs/architecture.md) "Container documents" defines them.
        A malformed document (a wrong type, a volume without C(source)) is rejected before any call to the engine.
      - Every document must belong to O(cluster). An empty list removes nothing (with a warning) unless O(prune_all=true).
      - Values of C(env) are never shown in the diff, the return values, the logged module arguments (system log) or
        C(-vvv) output (the names are).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Container name, C(<cluster>.<instance>.<service>).
        type: str
        required: true
      cluster:
        description: The cluster; must equal O(cluster).
        type: str
        required: true
      deploy:
        description: The deploy key (label C(io.stackfleet.deploy)); replacements are throttled per deploy.
        type: str
      instance:
        description: The instance id (label C(io.stackfleet.instance)).
        type: str
      service:
        description: The service name (label C(io.stackfleet.service)).
        type: str
      host:
        description: The host the plan put the container on (not part of the configuration).
        type: str
      image:
        description: Image reference.
        type: str
        required: true
      pull:
        description:
          - This container's pull policy; when not set, O(pull) applies.
        type: str
        choices: [missing, always, never]
      update:
        description: How the deploy of this container is rolled out.
        type: dict
        suboptions:
          parallelism:
            description: At most this many instances of the deploy are replaced at once (per host, and with C(site.yml) cluster-wide).
            type: int
            default: 1
      command:
        description: Command, or null for the image default.
        type: list
        elements: str
      entrypoint:
        description: Entrypoint, or null for the image default.
        type: list
        elements: str
      env:
        description:
          - "Environment, name to value. A value is a string or C({secret: NAME}), a reference to a key of O(secrets)."
          - Values are never logged or returned.
        type: dict
      ports:
        description: Published ports (ignored with C(network_mode=host)).
        type: list
        elements: dict
        suboptions:
          container_port:
            description: Port inside the container.
            type: int
            required: true
          protocol:
            description: C(tcp), C(udp) or C(sctp).
            type: str
          host_port:
            description: Port on the host.
            type: int
          host_ip:
            description: Address on the host; empty for all.
            type: str
      volumes:
        description: Bind mounts and named volumes.
        type: list
        elements: dict
        suboptions:
          source:
            description: Host path or volume name.
            type: str
            required: true
          target:
            description: Path in the container.
            type: str
            required: true
          read_only:
            description: Mount read-only.
            type: bool
      labels:
        description: The user's labels; stackfleet adds its C(io.stackfleet.*) labels.
        type: dict
      restart:
        description: Restart policy, C(no), C(always), C(unless-stopped) or C(on-failure[:N]).
        type: str
      network_mode:
        description: Network mode, for example C(host), or null.
        type: str
      resources:
        description: Limits; V(0) means no limit.
        type: dict
        suboptions:
          cpus:
            description: CPUs.
            type: float
          memory_mb:
            description: Memory in MiB.
            type: int
      healthcheck:
        description: Healthcheck, or null; durations in seconds.
        type: dict
        suboptions:
          test:
            description: The check, for example V([CMD, true]).
            type: list
            elements: str
          interval:
            description: Seconds between checks.
            type: float
          timeout:
            description: Seconds a check may take.
            type: float
          retries:
            description: Failures before unhealthy.
            type: int
          start_period:
            description: Seconds of grace after start.
            type: float
  pull:
    version_added: 0.2.0
    description:
      - When to pull an image, for documents without their own C(pull) key. Pulls happen before anything is stopped.
      - V(missing) pulls an image that is not on the host; V(always) pulls every run (a moved tag such as C(latest) then
        points to a new image id, which is what drift compares); V(never) fails a container whose image is not on the host.
      - A pull failure leaves the containers using the image untouched, replaces nothing on the host, and fails naming
        the engine, the container and the image.
    type: str
    choices: [missing, always, never]
    default: missing
  replace:
    version_added: 0.2.0
    description:
      - V(false) does everything except replacing existing containers (creates, starts, removes); those that need
        replacing are left as they are and listed in RV(pending). C(site.yml) converges all hosts with V(false) first,
        then replaces host by host.
    type: bool
    default: true
  prune_all:
    version_added: 0.2.0
    description:
      - With an empty O(containers), remove every container of the cluster on the host. Without it an empty list
        removes nothing and warns (an empty list is more often a mistake than a wish).
    type: bool
    default: false
  secrets:
    version_added: 0.2.0
    description:
      - "Secret values by name, for C(env) values written as C({secret: NAME})."
    type: dict
    default: {}
  prune:
    description:
      - Remove containers that carry the cluster label but are not in O(containers).
    type: bool
    default: true
  defer_removal:
    version_added: 0.3.0
    description:
      - Placement keys (instance ids such as V(lamp-3), or V(<instance>.<service>) for a stack deployed with
        C(colocate=false)) that the plan runs on B(another) host now; the keys of O(containers) are ignored here (they run
        on this host), so every key of the plan may be given, one list for all hosts. A container of O(cluster) on this host that is not
        in O(containers) and belongs to one of them is left as it is (action V(deferred), listed in RV(deferred), not a
        change) instead of being removed, so the old copy of a moved instance goes only after its replacement runs.
      - C(site.yml) passes every key of the plan while it converges, and removes the deferred containers
        in a last play once every host converged without failure (C(docs/containers.md) "Deferred removal").
      - Containers of instances that are not in the plan at all any more (scaled away) are removed as before.
    type: list
    elements: str
    default: []
  max_parallel:
    description:
      - How many containers are created, replaced or started at once. V(1) is a rolling update
        - with O(wait), each one is up before the next is replaced.
      - A batch of replacements never holds more instances of one deploy than the document's C(update.parallelism).
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
  - Creating or starting a container that fails does not stop the run; all other containers are handled first and the
    module then fails with every error, each naming its container. A failed replacement is rolled back and ends the
    rollout on the host.
  - Images are pulled before anything else. In check mode nothing is pulled; an image that is not on the host is a
    change (RV(pulled) lists it, and its containers show as to be created or replaced).
  - An interrupted run (engine or controller gone mid-replacement) is repaired by the next one, which removes a
    leftover C(<name>.sf-next) container and starts or replaces the old one. With O(replace=false), a running
    C(<name>.sf-next) whose old container is stopped and waits for its replacement is the only copy up, so it is kept
    (with a warning) until the replacement, which removes it first.
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
      description:
        - One of V(created), V(recreated), V(updated) (changed in place with docker update, same id, not restarted),
          V(started), V(removed), V(unchanged), V(rolled back) (the replacement failed
          and the old container runs again), V(pending) (needs replacing, left as it is), V(failed) (could not be done,
          left as it is, for example its image cannot be pulled), V(deferred) (not desired here, but its instance runs on
          another host now and O(defer_removal) names it; left as it is until a later call removes it).
      type: str
    reason:
      description: "Why, for example V(missing), V(configuration changed: image: web:1 → web:2), V(container is exited)."
      type: str
    changes:
      description:
        - Each field that differs between the container and its document, for V(updated) and V(recreated) (and
          V(pending)) containers.
        - "For example V(image: web:1 → web:2), V(resources.memory_mb: 512 → 1024), V(env.DB_HOST: changed)."
        - Env values are never shown. Empty when not known (a created container).
      type: list
      elements: str
  sample:
    - {name: prod.lamp-1.mysql, action: updated, reason: "in place: resources.memory_mb: 512 → 1024",
       changes: ["resources.memory_mb: 512 → 1024"]}
    - {name: prod.lamp-1.web, action: recreated, reason: "configuration changed: image: web:1 → web:2; env.DB_HOST: changed",
       changes: ["image: web:1 → web:2", "env.DB_HOST: changed"]}
pending:
  version_added: 0.2.0
  description:
    - Containers that need replacing and were left as they are (O(replace=false), or the rollout on the host stopped
      at a failure), with why. A later run with O(replace=true) replaces them.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
    reason:
      description: Why it needs replacing.
      type: str
  sample:
    - {name: prod.lb-1.lb, reason: configuration changed (hash 1f2e... -> 9a8b...) (replace is false)}
deferred:
  version_added: 0.3.0
  description:
    - Containers not removed because O(defer_removal) names their instance (it runs on another host now), with why.
      A later call without them in O(defer_removal) removes them.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Container name.
      type: str
    reason:
      description: Why it waits.
      type: str
  sample:
    - {name: prod.lamp-3.web, reason: "lamp-3 runs on another host now: removed once every host converged"}
pulled:
  version_added: 0.2.0
  description: Image references pulled before the rollout (in check mode, those a real run would pull).
  returned: always
  type: list
  elements: str
  sample: [mariadb:11]
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

from ansible.module_utils.basic import _load_params
from ansible_collections.stackfleet.cluster.plugins.module_utils._converge_tasks import CONTAINERS_SPEC, run_containers
from ansible_collections.stackfleet.cluster.plugins.module_utils._invocation import ScrubbingModule
from ansible_collections.stackfleet.cluster.plugins.module_utils._task import TaskFailed


def _raw_documents(module):
    try:
        raw = _load_params().get("containers")
    except Exception:  # pylint: disable=broad-except  # parameters not loadable twice (a test harness): keep Ansible's
        return module.params["containers"]
    return raw if isinstance(raw, list) else module.params["containers"]


def main():
    module = ScrubbingModule(argument_spec=CONTAINERS_SPEC, supports_check_mode=True)
    try:
        result = run_containers(module.params, _raw_documents(module), module.check_mode, module._diff)
    except TaskFailed as err:
        result = dict(err.fields, failed=True, msg=str(err))
    for warning in result.pop("warnings", ()):
        module.warn(warning)
    if result.pop("failed", False):
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

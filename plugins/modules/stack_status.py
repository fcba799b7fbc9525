#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_status
short_description: Tell what runs where across the cluster, and whether it is what the plan says
version_added: 0.3.0
description:
  - Reads every Docker engine of O(engines) at once from where the module runs (the controller) and compares what
    runs with the plan (O(containers) and O(placement), as M(stackfleet.cluster.stack_plan) returns them).
  - Returns, for every planned container, the host it should run on, every container found for it on any host
    (state, health, restart count, start time, image and image ID, whether its config hash matches the plan) and a
    verdict; every container of the cluster that the plan does not have is an V(orphan). Per host it returns whether
    the engine answered, its version, how many containers are the cluster's and how many are not, and the resources
    the plan reserves there next to the declared capacity.
  - "Verdicts, the first that applies: V(host-down) (its host's engine does not answer), V(missing) (no container on
    its host; a copy elsewhere is named), V(duplicate) (more than one container of it, on any hosts), V(drifted) (its
    config hash, labels, image or in-place settings differ from the plan), V(stopped) (exited, created, paused or dead),
    V(unhealthy) (restarting or failing its health check), V(ok)."
  - A container belongs to a planned container by its labels (C(io.stackfleet.cluster), C(io.stackfleet.instance),
    C(io.stackfleet.service)), so a copy started by hand under another name is found too. Drift is judged as
    M(stackfleet.cluster.containers) judges it, so V(ok) means the next converge leaves the container as it is.
  - Each engine is read with one container listing (all containers, to count the foreign ones), one image listing
    and, unless O(inspect=false), one inspect per container of the cluster plus one per distinct image (restart count,
    start time, health, and the cpu, memory and restart settings Docker changes in place).
  - Changes nothing, anywhere.
author:
  - stackfleet maintainers (@stackfleet)
extends_documentation_fragment:
  - stackfleet.cluster.attributes
attributes:
  check_mode:
    support: full
    description: The module only reads; it runs the same in check mode.
  diff_mode:
    support: N/A
options:
  cluster:
    description:
      - The cluster whose containers are judged (label C(io.stackfleet.cluster)).
    type: str
    required: true
  engines:
    description:
      - Host name to its engine's connection options, as the P(stackfleet.cluster.engines#filter) filter builds them from
        the hosts' C(stackfleet_docker_*) variables (the options of M(stackfleet.cluster.containers); their C(timeout)
        is replaced by O(timeout)).
      - A host of O(containers) that is missing here counts as down.
    type: dict
    required: true
  containers:
    description:
      - The plan, host name to the container documents desired there (RV(stackfleet.cluster.stack_plan#module:containers)).
      - Give every host, also those whose engine may be down (their containers then are V(host-down)).
    type: dict
    required: true
  placement:
    description:
      - Placement key to host name (RV(stackfleet.cluster.stack_plan#module:placement)); used to name each container's
        placement key (V(lamp-1), or V(lamp-1.web) for a stack placed with C(colocate=false)).
    type: dict
    default: {}
  hosts:
    description:
      - Host documents (the P(stackfleet.cluster.host_documents#filter) filter); their C(capacity) is reported next to
        what the plan reserves on each host. Without them the capacity is reported as unknown (null).
    type: list
    elements: dict
    default: []
  secrets:
    description:
      - "Values of the secrets the documents reference (C(env) entries C({secret: NAME})), the same as given to
        M(stackfleet.cluster.containers). They are needed to compute the config hash of such a container; without them
        its C(config_hash_matches) is null (unknown) and its hash is not judged."
    type: dict
    default: {}
  inspect:
    description:
      - Inspect each container of the cluster for its restart count, start time, health and the settings Docker changes
        in place. V(false) reads only the listings (C(restart_count) and C(started_at) are null; health comes from the
        listing's status text; a hand change of cpu, memory or restart policy is not seen).
    type: bool
    default: true
  timeout:
    description:
      - Seconds each request to an engine may take; an engine that does not answer in time is reported as not
        reachable (its containers are V(host-down)), so a dead host costs one O(timeout), all hosts being read at once.
      - All the reads of one engine (listing, image listing, inspects) are given up 3 × O(timeout) + 2 seconds after
        they started.
    type: float
    default: 5
  max_workers:
    description: How many engines are read at once.
    type: int
    default: 16
notes:
  - Values read from Docker (names, labels, status texts, images) are returned as data.
  - Env values of the documents are not logged or returned; only the config hash and the masked field names are used.
seealso:
  - module: stackfleet.cluster.stack_plan
  - module: stackfleet.cluster.containers
  - module: stackfleet.cluster.engine_probe
"""

EXAMPLES = r"""
- name: Plan from the record, without recording
  stackfleet.cluster.stack_plan:
    stack_file: stacks.yml
    hosts: "{{ groups['stackfleet_hosts'] | stackfleet.cluster.host_documents(hostvars) }}"
    previous_placement: "{{ record.placement }}"
  register: plan

- name: What runs where
  stackfleet.cluster.stack_status:
    cluster: "{{ plan.cluster }}"
    engines: "{{ groups['stackfleet_hosts'] | stackfleet.cluster.engines(hostvars) }}"
    containers: "{{ plan.containers }}"
    placement: "{{ plan.placement }}"
    hosts: "{{ groups['stackfleet_hosts'] | stackfleet.cluster.host_documents(hostvars) }}"
    secrets: "{{ stackfleet_secrets | default({}) }}"
  register: status

- name: Fail when anything is not ok
  ansible.builtin.assert:
    that: status.ok
    fail_msg: "{{ status.problems | join('; ') }}"
"""

RETURN = r"""
ok:
  description: Whether every container's verdict is V(ok).
  returned: always
  type: bool
  sample: false
counts:
  description: Verdict to the number of containers with it (every verdict is present).
  returned: always
  type: dict
  sample: {ok: 6, missing: 1, stopped: 0, unhealthy: 0, drifted: 0, duplicate: 0, orphan: 0, host-down: 0}
summary:
  description: One line for a person.
  returned: always
  type: str
  sample: "lab: 7 containers on 3 hosts: 6 ok, 1 missing"
problems:
  description: "One line per container whose verdict is not V(ok): C(<name>: <verdict> (<reason>))."
  returned: always
  type: list
  elements: str
  sample: ["lab.lamp-2.web: missing (no container on lab-h2)"]
containers:
  description:
    - One entry per planned container, then one per container of the cluster the plan does not have (V(orphan)),
      sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The container name (for an orphan, the name it runs under).
      type: str
    instance:
      description: The instance id (C(lamp-1), C(node-exporter-node-1)).
      type: str
    service:
      description: The service.
      type: str
    deploy:
      description: The deploy key.
      type: str
    key:
      description: The placement key; null for an orphan.
      type: str
    expected_host:
      description: The host the plan puts it on; null for an orphan.
      type: str
    verdict:
      description: One of V(ok), V(missing), V(stopped), V(unhealthy), V(drifted), V(duplicate), V(orphan), V(host-down).
      type: str
    reason:
      description: Why, in one sentence (the state and status, what drifted, where the copies are).
      type: str
    found:
      description: Every container found for it, the one on the expected host first.
      type: list
      elements: dict
      contains:
        host: {description: The host it runs on., type: str}
        name: {description: Its name., type: str}
        id: {description: Its id., type: str}
        state: {description: "Docker's state (running, exited, restarting, paused, created, dead).", type: str}
        status: {description: Docker's status text., type: str}
        health: {description: "V(healthy), V(unhealthy), V(starting), or null without a health check.", type: str}
        restart_count: {description: How often Docker restarted it; null without O(inspect)., type: int}
        started_at: {description: When it last started (RFC 3339); null without O(inspect)., type: str}
        image: {description: The image reference it was created from., type: str}
        image_id: {description: The image id it runs., type: str}
        config_hash_matches:
          description: Whether its config-hash label is the plan's; null when unknown (secrets not given, or an orphan).
          type: bool
  sample:
    - name: lab.lamp-1.web
      instance: lamp-1
      service: web
      deploy: lamp
      key: lamp-1
      expected_host: lab-h1
      verdict: ok
      reason: Up 5 minutes
      found:
        - {host: lab-h1, name: lab.lamp-1.web, id: 3f2a..., state: running, status: Up 5 minutes, health: null,
           restart_count: 0, started_at: "2026-12-02T16:01:02.123Z", image: "local/busybox-web:1",
           image_id: "sha256:...", config_hash_matches: true}
instances:
  description: Instance id to the worst verdict of its planned containers, their hosts and container names.
  returned: always
  type: dict
  sample: {lamp-1: {deploy: lamp, verdict: ok, hosts: [lab-h1], containers: [lab.lamp-1.mysql, lab.lamp-1.web]}}
hosts:
  description: Per host (every host of O(containers) and O(engines)).
  returned: always
  type: dict
  contains:
    reachable: {description: Whether the engine answered., type: bool}
    engine_version: {description: The engine's version; null when not reachable., type: str}
    error: {description: Why it is not reachable; null when it is., type: str}
    seconds: {description: How long reading it took; null when it was not read., type: float}
    ours: {description: Containers of the cluster on it; null when not reachable., type: int}
    foreign: {description: Other containers on it; null when not reachable., type: int}
    planned: {description: Containers the plan puts on it., type: int}
    reserved: {description: "What the plan's containers on it reserve, C(cpus) and C(memory_mb).", type: dict}
    capacity: {description: "Its declared capacity (C(cpus), C(memory_mb)) from O(hosts); null when unknown or unlimited.", type: dict}
    over_capacity: {description: Whether the reservation exceeds the declared capacity., type: bool}
    verdicts: {description: "Verdict to count, of the containers the plan puts on it and the orphans found on it.", type: dict}
  sample:
    lab-h1: {reachable: true, engine_version: "20.10.24", error: null, seconds: 0.041, ours: 3, foreign: 1, planned: 3,
             reserved: {cpus: 0.5, memory_mb: 96}, capacity: {cpus: 2, memory_mb: 4096}, over_capacity: false,
             verdicts: {ok: 3}}
table:
  description:
    - The containers as lines of an aligned table, like C(docker stack ps), a header first and RV(summary) last.
    - C(INSTANCE SERVICE HOST STATE VERDICT NOTE); HOST is the planned host (an orphan's own), with C(+host) for each
      other host a copy runs on; a verdict other than V(ok) is in capitals; NOTE is the reason, cut to one line.
  returned: always
  type: list
  elements: str
  sample:
    - "INSTANCE  SERVICE  HOST    STATE    VERDICT  NOTE"
    - "lamp-1    mysql    lab-h1  running  ok"
    - "lamp-2    web      lab-h2  exited   STOPPED  container is exited (Exited (137) 5 seconds ago)"
    - "lab: 2 containers on 3 hosts: 1 ok, 1 stopped"
cluster:
  description: The cluster.
  returned: always
  type: str
  sample: lab
"""

import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils import _fleet, _status
from ansible_collections.stackfleet.cluster.plugins.module_utils._converge import DocumentError, validate
from ansible_collections.stackfleet.cluster.plugins.module_utils._invocation import ScrubbingModule, scrubbed
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import LABEL_CLUSTER

#: All reads of one engine get this many times the per-request timeout (plus _fleet.GRACE): the listing
#: and the inspects of a busy engine, not only one request, yet a hung engine is still given up.
READS_PER_TIMEOUT = 3


def _reader(cluster: str, refs: t.Sequence[str], inspect: bool) -> t.Callable[[t.Any], t.Dict[str, t.Any]]:
    """What each engine is asked: its version (known from connecting), one container listing, one
    image listing (the plan's image references) and the inspects of the cluster's containers."""

    def read(engine: t.Any) -> t.Dict[str, t.Any]:
        try:
            version = str(engine.version().get("Version") or "") or None
            every = engine.list_all()
            ours = [obs for obs in every if obs.labels.get(LABEL_CLUSTER) == cluster]
            runtime = engine.runtime(ours) if inspect else {}
            image_ids = engine.image_ids(refs) if refs else {}
        finally:
            engine.api.close()
        return {"version": version, "ours": ours, "foreign": len(every) - len(ours), "runtime": runtime, "image_ids": image_ids}

    return read


def read_views(cluster: str, engines: t.Mapping[str, t.Any], refs: t.Sequence[str], inspect: bool,
               timeout: float, max_workers: int) -> t.Dict[str, _status.HostView]:
    """Host → HostView, every engine read at once (`_fleet.on_engines`); a failed read is an unreachable host."""
    views = {}
    deadline = READS_PER_TIMEOUT * timeout + _fleet.GRACE
    for host, outcome in _fleet.on_engines(engines, _reader(cluster, refs, inspect), timeout, max_workers, deadline=deadline).items():
        if not outcome.ok:
            views[host] = _status.HostView(host, False, error=_fleet.short_error(outcome.error or "failed"),
                                           seconds=round(outcome.seconds, 3))
            continue
        read = outcome.value
        seen = [_status.Seen(host, obs, **read["runtime"].get(obs.id, {})) for obs in read["ours"]]
        views[host] = _status.HostView(host, True, version=read["version"], containers=seen, foreign=read["foreign"],
                                       image_ids=read["image_ids"], seconds=round(outcome.seconds, 3))
    return views


def _documents(containers: t.Mapping[str, t.Any], cluster: str) -> t.Dict[str, t.List[t.Dict[str, t.Any]]]:
    """The plan's documents per host, validated as M(containers) validates them (raises DocumentError)."""
    plan: t.Dict[str, t.List[t.Dict[str, t.Any]]] = {}
    problems = []
    for host, docs in sorted(containers.items()):
        if not isinstance(docs, list):
            problems.append("containers[%s] is not a list" % host)
            continue
        try:
            validate(docs, cluster)
        except DocumentError as exc:
            problems.append("containers[%s]: %s" % (host, exc))
            continue
        plan[str(host)] = docs
    if problems:
        raise DocumentError("; ".join(problems))
    return plan


def main():
    module = ScrubbingModule(
        argument_spec=dict(
            cluster=dict(type="str", required=True),
            engines=dict(type="dict", required=True),
            containers=dict(type="dict", required=True),
            placement=dict(type="dict", default={}),
            hosts=dict(type="list", elements="dict", default=[]),
            secrets=dict(type="dict", default={}, no_log=True),
            inspect=dict(type="bool", default=True),
            timeout=dict(type="float", default=5.0),
            max_workers=dict(type="int", default=_fleet.MAX_WORKERS),
        ),
        supports_check_mode=True,
    )
    params = module.params
    invocation = {"module_args": scrubbed(params)}
    problem = _fleet.check_params(params["engines"], params["timeout"], params["max_workers"])
    if problem:
        module.fail_json(msg=problem, invocation=invocation)
    try:
        plan = _documents(params["containers"], params["cluster"])
    except DocumentError as exc:
        module.fail_json(msg=str(exc), invocation=invocation)
    refs = sorted({str(doc["image"]) for docs in plan.values() for doc in docs})
    views = read_views(params["cluster"], params["engines"], refs, params["inspect"], params["timeout"], params["max_workers"])
    capacities = {str(doc.get("name")): doc.get("capacity") for doc in params["hosts"] if isinstance(doc, dict)}
    result = _status.status(params["cluster"], plan, views, placement={str(k): str(v) for k, v in params["placement"].items()},
                            secrets=params["secrets"], capacities=capacities)
    module.exit_json(changed=False, invocation=invocation, **result)


if __name__ == "__main__":
    main()

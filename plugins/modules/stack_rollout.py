#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_rollout
short_description: Record a plan once and converge it from many jobs (AWX job slicing)
version_added: 0.5.0
description:
  - The plan of a sliced rollout (docs/awx.md "Job slicing"), kept in etcd next to the placement record under
    C(/stackfleet/<cluster>/rollout), and each host's report that it converged from it under
    C(/stackfleet/<cluster>/converged/<host>) (docs/etcd.md "Rollouts").
  - V(planned) (the plan job, under the cluster's lock, after the placement was recorded) records which placement
    revision the rollout converges, the stack file's hash and count overrides, every planned host's address and
    a hash of each host's rendered containers.
  - V(converge) (each slice) checks that the placement record is still at O(expected_revision), that the rollout was
    planned at it, that the rollout still holds the cluster's lock and that the stack file is the one planned, renews
    the lock's lease, and renders the containers of O(hosts) from the record. It never places. Any mismatch fails
    naming every reason, before any host is touched.
  - V(converged) reports O(hosts) as converged from the rollout's revision (after the same checks); the old copies of
    moved instances are removed only once their new host reported (RV(keep)).
  - V(finished) releases the rollout's lock once every planned host reported, and fails naming the others otherwise.
  - V(abandoned) releases a rollout's lock whatever the hosts reported (an operator giving up a rollout, or a new plan
    job taking over with C(stackfleet_rollout_takeover)). It never releases a lock that is not a rollout's.
author:
  - stackfleet maintainers (@stackfleet)
extends_documentation_fragment:
  - stackfleet.cluster.etcd
  - stackfleet.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  state:
    description: What to do; see the description.
    type: str
    choices: [planned, converge, converged, finished, abandoned]
    required: true
  stack_file:
    description:
      - Path to the stack file on the controller. Names the cluster; with V(planned) its hash is recorded, the other
        states refuse a stack file whose hash differs.
    type: path
    required: true
  hosts:
    description:
      - With V(planned), the host documents the plan was made over (M(stackfleet.cluster.stack_plan)'s O(stackfleet.cluster.stack_plan#module:hosts)).
      - With V(converge) and V(converged), the names of this slice's hosts.
    type: list
    elements: raw
    default: []
  scale:
    description:
      - With V(planned), the count overrides the plan was made with (recorded; slices use the recorded ones).
    type: dict
    default: {}
  placement:
    description:
      - With V(planned), the placement just planned and recorded; refused unless the placement record holds exactly it.
    type: dict
    default: {}
  down_hosts:
    description:
      - With V(planned), the hosts left out of the plan because their engine was down. Their slices leave them alone
        (RV(skipped)) instead of refusing them as hosts the plan does not know.
    type: list
    elements: str
    default: []
  holder:
    description:
      - With V(planned), the holder of the cluster's lock that the rollout keeps for the whole workflow (it starts with
        C(rollout-)).
    type: str
  expected_revision:
    description:
      - The placement revision the plan job recorded (its artifact C(stackfleet_plan_revision)). Required by every state
        but V(planned) and V(abandoned); a missing one fails with the recorded revision named.
    type: int
notes:
  - V(converge) changes nothing; V(converged) and V(finished) write only to etcd.
seealso:
  - module: stackfleet.cluster.stack_plan
  - module: stackfleet.cluster.stack_state
  - module: stackfleet.cluster.etcd_lock
"""

EXAMPLES = r"""
- name: Record the rollout (plan job, under the lock taken with holder rollout-...)
  stackfleet.cluster.stack_rollout:
    state: planned
    stack_file: "{{ stackfleet_stack_file }}"
    hosts: "{{ groups['stackfleet_hosts'] | stackfleet.cluster.host_documents(hostvars) }}"
    placement: "{{ stackfleet_plan.placement }}"
    holder: "{{ stackfleet_rollout_holder }}"

- name: Render this slice's containers from the recorded plan
  stackfleet.cluster.stack_rollout:
    state: converge
    stack_file: "{{ stackfleet_stack_file }}"
    hosts: "{{ ansible_play_hosts_all }}"
    expected_revision: "{{ stackfleet_plan_revision }}"
  register: slice
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
cluster:
  description: The cluster named in the stack file.
  returned: always
  type: str
  sample: prod
revision:
  description: The placement revision the rollout converges.
  returned: success
  type: int
  sample: 42
holder:
  description: The lock holder of the rollout.
  returned: success
  type: str
  sample: rollout-20261203T101500Z-1234
placement:
  description: The recorded placement (placement key to host).
  returned: success and state is converge
  type: dict
containers:
  description: Host name to its container documents, for the slice's hosts that were up at plan time.
  returned: success and state is converge
  type: dict
skipped:
  description: The slice's hosts that were down at plan time (their held instances wait; the slice leaves them alone).
  returned: success and state is converge
  type: list
  elements: str
keys:
  description: Every placement key of the plan, comma separated (what phase 1 defers removing).
  returned: success and state is converge
  type: str
keep:
  description:
    - Placement keys whose new host has not reported converging from this revision, comma separated; their old copies
      stay (the containers module's O(stackfleet.cluster.containers#module:defer_removal)).
  returned: success and state is converge or converged
  type: str
reported:
  description: The hosts of O(hosts) that had not reported converging from this revision before (C(changed) when any).
  returned: success and state is converged
  type: list
  elements: str
not_converged:
  description: Planned hosts that run something and have not reported converging from this revision.
  returned: success
  type: list
  elements: str
rollout:
  description: The rollout record.
  returned: success
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import (
    CONNECTION_ARGSPEC,
    EtcdError,
    client_from_params,
)
from ansible_collections.stackfleet.cluster.plugins.module_utils._state import (
    StateError,
    read_lock,
    read_record,
    release_lock,
    run_identity,
)

try:
    from ansible_collections.stackfleet.cluster.plugins.module_utils import _desired, _model, _rollout, _spec
except ImportError as exc:  # yaml or jmespath missing on the controller
    IMPORT_ERROR = exc
else:
    IMPORT_ERROR = None


def _read_text(module, path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as err:
        module.fail_json(msg="%s: cannot read the stack file: %s" % (path, err))
    return b""  # not reached


def _spec_for(module, text, scale):
    spec = _spec.load_text(text.decode("utf-8", "replace"), source=module.params["stack_file"])
    return _spec.with_counts(spec, scale) if scale else spec


def _render(spec, record, hosts, unavailable):
    """Every host's containers from the recorded placement and ports; `hosts` maps name to address."""
    documents = [_model.Host(name=name, labels={}, capacity=None, address=address or None) for name, address in sorted(hosts.items())]
    placed = set(record.placement.values())
    return _desired.render(spec, record.placement, documents, record.ports, unavailable=sorted(set(unavailable) & placed))


def planned(module, client, text):
    p = module.params
    holder = p["holder"] or ""
    if not holder.startswith(_rollout.HOLDER_PREFIX):
        module.fail_json(msg="holder: a rollout's lock holder starts with %r, got %r" % (_rollout.HOLDER_PREFIX, holder))
    scale = {str(k): int(v) for k, v in (p["scale"] or {}).items()}
    spec = _spec_for(module, text, scale)
    record = read_record(client, spec.cluster)
    if record is None or record.placement != {str(k): str(v) for k, v in p["placement"].items()}:
        module.fail_json(msg="the placement record of cluster %r does not hold the placement just planned (%s): not recording "
                         "the rollout" % (spec.cluster, "no record" if record is None else "revision %d" % record.revision))
    given = _spec.load_hosts(p["hosts"], source="hosts")
    hosts = {h.name: (h.address or "") for h in given}
    held_on = sorted(set(record.placement.values()) - set(hosts))  # down hosts where held instances stay
    unavailable = sorted(set(held_on) | {str(h) for h in p["down_hosts"]} - set(hosts))
    containers = _desired.render(spec, record.placement, given, record.ports, unavailable=held_on)
    # A slice has only the recorded addresses: what it renders from them must be what the full host documents give.
    if _render(spec, record, hosts, unavailable) != containers:
        raise _rollout.RolloutError("the containers rendered from the recorded host addresses differ from those of the full host "
                                    "documents: this stack file cannot be converged in slices; not recording the rollout")
    rollout = _rollout.Rollout(record.revision, _rollout.spec_hash(text, scale), scale, hosts, unavailable, holder,
                               {h: _rollout.containers_digest(docs) for h, docs in containers.items() if h in hosts},
                               planned_by=run_identity())
    rollout = _rollout.write_rollout(client, spec.cluster, rollout, check_mode=module.check_mode)
    module.exit_json(changed=True, cluster=spec.cluster, revision=rollout.revision, holder=holder, rollout=rollout.as_dict(),
                     not_converged=_rollout.not_converged(record.placement, {}, record.revision, unavailable))


def _checked(module, client, text):
    """(spec, record, rollout, lock, converged) once every check passed."""
    cluster = _spec.load_text(text.decode("utf-8", "replace"), source=module.params["stack_file"]).cluster
    record, rollout, lock, converged = _rollout.read_all(client, cluster)
    stack_hash = _rollout.spec_hash(text, rollout.scale if rollout else {})
    rollout = _rollout.check(cluster, record, rollout, lock, module.params["expected_revision"], stack_hash)
    if not module.check_mode and _rollout.renew(client, lock) <= 0:
        raise _rollout.RolloutError("the rollout's lock %s lost its lease while renewing it: nothing was changed" % rollout.holder)
    return _spec_for(module, text, rollout.scale), record, rollout, converged


def converge(module, client, text):
    spec, record, rollout, converged = _checked(module, client, text)
    live, skipped = _rollout.slice_hosts(rollout, [str(h) for h in module.params["hosts"]])
    rendered = _render(spec, record, rollout.hosts, rollout.unavailable)
    differ = [h for h in live if _rollout.containers_digest(rendered.get(h, [])) != rollout.digests.get(h)]
    if differ:
        raise _rollout.RolloutError("the containers of %s render differently here than in the plan job (another collection "
                                    "version or stack file?): nothing was changed" % ", ".join(differ))
    module.exit_json(changed=False, cluster=spec.cluster, revision=rollout.revision, holder=rollout.holder,
                     placement=record.placement, containers={h: rendered[h] for h in live}, skipped=skipped,
                     keys=",".join(sorted(record.placement)),
                     keep=",".join(_rollout.keep_old_copies(record.placement, converged, rollout.revision)),
                     not_converged=_rollout.not_converged(record.placement, converged, rollout.revision, rollout.unavailable),
                     rollout=rollout.as_dict())


def report(module, client, text):
    spec, record, rollout, converged = _checked(module, client, text)
    live, _skipped = _rollout.slice_hosts(rollout, [str(h) for h in module.params["hosts"]])
    fresh = _rollout.report_converged(client, spec.cluster, live, rollout.revision, run_identity(), converged,
                                      check_mode=module.check_mode, holder=rollout.holder)
    converged.update({h: rollout.revision for h in live})
    module.exit_json(changed=bool(fresh), reported=fresh, cluster=spec.cluster, revision=rollout.revision, holder=rollout.holder,
                     keep=",".join(_rollout.keep_old_copies(record.placement, converged, rollout.revision)),
                     not_converged=_rollout.not_converged(record.placement, converged, rollout.revision, rollout.unavailable),
                     rollout=rollout.as_dict())


def finished(module, client, text):
    spec, record, rollout, converged = _checked(module, client, text)
    waiting = _rollout.not_converged(record.placement, converged, rollout.revision, rollout.unavailable)
    if waiting:
        module.fail_json(msg="rollout of cluster %r at revision %d is not finished: %s did not report converging from it; the "
                         "lock stays with %s (run the sliced job again for them, or abandon the rollout)"
                         % (spec.cluster, rollout.revision, ", ".join(waiting), rollout.holder), not_converged=waiting)
    released = release_lock(client, spec.cluster, rollout.holder, check_mode=module.check_mode)[1]
    module.exit_json(changed=released, cluster=spec.cluster, revision=rollout.revision, holder=rollout.holder,
                     not_converged=[], rollout=rollout.as_dict())


def abandoned(module, client, text):
    cluster = _spec.load_text(text.decode("utf-8", "replace"), source=module.params["stack_file"]).cluster
    lock = read_lock(client, cluster)
    if lock is None or not lock.holder.startswith(_rollout.HOLDER_PREFIX):
        module.exit_json(changed=False, cluster=cluster, holder=lock.holder if lock else "", not_converged=[],
                         msg="no rollout holds the lock of cluster %r" % cluster)
    changed = release_lock(client, cluster, lock.holder, force=True, check_mode=module.check_mode)[1]
    module.exit_json(changed=changed, cluster=cluster, holder=lock.holder, not_converged=[])


def main() -> None:
    argument_spec = dict(
        state=dict(type="str", required=True, choices=["planned", "converge", "converged", "finished", "abandoned"]),
        stack_file=dict(type="path", required=True),
        hosts=dict(type="list", elements="raw", default=[]),
        scale=dict(type="dict", default={}),
        placement=dict(type="dict", default={}),
        holder=dict(type="str"),
        down_hosts=dict(type="list", elements="str", default=[]),
        expected_revision=dict(type="int"),
    )
    argument_spec.update(CONNECTION_ARGSPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if IMPORT_ERROR is not None:
        module.fail_json(msg="stack_rollout needs PyYAML and jmespath on the controller: %s" % IMPORT_ERROR)
    text = _read_text(module, module.params["stack_file"])
    actions = {"planned": planned, "converge": converge, "converged": report, "finished": finished, "abandoned": abandoned}
    try:
        actions[module.params["state"]](module, client_from_params(module.params), text)
    except (_spec.SpecError, _desired.RenderError) as err:
        module.fail_json(msg=str(err), errors=list(getattr(err, "errors", [])))
    except StateError as err:  # RolloutError included
        module.fail_json(msg=str(err))
    except EtcdError as err:
        module.fail_json(msg=str(err), code=err.code)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: etcd_member
short_description: Add, promote or remove one etcd member, safely
version_added: 0.1.0
description:
  - Makes one etcd member present (a voting member, reached through a learner where the cluster supports it) or absent.
  - Members are matched by peer URL, because a member added but not started yet has no name.
  - Changes at most B(one) member per call, and refuses changes that would endanger the cluster
    (see O(state) and the notes). Run it once per member, one host at a time.
  - Health is probed at every member's advertised client URLs, so those must be reachable from where the module runs.
extends_documentation_fragment:
  - stackfleet.cluster.etcd
  - stackfleet.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  name:
    description:
      - Name of the member (its C(--name)). Only used to find a member when O(peer_urls) is not given (O(state=absent)),
        and to warn when the member found by peer URL carries another name.
    type: str
  peer_urls:
    description:
      - The member's peer URLs (its C(--initial-advertise-peer-urls)). Required with O(state=present).
      - A member sharing any of these URLs is this member; if its set of peer URLs differs, it is updated.
    type: list
    elements: str
  state:
    description:
      - V(present) adds the member (or promotes it, or updates its peer URLs).
      - V(absent) removes it. Removing an B(unhealthy) member is allowed when the others keep a quorum. This is how a
        broken member is repaired - remove it, wipe its data directory, add it again, start it with
        C(--initial-cluster-state existing).
    type: str
    choices: [present, absent]
    default: present
  learner:
    description:
      - V(auto) adds the member as a learner when the cluster runs etcd 3.4 or newer, and promotes it to a voting member
        once it runs and has caught up with the leader. A learner that has not started yet is left as a learner and
        reported (RV(action=added_learner) or RV(action=waiting_for_learner)); start etcd on it and run the task again.
        Older clusters get a voting member straight away.
      - V(always) adds a learner and never promotes it.
      - V(never) adds a voting member straight away (the cluster counts it for quorum before it has started).
    type: str
    choices: [auto, always, never]
    default: auto
  wait_healthy:
    description:
      - After a change, wait until every voting member is healthy again (up to O(wait_timeout)).
      - Not done after adding a member that has not started yet.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to keep retrying while etcd answers C(etcdserver unhealthy cluster) (it does for a few seconds after
        start-up), to wait for a learner to catch up before promoting it, and for O(wait_healthy).
    type: int
    default: 60
notes:
  - "Refused (the task fails, nothing changes): any change while a voting member is unreachable or unhealthy, except removing
    that unhealthy member while the others keep a quorum; an add that the healthy members could not make a quorum for (for
    example a 4th member while one of 3 is down); a removal that leaves the members without a quorum, or removes the last one."
  - The module does not start or stop etcd processes; a removed member's etcd exits by itself shortly after.
author:
  - stackfleet maintainers (@stackfleet)
"""

EXAMPLES = r"""
- name: Add node-4 to the cluster (as a learner until it runs)
  stackfleet.cluster.etcd_member:
    name: node-4
    peer_urls: ["https://10.0.0.14:2380"]
    endpoints: ["https://10.0.0.11:2379", "https://10.0.0.12:2379", "https://10.0.0.13:2379"]
    ca_cert: /etc/etcd/ca.pem
    client_cert: /etc/etcd/client.pem
    client_key: /etc/etcd/client-key.pem
  register: added

# etcd's --initial-cluster lists name=peer URL of every member; node-4 has no name until it starts.
- name: Start etcd on node-4 with the initial cluster the add returned
  ansible.builtin.debug:
    msg: >-
      etcd --name node-4 --initial-cluster-state existing --initial-cluster
      {{ (added.members | selectattr('started') | map(attribute='name')
          | zip(added.members | selectattr('started') | map(attribute='peer_urls') | map('first'))
          | map('join', '=') | list + ['node-4=https://10.0.0.14:2380']) | join(',') }}

- name: Run again once node-4 runs - promotes the caught-up learner
  stackfleet.cluster.etcd_member:
    name: node-4
    peer_urls: ["https://10.0.0.14:2380"]
  environment:
    ETCDCTL_ENDPOINTS: https://10.0.0.11:2379,https://10.0.0.12:2379
    ETCDCTL_CACERT: /etc/etcd/ca.pem
    ETCDCTL_CERT: /etc/etcd/client.pem
    ETCDCTL_KEY: /etc/etcd/client-key.pem

- name: Repair - remove the dead member node-2 (allowed while the others keep quorum)
  stackfleet.cluster.etcd_member:
    name: node-2
    peer_urls: ["https://10.0.0.12:2380"]
    state: absent
"""

RETURN = r"""
action:
  description: What was done (or would be, in check mode).
  returned: always
  type: str
  choices: [added, added_learner, promoted, updated, removed, waiting_for_learner, none]
  sample: promoted
member:
  description: The member after the change; empty after a removal or when it was absent.
  returned: always
  type: dict
  contains:
    id: {description: "Member ID, decimal.", type: int, sample: 10501334649042878790}
    id_hex: {description: "Member ID in hexadecimal, as C(etcdctl member list) prints it.", type: str, sample: 91bc3c398fb3c146}
    name: {description: "Member name; empty until it has started.", type: str, sample: node-4}
    peer_urls: {description: "Peer URLs.", type: list, elements: str, sample: ["https://10.0.0.14:2380"]}
    client_urls: {description: "Client URLs; empty until it has started.", type: list, elements: str}
    learner: {description: "Whether it is a non-voting learner.", type: bool}
    started: {description: "Whether it has started and published its name.", type: bool}
members:
  description: All members after the change (same form as RV(member)), each with its probed C(healthy) state and C(reason).
  returned: always
  type: list
  elements: dict
cluster_id:
  description: Cluster ID in hexadecimal.
  returned: always
  type: str
  sample: cdf818194e3a8c32
"""

import time
import typing as t

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import (
    CODE_FAILED_PRECONDITION,
    CONNECTION_ARGSPEC,
    EtcdClient,
    EtcdError,
    Member,
    client_from_params,
    id_hex,
    retry,
)
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd_membership import (
    ADD,
    ADD_LEARNER,
    PROMOTE,
    REMOVE,
    UPDATE,
    ChangeRefused,
    add_member,
    check_change,
    label,
    match_members,
    probe_members,
    remove_member,
    same_peer_urls,
)

_VERB = {"added": "add", "added_learner": "add", "removed": "remove", "promoted": "promote", "updated": "update"}


def _not_in_sync(err: EtcdError) -> bool:
    """A learner promotion refused because it has not caught up yet (worth waiting for)."""
    return err.retryable or (err.code == CODE_FAILED_PRECONDITION and "in sync" in err.message)


def _summary(members: t.Sequence[Member]) -> t.List[str]:
    return sorted("%s %s%s" % (m.name or "(unstarted)", ",".join(m.peer_urls), " learner" if m.is_learner else "")
                  for m in members)


class MemberManager:
    def __init__(self, module: AnsibleModule, client: EtcdClient):
        self.module = module
        self.client = client
        self.params = module.params
        self.warnings: t.List[str] = []

    def list_members(self) -> t.Tuple[int, t.List[Member]]:
        return retry(self.client.member_list, self.params["wait_timeout"])

    def run(self) -> t.Dict[str, t.Any]:
        p = self.params
        cluster_id, members = self.list_members()
        matches = match_members(members, p["peer_urls"] or (), p["name"])
        if len(matches) > 1:
            self.module.fail_json(msg="the given peer URLs belong to %d members (%s); give one member's URLs"
                                      % (len(matches), ", ".join(label(m) for m in matches)))
        target = matches[0] if matches else None
        if target is None and p["state"] == "present":
            by_name = match_members(members, (), p["name"]) if p["name"] else []
            target = by_name[0] if by_name else None  # re-addressed member: same name, new peer URLs
        health = probe_members(self.client, members)

        action, member = self.decide(members, health, target)
        if target is not None and p["name"] and target.name and target.name != p["name"]:
            self.warnings.append("member with peer URLs %s is named %r, not %r" % (
                ",".join(target.peer_urls), target.name, p["name"]))

        if action != "none" and not self.module.check_mode:
            member = self.apply(action, target)
            cluster_id, after = self.list_members()
        else:
            after = self.predict(members, action, target)
        if member is not None:
            member = next((m for m in after if m.id == member.id), member)
            if member.is_learner and p["learner"] == "auto" and action in ("added_learner", "waiting_for_learner"):
                self.warnings.append("%s is a learner until it runs: start etcd on it (--initial-cluster-state existing) "
                                     "and run this task again to promote it" % label(member))
        final_health = health
        if action != "none" and not self.module.check_mode:
            final_health = self.settle(after, action)

        result: t.Dict[str, t.Any] = {
            "changed": action not in ("none", "waiting_for_learner"),
            "action": action,
            "member": member.to_result() if member is not None and action != "removed" else {},
            "members": [dict(m.to_result(), healthy=final_health.get(m.id) is not None and final_health[m.id].healthy,
                             reason=final_health[m.id].reason if m.id in final_health else "not probed")
                        for m in after],
            "cluster_id": id_hex(cluster_id),
        }
        if self.module._diff:
            result["diff"] = {"before": {"members": _summary(members)}, "after": {"members": _summary(after)}}
        return result

    def decide(self, members: t.List[Member], health, target: t.Optional[Member]) -> t.Tuple[str, t.Optional[Member]]:
        """The one change this call makes (refusing unsafe ones), and the member it concerns."""
        p = self.params
        try:
            if p["state"] == "absent":
                if target is None:
                    return "none", None
                check_change(members, health, REMOVE, target)
                return "removed", target
            if target is None:
                learner = self.add_as_learner()
                check_change(members, health, ADD_LEARNER if learner else ADD, None, will_vote=p["learner"] != "always")
                return ("added_learner" if learner else "added"), Member(0, "", tuple(p["peer_urls"]), (), learner)
            if not same_peer_urls(target, p["peer_urls"]):
                check_change(members, health, UPDATE, target)
                return "updated", target
            if target.is_learner and p["learner"] != "always":
                if not (target.started and health.get(target.id) and health[target.id].healthy):
                    return "waiting_for_learner", target
                check_change(members, health, PROMOTE, target)
                return "promoted", target
            if not target.is_learner and p["learner"] == "always":
                self.warnings.append("%s is a voting member; etcd cannot demote it to a learner" % label(target))
            return "none", target
        except ChangeRefused as err:
            self.module.fail_json(msg=str(err), members=[m.to_result() for m in members],
                                  health={id_hex(k): v._asdict() for k, v in health.items()})

    def add_as_learner(self) -> bool:
        mode = self.params["learner"]
        if mode == "never":
            return False
        supported = self.client.supports_learners()
        if mode == "always" and not supported:
            self.module.fail_json(msg="learner=always needs etcd 3.4 or newer; the cluster runs %s"
                                      % self.client.version()["etcdcluster"])
        return supported

    def apply(self, action: str, target: t.Optional[Member]) -> t.Optional[Member]:
        p, timeout = self.params, self.params["wait_timeout"]
        try:
            if action in ("added", "added_learner"):  # never retried blindly: an unclear answer is read back
                return add_member(self.client, p["peer_urls"], learner=action == "added_learner", timeout=timeout)
            member_id = target.id if target is not None else 0  # decide() names a target for every other action
            if action == "removed":
                remove_member(self.client, member_id, timeout=timeout)
            elif action == "promoted":
                retry(lambda: self.client.member_promote(member_id), timeout, retry_on=_not_in_sync)
            elif action == "updated":
                retry(lambda: self.client.member_update(member_id, p["peer_urls"]), timeout)
            return target
        except EtcdError as err:
            self.module.fail_json(msg="etcd refused to %s %s: %s" % (
                _VERB[action], label(target) if target else ",".join(p["peer_urls"]), err), code=err.code)

    def predict(self, members: t.List[Member], action: str, target: t.Optional[Member]) -> t.List[Member]:
        """Members as they would be after `action` (check mode)."""
        if action in ("added", "added_learner"):
            return members + [Member(0, "", tuple(self.params["peer_urls"]), (), action == "added_learner")]
        if target is None:
            return members
        if action == "removed":
            return [m for m in members if m.id != target.id]
        if action == "promoted":
            return [m._replace(is_learner=False) if m.id == target.id else m for m in members]
        if action == "updated":
            return [m._replace(peer_urls=tuple(self.params["peer_urls"])) if m.id == target.id else m for m in members]
        return members

    def settle(self, members: t.List[Member], action: str):
        """Wait (bounded) until every started voting member is healthy again."""
        deadline = time.monotonic() + self.params["wait_timeout"]
        while True:
            health = probe_members(self.client, members)
            pending = [m for m in members if not m.is_learner and m.started and not health[m.id].healthy]
            if not pending or not self.params["wait_healthy"]:
                return health
            if time.monotonic() > deadline:
                self.warnings.append("after %s, still unhealthy after %ss: %s" % (
                    action, self.params["wait_timeout"], "; ".join("%s: %s" % (label(m), health[m.id].reason)
                                                                   for m in pending)))
                return health
            time.sleep(0.5)


def main() -> None:
    argument_spec = dict(
        name=dict(type="str"),
        peer_urls=dict(type="list", elements="str"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        learner=dict(type="str", default="auto", choices=["auto", "always", "never"]),
        wait_healthy=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=60),
    )
    argument_spec.update(CONNECTION_ARGSPEC)
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", ("peer_urls",)), ("state", "absent", ("name", "peer_urls"), True)],
        supports_check_mode=True,
    )
    try:
        manager = MemberManager(module, client_from_params(module.params))
        result = manager.run()
    except EtcdError as err:
        module.fail_json(msg=str(err), code=err.code)
    for warning in manager.warnings:
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

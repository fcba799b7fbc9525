# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the etcd read/record modules do, as functions of their validated parameters: shared by
each module and by its action plugin, which runs it in the task's worker on the controller
(plugin_utils/_in_worker.py). Each takes (params, check_mode, diff), returns the result, or
raises TaskFailed with the result's msg and fields."""

from __future__ import annotations

import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import CONNECTION_ARGSPEC, EtcdClient, EtcdError, client_from_params, id_hex
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd_decide import DecisionError, decide, has_quorum
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd_membership import probe_members, quorum
from ansible_collections.stackfleet.cluster.plugins.module_utils._state import (
    RevisionConflict,
    StateError,
    read_record,
    record_result,
    run_identity,
    write_placement,
)
from ansible_collections.stackfleet.cluster.plugins.module_utils._task import TaskFailed


def _with_connection(**spec: t.Any) -> t.Dict[str, t.Any]:
    spec.update(CONNECTION_ARGSPEC)
    return spec


# ---------------------------------------------------------------- etcd_cluster_info

CLUSTER_INFO_SPEC = dict(CONNECTION_ARGSPEC)


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


def run_cluster_info(params: t.Mapping[str, t.Any], check_mode: bool = False, diff: bool = False) -> t.Dict[str, t.Any]:
    try:
        return dict(cluster_info(client_from_params(params)), changed=False)
    except EtcdError as err:
        raise TaskFailed(str(err), code=err.code) from err


# ---------------------------------------------------------------- etcd_plan

PLAN_SPEC: t.Dict[str, t.Any] = dict(
    members=dict(type="list", elements="dict", default=[]),
    hosts=dict(type="list", elements="dict", required=True, options=dict(
        host=dict(type="str", required=True),
        name=dict(type="str"),
        peer_url=dict(type="str", required=True),
        client_url=dict(type="str"),
        data=dict(type="bool", default=False),
        record=dict(type="dict"),
    )),
    repair_hosts=dict(type="list", elements="str", default=[]),
    max_removals=dict(type="int", default=-1),
)


def run_plan(params: t.Mapping[str, t.Any], check_mode: bool = False, diff: bool = False) -> t.Dict[str, t.Any]:
    try:
        decision = decide(params["members"], params["hosts"], params["repair_hosts"], params["max_removals"])
    except DecisionError as err:
        raise TaskFailed(str(err)) from err
    return dict(decision, changed=False)


# ---------------------------------------------------------------- stack_state_info

STATE_INFO_SPEC = _with_connection(cluster=dict(type="str", required=True))


def run_state_info(params: t.Mapping[str, t.Any], check_mode: bool = False, diff: bool = False) -> t.Dict[str, t.Any]:
    cluster = params["cluster"]
    try:
        record = read_record(client_from_params(params), cluster)
    except StateError as err:
        raise TaskFailed(str(err)) from err
    except EtcdError as err:
        raise TaskFailed(str(err), code=err.code) from err
    return dict(record_result(cluster, record), changed=False)


# ---------------------------------------------------------------- stack_state

STATE_SPEC = _with_connection(
    cluster=dict(type="str", required=True),
    placement=dict(type="dict", required=True),
    spec_hash=dict(type="str", default=""),
    updated_by=dict(type="str"),
    expected_revision=dict(type="int"),
    ports=dict(type="dict", default={}),
)


def run_state(params: t.Mapping[str, t.Any], check_mode: bool = False, diff: bool = False) -> t.Dict[str, t.Any]:
    cluster = params["cluster"]
    try:
        record, previous, changed = write_placement(
            client_from_params(params), cluster, params["placement"], expected_revision=params["expected_revision"],
            spec_hash=params["spec_hash"], updated_by=params["updated_by"] or run_identity(),
            check_mode=check_mode, ports=params["ports"])
    except RevisionConflict as err:
        raise TaskFailed(str(err), revision=err.current, expected_revision=err.expected) from err
    except StateError as err:
        raise TaskFailed(str(err)) from err
    except EtcdError as err:
        raise TaskFailed(str(err), code=err.code) from err
    result = dict(record_result(cluster, record), changed=changed)
    if diff:
        result["diff"] = {"before": {"placement": previous.placement if previous else {}},
                          "after": {"placement": record.placement}}
    return result

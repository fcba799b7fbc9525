# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""etcd_lock's task: its options and what one task does, shared by the module (a run anywhere) and
the action plugin (the same run in the task's worker on the controller, with no module round trip)."""

from __future__ import annotations

import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import CONNECTION_ARGSPEC, EtcdError, client_from_params, id_hex
from ansible_collections.stackfleet.cluster.plugins.module_utils._state import LockRecord, StateError, acquire_lock, lock_key, release_lock
from ansible_collections.stackfleet.cluster.plugins.module_utils._task import TaskFailed

ARGUMENT_SPEC: t.Dict[str, t.Any] = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", default="acquired", choices=["acquired", "released"]),
    holder=dict(type="str"),
    ttl=dict(type="int", default=60),
    keep_alive=dict(type="bool", default=True),  # carried out by the action plugin
    wait_timeout=dict(type="int", default=0),
    force=dict(type="bool", default=False),
)
ARGUMENT_SPEC.update(CONNECTION_ARGSPEC)


def lock_result(name: str, lock: t.Optional[LockRecord]) -> t.Dict[str, t.Any]:
    if lock is None:
        return {}
    return {"key": lock_key(name), "holder": lock.holder, "since": lock.since, "lease_id": lock.lease_id,
            "lease_id_hex": id_hex(lock.lease_id), "ttl": lock.ttl, "ttl_left": lock.ttl_left, "revision": lock.revision}


def run(params: t.Mapping[str, t.Any], holder: str, check_mode: bool) -> t.Dict[str, t.Any]:
    """Take or release lock params['name'] for `holder`; returns the result (changed, lock, holder)."""
    if params["ttl"] < 1:
        raise TaskFailed("ttl must be at least 1 second")
    name = params["name"]
    try:
        client = client_from_params(params)
        if params["state"] == "acquired":
            lock, changed = acquire_lock(client, name, holder, params["ttl"], params["wait_timeout"], check_mode=check_mode)
        else:
            lock, changed = release_lock(client, name, holder, force=params["force"], check_mode=check_mode)
    except StateError as err:
        raise TaskFailed(str(err), lock=lock_result(name, getattr(err, "lock", None)), holder=holder) from err
    except EtcdError as err:
        raise TaskFailed(str(err), code=err.code) from err
    return {"changed": changed, "lock": lock_result(name, lock), "holder": holder}

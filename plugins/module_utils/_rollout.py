# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A recorded rollout: the plan made once, converged by many jobs (AWX job slicing, docs/awx.md).

The plan job plans under the cluster's lock, records the placement (`_state`), then records the
rollout next to it and keeps the lock for the whole workflow (holder `rollout-...`, a lease the
slices renew). Each slice converges only its hosts, rendered from that record, never re-planned.

Key layout (docs/etcd.md "Rollouts"):

    /stackfleet/<cluster>/rollout              JSON {revision, spec_hash, scale, hosts, unavailable,
                                                     holder, digests, planned_at, planned_by}
    /stackfleet/<cluster>/converged/<host>     JSON {revision, rollout, at, by}: the host converged from that plan,
                                               in the rollout whose lock holder is `rollout`

`revision` is the placement record's revision the rollout was planned at; `hosts` maps every host
the plan was made over to its address (what siblings' references resolve to), `unavailable` names
the hosts that were down (their held instances are rendered but not reachable); `digests` is a
hash of each host's rendered containers, so a slice that renders differently (another collection
version, another stack file) refuses instead of converging something else than was planned.

Pure functions first (unit-tested); the etcd reads and writes at the end.
"""

from __future__ import annotations

import hashlib
import json
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import EtcdClient
from ansible_collections.stackfleet.cluster.plugins.module_utils._state import (
    LockRecord,
    PlacementRecord,
    StateError,
    cluster_prefix,
    read_lock,
    read_record,
    utc_now,
)

ROLLOUT_KEY = "rollout"
CONVERGED_DIR = "converged/"
HOLDER_PREFIX = "rollout-"


class RolloutError(StateError):
    """A slice cannot converge from the recorded rollout; the message says why and what to do."""


class Rollout(t.NamedTuple):
    revision: int
    spec_hash: str
    scale: t.Dict[str, int]
    hosts: t.Dict[str, str]  # host -> address
    unavailable: t.List[str]
    holder: str
    digests: t.Dict[str, str]
    planned_at: str = ""
    planned_by: str = ""

    def as_dict(self) -> t.Dict[str, t.Any]:
        return dict(self._asdict())


# ---------------------------------------------------------------- keys

def rollout_key(cluster: str) -> str:
    return cluster_prefix(cluster) + ROLLOUT_KEY


def converged_prefix(cluster: str) -> str:
    return cluster_prefix(cluster) + CONVERGED_DIR


def converged_key(cluster: str, host: str) -> str:
    if not host or "/" in host:
        raise RolloutError("host name %r cannot be an etcd key segment" % (host,))
    return converged_prefix(cluster) + host


# ---------------------------------------------------------------- pure parts

def spec_hash(stack_text: t.Union[str, bytes], scale: t.Optional[t.Mapping[str, t.Any]] = None) -> str:
    """sha256 of the stack file's bytes and the run's count overrides: what the plan was made from."""
    raw = stack_text.encode("utf-8") if isinstance(stack_text, str) else stack_text
    digest = hashlib.sha256(raw)
    digest.update(b"\0scale:" + json.dumps({str(k): v for k, v in (scale or {}).items()}, sort_keys=True).encode("utf-8"))
    return "sha256:" + digest.hexdigest()


def containers_digest(documents: t.Sequence[t.Mapping[str, t.Any]]) -> str:
    """A hash of one host's rendered container documents (sorted keys, so stable)."""
    text = json.dumps(list(documents), sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def encode_rollout(rollout: Rollout) -> str:
    return json.dumps(rollout.as_dict(), sort_keys=True, separators=(",", ":"))


def decode_rollout(raw: bytes, where: str) -> Rollout:
    try:
        doc = json.loads(raw.decode("utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        hosts = doc.get("hosts") or {}
        if not isinstance(hosts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in hosts.items()):
            raise ValueError("hosts: expected a mapping of host name to address")
        unavailable = doc.get("unavailable") or []
        if not isinstance(unavailable, list) or not all(isinstance(h, str) for h in unavailable):
            raise ValueError("unavailable: expected a list of host names")
        digests = doc.get("digests") or {}
        if not isinstance(digests, dict):
            raise ValueError("digests: expected a mapping of host name to hash")
        scale = doc.get("scale") or {}
        if not isinstance(scale, dict):
            raise ValueError("scale: expected a mapping of deploy to count")
        return Rollout(int(doc["revision"]), str(doc.get("spec_hash") or ""), {str(k): int(v) for k, v in scale.items()},
                       dict(hosts), list(unavailable), str(doc.get("holder") or ""), {str(k): str(v) for k, v in digests.items()},
                       str(doc.get("planned_at") or ""), str(doc.get("planned_by") or ""))
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise RolloutError("%s is not a valid stackfleet rollout record: %s" % (where, err))


def decode_converged(raw: bytes, holder: t.Optional[str] = None) -> int:
    """The plan revision a host reported converging from; 0 when the value is unreadable, or, with
    `holder`, when the report is another rollout's: a re-plan that leaves the placement as it was
    keeps its revision, and an earlier rollout's report must not count for the new one."""
    try:
        doc = json.loads(raw.decode("utf-8"))
        if not isinstance(doc, dict) or (holder is not None and doc.get("rollout") != holder):
            return 0
        return int(doc.get("revision") or 0)
    except (ValueError, TypeError, UnicodeDecodeError):
        return 0


def check(cluster: str, record: t.Optional[PlacementRecord], rollout: t.Optional[Rollout], lock: t.Optional[LockRecord],
          expected_revision: t.Optional[int], stack_hash: str) -> Rollout:
    """The rollout a slice may converge from, or RolloutError naming every reason it may not.

    A slice converges only when the recorded placement is the one the plan job recorded
    (`expected_revision`, passed on from the plan job's artifacts), the rollout was planned at
    that revision, the workflow still holds the lock, and the stack file is the one planned.
    """
    key = cluster_prefix(cluster)
    if rollout is None or record is None:
        raise RolloutError("cluster %r has no recorded rollout (%srollout%s): run the plan job (playbooks/rollout_plan.yml) "
                           "first, then this job with its stackfleet_plan_revision; nothing was changed"
                           % (cluster, key, "" if record is not None else ", and no placement record"))
    problems = []
    if expected_revision is None:
        problems.append("no stackfleet_plan_revision was given (the plan job's artifact; the rollout is at revision %d)"
                        % rollout.revision)
    elif expected_revision != record.revision:
        problems.append("this job was given plan revision %d but the placement record is at revision %d (someone re-planned "
                        "since, by %s at %s): run the plan job again and converge from its revision"
                        % (expected_revision, record.revision, record.updated_by or "unknown", record.updated_at or "an unknown time"))
    if rollout.revision != record.revision:
        problems.append("the rollout was planned at revision %d but the placement record is at revision %d "
                        "(the placement was written without a plan job since)" % (rollout.revision, record.revision))
    if stack_hash != rollout.spec_hash:
        problems.append("the stack file is not the one the plan was made from (%s, planned %s): the project changed "
                        "between the plan job and this job" % (stack_hash, rollout.spec_hash))
    if lock is None:
        problems.append("the rollout's lock %s is gone (the rollout was finished or abandoned, or its lease ran out)"
                        % rollout.holder)
    elif lock.holder != rollout.holder:
        problems.append("the cluster's lock is held by %s, not by this rollout (%s): another run took over"
                        % (lock.holder, rollout.holder))
    if problems:
        raise RolloutError("cannot converge cluster %r from the recorded plan, nothing was changed: %s"
                           % (cluster, "; ".join(problems)))
    return rollout


def slice_hosts(rollout: Rollout, wanted: t.Iterable[str]) -> t.Tuple[t.List[str], t.List[str]]:
    """(hosts of `wanted` to converge, hosts down at plan time, left alone); RolloutError for hosts the plan does not cover."""
    wanted = sorted(set(wanted))
    unknown = [h for h in wanted if h not in rollout.hosts and h not in rollout.unavailable]
    if unknown:
        raise RolloutError("host(s) %s are not in the recorded plan (planned over: %s): they were added or renamed after the "
                           "plan job; run the plan job again, nothing was changed"
                           % (", ".join(unknown), ", ".join(sorted(rollout.hosts)) or "no host"))
    down = set(rollout.unavailable)
    return [h for h in wanted if h not in down], [h for h in wanted if h in down]


def not_converged(placement: t.Mapping[str, str], converged: t.Mapping[str, int], revision: int,
                  unavailable: t.Iterable[str] = ()) -> t.List[str]:
    """Planned hosts (that run something, down ones aside) that have not reported converging from `revision`."""
    down = set(unavailable)
    return sorted({h for h in placement.values() if h not in down and converged.get(h) != revision})


def keep_old_copies(placement: t.Mapping[str, str], converged: t.Mapping[str, int], revision: int) -> t.List[str]:
    """Placement keys whose old copies must stay: their new host has not reported converging from `revision`
    (its replacement may not run yet). The containers module defers these and removes the rest."""
    return sorted(k for k, host in placement.items() if converged.get(host) != revision)


# ---------------------------------------------------------------- etcd

def read_rollout(client: EtcdClient, cluster: str) -> t.Tuple[t.Optional[Rollout], t.Dict[str, int]]:
    """(the rollout record or None, host -> revision each host reported converging from in this rollout)."""
    _rev, kvs = client.range(rollout_key(cluster))
    rollout = decode_rollout(kvs[0].value, rollout_key(cluster)) if kvs else None
    prefix = converged_prefix(cluster).encode("utf-8")
    _rev, reported = client.range(prefix, prefix=True)
    holder = rollout.holder if rollout else None
    converged = {kv.key[len(prefix):].decode("utf-8", "replace"): decode_converged(kv.value, holder) for kv in reported}
    return rollout, converged


def read_all(client: EtcdClient, cluster: str) -> t.Tuple[t.Optional[PlacementRecord], t.Optional[Rollout],
                                                          t.Optional[LockRecord], t.Dict[str, int]]:
    record = read_record(client, cluster)
    rollout, converged = read_rollout(client, cluster)
    return record, rollout, read_lock(client, cluster), converged


def write_rollout(client: EtcdClient, cluster: str, rollout: Rollout, check_mode: bool = False) -> Rollout:
    """Record the rollout of the placement at `rollout.revision`, made under the lock `rollout.holder`."""
    record = read_record(client, cluster)
    lock = read_lock(client, cluster)
    if record is None or record.revision != rollout.revision:
        raise RolloutError("the placement record of cluster %r is at revision %s, not %d as planned: not recording the rollout"
                           % (cluster, record.revision if record else "none (no record)", rollout.revision))
    if lock is None or lock.holder != rollout.holder:
        raise RolloutError("the lock of cluster %r is held by %s, not by %s: a rollout is recorded only under its own lock"
                           % (cluster, lock.holder if lock else "nobody", rollout.holder))
    rollout = rollout._replace(planned_at=rollout.planned_at or utc_now())
    if not check_mode:
        client.put(rollout_key(cluster), encode_rollout(rollout))
    return rollout


def renew(client: EtcdClient, lock: LockRecord) -> int:
    """Renew the rollout lock's lease (a slice's sign of life); returns its new ttl (0: gone)."""
    return client.lease_keepalive(lock.lease_id) if lock.lease_id else 0


def report_converged(client: EtcdClient, cluster: str, hosts: t.Iterable[str], revision: int, by: str,
                     converged: t.Optional[t.Mapping[str, int]] = None, check_mode: bool = False,
                     holder: str = "") -> t.List[str]:
    """Record `hosts` as converged from `revision` in the rollout of `holder`; returns those that had not
    reported it yet."""
    at = utc_now()
    fresh = sorted(h for h in set(hosts) if (converged or {}).get(h) != revision)
    for host in fresh:
        if not check_mode:
            client.put(converged_key(host=host, cluster=cluster),
                       json.dumps({"revision": revision, "rollout": holder, "at": at, "by": by}, sort_keys=True))
    return fresh

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster state stackfleet keeps in etcd: the placement record and the run lock.

Key layout (documented in docs/etcd.md; other tools may read it):

    /stackfleet/<cluster>/placement   JSON {placement, spec_hash, updated_at, updated_by[, ports]}
    /stackfleet/<cluster>/lock        JSON {holder, since, lease_id, ttl}, attached to a lease

Everything read back is data someone else wrote: it is parsed defensively and
never evaluated. Callers that hand it to Ansible templates must treat it as
untrusted.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import time
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import (
    EtcdClient,
    EtcdError,
    txn_compare,
    txn_delete,
    txn_put,
    txn_range,
    txn_range_kvs,
)

KEY_ROOT = "/stackfleet/"
PLACEMENT_KEY = "placement"
LOCK_KEY = "lock"

# Cluster names become one path segment of a key: no "/", nothing invisible.
_CLUSTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def run_identity(pid: t.Optional[int] = None) -> str:
    """Who acts, as lock holders and placement records name it: the AWX job when there is
    one, else this host (with `pid`, the process that holds the lock for the whole run)."""
    job = os.environ.get("JOB_ID") or os.environ.get("AWX_JOB_ID")
    if job:
        return "awx-job-%s" % job
    return socket.gethostname() if pid is None else "%s:%d" % (socket.gethostname(), pid)


class StateError(Exception):
    """The state store refused an operation; the message says why."""


class RevisionConflict(StateError):
    def __init__(self, cluster: str, expected: int, current: int):
        self.expected, self.current = expected, current
        super().__init__("placement of cluster %r changed: expected revision %d, found %d "
                         "(someone else wrote it; read it again and re-plan)" % (cluster, expected, current))


class LockHeld(StateError):
    def __init__(self, cluster: str, lock: LockRecord, waited: float = 0.0):
        self.lock = lock
        waited_text = " after waiting %.0fs" % waited if waited else ""
        super().__init__("lock %r is held by %s since %s (lease %d, %ss left)%s" % (
            cluster, lock.holder, lock.since or "an unknown time", lock.lease_id, lock.ttl_left, waited_text))


class PlacementRecord(t.NamedTuple):
    placement: t.Dict[str, str]
    revision: int  # the key's mod_revision: pass it back as expected_revision
    spec_hash: str
    updated_at: str
    updated_by: str
    #: 0.4: placement key -> service -> [{container_port, protocol, host_ip, host_port}] (stack_plan's
    #: `ports`), so the next plan keeps the dynamic host ports; {} in records written before 0.4.
    ports: t.Dict[str, t.Dict[str, t.List[t.Dict[str, t.Any]]]] = {}


class LockRecord(t.NamedTuple):
    holder: str
    since: str
    lease_id: int
    ttl: int
    revision: int  # the key's create_revision: who got it first
    ttl_left: int = -1


# ---------------------------------------------------------------- keys

def check_cluster(cluster: str) -> str:
    if not isinstance(cluster, str) or not _CLUSTER_RE.fullmatch(cluster):
        raise StateError("cluster name %r cannot be an etcd key segment: use letters, digits, '.', '_', '-' "
                         "(at most 128, starting with a letter or digit)" % (cluster,))
    return cluster


def cluster_prefix(cluster: str) -> str:
    return KEY_ROOT + check_cluster(cluster) + "/"


def placement_key(cluster: str) -> str:
    return cluster_prefix(cluster) + PLACEMENT_KEY


def lock_key(cluster: str) -> str:
    return cluster_prefix(cluster) + LOCK_KEY


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017 (Python 3.8)


# ---------------------------------------------------------------- placement

def check_placement(placement: t.Any) -> t.Dict[str, str]:
    """A placement is a mapping placement key -> host name (docs/architecture.md)."""
    if not isinstance(placement, t.Mapping):
        raise StateError("placement must be a mapping of placement key to host name, got %s" % type(placement).__name__)
    bad = sorted(str(k) for k, v in placement.items() if not isinstance(k, str) or not isinstance(v, str))
    if bad:
        raise StateError("placement values must be host names (strings); not so for: %s" % ", ".join(bad))
    return {str(k): str(v) for k, v in placement.items()}


_PORT_FIELDS = ("container_port", "protocol", "host_ip", "host_port")


def check_ports(ports: t.Any) -> t.Dict[str, t.Dict[str, t.List[t.Dict[str, t.Any]]]]:
    """The host ports of a plan (stack_plan's `ports`): placement key -> service -> list of
    {container_port, protocol, host_ip, host_port}, ports as integers."""
    if ports is None:
        return {}
    if not isinstance(ports, t.Mapping):
        raise StateError("ports must be a mapping of placement key to service to a list of ports, got %s" % type(ports).__name__)
    result: t.Dict[str, t.Dict[str, t.List[t.Dict[str, t.Any]]]] = {}
    for key, services in ports.items():
        if not isinstance(services, t.Mapping):
            raise StateError("ports.%s must be a mapping of service to a list of ports" % key)
        for service, entries in services.items():
            if not isinstance(entries, (list, tuple)):
                raise StateError("ports.%s.%s must be a list of ports" % (key, service))
            checked = []
            for entry in entries:
                try:
                    checked.append({"container_port": int(entry["container_port"]), "protocol": str(entry.get("protocol") or "tcp"),
                                    "host_ip": str(entry.get("host_ip") or ""), "host_port": int(entry["host_port"])})
                except (KeyError, TypeError, ValueError, AttributeError):
                    raise StateError("ports.%s.%s: expected entries with integer container_port and host_port, got %r"
                                     % (key, service, entry))
            result.setdefault(str(key), {})[str(service)] = checked
    return result


def decode_placement(raw: bytes, revision: int) -> PlacementRecord:
    try:
        doc = json.loads(raw.decode("utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        placement = check_placement(doc.get("placement") or {})
        ports = check_ports(doc.get("ports"))  # absent in records written before 0.4
    except (ValueError, UnicodeDecodeError, StateError) as err:
        raise StateError("the placement record at revision %d is not valid stackfleet JSON: %s" % (revision, err))
    return PlacementRecord(placement, revision, str(doc.get("spec_hash") or ""),
                           str(doc.get("updated_at") or ""), str(doc.get("updated_by") or ""), ports)


def encode_placement(placement: t.Mapping[str, str], spec_hash: str, updated_at: str, updated_by: str,
                     ports: t.Optional[t.Mapping[str, t.Any]] = None) -> str:
    doc: t.Dict[str, t.Any] = {"placement": dict(placement), "spec_hash": spec_hash, "updated_at": updated_at,
                               "updated_by": updated_by}
    if ports:  # only when there are some: a record without published ports reads as before 0.4
        doc["ports"] = dict(ports)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def read_record(client: EtcdClient, cluster: str) -> t.Optional[PlacementRecord]:
    """The stored placement record, or None if the cluster has none yet."""
    kv = client.get(placement_key(cluster))[1]
    return None if kv is None else decode_placement(kv.value, kv.mod_revision)


def record_result(cluster: str, record: t.Optional[PlacementRecord]) -> t.Dict[str, t.Any]:
    """A record as modules return it (no record: empty placement, revision 0)."""
    if record is None:
        record = PlacementRecord({}, 0, "", "", "")
    return {"placement": record.placement, "revision": record.revision, "updated_at": record.updated_at,
            "updated_by": record.updated_by, "spec_hash": record.spec_hash, "ports": record.ports, "key": placement_key(cluster)}


def read_placement(client: EtcdClient, cluster: str) -> t.Tuple[t.Dict[str, str], int]:
    """(placement, revision); ({}, 0) when nothing is stored yet."""
    record = read_record(client, cluster)
    return ({}, 0) if record is None else (record.placement, record.revision)


def write_placement(client: EtcdClient, cluster: str, placement: t.Mapping[str, str],
                    expected_revision: t.Optional[int] = None, spec_hash: str = "", updated_by: str = "",
                    check_mode: bool = False, ports: t.Optional[t.Mapping[str, t.Any]] = None
                    ) -> t.Tuple[PlacementRecord, t.Optional[PlacementRecord], bool]:
    """Store `placement` with compare-and-swap; returns (new record, previous record, changed).

    `expected_revision` (0 = "must not exist yet") makes the write optimistic:
    RevisionConflict if the stored revision differs. Without it the write still
    cannot lose a concurrent update between our read and our write. Writing the
    same placement, spec hash and ports again changes nothing (updated_at stays).
    """
    placement = check_placement(placement)
    ports = check_ports(ports)
    key = placement_key(cluster)
    previous = read_record(client, cluster)
    current_rev = previous.revision if previous else 0
    if expected_revision is not None and expected_revision != current_rev:
        raise RevisionConflict(cluster, expected_revision, current_rev)
    if previous and previous.placement == placement and previous.spec_hash == (spec_hash or "") and previous.ports == ports:
        return previous, previous, False
    updated_at = utc_now()
    if check_mode:
        return PlacementRecord(placement, current_rev, spec_hash or "", updated_at, updated_by, ports), previous, True
    value = encode_placement(placement, spec_hash or "", updated_at, updated_by, ports)
    ok, revision, responses = client.txn([txn_compare(key, "MOD", current_rev)], [txn_put(key, value)], [txn_range(key)])
    if not ok:
        kvs = txn_range_kvs(responses[0]) if responses else []
        raise RevisionConflict(cluster, current_rev, kvs[0].mod_revision if kvs else 0)
    return PlacementRecord(placement, revision, spec_hash or "", updated_at, updated_by, ports), previous, True


# ---------------------------------------------------------------- lock

def decode_lock(raw: bytes, revision: int, lease: int) -> LockRecord:
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        doc = None
    if not isinstance(doc, dict):  # written by something else: still show who
        return LockRecord(raw.decode("utf-8", "replace")[:200], "", lease, 0, revision)
    return LockRecord(str(doc.get("holder") or ""), str(doc.get("since") or ""), lease,
                      int(doc.get("ttl") or 0), revision)


def read_lock(client: EtcdClient, cluster: str) -> t.Optional[LockRecord]:
    """The current lock holder with its lease's remaining seconds, or None."""
    kv = client.get(lock_key(cluster))[1]
    if kv is None:
        return None
    lock = decode_lock(kv.value, kv.create_revision, kv.lease)
    ttl_left = client.lease_timetolive(kv.lease) if kv.lease else -1
    return lock._replace(ttl_left=ttl_left)


def acquire_lock(client: EtcdClient, cluster: str, holder: str, ttl: int, wait_timeout: float = 0.0,
                 poll: float = 0.5, check_mode: bool = False) -> t.Tuple[LockRecord, bool]:
    """Take the cluster's lock (etcd's lock recipe: create-if-absent on a leased key).

    Returns (lock, changed). The same holder taking it again refreshes the lease
    (changed=False). Another holder: wait up to `wait_timeout` seconds, then
    LockHeld naming the holder. If this process dies, the lease expires after
    `ttl` seconds and the key goes with it.
    """
    if not holder:
        raise StateError("a lock holder name is required")
    key = lock_key(cluster)
    started = time.monotonic()
    deadline = started + max(wait_timeout, 0.0)
    lease_id, granted = 0, 0
    try:
        while True:
            current = read_lock(client, cluster)
            if current is not None and current.holder == holder:
                if check_mode or client.lease_keepalive(current.lease_id) > 0:
                    return current, False
                continue  # our lease just ran out: the key is gone, take it anew
            if current is None:
                if check_mode:
                    return LockRecord(holder, utc_now(), 0, ttl, 0, ttl), True
                if not lease_id:
                    lease_id, granted = client.lease_grant(ttl)
                value = json.dumps({"holder": holder, "since": utc_now(), "lease_id": lease_id, "ttl": granted},
                                   sort_keys=True)
                ok, revision = client.txn([txn_compare(key, "CREATE", 0)], [txn_put(key, value, lease_id)],
                                          [txn_range(key)])[:2]
                if ok:
                    lease_id, lease_taken = 0, lease_id  # ownership moves to the key
                    return decode_lock(value.encode(), revision, lease_taken)._replace(ttl_left=granted), True
                continue  # lost the race: read the winner
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockHeld(cluster, current, time.monotonic() - started)
            time.sleep(min(poll, left))
    finally:
        if lease_id:  # granted but not attached: do not leave it to expire on its own
            try:
                client.lease_revoke(lease_id)
            except EtcdError:
                pass


def release_lock(client: EtcdClient, cluster: str, holder: str, force: bool = False,
                 check_mode: bool = False) -> t.Tuple[t.Optional[LockRecord], bool]:
    """Give the lock back. Returns (the released lock or None, changed).

    A lock held by someone else is only broken with `force`.
    """
    current = read_lock(client, cluster)
    if current is None:
        return None, False
    if current.holder != holder and not force:
        raise LockHeld(cluster, current)
    if check_mode:
        return current, True
    key = lock_key(cluster)
    ok = client.txn([txn_compare(key, "CREATE", current.revision)], [txn_delete(key)])[0]
    if current.lease_id:
        client.lease_revoke(current.lease_id)
    return current, ok

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cluster state stackfleet keeps in etcd: the placement record and the run lock.

Key layout (documented in docs/etcd.md; other tools may read it):

    /stackfleet/<cluster>/placement   JSON {placement, spec_hash, updated_at, updated_by[, ports]}
                                      or, for a record over SHARD_THRESHOLD bytes (0.5), a manifest
                                      JSON {sharded: 1, chunks: [sha256, ...], bytes, sha256, spec_hash,
                                      updated_at, updated_by, placement: "<marker>"}
    /stackfleet/<cluster>/placement/chunks/<sha256>   one piece of a sharded record's JSON
    /stackfleet/<cluster>/lock        JSON {holder, since, lease_id, ttl}, attached to a lease

Everything read back is data someone else wrote: it is parsed defensively and
never evaluated. Callers that hand it to Ansible templates must treat it as
untrusted.
"""

from __future__ import annotations

import datetime
import hashlib
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
CHUNKS_SEGMENT = "placement/chunks/"
LOCK_KEY = "lock"

#: A record whose JSON is larger than this many bytes is sharded. etcd refuses any request over
#: its --max-request-bytes (1.5 MiB by default); 1 MiB leaves room for the key and the request.
SHARD_THRESHOLD = 1024 * 1024
#: The shard format this code writes (the manifest's "sharded" field) and the newest it reads.
SHARD_FORMAT = 1
#: At most this many chunks (100 MiB of JSON at 1 MiB each): the manifest's compare-and-swap
#: checks that every chunk exists, and etcd allows 128 operations per txn (--max-txn-ops).
MAX_CHUNKS = 100
#: What a manifest's "placement" holds: readers before 0.5 fail on it ("placement must be a
#: mapping") instead of reading a sharded record as an empty placement.
SHARDED_MARKER = "sharded record: read it with stackfleet.cluster 0.5 or later (docs/etcd.md)"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_WRITE_ATTEMPTS = 3
_DELETE_BATCH = 100  # keys per txn when collecting unreferenced chunks (etcd: 128 ops per txn)

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
    #: 0.5: how many chunk keys the record is stored in; 0 = the one-key format.
    chunks: int = 0


class ShardManifest(t.NamedTuple):
    """What the placement key holds when the record is sharded (docs/etcd.md, "Sharded records")."""
    chunks: t.List[str]  # sha256 of each piece, in order
    size: int  # bytes of the whole record's JSON
    sha256: str  # of the whole record's JSON
    spec_hash: str
    updated_at: str
    updated_by: str
    revision: int  # the placement key's mod_revision


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


def chunk_prefix(cluster: str) -> str:
    return cluster_prefix(cluster) + CHUNKS_SEGMENT


def chunk_key(cluster: str, chunk_id: str) -> str:
    return chunk_prefix(cluster) + chunk_id


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


def _load_object(raw: bytes, revision: int) -> t.Dict[str, t.Any]:
    try:
        doc = json.loads(raw.decode("utf-8"))
        if not isinstance(doc, dict):
            raise ValueError("not an object")
    except (ValueError, UnicodeDecodeError) as err:
        raise StateError("the placement record at revision %d is not valid stackfleet JSON: %s" % (revision, err))
    return doc


def _record_from_doc(doc: t.Mapping[str, t.Any], revision: int, chunks: int = 0) -> PlacementRecord:
    try:
        placement = check_placement(doc.get("placement") or {})
        ports = check_ports(doc.get("ports"))  # absent in records written before 0.4
    except StateError as err:
        raise StateError("the placement record at revision %d is not valid stackfleet JSON: %s" % (revision, err))
    return PlacementRecord(placement, revision, str(doc.get("spec_hash") or ""),
                           str(doc.get("updated_at") or ""), str(doc.get("updated_by") or ""), ports, chunks)


def decode_placement(raw: bytes, revision: int) -> PlacementRecord:
    """A one-key record (the format of every record up to 1 MiB)."""
    return _record_from_doc(_load_object(raw, revision), revision)


def _manifest_from_doc(doc: t.Mapping[str, t.Any], revision: int) -> ShardManifest:
    where = "the placement manifest at revision %d" % revision
    version = doc.get("sharded")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise StateError("%s: sharded must be a format number, got %r" % (where, version))
    if version > SHARD_FORMAT:
        raise StateError("%s has shard format %d; this stackfleet reads up to %d: upgrade the collection"
                         % (where, version, SHARD_FORMAT))
    chunks = doc.get("chunks")
    if not isinstance(chunks, list) or not chunks or not all(isinstance(c, str) and _SHA256_RE.fullmatch(c) for c in chunks):
        raise StateError("%s: chunks must be a non-empty list of sha256 hex digests, got %r" % (where, chunks))
    size, digest = doc.get("bytes"), doc.get("sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise StateError("%s: bytes must be a positive integer, got %r" % (where, size))
    if not isinstance(digest, str) or not _SHA256_RE.fullmatch(digest):
        raise StateError("%s: sha256 must be a sha256 hex digest, got %r" % (where, digest))
    return ShardManifest(list(chunks), size, digest, str(doc.get("spec_hash") or ""), str(doc.get("updated_at") or ""),
                         str(doc.get("updated_by") or ""), revision)


def decode_stored(raw: bytes, revision: int) -> t.Union[PlacementRecord, ShardManifest]:
    """What the placement key holds: a whole record (one-key format) or a shard manifest."""
    doc = _load_object(raw, revision)
    if "sharded" in doc:
        return _manifest_from_doc(doc, revision)
    return _record_from_doc(doc, revision)


def split_chunks(data: bytes, chunk_bytes: int = SHARD_THRESHOLD) -> t.List[t.Tuple[str, bytes]]:
    """`data` cut into pieces of at most `chunk_bytes`, each with its sha256 (its chunk id)."""
    if chunk_bytes < 1:
        raise StateError("chunk size must be positive, got %r" % (chunk_bytes,))
    return [(hashlib.sha256(data[i:i + chunk_bytes]).hexdigest(), data[i:i + chunk_bytes])
            for i in range(0, len(data), chunk_bytes)]


def encode_manifest(chunk_ids: t.Sequence[str], data: bytes, spec_hash: str, updated_at: str, updated_by: str) -> str:
    doc = {"sharded": SHARD_FORMAT, "chunks": list(chunk_ids), "bytes": len(data),
           "sha256": hashlib.sha256(data).hexdigest(), "spec_hash": spec_hash, "updated_at": updated_at,
           "updated_by": updated_by, "placement": SHARDED_MARKER}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def encode_record(placement: t.Mapping[str, str], spec_hash: str, updated_at: str, updated_by: str,
                  ports: t.Optional[t.Mapping[str, t.Any]] = None, shard_threshold: int = SHARD_THRESHOLD
                  ) -> t.Tuple[str, t.List[t.Tuple[str, bytes]]]:
    """(value of the placement key, chunks to write first as [(sha256, bytes)]).

    Up to `shard_threshold` bytes: the one-key JSON of encode_placement, byte for byte, and no
    chunks. Above: that same JSON cut into chunks of `shard_threshold` bytes and a manifest.
    """
    value = encode_placement(placement, spec_hash, updated_at, updated_by, ports)
    data = value.encode("utf-8")
    if len(data) <= shard_threshold:
        return value, []
    chunks = split_chunks(data, shard_threshold)
    if len(chunks) > MAX_CHUNKS:
        raise StateError("the placement record is %d bytes: %d chunks of %d bytes, more than the %d a compare-and-swap "
                         "can check" % (len(data), len(chunks), shard_threshold, MAX_CHUNKS))
    return encode_manifest([cid for cid, _piece in chunks], data, spec_hash, updated_at, updated_by), chunks


def join_chunks(manifest: ShardManifest, pieces: t.Mapping[str, t.Optional[bytes]]) -> PlacementRecord:
    """The record a manifest describes, from its chunks' values (None: the chunk key is missing).

    Every piece must hash to its id and the whole to the manifest's sha256 and size; the
    record's spec_hash and updated_at/by must be the manifest's.
    """
    where = "the placement record at revision %d" % manifest.revision
    parts = []
    for index, chunk_id in enumerate(manifest.chunks):
        piece = pieces.get(chunk_id)
        if piece is None:
            raise StateError("%s: chunk %d (%s) is missing" % (where, index, chunk_id))
        if hashlib.sha256(piece).hexdigest() != chunk_id:
            raise StateError("%s: chunk %d (%s) does not match its sha256" % (where, index, chunk_id))
        parts.append(piece)
    data = b"".join(parts)
    if len(data) != manifest.size or hashlib.sha256(data).hexdigest() != manifest.sha256:
        raise StateError("%s: its %d chunks make %d bytes with another sha256 than the manifest's (%d bytes, %s)"
                         % (where, len(parts), len(data), manifest.size, manifest.sha256))
    record = _record_from_doc(_load_object(data, manifest.revision), manifest.revision, len(manifest.chunks))
    if (record.spec_hash, record.updated_at, record.updated_by) != (manifest.spec_hash, manifest.updated_at, manifest.updated_by):
        raise StateError("%s: its chunks name spec_hash/updated_at/updated_by %r, the manifest %r"
                         % (where, (record.spec_hash, record.updated_at, record.updated_by),
                            (manifest.spec_hash, manifest.updated_at, manifest.updated_by)))
    return record


def encode_placement(placement: t.Mapping[str, str], spec_hash: str, updated_at: str, updated_by: str,
                     ports: t.Optional[t.Mapping[str, t.Any]] = None) -> str:
    doc: t.Dict[str, t.Any] = {"placement": dict(placement), "spec_hash": spec_hash, "updated_at": updated_at,
                               "updated_by": updated_by}
    if ports:  # only when there are some: a record without published ports reads as before 0.4
        doc["ports"] = dict(ports)
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def read_record(client: EtcdClient, cluster: str) -> t.Optional[PlacementRecord]:
    """The stored placement record, or None if the cluster has none yet.

    A sharded record's chunks are read at the store revision the manifest was read at, so
    the record is the one the manifest names even while another writer replaces it.
    """
    key = placement_key(cluster)
    attempt = 0
    while True:
        attempt += 1
        store_revision, kv = client.get(key)
        if kv is None:
            return None
        stored = decode_stored(kv.value, kv.mod_revision)
        if isinstance(stored, PlacementRecord):
            return stored
        try:
            pieces = {chunk_id: _chunk_value(client.get(chunk_key(cluster, chunk_id), revision=store_revision)[1])
                      for chunk_id in dict.fromkeys(stored.chunks)}
        except EtcdError as err:
            if "compacted" in err.message and attempt < _WRITE_ATTEMPTS:
                continue  # etcd compacted past our read: read the manifest again
            raise
        return join_chunks(stored, pieces)


def _chunk_value(kv: t.Any) -> t.Optional[bytes]:
    return None if kv is None else kv.value


def collect_garbage(client: EtcdClient, cluster: str) -> int:
    """Delete the chunk keys the current manifest does not name; returns how many went.

    Each delete is guarded by the placement key's mod_revision, so a manifest written in the
    meantime stops it. A writer whose fresh chunks go this way finds them missing in its own
    compare-and-swap and writes them again. A placement key that cannot be read keeps all.
    """
    key = placement_key(cluster)
    kv = client.get(key)[1]
    guard = kv.mod_revision if kv is not None else 0
    referenced: t.Set[str] = set()
    if kv is not None:
        try:
            stored = decode_stored(kv.value, kv.mod_revision)
        except StateError:
            return 0
        if isinstance(stored, ShardManifest):
            referenced = set(stored.chunks)
    prefix = chunk_prefix(cluster)
    stale = [item.key.decode("utf-8", "replace") for item in client.range(prefix, prefix=True, keys_only=True)[1]]
    stale = [name for name in stale if name[len(prefix):] not in referenced]
    deleted = 0
    for start in range(0, len(stale), _DELETE_BATCH):
        batch = stale[start:start + _DELETE_BATCH]
        if not client.txn([txn_compare(key, "MOD", guard)], [txn_delete(name) for name in batch])[0]:
            break  # a new manifest: its writer collects
        deleted += len(batch)
    return deleted


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
                    check_mode: bool = False, ports: t.Optional[t.Mapping[str, t.Any]] = None,
                    shard_threshold: int = SHARD_THRESHOLD
                    ) -> t.Tuple[PlacementRecord, t.Optional[PlacementRecord], bool]:
    """Store `placement` with compare-and-swap; returns (new record, previous record, changed).

    A record over `shard_threshold` bytes is sharded (encode_record): its chunks are written
    first, then the manifest with the same compare-and-swap (which also checks that every chunk
    it names exists); the previous record's chunks are deleted only after that. A write
    interrupted before the manifest leaves the previous record as it was.

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
    value, chunks = encode_record(placement, spec_hash or "", updated_at, updated_by, ports, shard_threshold)
    if check_mode:
        return (PlacementRecord(placement, current_rev, spec_hash or "", updated_at, updated_by, ports, len(chunks)),
                previous, True)
    unique = dict(chunks)  # a piece that occurs twice is one key
    compare = [txn_compare(key, "MOD", current_rev)]
    compare += [txn_compare(chunk_key(cluster, chunk_id), "VERSION", 0, "GREATER") for chunk_id in unique]
    for attempt in range(1, _WRITE_ATTEMPTS + 1):
        for chunk_id, piece in unique.items():  # chunks first: the manifest only ever names chunks that exist
            client.put(chunk_key(cluster, chunk_id), piece)
        ok, revision, responses = client.txn(compare, [txn_put(key, value)], [txn_range(key)])
        if ok:
            break
        kvs = txn_range_kvs(responses[0]) if responses else []
        found = kvs[0].mod_revision if kvs else 0
        if found != current_rev or attempt == _WRITE_ATTEMPTS:
            if unique:
                collect_garbage(client, cluster)  # ours, unless the winner's manifest names the same pieces
            if found != current_rev:
                raise RevisionConflict(cluster, current_rev, found)
            raise StateError("placement of cluster %r: the record's chunks kept disappearing before its manifest could "
                             "be written (%d attempts); another writer is collecting them" % (cluster, attempt))
        # the record is unchanged but a chunk went (another writer collected it): write them again
    record = PlacementRecord(placement, revision, spec_hash or "", updated_at, updated_by, ports, len(chunks))
    if chunks or (previous is not None and previous.chunks):
        collect_garbage(client, cluster)  # the old record's chunks, after the new manifest is in
    return record, previous, True


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

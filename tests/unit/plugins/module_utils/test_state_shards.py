# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sharded placement records: encoding and decoding (pure, no etcd).

The etcd side (compare-and-swap, reads at the manifest's revision, an interrupted write) is
tests/integration/test_state_shards.py against a real etcd.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _state
from ansible_collections.stackfleet.cluster.plugins.module_utils._state import StateError

T = "2026-12-03T10:00:00Z"


def big_placement(n: int):
    return {"web-%d" % i: "host-%04d" % (i % 997) for i in range(n)}


def test_small_record_is_the_one_key_format_byte_for_byte():
    placement = {"lamp-1": "node-1", "db-1": "node-2"}
    ports = {"lamp-1": {"web": [{"container_port": 80, "protocol": "tcp", "host_ip": "", "host_port": 20001}]}}
    value, chunks = _state.encode_record(placement, "abc", T, "ctl", ports)
    assert chunks == []
    assert value == _state.encode_placement(placement, "abc", T, "ctl", ports)
    record = _state.decode_stored(value.encode(), 5)
    assert record == _state.PlacementRecord(placement, 5, "abc", T, "ctl", _state.check_ports(ports), 0)


def test_record_at_the_threshold_stays_one_key_and_one_byte_more_is_sharded():
    value = _state.encode_placement({"a-1": "h"}, "s", T, "me")
    size = len(value.encode())
    assert _state.encode_record({"a-1": "h"}, "s", T, "me", shard_threshold=size)[1] == []
    manifest, chunks = _state.encode_record({"a-1": "h"}, "s", T, "me", shard_threshold=size - 1)
    assert len(chunks) == 2 and len(chunks[1][1]) == 1
    assert json.loads(manifest)["sharded"] == _state.SHARD_FORMAT


def test_sharded_record_round_trip():
    placement = big_placement(5000)
    manifest_value, chunks = _state.encode_record(placement, "spec", T, "awx-job-7", shard_threshold=10000)
    whole = _state.encode_placement(placement, "spec", T, "awx-job-7").encode()
    assert b"".join(piece for _cid, piece in chunks) == whole
    assert all(cid == hashlib.sha256(piece).hexdigest() and len(piece) <= 10000 for cid, piece in chunks)
    doc = json.loads(manifest_value)
    assert doc["chunks"] == [cid for cid, _piece in chunks] and doc["bytes"] == len(whole)
    assert doc["sha256"] == hashlib.sha256(whole).hexdigest() and doc["spec_hash"] == "spec"
    assert doc["placement"] == _state.SHARDED_MARKER
    assert len(manifest_value) < 70 * len(chunks) + 500  # a small value: ids and metadata
    manifest = _state.decode_stored(manifest_value.encode(), 42)
    assert isinstance(manifest, _state.ShardManifest) and manifest.revision == 42
    record = _state.join_chunks(manifest, dict(chunks))
    assert record == _state.PlacementRecord(placement, 42, "spec", T, "awx-job-7", {}, len(chunks))


def test_readers_before_sharding_fail_on_a_manifest_rather_than_read_no_placement():
    manifest_value, _chunks = _state.encode_record(big_placement(300), "s", T, "me", shard_threshold=1000)
    with pytest.raises(StateError, match="placement must be a mapping"):
        _state.decode_placement(manifest_value.encode(), 3)  # what 0.4 does with the key


@pytest.mark.parametrize("mangle, message", [
    (lambda pieces, ids: pieces.pop(ids[1]), r"chunk 1 \(\w+\) is missing"),
    (lambda pieces, ids: pieces.__setitem__(ids[0], pieces[ids[0]][:-1] + b" "), r"chunk 0 \(\w+\) does not match its sha256"),
])
def test_join_refuses_missing_or_altered_chunks(mangle, message):
    manifest_value, chunks = _state.encode_record(big_placement(300), "s", T, "me", shard_threshold=1000)
    pieces = dict(chunks)
    mangle(pieces, [cid for cid, _piece in chunks])
    with pytest.raises(StateError, match="revision 9: " + message):
        _state.join_chunks(_state.decode_stored(manifest_value.encode(), 9), pieces)


def test_join_refuses_chunks_of_another_record_and_metadata_that_disagrees():
    value_a, chunks_a = _state.encode_record(big_placement(300), "s", T, "me", shard_threshold=1000)
    value_b, chunks_b = _state.encode_record(big_placement(301), "s", T, "me", shard_threshold=1000)
    doc = json.loads(value_a)
    doc["chunks"] = [cid for cid, _piece in chunks_b]
    with pytest.raises(StateError, match="another sha256 than the manifest's"):
        _state.join_chunks(_state.decode_stored(json.dumps(doc).encode(), 4), dict(chunks_b))
    doc = json.loads(value_a)
    doc["updated_by"] = "someone-else"
    with pytest.raises(StateError, match="the manifest"):
        _state.join_chunks(_state.decode_stored(json.dumps(doc).encode(), 4), dict(chunks_a))


@pytest.mark.parametrize("field, value, message", [
    ("sharded", 2, "shard format 2; this stackfleet reads up to 1: upgrade"),
    ("sharded", "1", "sharded must be a format number"),
    ("chunks", [], "chunks must be a non-empty list"),
    ("chunks", ["../lock"], "chunks must be a non-empty list of sha256"),
    ("bytes", -1, "bytes must be a positive integer"),
    ("sha256", "xyz", "sha256 must be a sha256 hex digest"),
])
def test_malformed_manifests_name_the_field(field, value, message):
    manifest_value, _chunks = _state.encode_record(big_placement(300), "s", T, "me", shard_threshold=1000)
    doc = json.loads(manifest_value)
    doc[field] = value
    with pytest.raises(StateError, match="the placement manifest at revision 6.*" + message):
        _state.decode_stored(json.dumps(doc).encode(), 6)


def test_too_many_chunks_is_refused_before_anything_is_written():
    with pytest.raises(StateError, match="more than the 100 a compare-and-swap can check"):
        _state.encode_record(big_placement(3000), "s", T, "me", shard_threshold=500)


def test_chunk_keys_live_under_the_placement_key():
    assert _state.chunk_key("prod", "ab" * 32) == "/stackfleet/prod/placement/chunks/" + "ab" * 32
    assert _state.chunk_prefix("prod") == "/stackfleet/prod/placement/chunks/"


def test_100000_instance_record_is_sharded_at_the_default_threshold():
    placement = {"svc%02d-%d" % (i % 61, i): "node-%04d" % (i % 5000) for i in range(100000)}
    manifest_value, chunks = _state.encode_record(placement, "s" * 64, T, "me")
    assert len(chunks) >= 2 and all(len(piece) <= _state.SHARD_THRESHOLD for _cid, piece in chunks)
    assert len(manifest_value) < 2000
    assert _state.join_chunks(_state.decode_stored(manifest_value.encode(), 1), dict(chunks)).placement == placement

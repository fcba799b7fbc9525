# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Sharded placement records against a REAL etcd (3.4, default limits) on loopback.

One etcd process on 127.0.0.1 (free ports, a temporary data directory), started and stopped by
this module; no lab, no root. A 100,000-instance record is far over etcd's default
--max-request-bytes (1.5 MiB): it is written as content-addressed chunks plus a manifest with
compare-and-swap, read back at the manifest's revision, refused to a conflicting writer, and
survives a write interrupted between chunks and manifest.

    .venv/bin/pytest tests/integration/test_state_shards.py -v
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _etcd, _state

ETCD = shutil.which("etcd") or "/usr/bin/etcd"
pytestmark = pytest.mark.skipif(not os.path.exists(ETCD), reason="needs etcd (apt-get install etcd-server)")
CLUSTER = "shards"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def etcd_url():
    data = tempfile.mkdtemp(prefix="sf-shards-etcd-")
    client_url, peer_url = "http://127.0.0.1:%d" % free_port(), "http://127.0.0.1:%d" % free_port()
    with open(os.path.join(data, "etcd.log"), "w") as log:
        proc = subprocess.Popen([ETCD, "--name", "shards", "--data-dir", os.path.join(data, "data"),
                                 "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                                 "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                                 "--initial-cluster", "shards=" + peer_url], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(client_url + "/health", timeout=2) as answer:
                    if json.load(answer).get("health") == "true":
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "etcd did not start: see %s/etcd.log" % data
            time.sleep(0.2)
        yield client_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def client(etcd_url):
    client = _etcd.EtcdClient([etcd_url], timeout=30)
    client.delete(_state.cluster_prefix(CLUSTER), prefix=True)
    return client


def placement_of(n: int, generation: int = 0):
    """n instances of 61 services on 5,000 hosts (the issue's fleet at 100,000 instances)."""
    return {"svc%02d-%d" % (i % 61, i): "node-%04d" % ((i + generation) % 5000) for i in range(n)}


def chunk_ids(client) -> set:
    prefix = _state.chunk_prefix(CLUSTER)
    return {kv.key.decode()[len(prefix):] for kv in client.range(prefix, prefix=True, keys_only=True)[1]}


def test_a_100000_instance_record_does_not_fit_one_request(client):
    with pytest.raises(_etcd.EtcdError, match="too large|larger than max"):
        _state.write_placement(client, CLUSTER, placement_of(100000), shard_threshold=1 << 30)
    assert _state.read_record(client, CLUSTER) is None


def test_100000_instances_written_and_read_with_compare_and_swap(client):
    placement = placement_of(100000)
    record, previous, changed = _state.write_placement(client, CLUSTER, placement, expected_revision=0,
                                                       spec_hash="a" * 64, updated_by="writer-1")
    assert changed and previous is None and record.chunks >= 2
    stored = client.get(_state.placement_key(CLUSTER))[1]
    manifest = json.loads(stored.value)
    assert stored.mod_revision == record.revision and len(stored.value) < 2000
    assert manifest["sharded"] == 1 and len(manifest["chunks"]) == record.chunks
    assert chunk_ids(client) == set(manifest["chunks"])
    assert _state.read_record(client, CLUSTER) == record

    # the same record again: nothing written
    again, _previous, changed = _state.write_placement(client, CLUSTER, placement, expected_revision=record.revision,
                                                       spec_hash="a" * 64, updated_by="writer-1")
    assert not changed and again.revision == record.revision

    # a new plan: a new manifest, and only its chunks are left
    moved = placement_of(100000, generation=1)
    second, previous, changed = _state.write_placement(client, CLUSTER, moved, expected_revision=record.revision,
                                                       spec_hash="b" * 64, updated_by="writer-1")
    assert changed and previous == record and second.revision > record.revision
    assert chunk_ids(client) == set(json.loads(client.get(_state.placement_key(CLUSTER))[1].value)["chunks"])
    assert _state.read_record(client, CLUSTER).placement == moved

    # the record shrinks below the threshold: back to one key, every chunk gone
    small, _previous, _changed = _state.write_placement(client, CLUSTER, {"web-1": "node-0001"},
                                                        expected_revision=second.revision)
    assert small.chunks == 0 and chunk_ids(client) == set()
    raw = client.get(_state.placement_key(CLUSTER))[1].value.decode()
    assert raw == _state.encode_placement({"web-1": "node-0001"}, "", small.updated_at, "")


def test_a_conflicting_writer_is_refused_and_leaves_no_chunks(client):
    first = _state.write_placement(client, CLUSTER, placement_of(100000), expected_revision=0)[0]
    winner = _state.write_placement(client, CLUSTER, placement_of(100000, 1), expected_revision=first.revision)[0]
    with pytest.raises(_state.RevisionConflict) as conflict:  # planned from `first`, which is gone
        _state.write_placement(client, CLUSTER, placement_of(100000, 2), expected_revision=first.revision)
    assert (conflict.value.expected, conflict.value.current) == (first.revision, winner.revision)
    assert _state.read_record(client, CLUSTER) == winner
    assert chunk_ids(client) == set(json.loads(client.get(_state.placement_key(CLUSTER))[1].value)["chunks"])


class RacingClient(_etcd.EtcdClient):
    """A real client that lets another writer in at one chosen moment (`hook` on a request path)."""

    def __init__(self, *args, hook_path: str, hook, **kwargs):
        super().__init__(*args, **kwargs)
        self.hook_path, self.hook = hook_path, hook

    def request(self, path, *args, **kwargs):
        if path == self.hook_path and self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return super().request(path, *args, **kwargs)


def test_a_writer_overtaken_between_its_chunks_and_its_manifest_gets_revision_conflict(client, etcd_url):
    first = _state.write_placement(client, CLUSTER, placement_of(100000), expected_revision=0)[0]
    rival = {}

    def other_writer():  # writes while our chunks are already in, before our manifest's txn
        rival["record"] = _state.write_placement(client, CLUSTER, placement_of(100000, 3))[0]

    racing = RacingClient([etcd_url], timeout=30, hook_path="/kv/txn", hook=other_writer)
    with pytest.raises(_state.RevisionConflict) as conflict:  # no expected revision: still compare-and-swap
        _state.write_placement(racing, CLUSTER, placement_of(100000, 4))
    assert (conflict.value.expected, conflict.value.current) == (first.revision, rival["record"].revision)
    assert _state.read_record(client, CLUSTER).placement == placement_of(100000, 3)
    assert chunk_ids(client) == set(json.loads(client.get(_state.placement_key(CLUSTER))[1].value)["chunks"])


class Interrupted(Exception):
    pass


def test_an_interrupted_write_leaves_the_old_record_readable(client, etcd_url):
    old = _state.write_placement(client, CLUSTER, placement_of(100000), expected_revision=0)[0]
    old_chunks = chunk_ids(client)

    def die():
        raise Interrupted("the controller died after writing the chunks")

    dying = RacingClient([etcd_url], timeout=30, hook_path="/kv/txn", hook=die)
    with pytest.raises(Interrupted):
        _state.write_placement(dying, CLUSTER, placement_of(100000, 5), expected_revision=old.revision)
    assert chunk_ids(client) > old_chunks  # the new chunks are there, unreferenced
    assert _state.read_record(client, CLUSTER) == old
    # the next write collects them
    new = _state.write_placement(client, CLUSTER, placement_of(100000, 6), expected_revision=old.revision)[0]
    assert chunk_ids(client) == set(json.loads(client.get(_state.placement_key(CLUSTER))[1].value)["chunks"])
    assert _state.read_record(client, CLUSTER) == new


def test_a_reader_sees_the_record_its_manifest_names_while_a_writer_replaces_it(client, etcd_url):
    old = _state.write_placement(client, CLUSTER, placement_of(100000), expected_revision=0)[0]
    replaced = {}

    def writer_replaces_and_collects():  # between the reader's manifest read and its first chunk read
        replaced["record"] = _state.write_placement(client, CLUSTER, placement_of(100000, 7))[0]
        assert not chunk_ids(client) & set(json.loads(_old_manifest["value"])["chunks"])

    _old_manifest = {"value": client.get(_state.placement_key(CLUSTER))[1].value}
    reader = RacingClient([etcd_url], timeout=30, hook_path="/kv/range", hook=None)
    calls = {"n": 0}
    original = reader.request

    def second_range_replaces(path, *args, **kwargs):
        if path == "/kv/range":
            calls["n"] += 1
            if calls["n"] == 2:  # the first chunk read
                writer_replaces_and_collects()
        return original(path, *args, **kwargs)

    reader.request = second_range_replaces
    assert _state.read_record(reader, CLUSTER) == old  # the old chunks, read at the manifest's revision
    assert _state.read_record(client, CLUSTER) == replaced["record"]


def test_a_chunk_collected_by_another_writer_is_written_again(client, etcd_url):
    base = _state.write_placement(client, CLUSTER, placement_of(100000), expected_revision=0)[0]
    racing = RacingClient([etcd_url], timeout=30, hook_path="/kv/txn",
                          hook=lambda: client.delete(_state.chunk_prefix(CLUSTER), prefix=True))
    record = _state.write_placement(racing, CLUSTER, placement_of(100000, 8), expected_revision=base.revision)[0]
    assert _state.read_record(client, CLUSTER) == record

# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Key layout and record (de)coding of the state store (pure, no etcd)."""

from __future__ import annotations

import json

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _state
from ansible_collections.stackfleet.cluster.plugins.module_utils._state import StateError


def test_key_layout():
    assert _state.placement_key("prod") == "/stackfleet/prod/placement"
    assert _state.lock_key("prod-eu.1") == "/stackfleet/prod-eu.1/lock"
    assert _state.cluster_prefix("prod") == "/stackfleet/prod/"


@pytest.mark.parametrize("name", ["", "a/b", "../x", "-x", "x y", "a\n", "x" * 129, None])
def test_cluster_names_that_are_not_one_key_segment(name):
    with pytest.raises(StateError, match="key segment"):
        _state.cluster_prefix(name)


def test_placement_round_trip():
    raw = _state.encode_placement({"lamp-1": "node-1"}, "abc", "2025-01-01T00:00:00Z", "ctl")
    assert json.loads(raw) == {"placement": {"lamp-1": "node-1"}, "spec_hash": "abc",
                               "updated_at": "2025-01-01T00:00:00Z", "updated_by": "ctl"}
    record = _state.decode_placement(raw.encode(), 7)
    assert record == _state.PlacementRecord({"lamp-1": "node-1"}, 7, "abc", "2025-01-01T00:00:00Z", "ctl")


@pytest.mark.parametrize("raw", [b"not json", b"[1]", b'{"placement": {"a": 1}}', b"\xff\xfe"])
def test_placement_garbage_is_an_error_not_a_crash(raw):
    with pytest.raises(StateError, match="revision 3"):
        _state.decode_placement(raw, 3)


def test_check_placement():
    assert _state.check_placement({"a-1": "h1"}) == {"a-1": "h1"}
    with pytest.raises(StateError, match="a-2"):
        _state.check_placement({"a-1": "h1", "a-2": ["h2"]})
    with pytest.raises(StateError, match="mapping"):
        _state.check_placement(["a-1"])


def test_lock_value_decoding():
    lock = _state.decode_lock(b'{"holder": "ctl:42", "since": "2025-01-01T00:00:00Z", "lease_id": 9, "ttl": 30}', 5, 9)
    assert (lock.holder, lock.since, lock.lease_id, lock.ttl, lock.revision) == ("ctl:42", "2025-01-01T00:00:00Z", 9, 30, 5)
    foreign = _state.decode_lock(b"someone else's lock", 5, 0)
    assert foreign.holder == "someone else's lock" and foreign.since == ""


def test_lock_held_message_names_holder_and_since():
    lock = _state.LockRecord("awx-job-17", "2025-01-01T00:00:00Z", 123, 300, 5, 250)
    text = str(_state.LockHeld("prod", lock, waited=30))
    assert "held by awx-job-17 since 2025-01-01T00:00:00Z" in text and "250s left" in text and "30s" in text


def test_revision_conflict_message():
    err = _state.RevisionConflict("prod", 4, 9)
    assert (err.expected, err.current) == (4, 9) and "expected revision 4, found 9" in str(err)

# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The recorded rollout of a sliced converge (pure parts: checks, keys, what stays; no etcd)."""

from __future__ import annotations

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _rollout
from ansible_collections.stackfleet.cluster.plugins.module_utils._rollout import Rollout, RolloutError
from ansible_collections.stackfleet.cluster.plugins.module_utils._state import LockRecord, PlacementRecord

STACK = "cluster: prod\n"
HASH = _rollout.spec_hash(STACK, {})
RECORD = PlacementRecord({"app-1": "h1", "app-2": "h2", "app-3": "h3"}, 42, "", "2026-12-03T10:00:00Z", "awx-job-7")
ROLLOUT = Rollout(42, HASH, {}, {"h1": "10.0.0.1", "h2": "10.0.0.2", "h3": ""}, [], "rollout-x", {})
LOCK = LockRecord("rollout-x", "2026-12-03T10:00:00Z", 99, 3600, 40)


def test_keys():
    assert _rollout.rollout_key("prod") == "/stackfleet/prod/rollout"
    assert _rollout.converged_key("prod", "h1") == "/stackfleet/prod/converged/h1"
    with pytest.raises(RolloutError, match="key segment"):
        _rollout.converged_key("prod", "a/b")


def test_spec_hash_covers_the_file_and_the_count_overrides():
    assert _rollout.spec_hash(STACK) == _rollout.spec_hash(STACK.encode(), {})
    assert _rollout.spec_hash(STACK) != _rollout.spec_hash(STACK + "\n")
    assert _rollout.spec_hash(STACK, {"app": 3}) != _rollout.spec_hash(STACK, {"app": 4})
    assert _rollout.spec_hash(STACK, {"a": 1, "b": 2}) == _rollout.spec_hash(STACK, {"b": 2, "a": 1})


def test_record_round_trip():
    rollout = ROLLOUT._replace(scale={"app": 3}, unavailable=["h4"], digests={"h1": "sha256:x"}, planned_at="t", planned_by="me")
    assert _rollout.decode_rollout(_rollout.encode_rollout(rollout).encode(), "k") == rollout


@pytest.mark.parametrize("raw", [b"nope", b"[]", b"{}", b'{"revision": 1, "hosts": ["h1"]}', b'{"revision": 1, "unavailable": "h1"}',
                                 b"\xff"])
def test_a_bad_record_is_an_error_naming_the_key(raw):
    with pytest.raises(RolloutError, match="/stackfleet/prod/rollout is not a valid"):
        _rollout.decode_rollout(raw, "/stackfleet/prod/rollout")


def test_the_recorded_plan_is_converged_when_all_agrees():
    assert _rollout.check("prod", RECORD, ROLLOUT, LOCK, 42, HASH) is ROLLOUT


def test_no_rollout_names_the_plan_job():
    with pytest.raises(RolloutError, match=r"no recorded rollout .*rollout_plan.yml.*nothing was changed"):
        _rollout.check("prod", RECORD, None, LOCK, 42, HASH)
    with pytest.raises(RolloutError, match="and no placement record"):
        _rollout.check("prod", None, None, None, 42, HASH)


def test_a_re_plan_since_the_plan_job_is_refused():
    replanned = RECORD._replace(revision=50, updated_by="ops-laptop:123")
    with pytest.raises(RolloutError) as err:
        _rollout.check("prod", replanned, ROLLOUT, LOCK, 42, HASH)
    message = str(err.value)
    assert "given plan revision 42 but the placement record is at revision 50" in message
    assert "ops-laptop:123" in message and "planned at revision 42" in message and "nothing was changed" in message


def test_every_reason_at_once():
    with pytest.raises(RolloutError) as err:
        _rollout.check("prod", RECORD, ROLLOUT, LOCK._replace(holder="ops:1"), None, "sha256:other")
    message = str(err.value)
    assert "no stackfleet_plan_revision was given" in message and "revision 42" in message
    assert "stack file is not the one the plan was made from" in message
    assert "held by ops:1, not by this rollout (rollout-x)" in message


def test_a_finished_rollout_is_refused():
    with pytest.raises(RolloutError, match="lock rollout-x is gone"):
        _rollout.check("prod", RECORD, ROLLOUT, None, 42, HASH)


def test_slice_hosts():
    rollout = ROLLOUT._replace(unavailable=["h4"])
    assert _rollout.slice_hosts(rollout, ["h2", "h1", "h4", "h1"]) == (["h1", "h2"], ["h4"])
    with pytest.raises(RolloutError, match=r"h9 are not in the recorded plan \(planned over: h1, h2, h3\)"):
        _rollout.slice_hosts(rollout, ["h1", "h9"])


def test_old_copies_wait_for_their_new_host():
    placement = {"app-1": "h1", "app-2": "h2", "app-3": "h3"}
    assert _rollout.keep_old_copies(placement, {}, 42) == ["app-1", "app-2", "app-3"]
    # h2 reported converging from an older plan only: its instances' old copies still wait.
    assert _rollout.keep_old_copies(placement, {"h1": 42, "h2": 41}, 42) == ["app-2", "app-3"]
    assert _rollout.keep_old_copies(placement, {"h1": 42, "h2": 42, "h3": 42}, 42) == []


def test_not_converged_leaves_out_hosts_down_at_plan_time():
    placement = {"app-1": "h1", "app-2": "h4"}
    assert _rollout.not_converged(placement, {"h1": 42}, 42) == ["h4"]
    assert _rollout.not_converged(placement, {"h1": 42}, 42, unavailable=["h4"]) == []


def test_digest_is_stable():
    docs = [{"name": "prod.app-1.app", "env": {"B": "2", "A": "1"}}]
    assert _rollout.containers_digest(docs) == _rollout.containers_digest([{"env": {"A": "1", "B": "2"}, "name": "prod.app-1.app"}])
    assert _rollout.containers_digest(docs) != _rollout.containers_digest([])


def test_converged_values():
    assert _rollout.decode_converged(b'{"revision": 42}') == 42
    assert _rollout.decode_converged(b"garbage") == 0
    assert _rollout.decode_converged(b"[1]") == 0


def test_a_report_counts_only_for_the_rollout_that_made_it():
    """A re-plan that leaves the placement as it was (an env or image change) keeps the record's revision: the
    hosts' reports of the rollout before must not count for the new one (its lock holder differs)."""
    mine = b'{"revision": 42, "rollout": "rollout-20261203T140000Z-7", "at": "x", "by": "awx-job-9"}'
    assert _rollout.decode_converged(mine, "rollout-20261203T140000Z-7") == 42
    assert _rollout.decode_converged(mine, "rollout-20261203T150000Z-8") == 0
    assert _rollout.decode_converged(b'{"revision": 42}', "rollout-20261203T150000Z-8") == 0  # a report without its rollout
    placement = {"app-1": "h1", "app-2": "h2"}
    converged = {"h1": _rollout.decode_converged(mine, "rollout-20261203T150000Z-8"), "h2": 42}
    assert _rollout.not_converged(placement, converged, 42) == ["h1"]
    assert _rollout.keep_old_copies(placement, converged, 42) == ["app-1"]

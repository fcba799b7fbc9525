# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Engine batches: the engine calls of one batch run at once (a batch of 25 replacements cost 25
sequential create/stop/start/swap rounds), each container keeps its own outcome, and a batch still
ends before the next starts. The engine is a recording stand-in: only the ordering logic is tested here;
tests/integration covers real engines."""

from __future__ import annotations

import threading
import time

from ansible_collections.stackfleet.cluster.plugins.module_utils import _converge as cv
from ansible_collections.stackfleet.cluster.plugins.module_utils._docker import MAX_CALLS, Engine, EngineError, each

STEP = 0.2  # seconds each stop takes


class RecordingEngine(Engine):
    """Engine whose writes only record (name, call, start, end); `fail` names calls that raise."""

    def __init__(self, fail=()):
        super().__init__(api=self, url="tcp://stand-in:2376")
        self.calls = []
        self.fail = set(fail)
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0

    def _record(self, name, call, seconds=0.0):
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        start = time.monotonic()
        time.sleep(seconds)
        with self.lock:
            self.running -= 1
            self.calls.append((name, call, start, time.monotonic()))
        if (name, call) in self.fail:
            raise EngineError("%s: %s refused" % (name, call))

    def create(self, doc, name=None):
        self._record(doc["name"], "create")
        return "new-" + doc["name"]

    def stop(self, name, container_id, stop_timeout=None):
        self._record(name, "stop", STEP)

    def start(self, name, container_id, paused=False):
        self._record(name.replace(cv.temp_name(""), ""), "start")

    def rename(self, container_id, name):
        self._record(name, "rename")

    def remove_container(self, container_id, force=False):  # the SDK call, for the swap and rollbacks
        self._record(container_id, "remove")


def replacement(name, parallelism):
    doc = {"name": name, "deploy": "app", "image": "local/busybox:2", "update": {"parallelism": parallelism}}
    labels = {"io.stackfleet.deploy": "app"}
    observed = cv.Observed(id="old-" + name, name=name, image="local/busybox:1", image_id="sha256:1", state="running",
                           status="Up", labels=labels)
    return cv.Action(name=name, action=cv.RECREATE, reason="image changed", doc=doc, observed=observed)


def test_each_keeps_the_order_and_every_error_and_bounds_the_threads():
    active, most = [0], [0]
    lock = threading.Lock()

    def fn(item):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        if item % 7 == 0:
            raise EngineError("no %d" % item)
        return item * 2

    out = each(fn, list(range(40)))
    assert [item for item, _value, _error in out] == list(range(40))
    assert [value for item, value, error in out if error is None] == [i * 2 for i in range(40) if i % 7]
    assert [str(error) for _item, _value, error in out if error is not None] == ["no %d" % i for i in range(0, 40, 7)]
    assert 1 < most[0] <= MAX_CALLS


def test_each_runs_a_single_item_in_the_callers_thread():
    assert each(lambda _item: threading.current_thread(), ["x"])[0][1] is threading.current_thread()


def test_a_batch_of_replacements_stops_its_containers_at_once_not_one_after_the_other():
    engine = RecordingEngine()
    batch = [replacement("app-%02d" % i, parallelism=8) for i in range(8)]
    began = time.monotonic()
    assert engine._replace_batch(batch, "none", 5, None) == []
    took = time.monotonic() - began
    assert took < 8 * STEP / 2, "8 stops of %.1f s took %.2f s: not concurrent" % (STEP, took)
    assert engine.most_at_once > 1
    # Per container the order is unchanged: create, stop the old, start the new, remove the old, rename.
    for action in batch:
        mine = [call for name, call, _s, _e in sorted(engine.calls, key=lambda c: c[2]) if name in (action.name, "old-" + action.name)]
        assert mine == ["create", "stop", "start", "remove", "rename"], (action.name, mine)
    # And every container of the batch was started before any old one was removed (the batch is up first).
    last_start = max(end for _n, call, _s, end in engine.calls if call == "start")
    first_remove = min(start for _n, call, start, _e in engine.calls if call == "remove")
    assert last_start <= first_remove


def test_one_failed_replacement_of_a_batch_is_rolled_back_and_the_others_complete():
    engine = RecordingEngine(fail={("app-02", "start")})
    batch = [replacement("app-%02d" % i, parallelism=4) for i in range(4)]
    errors = engine._replace_batch(batch, "none", 5, None)
    assert len(errors) == 1 and errors[0].startswith("app-02: rolled back: app-02: start refused")
    assert engine.outcomes == {"app-02": (cv.ROLLED_BACK, "app-02: start refused")}
    renamed = sorted(name for name, call, _s, _e in engine.calls if call == "rename")
    assert renamed == ["app-00", "app-01", "app-03"]


def test_apply_ends_the_rollout_at_the_first_failed_batch_and_batches_follow_update_parallelism():
    engine = RecordingEngine(fail={("app-01", "create")})
    actions = tuple(replacement("app-%02d" % i, parallelism=2) for i in range(6))
    plan = cv.Plan(removals=(), rollout=actions, unchanged=())
    errors = engine.apply(plan, max_parallel=16, wait="none")
    assert errors == ["app-01: not replaced, the old container runs on: app-01: create refused"]
    # Batches of two (update.parallelism): the first failed, so app-02..app-05 are left pending.
    assert sorted(name for name, call, _s, _e in engine.calls if call == "create") == ["app-00", "app-01"]
    assert {name for name, (action, _why) in engine.outcomes.items() if action == cv.PENDING} == {
        "app-02", "app-03", "app-04", "app-05"}

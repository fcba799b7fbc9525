"""Membership writes are never retried blindly (issue 8 §4): after an answer that leaves it
open whether an add or remove committed, the member list decides. A fake transport stands in
for etcd: it applies the write and then times out, as a slow leader does."""

from __future__ import annotations

import json
from urllib.error import URLError

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _etcd, _etcd_membership
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import EtcdConnectionError, EtcdError, Member
from fake_clock import FakeClock

PEER = "https://10.0.0.14:2380"


class FakeEtcd:
    """Members in memory; `add_outcomes`/`remove_outcomes` script each attempt:
    "ok", "commit+timeout" (applied, but the caller sees a timeout), "timeout" (not applied),
    "unhealthy" (refused before proposing), "leader changed" (applied, code 14)."""

    def __init__(self, members=(), add_outcomes=(), remove_outcomes=(), list_failures=0):
        self.members = list(members)
        self.add_outcomes = list(add_outcomes)
        self.remove_outcomes = list(remove_outcomes)
        self.list_failures = list_failures
        self.add_calls = 0
        self.remove_calls = 0
        self.next_id = 100

    def member_list(self):
        if self.list_failures:
            self.list_failures -= 1
            raise EtcdConnectionError("cannot reach etcd: refused")
        return 1, list(self.members)

    def _add(self, peer_urls, learner):
        if any(set(peer_urls) & set(m.peer_urls) for m in self.members):
            raise EtcdError("etcdserver: Peer URLs already exists", 9)
        self.next_id += 1
        member = Member(self.next_id, "", tuple(peer_urls), (), learner)
        self.members.append(member)
        return member

    def member_add(self, peer_urls, learner=False):
        self.add_calls += 1
        outcome = self.add_outcomes.pop(0) if self.add_outcomes else "ok"
        return self._apply(outcome, lambda: self._add(peer_urls, learner))

    def member_remove(self, member_id):
        self.remove_calls += 1
        outcome = self.remove_outcomes.pop(0) if self.remove_outcomes else "ok"

        def remove():
            if not any(m.id == member_id for m in self.members):
                raise EtcdError("etcdserver: member not found", 5)
            self.members = [m for m in self.members if m.id != member_id]

        return self._apply(outcome, remove)

    @staticmethod
    def _apply(outcome, write):
        if outcome == "unhealthy":
            raise EtcdError("etcdserver: unhealthy cluster", 14)
        if outcome == "timeout":
            raise EtcdConnectionError("no answer from etcd: timed out", timed_out=True)
        result = write()
        if outcome == "commit+timeout":
            raise EtcdConnectionError("no answer from etcd: timed out", timed_out=True)
        if outcome == "leader changed":
            raise EtcdError("etcdserver: leader changed", 14)
        if outcome == "request timed out":
            raise EtcdError("etcdserver: request timed out", 14)
        return result


ONE = Member(1, "h1", ("https://10.0.0.11:2380",), ("https://10.0.0.11:2379",), False)


@pytest.mark.parametrize("outcome", ["commit+timeout", "leader changed", "request timed out"])
def test_add_that_committed_before_the_timeout_is_found_not_added_again(outcome):
    etcd, clock = FakeEtcd([ONE], add_outcomes=[outcome]), FakeClock()
    member = _etcd_membership.add_member(etcd, [PEER], timeout=30, sleep=clock.sleep, clock=clock)
    assert member.peer_urls == (PEER,)
    assert etcd.add_calls == 1  # read back, not sent again
    assert [m.peer_urls for m in etcd.members].count((PEER,)) == 1


def test_add_that_did_not_commit_is_tried_again():
    etcd, clock = FakeEtcd([ONE], add_outcomes=["timeout", "ok"]), FakeClock()
    member = _etcd_membership.add_member(etcd, [PEER], timeout=30, sleep=clock.sleep, clock=clock)
    assert member.peer_urls == (PEER,) and etcd.add_calls == 2 and len(etcd.members) == 2


def test_unhealthy_cluster_is_retried_within_the_timeout_then_raised():
    etcd, clock = FakeEtcd([ONE], add_outcomes=["unhealthy", "unhealthy", "ok"]), FakeClock()
    assert _etcd_membership.add_member(etcd, [PEER], timeout=30, sleep=clock.sleep, clock=clock).peer_urls == (PEER,)
    etcd, clock = FakeEtcd([ONE], add_outcomes=["unhealthy"] * 1000), FakeClock()
    with pytest.raises(EtcdError, match="unhealthy"):
        _etcd_membership.add_member(etcd, [PEER], timeout=5, sleep=clock.sleep, clock=clock)
    assert clock.now <= 5.5


def test_peer_url_exists_after_an_unclear_answer_is_that_same_add():
    """The retry of an add that committed late meets "Peer URLs already exists": read back."""
    etcd, clock = FakeEtcd([ONE], add_outcomes=["timeout", "ok"]), FakeClock()
    real_list = etcd.member_list
    calls = []

    def list_that_misses_it_once():
        calls.append(1)
        if len(calls) == 1:  # the first read comes before the late commit
            return 1, [ONE]
        return real_list()

    etcd.member_list = list_that_misses_it_once
    original = etcd.member_add

    def add_committing_late(peer_urls, learner=False):
        if etcd.add_calls == 1:  # second attempt: the first one has committed meanwhile
            etcd._add(peer_urls, learner)
        return original(peer_urls, learner)

    etcd.member_add = add_committing_late
    member = _etcd_membership.add_member(etcd, [PEER], timeout=30, sleep=clock.sleep, clock=clock)
    assert member.peer_urls == (PEER,) and len(etcd.members) == 2


def test_peer_url_exists_on_a_first_attempt_is_an_error():
    etcd, clock = FakeEtcd([ONE]), FakeClock()
    with pytest.raises(EtcdError, match="already exists"):
        _etcd_membership.add_member(etcd, ["https://10.0.0.11:2380"], timeout=30, sleep=clock.sleep, clock=clock)


def test_unreadable_member_list_after_an_unclear_add_says_so():
    etcd, clock = FakeEtcd([ONE], add_outcomes=["commit+timeout"], list_failures=10_000), FakeClock()
    with pytest.raises(_etcd_membership.ChangeUnknown, match="could not be read.*member list"):
        _etcd_membership.add_member(etcd, [PEER], timeout=5, sleep=clock.sleep, clock=clock)
    assert etcd.add_calls == 1


@pytest.mark.parametrize("outcomes, calls", [(["commit+timeout"], 1), (["timeout", "ok"], 2), (["leader changed"], 1)])
def test_remove_is_read_back_after_an_unclear_answer(outcomes, calls):
    two = Member(2, "h2", ("https://10.0.0.12:2380",), (), False)
    etcd, clock = FakeEtcd([ONE, two], remove_outcomes=outcomes), FakeClock()
    assert _etcd_membership.remove_member(etcd, 2, timeout=30, sleep=clock.sleep, clock=clock)
    assert [m.id for m in etcd.members] == [1] and etcd.remove_calls == calls


def test_remove_of_an_unknown_member_is_an_error():
    etcd, clock = FakeEtcd([ONE]), FakeClock()
    with pytest.raises(EtcdError, match="not found"):
        _etcd_membership.remove_member(etcd, 9, timeout=30, sleep=clock.sleep, clock=clock)


# ---------------------------------------------------------------- the transport


class Response:
    def __init__(self, body):
        self.body = body

    def read(self):
        return json.dumps(self.body).encode()


def fake_open_url(script, seen):
    """open_url stand-in: per endpoint host, an exception to raise or a body to answer."""
    def open_url(url, **kwargs):
        seen.append(url)
        if url.endswith("/version"):
            return Response({"etcdserver": "3.4.23", "etcdcluster": "3.4.0"})
        answer = script[url.split("/")[2]]
        if isinstance(answer, BaseException):
            raise answer
        return Response(answer)
    return open_url


def test_a_timed_out_write_is_not_sent_to_the_next_endpoint(monkeypatch):
    seen = []
    monkeypatch.setattr(_etcd, "open_url", fake_open_url(
        {"a:2379": URLError(TimeoutError("timed out")), "b:2379": {"member": {"ID": "5", "peerURLs": [PEER]}}}, seen))
    client = _etcd.EtcdClient(["http://a:2379", "http://b:2379"])
    with pytest.raises(EtcdConnectionError) as caught:
        client.member_add([PEER])
    assert caught.value.ambiguous and "may have been applied" in str(caught.value)
    assert not any(url.startswith("http://b:2379/v3/cluster") for url in seen)


def test_a_refused_write_fails_over(monkeypatch):
    seen = []
    monkeypatch.setattr(_etcd, "open_url", fake_open_url(
        {"a:2379": URLError(ConnectionRefusedError(111, "Connection refused")),
         "b:2379": {"member": {"ID": "5", "peerURLs": [PEER]}}}, seen))
    client = _etcd.EtcdClient(["http://a:2379", "http://b:2379"])
    assert client.member_add([PEER]).id == 5


def test_reads_fail_over_after_a_timeout(monkeypatch):
    seen = []
    monkeypatch.setattr(_etcd, "open_url", fake_open_url(
        {"a:2379": URLError(TimeoutError("timed out")), "b:2379": {"members": [{"ID": "1", "name": "h1"}]}}, seen))
    client = _etcd.EtcdClient(["http://a:2379", "http://b:2379"])
    assert [m.id for m in client.member_list()[1]] == [1]


def test_which_errors_are_ambiguous():
    assert EtcdError("etcdserver: request timed out", 14).ambiguous
    assert EtcdError("etcdserver: leader changed", 14).ambiguous
    assert EtcdError("context deadline exceeded", 4).ambiguous
    assert not EtcdError("etcdserver: unhealthy cluster", 14).ambiguous
    assert not EtcdError("etcdserver: member not found", 5).ambiguous
    assert not EtcdConnectionError("cannot reach etcd: refused").ambiguous


def test_learner_support_waits_for_the_cluster_version_to_settle(monkeypatch):
    """A 3.4 cluster says 3.0.0 until its leader settles the version: not a 3.0 cluster."""
    answers = iter([{"etcdserver": "3.4.23", "etcdcluster": "3.0.0"}] * 3 + [{"etcdserver": "3.4.23", "etcdcluster": "3.4.0"}])
    client = _etcd.EtcdClient(["http://a:2379"])
    monkeypatch.setattr(client, "version", lambda: next(answers))
    monkeypatch.setattr(_etcd.time, "sleep", lambda s: None)
    assert client.supports_learners()
    monkeypatch.setattr(client, "version", lambda: {"etcdserver": "3.3.25", "etcdcluster": "3.3.0"})
    assert not client.supports_learners()

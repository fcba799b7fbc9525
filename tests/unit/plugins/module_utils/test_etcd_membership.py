# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Quorum arithmetic, member matching and the refusal rules of etcd_member (pure, no etcd)."""

from __future__ import annotations

import itertools

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import Member
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd_membership import (
    ADD,
    ADD_LEARNER,
    PROMOTE,
    REMOVE,
    UPDATE,
    ChangeRefused,
    MemberHealth,
    check_change,
    fault_tolerance,
    match_members,
    quorum,
)
from hypothesis import given
from hypothesis import strategies as st


def member(i: int, learner: bool = False, started: bool = True) -> Member:
    return Member(i, "h%d" % i if started else "", ("https://10.0.0.%d:2380" % i,),
                  ("https://10.0.0.%d:2379" % i,) if started else (), learner)


def health(members, down=()):
    return {m.id: MemberHealth(m.id not in down, "unreachable" if m.id in down else "") for m in members}


@pytest.mark.parametrize("voters, q, ft", [(1, 1, 0), (2, 2, 0), (3, 2, 1), (4, 3, 1), (5, 3, 2), (6, 4, 2), (7, 4, 3)])
def test_quorum(voters, q, ft):
    assert quorum(voters) == q and fault_tolerance(voters) == ft


def test_match_by_peer_url_even_without_name():
    members = [member(1), member(2), member(4, learner=True, started=False)]
    assert match_members(members, ["HTTPS://10.0.0.4:2380/"]) == [members[2]]
    assert match_members(members, ["https://10.0.0.9:2380"]) == []
    assert match_members(members, [], "h2") == [members[1]]
    assert match_members(members, ["https://10.0.0.1:2380", "https://10.0.0.2:2380"]) == members[:2]  # caller refuses
    assert match_members(members) == []


def test_healthy_three_member_cluster_allows_everything_safe():
    ms = [member(1), member(2), member(3)]
    h = health(ms)
    check_change(ms, h, ADD)
    check_change(ms, h, ADD_LEARNER)
    check_change(ms, h, REMOVE, ms[0])
    check_change(ms, h, UPDATE, ms[1])


def test_add_fourth_with_one_down_is_quorum_impossible():
    ms = [member(1), member(2), member(3)]
    with pytest.raises(ChangeRefused, match="quorum impossible.*4 voting members need 3 healthy, only 2.*h3"):
        check_change(ms, health(ms, down={3}), ADD_LEARNER)


def test_add_with_a_member_down_but_quorum_possible_is_still_refused():
    ms = [member(i) for i in range(1, 6)]
    with pytest.raises(ChangeRefused, match="cluster is unhealthy.*h5"):
        check_change(ms, health(ms, down={5}), ADD)


def test_learner_that_never_votes_only_needs_a_healthy_cluster():
    ms = [member(1), member(2), member(3)]
    with pytest.raises(ChangeRefused, match="unhealthy"):
        check_change(ms, health(ms, down={3}), ADD_LEARNER, will_vote=False)


def test_remove_unhealthy_member_with_quorum_is_repair():
    ms = [member(1), member(2), member(3)]
    check_change(ms, health(ms, down={3}), REMOVE, ms[2])


def test_remove_healthy_member_while_another_is_down_is_refused():
    ms = [member(1), member(2), member(3)]
    with pytest.raises(ChangeRefused, match="without quorum"):
        check_change(ms, health(ms, down={3}), REMOVE, ms[0])
    five = [member(i) for i in range(1, 6)]
    with pytest.raises(ChangeRefused, match="while others are down.*h5"):
        check_change(five, health(five, down={5}), REMOVE, five[0])


def test_remove_down_member_without_quorum_is_refused():
    ms = [member(1), member(2), member(3)]
    with pytest.raises(ChangeRefused, match="without quorum"):
        check_change(ms, health(ms, down={2, 3}), REMOVE, ms[2])


def test_remove_last_member_is_refused():
    ms = [member(1)]
    with pytest.raises(ChangeRefused, match="last voting member"):
        check_change(ms, health(ms), REMOVE, ms[0])


def test_learners_do_not_count_for_quorum():
    ms = [member(1), member(2), member(3), member(4, learner=True, started=False)]
    h = health(ms, down={4})
    check_change(ms, h, REMOVE, ms[3])  # an unstarted learner can always go while voters have quorum
    check_change(ms, h, ADD)  # the down learner does not make the cluster unhealthy
    with pytest.raises(ChangeRefused, match="not running or not healthy"):
        check_change(ms, h, PROMOTE, ms[3])
    check_change(ms, health(ms), PROMOTE, ms[3])


@given(st.integers(1, 7), st.data())
def test_no_allowed_change_ever_leaves_the_cluster_without_quorum(voters, data):
    ms = [member(i) for i in range(1, voters + 1)]
    down = data.draw(st.sets(st.sampled_from([m.id for m in ms])))
    h = health(ms, down)
    for action, target in itertools.chain([(ADD, None)], ((REMOVE, m) for m in ms)):
        try:
            check_change(ms, h, action, target)
        except ChangeRefused:
            continue
        after = [m for m in ms if action != REMOVE or m.id != target.id]
        n_after = len(after) + (1 if action == ADD else 0)
        healthy_after = sum(1 for m in after if m.id not in down)
        assert healthy_after >= quorum(n_after), (action, target, down)
        if action == ADD or (target is not None and target.id not in down):
            assert not down, "a change other than removing a down member happened while members were down"

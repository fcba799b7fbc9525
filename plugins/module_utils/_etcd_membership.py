# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Safe etcd membership changes: matching members, probing their health, the
quorum rules that decide whether a change may go ahead, and writes that are
never retried blindly (`add_member`, `remove_member`).

The rules (`check_change`) are pure so they can be tested exhaustively; probing
(`probe_members`) is the only part that talks to etcd, through `_etcd`.
"""

from __future__ import annotations

import concurrent.futures
import time
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import (
    EtcdClient,
    EtcdError,
    Member,
    normalise_url,
)

ADD = "add"  # a voting member
ADD_LEARNER = "add_learner"
PROMOTE = "promote"
REMOVE = "remove"
UPDATE = "update"  # peer URLs of an existing member


class ChangeRefused(Exception):
    """The change would endanger the cluster; the message says why and what to do."""


class MemberHealth(t.NamedTuple):
    healthy: bool
    reason: str  # why not, "" when healthy
    endpoint: str = ""  # the client URL that answered
    leader: int = 0
    raft_index: int = 0
    version: str = ""
    db_size: int = 0
    revision: int = 0


def quorum(voters: int) -> int:
    """Votes needed for a raft majority among `voters` voting members."""
    return voters // 2 + 1


def fault_tolerance(voters: int) -> int:
    return max(voters - quorum(voters), 0)


def match_members(members: t.Sequence[Member], peer_urls: t.Sequence[str] = (),
                  name: t.Optional[str] = None) -> t.List[Member]:
    """Members sharing a peer URL with `peer_urls`; by `name` only when no URL is given
    (an unstarted member has no name yet, so peer URLs are the identity)."""
    if peer_urls:
        wanted = {normalise_url(u) for u in peer_urls}
        return [m for m in members if wanted & {normalise_url(u) for u in m.peer_urls}]
    if name:
        return [m for m in members if m.name == name]
    return []


def same_peer_urls(member: Member, peer_urls: t.Sequence[str]) -> bool:
    return {normalise_url(u) for u in member.peer_urls} == {normalise_url(u) for u in peer_urls}


def label(member: Member) -> str:
    """How messages name a member: its name, or its peer URL until it has one."""
    return "%s (%s)" % (member.name or ",".join(member.peer_urls) or "?", member.hex_id)


def check_change(members: t.Sequence[Member], health: t.Mapping[int, MemberHealth], action: str,
                 target: t.Optional[Member] = None, will_vote: bool = True) -> None:
    """Raise ChangeRefused unless `action` on `target` is safe now.

    * Any change needs every voting member healthy, except removing an unhealthy
      member while the rest still make a quorum (repair is remove-before-add).
    * An add is refused when the healthy members could not make a quorum of the
      grown cluster (`will_vote`: the new member will eventually vote).
    * A removal is refused when the members left could not make a quorum.
    """
    voters = [m for m in members if not m.is_learner]
    down = [m for m in voters if not _healthy(health, m)]
    healthy_voters = len(voters) - len(down)
    down_text = "; ".join("%s: %s" % (label(m), _reason(health, m)) for m in down)

    if action in (ADD, ADD_LEARNER, PROMOTE):
        if action == PROMOTE and target is not None and not _healthy(health, target):
            raise ChangeRefused("learner %s is not running or not healthy (%s): start it and let it catch up first"
                                % (label(target), _reason(health, target)))
        if will_vote or action != ADD_LEARNER:
            grown = len(voters) + 1
            healthy_after = healthy_voters + (1 if action == PROMOTE else 0)
            if healthy_after < quorum(grown):
                raise ChangeRefused(
                    "adding a voting member would make quorum impossible: %d voting members need %d healthy, "
                    "only %d would be (down: %s). Remove or repair the down member first."
                    % (grown, quorum(grown), healthy_after, down_text or "none"))
        if down:
            raise ChangeRefused("cluster is unhealthy, refusing to %s a member; down: %s"
                                % ("promote" if action == PROMOTE else "add", down_text))
        return

    if target is None:
        raise ValueError("%s needs a target member" % action)
    if action == REMOVE and target.is_learner:
        if healthy_voters < quorum(len(voters)):
            raise ChangeRefused("cluster has no quorum (%d of %d voting members healthy); cannot remove learner %s"
                                % (healthy_voters, len(voters), label(target)))
        return
    remaining = [m for m in voters if m.id != target.id]
    healthy_remaining = sum(1 for m in remaining if _healthy(health, m))
    if action == REMOVE:
        if not remaining:
            raise ChangeRefused("refusing to remove %s: it is the last voting member" % label(target))
        if healthy_remaining < quorum(len(remaining)):
            raise ChangeRefused(
                "removing %s would leave the cluster without quorum: %d voting members would need %d healthy, "
                "only %d are (down: %s)" % (label(target), len(remaining), quorum(len(remaining)),
                                            healthy_remaining, down_text or "none"))
    others_down = [m for m in down if m.id != target.id]
    if others_down:
        raise ChangeRefused("cluster is unhealthy, refusing to %s healthy member %s while others are down: %s. "
                            "Remove the down members first." % (action, label(target), "; ".join(
                                "%s: %s" % (label(m), _reason(health, m)) for m in others_down)))


def _healthy(health: t.Mapping[int, MemberHealth], member: Member) -> bool:
    probe = health.get(member.id)
    return bool(probe and probe.healthy)


def _reason(health: t.Mapping[int, MemberHealth], member: Member) -> str:
    probe = health.get(member.id)
    return probe.reason if probe else "not probed"


# ---------------------------------------------------------------- probing

def probe_member(client: EtcdClient, member: Member) -> MemberHealth:
    """Ask the member itself, at its advertised client URLs, for its status.

    Healthy means: it answers as itself, knows a leader, raises no alarm, and
    its /health (a quorum read) is true.
    """
    if not member.started:
        return MemberHealth(False, "not started (no name and no client URLs yet)")
    failures = []
    for url in member.client_urls:
        try:
            status = client.status(endpoint=url)
        except EtcdError as err:
            failures.append(str(err))
            continue
        base = MemberHealth(False, "", url, status["leader"], status["raft_index"], status["version"],
                            status["db_size"], status["revision"])
        if status["member_id"] != member.id:
            return base._replace(reason="%s answers as member %x, not %s" % (url, status["member_id"], member.hex_id))
        if not status["leader"]:
            return base._replace(reason="has no leader")
        if status["errors"]:
            return base._replace(reason="reports " + ", ".join(status["errors"]))
        if not member.is_learner:  # learners serve no reads; /health would say false
            try:
                healthy, why = client.health(endpoint=url)
            except EtcdError as err:
                healthy, why = False, str(err)
            if not healthy:
                return base._replace(reason="/health: " + why)
        return base._replace(healthy=True)
    return MemberHealth(False, "unreachable: " + "; ".join(failures))


def probe_members(client: EtcdClient, members: t.Sequence[Member]) -> t.Dict[int, MemberHealth]:
    """Probe all members in parallel, so one dead member costs one timeout, not one each."""
    client.version()  # settle gateway prefix (and auth) before threads share the client
    if not members:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(len(members), 8)) as pool:
        results = list(pool.map(lambda m: probe_member(client, m), members))
    return {m.id: results[i] for i, m in enumerate(members)}


# ---------------------------------------------------------------- writes, never blind

class ChangeUnknown(EtcdError):
    """A membership write failed in a way that may hide its success, and the member list
    could not be read before the deadline to tell."""


def add_member(client: t.Any, peer_urls: t.Sequence[str], learner: bool = False, timeout: float = 60.0,
               interval: float = 0.5, sleep: t.Callable[[float], None] = time.sleep,
               clock: t.Callable[[], float] = time.monotonic) -> Member:
    """Add a member with `peer_urls`, exactly once.

    Refusals made before anything was proposed ("unhealthy cluster") are retried until
    `timeout`. After an answer that leaves it open whether the add committed (a timeout,
    "request timed out", "leader changed"), the member list is read: a member with these peer
    URLs means the add went through and is returned; none means it did not, and it is tried
    again. A later "peer URL exists" after such an answer is the same add, found by reading.
    """
    deadline = clock() + max(timeout, 0.0)
    unsure = False
    while True:
        try:
            return client.member_add(peer_urls, learner=learner)
        except EtcdError as err:
            if err.ambiguous or (unsure and "exists" in err.message.lower()):
                unsure = True
                found = _read_back(client, lambda members: match_members(members, peer_urls), deadline, interval,
                                   sleep, clock, "add of %s" % ",".join(peer_urls), err)
                if found:
                    return found[0]
            elif not err.retryable:
                raise
            if clock() + interval > deadline:
                raise
        sleep(interval)


def remove_member(client: t.Any, member_id: int, timeout: float = 60.0, interval: float = 0.5,
                  sleep: t.Callable[[float], None] = time.sleep, clock: t.Callable[[], float] = time.monotonic) -> bool:
    """Remove member `member_id`, exactly once; True when this call (or its unclear first
    attempt) removed it. After an unclear answer the member list decides: gone means done."""
    deadline = clock() + max(timeout, 0.0)
    unsure = False
    while True:
        try:
            client.member_remove(member_id)
            return True
        except EtcdError as err:
            if err.ambiguous or (unsure and "not found" in err.message.lower()):
                unsure = True
                still = _read_back(client, lambda members: [m for m in members if m.id == member_id], deadline,
                                   interval, sleep, clock, "removal of member %x" % member_id, err)
                if not still:
                    return True
            elif not err.retryable:
                raise
            if clock() + interval > deadline:
                raise
        sleep(interval)


def _read_back(client: t.Any, select: t.Callable[[t.List[Member]], t.List[Member]], deadline: float,
               interval: float, sleep: t.Callable[[float], None], clock: t.Callable[[], float], what: str,
               cause: EtcdError) -> t.List[Member]:
    """`select` over the (linearizable) member list, reading until it answers or `deadline`."""
    while True:
        try:
            return select(client.member_list()[1])
        except EtcdError as err:
            if clock() + interval > deadline:
                raise ChangeUnknown("%s: %s; the member list could not be read to tell whether it was applied (%s). "
                                    "Read it (etcdctl member list) before trying again" % (what, cause, err))
        sleep(interval)

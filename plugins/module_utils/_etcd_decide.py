# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the etcd role does in one run, decided in one pure function (`decide`).

Inputs are what the role gathered: the members etcd reports (as `etcd_cluster_info` returns
them, with health) and, per host of the group, its member name, peer URL, whether its data
directory holds etcd data and its bootstrap record. The role only carries the decision out
(docs/etcd.md "The etcd role").

Modes:
  members      a quorum answers: change membership one member at a time
  restart      no quorum, but hosts hold a bootstrap record with a token: start them again
  foreign      nothing answers and a data directory holds data without a record: refuse
  rebootstrap  nothing useful answers and records (or unhealthy members) exist: start anew
  bootstrap    nothing at all: a new cluster

Per host (members mode): `keep` (a started member with its data), `repair` (a started member
whose data is gone, or named in repair_hosts: removed, wiped and added again), `join` (not a
started member yet). Members whose peer URLs belong to no host of the group are `retiring`.

`steady` (in every decision, with `unsteady` saying why not): the cluster is exactly as declared
as far as membership goes - members mode, every host kept, nothing to repair, join or retire,
every member started, voting and healthy under the host's name, peer and client URL, and every
host's bootstrap record complete with the cluster's token. The role's fast path skips its lock
and per-member converge only when this holds and no member's container would change
(docs/etcd.md "Steady-state fast path"); anything else goes the full way.

Peer URLs are compared normalised (`normalise_url`), the same way `etcd_member` matches
members: a member etcd lists as `https://node-1:2380` is the host configured with
`HTTPS://Node-1:2380/`. (Compared verbatim, that host went down the join path, which wipes
its data directory.) Imports nothing but the standard library.
"""

from __future__ import annotations

import typing as t

MODES = ("members", "restart", "foreign", "rebootstrap", "bootstrap")
ACTIONS = ("keep", "repair", "join")


class DecisionError(ValueError):
    """The inputs make no decision safe; the message says why and what to do."""


def normalise_url(url: str) -> str:
    """Peer/client URLs compared the way etcd compares them: scheme and host case-folded,
    no trailing slash."""
    url = url.strip().rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.lower()
    host, slash, path = rest.partition("/")
    return "%s://%s%s%s" % (scheme.lower(), host.lower(), slash, path)


def quorum(voters: int) -> int:
    """Votes needed for a raft majority among `voters` voting members."""
    return voters // 2 + 1


def has_quorum(members: t.Sequence[t.Mapping[str, t.Any]]) -> bool:
    """A healthy majority of the voting members answers (no members: no quorum)."""
    voters = [m for m in members if not m.get("learner")]
    return bool(members) and sum(1 for m in voters if m.get("healthy")) >= quorum(len(voters))


def member_of(members: t.Sequence[t.Mapping[str, t.Any]], peer_url: str) -> t.Optional[t.Mapping[str, t.Any]]:
    """The member with this peer URL (normalised), or None."""
    wanted = normalise_url(peer_url)
    for member in members:
        if wanted in {normalise_url(u) for u in member.get("peer_urls") or ()}:
            return member
    return None


def decide(members: t.Sequence[t.Mapping[str, t.Any]], hosts: t.Sequence[t.Mapping[str, t.Any]],
           repair_hosts: t.Iterable[str] = (), max_removals: int = -1) -> t.Dict[str, t.Any]:
    """The mode of this run and every host's part in it (see the module docstring).

    `members`: dicts with `peer_urls`, `name`, `started`, `learner`, `healthy` (etcd_cluster_info).
    `hosts`: dicts with `host` (inventory name), `name` (member name), `peer_url`, `data` (bool)
    and `record` (the bootstrap record dict, or None), in the group's order.
    Raises DecisionError for data the role did not create, or records naming different tokens.
    """
    hosts = [_check_host(h) for h in hosts]
    repair = set(repair_hosts or ())
    records = [h["record"] for h in hosts if h["record"]]
    tokens = _unique(str(r.get("token") or "") for r in records if r.get("bootstrapped"))
    orphans = [h["host"] for h in hosts if h["data"] and not h["record"]]
    quorate = has_quorum(members)

    if len(tokens) > 1:
        raise DecisionError(
            "the bootstrap records (<data dir>.stackfleet.json) of %s name different cluster tokens (%s); "
            "the role never merges clusters. Move the stray data and record away and run again"
            % (", ".join(h["host"] for h in hosts if h["record"] and h["record"].get("bootstrapped")), ", ".join(tokens)))
    if quorate:
        mode = "members"
    elif tokens:
        mode = "restart"
    elif orphans and not members:
        mode = "foreign"
    elif records or members:
        mode = "rebootstrap"
    else:
        mode = "bootstrap"
    if mode == "foreign":
        raise DecisionError(
            "no etcd member answers, and the data directories of %s hold etcd data without a stackfleet "
            "bootstrap record (<data dir>.stackfleet.json). Move that data away (or restore the records) and run "
            "again; the role never wipes data it did not create" % ", ".join(orphans))

    actions: t.Dict[str, str] = {}
    for host in hosts:
        member = member_of(members, host["peer_url"])
        if not (member and member.get("started")):
            actions[host["host"]] = "join"
        elif not host["data"] or host["host"] in repair:
            actions[host["host"]] = "repair"
        else:
            actions[host["host"]] = "keep"

    group_peers = {normalise_url(h["peer_url"]) for h in hosts}
    retiring = [dict(m) for m in members if not group_peers & {normalise_url(u) for u in m.get("peer_urls") or ()}]
    # Members that exist but never started join before new ones: etcd 3.4 allows one learner at a time.
    joining = ([h["host"] for h in hosts if actions[h["host"]] == "join" and member_of(members, h["peer_url"])]
               + [h["host"] for h in hosts if actions[h["host"]] == "join" and not member_of(members, h["peer_url"])])
    voters = [m for m in members if not m.get("learner")]
    limit = (len(voters) - 1) // 2 if max_removals < 0 else max_removals
    removals_refused = ""
    if mode == "members" and len(retiring) > limit:
        removals_refused = (
            "refusing to remove %d members (%s) of %d in one run: at most %d at once keeps a quorum of the members "
            "that were there before. Shrink in steps (or set etcd_max_removals). Nothing was changed."
            % (len(retiring), ", ".join(str(m.get("name") or ",".join(m.get("peer_urls") or ())) for m in retiring),
               len(voters), limit))

    decision = {
        "mode": mode,
        "has_quorum": quorate,
        "token": tokens[0] if tokens else "",
        "actions": actions,
        "keeping": [h["host"] for h in hosts if actions[h["host"]] == "keep"],
        "repairing": [h["host"] for h in hosts if actions[h["host"]] == "repair"],
        "joining": joining,
        "retiring": retiring,
        "removal_limit": limit,
        "removals_refused": removals_refused,
    }
    decision["unsteady"] = unsteady(decision, members, hosts)
    decision["steady"] = not decision["unsteady"]
    decision["summary"] = summary(decision, len(members))
    return decision


#: The keys of a bootstrap record the member's container document is made from (roles/etcd/vars/main.yml).
RECORD_KEYS = ("token", "state", "initial_cluster")


def unsteady(decision: t.Mapping[str, t.Any], members: t.Sequence[t.Mapping[str, t.Any]],
             hosts: t.Sequence[t.Mapping[str, t.Any]]) -> str:
    """Why the cluster is not proven steady by membership and records (empty when it is).

    `hosts` as `decide` checked them (with an optional `client_url`). Only a yes is binding: a
    reason sends the role down its full path, which judges again under the lock.
    """
    if decision["mode"] != "members":
        return "mode %s" % decision["mode"]
    if decision["repairing"] or decision["joining"]:
        return "hosts to repair %s or join %s" % (decision["repairing"], decision["joining"])
    if decision["retiring"]:
        return "members to remove: %s" % ", ".join(
            str(m.get("name") or ",".join(m.get("peer_urls") or ())) for m in decision["retiring"])
    if len(members) != len(hosts):
        return "%d member(s) for %d host(s)" % (len(members), len(hosts))
    for host in hosts:
        member = member_of(members, host["peer_url"]) or {}
        label = "member %s (%s)" % (host["name"], host["host"])
        if not member.get("started") or member.get("learner") or not member.get("healthy"):
            return "%s is not a started, healthy voting member%s" % (
                label, ": %s" % member["reason"] if member.get("reason") else "")
        if member.get("name") != host["name"]:
            return "%s runs under the name %r" % (label, member.get("name"))
        client_url = host.get("client_url")
        if client_url and normalise_url(client_url) not in {normalise_url(u) for u in member.get("client_urls") or ()}:
            return "%s advertises client URLs %s, not %s" % (label, list(member.get("client_urls") or ()), client_url)
        record = host["record"] or {}
        if not record.get("bootstrapped") or any(not record.get(k) for k in RECORD_KEYS):
            return "%s: its bootstrap record is missing or incomplete" % label
        if str(record.get("token")) != decision["token"]:
            return "%s: its bootstrap record names token %r, not %r" % (label, record.get("token"), decision["token"])
    return ""


def summary(decision: t.Mapping[str, t.Any], answering: int) -> str:
    text = "mode %s; %d member(s) answering" % (decision["mode"], answering)
    if decision["mode"] == "members":
        text += "; join %s, repair %s, remove %s" % (
            decision["joining"], decision["repairing"], [m.get("name") or "" for m in decision["retiring"]])
        text += "; steady" if decision.get("steady") else "; not steady (%s)" % decision.get("unsteady", "")
    return text


def _check_host(host: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    missing = [k for k in ("host", "peer_url") if not host.get(k)]
    if missing:
        raise DecisionError("host entry %r lacks %s" % (dict(host), ", ".join(missing)))
    record = host.get("record")
    if record is not None and not isinstance(record, t.Mapping):
        raise DecisionError("host %s: the bootstrap record must be a mapping, got %r" % (host["host"], record))
    return {"host": str(host["host"]), "name": str(host.get("name") or host["host"]), "peer_url": str(host["peer_url"]),
            "client_url": str(host.get("client_url") or ""), "data": bool(host.get("data")),
            "record": dict(record) if record else None}


def _unique(values: t.Iterable[str]) -> t.List[str]:
    seen: t.List[str] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen

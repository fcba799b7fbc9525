# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The truth of state: the plan next to what every engine runs, one verdict per container.

Input: the plan (per host the container documents `stack_plan` renders, and its placement), and
per host what its engine answered (`HostView`: reachable or not, the cluster's containers from
one listing, optionally what inspect adds, the count of foreign containers, local image ids).
Output (`status`): one entry per planned container with its expected host, every container found
for it on any host and a verdict, one entry per container of the cluster the plan does not have
(`orphan`), per host its engine, counts and reserved capacity, and counts per verdict.

A container is identified by its labels (cluster, instance, service), not by its name, so a copy
started by hand under another name, or on another host, is found. Drift is judged as `_converge`
judges it: the config-hash label against the document's hash (current or the 0.1 one, with
secret references hashed as `_secrets.hashable` does), the labels stackfleet sets, the local
image id of the document's image, and, when the container was inspected, the fields Docker
changes in place (cpu, memory, restart policy).

Pure: no Ansible, Docker or HTTP imports.
"""

from __future__ import annotations

import dataclasses
import re
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils import _difference, _secrets
from ansible_collections.stackfleet.cluster.plugins.module_utils._converge import Observed, container_labels, is_temp
from ansible_collections.stackfleet.cluster.plugins.module_utils._desired import config_hash, container_name
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import (
    LABEL_CLUSTER,
    LABEL_CONFIG_HASH,
    LABEL_DEPLOY,
    LABEL_INSTANCE,
    LABEL_SERVICE,
)

OK = "ok"
MISSING = "missing"
STOPPED = "stopped"
UNHEALTHY = "unhealthy"
DRIFTED = "drifted"
DUPLICATE = "duplicate"
ORPHAN = "orphan"
HOST_DOWN = "host-down"
#: Every verdict, worst first: a container gets the first that applies.
VERDICTS = (HOST_DOWN, MISSING, DUPLICATE, DRIFTED, STOPPED, UNHEALTHY, ORPHAN, OK)

#: Docker states of a container that does not run (a `dead` or `removing` one never runs again).
NOT_RUNNING_STATES = ("exited", "created", "paused", "dead", "removing")
_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


@dataclasses.dataclass(frozen=True)
class Seen:
    """One container of the cluster on one host: its listing row, plus what only inspect says
    (None when it was not inspected)."""

    host: str
    observed: Observed
    restart_count: t.Optional[int] = None
    started_at: t.Optional[str] = None
    health: t.Optional[str] = None  # healthy | unhealthy | starting; from inspect, else from the listing's status
    #: The container's real configuration as a document (`_docker.doc_from_inspect`), for the fields
    #: the hash leaves out (resources, restart) and to name what changed.
    config: t.Optional[t.Mapping[str, t.Any]] = None

    @property
    def identity(self) -> str:
        """The container name its labels make it, or its own name without them."""
        labels = self.observed.labels
        if labels.get(LABEL_INSTANCE) and labels.get(LABEL_SERVICE):
            return container_name(str(labels.get(LABEL_CLUSTER)), labels[LABEL_INSTANCE], labels[LABEL_SERVICE])
        return self.observed.name

    @property
    def health_status(self) -> t.Optional[str]:
        if self.health:
            return self.health
        match = _HEALTH.search(self.observed.status or "")
        if not match:
            return None
        return "starting" if match.group(1) == "health: starting" else match.group(1)


@dataclasses.dataclass(frozen=True)
class HostView:
    """What one engine answered. An unreachable host has `reachable=False` and an `error`."""

    name: str
    reachable: bool
    version: t.Optional[str] = None
    error: t.Optional[str] = None
    containers: t.Sequence[Seen] = ()  # the cluster's containers (label io.stackfleet.cluster=<cluster>)
    foreign: int = 0  # containers on the engine without the cluster's label
    image_ids: t.Mapping[str, t.Optional[str]] = dataclasses.field(default_factory=dict)  # image ref -> local id
    seconds: t.Optional[float] = None


def accepted_hashes(doc: t.Mapping[str, t.Any], secrets: t.Optional[t.Mapping[str, t.Any]]
                    ) -> t.Tuple[t.Optional[t.Mapping[str, t.Any]], t.FrozenSet[str]]:
    """(the document as its hash covers it, the hashes a current container may carry), or
    (None, empty) when a secret reference has no value: the hash cannot be known then."""
    try:
        hashable = _secrets.hashable(doc, secrets)
    except _secrets.SecretError:
        return None, frozenset()
    return hashable, frozenset((config_hash(hashable), config_hash(hashable, legacy=True)))


def placement_key(doc: t.Mapping[str, t.Any], placement: t.Mapping[str, str]) -> str:
    """The document's key in the placement: `<instance>.<service>` for a split stack, else the instance."""
    split = "%s.%s" % (doc.get("instance"), doc.get("service"))
    return split if split in placement else str(doc.get("instance") or doc.get("name"))


def _found(seen: Seen, matches: t.Optional[bool]) -> t.Dict[str, t.Any]:
    obs = seen.observed
    return {
        "host": seen.host, "name": obs.name, "id": obs.id, "state": obs.state, "status": obs.status,
        "health": seen.health_status, "restart_count": seen.restart_count, "started_at": seen.started_at,
        "image": obs.image, "image_id": obs.image_id, "config_hash_matches": matches,
    }


def _drift(doc: t.Mapping[str, t.Any], hashable: t.Optional[t.Mapping[str, t.Any]], hashes: t.AbstractSet[str],
           seen: Seen, image_id: t.Optional[str]) -> t.Tuple[t.Optional[bool], t.Optional[str]]:
    """(config hash matches: True/False/None when unknown, why the container is drifted or None)."""
    obs = seen.observed
    have = obs.labels.get(LABEL_CONFIG_HASH)
    matches: t.Optional[bool] = None
    if have is None:
        return False, "no %s label (created or replaced outside stackfleet)" % LABEL_CONFIG_HASH
    if hashable is not None:
        matches = have in hashes
        if not matches:
            fields = _difference.differences(seen.config, hashable) if seen.config is not None else []
            if fields:
                return False, "configuration changed: %s" % "; ".join(_difference.texts(fields))
            return False, "configuration changed (hash %s, the plan's is %s)" % (have[:12], config_hash(hashable)[:12])
    expected = container_labels(hashable if hashable is not None else doc)
    edited = sorted(k for k, v in expected.items() if k != LABEL_CONFIG_HASH and obs.labels.get(k) != v)
    if edited:
        return matches, "labels differ from the plan's: %s" % ", ".join(edited)
    if image_id is not None and obs.image_id and obs.image_id != image_id:
        return matches, "image %s now points to %s (the container runs %s)" % (doc.get("image"), _short(image_id), _short(obs.image_id))
    if seen.config is not None:
        in_place = _difference.in_place_differences(seen.config, doc)
        if in_place:
            return matches, "changed in place: %s" % "; ".join(_difference.texts(in_place))
    return matches, None


def _short(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


def _judge(doc: t.Mapping[str, t.Any], expected: str, view: HostView, copies: t.Sequence[Seen],
           secrets: t.Optional[t.Mapping[str, t.Any]]) -> t.Tuple[str, str, t.List[t.Dict[str, t.Any]]]:
    """(verdict, reason, found) of one planned container."""
    hashable, hashes = accepted_hashes(doc, secrets)
    found: t.List[t.Dict[str, t.Any]] = []
    drift: t.Dict[str, t.Optional[str]] = {}
    for seen in copies:
        matches, why = _drift(doc, hashable, hashes, seen, view.image_ids.get(str(doc.get("image"))) if seen.host == expected else None)
        drift[seen.observed.id] = why
        found.append(_found(seen, matches))
    here = [s for s in copies if s.host == expected]
    elsewhere = sorted({s.host for s in copies if s.host != expected})
    if not view.reachable:
        extra = "; a copy runs on %s" % ", ".join(elsewhere) if elsewhere else ""
        return HOST_DOWN, "host %s is not reachable (%s)%s" % (expected, view.error or "no answer", extra), found
    if not here:
        if elsewhere:
            return MISSING, "not on %s; a copy is on %s (the next converge moves it)" % (expected, ", ".join(elsewhere)), found
        return MISSING, "no container on %s" % expected, found
    if len(copies) > 1:
        places = ["%s on %s (%s)" % (s.observed.name, s.host, s.observed.state) for s in copies]
        return DUPLICATE, "%d containers of this instance: %s" % (len(copies), ", ".join(places)), found
    seen = here[0]
    obs = seen.observed
    if drift[obs.id]:
        return DRIFTED, str(drift[obs.id]), found
    if obs.state in NOT_RUNNING_STATES:
        return STOPPED, "container is %s (%s)" % (obs.state, obs.status or "no status"), found
    if obs.state == "restarting":
        return UNHEALTHY, "container is restarting (%s)" % (obs.status or "no status"), found
    if seen.health_status == "unhealthy":
        return UNHEALTHY, "health check fails (%s)" % (obs.status or "unhealthy"), found
    notes = [obs.status or obs.state]
    if seen.restart_count:
        notes.append("restarted %d time%s" % (seen.restart_count, "" if seen.restart_count == 1 else "s"))
    if hashable is None:
        notes.append("config hash unknown: secrets not given")
    return OK, "; ".join(notes), found


def _resources(docs: t.Iterable[t.Mapping[str, t.Any]]) -> t.Dict[str, float]:
    cpus, memory = 0.0, 0.0
    for doc in docs:
        resources = doc.get("resources") or {}
        cpus += float(resources.get("cpus") or 0)
        memory += float(resources.get("memory_mb") or 0)
    return {"cpus": round(cpus, 3), "memory_mb": int(memory) if float(memory).is_integer() else round(memory, 1)}


def status(
    cluster: str,
    containers: t.Mapping[str, t.Sequence[t.Mapping[str, t.Any]]],
    views: t.Mapping[str, HostView],
    placement: t.Optional[t.Mapping[str, str]] = None,
    secrets: t.Optional[t.Mapping[str, t.Any]] = None,
    capacities: t.Optional[t.Mapping[str, t.Optional[t.Mapping[str, t.Any]]]] = None,
) -> t.Dict[str, t.Any]:
    """The verdicts, as the `stack_status` module returns them (see its RETURN).

    `containers` is the plan: host name → container documents. `views` holds what each engine
    answered; a planned host without a view counts as unreachable. `capacities` are the hosts'
    declared capacities (host documents' `capacity`; absent or empty: unlimited).
    """
    placement = placement or {}
    capacities = capacities or {}
    hosts = sorted(set(containers) | set(views))
    views = dict(views)
    for host in hosts:
        views.setdefault(host, HostView(host, False, error="no engine connection given"))

    by_identity: t.Dict[str, t.List[Seen]] = {}
    leftovers: t.List[Seen] = []
    for host in hosts:
        for seen in views[host].containers if views[host].reachable else ():
            if seen.observed.labels.get(LABEL_CLUSTER) != cluster:
                continue  # a view from a wider listing: only the cluster's containers are judged
            if is_temp(seen.observed.name):
                leftovers.append(seen)
            else:
                by_identity.setdefault(seen.identity, []).append(seen)

    entries: t.List[t.Dict[str, t.Any]] = []
    planned: t.Set[str] = set()
    for host in sorted(containers):
        for doc in containers[host]:
            name = str(doc["name"])
            planned.add(name)
            copies = sorted(by_identity.get(name, ()), key=lambda s: (s.host != host, s.host, s.observed.name))
            verdict, reason, found = _judge(doc, host, views[host], copies, secrets)
            entries.append({"name": name, "instance": doc.get("instance"), "service": doc.get("service"),
                            "deploy": doc.get("deploy"), "key": placement_key(doc, placement), "expected_host": host,
                            "verdict": verdict, "reason": reason, "found": found})
    for identity, copies in by_identity.items():
        if identity in planned:
            continue
        for seen in copies:
            entries.append(_orphan(seen, "not in the plan"))
    for seen in leftovers:
        entries.append(_orphan(seen, "leftover of an interrupted replacement, which the next converge removes"))
    entries.sort(key=lambda e: (e["name"], e["verdict"] != ORPHAN, e["found"][0]["host"] if e["verdict"] == ORPHAN else ""))

    counts = {verdict: 0 for verdict in VERDICTS}
    for entry in entries:
        counts[entry["verdict"]] += 1
    judged = verdicts_by_host(entries)
    result = {
        "cluster": cluster,
        "containers": entries,
        "instances": _instances(entries),
        "hosts": {host: _host(cluster, views[host], containers.get(host, ()), capacities.get(host), judged.get(host, {}))
                  for host in hosts},
        "counts": counts,
        "ok": all(entry["verdict"] == OK for entry in entries),
        "problems": ["%s: %s (%s)" % (e["name"], e["verdict"], e["reason"]) for e in entries if e["verdict"] != OK],
        "summary": summary(cluster, counts, views),
    }
    result["table"] = table(result)
    return result


def _orphan(seen: Seen, why: str) -> t.Dict[str, t.Any]:
    labels = seen.observed.labels
    return {"name": seen.observed.name, "instance": labels.get(LABEL_INSTANCE), "service": labels.get(LABEL_SERVICE),
            "deploy": labels.get(LABEL_DEPLOY), "key": None, "expected_host": None, "verdict": ORPHAN,
            "reason": "%s (%s on %s)" % (why, seen.observed.state, seen.host), "found": [_found(seen, None)]}


def _instances(entries: t.Sequence[t.Mapping[str, t.Any]]) -> t.Dict[str, t.Dict[str, t.Any]]:
    """Instance id → the worst verdict of its planned containers, their hosts and names."""
    instances: t.Dict[str, t.Dict[str, t.Any]] = {}
    for entry in entries:
        if entry["verdict"] == ORPHAN or not entry["instance"]:
            continue
        item = instances.setdefault(str(entry["instance"]), {"deploy": entry["deploy"], "verdict": OK, "hosts": [], "containers": []})
        item["containers"].append(entry["name"])
        if entry["expected_host"] not in item["hosts"]:
            item["hosts"].append(entry["expected_host"])
        if VERDICTS.index(entry["verdict"]) < VERDICTS.index(item["verdict"]):
            item["verdict"] = entry["verdict"]
    return dict(sorted(instances.items()))


def _host(cluster: str, view: HostView, docs: t.Sequence[t.Mapping[str, t.Any]], capacity: t.Optional[t.Mapping[str, t.Any]],
          mine: t.Mapping[str, t.Sequence[str]]) -> t.Dict[str, t.Any]:
    """One host's entry; `mine` is its part of `verdicts_by_host`."""
    reserved = _resources(docs)
    ours = sum(1 for seen in view.containers if seen.observed.labels.get(LABEL_CLUSTER) == cluster)
    declared = {"cpus": capacity.get("cpus"), "memory_mb": capacity.get("memory_mb")} if capacity else None
    over = bool(declared) and any(declared.get(k) is not None and reserved[k] > float(declared[k]) for k in reserved)  # type: ignore[union-attr]
    return {
        "reachable": view.reachable, "engine_version": view.version, "error": view.error, "seconds": view.seconds,
        "ours": ours if view.reachable else None, "foreign": view.foreign if view.reachable else None,
        "planned": len(docs), "reserved": reserved, "capacity": declared, "over_capacity": over,
        "verdicts": {verdict: len(mine[verdict]) for verdict in VERDICTS if mine.get(verdict)},
    }


def summary(cluster: str, counts: t.Mapping[str, int], views: t.Mapping[str, HostView]) -> str:
    """`lab: 7 containers on 3 hosts (2 down: h2, h3): 5 ok, 1 missing, 1 host-down`."""
    down = sorted(name for name, view in views.items() if not view.reachable)
    parts = ["%d %s" % (counts[v], v) for v in VERDICTS[::-1] if counts.get(v)] or ["nothing planned, nothing found"]
    hosts = "%d host%s" % (len(views), "" if len(views) == 1 else "s")
    if down:
        hosts += " (%d down: %s)" % (len(down), ", ".join(down))
    return "%s: %d containers on %s: %s" % (cluster, sum(counts.values()), hosts, ", ".join(parts))


def verdicts_by_host(entries: t.Iterable[t.Mapping[str, t.Any]]) -> t.Dict[str, t.Dict[str, t.List[str]]]:
    """Host → verdict → names of the containers judged on it (expected there, or an orphan found
    there), in one pass over the entries: each host's own part, as the inventory plugin gives it."""
    by_host: t.Dict[str, t.Dict[str, t.List[str]]] = {}
    for entry in entries:
        where = entry["expected_host"] if entry["verdict"] != ORPHAN else entry["found"][0]["host"]
        by_host.setdefault(str(where), {}).setdefault(entry["verdict"], []).append(entry["name"])
    return by_host


TABLE_COLUMNS = ("INSTANCE", "SERVICE", "HOST", "STATE", "VERDICT", "NOTE")
_NOTE_WIDTH = 90


def table(result: t.Mapping[str, t.Any]) -> t.List[str]:
    """The containers as `docker stack ps` shows tasks: one aligned line each, a header first.

    HOST is where the plan puts it (an orphan: where it runs), with `+h2` for every other host a
    copy was found on; STATE is the state of the copy on that host (`-` when there is none). The
    note is the verdict's reason, cut to one short line; an ok container's note is empty unless
    it restarted or its hash could not be checked."""
    rows = [TABLE_COLUMNS]
    for entry in result["containers"]:
        found = entry["found"]
        host = entry["expected_host"] or (found[0]["host"] if found else "-")
        here = [f for f in found if f["host"] == host]
        others = sorted({f["host"] for f in found if f["host"] != host})
        state = here[0]["state"] if here else "-"
        if here and here[0].get("health") in ("healthy", "unhealthy", "starting"):
            state = "%s (%s)" % (state, here[0]["health"])
        note = str(entry["reason"])
        if entry["verdict"] == OK:
            note = "; ".join(part for part in note.split("; ") if part.startswith(("restarted", "config hash unknown")))
        if len(note) > _NOTE_WIDTH:
            note = note[:_NOTE_WIDTH - 3] + "..."
        rows.append((str(entry["instance"] or "-"), str(entry["service"] or "-"), host + "".join(" +" + o for o in others),
                     state, entry["verdict"].upper() if entry["verdict"] != OK else OK, note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS) - 1)]
    lines = ["  ".join(row[i].ljust(width) for i, width in enumerate(widths)) + ("  " + row[-1] if row[-1] else "")
             for row in rows]
    return [line.rstrip() for line in lines] + [result["summary"]]

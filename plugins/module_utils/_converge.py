# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decide what to do on one host: desired container documents + observed containers → actions.

Pure logic, no Docker or Ansible imports. Drift is judged from what stackfleet itself wrote
(the config-hash label) and from facts the daemon cannot normalise differently from what the
user wrote (image id, state, the labels stackfleet set). Comparing option by option against
`docker inspect` is what causes recreate storms in docker_container (community.docker #934,
#1080, #85, #314); a hash of the desired document never changes unless the document does.

The exception is the few fields Docker changes in place (`_desired.IN_PLACE_FIELDS`: cpu and
memory limits, restart policy): they are left out of the hash and compared, each by its own
rule (`_difference`), with the container's real configuration, so a new limit is an UPDATE
(same container) and a hand edit of one is repaired. Containers created by 0.1 carry the hash
of the whole document (`config_hash(doc, legacy=True)`), which is accepted too.
"""

from __future__ import annotations

import dataclasses
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils import _difference, _secrets
from ansible_collections.stackfleet.cluster.plugins.module_utils._desired import config_hash  # the one owner of the hash
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import (
    LABEL_CLUSTER,
    LABEL_CONFIG_HASH,
    LABEL_DEPLOY,
    LABEL_INSTANCE,
    LABEL_SERVICE,
)

CREATE = "created"
RECREATE = "recreated"
START = "started"
REMOVE = "removed"
UNCHANGED = "unchanged"
#: Only fields Docker changes on the running container differ (`_difference.IN_PLACE_PATHS`):
#: `docker update`, same id, no restart.
UPDATE = "updated"
#: A replacement that failed: the new container was removed and the old one runs again (same id).
ROLLED_BACK = "rolled back"
#: Needs replacing but was not replaced (replace=false, or the rollout on the host stopped first).
PENDING = "pending"
#: Could not be done and was not attempted (its image cannot be had); the container is untouched.
FAILED = "failed"
#: Not desired here any more, but its instance runs on another host now (moved, drained, or this host
#: came back with a stale copy): left as it is until every host converged (`defer` of `plan`).
DEFERRED = "deferred"

#: Pull policies (module option `pull`, per-document key `pull`).
PULL_POLICIES = ("missing", "always", "never")
#: A replacement is created under `<name>` + TEMP_SUFFIX and renamed once it is proven.
TEMP_SUFFIX = ".sf-next"

#: Docker states that are fixed by starting (or unpausing) the existing container.
STARTABLE_STATES = ("exited", "created", "paused")
#: States where the existing container is beyond repair and is replaced.
BROKEN_STATES = ("dead", "removing")

SECRET_MASK = "********"
REQUIRED_KEYS = ("name", "cluster", "image")


class DocumentError(ValueError):
    """The container documents handed to the module are unusable; nothing was touched."""


def temp_name(name: str) -> str:
    """The name a replacement runs under until the old container is gone."""
    return name + TEMP_SUFFIX


def is_temp(name: str) -> bool:
    return name.endswith(TEMP_SUFFIX)


def pull_policy(doc: t.Mapping[str, t.Any], default: str = "missing") -> str:
    """The document's own `pull` key wins over the module's option."""
    return doc.get("pull") or default


def images_to_pull(docs: t.Sequence[t.Mapping[str, t.Any]], image_ids: t.Mapping[str, t.Optional[str]],
                   default: str = "missing") -> t.List[str]:
    """Image references to pull before anything is stopped: every `always` one, and every absent
    one unless all documents using it say `never`."""
    policies: t.Dict[str, t.Set[str]] = {}
    for doc in docs:
        policies.setdefault(doc["image"], set()).add(pull_policy(doc, default))
    return sorted(ref for ref, wanted in policies.items()
                  if "always" in wanted or (image_ids.get(ref) is None and wanted != {"never"}))


def parallelism(doc: t.Optional[t.Mapping[str, t.Any]]) -> int:
    """How many instances of the document's deploy may be replaced at once (`update.parallelism`)."""
    update = (doc or {}).get("update") or {}
    return max(1, int(update.get("parallelism") or 1))


def replacement_batches(actions: t.Sequence[Action], max_parallel: int) -> t.List[t.List[Action]]:
    """Batches of at most `max_parallel` replacements holding at most `update.parallelism`
    instances of any one deploy, in name order (a batch is filled greedily from the front)."""
    size = max(1, max_parallel)
    rest = list(actions)
    groups: t.List[t.List[Action]] = []
    while rest:
        batch: t.List[Action] = []
        per_deploy: t.Dict[str, int] = {}
        for action in list(rest):
            if len(batch) >= size:
                break
            deploy = str((action.doc or {}).get("deploy") or action.name)
            if per_deploy.get(deploy, 0) >= parallelism(action.doc):
                continue
            per_deploy[deploy] = per_deploy.get(deploy, 0) + 1
            batch.append(action)
            rest.remove(action)
        groups.append(batch)
    return groups


def container_labels(doc: t.Mapping[str, t.Any]) -> t.Dict[str, str]:
    """Every label the container gets: the user's, then stackfleet's own (which win)."""
    labels = {str(k): str(v) for k, v in (doc.get("labels") or {}).items()}
    labels.update({
        LABEL_CLUSTER: str(doc["cluster"]),
        LABEL_DEPLOY: str(doc.get("deploy") or ""),
        LABEL_INSTANCE: str(doc.get("instance") or ""),
        LABEL_SERVICE: str(doc.get("service") or ""),
        LABEL_CONFIG_HASH: config_hash(doc),
    })
    return labels


@dataclasses.dataclass(frozen=True)
class Observed:
    """One container as a single `GET /containers/json?all=1` row shows it."""

    id: str
    name: str
    image: str  # the reference it was created from
    image_id: str
    state: str  # created | running | paused | restarting | removing | exited | dead
    status: str  # human text, carries "(healthy)" / "(unhealthy)"
    labels: t.Mapping[str, str]
    created: int = 0

    def summary(self) -> t.Dict[str, t.Any]:
        """What `diff.before` and the `containers` return show: no env, nothing secret."""
        return {
            "name": self.name, "id": self.id, "image": self.image, "image_id": self.image_id,
            "state": self.state, "status": self.status, "created": self.created,
            "config_hash": self.labels.get(LABEL_CONFIG_HASH),
            "labels": dict(sorted(self.labels.items())),
        }


@dataclasses.dataclass(frozen=True)
class Action:
    name: str
    action: str
    reason: str
    doc: t.Optional[t.Mapping[str, t.Any]] = None
    observed: t.Optional[Observed] = None
    #: The fields that differ between the container and `doc` (`_difference.Change`), when known.
    fields: t.Tuple[_difference.Change, ...] = ()

    @property
    def changes(self) -> bool:
        return self.action != UNCHANGED

    def report(self) -> t.Dict[str, t.Any]:
        return {"name": self.name, "action": self.action, "reason": self.reason, "changes": _difference.texts(self.fields)}


@dataclasses.dataclass(frozen=True)
class Plan:
    removals: t.Tuple[Action, ...]  # done first: they free names and host ports
    rollout: t.Tuple[Action, ...]  # create / recreate / start, in name order, batched by the caller
    unchanged: t.Tuple[Action, ...]
    warnings: t.Tuple[str, ...] = ()
    pending: t.Tuple[Action, ...] = ()  # need replacing, left as they are (replace=false or after a failure)
    failed: t.Tuple[Action, ...] = ()  # cannot be done (image unavailable), untouched; each is an error
    updates: t.Tuple[Action, ...] = ()  # `docker update` in place (same id, no restart), done before the rollout
    deferred: t.Tuple[Action, ...] = ()  # removals that wait until every host converged (their instance moved)

    @property
    def actions(self) -> t.List[Action]:
        return sorted(self.removals + self.rollout + self.unchanged + self.pending + self.failed + self.updates + self.deferred,
                      key=lambda a: a.name)

    @property
    def changed(self) -> bool:
        return bool(self.removals or self.rollout or self.updates)


def validate(docs: t.Sequence[t.Mapping[str, t.Any]], cluster: str) -> None:
    """Every problem at once, before any host is touched."""
    problems = []
    seen = set()
    for index, doc in enumerate(docs):
        where = "containers[%d]" % index
        if not isinstance(doc, dict):
            problems.append("%s is not a mapping" % where)
            continue
        missing = [k for k in REQUIRED_KEYS if not doc.get(k)]
        if missing:
            problems.append("%s lacks %s" % (where, ", ".join(missing)))
            continue
        name = doc["name"]
        if doc["cluster"] != cluster:
            problems.append("%s (%s) belongs to cluster %r, not %r" % (where, name, doc["cluster"], cluster))
        if name in seen:
            problems.append("%s: container name %s appears twice" % (where, name))
        seen.add(name)
        env = doc.get("env") or {}
        if not isinstance(env, dict) or not all(isinstance(v, str) or _secrets.is_document_ref(v) for v in env.values()):
            problems.append("%s (%s): env must map names to strings (quote numbers and booleans) or to {secret: NAME}"
                            % (where, name))
        if doc.get("pull") is not None and doc["pull"] not in PULL_POLICIES:
            problems.append("%s (%s): pull must be one of %s" % (where, name, ", ".join(PULL_POLICIES)))
    if problems:
        raise DocumentError("; ".join(problems))


def _observed_by_name(observed: t.Iterable[Observed]) -> t.Dict[str, Observed]:
    return {o.name: o for o in observed if not is_temp(o.name)}


def missing_names(docs: t.Sequence[t.Mapping[str, t.Any]], observed: t.Iterable[Observed]) -> t.List[str]:
    """Desired names with no container of this cluster: only these can clash with a foreign one."""
    have = _observed_by_name(observed)
    return [d["name"] for d in docs if d["name"] not in have]


def _drift(doc: t.Mapping[str, t.Any], obs: Observed, image_id: t.Optional[str]) -> t.Optional[str]:
    """Why the existing container must be replaced, or None."""
    want_hash = config_hash(doc)
    have_hash = obs.labels.get(LABEL_CONFIG_HASH)
    if have_hash is None:
        return "no %s label (created or replaced outside stackfleet)" % LABEL_CONFIG_HASH
    if not _hash_matches(doc, obs):
        return "configuration changed (hash %s -> %s)" % (have_hash[:12], want_hash[:12])
    expected = container_labels(doc)
    edited = sorted(k for k, v in expected.items() if k != LABEL_CONFIG_HASH and obs.labels.get(k) != v)
    if edited:
        return "labels differ from the desired ones: %s" % ", ".join(edited)
    if image_id is not None and obs.image_id != image_id:
        return "image %s now points to %s (container runs %s)" % (doc["image"], _short(image_id), _short(obs.image_id))
    if obs.state in BROKEN_STATES:
        return "container is %s" % obs.state
    return None


def _hash_matches(doc: t.Mapping[str, t.Any], obs: Observed) -> bool:
    """The container's hash label is the document's: the current hash, or the 0.1 one (in-place
    fields included) that containers created before in-place updates carry. Such a legacy
    container is kept; once its resources or restart policy change in the document, its 0.1
    hash no longer matches and it is recreated once, under the current hash."""
    have_hash = obs.labels.get(LABEL_CONFIG_HASH)
    return have_hash is not None and have_hash in (config_hash(doc), config_hash(doc, legacy=True))


def _replacement(name: str, why: str, doc: t.Mapping[str, t.Any], obs: Observed,
                 real: t.Optional[t.Mapping[str, t.Any]]) -> Action:
    """A RECREATE whose reason names the fields that changed, when the container's real
    configuration is known and the hash says the configuration changed."""
    fields: t.Tuple[_difference.Change, ...] = ()
    if real is not None and not _hash_matches(doc, obs):
        fields = tuple(_difference.differences(real, doc))
        if fields:
            why = "configuration changed: %s" % "; ".join(_difference.texts(fields))
    return Action(name, RECREATE, why, doc, obs, fields)


def _in_place(name: str, doc: t.Mapping[str, t.Any], obs: Observed, real: t.Optional[t.Mapping[str, t.Any]]) -> t.Optional[Action]:
    """UPDATE when only in-place fields differ from the container's real configuration, RECREATE
    when one of them cannot be changed in place (lifting a limit), None when they are all current."""
    fields = tuple(_difference.in_place_differences(real, doc)) if real is not None else ()
    if not fields:
        return None
    text = "; ".join(_difference.texts(fields))
    if all(change.in_place for change in fields):
        then = ", then start it (container is %s)" % obs.state if obs.state in STARTABLE_STATES else ""
        return Action(name, UPDATE, "in place: %s%s" % (text, then), doc, obs, fields)
    return Action(name, RECREATE, "%s (Docker cannot lift a limit in place)" % text, doc, obs, fields)


def _short(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


def plan(
    docs: t.Sequence[t.Mapping[str, t.Any]],
    observed: t.Sequence[Observed],
    image_ids: t.Mapping[str, t.Optional[str]],
    prune: bool = True,
    foreign: t.Optional[t.Mapping[str, str]] = None,
    replace: bool = True,
    unavailable: t.Optional[t.Mapping[str, str]] = None,
    would_pull: t.AbstractSet[str] = frozenset(),
    prune_all: bool = False,
    configs: t.Optional[t.Mapping[str, t.Mapping[str, t.Any]]] = None,
    defer: t.AbstractSet[str] = frozenset(),
) -> Plan:
    """The actions that bring the host to `docs`.

    `observed` are the containers carrying this cluster's label; `image_ids` maps each desired
    image reference to the local image id (None: not present locally, so it cannot be compared);
    `foreign` maps names of containers *without* the cluster label to their ids — a desired
    name found there is an error (raised as DocumentError), never a removal.

    `unavailable` maps image references that cannot be had (pull failed, or absent with
    pull: never) to the reason: their containers are FAILED and left untouched, and no container
    of the host is replaced (a failure stops the rollout before it starts). `would_pull` (check
    mode) are references a real run pulls first; an absent one makes its container change.
    With `replace` false, containers that need replacing are PENDING instead. An empty `docs`
    removes nothing unless `prune_all`. Leftover temporary containers (TEMP_SUFFIX) of an
    interrupted replacement are removed, except one that runs while its stopped container waits
    for a replacement (PENDING): it is the instance's only running copy until that replacement.

    `configs` maps container names to their real configuration as documents
    (`_docker.doc_from_inspect`): in-place fields that differ make an UPDATE (or a RECREATE when
    Docker cannot apply them), and a RECREATE names the fields that changed. Without it,
    in-place fields are not compared at all.

    `defer` holds placement keys (instance ids, or `<instance>.<service>`) that run on another
    host now: a container of this cluster that is not desired here and belongs to one of them
    is DEFERRED instead of removed (destroy last: its replacement elsewhere must be up first).
    The keys of `docs` themselves run here, not elsewhere, and are ignored in `defer`: so a caller
    may pass every key of the plan (one list for all hosts) rather than each host's complement.
    """
    own = {doc.get("instance") for doc in docs} | {"%s.%s" % (doc.get("instance"), doc.get("service")) for doc in docs}
    defer = frozenset(defer) - own
    have = _observed_by_name(observed)
    unavailable = unavailable or {}
    clashes = sorted(d["name"] for d in docs if d["name"] not in have and d["name"] in (foreign or {}))
    if clashes:
        raise DocumentError(
            "container name(s) %s already used by container(s) not managed by this cluster (no %s label); "
            "remove or rename them by hand: stackfleet never touches containers it does not own"
            % (", ".join(clashes), LABEL_CLUSTER))
    rollout, unchanged, warnings = [], [], []  # type: t.List[Action], t.List[Action], t.List[str]
    pending, failed, updates = [], [], []  # type: t.List[Action], t.List[Action], t.List[Action]
    deferred = []  # type: t.List[Action]
    for doc in sorted(docs, key=lambda d: d["name"]):
        name = doc["name"]
        obs = have.get(name)
        if doc["image"] in unavailable:
            failed.append(Action(name, FAILED, "image %s: %s" % (doc["image"], unavailable[doc["image"]]), doc, obs))
            continue
        if obs is None:
            rollout.append(Action(name, CREATE, "missing" + (" (would pull %s)" % doc["image"] if doc["image"] in would_pull else ""), doc))
            continue
        why = _drift(doc, obs, image_ids.get(doc["image"]))
        if why is None and doc["image"] in would_pull and image_ids.get(doc["image"]) is None:
            why = "image %s is not on the host: a real run pulls it and replaces the container if it differs" % doc["image"]
        real = (configs or {}).get(name)
        in_place = None if why else _in_place(name, doc, obs, real)
        if why:
            rollout.append(_replacement(name, why, doc, obs, real))
        elif in_place is not None and in_place.action == UPDATE:
            updates.append(in_place)
        elif in_place is not None:
            rollout.append(in_place)
        elif obs.state in STARTABLE_STATES:
            rollout.append(Action(name, START, "container is %s" % obs.state, doc, obs))
        else:
            unchanged.append(Action(name, UNCHANGED, "up to date (%s)" % obs.state, doc, obs))
            if obs.state == "restarting" or "(unhealthy)" in obs.status:
                warnings.append("%s is %s: its configuration is current, so stackfleet leaves it to its restart "
                                "policy; see `docker logs %s`" % (name, obs.status or obs.state, name))
    if not replace or failed:
        held = "replace is false" if not replace else "not replaced: image problems on this host (%s) stop its rollout" % (
            ", ".join(a.name for a in failed))
        pending = [Action(a.name, PENDING, "%s (%s)" % (a.reason, held), a.doc, a.observed, a.fields) for a in rollout if a.action == RECREATE]
        rollout = [a for a in rollout if a.action != RECREATE]
    wanted = {d["name"] for d in docs}
    removals = []
    waiting = {a.name for a in pending}
    for obs in sorted(observed, key=lambda o: o.name):
        if not is_temp(obs.name):
            continue
        base = have.get(obs.name[:-len(TEMP_SUFFIX)])
        if obs.state == "running" and base is not None and base.state != "running" and base.name in waiting:
            # A replacement interrupted after the old container was stopped and the new one started (its run
            # was killed): the new one is the only copy running. Removing it now would leave the instance
            # down until its pending replacement; it goes when that replacement runs (replace: true).
            warnings.append("%s runs in place of the stopped %s (a replacement was interrupted): kept running until %s "
                            "is replaced" % (obs.name, base.name, base.name))
            continue
        removals.append(Action(obs.name, REMOVE, "leftover of an interrupted replacement", None, obs))
    if prune and not docs and not prune_all and have:
        warnings.append("no container documents for cluster %s on this host: nothing is removed (%d container(s) of the "
                        "cluster stay); set prune_all: true to empty the host" % (
                            next(iter(have.values())).labels.get(LABEL_CLUSTER), len(have)))
    elif prune:
        for obs in sorted(have.values(), key=lambda o: o.name):
            if obs.name in wanted:
                continue
            moved = moved_key(obs, defer)
            if moved is not None:
                deferred.append(Action(obs.name, DEFERRED, "%s runs on another host now: removed once every host converged" % moved,
                                       None, obs))
            else:
                removals.append(Action(obs.name, REMOVE, _removal_reason(obs, wanted), None, obs))
    return Plan(tuple(removals), tuple(rollout), tuple(unchanged), tuple(warnings), tuple(pending), tuple(failed), tuple(updates),
                tuple(deferred))


def moved_key(obs: Observed, keys: t.AbstractSet[str]) -> t.Optional[str]:
    """The placement key of `keys` the container belongs to (its instance id, or `<instance>.<service>`
    for a stack deployed with `colocate: false`), or None."""
    instance = obs.labels.get(LABEL_INSTANCE) or ""
    if not instance:
        return None
    for key in (instance, "%s.%s" % (instance, obs.labels.get(LABEL_SERVICE) or "")):
        if key in keys:
            return key
    return None


def _removal_reason(obs: Observed, wanted: t.AbstractSet[str]) -> str:
    """Say so when the container is a desired one renamed by hand (its labels still name it)."""
    labelled = "%s.%s.%s" % (obs.labels.get(LABEL_CLUSTER), obs.labels.get(LABEL_INSTANCE), obs.labels.get(LABEL_SERVICE))
    if labelled in wanted and labelled != obs.name:
        return "renamed by hand (its labels make it %s, which is recreated under that name)" % labelled
    return "not desired any more"


def batches(actions: t.Sequence[Action], size: int) -> t.List[t.List[Action]]:
    """Rolling groups: at most `size` containers are replaced at once."""
    size = max(1, size)
    return [list(actions[i:i + size]) for i in range(0, len(actions), size)]


def scrub_doc(doc: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """A document safe to print: env names stay (they show what is set), values are masked."""
    clean = dict(doc)
    if clean.get("env"):
        clean["env"] = {k: SECRET_MASK for k in clean["env"]}
    return clean

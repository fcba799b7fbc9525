# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Field by field differences between two container documents (docs/architecture.md), and
which of them Docker applies to an existing container in place (`docker update`).

`before` is what a container really has (`_docker.doc_from_inspect`), `after` the desired
document. Each field has one comparison rule here (the idea of community.docker's option
table, at the size of a container document). Env values are never part of a text or a diff
value: only env names, and whether each was added, removed or changed.

Pure: no Ansible, Docker or HTTP imports.
"""

from __future__ import annotations

import dataclasses
import json
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils import _secrets
from ansible_collections.stackfleet.cluster.plugins.module_utils._desired import IN_PLACE_FIELDS, _canonical

#: The fields compared, in the order they are reported. Nested mappings are compared per key
#: (`env.DB_HOST`, `labels.team`, `resources.memory_mb`, `healthcheck.interval`).
FIELDS = ("deploy", "instance", "service", "image", "command", "entrypoint", "env", "ports", "volumes", "labels",
          "network_mode", "healthcheck", "restart", "resources")
PER_KEY_FIELDS = ("env", "labels", "resources", "healthcheck")
_OWN_LABELS = "io.stackfleet."
#: Fields whose list order means nothing to Docker.
UNORDERED_FIELDS = ("ports", "volumes")
#: Field paths `docker update` changes on an existing container (same id, no restart).
IN_PLACE_PATHS = ("resources.cpus", "resources.memory_mb", "restart")
#: What an env value is shown as, wherever a value would be.
MASK = "<hidden>"
MISSING = object()


@dataclasses.dataclass(frozen=True)
class Change:
    """One field that differs. `before`/`after` are MISSING when the field or key is absent."""

    field: str
    before: t.Any
    after: t.Any

    @property
    def masked(self) -> bool:
        return self.field.startswith("env.")

    @property
    def in_place(self) -> bool:
        """Docker can apply it to the existing container: a restart policy, or a cpu/memory limit
        that stays a limit (Docker cannot lift a limit in place: 0 means "unchanged" to it)."""
        if self.field not in IN_PLACE_PATHS:
            return False
        if self.field.startswith("resources."):
            return _number(self.after) > 0
        return True

    def text(self) -> str:
        """`image: a → b`, `resources.memory_mb: 512 → 1024`, `env.DB_HOST: changed` (never a value)."""
        if self.before is MISSING:
            return "%s: added" % self.field if self.masked else "%s: added (%s)" % (self.field, _show(self.after))
        if self.after is MISSING:
            return "%s: removed" % self.field if self.masked else "%s: removed (was %s)" % (self.field, _show(self.before))
        if self.masked:
            return "%s: changed" % self.field
        return "%s: %s → %s" % (self.field, _show(self.before), _show(self.after))

    def diff_values(self) -> t.Tuple[t.Any, t.Any]:
        """(before, after) for a diff: env values masked, yet the two sides still differ."""
        if self.masked:
            return (MASK if self.before is not MISSING else None,
                    ("%s (changed)" % MASK if self.before is not MISSING else MASK) if self.after is not MISSING else None)
        return (None if self.before is MISSING else self.before, None if self.after is MISSING else self.after)


def _number(value: t.Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def _show(value: t.Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"))


def _same(field: str, before: t.Any, after: t.Any, container: str) -> bool:
    """The comparison rule of one field path."""
    if field == "resources.cpus":
        return round(_number(before) * 1e9) == round(_number(after) * 1e9)  # what Docker stores: NanoCpus
    if field == "resources.memory_mb":
        return round(_number(before) * 1048576) == round(_number(after) * 1048576)
    if field == "restart":
        return _restart(before) == _restart(after)
    if field.startswith("env.") and _secrets.is_ref(after):
        return _secret_matches(container, before, after)
    if field in UNORDERED_FIELDS:
        return sorted(_show(item) for item in before or ()) == sorted(_show(item) for item in after or ())
    return _canonical(before) == _canonical(after)


def _restart(value: t.Any) -> str:
    text = str(value or "no")
    return "on-failure" if text in ("on-failure:0",) else text


def _secret_matches(container: str, before: t.Any, after: t.Mapping[str, t.Any]) -> bool:
    """A reference carries the digest of its value (`_secrets.hashable`); without one the value is
    not known here, and only the hash can tell (the key is present on both sides)."""
    if isinstance(before, str) and after.get(_secrets.DIGEST_KEY):
        return _secrets.digest(container, before) == after[_secrets.DIGEST_KEY]
    return True


def differences(before: t.Mapping[str, t.Any], after: t.Mapping[str, t.Any], fields: t.Sequence[str] = FIELDS) -> t.List[Change]:
    """Every field of `fields` that differs, nested mappings key by key, in a stable order.

    Ports are not compared when both sides use the host's network: Docker drops port bindings
    there (`_docker.create_arguments`), so the container cannot show them.
    """
    container = str(after.get("name") or before.get("name") or "")
    changes: t.List[Change] = []
    for field in fields:
        if field == "ports" and before.get("network_mode") == "host" and after.get("network_mode") == "host":
            continue
        old, new = before.get(field), after.get(field)
        if field in PER_KEY_FIELDS and (isinstance(old, t.Mapping) or isinstance(new, t.Mapping)) \
                and not (field == "healthcheck" and (old is None or new is None)):
            old, new = old or {}, new or {}
            for key in sorted(set(old) | set(new), key=str):
                if field == "labels" and str(key).startswith(_OWN_LABELS):
                    continue  # stackfleet's own (io.stackfleet.ports): the real document never shows them
                path = "%s.%s" % (field, key)
                a, b = old.get(key, MISSING), new.get(key, MISSING)
                if field == "resources":  # 0 and absent both mean "no limit"
                    a, b = (0 if a is MISSING else a), (0 if b is MISSING else b)
                if a is MISSING or b is MISSING or not _same(path, a, b, container):
                    changes.append(Change(path, a, b))
        elif not _same(field, old, new, container):
            changes.append(Change(field, old, new))
    return changes


def in_place_differences(before: t.Mapping[str, t.Any], after: t.Mapping[str, t.Any]) -> t.List[Change]:
    """The differences in the fields the config hash leaves out (`_desired.IN_PLACE_FIELDS`)."""
    return differences(before, after, [field for field in FIELDS if field in IN_PLACE_FIELDS])


def texts(changes: t.Iterable[Change]) -> t.List[str]:
    return [change.text() for change in changes]


def diff(changes: t.Sequence[Change]) -> t.Tuple[t.Dict[str, t.Any], t.Dict[str, t.Any]]:
    """`(before, after)` mappings of field path → value for a module's diff; env values masked."""
    before: t.Dict[str, t.Any] = {}
    after: t.Dict[str, t.Any] = {}
    for change in changes:
        old, new = change.diff_values()
        if change.before is not MISSING:
            before[change.field] = old
        if change.after is not MISSING:
            after[change.field] = new
    return before, after

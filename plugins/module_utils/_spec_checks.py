# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How `_spec` reports problems: `SpecError`, the message collector and typed accessors.

Each accessor checks one value, records `<source>: <key path>: <problem>` when it is
unusable and returns None (or a safe default), so validation goes on and every problem
of a file is reported at once.
"""

from __future__ import annotations

import difflib
import re
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._units import show

#: Cluster, service, stack and deploy names: they end up in container names
#: (`<cluster>.<instance>.<service>`, so no dots), etcd keys and label values.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_TRUE = ("true", "yes", "on")
_FALSE = ("false", "no", "off")


class SpecError(ValueError):
    """Every problem found in one stack file or host list."""

    def __init__(self, source: str, errors: t.Sequence[str]) -> None:
        self.source = source
        self.errors = list(errors)
        super().__init__(source, self.errors)

    def __str__(self) -> str:
        count = len(self.errors)
        header = "%s: %d error%s" % (self.source, count, "" if count == 1 else "s")
        return "\n".join([header] + self.errors)


class Errors:
    """Collects messages as `<source>: <key path>: <problem>`; warnings (a valid file that
    most likely does not say what was meant) in the same form, apart."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.messages: t.List[str] = []
        self.warnings: t.List[str] = []

    def _text(self, path: str, message: str) -> str:
        return "%s: %s: %s" % (self.source, path, message) if path else "%s: %s" % (self.source, message)

    def add(self, path: str, message: str) -> None:
        text = self._text(path, message)
        if text not in self.messages:
            self.messages.append(text)

    def warn(self, path: str, message: str) -> None:
        text = self._text(path, message)
        if text not in self.warnings:
            self.warnings.append(text)

    def raise_any(self) -> None:
        if self.messages:
            raise SpecError(self.source, self.messages)


def join(path: str, key: t.Any) -> str:
    return "%s.%s" % (path, key) if path else str(key)


def suggest(word: str, choices: t.Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return " (did you mean '%s'?)" % close[0] if close else ""


#: docker-compose keys pasted into a stack file -> what the stack file says instead, by where they
#: appear (a service, or the top level). Only keys with an answer; others get the list of keys.
COMPOSE_HINTS = {
    "service": {
        "environment": "write env: (a mapping NAME: value, or {secret: NAME} for a secret)",
        "env_file": "write the values in env:, or {secret: NAME} from stackfleet_secrets",
        "deploy": "replicas, placement and mode go in the top-level deploy: section (count:, constraint:, max_per_host:, "
                  "global: true), limits in resources: here",
        "depends_on": "group services in stacks: (colocate: true places an instance's services together); nothing waits "
                      "for another container, so give the dependency a healthcheck and let the app retry",
        "container_name": "delete it: names are always <cluster>.<instance>.<service>",
        "build": "build the image elsewhere and name it in image:",
        "expose": "write a bare container port in ports: (\"80\" is not published)",
        "networks": "write network_mode:",
        "mem_limit": "write resources: {memory: ...}",
        "cpus": "write resources: {cpus: ...}",
        "replicas": "write count: in the top-level deploy: section",
    },
    "deploy": {
        "replicas": "write count:",
        "mode": "write global: true for mode: global",
        "placement": "write constraint: (a JMESPath expression over the host document)",
        "max_replicas_per_node": "write max_per_host:",
    },
    "top": {
        "version": "delete it: a stack file has no version",
        "name": "write cluster:",
        "volumes": "delete it: named volumes in a service's volumes: are created on the host on first use",
        "networks": "write network_mode: on each service",
        "secrets": "give the values as stackfleet_secrets at converge time; a service refers to one as env: {NAME: {secret: name}}",
    },
}


def compose_hint(key: str, allowed: t.Sequence[str]) -> str:
    """A hint for a docker-compose key where a stack-file key was expected, or ""."""
    where = "service" if "image" in allowed else "top" if "cluster" in allowed else "deploy" if "count" in allowed else None
    hint = COMPOSE_HINTS.get(where or "", {}).get(key)
    return " (a docker-compose key: %s)" % hint if hint else ""


def is_scalar(value: t.Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, t.Mapping)


def to_str(value: t.Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- typed accessors: each reports its own error and returns None when the value is unusable


def mapping(errs: Errors, path: str, value: t.Any, allowed: t.Optional[t.Sequence[str]] = None,
            what: str = "a mapping") -> t.Optional[t.Mapping[str, t.Any]]:
    if not isinstance(value, t.Mapping):
        errs.add(path, "expected %s, got %s" % (what, show(value)))
        return None
    good = {}
    for key, item in value.items():
        if not isinstance(key, str):
            errs.add(path, "keys must be strings, got %s" % show(key))
        elif allowed is not None and key not in allowed and not (path == "" and key.startswith("x-")):
            hint = compose_hint(key, allowed) or suggest(key, allowed)
            errs.add(join(path, key), "unknown key%s; expected one of: %s" % (hint, ", ".join(allowed)))
        else:
            good[key] = item
    return good


def string(errs: Errors, path: str, value: t.Any, what: str = "a string") -> t.Optional[str]:
    if not isinstance(value, str) or not value.strip():
        errs.add(path, "expected %s, got %s" % (what, show(value)))
        return None
    return str(value)


def name(errs: Errors, path: str, value: t.Any, what: str) -> t.Optional[str]:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        errs.add(path, "expected %s: letters, digits, '_' and '-', starting with a letter or digit, at most 63 characters"
                 " (it becomes part of container names and etcd keys), got %s" % (what, show(value)))
        return None
    return str(value)


def boolean(errs: Errors, path: str, value: t.Any) -> t.Optional[bool]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    errs.add(path, "expected true or false, got %s" % show(value))
    return None


def integer(errs: Errors, path: str, value: t.Any, minimum: int, what: str) -> t.Optional[int]:
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is None or number < minimum:
        errs.add(path, "expected %s, got %s" % (what, show(value)))
        return None
    return number


def sequence(errs: Errors, path: str, value: t.Any, what: str = "a list") -> t.Optional[t.List[t.Any]]:
    if isinstance(value, (list, tuple)):
        return list(value)
    errs.add(path, "expected %s, got %s" % (what, show(value)))
    return None


def parsed(errs: Errors, path: str, parse: t.Callable[[t.Any], t.Any], value: t.Any) -> t.Any:
    try:
        return parse(value)
    except ValueError as exc:
        errs.add(path, str(exc))
        return None


def string_value(errs: Errors, path: str, value: t.Any) -> str:
    if value is None or not is_scalar(value) and not isinstance(value, bool):
        errs.add(path, "expected a string, got %s (write \"\" for an empty value)" % show(value))
        return ""
    return to_str(value)

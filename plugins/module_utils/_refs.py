# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restricted reference syntax of stack file values (`{{ instance.id }}` ...).

Stack file values are untrusted data: they must never reach a template engine. This
module recognises a closed set of `{{ ... }}` forms with regular expressions and
substitutes plain strings; `_spec` validates references, `_desired` resolves them.
A `{{ ... }}` whose expression does not start with one of the reserved roots
(`cluster`, `instance`, `deploy`) is left alone as literal text.
"""

from __future__ import annotations

import re
import typing as t

_NAME = r"[A-Za-z0-9][A-Za-z0-9_-]*"
_CURLY = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_ROOT = re.compile(r"\s*(cluster|instance|deploy)(?![A-Za-z0-9_])")
_FORMS = (
    (re.compile(r"cluster"), lambda m: ("cluster",)),
    (re.compile(r"instance\.(id|index|host|address)"), lambda m: ("instance", m.group(1))),
    (re.compile(r"instance\.services\.(%s)\.(host|name|port)" % _NAME), lambda m: ("sibling", m.group(1), m.group(2))),
    (re.compile(r"deploy\.(%s)\.(%s)\.addresses" % (_NAME, _NAME)), lambda m: ("addresses", m.group(1), m.group(2))),
)

#: The accepted forms, for error messages and docs.
SYNTAX = ("{{ cluster }}", "{{ instance.id }}", "{{ instance.index }}", "{{ instance.host }}",
          "{{ instance.address }}", "{{ instance.services.<service>.host }}",
          "{{ instance.services.<service>.name }}", "{{ instance.services.<service>.port }}",
          "{{ deploy.<key>.<service>.addresses }}")

#: A parsed reference: ("cluster",), ("instance", field), ("sibling", service, field)
#: or ("addresses", deploy_key, service).
Ref = t.Tuple[str, ...]


class RefSyntaxError(ValueError):
    """A `{{ ... }}` that starts with a reserved root but is not one of `SYNTAX`."""


def _parse(expression: str) -> t.Optional[Ref]:
    """None for literal text; a Ref for a known form; RefSyntaxError otherwise."""
    if not _ROOT.match(expression):
        return None
    stripped = expression.strip()
    for pattern, build in _FORMS:
        match = pattern.fullmatch(stripped)
        if match:
            return build(match)
    raise RefSyntaxError("unknown reference '{{ %s }}'; expected one of: %s (filters and expressions are not supported)"
                         % (stripped, ", ".join(SYNTAX)))


def render(ref: Ref) -> str:
    """The canonical `{{ ... }}` text of a parsed reference, for messages."""
    if ref[0] == "sibling":
        return "{{ instance.services.%s.%s }}" % (ref[1], ref[2])
    if ref[0] == "addresses":
        return "{{ deploy.%s.%s.addresses }}" % (ref[1], ref[2])
    return "{{ %s }}" % ".".join(ref)


def find(value: str) -> t.List[Ref]:
    """Every reference in `value`, in order. Raises RefSyntaxError on the first malformed one."""
    refs = []
    for match in _CURLY.finditer(value):
        ref = _parse(match.group(1))
        if ref is not None:
            refs.append(ref)
    return refs


def substitute(value: str, resolve: t.Callable[[Ref], str]) -> str:
    """`value` with every reference replaced by `resolve(ref)`; everything else untouched.

    The result is never scanned again, so a resolved value that itself contains
    `{{` cannot inject a reference.
    """
    def replace(match: re.Match[str]) -> str:
        ref = _parse(match.group(1))
        return match.group(0) if ref is None else resolve(ref)

    return _CURLY.sub(replace, value)

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Secret references in container documents: `env: {DB_PASSWORD: {secret: db_password}}`.

A container document only ever carries the reference `{"secret": NAME}`; the value comes
from the `containers` module's no_log option `secrets: {NAME: value}` and exists only in
memory, on its way to Docker. Three functions, one per use:

* `check(docs, secrets)` — every reference has a value, before anything is touched;
* `hashable(doc, secrets)` — the document the config hash is computed over: each reference
  gains the sha256 of (container name, NUL, value), so rotating a secret changes the hash of
  exactly the containers that use it, and two containers with the same secret do not carry
  the same digest (a leaked label tells nothing about another container or a guess);
* `env_for_engine(doc, secrets)` — the environment Docker gets, references replaced by values.

Pure: no Ansible, Docker or HTTP imports.
"""

from __future__ import annotations

import hashlib
import re
import typing as t

#: A secret name: an identifier, so it is a plain key in `stackfleet_secrets` (a vault file,
#: an AWX credential's extra vars) and can be neither a template nor a path.
SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
#: The one key of a reference in the stack file and in a container document.
REF_KEY = "secret"
DIGEST_KEY = "sha256"


class SecretError(ValueError):
    """References without a usable value; nothing was touched. `missing` lists (container, env key, secret)."""

    def __init__(self, missing: t.Sequence[t.Tuple[str, str, str]]) -> None:
        self.missing = list(missing)
        self.names = sorted({secret for _c, _k, secret in self.missing})
        super().__init__(
            "%d secret%s missing from the secrets option (stackfleet_secrets), nothing was changed: %s"
            % (len(self.names), "" if len(self.names) == 1 else "s",
               "; ".join("secret '%s' for %s env %s" % (secret, container, key) for container, key, secret in self.missing)))


def is_ref(value: t.Any) -> bool:
    """An env value that is a secret reference (with or without its digest)."""
    return isinstance(value, t.Mapping) and isinstance(value.get(REF_KEY), str)


def is_document_ref(value: t.Any) -> bool:
    """An env value as a container document carries a reference: exactly `{secret: NAME}` (before
    `hashable` adds the digest)."""
    return isinstance(value, dict) and set(value) == {REF_KEY} and isinstance(value[REF_KEY], str)


def refs(doc: t.Mapping[str, t.Any]) -> t.Dict[str, str]:
    """Env key → secret name, for every reference in `doc`."""
    return {str(key): str(value[REF_KEY]) for key, value in (doc.get("env") or {}).items() if is_ref(value)}


def value(secrets: t.Optional[t.Mapping[str, t.Any]], name: str) -> t.Optional[str]:
    """The secret's value as the string Docker gets, or None when it is missing or not a scalar."""
    item = (secrets or {}).get(name)
    if isinstance(item, bool) or not isinstance(item, (str, int, float)):
        return None
    return str(item)


def check(docs: t.Iterable[t.Mapping[str, t.Any]], secrets: t.Optional[t.Mapping[str, t.Any]]) -> None:
    """Raise SecretError naming every (container, env key, secret) whose secret has no value.

    A value is a string (a number is taken as its decimal text); None, booleans, lists and
    mappings count as missing.
    """
    missing = []
    for doc in docs:
        for key, name in sorted(refs(doc).items()):
            if value(secrets, name) is None:
                missing.append((str(doc.get("name")), key, name))
    if missing:
        raise SecretError(missing)


def digest(container: str, text: str) -> str:
    """sha256 hex of `container` NUL `value`: salted per container, and never the value itself."""
    return hashlib.sha256(container.encode("utf-8") + b"\0" + text.encode("utf-8")).hexdigest()


def hashable(doc: t.Mapping[str, t.Any], secrets: t.Optional[t.Mapping[str, t.Any]]) -> t.Mapping[str, t.Any]:
    """The document the config hash covers: each reference as `{secret: N, sha256: digest}`.

    A document without references is returned as it is (the same object), so its hash is the
    one it had before secrets existed. Call `check` first: a missing value raises SecretError.
    """
    names = refs(doc)
    if not names:
        return doc
    check([doc], secrets)
    env = dict(doc["env"])
    for key, name in names.items():
        env[key] = {REF_KEY: name, DIGEST_KEY: digest(str(doc["name"]), t.cast(str, value(secrets, name)))}
    copy = dict(doc)
    copy["env"] = env
    return copy


def env_for_engine(doc: t.Mapping[str, t.Any], secrets: t.Optional[t.Mapping[str, t.Any]]) -> t.Dict[str, str]:
    """The environment Docker gets: plain values as they are, references replaced by their values."""
    names = refs(doc)
    if names:
        check([doc], secrets)
    return {str(key): (t.cast(str, value(secrets, names[key])) if key in names else item)
            for key, item in (doc.get("env") or {}).items()}

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan's container documents in compact form, and back (docs/performance.md "stack_plan's result").

A plan's documents repeat themselves: the 6,100 documents of 1,000 hosts come from five
services, and most fields (image, resources, ports, labels, ...) are the same for every
instance of a service. Ansible visits every object of a task result several times (the worker,
the callback, `register`), so the full form cost 1.3 s of controller CPU at that size.

The compact form keeps one template per deploy and service, and per container only what
differs from it:

    templates:  {"<deploy>.<service>": {document fields shared by its instances}}
    containers: {host: [{"template": "<deploy>.<service>", "instance": "<id>", <differing fields>}]}

A container's `name` (`<cluster>.<instance>.<service>`) and `host` (its key in `containers`)
are never stored. `expand` gives back exactly the full documents.
"""

from __future__ import annotations

import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._desired import container_name

Document = t.Dict[str, t.Any]
# Fields every container has on its own, never in a template.
_OWN = ("name", "host", "instance")


class DocumentsError(ValueError):
    """A compact entry that cannot be expanded; the message names the host and the entry."""


def template_key(document: t.Mapping[str, t.Any]) -> str:
    return "%s.%s" % (document["deploy"], document["service"])


def compact(containers: t.Mapping[str, t.Sequence[Document]]) -> t.Tuple[t.Dict[str, t.List[Document]], t.Dict[str, Document]]:
    """Full documents (host → list) → (compact containers, templates). The template of a deploy
    and service is its first instance's document, by host then name: deterministic."""
    templates: t.Dict[str, Document] = {}
    compacted: t.Dict[str, t.List[Document]] = {}
    for host in sorted(containers):
        entries = compacted[host] = []
        for document in containers[host]:
            key = template_key(document)
            template = templates.get(key)
            if template is None:
                template = templates[key] = {k: v for k, v in document.items() if k not in _OWN}
            entry: Document = {"template": key, "instance": document["instance"]}
            for field, value in document.items():
                if field not in _OWN and (field not in template or template[field] != value):
                    entry[field] = value
            for field in template:
                if field not in document:  # never for render()'s documents, whose fields are all always present
                    raise DocumentsError("host %s: container %s lacks field %r of its template %s"
                                         % (host, document.get("name"), field, key))
            entries.append(entry)
    return {host: compacted[host] for host in containers}, templates


def expand(entries: t.Sequence[t.Any], templates: t.Mapping[str, t.Any], host: str) -> t.List[Document]:
    """One host's entries → its full documents. Full documents (no `template` key) pass through
    unchanged, so callers need not know which form a plan has."""
    documents: t.List[Document] = []
    for index, entry in enumerate(entries or ()):
        if not isinstance(entry, t.Mapping):
            raise DocumentsError("host %s: containers[%d] is a %s, not a mapping" % (host, index, type(entry).__name__))
        if "template" not in entry:
            documents.append(dict(entry))
            continue
        template = templates.get(entry["template"]) if isinstance(templates, t.Mapping) else None
        if not isinstance(template, t.Mapping):
            raise DocumentsError("host %s: containers[%d] names template %r, which the plan's templates do not have"
                                 % (host, index, entry["template"]))
        document = dict(template)
        document.update((k, v) for k, v in entry.items() if k != "template")
        try:
            document["name"] = container_name(document["cluster"], document["instance"], document["service"])
        except KeyError as exc:
            raise DocumentsError("host %s: containers[%d] (template %s) has no %s" % (host, index, entry["template"], exc)) from None
        document["host"] = host
        documents.append(document)
    return documents


def expand_all(containers: t.Mapping[str, t.Sequence[t.Any]], templates: t.Mapping[str, t.Any]) -> t.Dict[str, t.List[Document]]:
    return {host: expand(entries, templates, host) for host, entries in containers.items()}

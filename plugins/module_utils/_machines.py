# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Machines that registered themselves in etcd, as host documents.

Key layout (docs/inventory.md), next to the placement record of `_state`:

    /stackfleet/<cluster>/machines/<name>   JSON host document {name, address, labels, capacity, facts}

A machine (for example a Flatcar node's first-boot unit) writes its own key, ideally
attached to a lease it keeps alive, so a machine that dies drops out by itself. What
is read back is data someone else wrote: it is decoded defensively, never evaluated,
and validated by `_spec.load_hosts` before anything places onto it.
"""

from __future__ import annotations

import json
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import EtcdClient
from ansible_collections.stackfleet.cluster.plugins.module_utils._state import StateError, cluster_prefix

MACHINES_DIR = "machines/"


def machines_prefix(cluster: str) -> str:
    return cluster_prefix(cluster) + MACHINES_DIR


def machine_key(cluster: str, name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or not name.isprintable():
        raise StateError("machine name %r cannot be an etcd key segment" % (name,))
    return machines_prefix(cluster) + name


def encode_machine(document: t.Mapping[str, t.Any]) -> str:
    return json.dumps(dict(document), sort_keys=True, separators=(",", ":"))


def decode_machine(key: str, raw: bytes) -> t.Dict[str, t.Any]:
    """The host document stored at `key`; its name is the key's last segment, whatever the JSON says."""
    name = key.rsplit("/", 1)[-1]
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise StateError("%s: not a JSON host document: %s" % (key, err))
    if not isinstance(doc, dict):
        raise StateError("%s: expected a JSON object (a host document), got %s" % (key, type(doc).__name__))
    if doc.get("name", name) != name:
        raise StateError("%s: the document names host %r, the key names %r" % (key, doc.get("name"), name))
    return dict(doc, name=name)


def read_machines(client: EtcdClient, cluster: str) -> t.Tuple[t.List[t.Dict[str, t.Any]], t.List[str]]:
    """(host documents sorted by name, problems): one range request; an undecodable key is a problem, not a failure."""
    kvs = client.range(machines_prefix(cluster), prefix=True)[1]
    documents, problems = [], []
    for kv in sorted(kvs, key=lambda kv: kv.key):
        try:
            documents.append(decode_machine(kv.key.decode("utf-8", "replace"), kv.value))
        except StateError as err:
            problems.append(str(err))
    return documents, problems


def register_machine(client: EtcdClient, cluster: str, document: t.Mapping[str, t.Any], lease: int = 0) -> int:
    """Write (or overwrite) a machine's host document; returns the store revision."""
    name = document.get("name")
    return client.put(machine_key(cluster, name), encode_machine(document), lease=lease)  # type: ignore[arg-type]


def unregister_machine(client: EtcdClient, cluster: str, name: str) -> bool:
    return client.delete(machine_key(cluster, name)) > 0

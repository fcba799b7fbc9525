# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pure parts of the `stackfleet.cluster.stacks` inventory plugin.

Group names, host documents from host variables, the previous placement recovered from
container labels, Docker connection parameters from `stackfleet_docker_*` variables,
and marking outside data untrusted. No network and no inventory object here, so each
piece is unit-tested on its own; the plugin wires them to Ansible, Docker and etcd.
"""

from __future__ import annotations

import re
import typing as t

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.template import is_trusted_as_template
from ansible.utils.unsafe_proxy import wrap_var
from ansible_collections.stackfleet.cluster.plugins.filter.host_documents import host_documents
from ansible_collections.stackfleet.cluster.plugins.module_utils import _status
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import (
    LABEL_CLUSTER,
    LABEL_DEPLOY,
    LABEL_INSTANCE,
    LABEL_PORTS,
    LABEL_SERVICE,
    Spec,
    parse_ports_label,
)

GROUP_PREFIX = "stackfleet_"
#: Host variables that make up a host document (the `host_documents` filter's mapping).
DOCUMENT_VARS = ("stackfleet_labels", "stackfleet_capacity", "stackfleet_drain", "ansible_host", "ansible_facts")
#: `stackfleet_docker_<option>` host variables → `_docker.CONNECTION_ARGSPEC` option names.
DOCKER_VARS = {
    "stackfleet_docker_host": "docker_host",
    "stackfleet_docker_tls": "tls",
    "stackfleet_docker_validate_certs": "validate_certs",
    "stackfleet_docker_ca_path": "ca_path",
    "stackfleet_docker_client_cert": "client_cert",
    "stackfleet_docker_client_key": "client_key",
    "stackfleet_docker_tls_hostname": "tls_hostname",
    "stackfleet_docker_api_version": "api_version",
    "stackfleet_docker_timeout": "timeout",
}
_BOOL_OPTIONS = ("tls", "validate_certs")
_NOT_GROUP_CHARS = re.compile(r"[^A-Za-z0-9_]")


def untrusted(value: t.Any) -> t.Any:
    """`value` in a form Ansible never renders as a template.

    On ansible-core 2.19 `wrap_var` strips the TrustedAsTemplate tag recursively (plain
    strings from json/yaml/Docker carry none; the plugin's own config file, read by
    Ansible's loader, does); on older cores it wraps strings as AnsibleUnsafe.
    Data without a string marked trusted (the container documents of every host, built by
    the engine) is returned as it is, uncopied: copying it once more cost a tenth of
    `ansible-inventory --list`, and `InventoryData.set_variable` copies what it stores anyway.
    """
    return value if _without_trust(value) else wrap_var(value)


def _without_trust(value: t.Any) -> bool:
    """True when no string in `value` (keys included) is trusted as a template, and `value` holds only
    dicts, lists, tuples, strings, numbers, booleans and None (their tagged forms too: an Origin tag is fine)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
            stack.extend(item)
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif isinstance(item, str):
            if item.__class__ is not str and is_trusted_as_template(item):  # a plain str carries no tag (fast path)
                return False
        elif item is not None and not isinstance(item, (int, float)):  # bool is an int
            return False
    return True


def group_name(name: str, kind: str = "") -> str:
    """`stackfleet_<name>` (deploy), `stackfleet_service_<name>`, `stackfleet_stack_<name>`.

    Every character outside [A-Za-z0-9_] becomes `_` — always, whatever
    TRANSFORM_INVALID_GROUP_CHARS says, so the names do not depend on configuration.
    """
    return _NOT_GROUP_CHARS.sub("_", GROUP_PREFIX + (kind + "_" if kind else "") + name)


def placement_groups(spec: Spec, units: t.Iterable[t.Any]) -> t.Tuple[t.Dict[str, t.List[str]], t.List[str]]:
    """(group name → sorted host names, warnings about names that collide after sanitising).

    Every deploy, service and stack of the spec has its group, empty when nothing of
    it is placed, so playbooks can name groups without guarding against their absence.
    `units` are `_placement.Unit`s (deploy, services, host).
    """
    origins: t.Dict[str, t.Set[str]] = {}
    members: t.Dict[str, t.Set[str]] = {}

    def declare(name: str, kind: str) -> str:
        group = group_name(name, kind)
        origins.setdefault(group, set()).add("%s %s" % (kind or "deploy", name))
        members.setdefault(group, set())
        return group

    for key in spec.deploys:
        declare(key, "")
    for key in spec.services:
        declare(key, "service")
    for key in spec.stacks:
        declare(key, "stack")
    for unit in units:
        deploy = spec.deploys[unit.deploy]
        members[declare(unit.deploy, "")].add(unit.host)
        if deploy.is_stack:
            members[declare(unit.deploy, "stack")].add(unit.host)
        for service in unit.services:
            members[declare(service, "service")].add(unit.host)
    warnings = ["groups: %s share the group name %s; its hosts are the union" % (" and ".join(sorted(o)), g)
                for g, o in sorted(origins.items()) if len(o) > 1]
    return {g: sorted(h) for g, h in sorted(members.items())}, warnings


def status_groups(result: t.Mapping[str, t.Any], hosts: t.Iterable[str]) -> t.Tuple[t.Dict[str, t.List[str]], t.Dict[str, t.Dict[str, t.List[str]]]]:
    """(group `stackfleet_status_<verdict>` → hosts with a container of that verdict, host → its own
    verdicts: verdict → container names) from a `_status.status` result. Every verdict has its group,
    empty when no host has it; each host's variable holds only the containers judged on it (planned
    there, or orphans found there), so the inventory grows with hosts + containers, not their product."""
    groups: t.Dict[str, t.List[str]] = {group_name(verdict, "status"): [] for verdict in _status.VERDICTS}
    per_host: t.Dict[str, t.Dict[str, t.List[str]]] = {}
    judged = _status.verdicts_by_host(result["containers"])
    for host in sorted(hosts):
        mine = judged.get(host, {})
        per_host[host] = mine
        for verdict in mine:
            groups[group_name(verdict, "status")].append(host)
    return groups, per_host


def host_instances(assignments: t.Mapping[str, str]) -> t.Dict[str, t.List[str]]:
    """Host name → its placement keys, in placement order."""
    by_host: t.Dict[str, t.List[str]] = {}
    for key, host in assignments.items():
        by_host.setdefault(host, []).append(key)
    return by_host


def host_document(name: str, variables: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """The host document `stack_plan` gets from the `host_documents` filter for the same variables."""
    return host_documents([name], {name: variables})[0]


def previous_from_labels(spec: Spec, labels_by_host: t.Mapping[str, t.Iterable[t.Mapping[str, str]]]
                         ) -> t.Tuple[t.Dict[str, str], t.List[str]]:
    """(placement, notes) recovered from the io.stackfleet.* labels of the cluster's containers.

    The placement key is the instance id, or `<instance>.<service>` for a stack deployed
    with `colocate: false` (docs/architecture.md). When containers of one key sit on
    several hosts (a half-finished move), the first host by name keeps it: the re-plan
    is then stable and the other copy is removed by the next converge.
    """
    placement: t.Dict[str, str] = {}
    notes: t.List[str] = []
    for host in sorted(labels_by_host):
        for labels in labels_by_host[host]:
            if labels.get(LABEL_CLUSTER) != spec.cluster or not labels.get(LABEL_INSTANCE):
                continue
            instance, service = labels[LABEL_INSTANCE], labels.get(LABEL_SERVICE) or ""
            deploy = spec.deploys.get(labels.get(LABEL_DEPLOY) or "")
            key = "%s.%s" % (instance, service) if deploy and deploy.is_stack and not deploy.colocate else instance
            owner = placement.setdefault(key, host)
            if owner != host:
                notes.append("%s runs on both %s and %s; keeping it on %s" % (key, owner, host, owner))
    return placement, sorted(set(notes))


def previous_ports_from_labels(spec: Spec, placement: t.Mapping[str, str],
                               labels_by_host: t.Mapping[str, t.Iterable[t.Mapping[str, str]]]
                               ) -> t.Dict[str, t.Dict[str, t.List[t.Dict[str, t.Any]]]]:
    """The dynamic host ports of the previous plan (stack_plan's `previous_ports`) from the
    io.stackfleet.ports label `_desired` writes on containers with `auto` ports, read only on the
    host that `placement` (from `previous_from_labels`) keeps the key on."""
    ports: t.Dict[str, t.Dict[str, t.List[t.Dict[str, t.Any]]]] = {}
    for host in sorted(labels_by_host):
        for labels in labels_by_host[host]:
            if labels.get(LABEL_CLUSTER) != spec.cluster or not labels.get(LABEL_PORTS) or not labels.get(LABEL_INSTANCE):
                continue
            instance, service = labels[LABEL_INSTANCE], labels.get(LABEL_SERVICE) or ""
            deploy = spec.deploys.get(labels.get(LABEL_DEPLOY) or "")
            key = "%s.%s" % (instance, service) if deploy and deploy.is_stack and not deploy.colocate else instance
            if placement.get(key) == host:
                ports.setdefault(key, {})[service] = parse_ports_label(labels[LABEL_PORTS])
    return ports


def docker_options(variables: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """The `containers` module's connection options from a host's `stackfleet_docker_*`
    variables: only those that are set (booleans read as Ansible reads them). Whatever is not
    set is left to the module's own defaults and secure-by-default rule (`_docker.resolve_endpoint`),
    so the inventory plugin, the stack role and the etcd role reach an engine the same way.
    The one mapping of these variables; the `docker_connection` filter exposes it to roles."""
    params: t.Dict[str, t.Any] = {}
    for var, option in DOCKER_VARS.items():
        value = variables.get(var)
        if value is None or value == "":
            continue
        params[option] = boolean(value, strict=False) if option in _BOOL_OPTIONS else value
    return params


def docker_params(variables: t.Mapping[str, t.Any], timeout: t.Optional[int] = None) -> t.Optional[t.Dict[str, t.Any]]:
    """`docker_options`, or None without `stackfleet_docker_host` (the default socket would be
    the controller's own engine, not the host's). `timeout` applies when the host sets none."""
    if not variables.get("stackfleet_docker_host"):
        return None
    params = docker_options(variables)
    if timeout and "timeout" not in params:
        params["timeout"] = timeout
    return params

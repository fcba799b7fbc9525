# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Desired container documents from a spec and a placement, and their config hash.

Pure: no Ansible, Docker or HTTP imports. References such as
`{{ instance.services.mysql.host }}` are resolved here with `_refs`, never by a
template engine, because stack file values are untrusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils import _refs
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import LABEL_PORTS, Deploy, Host, Spec, port_id, ports_label
from ansible_collections.stackfleet.cluster.plugins.module_utils._spec import SpecError

#: Document fields that say where a container is or how it is rolled out, not what it is:
#: moving a document to another host, changing its pull policy or its deploy's update
#: parallelism does not change the container. (The name is hashed: it cannot drift.)
#: A document without new features must hash as in 0.1, so new non-container keys go here.
BOOKKEEPING_FIELDS = ("host", "pull", "update")
#: Configuration Docker changes on an existing container (`docker update`: same id, no restart).
#: Not hashed: `_converge` compares it with what the container really has (inspect), so a new
#: limit or restart policy is applied in place and a hand edit of it is repaired.
IN_PLACE_FIELDS = ("resources", "restart")


class RenderError(SpecError):
    """The placement does not fit the spec, or a reference cannot be resolved."""


class _Unit(t.NamedTuple):
    deploy: Deploy
    instance: str  # lamp-3, node-exporter-node-1
    index: t.Optional[int]  # None for a global instance
    service: str
    host: str


def container_name(cluster: str, instance: str, service: str) -> str:
    """`<cluster>.<instance>.<service>`, e.g. `prod.lamp-3.mysql`."""
    return "%s.%s.%s" % (cluster, instance, service)


def render(spec: Spec, placement_assignments: t.Mapping[str, str], hosts: t.Sequence[Host],
           ports: t.Optional[t.Mapping[str, t.Mapping[str, t.Sequence[t.Mapping[str, t.Any]]]]] = None,
           unavailable: t.Iterable[str] = ()) -> t.Dict[str, t.List[t.Dict[str, t.Any]]]:
    """Host name → container documents on it, sorted by name; every host is present.

    `unavailable` names hosts that are placed on but not running anything this run (the plan's
    missing hosts, where stateful instances are held), not among `hosts`: their documents are
    rendered (keyed by name, no address), and `deploy.<key>.<service>.addresses` leaves their
    instances out, so a load balancer never names a backend that cannot answer (nor a host it
    cannot resolve).

    `ports` is the plan's `Placement.ports` (placement key → service → published ports): it
    gives the host ports the planner chose for `auto` ports, which the documents carry.
    Raises RenderError when a placement key is missing, unknown or on an unknown host, or an
    `auto` port has no host port in `ports`.
    """
    errors: t.List[str] = []
    down = frozenset(unavailable)
    hosts = list(hosts) + [Host(name=name, labels={}, capacity=None) for name in sorted(down - {h.name for h in hosts})]
    by_name = {host.name: host for host in hosts}
    units = _units(spec, placement_assignments, hosts, errors)
    published = _published(spec, units, ports or {}, errors)
    for unit in units:
        if unit.host not in by_name:
            errors.append("%s: placement: %s runs on host '%s', which is not among the given hosts"
                          % (spec.source, _unit_key(unit), unit.host))
    if errors:
        raise RenderError(spec.source, errors)

    def address(host: str) -> str:
        return by_name[host].address or host

    siblings: t.Dict[str, t.Dict[str, str]] = {}  # instance → service → host
    backends: t.Dict[t.Tuple[str, str], t.List[t.Tuple[str, t.Optional[int]]]] = {}  # (deploy, service) → (host, port)
    for unit in units:
        siblings.setdefault(unit.instance, {})[unit.service] = unit.host
        if unit.host in down:
            continue
        first = published.get((unit.instance, unit.service))
        backends.setdefault((unit.deploy.key, unit.service), []).append((unit.host, first[0]["host_port"] if first else None))

    containers: t.Dict[str, t.List[t.Dict[str, t.Any]]] = {host.name: [] for host in hosts}
    names: t.Set[str] = set()
    for unit in units:
        name = container_name(spec.cluster, unit.instance, unit.service)
        if name in names:
            errors.append("%s: container %s: the name is produced twice; rename a deploy key or host" % (spec.source, name))
            continue
        names.add(name)

        def resolve(ref: _refs.Ref, unit: _Unit = unit) -> str:
            return _resolve(spec, unit, ref, siblings, backends, address, published)

        try:
            containers[unit.host].append(_document(spec, unit, name, resolve, published.get((unit.instance, unit.service))))
        except _Unresolved as exc:
            errors.append("%s: container %s: %s" % (spec.source, name, exc))
    if errors:
        raise RenderError(spec.source, errors)
    for documents in containers.values():
        documents.sort(key=lambda doc: doc["name"])
    return containers


def _unit_key(unit: _Unit) -> str:
    split = unit.deploy.is_stack and not unit.deploy.colocate
    return "%s.%s" % (unit.instance, unit.service) if split else unit.instance


def _units(spec: Spec, assignments: t.Mapping[str, str], hosts: t.Sequence[Host], errors: t.List[str]) -> t.List[_Unit]:
    """Every placed container, in deploy order then instance order (global: by host name)."""
    units: t.List[_Unit] = []
    owner: t.Dict[str, str] = {}  # placement key → deploy key
    host_names = sorted(host.name for host in hosts)
    for deploy in spec.deploys.values():
        if deploy.is_global:
            instances = [("%s-%s" % (deploy.key, host), None) for host in host_names]
        else:
            instances = [("%s-%d" % (deploy.key, index), index) for index in range(1, deploy.count + 1)]
        split = deploy.is_stack and not deploy.colocate
        for instance, index in instances:
            for service in deploy.services:
                key = "%s.%s" % (instance, service) if split else instance
                if key in owner and owner[key] != deploy.key:
                    errors.append("%s: placement: key %s is an instance of both deploy.%s and deploy.%s; rename one deploy"
                                  % (spec.source, key, owner[key], deploy.key))
                elif key in assignments:
                    owner[key] = deploy.key
                    units.append(_Unit(deploy, instance, index, service, str(assignments[key])))
                elif not deploy.is_global:  # a global deploy runs only on eligible hosts
                    errors.append("%s: placement: no host for %s (deploy.%s needs %d instances)"
                                  % (spec.source, key, deploy.key, deploy.count))
    for key in sorted(set(assignments) - set(owner)):
        errors.append("%s: placement: key %s matches no instance of the stack file" % (spec.source, key))
    return units


def _published(spec: Spec, units: t.Sequence[_Unit], ports: t.Mapping[str, t.Mapping[str, t.Sequence[t.Mapping[str, t.Any]]]],
               errors: t.List[str]) -> t.Dict[t.Tuple[str, str], t.List[t.Dict[str, t.Any]]]:
    """(instance, service) → its published ports with concrete host ports, in the service's
    (normalised) port order; `auto` ports take theirs from the plan's `ports`."""
    found: t.Dict[t.Tuple[str, str], t.List[t.Dict[str, t.Any]]] = {}
    for unit in units:
        service = spec.services[unit.service]
        chosen: t.Dict[str, t.Any] = {}
        if any(p.dynamic for p in service.ports):
            for entry in (ports.get(_unit_key(unit)) or {}).get(unit.service) or ():
                try:
                    chosen[port_id(entry)] = int(entry["host_port"])
                except (KeyError, TypeError, ValueError):
                    continue
        entries = []
        for port in service.ports:
            if port.dynamic:
                pid = port_id(dataclasses.asdict(port))
                if chosen.get(pid) is None:
                    errors.append("%s: placement: no host port for 'auto' port %s of %s in %s; render with the plan's ports"
                                  % (spec.source, pid, unit.service, _unit_key(unit)))
                    continue
                entries.append({"container_port": port.container_port, "protocol": port.protocol, "host_ip": port.host_ip,
                                "host_port": chosen[pid], "dynamic": True})
            elif port.host_port is not None:
                entries.append({"container_port": port.container_port, "protocol": port.protocol, "host_ip": port.host_ip,
                                "host_port": port.host_port, "dynamic": False})
        if entries:
            found[(unit.instance, unit.service)] = entries
    return found


class _Unresolved(ValueError):
    pass


def _resolve(spec: Spec, unit: _Unit, ref: _refs.Ref, siblings: t.Mapping[str, t.Mapping[str, str]],
             backends: t.Mapping[t.Tuple[str, str], t.List[t.Tuple[str, t.Optional[int]]]], address: t.Callable[[str], str],
             published: t.Mapping[t.Tuple[str, str], t.List[t.Dict[str, t.Any]]]) -> str:
    kind = ref[0]
    if kind == "cluster":
        return spec.cluster
    if kind == "instance":
        field = ref[1]
        if field == "id":
            return unit.instance
        if field == "host":
            return unit.host
        if field == "address":
            return address(unit.host)
        if unit.index is None:
            raise _Unresolved("'{{ instance.index }}' is not defined for global deploy '%s'" % unit.deploy.key)
        return str(unit.index)
    if kind == "sibling":
        service, field = ref[1], ref[2]
        if service not in siblings.get(unit.instance, {}):
            raise _Unresolved("'%s': instance %s has no service '%s'" % (_refs.render(ref), unit.instance, service))
        if field == "name":
            return container_name(spec.cluster, unit.instance, service)
        if field == "port":
            mine = published.get((unit.instance, service))
            if not mine:
                raise _Unresolved("'%s': service '%s' publishes no host port" % (_refs.render(ref), service))
            return str(mine[0]["host_port"])
        return address(siblings[unit.instance][service])
    key, service = ref[1], ref[2]
    if key not in spec.deploys or service not in spec.deploys[key].services:
        raise _Unresolved("'%s': no deploy '%s' running service '%s'" % (_refs.render(ref), key, service))
    first = next((p for p in spec.services[service].ports if p.dynamic or p.host_port is not None), None)
    ordered: t.List[str] = []
    for host, port in backends.get((key, service), ()):
        if first is not None and first.dynamic:  # instances share hosts: each is its own address:port
            ordered.append("%s:%s" % (address(host), port))
        elif address(host) not in ordered:  # one entry per host: it is a backend address list
            ordered.append(address(host))
    return ",".join(ordered)


def _document(spec: Spec, unit: _Unit, name: str, resolve: t.Callable[[_refs.Ref], str],
              published: t.Optional[t.List[t.Dict[str, t.Any]]] = None) -> t.Dict[str, t.Any]:
    service = spec.services[unit.service]
    config = _fresh(service.config)
    if any(p.dynamic for p in service.ports):
        chosen = {port_id(p): p["host_port"] for p in published or () if p["dynamic"]}
        for n, port in enumerate(service.ports):  # config["ports"] is service.ports, in the same order
            if port.dynamic and port_id(config["ports"][n]) in chosen:
                config["ports"][n]["host_port"] = chosen[port_id(config["ports"][n])]
        # read back by the inventory plugin's Docker path (the previous ports of a plan without etcd)
        config["labels"][LABEL_PORTS] = ports_label(p for p in published or () if p["dynamic"])
    for field in ("command", "entrypoint"):
        if config.get(field) is not None:
            config[field] = [_refs.substitute(item, resolve) for item in config[field]]
    config["env"] = {key: _refs.substitute(value, resolve) if isinstance(value, str) else value  # a {secret: NAME} stays a reference
                     for key, value in config.get("env", {}).items()}
    for volume in config.get("volumes", ()):
        volume["source"] = _refs.substitute(volume["source"], resolve)
    document = {"name": name, "cluster": spec.cluster, "deploy": unit.deploy.key, "instance": unit.instance,
                "service": unit.service, "host": unit.host, "image": service.image}
    document.update(config)
    document["update"] = {"parallelism": unit.deploy.parallelism}
    return document


def _fresh(value: t.Any) -> t.Any:
    """A copy of a service's JSON-shaped config that the document may change: copy.deepcopy did the
    same at 4x the cost (most of rendering 6,100 documents). Exact types first: isinstance against
    typing's Mapping is what made the first version slow."""
    kind = type(value)
    if kind is dict:
        return {key: _fresh(item) for key, item in value.items()}
    if kind is list:
        return [_fresh(item) for item in value]
    if kind in (str, int, float, bool) or value is None:
        return value
    if kind is tuple:
        return tuple(_fresh(item) for item in value)
    if isinstance(value, t.Mapping):
        return {key: _fresh(item) for key, item in value.items()}
    return value


def _canonical(value: t.Any) -> t.Any:
    """JSON-ready value where 1 and 1.0 are the same: a round trip through YAML or a module's
    arguments may turn one into the other, and that must not look like drift."""
    if isinstance(value, t.Mapping):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return str(value)
    return value


def config_hash(document: t.Mapping[str, t.Any], legacy: bool = False) -> str:
    """sha256 hex of the canonical JSON of everything in `document` except `BOOKKEEPING_FIELDS`
    and `IN_PLACE_FIELDS`: the label written on every container created now.

    `legacy=True` is the 0.1 hash (in-place fields included), which containers created by 0.1
    carry: `_converge` accepts either, so upgrading recreates nothing (docs/containers.md).
    Stable across Python versions and dict orders: keys sorted, no whitespace, ASCII escapes.
    """
    skipped = BOOKKEEPING_FIELDS if legacy else BOOKKEEPING_FIELDS + IN_PLACE_FIELDS
    relevant = {key: value for key, value in document.items() if key not in skipped}
    text = json.dumps(_canonical(relevant), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

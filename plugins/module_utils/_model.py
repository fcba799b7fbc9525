# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validated, normalised form of a stack file and of hosts.

Pure data: `_spec` builds these from YAML, `_placement` consumes them, `_desired`
renders container documents from them. No Ansible, Docker or HTTP imports here.
"""

from __future__ import annotations

import dataclasses
import typing as t

if t.TYPE_CHECKING:  # pragma: no cover
    pass

STRATEGIES = ("spread", "binpack")
#: `host_port_range` when neither the service nor the file sets one (docs/stack-file.md).
DEFAULT_HOST_PORT_RANGE = (20000, 32000)

#: Label keys stackfleet writes on every container it creates.
LABEL_CLUSTER = "io.stackfleet.cluster"
LABEL_DEPLOY = "io.stackfleet.deploy"
LABEL_INSTANCE = "io.stackfleet.instance"
LABEL_SERVICE = "io.stackfleet.service"
LABEL_CONFIG_HASH = "io.stackfleet.config-hash"
#: The host ports the planner chose for a container's `auto` ports, `80/tcp=20001,...` (only
#: on containers that have some): the inventory plugin's Docker path reads them back.
LABEL_PORTS = "io.stackfleet.ports"


def port_id(port: t.Mapping[str, t.Any]) -> str:
    """`80/tcp`, `127.0.0.1:80/tcp`, `[::1]:80/tcp`: which dynamic port of a service, in labels and messages."""
    ip = str(port.get("host_ip") or "")
    where = ("[%s]:" % ip if ":" in ip else "%s:" % ip) if ip else ""
    return "%s%d/%s" % (where, int(port["container_port"]), port.get("protocol") or "tcp")


def ports_label(ports: t.Iterable[t.Mapping[str, t.Any]]) -> str:
    """The LABEL_PORTS value: `80/tcp=20001,127.0.0.1:81/tcp=20002`."""
    return ",".join("%s=%d" % (port_id(p), int(p["host_port"])) for p in ports)


def parse_ports_label(text: str) -> t.List[t.Dict[str, t.Any]]:
    """LABEL_PORTS back to [{container_port, protocol, host_ip, host_port}]; parts that do not parse
    are skipped (a label is outside data: the planner then simply chooses a fresh port)."""
    found = []
    for part in (text or "").split(","):
        where, _eq, host_port = part.strip().rpartition("=")
        if where.startswith("["):  # [::1]:80/tcp
            address, _sep, port = where[1:].partition("]:")
        else:
            address, _sep, port = where.rpartition(":")
        number, _slash, protocol = port.partition("/")
        try:
            found.append({"container_port": int(number), "protocol": protocol or "tcp", "host_ip": address,
                          "host_port": int(host_port)})
        except ValueError:
            continue
    return found


@dataclasses.dataclass(frozen=True)
class Resources:
    """What one container reserves on its host. Zero means "not reserved"."""

    cpus: float = 0.0
    memory_mb: int = 0  # MiB, rounded up from the stack file's unit

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpus + other.cpus, self.memory_mb + other.memory_mb)


@dataclasses.dataclass(frozen=True)
class Port:
    """One published port. `host_port` is None for a container-only (unpublished) port."""

    container_port: int
    protocol: str = "tcp"  # tcp | udp | sctp
    host_port: t.Optional[int] = None
    host_ip: str = ""
    dynamic: bool = False  # `auto:80`: the planner chooses host_port from the service's host_port_range

    @property
    def host_key(self) -> t.Optional[t.Tuple[int, str]]:
        """The host resource this port consumes: two containers on one host never share it."""
        return None if self.host_port is None else (self.host_port, self.protocol)


@dataclasses.dataclass(frozen=True)
class Service:
    """What a container is. `config` holds the normalised Docker-facing settings
    (command, entrypoint, env, ports, volumes, labels, restart, network_mode,
    healthcheck, resources, ...) exactly as they go into a container document."""

    name: str
    image: str
    resources: Resources
    ports: t.Tuple[Port, ...]
    config: t.Mapping[str, t.Any]
    # Extensions beyond stack-format.md (documented in docs/stack-file.md):
    host_port_range: t.Tuple[int, int] = DEFAULT_HOST_PORT_RANGE  # where its `auto` ports come from
    stateful: bool = False  # never moved off its host without allow_move (docs/placement.md "Held")

    @property
    def host_ports(self) -> t.FrozenSet[t.Tuple[int, str]]:
        """The static host ports it reserves (dynamic ones are chosen by the planner)."""
        return frozenset(p.host_key for p in self.ports if p.host_key is not None)

    @property
    def dynamic_ports(self) -> t.Tuple[Port, ...]:
        return tuple(p for p in self.ports if p.dynamic)


@dataclasses.dataclass(frozen=True)
class Deploy:
    """One entry of `deploy:` — a stack or a lone service and the rules for placing it.

    `units` are the services placed together on one host per instance: all of the
    stack's services when `colocate` is true, otherwise each service is its own unit
    (placement keys then are `<instance>.<service>`).
    """

    key: str
    services: t.Tuple[str, ...]  # service names, in stack order
    is_stack: bool
    colocate: bool = True
    count: int = 0
    is_global: bool = False
    constraint: t.Optional[str] = None  # source text, for messages
    constraint_fn: t.Optional[t.Callable[[t.Mapping[str, t.Any]], bool]] = dataclasses.field(
        default=None, compare=False, repr=False)  # compiled once; host document -> eligible
    conflicts: t.Tuple[str, ...] = ()  # deploy keys never on the same host as this one
    max_per_host: t.Optional[int] = None
    spread: t.Optional[str] = None  # host label to spread instances evenly over
    host: t.Optional[str] = None  # pinned host name
    # Extensions beyond stack-format.md (documented in docs/stack-file.md):
    affinity: t.Tuple[str, ...] = ()  # deploy keys that must already run on the chosen host
    parallelism: int = 1  # update.parallelism: instances replaced at once, cluster-wide


@dataclasses.dataclass(frozen=True)
class Spec:
    """A whole validated stack file."""

    cluster: str
    strategy: str
    services: t.Mapping[str, Service]
    stacks: t.Mapping[str, t.Tuple[str, ...]]
    deploys: t.Mapping[str, Deploy]  # in file order
    source: str = "<inline>"  # file name for messages
    warnings: t.Tuple[str, ...] = ()  # `<source>: <key path>: <problem>` of a valid file that likely means something else


@dataclasses.dataclass(frozen=True)
class Host:
    """A host document as a constraint sees it (see stack-format.md, "Hosts")."""

    name: str
    labels: t.Mapping[str, str]
    capacity: t.Optional[Resources]  # None = unlimited
    facts: t.Mapping[str, t.Any] = dataclasses.field(default_factory=dict)
    address: t.Optional[str] = None  # how siblings reach it; defaults to name
    drain: bool = False  # drained: receives no instance; the ones kept there move (docs/placement.md)

    def document(self) -> t.Dict[str, t.Any]:
        """The mapping a JMESPath constraint is evaluated against."""
        cap = {} if self.capacity is None else {"cpus": self.capacity.cpus, "memory_mb": self.capacity.memory_mb}
        return {"name": self.name, "labels": dict(self.labels), "capacity": cap,
                "facts": dict(self.facts), "address": self.address or self.name}

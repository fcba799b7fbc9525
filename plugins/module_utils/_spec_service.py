# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One `services.<name>` entry → `Service`, with the normalised container config.

The config is exactly what a container document carries (docs/architecture.md,
"Container documents"): lists sorted where order means nothing to Docker, units
converted, Docker's defaults filled in, so equal intent gives equal documents and hashes.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils import _refs, _secrets
from ansible_collections.stackfleet.cluster.plugins.module_utils import _spec_checks as checks
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import DEFAULT_HOST_PORT_RANGE, Port, Resources, Service
from ansible_collections.stackfleet.cluster.plugins.module_utils._units import parse_cpus, parse_duration, parse_memory, show

SERVICE_KEYS = ("image", "command", "entrypoint", "env", "ports", "volumes", "labels", "restart", "network_mode",
                "resources", "healthcheck", "pull", "host_port_range", "stateful")
#: The host part of a port entry that asks the planner for a host port (`auto:80`).
AUTO = "auto"
#: Image pull policies (`pull:` of a service; absent = the containers module's own `pull` option).
PULL_POLICIES = ("missing", "always", "never")
RESOURCE_KEYS = ("cpus", "memory")
HEALTHCHECK_KEYS = ("test", "interval", "timeout", "retries", "start_period")
#: Healthcheck defaults are Docker's, so an omitted key means what it means to `docker run`.
HEALTHCHECK_DEFAULTS = {"interval": 30.0, "timeout": 30.0, "retries": 3, "start_period": 0.0}
_VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]+")
_NETWORK_MODE = re.compile(r"(bridge|host|none|container:[A-Za-z0-9][A-Za-z0-9_.-]*|[A-Za-z0-9][A-Za-z0-9_.-]*)")
_RESTART = re.compile(r"(no|always|unless-stopped|on-failure(:[0-9]+)?)")
_ENV_NAME = re.compile(r"[^=\s\x00]+")
_PORT_PART = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_PROTOCOLS = ("tcp", "udp", "sctp")
_RESERVED_LABEL_PREFIX = "io.stackfleet."
_DOCKER_MIN_MEMORY_MB = 6


def load_service(errs: checks.Errors, name: str, raw: t.Any,
                 host_port_range: t.Tuple[int, int] = DEFAULT_HOST_PORT_RANGE) -> t.Optional[Service]:
    """`host_port_range`: the file's top-level range, used when the service sets none."""
    path = checks.join("services", name)
    before = len(errs.messages)
    body = checks.mapping(errs, path, raw, SERVICE_KEYS, what="a mapping with at least image")
    if body is None:
        return None
    image = None
    if "image" not in body:
        errs.add(checks.join(path, "image"), "missing; every service needs an image, for example 'image: mariadb:11'")
    elif not isinstance(body["image"], str) or not body["image"].strip() or any(c.isspace() for c in body["image"]):
        errs.add(checks.join(path, "image"), "expected an image reference such as 'mariadb:11', got %s" % show(body["image"]))
    else:
        image = str(body["image"])

    network_mode = _network_mode(errs, checks.join(path, "network_mode"), body.get("network_mode"))
    ports = _ports(errs, checks.join(path, "ports"), body.get("ports"), network_mode)
    resources = _resources(errs, checks.join(path, "resources"), body.get("resources"))
    config = {
        "command": _command(errs, checks.join(path, "command"), body.get("command")),
        "entrypoint": _command(errs, checks.join(path, "entrypoint"), body.get("entrypoint")),
        "env": _env(errs, checks.join(path, "env"), body.get("env")),
        "ports": [{"container_port": p.container_port, "protocol": p.protocol, "host_port": p.host_port, "host_ip": p.host_ip}
                  for p in ports],
        "volumes": _volumes(errs, checks.join(path, "volumes"), body.get("volumes")),
        "labels": _labels(errs, checks.join(path, "labels"), body.get("labels")),
        "restart": _restart(errs, checks.join(path, "restart"), body.get("restart")),
        "network_mode": network_mode,
        "resources": {"cpus": resources.cpus, "memory_mb": resources.memory_mb},
        "healthcheck": _healthcheck(errs, checks.join(path, "healthcheck"), body.get("healthcheck")),
    }
    if "pull" in body:  # only when given: absent, the containers module's option decides
        config["pull"] = _pull(errs, checks.join(path, "pull"), body["pull"])
    if "host_port_range" in body:
        host_port_range = parse_host_port_range(errs, checks.join(path, "host_port_range"), body["host_port_range"])
    stateful = bool(checks.boolean(errs, checks.join(path, "stateful"), body["stateful"])) if "stateful" in body else False
    if len(errs.messages) != before:
        return None
    return Service(name=name, image=image, resources=resources, ports=tuple(ports), config=config,
                   host_port_range=host_port_range, stateful=stateful)


def parse_host_port_range(errs: checks.Errors, path: str, value: t.Any) -> t.Tuple[int, int]:
    """`"20000-32000"` → (20000, 32000); the default range after reporting a bad value."""
    match = _PORT_PART.fullmatch(value.strip()) if isinstance(value, str) else None
    if match and match.group(2):
        low, high = int(match.group(1)), int(match.group(2))
        if 1 <= low <= high <= 65535:
            return (low, high)
    errs.add(path, "expected a host port range 'low-high' with 1 <= low <= high <= 65535, such as '20000-32000', got %s"
             % show(value))
    return DEFAULT_HOST_PORT_RANGE


def _command(errs: checks.Errors, path: str, value: t.Any) -> t.Optional[t.List[str]]:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            errs.add(path, "cannot split the command string like a shell would (%s); use a list instead" % exc)
            return None
    items = checks.sequence(errs, path, value, "a list of strings or a command string")
    for index, item in enumerate(items or []):
        if not checks.is_scalar(item):
            errs.add("%s[%d]" % (path, index), "expected a string, got %s" % show(item))
    return [checks.to_str(item) for item in items or []]


def _env(errs: checks.Errors, path: str, value: t.Any) -> t.Dict[str, t.Any]:
    """NAME → string, or NAME → `{"secret": SECRET_NAME}` (a reference; the value is given at converge time)."""
    env: t.Dict[str, t.Any] = {}
    if value is None:
        return env
    if isinstance(value, (list, tuple)):
        pairs = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or "=" not in item:
                errs.add("%s[%d]" % (path, index), "expected 'NAME=value', got %s" % show(item))
            else:
                pairs.append(tuple(item.split("=", 1)))
    else:
        pairs = list((checks.mapping(errs, path, value, what="a mapping of NAME: value or a list of 'NAME=value'") or {}).items())
    for name, item in pairs:
        if not _ENV_NAME.fullmatch(name):
            errs.add(checks.join(path, name), "invalid environment variable name %s; expected no '=' or whitespace" % show(name))
        elif name in env:
            errs.add(checks.join(path, name), "set twice")
        elif isinstance(item, t.Mapping):
            env[name] = _secret_ref(errs, checks.join(path, name), item)
        else:
            env[name] = checks.string_value(errs, checks.join(path, name), item)
    return env


def _secret_ref(errs: checks.Errors, path: str, value: t.Mapping[str, t.Any]) -> t.Dict[str, str]:
    body = checks.mapping(errs, path, value, (_secrets.REF_KEY,), what="a string or a secret reference {secret: NAME}")
    if body is None:
        return {}
    if _secrets.REF_KEY not in body:
        errs.add(path, "expected a string or a secret reference {secret: NAME}, got a mapping without 'secret'")
        return {}
    name = body[_secrets.REF_KEY]
    if not isinstance(name, str) or not _secrets.SECRET_NAME.fullmatch(name):
        errs.add(checks.join(path, _secrets.REF_KEY), "expected a secret name: letters, digits and '_', not starting with a digit,"
                 " at most 128 characters (a key of stackfleet_secrets), got %s" % show(name))
        return {}
    return {_secrets.REF_KEY: str(name)}


def _pull(errs: checks.Errors, path: str, value: t.Any) -> t.Optional[str]:
    if isinstance(value, str) and value in PULL_POLICIES:
        return str(value)
    errs.add(path, "expected one of %s, got %s%s" % (", ".join(PULL_POLICIES), show(value),
                                                     checks.suggest(value, PULL_POLICIES) if isinstance(value, str) else ""))
    return None


def _labels(errs: checks.Errors, path: str, value: t.Any) -> t.Dict[str, str]:
    labels = {}
    for name, item in (checks.mapping(errs, path, value) or {}).items() if value is not None else ():
        if name.startswith(_RESERVED_LABEL_PREFIX):
            errs.add(checks.join(path, name), "labels starting with '%s' are reserved for stackfleet's own bookkeeping" % _RESERVED_LABEL_PREFIX)
        else:
            labels[name] = checks.string_value(errs, checks.join(path, name), item)
    return labels


def _restart(errs: checks.Errors, path: str, value: t.Any) -> str:
    if value is None or value is False:  # `restart: no` read by a YAML 1.1 loader
        return "no"
    if isinstance(value, str) and _RESTART.fullmatch(value.strip()):
        return value.strip()
    errs.add(path, "expected one of no, always, unless-stopped, on-failure or on-failure:N, got %s" % show(value))
    return "no"


def _network_mode(errs: checks.Errors, path: str, value: t.Any) -> t.Optional[str]:
    if value is None:
        return None
    if isinstance(value, str) and _NETWORK_MODE.fullmatch(value):
        return str(value)
    errs.add(path, "expected bridge, host, none, container:<name> or a network name, got %s" % show(value))
    return None


def _parse_port(value: t.Any, network_mode: t.Optional[str]) -> t.List[Port]:
    """One `ports` entry → Ports (a range gives several). Raises ValueError."""
    expected = ("expected 'host:container[/proto]', 'container[/proto]', 'ip:host:container[/proto]' or 'auto:container[/proto]'"
                " (a host port the planner chooses)")
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise ValueError("%s, got %s" % (expected, show(value)))
    text, protocol = value.strip(), "tcp"
    if "/" in text:
        text, protocol = text.rsplit("/", 1)
        if protocol not in _PROTOCOLS:
            raise ValueError("unknown protocol %s in %s; expected tcp, udp or sctp" % (show(protocol), show(value)))
    host_ip = ""
    if text.startswith("["):  # [2001:db8::1]:8080:80
        host_ip, closing, text = text[1:].partition("]")
        if not closing or not text.startswith(":"):
            raise ValueError("%s, got %s" % (expected, show(value)))
        parts = [host_ip] + text[1:].split(":")
    else:
        parts = text.split(":")
    if len(parts) == 3:
        host_ip = parts.pop(0)
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise ValueError("invalid host IP %s in %s" % (show(host_ip), show(value)))
    if len(parts) not in (1, 2):
        raise ValueError("%s, got %s" % (expected, show(value)))
    if len(parts) == 2 and parts[0] == AUTO:
        return [_dynamic_port(value, parts[1], protocol, host_ip, network_mode)]
    ranges = []
    for part in parts:
        match = _PORT_PART.fullmatch(part)
        if not match:
            raise ValueError("%s, got %s" % (expected, show(value)))
        low, high = int(match.group(1)), int(match.group(2) or match.group(1))
        if not 1 <= low <= high <= 65535:
            raise ValueError("ports must be 1-65535 with ranges low-high, got %s" % show(value))
        ranges.append(range(low, high + 1))
    container = ranges[-1]
    host = ranges[0] if len(ranges) == 2 else None
    if host is not None and len(host) != len(container):
        raise ValueError("host and container port ranges differ in length in %s" % show(value))
    if network_mode == "host":
        if host is not None and host != container:
            raise ValueError("with network_mode host the container listens on the host's port, so host and container"
                             " port must be equal, got %s" % show(value))
        host = container  # a reservation: the port is busy on the host either way
    return [Port(container_port=c, protocol=protocol, host_port=None if host is None else host[i], host_ip=host_ip)
            for i, c in enumerate(container)]


def _dynamic_port(value: t.Any, container: str, protocol: str, host_ip: str, network_mode: t.Optional[str]) -> Port:
    """`auto:80`: one container port published on a host port the planner chooses."""
    if network_mode == "host":
        raise ValueError("with network_mode host the container listens on the host's port itself, so the host port must"
                         " equal the container port; 'auto' cannot choose one, got %s" % show(value))
    match = _PORT_PART.fullmatch(container)
    if not match:
        raise ValueError("expected 'auto:container[/proto]' with one container port such as 'auto:80', got %s" % show(value))
    if match.group(2):
        raise ValueError("'auto' takes one container port, not a range, got %s; write one 'auto:<port>' entry per port"
                         % show(value))
    port = int(match.group(1))
    if not 1 <= port <= 65535:
        raise ValueError("ports must be 1-65535, got %s" % show(value))
    return Port(container_port=port, protocol=protocol, host_port=None, host_ip=host_ip, dynamic=True)


def _ports(errs: checks.Errors, path: str, value: t.Any, network_mode: t.Optional[str]) -> t.List[Port]:
    ports: t.List[Port] = []
    if value is None:
        return ports
    items = checks.sequence(errs, path, value, "a list of port mappings") or []
    if items and (network_mode == "none" or (network_mode or "").startswith("container:")):
        errs.add(path, "a container with network_mode %s cannot publish ports" % network_mode)
    used: t.Set[t.Tuple[int, str]] = set()
    auto: t.Set[t.Tuple[int, str, str]] = set()
    for index, item in enumerate(items):
        item_path = "%s[%d]" % (path, index)
        for port in checks.parsed(errs, item_path, lambda v: _parse_port(v, network_mode), item) or ():
            if port.host_key in used:
                errs.add(item_path, "host port %d/%s is used twice by this service" % port.host_key)
            elif port.host_key is not None:
                used.add(port.host_key)
            if port.dynamic and (port.container_port, port.protocol, port.host_ip) in auto:
                errs.add(item_path, "container port %d/%s is published with 'auto' twice%s; one 'auto' entry per port"
                         % (port.container_port, port.protocol, " on %s" % port.host_ip if port.host_ip else ""))
            elif port.dynamic:
                auto.add((port.container_port, port.protocol, port.host_ip))
            ports.append(port)
    # A stable order: reordering the file's list must not look like a changed container.
    return sorted(ports, key=lambda p: (p.container_port, p.protocol, p.host_ip, p.host_port or 0))


def _volumes(errs: checks.Errors, path: str, value: t.Any) -> t.List[t.Dict[str, t.Any]]:
    volumes: t.List[t.Dict[str, t.Any]] = []
    if value is None:
        return volumes
    for index, item in enumerate(checks.sequence(errs, path, value, "a list of 'source:target[:ro|rw]'") or []):
        item_path = "%s[%d]" % (path, index)
        parts = item.split(":") if isinstance(item, str) else []
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
            errs.add(item_path, "expected 'source:target', 'source:target:ro' or 'source:target:rw', got %s" % show(item))
            continue
        source, target = parts[0], parts[1]
        plain_source = _refs.substitute(source, lambda ref: "x")
        if not (plain_source.startswith("/") or _VOLUME_NAME.fullmatch(plain_source)):
            errs.add(item_path, "source %s must be an absolute host path or a volume name (letters, digits, '_', '.', '-';"
                     " at least 2 characters)" % show(source))
        elif not target.startswith("/"):
            errs.add(item_path, "target %s must be an absolute path inside the container" % show(target))
        elif any(volume["target"] == target for volume in volumes):
            errs.add(item_path, "target %s is mounted twice" % show(target))
        else:
            volumes.append({"source": source, "target": target, "read_only": len(parts) == 3 and parts[2] == "ro"})
    return sorted(volumes, key=lambda v: v["target"])


def _resources(errs: checks.Errors, path: str, value: t.Any) -> Resources:
    body = checks.mapping(errs, path, value, RESOURCE_KEYS) if value is not None else {}
    cpus = checks.parsed(errs, checks.join(path, "cpus"), parse_cpus, body["cpus"]) if body and "cpus" in body else 0.0
    memory = checks.parsed(errs, checks.join(path, "memory"), parse_memory, body["memory"]) if body and "memory" in body else 0
    if memory and memory < _DOCKER_MIN_MEMORY_MB:
        errs.add(checks.join(path, "memory"), "%s is below Docker's minimum of %dm; a bare number means bytes (did you mean '%sm'?)"
                 % (show(body["memory"]), _DOCKER_MIN_MEMORY_MB, body["memory"]))
    return Resources(cpus=float(cpus or 0.0), memory_mb=int(memory or 0))


def _healthcheck(errs: checks.Errors, path: str, value: t.Any) -> t.Optional[t.Dict[str, t.Any]]:
    if value is None:
        return None
    body = checks.mapping(errs, path, value, HEALTHCHECK_KEYS, what="a mapping with test")
    if body is None:
        return None
    check: t.Dict[str, t.Any] = {"test": None}
    check.update(HEALTHCHECK_DEFAULTS)
    test = body.get("test")
    if isinstance(test, str) and test.strip():
        check["test"] = ["CMD-SHELL", str(test)]
    elif isinstance(test, (list, tuple)) and test and all(checks.is_scalar(item) for item in test):
        check["test"] = [checks.to_str(item) for item in test]
        kind, size = check["test"][0], len(check["test"])
        if not ((kind == "CMD" and size >= 2) or (kind == "CMD-SHELL" and size == 2) or (kind == "NONE" and size == 1)):
            errs.add(checks.join(path, "test"), "a test list must be [\"CMD\", program, args...], [\"CMD-SHELL\", command]"
                     " or [\"NONE\"], got %s" % check["test"])
    else:
        errs.add(checks.join(path, "test"), "expected a command string or a list such as [\"CMD\", \"mysqladmin\", \"ping\"], got %s"
                 % show(test))
    for key, minimum in (("interval", 0.001), ("timeout", 0.001), ("start_period", 0.0)):
        if key in body:
            seconds = checks.parsed(errs, checks.join(path, key), parse_duration, body[key])
            if seconds is not None and seconds < minimum:
                errs.add(checks.join(path, key), "expected a duration of at least %s, got %s" % ("1ms" if minimum else "0s", show(body[key])))
            check[key] = seconds
    if "retries" in body:
        check["retries"] = checks.integer(errs, checks.join(path, "retries"), body["retries"], 1, "an integer of at least 1")
    return check

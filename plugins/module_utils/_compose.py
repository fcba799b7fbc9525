# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A parsed docker-compose document → a stackfleet stack-file document, and what it could not express.

`convert()` takes the compose file as data (a mapping, as `yaml.safe_load` or Ansible's `from_yaml`
gives it) and returns a `Conversion`: the stack-file document (plain data, ready to be written as
YAML and loaded by `_spec`) and `unsupported`, one line per compose key or value the stack file
cannot say, `<key path>: <what happened>; <what to do>`. Nothing is dropped without a line.

Every compose service becomes a service and a deploy of its own (a lone service: `count` from
`deploy.replicas`, or `global: true`). What the stack file says instead of a compose key comes
from `_spec_checks.COMPOSE_HINTS`, the validator's own answer to a pasted compose key.
docs/compose.md describes the mapping. No Ansible, Docker or HTTP imports here.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._spec_checks import COMPOSE_HINTS, NAME, to_str
from ansible_collections.stackfleet.cluster.plugins.module_utils._spec_service import AUTO
from ansible_collections.stackfleet.cluster.plugins.module_utils._units import show

#: Compose service keys converted here (others are named in `unsupported`).
SERVICE_KEYS = ("image", "build", "command", "entrypoint", "environment", "ports", "expose", "volumes", "labels", "restart",
                "healthcheck", "deploy", "network_mode", "pull_policy", "mem_limit", "cpus", "scale")
#: Compose pull_policy → the stack file's pull.
PULL_POLICIES = {"always": "always", "never": "never", "missing": "missing", "if_not_present": "missing"}
#: deploy.restart_policy.condition → restart.
RESTART_CONDITIONS = {"none": "no", "on-failure": "on-failure", "on_failure": "on-failure", "any": "always"}
_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])((?:[^{}]|\{[^{}]*\})*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
_CONSTRAINT = re.compile(r"\s*(\S+?)\s*(==|!=)\s*(.*?)\s*$")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PORT_NUMBERS = re.compile(r"[0-9]+(?:-[0-9]+)?")
_VOLUME_MODES = ("ro", "rw")


class ComposeError(ValueError):
    """The compose document cannot be converted at all (not a mapping, no services, a required variable unset)."""


@dataclasses.dataclass
class Conversion:
    stack: t.Dict[str, t.Any]
    unsupported: t.List[str]

    def as_dict(self) -> t.Dict[str, t.Any]:
        return {"stack": self.stack, "unsupported": list(self.unsupported)}


class _Notes:
    """The `unsupported` list: one line per key path, in the order the document is read."""

    def __init__(self) -> None:
        self.lines: t.List[str] = []

    def add(self, path: str, message: str, hint_where: str = "", key: str = "") -> None:
        hint = COMPOSE_HINTS.get(hint_where, {}).get(key) if hint_where else None
        line = "%s: %s%s" % (path, message, "; %s" % hint if hint else "")
        if line not in self.lines:
            self.lines.append(line)

    def dropped(self, path: str, hint_where: str = "", key: str = "", why: str = "") -> None:
        self.add(path, "not expressible%s" % ("; %s" % why if why else ""), hint_where, key)


#: What a compose network gives that the stack file does not (said once per service that names networks, and for the
#: default network when a file has several services).
NETWORKS = ("on docker-compose's networks services reach each other by service name; stackfleet creates no network and"
            " names containers <cluster>.<instance>.<service>, so put services that talk to each other in one stack"
            " (a sibling's address is the reference instance.services.<name>.host)")


def convert(compose: t.Any, cluster: str, project_dir: t.Optional[str] = None,
            variables: t.Optional[t.Mapping[str, t.Any]] = None, dotenv: t.Optional[str] = None) -> Conversion:
    """The stack-file document for `cluster` and the list of what could not be expressed.

    `project_dir`: where relative bind-mount sources are resolved, as docker-compose does (the
    compose file's folder); without it they are listed as unsupported. `variables`: values for
    `${VAR}` interpolation, over those of `dotenv`, the text of the project's `.env` file (as
    docker-compose takes the shell's variables over `.env`); `$$` is a `$`.
    """
    if not isinstance(cluster, str) or not NAME.fullmatch(cluster):
        raise ComposeError("cluster: expected a cluster name: letters, digits, '_' and '-', starting with a letter or digit,"
                           " at most 63 characters, got %s" % show(cluster))
    if not isinstance(compose, t.Mapping):
        raise ComposeError("expected a docker-compose document (a mapping with services), got %s" % show(compose))
    notes = _Notes()
    values = parse_dotenv(dotenv) if dotenv else {}
    values.update(variables or {})
    compose = _interpolate(compose, "", values, notes)
    raw_services = compose.get("services")
    if not isinstance(raw_services, t.Mapping) or not raw_services:
        raise ComposeError("services: expected a mapping of at least one service, got %s" % show(raw_services))
    volumes = _top_level(compose, cluster, notes)
    if len(raw_services) > 1 and "networks" not in compose and not any(
            isinstance(body, t.Mapping) and "networks" in body for body in raw_services.values()):
        notes.add("services", "the default network is not expressible; %s" % NETWORKS)

    services: t.Dict[str, t.Any] = {}
    deploy: t.Dict[str, t.Any] = {}
    names: t.Dict[str, str] = {}
    for compose_name, body in raw_services.items():
        path = "services.%s" % compose_name
        name = _service_name(str(compose_name), path, names, notes)
        if not isinstance(body, t.Mapping):
            raise ComposeError("%s: expected a mapping, got %s" % (path, show(body)))
        converted = _service(path, body, volumes, project_dir, notes)
        if converted is None:
            continue
        service, deploy_entry = converted
        services[name] = service
        deploy[name] = deploy_entry
    if not services:
        raise ComposeError("services: no service could be converted: %s" % "; ".join(notes.lines))
    return Conversion(stack={"cluster": cluster, "services": services, "deploy": deploy}, unsupported=notes.lines)


def parse_dotenv(text: str, source: str = ".env") -> t.Dict[str, str]:
    """A docker-compose `.env` file: `NAME=value` lines, `#` comments, an optional `export `, quotes around a value removed
    (in double quotes `\\n`, `\\"` and `\\\\` are escapes). Raises ComposeError naming the line."""
    values: t.Dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        name, equals, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not _IDENTIFIER.fullmatch(name):
            raise ComposeError("%s: line %d: expected NAME=value, got %s" % (source, number, show(line)))
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        elif len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r'\\(["\\n])', lambda match: "\n" if match.group(1) == "n" else match.group(1), value[1:-1])
        else:
            value = re.sub(r"\s+#.*$", "", value)  # an unquoted value ends at a comment
        values[name] = value
    return values


# --- interpolation: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR, $$


def _interpolate(value: t.Any, path: str, variables: t.Mapping[str, t.Any], notes: _Notes) -> t.Any:
    if isinstance(value, str):
        return _interpolate_string(value, path, variables, notes)
    if isinstance(value, t.Mapping):
        return {key: _interpolate(item, _join(path, key), variables, notes) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_interpolate(item, "%s[%d]" % (path, index), variables, notes) for index, item in enumerate(value)]
    return value


def _interpolate_string(text: str, path: str, variables: t.Mapping[str, t.Any], notes: _Notes) -> str:
    def replace(match: t.Match[str]) -> str:
        escaped, braced, operator, argument, bare = match.groups()
        if escaped:
            return "$"
        name = braced or bare
        value = variables.get(name)
        is_set = name in variables and value is not None
        if operator in (":-", "-"):
            empty_counts = operator == ":-"
            if not is_set or (empty_counts and to_str(value) == ""):
                return _interpolate_string(argument, path, variables, notes)
        elif operator in (":?", "?"):
            if not is_set or (operator == ":?" and to_str(value) == ""):
                raise ComposeError("%s: variable %s is required: %s" % (path, name, argument or "not set"))
        if not is_set:
            notes.add(path, "variable %s is not set; an empty string was used, as docker-compose does (give it in variables)" % name)
            return ""
        return to_str(value)

    return _VARIABLE.sub(replace, text)


# --- the top level


def _top_level(compose: t.Mapping[str, t.Any], cluster: str, notes: _Notes) -> t.Dict[str, str]:
    """Notes for top-level keys; returns declared volume name → the volume name on the host."""
    volumes: t.Dict[str, str] = {}
    for key, value in compose.items():
        key = str(key)
        if key == "services" or key.startswith("x-"):
            continue
        if key == "volumes":
            for name, body in _mapping(key, value, notes).items():
                volumes[str(name)] = _volume_name(str(name), body, "volumes.%s" % name, notes)
        elif key == "name":
            if value != cluster:
                notes.add(key, "the project name %s is not used: the cluster is %s" % (show(value), show(cluster)), "top", key)
        elif key == "version":
            notes.add(key, "ignored", "top", key)
        elif key in ("networks", "secrets", "configs") and isinstance(value, t.Mapping):
            for name in value:
                notes.dropped("%s.%s" % (key, name), "top", key)
        else:
            notes.dropped(key, "top", key)
    return volumes


def _volume_name(name: str, body: t.Any, path: str, notes: _Notes) -> str:
    """A declared named volume: `external` and `name` as given; else `{{ cluster }}_<name>`, as docker-compose's `<project>_<name>`."""
    body = _mapping(path, body, notes)
    external = body.get("external")
    for key in body:
        if key not in ("name", "external"):
            notes.dropped("%s.%s" % (path, key), why="volumes are created by the engine on first use with its defaults")
    if isinstance(external, t.Mapping):  # the old form external: {name: x}
        return str(external.get("name") or body.get("name") or name)
    if body.get("name"):
        return str(body["name"])
    if external is True or to_str(external) == "true":
        return name
    return "{{ cluster }}_%s" % name


def _service_name(name: str, path: str, names: t.Dict[str, str], notes: _Notes) -> str:
    good = name if NAME.fullmatch(name) else re.sub(r"[^A-Za-z0-9_-]", "-", name).lstrip("_-")[:63] or "service"
    if good != name:
        notes.add(path, "renamed to '%s': stackfleet names are letters, digits, '_' and '-' (they become part of container"
                  " names, <cluster>.<instance>.<service>)" % good)
    if good in names:
        raise ComposeError("%s: its stackfleet name '%s' is also the name of services.%s; rename one" % (path, good, names[good]))
    names[good] = name
    return good


# --- one service


def _service(path: str, body: t.Mapping[str, t.Any], volumes: t.Mapping[str, str], project_dir: t.Optional[str],
             notes: _Notes) -> t.Optional[t.Tuple[t.Dict[str, t.Any], t.Dict[str, t.Any]]]:
    for key in body:
        if key == "networks":
            notes.dropped(_join(path, key), "service", "networks", why=NETWORKS)
        elif key not in SERVICE_KEYS:
            notes.dropped(_join(path, key), "service", str(key))
    if "build" in body:
        notes.dropped(_join(path, "build"), "service", "build")
    image = body.get("image")
    if not isinstance(image, str) or not image.strip():
        notes.add(path, "skipped: no image (a service that docker-compose builds has none until it is built); build and push"
                  " the image, then add the service with image:")
        return None
    network_mode = _network_mode(_join(path, "network_mode"), body.get("network_mode"), notes)
    service: t.Dict[str, t.Any] = {"image": image.strip()}
    for key in ("command", "entrypoint"):
        if body.get(key) is not None:
            service[key] = body[key]
    env = _environment(_join(path, "environment"), body.get("environment"), notes)
    if env:
        service["env"] = env
    ports = _ports(path, body, network_mode, notes)
    if ports:
        service["ports"] = ports
    mounts = _volumes(_join(path, "volumes"), body.get("volumes"), volumes, project_dir, notes)
    if mounts:
        service["volumes"] = mounts
    labels = _labels(_join(path, "labels"), body.get("labels"), notes)
    if labels:
        service["labels"] = labels
    deploy = _mapping(_join(path, "deploy"), body.get("deploy"), notes)
    restart = _restart(path, body, deploy, notes)
    if restart is not None:
        service["restart"] = restart
    if network_mode is not None:
        service["network_mode"] = network_mode
    resources = _resources(path, body, deploy, notes)
    if resources:
        service["resources"] = resources
    healthcheck = _healthcheck(_join(path, "healthcheck"), body.get("healthcheck"), notes)
    if healthcheck is not None:
        service["healthcheck"] = healthcheck
    if body.get("pull_policy") is not None:
        policy = PULL_POLICIES.get(str(body["pull_policy"]))
        if policy is None:
            notes.dropped(_join(path, "pull_policy"), why="%s; the stack file's pull: is missing, always or never"
                          % show(body["pull_policy"]))
        else:
            service["pull"] = policy
    return service, _deploy(path, body, deploy, notes)


def _network_mode(path: str, value: t.Any, notes: _Notes) -> t.Optional[str]:
    if value is None:
        return None
    text = str(value)
    if text.startswith("service:"):
        notes.dropped(path, why="%s shares another service's network namespace, which may run on another host;"
                      " put both in one stack (colocate: true) and use container:<name> if they must share it" % show(value))
        return None
    return text


def _environment(path: str, value: t.Any, notes: _Notes) -> t.Dict[str, str]:
    env: t.Dict[str, str] = {}
    if value is None:
        return env
    if isinstance(value, (list, tuple)):
        pairs = [tuple(str(item).split("=", 1)) if "=" in str(item) else (str(item), None) for item in value]
    elif isinstance(value, t.Mapping):
        pairs = [(str(key), item) for key, item in value.items()]
    else:
        notes.dropped(path, why="expected a list of NAME=value or a mapping, got %s" % show(value))
        return env
    for name, item in pairs:
        if item is None:
            notes.dropped(_join(path, name), why="docker-compose takes its value from the shell that runs it; write the value"
                          " in env:, or {secret: NAME} from stackfleet_secrets")
        elif isinstance(item, (t.Mapping, list, tuple)):
            notes.dropped(_join(path, name), why="expected a string, got %s" % show(item))
        else:
            env[name] = to_str(item)
    return env


def _labels(path: str, value: t.Any, notes: _Notes) -> t.Dict[str, str]:
    labels: t.Dict[str, str] = {}
    if isinstance(value, (list, tuple)):
        pairs = [tuple(str(item).split("=", 1)) if "=" in str(item) else (str(item), "") for item in value]
    elif isinstance(value, t.Mapping):
        pairs = [(str(key), "" if item is None else to_str(item)) for key, item in value.items()]
    else:
        if value is not None:
            notes.dropped(path, why="expected a list of key=value or a mapping, got %s" % show(value))
        return labels
    for key, item in pairs:
        if key.startswith("io.stackfleet."):
            notes.dropped(_join(path, key), why="labels starting with io.stackfleet. are stackfleet's own")
        else:
            labels[key] = item
    return labels


# --- ports


def _ports(path: str, body: t.Mapping[str, t.Any], network_mode: t.Optional[str], notes: _Notes) -> t.List[str]:
    """Compose ports → stack-file entries; a port compose publishes on a random host port becomes `auto:<port>`."""
    entries: t.List[t.Tuple[str, str, str, str]] = []  # (host_ip, host, container, protocol)
    for index, item in enumerate(_as_list(body.get("ports"))):
        item_path = "%s.ports[%d]" % (path, index)
        parsed = _long_port(item_path, item, notes) if isinstance(item, t.Mapping) else _short_port(item_path, item, notes)
        entries.extend(parsed)
    published = {(container, protocol) for _ip, _host, container, protocol in entries}
    result: t.List[str] = []
    if network_mode == "host":
        for host_ip, host, container, protocol in entries:
            if host not in ("", container) or host_ip:
                given = _port_text(host_ip, host, container, protocol)
                notes.add("%s.ports" % path, "%s: with network_mode host docker publishes nothing (the container listens on"
                          " the host's port %s itself); kept as a reservation of that port" % (given, container))
            result.append(_port_text("", "", container, protocol))
        if body.get("expose") is not None:
            notes.add(_join(path, "expose"), "dropped: with network_mode host nothing is exposed, the container listens on the host")
        return _unique(result)
    for host_ip, host, container, protocol in entries:
        if host == "":
            for port in _expand(container):  # `auto` takes one container port
                result.append(_port_text(host_ip, AUTO, port, protocol))
        else:
            result.append(_port_text(host_ip, host, container, protocol))
    for index, item in enumerate(_as_list(body.get("expose"))):
        text, _sep, protocol = str(item).partition("/")
        if not _PORT_NUMBERS.fullmatch(text) or protocol not in ("", "tcp", "udp", "sctp"):
            notes.dropped("%s.expose[%d]" % (path, index), why="expected a port such as 3306 or 53/udp, got %s" % show(item))
        elif (text, protocol or "tcp") not in published:
            result.append(_port_text("", "", text, protocol or "tcp"))
    return _unique(result)


def _short_port(path: str, item: t.Any, notes: _Notes) -> t.List[t.Tuple[str, str, str, str]]:
    text, protocol = str(item).strip(), "tcp"
    if "/" in text:
        text, protocol = text.rsplit("/", 1)
    host_ip = ""
    if text.startswith("["):
        host_ip, _closing, text = text[1:].partition("]")
        text = text[1:] if text.startswith(":") else text
        parts = text.split(":")
    else:
        parts = text.split(":")
        if len(parts) == 3:
            host_ip = parts.pop(0)
    if len(parts) == 1:
        parts = [""] + parts
    if len(parts) != 2 or not _PORT_NUMBERS.fullmatch(parts[1]) or (parts[0] and not _PORT_NUMBERS.fullmatch(parts[0])):
        notes.dropped(path, why="cannot read the port entry %s" % show(item))
        return []
    return _host_range(path, host_ip, parts[0], parts[1], protocol, notes)


def _long_port(path: str, item: t.Mapping[str, t.Any], notes: _Notes) -> t.List[t.Tuple[str, str, str, str]]:
    for key in item:
        if key not in ("target", "published", "protocol", "host_ip", "mode"):
            notes.dropped(_join(path, key))
    if str(item.get("mode", "host")) != "host":
        notes.add(_join(path, "mode"), "%s: stackfleet has no routing mesh; the port is published on the host that runs"
                  " the container (as mode: host)" % show(item["mode"]))
    target = to_str(item.get("target", ""))
    published = "" if item.get("published") is None else to_str(item["published"])
    if not _PORT_NUMBERS.fullmatch(target) or (published and not _PORT_NUMBERS.fullmatch(published)):
        notes.dropped(path, why="cannot read the port entry %s (target and published are port numbers)" % show(dict(item)))
        return []
    return _host_range(path, str(item.get("host_ip") or ""), published, target, str(item.get("protocol") or "tcp"), notes)


def _host_range(path: str, host_ip: str, host: str, container: str, protocol: str, notes: _Notes) -> t.List[t.Tuple[str, str, str, str]]:
    """`8000-8010:80` (any free host port of a range) is not the stack file's range form (one host port per container port)."""
    if host and len(_expand(host)) != len(_expand(container)) and len(_expand(container)) == 1:
        notes.add(path, "host port range %s for one container port: published on a host port the planner chooses (auto:%s)"
                  " from host_port_range instead" % (host, container))
        host = ""
    return [(host_ip, host, container, protocol)]


def _expand(ports: str) -> t.List[str]:
    low, _sep, high = ports.partition("-")
    return [str(port) for port in range(int(low), int(high or low) + 1)]


def _port_text(host_ip: str, host: str, container: str, protocol: str) -> str:
    ip = ("[%s]:" % host_ip if ":" in host_ip else "%s:" % host_ip) if host_ip else ""
    text = "%s%s:%s" % (ip, host, container) if host else "%s%s" % (ip, container) if ip else container
    return text if protocol == "tcp" else "%s/%s" % (text, protocol)


# --- volumes


def _volumes(path: str, value: t.Any, declared: t.Mapping[str, str], project_dir: t.Optional[str], notes: _Notes) -> t.List[str]:
    mounts: t.List[str] = []
    for index, item in enumerate(_as_list(value)):
        item_path = "%s[%d]" % (path, index)
        if isinstance(item, t.Mapping):
            mount = _long_volume(item_path, item, declared, project_dir, notes)
        else:
            mount = _short_volume(item_path, str(item), declared, project_dir, notes)
        if mount is not None:
            mounts.append(mount)
    return mounts


def _short_volume(path: str, text: str, declared: t.Mapping[str, str], project_dir: t.Optional[str], notes: _Notes) -> t.Optional[str]:
    parts = text.split(":")
    if len(parts) == 1:
        notes.dropped(path, why="an anonymous volume (%s); give it a name, source:target, so that it is the same volume after a"
                      " container is replaced" % show(text))
        return None
    if len(parts) > 3:
        notes.dropped(path, why="cannot read the volume %s" % show(text))
        return None
    modes = parts[2].split(",") if len(parts) == 3 else []
    other = [mode for mode in modes if mode not in _VOLUME_MODES]
    if other:
        notes.add(path, "mount options %s of %s are not expressible (only ro or rw); mounted without them" % (",".join(other), show(text)))
    return _mount(path, parts[0], parts[1], "ro" in modes, declared, project_dir, notes)


def _long_volume(path: str, item: t.Mapping[str, t.Any], declared: t.Mapping[str, str], project_dir: t.Optional[str],
                 notes: _Notes) -> t.Optional[str]:
    kind = str(item.get("type", "volume"))
    if kind not in ("volume", "bind"):
        notes.dropped(path, why="a %s mount; the stack file mounts volumes and host paths only" % kind)
        return None
    for key in item:
        if key not in ("type", "source", "target", "read_only"):
            notes.dropped(_join(path, key))
    if not item.get("source"):
        notes.dropped(path, why="an anonymous volume (target %s); give it a source so that it is the same volume after a"
                      " container is replaced" % show(item.get("target")))
        return None
    return _mount(path, to_str(item["source"]), to_str(item.get("target") or ""), to_str(item.get("read_only", False)) == "true",
                  declared, project_dir, notes)


def _mount(path: str, source: str, target: str, read_only: bool, declared: t.Mapping[str, str], project_dir: t.Optional[str],
           notes: _Notes) -> t.Optional[str]:
    if source.startswith(("./", "../")) or source in (".", ".."):
        if project_dir is None:
            notes.dropped(path, why="the relative host path %s needs the compose file's folder (project_dir); write an"
                          " absolute path" % show(source))
            return None
        source = posixpath.normpath(posixpath.join(project_dir, source))
    elif source.startswith("~"):
        notes.dropped(path, why="the host path %s depends on the user that runs docker-compose; write an absolute path" % show(source))
        return None
    elif not source.startswith("/"):
        source = declared.get(source, "{{ cluster }}_%s" % source)
    return "%s:%s%s" % (source, target, ":ro" if read_only else "")


# --- restart, resources, healthcheck, deploy


def _restart(path: str, body: t.Mapping[str, t.Any], deploy: t.Mapping[str, t.Any], notes: _Notes) -> t.Optional[str]:
    restart = body.get("restart")
    if restart is False:  # `restart: no` read as YAML 1.1
        restart = "no"
    policy = deploy.get("restart_policy")
    policy_path = _join(path, "deploy.restart_policy")
    if not isinstance(policy, t.Mapping):
        if policy is not None:
            notes.dropped(policy_path, why="expected a mapping, got %s" % show(policy))
        return None if restart is None else to_str(restart)
    for key in policy:
        if key not in ("condition", "max_attempts"):
            notes.dropped(_join(policy_path, key), why="the engine restarts at once, by the restart: policy")
    if restart is not None:
        notes.add(policy_path, "not used: restart: %s is given" % to_str(restart))
        return to_str(restart)
    condition = RESTART_CONDITIONS.get(to_str(policy.get("condition", "any")))
    if condition is None:
        notes.dropped(_join(policy_path, "condition"), why="expected none, on-failure or any, got %s" % show(policy.get("condition")))
        return None
    attempts = policy.get("max_attempts")
    if attempts is not None and condition == "on-failure":
        return "on-failure:%s" % to_str(attempts)
    if attempts is not None:
        notes.dropped(_join(policy_path, "max_attempts"), why="only on-failure counts attempts (restart: on-failure:N)")
    return condition


def _resources(path: str, body: t.Mapping[str, t.Any], deploy: t.Mapping[str, t.Any], notes: _Notes) -> t.Dict[str, t.Any]:
    resources: t.Dict[str, t.Any] = {}
    base = _join(path, "deploy.resources")
    raw = _mapping(base, deploy.get("resources"), notes)
    for key in raw:
        if key != "limits":
            notes.dropped(_join(base, key), why="resources: are the container's limits and what the planner counts against a"
                          " host's capacity" if key == "reservations" else "")
    limits = _mapping(_join(base, "limits"), raw.get("limits"), notes)
    for key, value in limits.items():
        if key in ("cpus", "memory"):
            resources[key] = value
        else:
            notes.dropped(_join(base, "limits.%s" % key))
    for key, target in (("cpus", "cpus"), ("mem_limit", "memory")):
        if body.get(key) is None:
            continue
        if target in resources and to_str(resources[target]) != to_str(body[key]):
            notes.add(_join(path, key), "not used: deploy.resources.limits.%s is given" % target)
        else:
            resources[target] = body[key]
    return resources


def _healthcheck(path: str, value: t.Any, notes: _Notes) -> t.Optional[t.Dict[str, t.Any]]:
    if not isinstance(value, t.Mapping):
        if value is not None:
            notes.dropped(path, why="expected a mapping, got %s" % show(value))
        return None
    check: t.Dict[str, t.Any] = {}
    if to_str(value.get("disable", False)) == "true":
        check["test"] = ["NONE"]
    elif value.get("test") is not None:
        test = value["test"]
        check["test"] = [to_str(item) for item in test] if isinstance(test, (list, tuple)) else to_str(test)
    else:
        notes.dropped(path, why="no test; the image's own healthcheck applies")
        return None
    for key, item in value.items():
        if key in ("interval", "timeout", "retries", "start_period"):
            check[key] = item
        elif key not in ("test", "disable"):
            notes.dropped(_join(path, key))
    return check


def _deploy(path: str, body: t.Mapping[str, t.Any], deploy: t.Mapping[str, t.Any], notes: _Notes) -> t.Dict[str, t.Any]:
    base = _join(path, "deploy")
    entry: t.Dict[str, t.Any] = {}
    mode = to_str(deploy.get("mode", "replicated"))
    if mode in ("global", "global-job"):
        entry["global"] = True
        for where, key in ((base, "replicas"), (path, "scale")):
            if (deploy if where == base else body).get(key) is not None:
                notes.add(_join(where, key), "not used: mode global runs one instance on every eligible host")
    else:
        count = deploy.get("replicas", body.get("scale", 1))
        entry["count"] = count if isinstance(count, int) else int(count) if to_str(count).isdigit() else count
        if mode != "replicated":
            notes.add(_join(base, "mode"), "%s is not expressible; converted as a long-running %s deploy"
                      % (show(mode), "count"), "deploy", "mode")
    if mode not in ("global", "global-job") and body.get("scale") is not None and deploy.get("replicas") is not None:
        notes.add(_join(path, "scale"), "not used: deploy.replicas is given")
    for key in deploy:
        if key not in ("mode", "replicas", "resources", "restart_policy", "placement", "update_config"):
            notes.dropped(_join(base, key), why="swarm service labels are not container labels; write labels: on the service"
                          if key == "labels" else "")
    placement = _mapping(_join(base, "placement"), deploy.get("placement"), notes)
    for key in placement:
        if key not in ("constraints", "preferences", "max_replicas_per_node"):
            notes.dropped(_join(base, "placement.%s" % key))
    constraint = _constraints(_join(base, "placement.constraints"), placement.get("constraints"), notes)
    if constraint:
        entry["constraint"] = constraint
    spread = _preferences(_join(base, "placement.preferences"), placement.get("preferences"), notes)
    if spread:
        entry["spread"] = spread
    if placement.get("max_replicas_per_node") is not None:
        entry["max_per_host"] = placement["max_replicas_per_node"]
    update = _mapping(_join(base, "update_config"), deploy.get("update_config"), notes)
    for key, value in update.items():
        if key == "parallelism" and to_str(value) != "0":
            entry["update"] = {"parallelism": value}
        else:
            notes.dropped(_join(base, "update_config.%s" % key),
                          why="0 (all at once) is not; write a number" if key == "parallelism" else
                          "instances are replaced one batch after another, each batch up before the next")
    return entry


def _constraints(path: str, value: t.Any, notes: _Notes) -> str:
    """Swarm constraints on node.hostname and node.labels → one JMESPath expression over the host document."""
    parts = []
    for index, item in enumerate(_as_list(value)):
        match = _CONSTRAINT.fullmatch(str(item))
        field = match.group(1) if match else ""
        if field == "node.hostname":
            left = "name"
        elif field.startswith("node.labels.") and len(field) > len("node.labels."):
            label = field[len("node.labels."):]
            left = "labels.%s" % (label if _IDENTIFIER.fullmatch(label) else '"%s"' % label.replace("\\", "\\\\").replace('"', '\\"'))
        else:
            notes.dropped("%s[%d]" % (path, index), why="%s: a host document has name and labels (node.hostname and node.labels.X"
                          " are expressible); give the hosts a label (stackfleet_labels) and constrain on it" % show(item))
            continue
        literal = "'%s'" % match.group(3).strip("\"'").replace("\\", "\\\\").replace("'", "\\'")
        parts.append("%s %s %s" % (left, match.group(2), literal))
    return " && ".join(parts)


def _preferences(path: str, value: t.Any, notes: _Notes) -> t.Optional[str]:
    spread = None
    for index, item in enumerate(_as_list(value)):
        target = str(item.get("spread", "")) if isinstance(item, t.Mapping) else ""
        if spread is None and target.startswith("node.labels.") and len(target) > len("node.labels."):
            spread = target[len("node.labels."):]
        else:
            notes.dropped("%s[%d]" % (path, index), why="%s: the stack file spreads over one host label (spread:)%s"
                          % (show(item), ", %s is used" % spread if spread else ""))
    return spread


def _mapping(path: str, value: t.Any, notes: _Notes) -> t.Mapping[str, t.Any]:
    """A compose mapping, or {} with a line naming the value (never silently ignored)."""
    if value is None or isinstance(value, t.Mapping):
        return value or {}
    notes.dropped(path, why="expected a mapping, got %s" % show(value))
    return {}


def _as_list(value: t.Any) -> t.List[t.Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _unique(items: t.Iterable[str]) -> t.List[str]:
    seen: t.List[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _join(path: str, key: t.Any) -> str:
    return "%s.%s" % (path, key) if path else str(key)

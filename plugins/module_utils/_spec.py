# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load and validate a stack file and a host list into `_model` types.

Every problem of a file is collected and raised at once as `SpecError`; each message
names the file, the key path, what is wrong and what was expected. The full format is
documented in docs/stack-file.md. No Ansible, Docker or HTTP imports here.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import shlex
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils import _refs
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import STRATEGIES, Deploy, Host, Port, Resources, Service, Spec
from ansible_collections.stackfleet.cluster.plugins.module_utils._units import parse_cpus, parse_duration, parse_memory, show

try:
    import yaml
except ImportError:  # pragma: no cover - reported at use
    yaml = None
try:
    import jmespath
    from jmespath.exceptions import JMESPathError
except ImportError:  # pragma: no cover - reported at use
    jmespath = None
    JMESPathError = Exception

__all__ = ("SpecError", "load_file", "load_text", "load_data", "load_hosts", "parse_memory", "parse_cpus", "parse_duration")

#: Cluster, service, stack and deploy names: they end up in container names
#: (`<cluster>.<instance>.<service>`, so no dots), etcd keys and label values.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
#: Host names end up in global instance ids and so in container names.
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")
_VOLUME_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]+")
_NETWORK_MODE = re.compile(r"(bridge|host|none|container:[A-Za-z0-9][A-Za-z0-9_.-]*|[A-Za-z0-9][A-Za-z0-9_.-]*)")
_RESTART = re.compile(r"(no|always|unless-stopped|on-failure(:[0-9]+)?)")
_ENV_NAME = re.compile(r"[^=\s\x00]+")
_PORT_PART = re.compile(r"([0-9]+)(?:-([0-9]+))?")
_PROTOCOLS = ("tcp", "udp", "sctp")
_RESERVED_LABEL_PREFIX = "io.stackfleet."
_DOCKER_MIN_MEMORY_MB = 6
_TRUE = ("true", "yes", "on")
_FALSE = ("false", "no", "off")

TOP_KEYS = ("cluster", "strategy", "services", "stacks", "deploy")
SERVICE_KEYS = ("image", "command", "entrypoint", "env", "ports", "volumes", "labels", "restart", "network_mode",
                "resources", "healthcheck")
STACK_KEYS = ("services", "colocate")
DEPLOY_KEYS = ("count", "global", "constraint", "conflicts", "max_per_host", "spread", "host", "affinity")
RESOURCE_KEYS = ("cpus", "memory")
HEALTHCHECK_KEYS = ("test", "interval", "timeout", "retries", "start_period")
HOST_KEYS = ("name", "address", "labels", "capacity", "facts")
CAPACITY_KEYS = ("cpus", "memory_mb", "memory")
#: Healthcheck defaults are Docker's, so an omitted key means what it means to `docker run`.
HEALTHCHECK_DEFAULTS = {"interval": 30.0, "timeout": 30.0, "retries": 3, "start_period": 0.0}
#: References allowed in a volume source: the ones that keep it a stable, valid name.
_VOLUME_REFS = (("cluster",), ("instance", "id"), ("instance", "index"))


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


class _Errors:
    """Collects messages as `<source>: <key path>: <problem>`."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.messages: t.List[str] = []

    def add(self, path: str, message: str) -> None:
        text = "%s: %s: %s" % (self.source, path, message) if path else "%s: %s" % (self.source, message)
        if text not in self.messages:
            self.messages.append(text)

    def raise_any(self) -> None:
        if self.messages:
            raise SpecError(self.source, self.messages)


def _join(path: str, key: t.Any) -> str:
    return "%s.%s" % (path, key) if path else str(key)


def _suggest(word: str, choices: t.Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return " (did you mean '%s'?)" % close[0] if close else ""


def _is_scalar(value: t.Any) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, t.Mapping)


def _to_str(value: t.Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --- typed accessors: each reports its own error and returns None when the value is unusable


def _mapping(errs: _Errors, path: str, value: t.Any, allowed: t.Optional[t.Sequence[str]] = None,
             what: str = "a mapping") -> t.Optional[t.Mapping[str, t.Any]]:
    if not isinstance(value, t.Mapping):
        errs.add(path, "expected %s, got %s" % (what, show(value)))
        return None
    good = {}
    for key, item in value.items():
        if not isinstance(key, str):
            errs.add(path, "keys must be strings, got %s" % show(key))
        elif allowed is not None and key not in allowed and not (path == "" and key.startswith("x-")):
            errs.add(_join(path, key), "unknown key%s; expected one of: %s" % (_suggest(key, allowed), ", ".join(allowed)))
        else:
            good[key] = item
    return good


def _string(errs: _Errors, path: str, value: t.Any, what: str = "a string") -> t.Optional[str]:
    if not isinstance(value, str) or not value.strip():
        errs.add(path, "expected %s, got %s" % (what, show(value)))
        return None
    return str(value)


def _name(errs: _Errors, path: str, value: t.Any, what: str) -> t.Optional[str]:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        errs.add(path, "expected %s: letters, digits, '_' and '-', starting with a letter or digit, at most 63 characters"
                 " (it becomes part of container names and etcd keys), got %s" % (what, show(value)))
        return None
    return str(value)


def _bool(errs: _Errors, path: str, value: t.Any) -> t.Optional[bool]:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    errs.add(path, "expected true or false, got %s" % show(value))
    return None


def _int(errs: _Errors, path: str, value: t.Any, minimum: int, what: str) -> t.Optional[int]:
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if number is None or number < minimum:
        errs.add(path, "expected %s, got %s" % (what, show(value)))
        return None
    return number


def _list(errs: _Errors, path: str, value: t.Any, what: str = "a list") -> t.Optional[t.List[t.Any]]:
    if isinstance(value, (list, tuple)):
        return list(value)
    errs.add(path, "expected %s, got %s" % (what, show(value)))
    return None


def _parsed(errs: _Errors, path: str, parse: t.Callable[[t.Any], t.Any], value: t.Any) -> t.Any:
    try:
        return parse(value)
    except ValueError as exc:
        errs.add(path, str(exc))
        return None


# --- YAML: YAML 1.2 scalars (so `no`, `on`, `8080:80` and `1:30` stay strings) and no silent duplicate keys


if yaml is not None:
    class _Loader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
        """SafeLoader with YAML 1.2 core-schema scalars that records duplicate keys."""

        def __init__(self, stream: t.Any) -> None:
            super().__init__(stream)
            self.duplicates: t.List[str] = []

        def construct_mapping(self, node: t.Any, deep: bool = False) -> t.Any:
            seen = set()
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *anchor` may be overridden on purpose
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue  # unhashable key: the base class reports it
                if duplicate:
                    mark = key_node.start_mark
                    self.duplicates.append("line %d, column %d: duplicate key %s (YAML would keep only the last one)"
                                           % (mark.line + 1, mark.column + 1, show(key)))
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    def _construct_int(loader: t.Any, node: t.Any) -> int:
        text = loader.construct_scalar(node).replace("_", "")
        sign = -1 if text.startswith("-") else 1
        text = text.lstrip("+-")
        if text.startswith("0o"):
            return sign * int(text[2:], 8)
        if text.startswith("0x"):
            return sign * int(text[2:], 16)
        return sign * int(text, 10)

    _Loader.yaml_implicit_resolvers = {}
    for _tag, _pattern, _first in (
        ("bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
        ("int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789"),
        ("float", r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
         "-+0123456789."),
        ("null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
        ("merge", r"^(?:<<)$", "<"),
    ):
        _Loader.add_implicit_resolver("tag:yaml.org,2002:" + _tag, re.compile(_pattern), list(_first))
    _Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _require_libraries() -> None:
    missing = [name for name, module in (("PyYAML", yaml), ("jmespath", jmespath)) if module is None]
    if missing:
        raise ImportError("stackfleet needs the Python libraries %s on the host that reads stack files" % " and ".join(missing))


def load_file(path: str) -> Spec:
    """Load and validate the stack file at `path`; messages name it as given."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(path, ["%s: cannot read the stack file: %s" % (path, exc)])
    return load_text(text, source=path)


def load_text(text: str, source: str = "<text>") -> Spec:
    """Parse YAML text and validate it. YAML errors carry line and column."""
    _require_libraries()
    loader = None
    try:
        loader = _Loader(text)
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = "line %d, column %d: " % (mark.line + 1, mark.column + 1) if mark else ""
        problem = " ".join(part for part in (exc.context, exc.problem) if part)
        raise SpecError(source, ["%s: %sYAML syntax error: %s" % (source, where, problem)])
    except yaml.reader.ReaderError as exc:
        position = exc.position if isinstance(exc.position, int) else 0
        line, column = text.count("\n", 0, position) + 1, position - text.rfind("\n", 0, position)
        raise SpecError(source, ["%s: line %d, column %d: YAML cannot contain the control character %r (%s)"
                                 % (source, line, column, text[position:position + 1], exc.reason)])
    except yaml.YAMLError as exc:
        raise SpecError(source, ["%s: YAML syntax error: %s" % (source, " ".join(str(exc).split()))])
    finally:
        if loader is not None:
            loader.dispose()
    errs = _Errors(source)
    for message in loader.duplicates:
        errs.add("", message)
    return _build(errs, data)


def load_data(data: t.Any, source: str = "<inline>") -> Spec:
    """Validate an already parsed stack file (for example a module's `stack` option)."""
    _require_libraries()
    return _build(_Errors(source), data)


# --- the stack file


def _build(errs: _Errors, data: t.Any) -> Spec:
    if data is None:
        errs.add("", "the stack file is empty; expected a mapping with cluster, services, stacks and deploy")
        errs.raise_any()
    top = _mapping(errs, "", data, TOP_KEYS, what="a mapping with cluster, services, stacks and deploy at the top")
    if top is None:
        errs.raise_any()
    if "cluster" not in top:
        errs.add("cluster", "missing; expected the cluster name, for example 'cluster: prod'")
        cluster = None
    else:
        cluster = _name(errs, "cluster", top["cluster"], "a cluster name")
    strategy = top.get("strategy", "spread")
    if strategy not in STRATEGIES:
        errs.add("strategy", "expected one of %s, got %s%s" % (", ".join(STRATEGIES), show(strategy), _suggest(strategy, STRATEGIES)))

    services = {}
    raw_services = _mapping(errs, "services", top.get("services") or {})
    for name, raw in (raw_services or {}).items():
        if _name(errs, _join("services", name), name, "a service name"):
            service = _service(errs, name, raw)
            if service is not None:
                services[name] = service
    service_names = list((raw_services or {}).keys())

    stacks, colocate = _stacks(errs, top.get("stacks") or {}, service_names)
    deploys = _deploys(errs, top.get("deploy") or {}, services, service_names, stacks, colocate)
    raw_deploy = top.get("deploy")
    declared = list(raw_deploy) if isinstance(raw_deploy, t.Mapping) else []
    _check_references(errs, services, deploys, service_names, declared)
    errs.raise_any()
    return Spec(cluster=cluster, strategy=strategy, services=services, stacks=stacks, deploys=deploys, source=errs.source)


def _stacks(errs: _Errors, raw: t.Any, service_names: t.Sequence[str]
            ) -> t.Tuple[t.Dict[str, t.Tuple[str, ...]], t.Dict[str, bool]]:
    stacks, colocate = {}, {}
    for name, body in (_mapping(errs, "stacks", raw) or {}).items():
        path = _join("stacks", name)
        if not _name(errs, path, name, "a stack name"):
            continue
        if name in service_names:
            errs.add(path, "'%s' is both a stack and a service; deploy keys name either, so the names must differ" % name)
        body = _mapping(errs, path, body, STACK_KEYS)
        if body is None:
            continue
        if "services" not in body:
            errs.add(_join(path, "services"), "missing; expected the list of services the stack runs")
            continue
        members = _list(errs, _join(path, "services"), body["services"], "a non-empty list of service names")
        if members is not None and not members:
            errs.add(_join(path, "services"), "expected a non-empty list of service names, got an empty list")
        good = []
        for index, member in enumerate(members or []):
            item_path = "%s.services[%d]" % (path, index)
            if not isinstance(member, str) or member not in service_names:
                errs.add(item_path, "unknown service %s%s; services are: %s"
                         % (show(member), _suggest(member, service_names), ", ".join(service_names) or "(none)"))
            elif member in good:
                errs.add(item_path, "service '%s' is listed twice" % member)
            else:
                good.append(member)
        stacks[name] = tuple(good)
        colocate[name] = True if "colocate" not in body else bool(_bool(errs, _join(path, "colocate"), body["colocate"]))
    return stacks, colocate


def _deploys(errs: _Errors, raw: t.Any, services: t.Mapping[str, Service], service_names: t.Sequence[str],
             stacks: t.Mapping[str, t.Tuple[str, ...]], colocate: t.Mapping[str, bool]) -> t.Dict[str, Deploy]:
    raw = _mapping(errs, "deploy", raw) or {}
    keys = list(raw.keys())
    known = list(stacks) + [name for name in service_names if name not in stacks]
    deploys = {}
    for key, body in raw.items():
        path = _join("deploy", key)
        if key in stacks:
            members, is_stack = stacks[key], True
        elif key in service_names:
            members, is_stack = (key,), False
        else:
            errs.add(path, "%s is neither a stack nor a service%s; deploy keys are stack or service names: %s"
                     % (show(key), _suggest(key, known), ", ".join(known) or "(none)"))
            continue
        body = _mapping(errs, path, body, DEPLOY_KEYS, what="a mapping with count or global")
        if body is None:
            continue
        deploy = _deploy(errs, path, key, body, members, is_stack, colocate.get(key, True), keys)
        if deploy is not None:
            deploys[key] = deploy
    _check_colocated_ports(errs, services, stacks, colocate)
    return deploys


def _deploy(errs: _Errors, path: str, key: str, body: t.Mapping[str, t.Any], members: t.Tuple[str, ...], is_stack: bool,
            colocate: bool, keys: t.Sequence[str]) -> t.Optional[Deploy]:
    before = len(errs.messages)
    is_global = bool(_bool(errs, _join(path, "global"), body["global"])) if "global" in body else False
    count = 0
    if "count" in body:
        count = _int(errs, _join(path, "count"), body["count"], 0, "a non-negative integer") or 0
        if is_global:
            errs.add(path, "count and global: true exclude each other; a global deploy runs once on every eligible host")
    elif not is_global:
        errs.add(path, "expected count (a number of instances) or global: true, got neither")

    constraint, constraint_fn = None, None
    if body.get("constraint") is not None:
        constraint = _string(errs, _join(path, "constraint"), body["constraint"], "a JMESPath expression string")
        if constraint is not None:
            constraint_fn = _compile_constraint(errs, _join(path, "constraint"), constraint)

    conflicts = _deploy_keys(errs, _join(path, "conflicts"), body.get("conflicts"), keys)
    affinity = _deploy_keys(errs, _join(path, "affinity"), body.get("affinity"), keys)
    if key in affinity:
        errs.add(_join(path, "affinity"), "a deploy cannot need itself on the host; use max_per_host to allow several instances per host")
    for both in sorted(set(conflicts) & set(affinity)):
        errs.add(path, "'%s' is in both conflicts and affinity; a deploy cannot both avoid and need it" % both)

    max_per_host = None
    if body.get("max_per_host") is not None:
        max_per_host = _int(errs, _join(path, "max_per_host"), body["max_per_host"], 1, "an integer of at least 1")
    spread = None
    if body.get("spread") is not None:
        spread = _string(errs, _join(path, "spread"), body["spread"], "a host label name")
    host = None
    if body.get("host") is not None:
        host = _string(errs, _join(path, "host"), body["host"], "a host name")
        if host is not None and is_global:
            errs.add(path, "host (pinned to '%s') and global: true exclude each other" % host)
        elif host is not None and count > 1 and max_per_host is not None and count > max_per_host:
            errs.add(path, "count %d instances pinned to host '%s' exceed max_per_host %d" % (count, host, max_per_host))
        elif host is not None and count > 1 and key in conflicts:
            errs.add(path, "count %d instances pinned to host '%s' conflict with each other (conflicts lists '%s')" % (count, host, key))

    if len(errs.messages) != before:
        return None
    return Deploy(key=key, services=members, is_stack=is_stack, colocate=colocate, count=count, is_global=is_global,
                  constraint=constraint, constraint_fn=constraint_fn, conflicts=conflicts, max_per_host=max_per_host,
                  spread=spread, host=host, affinity=affinity)


def _deploy_keys(errs: _Errors, path: str, value: t.Any, keys: t.Sequence[str]) -> t.Tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    names = []
    for index, name in enumerate(_list(errs, path, value, "a list of deploy keys") or []):
        if not isinstance(name, str) or name not in keys:
            errs.add("%s[%d]" % (path, index), "unknown deploy key %s%s; deploy keys are: %s"
                     % (show(name), _suggest(name, keys), ", ".join(keys) or "(none)"))
        elif name not in names:
            names.append(name)
    return tuple(names)


def _jmespath_truthy(value: t.Any) -> bool:
    # JMESPath truthiness: only false, null and empty strings/lists/objects are false (0 is true).
    return not (value is None or value is False or (isinstance(value, (str, list, dict)) and not value))


def _jmespath_problem(exc: Exception) -> str:
    """jmespath's own str() spans lines with a caret; messages here are one line."""
    position = getattr(exc, "lex_position", None)
    where = " at character %d" % (position + 1) if isinstance(position, int) else ""
    if getattr(exc, "message", None):  # LexerError
        return "%s%s" % (exc.message, where)
    if getattr(exc, "token_value", None) is None and isinstance(position, int):
        return "the expression ends too early%s" % where
    if getattr(exc, "token_value", None) is not None:
        return "unexpected %s%s" % (show(exc.token_value), where)
    return " ".join(str(exc).split())


def _compile_constraint(errs: _Errors, path: str, text: str) -> t.Optional[t.Callable[[t.Mapping[str, t.Any]], bool]]:
    try:
        compiled = jmespath.compile(text)
    except JMESPathError as exc:
        errs.add(path, "invalid JMESPath expression %s: %s" % (show(text), _jmespath_problem(exc)))
        return None

    def eligible(host_document: t.Mapping[str, t.Any]) -> bool:
        """Truthy result = eligible; an evaluation error on this host = not eligible."""
        try:
            return _jmespath_truthy(compiled.search(host_document))
        except (JMESPathError, TypeError, ValueError):
            return False

    return eligible


def _check_colocated_ports(errs: _Errors, services: t.Mapping[str, Service], stacks: t.Mapping[str, t.Tuple[str, ...]],
                           colocate: t.Mapping[str, bool]) -> None:
    for stack, members in stacks.items():
        if not colocate.get(stack, True):
            continue
        owner: t.Dict[t.Tuple[int, str], str] = {}
        for member in members:
            for port, protocol in sorted(services[member].host_ports) if member in services else ():
                if (port, protocol) in owner:
                    errs.add(_join("stacks", stack), "services '%s' and '%s' both use host port %d/%s, but a colocated instance runs"
                             " on one host; change a port or set colocate: false" % (owner[(port, protocol)], member, port, protocol))
                else:
                    owner[(port, protocol)] = member


def _check_references(errs: _Errors, services: t.Mapping[str, Service], deploys: t.Mapping[str, Deploy],
                      service_names: t.Sequence[str], declared: t.Sequence[str]) -> None:
    """Reference names exist, and every deploy that runs a service can resolve its siblings."""
    for service in services.values():
        for path, refs, in_volume in _service_references(errs, service):
            for ref in refs:
                _check_reference(errs, path, ref, service.name, in_volume, deploys, service_names, declared)


def _service_references(errs: _Errors, service: Service) -> t.Iterator[t.Tuple[str, t.List[_refs.Ref], bool]]:
    base = _join("services", service.name)
    config = service.config
    fields: t.List[t.Tuple[str, str, bool]] = []
    for field in ("command", "entrypoint"):
        fields.extend(("%s.%s[%d]" % (base, field, i), value, False) for i, value in enumerate(config[field] or ()))
    fields.extend(("%s.env.%s" % (base, name), value, False) for name, value in config["env"].items())
    fields.extend(("%s.volumes[%d]" % (base, i), volume["source"], True) for i, volume in enumerate(config["volumes"]))
    for path, value, in_volume in fields:
        try:
            yield path, _refs.find(value), in_volume
        except _refs.RefSyntaxError as exc:
            errs.add(path, str(exc))


def _check_reference(errs: _Errors, path: str, ref: _refs.Ref, service: str, in_volume: bool,
                     deploys: t.Mapping[str, Deploy], service_names: t.Sequence[str], declared: t.Sequence[str]) -> None:
    text = _refs.render(ref)
    if in_volume and ref not in _VOLUME_REFS:
        errs.add(path, "'%s' cannot be used in a volume source; only {{ cluster }}, {{ instance.id }} and {{ instance.index }}"
                 " keep a volume name stable" % text)
        return
    running = [deploy for deploy in deploys.values() if service in deploy.services]
    if ref[0] == "sibling":
        sibling = ref[1]
        if sibling not in service_names:
            errs.add(path, "'%s' names unknown service '%s'%s" % (text, sibling, _suggest(sibling, service_names)))
        for deploy in running:
            if sibling not in deploy.services:
                errs.add(path, "'%s' needs service '%s' in the same instance, but deploy '%s' runs only %s"
                         % (text, sibling, deploy.key, ", ".join(deploy.services)))
    elif ref[0] == "addresses":
        key, member = ref[1], ref[2]
        if key in declared and key not in deploys:
            return  # the deploy itself is invalid and already reported
        if key not in deploys:
            errs.add(path, "'%s' names unknown deploy key '%s'%s" % (text, key, _suggest(key, deploys)))
        elif member not in deploys[key].services:
            errs.add(path, "'%s': deploy '%s' does not run service '%s'; it runs %s"
                     % (text, key, member, ", ".join(deploys[key].services)))
    elif ref == ("instance", "index"):
        for deploy in running:
            if deploy.is_global:
                errs.add(path, "'%s' is not defined for global deploy '%s' (its instances are named after hosts);"
                         " use {{ instance.id }} or {{ instance.host }}" % (text, deploy.key))


# --- one service → Service with the normalised container config


def _service(errs: _Errors, name: str, raw: t.Any) -> t.Optional[Service]:
    path = _join("services", name)
    before = len(errs.messages)
    body = _mapping(errs, path, raw, SERVICE_KEYS, what="a mapping with at least image")
    if body is None:
        return None
    image = None
    if "image" not in body:
        errs.add(_join(path, "image"), "missing; every service needs an image, for example 'image: mariadb:11'")
    elif not isinstance(body["image"], str) or not body["image"].strip() or any(c.isspace() for c in body["image"]):
        errs.add(_join(path, "image"), "expected an image reference such as 'mariadb:11', got %s" % show(body["image"]))
    else:
        image = str(body["image"])

    network_mode = _network_mode(errs, _join(path, "network_mode"), body.get("network_mode"))
    ports = _ports(errs, _join(path, "ports"), body.get("ports"), network_mode)
    resources = _resources(errs, _join(path, "resources"), body.get("resources"))
    config = {
        "command": _command(errs, _join(path, "command"), body.get("command")),
        "entrypoint": _command(errs, _join(path, "entrypoint"), body.get("entrypoint")),
        "env": _env(errs, _join(path, "env"), body.get("env")),
        "ports": [{"container_port": p.container_port, "protocol": p.protocol, "host_port": p.host_port, "host_ip": p.host_ip}
                  for p in ports],
        "volumes": _volumes(errs, _join(path, "volumes"), body.get("volumes")),
        "labels": _labels(errs, _join(path, "labels"), body.get("labels")),
        "restart": _restart(errs, _join(path, "restart"), body.get("restart")),
        "network_mode": network_mode,
        "resources": {"cpus": resources.cpus, "memory_mb": resources.memory_mb},
        "healthcheck": _healthcheck(errs, _join(path, "healthcheck"), body.get("healthcheck")),
    }
    if len(errs.messages) != before:
        return None
    return Service(name=name, image=image, resources=resources, ports=tuple(ports), config=config)


def _command(errs: _Errors, path: str, value: t.Any) -> t.Optional[t.List[str]]:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            errs.add(path, "cannot split the command string like a shell would (%s); use a list instead" % exc)
            return None
    items = _list(errs, path, value, "a list of strings or a command string")
    for index, item in enumerate(items or []):
        if not _is_scalar(item):
            errs.add("%s[%d]" % (path, index), "expected a string, got %s" % show(item))
    return [_to_str(item) for item in items or []]


def _string_value(errs: _Errors, path: str, value: t.Any) -> str:
    if value is None or not _is_scalar(value) and not isinstance(value, bool):
        errs.add(path, "expected a string, got %s (write \"\" for an empty value)" % show(value))
        return ""
    return _to_str(value)


def _env(errs: _Errors, path: str, value: t.Any) -> t.Dict[str, str]:
    env = {}
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
        pairs = list((_mapping(errs, path, value, what="a mapping of NAME: value or a list of 'NAME=value'") or {}).items())
    for name, item in pairs:
        if not _ENV_NAME.fullmatch(name):
            errs.add(_join(path, name), "invalid environment variable name %s; expected no '=' or whitespace" % show(name))
        elif name in env:
            errs.add(_join(path, name), "set twice")
        else:
            env[name] = _string_value(errs, _join(path, name), item)
    return env


def _labels(errs: _Errors, path: str, value: t.Any) -> t.Dict[str, str]:
    labels = {}
    for name, item in (_mapping(errs, path, value) or {}).items() if value is not None else ():
        if name.startswith(_RESERVED_LABEL_PREFIX):
            errs.add(_join(path, name), "labels starting with '%s' are reserved for stackfleet's own bookkeeping" % _RESERVED_LABEL_PREFIX)
        else:
            labels[name] = _string_value(errs, _join(path, name), item)
    return labels


def _restart(errs: _Errors, path: str, value: t.Any) -> str:
    if value is None or value is False:  # `restart: no` read by a YAML 1.1 loader
        return "no"
    if isinstance(value, str) and _RESTART.fullmatch(value.strip()):
        return value.strip()
    errs.add(path, "expected one of no, always, unless-stopped, on-failure or on-failure:N, got %s" % show(value))
    return "no"


def _network_mode(errs: _Errors, path: str, value: t.Any) -> t.Optional[str]:
    if value is None:
        return None
    if isinstance(value, str) and _NETWORK_MODE.fullmatch(value):
        return str(value)
    errs.add(path, "expected bridge, host, none, container:<name> or a network name, got %s" % show(value))
    return None


def _parse_port(value: t.Any, network_mode: t.Optional[str]) -> t.List[Port]:
    """One `ports` entry → Ports (a range gives several). Raises ValueError."""
    expected = "expected 'host:container[/proto]', 'container[/proto]' or 'ip:host:container[/proto]'"
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


def _ports(errs: _Errors, path: str, value: t.Any, network_mode: t.Optional[str]) -> t.List[Port]:
    ports: t.List[Port] = []
    if value is None:
        return ports
    items = _list(errs, path, value, "a list of port mappings") or []
    if items and (network_mode == "none" or (network_mode or "").startswith("container:")):
        errs.add(path, "a container with network_mode %s cannot publish ports" % network_mode)
    used: t.Set[t.Tuple[int, str]] = set()
    for index, item in enumerate(items):
        item_path = "%s[%d]" % (path, index)
        for port in _parsed(errs, item_path, lambda v: _parse_port(v, network_mode), item) or ():
            if port.host_key in used:
                errs.add(item_path, "host port %d/%s is used twice by this service" % port.host_key)
            elif port.host_key is not None:
                used.add(port.host_key)
            ports.append(port)
    # A stable order: reordering the file's list must not look like a changed container.
    return sorted(ports, key=lambda p: (p.container_port, p.protocol, p.host_ip, p.host_port or 0))


def _volumes(errs: _Errors, path: str, value: t.Any) -> t.List[t.Dict[str, t.Any]]:
    volumes: t.List[t.Dict[str, t.Any]] = []
    if value is None:
        return volumes
    for index, item in enumerate(_list(errs, path, value, "a list of 'source:target[:ro|rw]'") or []):
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


def _resources(errs: _Errors, path: str, value: t.Any) -> Resources:
    body = _mapping(errs, path, value, RESOURCE_KEYS) if value is not None else {}
    cpus = _parsed(errs, _join(path, "cpus"), parse_cpus, body["cpus"]) if body and "cpus" in body else 0.0
    memory = _parsed(errs, _join(path, "memory"), parse_memory, body["memory"]) if body and "memory" in body else 0
    if memory and memory < _DOCKER_MIN_MEMORY_MB:
        errs.add(_join(path, "memory"), "%s is below Docker's minimum of %dm; a bare number means bytes (did you mean '%sm'?)"
                 % (show(body["memory"]), _DOCKER_MIN_MEMORY_MB, body["memory"]))
    return Resources(cpus=float(cpus or 0.0), memory_mb=int(memory or 0))


def _healthcheck(errs: _Errors, path: str, value: t.Any) -> t.Optional[t.Dict[str, t.Any]]:
    if value is None:
        return None
    body = _mapping(errs, path, value, HEALTHCHECK_KEYS, what="a mapping with test")
    if body is None:
        return None
    check: t.Dict[str, t.Any] = {"test": None}
    check.update(HEALTHCHECK_DEFAULTS)
    test = body.get("test")
    if isinstance(test, str) and test.strip():
        check["test"] = ["CMD-SHELL", str(test)]
    elif isinstance(test, (list, tuple)) and test and all(_is_scalar(item) for item in test):
        check["test"] = [_to_str(item) for item in test]
        kind, size = check["test"][0], len(check["test"])
        if not ((kind == "CMD" and size >= 2) or (kind == "CMD-SHELL" and size == 2) or (kind == "NONE" and size == 1)):
            errs.add(_join(path, "test"), "a test list must be [\"CMD\", program, args...], [\"CMD-SHELL\", command]"
                     " or [\"NONE\"], got %s" % check["test"])
    else:
        errs.add(_join(path, "test"), "expected a command string or a list such as [\"CMD\", \"mysqladmin\", \"ping\"], got %s"
                 % show(test))
    for key, minimum in (("interval", 0.001), ("timeout", 0.001), ("start_period", 0.0)):
        if key in body:
            seconds = _parsed(errs, _join(path, key), parse_duration, body[key])
            if seconds is not None and seconds < minimum:
                errs.add(_join(path, key), "expected a duration of at least %s, got %s" % ("1ms" if minimum else "0s", show(body[key])))
            check[key] = seconds
    if "retries" in body:
        check["retries"] = _int(errs, _join(path, "retries"), body["retries"], 1, "an integer of at least 1")
    return check


# --- hosts


def load_hosts(items: t.Any, source: str = "hosts") -> t.List[Host]:
    """Validate host documents (a list, or a mapping of name → document) into Hosts."""
    errs = _Errors(source)
    if isinstance(items, t.Mapping):
        items = [dict(body or {}, name=name) if isinstance(body, t.Mapping) or body is None else body
                 for name, body in items.items()]
    hosts: t.List[Host] = []
    seen: t.Set[str] = set()
    for index, raw in enumerate(_list(errs, "", items, "a list of host documents") or []):
        host = _host(errs, "[%d]" % index, raw)
        if host is None:
            continue
        if host.name in seen:
            errs.add("[%d]" % index, "host name '%s' appears twice" % host.name)
        seen.add(host.name)
        hosts.append(host)
    errs.raise_any()
    return hosts


def _host(errs: _Errors, path: str, raw: t.Any) -> t.Optional[Host]:
    before = len(errs.messages)
    body = _mapping(errs, path, raw, HOST_KEYS, what="a host document (a mapping with name)")
    if body is None:
        return None
    name = body.get("name")
    if not isinstance(name, str) or not HOST_NAME.fullmatch(name):
        errs.add(_join(path, "name"), "expected a host name (letters, digits, '_', '.', '-'), got %s" % show(name))
        return None
    path = "%s (%s)" % (path, name)
    labels = {}
    for key, value in (_mapping(errs, _join(path, "labels"), body.get("labels") or {}) or {}).items():
        labels[key] = _string_value(errs, _join(path, "labels." + key), value)
    facts = _mapping(errs, _join(path, "facts"), body.get("facts") or {}) or {}
    address = None
    if body.get("address") is not None:
        address = _string(errs, _join(path, "address"), body["address"], "an IP address or DNS name")
        if address is not None and (any(c.isspace() for c in address) or "," in address):
            errs.add(_join(path, "address"), "expected an IP address or DNS name, got %s" % show(address))
    capacity = _capacity(errs, _join(path, "capacity"), body.get("capacity"))
    if len(errs.messages) != before:
        return None
    return Host(name=name, labels=labels, capacity=capacity, facts=dict(facts), address=address)


def _capacity(errs: _Errors, path: str, value: t.Any) -> t.Optional[Resources]:
    if not value:
        return None  # absent: unlimited
    body = _mapping(errs, path, value, CAPACITY_KEYS)
    if body is None:
        return None
    if "memory" in body and "memory_mb" in body:
        errs.add(path, "give memory_mb (a number is MiB) or memory (a size such as 8g), not both")
    if "cpus" not in body or not ("memory" in body or "memory_mb" in body):
        errs.add(path, "expected both cpus and memory_mb (or leave capacity out for an unlimited host)")
        return None
    cpus = _parsed(errs, _join(path, "cpus"), parse_cpus, body["cpus"])
    if "memory" in body:
        memory = _parsed(errs, _join(path, "memory"), parse_memory, body["memory"])
    else:
        raw = body["memory_mb"]
        numeric = raw if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
        if isinstance(raw, str) and raw.strip().replace(".", "", 1).isdigit():
            numeric = float(raw)
        if numeric is not None:  # memory_mb: a number is MiB, unlike Docker's bytes
            memory = _parsed(errs, _join(path, "memory_mb"), parse_memory, "%rm" % float(numeric))
        else:
            memory = _parsed(errs, _join(path, "memory_mb"), parse_memory, raw)
    if cpus is None or memory is None:
        return None
    return Resources(cpus=cpus, memory_mb=memory)

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Load and validate a stack file and a host list into `_model` types.

Every problem of a file is collected and raised at once as `SpecError`; each message
names the file, the key path, what is wrong and what was expected. The full format is
documented in docs/stack-file.md. This file reads YAML and checks the file's structure,
stacks, deploy rules, references and hosts; `_spec_service` normalises one service and
`_spec_checks` holds the message plumbing. No Ansible, Docker or HTTP imports here.
"""

from __future__ import annotations

import dataclasses
import re
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils import _refs
from ansible_collections.stackfleet.cluster.plugins.module_utils import _spec_checks as checks
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import DEFAULT_HOST_PORT_RANGE, STRATEGIES, Deploy, Host, Resources, Service, Spec
from ansible_collections.stackfleet.cluster.plugins.module_utils._spec_checks import NAME, SpecError
from ansible_collections.stackfleet.cluster.plugins.module_utils._spec_service import load_service, parse_host_port_range
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

__all__ = ("NAME", "SpecError", "load_file", "load_text", "load_data", "load_hosts", "parse_memory", "parse_cpus", "parse_duration")

#: Host names end up in global instance ids and so in container names.
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")
TOP_KEYS = ("cluster", "strategy", "services", "stacks", "deploy", "host_port_range")
STACK_KEYS = ("services", "colocate")
DEPLOY_KEYS = ("count", "global", "constraint", "conflicts", "max_per_host", "spread", "host", "affinity", "update")
UPDATE_KEYS = ("parallelism",)
HOST_KEYS = ("name", "address", "labels", "capacity", "facts", "drain")
CAPACITY_KEYS = ("cpus", "memory_mb", "memory")
#: References allowed in a volume source: the ones that keep it a stable, valid name.
_VOLUME_REFS = (("cluster",), ("instance", "id"), ("instance", "index"))


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
    errs = checks.Errors(source)
    for message in loader.duplicates:
        errs.add("", message)
    return _build(errs, data)


def load_data(data: t.Any, source: str = "<inline>") -> Spec:
    """Validate an already parsed stack file (for example a module's `stack` option)."""
    _require_libraries()
    return _build(checks.Errors(source), data)


def with_counts(spec: Spec, counts: t.Mapping[str, t.Any], source: str = "scale") -> Spec:
    """The spec with some deploys' `count` replaced (a scale job's override); all problems at once."""
    errs = checks.Errors(source)
    deploys = dict(spec.deploys)
    for key in sorted(counts, key=str):
        path, value = str(key), counts[key]
        deploy = spec.deploys.get(path)
        if deploy is None:
            errs.add(path, "no deploy of that name in %s%s" % (spec.source, checks.suggest(path, spec.deploys)))
        elif deploy.is_global:
            errs.add(path, "is global (one per eligible host); only count deploys can be scaled")
        else:
            # The stack file's own rule for count: survey answers arrive as strings ('5' is 5).
            count = checks.integer(errs, path, value, 0, "a non-negative integer")
            if count is not None:
                deploys[path] = dataclasses.replace(deploy, count=count)
    errs.raise_any()
    return dataclasses.replace(spec, deploys=deploys)


# --- the stack file


def _build(errs: checks.Errors, data: t.Any) -> Spec:
    if data is None:
        errs.add("", "the stack file is empty; expected a mapping with cluster, services, stacks and deploy")
        errs.raise_any()
    top = checks.mapping(errs, "", data, TOP_KEYS, what="a mapping with cluster, services, stacks and deploy at the top")
    if top is None:
        errs.raise_any()
    if "cluster" not in top:
        errs.add("cluster", "missing; expected the cluster name, for example 'cluster: prod'")
        cluster = None
    else:
        cluster = checks.name(errs, "cluster", top["cluster"], "a cluster name")
    strategy = top.get("strategy", "spread")
    if strategy not in STRATEGIES:
        errs.add("strategy", "expected one of %s, got %s%s" % (", ".join(STRATEGIES), show(strategy), checks.suggest(strategy, STRATEGIES)))

    host_port_range = DEFAULT_HOST_PORT_RANGE
    if "host_port_range" in top:
        host_port_range = parse_host_port_range(errs, "host_port_range", top["host_port_range"])
    services = {}
    raw_services = checks.mapping(errs, "services", top.get("services") or {})
    for name, raw in (raw_services or {}).items():
        if checks.name(errs, checks.join("services", name), name, "a service name"):
            service = load_service(errs, name, raw, host_port_range)
            if service is not None:
                services[name] = service
    service_names = list((raw_services or {}).keys())

    stacks, colocate = _stacks(errs, top.get("stacks") or {}, service_names)
    deploys = _deploys(errs, top.get("deploy") or {}, services, service_names, stacks, colocate)
    raw_deploy = top.get("deploy")
    declared = list(raw_deploy) if isinstance(raw_deploy, t.Mapping) else []
    _check_references(errs, services, deploys, service_names, declared)
    errs.raise_any()
    return Spec(cluster=cluster, strategy=strategy, services=services, stacks=stacks, deploys=deploys, source=errs.source,
                warnings=tuple(errs.warnings))


def _stacks(errs: checks.Errors, raw: t.Any, service_names: t.Sequence[str]
            ) -> t.Tuple[t.Dict[str, t.Tuple[str, ...]], t.Dict[str, bool]]:
    stacks, colocate = {}, {}
    for name, body in (checks.mapping(errs, "stacks", raw) or {}).items():
        path = checks.join("stacks", name)
        if not checks.name(errs, path, name, "a stack name"):
            continue
        if name in service_names:
            errs.add(path, "'%s' is both a stack and a service; deploy keys name either, so the names must differ" % name)
        body = checks.mapping(errs, path, body, STACK_KEYS)
        if body is None:
            continue
        if "services" not in body:
            errs.add(checks.join(path, "services"), "missing; expected the list of services the stack runs")
            continue
        members = checks.sequence(errs, checks.join(path, "services"), body["services"], "a non-empty list of service names")
        if members is not None and not members:
            errs.add(checks.join(path, "services"), "expected a non-empty list of service names, got an empty list")
        good = []
        for index, member in enumerate(members or []):
            item_path = "%s.services[%d]" % (path, index)
            if not isinstance(member, str) or member not in service_names:
                errs.add(item_path, "unknown service %s%s; services are: %s"
                         % (show(member), checks.suggest(member, service_names), ", ".join(service_names) or "(none)"))
            elif member in good:
                errs.add(item_path, "service '%s' is listed twice" % member)
            else:
                good.append(member)
        stacks[name] = tuple(good)
        colocate[name] = True if "colocate" not in body else bool(checks.boolean(errs, checks.join(path, "colocate"), body["colocate"]))
    return stacks, colocate


def _deploys(errs: checks.Errors, raw: t.Any, services: t.Mapping[str, Service], service_names: t.Sequence[str],
             stacks: t.Mapping[str, t.Tuple[str, ...]], colocate: t.Mapping[str, bool]) -> t.Dict[str, Deploy]:
    raw = checks.mapping(errs, "deploy", raw) or {}
    keys = list(raw.keys())
    known = list(stacks) + [name for name in service_names if name not in stacks]
    deploys = {}
    for key, body in raw.items():
        path = checks.join("deploy", key)
        if key in stacks:
            members, is_stack = stacks[key], True
        elif key in service_names:
            members, is_stack = (key,), False
        else:
            errs.add(path, "%s is neither a stack nor a service%s; deploy keys are stack or service names: %s"
                     % (show(key), checks.suggest(key, known), ", ".join(known) or "(none)"))
            continue
        body = checks.mapping(errs, path, body, DEPLOY_KEYS, what="a mapping with count or global")
        if body is None:
            continue
        deploy = _deploy(errs, path, key, body, members, is_stack, colocate.get(key, True), keys)
        if deploy is not None:
            deploys[key] = deploy
    _check_colocated_ports(errs, services, stacks, colocate)
    return deploys


def _deploy(errs: checks.Errors, path: str, key: str, body: t.Mapping[str, t.Any], members: t.Tuple[str, ...], is_stack: bool,
            colocate: bool, keys: t.Sequence[str]) -> t.Optional[Deploy]:
    before = len(errs.messages)
    is_global = bool(checks.boolean(errs, checks.join(path, "global"), body["global"])) if "global" in body else False
    count = 0
    if "count" in body:
        count = checks.integer(errs, checks.join(path, "count"), body["count"], 0, "a non-negative integer") or 0
        if is_global:
            errs.add(path, "count and global: true exclude each other; a global deploy runs once on every eligible host")
    elif not is_global:
        errs.add(path, "expected count (a number of instances) or global: true, got neither")

    constraint, constraint_fn = None, None
    if body.get("constraint") is not None:
        constraint = checks.string(errs, checks.join(path, "constraint"), body["constraint"], "a JMESPath expression string")
        if constraint is not None:
            constraint_fn = _compile_constraint(errs, checks.join(path, "constraint"), constraint)
            problem = quoted_fields(constraint) if constraint_fn is not None else None
            if problem:
                errs.warn(checks.join(path, "constraint"), problem)

    conflicts = _deploy_keys(errs, checks.join(path, "conflicts"), body.get("conflicts"), keys)
    affinity = _deploy_keys(errs, checks.join(path, "affinity"), body.get("affinity"), keys)
    if key in affinity:
        errs.add(checks.join(path, "affinity"), "a deploy cannot need itself on the host; use max_per_host to allow several instances per host")
    for both in sorted(set(conflicts) & set(affinity)):
        errs.add(path, "'%s' is in both conflicts and affinity; a deploy cannot both avoid and need it" % both)

    max_per_host = None
    if body.get("max_per_host") is not None:
        max_per_host = checks.integer(errs, checks.join(path, "max_per_host"), body["max_per_host"], 1, "an integer of at least 1")
    spread = None
    if body.get("spread") is not None:
        spread = checks.string(errs, checks.join(path, "spread"), body["spread"], "a host label name")
    host = None
    if body.get("host") is not None:
        host = checks.string(errs, checks.join(path, "host"), body["host"], "a host name")
        if host is not None and is_global:
            errs.add(path, "host (pinned to '%s') and global: true exclude each other" % host)
        elif host is not None and count > 1 and max_per_host is not None and count > max_per_host:
            errs.add(path, "count %d instances pinned to host '%s' exceed max_per_host %d" % (count, host, max_per_host))
        elif host is not None and count > 1 and key in conflicts:
            errs.add(path, "count %d instances pinned to host '%s' conflict with each other (conflicts lists '%s')" % (count, host, key))

    parallelism = 1
    if body.get("update") is not None:
        update = checks.mapping(errs, checks.join(path, "update"), body["update"], UPDATE_KEYS, what="a mapping with parallelism")
        if update and "parallelism" in update:
            parallelism = checks.integer(errs, checks.join(path, "update.parallelism"), update["parallelism"], 1,
                                         "an integer of at least 1 (instances of this deploy replaced at once, cluster-wide)") or 1

    if len(errs.messages) != before:
        return None
    return Deploy(key=key, services=members, is_stack=is_stack, colocate=colocate, count=count, is_global=is_global,
                  constraint=constraint, constraint_fn=constraint_fn, conflicts=conflicts, max_per_host=max_per_host,
                  spread=spread, host=host, affinity=affinity, parallelism=parallelism)


def _deploy_keys(errs: checks.Errors, path: str, value: t.Any, keys: t.Sequence[str]) -> t.Tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    names = []
    for index, name in enumerate(checks.sequence(errs, path, value, "a list of deploy keys") or []):
        if not isinstance(name, str) or name not in keys:
            errs.add("%s[%d]" % (path, index), "unknown deploy key %s%s; deploy keys are: %s"
                     % (show(name), checks.suggest(name, keys), ", ".join(keys) or "(none)"))
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


#: The top-level fields of a host document (Host.document()); a field named in double quotes
#: that is none of these is null on every host.
HOST_DOCUMENT_FIELDS = ("name", "labels", "capacity", "facts", "address")
#: Tokens after which the current node is no longer the host document (projections, pipes).
_NEW_CONTEXT = ("filter", "pipe", "flatten", "star", "lbracket", "expref", "lbrace")


def quoted_fields(text: str) -> t.Optional[str]:
    """A warning when a constraint names fields in double quotes that read as strings
    (`labels.disk == "ssd"`: in JMESPath "ssd" is the field ssd, null on every host), with the
    expression that means the strings; None when there are none or the text does not tokenize."""
    if jmespath is None:
        return None
    try:
        tokens = list(jmespath.lexer.Lexer().tokenize(text))
    except JMESPathError:
        return None
    spans = []
    previous = None
    for token in tokens:
        if token["type"] in _NEW_CONTEXT:
            break
        if token["type"] == "quoted_identifier" and (previous is None or previous["type"] != "dot") \
                and token["value"] not in HOST_DOCUMENT_FIELDS:
            start = end = token["start"] + 1
            while end < len(text) and text[end] != '"':
                end += 2 if text[end] == "\\" else 1
            spans.append((token["start"], end + 1, str(token["value"])))
        previous = token
    if not spans:
        return None
    fixed, last = [], 0
    for start, end, value in spans:
        fixed.append(text[last:start] + "'%s'" % value.replace("\\", "\\\\").replace("'", "\\'"))
        last = end
    fixed.append(text[last:])
    raw = [text[start:end] for start, end, _value in spans]
    return ("%s %s in JMESPath (double quotes name a field of the host document, which has none of that name, so %s null "
            "on every host); for a string use single quotes or backticks (%s): %s" % (
                ", ".join(raw), "is a field name" if len(raw) == 1 else "are field names", "it is" if len(raw) == 1 else "each is",
                ", ".join("`%s`" % r for r in raw), "".join(fixed)))


def _compile_constraint(errs: checks.Errors, path: str, text: str) -> t.Optional[t.Callable[[t.Mapping[str, t.Any]], bool]]:
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


def _check_colocated_ports(errs: checks.Errors, services: t.Mapping[str, Service], stacks: t.Mapping[str, t.Tuple[str, ...]],
                           colocate: t.Mapping[str, bool]) -> None:
    for stack, members in stacks.items():
        if not colocate.get(stack, True):
            continue
        owner: t.Dict[t.Tuple[int, str], str] = {}
        for member in members:
            for port, protocol in sorted(services[member].host_ports) if member in services else ():
                if (port, protocol) in owner:
                    errs.add(checks.join("stacks", stack), "services '%s' and '%s' both use host port %d/%s, but a colocated instance runs"
                             " on one host; change a port or set colocate: false" % (owner[(port, protocol)], member, port, protocol))
                else:
                    owner[(port, protocol)] = member


def _check_references(errs: checks.Errors, services: t.Mapping[str, Service], deploys: t.Mapping[str, Deploy],
                      service_names: t.Sequence[str], declared: t.Sequence[str]) -> None:
    """Reference names exist, and every deploy that runs a service can resolve its siblings."""
    for service in services.values():
        for path, refs, in_volume in _service_references(errs, service):
            for ref in refs:
                _check_reference(errs, path, ref, service.name, in_volume, deploys, service_names, declared, services)


def _service_references(errs: checks.Errors, service: Service) -> t.Iterator[t.Tuple[str, t.List[_refs.Ref], bool]]:
    base = checks.join("services", service.name)
    config = service.config
    fields: t.List[t.Tuple[str, str, bool]] = []
    for field in ("command", "entrypoint"):
        fields.extend(("%s.%s[%d]" % (base, field, i), value, False) for i, value in enumerate(config[field] or ()))
    fields.extend(("%s.env.%s" % (base, name), value, False) for name, value in config["env"].items()
                  if isinstance(value, str))  # a secret reference {secret: NAME} holds no reference syntax
    fields.extend(("%s.volumes[%d]" % (base, i), volume["source"], True) for i, volume in enumerate(config["volumes"]))
    for path, value, in_volume in fields:
        try:
            yield path, _refs.find(value), in_volume
        except _refs.RefSyntaxError as exc:
            errs.add(path, str(exc))


def _check_reference(errs: checks.Errors, path: str, ref: _refs.Ref, service: str, in_volume: bool,
                     deploys: t.Mapping[str, Deploy], service_names: t.Sequence[str], declared: t.Sequence[str],
                     services: t.Mapping[str, Service]) -> None:
    text = _refs.render(ref)
    if in_volume and ref not in _VOLUME_REFS:
        errs.add(path, "'%s' cannot be used in a volume source; only {{ cluster }}, {{ instance.id }} and {{ instance.index }}"
                 " keep a volume name stable" % text)
        return
    running = [deploy for deploy in deploys.values() if service in deploy.services]
    if ref[0] == "sibling":
        sibling = ref[1]
        if sibling not in service_names:
            errs.add(path, "'%s' names unknown service '%s'%s" % (text, sibling, checks.suggest(sibling, service_names)))
        for deploy in running:
            if sibling not in deploy.services:
                errs.add(path, "'%s' needs service '%s' in the same instance, but deploy '%s' runs only %s"
                         % (text, sibling, deploy.key, ", ".join(deploy.services)))
        target = services.get(sibling)
        if ref[2] == "port" and target is not None and not any(p.host_port is not None or p.dynamic for p in target.ports):
            errs.add(path, "'%s': service '%s' publishes no host port; give it one such as 'auto:%d' or '8080:80'"
                     % (text, sibling, target.ports[0].container_port if target.ports else 80))
    elif ref[0] == "addresses":
        key, member = ref[1], ref[2]
        if key in declared and key not in deploys:
            return  # the deploy itself is invalid and already reported
        if key not in deploys:
            errs.add(path, "'%s' names unknown deploy key '%s'%s" % (text, key, checks.suggest(key, deploys)))
        elif member not in deploys[key].services:
            errs.add(path, "'%s': deploy '%s' does not run service '%s'; it runs %s"
                     % (text, key, member, ", ".join(deploys[key].services)))
    elif ref == ("instance", "index"):
        for deploy in running:
            if deploy.is_global:
                errs.add(path, "'%s' is not defined for global deploy '%s' (its instances are named after hosts);"
                         " use {{ instance.id }} or {{ instance.host }}" % (text, deploy.key))


# --- hosts


def load_hosts(items: t.Any, source: str = "hosts") -> t.List[Host]:
    """Validate host documents (a list, or a mapping of name → document) into Hosts."""
    errs = checks.Errors(source)
    if isinstance(items, t.Mapping):
        items = [dict(body or {}, name=name) if isinstance(body, t.Mapping) or body is None else body
                 for name, body in items.items()]
    hosts: t.List[Host] = []
    seen: t.Set[str] = set()
    for index, raw in enumerate(checks.sequence(errs, "", items, "a list of host documents") or []):
        host = _host(errs, "[%d]" % index, raw)
        if host is None:
            continue
        if host.name in seen:
            errs.add("[%d]" % index, "host name '%s' appears twice" % host.name)
        seen.add(host.name)
        hosts.append(host)
    errs.raise_any()
    return hosts


def _host(errs: checks.Errors, path: str, raw: t.Any) -> t.Optional[Host]:
    before = len(errs.messages)
    body = checks.mapping(errs, path, raw, HOST_KEYS, what="a host document (a mapping with name)")
    if body is None:
        return None
    name = body.get("name")
    if not isinstance(name, str) or not HOST_NAME.fullmatch(name):
        errs.add(checks.join(path, "name"), "expected a host name (letters, digits, '_', '.', '-'), got %s" % show(name))
        return None
    path = "%s (%s)" % (path, name)
    labels = {}
    for key, value in (checks.mapping(errs, checks.join(path, "labels"), body.get("labels") or {}) or {}).items():
        labels[key] = checks.string_value(errs, checks.join(path, "labels." + key), value)
    facts = checks.mapping(errs, checks.join(path, "facts"), body.get("facts") or {}) or {}
    address = None
    if body.get("address") is not None:
        address = checks.string(errs, checks.join(path, "address"), body["address"], "an IP address or DNS name")
        if address is not None and (any(c.isspace() for c in address) or "," in address):
            errs.add(checks.join(path, "address"), "expected an IP address or DNS name, got %s" % show(address))
    capacity = _capacity(errs, checks.join(path, "capacity"), body.get("capacity"))
    drain = body.get("drain", False)
    if drain is None:
        drain = False
    if not isinstance(drain, bool):
        errs.add(checks.join(path, "drain"), "expected true or false, got %s" % show(drain))
    if len(errs.messages) != before:
        return None
    return Host(name=name, labels=labels, capacity=capacity, facts=dict(facts), address=address, drain=drain)


def _capacity(errs: checks.Errors, path: str, value: t.Any) -> t.Optional[Resources]:
    if not value:
        return None  # absent: unlimited
    body = checks.mapping(errs, path, value, CAPACITY_KEYS)
    if body is None:
        return None
    if "memory" in body and "memory_mb" in body:
        errs.add(path, "give memory_mb (a number is MiB) or memory (a size such as 8g), not both")
    if "cpus" not in body or not ("memory" in body or "memory_mb" in body):
        errs.add(path, "expected both cpus and memory_mb (or leave capacity out for an unlimited host)")
        return None
    cpus = checks.parsed(errs, checks.join(path, "cpus"), parse_cpus, body["cpus"])
    if "memory" in body:
        memory = checks.parsed(errs, checks.join(path, "memory"), parse_memory, body["memory"])
    else:
        raw = body["memory_mb"]
        numeric = raw if isinstance(raw, (int, float)) and not isinstance(raw, bool) else None
        if isinstance(raw, str) and raw.strip().replace(".", "", 1).isdigit():
            numeric = float(raw)
        if numeric is not None:  # memory_mb: a number is MiB, unlike Docker's bytes
            memory = checks.parsed(errs, checks.join(path, "memory_mb"), parse_memory, "%rm" % float(numeric))
        else:
            memory = checks.parsed(errs, checks.join(path, "memory_mb"), parse_memory, raw)
    if cpus is None or memory is None:
        return None
    return Resources(cpus=cpus, memory_mb=memory)

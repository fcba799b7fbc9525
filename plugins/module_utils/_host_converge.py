# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One host's converge, as the `containers` module does it, and the same for many hosts at once.

`converge_host` is the whole of one host's run (validate, secrets, connect, read, pull, plan,
apply, report) on an engine that a given function connects to; the `containers` module is a thin
adapter around it, and `cluster_converge` runs it for every host of its `hosts` map from the
controller, concurrently on a bounded pool (`converge_fleet`, scheduling by `_fleet.run`), or one
host at a time in order, stopping at the first host that fails (`serial`, the replacement phase
of `site.yml`).

Nothing here imports Ansible; the engine is reached only through the function given (which the
modules build from `_docker.connect`), so unit tests pass fakes.
"""

from __future__ import annotations

import dataclasses
import time
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils import _difference
from ansible_collections.stackfleet.cluster.plugins.module_utils._converge import (
    DEFERRED,
    FAILED,
    PENDING,
    PULL_POLICIES,
    DocumentError,
    config_hash,
    images_to_pull,
    missing_names,
    plan,
    scrub_doc,
    validate,
)
from ansible_collections.stackfleet.cluster.plugins.module_utils._docker import EngineError
from ansible_collections.stackfleet.cluster.plugins.module_utils._fleet import run
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import LABEL_CONFIG_HASH
from ansible_collections.stackfleet.cluster.plugins.module_utils._secrets import SecretError, hashable
from ansible_collections.stackfleet.cluster.plugins.module_utils._secrets import check as check_secrets

#: The container document (docs/architecture.md, "Container documents") as an Ansible argument
#: spec, so that a malformed one is rejected before any call to the engine. Keys validation adds
#: (None) for what a document leaves out are dropped again (given_keys): the config hash covers
#: the document as given.
DOCUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    cluster=dict(type="str", required=True),
    deploy=dict(type="str"),
    instance=dict(type="str"),
    service=dict(type="str"),
    host=dict(type="str"),
    image=dict(type="str", required=True),
    pull=dict(type="str", choices=list(PULL_POLICIES)),
    update=dict(type="dict", options=dict(parallelism=dict(type="int", default=1))),
    command=dict(type="list", elements="str"),
    entrypoint=dict(type="list", elements="str"),
    env=dict(type="dict"),  # values: str or {secret: NAME}; never logged (see _invocation.ScrubbingModule)
    ports=dict(type="list", elements="dict", options=dict(
        container_port=dict(type="int", required=True), protocol=dict(type="str"), host_port=dict(type="int"),
        host_ip=dict(type="str"))),
    volumes=dict(type="list", elements="dict", options=dict(
        source=dict(type="str", required=True), target=dict(type="str", required=True), read_only=dict(type="bool"))),
    labels=dict(type="dict"),
    restart=dict(type="str"),
    network_mode=dict(type="str"),
    resources=dict(type="dict", options=dict(cpus=dict(type="float"), memory_mb=dict(type="int"))),
    healthcheck=dict(type="dict", options=dict(
        test=dict(type="list", elements="str"), interval=dict(type="float"), timeout=dict(type="float"),
        retries=dict(type="int"), start_period=dict(type="float"))),
)

#: The converge options both modules take (besides the documents and the connection).
OPTIONS_ARGSPEC = dict(
    prune=dict(type="bool", default=True),
    defer_removal=dict(type="list", elements="str", default=[]),
    prune_all=dict(type="bool", default=False),
    replace=dict(type="bool", default=True),
    pull=dict(type="str", default="missing", choices=list(PULL_POLICIES)),
    secrets=dict(type="dict", default={}, no_log=True),
    max_parallel=dict(type="int", default=1),
    wait=dict(type="str", default="running", choices=["none", "running", "healthy"]),
    wait_timeout=dict(type="int", default=60),
    stop_timeout=dict(type="int"),
)

#: Seconds one host's converge may take in a fleet run before it is reported as not answering
#: (its requests have their own timeout; this only bounds a run that never ends).
HOST_DEADLINE = 24 * 3600.0


def given_keys(validated: t.Any, raw: t.Any) -> t.Any:
    """`validated` (typed by the argument spec) restricted to the keys present in `raw`, recursively:
    sub-option validation adds every unset key as None, which would change the config hash."""
    if isinstance(validated, dict) and isinstance(raw, dict):
        return {k: given_keys(v, raw[k]) for k, v in validated.items() if k in raw}
    if isinstance(validated, list) and isinstance(raw, list) and len(validated) == len(raw):
        return [given_keys(validated[i], raw[i]) for i in range(len(raw))]
    return validated


@dataclasses.dataclass(frozen=True)
class Options:
    """How to converge (the modules' options of OPTIONS_ARGSPEC, plus check and diff mode)."""

    prune: bool = True
    prune_all: bool = False
    defer_removal: t.FrozenSet[str] = frozenset()
    replace: bool = True
    pull: str = "missing"
    secrets: t.Mapping[str, t.Any] = dataclasses.field(default_factory=dict)
    max_parallel: int = 1
    wait: str = "running"
    wait_timeout: int = 60
    stop_timeout: t.Optional[int] = None
    check_mode: bool = False
    diff: bool = False

    @classmethod
    def from_params(cls, params: t.Mapping[str, t.Any], check_mode: bool = False, diff: bool = False) -> Options:
        return cls(prune=params["prune"], prune_all=params["prune_all"], defer_removal=frozenset(params["defer_removal"] or ()),
                   replace=params["replace"], pull=params["pull"], secrets=params["secrets"] or {},
                   max_parallel=params["max_parallel"], wait=params["wait"], wait_timeout=params["wait_timeout"],
                   stop_timeout=params["stop_timeout"], check_mode=check_mode, diff=diff)


def diff(actions: t.Sequence[t.Any], host: t.Optional[str] = None) -> t.List[t.Dict[str, t.Any]]:
    """One before/after pair per changed container; env values masked. With `host`, the headers name it."""
    prefix = "%s: " % host if host else ""
    diffs = []
    for action in actions:
        if not action.changes or action.action in (PENDING, FAILED, DEFERRED):
            continue
        if action.fields:  # name each field that changed, not two hashes
            before, after = _difference.diff(action.fields)
            want_hash = config_hash(action.doc) if action.doc else None
            have_hash = action.observed.labels.get(LABEL_CONFIG_HASH) if action.observed else None
            if action.observed and want_hash and have_hash != want_hash:
                before["config_hash"], after["config_hash"] = have_hash, want_hash
        else:
            before = action.observed.summary() if action.observed else {}
            after = dict(scrub_doc(action.doc), config_hash=config_hash(action.doc)) if action.doc else {}
        diffs.append(dict(before=before, after=after,
                          before_header="%s%s (%s)" % (prefix, action.name, "observed" if before else "absent"),
                          after_header="%s%s (%s)" % (prefix, action.name, action.action)))
    return diffs


def resolve_images(engine: t.Any, docs: t.Sequence[t.Mapping[str, t.Any]], policy: str, check_mode: bool
                   ) -> t.Tuple[t.Dict[str, t.Optional[str]], t.List[str], t.Dict[str, str], bool]:
    """Pull what the policy asks for, before anything is stopped. Returns (image ids, refs pulled
    or - in check mode - to pull, unavailable ref -> reason, whether the image store changed)."""
    refs = sorted({d["image"] for d in docs})
    image_ids = engine.image_ids(refs)
    to_pull = images_to_pull(docs, image_ids, policy)
    unavailable = {}
    if check_mode:
        changed = any(image_ids[ref] is None for ref in to_pull)
        pulled = to_pull
    else:
        for ref in to_pull:
            try:
                engine.pull(ref)
            except EngineError as exc:
                unavailable[ref] = "cannot be pulled (%s)" % exc
        before, image_ids = image_ids, engine.image_ids(refs) if to_pull else image_ids
        pulled = [ref for ref in to_pull if ref not in unavailable]
        changed = any(image_ids[ref] != before[ref] for ref in pulled)
    for ref in refs:
        if image_ids[ref] is None and ref not in unavailable and ref not in to_pull:
            unavailable[ref] = "is not on the host and pull is never"
    return image_ids, pulled, unavailable, changed


def converge_host(connect: t.Callable[[], t.Any], cluster: str, docs: t.Sequence[t.Mapping[str, t.Any]], opts: Options,
                  url: t.Optional[str] = None) -> t.Dict[str, t.Any]:
    """One host's converge (the `containers` module's run). `connect()` returns the host's engine
    (`_docker.Engine`); `url` names the engine in errors raised before it answers.

    Returns `{failed, msg, errors, warnings, changed, actions, pending, deferred, pulled,
    containers, diff}`; never raises for a document, secret or engine problem (they are `msg`)."""
    result: t.Dict[str, t.Any] = dict(failed=False, msg="", errors=[], warnings=[], changed=False, actions=[], pending=[],
                                      deferred=[], pulled=[], containers=[], diff=[])
    try:
        validate(docs, cluster)
        # Every {secret: NAME} has a value before anything is touched; from here on each reference
        # carries the digest of its value (the config hash covers it), never the value itself.
        check_secrets(docs, opts.secrets)
        docs = [hashable(doc, opts.secrets) for doc in docs]
        engine = connect()
        engine.secrets = opts.secrets
        url = engine.url
        observed = engine.list_cluster(cluster)
        image_ids, result["pulled"], unavailable, images_changed = resolve_images(engine, docs, opts.pull, opts.check_mode)
        missing = missing_names(docs, observed)
        foreign = engine.foreign_names(cluster, missing) if missing else {}
        configs = engine.configs(observed, [d["name"] for d in docs])  # in-place fields and field-level diffs
        todo = plan(docs, observed, image_ids, prune=opts.prune, foreign=foreign, replace=opts.replace,
                    unavailable=unavailable, would_pull=set(result["pulled"]) if opts.check_mode else frozenset(),
                    prune_all=opts.prune_all, configs=configs, defer=opts.defer_removal)
    except (DocumentError, EngineError, SecretError) as exc:
        result.update(failed=True, msg="%s: %s" % (url, exc))
        return result

    errors = ["%s: %s" % (a.name, a.reason) for a in todo.failed]
    result["warnings"] = list(todo.warnings)
    if opts.diff:
        result["diff"] = diff(todo.actions)

    final = observed
    outcomes: t.Mapping[str, t.Tuple[str, str]] = {}
    if todo.changed and not opts.check_mode:
        errors.extend(engine.apply(todo, opts.max_parallel, opts.wait, opts.wait_timeout, opts.stop_timeout))
        outcomes = engine.outcomes
        try:
            final = engine.list_cluster(cluster)
        except EngineError as exc:
            errors.append(str(exc))
    reports = []
    for action in todo.actions:
        report = action.report()
        if action.name in outcomes:
            report.update(action=outcomes[action.name][0], reason=outcomes[action.name][1])
        reports.append(report)
    result["actions"] = reports
    result["pending"] = [{"name": r["name"], "reason": r["reason"]} for r in reports if r["action"] == PENDING]
    result["deferred"] = [{"name": r["name"], "reason": r["reason"]} for r in reports if r["action"] == DEFERRED]
    result["changed"] = images_changed or any(r["action"] not in ("unchanged", PENDING, FAILED, DEFERRED) for r in reports)
    result["containers"] = [o.summary() for o in sorted(final, key=lambda o: o.name)]
    if errors:
        result.update(failed=True, errors=errors, msg="%d container error(s) on %s: %s" % (len(errors), engine.url, "; ".join(errors)))
    return result


# The fleet ----------------------------------------------------------------------------------

#: What each host's entry of a fleet result keeps of `converge_host`'s result.
HOST_KEYS = ("changed", "failed", "msg", "errors", "actions", "pending", "deferred", "pulled")


def preflight(cluster: str, hosts: t.Mapping[str, t.Mapping[str, t.Any]], secrets: t.Mapping[str, t.Any],
              urls: t.Mapping[str, str]) -> t.Optional[str]:
    """Why the fleet run must not touch any host, or None: a malformed document (named by host),
    a secret reference without a value anywhere in the plan, or two hosts reaching one engine
    (each would remove the other's containers as not desired)."""
    problems = []
    for host in hosts:
        try:
            validate(hosts[host]["containers"], cluster)
        except DocumentError as exc:
            problems.append("hosts.%s.containers: %s" % (host, exc))
    if problems:
        return "; ".join(problems)
    try:
        check_secrets([doc for host in hosts for doc in hosts[host]["containers"]], secrets)
    except SecretError as exc:
        return str(exc)
    by_url: t.Dict[str, t.List[str]] = {}
    for host in hosts:
        by_url.setdefault(urls[host], []).append(host)
    shared = ["%s (%s)" % (url, ", ".join(sorted(names))) for url, names in sorted(by_url.items()) if len(names) > 1]
    if shared:
        return ("more than one host reaches the same Docker engine, each would remove the others' containers: %s; "
                "set each host's stackfleet_docker_host (hosts.<host>.connection.docker_host)" % "; ".join(shared))
    return None


def _host_entry(value: t.Mapping[str, t.Any], seconds: float, report_unchanged: bool) -> t.Dict[str, t.Any]:
    entry = {key: value[key] for key in HOST_KEYS}
    if not report_unchanged:
        entry["actions"] = [a for a in entry["actions"] if a["action"] != "unchanged"]
    entry["seconds"] = round(seconds, 3)
    return entry


def converge_fleet(cluster: str, hosts: t.Mapping[str, t.Mapping[str, t.Any]], opts: Options,
                   connect: t.Callable[[str, t.Mapping[str, t.Any]], t.Any], urls: t.Mapping[str, str],
                   host_parallel: int = 16, serial: bool = False, report_unchanged: bool = True,
                   deadline: float = HOST_DEADLINE) -> t.Dict[str, t.Any]:
    """`converge_host` on every host of `hosts` (host -> {containers, connection}).

    `connect(host, connection)` returns the host's engine; `urls` names each host's engine (for
    errors before it answers, and the one-engine-per-host check). Concurrently, at most
    `host_parallel` hosts at once, a failed host never stopping the others; or with `serial` one
    host at a time in the order of `hosts`, stopping at the first that fails (the hosts after it
    are untouched and listed in `skipped_hosts`). Nothing is touched anywhere when `preflight`
    finds a problem: every host then fails with it.

    Returns `{changed, failed, msg, hosts: {host: {changed, failed, msg, errors, actions, pending,
    deferred, pulled, seconds}}, failed_hosts, skipped_hosts, warnings, diff}`."""
    names = list(hosts)
    report: t.Dict[str, t.Any] = dict(changed=False, failed=False, msg="", hosts={}, failed_hosts=[], skipped_hosts=[],
                                      warnings=[], diff=[])
    problem = preflight(cluster, hosts, opts.secrets, urls)
    if problem:
        for host in names:
            report["hosts"][host] = dict(changed=False, failed=True, msg=problem, errors=[], actions=[], pending=[],
                                         deferred=[], pulled=[], seconds=0.0)
        report.update(failed=True, failed_hosts=names, msg="no host was converged: %s" % problem)
        return report

    def one(host: str, spec: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
        return converge_host(lambda: connect(host, spec.get("connection") or {}), cluster, spec["containers"], opts, urls[host])

    results: t.Dict[str, t.Tuple[t.Dict[str, t.Any], float]] = {}
    if serial:
        for index, host in enumerate(names):
            started = time.monotonic()
            try:
                value = one(host, hosts[host])
            except Exception as exc:  # pylint: disable=broad-except  # the host's error, as in the concurrent run
                value = converge_host(_raiser(exc), cluster, [], opts, urls[host])
            results[host] = (value, time.monotonic() - started)
            if value["failed"]:
                report["skipped_hosts"] = names[index + 1:]
                break
    else:
        for host, outcome in run(hosts, one, deadline, host_parallel).items():
            value = outcome.value if outcome.ok else dict(
                failed=True, msg="%s: %s" % (urls[host], outcome.error), errors=[], warnings=[], changed=False, actions=[],
                pending=[], deferred=[], pulled=[], containers=[], diff=[])
            results[host] = (value, outcome.seconds)
    for host in names:
        if host in results:
            value, seconds = results[host]
            report["hosts"][host] = _host_entry(value, seconds, report_unchanged)
            report["warnings"].extend("%s: %s" % (host, w) for w in value["warnings"])
            report["diff"].extend(dict(d, before_header="%s: %s" % (host, d["before_header"]),
                                       after_header="%s: %s" % (host, d["after_header"])) for d in value["diff"])
        else:
            stopped = report["failed_hosts"][-1] if report["failed_hosts"] else "a failed host"
            report["hosts"][host] = dict(changed=False, failed=False, skipped=True, errors=[], actions=[], pending=[],
                                         deferred=[], pulled=[], seconds=0.0,
                                         msg="not converged: the rollout stopped at %s" % stopped)
        if report["hosts"][host]["failed"]:
            report["failed_hosts"].append(host)
    report["changed"] = any(entry["changed"] for entry in report["hosts"].values())
    if report["failed_hosts"]:
        report["failed"] = True
        report["msg"] = "%d of %d host(s) did not converge: %s" % (
            len(report["failed_hosts"]), len(names), "; ".join("%s: %s" % (h, report["hosts"][h]["msg"]) for h in report["failed_hosts"]))
    return report


def _raiser(exc: BaseException) -> t.Callable[[], t.Any]:
    def fail() -> t.Any:
        raise EngineError(str(exc) or type(exc).__name__)
    return fail

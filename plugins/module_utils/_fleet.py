# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One call per Docker engine of the fleet, all at once, from the controller.

`run` is the scheduling (a bounded pool of daemon threads, a deadline per call, every failure
kept per host, never an exception for one bad host); `on_engines` connects to each engine
(through `_docker`, the only Docker edge) and runs a function on it; `probe` is the liveness
check of `site.yml` (module `engine_probe`): one `GET /version` per engine, one attempt each.

Input everywhere is the `engines` mapping the `stackfleet.cluster.engines` filter builds:
host name → the containers module's connection options (`_docker.CONNECTION_ARGSPEC`) that
the host's `stackfleet_docker_*` variables set. Options a host leaves unset fall back to the
environment and the defaults exactly as the containers module's arguments do, so the probe
reaches an engine the way the converge will.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils._docker import (  # noqa: F401 - short_error is this module's API too
    CONNECTION_ARGSPEC,
    Engine,
    connect,
    resolve_endpoint,
    short_error,
)
from ansible_collections.stackfleet.cluster.plugins.module_utils._task import TaskFailed

#: Default seconds one engine gets to answer a probe.
PROBE_TIMEOUT = 3.0
#: Default number of engines talked to at once.
MAX_WORKERS = 16
#: Seconds a call may run past its own timeout (TLS handshake, thread start) before it is given up.
GRACE = 2.0

T = t.TypeVar("T")
R = t.TypeVar("R")


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one call on one host gave: its value, or the error that stopped it."""

    host: str
    ok: bool
    value: t.Any = None
    error: t.Optional[str] = None
    seconds: float = 0.0


def run(items: t.Mapping[str, T], fn: t.Callable[[str, T], R], deadline: float,
        max_workers: int = MAX_WORKERS) -> t.Dict[str, Outcome]:
    """`fn(host, item)` for every host of `items`, at most `max_workers` at once.

    Each call gets `deadline` seconds from its start; one still running then is reported as
    an error ("no answer within N s") and left behind on its daemon thread (a fresh worker
    takes its place, so a hung engine never holds up the others or the module's exit). An
    exception is the host's error (its text), never raised. Returns host → Outcome for every
    host of `items`.
    """
    hosts = sorted(items)
    if not hosts:
        return {}
    lock = threading.Condition()
    queue = list(reversed(hosts))
    started: t.Dict[str, float] = {}
    results: t.Dict[str, Outcome] = {}

    def work() -> None:
        while True:
            with lock:
                if not queue:
                    return
                host = queue.pop()
                started[host] = time.monotonic()
            try:
                value = fn(host, items[host])
                outcome = Outcome(host, True, value, None, time.monotonic() - started[host])
            except Exception as exc:  # pylint: disable=broad-except  # one host's failure is that host's result
                outcome = Outcome(host, False, None, str(exc) or type(exc).__name__, time.monotonic() - started[host])
            with lock:
                results.setdefault(host, outcome)  # a late answer after the deadline does not overwrite it
                lock.notify_all()

    def spawn() -> None:
        threading.Thread(target=work, name="stackfleet-fleet", daemon=True).start()

    for _index in range(min(max(1, max_workers), len(hosts))):
        spawn()
    with lock:
        while len(results) < len(hosts):
            now = time.monotonic()
            for host, since in list(started.items()):
                if host not in results and now - since >= deadline:
                    results[host] = Outcome(host, False, None, "no answer within %g s" % deadline, now - since)
                    spawn()  # its worker is stuck: the hosts still queued get another
            waits = [since + deadline - now for host, since in started.items() if host not in results]
            if len(results) < len(hosts):
                lock.wait(timeout=max(0.01, min(waits)) if waits else 0.1)
    return {host: results[host] for host in hosts}


def endpoint_params(options: t.Optional[t.Mapping[str, t.Any]], environ: t.Optional[t.Mapping[str, str]] = None
                    ) -> t.Dict[str, t.Any]:
    """One host's connection options as the containers module would see them: what the host
    sets, then the option's environment variable, then its default (CONNECTION_ARGSPEC)."""
    env = os.environ if environ is None else environ
    given = dict(options or {})
    params: t.Dict[str, t.Any] = {}
    for option, spec in CONNECTION_ARGSPEC.items():
        value = given.get(option)
        if value is None:
            for alias in spec.get("aliases") or ():
                if given.get(alias) is not None:
                    value = given[alias]
        if value is None and spec.get("fallback"):
            for var in spec["fallback"][1]:
                if env.get(var):
                    value = env[var]
                    break
            if value is not None and spec.get("type") == "bool":
                value = str(value).strip().lower() in ("1", "true", "yes", "on", "y", "t")
        if value is None:
            value = spec.get("default")
        params[option] = value
    return params


def check_params(engines: t.Mapping[str, t.Any], timeout: float, max_workers: int) -> t.Optional[str]:
    """What is wrong with the common options of the modules built on `on_engines`, or None."""
    if timeout <= 0 or max_workers < 1:
        return "timeout must be positive and max_workers at least 1"
    bad = sorted(str(host) for host, options in engines.items() if options is not None and not isinstance(options, dict))
    if bad:
        return "engines: the value of %s must be a mapping of connection options" % ", ".join(bad)
    return None


def on_engines(engines: t.Mapping[str, t.Optional[t.Mapping[str, t.Any]]], fn: t.Callable[[Engine], R],
               timeout: float, max_workers: int = MAX_WORKERS, environ: t.Optional[t.Mapping[str, str]] = None,
               deadline: t.Optional[float] = None) -> t.Dict[str, Outcome]:
    """Connect to every engine of `engines` (each with `timeout` seconds per request instead of
    the host's own `timeout`) and return `fn(engine)` per host, concurrently (`run`). A host that
    cannot be reached, or whose options are refused (`_docker.resolve_endpoint`), gets its error.
    `deadline` bounds all of one host's calls (default `timeout` + GRACE: one request each)."""

    def call(_host: str, options: t.Optional[t.Mapping[str, t.Any]]) -> R:
        endpoint = dataclasses.replace(resolve_endpoint(endpoint_params(options, environ), environ), timeout=timeout)
        return fn(connect(endpoint))

    return run(engines, call, timeout + GRACE if deadline is None else deadline, max_workers)


def _version(engine: Engine) -> t.Dict[str, t.Any]:
    info = engine.version()
    return {"version": str(info.get("Version") or ""), "api_version": str(info.get("ApiVersion") or "")}


def probe(engines: t.Mapping[str, t.Optional[t.Mapping[str, t.Any]]], timeout: float = PROBE_TIMEOUT,
          max_workers: int = MAX_WORKERS, environ: t.Optional[t.Mapping[str, str]] = None) -> t.Dict[str, t.Any]:
    """Liveness of every engine: one `GET /version` each, one attempt, `timeout` seconds, all at once.

    Returns `{up: [names], down: [names], engines: {host: {up, version, api_version, error, seconds}}}`
    (the `engine_probe` module's result)."""
    outcomes = on_engines(engines, _version, timeout, max_workers, environ)
    report: t.Dict[str, t.Dict[str, t.Any]] = {}
    for host, outcome in outcomes.items():
        value = outcome.value or {}
        report[host] = {"up": outcome.ok, "version": value.get("version"), "api_version": value.get("api_version"),
                        "error": short_error(outcome.error) if outcome.error else None,
                        "seconds": round(outcome.seconds, 3)}
    return {"up": sorted(h for h, r in report.items() if r["up"]),
            "down": sorted(h for h, r in report.items() if not r["up"]),
            "engines": report}


#: engine_probe's options; run_probe is what the module (and, on the controller, its action plugin) does.
PROBE_SPEC: t.Dict[str, t.Any] = dict(
    engines=dict(type="dict", required=True),
    timeout=dict(type="float", default=PROBE_TIMEOUT),
    max_workers=dict(type="int", default=MAX_WORKERS),
)


def run_probe(params: t.Mapping[str, t.Any], check_mode: bool = False, diff: bool = False) -> t.Dict[str, t.Any]:
    problem = check_params(params["engines"], params["timeout"], params["max_workers"])
    if problem:
        raise TaskFailed(problem)
    return dict(probe(params["engines"], params["timeout"], params["max_workers"]), changed=False)


def split(outcomes: t.Mapping[str, Outcome]) -> t.Tuple[t.Dict[str, t.Any], t.Dict[str, str]]:
    """(host → value for the hosts whose call succeeded, host → error for the others)."""
    return ({h: o.value for h, o in outcomes.items() if o.ok}, {h: o.error or "failed" for h, o in outcomes.items() if not o.ok})

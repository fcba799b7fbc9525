# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the containers and cluster_converge modules do, as functions of their validated
parameters: shared by each module and by its action plugin, which runs it in the task's worker
when the task runs on the controller (plugin_utils/_in_worker.py). Each returns the result or
raises TaskFailed with the result's msg and fields; warnings are in the result's `warnings`."""

from __future__ import annotations

import typing as t

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.stackfleet.cluster.plugins.module_utils._docker import CONNECTION_ARGSPEC, connect, resolve_endpoint
from ansible_collections.stackfleet.cluster.plugins.module_utils._fleet import endpoint_params
from ansible_collections.stackfleet.cluster.plugins.module_utils._host_converge import (
    DOCUMENT_SPEC,
    OPTIONS_ARGSPEC,
    Options,
    converge_fleet,
    converge_host,
    given_keys,
)
from ansible_collections.stackfleet.cluster.plugins.module_utils._invocation import NO_LOG_VALUE, scrub_documents, scrubbed
from ansible_collections.stackfleet.cluster.plugins.module_utils._task import TaskFailed

# ---------------------------------------------------------------- containers

CONTAINERS_SPEC: t.Dict[str, t.Any] = dict(
    cluster=dict(type="str", required=True),
    containers=dict(type="list", elements="dict", required=True, options=DOCUMENT_SPEC),
)
CONTAINERS_SPEC.update(OPTIONS_ARGSPEC)
CONTAINERS_SPEC.update(CONNECTION_ARGSPEC)


def run_containers(params: t.Mapping[str, t.Any], raw_documents: t.Any, check_mode: bool = False,
                   diff: bool = False) -> t.Dict[str, t.Any]:
    """One host's converge. `raw_documents` are the documents as the task gave them (before the
    argument spec added every unset key as None, which would change the config hash)."""
    params = dict(params)
    docs = params["containers"] = given_keys(params["containers"], raw_documents if isinstance(raw_documents, list)
                                             else params["containers"])
    result: t.Dict[str, t.Any] = dict(changed=False, actions=[], pending=[], deferred=[], pulled=[], containers=[],
                                      invocation={"module_args": scrubbed(params)})
    if params["max_parallel"] < 1:
        raise TaskFailed("max_parallel must be at least 1", **result)
    outcome = converge_host(lambda: connect(resolve_endpoint(params)), params["cluster"], docs,
                            Options.from_params(params, check_mode, diff), params.get("docker_host"))
    for key in result:
        if key in outcome:
            result[key] = outcome[key]
    if outcome["warnings"]:
        result["warnings"] = list(outcome["warnings"])
    if diff and (outcome["actions"] or not outcome["failed"]):  # planned: the diff, even when a container failed
        result["diff"] = outcome["diff"]
    if outcome["failed"]:
        if outcome["errors"]:
            result["errors"] = outcome["errors"]
        raise TaskFailed(outcome["msg"], **result)
    return result


# ---------------------------------------------------------------- cluster_converge

CLUSTER_SPEC: t.Dict[str, t.Any] = dict(
    cluster=dict(type="str", required=True),
    hosts=dict(type="dict", required=True),
    host_parallel=dict(type="int", default=16),
    serial=dict(type="bool", default=False),
    report_unchanged=dict(type="bool", default=True),
)
CLUSTER_SPEC.update(OPTIONS_ARGSPEC)

_DOCUMENTS = ArgumentSpecValidator(dict(containers=dict(type="list", elements="dict", required=True, options=DOCUMENT_SPEC)))


def scrubbed_cluster(params: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """cluster_converge's `params` with every host's documents' env values masked and `secrets` hidden."""
    args = dict(params)
    hosts = params.get("hosts")
    if isinstance(hosts, dict):
        args["hosts"] = {host: dict(spec, containers=scrub_documents(spec.get("containers")))
                         if isinstance(spec, dict) and isinstance(spec.get("containers"), list) else spec
                         for host, spec in hosts.items()}
    if args.get("secrets"):
        args["secrets"] = NO_LOG_VALUE
    return args


def typed_hosts(hosts: t.Mapping[str, t.Any]) -> t.Dict[str, t.Dict[str, t.Any]]:
    """host -> {containers: typed documents, connection: options}, or raise ValueError naming the key."""
    typed = {}
    for host, spec in hosts.items():
        if not isinstance(spec, dict):
            raise ValueError("hosts.%s must be a mapping with containers and connection" % host)
        unknown = sorted(set(spec) - {"containers", "connection"})
        if unknown:
            raise ValueError("hosts.%s: unknown key(s) %s (containers, connection)" % (host, ", ".join(unknown)))
        connection = spec.get("connection") or {}
        if not isinstance(connection, dict):
            raise ValueError("hosts.%s.connection must be a mapping of connection options" % host)
        raw = spec.get("containers")
        if not isinstance(raw, list):
            raise ValueError("hosts.%s.containers must be a list of container documents" % host)
        checked = _DOCUMENTS.validate(dict(containers=raw))
        if checked.error_messages:
            raise ValueError("hosts.%s.containers: %s" % (host, "; ".join(checked.error_messages)))
        typed[host] = dict(containers=given_keys(checked.validated_parameters["containers"], raw), connection=connection)
    return typed


def run_cluster(params: t.Mapping[str, t.Any], check_mode: bool = False, diff: bool = False) -> t.Dict[str, t.Any]:
    """Every host of params['hosts'] converged (bounded thread pool; one by one with `serial`)."""
    result: t.Dict[str, t.Any] = dict(changed=False, hosts={}, failed_hosts=[], skipped_hosts=[],
                                      invocation={"module_args": scrubbed_cluster(params)})
    if params["max_parallel"] < 1 or params["host_parallel"] < 1:
        raise TaskFailed("max_parallel and host_parallel must be at least 1", **result)
    try:
        hosts = typed_hosts(params["hosts"])
    except ValueError as exc:
        raise TaskFailed(str(exc), **result) from exc
    urls, endpoints = {}, {}
    for host, spec in hosts.items():
        # What the containers module would resolve for this host: its options, the environment, the defaults.
        endpoints[host] = endpoint_params(spec["connection"])
        urls[host] = endpoints[host].get("docker_host")

    report = converge_fleet(params["cluster"], hosts, Options.from_params(params, check_mode, diff),
                            lambda host, _connection: connect(resolve_endpoint(endpoints[host])), urls,
                            host_parallel=params["host_parallel"], serial=params["serial"],
                            report_unchanged=params["report_unchanged"])
    if report["warnings"]:
        result["warnings"] = list(report["warnings"])
    result.update(changed=report["changed"], hosts=report["hosts"], failed_hosts=report["failed_hosts"],
                  skipped_hosts=report["skipped_hosts"])
    if diff:
        result["diff"] = report["diff"]
    if report["failed"]:
        raise TaskFailed(report["msg"], **result)
    return result

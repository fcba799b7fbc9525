# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller-side modules run in the worker only when that answers as the module would."""

from __future__ import annotations

import types

import pytest
from ansible.playbook.play_context import PlayContext
from ansible.playbook.task import Task
from ansible_collections.stackfleet.cluster.plugins.action.etcd_plan import ActionModule as EtcdPlanAction
from ansible_collections.stackfleet.cluster.plugins.module_utils import _etcd_tasks
from ansible_collections.stackfleet.cluster.plugins.module_utils._task import TaskFailed
from ansible_collections.stackfleet.cluster.plugins.plugin_utils import _in_worker

HOSTS = [{"host": "n%d" % i, "name": "n%d" % i, "peer_url": "https://10.0.0.%d:2380" % i} for i in (1, 2, 3)]


def action(args, transport="local", become=False, async_val=0, environment=None, check_mode=False):
    task = Task()
    task.args = args
    task.async_val = async_val
    task.environment = environment
    task.check_mode = check_mode
    play_context = PlayContext()
    play_context.become = become
    connection = types.SimpleNamespace(transport=transport, has_native_async=False, _shell=types.SimpleNamespace(tmpdir="/tmp/x"))
    plugin = EtcdPlanAction(task, connection, play_context, loader=None, templar=None, shared_loader_obj=None)
    plugin._execute_module = lambda **kw: {"ran": "module", "module_name": kw["module_name"]}
    plugin._remove_tmp_path = lambda path: None
    return plugin


@pytest.mark.parametrize("transport, kw, in_worker", [
    ("local", {}, True),
    ("local", {"environment": [{}]}, True),               # what a task gets when no level sets an environment
    ("local", {"environment": [{}, None]}, True),
    ("ansible.builtin.local", {}, True),
    ("ssh", {}, False),                                  # delegated to another host: the module runs there
    ("local", {"become": True}, False),                  # the module would run as another user
    ("local", {"async_val": 30}, False),
    ("local", {"environment": [{"ETCDCTL_ENDPOINTS": "https://x:2379"}]}, False),  # only the module would see it
])
def test_in_worker_only_where_the_module_would_answer_the_same(transport, kw, in_worker):
    assert _in_worker.runs_in_worker(action({}, transport, **kw)) is in_worker


def test_in_worker_result_is_the_modules_logic():
    expected = _etcd_tasks.run_plan(_in_worker.validate(_etcd_tasks.PLAN_SPEC, {"hosts": HOSTS})[0])
    result = action({"hosts": HOSTS}).run(task_vars={})
    assert {k: result[k] for k in expected} == expected and expected["changed"] is False and not result.get("failed")


def test_elsewhere_the_module_runs():
    assert action({"hosts": HOSTS}, transport="ssh").run(task_vars={})["ran"] == "module"


def test_bad_arguments_fail_as_the_module_would():
    result = action({"hosts": [{"host": "n1"}], "bogus": 1}).run(task_vars={})
    assert result["failed"] is True and result["changed"] is False
    assert "bogus" in result["msg"] and "peer_url" in result["msg"]


def test_a_failure_keeps_its_fields(monkeypatch):
    def refuse(params, check_mode, diff):
        raise TaskFailed("refused: n2 has a record of another cluster", code=9)
    monkeypatch.setattr(EtcdPlanAction, "WORK", staticmethod(refuse))
    result = action({"hosts": HOSTS}).run(task_vars={})
    assert result["failed"] is True and result["msg"] == "refused: n2 has a record of another cluster" and result["code"] == 9


def test_validate_applies_defaults_aliases_and_fallbacks(monkeypatch):
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", "https://x:2379")
    params, error, secrets = _in_worker.validate(_etcd_tasks.STATE_INFO_SPEC, {"cluster": "prod", "cacert": "/ca.pem"})
    assert error is None and params["endpoints"] == ["https://x:2379"] and params["ca_cert"] == "/ca.pem" and not secrets
    assert _in_worker.validate(_etcd_tasks.STATE_INFO_SPEC, {})[1] == "missing required arguments: cluster"


def test_no_log_values_are_masked_in_the_result_as_a_module_masks_them(monkeypatch):
    monkeypatch.setenv("ETCDCTL_PASSWORD", "s3cret-pw")

    def leak(params, check_mode, diff):
        raise TaskFailed("auth failed for root:%s" % params["password"], tried=[params["password"]])

    class StateInfo(EtcdPlanAction):
        ARGUMENT_SPEC = _etcd_tasks.STATE_INFO_SPEC
        WORK = staticmethod(leak)

    plugin = action({"cluster": "prod"})
    plugin.__class__ = StateInfo
    result = plugin.run(task_vars={})
    assert "s3cret-pw" not in str(result) and result["msg"] == "auth failed for root:********"


def test_containers_in_worker_masks_secrets_and_env_and_names_the_engine(monkeypatch):
    from ansible_collections.stackfleet.cluster.plugins.action.containers import ActionModule as ContainersAction
    from ansible_collections.stackfleet.cluster.plugins.module_utils import _converge_tasks, _host_converge

    def no_engine(endpoint):
        raise _host_converge.EngineError("cannot reach the Docker engine at %s" % endpoint.url)

    monkeypatch.setattr(_converge_tasks, "connect", no_engine)
    docs = [{"name": "it.db-1.db", "cluster": "it", "image": "db:1", "env": {"PW": {"secret": "db"}, "USER": "admin-user"}}]
    plugin = action({"cluster": "it", "containers": docs, "secrets": {"db": "s3cret-db-pw"}, "docker_host": "tcp://192.0.2.9:2376",
                     "tls": True, "validate_certs": False})
    plugin.__class__ = ContainersAction
    result = plugin.run(task_vars={})
    assert result["failed"] is True and "tcp://192.0.2.9:2376" in result["msg"]
    assert "s3cret-db-pw" not in str(result) and "admin-user" not in str(result)
    # the documents as given (no key the task did not set), env values masked, names kept
    assert result["invocation"]["module_args"]["containers"] == [dict(docs[0], env={"PW": "********", "USER": "********"})]


def test_without_the_docker_sdk_in_the_controller_the_module_runs(monkeypatch):
    from ansible_collections.stackfleet.cluster.plugins.action.containers import ActionModule as ContainersAction
    from ansible_collections.stackfleet.cluster.plugins.module_utils import _docker

    monkeypatch.setattr(_docker, "HAS_DOCKER", False)
    plugin = action({"cluster": "it", "containers": []})
    plugin.__class__ = ContainersAction
    assert plugin.run(task_vars={}) == {"ran": "module", "module_name": "stackfleet.cluster.containers"}

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running a controller-side module's logic in the task's own worker process.

The etcd modules are network clients that site.yml runs on the controller (hosts: localhost,
or delegate_to: localhost). Sent as a module, each such task pays for packing, starting and
unpacking a Python process (0.3-0.8 s on a loaded controller, docs/performance.md) to make one or
two HTTP calls. Their action plugins run the same logic (module_utils) in the worker instead,
when that gives the same answer as the module would: the task runs on the controller (a local
connection), without privilege escalation, async or a task `environment:` (the module would see
those; the worker does not).
"""

from __future__ import annotations

import typing as t

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.parameters import remove_values
from ansible.plugins.action import ActionBase
from ansible_collections.stackfleet.cluster.plugins.module_utils._task import TaskFailed

LOCAL_TRANSPORTS = ("local", "ansible.builtin.local")


def runs_in_worker(action: t.Any) -> bool:
    """True when action's task may run its logic in this worker with the module's result."""
    task = action._task
    # The task's `environment` is a list of the levels that set one (play, block, task): [{}] when none does.
    environment = [level for level in (task.environment or ()) if level]
    return (getattr(action._connection, "transport", None) in LOCAL_TRANSPORTS
            and not action._play_context.become and not task.async_val and not environment)


def validate(argument_spec: t.Mapping[str, t.Any], args: t.Mapping[str, t.Any],
             **rules: t.Any) -> t.Tuple[t.Optional[t.Dict[str, t.Any]], t.Optional[str], t.Set[str]]:
    """As AnsibleModule validates `args` (aliases, fallbacks, defaults): (parameters, None, secrets)
    or (None, the error a module would fail with, secrets); secrets are the no_log options' values."""
    checked = ArgumentSpecValidator(argument_spec, **rules).validate(dict(args))
    secrets = set(checked._no_log_values)
    if checked.error_messages:
        return None, scrubbed("; ".join(checked.error_messages), secrets), secrets
    return checked.validated_parameters, None, secrets


def scrubbed(result: t.Any, secrets: t.Iterable[str]) -> t.Any:
    """`result` with every no_log value masked, as AnsibleModule.exit_json and fail_json mask a module's result."""
    secrets = set(secrets)
    return remove_values(result, secrets) if secrets else result


class InWorkerAction(ActionBase):
    """The action plugin of a module whose logic is a module_utils function of its parameters:
    run in this worker when runs_in_worker(), else the module as usual. Subclasses set MODULE
    (its FQCN), ARGUMENT_SPEC and WORK, a staticmethod (params, check_mode, diff) -> result that
    raises TaskFailed (or override work()); the module's main() calls the same function."""

    MODULE = ""
    ARGUMENT_SPEC: t.Dict[str, t.Any] = {}
    WORK: t.Optional[t.Callable[..., t.Dict[str, t.Any]]] = None
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = True  # an async task runs the module

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        result.update(self.run_task(self._task.args, task_vars))
        return result

    def run_task(self, args, task_vars):
        """The module's result for `args`: from this worker when runs_in_worker() and available(),
        else from the module, run as usual."""
        if not (runs_in_worker(self) and self.available()):
            wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
            outcome = self._execute_module(module_name=self.MODULE, module_args=args, task_vars=task_vars, wrap_async=wrap_async)
            if not wrap_async:
                self._remove_tmp_path(self._connection._shell.tmpdir)
            return outcome
        params, error, secrets = validate(self.ARGUMENT_SPEC, args)
        if error:
            outcome = {"failed": True, "changed": False, "msg": error}
        else:
            try:
                outcome = self.work(params, bool(self._task.check_mode), bool(self._task.diff))
            except TaskFailed as err:
                outcome = dict(err.fields, failed=True, changed=False, msg=str(err))
        return scrubbed(outcome, secrets)  # as the module's exit_json/fail_json would

    def work(self, params, check_mode, diff):
        """The module's logic; WORK unless a subclass needs more of the task than its parameters."""
        return self.WORK(params, check_mode, diff)

    def available(self):
        """Whether the logic's libraries import in the controller's Python; if not, the module runs,
        with the interpreter the task names (which may have them)."""
        return True


class DockerInWorkerAction(InWorkerAction):
    """An InWorkerAction whose logic needs the docker SDK: in the worker only when the SDK imports in
    the controller's Python."""

    def available(self):
        # Imported here, not at the top: the etcd tasks' workers need not load the SDK.
        from ansible_collections.stackfleet.cluster.plugins.module_utils import _docker  # pylint: disable=import-outside-toplevel
        return _docker.HAS_DOCKER

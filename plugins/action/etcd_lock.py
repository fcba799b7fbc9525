# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs etcd_lock on behalf of the whole run: fills in the default holder on the controller and
keeps the lock exactly as long as the run.

The module runs in a fresh process per task (possibly on another host), so only the controller
knows an identity that stays the same for the whole run: the AWX job ID, or the controller's host
name and the ansible-playbook process ID (the parent of every worker process).

With keep_alive (the default), taking the lock starts a keeper process on the controller
(plugin_utils/_lock_keeper.py) that renews the lease every ttl/3 seconds while ansible-playbook
runs and revokes it as soon as ansible-playbook is gone (Ctrl-C, SIGKILL, a run that ends without
releasing). Releasing stops the keeper once the lock is given back.

On the controller (plugin_utils/_in_worker.py) the take or release runs in this worker, while the
keeper starts: a lock costs one etcd transaction and the keeper's start, not a module round trip too.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase
from ansible_collections.stackfleet.cluster.plugins.module_utils import _lock_task
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import CONNECTION_ARGSPEC
from ansible_collections.stackfleet.cluster.plugins.module_utils._state import run_identity
from ansible_collections.stackfleet.cluster.plugins.plugin_utils import _lock_keeper
from ansible_collections.stackfleet.cluster.plugins.plugin_utils._in_worker import InWorkerAction


def connection_params(args):
    """The etcd connection options as the module resolves them (aliases, environment fallbacks,
    defaults), for the keeper, which runs on the controller with the controller's environment."""
    given = {k: v for k, v in args.items() if k in CONNECTION_ARGSPEC or any(
        k in spec.get("aliases", ()) for spec in CONNECTION_ARGSPEC.values())}
    result = ArgumentSpecValidator(CONNECTION_ARGSPEC).validate(given)
    if result.error_messages:
        raise AnsibleActionFail("etcd connection options: %s" % "; ".join(result.error_messages))
    return {k: result.validated_parameters.get(k) for k in CONNECTION_ARGSPEC}


class ActionModule(InWorkerAction):

    MODULE = "stackfleet.cluster.etcd_lock"
    ARGUMENT_SPEC = _lock_task.ARGUMENT_SPEC
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = ActionBase.run(self, tmp, task_vars)  # not InWorkerAction.run: the keeper goes around the task
        args = dict(self._task.args)
        owner = os.getppid()  # ansible-playbook: the worker running this task is its child
        if not args.get("holder"):
            args["holder"] = run_identity(owner)
        keep_alive = boolean(args.get("keep_alive", True), strict=False)
        name = str(args.get("name") or "")
        releasing = args.get("state") == "released"
        keeping = keep_alive and not self._task.check_mode and bool(name)
        keeper, spawned = None, None
        if keeping and not releasing:
            # Launched before the take, so that a run interrupted right after it is covered too:
            # the keeper finds the lease of this holder's lock in etcd by itself.
            try:
                keeper, spawned = _lock_keeper.spawn(connection_params(args), name, args["holder"],
                                                     int(args.get("ttl") or 60), owner)
            except (_lock_keeper.KeeperError, OSError, AnsibleActionFail) as err:
                result.update(failed=True, changed=False, msg="cannot keep lock %r alive, so did not take it: %s"
                              % (name, err))
                return result
        result.update(self.run_task(args, task_vars))
        if spawned is not None:
            try:
                keeper = _lock_keeper.wait_started(spawned, name, owner)
            except _lock_keeper.KeeperError as err:
                if not result.get("failed"):  # taken: give it back rather than hold it unkept
                    self.run_task(dict(args, state="released"), task_vars)
                result.update(failed=True, changed=False, msg="took lock %r but cannot keep it alive, so released it: %s" % (name, err))
                return result
        if keeping and (releasing or (spawned is not None and result.get("failed"))):
            # After the release, not before: the lease stays renewed until the key is gone.
            _lock_keeper.stop(name, owner)
        elif keeper is not None and not result.get("failed"):
            result["keeper"] = {"pid": keeper.get("pid"), "interval": max(int((result.get("lock") or {}).get("ttl")
                                                                              or args.get("ttl") or 60) / 3.0, 0.5),
                                "watches_pid": owner}
        return result

    def work(self, params, check_mode, diff):
        return _lock_task.run(params, params["holder"], check_mode)

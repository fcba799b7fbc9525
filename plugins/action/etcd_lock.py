# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fills in etcd_lock's default holder on the controller, then runs the module.

The module runs in a fresh process per task (possibly on another host), so only
the controller knows an identity that stays the same for the whole run: the
AWX job ID, or the controller's host name and the ansible-playbook process ID
(the parent of every worker process).
"""

from __future__ import annotations

import os

from ansible.plugins.action import ActionBase
from ansible_collections.stackfleet.cluster.plugins.module_utils._state import run_identity


class ActionModule(ActionBase):

    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = dict(self._task.args)
        if not args.get("holder"):
            args["holder"] = run_identity(os.getppid())
        result.update(self._execute_module(module_name="stackfleet.cluster.etcd_lock", module_args=args,
                                           task_vars=task_vars))
        return result

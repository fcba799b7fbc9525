# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""stack_plan on the controller, in the task's own worker process.

Planning is pure computation over the stack file and the host documents the controller already
has, so no module is sent or started, and the result (2.5 MB at 1,000 hosts in the full form) is
not serialised, parsed and tagged on its way back. The logic is module_utils/_plan_task.py; the
documentation is plugins/modules/stack_plan.py.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.stackfleet.cluster.plugins.module_utils import _plan_task


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _supports_check_mode = True  # computes only: the same in check mode
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        checked = ArgumentSpecValidator(_plan_task.ARGUMENT_SPEC, mutually_exclusive=_plan_task.MUTUALLY_EXCLUSIVE,
                                        required_one_of=_plan_task.REQUIRED_ONE_OF).validate(dict(self._task.args))
        if checked.error_messages:
            raise AnsibleActionFail("stack_plan: %s" % "; ".join(checked.error_messages))
        try:
            planned, warnings = _plan_task.run(checked.validated_parameters, diff=bool(self._task.diff))
        except _plan_task.PlanTaskError as exc:
            result.update(failed=True, changed=False, msg=str(exc), errors=exc.errors)
            warnings = exc.warnings
        else:
            result.update(planned)
        if warnings:  # shown by the callback as the module's warnings were
            result["warnings"] = warnings
        return result

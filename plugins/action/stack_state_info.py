# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""stack_state_info in the task's worker when the task runs on the controller (plugin_utils/_in_worker.py);
the logic is module_utils/_etcd_tasks.py, the documentation plugins/modules/stack_state_info.py."""

from __future__ import annotations

from ansible_collections.stackfleet.cluster.plugins.module_utils import _etcd_tasks
from ansible_collections.stackfleet.cluster.plugins.plugin_utils._in_worker import InWorkerAction


class ActionModule(InWorkerAction):

    MODULE = "stackfleet.cluster.stack_state_info"
    ARGUMENT_SPEC = _etcd_tasks.STATE_INFO_SPEC
    WORK = staticmethod(_etcd_tasks.run_state_info)

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""containers in the task's worker when the task runs on the controller - the stack role's default
(stack_run_on: controller, delegate_to: localhost) - (plugin_utils/_in_worker.py); the logic is
module_utils/_converge_tasks.py, the documentation plugins/modules/containers.py."""

from __future__ import annotations

from ansible_collections.stackfleet.cluster.plugins.module_utils import _converge_tasks
from ansible_collections.stackfleet.cluster.plugins.plugin_utils._in_worker import DockerInWorkerAction


class ActionModule(DockerInWorkerAction):

    MODULE = "stackfleet.cluster.containers"
    ARGUMENT_SPEC = _converge_tasks.CONTAINERS_SPEC

    def work(self, params, check_mode, diff):
        # The documents as the task gave them: which keys were set is part of the config hash.
        return _converge_tasks.run_containers(params, self._task.args.get("containers"), check_mode, diff)

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""cluster_converge in the task's worker when the task runs on the controller, as site.yml runs it
(plugin_utils/_in_worker.py); the logic is module_utils/_converge_tasks.py, the documentation
plugins/modules/cluster_converge.py."""

from __future__ import annotations

from ansible_collections.stackfleet.cluster.plugins.module_utils import _converge_tasks
from ansible_collections.stackfleet.cluster.plugins.plugin_utils._in_worker import DockerInWorkerAction


class ActionModule(DockerInWorkerAction):

    MODULE = "stackfleet.cluster.cluster_converge"
    ARGUMENT_SPEC = _converge_tasks.CLUSTER_SPEC
    WORK = staticmethod(_converge_tasks.run_cluster)

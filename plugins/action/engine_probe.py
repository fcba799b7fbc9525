# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""engine_probe in the task's worker when the task runs on the controller (plugin_utils/_in_worker.py);
the logic is module_utils/_fleet.py, the documentation plugins/modules/engine_probe.py."""

from __future__ import annotations

from ansible_collections.stackfleet.cluster.plugins.module_utils import _fleet
from ansible_collections.stackfleet.cluster.plugins.plugin_utils._in_worker import DockerInWorkerAction


class ActionModule(DockerInWorkerAction):

    MODULE = "stackfleet.cluster.engine_probe"
    ARGUMENT_SPEC = _fleet.PROBE_SPEC
    WORK = staticmethod(_fleet.run_probe)

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault injection for integration tests: run a command when a given task starts.

Enabled only by a test (ANSIBLE_CALLBACK_PLUGINS=<this folder>, ANSIBLE_CALLBACKS_ENABLED=stackfleet_fault_at):
when the first task named STACKFLEET_FAULT_AT_TASK starts (its name without the role prefix), the
command STACKFLEET_FAULT_COMMAND (a JSON list) runs to completion before the task is sent to any
host, so the fault is in place exactly between the tasks before and that task, without timing.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: stackfleet_fault_at
type: aggregate
short_description: Test-only - run a command when a given task starts
description:
  - Runs the command of E(STACKFLEET_FAULT_COMMAND) (a JSON list) when the first task named E(STACKFLEET_FAULT_AT_TASK) starts.
requirements:
  - enabled in ANSIBLE_CALLBACKS_ENABLED
"""

import json
import os
import subprocess

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "stackfleet_fault_at"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._task_name = os.environ.get("STACKFLEET_FAULT_AT_TASK", "")
        self._command = json.loads(os.environ.get("STACKFLEET_FAULT_COMMAND", "[]"))
        self._done = False

    def v2_playbook_on_task_start(self, task, is_conditional):
        if self._done or not self._task_name or task.name != self._task_name:
            return
        self._done = True
        proc = subprocess.run(self._command, capture_output=True, text=True, timeout=120, check=False)
        self._display.display("FAULT INJECTED before %r: %s -> rc %d %s" % (
            self._task_name, " ".join(self._command), proc.returncode, (proc.stdout + proc.stderr).strip()))

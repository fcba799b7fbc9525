# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a module's logic says it failed, the same to the module (fail_json) and to its action
plugin running that logic in the worker (plugin_utils/_in_worker.py)."""

from __future__ import annotations

import typing as t


class TaskFailed(Exception):
    """The task failed: str() is its `msg`; `fields` are the result's other keys."""

    def __init__(self, msg: str, **fields: t.Any) -> None:
        super().__init__(msg)
        self.fields = fields

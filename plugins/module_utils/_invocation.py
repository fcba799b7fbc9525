# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Module arguments as the modules that take container documents log and return them.

`no_log` on `env` would hide the values, but Ansible then masks every occurrence of each value
as a substring of all output (a value `1` turns `web-1` into `web-********`). These modules
instead log and return the documents with env values masked (names kept), and `secrets` hidden.
"""

from __future__ import annotations

import typing as t

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackfleet.cluster.plugins.module_utils._converge import scrub_doc

NO_LOG_VALUE = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"


def scrub_documents(docs: t.Any) -> t.Any:
    """A list of container documents, or host → such a list, with env values masked."""
    if isinstance(docs, dict):
        return {host: scrub_documents(host_docs) for host, host_docs in docs.items()}
    return [scrub_doc(d) if isinstance(d, dict) else d for d in docs or []]


def scrubbed(params: t.Mapping[str, t.Any]) -> t.Dict[str, t.Any]:
    """`params` with the `containers` documents' env values masked and `secrets` hidden."""
    args = dict(params)
    args["containers"] = scrub_documents(params.get("containers"))
    if args.get("secrets"):
        args["secrets"] = NO_LOG_VALUE
    return args


class ScrubbingModule(AnsibleModule):
    """AnsibleModule whose "Invoked with" line (system log / journal) carries no env value.
    A module whose documents sit elsewhere in its arguments sets its own `scrub`."""

    scrub = staticmethod(scrubbed)

    def _log_invocation(self):
        params = self.params
        self.params = self.scrub(params)
        try:
            super()._log_invocation()
        finally:
            self.params = params

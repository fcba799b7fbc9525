# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""engine_ping: GET /_ping on a Docker engine from the controller, in the task's own worker process.

No module is sent or started (the check is from the controller by definition), so a host whose
engine answers at once costs one HTTPS request: the docker_host role's endpoint check used to be
four tasks per host (a temporary CA file written, filled, used by uri, removed). The waiting is
module_utils/_ping.py, the connection module_utils/_docker.py's (the collection's one Docker client);
the documentation is plugins/modules/engine_ping.py.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.stackfleet.cluster.plugins.module_utils._ping import PingError, ping

ARGSPEC = dict(
    url=dict(type="str", required=True),
    ca_cert=dict(type="str", no_log=False),
    client_cert=dict(type="path"),
    client_key=dict(type="path", no_log=False),
    timeout=dict(type="float", default=5),
    wait=dict(type="float", default=30),
)


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        checked = ArgumentSpecValidator(ARGSPEC).validate(dict(self._task.args))
        if checked.error_messages:
            raise AnsibleActionFail("engine_ping: %s" % "; ".join(checked.error_messages))
        args = checked.validated_parameters
        try:
            answer = ping(args["url"], args["ca_cert"], args["client_cert"], args["client_key"],
                          timeout=args["timeout"], wait=max(0.0, args["wait"]))
        except PingError as exc:
            raise AnsibleActionFail("engine_ping: %s" % exc) from exc
        result.update(changed=False, status=answer["status"], content=answer["content"],
                      attempts=answer["attempts"], seconds=answer["seconds"])
        if not answer["ok"]:
            result.update(failed=True, msg="GET %s/_ping: no 200 OK within %s s (%d attempt(s)); last: %s" % (
                args["url"].rstrip("/"), args["wait"], answer["attempts"], answer["error"]))
        return result

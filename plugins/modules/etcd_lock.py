#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: etcd_lock
short_description: Take or release a stackfleet cluster lock in etcd
version_added: 0.1.0
description:
  - A lease-based lock so that only one playbook run changes a cluster at a time.
  - The lock is the key C(/stackfleet/<name>/lock), created in a transaction only if it does not exist
    (C(create_revision == 0), etcd's lock recipe) and attached to a lease of O(ttl) seconds. Its value is
    JSON naming the holder, since when it holds the lock, and the lease ID.
  - The lock lives exactly as long as the run that took it (O(keep_alive)) - on the controller, a keeper process
    renews the lease every O(ttl)/3 seconds while C(ansible-playbook) runs and revokes it as soon as
    C(ansible-playbook) is gone (it ended without releasing, Ctrl-C, SIGKILL). If the controller itself dies,
    the lease runs out after O(ttl) seconds and the lock goes with it.
extends_documentation_fragment:
  - stackfleet.cluster.etcd
  - stackfleet.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
options:
  name:
    description:
      - Lock name, usually the cluster name. Letters, digits, C(.), C(_) and C(-).
    type: str
    required: true
  state:
    description:
      - V(acquired) takes the lock, waiting up to O(wait_timeout) seconds while someone else holds it. Taking a lock
        this holder already holds refreshes its lease (C(changed=false)).
      - V(released) gives it back. Releasing a lock nobody holds changes nothing; one held by someone else fails unless O(force).
    type: str
    choices: [acquired, released]
    default: acquired
  holder:
    description:
      - Who holds the lock, shown to anyone who has to wait.
      - Defaults to C(awx-job-<id>) when E(JOB_ID) or E(AWX_JOB_ID) is set (AWX and AAP set it), otherwise to
        C(<controller hostname>:<pid of ansible-playbook>), so every task of one run is the same holder.
    type: str
  ttl:
    description:
      - Lease seconds. With O(keep_alive) this only bounds how long a lock outlives a controller that died with its
        keeper (the keeper renews it while the run lasts); without it, how long the run may take.
      - etcd raises very small values to its minimum (about 2 seconds with default timings).
    type: int
    default: 60
  keep_alive:
    version_added: 0.2.0
    description:
      - With O(state=acquired), start a keeper process on the controller that renews the lease every O(ttl)/3 seconds
        while the C(ansible-playbook) process of this run is alive, and revokes it when that process is gone.
        With O(state=released), stop this run's keeper once the lock is given back.
      - The keeper runs on the controller with the controller's Python and reaches O(endpoints) from there, whatever
        host the task is delegated to. It is found by a state file in C(<tmp>/stackfleet-<uid>/) (see docs/etcd.md).
      - V(false) leaves the lease to run out after O(ttl) seconds unless the lock is taken again (same O(holder)),
        which refreshes it. Use it to hold a lock beyond the command that takes it (an ad hoc C(ansible) command
        ends at once, and with it a kept lock).
      - Ignored in check mode (nothing is taken, so nothing is kept).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for another holder to release the lock before failing with a message naming the holder.
    type: int
    default: 0
  force:
    description:
      - With O(state=released), break a lock held by someone else.
    type: bool
    default: false
notes:
  - An action plugin fills in the default O(holder) on the controller and runs the keeper there; the etcd calls to take
    and release are made by the module.
author:
  - stackfleet maintainers (@stackfleet)
"""

EXAMPLES = r"""
- name: Take the cluster lock for this run (wait up to 10 minutes for another run)
  stackfleet.cluster.etcd_lock:
    name: prod
    ttl: 30
    wait_timeout: 600
  run_once: true
  delegate_to: localhost

- name: Give it back
  stackfleet.cluster.etcd_lock:
    name: prod
    state: released
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
holder:
  description: The holder this task acted as (its default filled in).
  returned: always
  type: str
  sample: "ctl-1:4242"
lock:
  description: The lock as taken, or as it was before release. Empty when released and nobody held it.
  returned: always
  type: dict
  contains:
    key: {description: "The etcd key.", type: str, sample: /stackfleet/prod/lock}
    holder: {description: "Who holds it.", type: str, sample: "ctl-1:4242"}
    since: {description: "When it was taken (UTC, ISO 8601).", type: str, sample: "2025-01-31T10:00:00Z"}
    lease_id: {description: "Lease ID, decimal.", type: int}
    lease_id_hex: {description: "Lease ID, hexadecimal as C(etcdctl) prints it.", type: str}
    ttl: {description: "Granted lease seconds.", type: int}
    ttl_left: {description: "Seconds left on the lease when read (-1 unknown).", type: int}
    revision: {description: "The key's create revision.", type: int}
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackfleet.cluster.plugins.module_utils._lock_task import ARGUMENT_SPEC, run
from ansible_collections.stackfleet.cluster.plugins.module_utils._state import run_identity
from ansible_collections.stackfleet.cluster.plugins.module_utils._task import TaskFailed


def default_holder() -> str:
    """Same rule as the action plugin; used when the module runs without it."""
    return run_identity(os.getppid())


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = run(module.params, module.params["holder"] or default_holder(), module.check_mode)
    except TaskFailed as err:
        module.fail_json(msg=str(err), **err.fields)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

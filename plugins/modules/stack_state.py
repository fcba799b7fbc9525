#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_state
short_description: Read or store a cluster's placement record in etcd
version_added: 0.1.0
description:
  - The placement record remembers where every placement key went, so the next plan keeps containers where they are.
  - It is stored as JSON under C(/stackfleet/<cluster>/placement) (see C(docs/etcd.md)) with the placement, a hash of
    the stack file it came from, when and by whom it was written.
  - Writes are compare-and-swap on the key's revision, so two runs cannot silently overwrite each other.
  - Values read from etcd are data written by whoever can write to etcd. This module returns them as they are;
    ansible-core 2.19 and newer treat module results as untrusted, so Jinja in them is never rendered.
extends_documentation_fragment:
  - stackfleet.cluster.etcd
  - stackfleet.cluster.attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  cluster:
    description:
      - Cluster name (the stack file's C(cluster)). Letters, digits, C(.), C(_) and C(-).
    type: str
    required: true
  state:
    description:
      - V(get) reads the record (an empty placement and revision V(0) when there is none).
      - V(put) stores O(placement). Storing the same placement and O(spec_hash) again changes nothing.
    type: str
    choices: [get, put]
    default: get
  placement:
    description:
      - Placement key to host name, as C(stackfleet.cluster.stack_plan) returns it. Required with O(state=put).
    type: dict
  spec_hash:
    description:
      - Hash of the stack file the placement was computed from, stored alongside it.
    type: str
    default: ""
  updated_by:
    description:
      - Who writes the record; defaults to C(awx-job-<id>) from E(JOB_ID) / E(AWX_JOB_ID), otherwise C(<hostname>).
    type: str
  expected_revision:
    description:
      - With O(state=put), write only if the stored record still has this revision (RV(revision) of an earlier
        V(get)); V(0) means "only if there is no record yet". The task fails on a mismatch and writes nothing.
    type: int
author:
  - stackfleet maintainers
"""

EXAMPLES = r"""
- name: Read the previous placement
  stackfleet.cluster.stack_state:
    cluster: prod
  register: previous

- name: Store the new plan, unless someone else stored one meanwhile
  stackfleet.cluster.stack_state:
    cluster: prod
    state: put
    placement: "{{ plan.placement }}"
    spec_hash: "{{ plan.spec_hash }}"
    expected_revision: "{{ previous.revision }}"
"""

RETURN = r"""
placement:
  description: The stored placement (after a V(put), the new one). Untrusted data from etcd.
  returned: always
  type: dict
  sample: {lamp-1: node-1, lamp-2: node-3}
revision:
  description: The record's etcd modification revision; V(0) when there is no record. Pass it as O(expected_revision).
  returned: always
  type: int
  sample: 17
updated_at:
  description: When the record was written (UTC, ISO 8601); empty when there is none.
  returned: always
  type: str
  sample: "2025-01-31T10:00:00Z"
updated_by:
  description: Who wrote it.
  returned: always
  type: str
spec_hash:
  description: The stack file hash stored with it.
  returned: always
  type: str
key:
  description: The etcd key of the record.
  returned: always
  type: str
  sample: /stackfleet/prod/placement
"""

import os
import socket
import typing as t

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import (
    CONNECTION_ARGSPEC,
    EtcdError,
    client_from_params,
)
from ansible_collections.stackfleet.cluster.plugins.module_utils._state import (
    PlacementRecord,
    RevisionConflict,
    StateError,
    placement_key,
    read_record,
    write_placement,
)


def record_result(cluster: str, record: t.Optional[PlacementRecord]) -> t.Dict[str, t.Any]:
    if record is None:
        record = PlacementRecord({}, 0, "", "", "")
    return {"placement": record.placement, "revision": record.revision, "updated_at": record.updated_at,
            "updated_by": record.updated_by, "spec_hash": record.spec_hash, "key": placement_key(cluster)}


def default_writer() -> str:
    job = os.environ.get("JOB_ID") or os.environ.get("AWX_JOB_ID")
    return "awx-job-%s" % job if job else socket.gethostname()


def main() -> None:
    argument_spec = dict(
        cluster=dict(type="str", required=True),
        state=dict(type="str", default="get", choices=["get", "put"]),
        placement=dict(type="dict"),
        spec_hash=dict(type="str", default=""),
        updated_by=dict(type="str"),
        expected_revision=dict(type="int"),
    )
    argument_spec.update(CONNECTION_ARGSPEC)
    module = AnsibleModule(argument_spec=argument_spec, required_if=[("state", "put", ("placement",))],
                           supports_check_mode=True)
    p = module.params
    cluster = p["cluster"]
    try:
        client = client_from_params(p)
        if p["state"] == "get":
            module.exit_json(changed=False, **record_result(cluster, read_record(client, cluster)))
        record, previous, changed = write_placement(
            client, cluster, p["placement"], expected_revision=p["expected_revision"], spec_hash=p["spec_hash"],
            updated_by=p["updated_by"] or default_writer(), check_mode=module.check_mode)
    except RevisionConflict as err:
        module.fail_json(msg=str(err), revision=err.current, expected_revision=err.expected)
    except StateError as err:
        module.fail_json(msg=str(err))
    except EtcdError as err:
        module.fail_json(msg=str(err), code=err.code)
    result = record_result(cluster, record)
    if module._diff:
        result["diff"] = {"before": {"placement": previous.placement if previous else {}},
                          "after": {"placement": record.placement}}
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()

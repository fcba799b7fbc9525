# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""stack_plan's options and result, shared by its action plugin (what runs, on the controller)
and its module (the documentation, and the same work when the module is run by itself).

The action plugin computes in the task's worker process: no module is sent and started, and
the result is not written as JSON, read back and tagged value by value (docs/performance.md
"stack_plan's result": 1.3 s → 0.3 s of controller CPU for 6,100 containers on 1,000 hosts).
"""

from __future__ import annotations

import typing as t

from ansible_collections.stackfleet.cluster.plugins.module_utils import _desired, _placement, _plan_documents, _spec

DOCUMENT_FORMS = ("full", "compact")

ARGUMENT_SPEC = dict(
    stack_file=dict(type="path"),
    stack=dict(type="dict"),
    hosts=dict(type="list", elements="dict", required=True),
    previous_placement=dict(type="dict", default={}),
    scale=dict(type="dict", default={}),
    rebalance=dict(type="dict", options=dict(max_moves=dict(type="int", required=True))),
    previous_ports=dict(type="dict", default={}),
    allow_move=dict(type="list", elements="str", default=[]),
    documents=dict(type="str", default="full", choices=list(DOCUMENT_FORMS)),
)
MUTUALLY_EXCLUSIVE = [("stack_file", "stack")]
REQUIRED_ONE_OF = [("stack_file", "stack")]


class PlanTaskError(Exception):
    """Planning failed; `errors` lists every problem (file, key path, rule)."""

    def __init__(self, msg: str, errors: t.Sequence[str] = (), warnings: t.Sequence[str] = ()):
        super().__init__(msg)
        self.errors, self.warnings = list(errors), list(warnings)


def run(params: t.Mapping[str, t.Any], diff: bool = False) -> t.Tuple[t.Dict[str, t.Any], t.List[str]]:
    """Validated options → (result, warnings). Raises PlanTaskError (with the warnings found before it)."""
    warnings: t.List[str] = []
    try:
        if params["stack_file"]:
            spec = _spec.load_file(params["stack_file"])
        else:
            spec = _spec.load_data(params["stack"], source="<stack option>")
        warnings.extend(spec.warnings)  # a valid file that likely means something else (a double-quoted "string")
        if params["scale"]:
            spec = _spec.with_counts(spec, params["scale"])
        hosts = _spec.load_hosts(params["hosts"], source="hosts")
        previous = {str(k): str(v) for k, v in params["previous_placement"].items()}
        rebalance = params["rebalance"]
        if rebalance is not None and rebalance["max_moves"] < 0:
            raise PlanTaskError("rebalance.max_moves: expected 0 or more, got %d" % rebalance["max_moves"], warnings=warnings)
        placement = _placement.plan(spec, hosts, previous, rebalance=rebalance, previous_ports=params["previous_ports"],
                                    allow_move=params["allow_move"])
        containers = _desired.render(spec, placement.assignments, hosts, placement.ports, unavailable=placement.missing_hosts)
    except (_spec.SpecError, _placement.PlacementError) as exc:
        raise PlanTaskError(str(exc), exc.errors, warnings) from exc

    result: t.Dict[str, t.Any] = dict(
        # A difference, not an action (nothing is changed anywhere): what lets --diff show the placement change.
        changed=bool(previous) and placement.assignments != previous,
        cluster=spec.cluster,
        placement=placement.assignments,
        moved=placement.moved,
        moves=[m.as_dict() for m in placement.moves],
        added=placement.added,
        removed=placement.removed,
        summary=placement.summary(),
        ports=placement.ports,
        held=[h.as_dict() for h in placement.held],
    )
    if params["documents"] == "compact":
        result["containers"], result["templates"] = _plan_documents.compact(containers)
    else:
        result["containers"] = containers
    if diff:
        result["diff"] = dict(before=dict(sorted(previous.items())), after=placement.assignments,
                              before_header="previous placement", after_header="new placement")
    return result, warnings

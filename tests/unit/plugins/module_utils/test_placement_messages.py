"""Error messages that name the cause: who holds a host port, and a constraint whose "string" is a field.

Issue 10 ("Error messages that mislead"): a port collision named only the deploy placed second, and
`labels.disk == "ssd"` (a JMESPath field, not a string) said only "no host matches".
"""

from __future__ import annotations

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _spec
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import Port
from ansible_collections.stackfleet.cluster.plugins.module_utils._placement import PlacementError, plan
from test_placement_check import deploy, host, spec, svc

FIX_80 = ('fix: publish lb\'s 80/tcp as "auto:80" (each instance gets a free host port of host_port_range), '
          'give it another host port, or add hosts')


def errors_of(sp, hosts, previous=None):
    with pytest.raises(PlacementError) as info:
        plan(sp, hosts, previous)
    return info.value.errors


def hosts_n(n, **kw):
    return [host("node-%d" % i, **kw) for i in range(1, n + 1)]


# --- host ports -------------------------------------------------------------------------------


def test_a_port_clash_names_the_service_and_instances_that_hold_the_port_and_the_fix():
    sp = spec([svc("db", ports=[3306]), svc("web", ports=[80]), svc("lb", ports=[80])],
              [deploy("lamp", ("db", "web"), count=2), deploy("lb", count=1)])
    assert errors_of(sp, hosts_n(2)) == [
        "deploy.lb: ports: instance lb-1 needs 80/tcp; all 2 hosts open to it have one taken: "
        "80/tcp on node-1, node-2 by web (lamp-1, lamp-2); " + FIX_80]


def test_holders_are_grouped_per_port_and_service_and_long_lists_are_cut():
    sp = spec([svc("web", ports=[80]), svc("lb", ports=[80, 443])], [deploy("web", count=6), deploy("lb", count=2)])
    (message,) = errors_of(sp, hosts_n(7))
    assert message == (
        "deploy.lb: ports: instance lb-2 needs 80/tcp,443/tcp; all 7 hosts open to it have one taken: "
        "80/tcp on node-1, node-2, node-3, node-4, node-5, ... by web (web-1, web-2, web-3, web-4, web-5, ...); "
        "80/tcp on node-7 by lb (lb-1); 443/tcp on node-7 by lb (lb-1); "
        'fix: publish lb\'s 80/tcp,443/tcp as "auto:80" and "auto:443" (each instance gets a free host port of '
        "host_port_range), give it another host port, or add hosts")


def test_the_message_does_not_depend_on_the_order_hosts_are_given_in():
    sp = spec([svc("web", ports=[80]), svc("lb", ports=[80])], [deploy("web", count=3), deploy("lb", count=1)])
    hosts = hosts_n(3)
    assert errors_of(sp, hosts) == errors_of(sp, list(reversed(hosts))) == [
        "deploy.lb: ports: instance lb-1 needs 80/tcp; all 3 hosts open to it have one taken: "
        "80/tcp on node-1, node-2, node-3 by web (web-1, web-2, web-3); " + FIX_80]


def test_a_udp_port_and_a_different_container_port_give_the_right_auto_form():
    dns = svc("dns")
    dns = dns.__class__(**{**dns.__dict__, "ports": (Port(53, "udp", 5353),)})
    other = svc("resolver", ports=[(5353, "udp")])
    sp = spec([dns, other], [deploy("resolver", count=1), deploy("dns", count=1)])
    (message,) = errors_of(sp, hosts_n(1))
    assert message.endswith('fix: publish dns\'s 5353/udp as "auto:53/udp" (each instance gets a free host port of '
                            "host_port_range), give it another host port, or add hosts")
    assert "5353/udp on node-1 by resolver (resolver-1)" in message


def test_capacity_notes_name_the_port_holders():
    hosts = [host("node-1", cpus=1), host("node-2", cpus=1), host("node-3", cpus=0.5)]
    sp = spec([svc("web", ports=[80]), svc("lb", ports=[80], cpus=1)], [deploy("web", count=2), deploy("lb", count=1)])
    assert errors_of(sp, hosts) == [
        "deploy.lb: capacity: instance lb-1 needs cpus 1, memory 0 MiB, ports 80/tcp; no eligible host has room "
        "(3 eligible, best has cpus 0.5, memory unlimited free, 2 have a port taken: 80/tcp on node-1, node-2 by web (web-1, web-2))"]


def test_a_global_deploy_names_the_holder_per_host_and_the_fix():
    sp = spec([svc("web", ports=[80]), svc("lb", ports=[80])], [deploy("web", count=1, host="node-2"), deploy("lb", is_global=True)])
    assert errors_of(sp, hosts_n(2)) == [
        "deploy.lb: ports: global instance needs cpus 0, memory 0 MiB, ports 80/tcp; cannot run on 1 of 2 eligible hosts: "
        "node-2 (80/tcp on node-2 by web (web-1)); " + FIX_80]


# --- constraints with double-quoted "strings" ------------------------------------------------------

STACK = """\
cluster: t
services:
  db: {image: img/db}
deploy:
  db:
    count: 1
    constraint: %s
"""


def test_a_double_quoted_string_in_a_constraint_is_a_load_warning_with_the_fix():
    sp = _spec.load_text(STACK % """'labels.disk == "ssd"'""", source="stacks.yml")
    assert sp.warnings == (
        'stacks.yml: deploy.db.constraint: "ssd" is a field name in JMESPath (double quotes name a field of the host '
        "document, which has none of that name, so it is null on every host); for a string use single quotes or "
        """backticks (`"ssd"`): labels.disk == 'ssd'""",)


@pytest.mark.parametrize("constraint", [
    """"labels.disk == 'ssd'\"""",             # single quotes: a string
    """'labels.disk == `"ssd"`'""",            # backticks: a JSON literal
    """'labels."disk-type" == `"ssd"`'""",     # a quoted field after a dot is a field on purpose
    """'"name" == `"node-1"`'""",              # a quoted top-level field the host document has
    """'labels.*[?@ == "x"]'""",               # inside a projection the current node is not the host document
])
def test_no_warning_where_double_quotes_mean_a_field(constraint):
    assert _spec.load_text(STACK % constraint).warnings == ()


def test_the_rewrite_is_the_expression_that_was_meant():
    text = """labels.disk == "ssd" && "rack" != 'r1' && labels.n == "it's\\"x\""""
    problem = _spec.quoted_fields(text)
    fixed = problem.rsplit(": ", 1)[1]
    assert fixed == """labels.disk == 'ssd' && 'rack' != 'r1' && labels.n == 'it\\'s"x'"""
    assert problem.startswith('"ssd", "rack", "it\'s\\"x" are field names in JMESPath')
    meant = _spec.load_text(STACK % ("'%s'" % fixed.replace("'", "''")))
    assert meant.warnings == ()
    doc = {"labels": {"disk": "ssd", "n": 'it\'s"x'}}
    assert meant.deploys["db"].constraint_fn(doc) is True


def test_no_host_matches_says_why_when_a_constraint_compares_with_a_field():
    hosts = [host("node-1", disk="hdd"), host("node-2", disk="hdd")]
    sp = _spec.load_text(STACK % """'labels.disk == "ssd"'""")
    assert errors_of(sp, hosts) == [
        """deploy.db: constraint: no host matches 'labels.disk == "ssd"' (2 hosts); "ssd" is a field name in JMESPath """
        "(double quotes name a field of the host document, which has none of that name, so it is null on every host); "
        """for a string use single quotes or backticks (`"ssd"`): labels.disk == 'ssd'"""]
    sp = _spec.load_text(STACK % """"labels.disk == 'nvme'\"""")
    assert errors_of(sp, hosts) == ["""deploy.db: constraint: no host matches "labels.disk == 'nvme'" (2 hosts)"""]


def test_a_kept_instance_that_must_leave_names_who_holds_its_port():
    sp = spec([svc("web", ports=[80]), svc("lb", ports=[80])], [deploy("web", count=1), deploy("lb", count=1)])
    p = plan(sp, [host("a"), host("b")], {"lb-1": "a", "web-1": "a"})  # both publish 80 now: one must go
    assert [m.as_dict() for m in p.moves] == [{
        "key": "lb-1", "from": "a", "to": "b", "reason": "ineligible",
        "why": "lb-1 moved from a to b because port 80/tcp on a is taken by web (web-1)."}]

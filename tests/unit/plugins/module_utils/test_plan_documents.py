"""The compact form of a plan's documents: expand(compact(x)) is x, for the example stack files and for
generated documents, and a broken entry is named, not guessed."""

from __future__ import annotations

import copy
import json
import os

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _desired, _placement, _plan_documents, _spec
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
HOSTS = [{"name": "node-%d" % i, "address": "10.0.0.%d" % i, "labels": {"rack": "r%d" % (i % 3 + 1), "disk": "ssd"},
          "capacity": {"cpus": 8, "memory_mb": 16384}} for i in range(1, 9)]


def _rendered(path):
    spec = _spec.load_file(path)
    hosts = _spec.load_hosts(HOSTS)
    placement = _placement.plan(spec, hosts, {})
    return _desired.render(spec, placement.assignments, hosts, placement.ports)


@pytest.mark.parametrize("example", ["lamp.yml", "lamp-format-doc.yml", "seed.yml", "extensions.yml"])
def test_examples_round_trip(example):
    full = _rendered(os.path.join(REPO, "examples", example))
    containers, templates = _plan_documents.compact(copy.deepcopy(full))
    assert _plan_documents.expand_all(containers, templates) == full
    assert list(containers) == list(full)  # every host, in the plan's order, empty lists too
    for host, entries in containers.items():
        assert _plan_documents.expand(entries, templates, host) == full[host]


def test_compact_is_much_smaller_and_names_no_host():
    full = _rendered(os.path.join(REPO, "examples", "seed.yml"))
    containers, templates = _plan_documents.compact(full)
    assert len(json.dumps([containers, templates])) < len(json.dumps(full)) / 2
    for entries in containers.values():
        for entry in entries:
            assert "name" not in entry and "host" not in entry and set(entry) >= {"template", "instance"}
    # what differs per instance stays with the instance: each web names its own instance and host
    webs = [(host, d) for host, docs in _plan_documents.expand_all(containers, templates).items() for d in docs
            if d["service"] == "web"]
    assert len(webs) == 5 and all(d["env"]["INSTANCE"] == d["instance"] and d["env"]["HOST_NAME"] == host for host, d in webs)


def test_full_documents_pass_through():
    doc = {"name": "c.a-1.s", "image": "x:1", "host": "h"}
    assert _plan_documents.expand([doc], {}, "h") == [doc]


def test_unknown_template_is_named():
    with pytest.raises(_plan_documents.DocumentsError, match=r"host h: containers\[0\] names template 'web.web'"):
        _plan_documents.expand([{"template": "web.web", "instance": "web-1"}], {}, "h")


def test_not_a_mapping_is_named():
    with pytest.raises(_plan_documents.DocumentsError, match=r"host h: containers\[0\] is a str"):
        _plan_documents.expand(["web-1"], {}, "h")


VALUES = st.one_of(st.none(), st.integers(0, 3), st.text("ab", max_size=2),
                   st.dictionaries(st.sampled_from("xyz"), st.text("ab", max_size=2), max_size=2),
                   st.lists(st.integers(0, 2), max_size=2))


@st.composite
def documents(draw):
    """host → documents of a few deploys and services, their other fields drawn at random (a field present
    in one document of a service is present in all, as render() guarantees)."""
    fields = draw(st.lists(st.sampled_from(["image", "env", "ports", "labels", "command", "update"]), unique=True))
    full = {}
    for host in ("h1", "h2", "h3"):
        docs = []
        for n in range(draw(st.integers(0, 4))):
            deploy, service = draw(st.sampled_from([("lamp", "web"), ("lamp", "db"), ("lb", "lb")]))
            instance = "%s-%d-%s" % (deploy, n, host)
            doc = {"name": _desired.container_name("c", instance, service), "cluster": "c", "deploy": deploy,
                   "instance": instance, "service": service, "host": host}
            doc.update((f, draw(VALUES)) for f in fields)
            docs.append(doc)
        full[host] = docs
    return full


@settings(max_examples=200, deadline=None)
@given(documents())
def test_round_trip_of_any_documents(full):
    containers, templates = _plan_documents.compact(copy.deepcopy(full))
    assert _plan_documents.expand_all(containers, templates) == full

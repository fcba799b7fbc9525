# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The restricted reference syntax: what is a reference, what stays text."""

from __future__ import annotations

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _refs
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize("text, refs", [
    ("{{ cluster }}", [("cluster",)]),
    ("{{instance.id}}-{{ instance.index }}", [("instance", "id"), ("instance", "index")]),
    ("{{  instance.host }}:{{ instance.address  }}", [("instance", "host"), ("instance", "address")]),
    ("{{ instance.services.my_db-1.host }}", [("sibling", "my_db-1", "host")]),
    ("{{ instance.services.db.name }}", [("sibling", "db", "name")]),
    ("{{ deploy.lamp.web.addresses }}", [("addresses", "lamp", "web")]),
    ("{{ name }} {{ instances }} {{ deployment }} {{ cluster_name }} {{", []),
    ("{ {cluster} } {cluster}", []),
])
def test_find(text, refs):
    assert _refs.find(text) == refs


@pytest.mark.parametrize("text", [
    "{{ cluster | upper }}", "{{ instance }}", "{{ instance.name }}", "{{ instance.services.db }}",
    "{{ instance.services.db.address }}", "{{ deploy.lamp.addresses }}", "{{ deploy.lamp.web.hosts }}",
    "{{ cluster-name }}", "{{ instance.id + 1 }}", "{{ deploy.la.mp.web.addresses }}",
])
def test_malformed_references_are_errors(text):
    with pytest.raises(_refs.RefSyntaxError, match="unknown reference"):
        _refs.find(text)


def test_render_is_the_canonical_text():
    for text in _refs.SYNTAX:
        concrete = text.replace("<service>", "db").replace("<key>", "lamp")
        assert _refs.render(_refs.find(concrete)[0]) == concrete


def test_substitute_replaces_only_references():
    values = {("cluster",): "prod", ("instance", "id"): "lamp-1"}
    assert _refs.substitute("{{ cluster }}/{{ name }}/{{instance.id}}", values.__getitem__) == "prod/{{ name }}/lamp-1"


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=50))
def test_text_without_braces_is_untouched(text):
    assert _refs.substitute(text, lambda ref: "X") == text
    assert _refs.find(text) == []

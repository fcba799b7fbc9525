# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whatever a user writes, the loader answers with a Spec or a SpecError, never a crash."""

from __future__ import annotations

import copy

from ansible_collections.stackfleet.cluster.plugins.module_utils import _spec
from hypothesis import given, settings
from hypothesis import strategies as st

VALID = {
    "cluster": "t",
    "services": {
        "db": {"image": "x", "ports": ["3306:3306"], "volumes": ["d1:/data"], "env": {"A": "1"},
               "resources": {"cpus": 1, "memory": "1g"}, "healthcheck": {"test": "true", "interval": "5s"}},
        "web": {"image": "x", "command": ["serve"], "env": {"DB": "{{ instance.services.db.host }}"}, "labels": {"a": "b"}},
    },
    "stacks": {"app": {"services": ["db", "web"], "colocate": True}},
    "deploy": {"app": {"count": 2, "constraint": "labels.a == 'b'", "conflicts": ["app"], "max_per_host": 1,
                       "spread": "rack"}},
}
PATHS = [
    (), ("cluster",), ("strategy",), ("services",), ("services", "db"), ("services", "db", "image"),
    ("services", "db", "ports"), ("services", "db", "ports", 0), ("services", "db", "volumes", 0), ("services", "db", "env"),
    ("services", "db", "env", "A"), ("services", "db", "resources"), ("services", "db", "resources", "memory"),
    ("services", "db", "healthcheck"), ("services", "db", "healthcheck", "test"), ("services", "db", "healthcheck", "interval"),
    ("services", "web", "command"), ("services", "web", "command", 0), ("services", "web", "env", "DB"), ("services", "web", "labels"),
    ("services", "web", "restart"), ("services", "web", "network_mode"), ("stacks",), ("stacks", "app"), ("stacks", "app", "services"),
    ("stacks", "app", "services", 0), ("stacks", "app", "colocate"), ("deploy",), ("deploy", "app"), ("deploy", "app", "count"),
    ("deploy", "app", "constraint"), ("deploy", "app", "conflicts"), ("deploy", "app", "max_per_host"), ("deploy", "app", "host"),
]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10, 100000), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=30), st.sampled_from(["{{ instance.", "{{ deploy.x.y.addresses }}", "1:2:3", "[::1", "a=b", "-1g"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=3)),
                      max_leaves=8)


def _put(data, path, value):
    if not path:
        return value
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(PATHS), VALUES)
def test_any_value_anywhere_gives_spec_or_spec_error(path, value):
    data = _put(copy.deepcopy(VALID), path, value)
    try:
        _spec.load_data(data)
    except _spec.SpecError as exc:
        assert exc.errors and all(isinstance(e, str) and e.startswith("<inline>: ") for e in exc.errors)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_spec_or_spec_error(text):
    try:
        _spec.load_text(text, "f.yml")
    except _spec.SpecError as exc:
        assert exc.errors


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["name", "labels", "capacity", "facts", "address", "x"]), VALUES, max_size=4), max_size=4))
def test_any_host_list_gives_hosts_or_spec_error(items):
    try:
        _spec.load_hosts(items)
    except _spec.SpecError as exc:
        assert exc.errors

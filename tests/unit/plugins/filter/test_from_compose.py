# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The from_compose filter: the stack document, or {stack, unsupported}; a conversion that is not a valid stack file
and a compose document that cannot be converted are filter errors naming the key path."""

from __future__ import annotations

import os

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.stackfleet.cluster.plugins.filter.from_compose import FilterModule, from_compose
from ansible_collections.stackfleet.cluster.plugins.module_utils import _spec

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "compose")


def load(name):
    with open(os.path.join(DATA, name)) as handle:
        return yaml.safe_load(handle)


def test_the_stack_document_and_with_warnings():
    compose = load("wordpress-mysql.yaml")
    stack = from_compose(compose, "blog")
    assert stack["cluster"] == "blog" and list(stack["deploy"]) == ["db", "wordpress", "phpmyadmin"]
    both = from_compose(compose, "blog", with_warnings=True)
    assert both["stack"] == stack
    assert "services.phpmyadmin.depends_on: not expressible; group services in stacks:" in "\n".join(both["unsupported"])
    _spec.load_data(stack)  # a plain mapping the loader takes as it is


def test_project_dir_and_variables():
    compose = {"services": {"web": {"image": "nginx:${TAG:-1.27}", "volumes": ["./site:/usr/share/nginx/html:ro"]}}}
    both = from_compose(compose, "demo", with_warnings=True, project_dir="/srv/site", variables={"TAG": "1.25"})
    assert both["stack"]["services"]["web"] == {"image": "nginx:1.25", "volumes": ["/srv/site/site:/usr/share/nginx/html:ro"]}
    assert both["unsupported"] == []


def test_a_conversion_that_is_no_valid_stack_file_is_an_error_with_the_key_path():
    with pytest.raises(AnsibleFilterError) as exc:
        from_compose(load("prometheus-grafana.yaml"), "demo", project_dir="/srv")
    text = str(exc.value)
    assert "converted compose file: services.prometheus.volumes[1]: target '/prometheus' is mounted twice" in text
    assert "services.prometheus.container_name: not expressible" in text


@pytest.mark.parametrize("compose, cluster, message", [
    ({"services": {"s": {"image": "x"}}}, "no.dots", "from_compose: cluster: expected a cluster name"),
    ("services: {}", "demo", "from_compose: expected a docker-compose document"),
    ({"services": {"s": {"build": "."}}}, "demo", "from_compose: services: no service could be converted"),
    ({"services": {"s": {"image": "x:${T:?set T}"}}}, "demo", "from_compose: services.s.image: variable T is required: set T"),
])
def test_bad_input_is_a_filter_error(compose, cluster, message):
    with pytest.raises(AnsibleFilterError, match=message.replace(".", r"\.")):
        from_compose(compose, cluster)


def test_registered():
    assert FilterModule().filters()["from_compose"] is from_compose

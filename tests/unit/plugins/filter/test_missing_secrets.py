# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The missing_secrets filter: a whole plan checked at once, names only."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.stackfleet.cluster.plugins.filter.missing_secrets import FilterModule, missing_secrets
from ansible_collections.stackfleet.cluster.plugins.module_utils import _plan_documents


def _doc(name, **env):
    return {"name": name, "cluster": "p", "image": "x", "env": env}


PLAN = {
    "n1": [_doc("p.db-1.db", PW={"secret": "db_password"}, U="app")],
    "n2": [_doc("p.app-1.app", PW={"secret": "db_password"}, KEY={"secret": "api_key"})],
    "n3": [],
}


def test_every_missing_reference_of_every_host_is_named_and_no_value_is():
    assert missing_secrets(PLAN, {"api_key": "k3y-value"}) == [
        "secret 'db_password' for p.app-1.app env PW", "secret 'db_password' for p.db-1.db env PW"]
    assert missing_secrets(PLAN, {}) == [
        "secret 'api_key' for p.app-1.app env KEY", "secret 'db_password' for p.app-1.app env PW",
        "secret 'db_password' for p.db-1.db env PW"]
    assert missing_secrets(PLAN, {"api_key": "k", "db_password": "d"}) == []


def test_one_hosts_list_and_no_secrets_at_all():
    assert missing_secrets(PLAN["n1"], None) == ["secret 'db_password' for p.db-1.db env PW"]
    assert missing_secrets([_doc("p.x-1.x", A="plain")], None) == []


def test_a_compact_plan_is_checked_through_its_templates():
    full = {h: [dict(_doc("p.app-%s.app" % h, PW={"secret": "db_password"}), deploy="app", service="app", instance="app-" + h, host=h)]
            for h in ("n1", "n2")}
    containers, templates = _plan_documents.compact(full)
    assert "env" not in containers["n2"][0]  # the reference is only in the template
    assert missing_secrets(containers, {}, templates) == missing_secrets(full, {}) == [
        "secret 'db_password' for p.app-n1.app env PW", "secret 'db_password' for p.app-n2.app env PW"]
    with pytest.raises(AnsibleFilterError, match="names template"):
        missing_secrets({"n1": [{"template": "nope.app", "instance": "x-1"}]}, {}, templates)


@pytest.mark.parametrize("documents, secrets", [("text", {}), ([1], {}), (PLAN, ["a"])])
def test_bad_input_is_a_filter_error(documents, secrets):
    with pytest.raises(AnsibleFilterError):
        missing_secrets(documents, secrets)


def test_registered():
    assert FilterModule().filters()["missing_secrets"] is missing_secrets

"""host_documents filter: the drain flag (issue 9) from stackfleet_drain, read as Ansible reads booleans."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.stackfleet.cluster.plugins.filter.host_documents import host_documents


@pytest.mark.parametrize("value, drain", [(None, False), ("", False), (False, False), ("no", False), (True, True),
                                          ("yes", True), ("true", True), (1, True)])
def test_drain_is_a_boolean_from_stackfleet_drain(value, drain):
    hostvars = {"n1": {} if value is None else {"stackfleet_drain": value}}
    assert host_documents(["n1"], hostvars) == [{"name": "n1", "labels": {}, "drain": drain}]


def test_a_drain_that_is_not_a_boolean_names_the_host():
    with pytest.raises(AnsibleFilterError) as info:
        host_documents(["n1"], {"n1": {"stackfleet_drain": "maybe"}})
    assert "n1" in str(info.value) and "stackfleet_drain" in str(info.value)

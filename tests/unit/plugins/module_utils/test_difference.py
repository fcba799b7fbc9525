"""Field-level differences between container documents: names, rules, in-place fields, masking."""
import json

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _difference as df
from ansible_collections.stackfleet.cluster.plugins.module_utils import _secrets


def doc(**over):
    d = {"name": "prod.db-1.db", "cluster": "prod", "deploy": "db", "instance": "db-1", "service": "db", "host": "h1",
         "image": "mariadb:11", "command": ["mysqld"], "entrypoint": None, "env": {"DB_HOST": "10.0.0.1", "DB_PASSWORD": "hunter2"},
         "ports": [{"container_port": 3306, "protocol": "tcp", "host_port": 3306, "host_ip": ""},
                   {"container_port": 9104, "protocol": "tcp", "host_port": 9104, "host_ip": ""}],
         "volumes": [{"source": "data", "target": "/var/lib/mysql", "read_only": False}], "labels": {"team": "data"},
         "restart": "unless-stopped", "network_mode": None, "resources": {"cpus": 1.0, "memory_mb": 512},
         "healthcheck": {"test": ["CMD", "true"], "interval": 5.0, "timeout": 30.0, "retries": 3, "start_period": 0.0},
         "update": {"parallelism": 1}, "pull": "missing"}
    d.update(over)
    return d


def texts(before, after):
    return df.texts(df.differences(before, after))


def test_identical_documents_have_no_differences_even_after_a_json_round_trip():
    # A module's arguments arrive through JSON: 1.0 becomes 1, tuples lists; that is no change.
    same = json.loads(json.dumps(doc(resources={"cpus": 1, "memory_mb": 512.0})))
    assert df.differences(doc(), same) == []


def test_each_changed_field_is_named_with_before_and_after():
    after = doc(image="mariadb:11.4", resources={"cpus": 1.0, "memory_mb": 1024}, labels={"team": "data", "tier": "1"},
                command=["mysqld", "--max-connections=500"])
    assert texts(doc(), after) == [  # in the order of the document contract
        "image: mariadb:11 → mariadb:11.4",
        'command: ["mysqld"] → ["mysqld","--max-connections=500"]',
        "labels.tier: added (1)",
        "resources.memory_mb: 512 → 1024",
    ]


def test_env_values_are_never_shown_only_names():
    after = doc(env={"DB_HOST": "10.0.0.2", "NEW": "s3cr3t-new"})
    lines = texts(doc(), after)
    assert lines == ["env.DB_HOST: changed", "env.DB_PASSWORD: removed", "env.NEW: added"]
    before_diff, after_diff = df.diff(df.differences(doc(), after))
    shown = json.dumps([lines, before_diff, after_diff])
    for secret in ("10.0.0.1", "10.0.0.2", "hunter2", "s3cr3t-new"):
        assert secret not in shown
    assert before_diff["env.DB_HOST"] != after_diff["env.DB_HOST"]  # the diff still shows a change
    assert "env.NEW" not in before_diff and "env.DB_PASSWORD" not in after_diff


def test_unordered_fields_and_host_network_ports():
    reordered = doc(ports=list(reversed(doc()["ports"])))
    assert df.differences(doc(), reordered) == []
    # Docker drops port bindings with the host's network: the container cannot show them.
    host_before = doc(network_mode="host", ports=[])
    assert df.differences(host_before, doc(network_mode="host")) == []
    assert texts(doc(network_mode=None, ports=[]), doc())[0].startswith("ports: [] → ")


def test_numbers_compare_as_docker_stores_them():
    # NanoCpus and bytes: 0.1 cpus read back as 100000000 / 1e9, 32 MiB as 33554432 / 1048576.
    before = doc(resources={"cpus": 100000000 / 1e9, "memory_mb": 33554432 / 1048576})
    assert df.differences(before, doc(resources={"cpus": 0.1, "memory_mb": 32})) == []
    assert df.differences(doc(resources={}), doc(resources={"cpus": 0, "memory_mb": 0})) == []


@pytest.mark.parametrize("before, after, in_place", [
    ({"memory_mb": 512}, {"memory_mb": 1024}, True),
    ({"memory_mb": 1024}, {"memory_mb": 512}, True),
    ({"memory_mb": 0}, {"memory_mb": 512}, True),
    ({"memory_mb": 512}, {"memory_mb": 0}, False),  # Docker cannot lift a limit in place
    ({"cpus": 0.5}, {"cpus": 2.0}, True),
    ({"cpus": 0.5}, {"cpus": 0}, False),
])
def test_which_resource_changes_docker_applies_in_place(before, after, in_place):
    changes = df.in_place_differences(doc(resources=before), doc(resources=after))
    assert len(changes) == 1 and changes[0].in_place is in_place


@pytest.mark.parametrize("before, after", [("no", "always"), ("always", "on-failure:3"), ("unless-stopped", "no")])
def test_restart_policy_changes_are_in_place(before, after):
    changes = df.in_place_differences(doc(restart=before), doc(restart=after))
    assert [c.field for c in changes] == ["restart"] and changes[0].in_place
    assert changes[0].text() == "restart: %s → %s" % (before, after)


def test_in_place_differences_look_only_at_in_place_fields():
    assert df.in_place_differences(doc(), doc(image="other", env={})) == []
    assert not any(c.in_place for c in df.differences(doc(), doc(image="other")))
    assert df.in_place_differences(doc(restart="on-failure:0"), doc(restart="on-failure")) == []


def test_secret_reference_compared_through_its_digest():
    name = doc()["name"]
    ref = {"secret": "db_password", "sha256": _secrets.digest(name, "hunter2")}
    assert df.differences(doc(), doc(env={"DB_HOST": "10.0.0.1", "DB_PASSWORD": ref})) == []
    rotated = {"secret": "db_password", "sha256": _secrets.digest(name, "rotated")}
    assert texts(doc(), doc(env={"DB_HOST": "10.0.0.1", "DB_PASSWORD": rotated})) == ["env.DB_PASSWORD: changed"]
    # A bare reference (no digest): the value is not known here; only the hash can tell.
    assert df.differences(doc(), doc(env={"DB_HOST": "10.0.0.1", "DB_PASSWORD": {"secret": "db_password"}})) == []


def test_healthcheck_compared_per_key_or_whole():
    hc = doc()["healthcheck"]
    assert texts(doc(), doc(healthcheck=dict(hc, interval=10))) == ["healthcheck.interval: 5 → 10"]
    assert texts(doc(), doc(healthcheck=None))[0].startswith("healthcheck: {")

# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Valid stack files, units, YAML details, constraints and host documents."""

from __future__ import annotations

import os

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _spec
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import Port, Resources

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..")
FORMAT_DOC_EXAMPLE = os.path.join(ROOT, "tests", "unit", "data", "good", "lamp-format-doc.yml")


def _minimal(**service):
    return {"cluster": "t", "services": {"web": dict({"image": "busybox"}, **service)}, "deploy": {"web": {"count": 1}}}


def _config(**service):
    return _spec.load_data(_minimal(**service)).services["web"].config


# --- the contract's own example


def test_format_doc_example_is_byte_identical_to_the_contract():
    contract_path = os.path.join(ROOT, "..", "shared", "docs", "stack-format.md")
    if not os.path.exists(contract_path):
        pytest.skip("the shared contract is not next to this checkout")
    with open(contract_path, encoding="utf-8") as handle:
        contract = handle.read()
    with open(FORMAT_DOC_EXAMPLE, encoding="utf-8") as handle:
        example = handle.read()
    assert "```yaml\n" + example + "```" in contract
    with open(os.path.join(ROOT, "examples", "lamp-format-doc.yml"), encoding="utf-8") as handle:
        assert handle.read() == example


def test_format_doc_example_loads():
    spec = _spec.load_file(FORMAT_DOC_EXAMPLE)
    assert spec.cluster == "prod" and spec.strategy == "spread"
    assert list(spec.services) == ["mysql", "web", "lb", "node-exporter"]
    assert spec.stacks == {"lamp": ("mysql", "web")}
    assert list(spec.deploys) == ["lamp", "lb", "node-exporter"]

    lamp, lb, exporter = spec.deploys["lamp"], spec.deploys["lb"], spec.deploys["node-exporter"]
    assert (lamp.services, lamp.is_stack, lamp.colocate, lamp.count, lamp.is_global) == (("mysql", "web"), True, True, 5, False)
    assert (lamp.spread, lamp.max_per_host, lamp.host) == ("rack", 2, None)
    assert lamp.constraint == "labels.disk == 'ssd' && capacity.memory_mb >= `2048`"
    assert (lb.count, lb.conflicts, lb.is_stack) == (2, ("lb",), False)
    assert exporter.is_global and exporter.count == 0

    mysql = spec.services["mysql"]
    assert mysql.image == "mariadb:11"
    assert mysql.resources == Resources(cpus=1.0, memory_mb=1024)
    assert mysql.ports == (Port(3306, "tcp", 3306, ""),)
    assert mysql.config == {
        "command": ["mysqld", "--max-connections=500"],
        "entrypoint": None,
        "env": {"MARIADB_DATABASE": "app"},
        "ports": [{"container_port": 3306, "protocol": "tcp", "host_port": 3306, "host_ip": ""}],
        "volumes": [{"source": "mysql-data", "target": "/var/lib/mysql", "read_only": False}],
        "labels": {"team": "data"},
        "restart": "unless-stopped",
        "network_mode": "host",
        "resources": {"cpus": 1.0, "memory_mb": 1024},
        "healthcheck": {"test": ["CMD", "mysqladmin", "ping"], "interval": 5.0, "timeout": 30.0, "retries": 10, "start_period": 0.0},
    }
    web = spec.services["web"]
    assert web.config["env"] == {"DB_HOST": "{{ instance.services.mysql.host }}"}
    assert web.resources == Resources(cpus=0.5, memory_mb=512)
    assert web.host_ports == frozenset({(8080, "tcp")})
    assert spec.services["node-exporter"].config["network_mode"] == "host"
    assert spec.services["lb"].config["restart"] == "no"


def test_format_doc_constraint_is_compiled_jmespath():
    eligible = _spec.load_file(FORMAT_DOC_EXAMPLE).deploys["lamp"].constraint_fn
    assert eligible({"labels": {"disk": "ssd"}, "capacity": {"memory_mb": 4096}})
    assert not eligible({"labels": {"disk": "ssd"}, "capacity": {"memory_mb": 1024}})
    assert not eligible({"labels": {"disk": "hdd"}, "capacity": {"memory_mb": 4096}})
    assert not eligible({"labels": {}, "capacity": {}})  # unlimited host without the label


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(os.path.join(ROOT, "examples")) if n.endswith(".yml")))
def test_examples_load(name):
    assert _spec.load_file(os.path.join(ROOT, "examples", name)).deploys


def test_lab_example_resolves_backends_and_per_instance_volumes():
    spec = _spec.load_file(os.path.join(ROOT, "examples", "lamp.yml"))
    assert spec.services["lb"].config["env"] == {"BACKENDS": "{{ deploy.lamp.web.addresses }}", "BACKEND_PORT": "8080"}
    assert spec.services["mysql"].config["volumes"][0]["source"] == "{{ instance.id }}-mysql"


# --- error reporting


def test_all_errors_of_a_file_are_reported_at_once():
    text = """\
cluster: prod.eu
strategy: spreed
services:
  web: {image: busybox, ports: ['70000:80'], restart: sometimes, resources: {cpus: lots}}
  db: {ports: ['3306']}
stacks:
  lamp: {services: [web, dbb]}
deploy:
  lamp: {count: five, conflicts: [lbb]}
  lb: {count: 1}
"""
    with pytest.raises(_spec.SpecError) as caught:
        _spec.load_text(text, "stacks.yml")
    errors = caught.value.errors
    expected = [
        "stacks.yml: cluster: expected a cluster name",
        "stacks.yml: strategy: expected one of spread, binpack, got 'spreed'",
        "stacks.yml: services.web.ports[0]: ports must be 1-65535",
        "stacks.yml: services.web.restart: expected one of no, always",
        "stacks.yml: services.web.resources.cpus: expected a number of CPUs",
        "stacks.yml: services.db.image: missing",
        "stacks.yml: stacks.lamp.services[1]: unknown service 'dbb' (did you mean 'db'?)",
        "stacks.yml: deploy.lamp.count: expected a non-negative integer, got 'five'",
        "stacks.yml: deploy.lamp.conflicts[0]: unknown deploy key 'lbb'",
        "stacks.yml: deploy.lb: 'lb' is neither a stack nor a service",
    ]
    for prefix in expected:
        assert any(e.startswith(prefix) for e in errors), (prefix, errors)
    text = str(caught.value)
    assert text.splitlines()[0] == "stacks.yml: %d errors" % len(errors)
    assert text.splitlines()[1:] == errors


def test_single_error_header_is_singular():
    with pytest.raises(_spec.SpecError) as caught:
        _spec.load_data({"cluster": "t", "deploy": {"x": {"count": 1}}}, source="inline.yml")
    assert str(caught.value).splitlines()[0] == "inline.yml: 1 error"
    assert isinstance(caught.value, ValueError)


def test_load_file_names_the_path_and_reports_unreadable_files(tmp_path):
    path = tmp_path / "stacks.yml"
    path.write_text("cluster: t\nservices: {web: {image: busybox}}\ndeploy: {web: {count: many}}\n")
    with pytest.raises(_spec.SpecError) as caught:
        _spec.load_file(str(path))
    assert caught.value.errors == ["%s: deploy.web.count: expected a non-negative integer, got 'many'" % path]
    with pytest.raises(_spec.SpecError, match="cannot read the stack file"):
        _spec.load_file(str(tmp_path / "missing.yml"))


def test_top_level_x_keys_hold_yaml_anchors():
    text = """\
cluster: t
x-base: &base {image: busybox, restart: always}
services:
  web: {<<: *base, image: nginx}
"""
    web = _spec.load_text(text).services["web"]
    assert web.image == "nginx" and web.config["restart"] == "always"


# --- YAML 1.2 scalars


def test_yaml_12_scalars_keep_docker_strings_as_strings():
    text = """\
cluster: t
services:
  web:
    image: busybox
    restart: no
    ports: [8080:80, 22:22]
    env: {DEBUG: yes, MODE: off, COUNT: 010, RATIO: 1.50, WHEN: 2001-12-14}
stacks:
  s: {services: [web], colocate: no}
deploy:
  s: {count: 1}
"""
    spec = _spec.load_text(text)
    config = spec.services["web"].config
    assert config["restart"] == "no"
    assert [(p["host_port"], p["container_port"]) for p in config["ports"]] == [(22, 22), (8080, 80)]
    assert config["env"] == {"DEBUG": "yes", "MODE": "off", "COUNT": "10", "RATIO": "1.5", "WHEN": "2001-12-14"}
    assert spec.deploys["s"].colocate is False


def test_yaml_11_values_from_ansible_are_understood():
    data = _minimal(restart=False, env={"DEBUG": True, "N": 3})
    data["stacks"] = {"s": {"services": ["web"], "colocate": False}}
    data["deploy"] = {"s": {"count": "2", "global": False}}
    spec = _spec.load_data(data)
    assert spec.services["web"].config["restart"] == "no"
    assert spec.services["web"].config["env"] == {"DEBUG": "true", "N": "3"}
    assert (spec.deploys["s"].count, spec.deploys["s"].colocate) == (2, False)


# --- service fields


@pytest.mark.parametrize("ports, expected", [
    (["80"], [(80, "tcp", None, "")]),
    ([80], [(80, "tcp", None, "")]),
    (["53/udp"], [(53, "udp", None, "")]),
    (["8080:80/tcp"], [(80, "tcp", 8080, "")]),
    (["127.0.0.1:8080:80"], [(80, "tcp", 8080, "127.0.0.1")]),
    (["[::1]:8080:80/udp"], [(80, "udp", 8080, "::1")]),
    (["8000-8001:80-81"], [(80, "tcp", 8000, ""), (81, "tcp", 8001, "")]),
    (["9000-9001"], [(9000, "tcp", None, ""), (9001, "tcp", None, "")]),
    (["9090:90", "8080:80"], [(80, "tcp", 8080, ""), (90, "tcp", 9090, "")]),  # sorted
])
def test_ports(ports, expected):
    config = _config(ports=ports)
    assert [(p["container_port"], p["protocol"], p["host_port"], p["host_ip"]) for p in config["ports"]] == expected


def test_host_network_ports_reserve_the_host_port():
    spec = _spec.load_data(_minimal(network_mode="host", ports=["8080", "9100:9100"]))
    assert spec.services["web"].host_ports == frozenset({(8080, "tcp"), (9100, "tcp")})


def test_command_entrypoint_and_healthcheck_strings():
    config = _config(command="sh -c 'echo \"hi there\"'", entrypoint=["/bin/tini", "--"],
                     healthcheck={"test": "wget -q -O- localhost", "interval": "1m30s", "timeout": "500ms",
                                  "start_period": 10, "retries": "4"})
    assert config["command"] == ["sh", "-c", 'echo "hi there"']
    assert config["entrypoint"] == ["/bin/tini", "--"]
    assert config["healthcheck"] == {"test": ["CMD-SHELL", "wget -q -O- localhost"], "interval": 90.0, "timeout": 0.5,
                                     "retries": 4, "start_period": 10.0}


def test_env_list_labels_volumes_and_defaults():
    config = _config(env=["A=1", "B=x=y", "EMPTY="], labels={"tier": 1, "on": True},
                     volumes=["/srv/data:/data:ro", "cache:/cache:rw", "{{ cluster }}-{{ instance.index }}:/state"])
    assert config["env"] == {"A": "1", "B": "x=y", "EMPTY": ""}
    assert config["labels"] == {"tier": "1", "on": "true"}
    assert config["volumes"] == [
        {"source": "cache", "target": "/cache", "read_only": False},
        {"source": "/srv/data", "target": "/data", "read_only": True},
        {"source": "{{ cluster }}-{{ instance.index }}", "target": "/state", "read_only": False},
    ]
    bare = _config()
    assert (bare["command"], bare["entrypoint"], bare["healthcheck"], bare["network_mode"], bare["restart"]) == (None, None, None, None, "no")
    assert bare["resources"] == {"cpus": 0.0, "memory_mb": 0}


@pytest.mark.parametrize("restart", ["no", "always", "unless-stopped", "on-failure", "on-failure:5"])
def test_restart_policies(restart):
    assert _config(restart=restart)["restart"] == restart


def test_literal_curly_braces_are_not_references():
    config = _config(env={"TEMPLATE": "{{ name }} and {{ instances }} and {{deploy_dir}}"})
    assert config["env"]["TEMPLATE"] == "{{ name }} and {{ instances }} and {{deploy_dir}}"


def test_env_secret_references_and_pull_policy():
    config = _config(env={"DB_PASSWORD": {"secret": "db_password"}, "DB_USER": "app"}, pull="always")
    assert config["env"] == {"DB_PASSWORD": {"secret": "db_password"}, "DB_USER": "app"}
    assert config["pull"] == "always"
    assert "pull" not in _config()  # absent: not in the document, the module's option applies
    text = "cluster: t\nservices:\n  web:\n    image: x\n    pull: never\n    env: {P: {secret: p_1}}\ndeploy: {web: {count: 1}}\n"
    web = _spec.load_text(text).services["web"].config
    assert (web["env"], web["pull"]) == ({"P": {"secret": "p_1"}}, "never")


def test_secret_reference_is_not_scanned_for_references():
    config = _config(env={"A": {"secret": "a"}, "B": "{{ instance.id }}"})
    assert config["env"]["A"] == {"secret": "a"}


# --- deploy rules


def test_deploy_extensions_and_normalisation():
    data = {
        "cluster": "t",
        "services": {"db": {"image": "x"}, "web": {"image": "x"}, "cache": {"image": "x"}},
        "stacks": {"app": {"services": ["web", "cache"], "colocate": False}},
        "deploy": {
            "db": {"count": 1, "host": "n1"},
            "app": {"count": 3, "conflicts": "app", "affinity": ["db"], "max_per_host": 2, "spread": "rack"},
            "cache": {"count": 0},
        },
    }
    spec = _spec.load_data(data)
    app = spec.deploys["app"]
    assert (app.services, app.colocate, app.conflicts, app.affinity, app.max_per_host, app.spread) == (
        ("web", "cache"), False, ("app",), ("db",), 2, "rack")
    assert spec.deploys["db"].host == "n1"
    assert spec.deploys["cache"].count == 0 and not spec.deploys["cache"].is_stack


def test_deploy_update_parallelism():
    data = _minimal()
    assert _spec.load_data(data).deploys["web"].parallelism == 1
    data["deploy"]["web"]["update"] = {"parallelism": 3}
    assert _spec.load_data(data).deploys["web"].parallelism == 3
    data["deploy"]["web"]["update"] = {"parallelism": "2"}  # a survey answer
    assert _spec.load_data(data).deploys["web"].parallelism == 2
    data["deploy"]["web"]["update"] = {}
    assert _spec.load_data(data).deploys["web"].parallelism == 1


def test_constraint_runtime_errors_and_jmespath_truthiness():
    data = _minimal()
    data["deploy"]["web"]["constraint"] = "abs(labels.rack)"
    eligible = _spec.load_data(data).deploys["web"].constraint_fn
    assert eligible({"labels": {"rack": "r1"}}) is False  # type error on this host: not eligible
    assert eligible({"labels": {"rack": -2}}) is True
    data["deploy"]["web"]["constraint"] = "capacity.cpus"
    eligible = _spec.load_data(data).deploys["web"].constraint_fn
    assert eligible({"capacity": {"cpus": 0}}) is True  # JMESPath: 0 is truthy
    assert eligible({"capacity": {}}) is False


def test_service_may_name_its_own_siblings_and_deploy_addresses():
    data = {
        "cluster": "t",
        "services": {
            "db": {"image": "x"},
            "web": {"image": "x", "env": {"DB": "{{ instance.services.db.host }}", "ME": "{{ instance.services.web.name }}"}},
            "lb": {"image": "x", "command": ["lb", "--backends={{ deploy.app.web.addresses }}", "{{ instance.index }}"]},
        },
        "stacks": {"app": {"services": ["db", "web"]}},
        "deploy": {"app": {"count": 2}, "lb": {"count": 1}},
    }
    assert _spec.load_data(data).services["lb"].config["command"][1] == "--backends={{ deploy.app.web.addresses }}"


# --- units


@pytest.mark.parametrize("value, mib", [
    ("512m", 512), ("1g", 1024), ("1.5g", 1536), ("2048k", 2), ("1gb", 1024), ("1GiB", 1024), ("1 G", 1024),
    ("100M", 100), ("1t", 1024 * 1024), (536870912, 512), ("536870912", 512), ("1b", 1), (1, 1), (0, 0), ("0", 0),
    ("1025k", 2), (1.5 * 1024 * 1024, 2),
])
def test_parse_memory(value, mib):
    assert _spec.parse_memory(value) == mib


@pytest.mark.parametrize("value", ["", "1x", "lots", "-1g", -5, True, None, [1], "1..5g", "g"])
def test_parse_memory_rejects(value):
    with pytest.raises(ValueError):
        _spec.parse_memory(value)


@pytest.mark.parametrize("value, cpus", [(1, 1.0), (0.5, 0.5), ("0.5", 0.5), ("500m", 0.5), ("2", 2.0), ("1500m", 1.5), (0, 0.0)])
def test_parse_cpus(value, cpus):
    assert _spec.parse_cpus(value) == cpus


@pytest.mark.parametrize("value", ["", "half", "-1", -0.5, False, None, "1.5.1", "5 cores"])
def test_parse_cpus_rejects(value):
    with pytest.raises(ValueError):
        _spec.parse_cpus(value)


@pytest.mark.parametrize("value, seconds", [
    ("5s", 5.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("1.5m", 90.0), (10, 10.0), ("100ms", 0.1), ("2m0s", 120.0),
])
def test_parse_duration(value, seconds):
    assert _spec.parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["", "5", "5 s", "five seconds", "1d", "-5s", None, True])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError):
        _spec.parse_duration(value)


# --- hosts


def test_load_hosts_normalises_documents():
    hosts = _spec.load_hosts([
        {"name": "node-1", "address": "10.0.0.1", "labels": {"rack": 1, "ssd": True},
         "capacity": {"cpus": "4", "memory_mb": 8192}, "facts": {"os": "flatcar"}},
        {"name": "node-2", "capacity": {"cpus": "1500m", "memory": "2g"}},
        {"name": "node-3.example.com", "capacity": {"cpus": 2, "memory_mb": "1.5g"}},
        {"name": "node-4", "labels": None, "capacity": None},
    ])
    assert [h.name for h in hosts] == ["node-1", "node-2", "node-3.example.com", "node-4"]
    assert hosts[0].labels == {"rack": "1", "ssd": "true"}
    assert hosts[0].capacity == Resources(cpus=4.0, memory_mb=8192)
    assert hosts[0].document() == {"name": "node-1", "labels": {"rack": "1", "ssd": "true"}, "capacity": {"cpus": 4.0, "memory_mb": 8192},
                                   "facts": {"os": "flatcar"}, "address": "10.0.0.1"}
    assert hosts[1].capacity == Resources(cpus=1.5, memory_mb=2048)
    assert hosts[2].capacity == Resources(cpus=2.0, memory_mb=1536)
    assert hosts[3].capacity is None and hosts[3].labels == {} and hosts[3].address is None


def test_load_hosts_accepts_a_mapping_of_names():
    hosts = _spec.load_hosts({"a": {"labels": {"x": "y"}}, "b": None})
    assert [(h.name, dict(h.labels)) for h in hosts] == [("a", {"x": "y"}), ("b", {})]


@pytest.mark.parametrize("hosts, message", [
    ("node-1", "hosts: expected a list of host documents, got 'node-1'"),
    ([{"address": "10.0.0.1"}], "hosts: [0].name: expected a host name (letters, digits, '_', '.', '-'), got null"),
    ([{"name": "a b"}], "hosts: [0].name: expected a host name"),
    ([{"name": "n"}, {"name": "n"}], "hosts: [1]: host name 'n' appears twice"),
    ([{"name": "n", "label": {}}], "hosts: [0].label: unknown key (did you mean 'labels'?)"),
    ([{"name": "n", "labels": ["ssd"]}], "hosts: [0] (n).labels: expected a mapping, got a list"),
    ([{"name": "n", "labels": {"rack": ["r1"]}}], "hosts: [0] (n).labels.rack: expected a string, got a list"),
    ([{"name": "n", "capacity": {"cpus": 4}}], "hosts: [0] (n).capacity: expected both cpus and memory_mb"),
    ([{"name": "n", "capacity": {"cpus": 4, "memory_mb": "lots"}}], "hosts: [0] (n).capacity.memory_mb: expected a memory size"),
    ([{"name": "n", "capacity": {"cpus": "many", "memory_mb": 1}}], "hosts: [0] (n).capacity.cpus: expected a number of CPUs"),
    ([{"name": "n", "capacity": {"cpus": 1, "memory_mb": 1, "memory": "1g"}}], "hosts: [0] (n).capacity: give memory_mb"),
    ([{"name": "n", "facts": "x"}], "hosts: [0] (n).facts: expected a mapping"),
    ([{"name": "n", "address": "10.0.0.1, 10.0.0.2"}], "hosts: [0] (n).address: expected an IP address or DNS name"),
])
def test_load_hosts_rejects(hosts, message):
    with pytest.raises(_spec.SpecError) as caught:
        _spec.load_hosts(hosts)
    assert any(e.startswith(message) for e in caught.value.errors), caught.value.errors


def test_load_hosts_reports_every_bad_host():
    with pytest.raises(_spec.SpecError) as caught:
        _spec.load_hosts([{"name": "a", "labels": 1}, {"name": "b"}, {"name": "c", "capacity": {"cpus": -1, "memory_mb": 1}}])
    assert len(caught.value.errors) == 2
    assert str(caught.value).startswith("hosts: 2 errors\n")


# --- docs/stack-file.md stays true


def _reference_doc():
    with open(os.path.join(ROOT, "docs", "stack-file.md"), encoding="utf-8") as handle:
        return handle.read()


def test_reference_doc_example_loads():
    first_yaml_block = _reference_doc().split("```yaml\n", 1)[1].split("```", 1)[0]
    assert list(_spec.load_text(first_yaml_block, "doc").deploys) == ["lamp", "lb"]


def test_reference_doc_error_example_is_real_output():
    text = """\
cluster: t
strategy: spreed
services:
  db: {image: busybox, resources: {memory: 512}}
  web: {image: busybox}
stacks:
  lamp: {services: [db, wbe]}
deploy:
  lamp: {count: five}
"""
    with pytest.raises(_spec.SpecError) as caught:
        _spec.load_text(text, "stacks.yml")
    assert "```\n%s\n```" % caught.value in _reference_doc()


def test_control_characters_are_reported_with_their_position():
    with pytest.raises(_spec.SpecError) as caught:
        _spec.load_text("cluster: t\nservices: x\x07y\n", "f.yml")
    assert caught.value.errors == ["f.yml: line 2, column 12: YAML cannot contain the control character '\\x07'"
                                   " (special characters are not allowed)"]


def test_with_counts_overrides_counts_and_reports_every_problem():
    from ansible_collections.stackfleet.cluster.plugins.module_utils import _spec

    spec = _spec.load_file(os.path.join(ROOT, "examples", "lamp-format-doc.yml"))
    scaled = _spec.with_counts(spec, {"lamp": "7", "lb": 3})
    assert (scaled.deploys["lamp"].count, scaled.deploys["lb"].count) == (7, 3)
    assert spec.deploys["lamp"].count == 5  # the loaded spec is untouched
    with pytest.raises(_spec.SpecError) as err:
        _spec.with_counts(spec, {"lamb": 1, "node-exporter": 2, "lb": "-1"})
    assert err.value.errors == [
        "scale: lamb: no deploy of that name in %s (did you mean 'lamp'?)" % spec.source,
        "scale: lb: expected a non-negative integer, got '-1'",
        "scale: node-exporter: is global (one per eligible host); only count deploys can be scaled",
    ]

# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker-compose → stack file: real compose files from public examples (tests/unit/data/compose/, each citing its
source) convert into stack files that the collection's own loader accepts, and every compose key that is not converted
is named in `unsupported`; then each form of each converted key."""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import subprocess

import pytest
import yaml
from ansible_collections.stackfleet.cluster.plugins.module_utils import _compose, _spec
from ansible_collections.stackfleet.cluster.plugins.module_utils._spec_checks import COMPOSE_HINTS
from hypothesis import given, settings
from hypothesis import strategies as st

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "compose")
FILES = sorted(glob.glob(os.path.join(DATA, "*.y*ml")))
#: A real file docker-compose itself refuses ("Duplicate mount points"): the conversion is not a valid stack file.
INVALID = {"prometheus-grafana.yaml": "services.prometheus.volumes[1]: target '/prometheus' is mounted twice"}


def load(name):
    with open(os.path.join(DATA, name)) as handle:
        return yaml.safe_load(handle)


def convert(compose, **kwargs):
    kwargs.setdefault("project_dir", "/srv/app")
    return _compose.convert(compose, "demo", **kwargs)


def as_file(stack, source="converted.yml"):
    """The stack document through YAML text and the stack-file loader (YAML 1.2), as import_compose.yml writes it."""
    return _spec.load_text(yaml.safe_dump(stack, sort_keys=False), source=source)


def one(service, compose_deploy=None, **kwargs):
    body = dict(service, image=service.get("image", "busybox:1.36"))
    if compose_deploy is not None:
        body["deploy"] = compose_deploy
    result = convert({"services": {"s": body}}, **kwargs)
    return result.stack["services"].get("s"), result.stack["deploy"].get("s"), result.unsupported


def test_every_example_file_cites_its_source():
    assert len(FILES) >= 8
    for path in FILES:
        head = open(path).read().split("\n", 2)
        assert head[0].startswith("# Source: https://github.com/") and " at commit " in head[1], path


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_real_compose_files_convert_into_valid_stack_files(path):
    name = os.path.basename(path)
    result = convert(load(name))
    if name in INVALID:
        with pytest.raises(_spec.SpecError) as exc:
            as_file(result.stack, name)
        assert INVALID[name] in str(exc.value)
        return
    spec = as_file(result.stack, name)
    assert spec.cluster == "demo" and set(spec.services) == set(spec.deploys) == set(result.stack["services"])


@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_every_key_not_converted_is_named(path):
    """Each service key and each deploy key of the file is converted or named in `unsupported`: nothing silently dropped."""
    compose = load(os.path.basename(path))
    result = convert(compose)
    text = "\n".join(result.unsupported)
    converted_deploy = ("mode", "replicas", "resources", "restart_policy", "placement", "update_config")
    for name, body in compose["services"].items():
        for key in body:
            if key not in _compose.SERVICE_KEYS or key == "build":
                assert "services.%s.%s: not expressible" % (name, key) in text, (name, key)
        for key in body.get("deploy") or {}:
            if key not in converted_deploy:
                assert "services.%s.deploy.%s: not expressible" % (name, key) in text, (name, key)
        if "image" not in body:
            assert "services.%s: skipped: no image" % name in text and name not in result.stack["services"]
    for key in compose:
        if key not in ("services", "volumes"):
            assert any(line.startswith(key) for line in result.unsupported), key


def test_the_voting_app_stack_file():
    result = convert(load("voting-app-stack.yml"))
    assert result.stack["deploy"] == {
        "redis": {"count": 2, "update": {"parallelism": 2}},
        "db": {"count": 1},
        "vote": {"count": 2, "update": {"parallelism": 2}},
        "result": {"count": 2, "update": {"parallelism": 2}},
        "worker": {"count": 1},
        "visualizer": {"count": 1},
    }
    services = result.stack["services"]
    assert services["redis"] == {"image": "redis:alpine", "ports": ["auto:6379"], "restart": "on-failure"}
    assert services["worker"]["restart"] == "on-failure:3"
    assert services["db"]["volumes"] == ["{{ cluster }}_db-data:/var/lib/postgresql/data"]
    assert services["visualizer"]["volumes"] == ["/var/run/docker.sock:/var/run/docker.sock"]
    assert ("services.db.deploy.placement.constraints[0]: not expressible; 'node.role == manager': a host document has name and"
            " labels") in "\n".join(result.unsupported)
    assert "services.visualizer.stop_grace_period: not expressible" in result.unsupported
    spec = as_file(result.stack)
    assert spec.deploys["vote"].parallelism == 2 and spec.services["redis"].ports[0].dynamic


def test_wordpress_mysql():
    result = convert(load("wordpress-mysql.yaml"))
    db = result.stack["services"]["db"]
    assert db["env"] == {"MYSQL_ROOT_PASSWORD": "somewordpress", "MYSQL_DATABASE": "wordpress", "MYSQL_USER": "wordpress",
                         "MYSQL_PASSWORD": "wordpress"}
    assert db["ports"] == ["3306", "33060"]  # expose: container ports, not published
    assert db["command"] == "--default-authentication-plugin=mysql_native_password" and db["restart"] == "always"
    assert result.unsupported == [
        "services: the default network is not expressible; " + _compose.NETWORKS,
        "services.phpmyadmin.depends_on: not expressible; " + COMPOSE_HINTS["service"]["depends_on"],
    ]


def test_compose_escapes_and_relative_binds():
    result = convert(load("nginx-flask-mysql.yaml"))
    check = result.stack["services"]["db"]["healthcheck"]
    assert check["test"][1] == 'mysqladmin ping -h 127.0.0.1 --password="$(cat /run/secrets/db-password)" --silent'
    assert check["start_period"] == "30s"
    elk = convert(load("elasticsearch-logstash-kibana.yaml")).stack["services"]["logstash"]
    assert elk["volumes"][1] == "/srv/app/logstash/nginx.log:/home/nginx.log"
    assert elk["ports"] == ["5000:5000", "5000:5000/udp", "5044:5044", "9600:9600"]
    without = convert(load("elasticsearch-logstash-kibana.yaml"), project_dir=None)
    assert "volumes" not in without.stack["services"]["logstash"]
    assert any(line.startswith("services.logstash.volumes[1]: not expressible; the relative host path './logstash/nginx.log'")
               for line in without.unsupported)


def test_compose_v3_full_fixture():
    result = convert(load("compose-v3-full.yml"))
    web = result.stack["services"]["web"]
    assert web["volumes"] == ["/host/path:/container/path:ro", "{{ cluster }}_foobar:/container/volumepath",
                              "{{ cluster }}_foobar:/container/volumepath2"]
    assert web["resources"] == {"cpus": "0.001", "memory": "50M"} and web["restart"] == "on-failure:3"
    assert web["healthcheck"] == {"test": "cat /etc/passwd", "interval": "10s", "timeout": "1s", "retries": 5}
    for path in ("services.web.volumes[2]", "services.web.volumes[3].volume", "services.web.deploy.resources.reservations",
                 "services.web.deploy.labels", "services.web.deploy.placement.constraints[0]", "services.web.deploy.update_config.delay",
                 "services.web.deploy.restart_policy.window", "volumes.foobar.labels", "version"):
        assert any(line.startswith(path + ": ") for line in result.unsupported), path
    spec = as_file(result.stack)
    assert spec.services["web"].resources.memory_mb == 50 and spec.deploys["web"].count == 6


# --- each key, each form


def test_environment_list_and_map_forms():
    env, _deploy, notes = one({"environment": ["A=1", "B=x=y", "EMPTY=", "FROM_SHELL"]})
    assert env["env"] == {"A": "1", "B": "x=y", "EMPTY": ""}
    assert notes[0].startswith("services.s.environment.FROM_SHELL: not expressible; docker-compose takes its value from the shell")
    service, _deploy, notes = one({"environment": {"N": 3, "T": True, "S": "text", "UNSET": None}})
    assert service["env"] == {"N": "3", "T": "true", "S": "text"} and notes[0].startswith("services.s.environment.UNSET:")


@pytest.mark.parametrize("compose, stack", [
    ("80", "auto:80"),                                   # compose publishes it on a random host port
    ("8080:80", "8080:80"),
    ("127.0.0.1:8080:80", "127.0.0.1:8080:80"),
    ("127.0.0.1::80", "127.0.0.1:auto:80"),
    ("[::1]:8080:80", "[::1]:8080:80"),
    ("53:53/udp", "53:53/udp"),
    ("9000-9001:80-81", "9000-9001:80-81"),
    (8080, "auto:8080"),
    ({"target": 80, "published": 8080}, "8080:80"),
    ({"target": 80, "published": "8080", "protocol": "udp", "host_ip": "10.0.0.1", "mode": "host"}, "10.0.0.1:8080:80/udp"),
    ({"target": 80}, "auto:80"),
])
def test_port_forms(compose, stack):
    service, _deploy, notes = one({"ports": [compose]})
    assert service["ports"] == [stack] and notes == []
    as_file({"cluster": "demo", "services": {"s": service}, "deploy": {"s": {"count": 1}}})


def test_port_forms_that_change_meaning_are_named():
    service, _deploy, notes = one({"ports": ["3000-3001", "8000-8010:80", {"target": 81, "published": 81, "mode": "ingress"}]})
    assert service["ports"] == ["auto:3000", "auto:3001", "auto:80", "81:81"]
    assert notes[0].startswith("services.s.ports[1]: host port range 8000-8010 for one container port: published on a host port")
    assert notes[1].startswith("services.s.ports[2].mode: 'ingress': stackfleet has no routing mesh")
    service, _deploy, notes = one({"ports": ["8080:80", "9090:9090"], "expose": ["7000"], "network_mode": "host"})
    assert service["ports"] == ["80", "9090"] and service["network_mode"] == "host"
    assert "services.s.ports: 8080:80: with network_mode host docker publishes nothing" in notes[0] and notes[1].startswith("services.s.expose:")
    as_file({"cluster": "demo", "services": {"s": service}, "deploy": {"s": {"count": 1}}})


def test_expose_is_a_container_port_unless_published():
    service, _deploy, notes = one({"ports": ["8080:80"], "expose": [80, "9000", "53/udp", "bad"]})
    assert service["ports"] == ["8080:80", "9000", "53/udp"] and notes == [
        "services.s.expose[3]: not expressible; expected a port such as 3306 or 53/udp, got 'bad'"]


def test_volumes_named_bind_and_long():
    compose = {"services": {"s": {"image": "x:1", "volumes": [
        "data:/data", "ext:/ext:ro", "named:/named", "/abs:/abs:ro,z", "./rel:/rel", "../up:/up", "~/home:/home", "/anon",
        {"type": "bind", "source": "./conf", "target": "/conf", "read_only": True},
        {"type": "tmpfs", "target": "/tmp"}, {"type": "volume", "target": "/v"}]}},
        "volumes": {"data": None, "ext": {"external": True}, "named": {"name": "fixed-name"}, "old": {"external": {"name": "x"}}}}
    result = convert(compose)
    assert result.stack["services"]["s"]["volumes"] == [
        "{{ cluster }}_data:/data", "ext:/ext:ro", "fixed-name:/named", "/abs:/abs:ro", "/srv/app/rel:/rel", "/srv/up:/up",
        "/srv/app/conf:/conf:ro"]
    named = [line.split(":")[0] for line in result.unsupported]
    assert named == ["services.s.volumes[3]", "services.s.volumes[6]", "services.s.volumes[7]", "services.s.volumes[9]",
                     "services.s.volumes[10]"]
    spec = as_file(result.stack)
    assert {"source": "{{ cluster }}_data", "target": "/data", "read_only": False} in spec.services["s"].config["volumes"]


def test_labels_restart_healthcheck_pull():
    service, _deploy, notes = one({"labels": ["a=1", "flag", "io.stackfleet.cluster=x"], "restart": False,
                                   "healthcheck": {"disable": True}, "pull_policy": "if_not_present"})
    assert service["labels"] == {"a": "1", "flag": ""} and service["restart"] == "no"
    assert service["healthcheck"] == {"test": ["NONE"]} and service["pull"] == "missing"
    assert notes == ["services.s.labels.io.stackfleet.cluster: not expressible; labels starting with io.stackfleet. are stackfleet's own"]
    service, _deploy, notes = one({"labels": {"team": "data", "n": 1}, "healthcheck": {"test": "true", "start_interval": "1s"},
                                   "pull_policy": "build"})
    assert service["labels"] == {"team": "data", "n": "1"} and service["healthcheck"] == {"test": "true"} and "pull" not in service
    assert [line.split(":")[0] for line in notes] == ["services.s.healthcheck.start_interval", "services.s.pull_policy"]


def test_deploy_replicas_global_and_jobs():
    _service, deploy, notes = one({}, {"replicas": 4})
    assert deploy == {"count": 4} and notes == []
    _service, deploy, notes = one({"scale": 3})
    assert deploy == {"count": 3}
    _service, deploy, notes = one({"scale": 3}, {"replicas": 2})
    assert deploy == {"count": 2} and notes == ["services.s.scale: not used: deploy.replicas is given"]
    _service, deploy, notes = one({"scale": 3}, {"mode": "global"})
    assert deploy == {"global": True} and notes == ["services.s.scale: not used: mode global runs one instance on every eligible host"]
    _service, deploy, notes = one({}, {"mode": "global", "replicas": 2})
    assert deploy == {"global": True} and notes[0].startswith("services.s.deploy.replicas: not used: mode global")
    _service, deploy, notes = one({}, {"mode": "replicated-job"})
    assert deploy == {"count": 1} and notes[0].startswith("services.s.deploy.mode: 'replicated-job' is not expressible")
    assert COMPOSE_HINTS["deploy"]["mode"] in notes[0]


def test_placement_constraints_preferences_and_max_per_host():
    _service, deploy, notes = one({}, {"replicas": 3, "placement": {
        "constraints": ["node.labels.disk == ssd", "node.labels.com.example.zone!=eu-1", "node.hostname==node-1",
                        "node.labels.owner == \"o'brien\"", "node.role == manager", "engine.labels.os == linux"],
        "preferences": [{"spread": "node.labels.rack"}, {"spread": "node.labels.zone"}], "max_replicas_per_node": 2}})
    assert deploy["constraint"] == ("labels.disk == 'ssd' && labels.\"com.example.zone\" != 'eu-1' && name == 'node-1'"
                                    " && labels.owner == 'o\\'brien'")
    assert deploy["spread"] == "rack" and deploy["max_per_host"] == 2
    assert [line.split(":")[0] for line in notes] == ["services.s.deploy.placement.constraints[4]",
                                                      "services.s.deploy.placement.constraints[5]",
                                                      "services.s.deploy.placement.preferences[1]"]
    spec = as_file({"cluster": "demo", "services": {"s": {"image": "x:1"}}, "deploy": {"s": deploy}})
    eligible = spec.deploys["s"].constraint_fn
    host = {"name": "node-1", "labels": {"disk": "ssd", "com.example.zone": "us-1", "owner": "o'brien"}}
    assert eligible(host)
    assert not eligible(dict(host, name="node-2"))
    assert not eligible(dict(host, labels=dict(host["labels"], **{"com.example.zone": "eu-1"})))
    assert not eligible(dict(host, labels={"com.example.zone": "us-1", "owner": "o'brien"}))  # no disk label


def test_resources_from_deploy_limits_and_service_keys():
    service, _deploy, notes = one({}, {"resources": {"limits": {"cpus": "0.5", "memory": "512M", "pids": 100},
                                                     "reservations": {"memory": "256M"}}})
    assert service["resources"] == {"cpus": "0.5", "memory": "512M"}
    assert [line.split(":")[0] for line in notes] == ["services.s.deploy.resources.reservations", "services.s.deploy.resources.limits.pids"]
    service, _deploy, notes = one({"cpus": 1.5, "mem_limit": "1g"})
    assert service["resources"] == {"cpus": 1.5, "memory": "1g"} and notes == []
    service, _deploy, notes = one({"mem_limit": "2g"}, {"resources": {"limits": {"memory": "1g"}}})
    assert service["resources"] == {"memory": "1g"} and notes == ["services.s.mem_limit: not used: deploy.resources.limits.memory is given"]
    assert as_file({"cluster": "demo", "services": {"s": service}, "deploy": {"s": {"count": 1}}}).services["s"].resources.memory_mb == 1024


def test_restart_policy():
    for condition, attempts, restart in (("none", None, "no"), ("any", None, "always"), ("on-failure", 5, "on-failure:5"),
                                         ("on-failure", None, "on-failure")):
        policy = {"condition": condition} if attempts is None else {"condition": condition, "max_attempts": attempts}
        service, _deploy, _notes = one({}, {"restart_policy": policy})
        assert service["restart"] == restart
    service, _deploy, notes = one({"restart": "always"}, {"restart_policy": {"condition": "none"}})
    assert service["restart"] == "always" and notes == ["services.s.deploy.restart_policy: not used: restart: always is given"]


def test_update_config():
    _service, deploy, notes = one({}, {"update_config": {"parallelism": 0, "order": "start-first"}})
    assert "update" not in deploy
    assert [line.split(":")[0] for line in notes] == ["services.s.deploy.update_config.parallelism", "services.s.deploy.update_config.order"]


def test_values_of_the_wrong_shape_are_named_not_ignored():
    _service, deploy, notes = one({"healthcheck": "curl x"}, {"placement": ["node.labels.a == b"], "resources": "big",
                                                              "update_config": 1, "restart_policy": "always"})
    assert deploy == {"count": 1}
    assert [line.split(":")[0] for line in notes] == [
        "services.s.deploy.restart_policy", "services.s.deploy.resources", "services.s.healthcheck", "services.s.deploy.placement",
        "services.s.deploy.update_config"]
    assert all("expected a mapping, got" in line for line in notes)
    result = convert({"services": {"s": {"image": "x:1", "deploy": "global"}}, "volumes": ["data"]})
    assert result.unsupported == ["volumes: not expressible; expected a mapping, got a list",
                                  "services.s.deploy: not expressible; expected a mapping, got 'global'"]


def test_unsupported_service_keys_carry_the_validators_hint():
    _service, _deploy, notes = one({"container_name": "x", "env_file": ".env", "build": ".", "privileged": True, "user": "1000",
                                    "network_mode": "service:other"})
    assert notes == [
        "services.s.container_name: not expressible; " + COMPOSE_HINTS["service"]["container_name"],
        "services.s.env_file: not expressible; " + COMPOSE_HINTS["service"]["env_file"],
        "services.s.privileged: not expressible",
        "services.s.user: not expressible",
        "services.s.build: not expressible; " + COMPOSE_HINTS["service"]["build"],
        "services.s.network_mode: not expressible; 'service:other' shares another service's network namespace, which may run on"
        " another host; put both in one stack (colocate: true) and use container:<name> if they must share it",
    ]


def test_top_level_keys():
    result = convert({"version": "3.8", "name": "shop", "services": {"s": {"image": "x:1"}}, "networks": {"a": {}},
                      "secrets": {"k": {"file": "k.txt"}}, "configs": {"c": {}}, "x-common": {"a": 1}, "include": ["o.yml"]})
    assert result.unsupported == [
        "version: ignored; " + COMPOSE_HINTS["top"]["version"],
        "name: the project name 'shop' is not used: the cluster is 'demo'; " + COMPOSE_HINTS["top"]["name"],
        "networks.a: not expressible; " + COMPOSE_HINTS["top"]["networks"],
        "secrets.k: not expressible; " + COMPOSE_HINTS["top"]["secrets"],
        "configs.c: not expressible",
        "include: not expressible",
    ]
    assert convert({"name": "demo", "services": {"s": {"image": "x:1"}}}).unsupported == []


def test_interpolation():
    compose = {"services": {"s": {"image": "app:${TAG}", "environment": {
        "A": "${A:-fallback}", "B": "${B-dash}", "C": "$C and $${NOT}", "D": "${MISSING}", "E": "${EMPTY:-was-empty}"}}}}
    result = convert(compose, variables={"TAG": "1.2", "C": "c", "B": "", "EMPTY": ""})
    service = result.stack["services"]["s"]
    assert service["image"] == "app:1.2"
    assert service["env"] == {"A": "fallback", "B": "", "C": "c and ${NOT}", "D": "", "E": "was-empty"}
    assert result.unsupported == ["services.s.environment.D: variable MISSING is not set; an empty string was used, as docker-compose"
                                  " does (give it in variables)"]
    with pytest.raises(_compose.ComposeError, match=r"services.s.image: variable TAG is required: give the tag"):
        convert({"services": {"s": {"image": "app:${TAG:?give the tag}"}}})


def test_names_and_errors():
    result = convert({"services": {"web.v2": {"image": "x:1"}}})
    assert list(result.stack["services"]) == ["web-v2"] and result.unsupported[0].startswith("services.web.v2: renamed to 'web-v2'")
    with pytest.raises(_compose.ComposeError, match=r"services.a-b: its stackfleet name 'a-b' is also the name of services.a.b"):
        convert({"services": {"a.b": {"image": "x:1"}, "a-b": {"image": "x:1"}}})
    with pytest.raises(_compose.ComposeError, match=r"^cluster: expected a cluster name"):
        _compose.convert({"services": {"s": {"image": "x"}}}, "bad.name")
    with pytest.raises(_compose.ComposeError, match=r"^expected a docker-compose document"):
        convert(["not", "a", "mapping"])
    with pytest.raises(_compose.ComposeError, match=r"^services: expected a mapping of at least one service"):
        convert({"version": "3"})
    with pytest.raises(_compose.ComposeError, match=r"^services: no service could be converted: services.s.build"):
        convert({"services": {"s": {"build": "."}}})
    with pytest.raises(_compose.ComposeError, match=r"^services.s: expected a mapping"):
        convert({"services": {"s": "nginx"}})


# --- our reading against docker-compose's own (docker-compose 1.29, Debian's docker-compose package)


def compose_config(path, workdir):
    """`docker-compose config` of a copy of the file in `workdir` (with the build folders it names), parsed."""
    raw = load(os.path.basename(path))
    for body in raw["services"].values():
        build = body.get("build")
        if build:
            os.makedirs(os.path.join(workdir, build if isinstance(build, str) else build["context"]), exist_ok=True)
    shutil.copy(path, workdir)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COMPOSE_", "DOCKER_"))}
    out = subprocess.run([DOCKER_COMPOSE, "-f", os.path.basename(path), "config"], cwd=workdir, env=env, capture_output=True,
                         text=True, check=False, timeout=60)
    return raw, out


def normalised(stack):
    """What stackfleet runs: every service's normalised container config and every deploy's rules."""
    spec = as_file(stack)
    deploys = {key: dataclasses.replace(deploy, constraint_fn=None) for key, deploy in spec.deploys.items()}
    return {name: service.config for name, service in spec.services.items()}, deploys, spec.deploys


DOCKER_COMPOSE = shutil.which("docker-compose")


@pytest.mark.skipif(DOCKER_COMPOSE is None, reason="docker-compose is not installed (scripts/setup.sh installs Debian's package)")
@pytest.mark.parametrize("path", FILES, ids=os.path.basename)
def test_our_reading_equals_docker_composes(path, tmp_path):
    """The file as written and docker-compose's normalised `config` output (long port and volume syntax, environment
    maps, resolved relative paths) convert into the same stack file; what docker-compose refuses, we refuse."""
    name = os.path.basename(path)
    raw, out = compose_config(path, str(tmp_path))
    ours = convert(raw, project_dir=str(tmp_path))
    if name in INVALID:
        assert out.returncode != 0 and "Duplicate mount points" in out.stderr
        with pytest.raises(_spec.SpecError):
            as_file(ours.stack)
        return
    assert out.returncode == 0, out.stderr
    theirs = convert(yaml.safe_load(out.stdout), project_dir=str(tmp_path))
    assert normalised(ours.stack)[:2] == normalised(theirs.stack)[:2]
    # docker-compose adds `version` to a file without one; every other unsupported key path is the same.
    assert ({line.split(": ")[0] for line in ours.unsupported} | {"version"}
            == {line.split(": ")[0] for line in theirs.unsupported} | {"version"})


# --- any shape of input: a result or a ComposeError, and a result the loader takes or names the key


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2, 70000), st.sampled_from(
    ["", "80", "8080:80", "127.0.0.1::80", "x", "1g", "0.5", "node.labels.a == b", "on-failure", "global", "./d:/d", "v:/v:ro",
     "A=1", "${X}", "$$", "CMD", "10s", "/abs"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(
    st.sampled_from(["target", "published", "source", "type", "limits", "cpus", "memory", "constraints", "spread", "test",
                     "condition", "max_attempts", "parallelism", "mode", "replicas", "external", "name", "read_only"]),
    inner, max_size=3)), max_leaves=8)
SERVICE = st.dictionaries(st.sampled_from(list(_compose.SERVICE_KEYS) + ["depends_on", "networks", "user"]), VALUES, max_size=6)


@settings(max_examples=int(os.environ.get("COMPOSE_EXAMPLES", "300")), deadline=None)
@given(services=st.dictionaries(st.sampled_from(["a", "b.c", "web"]), SERVICE, min_size=1, max_size=3),
       volumes=VALUES, image=st.booleans())
def test_any_input_converts_or_is_a_compose_error_and_loads_or_names_the_key(services, volumes, image):
    compose = {"services": {name: dict(body, image="busybox:1") if image else body for name, body in services.items()},
               "volumes": volumes}
    try:
        result = convert(compose)
    except _compose.ComposeError as exc:
        assert str(exc).split(":", maxsplit=1)[0] in ("services", "services.a", "services.b.c", "services.web") or "variable" in str(exc)
        return
    assert all(isinstance(line, str) and ": " in line for line in result.unsupported)
    try:
        _spec.load_data(result.stack, source="converted")
    except _spec.SpecError as exc:
        assert all(message.startswith("converted: ") for message in exc.errors)


DOTENV = """# the project's variables
TAG=1.2
export EXP=exported
EMPTY=
SQ='single # not a comment'
DQ="double \\"q\\" and\\nnewline"
UNQ=plain value # trailing comment
SPACED = around
"""
INTERPOLATED = {"services": {"web": {"image": "app:${TAG}", "environment": {
    "EXP": "${EXP}", "EMPTY": "${EMPTY:-fallback}", "EMPTY2": "${EMPTY-dash}", "SQ": "${SQ}", "DQ": "${DQ}", "UNQ": "${UNQ}",
    "SPACED": "${SPACED}", "UNSET": "${NOPE_UNSET-dflt}", "DOLLAR": "$$HOME", "OVER": "${TAG}"}}}}


def test_dotenv_values_under_variables():
    result = convert(INTERPOLATED, dotenv=DOTENV, variables={"TAG": "2.0"})
    assert result.stack["services"]["web"]["image"] == "app:2.0"
    assert result.stack["services"]["web"]["env"] == {
        "EXP": "exported", "EMPTY": "fallback", "EMPTY2": "", "SQ": "single # not a comment", "DQ": 'double "q" and\nnewline',
        "UNQ": "plain value", "SPACED": "around", "UNSET": "dflt", "DOLLAR": "$HOME", "OVER": "2.0"}
    with pytest.raises(_compose.ComposeError, match=r"^\.env: line 2: expected NAME=value, got 'not a line'"):
        _compose.parse_dotenv("A=1\nnot a line\n")


@pytest.mark.skipif(DOCKER_COMPOSE is None, reason="docker-compose is not installed (scripts/setup.sh installs Debian's package)")
def test_interpolation_and_dotenv_equal_docker_composes(tmp_path):
    (tmp_path / ".env").write_text(DOTENV)
    (tmp_path / "compose.yml").write_text(yaml.safe_dump(INTERPOLATED))
    env = {key: value for key, value in os.environ.items() if key not in ("TAG", "EXP", "EMPTY", "NOPE_UNSET") and not key.startswith(
        ("COMPOSE_", "DOCKER_"))}
    out = subprocess.run([DOCKER_COMPOSE, "-f", "compose.yml", "config"], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                         check=False, timeout=60)
    assert out.returncode == 0, out.stderr
    ours = convert(INTERPOLATED, dotenv=DOTENV)
    theirs = convert(yaml.safe_load(out.stdout))  # `config` prints $$ as $$: converting it gives the same single $
    assert ours.stack == theirs.stack and ours.stack["services"]["web"]["env"]["DQ"] == 'double "q" and\nnewline'

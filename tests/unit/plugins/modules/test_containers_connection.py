"""Connection options of the containers module: env fallbacks, DOCKER_CERT_PATH, secure by default,
and how a container document becomes a create call."""
import json
import os
import sys

import docker
import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _docker as dk


@pytest.fixture
def certdir(tmp_path):
    for f in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / f).write_text("x")
    return str(tmp_path)


def test_unix_socket_needs_no_tls():
    ep = dk.resolve_endpoint({"docker_host": "unix:///run/docker.sock"}, {})
    assert ep.url == "unix:///run/docker.sock" and not ep.tls


def test_tcp_without_tls_choice_and_without_certs_refuses(tmp_path):
    with pytest.raises(dk.EngineError, match="refusing .* tcp://10.0.0.1:2375 without TLS.*tls: false"):
        dk.resolve_endpoint({"docker_host": "tcp://10.0.0.1:2375"}, {})
    with pytest.raises(dk.EngineError, match="without TLS"):  # a cert dir with no ca.pem does not count
        dk.resolve_endpoint({"docker_host": "tcp://10.0.0.1:2375"}, {"DOCKER_CERT_PATH": str(tmp_path)})
    with pytest.raises(dk.EngineError, match=r"without TLS \(validate_certs: false turns verification off, not TLS\)"):
        dk.resolve_endpoint({"docker_host": "tcp://10.0.0.1:2375", "validate_certs": False}, {})  # "do not verify" is not "no TLS"


def test_the_refusal_says_what_each_choice_does():
    with pytest.raises(dk.EngineError) as caught:
        dk.resolve_endpoint({"docker_host": "tcp://10.0.0.1:2375"}, {})
    message = str(caught.value)
    assert "(neither tls nor validate_certs is set and no CA certificate is known)" in message
    # each clause is what resolve_endpoint does with that choice
    for params, (tls, verify) in (({"ca_path": "/ca.pem"}, (True, True)), ({"tls": True}, (True, True)),
                                  ({"validate_certs": True}, (True, True)), ({"tls": True, "validate_certs": False}, (True, False)),
                                  ({"tls": False}, (False, False))):
        ep = dk.resolve_endpoint(dict(params, docker_host="tcp://10.0.0.1:2375"), {})
        assert (ep.tls, ep.verify) == (tls, verify), params
    assert "give the engine's CA as ca_path (or ca.pem in DOCKER_CERT_PATH), or set tls: true or validate_certs: true, " \
        "to use TLS and verify the engine's certificate against ca_path or the system CA store" in message
    assert "tls: true with validate_certs: false encrypts without verifying the engine" in message
    assert "tls: false talks plain text, unencrypted and unauthenticated" in message


def test_tcp_with_cert_path_defaults_to_verified_tls(certdir):
    ep = dk.resolve_endpoint({"docker_host": "tcp://h:2376"}, {"DOCKER_CERT_PATH": certdir})
    assert ep.tls and ep.verify
    assert (ep.ca_path, ep.client_cert, ep.client_key) == tuple(os.path.join(certdir, f) for f in ("ca.pem", "cert.pem", "key.pem"))


def test_explicit_options_beat_cert_path(certdir):
    ep = dk.resolve_endpoint({"docker_host": "tcp://h:2376", "ca_path": "/my/ca.pem", "validate_certs": True},
                             {"DOCKER_CERT_PATH": certdir})
    assert ep.ca_path == "/my/ca.pem" and ep.client_cert.endswith("cert.pem")


@pytest.mark.parametrize("tls, verify, want", [(False, None, (False, False)), (True, None, (True, True)), (True, False, (True, False)),
                                               (True, True, (True, True)), (False, True, (True, True)),
                                               (None, True, (True, True))])
def test_tls_and_validate_certs(tls, verify, want):
    ep = dk.resolve_endpoint({"docker_host": "tcp://h:2375", "tls": tls, "validate_certs": verify}, {})
    assert (ep.tls, ep.verify) == want


def test_unreachable_engine_names_the_url():
    with pytest.raises(dk.EngineError, match=r"cannot reach the Docker engine at tcp://127.0.0.1:9"):
        dk.connect(dk.Endpoint(url="tcp://127.0.0.1:9", timeout=3))


ENV = {"DOCKER_HOST": "tcp://192.0.2.7:2376", "DOCKER_TLS": "1", "DOCKER_TLS_VERIFY": "0", "DOCKER_TLS_HOSTNAME": "node-7",
       "DOCKER_API_VERSION": "1.41", "DOCKER_TIMEOUT": "7"}


def test_every_env_fallback_reaches_the_module_params(monkeypatch, capsys, certdir):
    """Run the real module entry point with only env set; it fails to connect (nothing listens on
    192.0.2.7, TEST-NET) and the error shows the env-derived URL; the params are in invocation."""
    from ansible.module_utils import basic
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.stackfleet.cluster.plugins.modules import containers

    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("DOCKER_CERT_PATH", certdir)
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy", raising=False)
    with patch_module_args({"cluster": "p", "containers": []}), pytest.raises(SystemExit):
        containers.main()
    out = json.loads(capsys.readouterr().out)
    args = out["invocation"]["module_args"]
    assert args["docker_host"] == "tcp://192.0.2.7:2376" and args["tls"] is True and args["validate_certs"] is False
    assert args["tls_hostname"] == "node-7" and args["api_version"] == "1.41" and args["timeout"] == 7
    assert out["failed"] and "192.0.2.7:2376" in out["msg"]


def test_env_values_never_reach_module_output(monkeypatch, capsys):
    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.stackfleet.cluster.plugins.modules import containers

    monkeypatch.delenv("DOCKER_HOST", raising=False)
    docs = [{"name": "p.a-1.a", "cluster": "p", "image": "i", "env": {"TOKEN": "hunter2"}}]
    with patch_module_args({"cluster": "p", "containers": docs, "docker_host": "unix:///nonexistent.sock"}), pytest.raises(SystemExit):
        containers.main()
    raw = capsys.readouterr().out
    assert "hunter2" not in raw and "TOKEN" in raw and "unix:///nonexistent.sock" in raw


def test_create_arguments_translate_the_document():
    api = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")  # no request is made
    doc = {"name": "p.lamp-1.mysql", "cluster": "p", "deploy": "lamp", "instance": "lamp-1", "service": "mysql",
           "image": "mariadb:11", "command": ["mysqld"], "entrypoint": None, "env": {"A": "1"},
           "ports": [{"container_port": 3306, "protocol": "tcp", "host_port": 3306, "host_ip": ""},
                     {"container_port": 53, "protocol": "udp", "host_port": 5353, "host_ip": "127.0.0.1"},
                     {"container_port": 9000, "protocol": "tcp", "host_port": None, "host_ip": ""}],
           "volumes": [{"source": "data", "target": "/var/lib/mysql", "read_only": False},
                       {"source": "/etc/conf", "target": "/conf", "read_only": True}],
           "labels": {"team": "data"}, "restart": "on-failure:3", "network_mode": None,
           "resources": {"cpus": 1.5, "memory_mb": 1024},
           "healthcheck": {"test": ["CMD", "true"], "interval": 5.0, "timeout": 2.5, "retries": 10, "start_period": 0.0}}
    args = dk.create_arguments(api, doc)
    hc = args["host_config"]
    assert args["environment"] == {"A": "1"} and args["entrypoint"] is None and args["command"] == ["mysqld"]
    assert args["ports"] == [(3306, "tcp"), (53, "udp"), (9000, "tcp")]
    assert hc["PortBindings"] == {"3306/tcp": [{"HostIp": "", "HostPort": "3306"}],
                                  "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}]}
    assert hc["Binds"] == ["data:/var/lib/mysql:rw", "/etc/conf:/conf:ro"]
    assert hc["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert hc["NanoCpus"] == 1_500_000_000 and hc["Memory"] == 1024 * 1024 * 1024 and hc["NetworkMode"] == "default"
    assert args["healthcheck"] == {"test": ["CMD", "true"], "interval": 5_000_000_000, "timeout": 2_500_000_000,
                                   "retries": 10, "start_period": 0}
    assert args["labels"]["io.stackfleet.instance"] == "lamp-1" and args["labels"]["team"] == "data"


def test_host_network_publishes_no_port_bindings():
    """Docker refuses bindings with the host's network; the ports stay reserved by the planner only."""
    api = docker.APIClient(base_url="unix:///nonexistent.sock", version="1.41")
    doc = {"name": "p.lb-1.lb", "cluster": "p", "deploy": "lb", "instance": "lb-1", "service": "lb", "image": "haproxy",
           "network_mode": "host", "ports": [{"container_port": 80, "protocol": "tcp", "host_port": 80, "host_ip": ""}]}
    args = dk.create_arguments(api, doc)
    assert args["ports"] is None and "PortBindings" not in args["host_config"]
    assert args["host_config"]["NetworkMode"] == "host"


@pytest.mark.parametrize("ref, canon", [("busybox", "busybox:latest"), ("docker.io/library/busybox:1", "busybox:1"),
                                        ("localhost:5000/x", "localhost:5000/x:latest"), ("local/busybox:1", "local/busybox:1"),
                                        ("r.io/a/b@sha256:ab", "r.io/a/b@sha256:ab")])
def test_image_references_are_compared_canonically(ref, canon):
    assert dk._canonical_image_ref(ref) == canon


def test_module_imports_without_the_docker_sdk_and_says_so(monkeypatch):
    monkeypatch.setitem(sys.modules, "docker", None)
    import importlib
    mod = importlib.reload(dk)
    try:
        assert not mod.HAS_DOCKER
        with pytest.raises(mod.EngineError, match="Docker SDK for Python is required"):
            mod.connect(mod.Endpoint(url="unix:///x"))
    finally:
        monkeypatch.delitem(sys.modules, "docker")
        importlib.reload(dk)


def test_per_file_env_fallbacks_for_awx_credentials(monkeypatch, certdir):
    """AWX injects each certificate as its own file; the STACKFLEET_DOCKER_* variables carry them."""
    from ansible.module_utils.basic import AnsibleModule
    from ansible.module_utils.testing import patch_module_args

    files = {"STACKFLEET_DOCKER_CA_PATH": "ca.pem", "STACKFLEET_DOCKER_CLIENT_CERT": "cert.pem", "STACKFLEET_DOCKER_CLIENT_KEY": "key.pem"}
    for var, name in files.items():
        monkeypatch.setenv(var, "%s/%s" % (certdir, name))
    with patch_module_args({}):
        params = AnsibleModule(argument_spec=dk.CONNECTION_ARGSPEC).params
    assert (params["ca_path"], params["client_cert"], params["client_key"]) == tuple("%s/%s" % (certdir, n) for n in files.values())
    ep = dk.resolve_endpoint(dict(params, docker_host="tcp://192.0.2.7:2376"), {})
    assert ep.tls and ep.verify and ep.client_key.endswith("key.pem")

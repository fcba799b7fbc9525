"""The lab itself: TLS engines, images, real HTTP through haproxy, etcd over TLS,
idempotent `up`, and a `down` that leaves nothing behind."""
import base64
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import docker
import docker.tls
import lab_images
import lab_net
import lab_procs
import pytest
import requests
import yaml
from conftest import lab_spec
from lab import LabError

pytestmark = pytest.mark.lab

IMAGES = {"local/busybox:1", "local/busybox-web:1", "local/haproxy-lb:1", "local/etcd:3.4"}


def client(lab, index):
    return lab.docker_client(index)


def http_get(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def wait_http(url, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return http_get(url)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def run_web(lab, index, instance, port):
    return client(lab, index).containers.run(
        "local/busybox-web:1", name=instance, detach=True, network_mode="host", environment={"INSTANCE": instance, "PORT": str(port)}
    )


def etcd_call(lab, endpoint, path, payload, context=None):
    request = urllib.request.Request(endpoint + path, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5, context=context or lab.etcd_ssl_context()) as resp:
        return json.loads(resp.read())


def test_docker_over_tls_on_every_host(lab):
    for host in lab.hosts:
        engine = client(lab, host.index)
        assert engine.ping()
        assert engine.version()["ApiVersion"] == "1.41"


def test_docker_refuses_clients_without_certificate(lab):
    host = lab.host(1)
    no_cert = docker.DockerClient(base_url=host.docker_url, tls=docker.tls.TLSConfig(ca_cert=lab.ca_cert, verify=True), version="1.41")
    no_cert.api.trust_env = False
    with pytest.raises(requests.exceptions.ConnectionError, match="bad certificate"):
        no_cert.ping()
    with pytest.raises(docker.errors.APIError, match="HTTPS"):
        docker.DockerClient(base_url=host.docker_url.replace("tcp://", "http://"), version="1.41").ping()


def test_images_on_every_host(lab):
    for host in lab.hosts:
        tags = {tag for image in client(lab, host.index).images.list() for tag in image.tags}
        assert IMAGES <= tags, host.name


def test_web_on_h1_answers_the_controller(lab):
    web = run_web(lab, 1, "web-solo", 8081)
    try:
        page = wait_http("http://%s:8081/" % lab.host(1).address)
        assert "instance=web-solo" in page and "address=%s" % lab.host(1).address in page
    finally:
        web.remove(force=True)


def test_haproxy_on_h2_round_robins_to_web_on_h1_and_h3(lab):
    webs = [run_web(lab, 1, "web-a", 8082), run_web(lab, 3, "web-b", 8082)]
    backends = "%s,%s" % (lab.host(1).address, lab.host(3).address)
    lb = client(lab, 2).containers.run(
        "local/haproxy-lb:1", name="lb", detach=True, network_mode="host",
        environment={"BACKENDS": backends, "BACKEND_PORT": "8082", "LISTEN_PORT": "8083"},
    )
    try:
        url = "http://%s:8083/" % lab.host(2).address
        for host in (lab.host(1), lab.host(3)):
            wait_http("http://%s:8082/" % host.address)
        wait_http(url)
        answers = [http_get(url).split()[0] for _request in range(6)]
        assert set(answers) == {"instance=web-a", "instance=web-b"}
        assert all(a != b for a, b in zip(answers, answers[1:], strict=False)), answers  # round-robin alternates
    finally:
        for container in webs + [lb]:
            container.remove(force=True)


def test_stop_and_start_docker(lab):
    host = lab.host(3)
    lab.stop_docker(3)
    try:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host.address, 2376), timeout=2).close()
    finally:
        lab.start_docker(3)
    assert client(lab, 3).ping()


def test_inventory_describes_every_host(lab):
    with open(lab.inventory_path) as handle:
        inventory = yaml.safe_load(handle)["all"]
    hosts = inventory["children"]["stackfleet_hosts"]["hosts"]
    assert list(hosts) == [host.name for host in lab.hosts]
    assert set(inventory["children"]["etcd"]["hosts"]) == set(hosts)
    assert hosts[lab.host(2).name]["stackfleet_docker_host"] == "tcp://%s:2376" % lab.host(2).address
    assert lab.host(2).address.endswith(".12")
    assert [hosts[name]["stackfleet_labels"]["rack"] for name in hosts] == ["r1", "r2", "r1"]
    assert hosts[lab.host(1).name]["stackfleet_capacity"] == {"cpus": 2, "memory_mb": 4096}
    assert inventory["vars"]["stackfleet_docker_tls"] is True
    assert inventory["vars"]["stackfleet_lab_etcd_running"] is False


def test_playbook_reaches_every_engine_with_inventory_vars(lab, run_playbook, tmp_path):
    playbook = tmp_path / "engines.yml"
    playbook.write_text(
        """
- hosts: stackfleet_hosts
  gather_facts: false
  tasks:
    - community.docker.docker_host_info:
        docker_host: "{{ stackfleet_docker_host }}"
        tls: "{{ stackfleet_docker_tls }}"
        validate_certs: "{{ stackfleet_docker_tls }}"
        ca_path: "{{ stackfleet_docker_ca_path }}"
        client_cert: "{{ stackfleet_docker_client_cert }}"
        client_key: "{{ stackfleet_docker_client_key }}"
      register: engine
    - ansible.builtin.assert:
        that: engine.host_info.ServerVersion is version('20.10', '>=')
"""
    )
    run = run_playbook(str(playbook), lab)
    assert run.rc == 0, run.stdout + run.stderr
    assert run.recap == {
        name: {"ok": 2, "changed": 0, "unreachable": 0, "failed": 0, "skipped": 0, "rescued": 0, "ignored": 0}
        for name in (host.name for host in lab.hosts)
    }


def test_etcd_cluster_of_three_is_healthy_over_tls(etcd_lab):
    members = etcd_call(etcd_lab, etcd_lab.etcd_endpoints[0], "/v3/cluster/member/list", {})["members"]
    assert sorted(m["name"] for m in members) == [h.name for h in etcd_lab.hosts]
    assert sorted(url for m in members for url in m["clientURLs"]) == sorted(etcd_lab.etcd_endpoints)
    key, value = base64.b64encode(b"lab/probe").decode(), base64.b64encode(b"42").decode()
    etcd_call(etcd_lab, etcd_lab.etcd_endpoints[1], "/v3/kv/put", {"key": key, "value": value})
    read = etcd_call(etcd_lab, etcd_lab.etcd_endpoints[2], "/v3/kv/range", {"key": key})
    assert read["kvs"][0]["value"] == value


def test_etcd_refuses_clients_without_certificate(etcd_lab):
    no_cert = ssl.create_default_context(cafile=etcd_lab.ca_cert)
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionResetError)):
        etcd_call(etcd_lab, etcd_lab.etcd_endpoints[0], "/v3/cluster/member/list", {}, context=no_cert)


def test_second_up_changes_nothing(etcd_lab):
    def snapshot():
        with open(etcd_lab.inventory_path) as handle:
            inventory = handle.read()
        engines = [host.engine for host in etcd_lab.hosts]
        return ([host.dockerd_pid() for host in etcd_lab.hosts], [e.inspect("lab-etcd")["Id"] for e in engines],
                [e.images() for e in engines], inventory)

    before = snapshot()
    etcd_lab.up()
    assert snapshot() == before
    assert etcd_lab.up_seconds < 2.0


def test_up_completes_a_half_built_lab(lab_factory):
    lab = lab_factory(**lab_spec("tp", hosts=2))
    kept_pid = lab.host(1).dockerd_pid()
    lab.stop_docker(2)
    lab_net.delete_forward_rule(lab.bridge, lab.rule_comment)
    lab_net.delete_bridge(lab.bridge)
    lab.up()
    assert lab.host(1).dockerd_pid() == kept_pid
    assert all(client(lab, host.index).ping() for host in lab.hosts)
    assert lab_net.forward_rule_present(lab.bridge, lab.rule_comment)


def test_up_refuses_other_parameters_for_a_running_lab(lab):
    from lab import Lab

    with pytest.raises(LabError, match="run `down` first"):
        Lab(lab.name, lab.subnet, hosts=2).up()


def assert_nothing_left(lab):
    assert lab_net.lab_netns(lab.name) == []
    assert not lab_net.link_exists(lab.bridge)
    assert lab.rule_comment not in subprocess.run(["iptables", "-S", "FORWARD"], capture_output=True, text=True, check=False).stdout
    assert lab_procs.leftovers([], lab.state_dir) == []
    with open("/proc/self/mountinfo") as handle:
        assert lab.state_dir not in handle.read()
    assert not os.path.exists(lab.state_dir)
    assert not any(os.path.exists(os.path.join("/sys/fs/cgroup", h, host.name)) for h in os.listdir("/sys/fs/cgroup") for host in lab.hosts)


def test_down_leaves_nothing(lab_factory):
    lab = lab_factory(**lab_spec("td", hosts=2, etcd=True))
    run_web(lab, 1, "web-down", 8084)  # a host-network container: an nsfs mount under the exec root
    pids = [host.dockerd_pid() for host in lab.hosts]
    lab.down()
    assert_nothing_left(lab)
    assert not any(lab_procs.alive(pid) for pid in pids)


def test_down_after_a_failed_up_leaves_nothing(monkeypatch):
    from conftest import require_lab
    from lab import Lab

    require_lab()
    lab = Lab(**lab_spec("tf", hosts=2))

    def no_images(engine, archives):
        raise RuntimeError("injected failure after the daemons started")

    monkeypatch.setattr(lab_images, "ensure_images", no_images)
    try:
        with pytest.raises(RuntimeError, match="injected"):
            lab.up()
        assert lab.host(2).dockerd_pid()
    finally:
        lab.down()
    assert_nothing_left(lab)

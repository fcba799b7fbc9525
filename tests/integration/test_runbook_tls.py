"""docs/runbooks.md "Rotate Docker and etcd TLS certificates" on a real 3-host lab: site.yml with
examples/lamp.yml, etcd on all three hosts run by the etcd role, TLS everywhere, one lab CA.

One chain, in file order:
- etcd members: a new server certificate for each member at a new path (the host variables
  changed): the next site.yml recreates the members one at a time, every member then presents its
  new certificate, the cluster is healthy with its data, and the next run changes nothing;
- a Docker engine: its server certificate replaced in place and the engine restarted (what the
  docker_host role's one-host-at-a-time restart handler does on a managed host): it presents the new
  certificate and site.yml changes nothing;
- the controller's client certificate for Docker and etcd: a new pair, the variables pointed at it and
  the old files moved away: site.yml runs on the new one and changes nothing.

    STACKFLEET_TEST_LAB_PREFIX=.. STACKFLEET_TEST_NET=.. .venv/bin/pytest tests/integration/test_runbook_tls.py -v
"""
import base64
import os
import shutil
import socket
import ssl
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, ansible_playbook, etcd_post, lab_spec, running_lab

sys.path.insert(0, os.path.join(REPO, "tests", "lab"))
import lab_tls  # noqa: E402

LAB = lab_spec("tr", hosts=3)


def serial_of_file(path):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", path], capture_output=True, text=True, check=True).stdout
    return out.strip().split("=", 1)[1].upper()


def served_serial(address, port, ca, cert, key):
    """The serial of the certificate a TLS server presents (a fresh handshake)."""
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    context.check_hostname = False
    with socket.create_connection((address, port), timeout=5) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der, capture_output=True, check=True).stdout
    return out.decode().strip().split("=", 1)[1].upper()


class Fleet:
    def __init__(self, lab, directory):
        self.lab, self.directory = lab, directory
        with open(lab.inventory_path) as handle:
            self.doc = yaml.safe_load(handle)
        shutil.copytree(os.path.join(REPO, "inventories", "lab", "group_vars"), os.path.join(directory, "group_vars"))
        self.client = (lab.client_cert, lab.client_key)

    def host_vars(self, index):
        return self.doc["all"]["children"]["stackfleet_hosts"]["hosts"][self.lab.host(index).name]

    def site(self):
        with open(os.path.join(self.directory, "hosts.yml"), "w") as handle:
            yaml.safe_dump(self.doc, handle)
        return ansible_playbook("playbooks/site.yml", self.directory)

    def etcd(self, path, body):
        context = ssl.create_default_context(cafile=self.lab.ca_cert)
        context.load_cert_chain(*self.client)
        return etcd_post(self.lab.etcd_endpoints, path, body, context)

    def etcd_containers(self):
        found = {}
        for index in range(1, 4):
            for c in self.lab.docker_client(index).containers.list(all=True, filters={"label": "io.stackfleet.cluster=stackfleet-etcd"}):
                found[c.name] = (c.id, c.status)
        return found


def unchanged(run):
    return {h: c["changed"] for h, c in run.recap.items()} == {h: 0 for h in run.recap}


def sans(host):
    return ["IP:" + host.address, "IP:127.0.0.1", "DNS:localhost", "DNS:" + host.name]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with running_lab(**LAB) as lab:
        fleet = Fleet(lab, str(tmp_path_factory.mktemp("inventory")))
        first = fleet.site()
        assert first.rc == 0, first.stdout[-4000:] + first.stderr[-2000:]
        yield fleet


def test_etcd_member_certificates_at_new_paths_roll_one_member_at_a_time(fleet):
    lab = fleet.lab
    fleet.etcd("/v3/kv/put", {"key": base64.b64encode(b"/rotation/kept").decode(), "value": base64.b64encode(b"yes").decode()})
    before = fleet.etcd_containers()
    new = {}
    for index in range(1, 4):                                   # runbook: step 1, new files next to the old
        host = lab.host(index)
        cert, key = lab_tls.ensure_cert(lab.tls_dir, host.name + "-rotated", host.name, sans(host))
        fleet.host_vars(index).update(stackfleet_etcd_server_cert=cert, stackfleet_etcd_server_key=key)
        new[index] = serial_of_file(cert)
    run = fleet.site()                                          # step 2
    assert run.rc == 0, run.stdout[-5000:]
    after = fleet.etcd_containers()
    assert sorted(after) == sorted(before) and all(after[n][0] != before[n][0] and after[n][1] == "running" for n in after), after
    for index in range(1, 4):
        host = lab.host(index)
        assert served_serial(host.address, 2379, lab.ca_cert, *fleet.client) == new[index]
    members = fleet.etcd("/v3/cluster/member/list", {})["members"]
    assert len(members) == 3 and not any(m.get("isLearner") for m in members)
    kvs = fleet.etcd("/v3/kv/range", {"key": base64.b64encode(b"/rotation/kept").decode()}).get("kvs")
    assert kvs and base64.b64decode(kvs[0]["value"]) == b"yes"
    again = fleet.site()                                        # step 3
    assert again.rc == 0 and unchanged(again), again.stdout[-3000:]


def test_a_docker_engine_certificate_replaced_in_place_after_an_engine_restart(fleet):
    lab = fleet.lab
    host = lab.host(1)
    staged_cert, staged_key = lab_tls.ensure_cert(lab.tls_dir, host.name + "-engine-next", host.name, sans(host))
    os.replace(staged_key, host.server_key)                     # step 1: key and cert renamed into place
    os.replace(staged_cert, host.server_cert)
    lab.stop_docker(1)                                          # step 2: the restart docker_host's handler does, one host at a time
    lab.start_docker(1)
    assert served_serial(host.address, 2376, lab.ca_cert, *fleet.client) == serial_of_file(host.server_cert)
    run = fleet.site()
    assert run.rc == 0 and unchanged(run), run.stdout[-4000:]


def test_the_controller_client_certificate_rotated(fleet):
    lab = fleet.lab
    cert, key = lab_tls.ensure_cert(lab.tls_dir, "client-rotated", "stackfleet-controller", server=False)
    variables = fleet.doc["all"]["vars"]
    variables.update(stackfleet_docker_client_cert=cert, stackfleet_docker_client_key=key,
                     stackfleet_etcd_client_cert=cert, stackfleet_etcd_client_key=key)
    old = (lab.client_cert, lab.client_key)
    for path in old:                                            # the old pair cannot be what the run uses
        os.rename(path, path + ".retired")
    try:
        run = fleet.site()
    finally:
        for path in old:
            os.rename(path + ".retired", path)
    assert run.rc == 0 and unchanged(run), run.stdout[-4000:]

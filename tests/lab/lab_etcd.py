"""The optional etcd cluster of a lab: one member per host, run as a container of
that host's dockerd with `--network host`, TLS for clients and peers."""
import json
import os
import ssl
import time
import urllib.request

IMAGE = "local/etcd:3.4"
CONTAINER = "lab-etcd"
PKI = "/etc/etcd/pki"


def container_config(host, members, token, cluster_state, lab_name):
    """The engine's create payload for `host`'s member; `members` is [(name, address)]."""
    peer = "https://%s:2380" % host.address
    client = "https://%s:2379" % host.address
    args = [
        "--name", host.name,
        "--data-dir", "/var/lib/etcd",
        "--listen-client-urls", client + ",https://127.0.0.1:2379",
        "--advertise-client-urls", client,
        "--listen-peer-urls", peer,
        "--initial-advertise-peer-urls", peer,
        "--initial-cluster", ",".join("%s=https://%s:2380" % member for member in members),
        "--initial-cluster-token", token,
        "--initial-cluster-state", cluster_state,
        "--trusted-ca-file", PKI + "/ca.pem", "--client-cert-auth",
        "--cert-file", PKI + "/server.pem", "--key-file", PKI + "/server-key.pem",
        "--peer-trusted-ca-file", PKI + "/ca.pem", "--peer-client-cert-auth",
        "--peer-cert-file", PKI + "/server.pem", "--peer-key-file", PKI + "/server-key.pem",
    ]
    binds = [
        host.etcd_data_dir + ":/var/lib/etcd",
        host.ca_cert + ":" + PKI + "/ca.pem:ro",
        host.server_cert + ":" + PKI + "/server.pem:ro",
        host.server_key + ":" + PKI + "/server-key.pem:ro",
    ]
    return {
        "Image": IMAGE,
        "Cmd": args,
        "Labels": {"io.stackfleet.lab": lab_name},
        "HostConfig": {"NetworkMode": "host", "Binds": binds, "RestartPolicy": {"Name": "unless-stopped"}},
    }


def ssl_context(ca_cert, client_cert, client_key):
    context = ssl.create_default_context(cafile=ca_cert)
    context.load_cert_chain(client_cert, client_key)
    return context


def healthy(endpoint, context, timeout=2.0):
    try:
        with urllib.request.urlopen(endpoint + "/health", timeout=timeout, context=context) as resp:
            return json.loads(resp.read()).get("health") == "true"
    except (OSError, ValueError):
        return False


def wait_healthy(endpoints, context, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(healthy(endpoint, context) for endpoint in endpoints):
            return
        time.sleep(0.2)
    sick = [endpoint for endpoint in endpoints if not healthy(endpoint, context)]
    raise TimeoutError("etcd members not healthy after %ss: %s" % (timeout, ", ".join(sick)))


def ensure_data_dir(path):
    os.makedirs(path, mode=0o700, exist_ok=True)

"""The Ansible inventory of a lab, written as YAML without a YAML library.

Strings are emitted JSON-quoted (always valid YAML), so no value is ever read back
as a boolean, a number or null by accident.
"""
import json


def _emit(value, indent):
    pad = "  " * indent
    if isinstance(value, dict):
        if not value:
            return " {}\n"
        out = "\n"
        for key, item in value.items():
            out += "%s%s:%s" % (pad, key, _emit(item, indent + 1))
        return out
    if isinstance(value, list):
        if not value:
            return " []\n"
        return "\n" + "".join("%s-%s" % (pad, _emit(item, indent + 1)) for item in value)
    return " %s\n" % json.dumps(value)


def render(lab):
    hosts = {}
    for host in lab.hosts:
        hosts[host.name] = {
            "ansible_host": host.address,
            "stackfleet_docker_host": host.docker_url,
            "stackfleet_etcd_name": host.name,
            "stackfleet_etcd_endpoint": host.etcd_endpoint,
            "stackfleet_etcd_peer_url": host.etcd_peer_url,
            "stackfleet_etcd_server_cert": host.server_cert,
            "stackfleet_etcd_server_key": host.server_key,
            "stackfleet_etcd_data_dir": host.etcd_data_dir,
            "stackfleet_labels": host.labels,
            "stackfleet_capacity": {"cpus": 2, "memory_mb": 4096},
        }
    lab_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": lab.python,
        "stackfleet_lab_name": lab.name,
        "stackfleet_lab_state_dir": lab.state_dir,
        "stackfleet_lab_etcd_running": lab.etcd,
        "stackfleet_docker_tls": not lab.plain,
        "stackfleet_docker_ca_path": lab.ca_cert,
        "stackfleet_docker_client_cert": lab.client_cert,
        "stackfleet_docker_client_key": lab.client_key,
        "stackfleet_etcd_image": "local/etcd:3.4",
        "stackfleet_etcd_endpoints": [host.etcd_endpoint for host in lab.hosts],
        "stackfleet_etcd_ca_path": lab.ca_cert,
        "stackfleet_etcd_client_cert": lab.client_cert,
        "stackfleet_etcd_client_key": lab.client_key,
    }
    if lab.plain:
        for key in ("stackfleet_docker_ca_path", "stackfleet_docker_client_cert", "stackfleet_docker_client_key"):
            del lab_vars[key]
    names = {name: {} for name in hosts}
    doc = {"all": {"vars": lab_vars, "children": {"stackfleet_hosts": {"hosts": hosts}, "etcd": {"hosts": names}}}}
    return "# Written by tests/lab/lab.py for lab %r; rewritten by every `up`.\n---%s" % (lab.name, _emit(doc, 0))

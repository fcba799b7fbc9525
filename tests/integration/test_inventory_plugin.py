"""The stacks inventory plugin through REAL `ansible-inventory` and `ansible-playbook` runs.

Without a lab: inline hosts, hosts from an earlier source of the same inventory directory, the
same placement and documents as stack_plan, untrusted data, a bad stack file. With the lab: the
previous placement from running containers' labels (Docker over TLS, with the machine's CA-bundle
variables left set), from the etcd state store and machine registrations, and the cache.

    .venv/bin/pytest tests/integration/test_inventory_plugin.py -q
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

import pytest
import yaml
from ansible_collections.stackfleet.cluster.plugins.module_utils import _etcd, _machines, _state

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
FORMAT_DOC = os.path.join(REPO, "examples", "lamp-format-doc.yml")
HOSTS = [{"name": "node-%d" % i, "labels": {"rack": "r%d" % (i % 3 + 1), "disk": "ssd" if i < 7 else "hdd"},
          "capacity": {"cpus": 4, "memory_mb": 8192}} for i in range(1, 9)]
WEB_STACK = """
cluster: %(cluster)s
services:
  web:
    image: local/busybox:1
    command: ["sleep", "3600"]
    network_mode: host
    ports: ["8080:8080"]
deploy:
  web: {count: 2}
"""


def ansible_env(extra=None, fail_unparsed=True):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    for name in [n for n in env if n.startswith(("ETCD_", "ETCDCTL_"))]:
        del env[name]
    # The repository's ansible.cfg fails on unparsed sources; False shows Ansible's own default.
    env["ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED"] = "1" if fail_unparsed else "0"
    env.update(extra or {})
    return env


def inventory(*sources, env=None, args=(), fail_unparsed=True):
    """(rc, parsed --list output with unsafe markers kept, stderr)."""
    argv = [os.path.join(VENV_BIN, "ansible-inventory")]
    for source in sources:
        argv += ["-i", str(source)]
    proc = subprocess.run(argv + ["--list"] + list(args), cwd=REPO, env=ansible_env(env, fail_unparsed),
                          capture_output=True, text=True, timeout=180, check=False)
    return proc.returncode, (json.loads(proc.stdout) if proc.returncode == 0 else None), proc.stderr


def plain(value):
    """--list output without the {"__ansible_unsafe": ...} markers ansible-core 2.19 writes for untrusted strings."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def hostvars(listing):
    return plain(listing["_meta"]["hostvars"])


def placement_of(listing):
    """stackfleet_placement and stackfleet_placement_source: host vars of localhost, the one place the cluster-wide
    variables are (a placed host carries only its own, so --list does not grow with hosts x instances)."""
    local = hostvars(listing)["localhost"]
    for name, variables in hostvars(listing).items():
        assert name == "localhost" or "stackfleet_placement" not in variables, name
    return local["stackfleet_placement"], local["stackfleet_placement_source"]


def config(directory, name="test.stackfleet.yml", **options):
    path = os.path.join(str(directory), name)
    with open(path, "w") as handle:
        yaml.safe_dump(dict({"plugin": "stackfleet.cluster.stacks"}, **options), handle)
    return path


def inventory_dir(tmp_path):
    """An inventory directory of its own: every file in it is tried as an inventory source, so the
    stack file lives next to it, not in it."""
    directory = tmp_path / "inventory"
    directory.mkdir()
    return directory


def write(directory, name, text):
    path = os.path.join(str(directory), name)
    with open(path, "w") as handle:
        handle.write(text)
    return path


def run_stack_plan(args):
    env = ansible_env({"ANSIBLE_STDOUT_CALLBACK": "json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"}, fail_unparsed=False)
    argv = [os.path.join(VENV_BIN, "ansible"), "localhost", "-i", "localhost,", "-c", "local", "-e",
            "ansible_python_interpreter=" + sys.executable, "-m", "stackfleet.cluster.stack_plan", "-a", json.dumps(args)]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


# ---------------------------------------------------------------- without a lab

def test_inline_hosts_get_groups_and_variables(tmp_path):
    write(tmp_path, "stacks.yml", WEB_STACK % {"cluster": "inl"})
    path = config(tmp_path, stack_file="stacks.yml", hosts=[
        {"name": "a", "address": "10.9.0.1", "labels": {"rack": "r1"}, "vars": {"custom": "x"}},
        {"name": "b", "capacity": {"cpus": 2, "memory_mb": 2048}}])
    rc, listing, err = inventory(path)
    assert rc == 0, err
    hv = hostvars(listing)
    assert hv["a"]["ansible_host"] == "10.9.0.1" and hv["a"]["stackfleet_labels"] == {"rack": "r1"} and hv["a"]["custom"] == "x"
    assert hv["b"]["stackfleet_capacity"] == {"cpus": 2, "memory_mb": 2048}
    assert placement_of(listing) == ({"web-1": "a", "web-2": "b"}, "none")
    assert hv["a"]["stackfleet_instances"] == ["web-1"] and hv["a"]["stackfleet_cluster"] == "inl"
    assert [d["name"] for d in hv["b"]["stackfleet_containers"]] == ["inl.web-2.web"]
    assert sorted(listing["stackfleet_web"]["hosts"]) == ["a", "b"] == sorted(listing["stackfleet_service_web"]["hosts"])
    assert sorted(listing["stackfleet_hosts"]["hosts"]) == ["a", "b"]


def test_hosts_from_an_earlier_yaml_source_of_the_same_directory(tmp_path):
    write(tmp_path, "stacks.yml", WEB_STACK.replace("web: {count: 2}", "web: {count: 2, constraint: \"labels.disk == 'ssd'\"}")
          % {"cluster": "dir"})
    directory = inventory_dir(tmp_path)
    write(directory, "hosts.yml", """
all:
  children:
    stackfleet_hosts:
      children:
        flatcar:
          hosts:
            f1: {ansible_host: 10.9.0.11, stackfleet_labels: {disk: hdd}}
            f2: {ansible_host: 10.9.0.12, stackfleet_labels: {disk: ssd}}
        metal:
          hosts:
            m1: {ansible_host: 10.9.0.21}
          vars:
            stackfleet_labels: {disk: ssd}
    other:
      hosts:
        x1: {stackfleet_labels: {disk: ssd}}
""")
    config(directory, name="prod.stackfleet.yml", stack_file="../stacks.yml",
           keyed_groups=[{"key": "stackfleet_instances", "prefix": "runs"}],
           compose={"container_count": "stackfleet_containers | length"}, groups={"idle": "stackfleet_containers | length == 0"})
    rc, listing, err = inventory(directory)
    assert rc == 0, err
    placement, source = placement_of(listing)
    assert placement == {"web-1": "f2", "web-2": "m1"} and source == "none"  # group vars count; x1 is not in host_groups
    hv = hostvars(listing)
    assert hv["f1"]["container_count"] == 0 and hv["f2"]["container_count"] == 1
    assert listing["idle"]["hosts"] == ["f1"]
    assert listing["runs_web_1"]["hosts"] == ["f2"]
    assert "stackfleet_cluster" not in hv["x1"]


def test_same_placement_and_containers_as_stack_plan(tmp_path):
    """The format doc's LAMP example on 8 hosts (every rule at work); with a previous placement see the etcd test."""
    module = run_stack_plan({"stack_file": FORMAT_DOC, "hosts": HOSTS})
    assert not module.get("failed"), module
    rc, listing, err = inventory(config(tmp_path, stack_file=FORMAT_DOC, hosts=HOSTS, host_groups=[]))
    assert rc == 0, err
    assert placement_of(listing) == (module["placement"], "none")
    hv = hostvars(listing)
    for host in HOSTS:
        assert hv[host["name"]]["stackfleet_containers"] == module["containers"][host["name"]]


def test_jinja_in_outside_data_is_never_rendered(tmp_path):
    marker = "/tmp/stackfleet-inventory-pwned-%s" % uuid.uuid4().hex
    write(tmp_path, "stacks.yml", """
cluster: unsafe
services:
  web:
    image: local/busybox:1
    env: {EVIL: "{{ lookup('pipe', 'touch %s') }}"}
    labels: {answer: "{{ 7*6 }}"}
deploy:
  web: {count: 1}
""" % marker)
    path = config(tmp_path, stack_file="stacks.yml", hosts=[{"name": "h1", "labels": {"rack": "{{ 7*6 }}"}}])
    rc, listing, err = inventory(path)
    assert rc == 0, err
    raw = listing["_meta"]["hostvars"]["h1"]
    doc = raw["stackfleet_containers"][0]
    assert doc["env"]["EVIL"] == {"__ansible_unsafe": "{{ lookup('pipe', 'touch %s') }}" % marker}
    assert doc["labels"]["answer"] == {"__ansible_unsafe": "{{ 7*6 }}"}
    assert raw["stackfleet_labels"]["rack"] == {"__ansible_unsafe": "{{ 7*6 }}"}

    out = tmp_path / "copied.json"
    playbook = write(tmp_path, "show.yml", """
- hosts: h1
  gather_facts: false
  connection: local
  tasks:
    - ansible.builtin.debug: {var: stackfleet_containers}
    - ansible.builtin.debug: {var: stackfleet_labels}
    - ansible.builtin.copy:
        content: "{{ {'containers': stackfleet_containers, 'labels': stackfleet_labels} | to_json }}"
        dest: %s
""" % out)
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", path, playbook, "-e",
                           "ansible_python_interpreter=" + sys.executable], cwd=REPO, env=ansible_env(),
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "touch %s" % marker in proc.stdout and "{{ 7*6 }}" in proc.stdout and not re.search(r"\b42\b", proc.stdout)
    copied = json.loads(out.read_text())
    assert copied["containers"][0]["env"]["EVIL"] == "{{ lookup('pipe', 'touch %s') }}" % marker
    assert copied["containers"][0]["labels"]["answer"] == copied["labels"]["rack"] == "{{ 7*6 }}"
    assert not os.path.exists(marker)


def test_a_bad_stack_file_fails_with_the_stack_plan_message(tmp_path):
    stack = write(tmp_path, "stacks.yml", "cluster: bad\nservices:\n  web: {image: x, ports: [\"99999:80\"]}\ndeploy:\n  web: {count: -1}\n")
    path = config(tmp_path, stack_file="stacks.yml", hosts=[{"name": "h1"}])
    module = run_stack_plan({"stack_file": stack, "hosts": [{"name": "h1"}]})
    assert module["failed"] and len(module["errors"]) >= 2
    rc, _listing, err = inventory(path)
    assert rc != 0
    flat = " ".join(err.split())
    for line in module["msg"].splitlines():
        assert " ".join(line.split()) in flat
    assert "Completely failed to parse inventory source" in err
    # Ansible's default only warns and goes on without the source: why ansible.cfg sets any_unparsed_is_failed.
    rc, listing, err = inventory(path, fail_unparsed=False)
    assert rc == 0 and "h1" not in listing["_meta"]["hostvars"]
    assert module["errors"][0] in " ".join(err.split()) or module["errors"][0].split(": ", 1)[1] in err


# ---------------------------------------------------------------- with the lab

def lab_hosts_file(lab, directory, indices):
    """An inventory with the lab's variables and only the hosts `indices` in stackfleet_hosts."""
    with open(lab.inventory_path) as handle:
        source = yaml.safe_load(handle)
    every = source["all"]["children"]["stackfleet_hosts"]["hosts"]
    names = [lab.host(i).name for i in indices]
    doc = {"all": {"vars": source["all"]["vars"], "children": {"stackfleet_hosts": {"hosts": {n: every[n] for n in names}}}}}
    path = os.path.join(str(directory), "hosts.yml")
    with open(path, "w") as handle:
        yaml.safe_dump(doc, handle)
    return path


def start_web(lab, index, cluster, instance):
    client = lab.docker_client(index)
    try:
        labels = {"io.stackfleet.cluster": cluster, "io.stackfleet.deploy": "web",
                  "io.stackfleet.instance": instance, "io.stackfleet.service": "web"}
        client.containers.run("local/busybox:1", ["sleep", "3600"], name="%s.%s.web" % (cluster, instance), labels=labels,
                              network_mode="host", detach=True, stop_signal="SIGKILL")
    finally:
        client.close()


def remove_cluster(lab, cluster):
    for host in lab.hosts:
        client = lab.docker_client(host.index)
        try:
            for container in client.containers.list(all=True, filters={"label": "io.stackfleet.cluster=" + cluster}):
                container.remove(force=True)
        finally:
            client.close()


@pytest.fixture
def cluster_name(lab):
    name = "inv%s" % uuid.uuid4().hex[:6]
    yield name
    remove_cluster(lab, name)


def test_running_containers_keep_their_hosts_when_a_host_is_added(lab, tmp_path, cluster_name):
    write(tmp_path, "stacks.yml", WEB_STACK % {"cluster": cluster_name})
    start_web(lab, 3, cluster_name, "web-1")
    start_web(lab, 2, cluster_name, "web-2")
    h1, h2, h3 = (lab.host(i).name for i in (1, 2, 3))
    directory = inventory_dir(tmp_path)
    config(directory, name="z.stackfleet.yml", stack_file="../stacks.yml")

    lab_hosts_file(lab, directory, [2, 3])
    rc, listing, err = inventory(directory)  # REQUESTS_CA_BUNDLE stays set: the Docker edge must ignore it
    assert rc == 0, err
    assert placement_of(listing) == ({"web-1": h3, "web-2": h2}, "docker")

    lab_hosts_file(lab, directory, [1, 2, 3])
    rc, listing, err = inventory(directory)
    assert rc == 0, err
    assert placement_of(listing) == ({"web-1": h3, "web-2": h2}, "docker")
    assert listing["stackfleet_web"]["hosts"] == sorted([h2, h3])
    fresh = run_stack_plan({"stack": yaml.safe_load(WEB_STACK % {"cluster": cluster_name}),
                            "hosts": [{"name": n} for n in (h1, h2, h3)]})
    assert fresh["placement"] != {"web-1": h3, "web-2": h2}  # without the labels it would have moved


def test_unreachable_engine_is_skipped_with_a_warning(lab, tmp_path, cluster_name):
    write(tmp_path, "stacks.yml", WEB_STACK % {"cluster": cluster_name})
    start_web(lab, 2, cluster_name, "web-1")
    h2 = lab.host(2).name
    hosts = [{"name": h2, "vars": {"stackfleet_docker_host": lab.host(2).docker_url, "stackfleet_docker_ca_path": lab.ca_cert,
                                   "stackfleet_docker_client_cert": lab.client_cert, "stackfleet_docker_client_key": lab.client_key}},
             {"name": "gone", "vars": {"stackfleet_docker_host": "tcp://127.0.0.1:9", "stackfleet_docker_tls": False}}]
    path = config(tmp_path, stack_file="stacks.yml", host_groups=[], hosts=hosts, docker_timeout=3)
    rc, listing, err = inventory(path)
    assert rc == 0, err
    assert "skipping host gone for the previous placement" in " ".join(err.split())
    assert placement_of(listing) == ({"web-1": h2, "web-2": "gone"}, "docker")


def test_cache_is_used_until_flushed(lab, tmp_path, cluster_name):
    write(tmp_path, "stacks.yml", WEB_STACK % {"cluster": cluster_name})
    start_web(lab, 3, cluster_name, "web-1")
    h1, h3 = lab.host(1).name, lab.host(3).name
    directory = inventory_dir(tmp_path)
    lab_hosts_file(lab, directory, [1, 2, 3])
    config(directory, name="z.stackfleet.yml", stack_file="../stacks.yml", cache=True, cache_plugin="ansible.builtin.jsonfile",
           cache_connection=str(tmp_path / "cache"), cache_timeout=600)
    rc, listing, err = inventory(directory)
    assert rc == 0, err
    assert placement_of(listing)[0]["web-1"] == h3

    remove_cluster(lab, cluster_name)  # move web-1 to h1 behind the cache's back
    start_web(lab, 1, cluster_name, "web-1")
    rc, listing, err = inventory(directory)
    assert rc == 0, err
    assert placement_of(listing) == ({"web-1": h3, "web-2": h1}, "docker")  # from the cache: Docker was not read

    rc, listing, err = inventory(directory, args=["--flush-cache"])
    assert rc == 0, err
    assert placement_of(listing)[0]["web-1"] == h1


def etcd_client(lab):
    return _etcd.EtcdClient(lab.etcd_endpoints, ca_cert=lab.ca_cert, client_cert=lab.client_cert, client_key=lab.client_key)


def etcd_env(lab):
    """Connection through the environment only, as an AWX credential injects it."""
    return {"ETCDCTL_ENDPOINTS": ",".join(lab.etcd_endpoints), "ETCDCTL_CACERT": lab.ca_cert,
            "ETCDCTL_CERT": lab.client_cert, "ETCDCTL_KEY": lab.client_key}


def test_previous_placement_and_machines_from_etcd_and_the_cache(etcd_lab, tmp_path):
    cluster = "inv%s" % uuid.uuid4().hex[:6]
    client = etcd_client(etcd_lab)
    h1, h2, h3 = (etcd_lab.host(i).name for i in (1, 2, 3))
    try:
        _state.write_placement(client, cluster, {"web-1": h3, "web-2": "m9"})
        _machines.register_machine(client, cluster, {"name": "m9", "address": "10.9.9.9", "labels": {"rack": "{{ 7*6 }}"}})
        write(tmp_path, "stacks.yml", WEB_STACK % {"cluster": cluster})
        directory = inventory_dir(tmp_path)
        lab_hosts_file(etcd_lab, directory, [1, 2, 3])
        config(directory, name="z.stackfleet.yml", stack_file="../stacks.yml", cache=True, cache_plugin="ansible.builtin.jsonfile",
               cache_connection=str(tmp_path / "cache"))
        rc, listing, err = inventory(directory, env=etcd_env(etcd_lab))
        assert rc == 0, err
        assert placement_of(listing) == ({"web-1": h3, "web-2": "m9"}, "etcd")
        hv = hostvars(listing)
        assert hv["m9"]["ansible_host"] == "10.9.9.9" and hv["m9"]["stackfleet_instances"] == ["web-2"]
        assert listing["_meta"]["hostvars"]["m9"]["stackfleet_labels"]["rack"] == {"__ansible_unsafe": "{{ 7*6 }}"}
        documents = [{"name": n, "address": hv[n]["ansible_host"], "labels": hv[n]["stackfleet_labels"],
                      "capacity": hv[n]["stackfleet_capacity"]} for n in (h1, h2, h3)]
        module = run_stack_plan({"stack_file": str(tmp_path / "stacks.yml"), "previous_placement": {"web-1": h3, "web-2": "m9"},
                                 "hosts": documents + [{"name": "m9", "address": "10.9.9.9", "labels": {"rack": "{{ 7*6 }}"}}]})
        assert module["placement"] == {"web-1": h3, "web-2": "m9"}
        assert all(hv[n]["stackfleet_containers"] == module["containers"][n] for n in (h1, h2, h3, "m9"))

        _state.write_placement(client, cluster, {"web-1": h1, "web-2": h2})
        _machines.unregister_machine(client, cluster, "m9")
        rc, listing, err = inventory(directory, env=etcd_env(etcd_lab))
        assert rc == 0, err
        assert placement_of(listing) == ({"web-1": h3, "web-2": "m9"}, "etcd")  # cached: etcd was not read

        rc, listing, err = inventory(directory, env=etcd_env(etcd_lab), args=["--flush-cache"])
        assert rc == 0, err
        assert placement_of(listing) == ({"web-1": h1, "web-2": h2}, "etcd")
        assert "m9" not in listing["_meta"]["hostvars"]
    finally:
        client.delete(_state.cluster_prefix(cluster), prefix=True)


def test_unreachable_etcd_fails_the_source(tmp_path):
    write(tmp_path, "stacks.yml", WEB_STACK % {"cluster": "noetcd"})
    path = config(tmp_path, stack_file="stacks.yml", hosts=[{"name": "a"}, {"name": "b"}],
                  etcd_endpoints=["http://127.0.0.1:9"], etcd_timeout=2)
    rc, _listing, err = inventory(path)
    assert rc != 0 and "cannot read the state of cluster noetcd from etcd" in " ".join(err.split())


def test_the_example_inventory_with_etcd_from_the_environment(etcd_lab, tmp_path):
    env = dict(etcd_env(etcd_lab), HOME=str(tmp_path))
    rc, listing, err = inventory(os.path.join(REPO, "inventories", "example"), env=env)
    assert rc == 0, err
    placement, source = placement_of(listing)
    assert source == "none" and len([k for k in placement if k.startswith("lamp-")]) == 5
    assert len(listing["stackfleet_lamp"]["hosts"]) == 5 and len(listing["stackfleet_lb"]["hosts"]) == 2
    assert "rack_r1" in listing
    assert (tmp_path / ".cache" / "stackfleet" / "inventory").is_dir()

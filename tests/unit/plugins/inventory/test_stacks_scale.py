"""A host's inventory variables do not grow with the other hosts (issue 13): through a real
`ansible-inventory --list` of a stacks source, at 10 and at 100 hosts, with the stack growing with
the hosts. The cluster-wide variables are on localhost only, once."""
from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
CLUSTER_VARS = ("stackfleet_placement", "stackfleet_placement_source", "stackfleet_ports")


def stack(n_hosts):
    """Issue 13's workload per 10 hosts: a two-service stack x20, cache x10, edge x1 (conflicts), a global agent."""
    per = n_hosts // 10
    return {"cluster": "scale",
            "services": {"web": {"image": "web:1", "resources": {"cpus": 0.25, "memory": "256m"}},
                         "app": {"image": "app:1", "env": {"CACHE": "cache"}, "resources": {"cpus": 0.25, "memory": "512m"}},
                         "cache": {"image": "redis:7", "resources": {"cpus": 0.25, "memory": "512m"}},
                         "edge": {"image": "haproxy:2.9", "ports": ["80:80"], "resources": {"cpus": 0.5, "memory": "256m"}},
                         "agent": {"image": "agent:1", "ports": ["9100:9100"]}},
            "stacks": {"shop": {"services": ["web", "app"]}},
            "deploy": {"shop": {"count": 20 * per, "spread": "zone"}, "cache": {"count": 10 * per},
                       "edge": {"count": per, "conflicts": ["edge"]}, "agent": {"global": True}}}


def listing(tmp_path, n_hosts, earlier=None, **options):
    """(rc, --list output, stderr) of a stacks source with `n_hosts` inline hosts; `earlier` is an
    inventory file named before it."""
    directory = tmp_path / ("n%d" % n_hosts)
    (directory / "inventory").mkdir(parents=True)
    (directory / "stacks.yml").write_text(yaml.safe_dump(stack(n_hosts)))
    hosts = [{"name": "node-%03d" % i, "address": "10.0.%d.%d" % (i // 200, i % 200 + 1),
              "labels": {"zone": "z%d" % (i % 3), "rack": "r%d" % (i % 10)}, "capacity": {"cpus": 8, "memory_mb": 16384}}
             for i in range(n_hosts)]
    config = directory / "inventory" / "scale.stackfleet.yml"
    config.write_text(yaml.safe_dump(dict({"plugin": "stackfleet.cluster.stacks", "stack_file": "../stacks.yml",
                                           "host_groups": [], "previous_placement": "none", "hosts": hosts}, **options)))
    argv = [os.path.join(VENV_BIN, "ansible-inventory")]
    if earlier is not None:
        path = directory / "inventory" / "a-hosts.yml"
        path.write_text(yaml.safe_dump(earlier))
        argv += ["-i", str(path)]
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="1", PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(argv + ["-i", str(config), "--list"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    return proc.returncode, (json.loads(proc.stdout) if proc.returncode == 0 else None), proc.stderr


def plain(value):
    """--list output without the {"__ansible_unsafe": ...} markers of untrusted strings."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def sizes(out):
    """Serialized size of each placed host's variables."""
    hostvars = out["_meta"]["hostvars"]
    return {name: len(json.dumps(hostvars[name], sort_keys=True)) for name in out["stackfleet_hosts"]["hosts"]}


@pytest.fixture(scope="module")
def small_and_large(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("scale")
    results = []
    for n in (10, 100):
        rc, out, err = listing(tmp, n)
        assert rc == 0, err
        results.append(out)
    return results


def test_a_hosts_variables_do_not_grow_with_the_other_hosts(small_and_large):
    small, large = (sizes(out) for out in small_and_large)
    assert len(small) == 10 and len(large) == 100
    mean_small, mean_large = sum(small.values()) / len(small), sum(large.values()) / len(large)
    # Ten times the hosts and ten times the instances: the same ~6 containers per host either way.
    assert abs(mean_large - mean_small) <= 0.05 * mean_small, (mean_small, mean_large)
    assert max(large.values()) <= 1.25 * max(small.values()), (max(small.values()), max(large.values()))
    for out in small_and_large:
        for name in out["stackfleet_hosts"]["hosts"]:
            assert not set(CLUSTER_VARS) & set(out["_meta"]["hostvars"][name]), name


def test_the_cluster_wide_variables_are_on_localhost_once(small_and_large):
    for out, n in zip(small_and_large, (10, 100), strict=True):
        local = plain(out["_meta"]["hostvars"]["localhost"])
        # trusted (a plain string in --list): a template that plays render, as the implicit localhost's value
        assert out["_meta"]["hostvars"]["localhost"]["ansible_python_interpreter"] == "{{ ansible_playbook_python }}"
        placement = local["stackfleet_placement"]
        assert len(placement) == 20 * n // 10 + 10 * n // 10 + n // 10 + n  # shop, cache, edge, agent instances
        assert local["stackfleet_placement_source"] == "none" and "stackfleet_ports" in local
        assert local["ansible_connection"] == "local" and local["ansible_python_interpreter"] == "{{ ansible_playbook_python }}"
        assert "localhost" not in out["stackfleet_hosts"]["hosts"]
    # The output grows with the hosts, not with hosts x instances.
    small, large = (len(json.dumps(out)) for out in small_and_large)
    assert large <= 12 * small, (small, large)


def test_an_earlier_localhost_keeps_its_connection_and_cluster_vars_all_is_the_old_layout(tmp_path):
    earlier = {"all": {"hosts": {"localhost": {"ansible_connection": "local", "site": "x"}}}}
    rc, out, err = listing(tmp_path, 10, earlier=earlier)
    assert rc == 0, err
    local = plain(out["_meta"]["hostvars"]["localhost"])
    assert local["site"] == "x" and "ansible_python_interpreter" not in local and len(local["stackfleet_placement"]) == 41

    rc, out, err = listing(tmp_path / "all", 10, cluster_vars="all")
    assert rc == 0, err
    assert "localhost" not in out["_meta"]["hostvars"]
    every = [plain(out["_meta"]["hostvars"][name]) for name in out["stackfleet_hosts"]["hosts"]]
    assert all(len(v["stackfleet_placement"]) == 41 and v["stackfleet_placement_source"] == "none" for v in every)

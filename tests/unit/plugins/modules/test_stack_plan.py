"""stack_plan through real `ansible` runs: the format doc's LAMP example is placed by every rule,
and a re-plan without one host moves only what ran there."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _plan_documents, _spec

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "module_utils"))
from test_placement_check import _fake, check_plan  # noqa: E402

STACK = os.path.join(REPO, "examples", "lamp-format-doc.yml")
HOSTS = [{"name": "node-%d" % i, "labels": {"rack": "r%d" % (i % 3 + 1), "disk": "ssd" if i < 7 else "hdd"},
          "capacity": {"cpus": 4, "memory_mb": 8192}} for i in range(1, 9)]


def run_module(args, check=False):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    cmd = [os.path.join(REPO, ".venv", "bin", "ansible"), "localhost", "-i", "localhost,", "-c", "local",
           "-e", "ansible_python_interpreter=" + sys.executable, "-m", "stackfleet.cluster.stack_plan", "-a", json.dumps(args)] + (["--check"] if check else [])
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


@pytest.fixture(scope="module")
def first():
    return run_module({"stack_file": STACK, "hosts": HOSTS})


def _problems(result, hosts):
    spec = _spec.load_file(STACK)
    host_objs = _spec.load_hosts(hosts)
    return check_plan(spec, host_objs, _fake(spec, host_objs, result["placement"]))


def test_lamp_example_satisfies_every_rule(first):
    assert not first.get("failed"), first.get("msg")
    assert first["changed"] is False
    assert _problems(first, HOSTS) == []
    assert sorted(k for k in first["placement"] if k.startswith("lamp-")) == ["lamp-%d" % i for i in range(1, 6)]
    docs = [d for docs in first["containers"].values() for d in docs]
    assert {d["name"] for d in docs} >= {"prod.lamp-3.mysql", "prod.lamp-3.web", "prod.lb-1.lb"}
    web3 = next(d for d in docs if d["name"] == "prod.lamp-3.web")
    assert web3["instance"] == "lamp-3" and web3["host"] == first["placement"]["lamp-3"]
    assert web3["env"]["DB_HOST"] == first["placement"]["lamp-3"]  # sibling reference resolved, no Jinja


def test_replan_without_a_host_moves_only_its_instances(first):
    lost = first["placement"]["lamp-3"]
    hosts = [h for h in HOSTS if h["name"] != lost]
    again = run_module({"stack_file": STACK, "hosts": hosts, "previous_placement": first["placement"]})
    assert not again.get("failed"), again.get("msg")
    assert _problems(again, hosts) == []
    on_lost = {k for k, h in first["placement"].items() if h == lost}
    assert set(again["moved"]) == {k for k in on_lost if k in again["placement"]}
    assert set(again["removed"]) == {k for k in on_lost if k not in again["placement"]}  # that host's global agent
    for key, host in first["placement"].items():
        if host != lost:
            assert again["placement"][key] == host


def test_check_mode_and_bad_file_message(tmp_path):
    bad = tmp_path / "stacks.yml"
    bad.write_text("cluster: prod\nservices: {web: {image: x}}\ndeploy: {web: {count: five}}\n")
    result = run_module({"stack_file": str(bad), "hosts": HOSTS}, check=True)
    assert result["failed"]
    assert "deploy.web.count" in result["msg"] and "stacks.yml" in result["msg"]


def test_drained_host_moves_and_rebalance_option():
    """Contract 2 of issue 9: `moves` with reasons, a drained host present with no containers, opt-in rebalance."""
    stack = {"cluster": "demo", "services": {"w": {"image": "local/busybox:1", "resources": {"cpus": 1, "memory": "64m"}}},
             "deploy": {"w": {"count": 4}}}
    hosts = [{"name": n, "capacity": {"cpus": 4, "memory_mb": 4096}} for n in ("a", "b")]
    hosts.append({"name": "c", "capacity": {"cpus": 4, "memory_mb": 4096}, "drain": True})
    previous = {"w-1": "a", "w-2": "a", "w-3": "a", "w-4": "c"}
    result = run_module({"stack": stack, "hosts": hosts, "previous_placement": previous})
    assert not result.get("failed"), result.get("msg")
    assert result["containers"]["c"] == [] and "c" not in result["placement"].values()
    assert result["moves"] == [{"key": "w-4", "from": "c", "to": "b", "reason": "drained", "why": "w-4 moved from c to b because c is drained."}]
    assert result["moved"] == ["w-4"] and result["summary"].endswith("moves: w-4 c -> b (drained)")
    again = run_module({"stack": stack, "hosts": hosts, "previous_placement": previous, "rebalance": {"max_moves": 1}})
    assert [(m["key"], m["reason"]) for m in again["moves"]] == [("w-1", "rebalance"), ("w-4", "drained")]
    bad = run_module({"stack": stack, "hosts": hosts, "rebalance": {"max_moves": -1}})
    assert bad["failed"] and "max_moves" in bad["msg"]


DYNAMIC = {
    "cluster": "c",
    "services": {
        "db": {"image": "m", "ports": ["auto:3306"], "stateful": True},
        "web": {"image": "w", "ports": ["auto:80"], "env": {"DB_PORT": "{{ instance.services.db.port }}"}},
        "lb": {"image": "h", "ports": ["80:80"], "env": {"B": "{{ deploy.lamp.web.addresses }}"}},
    },
    "stacks": {"lamp": {"services": ["db", "web"]}},
    "deploy": {"lamp": {"count": 5}, "lb": {"count": 2, "conflicts": ["lb"]}},
}


def test_dynamic_ports_and_held_instances_through_the_module(tmp_path):
    stack = tmp_path / "stacks.yml"
    stack.write_text(json.dumps(DYNAMIC))  # a file: module arguments would be templated
    hosts = [{"name": "n%d" % i, "address": "10.0.0.%d" % i} for i in range(1, 5)]
    first = run_module({"stack_file": str(stack), "hosts": hosts})
    assert not first.get("failed"), first.get("msg")
    docs = {d["name"]: d for ds in first["containers"].values() for d in ds}
    port3 = first["ports"]["lamp-3"]["web"][0]["host_port"]
    assert docs["c.lamp-3.web"]["ports"][0]["host_port"] == port3 and 20000 <= port3 <= 32000
    assert "10.0.0.%s:%d" % (first["placement"]["lamp-3"][1:], port3) in docs["c.lb-1.lb"]["env"]["B"].split(",")
    assert first["held"] == []
    lost = first["placement"]["lamp-3"]
    rest = [h for h in hosts if h["name"] != lost]
    again = run_module({"stack_file": str(stack), "hosts": rest, "previous_placement": first["placement"],
                        "previous_ports": first["ports"], "allow_move": "lb-1,lb-2"})  # a string, as -e gives it
    assert not again.get("failed"), again.get("msg")
    assert again["placement"]["lamp-3"] == lost
    assert all(again["ports"][k] == first["ports"][k] for k in again["ports"] if k.startswith("lamp"))
    assert [(h["key"], h["host"], h["reason"]) for h in again["held"] if h["key"] == "lamp-3"] == [("lamp-3", lost, "host-missing")]
    assert "stackfleet_allow_move=lamp-3" in again["held"][0]["why"] and "held (stateful" in again["summary"]
    assert {d["instance"] for d in again["containers"][lost]} >= {"lamp-3"}


def test_a_double_quoted_string_in_a_constraint_is_a_warning_and_no_host_matches_names_it():
    stack = {"cluster": "q", "services": {"db": {"image": "img/db"}},
             "deploy": {"db": {"count": 1, "constraint": 'labels.disk == "ssd"'}}}
    hosts = [{"name": "a", "labels": {"disk": "ssd"}}, {"name": "b", "labels": {"disk": "hdd"}}]
    result = run_module({"stack": stack, "hosts": hosts})
    assert result.get("failed") and 'no host matches \'labels.disk == "ssd"\' (2 hosts); "ssd" is a field name' in result["msg"]
    assert result["warnings"] == [
        '<stack option>: deploy.db.constraint: "ssd" is a field name in JMESPath (double quotes name a field of the host '
        "document, which has none of that name, so it is null on every host); for a string use single quotes or backticks "
        """(`"ssd"`): labels.disk == 'ssd'"""]
    stack["deploy"]["db"]["constraint"] = "labels.disk == 'ssd'"
    fixed = run_module({"stack": stack, "hosts": hosts})
    assert not fixed.get("failed") and not fixed.get("warnings") and fixed["placement"] == {"db-1": "a"}


def test_compact_documents_expand_to_the_full_ones(first):
    compact = run_module({"stack_file": STACK, "hosts": HOSTS, "documents": "compact"})
    assert not compact.get("failed"), compact.get("msg")
    assert compact["placement"] == first["placement"] and compact["templates"]
    assert _plan_documents.expand_all(compact["containers"], compact["templates"]) == first["containers"]


def test_bad_options_fail_before_planning():
    result = run_module({"stack_file": STACK, "hosts": HOSTS, "documents": "tiny"})
    assert result["failed"] and "documents" in result["msg"] and "full, compact" in result["msg"]
    result = run_module({"hosts": HOSTS})
    assert result["failed"] and "stack_file, stack" in result["msg"]

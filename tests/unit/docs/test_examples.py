"""Every EXAMPLES block of the collection's modules, filters and inventory plugin, checked as written:
the task lists pass `ansible-playbook --syntax-check` and use only the options each stackfleet module
documents; the inventory plugin's configurations use only its documented options; the examples that
need no lab (stack_plan's inline stack) run."""
import ast
import glob
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
TASK_PLUGINS = sorted(glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py")) + glob.glob(os.path.join(ROOT, "plugins", "filter", "*.py")))
# Task keywords, not module options.
KEYWORDS = {"name", "register", "when", "loop", "loop_control", "vars", "environment", "delegate_to", "run_once", "check_mode",
            "diff", "changed_when", "failed_when", "until", "retries", "delay", "ignore_errors", "tags", "no_log", "become",
            "module_defaults", "notify", "throttle"}


def examples(path):
    for node in ast.parse(open(path).read()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "EXAMPLES":
            return node.value.value
    raise AssertionError("%s has no EXAMPLES" % path)


def env():
    return dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))


#: Names the examples use for results registered in another example (stack_state's `plan`).
CONVENTIONAL = {"plan": "stackfleet.cluster.stack_plan", "previous": "stackfleet.cluster.stack_state_info"}


@pytest.fixture(scope="module")
def module_docs():
    names = ["stackfleet.cluster." + os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "plugins", "modules", "*.py"))]
    out = subprocess.run(["ansible-doc", "-t", "module", "--json"] + names, env=env(), capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def module_options(module_docs):
    return {name: set(doc["doc"].get("options", {})) for name, doc in module_docs.items()}


@pytest.mark.parametrize("path", TASK_PLUGINS, ids=lambda p: os.path.relpath(p, ROOT))
def test_task_examples_read_only_what_modules_return(path, module_docs):
    """`register: plan` of a stackfleet module, then `plan.<key>`: the key is one the module returns."""
    tasks = yaml.safe_load(examples(path))
    registered = dict(CONVENTIONAL)
    for task in tasks:
        action = next(k for k in task if k not in KEYWORDS)
        if "register" in task and action.startswith("stackfleet.cluster."):
            registered[task["register"]] = action
    text = examples(path)
    for var, attr in re.findall(r"\b(\w+)\.(\w+)", " ".join(re.findall(r"{{(.*?)}}", text, re.S))):
        if var in registered and var != "stackfleet":
            returns = set(module_docs[registered[var]].get("return") or {})
            assert attr in returns, "%s: %s.%s, but %s returns %s" % (os.path.basename(path), var, attr, registered[var], sorted(returns))


@pytest.mark.parametrize("path", TASK_PLUGINS, ids=lambda p: os.path.relpath(p, ROOT))
def test_task_examples_pass_syntax_check(path, tmp_path, module_options):
    tasks = yaml.safe_load(examples(path))
    assert isinstance(tasks, list) and tasks
    for task in tasks:
        action = [k for k in task if k not in KEYWORDS]
        assert len(action) == 1, (task.get("name"), action)
        if action[0].startswith("stackfleet.cluster."):
            unknown = set(task[action[0]] or {}) - module_options[action[0]]
            assert not unknown, (task["name"], action[0], sorted(unknown))
    playbook = tmp_path / "examples.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Examples of " + os.path.basename(path), "hosts": "localhost",
                                         "gather_facts": False, "tasks": tasks}], sort_keys=False))
    out = subprocess.run(["ansible-playbook", "--syntax-check", "-i", "localhost,", str(playbook)], env=env(),
                         check=False, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_inventory_examples_use_documented_options():
    out = subprocess.run(["ansible-doc", "-t", "inventory", "--json", "stackfleet.cluster.stacks"], env=env(), capture_output=True,
                         text=True, check=True, cwd=ROOT)
    options = set(json.loads(out.stdout)["stackfleet.cluster.stacks"]["doc"]["options"])
    configs = list(yaml.safe_load_all(examples(os.path.join(ROOT, "plugins", "inventory", "stacks.py"))))
    assert len(configs) >= 3
    for config in configs:
        assert config["plugin"] == "stackfleet.cluster.stacks"
        assert not set(config) - options, sorted(set(config) - options)
        for host in config.get("hosts", []):
            conn = host.get("vars", {})
            if str(conn.get("stackfleet_docker_host", "")).startswith("tcp://"):
                # a tcp:// engine without TLS settings is refused (secure by default)
                assert conn.get("stackfleet_docker_ca_path") or conn.get("stackfleet_docker_tls") is False, host


def test_etcd_member_initial_cluster_example_renders(tmp_path):
    """The --initial-cluster the example builds from what the add returned (members before node-4 started)."""
    (task,) = [t for t in yaml.safe_load(examples(os.path.join(ROOT, "plugins", "modules", "etcd_member.py")))
               if t["name"].startswith("Start etcd on node-4")]
    added = {"members": [{"name": "node-%d" % i, "peer_urls": ["https://10.0.0.1%d:2380" % i], "started": True} for i in (1, 2, 3)]
             + [{"name": "", "peer_urls": ["https://10.0.0.14:2380"], "started": False}]}
    playbook = tmp_path / "render.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Render", "hosts": "localhost", "gather_facts": False, "vars": {"added": added},
                                         "tasks": [task]}], sort_keys=False))
    out = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook)], env=env(), check=False, capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:]
    assert ("--initial-cluster node-1=https://10.0.0.11:2380,node-2=https://10.0.0.12:2380,node-3=https://10.0.0.13:2380,"
            "node-4=https://10.0.0.14:2380") in out.stdout, out.stdout[-2000:]


def test_stack_plan_inline_example_runs(tmp_path):
    tasks = [t for t in yaml.safe_load(examples(os.path.join(ROOT, "plugins", "modules", "stack_plan.py"))) if "stack" in t.get(
        "stackfleet.cluster.stack_plan", {})]
    assert tasks
    tasks.append({"name": "Check", "ansible.builtin.assert": {"that": ["plan is succeeded"]}})
    tasks[0]["register"] = "plan"
    playbook = tmp_path / "run.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Run", "hosts": "localhost", "gather_facts": False, "tasks": tasks}], sort_keys=False))
    out = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
                          str(playbook)], env=env(), check=False, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and "failed=0" in out.stdout, out.stdout[-3000:]

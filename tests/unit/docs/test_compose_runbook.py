# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/runbooks.md "Move from docker-compose", step by step, without a lab: playbooks/import_compose.yml on a real
compose file (the voting app's docker-stack.yml), the edit the runbook shows, then the plan that changes nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import yaml
from ansible_collections.stackfleet.cluster.plugins.module_utils import _spec

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DATA = os.path.join(ROOT, "tests", "unit", "data", "compose")
PLAYBOOK = os.path.join(ROOT, "playbooks", "import_compose.yml")
BIN = os.path.join(ROOT, ".venv", "bin")
HOSTS = [{"name": "node-1", "labels": {"role": "manager"}}, {"name": "node-2"}, {"name": "node-3"}]


def run(args, cwd):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=BIN + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(args, env=env, cwd=str(cwd), check=False, capture_output=True, text=True, timeout=180)


def import_compose(tmp_path, compose, *extra):
    shutil.copy(os.path.join(DATA, compose), tmp_path / "compose.yml")
    return run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
                PLAYBOOK, "-e", "compose_file=compose.yml", "-e", "stackfleet_cluster=vote", "-e", "stack_file_out=stacks.yml", *extra],
               tmp_path)


def runbook_section():
    text = open(os.path.join(ROOT, "docs", "runbooks.md")).read()
    return text[text.index("## Move from docker-compose"):]


def test_step_1_convert_writes_a_valid_stack_file_and_prints_what_it_cannot_express(tmp_path):
    out = import_compose(tmp_path, "voting-app-stack.yml")
    assert out.returncode == 0 and "changed=1" in out.stdout, out.stdout[-3000:] + out.stderr[-2000:]
    assert "services.db.deploy.placement.constraints[0]: not expressible; 'node.role == manager'" in out.stdout
    assert "services.vote.depends_on: not expressible" in out.stdout
    written = (tmp_path / "stacks.yml").read_text()
    assert written.startswith("# Converted from compose.yml by playbooks/import_compose.yml")
    assert "#   services.visualizer.stop_grace_period: not expressible" in written  # the same list, in the file
    spec = _spec.load_file(str(tmp_path / "stacks.yml"))
    assert spec.cluster == "vote" and spec.deploys["vote"].count == 2 and spec.deploys["redis"].parallelism == 2
    # Run again: the same file, nothing changed.
    again = import_compose(tmp_path, "voting-app-stack.yml")
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-2000:]
    assert (tmp_path / "stacks.yml").read_text() == written


def test_step_1_with_hosts_plans_on_them(tmp_path):
    out = import_compose(tmp_path, "voting-app-stack.yml", "-e", json.dumps({"stackfleet_import_hosts": HOSTS}))
    assert out.returncode == 0, out.stdout[-3000:]
    assert '"msg": "9 units on 3 hosts (redis 2 on 2 hosts, db 1 on 1 hosts, vote 2 on 2 hosts,' in out.stdout, out.stdout[-3000:]


def test_check_mode_writes_nothing(tmp_path):
    out = import_compose(tmp_path, "wordpress-mysql.yaml", "--check", "--diff")
    assert out.returncode == 0, out.stdout[-3000:]
    assert not (tmp_path / "stacks.yml").exists() and "+cluster: vote" in out.stdout


def test_a_conversion_that_does_not_validate_writes_nothing(tmp_path):
    (tmp_path / "stacks.yml").write_text("kept: as it was\n")
    out = import_compose(tmp_path, "prometheus-grafana.yaml")
    assert out.returncode != 0
    assert "services.prometheus.volumes[1]: target '/prometheus' is mounted twice" in out.stdout
    assert (tmp_path / "stacks.yml").read_text() == "kept: as it was\n"


def test_missing_arguments_are_named(tmp_path):
    out = run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local", PLAYBOOK], tmp_path)
    assert out.returncode != 0 and "give -e compose_file=" in out.stdout


def test_steps_2_and_3_the_runbooks_edit_then_a_plan_that_changes_nothing(tmp_path):
    """Step 2's edit (the constraint on a host label for node.role == manager) and step 3's stack_plan command, as the
    runbook writes them."""
    section = runbook_section()
    assert import_compose(tmp_path, "voting-app-stack.yml").returncode == 0
    edit = textwrap.dedent(re.search(r"```yaml\n(\s*deploy:\n.*?)```", section, re.S).group(1))
    stack = yaml.safe_load((tmp_path / "stacks.yml").read_text())
    for key, rules in yaml.safe_load(edit)["deploy"].items():
        stack["deploy"][key].update(rules)
    (tmp_path / "stacks.yml").write_text(yaml.safe_dump(stack, sort_keys=False))
    command = re.search(r"^\s*(ansible localhost -m stackfleet\.cluster\.stack_plan .*)$", section, re.M).group(1)
    args = re.match(r"ansible localhost -m (\S+) -a '(.*)'$", command)
    plan = run([os.path.join(BIN, "ansible"), "localhost", "-m", args.group(1), "-a", args.group(2),
                "-e", "ansible_python_interpreter=" + sys.executable], tmp_path)
    assert plan.returncode == 0, plan.stdout[-3000:]
    result = json.loads(plan.stdout[plan.stdout.index("{"):])
    assert result["placement"]["db-1"] == "node-1" and len(result["placement"]) == 9
    assert {doc["name"] for docs in result["containers"].values() for doc in docs} >= {"vote.db-1.db", "vote.vote-2.vote"}
    # Step 4: the named volume is docker-compose's <project>_<name> when the cluster has the project's name.
    (db,) = [doc for doc in result["containers"]["node-1"] if doc["name"] == "vote.db-1.db"]
    assert db["volumes"] == [{"source": "vote_db-data", "target": "/var/lib/postgresql/data", "read_only": False}]
    assert "vote_db-data" in section


def test_variables_from_the_dotenv_file_and_the_command_line(tmp_path):
    (tmp_path / ".env").write_text("TAG=1.2\nPORT=8080\n")
    (tmp_path / "app.yml").write_text("services:\n  web:\n    image: nginx:${TAG}\n    ports: ['${PORT}:80']\n")
    out = run([os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=" + sys.executable,
               PLAYBOOK, "-e", "compose_file=app.yml", "-e", "stackfleet_cluster=web", "-e", "stack_file_out=stacks.yml",
               "-e", json.dumps({"compose_variables": {"PORT": 9090}})], tmp_path)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "every key of app.yml is expressed" in out.stdout
    stack = yaml.safe_load((tmp_path / "stacks.yml").read_text())
    assert stack["services"]["web"] == {"image": "nginx:1.2", "ports": ["9090:80"]}

"""Per-role tags: `--tags <role>` / `--skip-tags <role>` select each role's tasks, in the roles and in site.yml."""
import glob
import os
import re
import subprocess

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROLES = ("docker_host", "etcd", "stack")
SITE = os.path.join(ROOT, "playbooks", "site.yml")


def _tags(entry):
    tags = entry.get("tags", [])
    return [tags] if isinstance(tags, str) else list(tags)


@pytest.mark.parametrize("role", ROLES)
def test_every_task_of_a_role_carries_its_tag(role):
    # Tasks of dynamically included files do not inherit the include's tags: each file's own tasks carry it.
    files = sorted(glob.glob(os.path.join(ROOT, "roles", role, "tasks", "*.yml")))
    assert files
    untagged = []
    for path in files:
        with open(path) as f:
            for task in yaml.safe_load(f) or []:
                if role not in _tags(task):
                    untagged.append("%s: %s" % (os.path.basename(path), task.get("name")))
    assert not untagged, untagged


def test_every_play_of_site_yml_is_tagged():
    with open(SITE) as f:
        plays = yaml.safe_load(f)
    untagged = [play["name"] for play in plays if not set(_tags(play)) & {"always", *ROLES}]
    assert not untagged, untagged


def _listed(tmp_path, *args):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  children:\n    stackfleet_hosts:\n      hosts:\n        h1: {stackfleet_docker_host: 'tcp://127.0.0.1:1'}\n"
        "    etcd:\n      hosts:\n        h1: {}\n"
    )
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"))
    out = subprocess.run(["ansible-playbook", "-i", str(inventory), "--list-tasks", *args, SITE],
                         env=env, check=False, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    # Role tasks are listed as "<role fqcn> : <task name>\tTAGS: [...]"; the argument spec check is
    # tagged `always` by Ansible itself.
    return {m.group(1) for m in re.finditer(r"stackfleet\.cluster\.(\w+) : (?!Validating arguments)", out.stdout)}


def test_tags_select_one_role_in_site_yml(tmp_path):
    # (stack is included dynamically, so --list-tasks never lists its tasks; its plays' tags select it.)
    assert _listed(tmp_path) == {"docker_host", "etcd"}
    assert _listed(tmp_path, "--tags", "etcd") == {"etcd"}
    assert _listed(tmp_path, "--tags", "docker_host") == {"docker_host"}
    assert _listed(tmp_path, "--skip-tags", "docker_host") == {"etcd"}
    assert _listed(tmp_path, "--tags", "stack") == set()

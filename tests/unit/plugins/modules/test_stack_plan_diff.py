"""stack_plan under --diff: the placement change is shown, and `changed` says whether the plan differs from
previous_placement (the module itself changes nothing anywhere)."""
import os
import subprocess
import sys

import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", ".."))
STACK = {"cluster": "demo", "services": {"web": {"image": "local/web:1", "ports": ["8080:8080"]}},
         "deploy": {"web": {"count": 2, "conflicts": ["web"]}}}


def run(tmp_path, previous, hosts, diff=True):
    playbook = tmp_path / "plan.yml"
    task = {"name": "Plan", "stackfleet.cluster.stack_plan": {"stack": STACK, "hosts": [{"name": h} for h in hosts],
                                                              "previous_placement": previous}}
    playbook.write_text(yaml.safe_dump([{"name": "Plan", "hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    out = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", "localhost,", "-c", "local",
                          "-e", "ansible_python_interpreter=" + sys.executable, str(playbook)] + (["--diff"] if diff else []),
                         env=env, check=False, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_a_move_is_changed_and_diffed(tmp_path):
    out = run(tmp_path, {"web-1": "a", "web-2": "gone"}, ["a", "b"])
    assert "changed: [localhost]" in out
    assert "--- before: previous placement" in out and "+++ after: new placement" in out
    assert '-    "web-2": "gone"' in out and '+    "web-2": "b"' in out


def test_the_same_placement_is_unchanged(tmp_path):
    out = run(tmp_path, {"web-1": "a", "web-2": "b"}, ["a", "b"])
    assert "ok: [localhost]" in out and "changed=0" in out and "--- before" not in out


def test_no_previous_placement_is_unchanged(tmp_path):
    out = run(tmp_path, {}, ["a", "b"])
    assert "ok: [localhost]" in out and "changed=0" in out

"""The stacks inventory plugin shows the stack file's load warnings (file, key path, the fix) through
`ansible-inventory`: `labels.disk == "ssd"` compares with a field that is null on every host, so the
instance lands on the host *without* a disk label - the silent misplacement the warning is for."""
import json
import os
import subprocess

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", ".."))

STACK = """cluster: q
services:
  db: {image: img/db}
deploy:
  db: {count: 1, constraint: %s}
"""
SOURCE = """plugin: stackfleet.cluster.stacks
stack_file: stack.yml
hosts:
  - {name: a, labels: {disk: %s}}
  - {name: b}
"""


def inventory(tmp_path, constraint, disk="hdd"):
    (tmp_path / "stack.yml").write_text(STACK % constraint)
    (tmp_path / "q.stackfleet.yml").write_text(SOURCE % disk)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-inventory"), "-i", str(tmp_path / "q.stackfleet.yml"), "--list"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(proc.stdout), " ".join(proc.stderr.split())


def test_the_warning_names_file_key_path_and_the_expression_meant(tmp_path):
    listed, stderr = inventory(tmp_path, """'labels.disk == "ssd"'""")
    assert ("[WARNING]: stackfleet: %s: deploy.db.constraint: \"ssd\" is a field name in JMESPath" % (tmp_path / "stack.yml")) in stderr
    assert "labels.disk == 'ssd'" in stderr
    assert listed["stackfleet_db"]["hosts"] == ["b"]  # what the expression says: null == null on the unlabelled host


def test_no_warning_for_the_string(tmp_path):
    listed, stderr = inventory(tmp_path, '''"labels.disk == 'ssd'"''', disk="ssd")
    assert "WARNING" not in stderr
    assert listed["stackfleet_db"]["hosts"] == ["a"]

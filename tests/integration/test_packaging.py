"""The collection as Galaxy, AWX and an execution environment get it, with no lab: the tarball of a used
checkout (its file list), installed into a clean path and used by FQCN from a folder without the project's
ansible.cfg, the execution-environment build context made from that same tarball (ansible-builder create;
no image build: no container registry is reachable here), the AWX project's collections/requirements.yml,
and the stacks inventory source under the settings AWX runs `ansible-inventory` with.
"""
import glob
import json
import os
import re
import shutil
import subprocess
import tarfile

import pytest
import yaml
from conftest import REPO, VENV_BIN

#: What a checkout accumulates in use; none of it may reach the tarball.
JUNK = [
    ".hypothesis/examples/x", "tests/unit/plugins/module_utils/.hypothesis/constants/x", ".pytest_cache/v/x",
    "plugins/.ruff_cache/x", ".ruff_cache/x", "plugins/modules/__pycache__/stack_plan.cpython-311.pyc",
    "site-output/placement.html", "lab-state/sfx/hosts.yml", "tests/output/junit/x.xml",
    "inventories/lab/hosts.yml", "ee/stackfleet-cluster-0.0.1.tar.gz", "stackfleet-cluster-0.0.1.tar.gz",
]
#: Dev-only paths (the checkout's tooling and configuration) that stay out too.
DEV_ONLY = ["Makefile", "pyproject.toml", "requirements/", "scripts/", "ansible.cfg", ".gitignore", ".ansible-lint",
            ".yamllint", "ee/", "collections/", ".ci/", "bench/", ".venv/", ".ansible/", ".git/"]
#: What a user of the collection needs.
REQUIRED = ["MANIFEST.json", "FILES.json", "LICENSE", "README.md", "CHANGELOG.rst", "changelogs/changelog.yaml",
            "meta/runtime.yml", "meta/execution-environment.yml", "meta/ee-requirements.txt", "meta/ee-bindep.txt",
            "plugins/modules/stack_plan.py", "plugins/inventory/stacks.py", "plugins/filter/host_documents.py",
            "roles/stack/tasks/main.yml", "roles/etcd/tasks/main.yml", "roles/docker_host/tasks/main.yml",
            "playbooks/site.yml", "playbooks/plan.yml", "playbooks/status.yml", "examples/lamp.yml"]

#: The environment AWX runs an inventory update with (STANDARD_INVENTORY_UPDATE_ENV in awx/main/constants.py).
AWX_INVENTORY_UPDATE_ENV = {"ANSIBLE_INVENTORY_UNPARSED_FAILED": "True", "ANSIBLE_INVENTORY_EXPORT": "True",
                            "ANSIBLE_VERBOSE_TO_STDERR": "True"}


def clean_env(**extra):
    """The environment of a machine without this checkout: no ANSIBLE_CONFIG, the venv's tools on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def run(args, cwd, env, timeout=300):
    out = subprocess.run(args, cwd=cwd, env=env, check=False, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, "%s\n%s\n%s" % (" ".join(args), out.stdout[-3000:], out.stderr[-3000:])
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("packaging")


@pytest.fixture(scope="module")
def used_checkout(work):
    """A copy of the checkout (what git knows plus untracked files) with what a used one accumulates."""
    src = work / "checkout"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout
    subprocess.run(["rsync", "-a", "--from0", "--files-from=-", "./", str(src) + "/"], cwd=REPO, input=files, check=True)
    for path in JUNK:
        (src / path).parent.mkdir(parents=True, exist_ok=True)
        (src / path).write_text("junk\n")
    return src


@pytest.fixture(scope="module")
def tarball(work, used_checkout):
    dist = work / "dist"
    run(["ansible-galaxy", "collection", "build", "--output-path", str(dist), str(used_checkout)], cwd=str(work), env=clean_env())
    (path,) = glob.glob(str(dist / "stackfleet-cluster-*.tar.gz"))
    with open(os.path.join(REPO, "galaxy.yml")) as f:
        assert os.path.basename(path) == "stackfleet-cluster-%s.tar.gz" % yaml.safe_load(f)["version"]
    return path


@pytest.fixture(scope="module")
def installed(work, tarball):
    """The tarball installed with ansible-galaxy into a clean collections path, from a folder without ansible.cfg."""
    path = work / "collections"
    run(["ansible-galaxy", "collection", "install", "--offline", "-p", str(path), tarball], cwd=str(work), env=clean_env())
    return path


def test_tarball_leaves_out_what_a_used_checkout_accumulates(tarball):
    with tarfile.open(tarball) as tar:
        names = [m.name + ("/" if m.isdir() else "") for m in tar.getmembers()]
    leaked = [n for n in names if re.search(r"(^|/)(\.hypothesis|\.pytest_cache|\.ruff_cache|__pycache__|site-output|lab-state)(/|$)", n)
              or n.endswith((".pyc", ".tar.gz")) or n.startswith("tests/output/") or n == "inventories/lab/hosts.yml"]
    assert not leaked, leaked
    dev_only = [n for n in names if any(n == d or n.startswith(d) for d in DEV_ONLY)]
    assert not dev_only, dev_only
    missing = [r for r in REQUIRED if r not in names]
    assert not missing, missing
    with tarfile.open(tarball) as tar:
        files = json.load(tar.extractfile("FILES.json"))["files"]
    assert {f["name"] for f in files if f["ftype"] == "file"} | {"FILES.json", "MANIFEST.json"} == {n for n in names if not n.endswith("/")}


def test_installed_tarball_runs_by_fqcn(work, installed):
    """A playbook outside the checkout, with only the installed tarball on the collections path, uses the
    modules, filters and the collection's own example stack file by their full names; no lab needed."""
    collection = installed / "ansible_collections" / "stackfleet" / "cluster"
    assert (collection / "MANIFEST.json").is_file() and not (collection / "ansible.cfg").exists()
    play = work / "play"
    play.mkdir()
    (play / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"stackfleet_hosts": {"hosts": {
        "node-%d" % i: {"stackfleet_docker_host": "tcp://10.0.0.%d:2376" % i, "stackfleet_labels": {"rack": "r%d" % (i % 2)},
                        "stackfleet_capacity": {"cpus": 8, "memory_mb": 16384}} for i in range(1, 5)}}}}}))
    (play / "use.yml").write_text("""
- name: Use the installed collection by FQCN
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan the collection's example stack file onto the inventory's hosts
      stackfleet.cluster.stack_plan:
        stack_file: "{{ collection_dir }}/examples/lamp.yml"
        hosts: "{{ groups['stackfleet_hosts'] | stackfleet.cluster.host_documents(hostvars) }}"
      register: plan
    - name: The engines filter maps hosts to their engine connections
      ansible.builtin.set_fact:
        engines: "{{ groups['stackfleet_hosts'] | stackfleet.cluster.engines(hostvars) }}"
    - name: Check the plan and the filters
      ansible.builtin.assert:
        that:
          - plan.placement | length > 0
          - plan.placement.values() | difference(groups['stackfleet_hosts']) | length == 0
          - plan.containers.keys() | sort == groups['stackfleet_hosts'] | sort
          - engines['node-1'].docker_host == 'tcp://10.0.0.1:2376'
""")
    env = clean_env(ANSIBLE_COLLECTIONS_PATH=str(installed))
    out = run(["ansible-playbook", "-i", "hosts.yml", "use.yml", "-e", "collection_dir=%s" % collection], cwd=str(play), env=env)
    assert "failed=0" in out.stdout, out.stdout
    doc = run(["ansible-doc", "stackfleet.cluster.stack_plan"], cwd=str(play), env=env)
    assert str(collection) in doc.stdout, doc.stdout[:500]


def test_awx_project_requirements_install_the_checkout(work, used_checkout):
    """What an AWX project sync runs (awx/playbooks/project_update.yml): ansible-galaxy from the project
    folder with collections/requirements.yml, into the job's requirements_collections."""
    dest = work / "requirements_collections"
    requirements = used_checkout / "collections" / "requirements.yml"
    run(["ansible-galaxy", "collection", "install", "-r", str(requirements), "--collections-path", str(dest)],
        cwd=str(used_checkout), env=clean_env(ANSIBLE_COLLECTIONS_PATH=str(dest)))
    installed = dest / "ansible_collections" / "stackfleet" / "cluster"
    assert (installed / "plugins" / "modules" / "stack_plan.py").is_file()
    assert not (installed / ".hypothesis").exists() and not (installed / "site-output").exists()


def test_execution_environment_context_installs_the_tarball(work, tarball):
    """ansible-builder create on ee/execution-environment.yml with the tarball of this run next to it; then
    the context's galaxy step and its dependency introspection are run here, as the image build would."""
    ee = work / "ee"
    shutil.copytree(os.path.join(REPO, "ee"), ee)
    shutil.copy(tarball, ee)
    context = work / "context"
    run(["ansible-builder", "create", "-f", str(ee / "execution-environment.yml"), "-c", str(context)], cwd=str(work), env=clean_env())
    build = context / "_build"
    name = os.path.basename(tarball)
    assert (build / "collections" / name).is_file()
    containerfile = (context / "Dockerfile").read_text() if (context / "Dockerfile").exists() else (context / "Containerfile").read_text()
    assert "quay.io/ansible/awx-ee" in containerfile and "ansible-core>=2.19,<2.20" in containerfile
    (install_step,) = [line for line in containerfile.splitlines() if "stackfleet-cluster-*.tar.gz" in line]
    # The galaxy stage: /build is the context's _build/, /usr/share/ansible/collections the image's path.
    image_collections = work / "image-collections"
    step = install_step[len("RUN "):].replace("/build/", str(build) + "/").replace("/usr/share/ansible/collections", str(image_collections))
    subprocess.run(["sh", "-ec", step], cwd=str(build), env=clean_env(), check=True, capture_output=True, timeout=120)
    assert (image_collections / "ansible_collections" / "stackfleet" / "cluster" / "MANIFEST.json").is_file()
    # The builder stage: ansible-builder's introspection reads the collection's meta/execution-environment.yml.
    out = run([os.path.join(VENV_BIN, "python"), str(build / "scripts" / "introspect.py"), "introspect", str(image_collections),
               "--write-pip", str(work / "ee-pip.txt"), "--write-bindep", str(work / "ee-bindep.txt")], cwd=str(work), env=clean_env())
    pip = (work / "ee-pip.txt").read_text()
    assert re.search(r"^docker>=7\.1\b.*stackfleet\.cluster", pip, re.M) and re.search(r"^jmespath\b", pip, re.M), out.stdout
    assert "openssl" in (work / "ee-bindep.txt").read_text()


@pytest.fixture()
def broken_source(tmp_path):
    """An inventory folder as in inventories/example/: machines in hosts.yml, the stacks plugin's
    configuration next to it, and a stack file with a mistake."""
    inv = tmp_path / "project" / "inventory"
    inv.mkdir(parents=True)
    (inv / "hosts.yml").write_text("all:\n  children:\n    stackfleet_hosts:\n      hosts:\n        node-1: {}\n        node-2: {}\n")
    (inv / "prod.stackfleet.yml").write_text("plugin: stackfleet.cluster.stacks\nstack_file: ../stack.yml\nprevious_placement: none\n")
    (tmp_path / "project" / "stack.yml").write_text(
        "cluster: demo\nservices:\n  web: {image: 'local/web:1'}\ndeploy:\n  webb: {count: 2}\n")
    return inv


def _inventory_update(inv, installed, extra_env):
    """`ansible-inventory` as AWX runs an inventory update (build_args in awx/main/tasks/jobs.py)."""
    env = clean_env(ANSIBLE_COLLECTIONS_PATH=str(installed), **AWX_INVENTORY_UPDATE_ENV, **extra_env)
    return subprocess.run(["ansible-inventory", "--list", "--export", "-i", str(inv), "--playbook-dir", str(inv),
                           "--output", str(inv.parent / "output.json")],
                          cwd=str(inv.parent.parent), env=env, check=False, capture_output=True, text=True, timeout=120)


def test_inventory_source_fails_loudly_under_awx(broken_source, installed):
    """AWX's own settings fail only when every source fails: the folder's hosts.yml parses, so a broken stack
    file would leave the inventory without its placement, silently. The source variable docs/awx.md and
    awx/inventory_source.json give (AWX exports a project source's variables to the environment) makes it fail,
    naming the file and the key."""
    with open(os.path.join(REPO, "awx", "inventory_source.json")) as f:
        source = json.load(f)
    source_vars = yaml.safe_load(source["source_vars"])
    assert source_vars == {"ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": True}
    silent = _inventory_update(broken_source, installed, {})
    assert silent.returncode == 0  # why the setting is needed
    failed = _inventory_update(broken_source, installed, {k: str(v) for k, v in source_vars.items()})
    assert failed.returncode != 0, failed.stdout
    assert "stack.yml" in failed.stderr and "deploy.webb" in failed.stderr, failed.stderr[-2000:]
    # A good stack file still parses under the same settings.
    (broken_source.parent / "stack.yml").write_text("cluster: demo\nservices:\n  web: {image: 'local/web:1'}\ndeploy:\n  web: {count: 2}\n")
    good = _inventory_update(broken_source, installed, {k: str(v) for k, v in source_vars.items()})
    assert good.returncode == 0, good.stderr[-2000:]
    with open(broken_source.parent / "output.json") as f:
        assert "stackfleet_web" in json.load(f)

"""plan.yml and site.yml run the way AWX runs a job: through ansible-runner with a private data dir
(project/ a copy of the repository, requirements_collections/ from collections/requirements.yml as a
project sync installs it, inventory/ with the machines only, env/extravars from the job template and its
survey), the credentials injected as AWX injects the credential types of awx/ (the ones docs/awx.md
shows: files written from the inputs, environment variables rendered from the injector templates), no
ANSIBLE_CONFIG and no scripts/setup.sh. The outcome is read from the job's artifacts (set_stats)."""
import base64
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request

import jinja2
import jinja2.sandbox
import pytest
import yaml
from conftest import REPO, VENV_BIN, lab_spec, running_lab

LAB = lab_spec("aw", hosts=3, etcd=True)
AWX = os.path.join(REPO, "awx")


def load(name):
    with open(os.path.join(AWX, name)) as f:
        return json.load(f)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "DOCKER_", "ETCDCTL_", "STACKFLEET_"))
           and k not in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")}
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env.update(extra)
    return env


def inject(credential_type, inputs, env_dir):
    """What AWX does with a credential of this type: each file injector written to its own file, the env
    and extra_vars injectors rendered with the inputs (a field not given renders empty) and the file names."""
    render = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined).from_string
    namespace = {field["id"]: inputs.get(field["id"], "") for field in credential_type["inputs"]["fields"]}
    injectors = credential_type["injectors"]
    files = {}
    for key, template in injectors.get("file", {}).items():
        handle, path = tempfile.mkstemp(dir=env_dir)
        with os.fdopen(handle, "w") as f:
            f.write(render(template).render(namespace))
        files[key.split(".", 1)[1]] = path
    namespace["tower"] = {"filename": files}
    env = {key: render(value).render(namespace) for key, value in injectors.get("env", {}).items()}
    return env


def test_credential_types_are_the_ones_docs_awx_md_shows():
    with open(os.path.join(REPO, "docs", "awx.md")) as f:
        blocks = re.findall(r"(Input|Injector) configuration:\n```yaml\n(.*?)```", f.read(), re.S)
    shown = [yaml.safe_load(block) for _kind, block in blocks]
    files = [load(name) for name in ("credential_type_docker_tls.json", "credential_type_etcd.json", "credential_type_secrets.json")]
    assert shown == [part for kind in files for part in (kind["inputs"], kind["injectors"])]


def survey_answers(name, **answers):
    """Extra variables as AWX passes a survey: every question's variable, the default unless answered."""
    spec = load(name)["spec"]
    unknown = set(answers) - {q["variable"] for q in spec}
    assert not unknown, unknown
    out = {}
    for question in spec:
        value = answers.get(question["variable"], question["default"])
        if question["type"] == "multiplechoice":
            assert value in question["choices"].split("\n"), (question["variable"], value)
        assert question["required"] is False or value != "", question["variable"]
        out[question["variable"]] = value
    return out


@pytest.fixture(scope="module")
def awx_job(tmp_path_factory):
    """The lab, and a function that runs a playbook as an AWX job template against it."""
    started = time.monotonic()
    with running_lab(**LAB) as lab:
        print("TIMING lab up %.1fs" % (time.monotonic() - started))
        pdd = tmp_path_factory.mktemp("awx-private-data-dir")
        project = pdd / "project"
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                               capture_output=True, check=True).stdout
        subprocess.run(["rsync", "-a", "--from0", "--files-from=-", "./", str(project) + "/"], cwd=REPO, input=files, check=True)
        collections = pdd / "requirements_collections"
        # The project sync (awx/playbooks/project_update.yml): from the project folder, into the job's collections.
        subprocess.run(["ansible-galaxy", "collection", "install", "-r", str(project / "collections" / "requirements.yml"),
                        "--collections-path", str(collections)], cwd=str(project), check=True, capture_output=True,
                       env=clean_env(ANSIBLE_COLLECTIONS_PATH=str(collections)))
        (pdd / "inventory").mkdir()
        (pdd / "inventory" / "hosts.yml").write_text(yaml.safe_dump({"all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": lab.python},
            "children": {"stackfleet_hosts": {"hosts": {host.name: {
                "ansible_host": host.address, "stackfleet_docker_host": host.docker_url, "stackfleet_labels": host.labels,
                "stackfleet_capacity": {"cpus": 2, "memory_mb": 4096}} for host in lab.hosts}}}}}))
        env_dir = pdd / "env"
        env_dir.mkdir()

        def read(path):
            with open(path) as f:
                return f.read()

        credentials_env = {}
        tls = {"ca_cert": read(lab.ca_cert), "client_cert": read(lab.client_cert), "client_key": read(lab.client_key)}
        credentials_env.update(inject(load("credential_type_docker_tls.json"), tls, str(env_dir)))
        credentials_env.update(inject(load("credential_type_etcd.json"), dict(tls, endpoints=",".join(lab.etcd_endpoints)), str(env_dir)))
        # What AWX sets for every job besides the credentials (awx/main/tasks/jobs.py RunJob.build_env).
        job_env = dict(credentials_env, ANSIBLE_COLLECTIONS_PATH="%s:~/.ansible/collections:/usr/share/ansible/collections" % collections,
                       JOB_ID="17", AWX_HOST="https://awx.example.com", ANSIBLE_FORCE_COLOR="False", ANSIBLE_HOST_KEY_CHECKING="False")
        (env_dir / "envvars").write_text(yaml.safe_dump(job_env))
        (env_dir / "settings").write_text(yaml.safe_dump({"suppress_ansible_output": True}))
        # The job templates' extra variables (docs/awx.md "Job templates"): the lab's engines and etcd are
        # managed elsewhere (the lab runs them), so the template turns the two roles off.
        template_vars = {"stackfleet_stack_file": "{{ playbook_dir }}/../examples/lamp.yml", "stackfleet_manage_docker": False,
                         "stackfleet_manage_etcd": False}

        def run(playbook, ident, extra_vars):
            (env_dir / "extravars").write_text(yaml.safe_dump(dict(template_vars, **extra_vars)))
            started = time.monotonic()
            proc = subprocess.run(["ansible-runner", "run", str(pdd), "-p", playbook, "--ident", ident],
                                  env=clean_env(), check=False, capture_output=True, text=True, timeout=600)
            print("TIMING %s %.1fs" % (ident, time.monotonic() - started))
            artifacts = pdd / "artifacts" / ident
            stdout = (artifacts / "stdout").read_text() if (artifacts / "stdout").exists() else proc.stdout
            events = [json.loads((artifacts / "job_events" / name).read_text()) for name in os.listdir(artifacts / "job_events")]
            (stats,) = [e["event_data"] for e in events if e["event"] == "playbook_on_stats"]
            rc = int((artifacts / "rc").read_text())
            return rc, (artifacts / "status").read_text(), stats, stdout

        yield lab, run


def etcd_keys(lab, prefix):
    """The keys under `prefix` in the lab's etcd (v3 JSON gateway)."""
    body = json.dumps({"key": base64.b64encode(prefix.encode()).decode(),
                       "range_end": base64.b64encode(prefix[:-1].encode() + bytes([prefix.encode()[-1] + 1])).decode(),
                       "keys_only": True}).encode()
    request = urllib.request.Request(lab.etcd_endpoints[0] + "/v3/kv/range", data=body, method="POST")
    with urllib.request.urlopen(request, context=lab.etcd_ssl_context(), timeout=10) as response:
        return [base64.b64decode(kv["key"]).decode() for kv in json.loads(response.read()).get("kvs", [])]


def test_plan_then_scale_then_site_as_awx_jobs(awx_job, tmp_path):
    lab, run = awx_job
    names = {host.name for host in lab.hosts}

    # The plan template, writing its map where the job keeps it (stackfleet_output_dir).
    output = tmp_path / "kept"
    rc, status, stats, stdout = run("playbooks/plan.yml", "plan", {"stackfleet_output_dir": str(output)})
    assert (rc, status) == (0, "successful"), stdout[-4000:]
    planned = stats["artifact_data"]["stackfleet_plan_result"]
    assert planned["cluster"] == "lab" and set(planned["placement"].values()) <= names and planned["down_hosts"] == []
    assert (output / "placement.html").is_file()
    assert sum(stats["failures"].values()) == 0 and not stats["dark"]

    # The scale template: its survey's answers as extra variables.
    rc, status, stats, stdout = run("playbooks/site.yml", "scale", survey_answers("survey_scale.json", stackfleet_scale="lamp=3", stackfleet_serial="100%"))
    assert (rc, status) == (0, "successful"), stdout[-4000:]
    result = stats["artifact_data"]["stackfleet_site_result"]
    assert sorted(k for k in result["placement"] if k.startswith("lamp-")) == ["lamp-1", "lamp-2", "lamp-3"], result
    assert result["down_hosts"] == [] and result["failed_hosts"] == []
    for index, host in enumerate(lab.hosts, start=1):
        running = {c.name.split(".")[1] for c in lab.docker_client(index).containers.list() if c.name.startswith("lab.")}
        assert running == {key for key, where in result["placement"].items() if where == host.name}, (host.name, running)
    # The etcd credential's endpoints carried the placement record (and the lock) into etcd.
    assert etcd_keys(lab, "/stackfleet/lab/"), "no placement record in etcd"

    # The site template with its survey's defaults: back to the stack file's counts.
    rc, status, stats, stdout = run("playbooks/site.yml", "site", survey_answers("survey_site.json"))
    assert (rc, status) == (0, "successful"), stdout[-4000:]
    result = stats["artifact_data"]["stackfleet_site_result"]
    assert sorted(k for k in result["placement"] if k.startswith("lamp-")) == ["lamp-1", "lamp-2"], result
    running = {c.name.split(".")[1] for i in range(1, len(lab.hosts) + 1) for c in lab.docker_client(i).containers.list()
               if c.name.startswith("lab.")}
    assert running == set(result["placement"]), running

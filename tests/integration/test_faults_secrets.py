"""Secrets end to end on a real 2-host lab (issue 8, §3 and §5).

A stack file with `env: {DB_PASSWORD: {secret: db_password}}` is planned with stack_plan and
converged through the `stack` role, the values given as `stackfleet_secrets` in a vars file
(plain, then ansible-vault encrypted). Each value reaches the container's environment and
nothing else: not the `-vvv` output, not `--diff`, not the registered results, not the
stack_plan result, not `ansible-inventory --list`, not the modules' "Invoked with" system-log
line (captured by a stand-in `syslog` module on PYTHONPATH; the converge runs in the task's worker
and logs none). Plain env values do not appear in
what the containers module logs, prints or returns either. Rotating a secret replaces exactly
the containers that use it (the others keep their IDs), check mode predicts it, the next run
changes nothing, and a missing secret fails every host before anything changes, naming the
secret, the container and the env key.

    STACKFLEET_TEST_LAB_PREFIX=.. STACKFLEET_TEST_NET=.. .venv/bin/pytest tests/integration/test_faults_secrets.py -v
"""
import json
import os
import subprocess
import uuid

import pytest
from conftest import REPO, VENV_BIN, ansible_playbook, lab_spec, running_lab

LAB = lab_spec("fs", hosts=2)
CLUSTER = "fsec"
LABEL_HASH = "io.stackfleet.config-hash"
RUN_ID = uuid.uuid4().hex[:10]
#: Markers that must never be printed: the secrets' values, and plain env values of the same containers.
DB_PASSWORD = "dbpw-%s-one" % RUN_ID
DB_PASSWORD_2 = "dbpw-%s-two" % RUN_ID
DB_PASSWORD_3 = "dbpw-%s-three" % RUN_ID
API_KEY = "apikey-%s" % RUN_ID
PLAIN = "plainenv-%s" % RUN_ID
SLEEP = '["sh", "-c", "trap \'exit 0\' TERM; sleep 2147483647 & wait"]'
STACK = """\
cluster: %(cluster)s
services:
  db:
    image: local/busybox:1
    command: %(sleep)s
    env: {DB_PASSWORD: {secret: db_password}, DB_NAME: %(plain)s-db}
    network_mode: host
    restart: unless-stopped
  app:
    image: local/busybox:1
    command: %(sleep)s
    env:
      DB_PASSWORD: {secret: db_password}
      API_KEY: {secret: api_key}
      DB_HOST: "{{ deploy.db.db.addresses }}"
    network_mode: host
    restart: unless-stopped
  worker:
    image: local/busybox:1
    command: %(sleep)s
    env: {TOKEN: {secret: api_key}, MODE: %(plain)s-worker}
    network_mode: host
    restart: unless-stopped
  plain:
    image: local/busybox:1
    command: %(sleep)s
    env: {PLAIN: %(plain)s-plain}
    network_mode: host
    restart: unless-stopped
deploy:
  db: {count: 1}
  app: {count: 2, update: {parallelism: 1}}
  worker: {count: 1}
  plain: {count: 1}
""" % {"cluster": CLUSTER, "sleep": SLEEP, "plain": PLAIN}
USES_DB_PASSWORD = {"%s.db-1.db" % CLUSTER, "%s.app-1.app" % CLUSTER, "%s.app-2.app" % CLUSTER}
ALL = USES_DB_PASSWORD | {"%s.worker-1.worker" % CLUSTER, "%s.plain-1.plain" % CLUSTER}

# Plan on the controller, converge every host through the role, keep the registered results.
PLAYBOOK = """\
- name: Plan
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan the stack
      stackfleet.cluster.stack_plan:
        stack_file: "{{ sf_stack_file }}"
        hosts: "{{ groups['stackfleet_hosts'] | stackfleet.cluster.host_documents(hostvars) }}"
      register: sf_plan
    - name: Keep the plan result
      ansible.builtin.copy:
        content: "{{ sf_plan | to_json }}"
        dest: "{{ sf_out }}/plan.json"
        mode: "0600"
      check_mode: false
      changed_when: false

- name: Converge
  hosts: stackfleet_hosts
  gather_facts: false
  tasks:
    - name: Converge through the stack role
      ansible.builtin.include_role:
        name: stackfleet.cluster.stack
      vars:
        stack_cluster: "{{ hostvars['localhost'].sf_plan.cluster }}"
        stack_plan_containers: "{{ hostvars['localhost'].sf_plan.containers }}"
    - name: Keep the registered result
      ansible.builtin.copy:
        content: "{{ stack_converge | to_json }}"
        dest: "{{ sf_out }}/converge-{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
      check_mode: false
      changed_when: false
"""
# The containers module alone (no role, so no plan-wide check first): its own check must refuse too.
MODULE_PLAYBOOK = """\
- name: Plan
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan the stack
      stackfleet.cluster.stack_plan:
        stack_file: "{{ sf_stack_file }}"
        hosts: "{{ groups['stackfleet_hosts'] | stackfleet.cluster.host_documents(hostvars) }}"
      register: sf_plan

- name: Converge with the module only
  hosts: stackfleet_hosts
  gather_facts: false
  tasks:
    - name: Converge this host's containers (module)
      stackfleet.cluster.containers:
        cluster: "{{ hostvars['localhost'].sf_plan.cluster }}"
        containers: "{{ hostvars['localhost'].sf_plan.containers[inventory_hostname] }}"
        secrets: "{{ stackfleet_secrets }}"
        docker_host: "{{ stackfleet_docker_host }}"
        tls: true
        ca_path: "{{ stackfleet_docker_ca_path }}"
        client_cert: "{{ stackfleet_docker_client_cert }}"
        client_key: "{{ stackfleet_docker_client_key }}"
      delegate_to: localhost
"""
# A stand-in for the C `syslog` module, first on PYTHONPATH of ansible-playbook and so of every
# module it runs locally: it appends "<ident>: <message>" to $SF_SYSLOG_CAPTURE.
FAKE_SYSLOG = '''\
import os
LOG_USER, LOG_INFO, LOG_PID, LOG_NDELAY = 8, 6, 1, 8
_ident = ["?"]


def __getattr__(name):
    if name.startswith("LOG_"):
        return 0
    raise AttributeError(name)


def openlog(ident="?", *args, **kwargs):
    _ident[0] = ident


def closelog():
    pass


def setlogmask(mask):
    return 0


def syslog(*args):
    path = os.environ.get("SF_SYSLOG_CAPTURE")
    if path:
        with open(path, "a") as handle:
            handle.write("%s: %s\\n" % (_ident[0], str(args[-1]).replace("\\n", " ")))
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The lab and a work folder: stack file, playbook, inventory folder, fake syslog."""
    with running_lab(**LAB) as lab:
        work = tmp_path_factory.mktemp("secrets")
        (work / "stack.yml").write_text(STACK)
        (work / "converge.yml").write_text(PLAYBOOK)
        (work / "module.yml").write_text(MODULE_PLAYBOOK)
        (work / "fakesyslog").mkdir()
        (work / "fakesyslog" / "syslog.py").write_text(FAKE_SYSLOG)
        inventory = work / "inventory"
        inventory.mkdir()
        os.symlink(lab.inventory_path, str(inventory / "hosts.yml"))
        (inventory / "lab.stackfleet.yml").write_text(
            "plugin: stackfleet.cluster.stacks\nstack_file: %s\nhost_groups: [stackfleet_hosts]\n" % (work / "stack.yml"))
        (work / "vault-pass").write_text("not-a-real-vault-password-%s\n" % RUN_ID)
        yield lab, work


def secrets_file(work, name, secrets, vault=()):
    """A vars file with stackfleet_secrets; the names in `vault` are ansible-vault encrypted."""
    lines = ["stackfleet_secrets:"]
    for key, value in secrets.items():
        if key in vault:
            out = subprocess.run([os.path.join(VENV_BIN, "ansible-vault"), "encrypt_string", "--vault-password-file",
                                  str(work / "vault-pass"), "--name", key, value], capture_output=True, text=True, check=True,
                                 env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg")))
            assert value not in out.stdout
            lines.extend("  " + line for line in out.stdout.strip().splitlines())
        else:
            lines.append("  %s: %s" % (key, json.dumps(value)))
    path = work / name
    path.write_text("\n".join(lines) + "\n")
    return path


class Run:
    """One playbook run: its output, the files it kept, and the captured system log."""

    def __init__(self, lab, work, secrets_path, tag, check=False, verbose=True, vault=False, playbook="converge.yml"):
        out = work / ("out-" + tag)
        out.mkdir()
        self.syslog_path = work / ("syslog-" + tag)
        args = ["-e", "@%s" % secrets_path] + (["-vvv"] if verbose else [])
        if vault:
            args += ["--vault-password-file", str(work / "vault-pass")]
        self.run = ansible_playbook(
            str(work / playbook), lab, extra_vars={"sf_stack_file": str(work / "stack.yml"), "sf_out": str(out)},
            check=check, diff=True, args=args,
            env={"PYTHONPATH": str(work / "fakesyslog"), "SF_SYSLOG_CAPTURE": str(self.syslog_path)}, timeout=600)
        self.files = {p.name: p.read_text() for p in sorted(out.iterdir())}
        self.syslog = self.syslog_path.read_text() if self.syslog_path.exists() else ""
        self.lab = lab

    @property
    def output(self):
        return self.run.stdout + self.run.stderr

    def converge_sections(self):
        """The -vvv output of the containers task (one section per TASK header)."""
        return [part for part in self.run.stdout.split("\nTASK [") if part.startswith("stackfleet.cluster.stack : Converge this host")]

    def changed(self):
        return {h.name: self.run.recap[h.name]["changed"] for h in self.lab.hosts}

    def assert_ok(self):
        assert self.run.rc == 0, self.run.stdout[-6000:] + self.run.stderr[-3000:]

    def assert_nothing_leaked(self, values, module_ran=True):
        where = {"ansible-playbook -vvv --diff stdout/stderr": self.output, "system log (Invoked with)": self.syslog}
        where.update(("kept result %s" % name, text) for name, text in self.files.items())
        for value in values:
            leaks = [name for name, text in where.items() if value in text]
            assert not leaks, "value %s appears in: %s" % (value, ", ".join(leaks))
        # plain env values: never in what the containers module logs, prints or returns
        containers_log = "\n".join(line for line in self.syslog.splitlines() if line.split(": ", 1)[0].endswith("containers"))
        module_output = "\n".join(self.converge_sections())
        returned = "\n".join(text for name, text in self.files.items() if name.startswith("converge-"))
        if module_ran:  # what is searched below is really there
            assert module_output and returned and '"actions"' in returned
        # The role converges on the controller, in the task's worker (plugin_utils/_in_worker.py): no module
        # process, so no "Invoked with" line at all (test_containers_module_args covers the module's own line).
        assert "Invoked with" not in containers_log, containers_log[:2000]
        for text, what in ((containers_log, "containers' system log"), (module_output, "containers' -vvv output"), (returned, "registered results")):
            assert PLAIN not in text, "a plain env value appears in the %s" % what


def unsafe_text(value):
    """ansible-inventory --list writes a string marked unsafe as {"__ansible_unsafe": text}."""
    assert isinstance(value, dict) and set(value) == {"__ansible_unsafe"}, value
    return value["__ansible_unsafe"]


def state(lab):
    """Every container of the cluster: name → (ID, config hash, running, env as a dict)."""
    found = {}
    for index in range(1, len(lab.hosts) + 1):
        for c in lab.docker_client(index).containers.list(all=True, filters={"label": "io.stackfleet.cluster=%s" % CLUSTER}):
            env = dict(item.split("=", 1) for item in c.attrs["Config"]["Env"] or ())
            found[c.name] = (c.id, c.labels.get(LABEL_HASH), c.status == "running", env)
    return found


def test_values_reach_the_containers_and_nothing_else(env):
    lab, work = env
    plain_secrets = secrets_file(work, "secrets-1.yml", {"db_password": DB_PASSWORD, "api_key": API_KEY})
    first = Run(lab, work, plain_secrets, "first")
    first.assert_ok()
    now = state(lab)
    assert set(now) == ALL and all(running for _id, _hash, running, _env in now.values())
    for name in USES_DB_PASSWORD:
        assert now[name][3]["DB_PASSWORD"] == DB_PASSWORD
    assert now["%s.app-1.app" % CLUSTER][3]["API_KEY"] == API_KEY and now["%s.worker-1.worker" % CLUSTER][3]["TOKEN"] == API_KEY
    assert now["%s.plain-1.plain" % CLUSTER][3]["PLAIN"] == PLAIN + "-plain"

    # The capture works (a check that cannot fail proves nothing): the run's modules logged their invocation.
    assert "Invoked with" in first.syslog, first.syslog[:2000]
    assert first.converge_sections(), "no -vvv section for the containers task"
    first.assert_nothing_leaked([DB_PASSWORD, API_KEY])
    plan = json.loads(first.files["plan.json"])
    docs = {d["name"]: d for host_docs in plan["containers"].values() for d in host_docs}
    assert docs["%s.db-1.db" % CLUSTER]["env"]["DB_PASSWORD"] == {"secret": "db_password"}
    assert docs["%s.app-1.app" % CLUSTER]["update"] == {"parallelism": 1}

    inventory = subprocess.run([os.path.join(VENV_BIN, "ansible-inventory"), "-i", str(work / "inventory"), "--list"],
                               capture_output=True, text=True, cwd=REPO, check=False,
                               env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg")))
    assert inventory.returncode == 0, inventory.stderr[-3000:]
    hostvars = json.loads(inventory.stdout)["_meta"]["hostvars"]
    listed = {unsafe_text(d["name"]): d for h in lab.hosts for d in hostvars[h.name]["stackfleet_containers"]}
    assert set(listed) == ALL
    # Marked unsafe down to the secret's name inside the nested reference (so never templated).
    assert listed["%s.app-2.app" % CLUSTER]["env"]["API_KEY"] == {"secret": {"__ansible_unsafe": "api_key"}}
    assert DB_PASSWORD not in inventory.stdout + inventory.stderr and API_KEY not in inventory.stdout + inventory.stderr

    second = Run(lab, work, plain_secrets, "second", verbose=False)
    second.assert_ok()
    assert second.changed() == {h.name: 0 for h in lab.hosts}, second.run.stdout[-4000:]
    assert {name: v[0] for name, v in state(lab).items()} == {name: v[0] for name, v in now.items()}


def test_rotating_a_vaulted_secret_replaces_exactly_its_containers(env):
    lab, work = env
    before = state(lab)
    assert set(before) == ALL
    rotated = secrets_file(work, "secrets-2.yml", {"db_password": DB_PASSWORD_2, "api_key": API_KEY}, vault=("db_password", "api_key"))
    assert DB_PASSWORD_2 not in rotated.read_text()

    check = Run(lab, work, rotated, "rotate-check", check=True, vault=True)
    check.assert_ok()
    assert state(lab) == before  # check mode changed nothing
    real = Run(lab, work, rotated, "rotate", vault=True)
    real.assert_ok()
    assert check.changed() == real.changed(), (check.changed(), real.changed())
    after = state(lab)
    assert set(after) == ALL and all(v[2] for v in after.values())
    for name in ALL:
        if name in USES_DB_PASSWORD:
            assert after[name][0] != before[name][0] and after[name][1] != before[name][1], name
            assert after[name][3]["DB_PASSWORD"] == DB_PASSWORD_2
        else:
            assert after[name][:2] == before[name][:2], name  # same ID, same hash
    real.assert_nothing_leaked([DB_PASSWORD, DB_PASSWORD_2, API_KEY])
    check.assert_nothing_leaked([DB_PASSWORD, DB_PASSWORD_2, API_KEY])

    again = Run(lab, work, rotated, "rotate-again", verbose=False, vault=True)
    again.assert_ok()
    assert again.changed() == {h.name: 0 for h in lab.hosts}, again.run.stdout[-4000:]


def test_a_missing_secret_fails_every_host_before_any_change(env):
    lab, work = env
    before = state(lab)
    # db_password rotated (the db containers would be replaced) but api_key missing: nothing may change anywhere.
    partial = secrets_file(work, "secrets-3.yml", {"db_password": DB_PASSWORD_3})
    failed = Run(lab, work, partial, "missing")
    assert failed.run.rc != 0
    assert all(failed.run.recap[h.name]["failed"] == 1 for h in lab.hosts), failed.run.stdout[-4000:]
    for expected in ("secret 'api_key' for %s.app-1.app env API_KEY" % CLUSTER, "secret 'api_key' for %s.app-2.app env API_KEY" % CLUSTER,
                     "secret 'api_key' for %s.worker-1.worker env TOKEN" % CLUSTER, "nothing was changed"):
        assert expected in failed.output, failed.run.stdout[-4000:]
    assert state(lab) == before
    failed.assert_nothing_leaked([DB_PASSWORD, DB_PASSWORD_2, DB_PASSWORD_3], module_ran=False)

    # The module on its own refuses as well, on each host whose documents lack a value, before it connects
    # (db_password as it is now: a host without api_key users has nothing to do and stays as it is).
    current = secrets_file(work, "secrets-3b.yml", {"db_password": DB_PASSWORD_2})
    alone = Run(lab, work, current, "missing-module", playbook="module.yml")
    assert alone.run.rc != 0
    assert "secret 'api_key' for %s.worker-1.worker env TOKEN" % CLUSTER in alone.output, alone.run.stdout[-4000:]
    assert "nothing was changed" in alone.output
    assert state(lab) == before
    assert DB_PASSWORD_2 not in alone.output + alone.syslog

    # A re-run with every secret repairs: the rotation is applied, then nothing changes.
    full = secrets_file(work, "secrets-4.yml", {"db_password": DB_PASSWORD_3, "api_key": API_KEY})
    repaired = Run(lab, work, full, "repair", verbose=False)
    repaired.assert_ok()
    after = state(lab)
    assert {n for n in ALL if after[n][0] != before[n][0]} == USES_DB_PASSWORD
    assert all(after[n][3]["DB_PASSWORD"] == DB_PASSWORD_3 for n in USES_DB_PASSWORD) and all(v[2] for v in after.values())
    final = Run(lab, work, full, "final", verbose=False)
    final.assert_ok()
    assert final.changed() == {h.name: 0 for h in lab.hosts}
    assert state(lab) == after

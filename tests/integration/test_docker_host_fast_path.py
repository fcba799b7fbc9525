"""docker_host's steady-state fast path (issue 11 §2): a host already as declared costs one read and the
endpoint check; a host whose daemon.json or certificates drifted, or whose engine is stopped, is not
skipped: the full path repairs it, restarts or starts the engine, and the check waits until it answers.

The host is this machine through a local connection, on the role's raw (CoreOS) path, with every file
under a scratch root. `systemctl` is a stand-in on PATH that drives a real lab dockerd: is-active asks
whether it runs, start and restart (re)launch it (tests/lab) with the options of the daemon.json the role
wrote (less the listeners and TLS files, which the lab passes as flags), so the endpoint check talks to a
real TLS engine with the lab's CA and client certificate, and GET /info shows which configuration it runs.

A run interrupted after it wrote a new daemon.json and before its handler restarted the engine leaves
the files right and the engine running the old configuration: the next run sees the file changed after
the engine started (its ctime against the pidfile's mtime) and restarts it, fast path or not."""
import json
import os
import shutil
import socket
import ssl
import stat
import sys

import pytest
from conftest import REPO, ansible_playbook, lab_spec, running_lab

sys.path.insert(0, os.path.join(REPO, "tests", "lab"))
import lab_tls  # noqa: E402  # the lab's certificates, made with the openssl CLI

PLAYBOOK = "tests/integration/playbooks/docker_host_fast_path.yml"
LAB = lab_spec("dh", hosts=1)

FAKE_SYSTEMCTL = """#!/bin/sh
# systemctl stand-in for docker.service: the state of the lab's dockerd, and (re)starts of it.
echo "$*" >> {state}/calls.log
for arg in "$@"; do case "$arg" in --*) ;; *) set -- "$@" "$arg" ;; esac; shift; done
case "$1" in
  show) echo {state}/docker.service ;;
  is-enabled) if [ -f {state}/enabled ]; then echo enabled; else echo disabled; exit 1; fi ;;
  is-active) if [ -f {pidfile} ] && kill -0 "$(cat {pidfile})" 2>/dev/null; then echo active; else echo inactive; exit 3; fi ;;
  enable) touch {state}/enabled ;;
  start) {python} {state}/unit.py start_docker ;;
  # fail-restart: the run is cut off before the engine restarts (its files are written by then)
  restart) if [ -f {state}/fail-restart ]; then echo "interrupted" >&2; exit 1; fi
           {python} {state}/unit.py stop_docker start_docker ;;
  daemon-reload) ;;
  *) echo "systemctl stand-in: $*: not handled" >&2; exit 1 ;;
esac
"""

# What systemd would start: the lab's dockerd with the options of the role's daemon.json and the TLS files
# the role wrote (once there are any).
DOCKERD_UNIT = """import json, os, sys
sys.path.insert(0, {lab_dir!r})
from lab import Lab

OWNED = ("hosts", "tls", "tlsverify", "tlscacert", "tlscert", "tlskey")  # lab flags: the same listener
FILES = {{"--tlscacert": "ca.pem", "--tlscert": "cert.pem", "--tlskey": "key.pem"}}


class Unit(Lab):
    def _dockerd_argv(self, host):
        argv = super()._dockerd_argv(host)  # writes {{}} to the lab's own daemon.json first
        try:
            with open({daemon_json!r}) as handle:
                wanted = json.load(handle)
        except FileNotFoundError:
            wanted = {{}}
        with open(os.path.join(host.dir, "daemon.json"), "w") as handle:
            json.dump({{key: value for key, value in wanted.items() if key not in OWNED}}, handle)
        for index, arg in enumerate(argv[:-1]):
            if arg in FILES and os.path.exists(os.path.join({tls_dir!r}, FILES[arg])):
                argv[index + 1] = os.path.join({tls_dir!r}, FILES[arg])
        return argv


unit = Unit(name={name!r}, subnet={subnet!r}, hosts=1)
for step in sys.argv[1:]:
    getattr(unit, step)(1)
"""

VENDOR_UNIT = """[Service]
ExecStart=/usr/bin/dockerd -H fd:// \\
    --containerd=/run/containerd/containerd.sock
"""


@pytest.fixture(scope="module")
def engine_lab():
    with running_lab(**LAB) as up:
        yield up


@pytest.fixture
def host(engine_lab, tmp_path):
    """(run the role -> PlaybookRun, the scratch root, the stand-in's state folder)."""
    lab = engine_lab
    state = tmp_path / "state"
    state.mkdir()
    (state / "docker.service").write_text(VENDOR_UNIT)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL.format(state=state, python=sys.executable, pidfile=lab.host(1).docker_pidfile))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    root = tmp_path / "root"
    (state / "unit.py").write_text(DOCKERD_UNIT.format(lab_dir=os.path.join(REPO, "tests", "lab"), name=lab.name, subnet=lab.subnet,
                                                       daemon_json=str(root / "etc/docker/daemon.json"), tls_dir=str(root / "etc/docker/tls")))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("engines:\n  hosts:\n    e1: {ansible_connection: local, ansible_python_interpreter: %s}\n" % sys.executable)
    h1 = lab.host(1)
    base_vars = {
        # this Debian machine takes the raw-only path; every file goes under the scratch root
        "_docker_host_coreos_ids": ["debian"],
        "_docker_host_daemon_json": str(root / "etc/docker/daemon.json"),
        "_docker_host_dropin_dir": str(root / "etc/systemd/system/docker.service.d"),
        "_docker_host_pidfile": h1.docker_pidfile,
        "docker_host_tls_dir": str(root / "etc/docker/tls"),
        "docker_host_tls_ca_cert": lab.ca_cert,
        "docker_host_tls_cert": h1.server_cert,
        "docker_host_tls_key": h1.server_key,
        "docker_host_check_address": h1.address,
        "docker_host_tls_client_cert": lab.client_cert,
        "docker_host_tls_client_key": lab.client_key,
        "docker_host_daemon_options": {"log-driver": "json-file"},
    }

    def run(**extra):
        return ansible_playbook(PLAYBOOK, str(inventory), extra_vars=dict(base_vars, **extra),
                                env={"PATH": str(bin_dir) + os.pathsep + os.environ["PATH"]}, timeout=300)

    return run, root, state


def calls(state):
    path = state / "calls.log"
    return path.read_text().splitlines() if path.exists() else []


def install_tasks_ran(run):
    return "Write /etc/docker/daemon.json (raw)" in run.stdout


def test_a_steady_host_takes_the_fast_path_and_a_drifted_one_is_repaired(host, engine_lab):
    run, root, state = host
    daemon_json = root / "etc/docker/daemon.json"
    cert = root / "etc/docker/tls/cert.pem"

    first = run()
    assert first.rc == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert install_tasks_ran(first) and first.recap["e1"]["changed"] > 0
    assert "enable docker.service" in calls(state) and "restart docker.service" in calls(state)
    wanted = json.loads(daemon_json.read_text())
    assert wanted["log-driver"] == "json-file" and wanted["tlsverify"] is True
    good_cert = cert.read_text()

    before = len(calls(state))
    steady = run()
    assert steady.rc == 0, steady.stdout[-3000:] + steady.stderr[-2000:]
    assert steady.recap["e1"]["changed"] == 0
    assert not install_tasks_ran(steady), "the fast path did not skip the install tasks on a steady host"
    assert "GET /_ping from the controller" in steady.stdout
    assert not [c for c in calls(state)[before:] if c.split()[0] in ("restart", "start", "enable")]

    # Drift: daemon.json edited by hand, the server certificate gone.
    daemon_json.write_text(json.dumps(dict(wanted, debug=True)))
    cert.unlink()
    before = len(calls(state))
    repaired = run()
    assert repaired.rc == 0, repaired.stdout[-3000:] + repaired.stderr[-2000:]
    assert install_tasks_ran(repaired) and repaired.recap["e1"]["changed"] > 0
    assert "daemon.json differs" in repaired.stdout and "cert.pem is missing" in repaired.stdout
    assert json.loads(daemon_json.read_text()) == wanted and cert.read_text() == good_cert
    assert "restart docker.service" in calls(state)[before:], "the engine was not restarted after the repair"

    again = run()
    assert again.rc == 0 and again.recap["e1"]["changed"] == 0 and not install_tasks_ran(again)

    # docker_host_fast_path: false always takes the full path (and still changes nothing here).
    full = run(docker_host_fast_path=False)
    assert full.rc == 0 and full.recap["e1"]["changed"] == 0 and install_tasks_ran(full)


def test_a_stopped_engine_is_started_and_waited_for_and_one_that_never_answers_fails(host, engine_lab):
    run, _root, state = host
    assert run().rc == 0
    engine_lab.stop_docker(1)
    before = len(calls(state))
    started = run()
    assert started.rc == 0, started.stdout[-3000:] + started.stderr[-2000:]
    assert "docker.service is not active" in started.stdout and install_tasks_ran(started)
    assert "start docker.service" in calls(state)[before:]
    assert engine_lab.host(1).dockerd_pid(), "the engine does not run after the role started it"

    # An endpoint that never answers (nothing listens there) fails the host after the wait, naming
    # the URL, although the host itself is as declared: the fast path never skips the check.
    down = run(docker_host_check_address="127.0.0.1", docker_host_check_wait=2)
    assert down.rc != 0 and down.recap["e1"]["failed"] == 1
    assert not install_tasks_ran(down)
    assert "GET https://127.0.0.1:2376/_ping: no 200 OK within 2" in down.stdout


def engine_labels(lab):
    """The labels of the configuration the lab's dockerd runs (GET /info over its unix socket)."""
    return lab.host(1).engine._json("GET", "/info").get("Labels") or []  # pylint: disable=protected-access


def test_an_engine_left_on_its_old_configuration_by_an_interrupted_run_is_restarted(host, engine_lab):
    run, root, state = host
    daemon_json = root / "etc/docker/daemon.json"
    first = run(docker_host_daemon_options={"labels": ["sf.test=one"]})
    assert first.rc == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert engine_labels(engine_lab) == ["sf.test=one"]

    # The next run writes a new daemon.json and is cut off before its handler restarts the engine.
    (state / "fail-restart").touch()
    cut = run(docker_host_daemon_options={"labels": ["sf.test=two"]})
    (state / "fail-restart").unlink()
    assert cut.rc != 0 and "Restart docker (raw)" in cut.stdout, cut.stdout[-3000:]
    assert json.loads(daemon_json.read_text())["labels"] == ["sf.test=two"]
    assert engine_labels(engine_lab) == ["sf.test=one"], "the stand-in restarted the engine although it was told not to"

    # The files are right and the engine answers, yet it runs the old configuration: not steady.
    before = len(calls(state))
    pid = engine_lab.host(1).dockerd_pid()
    repaired = run(docker_host_daemon_options={"labels": ["sf.test=two"]})
    assert repaired.rc == 0, repaired.stdout[-3000:] + repaired.stderr[-2000:]
    assert "daemon.json changed after the engine started" in repaired.stdout, repaired.stdout[-3000:]
    assert "restart docker.service" in calls(state)[before:] and repaired.recap["e1"]["changed"] > 0
    assert engine_lab.host(1).dockerd_pid() != pid
    assert engine_labels(engine_lab) == ["sf.test=two"], "the engine still runs the old daemon.json"

    again = run(docker_host_daemon_options={"labels": ["sf.test=two"]})
    assert again.rc == 0 and again.recap["e1"]["changed"] == 0 and not install_tasks_ran(again), again.stdout[-3000:]

    # The same with the fast path off: the full path finds nothing to write, and still restarts the engine.
    (state / "fail-restart").touch()
    cut = run(docker_host_daemon_options={"labels": ["sf.test=three"]}, docker_host_fast_path=False)
    (state / "fail-restart").unlink()
    assert cut.rc != 0 and engine_labels(engine_lab) == ["sf.test=two"]
    full = run(docker_host_daemon_options={"labels": ["sf.test=three"]}, docker_host_fast_path=False)
    assert full.rc == 0 and full.recap["e1"]["changed"] > 0, full.stdout[-3000:] + full.stderr[-2000:]
    assert engine_labels(engine_lab) == ["sf.test=three"]
    steady = run(docker_host_daemon_options={"labels": ["sf.test=three"]})
    assert steady.rc == 0 and steady.recap["e1"]["changed"] == 0 and not install_tasks_ran(steady)


def served_certificate(lab):
    """The server certificate the engine presents (DER), over a full handshake with the client certificate."""
    context = ssl.create_default_context(cafile=lab.ca_cert)
    context.load_cert_chain(lab.client_cert, lab.client_key)
    host = lab.host(1)
    with socket.create_connection((host.address, 2376), timeout=10) as sock, \
            context.wrap_socket(sock, server_hostname=host.address) as tls:
        return tls.getpeercert(binary_form=True)


def test_an_engine_left_on_its_old_certificate_by_an_interrupted_run_is_restarted(host, engine_lab, tmp_path):
    run, root, state = host
    assert run().rc == 0
    h1 = engine_lab.host(1)
    with open(h1.server_cert) as handle:
        assert served_certificate(engine_lab) == ssl.PEM_cert_to_DER_cert(handle.read())
    # A new server certificate from the same CA (a rotation), installed by a run that is cut off before the restart.
    pki = tmp_path / "pki"
    pki.mkdir()
    for name in ("ca.pem", "ca-key.pem"):
        shutil.copy(os.path.join(engine_lab.tls_dir, name), pki / name)
    new_cert, new_key = lab_tls.ensure_cert(str(pki), "rotated", h1.name, ["IP:" + h1.address, "DNS:" + h1.name])
    with open(new_cert) as handle:
        new_pem = handle.read()
    new_der = ssl.PEM_cert_to_DER_cert(new_pem)
    (state / "fail-restart").touch()
    cut = run(docker_host_tls_cert=new_cert, docker_host_tls_key=new_key)
    (state / "fail-restart").unlink()
    assert cut.rc != 0 and (root / "etc/docker/tls/cert.pem").read_text().strip() == new_pem.strip()
    assert served_certificate(engine_lab) != new_der

    repaired = run(docker_host_tls_cert=new_cert, docker_host_tls_key=new_key)
    assert repaired.rc == 0, repaired.stdout[-3000:] + repaired.stderr[-2000:]
    assert "cert.pem changed after the engine started" in repaired.stdout and "key.pem changed after the engine started" in repaired.stdout
    assert served_certificate(engine_lab) == new_der, "the engine still presents the old certificate"
    again = run(docker_host_tls_cert=new_cert, docker_host_tls_key=new_key)
    assert again.rc == 0 and again.recap["e1"]["changed"] == 0 and not install_tasks_ran(again)

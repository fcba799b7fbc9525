"""An engine that goes down while the containers module waits for a container to come up
(issue 10, "error messages that mislead"): the error must say the engine stopped answering, not
"exited with code 0 (last output: Terminated)", and the next run, with the engine back, converges.

    STACKFLEET_TEST_LAB_PREFIX=.. STACKFLEET_TEST_NET=.. .venv/bin/pytest tests/integration/test_faults_engine.py -v
"""
import threading
import time

import docker
import yaml
from conftest import VENV_BIN, ansible_playbook, lab_spec, running_lab

LAB = lab_spec("fe", hosts=1)


def _playbook(lab, path):
    """The containers module converging one container that turns healthy after ~8 s."""
    task = {
        "stackfleet.cluster.containers": {
            "cluster": "dying", "docker_host": lab.hosts[0].docker_url, "tls": True, "validate_certs": True,
            "ca_path": lab.ca_cert, "client_cert": lab.client_cert, "client_key": lab.client_key,
            "wait": "healthy", "wait_timeout": 60,
            "containers": [{
                "name": "dying.web-1.web", "cluster": "dying", "service": "web", "instance": "web-1", "image": "local/busybox:1",
                "command": ["sh", "-c", "trap 'exit 0' TERM; (sleep 8; touch /tmp/ready) & sleep 2147483647 & wait"],
                "healthcheck": {"test": ["CMD", "test", "-f", "/tmp/ready"], "interval": 1, "timeout": 2, "retries": 3,
                                "start_period": 30},
            }],
        },
    }
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": {"ansible_python_interpreter": VENV_BIN + "/python"}, "tasks": [task]}]
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    return str(path)


def _stop_once_started(lab, timeout=60.0):
    """Stop the engine as soon as the container runs (the module then waits ~8 s for "healthy"):
    a fixed delay raced the module's start on a loaded machine and stopped the engine before it."""
    client = lab.docker_client(1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.containers.get("dying.web-1.web").status == "running":
                break
        except docker.errors.NotFound:
            pass
        time.sleep(0.2)
    lab.stop_docker(1)


def test_an_engine_that_dies_mid_run_is_named_and_the_next_run_converges(tmp_path):
    with running_lab(**LAB) as lab:
        playbook = _playbook(lab, tmp_path / "converge.yml")
        stopper = threading.Thread(target=_stop_once_started, args=(lab,))  # while the module waits for "healthy"
        stopper.start()
        try:
            run = ansible_playbook(playbook, "localhost,")
        finally:
            stopper.join()
        assert run.rc != 0
        text = run.stdout + run.stderr
        assert "the Docker engine at %s stopped answering while this container was starting" % lab.hosts[0].docker_url in text, text[-3000:]
        assert "exited with code 0 (last output" not in text

        lab.start_docker(1)
        again = ansible_playbook(playbook, "localhost,")
        assert again.rc == 0, again.stdout[-3000:]
        container = lab.docker_client(1).containers.get("dying.web-1.web")
        assert container.status == "running"
        settled = ansible_playbook(playbook, "localhost,")
        assert settled.rc == 0 and settled.recap["localhost"]["changed"] == 0, settled.stdout[-3000:]

"""A lost etcd quorum on a real 3-host lab (issue 10, "error messages that mislead"): two of
three members stopped. site.yml must say that quorum is lost, which members answer and how many
must run again, not only "cannot reach etcd: ... timed out", and change no container.

    STACKFLEET_TEST_LAB_PREFIX=.. STACKFLEET_TEST_NET=.. .venv/bin/pytest tests/integration/test_faults_etcd_quorum.py -v
"""
import lab_etcd
from conftest import ansible_playbook, lab_spec, running_lab

LAB = lab_spec("fq", hosts=3, etcd=True)
STACK = """\
cluster: quorum
services:
  web:
    image: local/busybox:1
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
deploy:
  web:
    count: 2
"""
# site.yml without the engine and etcd roles: the lab runs both already.
SITE_VARS = {"stackfleet_manage_docker": False, "stackfleet_manage_etcd": False, "stack_lock_wait_timeout": 0}


def _containers(lab):
    return {c.name: c.id for c in lab.docker_client(1).containers.list(all=True) if c.name != lab_etcd.CONTAINER}


def test_a_lost_quorum_is_named_as_such_and_changes_nothing(tmp_path):
    stack = tmp_path / "stack.yml"
    stack.write_text(STACK)
    with running_lab(**LAB) as lab:
        first = ansible_playbook("playbooks/site.yml", lab, dict(SITE_VARS, stackfleet_stack_file=str(stack)))
        assert first.rc == 0, first.stdout[-4000:]
        before = _containers(lab)
        lab.stop_docker(2)  # the etcd members of h2 and h3 stop with their engines
        lab.stop_docker(3)
        run = ansible_playbook("playbooks/site.yml", lab, dict(SITE_VARS, stackfleet_stack_file=str(stack)))
        assert run.rc != 0
        h1, h2, h3 = (host.name for host in lab.hosts)
        assert "etcd has lost quorum: 1 of 3 members answer (%s) and none has a leader; no answer from %s, %s" % (h1, h2, h3) \
            in run.stdout, run.stdout[-5000:]
        assert "until 2 of 3 run again" in run.stdout
        assert _containers(lab) == before

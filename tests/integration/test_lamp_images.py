"""The LAMP images built here from Debian packages (tests/lab/lab_lamp_images.py), on a real lab.

Two LAMP instances, each a MariaDB and the PHP app on the default bridge with published ports
(the app reaches its database at the host's address and published port, as stackfleet wires
them), and one HAProxy balancing both. Checked: the images' healthchecks, the app's visit count
through the load balancer, MariaDB keeping its rows across a restart and a replacement of its
container, clean SIGTERM shutdowns, /health.php answering 503 without a database and HAProxy
routing every request around that instance, and 503 from HAProxy without backends.

    STACKFLEET_TEST_LAB_PREFIX=qa STACKFLEET_TEST_NET=211 .venv/bin/pytest tests/integration/test_lamp_images.py -v
"""
import hashlib
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request

import lab_lamp_images
import pytest
from conftest import lab_spec, running_lab

pytestmark = pytest.mark.lab

LAB = lab_spec("im", hosts=2, images=("lamp",))
DB_PORT, WEB_PORT, LB_PORT = 23306, 20001, 20080
SECRETS = {"MARIADB_ROOT_PASSWORD": "r00t'pw", "MARIADB_DATABASE": "app", "MARIADB_USER": "app", "MARIADB_PASSWORD": "s3cret\\'x"}
IMAGES = {image.ref: image for image in lab_lamp_images.IMAGES}
# No proxy from the environment between the controller and the lab.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def healthcheck(ref):
    """The image's documented healthcheck command, checked every second as a stack file would."""
    return {"test": list(IMAGES[ref].healthcheck), "interval": 10**9, "timeout": 3 * 10**9, "retries": 3, "start_period": 0}


def get(url, timeout=5.0):
    """(status, body) of a GET, also for error statuses."""
    try:
        with HTTP.open(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def answer(body):
    """`instance=lamp-a host=qaim-h1 visits=3` -> {"instance": "lamp-a", "host": "qaim-h1", "visits": 3}."""
    fields = dict(re.findall(r"(\w+)=(\S+)", body))
    return {"instance": fields["instance"], "host": fields["host"], "visits": int(fields["visits"])}


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.25)


def health(container):
    container.reload()
    return container.attrs["State"].get("Health", {}).get("Status")


def run_db(client, name, volume):
    return client.containers.run(
        "local/mariadb:10.11", name=name, detach=True, environment=SECRETS, ports={"3306/tcp": DB_PORT},
        volumes={volume: {"bind": "/var/lib/mysql", "mode": "rw"}}, healthcheck=healthcheck("local/mariadb:10.11"),
    )


def run_web(client, host, instance):
    env = {"DB_HOST": host.address, "DB_PORT": str(DB_PORT), "DB_NAME": "app", "DB_USER": "app",
           "DB_PASSWORD": SECRETS["MARIADB_PASSWORD"], "INSTANCE": instance, "HOST_NAME": host.name}
    return client.containers.run("local/lamp-web:1", name="web-" + instance, detach=True, environment=env,
                                 ports={"80/tcp": WEB_PORT}, healthcheck=healthcheck("local/lamp-web:1"))


@pytest.fixture(scope="module")
def lamp():
    """Instance lamp-a on h1 and lamp-b on h2 (database + app each), HAProxy on h1 over both."""
    started = time.monotonic()
    with running_lab(**LAB) as lab:
        clients = {i: lab.docker_client(i) for i in (1, 2)}
        containers = {"db-a": run_db(clients[1], "db-a", "db-a"), "db-b": run_db(clients[2], "db-b", "db-b")}
        containers["web-a"] = run_web(clients[1], lab.host(1), "lamp-a")
        containers["web-b"] = run_web(clients[2], lab.host(2), "lamp-b")
        backends = ",".join("%s:%d" % (lab.host(i).address, WEB_PORT) for i in (1, 2))
        containers["lb"] = clients[1].containers.run(
            "local/haproxy:2.6", name="lb", detach=True, environment={"BACKENDS": backends}, ports={"80/tcp": LB_PORT},
            healthcheck=healthcheck("local/haproxy:2.6"),
        )
        yield {"lab": lab, "clients": clients, "containers": containers, "lb": "http://%s:%d" % (lab.host(1).address, LB_PORT),
               "up_seconds": time.monotonic() - started}


def test_healthchecks_become_healthy(lamp):
    for name, container in lamp["containers"].items():
        wait_for(lambda c=container: health(c) == "healthy", 60, "%s healthy" % name)
    db = lamp["containers"]["db-a"]
    assert db.logs().decode().count("entrypoint: initialising an empty /var/lib/mysql") == 1
    # The healthcheck logs in as the privilege-less healthcheck user: no refused root login per check.
    assert "Access denied" not in db.logs().decode()


def test_visits_counted_through_the_load_balancer(lamp):
    seen = {}
    for _request in range(4):
        status, body = get(lamp["lb"] + "/")
        assert status == 200, body
        fields = answer(body)
        seen.setdefault(fields["instance"], []).append(fields["visits"])
        assert fields["host"] == {"lamp-a": lamp["lab"].host(1).name, "lamp-b": lamp["lab"].host(2).name}[fields["instance"]]
    # Round-robin over both instances, each counting the rows of its own database.
    assert seen == {"lamp-a": [1, 2], "lamp-b": [1, 2]}


def visits(lamp, host_index):
    status, body = get("http://%s:%d/" % (lamp["lab"].host(host_index).address, WEB_PORT))
    assert status == 200, body
    return answer(body)["visits"]


def test_mariadb_keeps_its_rows_across_restart_and_replacement(lamp):
    before = visits(lamp, 1)
    db = lamp["containers"]["db-a"]
    started = time.monotonic()
    db.restart(timeout=10)  # SIGTERM: mariadbd is PID 1 and shuts down cleanly
    assert time.monotonic() - started < 8
    wait_for(lambda: health(db) == "healthy", 30, "db-a healthy after restart")
    assert visits(lamp, 1) == before + 1
    logs = db.logs().decode()
    assert "mariadbd: Shutdown complete" in logs
    assert logs.count("entrypoint: initialising") == 1  # the existing datadir is used as it is

    # A replacement (what stackfleet does on an image or config change): a new container on the same volume.
    db.stop(timeout=10)
    db.reload()
    assert db.attrs["State"]["ExitCode"] == 0
    db.remove()
    new = run_db(lamp["clients"][1], "db-a", "db-a")
    lamp["containers"]["db-a"] = new
    wait_for(lambda: health(new) == "healthy", 30, "replaced db-a healthy")
    assert "initialising" not in new.logs().decode()
    assert visits(lamp, 1) == before + 2


def test_database_down_health_503_and_the_load_balancer_routes_around_it(lamp):
    lab = lamp["lab"]
    db_b = lamp["containers"]["db-b"]
    db_b.stop(timeout=10)
    try:
        status, body = get("http://%s:%d/health.php" % (lab.host(2).address, WEB_PORT))
        assert (status, body.split()[0]) == (503, "error=database")
        status, body = get("http://%s:%d/" % (lab.host(2).address, WEB_PORT))
        assert status == 503, body
        # From the first request on, lamp-b's 503 is retried on lamp-a (retry-on 503 + redispatch);
        # after two failed health checks (~2 s) haproxy no longer sends anything to lamp-b.
        answers = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            status, body = get(lamp["lb"] + "/")
            assert status == 200, body
            answers.append(answer(body)["instance"])
            time.sleep(0.1)
        assert set(answers) == {"lamp-a"}
        wait_for(lambda: health(lamp["containers"]["web-b"]) == "unhealthy", 15, "web-b unhealthy without its database")
    finally:
        db_b.start()
    wait_for(lambda: health(db_b) == "healthy", 30, "db-b healthy again")
    wait_for(lambda: {answer(get(lamp["lb"] + "/")[1])["instance"] for _attempt in range(4)} == {"lamp-a", "lamp-b"}, 15,
             "lamp-b back behind the load balancer")


def test_graceful_stops_are_quick(lamp):
    # Apache stops gracefully on the image's SIGWINCH, haproxy's sh forwards SIGTERM: no 10 s kill.
    for name in ("web-a", "lb"):
        container = lamp["containers"][name]
        started = time.monotonic()
        container.stop(timeout=10)
        assert time.monotonic() - started < 5, name
        container.reload()
        assert container.attrs["State"]["ExitCode"] in (0, 143), (name, container.attrs["State"])


def test_haproxy_without_backends_answers_503(lamp):
    lab = lamp["lab"]
    lb = lamp["clients"][2].containers.run("local/haproxy:2.6", name="lb-empty", detach=True, environment={"BACKENDS": ""},
                                           ports={"80/tcp": LB_PORT + 1})
    try:
        url = "http://%s:%d/" % (lab.host(2).address, LB_PORT + 1)
        assert wait_for(lambda: get_or_none(url)[0], 10, "haproxy answering") == 503
    finally:
        lb.remove(force=True)


def test_mariadb_refuses_an_empty_datadir_without_root_password(lamp):
    container = lamp["clients"][2].containers.run("local/mariadb:10.11", name="db-nopw", detach=True)
    try:
        assert container.wait(timeout=30)["StatusCode"] == 1
        assert "no MARIADB_ROOT_PASSWORD" in container.logs().decode()
    finally:
        container.remove(force=True, v=True)


def test_a_failed_initialisation_leaves_an_empty_datadir(lamp):
    client = lamp["clients"][2]
    env = dict(SECRETS, MARIADB_DATABASE="d" * 80)  # longer than MariaDB allows: CREATE DATABASE fails
    container = client.containers.run("local/mariadb:10.11", name="db-bad", detach=True, environment=env,
                                      volumes={"db-bad": {"bind": "/var/lib/mysql", "mode": "rw"}})
    try:
        assert container.wait(timeout=60)["StatusCode"] == 1
        assert "initialisation failed" in container.logs().decode()
    finally:
        container.remove(force=True)
    listing = client.containers.run("local/mariadb:10.11", ["ls", "-A", "/var/lib/mysql"], remove=True,
                                    volumes={"db-bad": {"bind": "/var/lib/mysql", "mode": "rw"}})
    assert listing.decode().split() == []


def test_a_layer_holds_exactly_the_difference_from_the_base(tmp_path):
    """The builder's diff, on a small tree: changed (also same size, same second) and new paths, a whiteout
    per removed path (one for a removed folder), and a new hard link to a base file written as a plain
    file (a layer cannot link below itself)."""
    root = tmp_path / "rootfs"
    for folder in ("etc", "gone/deeper", "dev"):
        (root / folder).mkdir(parents=True)
    for name, text in {"etc/kept": "same", "etc/changed": "old", "etc/removed": "x", "gone/deeper/f": "y", "dev/null": ""}.items():
        (root / name).write_text(text)
    os.utime(root / "etc", (1, 1))
    base_tar = tmp_path / "base.tar"
    lab_lamp_images._write_layer(str(root), str(base_tar))
    assert "dev/null" not in tarfile.open(base_tar).getnames()  # the engine mounts its own /dev

    (root / "etc/changed").write_text("new")
    (root / "etc/removed").unlink()
    shutil.rmtree(root / "gone")
    (root / "etc/added").write_text("z")
    os.link(root / "etc/kept", root / "etc/kept-link")
    layer_tar = tmp_path / "layer.tar"
    diff_id = lab_lamp_images._write_layer(str(root), str(layer_tar), lab_lamp_images._read_index(str(base_tar)))
    with tarfile.open(layer_tar) as tar:
        members = {member.name: member for member in tar}
        assert set(members) == {"etc", "etc/added", "etc/changed", "etc/kept-link", "etc/.wh.removed", ".wh.gone"}
        assert tar.extractfile("etc/changed").read() == b"new"
        assert members["etc/kept-link"].isreg() and tar.extractfile("etc/kept-link").read() == b"same"
    assert diff_id == "sha256:" + hashlib.sha256(layer_tar.read_bytes()).hexdigest()
    assert not list(tmp_path.glob("*.partial"))


def get_or_none(url):
    try:
        return get(url, timeout=2)
    except OSError:
        return (None, "")

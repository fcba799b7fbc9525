"""A real multi-host lab on one machine: network namespaces on a bridge, each with
its own dockerd (TLS on tcp://IP:2376) and optionally its own etcd member.

    python3 tests/lab/lab.py up [--name sf] [--subnet 10.231.0.0/24] [--hosts 3] [--etcd] [--plain] [--images lamp]
    python3 tests/lab/lab.py status | down | stop-docker 2 | start-docker 2 | disconnect 2 | reconnect 2

Run as root. Stdlib only, so it works before the project venv exists; tests import
`Lab` from here. The recipe and its traps are in docs/lab.md.
"""
import argparse
import concurrent.futures
import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lab_etcd  # noqa: E402
import lab_images  # noqa: E402
import lab_inventory  # noqa: E402
import lab_lamp_images  # noqa: E402
import lab_net  # noqa: E402
import lab_procs  # noqa: E402
import lab_tls  # noqa: E402
from lab_engine import API_VERSION, Engine, EngineError  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STATE_ROOT = "/tmp/stackfleet-lab"
DOCKERD_READY_TIMEOUT = 30.0
DOCKERD_STOP_TIMEOUT = 20.0
ETCD_READY_TIMEOUT = 60.0
# What a lab's state directory may hold; `down` refuses to delete a directory with anything else.
STATE_ENTRIES = re.compile(r"^(h\d+|tls|images|inventory\.yml|lab\.json)$")
# Image sets a lab loads only when asked (`images=("lamp",)`, `up --images lamp`): big, built from Debian packages.
IMAGE_SETS = ("lamp",)


class LabError(Exception):
    pass


class Host:
    """One lab host: a network namespace named `<lab>-h<index>`, which is also its inventory name."""

    def __init__(self, lab, index, address):
        self.lab = lab
        self.index = index
        self.name = "%s-h%d" % (lab.name, index)
        self.address = address
        self.dir = os.path.join(lab.state_dir, "h%d" % index)
        self.netns_path = "/var/run/netns/" + self.name
        self.veth = "v%s-h%d" % (lab.name, index)
        self.docker_socket = os.path.join(self.dir, "docker.sock")
        self.docker_pidfile = os.path.join(self.dir, "docker.pid")
        self.data_root = os.path.join(self.dir, "docker")
        self.exec_root = os.path.join(self.dir, "exec")
        self.etcd_data_dir = os.path.join(self.dir, "etcd")
        self.server_cert = os.path.join(lab.tls_dir, self.name + ".pem")
        self.server_key = os.path.join(lab.tls_dir, self.name + "-key.pem")
        self.ca_cert = lab.ca_cert
        port = 2375 if lab.plain else 2376
        self.docker_url = "tcp://%s:%d" % (address, port)
        self.etcd_endpoint = "https://%s:2379" % address
        self.etcd_peer_url = "https://%s:2380" % address
        self.labels = {
            "rack": "r%d" % ((index - 1) % 2 + 1),
            "disk": "ssd" if ((index - 1) // 2) % 2 == 0 else "hdd",
            "zone": "z%d" % ((index - 1) // 3 + 1),
        }

    @property
    def engine(self):
        return Engine(self.docker_socket)

    def dockerd_pid(self):
        """The daemon's PID if it runs from this host's data root (never a recycled PID)."""
        pid = lab_procs.read_pidfile(self.docker_pidfile)
        if pid and lab_procs.alive(pid) and self.data_root in lab_procs.cmdline(pid):
            return pid
        return None


class Lab:
    def __init__(self, name="sf", subnet="10.231.0.0/24", hosts=3, etcd=False, plain=False, state_dir=None, python=None, images=()):
        if not re.match(r"^[a-z][a-z0-9]{0,7}$", name):
            raise LabError("lab name %r: use 1-8 lowercase letters/digits, starting with a letter (it prefixes interface names)" % name)
        network = ipaddress.ip_network(subnet)
        if not 1 <= hosts <= min(50, network.num_addresses - 12):
            raise LabError("--hosts %d does not fit %s (host i gets .10+i)" % (hosts, subnet))
        unknown = sorted(set(images) - set(IMAGE_SETS))
        if unknown:
            raise LabError("unknown image set(s) %s; known: %s" % (", ".join(unknown), ", ".join(IMAGE_SETS)))
        self.name = name
        self.images = tuple(images)
        self.image_load_seconds = {}
        self.subnet = str(network)
        self.etcd = etcd
        self.plain = plain
        self.state_dir = os.path.abspath(state_dir or os.path.join(STATE_ROOT, name))
        venv_python = os.path.join(REPO, ".venv", "bin", "python")
        self.python = python or (venv_python if os.path.exists(venv_python) else sys.executable)
        self.bridge = name + "br0"
        self.rule_comment = "stackfleet-lab:" + name
        self.gateway = "%s/%d" % (network.network_address + 1, network.prefixlen)
        self.tls_dir = os.path.join(self.state_dir, "tls")
        self.images_dir = os.path.join(self.state_dir, "images")
        self.inventory_path = os.path.join(self.state_dir, "inventory.yml")
        self.state_file = os.path.join(self.state_dir, "lab.json")
        self.ca_cert = os.path.join(self.tls_dir, "ca.pem")
        self.client_cert = os.path.join(self.tls_dir, "client.pem")
        self.client_key = os.path.join(self.tls_dir, "client-key.pem")
        self._network = network
        self.hosts = [self._host(i) for i in range(1, hosts + 1)]

    def _host(self, index):
        return Host(self, index, str(self._network.network_address + 10 + index))

    def host(self, index):
        """Host by 1-based index (`h1` is index 1)."""
        return self.hosts[index - 1]

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()

    # ---- up ----------------------------------------------------------------

    def up(self):
        """Brings the lab up, completing whatever a previous run left half-built."""
        started = time.monotonic()
        os.makedirs(self.state_dir, exist_ok=True)
        recorded = self._check_recorded()
        lab_net.ensure_bridge(self.bridge, self.gateway)
        lab_net.ensure_forward_rule(self.bridge, self.rule_comment)
        self._ensure_tls()
        for host in self.hosts:
            os.makedirs(host.dir, exist_ok=True)
            lab_net.ensure_host(host.name, host.veth, "%s/%d" % (host.address, self._network.prefixlen), self.bridge)
            lab_net.ensure_container_egress(host.name, self.subnet)
        launched = [(host, self._launch_dockerd(host)) for host in self.hosts if not host.dockerd_pid()]
        # Built while the daemons start; the LAMP archive is built once per machine and cached.
        archives = lab_images.ensure_archives(self.images_dir)
        lamp = lab_lamp_images.ensure_archive() if "lamp" in self.images else None
        self._each(lambda item: self._wait_dockerd(*item), launched)
        self._each(lambda host: self._ensure_images(host, archives, lamp), self.hosts)
        if self.etcd:
            recorded["etcd_token"] = self._ensure_etcd(recorded.get("etcd_token"))
        self._write_state(recorded)
        with open(self.inventory_path, "w") as handle:
            handle.write(lab_inventory.render(self))
        self.up_seconds = time.monotonic() - started
        return self

    def _ensure_images(self, host, archives, lamp):
        lab_images.ensure_images(host.engine, archives)
        if lamp:
            started = time.monotonic()
            if lab_lamp_images.ensure_loaded(host.engine, lamp):
                self.image_load_seconds[host.name] = time.monotonic() - started

    def _params(self):
        return {"name": self.name, "subnet": self.subnet, "hosts": len(self.hosts), "etcd": self.etcd, "plain": self.plain}

    def _check_recorded(self):
        try:
            with open(self.state_file) as handle:
                recorded = json.load(handle)
        except FileNotFoundError:
            return self._params()
        mismatched = {key: recorded.get(key) for key, value in self._params().items() if recorded.get(key) != value}
        if mismatched:
            raise LabError("lab %s exists with %s; run `down` first" % (self.name, mismatched))
        return recorded

    def _write_state(self, recorded):
        with open(self.state_file, "w") as handle:
            json.dump(recorded, handle, indent=2)

    def _ensure_tls(self):
        lab_tls.ensure_ca(self.tls_dir, self.name)
        lab_tls.ensure_cert(self.tls_dir, "client", "stackfleet-controller", server=False)
        for host in self.hosts:
            sans = ["IP:" + host.address, "IP:127.0.0.1", "DNS:localhost", "DNS:" + host.name]
            lab_tls.ensure_cert(self.tls_dir, host.name, host.name, sans)

    @staticmethod
    def _each(task, items):
        """Runs `task` for every item in parallel; re-raises the first failure."""
        items = list(items)
        if not items:
            return []
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(items)) as pool:
            return list(pool.map(task, items))

    # ---- dockerd -----------------------------------------------------------

    def _dockerd_argv(self, host):
        config = os.path.join(host.dir, "daemon.json")
        with open(config, "w") as handle:
            handle.write("{}\n")  # never the machine's /etc/docker/daemon.json
        argv = [
            "nsenter", "--net=" + host.netns_path, "dockerd",
            "--config-file", config,
            "--data-root", host.data_root, "--exec-root", host.exec_root, "--pidfile", host.docker_pidfile,
            "-H", "unix://" + host.docker_socket, "-H", host.docker_url,
            # The default bridge (docker0) publishes ports through docker-proxy; lab_net.ensure_container_egress
            # lets its containers reach other hosts. dockerd itself never touches iptables.
            "--iptables=false", "--ip-forward=false", "--ip-masq=false",
            "--cgroup-parent", host.name,
            # Separate containerd namespaces keep the daemons apart should a system containerd appear.
            "--containerd-namespace", host.name, "--containerd-plugins-namespace", host.name + "-plugins",
        ]
        if self.plain:
            argv.append("--tls=false")  # without it a TCP-listening dockerd sleeps ~15 s at start
        else:
            argv += ["--tlsverify", "--tlscacert", self.ca_cert, "--tlscert", host.server_cert, "--tlskey", host.server_key]
        return argv

    def _launch_dockerd(self, host):
        # nsenter with only --net execs, so the PID is the daemon's own.
        with open(os.path.join(host.dir, "dockerd.log"), "ab") as log:
            return subprocess.Popen(
                self._dockerd_argv(host), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def _wait_dockerd(self, host, proc):
        deadline = time.monotonic() + DOCKERD_READY_TIMEOUT
        engine = host.engine
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise LabError("dockerd of %s exited with %s:\n%s" % (host.name, proc.returncode, self._log_tail(host)))
            if engine.ping(timeout=0.5):
                return
            time.sleep(0.05)
        raise LabError("dockerd of %s not ready after %ss:\n%s" % (host.name, DOCKERD_READY_TIMEOUT, self._log_tail(host)))

    @staticmethod
    def _log_tail(host, lines=15):
        try:
            with open(os.path.join(host.dir, "dockerd.log"), errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop_docker(self, index):
        """Stops one host's dockerd (its containers stop with it) to make the engine unreachable."""
        host = self.host(index)
        pid = host.dockerd_pid()
        if pid:
            lab_procs.terminate([pid], DOCKERD_STOP_TIMEOUT)

    def start_docker(self, index):
        host = self.host(index)
        if not host.dockerd_pid():
            self._wait_dockerd(host, self._launch_dockerd(host))

    def disconnect(self, index):
        """Takes the host's link down: its addresses stop answering at all (timeouts, not refusals)."""
        lab_net.set_link(self.host(index).name, up=False)

    def reconnect(self, index):
        lab_net.set_link(self.host(index).name, up=True)

    # ---- etcd --------------------------------------------------------------

    def _ensure_etcd(self, token):
        found = {host.name: host.engine.inspect(lab_etcd.CONTAINER) for host in self.hosts}
        if not token or not any(found.values()):
            # A data dir from another cluster makes etcd ignore --initial-cluster: start clean.
            token = "%s-%s" % (self.name, secrets.token_hex(8))
            for host in self.hosts:
                shutil.rmtree(host.etcd_data_dir, ignore_errors=True)
            self._write_state(dict(self._params(), etcd_token=token))
        members = [(host.name, host.address) for host in self.hosts]

        def ensure(host):
            container = found[host.name]
            if container is None:
                lab_etcd.ensure_data_dir(host.etcd_data_dir)
                host.engine.create(lab_etcd.CONTAINER, lab_etcd.container_config(host, members, token, "new", self.name))
                host.engine.start(lab_etcd.CONTAINER)
            elif not container["State"]["Running"]:
                host.engine.start(lab_etcd.CONTAINER)

        self._each(ensure, self.hosts)
        lab_etcd.wait_healthy([host.etcd_endpoint for host in self.hosts], self.etcd_ssl_context(), ETCD_READY_TIMEOUT)
        return token

    def etcd_ssl_context(self):
        return lab_etcd.ssl_context(self.ca_cert, self.client_cert, self.client_key)

    @property
    def etcd_endpoints(self):
        return [host.etcd_endpoint for host in self.hosts]

    # ---- clients -----------------------------------------------------------

    def docker_client_kwargs(self, index):
        """Keyword arguments for `docker.DockerClient` reaching host `index` over TCP (+TLS).

        The API version is pinned, not "auto": auto-detection connects inside the
        constructor, before `docker_client` can switch off the environment's CA bundle.
        """
        host = self.host(index)
        kwargs = {"base_url": host.docker_url, "version": API_VERSION}
        if not self.plain:
            import docker.tls  # only callers that use the SDK need it

            kwargs["tls"] = docker.tls.TLSConfig(client_cert=(self.client_cert, self.client_key), ca_cert=self.ca_cert, verify=True)
        return kwargs

    def docker_client(self, index):
        """A `docker.DockerClient` for host `index` that trusts the lab CA whatever the environment says.

        requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's own CA file,
        which fails every handshake with the lab's engines where those are set.
        """
        import docker

        client = docker.DockerClient(**self.docker_client_kwargs(index))
        client.api.trust_env = False
        return client

    # ---- down --------------------------------------------------------------

    def _known_hosts(self):
        """Every host a previous run may have created, whatever this object was told."""
        indices = {host.index for host in self.hosts}
        indices.update(int(ns.rsplit("-h", 1)[1]) for ns in lab_net.lab_netns(self.name))
        if os.path.isdir(self.state_dir):
            indices.update(int(entry[1:]) for entry in os.listdir(self.state_dir) if re.match(r"^h\d+$", entry))
        return [self._host(i) for i in sorted(indices)]

    def down(self):
        """Removes everything the lab may have created, even after a failed or partial `up`."""
        started = time.monotonic()
        hosts = self._known_hosts()
        self._each(self._remove_containers, [host for host in hosts if host.dockerd_pid()])
        lab_procs.terminate([pid for pid in (host.dockerd_pid() for host in hosts) if pid], DOCKERD_STOP_TIMEOUT)
        lab_procs.terminate(lab_procs.leftovers([host.netns_path for host in hosts], self.state_dir), 5.0)
        self._unmount_under(self.state_dir)
        for host in hosts:
            self._unmount_under(host.netns_path)
            lab_net.delete_host(host.name, host.veth)
            _remove_cgroups(host.name)
        lab_net.delete_bridge(self.bridge)
        lab_net.delete_forward_rule(self.bridge, self.rule_comment)
        self._remove_state_dir()
        self.down_seconds = time.monotonic() - started

    @staticmethod
    def _remove_containers(host):
        try:
            engine = host.engine
            for container in engine.containers():
                engine.remove(container["Id"])
        except (OSError, EngineError):
            pass  # the daemon is stopped next; this only makes that fast

    @staticmethod
    def _unmount_under(prefix):
        for point in sorted(_mount_points(prefix), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30, check=False)

    def _remove_state_dir(self):
        if not os.path.isdir(self.state_dir):
            return
        strangers = [entry for entry in os.listdir(self.state_dir) if not STATE_ENTRIES.match(entry)]
        if strangers:
            raise LabError("not deleting %s: it holds %s, which the lab did not create" % (self.state_dir, strangers))
        shutil.rmtree(self.state_dir)

    # ---- status ------------------------------------------------------------

    def status(self):
        """What exists right now, as plain data (also what `lab.py status` prints)."""
        context = self.etcd_ssl_context() if self.etcd and os.path.exists(self.client_key) else None
        namespaces = set(lab_net.lab_netns(self.name))
        hosts = []
        for host in self._known_hosts():
            pid = host.dockerd_pid()
            entry = {"name": host.name, "address": host.address, "netns": host.name in namespaces, "dockerd_pid": pid,
                     "dockerd": "stopped", "images": [], "containers": []}
            if pid and host.engine.ping():
                entry["dockerd"] = "running"
                entry["images"] = host.engine.images()
                entry["containers"] = [{"name": c["Names"][0].lstrip("/"), "image": c["Image"], "state": c["State"]}
                                       for c in host.engine.containers()]
            if context:
                entry["etcd"] = "healthy" if lab_etcd.healthy(host.etcd_endpoint, context) else "unhealthy"
            hosts.append(entry)
        return {
            "name": self.name, "subnet": self.subnet, "state_dir": self.state_dir, "tls": not self.plain, "etcd": self.etcd,
            "bridge": lab_net.link_exists(self.bridge), "forward_rule": lab_net.forward_rule_present(self.bridge, self.rule_comment),
            "inventory": self.inventory_path if os.path.exists(self.inventory_path) else None, "hosts": hosts,
        }


def _mount_points(prefix):
    prefix = prefix.rstrip("/")
    points = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), line.split()[4])
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    return points


def _remove_cgroups(parent):
    """dockerd leaves the empty `--cgroup-parent` directory in every hierarchy."""
    root = "/sys/fs/cgroup"
    for hierarchy in os.listdir(root):
        top = os.path.join(root, hierarchy, parent)
        if not os.path.isdir(top):
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda walk: len(walk[0]), reverse=True):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass  # still holds a process: the next `down` retries


def _print_status(status):
    if not status["bridge"] and not any(host["netns"] or host["dockerd_pid"] for host in status["hosts"]):
        print("lab %s is not up (state %s)" % (status["name"], status["state_dir"]))
        return
    print("lab %s  subnet %s  %s  etcd=%s  state %s" % (
        status["name"], status["subnet"], "tls" if status["tls"] else "plaintext", status["etcd"], status["state_dir"]))
    print("bridge %s  forward rule %s  inventory %s" % (
        "up" if status["bridge"] else "absent", "present" if status["forward_rule"] else "absent", status["inventory"] or "absent"))
    for host in status["hosts"]:
        line = "  %-10s %-15s netns=%s dockerd=%s" % (host["name"], host["address"], "yes" if host["netns"] else "no", host["dockerd"])
        if host["dockerd_pid"]:
            line += "(pid %d)" % host["dockerd_pid"]
        if "etcd" in host:
            line += " etcd=" + host["etcd"]
        print(line)
        if host["images"]:
            print("      images: " + " ".join(host["images"]))
        for container in host["containers"]:
            print("      container %s (%s) %s" % (container["name"], container["image"], container["state"]))


def _lab_from_args(args):
    lab = Lab(args.name, args.subnet, args.hosts, args.etcd, args.plain, args.state_dir, images=args.images)
    recorded = os.path.join(lab.state_dir, "lab.json")
    if args.command != "up" and os.path.exists(recorded):
        # status/down/stop-docker act on the lab as it was brought up.
        with open(recorded) as handle:
            params = json.load(handle)
        lab = Lab(args.name, params["subnet"], params["hosts"], params["etcd"], params["plain"], args.state_dir)
    return lab


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "status", "stop-docker", "start-docker", "disconnect", "reconnect"])
    parser.add_argument("host", nargs="?", type=int, help="1-based host index for stop-/start-docker, disconnect, reconnect")
    parser.add_argument("--name", default="sf", help="prefix of namespaces, bridge and state dir (default sf)")
    parser.add_argument("--subnet", default="10.231.0.0/24", help="bridge is .1, host i is .10+i (default 10.231.0.0/24)")
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--etcd", action="store_true", help="also run a 3.4 etcd member per host (one TLS cluster)")
    parser.add_argument("--plain", action="store_true", help="plaintext Docker API on :2375 instead of TLS on :2376")
    parser.add_argument("--state-dir", help="default %s/<name>" % STATE_ROOT)
    parser.add_argument("--images", action="append", default=[], choices=IMAGE_SETS,
                        help="also load this image set into every host: lamp = local/mariadb:10.11, local/lamp-web:1, "
                             "local/haproxy:2.6 (built once per machine, cached; see docs/lab.md)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root: the lab creates namespaces, a bridge and daemons")
    if args.command in ("stop-docker", "start-docker", "disconnect", "reconnect") and args.host is None:
        parser.error("%s needs a host index" % args.command)
    try:
        lab = _lab_from_args(args)
        if args.command == "up":
            lab.up()
            print("lab %s up in %.2fs; inventory: %s" % (lab.name, lab.up_seconds, lab.inventory_path))
        elif args.command == "down":
            lab.down()
            print("lab %s down in %.2fs" % (lab.name, lab.down_seconds))
        elif args.command == "status":
            status = lab.status()
            _print_status(status)
            return 0 if status["hosts"] and all(h["dockerd"] == "running" for h in status["hosts"]) else 1
        else:
            getattr(lab, args.command.replace("-", "_"))(args.host)
    except (LabError, EngineError, lab_net.NetError, lab_tls.TLSError, lab_lamp_images.BuildError, TimeoutError) as exc:
        print("lab.py %s: %s" % (args.command, exc), file=sys.stderr)
        if args.command == "up":
            print("the lab may be half-built: run `up` again to complete it or `down` to remove it", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Bridge, network namespaces, veth pairs and the FORWARD rule of a lab.

Every function here is idempotent: it checks before it adds, and ignores what is
already gone when it deletes, so `up` can complete a half-built lab and `down`
can clean up after any failure.
"""
import re
import subprocess


class NetError(Exception):
    pass


def sh(*argv, check=True, timeout=30):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise NetError("%s failed (%s): %s" % (" ".join(argv), proc.returncode, proc.stderr.strip()))
    return proc


def link_exists(dev, netns=None):
    prefix = ("ip", "-n", netns) if netns else ("ip",)
    return sh(*prefix, "link", "show", "dev", dev, check=False).returncode == 0


def netns_list():
    out = sh("ip", "netns", "list").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def ensure_bridge(bridge, gateway_cidr):
    if not link_exists(bridge):
        sh("ip", "link", "add", bridge, "type", "bridge")
    sh("ip", "addr", "replace", gateway_cidr, "dev", bridge)
    sh("ip", "link", "set", bridge, "up")


def _forward_rule(bridge, comment):
    return ["FORWARD", "-i", bridge, "-o", bridge, "-m", "comment", "--comment", comment, "-j", "ACCEPT"]


def ensure_forward_rule(bridge, comment):
    """A dockerd that ever ran on the machine sets the FORWARD policy to DROP, which
    silently drops traffic between the lab's namespaces on the bridge."""
    rule = _forward_rule(bridge, comment)
    if sh("iptables", "-w", "-C", *rule, check=False).returncode != 0:
        sh("iptables", "-w", "-I", *rule)


def delete_forward_rule(bridge, comment):
    rule = _forward_rule(bridge, comment)
    for _attempt in range(10):  # bounded: an interrupted run may have inserted it twice
        if sh("iptables", "-w", "-D", *rule, check=False).returncode != 0:
            return


def forward_rule_present(bridge, comment):
    return sh("iptables", "-w", "-C", *_forward_rule(bridge, comment), check=False).returncode == 0


def ensure_host(netns, veth, address_cidr, bridge):
    if netns not in netns_list():
        sh("ip", "netns", "add", netns)
    if not link_exists("eth0", netns):
        if link_exists(veth):  # a stale half of a pair from an interrupted run
            sh("ip", "link", "del", veth)
        sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    sh("ip", "link", "set", veth, "master", bridge, "up")
    sh("ip", "-n", netns, "addr", "replace", address_cidr, "dev", "eth0")
    sh("ip", "-n", netns, "link", "set", "eth0", "up")
    sh("ip", "-n", netns, "link", "set", "lo", "up")


def ensure_container_egress(netns, subnet):
    """Lets containers on the host's Docker bridges reach other hosts: forwarding on, and
    what leaves eth0 from a non-lab address (a bridge container's) masqueraded as the host.

    The lab's dockerd runs with --iptables=false, so this is the namespace's only NAT rule;
    published ports need none (docker-proxy). Both go away with the namespace."""
    sh("ip", "netns", "exec", netns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
    rule = ["POSTROUTING", "-o", "eth0", "!", "-s", subnet, "-j", "MASQUERADE"]
    if sh("ip", "netns", "exec", netns, "iptables", "-w", "-t", "nat", "-C", *rule, check=False).returncode != 0:
        sh("ip", "netns", "exec", netns, "iptables", "-w", "-t", "nat", "-A", *rule)


def delete_host(netns, veth):
    if netns in netns_list():
        sh("ip", "netns", "del", netns)
    if link_exists(veth):
        sh("ip", "link", "del", veth, check=False)


def delete_bridge(bridge):
    if link_exists(bridge):
        sh("ip", "link", "del", bridge)


def set_link(netns, up):
    sh("ip", "-n", netns, "link", "set", "eth0", "up" if up else "down")


def lab_netns(name):
    pattern = re.compile(r"^%s-h\d+$" % re.escape(name))
    return sorted(ns for ns in netns_list() if pattern.match(ns))

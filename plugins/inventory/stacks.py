# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: stacks
short_description: Groups and host variables from where a stack file places every container
version_added: 0.1.0
description:
  - Reads a stackfleet stack file, places every stack and service instance on the hosts with the same
    engine and the same rules as M(stackfleet.cluster.stack_plan), and adds the result to the inventory.
  - Hosts come from hosts loaded by earlier inventory sources (the members of O(host_groups), with their
    C(stackfleet_labels), C(stackfleet_capacity), C(ansible_host) and C(ansible_facts) variables, exactly as the
    P(stackfleet.cluster.host_documents#filter) filter reads them), from the inline O(hosts) list, and from machines
    registered in etcd under C(/stackfleet/<cluster>/machines/<name>).
  - The placement is stable against the previous one. That is read from the etcd state store when O(etcd_endpoints)
    is set and a record exists, otherwise from the C(io.stackfleet.cluster) and C(io.stackfleet.instance) labels of the
    cluster's containers on the hosts that have a C(stackfleet_docker_host) variable (connection options from the
    hosts' C(stackfleet_docker_*) variables; an unreachable host is skipped with a warning), otherwise there is none.
  - The host ports the planner chose for V(auto) ports are kept too (version 0.4.0), read from the etcd record's C(ports) or
    from the C(io.stackfleet.ports) label of those containers. Stateful instances whose host is not in the inventory are
    held there (C(stackfleet_placement) keeps them on it; they join no group).
  - Adds one group per deploy key (C(stackfleet_<deploy>)), per service (C(stackfleet_service_<service>)) and per
    stack (C(stackfleet_stack_<stack>)). Every character other than letters, digits and C(_) becomes C(_), so the
    deploy C(node-exporter) is the group C(stackfleet_node_exporter). Groups exist even when empty.
  - Every host placed onto joins the group C(stackfleet_hosts) and gets the variables C(stackfleet_cluster),
    C(stackfleet_instances) (its placement keys) and C(stackfleet_containers) (its container documents, the same
    as RV(stackfleet.cluster.stack_plan#module:containers) returns for it), only its own, so that a host's variables
    do not grow with the other hosts.
  - The cluster-wide variables are written once, as host variables of C(localhost) (see O(cluster_vars)), namely
    C(stackfleet_placement) (placement key to host name), C(stackfleet_placement_source)
    (V(etcd), V(docker) or V(none), the source of the previous placement), C(stackfleet_ports)
    (the host ports of the plan, as RV(stackfleet.cluster.stack_plan#module:ports)), and with O(status)
    C(stackfleet_status_summary) and C(stackfleet_status_counts). Other hosts read them as
    C(hostvars['localhost'].stackfleet_placement).
  - Uses a YAML configuration file whose name ends with C(.stackfleet.yml) or C(.stackfleet.yaml).
author:
  - stackfleet maintainers (@stackfleet)
extends_documentation_fragment:
  - ansible.builtin.constructed
  - ansible.builtin.inventory_cache
options:
  plugin:
    description: Marks this file as a configuration of this plugin.
    type: str
    required: true
    choices: [stackfleet.cluster.stacks]
  stack_file:
    description:
      - Path of the stack file. A relative path is relative to the directory of this configuration file.
      - C(~) is expanded.
    type: str
    required: true
  host_groups:
    description:
      - Groups of hosts loaded by earlier inventory sources to place onto (members of child groups included).
      - A source is earlier when it is named before this file on the command line, or, within one inventory
        directory, when its file name sorts before this file's name.
    type: list
    elements: str
    default: [stackfleet_hosts]
  hosts:
    description:
      - More hosts to place onto, added to the inventory by this plugin. Each is a host document (C(name), and
        optionally C(address), C(labels), C(capacity), C(facts)) plus optional C(vars), extra host variables such
        as C(stackfleet_docker_host). C(address) becomes C(ansible_host).
      - Values are taken literally; Jinja in them is never rendered.
    type: list
    elements: dict
    default: []
  cluster_vars:
    description:
      - Where the cluster-wide variables (C(stackfleet_placement), C(stackfleet_placement_source), C(stackfleet_ports),
        C(stackfleet_status_summary), C(stackfleet_status_counts)) are set.
      - V(localhost) sets them once, as host variables of the host C(localhost). When no earlier source has that host,
        it is added with a local connection (C(ansible_connection=local)) and the Python that runs Ansible
        (C(ansible_python_interpreter) set to the template of C(ansible_playbook_python)), as Ansible's implicit localhost,
        so plays on C(localhost) run as before. It is then an inventory host, so the pattern C(all) includes it
        (target C(stackfleet_hosts), or C(all:!localhost)).
      - V(all) sets them on the group C(all), as before version 0.4.0; every host inherits them, so C(ansible-inventory --list)
        (without C(--export)) repeats them under every host and its output grows with hosts times instances
        (docs/performance.md). For small inventories that read C(stackfleet_placement) on every host.
    type: str
    choices: [localhost, all]
    default: localhost
    version_added: 0.4.0
  use_vars_plugins:
    description:
      - Also read variables that vars plugins provide (C(group_vars/) and C(host_vars/) next to the inventory
        sources) when building host documents and Docker connections, as P(ansible.builtin.constructed#inventory)
        does. Without it only variables set by inventory sources themselves are seen.
    type: bool
    default: false
  previous_placement:
    description:
      - Where the previous placement comes from.
      - V(auto) reads the etcd state store when O(etcd_endpoints) is set; when that has no record yet (or etcd is not
        configured) it reads the labels of the containers on the hosts; when neither gives anything there is none.
      - V(etcd), V(docker) and V(none) use only that source.
    type: str
    choices: [auto, etcd, docker, none]
    default: auto
  docker_timeout:
    description:
      - Seconds to wait for one Docker engine when reading container labels, for hosts that set no
        C(stackfleet_docker_timeout). Engines are read in parallel.
    type: int
    default: 10
  etcd_endpoints:
    description:
      - Client URLs of the etcd cluster that holds stackfleet's state. Unset means no etcd.
      - V(host:port) without a scheme means V(https://) when O(etcd_ca_cert) or O(etcd_client_cert) is set.
    type: list
    elements: str
    env:
      - name: ETCDCTL_ENDPOINTS
      - name: ETCD_ENDPOINTS
  etcd_ca_cert:
    description: CA certificate that signed the etcd server certificates.
    type: path
    env:
      - name: ETCD_CACERT
      - name: ETCDCTL_CACERT
  etcd_client_cert:
    description: Client certificate presented to etcd.
    type: path
    env:
      - name: ETCD_CERT
      - name: ETCDCTL_CERT
  etcd_client_key:
    description: Key of O(etcd_client_cert).
    type: path
    env:
      - name: ETCD_KEY
      - name: ETCDCTL_KEY
  etcd_validate_certs:
    description: Verify the etcd server certificates.
    type: bool
    default: true
  etcd_user:
    description: User name for etcd authentication; V(name:password) is accepted when O(etcd_password) is unset.
    type: str
    env:
      - name: ETCD_USER
      - name: ETCDCTL_USER
  etcd_password:
    description: Password of O(etcd_user).
    type: str
    env:
      - name: ETCD_PASSWORD
      - name: ETCDCTL_PASSWORD
  etcd_timeout:
    description: Seconds to wait for one etcd request.
    type: float
    default: 5.0
    env:
      - name: ETCD_TIMEOUT
  etcd_machines:
    description: Also place onto the machines registered in etcd (when O(etcd_endpoints) is set).
    type: bool
    default: true
  status:
    description:
      - Also judge every container of the cluster as M(stackfleet.cluster.stack_status) does (verdicts V(ok), V(missing),
        V(stopped), V(unhealthy), V(drifted), V(duplicate), V(orphan), V(host-down)) and add them to the inventory.
      - Adds the groups C(stackfleet_status_ok), C(stackfleet_status_missing), C(stackfleet_status_stopped),
        C(stackfleet_status_unhealthy), C(stackfleet_status_drifted), C(stackfleet_status_duplicate),
        C(stackfleet_status_orphan) and C(stackfleet_status_host_down), each holding the hosts with at least one container
        of that verdict (always present, possibly empty); each host gets C(stackfleet_status), verdict to the names of
        B(its own) containers (planned there, or orphans found there), and C(localhost) (O(cluster_vars)) gets
        C(stackfleet_status_summary) and C(stackfleet_status_counts).
      - Reads each engine of a host with a C(stackfleet_docker_host) variable with one container listing (in parallel; the
        same listing the previous placement from Docker uses, so with O(previous_placement=docker) it costs no extra
        request). A host whose engine cannot be read, or that has no C(stackfleet_docker_host), is V(host-down).
      - From the listing alone, without inspect or image listing, so unlike M(stackfleet.cluster.stack_status) it does not
        see a limit or restart policy changed by hand or an image tag that moved, and containers with secret references
        are not judged by their hash (no secrets here).
      - With O(cache) on, the verdicts are those of the cached listing.
    type: bool
    default: false
    version_added: 0.3.0
notes:
  - Every value read from the stack file, this configuration's O(hosts), Docker or etcd is marked untrusted;
    Jinja in it is never rendered, in the inventory or in playbooks that use these variables.
  - An invalid stack file or an infeasible placement makes the source fail with the same message as
    M(stackfleet.cluster.stack_plan). Ansible only warns about a failed inventory source and goes on without its
    hosts unless C([inventory] any_unparsed_is_failed = true) (E(ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED)) is set;
    set it, so that a broken stack file stops C(ansible-inventory) and C(ansible-playbook).
  - An etcd that is configured but cannot be read also fails the source, because planning without the previous placement
    could move every container.
  - With O(cache) on, what was read from etcd and Docker (the previous placement and the registered machines) is
    cached; the stack file and the inventory hosts are read on every run. C(--flush-cache) reads etcd and Docker again.
seealso:
  - module: stackfleet.cluster.stack_plan
  - module: stackfleet.cluster.stack_state
  - plugin: stackfleet.cluster.host_documents
    plugin_type: filter
"""

EXAMPLES = r"""
---
# prod.stackfleet.yml: place prod.yml onto the hosts of group stackfleet_hosts (loaded from hosts.yml in the same
# inventory directory, which sorts first), with the previous placement from etcd.
plugin: stackfleet.cluster.stacks
stack_file: ../../stacks/prod.yml
host_groups: [flatcar, metal]
etcd_endpoints: [https://10.0.0.11:2379, https://10.0.0.12:2379]
etcd_ca_cert: /etc/stackfleet/tls/ca.pem
etcd_client_cert: /etc/stackfleet/tls/controller.pem
etcd_client_key: /etc/stackfleet/tls/controller-key.pem
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: ~/.cache/stackfleet-inventory
cache_timeout: 300

---
# Inline hosts, no etcd: the previous placement comes from the running containers' labels.
plugin: stackfleet.cluster.stacks
stack_file: stacks.yml
host_groups: []
hosts:
  - name: node-1
    address: 10.0.0.11
    labels: {rack: r1, disk: ssd}
    capacity: {cpus: 4, memory_mb: 8192}
    vars:
      stackfleet_docker_host: tcp://10.0.0.11:2376
      # Plain tcp:// is refused without TLS settings: the engine's CA and a client certificate.
      stackfleet_docker_ca_path: /etc/stackfleet/tls/ca.pem
      stackfleet_docker_client_cert: /etc/stackfleet/tls/controller.pem
      stackfleet_docker_client_key: /etc/stackfleet/tls/controller-key.pem
  - name: node-2
    address: 10.0.0.12
    labels: {rack: r2, disk: ssd}
    capacity: {cpus: 4, memory_mb: 8192}
    vars:
      stackfleet_docker_host: tcp://10.0.0.12:2376
      stackfleet_docker_ca_path: /etc/stackfleet/tls/ca.pem
      stackfleet_docker_client_cert: /etc/stackfleet/tls/controller.pem
      stackfleet_docker_client_key: /etc/stackfleet/tls/controller-key.pem

---
# Constructed features work on the placed hosts and their new variables.
plugin: stackfleet.cluster.stacks
stack_file: stacks.yml
compose:
  stackfleet_container_count: stackfleet_containers | length
groups:
  idle: stackfleet_containers | length == 0
keyed_groups:
  - key: stackfleet_labels.rack
    prefix: rack
"""

import concurrent.futures
import dataclasses
import os

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.inventory.helpers import get_group_vars
from ansible.plugins.inventory import BaseInventoryPlugin, Cacheable, Constructable
from ansible.template import is_trusted_as_template, trust_as_template
from ansible.utils.vars import combine_vars
from ansible.vars.plugins import get_vars_from_inventory_sources
from ansible_collections.stackfleet.cluster.plugins.module_utils import _converge, _desired, _docker, _etcd, _machines, _placement, _spec, _state, _status
from ansible_collections.stackfleet.cluster.plugins.plugin_utils import _inventory

HOSTS_GROUP = "stackfleet_hosts"
CLUSTER_HOST = "localhost"
CACHE_FORMAT = 1
_DOCKER_WORKERS = 16


class InventoryModule(BaseInventoryPlugin, Constructable, Cacheable):

    NAME = "stackfleet.cluster.stacks"
    INVENTORY_FILE_SUFFIXES = (".stackfleet.yml", ".stackfleet.yaml")

    def verify_file(self, path):
        """Cheap: the name decides; the content is checked by parse()."""
        return super().verify_file(path) and path.endswith(self.INVENTORY_FILE_SUFFIXES)

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._config_path = path
        self._read_config_data(path)
        spec = self._load_spec(path)
        inline = self._inline_hosts()
        known = self._inventory_hosts()
        hit, reads = self._cached_reads(path, cache)
        if not hit:
            reads = self._read_outside(spec, known, inline)
            self._update_cached_reads(path, cache, reads)
        self._populate(spec, known, inline, reads)

    # -- inputs -----------------------------------------------------------------------------

    def _load_spec(self, path):
        stack_file = os.path.join(os.path.dirname(os.path.abspath(path)), os.path.expanduser(self.get_option("stack_file")))
        try:
            spec = _spec.load_file(stack_file)
        except (_spec.SpecError, ImportError) as exc:
            raise AnsibleParserError(str(exc))
        for warning in spec.warnings:  # a valid file that likely means something else (a double-quoted "string")
            self.display.warning("stackfleet: %s" % warning)
        return spec

    def _inline_hosts(self):
        """name → (host document, extra vars) from the `hosts` option, untrusted and validated."""
        documents, extras = [], []
        for entry in _inventory.untrusted(self.get_option("hosts")):
            entry = dict(entry) if isinstance(entry, dict) else entry
            extras.append(dict(entry.pop("vars", None) or {}) if isinstance(entry, dict) else {})
            documents.append(entry)
        self._validate_hosts(documents, "%s: hosts" % self._config_path)
        return {doc["name"]: (doc, extra) for doc, extra in zip(documents, extras, strict=True)}

    def _inventory_hosts(self):
        """name → variables (templated where the source trusted them) of the hosts of `host_groups`."""
        known = {}
        for group in self.get_option("host_groups"):
            if group not in self.inventory.groups:
                continue
            for host in self.inventory.groups[group].get_hosts():
                if host.name not in known:
                    known[host.name] = self._resolved_vars(host)
        return known

    def _resolved_vars(self, host):
        variables = self._host_vars(host)
        resolved = {}
        for name in _inventory.DOCUMENT_VARS + tuple(_inventory.DOCKER_VARS):
            value = variables.get(name)
            if value is not None and _contains_trusted_template(value):
                try:
                    value = self.templar.copy_with_new_env(available_variables=variables).template(value)
                except AnsibleError as exc:
                    raise AnsibleParserError("host %s: cannot render %s: %s" % (host.name, name, exc))
            resolved[name] = value
        return resolved

    def _host_vars(self, host):
        """Group and host variables of `host`, as `constructed` collects them."""
        variables = combine_vars(get_group_vars(host.get_groups()), host.get_vars())
        if self.get_option("use_vars_plugins"):
            sources = getattr(self.inventory, "processed_sources", [])
            variables = combine_vars(variables, get_vars_from_inventory_sources(self.loader, sources, host.get_groups(), "all"))
            variables = combine_vars(variables, get_vars_from_inventory_sources(self.loader, sources, [host], "all"))
        return variables

    @staticmethod
    def _validate_hosts(documents, source):
        try:
            return _spec.load_hosts(documents, source=source)
        except _spec.SpecError as exc:
            raise AnsibleParserError(str(exc))

    # -- what is read from outside (and cached) -------------------------------------------------

    def _cached_reads(self, path, cache):
        """(hit, reads), following amazon.aws: no hit when caching is off or --flush-cache was given."""
        if not cache or not self.get_option("cache"):
            return False, None
        try:
            reads = self._cache[self.get_cache_key(path)]
        except KeyError:
            return False, None
        if not isinstance(reads, dict) or reads.get("format") != CACHE_FORMAT:
            return False, None
        if self.get_option("status") and reads.get("status") is None:
            return False, None  # cached without the listings the verdicts need
        return True, reads

    def _update_cached_reads(self, path, cache, reads):
        if not self.get_option("cache"):
            return
        key = self.get_cache_key(path)
        if cache and key in self._cache:
            return  # came from the cache: rewriting it would extend its timeout
        self._cache[key] = reads

    def _read_outside(self, spec, known, inline):
        """The previous placement and the registered machines, from etcd and Docker."""
        mode = self.get_option("previous_placement")
        reads = {"format": CACHE_FORMAT, "previous": {}, "ports": {}, "source": "none", "machines": [], "status": None}
        connections = dict(known)
        connections.update({name: extra for name, (_doc, extra) in inline.items()})
        listings = {}  # the one listing per engine, shared by the previous placement and the verdicts

        def engines(warn_missing):
            if not listings:
                listings.update(self._read_engines(spec, connections, warn_missing))
            return listings
        client = self._etcd_client()
        if client is None and mode == "etcd":
            raise AnsibleParserError("previous_placement: etcd needs etcd_endpoints (or ETCDCTL_ENDPOINTS)")
        if client is not None:
            try:
                if self.get_option("etcd_machines"):
                    reads["machines"] = self._read_machines(client, spec.cluster)
                if mode in ("auto", "etcd"):
                    record = _state.read_record(client, spec.cluster)
                    if record is not None:
                        reads.update(previous=record.placement, ports=record.ports, source="etcd")
            except (_etcd.EtcdError, _state.StateError) as exc:
                raise AnsibleParserError("cannot read the state of cluster %s from etcd: %s" % (spec.cluster, exc))
        if reads["source"] == "none" and mode in ("auto", "docker"):
            found = self._previous_from_listings(spec, engines(warn_missing=mode == "docker"))
            if found is not None:
                reads.update(previous=found[0], ports=found[1], source="docker")
        if self.get_option("status"):
            read = engines(warn_missing=False)
            reads["status"] = {"rows": read["rows"], "errors": read["errors"]}
        return reads

    def _etcd_client(self):
        endpoints = [e for e in self.get_option("etcd_endpoints") or () if e and e.strip()]
        if not endpoints:
            return None
        params = {"endpoints": endpoints, "ca_cert": self.get_option("etcd_ca_cert"),
                  "client_cert": self.get_option("etcd_client_cert"), "client_key": self.get_option("etcd_client_key"),
                  "validate_certs": self.get_option("etcd_validate_certs"), "user": self.get_option("etcd_user"),
                  "password": self.get_option("etcd_password"), "timeout": self.get_option("etcd_timeout")}
        try:
            return _etcd.client_from_params(params)
        except _etcd.EtcdError as exc:
            raise AnsibleParserError("etcd_endpoints: %s" % exc)

    def _read_machines(self, client, cluster):
        documents, problems = _machines.read_machines(client, cluster)
        valid = []
        for doc in documents:
            try:
                _spec.load_hosts([doc], source=_machines.machine_key(cluster, doc["name"]))
            except _spec.SpecError as exc:
                problems.append(str(exc))
                continue
            valid.append(doc)
        for problem in problems:
            if self.get_option("strict"):
                raise AnsibleParserError("registered machine: %s" % problem)
            self.display.warning("stackfleet: skipping a registered machine: %s" % problem)
        return valid

    def _read_engines(self, spec, connections, warn_missing):
        """{"rows": host → the cluster's containers as listing rows, "errors": host → why it was not read}:
        one listing per engine, all at once."""
        timeout = self.get_option("docker_timeout")
        params = {name: _inventory.docker_params(variables, timeout) for name, variables in sorted(connections.items())}
        missing = sorted(name for name, p in params.items() if p is None)
        if missing and warn_missing:
            self.display.warning("stackfleet: no stackfleet_docker_host for %s; their containers are not read" % ", ".join(missing))
        errors = {name: "not read: no stackfleet_docker_host variable" for name in missing}
        targets = {name: p for name, p in params.items() if p is not None}
        rows = {}
        if targets:
            with concurrent.futures.ThreadPoolExecutor(max_workers=min(_DOCKER_WORKERS, len(targets))) as pool:
                futures = {name: pool.submit(_list_cluster, p, spec.cluster) for name, p in targets.items()}
                for name, future in sorted(futures.items()):
                    try:
                        rows[name] = future.result()
                    except _docker.EngineError as exc:
                        errors[name] = str(exc)
        return {"rows": rows, "errors": errors}

    def _previous_from_listings(self, spec, read):
        """(placement, ports) from the labels of the cluster's containers, or None when no engine could be read."""
        for name, error in sorted(read["errors"].items()):
            if name not in read["rows"] and not error.startswith("not read:"):
                self.display.warning("stackfleet: skipping host %s for the previous placement: %s" % (name, error))
        if not read["rows"]:
            return None
        labels_by_host = {name: [row["labels"] for row in rows] for name, rows in read["rows"].items()}
        placement, notes = _inventory.previous_from_labels(spec, labels_by_host)
        for note in notes:
            self.display.warning("stackfleet: %s" % note)
        return placement, _inventory.previous_ports_from_labels(spec, placement, labels_by_host)

    # -- output -----------------------------------------------------------------------------

    def _populate(self, spec, known, inline, reads):
        documents = [_inventory.host_document(name, variables) for name, variables in known.items()]
        for name, (doc, _extra) in inline.items():
            if name not in known:
                documents.append(doc)
        machines = [doc for doc in _inventory.untrusted(reads["machines"]) if doc["name"] not in known and doc["name"] not in inline]
        hosts = self._validate_hosts(documents + machines, "hosts")
        previous = dict(reads["previous"])
        try:
            placement = _placement.plan(spec, hosts, previous, previous_ports=reads.get("ports") or {})
            containers = _desired.render(spec, placement.assignments, hosts, placement.ports, unavailable=placement.missing_hosts)
        except (_placement.PlacementError, _spec.SpecError) as exc:
            raise AnsibleParserError(str(exc))

        for name, (doc, extra) in inline.items():
            if name not in known:
                self._add_host(name, doc, extra)
        for doc in machines:
            self._add_host(doc["name"], doc, {})
        self.inventory.add_group(HOSTS_GROUP)
        # a unit held on a host that is not in the inventory (docs/placement.md "Held") joins no group
        missing_names = set(placement.missing_hosts)
        groups, warnings = _inventory.placement_groups(spec, (u for u in placement.units.values() if u.host not in missing_names))
        for warning in warnings:
            self.display.warning("stackfleet: %s" % warning)
        for group, members in groups.items():
            self.inventory.add_group(group)
            for host in members:
                self.inventory.add_child(group, host)

        instances = _inventory.host_instances(placement.assignments)
        set_var = self.inventory.set_variable
        # Cluster-wide data once, on one entity: never on a group the placed hosts are in, or
        # `ansible-inventory --list` repeats it under every host (hosts x instances).
        cluster_entity = self._cluster_entity()
        set_var(cluster_entity, "stackfleet_placement", _inventory.untrusted(placement.assignments))
        set_var(cluster_entity, "stackfleet_placement_source", reads["source"])
        set_var(cluster_entity, "stackfleet_ports", _inventory.untrusted(placement.ports))
        given = {h: docs for h, docs in containers.items() if h not in missing_names}
        verdicts = self._add_status(spec, hosts, given, placement.assignments, reads.get("status"), cluster_entity)
        strict = self.get_option("strict")
        for host in sorted(h.name for h in hosts):
            self.inventory.add_child(HOSTS_GROUP, host)
            set_var(host, "stackfleet_cluster", _inventory.untrusted(spec.cluster))
            set_var(host, "stackfleet_instances", _inventory.untrusted(instances.get(host, [])))
            set_var(host, "stackfleet_containers", _inventory.untrusted(containers.get(host, [])))
            if verdicts is not None:
                set_var(host, "stackfleet_status", _inventory.untrusted(verdicts.get(host, {})))
            variables = self._host_vars(self.inventory.hosts[host])
            self._set_composite_vars(self.get_option("compose"), variables, host, strict=strict)
            variables = self._host_vars(self.inventory.hosts[host])
            self._add_host_to_composed_groups(self.get_option("groups"), variables, host, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), variables, host, strict=strict)

    def _cluster_entity(self):
        """Where the cluster-wide variables go (option cluster_vars): the host `localhost`, added with a
        local connection unless an earlier source has it, or the group `all` (every host inherits them)."""
        if self.get_option("cluster_vars") == "all":
            return "all"
        if CLUSTER_HOST not in self.inventory.hosts:
            self.inventory.add_host(CLUSTER_HOST)
            self.inventory.set_variable(CLUSTER_HOST, "ansible_connection", "local")
            # what the implicit localhost uses: the Python running Ansible
            self.inventory.set_variable(CLUSTER_HOST, "ansible_python_interpreter", trust_as_template("{{ ansible_playbook_python }}"))
        return CLUSTER_HOST

    def _add_status(self, spec, hosts, containers, assignments, read, cluster_entity):
        """The verdict groups and `all` variables; host → its own verdicts (None when O(status) is off)."""
        if not self.get_option("status") or read is None:
            return None
        views = {}
        for host in hosts:
            rows = read["rows"].get(host.name)
            if rows is None:
                views[host.name] = _status.HostView(host.name, False, error=read["errors"].get(host.name) or "not read")
                continue
            seen = [_status.Seen(host.name, _converge.Observed(**row)) for row in rows]
            views[host.name] = _status.HostView(host.name, True, containers=seen)
        result = _status.status(spec.cluster, containers, views, placement=assignments)
        groups, per_host = _inventory.status_groups(result, views)
        for group, members in groups.items():
            self.inventory.add_group(group)
            for host in members:
                self.inventory.add_child(group, host)
        self.inventory.set_variable(cluster_entity, "stackfleet_status_summary", _inventory.untrusted(result["summary"]))
        self.inventory.set_variable(cluster_entity, "stackfleet_status_counts", result["counts"])
        return per_host

    def _add_host(self, name, doc, extra):
        """A host this plugin brings (inline or registered in etcd), with its document as host variables."""
        self.inventory.add_host(name)
        values = dict(extra)
        for var, key in (("stackfleet_labels", "labels"), ("stackfleet_capacity", "capacity"), ("stackfleet_drain", "drain"),
                         ("ansible_host", "address")):
            if doc.get(key):
                values[var] = doc[key]
        for var, value in values.items():
            self.inventory.set_variable(name, var, _inventory.untrusted(value))


def _list_cluster(params, cluster):
    """The cluster's containers on one engine as plain listing rows (one request; cacheable)."""
    engine = _docker.connect(_docker.resolve_endpoint(params))
    try:
        return [dataclasses.asdict(observed) for observed in engine.list_cluster(cluster)]
    finally:
        engine.api.close()


def _contains_trusted_template(value):
    if isinstance(value, dict):
        return any(_contains_trusted_template(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_contains_trusted_template(v) for v in value)
    return isinstance(value, str) and is_trusted_as_template(value)

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The only place stackfleet talks to a Docker engine (through the Docker SDK for Python).

Reads are batched: one container listing filtered by the cluster label and one image listing
describe a whole host, so a run where nothing changed makes two GET requests and no write.
"""

from __future__ import annotations

import dataclasses
import os
import re
import ssl
import time
import typing as t
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import env_fallback
from ansible_collections.stackfleet.cluster.plugins.module_utils._converge import (
    CREATE,
    FAILED,
    PENDING,
    RECREATE,
    ROLLED_BACK,
    STARTABLE_STATES,
    Action,
    Observed,
    Plan,
    batches,
    container_labels,
    replacement_batches,
    temp_name,
)
from ansible_collections.stackfleet.cluster.plugins.module_utils._model import LABEL_CLUSTER, LABEL_DEPLOY, LABEL_INSTANCE, LABEL_SERVICE
from ansible_collections.stackfleet.cluster.plugins.module_utils._secrets import env_for_engine

try:
    import docker
    import requests
    from docker.errors import DockerException

    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the target's Python
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = exc

    class DockerException(Exception):  # type: ignore[no-redef]
        """Placeholder so `except DockerException` works without the SDK."""

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
#: How long a started container must stay up, without restarting, to count as running.
SETTLE_SECONDS = 1.0
#: At most this many engine calls of one batch at once (creates, stop+start, swaps): the containers of
#: a batch are independent, so a batch of 25 costs about one call's time, not 25 (docs/performance.md
#: "Image change"). Also the SDK's connection pool size, so that no thread opens a throwaway connection.
MAX_CALLS = 16
#: How long a container that exited as if stopped (code 0 or 143) is checked against its engine:
#: a dockerd shutting down stops its containers first and closes its API a moment later.
ENGINE_GONE_GRACE = 3.0

#: The connection options every stackfleet module that talks to Docker takes (doc fragment
#: stackfleet.cluster.docker). `tls`/`validate_certs` have no default on purpose: "unset" and
#: "false" mean different things for a tcp:// host (see resolve_endpoint).
CONNECTION_ARGSPEC = dict(
    docker_host=dict(type="str", default=DEFAULT_DOCKER_HOST, aliases=["docker_url"], fallback=(env_fallback, ["DOCKER_HOST"])),
    tls=dict(type="bool", fallback=(env_fallback, ["DOCKER_TLS"])),
    validate_certs=dict(type="bool", aliases=["tls_verify"], fallback=(env_fallback, ["DOCKER_TLS_VERIFY"])),
    # Per-file variables too: AWX credential types inject files one by one, not a DOCKER_CERT_PATH folder.
    ca_path=dict(type="path", aliases=["ca_cert", "tls_ca_cert", "cacert_path"], fallback=(env_fallback, ["STACKFLEET_DOCKER_CA_PATH"])),
    client_cert=dict(type="path", aliases=["tls_client_cert", "cert_path"], fallback=(env_fallback, ["STACKFLEET_DOCKER_CLIENT_CERT"])),
    client_key=dict(type="path", aliases=["tls_client_key", "key_path"], fallback=(env_fallback, ["STACKFLEET_DOCKER_CLIENT_KEY"])),
    tls_hostname=dict(type="str", fallback=(env_fallback, ["DOCKER_TLS_HOSTNAME"])),
    api_version=dict(type="str", default="auto", aliases=["docker_api_version"], fallback=(env_fallback, ["DOCKER_API_VERSION"])),
    timeout=dict(type="int", default=60, fallback=(env_fallback, ["DOCKER_TIMEOUT"])),
)


_POOL_ERROR = re.compile(r"\b\w*ConnectionPool\(.*$")
_REASONS = (re.compile(r"\[Errno -?\d+\] ([^'\"()\]]+)"), re.compile(r"(timed out\.?(?: \((?:connect|read) timeout=[\d.]+\))?)"),
            re.compile(r"(certificate verify failed[^'\"()\]]*|bad certificate|wrong version number)"))


def short_error(text: str) -> str:
    """One line: urllib3's "HTTPSConnectionPool(...): Max retries exceeded ... (Caused by ...)" becomes
    the socket's reason (Connection refused, No route to host, timed out, a TLS failure)."""
    line = " ".join(str(text).split())
    if _POOL_ERROR.search(line):
        for pattern in _REASONS:
            match = pattern.search(line)
            if match:
                line = _POOL_ERROR.sub(match.group(1).strip(), line)
                break
    return line if len(line) <= 400 else line[:397] + "..."


class EngineError(Exception):
    """A Docker call failed; the message names the engine or the container and Docker's reason."""


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """How to reach one engine, after env fallbacks and the secure-by-default rule."""

    url: str
    tls: bool = False
    verify: bool = False
    ca_path: t.Optional[str] = None
    client_cert: t.Optional[str] = None
    client_key: t.Optional[str] = None
    tls_hostname: t.Optional[str] = None
    api_version: str = "auto"
    timeout: int = 60


def resolve_endpoint(params: t.Mapping[str, t.Any], environ: t.Optional[t.Mapping[str, str]] = None) -> Endpoint:
    """Turn the connection options into an Endpoint; raise EngineError for an unsafe tcp:// set-up.

    Certificate files not given as options come from DOCKER_CERT_PATH (ca.pem, cert.pem,
    key.pem), as the docker CLI does. A tcp:// host with neither `tls` nor `validate_certs`
    set verifies TLS when a CA is known and otherwise refuses to connect: the Docker API is
    root on the host, so plaintext is used only when the user writes `tls: false`.
    """
    url = params.get("docker_host") or DEFAULT_DOCKER_HOST
    cert_dir = (os.environ if environ is None else environ).get("DOCKER_CERT_PATH") or ""

    def from_cert_dir(option: str, filename: str) -> t.Optional[str]:
        if params.get(option):
            return params[option]
        path = os.path.join(cert_dir, filename) if cert_dir else ""
        return path if path and os.path.isfile(path) else None

    ca_path = from_cert_dir("ca_path", "ca.pem")
    client_cert = from_cert_dir("client_cert", "cert.pem")
    client_key = from_cert_dir("client_key", "key.pem")
    tls, verify = params.get("tls"), params.get("validate_certs")
    common = dict(url=url, ca_path=ca_path, client_cert=client_cert, client_key=client_key,
                  tls_hostname=params.get("tls_hostname"), api_version=params.get("api_version") or "auto",
                  timeout=int(params.get("timeout") or 60))
    if not url.startswith(("tcp://", "https://", "http://")):
        return Endpoint(**common)  # unix:// and ssh:// carry their own transport security
    if verify:
        return Endpoint(tls=True, verify=True, **common)
    if tls and verify is False:
        return Endpoint(tls=True, verify=False, **common)  # the user turned verification off in so many words
    if tls is False:
        return Endpoint(**common)
    if verify is None and (tls or ca_path):
        return Endpoint(tls=True, verify=True, **common)  # tls: true verifies unless validate_certs: false says otherwise
    why = ("validate_certs: false turns verification off, not TLS" if verify is False
           else "neither tls nor validate_certs is set and no CA certificate is known")
    raise EngineError(
        "refusing to talk to the Docker engine at %s without TLS (%s): give the engine's CA as ca_path (or ca.pem "
        "in DOCKER_CERT_PATH), or set tls: true or validate_certs: true, to use TLS and verify the engine's "
        "certificate against ca_path or the system CA store (an engine started with --tlsverify also wants "
        "client_cert and client_key, or cert.pem and key.pem there); tls: true with validate_certs: false "
        "encrypts without verifying the engine; tls: false talks plain text, unencrypted and unauthenticated. "
        "In the roles and the inventory these are the host variables stackfleet_docker_<option>" % (url, why))


def is_pem(value: t.Optional[str]) -> bool:
    """Whether a certificate option holds the PEM text itself rather than a file's path."""
    return bool(value) and "-----BEGIN" in str(value)


def tls_context(endpoint: Endpoint) -> ssl.SSLContext:
    """The client TLS context for `endpoint`: trusting only its CA - `ca_path` is a file or the PEM
    text itself (no temporary file) - or the system CA store when it has none, with the engine's
    host name checked (urllib3 checks `tls_hostname` instead when set); or, with `verify` off,
    encrypting without checking the engine at all. The client certificate and key are files
    (Python's ssl module loads a key only from a file), `client_key` optional when the certificate's
    file also holds the key. Raises EngineError naming the engine and the file that did not load."""
    ca = endpoint.ca_path
    if endpoint.verify:
        try:
            # Neither given: the system store (what create_default_context loads when given no CA).
            context = ssl.create_default_context(cafile=None if is_pem(ca) else ca, cadata=ca if is_pem(ca) else None)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise EngineError("cannot load the CA certificate for the Docker engine at %s (ca_path %s): %s" % (
                endpoint.url, "given as PEM text" if is_pem(ca) else ca, exc)) from exc
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if endpoint.client_cert:
        try:
            context.load_cert_chain(endpoint.client_cert, endpoint.client_key or None)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise EngineError("cannot load the client certificate for the Docker engine at %s (client_cert %s, client_key %s): %s" % (
                endpoint.url, endpoint.client_cert, endpoint.client_key, exc)) from exc
    return context


def _tls_adapter(context: ssl.SSLContext, hostname: t.Optional[str]) -> t.Any:
    """A requests adapter whose connections use `context` and nothing else: requests would add its
    CA bundle (certifi, or REQUESTS_CA_BUNDLE: psf/requests#3829) and a session's client certificate
    to it. With `hostname` the server certificate is checked against it instead of the URL's host
    (what `tls_hostname` means; the SDK dropped `assert_hostname` in 7.0). MAX_CALLS connections are
    kept per engine, one per thread of a batch."""
    cert_reqs = "CERT_NONE" if context.verify_mode == ssl.CERT_NONE else "CERT_REQUIRED"

    class _Adapter(requests.adapters.HTTPAdapter):
        def init_poolmanager(self, *args: t.Any, **kwargs: t.Any) -> None:
            kwargs["ssl_context"] = context
            if hostname:
                kwargs["assert_hostname"] = hostname
                kwargs["server_hostname"] = hostname
            super().init_poolmanager(*args, **kwargs)

        def cert_verify(self, conn: t.Any, url: str, verify: t.Any, cert: t.Any) -> None:
            conn.cert_reqs = cert_reqs
            conn.ca_certs = conn.ca_cert_dir = None
            conn.cert_file = conn.key_file = None

    return _Adapter(pool_maxsize=MAX_CALLS)


def api_client(endpoint: Endpoint, version: t.Optional[str] = None) -> t.Any:
    """A `docker.APIClient` for `endpoint` speaking API `version` (default: the SDK's), without a
    request yet. The one place a connection to an engine is set up: connect() for the modules, and
    the controller's engine_ping (module_utils/_ping.py). Raises EngineError."""
    if not HAS_DOCKER:
        raise EngineError("the Docker SDK for Python is required on the target (pip install 'docker>=6'): %s" % DOCKER_IMPORT_ERROR)
    context = tls_context(endpoint) if endpoint.tls else None
    try:
        api = docker.APIClient(
            base_url=endpoint.url, tls=context is not None, timeout=endpoint.timeout, max_pool_size=MAX_CALLS,
            version=version or docker.constants.DEFAULT_DOCKER_API_VERSION, use_ssh_client=endpoint.url.startswith("ssh://"))
    except (DockerException, requests.exceptions.RequestException) as exc:
        raise EngineError("cannot reach the Docker engine at %s: %s" % (endpoint.url, exc))
    if context is not None:
        # The context decides trust alone: neither the environment (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE,
        # proxies) nor requests' own CA bundle is consulted.
        api.trust_env = False
        api.verify = context.verify_mode != ssl.CERT_NONE
        api.mount("https://", _tls_adapter(context, endpoint.tls_hostname))
    return api


def ping_once(api: t.Any, timeout: float) -> t.Tuple[int, str]:
    """(HTTP status, body) of one `GET /_ping` through `api` (api_client), unversioned so that an
    engine older than the SDK answers too. Raises EngineError naming the URL when nothing answers."""
    url = api.base_url + "/_ping"
    try:
        answer = api.get(url, timeout=timeout)
        return answer.status_code, answer.text[:256]
    except requests.exceptions.RequestException as exc:
        raise EngineError("GET %s: %s" % (url, short_error(str(exc)))) from exc


def connect(endpoint: Endpoint) -> Engine:
    auto_version = endpoint.api_version == "auto"
    api = api_client(endpoint, None if auto_version else endpoint.api_version)
    server = None
    try:
        if auto_version:
            # Negotiated only now, so that the first request already uses the settings above. The
            # answer is kept: Engine.version() then costs no second request.
            server = api.version(api_version=False)
            if not isinstance(server, dict) or not server.get("ApiVersion"):
                raise EngineError("cannot reach the Docker engine at %s: GET /version has no ApiVersion" % endpoint.url)
            api._version = server["ApiVersion"]  # pylint: disable=protected-access
    except (DockerException, requests.exceptions.RequestException) as exc:
        raise EngineError("cannot reach the Docker engine at %s: %s" % (endpoint.url, exc))
    return Engine(api, endpoint.url, server)


def _nanoseconds(seconds: t.Any) -> t.Optional[int]:
    return None if seconds is None else int(round(float(seconds) * 1e9))


def _restart_policy(restart: t.Optional[str]) -> t.Optional[t.Dict[str, t.Any]]:
    if not restart:
        return None
    name, _sep, retries = restart.partition(":")
    policy: t.Dict[str, t.Any] = {"Name": name}
    if retries:
        policy["MaximumRetryCount"] = int(retries)
    return policy


def create_arguments(api: t.Any, doc: t.Mapping[str, t.Any], name: t.Optional[str] = None,
                     secrets: t.Optional[t.Mapping[str, t.Any]] = None) -> t.Dict[str, t.Any]:
    """Keyword arguments for `APIClient.create_container` from a container document
    (docs/architecture.md, "Container documents"). Each key is translated here and only here."""
    # With the host's network a container listens on the host directly: Docker refuses port
    # bindings there, yet the ports stay in the document because the planner reserves them.
    ports = [] if doc.get("network_mode") == "host" else doc.get("ports") or []
    bindings: t.Dict[str, t.List[t.Any]] = {}
    for port in ports:
        if port.get("host_port") is not None:
            key = "%s/%s" % (port["container_port"], port.get("protocol") or "tcp")
            bindings.setdefault(key, []).append((port.get("host_ip") or "", port["host_port"]) if port.get("host_ip") else port["host_port"])
    binds = ["%s:%s:%s" % (v["source"], v["target"], "ro" if v.get("read_only") else "rw") for v in doc.get("volumes") or []]
    resources = doc.get("resources") or {}
    host_config = dict(
        port_bindings=bindings or None,
        binds=binds or None,
        restart_policy=_restart_policy(doc.get("restart")),
        network_mode=doc.get("network_mode") or None,
        nano_cpus=int(round(float(resources.get("cpus") or 0) * 1e9)) or None,
        mem_limit=int(resources.get("memory_mb") or 0) * 1024 * 1024 or None,
    )
    healthcheck = None
    if doc.get("healthcheck"):
        hc = doc["healthcheck"]
        healthcheck = {k: v for k, v in dict(
            test=hc.get("test"), interval=_nanoseconds(hc.get("interval")), timeout=_nanoseconds(hc.get("timeout")),
            retries=hc.get("retries"), start_period=_nanoseconds(hc.get("start_period"))).items() if v is not None}
    return dict(
        image=doc["image"], name=name or doc["name"], command=doc.get("command") or None, entrypoint=doc.get("entrypoint") or None,
        environment=env_for_engine(doc, secrets) or None,  # {secret: NAME} → its value: only here, on its way to Docker
        labels=container_labels(doc),
        ports=[(p["container_port"], p.get("protocol") or "tcp") for p in ports] or None,
        healthcheck=healthcheck,
        host_config=api.create_host_config(**{k: v for k, v in host_config.items() if v is not None}),
    )


def _canonical_image_ref(ref: str) -> str:
    """`busybox` and `docker.io/library/busybox:latest` name the same image in `RepoTags`."""
    if "@" in ref:
        return ref
    name, tag = ref, "latest"
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = ref.rsplit(":", 1)
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/", "index.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if name.startswith("library/"):
        name = name[len("library/"):]
    return "%s:%s" % (name, tag)


def observed_from_listing(row: t.Mapping[str, t.Any]) -> Observed:
    names = row.get("Names") or ["/" + row["Id"][:12]]
    return Observed(
        id=row["Id"], name=names[0].lstrip("/"), image=row.get("Image") or "", image_id=row.get("ImageID") or "",
        state=row.get("State") or "", status=row.get("Status") or "", labels=dict(row.get("Labels") or {}),
        created=int(row.get("Created") or 0))


_MIB = 1024 * 1024
_RESERVED_LABEL_PREFIX = "io.stackfleet."


def doc_from_inspect(info: t.Mapping[str, t.Any], image_config: t.Optional[t.Mapping[str, t.Any]] = None) -> t.Dict[str, t.Any]:
    """A container's real configuration (`GET /containers/{id}/json`) as a container document,
    the inverse of `create_arguments`: what `_difference` compares with the desired document.

    `image_config` is the image's `Config` (`GET /images/{id}/json`): Docker merges the image's
    env, labels, command, entrypoint and healthcheck into the container's, so what equals the
    image's is taken as the image default, not as part of the document. Without it those fields
    are reported as the container has them.
    """
    config = info.get("Config") or {}
    host = info.get("HostConfig") or {}
    image = image_config or {}
    labels = dict(config.get("Labels") or {})
    image_labels = image.get("Labels") or {}
    image_env = set(image.get("Env") or ()) if image_config is not None else set()
    env = {}
    for item in config.get("Env") or ():
        if item not in image_env:
            key, _sep, value = item.partition("=")
            env[key] = value

    def unless_default(field: str) -> t.Any:
        value = config.get(field)
        return None if image_config is not None and value == image.get(field) else value

    ports = []
    for key, bindings in sorted((host.get("PortBindings") or {}).items()):
        number, _sep, protocol = key.partition("/")
        for binding in bindings or [{}]:
            host_port = (binding or {}).get("HostPort")
            ports.append({"container_port": int(number), "protocol": protocol or "tcp",
                          "host_port": int(host_port) if host_port else None, "host_ip": (binding or {}).get("HostIp") or ""})
    volumes = []
    for bind in host.get("Binds") or ():
        parts = bind.split(":")
        volumes.append({"source": parts[0], "target": parts[1] if len(parts) > 1 else "", "read_only": len(parts) > 2 and "ro" in parts[2].split(",")})
    policy = host.get("RestartPolicy") or {}
    restart = policy.get("Name") or "no"
    if restart == "on-failure" and policy.get("MaximumRetryCount"):
        restart = "on-failure:%d" % policy["MaximumRetryCount"]
    healthcheck = unless_default("Healthcheck")
    if healthcheck:
        healthcheck = {"test": healthcheck.get("Test"), "interval": (healthcheck.get("Interval") or 0) / 1e9,
                       "timeout": (healthcheck.get("Timeout") or 0) / 1e9, "retries": healthcheck.get("Retries") or 0,
                       "start_period": (healthcheck.get("StartPeriod") or 0) / 1e9}
    network_mode = host.get("NetworkMode") or None
    return {
        "name": str(info.get("Name") or "").lstrip("/"), "cluster": labels.get(LABEL_CLUSTER), "deploy": labels.get(LABEL_DEPLOY),
        "instance": labels.get(LABEL_INSTANCE), "service": labels.get(LABEL_SERVICE), "image": config.get("Image"),
        "command": unless_default("Cmd"), "entrypoint": unless_default("Entrypoint"), "env": env, "ports": ports, "volumes": volumes,
        "labels": {k: v for k, v in labels.items() if not k.startswith(_RESERVED_LABEL_PREFIX) and image_labels.get(k) != v},
        "restart": restart, "network_mode": None if network_mode == "default" else network_mode,
        "resources": {"cpus": (host.get("NanoCpus") or 0) / 1e9, "memory_mb": (host.get("Memory") or 0) / _MIB},
        "healthcheck": healthcheck or None,
    }


def update_arguments(action: Action) -> t.Dict[str, t.Any]:
    """The body of `POST /containers/{id}/update` for an UPDATE action: only the changed fields.

    The SDK's `update_container` (7.x) has no `nano_cpus` (NanoCpus, what `create_arguments`
    sets: a container created with it refuses CpuQuota/CpuPeriod updates) and drops zero values,
    so the body is built here. A new memory limit comes with MemorySwap = 2 x the limit, what
    Docker gives a new container: Docker refuses a limit above the current MemorySwap otherwise.
    """
    doc = action.doc or {}
    resources = doc.get("resources") or {}
    body: t.Dict[str, t.Any] = {}
    for change in action.fields:
        if change.field == "resources.memory_mb":
            body["Memory"] = int(round(float(resources.get("memory_mb") or 0) * _MIB))
            body["MemorySwap"] = 2 * body["Memory"]
        elif change.field == "resources.cpus":
            body["NanoCpus"] = int(round(float(resources.get("cpus") or 0) * 1e9))
        elif change.field == "restart":
            body["RestartPolicy"] = _restart_policy(doc.get("restart")) or {"Name": "no"}
    return body


def each(fn: t.Callable[[t.Any], t.Any], items: t.Sequence[t.Any]) -> t.List[t.Tuple[t.Any, t.Any, t.Optional[EngineError]]]:
    """`fn(item)` for every item, up to MAX_CALLS at once: (item, value, None) or (item, None, the
    EngineError), in the items' order. One item runs in the caller's thread (no pool for a rolling update)."""
    def one(item: t.Any) -> t.Tuple[t.Any, t.Any, t.Optional[EngineError]]:
        try:
            return item, fn(item), None
        except EngineError as exc:
            return item, None, exc
    if len(items) <= 1:
        return [one(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(MAX_CALLS, len(items))) as pool:
        return list(pool.map(one, items))


class Engine:
    """One Docker engine. Methods raise EngineError with the engine URL or container name."""

    def __init__(self, api: t.Any, url: str, server: t.Optional[t.Mapping[str, t.Any]] = None) -> None:
        self.api = api
        self.url = url
        self._server = server  # GET /version, when connect() negotiated the API version with it
        #: After apply(): container name -> (action, reason) where the outcome differs from the plan
        #: (a replacement rolled back or failed, replacements left pending after a failed batch).
        self.outcomes: t.Dict[str, t.Tuple[str, str]] = {}
        self.secrets: t.Mapping[str, t.Any] = {}  # the containers module's no_log `secrets`; only create() reads them

    def _call(self, what: str, fn: t.Callable[..., t.Any], *args: t.Any, **kwargs: t.Any) -> t.Any:
        try:
            return fn(*args, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            raise EngineError("cannot reach the Docker engine at %s (%s): %s" % (self.url, what, exc))
        except DockerException as exc:
            explanation = getattr(exc, "explanation", None) or str(exc)
            raise EngineError("%s: %s" % (what, explanation))
        except requests.exceptions.RequestException as exc:
            raise EngineError("%s: request to %s failed: %s" % (what, self.url, exc))

    # Reads ---------------------------------------------------------------------------
    def version(self) -> t.Mapping[str, t.Any]:
        """The engine's `GET /version` answer (Version, ApiVersion, Os, ...): the cheapest call that
        proves the engine answers. One attempt, bounded by the endpoint's timeout, no retry; free
        when connect() negotiated the API version (it kept the answer)."""
        if self._server is None:
            self._server = self._call("version", self.api.version, api_version=False) or {}
        return self._server

    def list_cluster(self, cluster: str) -> t.List[Observed]:
        """Every container (any state) carrying the cluster label, in one request."""
        rows = self._call("list containers", self.api.containers, all=True, filters={"label": "%s=%s" % (LABEL_CLUSTER, cluster)})
        return [observed_from_listing(r) for r in rows]

    def foreign_names(self, cluster: str, names: t.Iterable[str]) -> t.Dict[str, str]:
        """Which of `names` are taken by containers *not* of this cluster (one request)."""
        wanted = set(names)
        rows = self._call("list containers", self.api.containers, all=True)
        found = {}
        for row in rows:
            obs = observed_from_listing(row)
            if obs.name in wanted and obs.labels.get(LABEL_CLUSTER) != cluster:
                found[obs.name] = obs.id
        return found

    def list_all(self) -> t.List[Observed]:
        """Every container on the engine (any state, any owner), in one request."""
        return [observed_from_listing(r) for r in self._call("list containers", self.api.containers, all=True)]

    def _inspected(self, observed: t.Iterable[Observed]) -> t.Iterator[t.Tuple[Observed, t.Mapping[str, t.Any], t.Any]]:
        """(container, its inspect, its image's config) for each of `observed`: one inspect per
        container plus one per distinct image. A container that is gone by now is left out."""
        images: t.Dict[str, t.Optional[t.Mapping[str, t.Any]]] = {}
        for obs in observed:
            try:
                info = self._call("inspect %s" % obs.name, self.api.inspect_container, obs.id)
            except EngineError:
                continue
            image_id = info.get("Image") or obs.image_id
            if image_id not in images:
                try:
                    images[image_id] = self._call("inspect image %s" % image_id[:19], self.api.inspect_image, image_id).get("Config") or {}
                except EngineError:
                    images[image_id] = None
            yield obs, info, images[image_id]

    def runtime(self, observed: t.Iterable[Observed]) -> t.Dict[str, t.Dict[str, t.Any]]:
        """Container id → what only inspect tells (`restart_count`, `started_at`, `health`) and
        the real configuration (`config`, `doc_from_inspect`)."""
        found = {}
        for obs, info, image_config in self._inspected(observed):
            state = info.get("State") or {}
            found[obs.id] = {"restart_count": info.get("RestartCount"), "started_at": state.get("StartedAt"),
                             "health": (state.get("Health") or {}).get("Status"), "config": doc_from_inspect(info, image_config)}
        return found

    def image_ids(self, refs: t.Iterable[str]) -> t.Dict[str, t.Optional[str]]:
        """Local image id of each reference (None when absent), from one image listing."""
        by_ref: t.Dict[str, str] = {}
        for image in self._call("list images", self.api.images):
            for tag in (image.get("RepoTags") or []) + (image.get("RepoDigests") or []):
                by_ref[_canonical_image_ref(tag)] = image["Id"]
        return {ref: by_ref.get(_canonical_image_ref(ref), ref if ref.startswith("sha256:") else None) for ref in refs}

    def configs(self, observed: t.Iterable[Observed], names: t.Iterable[str]) -> t.Dict[str, t.Dict[str, t.Any]]:
        """Real configuration (`doc_from_inspect`) of each container of `observed` named in `names`.
        A container that is gone by now is left out (its listing row still decides)."""
        wanted = set(names)
        return {obs.name: doc_from_inspect(info, image_config)
                for obs, info, image_config in self._inspected(o for o in observed if o.name in wanted)}

    def state(self, container_id: str) -> t.Mapping[str, t.Any]:
        return self._call("inspect %s" % container_id[:12], self.api.inspect_container, container_id).get("State") or {}

    def logs_tail(self, container_id: str, lines: int = 5) -> str:
        try:
            out = self.api.logs(container_id, tail=lines)
        except (DockerException, requests.exceptions.RequestException):
            return ""
        return out.decode("utf-8", "replace").strip() if isinstance(out, bytes) else str(out).strip()

    # Writes --------------------------------------------------------------------------
    def pull(self, ref: str) -> None:
        repository, _sep, tag = ref.partition("@") if "@" in ref else (ref, "", "")
        if "@" not in ref:
            last = ref.rsplit("/", 1)[-1]
            repository, tag = (ref.rsplit(":", 1) if ":" in last else (ref, "latest"))
        self._call("pull %s" % ref, self.api.pull, repository, tag=tag or None)

    def remove(self, name: str, container_id: str, stop_timeout: t.Optional[int] = None) -> None:
        """Stop gracefully (SIGTERM, then SIGKILL after the container's stop timeout or
        `stop_timeout`), then remove."""
        self.stop(name, container_id, stop_timeout)
        self._call("%s: remove" % name, self.api.remove_container, container_id, force=True)

    def create(self, doc: t.Mapping[str, t.Any], name: t.Optional[str] = None) -> str:
        name = name or doc["name"]
        return self._call("%s: create" % name, lambda: self.api.create_container(**create_arguments(self.api, doc, name, self.secrets)))["Id"]

    def stop(self, name: str, container_id: str, stop_timeout: t.Optional[int] = None) -> None:
        kwargs = {} if stop_timeout is None else {"timeout": stop_timeout}
        self._call("%s: stop" % name, self.api.stop, container_id, **kwargs)

    def rename(self, container_id: str, name: str) -> None:
        self._call("%s: rename" % name, self.api.rename, container_id, name)

    def update(self, action: Action) -> None:
        """Apply an UPDATE in place (same id, no restart), then start the container if it was stopped."""
        obs = action.observed
        if obs is None:  # an update action always has its container
            raise EngineError("%s: nothing to update" % action.name)
        body = update_arguments(action)
        self._call("%s: update" % action.name,
                   lambda: self.api._result(self.api._post_json(self.api._url("/containers/{0}/update", obs.id), data=body), True))
        if obs.state in STARTABLE_STATES:
            self.start(action.name, obs.id, paused=obs.state == "paused")

    def start(self, name: str, container_id: str, paused: bool = False) -> None:
        if paused:
            self._call("%s: unpause" % name, self.api.unpause, container_id)
        else:
            self._call("%s: start" % name, self.api.start, container_id)

    # Rollout -------------------------------------------------------------------------
    def apply(self, plan: Plan, max_parallel: int = 1, wait: str = "running", wait_timeout: float = 60,
              stop_timeout: t.Optional[int] = None) -> t.List[str]:
        """Carry out `plan`; return the errors (each naming its container).

        Order: removals (they free names and ports), then creates and starts in batches of
        `max_parallel` (a failure there does not stop the others; the calls of a batch run at once,
        up to MAX_CALLS, and each batch is waited for before the next), then replacements in batches
        (`replacement_batches`); the first batch with a failed replacement ends the rollout on
        this host, and the replacements after it are left as they are (PENDING in `outcomes`)."""
        errors: t.List[str] = []
        self.outcomes = {}
        removals = list(plan.removals)
        for _action, _none, error in each(
                lambda a: self.remove(a.name, a.observed.id, stop_timeout), removals):  # type: ignore[union-attr]
            if error is not None:
                errors.append(str(error))
        for action in plan.updates:
            try:
                self.update(action)
            except EngineError as exc:
                errors.append(str(exc))
        for batch in batches([a for a in plan.rollout if a.action != RECREATE], max_parallel):
            started = []
            for action, container_id, error in each(self._roll, batch):
                if error is None:
                    started.append((action, container_id))
                else:
                    errors.append(str(error))
            if wait != "none":
                errors.extend(self._wait(started, wait, wait_timeout))
        groups = replacement_batches([a for a in plan.rollout if a.action == RECREATE], max_parallel)
        for index, batch in enumerate(groups):
            failures = self._replace_batch(batch, wait, wait_timeout, stop_timeout)
            if failures:
                errors.extend(failures)
                stopped_at = ", ".join(a.name for a in batch if a.name in self.outcomes)
                for later in groups[index + 1:]:
                    for action in later:
                        self.outcomes[action.name] = (
                            PENDING, "%s (not replaced: the rollout on this host stopped at %s)" % (action.reason, stopped_at))
                break
        return errors

    def _replace_batch(self, batch: t.Sequence[Action], wait: str, wait_timeout: float,
                       stop_timeout: t.Optional[int]) -> t.List[str]:
        """Replace each container of `batch` without destroying it first: create the new one under
        its temporary name, stop the old, start the new, wait; on failure remove the new and start
        the old again (same id); only after success remove the old and rename the new."""
        errors: t.List[str] = []
        # The containers of a batch are independent: each step runs for all of them at once
        # (bounded by MAX_CALLS), and the batch still moves on only when every one is done.
        created: t.List[t.Tuple[Action, str]] = []
        for action, new_id, error in each(lambda a: self.create(a.doc, temp_name(a.name)), batch):
            if error is None:
                created.append((action, new_id))
            else:
                self.outcomes[action.name] = (FAILED, "the new container could not be created: %s" % error)
                errors.append("%s: not replaced, the old container runs on: %s" % (action.name, error))

        def swap_in(item: t.Tuple[Action, str]) -> None:
            action, new_id = item
            self.stop(action.name, action.observed.id, stop_timeout)  # type: ignore[union-attr]
            self.start(temp_name(action.name), new_id)

        started: t.List[t.Tuple[Action, str]] = []
        for item, _none, error in each(swap_in, created):
            if error is None:
                started.append(item)
            else:
                errors.append(self._rollback(item[0], item[1], str(error)))
        problems = self._wait_each(started, wait, wait_timeout) if wait != "none" else {}
        proven = [(action, new_id) for action, new_id in started if action.name not in problems]
        errors.extend(self._rollback(action, new_id, problems[action.name]) for action, new_id in started if action.name in problems)

        def finish(item: t.Tuple[Action, str]) -> None:
            action, new_id = item
            self._call("%s: remove the old container" % action.name, self.api.remove_container,
                       action.observed.id, force=True)  # type: ignore[union-attr]
            self.rename(new_id, action.name)

        for (action, _new_id), _none, error in each(finish, proven):
            if error is not None:
                self.outcomes[action.name] = (FAILED, "replaced, but the swap did not complete: %s" % error)
                errors.append("%s: the new container runs as %s; the next run completes the swap: %s" % (
                    action.name, temp_name(action.name), error))
        return errors

    def _rollback(self, action: Action, new_id: str, why: str) -> str:
        """Remove the new container (never its volumes) and start the old one again."""
        old = action.observed
        notes = []
        try:
            self._call("%s: remove the new container" % action.name, self.api.remove_container, new_id, force=True)
        except EngineError as exc:
            notes.append("the new container %s could not be removed (%s); the next run removes it" % (temp_name(action.name), exc))
        if old is not None and old.state in ("running", "restarting", "paused"):
            try:
                self.start(action.name, old.id)
                notes.append("the old container %s runs again" % old.id[:12])
            except EngineError as exc:
                notes.append("the old container %s could not be started again: %s" % (old.id[:12], exc))
        self.outcomes[action.name] = (ROLLED_BACK, why)
        return "%s: rolled back: %s; %s" % (action.name, why, "; ".join(notes))

    def _roll(self, action: Action) -> str:
        """Create and start a missing container, or start an existing one; replacements never come
        here (`_replace_batch` proves the new container before the old one goes)."""
        obs = action.observed
        if action.action == CREATE:
            container_id = self.create(action.doc)  # type: ignore[arg-type]
            self.start(action.name, container_id)
            return container_id
        if obs is None:  # a start action always has its container
            raise EngineError("%s: nothing to start" % action.name)
        self.start(action.name, obs.id, paused=obs.state == "paused")
        return obs.id

    def _wait(self, started: t.Sequence[t.Tuple[Action, str]], wait: str, timeout: float) -> t.List[str]:
        return ["%s: %s" % item for item in sorted(self._wait_each(started, wait, timeout).items())]

    def _wait_each(self, started: t.Sequence[t.Tuple[Action, str]], wait: str, timeout: float) -> t.Dict[str, str]:
        """Poll the batch until each container is up: running without a restart for SETTLE_SECONDS
        (a command that dies at once is caught, not reported as running), and healthy when it has a
        healthcheck and wait=healthy. A container that exits, restarts or turns unhealthy fails.
        Returns container name -> what went wrong, for those that did not come up."""
        errors: t.Dict[str, str] = {}
        pending = dict((cid, action.name) for action, cid in started)
        up_since: t.Dict[str, t.Tuple[str, float]] = {}  # cid -> (StartedAt, when first seen running)
        deadline = time.monotonic() + timeout
        while pending:
            # One round reads every pending container's state at once (a batch of 25 read one by one took
            # longer than the 0.2 s between rounds on a loaded engine).
            for cid, state, error in each(self.state, list(pending)):
                name = pending[cid]
                if error is not None:
                    errors[name] = str(error)
                    del pending[cid]
                    continue
                problem = self._wait_problem(cid, state, wait, up_since)
                if problem:
                    errors[name] = problem
                    del pending[cid]
                elif self._is_up(cid, state, wait, up_since):
                    del pending[cid]
            if not pending:
                break
            if time.monotonic() >= deadline:
                errors.update((name, "not %s within %s s" % (wait, timeout)) for name in pending.values())
                break
            time.sleep(0.2)
        return errors

    def _wait_problem(self, cid: str, state: t.Mapping[str, t.Any], wait: str, up_since: t.Mapping[str, t.Tuple[str, float]]) -> t.Optional[str]:
        status = state.get("Status")
        restarted = cid in up_since and up_since[cid][0] != state.get("StartedAt")
        if status in ("exited", "dead") or status == "restarting" or restarted:
            code = state.get("ExitCode")
            gone = self._stopped_answering(ENGINE_GONE_GRACE) if code in (0, 143) else None
            if gone:
                return ("the Docker engine at %s stopped answering while this container was starting: the engine went down "
                        "and stopped it (exit code %s). Nothing else was changed on this host after that; the next run "
                        "converges it once its engine answers (%s)" % (self.url, code, gone))
            logs = self.logs_tail(cid)
            return "exited with code %s%s%s" % (
                code, ": " + state["Error"] if state.get("Error") else "",
                " (last output: %s)" % logs if logs else "")
        if wait == "healthy" and (state.get("Health") or {}).get("Status") == "unhealthy":
            return "unhealthy"
        return None

    def _stopped_answering(self, seconds: float) -> t.Optional[str]:
        """Why the engine stopped answering within `seconds` (pinged every 0.5 s), or None."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                self._call("ping", self.api.ping)
            except EngineError as exc:
                return short_error(str(exc))
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.5)

    @staticmethod
    def _is_up(cid: str, state: t.Mapping[str, t.Any], wait: str, up_since: t.Dict[str, t.Tuple[str, float]]) -> bool:
        if state.get("Status") != "running":
            return False
        now = time.monotonic()
        started_at, seen = up_since.setdefault(cid, (state.get("StartedAt") or "", now))
        health = (state.get("Health") or {}).get("Status")
        if wait == "healthy" and health is not None:
            return health == "healthy"
        return now - seen >= SETTLE_SECONDS

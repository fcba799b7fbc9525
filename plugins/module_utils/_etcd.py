# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The only place that talks to etcd: its v3 JSON (grpc-gateway) API over HTTP(S).

Uses ansible-core's own `open_url`, so an execution environment needs no extra
package and client certificates work; etcd3gw has no member add/remove anyway.

Wire quirks handled here, once: 64-bit integers arrive as decimal JSON strings,
fields with default values are omitted (an unstarted member has no `name` and
no `clientURLs`, `isLearner: false` and `succeeded: false` are absent), keys and
values are base64, and the gateway path prefix depends on the server version.
"""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import time
import typing as t
from urllib.error import HTTPError, URLError

from ansible.module_utils.common.parameters import env_fallback
from ansible.module_utils.errors import AnsibleFallbackNotFound
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import open_url

# One URL rule, re-exported for _etcd_membership and etcd_member.
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd_decide import normalise_url  # noqa: F401 pylint: disable=unused-import

#: gRPC status codes etcd reports through the gateway that are worth naming.
CODE_UNAVAILABLE = 14  # "etcdserver: unhealthy cluster", "request timed out", "leader changed"
CODE_UNAUTHENTICATED = 16
CODE_FAILED_PRECONDITION = 9  # e.g. "can only promote a learner member which is in sync with leader"
CODE_DEADLINE_EXCEEDED = 4  # "context deadline exceeded"

#: Server answers after which a write may or may not have been applied.
_AMBIGUOUS_MARKERS = ("timed out", "timeout", "leader changed", "deadline exceeded", "connection lost")

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)")
_DURATION_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")


def _insecure_fallback() -> bool:
    """validate_certs from etcdctl's ETCDCTL_INSECURE_SKIP_TLS_VERIFY (inverted)."""
    value = os.environ.get("ETCDCTL_INSECURE_SKIP_TLS_VERIFY")
    if value is None:
        raise AnsibleFallbackNotFound
    return value.strip().lower() not in ("1", "true", "yes", "on")


def _timeout_fallback() -> float:
    """timeout from ETCD_TIMEOUT (seconds) or etcdctl's ETCDCTL_COMMAND_TIMEOUT (a Go duration: 5s, 500ms)."""
    for name in ("ETCD_TIMEOUT", "ETCDCTL_COMMAND_TIMEOUT"):
        value = os.environ.get(name, "").strip()
        if value:
            return parse_duration(value)
    raise AnsibleFallbackNotFound


#: Connection options of every etcd module (documented in doc_fragments/etcd.py).
#: Every one falls back to the variables etcdctl reads, so AWX credentials can inject them.
CONNECTION_ARGSPEC = dict(
    endpoints=dict(type="list", elements="str", default=["127.0.0.1:2379"],
                   fallback=(env_fallback, ["ETCD_ENDPOINTS", "ETCDCTL_ENDPOINTS"])),
    ca_cert=dict(type="path", aliases=["cacert"], fallback=(env_fallback, ["ETCDCTL_CACERT", "ETCD_CACERT"])),
    client_cert=dict(type="path", aliases=["cert"], fallback=(env_fallback, ["ETCDCTL_CERT", "ETCD_CERT"])),
    client_key=dict(type="path", aliases=["key"], no_log=False, fallback=(env_fallback, ["ETCDCTL_KEY", "ETCD_KEY"])),
    validate_certs=dict(type="bool", default=True, fallback=(_insecure_fallback,)),
    user=dict(type="str", fallback=(env_fallback, ["ETCDCTL_USER", "ETCD_USER"])),
    password=dict(type="str", no_log=True, fallback=(env_fallback, ["ETCDCTL_PASSWORD", "ETCD_PASSWORD"])),
    timeout=dict(type="float", default=5.0, fallback=(_timeout_fallback,)),
)


def client_from_params(params: t.Mapping[str, t.Any]) -> EtcdClient:
    """An EtcdClient from module parameters (CONNECTION_ARGSPEC). A user given as
    `name:password` (etcdctl's --user form) is split when no password is set."""
    user, password = params.get("user"), params.get("password")
    if user and password is None and ":" in user:
        user, password = user.split(":", 1)
    return EtcdClient(params["endpoints"], ca_cert=params.get("ca_cert"), client_cert=params.get("client_cert"),
                      client_key=params.get("client_key"), validate_certs=params.get("validate_certs", True),
                      user=user, password=password, timeout=params.get("timeout") or 5.0)


#: Seconds to wait for one member's status when telling a lost quorum from a slow network.
QUORUM_PROBE_TIMEOUT = 2.0


class EtcdError(Exception):
    """An error answered by etcd (`code` is the gRPC status code, 0 if unknown)."""

    def __init__(self, message: str, code: int = 0, endpoint: t.Optional[str] = None):
        self.message = message
        self.code = code
        self.endpoint = endpoint
        text = message if not endpoint else "%s: %s" % (endpoint, message)
        super().__init__(text + (" (code %d)" % code if code else ""))

    @property
    def retryable(self) -> bool:
        """True for transient cluster states (code 14), such as the ~5 s after start-up
        when `member/add` answers "etcdserver: unhealthy cluster"."""
        return self.code == CODE_UNAVAILABLE

    @property
    def ambiguous(self) -> bool:
        """True when a write may have been applied although it failed: the server timed out
        waiting for the proposal to commit, or the leader changed under it. Read back, never
        retry blindly."""
        text = self.message.lower()
        return self.code in (CODE_UNAVAILABLE, CODE_DEADLINE_EXCEEDED) and any(
            marker in text for marker in _AMBIGUOUS_MARKERS)


class EtcdConnectionError(EtcdError):
    """No endpoint answered; the message names each endpoint and why. `timed_out`: the last
    endpoint tried timed out after the request was sent, so a write may have been applied."""

    def __init__(self, message: str, code: int = 0, endpoint: t.Optional[str] = None, timed_out: bool = False):
        super().__init__(message, code, endpoint)
        self.timed_out = timed_out

    @property
    def ambiguous(self) -> bool:
        return self.timed_out


# ---------------------------------------------------------------- pure helpers

def gateway_prefix(server_version: str) -> str:
    """The JSON gateway path prefix a server of this version serves.

    >>> gateway_prefix("3.4.23"), gateway_prefix("3.3.25"), gateway_prefix("3.2.32")
    ('/v3', '/v3beta', '/v3alpha')
    """
    major, minor = parse_version(server_version)
    if (major, minor) >= (3, 4):
        return "/v3"
    if (major, minor) == (3, 3):
        return "/v3beta"
    if (major, minor) == (3, 2):
        return "/v3alpha"
    raise EtcdError("etcd %s has no v3 JSON gateway stackfleet can use (3.2 or newer needed)" % server_version)


def parse_version(version: str) -> t.Tuple[int, int]:
    """(major, minor) from "3.4.23", "v3.5.0" or "3.4.0"; EtcdError if unreadable."""
    match = _VERSION_RE.match(str(version or "").strip())
    if not match:
        raise EtcdError("cannot read an etcd version from %r" % (version,))
    return int(match.group(1)), int(match.group(2))


def parse_duration(text: str) -> float:
    """Seconds from "5", "5s", "500ms", "1m" or "2.5s"."""
    match = _DURATION_RE.fullmatch(str(text).strip())
    if not match:
        raise ValueError("cannot read a duration from %r (use 5, 5s, 500ms or 1m)" % (text,))
    return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]


def id_from_json(value: t.Any) -> int:
    """A uint64 as the gateway sends it (a decimal string, or absent for 0)."""
    return int(value or 0)


def id_hex(member_id: int) -> str:
    """The hexadecimal form etcdctl prints (lower case, no leading zeros)."""
    return "%x" % member_id


def parse_id(text: t.Union[str, int]) -> int:
    """A member or lease ID typed by a user: decimal, or hex as etcdctl prints it
    (a bare hex string is read as hex only when it has a letter a-f or a 0x prefix)."""
    if isinstance(text, int):
        return text
    s = text.strip().lower()
    if s.startswith("0x"):
        return int(s[2:], 16)
    if s.isdigit():
        return int(s)
    return int(s, 16)


def b64(data: t.Union[str, bytes]) -> str:
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def unb64(data: t.Optional[str]) -> bytes:
    return base64.b64decode(data or "")


def prefix_range_end(key: bytes) -> bytes:
    """The `range_end` that selects every key starting with `key` (etcd's rule)."""
    end = bytearray(key)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"  # every key


class Member(t.NamedTuple):
    """One etcd member with the gateway's omitted defaults filled in."""

    id: int
    name: str  # "" until the member has started and published itself
    peer_urls: t.Tuple[str, ...]
    client_urls: t.Tuple[str, ...]  # () until started
    is_learner: bool

    @classmethod
    def from_json(cls, raw: t.Mapping[str, t.Any]) -> Member:
        return cls(
            id=id_from_json(raw.get("ID")),
            name=raw.get("name") or "",
            peer_urls=tuple(raw.get("peerURLs") or ()),
            client_urls=tuple(raw.get("clientURLs") or ()),
            is_learner=bool(raw.get("isLearner", False)),
        )

    @property
    def started(self) -> bool:
        return bool(self.name or self.client_urls)

    @property
    def hex_id(self) -> str:
        return id_hex(self.id)

    def to_result(self) -> t.Dict[str, t.Any]:
        """The module-facing form (decimal and hex ID, as etcdctl prints both)."""
        return {
            "id": self.id, "id_hex": self.hex_id, "name": self.name,
            "peer_urls": list(self.peer_urls), "client_urls": list(self.client_urls),
            "learner": self.is_learner, "started": self.started,
        }


class KeyValue(t.NamedTuple):
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @classmethod
    def from_json(cls, raw: t.Mapping[str, t.Any]) -> KeyValue:
        return cls(
            key=unb64(raw.get("key")), value=unb64(raw.get("value")),
            create_revision=id_from_json(raw.get("create_revision")),
            mod_revision=id_from_json(raw.get("mod_revision")),
            version=id_from_json(raw.get("version")), lease=id_from_json(raw.get("lease")),
        )


def endpoint_url(endpoint: str, tls: bool) -> str:
    """etcdctl accepts `host:port`; the scheme then follows whether TLS files were given."""
    endpoint = endpoint.strip().rstrip("/")
    if "://" not in endpoint:
        endpoint = ("https://" if tls else "http://") + endpoint
    return endpoint


def retry(call: t.Callable[[], t.Any], timeout: float, interval: float = 0.5,
          retry_on: t.Optional[t.Callable[[EtcdError], bool]] = None) -> t.Any:
    """Run `call` until it stops raising a retryable EtcdError or `timeout` seconds pass
    (then the last error is raised). Bounded: at least one attempt, never unbounded."""
    retry_on = retry_on or (lambda err: err.retryable)
    deadline = time.monotonic() + max(timeout, 0)
    while True:
        try:
            return call()
        except EtcdError as err:
            if not retry_on(err) or time.monotonic() + interval > deadline:
                raise
        time.sleep(interval)


# ---------------------------------------------------------------- the client

class EtcdClient:
    """A v3 JSON gateway client with endpoint failover, TLS and optional auth.

    Requests go to the endpoint that answered last; on a connection failure the
    next endpoint is tried. `request(..., endpoint=url)` pins one endpoint, for
    per-member probes.
    """

    def __init__(self, endpoints: t.Sequence[str], ca_cert: t.Optional[str] = None,
                 client_cert: t.Optional[str] = None, client_key: t.Optional[str] = None,
                 validate_certs: bool = True, user: t.Optional[str] = None,
                 password: t.Optional[str] = None, timeout: float = 5.0):
        tls = bool(ca_cert or client_cert)
        self.endpoints = [endpoint_url(e, tls) for e in endpoints if e and e.strip()]
        if not self.endpoints:
            raise EtcdError("no etcd endpoint given")
        self.ca_cert = ca_cert
        self.client_cert = client_cert
        self.client_key = client_key
        self.validate_certs = validate_certs
        self.user = user
        self.password = password
        self.timeout = timeout
        self._token: t.Optional[str] = None
        self._prefix: t.Optional[str] = None
        self._versions: t.Optional[t.Dict[str, str]] = None

    # -- transport

    def _http(self, method: str, url: str, body: t.Optional[t.Mapping[str, t.Any]] = None,
              timeout: t.Optional[float] = None) -> t.Any:
        headers = {"Content-Type": "application/json"}
        if self._token:
            headers["Authorization"] = self._token
        data = None if body is None else json.dumps(body)
        try:
            resp = open_url(url, data=data, headers=headers, method=method, use_proxy=False,
                            timeout=timeout or self.timeout, validate_certs=self.validate_certs,
                            client_cert=self.client_cert, client_key=self.client_key,
                            ca_path=self.ca_cert, follow_redirects="none", use_netrc=False)
            text = resp.read()
        except HTTPError as err:
            raise self._http_error(err, url)
        return _decode_stream(text) if text else {}

    @staticmethod
    def _http_error(err: HTTPError, url: str) -> EtcdError:
        try:
            payload = json.loads(err.read() or b"{}")
        except (ValueError, OSError):
            payload = {}
        if isinstance(payload, dict) and "error" in payload and isinstance(payload["error"], dict):
            payload = payload["error"]  # streaming RPCs wrap errors once more
        if not isinstance(payload, dict):
            payload = {}
        message = payload.get("message") or payload.get("error") or "HTTP %s %s" % (err.code, err.reason)
        return EtcdError(str(message), int(payload.get("code") or 0), _base(url))

    def request(self, path: str, body: t.Optional[t.Mapping[str, t.Any]] = None,
                endpoint: t.Optional[str] = None, method: str = "POST", raw_path: bool = False,
                timeout: t.Optional[float] = None, idempotent: bool = True) -> t.Any:
        """POST `body` to `<prefix><path>` (or `path` itself with raw_path) with failover.

        A request that is not `idempotent` (member add/remove) fails over only while no endpoint
        could have received it (connection refused, no route); after a timeout it raises an
        EtcdConnectionError with `timed_out` (`ambiguous`) instead of sending it again elsewhere.
        """
        targets = [endpoint_url(endpoint, bool(self.ca_cert or self.client_cert))] if endpoint else list(self.endpoints)
        failures = []
        for base in targets:
            try:
                full = base + (path if raw_path else self._gateway_prefix(base) + path)
                self._authenticate(base)
                try:
                    result = self._http(method, full, body, timeout)
                except EtcdError as err:
                    if err.code != CODE_UNAUTHENTICATED or not self.user:
                        raise
                    self._token = None  # simple tokens expire; log in again once
                    self._authenticate(base)
                    result = self._http(method, full, body, timeout)
            except (URLError, UrlsConnectionError, OSError) as err:  # socket timeouts are OSErrors
                failures.append("%s: %s" % (base, _reason(err)))
                if not idempotent and _timed_out(err):
                    raise EtcdConnectionError((self.quorum_lost(targets) or "") + "no answer from etcd, the request may have "
                                              "been applied: " + "; ".join(failures), timed_out=True)
                continue
            if not endpoint and base != self.endpoints[0]:
                self.endpoints.remove(base)  # sticky: next call starts with the endpoint that worked
                self.endpoints.insert(0, base)
            return result
        message = "cannot reach etcd: " + "; ".join(failures)
        if any("timed out" in failure.lower() for failure in failures):
            # A member that answers the TCP handshake but not the request: often no leader.
            message = (self.quorum_lost(targets) or "") + message
        raise EtcdConnectionError(message)

    def quorum_lost(self, targets: t.Sequence[str]) -> t.Optional[str]:
        """A sentence saying the cluster has no leader, when a member answers its status (a local
        read that needs no quorum) with "no leader"; None when none says so."""
        answering: t.List[str] = []
        members: t.List[t.Mapping[str, t.Any]] = []
        for base in targets:
            try:
                prefix = self._gateway_prefix(base)
                status = self._http("POST", base + prefix + "/maintenance/status", {}, QUORUM_PROBE_TIMEOUT)
                if not any("no leader" in str(e) for e in status.get("errors") or ()):
                    return None  # a member with a leader: the failures are something else
                answering.append(str((status.get("header") or {}).get("member_id", "")))
                if not members:
                    listed = self._http("POST", base + prefix + "/cluster/member/list", {}, QUORUM_PROBE_TIMEOUT)
                    members = listed.get("members") or []
            except (EtcdError, URLError, UrlsConnectionError, OSError, ValueError, AttributeError):
                continue
        if not answering:
            return None
        names = {str(m.get("ID")): str(m.get("name") or m.get("ID")) for m in members}
        up = sorted(names.get(member, member) for member in answering)
        down = sorted(name for member, name in names.items() if member not in answering)
        total = len(names) or len(up)
        return ("etcd has lost quorum: %d of %d members answer (%s) and none has a leader%s; nothing can be read or "
                "written until %d of %d run again (start the stopped members: site.yml's etcd role restarts the members that "
                "have data, docs/etcd.md \"Bootstrap\"). "
                % (len(up), total, ", ".join(up), "; no answer from " + ", ".join(down) if down else "",
                   total // 2 + 1, total))

    def _authenticate(self, base: str) -> None:
        if not self.user or self._token:
            return
        answer = self._http("POST", base + self._gateway_prefix(base) + "/auth/authenticate",
                            {"name": self.user, "password": self.password or ""})
        self._token = answer.get("token") or None
        if not self._token:
            raise EtcdError("authentication as %r returned no token" % self.user, endpoint=base)

    def _gateway_prefix(self, base: str) -> str:
        if self._prefix is None:
            self._prefix = gateway_prefix(self._version_of(base)["etcdserver"])
        return self._prefix

    def _version_of(self, base: str) -> t.Dict[str, str]:
        if self._versions is None:
            answer = self._http("GET", base + "/version")
            self._versions = {"etcdserver": str(answer.get("etcdserver", "")),
                              "etcdcluster": str(answer.get("etcdcluster", ""))}
        return self._versions

    # -- server facts

    def version(self, endpoint: t.Optional[str] = None) -> t.Dict[str, str]:
        """{"etcdserver": "3.4.23", "etcdcluster": "3.4.0"} from `GET /version`."""
        answer = self.request("/version", endpoint=endpoint, method="GET", raw_path=True)
        return {"etcdserver": str(answer.get("etcdserver", "")), "etcdcluster": str(answer.get("etcdcluster", ""))}

    def supports_learners(self, settle: float = 10.0) -> bool:
        """Learners exist from cluster version 3.4 on.

        Right after start-up a cluster reports version 3.0.0 until its leader has settled the
        cluster version (seconds on a loaded machine): while the server itself is 3.4 or newer,
        wait up to `settle` seconds for the real answer instead of taking 3.0 for it."""
        deadline = time.monotonic() + settle
        while True:
            versions = self.version()
            cluster = parse_version(versions["etcdcluster"] or "0.0")
            if cluster >= (3, 4) or parse_version(versions["etcdserver"] or "0.0") < (3, 4) \
                    or cluster != (3, 0) or time.monotonic() >= deadline:
                return cluster >= (3, 4)
            time.sleep(0.5)

    def health(self, endpoint: t.Optional[str] = None) -> t.Tuple[bool, str]:
        """`GET /health` (a quorum read on the member): (healthy, reason)."""
        try:
            answer = self.request("/health", endpoint=endpoint, method="GET", raw_path=True)
        except EtcdError as err:
            if isinstance(err, EtcdConnectionError):
                raise
            return False, err.message  # 503 with {"health":"false"}
        healthy = str(answer.get("health", "")).lower() == "true"
        return healthy, "" if healthy else str(answer.get("reason") or "unhealthy")

    def status(self, endpoint: t.Optional[str] = None) -> t.Dict[str, t.Any]:
        """Maintenance status of one endpoint: member id, leader, raft index, version, db size."""
        raw = self.request("/maintenance/status", {}, endpoint=endpoint)
        header = raw.get("header", {})
        return {
            "member_id": id_from_json(header.get("member_id")),
            "cluster_id": id_from_json(header.get("cluster_id")),
            "revision": id_from_json(header.get("revision")),
            "raft_term": id_from_json(raw.get("raftTerm")),
            "leader": id_from_json(raw.get("leader")),
            "raft_index": id_from_json(raw.get("raftIndex")),
            "raft_applied_index": id_from_json(raw.get("raftAppliedIndex")),
            "version": raw.get("version", ""),
            "db_size": id_from_json(raw.get("dbSize")),
            "is_learner": bool(raw.get("isLearner", False)),
            "errors": list(raw.get("errors") or ()),
        }

    # -- membership

    def member_list(self) -> t.Tuple[int, t.List[Member]]:
        """(cluster id, members). Linearizable where the server supports it."""
        raw = self.request("/cluster/member/list", {"linearizable": True})
        return id_from_json(raw.get("header", {}).get("cluster_id")), [Member.from_json(m) for m in raw.get("members", ())]

    def member_add(self, peer_urls: t.Sequence[str], learner: bool = False) -> Member:
        """One attempt; an `ambiguous` error may hide a committed add (see _etcd_membership.add_member)."""
        body: t.Dict[str, t.Any] = {"peerURLs": list(peer_urls)}
        if learner:
            body["isLearner"] = True
        return Member.from_json(self.request("/cluster/member/add", body, idempotent=False).get("member", {}))

    def member_remove(self, member_id: int) -> None:
        """One attempt; an `ambiguous` error may hide a committed removal."""
        self.request("/cluster/member/remove", {"ID": str(member_id)}, idempotent=False)

    def member_promote(self, member_id: int) -> None:
        self.request("/cluster/member/promote", {"ID": str(member_id)})

    def member_update(self, member_id: int, peer_urls: t.Sequence[str]) -> None:
        self.request("/cluster/member/update", {"ID": str(member_id), "peerURLs": list(peer_urls)})

    # -- key/value

    def range(self, key: t.Union[str, bytes], prefix: bool = False, serializable: bool = False,
              revision: int = 0, keys_only: bool = False) -> t.Tuple[int, t.List[KeyValue]]:
        """(store revision, key-values) of `key` (or every key under it with prefix).

        `revision` reads the store as it was at that revision (0: now); etcd answers
        "required revision has been compacted" once compaction passed it. `keys_only`
        leaves the values out.
        """
        raw_key = key.encode("utf-8") if isinstance(key, str) else key
        body: t.Dict[str, t.Any] = {"key": b64(raw_key)}
        if prefix:
            body["range_end"] = b64(prefix_range_end(raw_key))
        if serializable:
            body["serializable"] = True
        if revision:
            body["revision"] = str(int(revision))
        if keys_only:
            body["keys_only"] = True
        raw = self.request("/kv/range", body)
        return id_from_json(raw.get("header", {}).get("revision")), [KeyValue.from_json(kv) for kv in raw.get("kvs", ())]

    def get(self, key: t.Union[str, bytes], revision: int = 0) -> t.Tuple[int, t.Optional[KeyValue]]:
        revision, kvs = self.range(key, revision=revision)
        return revision, (kvs[0] if kvs else None)

    def put(self, key: t.Union[str, bytes], value: t.Union[str, bytes], lease: int = 0) -> int:
        """Write a key; returns the new store revision."""
        body: t.Dict[str, t.Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        return id_from_json(self.request("/kv/put", body).get("header", {}).get("revision"))

    def delete(self, key: t.Union[str, bytes], prefix: bool = False) -> int:
        """Delete a key (or a prefix); returns how many keys went."""
        raw_key = key.encode("utf-8") if isinstance(key, str) else key
        body: t.Dict[str, t.Any] = {"key": b64(raw_key)}
        if prefix:
            body["range_end"] = b64(prefix_range_end(raw_key))
        return id_from_json(self.request("/kv/deleterange", body).get("deleted"))

    def txn(self, compare: t.Sequence[t.Mapping[str, t.Any]], success: t.Sequence[t.Mapping[str, t.Any]],
            failure: t.Sequence[t.Mapping[str, t.Any]] = ()) -> t.Tuple[bool, int, t.List[t.Dict[str, t.Any]]]:
        """(succeeded, store revision, responses). Build operations with the `txn_*` helpers."""
        raw = self.request("/kv/txn", {"compare": list(compare), "success": list(success), "failure": list(failure)})
        return (bool(raw.get("succeeded", False)), id_from_json(raw.get("header", {}).get("revision")),
                list(raw.get("responses", ())))

    # -- leases

    def lease_grant(self, ttl: int) -> t.Tuple[int, int]:
        """(lease id, granted ttl) — etcd may raise a tiny ttl to its minimum."""
        raw = self.request("/lease/grant", {"TTL": str(int(ttl))})
        if raw.get("error"):
            raise EtcdError(str(raw["error"]))
        return id_from_json(raw.get("ID")), id_from_json(raw.get("TTL"))

    def lease_keepalive(self, lease_id: int) -> int:
        """Refresh a lease once; returns the new ttl (0 means the lease no longer exists)."""
        raw = self.request("/lease/keepalive", {"ID": str(lease_id)})
        result = raw.get("result", raw) if isinstance(raw, dict) else {}
        return id_from_json(result.get("TTL"))

    def lease_revoke(self, lease_id: int) -> None:
        try:
            self.request("/kv/lease/revoke", {"ID": str(lease_id)})
        except EtcdError as err:
            if "lease not found" not in err.message:
                raise

    def lease_timetolive(self, lease_id: int) -> int:
        """Remaining seconds of a lease, -1 if it does not exist (any more)."""
        raw = self.request("/kv/lease/timetolive", {"ID": str(lease_id)})
        ttl = raw.get("TTL")
        return -1 if ttl is None else int(ttl)


# ---------------------------------------------------------------- txn builders

def txn_compare(key: str, target: str, value: t.Any, result: str = "EQUAL") -> t.Dict[str, t.Any]:
    """A compare clause; target is CREATE, MOD, VERSION, VALUE or LEASE."""
    field = {"CREATE": "create_revision", "MOD": "mod_revision", "VERSION": "version",
             "VALUE": "value", "LEASE": "lease"}[target]
    return {"key": b64(key), "target": target, "result": result,
            field: b64(value) if target == "VALUE" else str(int(value))}


def txn_put(key: str, value: t.Union[str, bytes], lease: int = 0) -> t.Dict[str, t.Any]:
    body: t.Dict[str, t.Any] = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = str(lease)
    return {"request_put": body}


def txn_range(key: str) -> t.Dict[str, t.Any]:
    return {"request_range": {"key": b64(key)}}


def txn_delete(key: str) -> t.Dict[str, t.Any]:
    return {"request_delete_range": {"key": b64(key)}}


def txn_range_kvs(response: t.Mapping[str, t.Any]) -> t.List[KeyValue]:
    """The key-values of a `response_range` inside a txn answer."""
    return [KeyValue.from_json(kv) for kv in response.get("response_range", {}).get("kvs", ())]


# ---------------------------------------------------------------- internals

def _base(url: str) -> str:
    scheme, rest = url.split("://", 1) if "://" in url else ("http", url)
    return "%s://%s" % (scheme, rest.split("/", 1)[0])


def _timed_out(err: BaseException) -> bool:
    """A socket timeout, bare or wrapped in a URLError: the request may have reached the server."""
    reason = getattr(err, "reason", None)
    for candidate in (err, reason):
        if isinstance(candidate, (socket.timeout, TimeoutError)):
            return True
    return "timed out" in str(reason if reason is not None else err).lower()


def _reason(err: BaseException) -> str:
    reason = getattr(err, "reason", None)
    return str(reason if reason is not None else err) or err.__class__.__name__


def _decode_stream(text: bytes) -> t.Any:
    """One JSON document, or the first of a newline-delimited stream (streaming RPCs)."""
    text = text.strip()
    try:
        return json.loads(text)
    except ValueError:
        first = text.split(b"\n", 1)[0]
        return json.loads(first)

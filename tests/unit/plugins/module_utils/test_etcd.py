# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic of the etcd edge: versions, IDs, wire defaults, URLs, retries, connection options."""

from __future__ import annotations

import pytest
from ansible.module_utils.errors import AnsibleFallbackNotFound
from ansible_collections.stackfleet.cluster.plugins.module_utils import _etcd
from ansible_collections.stackfleet.cluster.plugins.module_utils._etcd import EtcdError, Member


@pytest.mark.parametrize("version, prefix", [
    ("3.5.12", "/v3"), ("3.4.23", "/v3"), ("v3.4.0", "/v3"), ("3.6.0-alpha.0", "/v3"),
    ("3.3.25", "/v3beta"), ("3.2.32", "/v3alpha"),
])
def test_gateway_prefix(version, prefix):
    assert _etcd.gateway_prefix(version) == prefix


@pytest.mark.parametrize("version", ["3.1.20", "2.3.8", "", "not-a-version"])
def test_gateway_prefix_refuses_old_or_garbage(version):
    with pytest.raises(EtcdError):
        _etcd.gateway_prefix(version)


def test_ids_decimal_and_hex_as_etcdctl_prints_them():
    big = "10501334649042878790"  # > 2**63: must stay exact
    assert _etcd.id_from_json(big) == 10501334649042878790
    assert _etcd.id_hex(_etcd.id_from_json(big)) == "91bc3c398fb3c146"
    assert _etcd.id_from_json(None) == 0  # default value omitted from JSON
    assert _etcd.parse_id("91bc3c398fb3c146") == 10501334649042878790
    assert _etcd.parse_id("0x91BC3C398FB3C146") == 10501334649042878790
    assert _etcd.parse_id(big) == 10501334649042878790
    assert _etcd.id_hex(255) == "ff"


def test_member_fills_in_omitted_defaults():
    unstarted = Member.from_json({"ID": "4623301070992559217", "peerURLs": ["https://10.0.0.14:2380"], "isLearner": True})
    assert unstarted.name == "" and unstarted.client_urls == () and unstarted.is_learner and not unstarted.started
    voting = Member.from_json({"ID": "1", "name": "h1", "peerURLs": ["http://a:2380"], "clientURLs": ["http://a:2379"]})
    assert voting.is_learner is False and voting.started
    assert voting.to_result() == {"id": 1, "id_hex": "1", "name": "h1", "peer_urls": ["http://a:2380"],
                                  "client_urls": ["http://a:2379"], "learner": False, "started": True}


def test_key_value_and_base64():
    kv = _etcd.KeyValue.from_json({"key": _etcd.b64("/k"), "create_revision": "5", "mod_revision": "7", "version": "2"})
    assert kv.key == b"/k" and kv.value == b"" and kv.lease == 0 and (kv.create_revision, kv.mod_revision) == (5, 7)
    assert _etcd.unb64(_etcd.b64("ünï")) == "ünï".encode()


@pytest.mark.parametrize("key, end", [(b"/a/", b"/a0"), (b"a\xff", b"b"), (b"\xff\xff", b"\0")])
def test_prefix_range_end(key, end):
    assert _etcd.prefix_range_end(key) == end


def test_urls():
    assert _etcd.normalise_url("HTTPS://Node-1:2380/") == "https://node-1:2380"
    assert _etcd.endpoint_url("10.0.0.1:2379", tls=True) == "https://10.0.0.1:2379"
    assert _etcd.endpoint_url("10.0.0.1:2379", tls=False) == "http://10.0.0.1:2379"
    assert _etcd.endpoint_url("http://x:2379/", tls=True) == "http://x:2379"


@pytest.mark.parametrize("text, seconds", [("5", 5.0), ("5s", 5.0), ("500ms", 0.5), ("1m", 60.0), ("2.5s", 2.5)])
def test_parse_duration(text, seconds):
    assert _etcd.parse_duration(text) == seconds


def test_retryable_codes():
    assert EtcdError("etcdserver: unhealthy cluster", 14).retryable
    assert not EtcdError("etcdserver: member not found", 5).retryable
    assert "http://a:2379" in str(EtcdError("boom", 2, "http://a:2379"))


def test_retry_is_bounded(monkeypatch):
    monkeypatch.setattr(_etcd.time, "sleep", lambda s: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise EtcdError("etcdserver: unhealthy cluster", 14)
        return "ok"

    assert _etcd.retry(flaky, timeout=10, interval=0.0) == "ok" and len(calls) == 3

    def fatal():
        raise EtcdError("etcdserver: member not found", 5)

    with pytest.raises(EtcdError, match="not found"):
        _etcd.retry(fatal, timeout=10)

    def always_unhealthy():
        raise EtcdError("etcdserver: unhealthy cluster", 14)

    clock = iter(range(100))
    monkeypatch.setattr(_etcd.time, "monotonic", lambda: next(clock))
    with pytest.raises(EtcdError, match="unhealthy"):
        _etcd.retry(always_unhealthy, timeout=5)


def test_http_error_body_becomes_etcd_error():
    class FakeHTTPError:
        code, reason = 503, "Service Unavailable"

        def read(self):
            return b'{"error":"etcdserver: unhealthy cluster","message":"etcdserver: unhealthy cluster","code":14}'

    err = _etcd.EtcdClient._http_error(FakeHTTPError(), "https://10.0.0.1:2379/v3/cluster/member/add")
    assert err.code == 14 and err.retryable and err.endpoint == "https://10.0.0.1:2379"
    assert err.message == "etcdserver: unhealthy cluster"


def test_decode_stream_takes_first_document():
    assert _etcd._decode_stream(b'{"result":{"TTL":"5"}}\n{"result":{"TTL":"5"}}\n') == {"result": {"TTL": "5"}}


def test_env_fallbacks(monkeypatch):
    for name in ("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "ETCD_TIMEOUT", "ETCDCTL_COMMAND_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AnsibleFallbackNotFound):
        _etcd._insecure_fallback()
    with pytest.raises(AnsibleFallbackNotFound):
        _etcd._timeout_fallback()
    monkeypatch.setenv("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "true")
    assert _etcd._insecure_fallback() is False
    monkeypatch.setenv("ETCDCTL_COMMAND_TIMEOUT", "750ms")
    assert _etcd._timeout_fallback() == 0.75
    monkeypatch.setenv("ETCD_TIMEOUT", "9")
    assert _etcd._timeout_fallback() == 9.0
    spec = _etcd.CONNECTION_ARGSPEC
    assert spec["password"]["no_log"] is True
    assert spec["endpoints"]["fallback"][1] == ["ETCD_ENDPOINTS", "ETCDCTL_ENDPOINTS"]
    assert spec["ca_cert"]["fallback"][1][0] == "ETCDCTL_CACERT"


def test_client_from_params_splits_etcdctl_user_form():
    params = {"endpoints": ["10.0.0.1:2379"], "user": "root:pw:with:colons", "password": None, "ca_cert": "/ca.pem"}
    client = _etcd.client_from_params(params)
    assert (client.user, client.password) == ("root", "pw:with:colons")
    assert client.endpoints == ["https://10.0.0.1:2379"]  # TLS files given: https, as etcdctl does
    with pytest.raises(EtcdError, match="no etcd endpoint"):
        _etcd.EtcdClient([" "])

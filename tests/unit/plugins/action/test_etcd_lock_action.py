"""The keeper gets the etcd connection exactly as the module resolves it."""

from __future__ import annotations

from ansible_collections.stackfleet.cluster.plugins.action.etcd_lock import connection_params


def test_task_options_aliases_and_defaults(monkeypatch):
    for name in ("ETCD_ENDPOINTS", "ETCDCTL_ENDPOINTS", "ETCDCTL_CACERT", "ETCD_CACERT", "ETCD_TIMEOUT",
                 "ETCDCTL_COMMAND_TIMEOUT", "ETCDCTL_INSECURE_SKIP_TLS_VERIFY"):
        monkeypatch.delenv(name, raising=False)
    params = connection_params({"name": "prod", "ttl": 30, "endpoints": ["https://a:2379"], "cacert": "/ca.pem"})
    assert params["endpoints"] == ["https://a:2379"] and params["ca_cert"] == "/ca.pem"
    assert params["validate_certs"] is True and params["timeout"] == 5.0
    assert "name" not in params and "ttl" not in params


def test_environment_fallbacks(monkeypatch):
    monkeypatch.setenv("ETCDCTL_ENDPOINTS", "https://x:2379,https://y:2379")
    monkeypatch.setenv("ETCDCTL_PASSWORD", "s3cret")
    monkeypatch.setenv("ETCDCTL_COMMAND_TIMEOUT", "500ms")
    params = connection_params({"name": "prod"})
    assert params["endpoints"] == ["https://x:2379", "https://y:2379"]
    assert params["password"] == "s3cret" and params["timeout"] == 0.5

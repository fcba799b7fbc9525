# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_ping: one GET /_ping per attempt until 200 OK or the wait is over; bad options fail before any attempt.
The connection is _docker's (api_client): over TLS, a stand-in engine with certificates made by the lab's
openssl helper checks that the CA works as PEM text and as a file, that only that CA is trusted (not
requests' bundle, not REQUESTS_CA_BUNDLE) and that the client certificate is presented."""

from __future__ import annotations

import http.server
import os
import socket
import ssl
import sys
import threading

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils import _docker
from ansible_collections.stackfleet.cluster.plugins.module_utils._ping import PingError, ping
from fake_clock import FakeClock

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "lab"))
import lab_tls  # noqa: E402  # the lab's CA and certificates (openssl CLI)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(answers, tls=None):
    """A plain-HTTP (or, with a server SSLContext, HTTPS) engine stand-in answering /_ping with the given
    (status, body) in turn, then the last one."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            status, body = answers.pop(0) if len(answers) > 1 else answers[0]
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """The engine's CA, its server certificate for 127.0.0.1, a client certificate; and a second CA."""
    main, other = tmp_path_factory.mktemp("pki"), tmp_path_factory.mktemp("other")
    ca, _ca_key = lab_tls.ensure_ca(str(main), "unit")
    server = lab_tls.ensure_cert(str(main), "server", "engine", sans=("IP:127.0.0.1",))
    client = lab_tls.ensure_cert(str(main), "client", "client", server=False)
    other_ca, _other_key = lab_tls.ensure_ca(str(other), "other")
    return {"ca": ca, "server": server, "client": client, "other_ca": other_ca}


@pytest.fixture
def tls_engine(pki):
    """An HTTPS engine stand-in that requires a client certificate signed by the CA; yields its URL."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*pki["server"])
    context.load_verify_locations(cafile=pki["ca"])
    context.verify_mode = ssl.CERT_REQUIRED
    server = serve([(200, "OK")], tls=context)
    yield "https://127.0.0.1:%d" % server.server_port
    server.shutdown()


def read(path):
    with open(path) as handle:
        return handle.read()


def test_an_engine_that_answers_costs_one_attempt():
    server = serve([(200, "OK")])
    try:
        answer = ping("http://127.0.0.1:%d" % server.server_port, wait=30)
    finally:
        server.shutdown()
    assert answer["ok"] and answer["attempts"] == 1 and answer["status"] == 200 and answer["error"] is None


def test_it_asks_again_until_the_engine_answers_ok():
    server = serve([(503, "starting"), (503, "starting"), (200, "OK")])
    clock = FakeClock()
    try:
        answer = ping("http://127.0.0.1:%d/" % server.server_port, wait=30, clock=clock, sleep=clock.sleep)
    finally:
        server.shutdown()
    assert answer["ok"] and answer["attempts"] == 3 and clock.now == 2


def test_no_answer_within_the_wait_is_a_failure_with_the_last_reason():
    clock = FakeClock()
    answer = ping("http://127.0.0.1:%d" % free_port(), wait=3, timeout=1, clock=clock, sleep=clock.sleep)
    assert not answer["ok"] and answer["attempts"] == 4 and "Connection" in answer["error"]


def test_a_wrong_answer_is_not_ok():
    server = serve([(200, "not docker")])
    try:
        answer = ping("http://127.0.0.1:%d" % server.server_port, wait=0)
    finally:
        server.shutdown()
    assert not answer["ok"] and answer["attempts"] == 1 and "not 200 'OK'" in answer["error"]


def test_the_ca_as_pem_text_or_as_a_file_and_the_client_certificate(tls_engine, pki):
    for ca in (read(pki["ca"]), pki["ca"]):
        answer = ping(tls_engine, ca, *pki["client"], wait=0)
        assert answer["ok"] and answer["attempts"] == 1, answer


def test_only_the_given_ca_is_trusted_whatever_the_environment_says(tls_engine, pki, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki["ca"])
    monkeypatch.setenv("CURL_CA_BUNDLE", pki["ca"])
    answer = ping(tls_engine, read(pki["other_ca"]), *pki["client"], wait=0)
    assert not answer["ok"] and "certificate verify failed" in answer["error"]
    assert answer["error"].startswith("GET %s/_ping: " % tls_engine)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", pki["other_ca"])
    assert ping(tls_engine, pki["ca"], *pki["client"], wait=0)["ok"]


def test_without_the_client_certificate_the_engine_refuses(tls_engine, pki):
    answer = ping(tls_engine, read(pki["ca"]), wait=0)
    assert not answer["ok"] and answer["status"] is None and answer["error"].startswith("GET %s/_ping: " % tls_engine)


def test_the_connection_is_the_docker_clients(pki):
    """engine_ping and the modules share _docker.api_client: one adapter, one TLS context."""
    endpoint = _docker.Endpoint(url="https://127.0.0.1:2376", tls=True, verify=True, ca_path=read(pki["ca"]),
                                client_cert=pki["client"][0], client_key=pki["client"][1])
    api = _docker.api_client(endpoint)
    try:
        adapter = api.get_adapter("https://127.0.0.1:2376/_ping")
        assert adapter.poolmanager.connection_pool_kw["ssl_context"].verify_mode == ssl.CERT_REQUIRED
        assert api.trust_env is False and api.verify is True
    finally:
        api.close()


@pytest.mark.parametrize("url, ca, cert, message", [
    ("tcp://10.0.0.1:2376", None, None, "expected http://host:port"),
    ("https://10.0.0.1:2376/v1.41", "x", None, "expected http://host:port"),
    ("https://10.0.0.1:2376", None, None, "url https://10.0.0.1:2376 is https: ca_cert .* is required"),
    ("https://10.0.0.1:2376", "/nonexistent/ca.pem", None,
     "cannot load the CA certificate for the Docker engine at https://10.0.0.1:2376 [(]ca_path /nonexistent/ca.pem[)]"),
    ("https://10.0.0.1:2376", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", None,
     "cannot load the CA certificate .*[(]ca_path given as PEM text[)]"),
    ("https://10.0.0.1:2376", "ca", "/nonexistent/cert.pem",
     "cannot load the client certificate for the Docker engine at https://10.0.0.1:2376 [(]client_cert /nonexistent/cert.pem"),
])
def test_bad_options_fail_before_any_attempt(url, ca, cert, message, pki):
    with pytest.raises(PingError, match=message):
        ping(url, pki["ca"] if ca == "ca" else ca, cert, wait=0)

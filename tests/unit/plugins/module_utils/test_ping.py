# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_ping: one GET /_ping per attempt until 200 OK or the wait is over; bad options fail before any attempt."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest
from ansible_collections.stackfleet.cluster.plugins.module_utils._ping import PingError, ping
from fake_clock import FakeClock


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(answers):
    """A plain-HTTP engine stand-in answering /_ping with the given (status, body) in turn, then the last one."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            status, body = answers.pop(0) if len(answers) > 1 else answers[0]
            self.send_response(status)
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


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


@pytest.mark.parametrize("url, ca, message", [
    ("tcp://10.0.0.1:2376", None, "expected http://host:port"),
    ("https://10.0.0.1:2376", None, "ca_cert: expected the CA certificate as PEM text"),
    ("https://10.0.0.1:2376", "/etc/docker/ca.pem", "ca_cert: expected the CA certificate as PEM text"),
    ("https://10.0.0.1:2376", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", "cannot load the TLS material"),
])
def test_bad_options_fail_before_any_attempt(url, ca, message):
    with pytest.raises(PingError, match=message):
        ping(url, ca)

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`GET /_ping` on a Docker engine's API endpoint, waiting until it answers (the engine_ping action).

Standard library only: the CA is taken as PEM text (no temporary file), the client certificate and
key as files. An answer counts only when it is `200 OK` with the body `OK`, over TLS verified against
that CA (host name included) with the client certificate presented: the listener, the server
certificate and client authentication are proven together.
"""

from __future__ import annotations

import http.client
import ssl
import time
import typing as t
import urllib.parse


class PingError(Exception):
    """Bad options (a URL that is not http(s), a CA that is not PEM): no attempt was made."""


def context(ca_pem: t.Optional[str], client_cert: t.Optional[str], client_key: t.Optional[str]) -> ssl.SSLContext:
    """A client TLS context trusting only `ca_pem` (PEM text), presenting the client certificate."""
    if not ca_pem or "-----BEGIN" not in ca_pem:
        raise PingError("ca_cert: expected the CA certificate as PEM text (-----BEGIN CERTIFICATE-----...)")
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
    if client_cert:
        ctx.load_cert_chain(client_cert, client_key or None)
    return ctx


def ping_once(url: str, ctx: t.Optional[ssl.SSLContext], timeout: float) -> t.Tuple[t.Optional[int], str]:
    """(HTTP status, body) of one `GET /_ping`; raises OSError (ssl.SSLError included) when there is no answer."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(parts.hostname or "", parts.port or 443,
                                                                       timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", (parts.path.rstrip("/") or "") + "/_ping")
        answer = conn.getresponse()
        return answer.status, answer.read(256).decode("utf-8", "replace")
    finally:
        conn.close()


def ping(url: str, ca_pem: t.Optional[str] = None, client_cert: t.Optional[str] = None, client_key: t.Optional[str] = None,
         timeout: float = 5, wait: float = 30, delay: float = 1,
         clock: t.Callable[[], float] = time.monotonic, sleep: t.Callable[[float], None] = time.sleep) -> t.Dict[str, t.Any]:
    """Ping `url` (scheme://host:port) until it answers `200 OK` or `wait` seconds have passed, one
    attempt at once and then every `delay` seconds. Returns {ok, status, content, attempts, seconds,
    error}; `error` is the last attempt's reason when not ok."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PingError("url %r: expected http://host:port or https://host:port" % url)
    try:
        ctx = context(ca_pem, client_cert, client_key) if parts.scheme == "https" else None
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise PingError("cannot load the TLS material (ca_cert, client_cert %s, client_key %s): %s" % (
            client_cert, client_key, exc)) from exc
    start = clock()
    attempts, status, content, error = 0, None, "", None
    while True:
        attempts += 1
        try:
            status, content = ping_once(url, ctx, timeout)
            error = None if status == 200 and content == "OK" else "answered %s %r, not 200 'OK'" % (status, content[:80])
        except (OSError, http.client.HTTPException) as exc:
            status, content, error = None, "", "%s: %s" % (type(exc).__name__, exc)
        if error is None or clock() - start + delay > wait:
            break
        sleep(delay)
    return {"ok": error is None, "status": status, "content": content, "attempts": attempts,
            "seconds": round(clock() - start, 3), "error": error}

# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""`GET /_ping` on a Docker engine's API endpoint, waiting until it answers (the engine_ping action).

Only the waiting is here: the connection is `_docker`'s (api_client, ping_once), the one client that
talks to engines, with the CA as PEM text (no temporary file) or a file, the client certificate and
key as files. An answer counts only when it is `200 OK` with the body `OK`, over TLS verified against
that CA (host name included) with the client certificate presented: the listener, the server
certificate and client authentication are proven together.
"""

from __future__ import annotations

import time
import typing as t
import urllib.parse

from ansible_collections.stackfleet.cluster.plugins.module_utils._docker import Endpoint, EngineError, api_client, ping_once


class PingError(Exception):
    """Bad options (a URL that is not http(s), TLS material that does not load): no attempt was made."""


def ping(url: str, ca_cert: t.Optional[str] = None, client_cert: t.Optional[str] = None, client_key: t.Optional[str] = None,
         timeout: float = 5, wait: float = 30, delay: float = 1,
         clock: t.Callable[[], float] = time.monotonic, sleep: t.Callable[[float], None] = time.sleep) -> t.Dict[str, t.Any]:
    """Ping `url` (scheme://host:port) until it answers `200 OK` or `wait` seconds have passed, one
    attempt at once and then every `delay` seconds. `ca_cert` is the CA as PEM text or a file (https
    only, required there). Returns {ok, status, content, attempts, seconds, error}; `error` is the
    last attempt's reason when not ok."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/"):
        raise PingError("url %r: expected http://host:port or https://host:port" % url)
    https = parts.scheme == "https"
    if https and not ca_cert:
        raise PingError("url %s is https: ca_cert (the CA certificate as PEM text, or its file) is required" % url)
    endpoint = Endpoint(url=url.rstrip("/"), tls=https, verify=https, ca_path=ca_cert if https else None,
                        client_cert=client_cert if https else None, client_key=client_key if https else None,
                        timeout=max(1, int(round(timeout))))
    try:
        api = api_client(endpoint)
    except EngineError as exc:
        raise PingError(str(exc)) from exc
    start = clock()
    attempts, status, content, error = 0, None, "", None
    try:
        while True:
            attempts += 1
            try:
                status, content = ping_once(api, timeout)
                error = None if status == 200 and content == "OK" else "answered %s %r, not 200 'OK'" % (status, content[:80])
            except EngineError as exc:
                status, content, error = None, "", str(exc)
            if error is None or clock() - start + delay > wait:
                break
            sleep(delay)
    finally:
        api.close()
    return {"ok": error is None, "status": status, "content": content, "attempts": attempts,
            "seconds": round(clock() - start, 3), "error": error}

"""A tiny Docker Engine API client over a unix socket.

The lab tool must run before the project venv exists and must not depend on the
docker CLI version installed on the machine, so it speaks the few engine calls it
needs (ping, import, inspect, create/start/remove) itself with the stdlib.
"""
import http.client
import json
import os
import socket
import urllib.parse

API_VERSION = "1.41"  # dockerd 20.10 (Debian 12); newer engines still accept it
API = "/v" + API_VERSION


class EngineError(Exception):
    pass


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Engine:
    """One dockerd, reached through its unix socket."""

    def __init__(self, socket_path, timeout=60.0):
        self.socket_path = socket_path
        self.timeout = timeout

    def _call(self, method, path, query=None, body=None, headers=None, timeout=None):
        url = API + path
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        conn = _UnixConnection(self.socket_path, timeout or self.timeout)
        try:
            conn.request(method, url, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def _json(self, method, path, query=None, payload=None, ok=(200, 201, 204)):
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body is not None else None
        status, data = self._call(method, path, query, body, headers)
        if status not in ok:
            raise EngineError("%s %s -> %s: %s" % (method, path, status, data.decode(errors="replace").strip()))
        return json.loads(data) if data.strip() else None

    def ping(self, timeout=1.0):
        try:
            status, _body = self._call("GET", "/_ping", timeout=timeout)
        except OSError:
            return False
        return status == 200

    def image_exists(self, ref):
        status, _body = self._call("GET", "/images/%s/json" % urllib.parse.quote(ref, safe=":/"))
        return status == 200

    def image_id(self, ref):
        """The image's id (`sha256:...`), or None when the engine has no such image."""
        status, data = self._call("GET", "/images/%s/json" % urllib.parse.quote(ref, safe=":/"))
        return json.loads(data)["Id"] if status == 200 else None

    def images(self):
        return sorted(tag for image in self._json("GET", "/images/json") for tag in image.get("RepoTags") or [] if tag != "<none>:<none>")

    def import_image(self, tar_path, ref, changes):
        repo, tag = ref.rsplit(":", 1)
        query = {"fromSrc": "-", "repo": repo, "tag": tag, "changes": changes}
        with open(tar_path, "rb") as stream:
            headers = {"Content-Type": "application/x-tar", "Content-Length": str(os.fstat(stream.fileno()).st_size)}
            status, data = self._call("POST", "/images/create", query, stream, headers, timeout=300)
        # The import answers 200 with a JSON progress stream; failures are an "error" line in it.
        if status != 200 or b'"error"' in data:
            raise EngineError("import of %s failed (%s): %s" % (ref, status, data.decode(errors="replace").strip()))

    def load_images(self, tar_path):
        """`docker load`: an archive of manifest.json, image configs and layer tars."""
        with open(tar_path, "rb") as stream:
            headers = {"Content-Type": "application/x-tar", "Content-Length": str(os.fstat(stream.fileno()).st_size)}
            status, data = self._call("POST", "/images/load", {"quiet": "1"}, stream, headers, timeout=600)
        if status != 200 or b'"error' in data:
            raise EngineError("load of %s failed (%s): %s" % (tar_path, status, data.decode(errors="replace").strip()))

    def containers(self, label=None):
        query = {"all": "1"}
        if label:
            query["filters"] = json.dumps({"label": [label]})
        return self._json("GET", "/containers/json", query)

    def inspect(self, name):
        status, data = self._call("GET", "/containers/%s/json" % name)
        if status == 404:
            return None
        if status != 200:
            raise EngineError("inspect %s -> %s: %s" % (name, status, data.decode(errors="replace").strip()))
        return json.loads(data)

    def create(self, name, config):
        return self._json("POST", "/containers/create", {"name": name}, config)["Id"]

    def start(self, name):
        self._json("POST", "/containers/%s/start" % name, ok=(204, 304))

    def remove(self, name):
        self._json("DELETE", "/containers/%s" % name, {"force": "1", "v": "1"}, ok=(204, 404))

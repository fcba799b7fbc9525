"""A simulated Docker Engine API, for the benchmark ONLY (bench/scale_sim.py; never in functional tests).

    .venv/bin/python bench/sim_engine.py --engines 1000 --base-port 30000 --latency-ms 2 --image shop-web:1 ...

One process (asyncio) serves `--engines` engines on 127.0.0.1, ports base-port .. base-port+N-1,
each with its own in-memory containers and images. Plain HTTP on loopback: the bench measures
stackfleet's own cost at fleet sizes no lab here can build; TLS to real engines is tested for real
in tests/integration. Every answer waits `--latency-ms` first (a real engine's per-call cost; a
local dockerd answers a listing in ~1-3 ms, a create in ~20-60 ms: see --write-latency-ms).

It answers exactly the calls plugins/module_utils/_docker.py makes:
  GET  /_ping, /version                        (with or without the /v1.xx prefix)
  GET  /containers/json?all=1&filters={"label": ["k=v"]}
  GET  /containers/{id}/json, /containers/{id}/logs
  GET  /images/json, /images/{name or id}/json; POST /images/create (pull: adds the image)
  POST /containers/create?name=, /containers/{id}/start|stop|unpause|update|rename?name=
  DELETE /containers/{id}
Anything else answers 404 with a message naming the call, so a new call shows up in the bench.
When it is ready it prints one line "ready <engines> <base-port>" on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import itertools
import json
import resource
import sys
import urllib.parse

API_VERSION = "1.41"
_IDS = itertools.count(1)


def _id(text: str) -> str:
    return hashlib.sha256(("%s-%d" % (text, next(_IDS))).encode()).hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: UP017


class Engine:
    """One engine's state: containers by id, images by id and tag."""

    def __init__(self, images):
        self.containers = {}
        self.images = {}
        for ref in images:
            self.add_image(ref)

    def add_image(self, ref):
        image_id = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
        tags = self.images.setdefault(image_id, {"Id": image_id, "RepoTags": [], "RepoDigests": [], "Created": 0,
                                                 "Size": 1, "Config": {"Env": [], "Cmd": None, "Entrypoint": None,
                                                                       "Labels": None, "ExposedPorts": None}})
        if ref not in tags["RepoTags"]:
            tags["RepoTags"].append(ref if ":" in ref.rsplit("/", 1)[-1] else ref + ":latest")
        return image_id

    def image(self, ref):
        if ref in self.images:
            return self.images[ref]
        want = ref if ":" in ref.rsplit("/", 1)[-1] else ref + ":latest"
        for image in self.images.values():
            if want in image["RepoTags"] or ref in image["Id"]:
                return image
        return None

    def find(self, ref):
        if ref in self.containers:
            return self.containers[ref]
        for container in self.containers.values():
            if container["Name"] == "/" + ref or container["Id"].startswith(ref):
                return container
        return None

    def row(self, container):
        state = container["State"]
        return {"Id": container["Id"], "Names": [container["Name"]], "Image": container["Config"]["Image"],
                "ImageID": container["Image"], "Labels": container["Config"].get("Labels") or {},
                "State": state["Status"], "Status": "Up 1 minute" if state["Running"] else "Exited (0)",
                "Created": container["CreatedUnix"]}


def _label_filter(query):
    raw = query.get("filters", [""])[0]
    if not raw:
        return []
    filters = json.loads(raw)
    labels = filters.get("label", [])
    return list(labels) if isinstance(labels, list) else list(labels.keys())


def _matches(labels, wanted):
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def handle(engine, method, path, query, body):
    """(status, json body or None) of one call."""
    parts = [p for p in path.split("/") if p]
    if parts and parts[0].startswith("v1."):
        parts = parts[1:]
    route = "/".join(parts)
    if route == "_ping":
        return 200, "OK"
    if route == "version":
        return 200, {"Version": "24.0.0-sim", "ApiVersion": API_VERSION, "MinAPIVersion": "1.12", "Os": "linux",
                     "Arch": "amd64", "KernelVersion": "sim"}
    if route == "containers/json" and method == "GET":
        wanted = _label_filter(query)
        return 200, [engine.row(c) for c in engine.containers.values()
                     if _matches(c["Config"].get("Labels") or {}, wanted)
                     and (query.get("all", ["0"])[0] in ("1", "true", "True") or c["State"]["Running"])]
    if route == "images/json":
        return 200, [{k: v for k, v in image.items() if k != "Config"} for image in engine.images.values()]
    if route == "images/create" and method == "POST":
        ref = query.get("fromImage", [""])[0]
        tag = query.get("tag", [""])[0]
        engine.add_image("%s:%s" % (ref, tag) if tag and "@" not in tag else ref)
        return 200, {"status": "Downloaded newer image"}
    if len(parts) >= 3 and parts[0] == "images" and parts[-1] == "json":
        image = engine.image("/".join(parts[1:-1]))
        return (200, image) if image else (404, {"message": "No such image: %s" % "/".join(parts[1:-1])})
    if route == "containers/create" and method == "POST":
        name = query.get("name", [""])[0]
        if name and engine.find(name):
            return 409, {"message": 'Conflict. The container name "/%s" is already in use' % name}
        config = json.loads(body or b"{}")
        image = engine.image(config.get("Image") or "")
        if image is None:
            return 404, {"message": "No such image: %s" % config.get("Image")}
        cid = _id(name)
        host_config = config.pop("HostConfig", {}) or {}
        config.pop("NetworkingConfig", None)
        engine.containers[cid] = {
            "Id": cid, "Name": "/" + (name or cid[:12]), "Image": image["Id"], "Created": _now(), "CreatedUnix": 0,
            "Config": config, "HostConfig": host_config, "RestartCount": 0,
            "State": {"Status": "created", "Running": False, "Paused": False, "ExitCode": 0, "StartedAt": "0001-01-01T00:00:00Z"}}
        return 201, {"Id": cid, "Warnings": []}
    if len(parts) >= 2 and parts[0] == "containers":
        container = engine.find(parts[1])
        if container is None:
            return 404, {"message": "No such container: %s" % parts[1]}
        action = parts[2] if len(parts) > 2 else ""
        state = container["State"]
        if method == "DELETE" and not action:
            if state["Running"] and query.get("force", ["0"])[0] not in ("1", "true", "True"):
                return 409, {"message": "You cannot remove a running container"}
            del engine.containers[container["Id"]]
            return 204, None
        if method == "GET" and action == "json":
            return 200, container
        if method == "GET" and action == "logs":
            return 200, ""
        if method == "POST" and action in ("start", "unpause"):
            state.update(Status="running", Running=True, Paused=False, StartedAt=_now())
            return 204, None
        if method == "POST" and action == "stop":
            state.update(Status="exited", Running=False)
            return 204, None
        if method == "POST" and action == "update":
            update = json.loads(body or b"{}")
            container["HostConfig"].update(update)
            return 200, {"Warnings": []}
        if method == "POST" and action == "rename":
            container["Name"] = "/" + query.get("name", [""])[0]
            return 204, None
    return 404, {"message": "the simulated engine does not answer %s %s" % (method, path)}


class Server:
    def __init__(self, engines, latency, write_latency):
        self.engines, self.latency, self.write_latency = engines, latency, write_latency
        self.calls = 0

    async def serve(self, engine, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, target, _version = line.decode("latin-1").split(" ", 2)
                headers = {}
                while True:
                    header = await reader.readline()
                    if header in (b"\r\n", b"\n", b""):
                        break
                    key, _sep, value = header.decode("latin-1").partition(":")
                    headers[key.strip().lower()] = value.strip()
                body = b""
                if int(headers.get("content-length") or 0):
                    body = await reader.readexactly(int(headers["content-length"]))
                elif headers.get("transfer-encoding", "").lower() == "chunked":
                    while True:
                        size = int((await reader.readline()).strip() or b"0", 16)
                        if not size:
                            await reader.readline()
                            break
                        body += await reader.readexactly(size)
                        await reader.readline()
                url = urllib.parse.urlsplit(target)
                self.calls += 1
                write = method in ("POST", "DELETE")
                await asyncio.sleep(self.write_latency if write else self.latency)
                status, payload = handle(engine, method, url.path, urllib.parse.parse_qs(url.query), body)
                data = b"" if payload is None else (payload.encode() if isinstance(payload, str) else json.dumps(payload).encode())
                kind = "text/plain" if isinstance(payload, str) else "application/json"
                writer.write(("HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\nApi-Version: %s\r\n\r\n"
                              % (status, kind, len(data), API_VERSION)).encode() + data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            writer.close()


async def main_async(args):
    server = Server([Engine(args.image) for _engine in range(args.engines)], args.latency_ms / 1000.0,
                    (args.write_latency_ms if args.write_latency_ms is not None else args.latency_ms) / 1000.0)
    listeners = []
    for index, engine in enumerate(server.engines):
        listeners.append(await asyncio.start_server(lambda r, w, e=engine: server.serve(e, r, w), "127.0.0.1",
                                                    args.base_port + index, backlog=256))
    print("ready %d %d" % (args.engines, args.base_port), flush=True)
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), lambda: stop.done() or stop.set_result(None))
    await stop  # stdin closed (or a line): the bench is done
    print("calls %d" % server.calls, flush=True)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engines", type=int, required=True)
    parser.add_argument("--base-port", type=int, default=30000)
    parser.add_argument("--latency-ms", type=float, default=2.0, help="per read call (default 2)")
    parser.add_argument("--write-latency-ms", type=float, help="per write call (create/start/stop/remove; default: --latency-ms)")
    parser.add_argument("--image", action="append", default=[], help="an image every engine has (repeat)")
    args = parser.parse_args()
    limit = raise_nofile()
    if limit < args.engines + 1024:
        parser.error("RLIMIT_NOFILE is %d: too few for %d engines" % (limit, args.engines))
    if not 1024 <= args.base_port <= 65535 - args.engines:
        parser.error("ports %d..%d are not all usable" % (args.base_port, args.base_port + args.engines - 1))
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()

"""The LAMP images, built here from Debian 12 packages: local/mariadb:10.11, local/lamp-web:1, local/haproxy:2.6.

    python3 tests/lab/lab_lamp_images.py build [--force]      # once per machine (scripts/test.sh does it)
    python3 tests/lab/lab_lamp_images.py load --socket PATH   # into one engine (the lab loads every host)
    python3 tests/lab/lab_lamp_images.py path                 # the archive, for `docker load -i`

One `debootstrap --variant=minbase bookworm` rootfs, stripped of docs, man pages, locales and apt
lists, is the base layer the three images share. Each image adds one layer: its packages
(`apt-get install --no-install-recommends` in a chroot of the base), its files and its setup
script from tests/lab/images/<image>/ (the recipes; entrypoints and contracts are documented
there and in docs/lab.md). The result is one `docker load` archive (manifest.json, one config per
image, the layer tars), so an engine stores the Debian base once.

Everything is cached by content under /var/cache/stackfleet/images (STACKFLEET_IMAGE_CACHE): the
base layer's name carries a hash of its recipe, each image layer's a hash of the base's plus its
packages, files and config, the archive's a hash of the three. A second build finds the archive;
editing one entrypoint rebuilds that image's layer only, on the base unpacked from its cached tar.
A build holds a lock (flock), so concurrent test workers build once; a failed or interrupted build
leaves nothing in the cache. Needs root, debootstrap and the Debian mirror the machine's apt
sources name (DEBIAN_MIRROR overrides it). Stdlib only, like the rest of the lab.
"""
import argparse
import concurrent.futures
import contextlib
import dataclasses
import fcntl
import glob
import hashlib
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RECIPES = os.path.join(HERE, "images")
CACHE_DIR = os.environ.get("STACKFLEET_IMAGE_CACHE", "/var/cache/stackfleet/images")
WORK_ROOT = "/var/tmp"
# Bump whenever this builder changes what it produces: every cached layer is then rebuilt.
RECIPE_VERSION = 2
SUITE = "bookworm"
# In the shared base because two images need them (mariadb-server and apache2 both depend on
# perl, ~55 MB): an engine then stores them once.
BASE_PACKAGES = ("perl", "libssl3", "procps")
CREATED = "2026-01-01T00:00:00Z"  # fixed, so an image id depends on its content only
LOCK_TIMEOUT = 1800.0
ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]
# dpkg leaves these out of every package installed after the base (the base is stripped the same way).
DPKG_EXCLUDES = """\
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
"""
# Removed from the base and from every image after its packages are installed.
STRIP = ("usr/share/man/*", "usr/share/info/*", "usr/share/lintian/*", "var/lib/apt/lists/*", "var/cache/apt/*.bin",
         "var/cache/apt/archives/*.deb", "var/cache/debconf/*-old", "var/lib/dpkg/*-old", "var/log/*.log", "var/log/apt/*",
         "tmp/*", "var/tmp/*", "root/.bash_history")
# Never in a layer: the engine mounts its own /dev, /proc and /sys.
SKIP_CONTENT = ("dev", "proc", "sys")
UNSAFE_IO = "etc/dpkg/dpkg.cfg.d/02-stackfleet-build-unsafe-io"
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9)}


class BuildError(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class Image:
    """One image: packages on the base, files from tests/lab/images/<directory>/, image config."""

    ref: str
    directory: str
    packages: tuple
    files: dict  # file or folder (ending in /) of the recipe directory -> (path in the image, mode)
    config: dict  # Docker image config: Entrypoint, Cmd, ExposedPorts, Volumes, StopSignal ...
    healthcheck: tuple  # the command a stack file's `healthcheck: test:` uses (documentation, not baked in)

    @property
    def name(self):
        return self.directory


IMAGES = (
    Image(
        "local/mariadb:10.11", "mariadb", ("mariadb-server",),
        {"entrypoint.sh": ("/usr/local/bin/entrypoint", 0o755)},
        {"Entrypoint": ["/usr/local/bin/entrypoint"], "ExposedPorts": {"3306/tcp": {}}, "Volumes": {"/var/lib/mysql": {}},
         "StopSignal": "SIGTERM"},
        ("CMD", "mysqladmin", "ping", "-h", "127.0.0.1"),
    ),
    Image(
        "local/lamp-web:1", "lamp-web", ("apache2", "libapache2-mod-php", "php-mysql"),
        {"entrypoint.sh": ("/usr/local/bin/entrypoint", 0o755), "healthcheck.sh": ("/usr/local/bin/healthcheck", 0o755),
         "stackfleet.conf": ("/etc/apache2/conf-available/stackfleet.conf", 0o644), "app/": ("/var/www/html/", 0o644)},
        {"Entrypoint": ["/usr/local/bin/entrypoint"], "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGWINCH"},
        ("CMD", "healthcheck"),
    ),
    Image(
        "local/haproxy:2.6", "haproxy", ("haproxy",),
        {"entrypoint.sh": ("/usr/local/bin/entrypoint", 0o755), "healthcheck.sh": ("/usr/local/bin/healthcheck", 0o755)},
        {"Entrypoint": ["/usr/local/bin/entrypoint"], "ExposedPorts": {"80/tcp": {}}, "StopSignal": "SIGTERM"},
        ("CMD", "healthcheck"),
    ),
)
REFS = tuple(image.ref for image in IMAGES)


def _log(message):
    print("lab_lamp_images: %s" % message, file=sys.stderr, flush=True)


# ---- recipe keys -------------------------------------------------------------


def _digest(*parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def base_key():
    return _digest("base", RECIPE_VERSION, SUITE, "minbase", BASE_PACKAGES, DPKG_EXCLUDES, STRIP, SKIP_CONTENT)


def _recipe_files(image):
    """(relative path, sha256) of every file in the image's recipe directory (modes come from Image.files)."""
    root = os.path.join(RECIPES, image.directory)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for filename in sorted(filenames):
            path = os.path.join(dirpath, filename)
            with open(path, "rb") as handle:
                found.append((os.path.relpath(path, root), hashlib.sha256(handle.read()).hexdigest()))
    return found


def image_key(image):
    return _digest("image", base_key(), image.ref, image.packages, image.files, image.config, _recipe_files(image))


def archive_key():
    return _digest("archive", [image_key(image) for image in IMAGES])


def _cache_path(kind, key, suffix=".tar"):
    return os.path.join(CACHE_DIR, "lamp-%s-%s%s" % (kind, key[:16], suffix))


def archive_path():
    return _cache_path("images", archive_key())


# ---- the build ---------------------------------------------------------------


@contextlib.contextmanager
def _locked(path, timeout=LOCK_TIMEOUT):
    with open(path, "a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise BuildError("another build held %s for %.0f s" % (path, timeout)) from None
                time.sleep(1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv, log_path=None, timeout=900):
    """Runs a build step; on failure raises with the tail of its output."""
    with open(log_path or os.devnull, "ab") as log:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False)
    if proc.returncode:
        tail = ""
        if log_path:
            with open(log_path, errors="replace") as handle:
                tail = "".join(handle.readlines()[-15:])
        raise BuildError("%s exited with %s\n%s" % (" ".join(argv[:6]), proc.returncode, tail))


def debian_mirror():
    """The Debian mirror the machine's own apt sources name (deb822 or one-line format)."""
    if os.environ.get("DEBIAN_MIRROR"):
        return os.environ["DEBIAN_MIRROR"]
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")) + ["/etc/apt/sources.list"]:
        try:
            with open(path) as handle:
                text = handle.read()
        except OSError:
            continue
        for line in text.splitlines():
            if re.match(r"^(URIs:|deb )", line):
                match = re.search(r"https?://\S+/debian\b", line)
                if match:
                    return match.group(0)
    return "http://deb.debian.org/debian"


def _strip(rootfs):
    for pattern in STRIP:
        for path in glob.glob(os.path.join(rootfs, pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
    # Docs: only each package's copyright file stays (what dpkg's path-include keeps for later packages).
    doc = os.path.join(rootfs, "usr/share/doc")
    for dirpath, _dirnames, filenames in os.walk(doc, topdown=False):
        for filename in filenames:
            if filename != "copyright" or os.path.dirname(dirpath) != doc:
                os.unlink(os.path.join(dirpath, filename))
        if dirpath != doc and not os.listdir(dirpath):
            os.rmdir(dirpath)
    locale = os.path.join(rootfs, "usr/share/locale")
    for entry in os.listdir(locale) if os.path.isdir(locale) else ():
        if entry != "locale.alias":
            path = os.path.join(locale, entry)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
    for top in SKIP_CONTENT:
        path = os.path.join(rootfs, top)
        for entry in os.listdir(path) if os.path.isdir(path) else ():
            child = os.path.join(path, entry)
            shutil.rmtree(child) if os.path.isdir(child) and not os.path.islink(child) else os.unlink(child)


def _enter_chroot(rootfs):
    """What apt-get and package scripts need in a chroot; _leave_chroot takes it out again."""
    for name, (major, minor) in DEVICES.items():
        path = os.path.join(rootfs, "dev", name)
        if not os.path.exists(path):
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
            os.chmod(path, 0o666)
    with open(os.path.join(rootfs, "usr/sbin/policy-rc.d"), "w") as handle:
        handle.write("#!/bin/sh\n# no service starts while building an image\nexit 101\n")
    os.chmod(os.path.join(rootfs, "usr/sbin/policy-rc.d"), 0o755)
    shutil.copyfile("/etc/resolv.conf", os.path.join(rootfs, "etc/resolv.conf"))
    # A throw-away chroot: no fsync per unpacked file (dpkg's default costs most of an install's time).
    with open(os.path.join(rootfs, UNSAFE_IO), "w") as handle:
        handle.write("force-unsafe-io\n")


def _leave_chroot(rootfs):
    os.unlink(os.path.join(rootfs, "usr/sbin/policy-rc.d"))
    os.unlink(os.path.join(rootfs, UNSAFE_IO))
    with open(os.path.join(rootfs, "etc/resolv.conf"), "w"):
        pass  # the engine mounts the container's own


def _chroot(rootfs, command, log_path, timeout=900):
    env = ["env", "-i", "DEBIAN_FRONTEND=noninteractive", "LANG=C.UTF-8", ENV[0]]
    _run(["chroot", rootfs] + env + command, log_path, timeout)


class _HashingWriter(io.RawIOBase):
    """A file that hashes what is written to it: a layer's diff id is the sha256 of its tar."""

    def __init__(self, handle):
        self.handle = handle
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self):
        return True

    def tell(self):
        return self.size

    def write(self, data):
        self.sha.update(data)
        self.size += len(data)
        return self.handle.write(data)


def _walk(rootfs, rel=""):
    """Every path of a rootfs, relative, depth first (each folder followed by its whole content, so
    `tar -x` restores folder mtimes); the contents of /dev, /proc and /sys never."""
    with os.scandir(os.path.join(rootfs, rel)) as entries:
        names = sorted(entry.name for entry in entries)
    for name in names:
        path = os.path.join(rel, name)
        yield path
        if path not in SKIP_CONTENT and os.path.isdir(os.path.join(rootfs, path)) and not os.path.islink(os.path.join(rootfs, path)):
            yield from _walk(rootfs, path)


def _signature(info):
    """Whether a path changed: the rule of Docker's own naive differ (type, mode, owner, size, mtime);
    a regular file that passes it is also compared by content (_unchanged)."""
    size = info.size if info.isreg() else 0
    return (info.type, info.mode & 0o7777, info.uid, info.gid, size, int(info.mtime), info.linkname)


def _write_layer(rootfs, path, base_index=None):
    """Writes `rootfs` as a layer tar at `path` - with a base index, only its difference from the
    base, plus a whiteout for each path it removed. Returns the layer's diff id."""
    present, written = set(), set()
    try:
        with open(path + ".partial", "wb") as raw:
            sink = _HashingWriter(raw)
            with tarfile.open(fileobj=sink, mode="w", format=tarfile.GNU_FORMAT) as tar:
                for rel in _walk(rootfs):
                    present.add(rel)
                    full = os.path.join(rootfs, rel)
                    info = tar.gettarinfo(full, rel)
                    info.uname = info.gname = ""
                    info.mtime = int(info.mtime)
                    if base_index is not None and _unchanged(base_index.get(rel), info, full):
                        continue
                    if info.islnk() and info.linkname not in written:
                        # A hard link to a file of the base: a layer cannot link outside itself.
                        info.type, info.linkname, info.size = tarfile.REGTYPE, "", os.lstat(full).st_size
                    written.add(rel)
                    if info.isreg():
                        with open(full, "rb") as handle:
                            tar.addfile(info, handle)
                    else:
                        tar.addfile(info)
                for rel in sorted(base_index or ()):
                    parent = os.path.dirname(rel)
                    if rel not in present and (not parent or (parent in present and os.path.isdir(os.path.join(rootfs, parent)))):
                        whiteout = tarfile.TarInfo(os.path.join(parent, ".wh." + os.path.basename(rel)))
                        whiteout.mtime = 0
                        tar.addfile(whiteout)
        os.rename(path + ".partial", path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + ".partial")
        raise
    return "sha256:" + sink.sha.hexdigest()


def _file_sha(handle):
    sha = hashlib.sha256()
    for chunk in iter(lambda: handle.read(1 << 20), b""):
        sha.update(chunk)
    return sha.hexdigest()


def _unchanged(known, info, full):
    if known is None or known[0] != _signature(info):
        return False
    if not info.isreg():
        return True
    with open(full, "rb") as handle:  # same size and mtime second, yet rewritten: compare contents
        return known[1] == _file_sha(handle)


def _read_index(layer_path):
    """{path: (signature, sha256 of a regular file's content)} of a base layer."""
    index = {}
    with tarfile.open(layer_path) as tar:
        for info in tar:
            digest = _file_sha(tar.extractfile(info)) if info.isreg() else None
            index[os.path.normpath(info.name)] = (_signature(info), digest)
    return index


class _Build:
    """One build run: a work directory under /var/tmp, removed whatever happens."""

    def __init__(self):
        self.work = tempfile.mkdtemp(prefix="sf-lamp-%d." % os.getpid(), dir=WORK_ROOT)
        self.base_rootfs = None
        self.base_index = None
        self.unpacking = threading.Lock()
        self.timings = {}

    def close(self):
        shutil.rmtree(self.work, ignore_errors=True)

    @staticmethod
    def remove_stale():
        """Work directories of builds whose process is gone (killed before it could clean up)."""
        for path in glob.glob(os.path.join(WORK_ROOT, "sf-lamp-*.*")):
            match = re.match(r"^sf-lamp-(\d+)\.", os.path.basename(path))
            if match and not os.path.exists("/proc/%s" % match.group(1)):
                shutil.rmtree(path, ignore_errors=True)
        for path in glob.glob(os.path.join(CACHE_DIR, "lamp-*.partial")):
            os.unlink(path)

    def base(self):
        """The cached base layer: (path, diff id), built with debootstrap when missing."""
        path = _cache_path("base", base_key())
        meta = _load_meta(path)
        if meta:
            return path, meta["diff_id"]
        started = time.monotonic()
        rootfs = os.path.join(self.work, "base")
        mirror = debian_mirror()
        _log("debootstrap --variant=minbase %s from %s" % (SUITE, mirror))
        _run(["debootstrap", "--variant=minbase", "--include=" + ",".join(BASE_PACKAGES), SUITE, rootfs, mirror],
             os.path.join(self.work, "debootstrap.log"))
        with open(os.path.join(rootfs, "etc/dpkg/dpkg.cfg.d/01-stackfleet-nodoc"), "w") as handle:
            handle.write(DPKG_EXCLUDES)
        _strip(rootfs)
        diff_id = _write_layer(rootfs, path)
        seconds = time.monotonic() - started
        _save_meta(path, {"diff_id": diff_id, "seconds": round(seconds, 1), "size": os.path.getsize(path), "mirror": mirror})
        self.base_rootfs = rootfs
        self.timings["base"] = seconds
        _log("base layer %s (%d MB) in %.0f s" % (os.path.basename(path), os.path.getsize(path) >> 20, seconds))
        return path, diff_id

    def _unpacked_base(self, base_path):
        """(rootfs with fresh apt lists, index of the base layer) that every image's chroot copies."""
        with self.unpacking:
            if self.base_index is None:
                if self.base_rootfs is None:
                    self.base_rootfs = os.path.join(self.work, "base")
                    os.makedirs(self.base_rootfs)
                    _run(["tar", "--numeric-owner", "-xpf", base_path, "-C", self.base_rootfs], timeout=300)
                # Once for all images (each strips the lists again).
                _enter_chroot(self.base_rootfs)
                _chroot(self.base_rootfs, ["apt-get", "update", "-qq"], os.path.join(self.work, "apt-update.log"))
                self.base_index = _read_index(base_path)
            return self.base_rootfs, self.base_index

    def layer(self, image, base_path):
        """The cached layer of one image: (path, diff id), built in a chroot of the base when missing."""
        path = _cache_path(image.name, image_key(image))
        meta = _load_meta(path)
        if meta:
            return path, meta["diff_id"]
        started = time.monotonic()
        rootfs = os.path.join(self.work, image.name)
        log_path = os.path.join(self.work, image.name + ".log")
        base_rootfs, base_index = self._unpacked_base(base_path)
        _run(["cp", "-a", base_rootfs, rootfs], timeout=300)
        _enter_chroot(rootfs)
        _chroot(rootfs, ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + list(image.packages), log_path)
        installed = time.monotonic()
        recipe = os.path.join(RECIPES, image.directory)
        for source, (dest, mode) in image.files.items():
            _copy_into(rootfs, os.path.join(recipe, source), dest, mode)
        if os.path.exists(os.path.join(recipe, "setup.sh")):
            shutil.copyfile(os.path.join(recipe, "setup.sh"), os.path.join(rootfs, "tmp/setup.sh"))
            _chroot(rootfs, ["sh", "/tmp/setup.sh"], log_path)
        _leave_chroot(rootfs)
        _strip(rootfs)
        diff_id = _write_layer(rootfs, path, base_index)
        shutil.rmtree(rootfs)
        seconds = time.monotonic() - started
        _save_meta(path, {"diff_id": diff_id, "seconds": round(seconds, 1), "size": os.path.getsize(path), "packages": image.packages})
        self.timings[image.ref] = seconds
        _log("%s layer (%d MB) in %.0f s (%.0f s to install)" % (image.ref, os.path.getsize(path) >> 20, seconds, installed - started))
        return path, diff_id


def _copy_into(rootfs, source, dest, mode):
    target = os.path.join(rootfs, dest.lstrip("/"))
    if source.endswith("/"):
        for name in sorted(os.listdir(source)):
            _copy_into(rootfs, os.path.join(source, name), os.path.join(dest, name), mode)
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copyfile(source, target)
    os.chown(target, 0, 0)
    os.chmod(target, mode)


def _meta_path(path):
    return path[: -len(".tar")] + ".json"


def _load_meta(path):
    """The sidecar of a cached tar, or None when either is missing (a partial build never counts)."""
    try:
        with open(_meta_path(path)) as handle:
            meta = json.load(handle)
    except (FileNotFoundError, ValueError):
        return None
    return meta if os.path.exists(path) else None


def _save_meta(path, meta):
    with open(_meta_path(path) + ".partial", "w") as handle:
        json.dump(meta, handle, indent=2)
    os.rename(_meta_path(path) + ".partial", _meta_path(path))


def _image_config(image, key, diff_ids):
    config = {"Env": list(ENV), "Labels": {"io.stackfleet.recipe": key[:16]}}
    config.update(image.config)
    return {
        "architecture": "amd64", "os": "linux", "created": CREATED, "config": config,
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [
            {"created": CREATED, "created_by": "debootstrap --variant=minbase --include=%s %s, stripped (tests/lab/lab_lamp_images.py)"
             % (",".join(BASE_PACKAGES), SUITE)},
            {"created": CREATED, "created_by": "apt-get install --no-install-recommends %s + tests/lab/images/%s/"
             % (" ".join(image.packages), image.directory)},
        ],
    }


def _write_archive(path, base, layers):
    """A `docker load` archive: manifest.json, the configs, and each layer tar once."""
    manifest, images = [], {}
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        def add_bytes(name, data):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))

        added = set()
        for image in IMAGES:
            diff_ids, layer_names = [], []
            for layer_path, diff_id in (base, layers[image.ref]):
                name = "%s/layer.tar" % diff_id.split(":", 1)[1]
                if name not in added:
                    tar.add(layer_path, name)
                    added.add(name)
                diff_ids.append(diff_id)
                layer_names.append(name)
            config = json.dumps(_image_config(image, image_key(image), diff_ids), sort_keys=True).encode()
            image_id = hashlib.sha256(config).hexdigest()
            add_bytes(image_id + ".json", config)
            manifest.append({"Config": image_id + ".json", "RepoTags": [image.ref], "Layers": layer_names})
            images[image.ref] = "sha256:" + image_id
        add_bytes("manifest.json", json.dumps(manifest, indent=2).encode())
    return images


def _prune(keep):
    """Older generations of the LAMP cache files (the molecule image's files are not ours)."""
    keep = {os.path.basename(p) for path in keep for p in (path, _meta_path(path))}
    for path in glob.glob(os.path.join(CACHE_DIR, "lamp-*")):
        if os.path.basename(path) not in keep and not path.endswith(".partial"):
            os.unlink(path)


def ensure_archive(force=False):
    """Builds whatever of the archive is not cached; returns its metadata (path, image ids, timings)."""
    os.makedirs(CACHE_DIR, exist_ok=True)
    path = archive_path()
    meta = None if force else _load_meta(path)
    if meta:
        return dict(meta, path=path, cached=True)
    with _locked(os.path.join(CACHE_DIR, ".lamp-build.lock")):
        meta = None if force else _load_meta(path)  # built by whoever held the lock before us
        if meta:
            return dict(meta, path=path, cached=True)
        started = time.monotonic()
        _Build.remove_stale()
        if force:
            for stale in glob.glob(os.path.join(CACHE_DIR, "lamp-*")):
                os.unlink(stale)
        build = _Build()
        try:
            base = build.base()
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(IMAGES)) as pool:
                futures = {image.ref: pool.submit(build.layer, image, base[0]) for image in IMAGES}
                layers = {ref: future.result() for ref, future in futures.items()}
            try:
                images = _write_archive(path + ".partial", base, layers)
                os.rename(path + ".partial", path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path + ".partial")
                raise
        finally:
            build.close()
        seconds = time.monotonic() - started
        meta = {"images": images, "seconds": round(seconds, 1), "size": os.path.getsize(path),
                "built": {name: round(value, 1) for name, value in build.timings.items()},
                "layers": {"base": os.path.getsize(base[0]), **{ref: os.path.getsize(layers[ref][0]) for ref in REFS}}}
        _save_meta(path, meta)
        _prune([path, base[0]] + [layer[0] for layer in layers.values()])
        _log("archive %s (%d MB) in %.0f s" % (path, meta["size"] >> 20, seconds))
        return dict(meta, path=path, cached=False)


def ensure_loaded(engine, archive):
    """Loads the archive into an engine (a lab_engine.Engine) unless it has these exact images; returns True if it loaded."""
    if all(engine.image_id(ref) == image_id for ref, image_id in archive["images"].items()):
        return False
    engine.load_images(archive["path"])
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "load", "path", "keys"])
    parser.add_argument("--force", action="store_true", help="build: rebuild the base and every layer")
    parser.add_argument("--socket", help="load: the engine's unix socket")
    args = parser.parse_args(argv)
    # A CI timeout's SIGTERM must still remove the work directory.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.command == "keys":
        print(json.dumps({"base": base_key()[:16], **{image.ref: image_key(image)[:16] for image in IMAGES},
                          "archive": archive_key()[:16]}, indent=2))
        return 0
    if os.geteuid() != 0:
        parser.error("run as root: the build uses debootstrap and chroot")
    try:
        started = time.monotonic()
        archive = ensure_archive(force=args.force)
        if args.command == "build":
            print("%s %s (%d MB) in %.1f s" % ("cached" if archive["cached"] else "built", archive["path"], archive["size"] >> 20,
                                               time.monotonic() - started))
        elif args.command == "path":
            print(archive["path"])
        else:
            if not args.socket:
                parser.error("load needs --socket")
            sys.path.insert(0, HERE)
            from lab_engine import Engine

            started = time.monotonic()
            loaded = ensure_loaded(Engine(args.socket), archive)
            print("%s in %.1f s" % ("loaded" if loaded else "already there", time.monotonic() - started))
    except BuildError as exc:
        print("lab_lamp_images: %s" % exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

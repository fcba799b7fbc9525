"""Images for the lab, built as tar archives from the machine's own binaries.

There is no registry: each archive is built once per lab and `docker import`ed into
every host's engine. Applets and libraries come from the machine (busybox-static,
haproxy, etcd-server/etcd-client), so the images match what apt installed.
"""
import io
import os
import subprocess
import tarfile

ROOTFS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "rootfs")
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


class _Rootfs:
    """Collects files for one archive, adding parent directories once."""

    def __init__(self, tar):
        self.tar = tar
        self.dirs = set()
        self.files = set()

    def dir(self, path, mode=0o755):
        path = path.strip("/")
        if not path or path in self.dirs:
            return
        self.dir(os.path.dirname(path))
        info = tarfile.TarInfo(path)
        info.type, info.mode = tarfile.DIRTYPE, mode
        self.tar.addfile(info)
        self.dirs.add(path)

    def file(self, source, dest, mode=None):
        dest = dest.strip("/")
        if dest in self.files:
            return
        self.files.add(dest)
        self.dir(os.path.dirname(dest))
        info = self.tar.gettarinfo(os.path.realpath(source), dest)
        if mode is not None:
            info.mode = mode
        with open(source, "rb") as handle:
            self.tar.addfile(info, handle)

    def text(self, dest, content, mode=0o644):
        dest = dest.strip("/")
        self.dir(os.path.dirname(dest))
        data = content.encode()
        info = tarfile.TarInfo(dest)
        info.size, info.mode = len(data), mode
        self.tar.addfile(info, io.BytesIO(data))

    def symlink(self, dest, target):
        dest = dest.strip("/")
        self.dir(os.path.dirname(dest))
        info = tarfile.TarInfo(dest)
        info.type, info.linkname = tarfile.SYMTYPE, target
        self.tar.addfile(info)

    def binary(self, path):
        """A dynamically linked binary plus every library `ldd` names, at the same paths."""
        self.file(path, path, 0o755)
        for lib in _ldd(path):
            self.file(lib, lib, 0o755)


def _ldd(path):
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True, timeout=30).stdout
    libs = []
    for line in out.splitlines():
        words = line.split()
        if "=>" in words and len(words) > words.index("=>") + 1 and words[words.index("=>") + 1].startswith("/"):
            libs.append(words[words.index("=>") + 1])
        elif words and words[0].startswith("/"):
            libs.append(words[0])  # the dynamic loader
    return libs


def _busybox(fs):
    for path in ("tmp", "var/tmp"):
        fs.dir(path, 0o1777)
    for path in ("root", "proc", "sys", "dev", "etc", "run", "var"):
        fs.dir(path)
    fs.file("/bin/busybox", "bin/busybox", 0o755)
    applets = subprocess.run(["/bin/busybox", "--list-full"], capture_output=True, text=True, check=True, timeout=30).stdout.split()
    for applet in applets:
        if applet != "bin/busybox":
            fs.symlink(applet, "/bin/busybox")
    fs.text("etc/passwd", PASSWD)
    fs.text("etc/group", GROUP)


def _web(fs):
    _busybox(fs)
    fs.file(os.path.join(ROOTFS, "web-entrypoint.sh"), "usr/local/bin/web-entrypoint", 0o755)
    fs.dir("www")


def _haproxy(fs):
    _busybox(fs)
    fs.binary("/usr/sbin/haproxy")
    fs.file(os.path.join(ROOTFS, "lb-entrypoint.sh"), "usr/local/bin/lb-entrypoint", 0o755)


def _etcd(fs):
    fs.dir("tmp", 0o1777)
    fs.dir("var/lib/etcd", 0o700)
    fs.binary("/usr/bin/etcd")
    fs.binary("/usr/bin/etcdctl")
    fs.text("etc/passwd", PASSWD)
    fs.text("etc/group", GROUP)


# image reference -> (rootfs builder, Dockerfile-style changes applied on import)
IMAGES = {
    "local/busybox:1": (_busybox, ['CMD ["sh"]']),
    "local/busybox-web:1": (_web, ['CMD ["/usr/local/bin/web-entrypoint"]', "EXPOSE 80"]),
    "local/haproxy-lb:1": (_haproxy, ['CMD ["/usr/local/bin/lb-entrypoint"]', "EXPOSE 80"]),
    "local/etcd:3.4": (_etcd, ['ENTRYPOINT ["/usr/bin/etcd"]', "EXPOSE 2379 2380"]),
}


def archive_path(images_dir, ref):
    return os.path.join(images_dir, ref.replace("/", "_").replace(":", "_") + ".tar")


def ensure_archives(images_dir):
    """Builds each image archive that is not there yet; returns {ref: path}."""
    os.makedirs(images_dir, exist_ok=True)
    paths = {}
    for ref, (build, _changes) in IMAGES.items():
        path = archive_path(images_dir, ref)
        if not os.path.exists(path):
            partial = path + ".partial"
            with tarfile.open(partial, "w", format=tarfile.GNU_FORMAT) as tar:
                build(_Rootfs(tar))
            os.rename(partial, path)
        paths[ref] = path
    return paths


def ensure_images(engine, archives):
    """Imports every image the engine does not have yet; returns the refs imported."""
    imported = []
    for ref, path in archives.items():
        if not engine.image_exists(ref):
            engine.import_image(path, ref, IMAGES[ref][1])
            imported.append(ref)
    return imported

"""The lab's certificate authority and certificates, made with the openssl CLI.

EC P-256 keys keep generation to milliseconds. Server certificates carry both
serverAuth and clientAuth because etcd peers present them in both roles.
"""
import os
import secrets
import subprocess

CA_DAYS = 30


class TLSError(Exception):
    pass


def _openssl(*args):
    proc = subprocess.run(("openssl",) + args, capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        raise TLSError("openssl %s failed: %s" % (args[0], proc.stderr.strip()))


def _newkey_args(key_path):
    return ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key_path)


def ensure_ca(tls_dir, lab_name):
    """Returns (ca.pem, ca-key.pem), creating them once per lab."""
    os.makedirs(tls_dir, mode=0o700, exist_ok=True)
    cert, key = os.path.join(tls_dir, "ca.pem"), os.path.join(tls_dir, "ca-key.pem")
    if not (os.path.exists(cert) and os.path.exists(key)):
        _openssl("req", "-x509", *_newkey_args(key), "-out", cert, "-days", str(CA_DAYS), "-subj", "/CN=stackfleet lab CA %s" % lab_name)
    return cert, key


def ensure_cert(tls_dir, basename, common_name, sans=(), server=True):
    """Returns (cert, key) signed by the lab CA; `sans` entries look like IP:10.0.0.1 or DNS:name."""
    cert, key = os.path.join(tls_dir, basename + ".pem"), os.path.join(tls_dir, basename + "-key.pem")
    if os.path.exists(cert) and os.path.exists(key):
        return cert, key
    csr, ext = cert + ".csr", cert + ".ext"
    usage = "serverAuth,clientAuth" if server else "clientAuth"
    lines = [
        "basicConstraints = CA:FALSE",
        "keyUsage = critical, digitalSignature, keyEncipherment",
        "extendedKeyUsage = " + usage,
        "subjectKeyIdentifier = hash",
        "authorityKeyIdentifier = keyid",
    ]
    if sans:
        lines.append("subjectAltName = " + ", ".join(sans))
    with open(ext, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    try:
        _openssl("req", "-new", *_newkey_args(key), "-out", csr, "-subj", "/CN=" + common_name)
        _openssl(
            "x509", "-req", "-in", csr, "-CA", os.path.join(tls_dir, "ca.pem"), "-CAkey", os.path.join(tls_dir, "ca-key.pem"),
            "-set_serial", "0x" + secrets.token_hex(16), "-days", str(CA_DAYS), "-extfile", ext, "-out", cert,
        )
    finally:
        for path in (csr, ext):
            if os.path.exists(path):
                os.unlink(path)
    os.chmod(key, 0o600)
    return cert, key

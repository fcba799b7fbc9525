# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every stackfleet module that talks to a Docker engine
(argument spec: module_utils/_docker.py CONNECTION_ARGSPEC)."""

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r"""
options:
  docker_host:
    description:
      - URL of the Docker API of the host being converged, V(unix:///path), V(tcp://host:port) or V(ssh://user@host).
      - For V(tcp://), see O(tls) and O(validate_certs) for how the connection is secured.
      - V(ssh://) uses the C(ssh) client of the machine the module runs on.
      - If not set in the task, the environment variable E(DOCKER_HOST) is used, then the default.
    type: str
    default: unix:///var/run/docker.sock
    aliases: [docker_url]
  tls:
    description:
      - Encrypt the connection with TLS. The engine's certificate is verified unless O(validate_certs=false) is set explicitly
        (unlike community.docker, where O(tls=true) alone does not verify).
      - V(false) is the only way to talk plain text to a V(tcp://) engine. B(Secure by default:) when neither O(tls) nor
        O(validate_certs) is set, a V(tcp://) engine is reached with TLS verification if a CA certificate is known
        (O(ca_path) or C(ca.pem) in E(DOCKER_CERT_PATH)), and the module fails otherwise instead of silently sending the
        Docker API, which is root on the host, in clear text.
      - If not set in the task, the environment variable E(DOCKER_TLS) is used.
    type: bool
  validate_certs:
    description:
      - Use TLS and verify the engine's certificate against O(ca_path) (or the system CA store when no CA is given).
      - If not set in the task, the environment variable E(DOCKER_TLS_VERIFY) is used (read as a boolean, so V(0) means false).
    type: bool
    aliases: [tls_verify]
  ca_path:
    description:
      - CA certificate that signed the engine's certificate, as a file or as the PEM text itself (a value holding C(-----BEGIN)). Only this CA is trusted.
      - If not set in the task, the environment variable E(STACKFLEET_DOCKER_CA_PATH) is used (one file per variable, as AWX credential
        types inject them); else, when E(DOCKER_CERT_PATH) is set, C(ca.pem) in that directory if it exists.
    type: path
    aliases: [ca_cert, tls_ca_cert, cacert_path]
  client_cert:
    description:
      - Client certificate presented to the engine (engines started with C(--tlsverify) require one).
      - If not set in the task, the environment variable E(STACKFLEET_DOCKER_CLIENT_CERT) is used (one file per variable, as AWX credential
        types inject them); else, when E(DOCKER_CERT_PATH) is set, C(cert.pem) in that directory if it exists.
    type: path
    aliases: [tls_client_cert, cert_path]
  client_key:
    description:
      - Key of O(client_cert).
      - If not set in the task, the environment variable E(STACKFLEET_DOCKER_CLIENT_KEY) is used (one file per variable, as AWX credential
        types inject them); else, when E(DOCKER_CERT_PATH) is set, C(key.pem) in that directory if it exists.
    type: path
    aliases: [tls_client_key, key_path]
  tls_hostname:
    description:
      - Name the engine's certificate must carry, when it differs from the host in O(docker_host) (for example an IP address URL).
      - If not set in the task, the environment variable E(DOCKER_TLS_HOSTNAME) is used.
    type: str
  api_version:
    description:
      - Docker API version to speak; V(auto) negotiates with the engine.
      - If not set in the task, the environment variable E(DOCKER_API_VERSION) is used, then the default.
    type: str
    default: auto
    aliases: [docker_api_version]
  timeout:
    description:
      - Seconds to wait for any one answer of the Docker API.
      - If not set in the task, the environment variable E(DOCKER_TIMEOUT) is used, then the default.
    type: int
    default: 60
notes:
  - Every connection option falls back to the environment variable the docker CLI reads, so AWX/AAP container-registry
    or custom credentials that inject E(DOCKER_HOST), E(DOCKER_CERT_PATH), E(DOCKER_TLS_VERIFY) and friends work unchanged.
requirements:
  - Docker SDK for Python (C(docker)) 6.0 or newer on the host the module runs on.
"""

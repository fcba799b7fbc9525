# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by every stackfleet module that talks to etcd
(argument spec: module_utils/_etcd.py CONNECTION_ARGSPEC)."""

from __future__ import annotations


class ModuleDocFragment:

    DOCUMENTATION = r"""
options:
  endpoints:
    description:
      - Client URLs of etcd members, tried in order until one answers (the one that answered is used first afterwards).
      - V(host:port) without a scheme means V(https://) when O(ca_cert) or O(client_cert) is set, V(http://) otherwise,
        as with C(etcdctl).
      - If not set in the task, the environment variable E(ETCD_ENDPOINTS) or E(ETCDCTL_ENDPOINTS) (comma separated) is used.
    type: list
    elements: str
    default: ["127.0.0.1:2379"]
  ca_cert:
    description:
      - CA certificate that signed the etcd server certificates.
      - If not set in the task, the environment variable E(ETCDCTL_CACERT) (or E(ETCD_CACERT)) is used.
    type: path
    aliases: [cacert]
  client_cert:
    description:
      - Client certificate presented to etcd (members started with C(--client-cert-auth) require one).
      - If not set in the task, the environment variable E(ETCDCTL_CERT) (or E(ETCD_CERT)) is used.
    type: path
    aliases: [cert]
  client_key:
    description:
      - Key of O(client_cert).
      - If not set in the task, the environment variable E(ETCDCTL_KEY) (or E(ETCD_KEY)) is used.
    type: path
    aliases: [key]
  validate_certs:
    description:
      - Verify the etcd server certificates (against O(ca_cert), or the system CA store without one).
      - If not set in the task and E(ETCDCTL_INSECURE_SKIP_TLS_VERIFY) is V(true), certificates are not verified.
    type: bool
    default: true
  user:
    description:
      - User name for etcd authentication (a token from C(/v3/auth/authenticate) is used for the requests).
      - V(name:password), as C(etcdctl --user) takes it, is accepted when O(password) is not set.
      - If not set in the task, the environment variable E(ETCDCTL_USER) (or E(ETCD_USER)) is used.
    type: str
  password:
    description:
      - Password of O(user).
      - If not set in the task, the environment variable E(ETCDCTL_PASSWORD) (or E(ETCD_PASSWORD)) is used.
    type: str
  timeout:
    description:
      - Seconds to wait for one etcd request.
      - If not set in the task, E(ETCD_TIMEOUT) (seconds) or E(ETCDCTL_COMMAND_TIMEOUT) (a duration such as V(5s)) is used.
    type: float
    default: 5.0
notes:
  - Talks to the etcd v3 JSON gateway with ansible-core's own HTTP client; no Python package is needed on the
    machine the module runs on. etcd 3.2 or newer; learners need 3.4 or newer.
  - Set the connection options once for a play with E(ETCDCTL_*) environment variables, for example from an AWX
    custom credential type that injects them.
"""

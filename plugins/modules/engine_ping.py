#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: stackfleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

# Documentation only: the action plugin of the same name (plugins/action/engine_ping.py) does the work
# on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: engine_ping
short_description: Wait until a Docker engine's API endpoint answers GET /_ping, from the controller
version_added: 0.5.0
description:
  - Sends C(GET /_ping) to a Docker engine's API endpoint from the controller and succeeds when it answers C(200) with
    the body C(OK). Over C(https), the server certificate must be signed by O(ca_cert) and match the host name of
    O(url), and the client certificate is presented, so a success proves the listener, the certificates and client
    authentication together.
  - Until it answers, it tries again every second for at most O(wait) seconds (an engine that was just restarted). An
    engine that answers at once costs one request.
  - Runs in the controller's task process (an action plugin), so nothing is sent to or started on the host, and the CA
    may be given as PEM text, so no temporary file is written.
  - The connection is the collection's Docker client (the Docker SDK for Python on the controller), the same as the
    other modules' with O(ca_cert) as their C(ca_path).
  - The P(stackfleet.cluster.docker_host#role) role checks every engine it prepares with it.
author:
  - stackfleet maintainers (@stackfleet)
extends_documentation_fragment:
  - stackfleet.cluster.attributes
attributes:
  check_mode:
    support: full
    description: Only reads; runs the same in check mode.
  diff_mode:
    support: N/A
options:
  url:
    description:
      - The endpoint, C(https://host:port) (or C(http://host:port) for an engine served without TLS).
    type: str
    required: true
  ca_cert:
    description:
      - The CA certificate that signed the engine's certificate, as PEM text or as a file on the controller (a value
        holding C(-----BEGIN) is the PEM text). Only this CA is trusted. Required for C(https).
    type: str
  client_cert:
    description:
      - Client certificate file on the controller, presented to the engine (it may hold the key too).
    type: path
  client_key:
    description:
      - Key of O(client_cert), a file on the controller.
    type: path
  timeout:
    description:
      - Seconds each attempt gets (connect, TLS handshake, answer).
    type: float
    default: 5
  wait:
    description:
      - Seconds to keep trying until the engine answers. V(0) makes one attempt.
    type: float
    default: 30
seealso:
  - module: stackfleet.cluster.engine_probe
"""

EXAMPLES = r"""
- name: Check the engine's TLS endpoint with the client certificate
  stackfleet.cluster.engine_ping:
    url: "https://{{ ansible_host }}:2376"
    ca_cert: "{{ lookup('ansible.builtin.file', 'tls/ca.pem') }}"
    client_cert: tls/client.pem
    client_key: tls/client-key.pem
    wait: 30
"""

RETURN = r"""
status:
  description: HTTP status of the last answer (none when there was no answer).
  returned: always
  type: int
  sample: 200
content:
  description: Body of the last answer.
  returned: always
  type: str
  sample: OK
attempts:
  description: How many requests were made.
  returned: always
  type: int
  sample: 1
seconds:
  description: How long the check took.
  returned: always
  type: float
  sample: 0.012
"""

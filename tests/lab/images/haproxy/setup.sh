#!/bin/sh
set -eu
# The entrypoint writes the configuration; the package's one logs to a syslog the container has not.
: > /etc/haproxy/haproxy.cfg

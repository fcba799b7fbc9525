#!/usr/bin/env bash
# Throwaway TLS material for tests: a CA, a server certificate for the given names/IPs, and a
# client certificate, written to DIR as ca.pem, server-cert.pem, server-key.pem, client-cert.pem,
# client-key.pem. Never committed; existing files are kept, so repeated runs are idempotent.
# Usage: make_test_certs.sh DIR [SAN ...]    e.g. make_test_certs.sh /tmp/x DNS:h1 IP:10.249.0.11
set -euo pipefail
dir=${1:?usage: $0 DIR [SAN ...]}; shift
sans=$(printf '%s,' DNS:localhost IP:127.0.0.1 "$@"); sans=${sans%,}
[ -s "$dir/client-cert.pem" ] && exit 0
umask 077; mkdir -p "$dir"; cd "$dir"
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

ec ca-key.pem
openssl req -x509 -new -key ca-key.pem -sha256 -days 2 -subj /CN=stackfleet-test-ca -out ca.pem

ec server-key.pem
openssl req -new -key server-key.pem -subj /CN=stackfleet-test-server -out server.csr
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -sha256 -days 2 \
  -extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$sans") -out server-cert.pem 2>/dev/null

ec client-key.pem
openssl req -new -key client-key.pem -subj /CN=stackfleet-test-client -out client.csr
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -sha256 -days 2 \
  -extfile <(printf 'extendedKeyUsage=clientAuth\n') -out client-cert.pem 2>/dev/null

rm -f ./*.csr ca.srl
chmod 0644 ca.pem server-cert.pem client-cert.pem

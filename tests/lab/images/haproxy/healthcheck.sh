#!/usr/bin/env bash
# Exits 0 when haproxy answers its monitor URI (bash's /dev/tcp: the image has no HTTP client).
exec 3<>"/dev/tcp/127.0.0.1/${LISTEN_PORT:-80}" || exit 1
printf 'GET /haproxy-health HTTP/1.0\r\n\r\n' >&3
read -r -t 3 _version status _rest <&3 && [ "$status" = 200 ]

#!/bin/sh
# local/busybox-web:1 — serves /www with a page that names this instance and the
# lab host it runs on, so a test behind a load balancer sees WHICH backend answered.
#   INSTANCE  name shown on the page (default: the container's hostname)
#   PORT      port to listen on (default 80)
port="${PORT:-80}"
instance="${INSTANCE:-$(hostname)}"
address="$(ip -o -4 addr show scope global | awk '{ split($4, a, "/"); print a[1]; exit }')"
mkdir -p /www
printf 'instance=%s address=%s hostname=%s\n' "$instance" "$address" "$(hostname)" > /www/index.html
echo ok > /www/health
httpd -f -p "$port" -h /www &
pid=$!
# sh as PID 1 gets no default signal handling: forward TERM so `docker stop` is instant.
trap 'kill "$pid"; wait "$pid"; exit 0' TERM INT
wait "$pid"

#!/bin/sh
# local/haproxy-lb:1 — writes haproxy.cfg from the environment, then runs haproxy
# in the foreground, balancing HTTP requests round-robin.
#   BACKENDS      comma-separated host or host:port list (required)
#   BACKEND_PORT  port for entries without one (default 80)
#   LISTEN_PORT   port to listen on (default 80)
set -eu
: "${BACKENDS:?BACKENDS must list at least one backend address}"
listen_port="${LISTEN_PORT:-80}"
backend_port="${BACKEND_PORT:-80}"
cfg=/etc/haproxy/haproxy.cfg
mkdir -p /etc/haproxy
{
    printf 'global\n    maxconn 1024\n\n'
    printf 'defaults\n    mode http\n    option http-server-close\n'
    printf '    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\n'
    printf 'frontend web\n    bind :%s\n    default_backend backends\n\n' "$listen_port"
    printf 'backend backends\n    balance roundrobin\n'
    n=0
    old_ifs="$IFS"; IFS=','
    for backend in $BACKENDS; do
        IFS="$old_ifs"
        backend="$(echo "$backend" | tr -d ' ')"
        [ -n "$backend" ] || continue
        case "$backend" in *:*) ;; *) backend="$backend:$backend_port" ;; esac
        n=$((n + 1))
        printf '    server b%s %s check inter 1s fall 2 rise 1\n' "$n" "$backend"
    done
} > "$cfg"
/usr/sbin/haproxy -db -f "$cfg" &
pid=$!
# haproxy as PID 1 ignores SIGTERM (10 s `docker stop`); sh forwards it instead.
trap 'kill "$pid"; wait "$pid"; exit 0' TERM INT
wait "$pid"

#!/bin/sh
# local/haproxy:2.6 - Debian 12's HAProxy, HTTP round-robin over BACKENDS with health checks.
#   BACKENDS      comma-separated host:port list (a bare host gets BACKEND_PORT); may be empty:
#                 then every request answers 503
#   BACKEND_PORT  port for entries without one (default 80)
#   LISTEN_PORT   port to listen on (default 80)
#   HEALTH_PATH   GET path of the backends' health check, 200 = up (default /health.php)
# A backend is checked every second and taken out after 2 failed checks. A request whose
# connection fails (a backend being replaced) or that answers 503 is retried up to 3 times,
# each time on another backend (`retries 3`, `option redispatch 1`).
# GET /haproxy-health answers 200 while haproxy runs (the image's `healthcheck`).
set -eu
listen_port="${LISTEN_PORT:-80}"
backend_port="${BACKEND_PORT:-80}"
health_path="${HEALTH_PATH:-/health.php}"
cfg=/etc/haproxy/haproxy.cfg
{
    printf 'global\n    maxconn 1024\n    user haproxy\n    group haproxy\n\n'
    printf 'defaults\n    mode http\n    option http-server-close\n'
    printf '    retries 3\n    option redispatch 1\n    retry-on conn-failure empty-response 503\n'
    printf '    timeout connect 1s\n    timeout client 30s\n    timeout server 30s\n    timeout check 1s\n\n'
    printf 'frontend web\n    bind :%s\n    monitor-uri /haproxy-health\n    default_backend backends\n\n' "$listen_port"
    printf 'backend backends\n    balance roundrobin\n'
    printf '    option httpchk GET %s\n    http-check expect status 200\n' "$health_path"
    printf '    default-server check inter 1s fall 2 rise 1\n'
    n=0
    old_ifs="$IFS"; IFS=','
    for backend in ${BACKENDS:-}; do
        IFS="$old_ifs"
        backend="$(echo "$backend" | tr -d ' ')"
        [ -n "$backend" ] || continue
        case "$backend" in *:*) ;; *) backend="$backend:$backend_port" ;; esac
        n=$((n + 1))
        printf '    server b%s %s\n' "$n" "$backend"
    done
    IFS="$old_ifs"
} > "$cfg"
/usr/sbin/haproxy -db -f "$cfg" &
pid=$!
# haproxy as PID 1 ignores SIGTERM (a 10 s `docker stop`); sh forwards it instead.
trap 'kill "$pid"; wait "$pid"; exit 0' TERM INT
wait "$pid"

#!/bin/sh
# local/lamp-web:1 - Debian 12's Apache 2.4 with mod_php 8.2 and mysqli, serving the demo app
# (/var/www/html: index.php, health.php) in the foreground.
#   DB_HOST, DB_PORT (default 3306), DB_NAME, DB_USER, DB_PASSWORD   the app's MariaDB
#   INSTANCE, HOST_NAME   named in every answer of GET /
#   PORT                  port to listen on (default 80)
# Apache is PID 1: the image's stop signal SIGWINCH (docker stop) is a graceful stop that lets
# requests in flight finish (at most 3 s); SIGTERM stops at once.
set -e
. /etc/apache2/envvars  # not under `set -u`: it tests variables that may be unset
set -u
export PORT="${PORT:-80}"
mkdir -p "$APACHE_RUN_DIR" "$APACHE_LOCK_DIR" "$APACHE_LOG_DIR"
# A restarted container keeps its filesystem: a stale pid file would stop Apache from starting.
rm -f "$APACHE_PID_FILE"
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec "$@"
fi
exec /usr/sbin/apache2 -DFOREGROUND "$@"

#!/usr/bin/env bash
# local/mariadb:10.11 - Debian 12's MariaDB in the foreground on 3306, all interfaces.
# First start with an empty /var/lib/mysql: initialise it, then create from the environment
#   MARIADB_ROOT_PASSWORD   root's password (root@localhost keeps socket login too, plus root@'%');
#                           required unless MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1
#   MARIADB_DATABASE        a database to create (optional)
#   MARIADB_USER, MARIADB_PASSWORD   a user@'%' with every privilege on MARIADB_DATABASE (optional)
# A failed initialisation exits 1 and leaves the datadir empty (the next start tries again).
# A datadir that is already initialised is used as it is: nothing is re-initialised, the
# environment is not applied again. Arguments that start with "-" go to mariadbd
# (`command: [--innodb-buffer-pool-size=64M]`); any other command runs instead of the server.
# mariadbd is PID 1: SIGTERM (docker stop) is its clean shutdown.
set -euo pipefail
datadir=/var/lib/mysql
init_sql=/run/mysqld/init.sql
log() { echo "entrypoint: $*" >&2; }

if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  exec "$@"
fi

# SQL literals for values from the environment.
sql_string() { local s=${1//\\/\\\\}; s=${s//\'/\\\'}; printf "'%s'" "$s"; }
# shellcheck disable=SC2016  # the backquotes are SQL identifier quotes, not a command
sql_name() { printf '`%s`' "${1//\`/\`\`}"; }

mkdir -p /run/mysqld
rm -f "$init_sql"
chown mysql:mysql /run/mysqld "$datadir"
# A bind-mounted or restored datadir may belong to another uid.
find "$datadir" \! -user mysql -exec chown mysql:mysql '{}' +

args=(--user=mysql --datadir="$datadir" --port=3306 --bind-address=0.0.0.0 --skip-name-resolve)
if [ ! -d "$datadir/mysql" ]; then
  if [ -z "${MARIADB_ROOT_PASSWORD:-}" ] && [ "${MARIADB_ALLOW_EMPTY_ROOT_PASSWORD:-}" != 1 ]; then
    log "empty datadir and no MARIADB_ROOT_PASSWORD (set MARIADB_ALLOW_EMPTY_ROOT_PASSWORD=1 to allow it)"
    exit 1
  fi
  if [ -n "${MARIADB_USER:-}" ] && [ -z "${MARIADB_PASSWORD:-}" ]; then
    log "MARIADB_USER needs MARIADB_PASSWORD"
    exit 1
  fi
  if [ "${MARIADB_USER:-}" = root ]; then
    log "MARIADB_USER=root: root exists already, its password is MARIADB_ROOT_PASSWORD"
    exit 1
  fi
  log "initialising an empty $datadir"
  # --cross-bootstrap: no grants naming this container's hostname, which the next container has not.
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db --cross-bootstrap >/dev/null
  (
    umask 077
    {
      if [ -n "${MARIADB_ROOT_PASSWORD:-}" ]; then
        pw=$(sql_string "$MARIADB_ROOT_PASSWORD")
        echo "ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD($pw);"
        echo "CREATE USER 'root'@'%' IDENTIFIED BY $pw;"
        echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
      fi
      # The healthcheck (`mysqladmin ping -h 127.0.0.1`, as this user by /etc/mysql/conf.d/healthcheck.cnf)
      # logs in without the "Access denied" warning every second; it may do nothing else.
      echo "CREATE USER 'healthcheck'@'127.0.0.1', 'healthcheck'@'::1', 'healthcheck'@'localhost';"
      if [ -n "${MARIADB_DATABASE:-}" ]; then
        echo "CREATE DATABASE IF NOT EXISTS $(sql_name "$MARIADB_DATABASE");"
      fi
      if [ -n "${MARIADB_USER:-}" ]; then
        echo "CREATE USER $(sql_string "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_string "$MARIADB_PASSWORD");"
        if [ -n "${MARIADB_DATABASE:-}" ]; then
          echo "GRANT ALL ON $(sql_name "$MARIADB_DATABASE").* TO $(sql_string "$MARIADB_USER")@'%';"
        fi
      fi
    } >"$init_sql"
  )
  # A temporary server without networking runs the SQL (every statement checked; the healthcheck,
  # over TCP, fails meanwhile). If anything fails the datadir is emptied again, so the next start
  # initialises it from scratch instead of serving a half-made database.
  socket=/run/mysqld/init.sock
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket="$socket" &
  pid=$!
  fail() {
    log "initialisation failed: $*"
    if kill "$pid" 2>/dev/null; then wait "$pid" || true; fi
    rm -f "$init_sql"
    find "$datadir" -mindepth 1 -delete
    exit 1
  }
  for _try in $(seq 300); do
    mariadb-admin --socket="$socket" -uroot ping >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || fail "the temporary server exited"
    sleep 0.1
  done
  mariadb --socket="$socket" -uroot --batch <"$init_sql" || fail "the SQL above"
  rm -f "$init_sql"
  kill "$pid"
  wait "$pid" || fail "the temporary server did not shut down cleanly"
  log "initialised"
fi
exec mariadbd "${args[@]}" "$@"

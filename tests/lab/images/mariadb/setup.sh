#!/bin/sh
# Runs in the image's chroot after apt-get install.
set -eu
# The package's postinst initialised /var/lib/mysql; the entrypoint does that on first start,
# with the container's own passwords, and a named volume must start empty.
rm -rf /var/lib/mysql/* /var/lib/mysql/.[!.]* /run/mysqld/*
install -d -o mysql -g mysql -m 0755 /var/lib/mysql /run/mysqld
# mysqladmin (the healthcheck: `mysqladmin ping -h 127.0.0.1`) logs in as the entrypoint's
# privilege-less `healthcheck` user, so the server does not log a refused root login every second.
printf '[mysqladmin]\nuser=healthcheck\n' > /etc/mysql/conf.d/healthcheck.cnf
# Debian's server config sets expire_logs_days without a binary log: a warning at every start.
sed -i '/^expire_logs_days/d' /etc/mysql/mariadb.conf.d/50-server.cnf

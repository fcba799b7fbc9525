#!/bin/sh
# Runs in the image's chroot after apt-get install.
set -eu
# One site, ours (stackfleet.conf): no default site, no ports.conf, no access log.
a2dissite -q 000-default
a2disconf -q other-vhosts-access-log
: > /etc/apache2/ports.conf
a2enconf -q stackfleet
rm -f /var/www/html/index.html

#!/bin/sh
# Exits 0 when GET /health.php answers 200 (PHP's HTTP stream fails on any other status);
# the app's health needs its database, so the check passes once both answer.
# shellcheck disable=SC2016  # the single-quoted text is PHP, expanded by PHP
exec php -r '$c = stream_context_create(["http" => ["timeout" => 3]]);
exit(@file_get_contents("http://127.0.0.1:" . (getenv("PORT") ?: "80") . "/health.php", false, $c) === false ? 1 : 0);'

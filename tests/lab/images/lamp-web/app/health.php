<?php
// 200 `ok` when the database answers, else 503: what the load balancers and the healthcheck ask.
require __DIR__ . '/db.php';
header('Content-Type: text/plain');
try {
    app_db()->query('SELECT 1');
    echo "ok\n";
} catch (mysqli_sql_exception $e) {
    http_response_code(503);
    echo "error=database " . str_replace("\n", ' ', $e->getMessage()) . "\n";
}

<?php
// GET / records one visit in this instance's database and answers one line a script can read:
//   instance=<INSTANCE> host=<HOST_NAME> visits=<rows in table visits>
// 503 with one `error=` line when the database does not answer.
require __DIR__ . '/db.php';
header('Content-Type: text/plain');
$instance = getenv('INSTANCE') ?: gethostname();
$host = getenv('HOST_NAME') ?: gethostname();
try {
    $db = app_db();
    $db->query('CREATE TABLE IF NOT EXISTS visits ('
        . 'id BIGINT AUTO_INCREMENT PRIMARY KEY, instance VARCHAR(128) NOT NULL, host VARCHAR(255) NOT NULL, '
        . 'container VARCHAR(64) NOT NULL, at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))');
    $insert = $db->prepare('INSERT INTO visits (instance, host, container) VALUES (?, ?, ?)');
    $container = gethostname();
    $insert->bind_param('sss', $instance, $host, $container);
    $insert->execute();
    $visits = $db->query('SELECT COUNT(*) FROM visits')->fetch_row()[0];
    echo "instance=$instance host=$host visits=$visits\n";
} catch (mysqli_sql_exception $e) {
    http_response_code(503);
    echo "error=database instance=$instance host=$host " . str_replace("\n", ' ', $e->getMessage()) . "\n";
}

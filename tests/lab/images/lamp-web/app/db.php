<?php
// The app's database connection, from the environment; throws mysqli_sql_exception.
mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);

function app_db(): mysqli
{
    $db = mysqli_init();
    $db->options(MYSQLI_OPT_CONNECT_TIMEOUT, 2);
    $db->options(MYSQLI_OPT_READ_TIMEOUT, 5);
    $db->real_connect(
        getenv('DB_HOST') ?: '127.0.0.1',
        getenv('DB_USER') ?: '',
        getenv('DB_PASSWORD') ?: '',
        getenv('DB_NAME') ?: '',
        (int) (getenv('DB_PORT') ?: 3306)
    );
    return $db;
}

-- Creates the database that holds metrics_1m, metrics_1h and raw.
CREATE DATABASE IF NOT EXISTS cwms
COMMENT 'cwms CloudWatch metrics lake'

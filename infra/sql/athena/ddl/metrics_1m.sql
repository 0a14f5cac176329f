-- metrics_1m: one row per series per datum timestamp, as streamed, deduplicated.
-- Partitions are registered in Glue by the compactor (value 'AWS/EC2', location .../namespace=AWS%2FEC2/),
-- which every engine reads: Athena, Redshift Spectrum, Spark, Glue. Columns, types and order are the
-- Parquet files' own (DESIGN 4.1); dt and namespace come from the object path, not from the files.
CREATE EXTERNAL TABLE IF NOT EXISTS metrics_1m (
  account_id     string,
  region         string,
  metric_name    string,
  dimensions     map<string,string>,
  dimension_key  string             COMMENT 'Name=Value pairs sorted by name, joined with commas',
  series_id      bigint,
  `timestamp`    timestamp          COMMENT 'UTC',
  unit           string,
  min            double,
  max            double,
  sum            double,
  count          double,
  stats          map<string,double> COMMENT 'Additional statistics by CloudWatch name'
)
COMMENT 'One row per series per datum timestamp, as streamed, deduplicated'
PARTITIONED BY (
  dt             string             COMMENT 'UTC date of the datum (YYYY-MM-DD)',
  namespace      string             COMMENT 'CloudWatch namespace (Hive-escaped in the S3 path)'
)
STORED AS PARQUET
LOCATION 's3://CWMS_BUCKET/lake/metrics_1m/'
TBLPROPERTIES ('classification' = 'parquet')

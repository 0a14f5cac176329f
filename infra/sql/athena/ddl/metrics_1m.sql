-- metrics_1m: one row per series per datum timestamp, as streamed, deduplicated.
-- Partitions are registered in Glue by the compactor (value 'AWS/EC2', location .../namespace=AWS%2FEC2/),
-- which every engine reads: Athena, Redshift Spectrum, Spark, Glue. Columns, types and order are the
-- Parquet files' own (DESIGN 4.1); dt and namespace come from the object path, not from the files.
-- dimension_key escapes a backslash, comma or equals sign inside a dimension name or value with a
-- backslash: the dimension Path = /api/v1,items=5 has the key 'Path=/api/v1\,items\=5' (as written in
-- Athena and DuckDB; Spark SQL literals need each backslash doubled), and a filter on the unescaped
-- text 'Path=/api/v1,items=5' silently finds nothing. element_at(dimensions, 'Path') needs no escapes.
-- Readers (infra/README.md, "Readers tested"): every tested reader reads every column, except the Hive 2.3
-- Parquet SerDe (Spark with spark.sql.hive.convertMetastoreParquet=false; Hive itself before 4.0,
-- unconfirmed), which cannot read `timestamp`, an INT64 TIMESTAMP_MICROS column ("LongWritable cannot be
-- cast to TimestampWritable"): there, leave `timestamp` out of the query (the other columns read), or use a
-- reader that reads it (tested: Spark's default Parquet reader, DuckDB, pyarrow, polars, DataFusion).
-- The lake does not switch to INT96 for it (deprecated in Parquet; DESIGN 4.1 keeps INT64 microseconds).
CREATE EXTERNAL TABLE IF NOT EXISTS metrics_1m (
  account_id     string,
  region         string,
  metric_name    string,
  dimensions     map<string,string>,
  dimension_key  string             COMMENT 'Name=Value pairs sorted by name, joined with commas; a backslash escapes a backslash, comma or equals sign in a name or value',
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

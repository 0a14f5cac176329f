-- raw: what Firehose wrote and the compactor has not necessarily merged yet. CloudWatch metric-stream JSON
-- lines, gzip, partitioned by ARRIVAL time at Firehose (dt, hour), not by the datums' own timestamps.
-- At-least-once: duplicates are normal here (the lake removes them). Nothing registers raw partitions, so
-- this table always uses projection, and only Athena can read it. Keep the dt range in step with the raw/
-- lifecycle rule (RawRetentionDays): older days are gone.
CREATE EXTERNAL TABLE IF NOT EXISTS raw (
  metric_stream_name string,
  account_id         string,
  region             string,
  namespace          string,
  metric_name        string,
  dimensions         map<string,string>,
  `timestamp`        bigint             COMMENT 'Epoch milliseconds of the datum',
  value              map<string,double> COMMENT 'count, sum, max, min and additional statistics',
  unit               string
)
COMMENT 'Firehose output, not yet compacted; duplicates possible'
PARTITIONED BY (
  dt                 string             COMMENT 'UTC arrival date at Firehose (YYYY-MM-DD)',
  hour               string             COMMENT 'UTC arrival hour at Firehose (00-23)'
)
-- case.insensitive=false keeps statistic names such as TM(25%:75%) exactly as streamed.
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('case.insensitive' = 'false')
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://CWMS_BUCKET/raw/'
TBLPROPERTIES (
  'classification'              = 'json',
  'compressionType'             = 'gzip',
  'projection.enabled'          = 'true',
  'projection.dt.type'          = 'date',
  'projection.dt.format'        = 'yyyy-MM-dd',
  'projection.dt.range'         = 'NOW-30DAYS,NOW',
  'projection.dt.interval'      = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.hour.type'        = 'integer',
  'projection.hour.range'       = '0,23',
  'projection.hour.digits'      = '2',
  'storage.location.template'   = 's3://CWMS_BUCKET/raw/dt=${dt}/hour=${hour}/'
)

-- Switches metrics_1m to Athena partition projection (PartitionMode=projection). Athena then computes
-- partitions instead of asking Glue: dt is a date range, namespace is "injected", so EVERY Athena query
-- on metrics_1m must then filter namespace with equality (namespace = '...' or IN (...)); a query without
-- it fails with CONSTRAINT_VIOLATION. Redshift Spectrum and Spark ignore projection and keep reading the
-- partitions the compactor registers. Undo with: ALTER TABLE metrics_1m SET TBLPROPERTIES ('projection.enabled' = 'false')
-- (unconfirmed) Athena does not document whether it percent-escapes an injected value before putting it
-- into storage.location.template, while the lake's paths hold the Hive-escaped form (AWS%2FEC2). Check once
-- after switching: if namespace = 'AWS/EC2' returns no rows where the registered table did, filter with the
-- path form namespace = 'AWS%2FEC2' instead. Registered partitions (the default) have no such question.
ALTER TABLE metrics_1m SET TBLPROPERTIES (
  'projection.enabled'          = 'true',
  'projection.dt.type'          = 'date',
  'projection.dt.format'        = 'yyyy-MM-dd',
  'projection.dt.range'         = '2020-01-01,NOW',
  'projection.dt.interval'      = '1',
  'projection.dt.interval.unit' = 'DAYS',
  'projection.namespace.type'   = 'injected',
  'storage.location.template'   = 's3://CWMS_BUCKET/lake/metrics_1m/dt=${dt}/namespace=${namespace}/'
)

-- Registers one partition by hand, exactly as the compactor does through the Glue API (DESIGN 4.4 step 5):
-- the partition VALUE is the namespace as CloudWatch spells it, the LOCATION is its Hive-escaped path.
-- (MSCK REPAIR TABLE is not used: it would have to guess the unescaping, and lists the whole prefix.)
ALTER TABLE metrics_1m ADD IF NOT EXISTS
  PARTITION (dt = '2026-11-25', namespace = 'AWS/EC2')
  LOCATION 's3://CWMS_BUCKET/lake/metrics_1m/dt=2026-11-25/namespace=AWS%2FEC2/'

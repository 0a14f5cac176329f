-- Registers one partition by hand, exactly as the compactor does through the Glue API (DESIGN 4.4 step 5):
-- the partition VALUE is the namespace as CloudWatch spells it, the LOCATION is its Hive-escaped path.
-- MSCK REPAIR TABLE is the other way, and not the one the compactor uses: it lists every folder under the
-- table's location on each run, and takes the value from the folder name. Known: Spark 4.3's MSCK (Hive
-- catalog, tests/compat/check_spark.py) unescaped every namespace tried, AWS/EC2 and My App/Prod:v1 among
-- them (also = # [ ] ? % * ^ { \ ' " and non-ASCII text). Not known: what Athena's MSCK REPAIR TABLE and
-- Glue crawlers do with such names on S3 (not tested here); registering as below needs no unescaping.
ALTER TABLE metrics_1m ADD IF NOT EXISTS
  PARTITION (dt = '2026-11-25', namespace = 'AWS/EC2')
  LOCATION 's3://CWMS_BUCKET/lake/metrics_1m/dt=2026-11-25/namespace=AWS%2FEC2/'

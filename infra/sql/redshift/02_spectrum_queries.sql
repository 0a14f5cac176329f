-- Spectrum queries over the lake. Always filter the partition columns dt and namespace: Spectrum then
-- reads only those partitions' objects. The partition value of namespace is the CloudWatch spelling
-- ('AWS/EC2'); the S3 path holds it Hive-escaped (AWS%2FEC2), which the registered partition maps.

-- 1. One metric of one series over one UTC day, minute by minute.
SELECT m."timestamp", m.unit, m.min, m.max, m.sum, m.count, m.sum / NULLIF(m.count, 0) AS avg
FROM cwms_lake.metrics_1m m
WHERE m.dt = '2026-11-25'
  AND m.namespace = 'AWS/EC2'
  AND m.metric_name = 'CPUUtilization'
  AND m.dimension_key = 'InstanceId=i-0123456789abcdef0'
ORDER BY m."timestamp";

-- 2. Select series by one dimension: a map column is ranged over in FROM like an array of
--    (key, value) structs (Redshift Spectrum "nested data" extension); d.key and d.value are scalars.
SELECT d.value AS instance_id,
       SUM(m.sum) / NULLIF(SUM(m.count), 0) AS avg_cpu,
       MAX(m.max) AS max_cpu
FROM cwms_lake.metrics_1h m, m.dimensions d
WHERE m.dt BETWEEN '2026-11-19' AND '2026-11-25'
  AND m.namespace = 'AWS/EC2'
  AND m.metric_name = 'CPUUtilization'
  AND d.key = 'InstanceId'
GROUP BY d.value
ORDER BY avg_cpu DESC
LIMIT 10;

-- 3. A percentile over time from the stats map (metrics_1m only; metrics_1h.stats is always empty).
--    The max of per-minute p99s bounds the hour's p99 from above; their mean is not the hour's p99.
SELECT DATE_TRUNC('hour', m."timestamp") AS hour,
       COUNT(*) AS minutes,
       MAX(s.value) AS max_p99,
       AVG(s.value) AS mean_of_minute_p99
FROM cwms_lake.metrics_1m m, m.stats s
WHERE m.dt = '2026-11-25'
  AND m.namespace = 'AWS/ApplicationELB'
  AND m.metric_name = 'TargetResponseTime'
  AND s.key = 'p99'
GROUP BY 1
ORDER BY 1;

-- 4. Which statistics does a namespace carry? (LEFT JOIN keeps metrics without any.)
SELECT m.metric_name, s.key AS statistic, COUNT(*) AS datums
FROM cwms_lake.metrics_1m m LEFT JOIN m.stats s ON true
WHERE m.dt = '2026-11-25'
  AND m.namespace = 'AWS/Lambda'
GROUP BY 1, 2
ORDER BY 1, 2;

-- 5. Join the lake with a native Redshift table (e.g. an inventory of instances you maintain).
-- SELECT i.owner, SUM(m.sum) / NULLIF(SUM(m.count), 0) AS avg_cpu
-- FROM cwms_lake.metrics_1h m, m.dimensions d, ops.instances i
-- WHERE m.dt = '2026-11-25' AND m.namespace = 'AWS/EC2' AND m.metric_name = 'CPUUtilization'
--   AND d.key = 'InstanceId' AND d.value = i.instance_id
-- GROUP BY i.owner;

-- Answers: what one metric of one series did over one UTC day, minute by minute
--          (e.g. CPUUtilization of one EC2 instance on 2026-11-25).
-- Reads:   one (dt, namespace) partition of metrics_1m; row-group statistics on metric_name and
--          dimension_key let Athena skip most of each hourly file.
-- A series is (account_id, region, namespace, metric_name, dimension_key); dimension_key is the
-- canonical Name=Value list, sorted by name, e.g. 'InstanceId=i-0123456789abcdef0'. A backslash, comma or
-- equals sign inside a name or value is escaped with a backslash: the dimension Path = /api/v1,items=5
-- has the key 'Path=/api/v1\,items\=5', and 'Path=/api/v1,items=5' silently matches nothing. To pick a
-- series by one dimension instead (no escapes), replace the last predicate with
-- element_at(dimensions, 'InstanceId') = '...'.
-- @param dt             varchar  '2026-11-25'       UTC day (partition)
-- @param namespace      varchar  'AWS/EC2'          CloudWatch namespace (partition)
-- @param metric_name    varchar  'CPUUtilization'
-- @param dimension_key  varchar  'InstanceId=i-0123456789abcdef0'
SELECT "timestamp",
       account_id,
       region,
       unit,
       min,
       max,
       sum,
       count,
       sum / nullif(count, 0) AS avg
FROM metrics_1m
WHERE dt = ?
  AND namespace = ?
  AND metric_name = ?
  AND dimension_key = ?
ORDER BY "timestamp", account_id, region

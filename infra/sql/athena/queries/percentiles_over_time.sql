-- Answers: how one additional statistic (a percentile such as p99, or TM(25%:75%)) of one series moved
--          hour by hour over a UTC day.
-- Reads:   one (dt, namespace) partition of metrics_1m. Percentiles exist only there: metrics_1h.stats
--          is always empty, because percentiles cannot be rolled up.
-- Per hour: how many minutes carried the statistic, and the min, mean and max of the per-minute values.
-- The max of per-minute p99s bounds the hour's p99 from above; the mean of them is NOT the hour's p99.
-- Statistics exist only for the metrics the stream was configured for (StreamAdditionalStatistics).
-- @param statistic      varchar  'p99'              key of the stats map, exactly as CloudWatch names it
-- @param dt             varchar  '2026-11-25'       UTC day (partition)
-- @param namespace      varchar  'AWS/ApplicationELB'
-- @param metric_name    varchar  'TargetResponseTime'
-- @param dimension_key  varchar  'LoadBalancer=app/web/0123456789abcdef'
WITH minutes AS (
  SELECT "timestamp",
         element_at(stats, ?) AS stat_value
  FROM metrics_1m
  WHERE dt = ?
    AND namespace = ?
    AND metric_name = ?
    AND dimension_key = ?
)
SELECT date_trunc('hour', "timestamp") AS hour,
       count(stat_value) AS minutes_with_statistic,
       min(stat_value) AS min_value,
       avg(stat_value) AS mean_of_minutes,
       max(stat_value) AS max_value
FROM minutes
GROUP BY date_trunc('hour', "timestamp")
ORDER BY hour

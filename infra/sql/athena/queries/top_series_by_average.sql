-- Answers: which 10 series of one metric had the highest average over a range of UTC days
--          (e.g. the busiest Lambda functions by Duration this week).
-- Reads:   metrics_1h, the hourly rollup: the same answer as metrics_1m for averages, sums, counts,
--          minima and maxima, from about 60 times fewer rows.
-- The average is sum(sum) / sum(count) over all samples, not the mean of hourly averages.
-- @param from_dt        varchar  '2026-11-19'       first UTC day, inclusive (partition)
-- @param to_dt          varchar  '2026-11-25'       last UTC day, inclusive (partition)
-- @param namespace      varchar  'AWS/Lambda'       CloudWatch namespace (partition)
-- @param metric_name    varchar  'Duration'
SELECT account_id,
       region,
       dimension_key,
       sum(sum) / nullif(sum(count), 0) AS avg_value,
       max(max) AS max_value,
       sum(count) AS samples,
       count(*) AS hours
FROM metrics_1h
WHERE dt BETWEEN ? AND ?
  AND namespace = ?
  AND metric_name = ?
GROUP BY account_id, region, dimension_key
ORDER BY avg_value DESC NULLS LAST, dimension_key, account_id, region
LIMIT 10

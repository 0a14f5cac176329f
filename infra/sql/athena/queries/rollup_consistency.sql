-- Answers: does metrics_1h agree with metrics_1m for one UTC day and namespace? One row per series and
--          hour, mismatches first. A healthy lake answers 'ok' on every row; anything else names what to
--          re-compact (the compactor recomputes a day's metrics_1h whenever it touches its metrics_1m).
-- Reads:   one (dt, namespace) partition of each table (no dimensions, no stats).
-- Sums are compared with a relative tolerance of 1e-9: the rollup adds the same doubles in another order.
-- @param dt             varchar  '2026-11-25'       UTC day (partition of metrics_1m)
-- @param namespace      varchar  'AWS/EC2'          CloudWatch namespace (partition of metrics_1m)
-- @param dt             varchar  '2026-11-25'       the same day (partition of metrics_1h)
-- @param namespace      varchar  'AWS/EC2'          the same namespace (partition of metrics_1h)
WITH from_minutes AS (
  SELECT series_id,
         metric_name,
         dimension_key,
         date_trunc('hour', "timestamp") AS hour,
         min(min) AS min_value,
         max(max) AS max_value,
         sum(sum) AS sum_value,
         sum(count) AS count_value
  FROM metrics_1m
  WHERE dt = ?
    AND namespace = ?
  GROUP BY series_id, metric_name, dimension_key, date_trunc('hour', "timestamp")
),
rollup AS (
  SELECT series_id,
         metric_name,
         dimension_key,
         "timestamp" AS hour,
         min AS min_value,
         max AS max_value,
         sum AS sum_value,
         count AS count_value
  FROM metrics_1h
  WHERE dt = ?
    AND namespace = ?
),
compared AS (
  SELECT coalesce(m.series_id, h.series_id) AS series_id,
         coalesce(m.metric_name, h.metric_name) AS metric_name,
         coalesce(m.dimension_key, h.dimension_key) AS dimension_key,
         coalesce(m.hour, h.hour) AS hour,
         m.count_value AS count_1m,
         h.count_value AS count_1h,
         m.sum_value AS sum_1m,
         h.sum_value AS sum_1h,
         CASE
           WHEN h.series_id IS NULL THEN 'missing in metrics_1h'
           WHEN m.series_id IS NULL THEN 'missing in metrics_1m'
           WHEN m.count_value <> h.count_value THEN 'count differs'
           WHEN m.min_value <> h.min_value OR m.max_value <> h.max_value THEN 'min or max differs'
           WHEN abs(m.sum_value - h.sum_value)
                > 1e-9 * greatest(abs(m.sum_value), abs(h.sum_value), 1e0) THEN 'sum differs'
           ELSE 'ok'
         END AS verdict
  FROM from_minutes m
  FULL OUTER JOIN rollup h
    ON m.series_id = h.series_id
   AND m.hour = h.hour
)
SELECT metric_name, dimension_key, hour, verdict, count_1m, count_1h, sum_1m, sum_1h
FROM compared
ORDER BY CASE WHEN verdict = 'ok' THEN 1 ELSE 0 END, metric_name, dimension_key, hour, series_id

-- Answers: what arrived in the last 30 minutes for one namespace, per metric and minute, before the
--          compactor has merged it into the lake (the "is it flowing right now?" view).
-- Reads:   raw, only the arrival-hour partitions since one hour ago: a datum arrives after its own
--          minute, so anything stamped in the last 30 minutes sits in those partitions. Raw is gzip JSON,
--          so this costs more per datum than the lake; keep the window short.
-- raw is at-least-once: a datum Firehose delivered twice is counted twice here (the lake keeps one).
-- For exact numbers over older minutes, query metrics_1m.
-- @param namespace      varchar  'AWS/EC2'          CloudWatch namespace (a data column in raw)
SELECT metric_name,
       date_trunc('minute', from_unixtime("timestamp" / 1e3)) AS minute,
       count(*) AS datums,
       sum(element_at(value, 'sum')) / nullif(sum(element_at(value, 'count')), 0) AS avg_value,
       max(element_at(value, 'max')) AS max_value
FROM raw
WHERE dt || '-' || hour >= format_datetime(current_timestamp - INTERVAL '1' HOUR, 'yyyy-MM-dd-HH')
  AND "timestamp" >= to_unixtime(current_timestamp - INTERVAL '30' MINUTE) * 1e3
  AND namespace = ?
GROUP BY metric_name, date_trunc('minute', from_unixtime("timestamp" / 1e3))
ORDER BY minute DESC, metric_name

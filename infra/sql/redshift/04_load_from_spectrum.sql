-- Load one UTC day into the native tables through Spectrum (recommended path).
-- Why this path: Spectrum names columns instead of mapping them by position, fills the partition columns
-- from the registered partitions, and reads the maps with documented syntax. What it cannot do is return
-- a map as a value, so the native dimensions/stats SUPER columns stay NULL here: dimension_key carries the
-- dimensions in full (parse_dimension_key in cwms-model inverts it), and statistics go to the long table.
-- Idempotent per day: the lake re-publishes a partition when late data arrives, so reload whole days.
BEGIN;

DELETE FROM cwms.metrics_1m WHERE dt = '2026-11-25';
INSERT INTO cwms.metrics_1m
       (account_id, region, metric_name, dimension_key, series_id, "timestamp", unit,
        min, max, sum, count, namespace, dt)
SELECT m.account_id, m.region, m.metric_name, m.dimension_key, m.series_id, m."timestamp", m.unit,
       m.min, m.max, m.sum, m.count, m.namespace, CAST(m.dt AS DATE)
FROM cwms_lake.metrics_1m m
WHERE m.dt = '2026-11-25';

DELETE FROM cwms.metrics_1m_stats WHERE dt = '2026-11-25';
INSERT INTO cwms.metrics_1m_stats (series_id, "timestamp", statistic, value, namespace, dt)
SELECT m.series_id, m."timestamp", s.key, s.value, m.namespace, CAST(m.dt AS DATE)
FROM cwms_lake.metrics_1m m, m.stats s
WHERE m.dt = '2026-11-25';

DELETE FROM cwms.metrics_1h WHERE dt = '2026-11-25';
INSERT INTO cwms.metrics_1h
       (account_id, region, metric_name, dimension_key, series_id, "timestamp", unit,
        min, max, sum, count, namespace, dt)
SELECT m.account_id, m.region, m.metric_name, m.dimension_key, m.series_id, m."timestamp", m.unit,
       m.min, m.max, m.sum, m.count, m.namespace, CAST(m.dt AS DATE)
FROM cwms_lake.metrics_1h m
WHERE m.dt = '2026-11-25';

COMMIT;

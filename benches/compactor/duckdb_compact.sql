-- The compactor's work done by DuckDB, the peer of DESIGN 8 ("compactor: raw gzip NDJSON to the
-- merged lake, 2 cores"): read the raw gzip NDJSON objects Firehose wrote, keep one datum per
-- identity by the merge law (DESIGN 4.3), write metrics_1m as Parquet, one file per (dt,
-- namespace, hour) in Hive folders, rows sorted by (metric_name, dimension_key, timestamp), and
-- the hourly rollup metrics_1h, one file per (dt, namespace). Same columns and types as the lake
-- (DESIGN 4.1).
--
-- Run by duckdb_compact.py, which replaces ${RAW_GLOB}, ${LAKE} and ${CODEC} (read_ndjson and
-- COPY ... TO need constant paths), sets the thread count, and runs each statement marked
-- `-- for each row of: QUERY` once per row of QUERY, with ${column} replaced by that row's value
-- (${namespace_path}: the namespace with Hive path escaping, AWS/EC2 -> AWS%2FEC2).
--
-- Choices (see benches/README.md, "Compactor"):
-- - explicit columns (no schema sniffing); `dimensions` and `value` read as MAPs, the
--   additional statistics being the `value` keys other than min, max, sum and count;
-- - dedup with GROUP BY identity and arg_max over the merge law's order (count, sum, max, min);
--   a window (QUALIFY row_number() ...) took as long;
-- - the identity's dimensions compared through dimension_key, which is canonical (sorted,
--   escaped) and so equal exactly when the sorted dimensions are;
-- - one COPY per partition rather than COPY ... PARTITION_BY: DuckDB 1.4's partitioned write
--   does not keep the ORDER BY across row groups (files came out sorted per row group only,
--   whatever preserve_insertion_order), and the lake needs each file sorted. The rows are
--   sorted once, into a temporary table; each COPY reads its partition back in that order
--   (zone maps skip the rest, and a table scan keeps insertion order).

SET TimeZone = 'UTC';

-- One row per identity: the merge law's winner.
CREATE TEMP VIEW deduped AS
WITH raw AS (
    SELECT *
    FROM read_ndjson('${RAW_GLOB}',
        compression = 'gzip',
        format = 'newline_delimited',
        columns = {
            account_id: 'VARCHAR',
            region: 'VARCHAR',
            namespace: 'VARCHAR',
            metric_name: 'VARCHAR',
            dimensions: 'MAP(VARCHAR, VARCHAR)',
            timestamp: 'BIGINT',
            value: 'MAP(VARCHAR, DOUBLE)',
            unit: 'VARCHAR'
        })
),
keyed AS (
    SELECT
        account_id, region, namespace, metric_name,
        -- Keys sorted (the lake's maps are), and the canonical Name=Value,... text with \ , =
        -- escaped by \ (DESIGN 4.1).
        map_from_entries(list_sort(map_entries(dimensions))) AS dimensions,
        coalesce(array_to_string(list_transform(list_sort(map_entries(dimensions)),
            e -> replace(replace(replace(e.key, '\', '\\'), ',', '\,'), '=', '\=')
                 || '=' || replace(replace(replace(e.value, '\', '\\'), ',', '\,'), '=', '\=')), ','), '') AS dimension_key,
        timestamp AS timestamp_ms,
        unit,
        value['min'] AS min, value['max'] AS max, value['sum'] AS sum, value['count'] AS count,
        map_from_entries(list_sort(list_filter(map_entries(value), e -> e.key NOT IN ('min', 'max', 'sum', 'count')))) AS stats
    FROM raw
)
SELECT
    account_id, region, namespace, metric_name, dimension_key, timestamp_ms,
    -- The merge law: the largest count, ties broken by sum, max, min.
    arg_max({dimensions: dimensions, unit: unit, min: min, max: max, sum: sum, count: count, stats: stats},
            {count: count, sum: sum, max: max, min: min}) AS kept
FROM keyed
GROUP BY ALL;

-- metrics_1m rows in the lake's columns, sorted by partition and then by the lake's order.
CREATE TEMP TABLE minutes AS
SELECT
    account_id, region, metric_name,
    kept.dimensions AS dimensions,
    dimension_key,
    -- DuckDB's 64-bit hash of the series identity, shifted into BIGINT's range (the lake has
    -- signed types only).
    (hash(account_id, region, namespace, metric_name, dimension_key)::HUGEINT - 9223372036854775808)::BIGINT AS series_id,
    make_timestamptz(timestamp_ms * 1000) AS timestamp,
    kept.unit AS unit,
    kept.min AS min, kept.max AS max, kept.sum AS sum, kept.count AS count,
    kept.stats AS stats,
    strftime(make_timestamptz(timestamp_ms * 1000), '%Y-%m-%d') AS dt,
    namespace,
    hour(make_timestamptz(timestamp_ms * 1000)) AS hour
FROM deduped
ORDER BY dt, namespace, hour, metric_name, dimension_key, timestamp;

-- The rollup: min of mins, max of maxes, sum of sums and counts, the unit of the hour's latest
-- point, no additional statistics.
CREATE TEMP TABLE hours AS
SELECT
    account_id, region, metric_name,
    any_value(dimensions) AS dimensions,
    dimension_key,
    any_value(series_id) AS series_id,
    date_trunc('hour', timestamp) AS timestamp,
    arg_max(unit, timestamp) AS unit,
    min(min) AS min, max(max) AS max, sum(sum) AS sum, sum(count) AS count,
    MAP {}::MAP(VARCHAR, DOUBLE) AS stats,
    dt, namespace
FROM minutes
GROUP BY account_id, region, namespace, dt, metric_name, dimension_key, date_trunc('hour', timestamp)
ORDER BY dt, namespace, metric_name, dimension_key, timestamp;

-- for each row of: SELECT DISTINCT dt, namespace, hour FROM minutes ORDER BY ALL
COPY (
    SELECT account_id, region, metric_name, dimensions, dimension_key, series_id, timestamp, unit, min, max, sum, count, stats
    FROM minutes
    WHERE dt = '${dt}' AND namespace = '${namespace}' AND hour = ${hour}
) TO '${LAKE}/metrics_1m/dt=${dt}/namespace=${namespace_path}/hour=${hour}/data_0.parquet' (FORMAT parquet, COMPRESSION ${CODEC});

-- for each row of: SELECT DISTINCT dt, namespace FROM hours ORDER BY ALL
COPY (
    SELECT account_id, region, metric_name, dimensions, dimension_key, series_id, timestamp, unit, min, max, sum, count, stats
    FROM hours
    WHERE dt = '${dt}' AND namespace = '${namespace}'
) TO '${LAKE}/metrics_1h/dt=${dt}/namespace=${namespace_path}/data_0.parquet' (FORMAT parquet, COMPRESSION ${CODEC});

-- Load one lake partition (one dt and namespace) with COPY ... FORMAT AS PARQUET.
--
-- COPY from Parquet maps file columns to table columns BY POSITION and requires the same number of
-- columns (13 here), so it cannot fill dt and namespace (they are in the path, not the file). Hence:
-- COPY the partition's prefix into the 13-column staging table, then INSERT with the partition values.
-- Run it once per partition; list them with
--   SELECT "values", location FROM svv_external_partitions WHERE tablename = 'metrics_1m' AND schemaname = 'cwms_lake';
--
-- Maps: SERIALIZETOJSON loads a nested Parquet column into a SUPER column. Redshift documents it for
-- structures and arrays; for a Parquet MAP (a repeated key_value group) the SUPER shape is not
-- documented (unconfirmed): expect either an array of {"key": ..., "value": ...} objects or an object.
-- Check once after the first load (query at the end) and write the SUPER queries for the shape you see.
-- If a Redshift release rejects MAP here, load through Spectrum instead (04_load_from_spectrum.sql).
--
-- The prefix ends with '/': COPY loads every object whose key starts with the prefix, and without the
-- slash namespace=AWS%2FEC2 would also match namespace=AWS%2FEC2Spot.
BEGIN;

DELETE FROM cwms.stage_lake;  -- not TRUNCATE: TRUNCATE commits the transaction in Redshift

COPY cwms.stage_lake
FROM 's3://CWMS_BUCKET/lake/metrics_1m/dt=2026-11-25/namespace=AWS%2FEC2/'
IAM_ROLE '<RedshiftRoleArn>'
FORMAT AS PARQUET SERIALIZETOJSON;

DELETE FROM cwms.metrics_1m WHERE dt = '2026-11-25' AND namespace = 'AWS/EC2';
INSERT INTO cwms.metrics_1m
SELECT s.*, 'AWS/EC2', CAST('2026-11-25' AS DATE)
FROM cwms.stage_lake s;

COMMIT;

-- What SERIALIZETOJSON made of the maps (see the note above).
SELECT dimension_key, JSON_TYPEOF(dimensions) AS dimensions_type, JSON_SERIALIZE(dimensions) AS dimensions,
       JSON_TYPEOF(stats) AS stats_type, JSON_SERIALIZE(stats) AS stats
FROM cwms.metrics_1m
WHERE dt = '2026-11-25' AND namespace = 'AWS/EC2'
LIMIT 5;

-- Querying the SUPER maps (PartiQL), for the array-of-entries shape:
--   SELECT m.series_id, m."timestamp", e.value AS p99
--   FROM cwms.metrics_1m m, m.stats e
--   WHERE m.dt = '2026-11-25' AND e.key = 'p99';
-- and for the object shape (quote attribute names; names with capitals such as TM(25%:75%) also need
-- SET enable_case_sensitive_identifier TO true, since Redshift folds identifiers to lower case):
--   SELECT m.series_id, m."timestamp", m.stats."p99" AS p99 FROM cwms.metrics_1m m WHERE m.dt = '2026-11-25';

-- Native Redshift tables for lake data you query all day. The first 13 columns are the lake file's
-- columns IN FILE ORDER (COPY from Parquet maps by position); the partition columns follow, filled by the
-- loader, never by COPY. Maps are SUPER. VARCHAR sizes are CloudWatch's limits (metric names 255,
-- namespaces 255); dimension_key is as long as Redshift allows, since 30 escaped dimensions can be long.
CREATE SCHEMA IF NOT EXISTS cwms;

CREATE TABLE IF NOT EXISTS cwms.metrics_1m (
  account_id     VARCHAR(32)      NOT NULL,
  region         VARCHAR(32)      NOT NULL,
  metric_name    VARCHAR(255)     NOT NULL,
  dimensions     SUPER,
  dimension_key  VARCHAR(65535)   NOT NULL,
  series_id      BIGINT           NOT NULL,
  "timestamp"    TIMESTAMP        NOT NULL,  -- UTC
  unit           VARCHAR(32),
  min            DOUBLE PRECISION,
  max            DOUBLE PRECISION,
  sum            DOUBLE PRECISION,
  count          DOUBLE PRECISION,
  stats          SUPER,
  namespace      VARCHAR(255)     NOT NULL,  -- partition key, from the object path
  dt             DATE             NOT NULL   -- partition key, from the object path
)
DISTSTYLE KEY DISTKEY (series_id)
COMPOUND SORTKEY (dt, namespace, metric_name, series_id, "timestamp");

-- The hourly rollup has the same shape (stats is always an empty map there).
CREATE TABLE IF NOT EXISTS cwms.metrics_1h (LIKE cwms.metrics_1m);

-- Staging table for COPY (05_copy_from_parquet.sql): exactly the file's 13 columns, in file order.
CREATE TABLE IF NOT EXISTS cwms.stage_lake (
  account_id     VARCHAR(32),
  region         VARCHAR(32),
  metric_name    VARCHAR(255),
  dimensions     SUPER,
  dimension_key  VARCHAR(65535),
  series_id      BIGINT,
  "timestamp"    TIMESTAMP,
  unit           VARCHAR(32),
  min            DOUBLE PRECISION,
  max            DOUBLE PRECISION,
  sum            DOUBLE PRECISION,
  count          DOUBLE PRECISION,
  stats          SUPER
);

-- Statistics in long form, for the Spectrum load path (04), which cannot move a map into SUPER.
CREATE TABLE IF NOT EXISTS cwms.metrics_1m_stats (
  series_id      BIGINT           NOT NULL,
  "timestamp"    TIMESTAMP        NOT NULL,
  statistic      VARCHAR(64)      NOT NULL,  -- e.g. p99, TM(25%:75%)
  value          DOUBLE PRECISION,
  namespace      VARCHAR(255)     NOT NULL,
  dt             DATE             NOT NULL
)
DISTSTYLE KEY DISTKEY (series_id)
COMPOUND SORTKEY (dt, namespace, statistic, series_id, "timestamp");

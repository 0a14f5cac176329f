-- Redshift Spectrum: an external schema over the cwms Glue database (stack output GlueDatabaseName).
-- Tables appear as cwms_lake.metrics_1m and cwms_lake.metrics_1h with the Glue columns and partitions;
-- no data is copied, each query reads the Parquet objects it needs (billed per TB scanned, like Athena).
-- The role needs Glue read access to the database and S3 read access to lake/ (RedshiftRole in the stack).
CREATE EXTERNAL SCHEMA IF NOT EXISTS cwms_lake
FROM DATA CATALOG
DATABASE 'cwms'
IAM_ROLE '<RedshiftRoleArn>';

-- What Spectrum sees: tables, columns (maps show as map<...>), and registered partitions.
SELECT tablename, location FROM svv_external_tables WHERE schemaname = 'cwms_lake';
SELECT tablename, columnname, external_type, columnnum FROM svv_external_columns
WHERE schemaname = 'cwms_lake' ORDER BY tablename, columnnum;
SELECT tablename, "values", location FROM svv_external_partitions
WHERE schemaname = 'cwms_lake' ORDER BY tablename, "values" LIMIT 20;

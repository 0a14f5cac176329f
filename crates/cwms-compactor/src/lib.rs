//! The compaction protocol: raw metric-stream objects into the Parquet lake

//! The merge law, dedup and hourly rollups of metric-stream datums

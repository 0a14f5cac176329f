//! Metric-stream bytes (JSON lines, gzip or not) to datums and per-line problems

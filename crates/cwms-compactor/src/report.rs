//! What a run did: the report, its JSON summary and its CloudWatch Embedded Metric Format document.

use std::time::Duration;

/// What a registration of partitions in Glue did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Registered {
    pub created: usize,
    pub already_present: usize,
}

/// A problem with one object that did not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectProblem {
    /// Where the object is (`s3://...` or a path).
    pub location: String,
    pub reason: String,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub objects_listed: usize,
    /// Objects not yet in the lake when the run started.
    pub objects_pending: usize,
    pub objects_read: usize,
    pub raw_bytes_read: u64,
    /// Raw objects that could not be read or decoded in this run (reported, recorded, left in place).
    pub objects_failed: Vec<ObjectProblem>,
    /// Raw objects recorded as undecodable by earlier runs and not read again, with the reason
    /// recorded then: their datums are not in the lake until `--retry-failed` reads them.
    pub objects_failed_earlier: Vec<ObjectProblem>,
    pub datums: u64,
    /// Lines of raw objects that were not datums: kept out of the lake, written with their line
    /// numbers and reasons under `_cwms/rejected/` (see [`crate::quarantine`]).
    pub lines_rejected: u64,
    /// The rejected-lines objects written, one per raw object with such lines.
    pub rejected: Vec<ObjectProblem>,
    /// Datums that arrived more than once (within the run or already in the lake) and were merged.
    pub duplicates_merged: u64,
    /// The most merged points held in memory at once (bounded by `Options::max_points`).
    pub peak_points: usize,
    /// `metrics_1m` objects written (changed) and found unchanged.
    pub minute_objects_written: usize,
    pub minute_objects_unchanged: usize,
    /// `metrics_1h` objects written (changed).
    pub hour_objects_written: usize,
    pub lake_bytes_written: u64,
    /// Lake objects that could not be updated (a corrupt existing object, a lost object, a lost race).
    pub partition_errors: Vec<ObjectProblem>,
    /// Corrupt lake objects a rebuild replaced.
    pub replaced_corrupt: Vec<String>,
    pub glue: Registered,
    /// Age of the oldest raw object still not in the lake after the run (zero when caught up).
    pub lag: Duration,
    pub elapsed: Duration,
}

impl Report {
    /// True when nothing failed: every raw object was read and every partition was written.
    /// Rejected lines do not count as failures: their datums could not be, and they are kept,
    /// recoverable, under `_cwms/rejected/` (see [`Report::lines_rejected`]).
    pub fn is_success(&self) -> bool {
        self.objects_failed.is_empty() && self.partition_errors.is_empty()
    }

    /// The report as a JSON object (the Lambda's response, and `cwms compact --json`).
    pub fn summary_json(&self) -> serde_json::Value {
        let problems = |list: &[ObjectProblem]| -> Vec<serde_json::Value> {
            list.iter().map(|p| serde_json::json!({"location": p.location, "reason": p.reason})).collect()
        };
        serde_json::json!({
            "objects_listed": self.objects_listed,
            "objects_pending": self.objects_pending,
            "objects_read": self.objects_read,
            "objects_failed": problems(&self.objects_failed),
            "objects_failed_earlier": self.objects_failed_earlier.len(),
            "failed_earlier": problems(&self.objects_failed_earlier),
            "raw_bytes_read": self.raw_bytes_read,
            "datums": self.datums,
            "lines_rejected": self.lines_rejected,
            "rejected": problems(&self.rejected),
            "duplicates_merged": self.duplicates_merged,
            "peak_points": self.peak_points,
            "minute_objects_written": self.minute_objects_written,
            "minute_objects_unchanged": self.minute_objects_unchanged,
            "hour_objects_written": self.hour_objects_written,
            "lake_bytes_written": self.lake_bytes_written,
            "partition_errors": problems(&self.partition_errors),
            "replaced_corrupt": self.replaced_corrupt,
            "glue_partitions_created": self.glue.created,
            "lag_seconds": self.lag.as_secs_f64(),
            "elapsed_seconds": self.elapsed.as_secs_f64(),
        })
    }
}

/// The metric namespace of the compactor's own metrics.
pub const NAMESPACE: &str = "cwms";

/// The names, units and values of the compactor's metrics for a run; `None` is a run that
/// stopped with an error. The template's alarms use these names (a test checks it).
pub fn metrics(report: Option<&Report>) -> Vec<(&'static str, &'static str, f64)> {
    let Some(r) = report else { return vec![("CompactionErrors", "Count", 1.0)] };
    vec![
        ("CompactionErrors", "Count", if r.partition_errors.is_empty() { 0.0 } else { 1.0 }),
        ("ObjectsRead", "Count", r.objects_read as f64),
        ("ObjectsFailed", "Count", r.objects_failed.len() as f64),
        // Every raw object whose datums are not in the lake because it failed, in this run or
        // an earlier one: an alarm on its Maximum stays in ALARM until they are dealt with.
        ("ObjectsFailedOutstanding", "Count", (r.objects_failed.len() + r.objects_failed_earlier.len()) as f64),
        ("Datums", "Count", r.datums as f64),
        ("LinesRejected", "Count", r.lines_rejected as f64),
        ("DuplicatesMerged", "Count", r.duplicates_merged as f64),
        ("LakeBytesWritten", "Bytes", r.lake_bytes_written as f64),
        ("LagSeconds", "Seconds", r.lag.as_secs_f64()),
        ("DurationMs", "Milliseconds", r.elapsed.as_secs_f64() * 1000.0),
    ]
}

/// The compactor's own numbers as one CloudWatch Embedded Metric Format document (namespace
/// `cwms`, dimension `FunctionName`); `None` is a run that stopped with an error.
pub fn emf_document(report: Option<&Report>, function_name: &str, timestamp_ms: i64) -> String {
    let metrics = metrics(report);
    let mut doc = serde_json::json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": metrics.iter().map(|(n, u, _)| serde_json::json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
            }],
        },
        "FunctionName": function_name,
    });
    for (name, _, value) in metrics {
        doc[name] = serde_json::json!(value);
    }
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_declares_every_metric_it_carries_under_its_dimension() {
        let report = Report { lines_rejected: 3, ..Report::default() };
        for report in [None, Some(&report)] {
            let doc: serde_json::Value = serde_json::from_str(&emf_document(report, "fn", 7)).unwrap();
            let declared = &doc["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(declared["Namespace"], "cwms");
            assert_eq!(declared["Dimensions"], serde_json::json!([["FunctionName"]]));
            assert_eq!(doc["FunctionName"], "fn");
            assert_eq!(doc["_aws"]["Timestamp"], 7);
            for metric in declared["Metrics"].as_array().unwrap() {
                assert!(doc[metric["Name"].as_str().unwrap()].is_number(), "{metric}");
            }
        }
        let doc: serde_json::Value = serde_json::from_str(&emf_document(Some(&report), "fn", 7)).unwrap();
        assert_eq!(doc["LinesRejected"], 3.0);
        assert_eq!(doc["CompactionErrors"], 0.0);
        let failed: serde_json::Value = serde_json::from_str(&emf_document(None, "fn", 7)).unwrap();
        assert_eq!(failed["CompactionErrors"], 1.0);
    }
}

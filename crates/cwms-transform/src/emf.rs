//! The handler's own numbers as a CloudWatch Embedded Metric Format document.
//!
//! One JSON line on stdout per invocation becomes CloudWatch metrics in namespace `cwms` without
//! any PutMetricData call (the Lambda log agent extracts them).

use serde_json::json;

use crate::Stats;

/// The metric namespace operators find cwms's own metrics under.
pub const NAMESPACE: &str = "cwms";

/// Builds the EMF document for one invocation, as one line of JSON.
pub fn emf_document(stats: &Stats, function_name: &str, timestamp_ms: i64) -> String {
    let metrics = [
        ("RecordsIn", "Count", stats.records_in as f64),
        ("RecordsOk", "Count", stats.records_ok as f64),
        ("RecordsDropped", "Count", stats.records_dropped as f64),
        ("RecordsFailed", "Count", stats.records_failed as f64),
        ("Datums", "Count", stats.datums as f64),
        ("DuplicatesRemoved", "Count", stats.duplicates_removed as f64),
        ("BytesIn", "Bytes", stats.bytes_in as f64),
        ("BytesOut", "Bytes", stats.bytes_out as f64),
        ("DurationMs", "Milliseconds", stats.duration.as_secs_f64() * 1000.0),
    ];
    let mut doc = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        },
        "FunctionName": function_name,
    });
    for (name, _, value) in metrics {
        doc[name] = json!(value);
    }
    // The counts by stream format travel as properties of the document, not as metrics: each
    // metric is a billed custom metric, and these are for Logs Insights when a format misbehaves
    // (`filter RecordsOpenTelemetry > 0`), not for alarms.
    for (name, value) in [
        ("RecordsJson", stats.records_json),
        ("RecordsOpenTelemetry", stats.records_opentelemetry),
        ("DatumsOpenTelemetry1_0", stats.datums_opentelemetry_1_0),
        ("DatumsOpenTelemetry0_7", stats.datums_opentelemetry_0_7),
    ] {
        doc[name] = json!(value);
    }
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_declares_every_metric_it_carries() {
        let stats = Stats { records_in: 3, records_ok: 1, records_dropped: 1, records_failed: 1, datums: 7, ..Stats::default() };
        let doc: serde_json::Value = serde_json::from_str(&emf_document(&stats, "cwms-transform", 1_700_000_000_000)).unwrap();
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "cwms");
        assert_eq!(directive["Dimensions"], json!([["FunctionName"]]));
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(doc[name].is_number(), "{name} declared but not set");
        }
        assert_eq!((doc["RecordsIn"].as_f64(), doc["RecordsFailed"].as_f64(), doc["Datums"].as_f64()), (Some(3.0), Some(1.0), Some(7.0)));
        assert_eq!(doc["FunctionName"], "cwms-transform");
        // The counts by format are properties, not metrics.
        assert_eq!(doc["RecordsOpenTelemetry"], 0);
        assert!(directive["Metrics"].as_array().unwrap().iter().all(|m| !m["Name"].as_str().unwrap().contains("OpenTelemetry")));
    }
}

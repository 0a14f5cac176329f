//! Every file of the shared conformance corpus (records captured or written by other projects),
//! decoded with the expectations listed here. A file without an expectation fails the test, so a
//! new corpus file cannot go unnoticed.
//!
//! The corpus lives outside the repository (`../shared/conformance/` beside the checkout);
//! `CWMS_CONFORMANCE_DIR` points elsewhere.

use std::path::PathBuf;

use cwms_decode::{LineProblem, decode_line, decode_lines};
use cwms_model::OwnedDatum;

fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("CWMS_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"));
    assert!(dir.is_dir(), "conformance corpus not found at {} (set CWMS_CONFORMANCE_DIR)", dir.display());
    dir
}

fn read(name: &str) -> Vec<u8> {
    let path = corpus_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Wire lines of an NDJSON file.
fn ndjson(name: &str) -> (Vec<OwnedDatum>, Vec<(usize, LineProblem)>) {
    let bytes = read(name);
    let decoded = decode_lines(&bytes);
    (decoded.datums.into_iter().map(|d| d.into_owned()).collect(), decoded.errors.into_iter().map(|e| (e.line, e.problem)).collect())
}

/// The objects of a pretty-printed `.json` file (one object, or an array used as a test
/// convenience), each re-serialized compactly as the one line it would be on the wire.
fn pretty(name: &str) -> Vec<Result<OwnedDatum, LineProblem>> {
    let value: serde_json::Value = serde_json::from_slice(&read(name)).unwrap();
    let objects = match value {
        serde_json::Value::Array(items) => items,
        other => vec![other],
    };
    objects
        .iter()
        .map(|o| {
            let line = serde_json::to_vec(o).unwrap();
            decode_line(&line).map(|d| d.into_owned())
        })
        .collect()
}

fn stats(d: &OwnedDatum) -> Vec<(String, f64)> {
    d.stats.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn names(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

type Check = fn();

const EXPECTATIONS: &[(&str, Check)] = &[
    ("README.md", || {}),
    ("aws-docs/json_format_example_with_extended_stats.jsonl", || {
        let (datums, errors) = ndjson("aws-docs/json_format_example_with_extended_stats.jsonl");
        assert!(errors.is_empty(), "{errors:?}");
        let [d] = datums.as_slice() else { panic!("one datum expected: {datums:?}") };
        assert_eq!((d.namespace.as_ref(), d.metric_name.as_ref(), d.timestamp_ms), ("AWS/EC2", "DiskWriteOps", 1611929698000));
        assert_eq!((d.count, d.sum, d.max, d.min), (3.0, 20.0, 18.0, 0.0));
        assert_eq!(stats(d), names(&[("p99", 17.56), ("p99.9", 17.8764), ("TM(25%:75%)", 16.43)]));
        assert_eq!(d.unit, "Seconds");
        assert_eq!(d.metric_stream_name.as_deref(), Some("MyMetricStream"));
    }),
    ("otel-contrib/ext_json_invalid_metric.json", || {
        let results = pretty("otel-contrib/ext_json_invalid_metric.json");
        assert_eq!(results, vec![Err(LineProblem::MissingField("value"))]);
    }),
    ("otel-contrib/ext_json_multiple_metrics.json", || {
        let results = pretty("otel-contrib/ext_json_multiple_metrics.json");
        assert_eq!(results.len(), 4);
        assert_eq!(results[0].as_ref().unwrap().count, 3.0);
        assert_eq!(results[1], Err(LineProblem::MissingField("value")));
        assert_eq!(results[2].as_ref().unwrap().timestamp_ms, 1633329698000);
        // A datum without `unit` is CloudWatch's unit `None`, not an error.
        let no_unit = results[3].as_ref().unwrap();
        assert_eq!((no_unit.metric_name.as_ref(), no_unit.unit.as_ref()), ("WithNoUnit", "None"));
    }),
    ("otel-contrib/ext_json_valid_metric.json", || {
        let results = pretty("otel-contrib/ext_json_valid_metric.json");
        let d = results[0].as_ref().unwrap();
        // The timestamp is not on a minute boundary and is kept as streamed.
        assert_eq!(d.timestamp_ms % 60_000, 58_000);
        assert_eq!(d.dimensions.len(), 1);
        assert!(d.stats.is_empty());
    }),
    ("otel-contrib/ext_json_valid_metric_with_percentiles.json", || {
        let d = pretty("otel-contrib/ext_json_valid_metric_with_percentiles.json").remove(0).unwrap();
        assert_eq!(stats(&d), names(&[("p50", 10.0), ("p90", 16.0), ("p99", 17.0)]));
    }),
    ("otel-contrib/ext_json_valid_metric_with_unsupported_stats.json", || {
        let d = pretty("otel-contrib/ext_json_valid_metric_with_unsupported_stats.json").remove(0).unwrap();
        assert_eq!(
            stats(&d),
            names(&[
                ("p99", 17.0),
                ("TM(25%:75%)", 16.43),
                ("WM(10%:90%)", 15.5),
                ("TC(0.005:0.030)", 2.5),
                ("TS(80%:)", 19.0),
                ("PR(:300)", 85.0),
                ("IQM", 16.0),
                ("tm99", 15.8),
                ("wm98", 16.2),
            ])
        );
    }),
    ("otel-contrib/ext_opentelemetry1_valid_metric.yaml", || not_json_lines("otel-contrib/ext_opentelemetry1_valid_metric.yaml")),
    ("otel-contrib/receiver_otlpmetricstream_single_record.yaml", || {
        not_json_lines("otel-contrib/receiver_otlpmetricstream_single_record.yaml")
    }),
    ("otel-contrib/pr39687_description_sample_with_percentiles.jsonl", || {
        let (datums, errors) = ndjson("otel-contrib/pr39687_description_sample_with_percentiles.jsonl");
        assert!(errors.is_empty(), "{errors:?}");
        let d = &datums[0];
        // `count` is an integer on the wire and a float in the datum.
        assert_eq!(d.count, 5.0);
        assert_eq!(stats(d).iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["p90", "p95", "p99"]);
        assert_eq!(d.sum, 140.94833333333332);
    }),
    ("otel-contrib/receiver_cwmetricstream_single_record", || {
        let (datums, errors) = ndjson("otel-contrib/receiver_cwmetricstream_single_record");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(datums.len(), 1);
    }),
    ("otel-contrib/receiver_cwmetricstream_multiple_records.EXCERPT", || {
        let (datums, errors) = ndjson("otel-contrib/receiver_cwmetricstream_multiple_records.EXCERPT");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(datums.len(), 12);
        assert!(datums.iter().any(|d| d.dimensions.is_empty() && d.namespace == "AWS/CloudWatch/MetricStreams"));
        let mut minutes: Vec<i64> = datums.iter().map(|d| d.timestamp_ms).collect();
        minutes.sort();
        minutes.dedup();
        assert_eq!(minutes, [1643916600000, 1643916660000, 1643916720000, 1643916780000]);
        let tiny = datums.iter().find(|d| d.metric_name == "VolumeQueueLength").unwrap();
        assert_eq!(tiny.sum, 0.00133333333333333);
    }),
    ("otel-contrib/receiver_cwmetricstream_some_invalid_records.EXCERPT", || {
        let (datums, errors) = ndjson("otel-contrib/receiver_cwmetricstream_some_invalid_records.EXCERPT");
        assert_eq!(errors, (1..=4).map(|line| (line, LineProblem::NotADatum)).collect::<Vec<_>>());
        assert_eq!(datums.len(), 8);
        let usage = datums.iter().find(|d| d.namespace == "AWS/Usage").unwrap();
        assert_eq!(usage.dimensions.len(), 4);
        assert!(datums.iter().any(|d| d.dimensions.is_empty()));
    }),
];

/// OpenTelemetry descriptions in YAML are not metric-stream JSON: no line may decode as a datum.
fn not_json_lines(name: &str) {
    let bytes = read(name);
    let decoded = decode_lines(&bytes);
    assert!(decoded.datums.is_empty());
    assert_eq!(decoded.errors.len(), cwms_decode::lines(&bytes).count(), "every line is reported");
    assert!(decoded.errors.iter().all(|e| matches!(e.problem, LineProblem::Json(_) | LineProblem::NotAnObject(_))));
}

#[test]
fn every_corpus_file_meets_its_expectation() {
    let root = corpus_dir();
    let mut files = Vec::new();
    for dir in [root.clone(), root.join("aws-docs"), root.join("otel-contrib")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                files.push(path.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    files.sort();
    let known: Vec<&str> = EXPECTATIONS.iter().map(|(name, _)| *name).collect();
    let unknown: Vec<&String> = files.iter().filter(|f| !known.contains(&f.as_str())).collect();
    assert!(unknown.is_empty(), "corpus files without an expectation: {unknown:?}");
    for (name, check) in EXPECTATIONS {
        assert!(files.iter().any(|f| f == name), "expected corpus file {name} is missing");
        check();
    }
}

//! The same datums streamed in CloudWatch's three output formats (`json`, `opentelemetry1.0`,
//! `opentelemetry0.7`) give the same transform output, byte for byte, and the same lake, byte for
//! byte: through the transform (`cwms transform` on Firehose events, `cwms run --stream-format`),
//! and compacted straight from a Quick S3 setup's raw objects (records concatenated, gzip or not,
//! no transform). One lake is also checked against the generator's own datums by DuckDB and
//! pyarrow, so "the same" is the right lake, not the same mistake three times.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use cwms_tests::util::{self, describe, files, lake_files, python};

const START: &str = "2026-01-15T10:30:00Z";
const FORMATS: [&str; 3] = ["json", "opentelemetry1.0", "opentelemetry0.7"];

fn cwms(args: &[&str]) -> Output {
    let output = util::cwms(args, &[]);
    assert!(output.status.success(), "cwms {args:?}: {}", describe(&output));
    output
}

/// The same sample in `format`: 60 series over 45 minutes with duplicates, late datums, gzip-
/// wrapped and malformed records; percentiles only, which is all an OpenTelemetry stream sends.
fn generate(format: &str, shape: &[&str], out: &Path) -> String {
    let mut args = vec!["generate", "--stream-format", format, "--no-trimmed-means", "--series", "60", "--minutes", "45"];
    args.extend(["--start", START, "--duplicates", "0.03", "--late", "0.05", "--seed", "13", "--out", out.to_str().unwrap()]);
    args.extend(shape);
    String::from_utf8_lossy(&cwms(&args).stderr).into_owned()
}

#[test]
fn the_three_formats_give_the_same_transform_output() {
    let dir = tempfile::tempdir().unwrap();
    let mut responses: BTreeMap<&str, Vec<Vec<u8>>> = BTreeMap::new();
    for format in FORMATS {
        let events = dir.path().join(format!("events-{format}"));
        // One event holds every record (events are cut by size, and the formats' records differ
        // in size): the whole response is compared.
        let shape = ["--format", "firehose-event", "--max-event-bytes", "6291456", "--gzip", "0.1", "--malformed", "0.05"];
        let summary = generate(format, &shape, &events);
        assert!(summary.contains(&format!(" {format} records (")), "{summary}");
        let names: Vec<String> = files(&events).into_keys().collect();
        assert_eq!(names, ["event-0001.json"]);
        for name in names {
            let path = events.join(&name);
            let output = cwms(&["transform", "--stats", "--event", path.to_str().unwrap()]);
            let stats = String::from_utf8_lossy(&output.stderr);
            // The records were read in their own format.
            let expected = if format == "json" { ", 0 opentelemetry records" } else { " 0 json records, " };
            assert!(stats.contains(expected), "{format} {name}: {stats}");
            responses.entry(format).or_default().push(output.stdout);
        }
    }
    let json = &responses["json"];
    let text = String::from_utf8_lossy(&json.concat()).into_owned();
    assert!(text.contains("\"result\":\"Ok\"") && text.contains("\"result\":\"ProcessingFailed\""), "{text:.300}");
    assert!(text.matches("\"recordId\"").count() > 50, "{text:.300}");
    for format in &FORMATS[1..] {
        assert!(responses[format] == *json, "{format}: the response differs from JSON's");
    }
}

#[test]
fn the_three_formats_give_the_same_lake_through_the_transform() {
    let dir = tempfile::tempdir().unwrap();
    let mut lakes = Vec::new();
    for format in FORMATS {
        let out = dir.path().join(format!("run-{format}"));
        let args = ["run", "--out", out.to_str().unwrap(), "--series", "60", "--minutes", "45", "--start", START];
        let run = cwms(&[&args[..], &["--malformed", "0.03", "--stream-format", format, "--no-trimmed-means"]].concat());
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(stdout.contains("2700 datums, in ") && stdout.contains(&format!("Firehose records ({format})")), "{stdout}");
        lakes.push((format, lake_files(&out.join("lake")), files(&out.join("raw")), out));
    }
    let (_, json_lake, json_raw, _) = &lakes[0];
    assert!(json_lake.keys().any(|k| k.starts_with("metrics_1m/")) && json_lake.keys().any(|k| k.starts_with("metrics_1h/")));
    for (format, lake, raw, _) in &lakes[1..] {
        assert_eq!(lake.keys().collect::<Vec<_>>(), json_lake.keys().collect::<Vec<_>>(), "{format}: lake objects");
        assert!(lake == json_lake, "{format}: the lake differs from JSON's");
        // The transform's answers, as Firehose wrote them to raw/, are the same bytes too.
        assert!(raw == json_raw, "{format}: raw/ differs from JSON's");
    }

    // And the lake is right: every generated datum, exactly (DuckDB and pyarrow against the
    // generator's own NDJSON, with no duplicates or late datums).
    let truth = dir.path().join("truth");
    std::fs::create_dir(&truth).unwrap();
    let ndjson = truth.join("datums.ndjson");
    let mut args = vec!["generate", "--format", "ndjson", "--no-trimmed-means", "--series", "60", "--minutes", "45", "--start", START];
    args.extend(["--duplicates", "0", "--late", "0", "--out", ndjson.to_str().unwrap()]);
    cwms(&args);
    let (_, _, _, otel_out) = &lakes[1];
    let summary =
        python("tests/python/check_lake.py", &[truth.to_str().unwrap(), otel_out.join("lake").to_str().unwrap(), "--expect-failed", "0"]);
    assert!(summary.contains("2700 minute rows"), "{summary}");
}

/// A Quick S3 setup: Firehose writes an OpenTelemetry stream's records to S3 as they come, no
/// transform, gzip or not; `cwms compact` reads those objects straight into the lake JSON gives.
#[test]
fn quick_s3_raw_objects_in_every_format_compact_into_the_same_lake() {
    let dir = tempfile::tempdir().unwrap();
    let mut lakes = Vec::new();
    for format in FORMATS {
        for compression in ["gzip", "none"] {
            let out = dir.path().join(format!("quick-{format}-{compression}"));
            // Bad data points among good ones: quarantined by message (OpenTelemetry) or by line (JSON).
            let shape = ["--format", "raw-folder", "--raw-compression", compression, "--malformed", "0.1"];
            generate(format, &[&shape[..], &["--malformations", "missing-value,non-number-statistic"]].concat(), &out);
            let raw = out.join("raw");
            let objects = files(&raw);
            assert!(objects.keys().all(|k| k.ends_with(".gz") == (compression == "gzip")), "{:?}", objects.keys());
            let lake = out.join("lake");
            let compact = cwms(&["compact", "--raw", raw.to_str().unwrap(), "--lake", lake.to_str().unwrap(), "--json"]);
            let report: serde_json::Value = serde_json::from_slice(&compact.stdout).unwrap();
            assert_eq!(report["objects_failed"].as_array().map(Vec::len), Some(0), "{format} {compression}: {report:#}");
            assert!(report["lines_rejected"].as_u64().unwrap() > 0, "{format} {compression}: {report:#}");
            lakes.push((format!("{format} {compression}"), lake_files(&lake)));
        }
    }
    let (_, json) = &lakes[0];
    assert!(json.keys().any(|k| k.starts_with("metrics_1m/")), "{:?}", json.keys());
    for (name, lake) in &lakes[1..] {
        assert!(lake == json, "{name}: the lake differs from JSON's (gzip)");
    }
}

//! `cwms run` in an empty folder: the lake it makes holds every namespace and exactly the
//! generated numbers (checked by DuckDB and pyarrow against the generator's own NDJSON), every
//! malformed record is in errors/ with its original bytes, and the Athena cookbook answers
//! correctly over it.

use std::path::Path;
use std::process::Output;

use base64::Engine as _;
use cwms_tests::util::{self, describe, files, python};

const START: &str = "2026-01-15T10:30:00Z";

fn cwms(args: &[&str]) -> Output {
    util::cwms(args, &[])
}

fn error_documents(dir: &Path) -> Vec<serde_json::Value> {
    let mut documents = Vec::new();
    for bytes in files(dir).values() {
        let plain = cwms_decode::decompress(bytes, 1 << 30).unwrap();
        for (_, line) in cwms_decode::lines(&plain) {
            documents.push(serde_json::from_slice(line).unwrap());
        }
    }
    documents
}

#[test]
fn run_makes_a_lake_with_exactly_the_generated_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let output =
        cwms(&["run", "--out", out.to_str().unwrap(), "--series", "60", "--minutes", "45", "--start", START, "--malformed", "0.05"]);
    assert!(output.status.success(), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("60 series x 45 minutes = 2700 datums"), "{stdout}");
    assert!(stdout.contains("duckdb -c") && stdout.contains("FROM metrics_1m"), "example queries are printed: {stdout}");
    // The cookbook's average (sum of sums over sum of counts), never an average of averages.
    assert!(stdout.contains(r#"sum("sum") / sum("count")"#) && !stdout.contains(r#"avg("sum" / "count")"#), "{stdout}");

    // The truth: the same datums, as the generator's plain NDJSON (no duplicates, none late).
    let truth = dir.path().join("truth");
    std::fs::create_dir(&truth).unwrap();
    let ndjson = truth.join("datums.ndjson");
    let generated = cwms(&[
        "generate",
        "--format",
        "ndjson",
        "--series",
        "60",
        "--minutes",
        "45",
        "--start",
        START,
        "--duplicates",
        "0",
        "--late",
        "0",
        "--out",
        ndjson.to_str().unwrap(),
    ]);
    assert!(generated.status.success(), "{}", describe(&generated));
    let summary =
        python("tests/python/check_lake.py", &[truth.to_str().unwrap(), out.join("lake").to_str().unwrap(), "--expect-failed", "0"]);
    assert!(summary.contains("2700 minute rows"), "{summary}");

    // Every malformed record is in errors/, with its original bytes, and none decodes.
    let failed: u64 = stdout
        .split(" failed (")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no failed count in {stdout}"));
    assert!(failed > 0, "--malformed 0.05 made no malformed record: {stdout}");
    let documents = error_documents(&out.join("errors/processing-failed"));
    assert_eq!(documents.len() as u64, failed);
    for document in &documents {
        assert_eq!(document["errorCode"], "Lambda.ProcessingFailedStatus");
        let raw = base64::engine::general_purpose::STANDARD.decode(document["rawData"].as_str().unwrap()).unwrap();
        assert!(!raw.is_empty());
        let decoded = cwms_decode::decompress(&raw, 1 << 30).map(|plain| cwms_decode::decode_lines(&plain).errors.len());
        assert!(!matches!(decoded, Ok(0)), "an error document holds a record that decodes: {document}");
    }

    // The analysts' cookbook answers correctly over this lake (and its raw/ zone): every check
    // runs, since the lake has a raw zone and additional statistics; a skipped one proves nothing.
    let cookbook = python("tests/sql/check_cookbook.py", &[out.to_str().unwrap()]);
    let last = cookbook.lines().last().unwrap_or_default();
    let passed = last.strip_suffix(" passed, 0 failed").and_then(|n| n.parse::<usize>().ok());
    assert!(passed.is_some_and(|n| n > 0), "not every check ran and passed: {last}\n{cookbook}");
    assert!(!cookbook.lines().any(|l| l.starts_with("SKIP") || l.starts_with("FAIL")), "{cookbook}");

    // Running again in the same folder converges: the same datums arrive again (Firehose
    // delivers at least once), are merged as duplicates, and every lake file keeps its bytes.
    let tables = |lake: &Path| -> std::collections::BTreeMap<String, Vec<u8>> {
        files(lake).into_iter().filter(|(name, _)| name.ends_with(".parquet")).collect()
    };
    let before = tables(&out.join("lake"));
    assert!(before.len() > 3, "{:?}", before.keys());
    let again =
        cwms(&["run", "--out", out.to_str().unwrap(), "--series", "60", "--minutes", "45", "--start", START, "--malformed", "0.05"]);
    assert!(again.status.success(), "{}", describe(&again));
    let after = tables(&out.join("lake"));
    assert_eq!(after.keys().collect::<Vec<_>>(), before.keys().collect::<Vec<_>>(), "a rerun changed the lake's files");
    for (name, bytes) in &before {
        assert!(after[name] == *bytes, "a rerun changed the bytes of {name}");
    }
}

#[test]
fn run_rejects_bad_arguments() {
    for (args, needle) in [
        (vec!["run", "--series", "0"], "--series"),
        (vec!["run", "--malformed", "2"], "--malformed"),
        (vec!["run", "--start", "yesterday"], "--start"),
        (vec!["run", "--out", "/proc/cwms-cannot-write-here"], "/proc/cwms-cannot-write-here"),
    ] {
        let output = cwms(&args);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

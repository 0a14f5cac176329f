//! `cwms generate` end to end: the built binary, real files, and the outputs read back.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};

const START: &str = "2026-01-15T10:00:00Z";

fn cwms(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cwms")).args(args).env_remove("RUST_LOG").output().expect("the cwms binary runs")
}

fn generate(args: &[&str]) -> Output {
    let mut all = vec!["generate", "--start", START];
    all.extend_from_slice(args);
    let out = cwms(&all);
    assert!(out.status.success(), "cwms {all:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `dir`, as paths relative to it, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn ndjson_to_stdout_is_reproducible_and_decodes() {
    let flags = ["--series", "25", "--minutes", "4", "--duplicates", "0", "--late", "0"];
    let first = generate(&flags);
    let second = generate(&flags);
    assert_eq!(first.stdout, second.stdout, "same flags, same bytes");
    let decoded = cwms_decode::decode_lines(&first.stdout);
    assert!(decoded.is_clean(), "{:?}", decoded.errors.first());
    assert_eq!(decoded.datums.len(), 100);
    assert!(decoded.datums.iter().all(|d| (1_768_471_200_000..1_768_471_440_000).contains(&d.timestamp_ms)));
    assert!(stderr(&first).contains("25 series x 4 minutes from 2026-01-15T10:00:00Z (seed 1)"), "{}", stderr(&first));

    let other_seed = generate(&[&flags[..], &["--seed", "2"]].concat());
    assert_ne!(first.stdout, other_seed.stdout);
}

#[test]
fn ndjson_to_a_file_with_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/sample.ndjson");
    generate(&["--series", "30", "--minutes", "20", "--malformed", "10%", "--out", path.to_str().unwrap()]);
    let text = std::fs::read(&path).unwrap();
    let decoded = cwms_decode::decode_lines(&text);
    assert!(decoded.datums.len() >= 600, "{}", decoded.datums.len());
    assert!(!decoded.errors.is_empty(), "malformed records put bad lines in the stream");
}

#[test]
fn firehose_events_go_through_the_transform() {
    let dir = tempfile::tempdir().unwrap();
    let events = dir.path().join("events");
    let out = generate(&[
        "--series",
        "150",
        "--minutes",
        "10",
        "--malformed",
        "0.1",
        "--gzip",
        "0.2",
        "--format",
        "firehose-event",
        "--max-event-bytes",
        "300000",
        "--out",
        events.to_str().unwrap(),
    ]);
    let names = files(&events);
    assert!(names.len() > 1 && names[0] == "event-0001.json", "{names:?}");
    let (mut ok, mut failed) = (0, 0);
    for name in &names {
        let path = events.join(name);
        assert!(std::fs::metadata(&path).unwrap().len() <= 300_000);
        let response = cwms(&["transform", "--event", path.to_str().unwrap()]);
        assert!(response.status.success(), "{}", stderr(&response));
        let response: serde_json::Value = serde_json::from_slice(&response.stdout).unwrap();
        for record in response["records"].as_array().unwrap() {
            match record["result"].as_str().unwrap() {
                "Ok" => ok += 1,
                "ProcessingFailed" => failed += 1,
                other => panic!("unexpected result {other}"),
            }
        }
    }
    let summary = stderr(&out);
    assert!(summary.contains(&format!("{} json records ({failed} malformed)", ok + failed)), "{summary}");
    assert!(failed > 0 && ok > failed * 4, "ok {ok}, failed {failed}");

    // The same folder again: nothing is overwritten.
    let again = cwms(&["generate", "--start", START, "--format", "firehose-event", "--out", events.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).starts_with("cwms: error: ") && stderr(&again).contains("event-0001.json already exists"), "{}", stderr(&again));
}

#[test]
fn one_event_to_a_json_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("event.json");
    generate(&["--series", "10", "--minutes", "3", "--format", "firehose-event", "--out", path.to_str().unwrap()]);
    let event: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(event["deliveryStreamArn"], "arn:aws:firehose:us-east-1:123456789012:deliverystream/cwms-sample-stream");
    assert!(!event["records"].as_array().unwrap().is_empty());

    let too_many = cwms(&["generate", "--format", "firehose-event", "--max-event-bytes", "200000", "--out", path.to_str().unwrap()]);
    assert_eq!(too_many.status.code(), Some(1));
    assert!(stderr(&too_many).contains("give --out a folder, add --one-event"), "{}", stderr(&too_many));

    // One full-size event on standard output, as load tests want it.
    let one = generate(&["--format", "firehose-event", "--max-event-bytes", "1000000", "--one-event"]);
    assert!(one.stdout.len() <= 1_000_001 && one.stdout.len() > 900_000, "{}", one.stdout.len());
    let event: serde_json::Value = serde_json::from_slice(&one.stdout).unwrap();
    let records = event["records"].as_array().unwrap().len();
    assert!(stderr(&one).contains(&format!("1 event of {records} records to standard output")), "{}", stderr(&one));
}

#[test]
fn raw_folder_looks_like_firehose_s3() {
    let dir = tempfile::tempdir().unwrap();
    generate(&["--series", "40", "--minutes", "75", "--format", "raw-folder", "--out", dir.path().to_str().unwrap()]);
    let names = files(dir.path());
    assert!(names.len() >= 14, "five-minute buffers over 75 minutes: {names:?}");
    let mut lines = 0;
    for name in &names {
        let parts: Vec<&str> = name.split('/').collect();
        assert_eq!(parts[..2], ["raw", "2026"], "{name}");
        assert!(["10", "11"].contains(&parts[4]), "by arrival hour: {name}");
        assert!(parts[5].starts_with(&format!("cwms-sample-stream-1-2026-01-15-{}-", parts[4])) && parts[5].ends_with(".gz"), "{name}");
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(dir.path().join(name)).unwrap()).read_to_end(&mut plain).unwrap();
        let decoded = cwms_decode::decode_lines(&plain);
        assert!(decoded.is_clean());
        lines += decoded.datums.len();
    }
    assert!(lines >= 40 * 75, "{lines}");
}

#[test]
fn bad_arguments_fail_clearly() {
    let check = |args: &[&str], code: i32, message: &str| {
        let out = cwms(args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
        assert!(out.stdout.is_empty(), "{args:?}: nothing on standard output");
    };
    // Flag syntax and ranges are clap's (exit 2); the rest is ours (exit 1).
    check(&["generate", "--duplicates", "2"], 2, "2 is not between 0 and 1");
    check(&["generate", "--start", "2026-01-15T10:00:30Z"], 2, "is not a whole minute");
    check(&["generate", "--namespaces", "AWS/S3"], 1, "cwms: error: invalid arguments: unknown namespace \"AWS/S3\"");
    check(&["generate", "--format", "raw-folder"], 1, "cwms: error: --out is required for --format raw-folder");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let inside = file.join("out.ndjson");
    check(&["generate", "--minutes", "1", "--out", inside.to_str().unwrap()], 1, "cwms: error: creating folder");
    check(&["generate", "--minutes", "1", "--format", "raw-folder", "--out", file.to_str().unwrap()], 1, "exists and is not a folder");
}

#[test]
fn help_explains_every_flag() {
    let out = cwms(&["generate", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--series",
        "--minutes",
        "--start",
        "--namespaces",
        "--seed",
        "--duplicates",
        "--late",
        "--malformed",
        "--malformations",
        "--gzip",
        "--percentiles",
        "--format",
        "--out",
        "--max-event-bytes",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    assert!(help.contains("Examples:"));
}

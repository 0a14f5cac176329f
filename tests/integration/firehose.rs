//! `cwms replay` and `cwms redrive` (the built `target/debug/cwms`) against moto's Firehose.
//!
//! moto's Firehose writes every `PutRecordBatch` call straight into its own S3 as one object,
//! the call's records concatenated (no buffering, no gzip, no Lambda; pinned by
//! `moto_firehose_quirks_are_as_documented`), so reading the bucket back shows exactly what
//! reached the stream, and each test compares it with its input as multisets: every line (or
//! record) arrived exactly once and intact.
//!
//! Between cwms and moto sits [`FlakyFirehose`]: the fault proxy of `cwms_tests::proxy` (a small
//! HTTP proxy on a real socket) with a plan for `PutRecordBatch`. It records every call cwms
//! makes (so the tests see the call limits and which entries were resent) and, on the calls a
//! test chooses, refuses some entries (a 200 answer with `FailedPutCount` and
//! `ErrorCode`s, the refused records never reaching moto) or the whole call (HTTP 400
//! `ThrottlingException`, 503 `ServiceUnavailableException`), as a throttled Firehose does. moto
//! does not check SigV4 signatures, so the proxy may rewrite a call's body.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use aws_sdk_firehose::primitives::Blob;
use aws_sdk_firehose::types::{CompressionFormat, DeliveryStreamType, ExtendedS3DestinationConfiguration, Record};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cwms_tests::lambda_emulator::built_binary;
use cwms_tests::proxy::{FaultProxy, Reply, Request, Response, Upstream};
use cwms_tests::servers::{MotoServer, REGION};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

/// The bucket the delivery stream writes to.
const LAKE_BUCKET: &str = "cwms-lake";
/// The delivery stream every test sends to.
const STREAM: &str = "metrics-to-lake";
/// Firehose's limits, restated here so the tests do not take them from the code under test.
const MAX_RECORD_BYTES: usize = 1_024_000;
const MAX_CALL_RECORDS: usize = 500;
const MAX_CALL_BYTES: usize = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_packs_datums_into_records_within_the_call_limits() {
    let moto = lake_stream().await;
    let proxy = FlakyFirehose::start(&moto.endpoint, |_, _| Fault::Pass);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");

    // 10,000 small datums in a plain file, with blank lines and a CRLF ending among them.
    let small: Vec<String> = (0..10_000).map(|i| datum(i, 0)).collect();
    let mut text = String::new();
    for (i, line) in small.iter().enumerate() {
        text.push_str(line);
        text.push_str(if i == 17 { "\r\n" } else { "\n" });
        if i % 97 == 0 {
            text.push_str("\n   \n");
        }
    }
    write(&input.join("a/small.ndjson"), text.as_bytes());
    // Nine datums of about 700 KB each, gzip, in a file whose name says nothing: 6.3 MB that
    // cannot fit one 4 MiB call.
    let big: Vec<String> = (0..9).map(|i| datum(100_000 + i, 700_000)).collect();
    write(&input.join("b/c/big"), &gzip(big.join("\n").as_bytes()));
    // And what a real stream carries: the raw folder `cwms generate` writes (gzip objects).
    let generated = dir.path().join("generated");
    let run = cwms_offline(
        &["generate", "--format", "raw-folder", "--series", "60", "--minutes", "20", "--start", "2026-11-26T07:00:00Z"],
        &generated,
    );
    assert!(run.success, "{run}");
    let generated_lines = lines_below(&generated.join("raw"));
    assert!(generated_lines.values().sum::<usize>() >= 1_200, "{generated_lines:?}");

    let run = cwms(
        &proxy.endpoint,
        &[os("replay"), os("--stream"), os(STREAM), os("--record-bytes"), os("1500"), input.clone().into(), generated.join("raw").into()],
    )
    .await;
    assert!(run.success, "{run}");

    let calls = proxy.calls();
    check_call_limits(&calls);
    let records: Vec<&Vec<u8>> = calls.iter().flat_map(|c| &c.received).collect();
    assert!(records.len() >= 2_000, "{} records", records.len());
    assert!(calls.iter().any(|c| c.received.len() == MAX_CALL_RECORDS), "no call reached the 500-record limit");
    let calls_with_big_records = calls.iter().filter(|c| c.received.iter().any(|r| r.len() > 600_000)).count();
    assert!(calls_with_big_records >= 2, "6.3 MB of records cannot travel in one call");
    for record in &records {
        assert!(record.ends_with(b"\n"), "a record ends with a whole line");
        let body = &record[..record.len() - 1];
        assert!(!body.split(|&b| b == b'\n').any(|line| line.iter().all(u8::is_ascii_whitespace)), "blank lines are not sent");
        assert!(!record.contains(&b'\r'), "a CRLF line ending is sent as LF");
        let lines = record.iter().filter(|&&b| b == b'\n').count();
        assert!(record.len() <= 1500 || lines == 1, "a record over --record-bytes holds one line");
    }
    let line_count = small.len() + big.len() + generated_lines.values().sum::<usize>();
    assert!(records.len() * 3 < line_count, "lines are packed: {} records for {line_count} lines", records.len());

    let mut expected = count_lines(small.iter().chain(&big).map(String::as_bytes));
    for (line, n) in generated_lines {
        *expected.entry(line).or_default() += n;
    }
    let objects = delivered(&moto).await;
    assert_eq!(objects.len(), calls.len(), "moto writes one object per call");
    assert_lines_eq(&count_lines_in(&objects), &expected);
    assert!(
        run.stdout.contains(&format!("sent {} records", records.len()))
            && run.stdout.contains(&format!("in {} PutRecordBatch calls", calls.len())),
        "{run}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_resends_only_the_entries_firehose_refused() {
    let moto = lake_stream().await;
    let proxy = FlakyFirehose::start(&moto.endpoint, |call, records| match call {
        1 => Fault::FailEntries(vec![0, 2, 5, records - 1]),
        2 => Fault::Reject { status: 400, code: "ThrottlingException" },
        3 => Fault::Reject { status: 503, code: "ServiceUnavailableException" },
        4 => Fault::FailEntries((0..records).collect()),
        5 => Fault::FailEntries(vec![1]),
        _ => Fault::Pass,
    });
    let dir = tempfile::tempdir().unwrap();
    let datums: Vec<String> = (0..3_000).map(|i| datum(i, 0)).collect();
    let file = dir.path().join("datums.ndjson");
    write(&file, datums.join("\n").as_bytes());

    let run = cwms(
        &proxy.endpoint,
        &[os("replay"), os("--stream"), os(STREAM), os("--record-bytes"), os("1000"), os("--concurrency"), os("1"), file.into()],
    )
    .await;
    assert!(run.success, "{run}");

    let calls = proxy.calls();
    check_call_limits(&calls);
    let first = &calls[0].received;
    assert_eq!(first.len(), MAX_CALL_RECORDS);
    let refused = |call: &Call, entries: &[usize]| entries.iter().map(|&i| call.received[i].clone()).collect::<Vec<_>>();
    // The retry carries exactly the refused entries, in order; the SDK resends a rejected call
    // whole (calls 3 and 4), and the next retry carries only what call 5 refused.
    let retried = refused(&calls[0], &[0, 2, 5, MAX_CALL_RECORDS - 1]);
    assert_eq!(calls[1].received, retried);
    assert_eq!(calls[2].received, retried);
    assert_eq!(calls[3].received, retried);
    assert_eq!(calls[4].received, retried);
    assert_eq!(calls[5].received, refused(&calls[4], &[1]));
    assert_eq!(calls[6].received.len(), MAX_CALL_RECORDS, "then the next batch");
    // 4 + 4 + 1 records resent by cwms itself (the SDK's resends of whole calls are its own).
    assert!(run.stdout.contains("9 records resent in 3 retry calls"), "{run}");

    let forwarded = count_lines(calls.iter().flat_map(|c| &c.forwarded).map(Vec::as_slice));
    assert!(forwarded.values().all(|&n| n == 1), "no record reached moto twice");
    assert_lines_eq(&count_lines_in(&delivered(&moto).await), &count_lines(datums.iter().map(String::as_bytes)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_fails_naming_the_records_it_could_not_deliver() {
    let moto = lake_stream().await;
    // Every call refuses its first entry, so the first record of each batch never goes through.
    let proxy = FlakyFirehose::start(&moto.endpoint, |_, _| Fault::FailEntries(vec![0]));
    let dir = tempfile::tempdir().unwrap();
    let datums: Vec<String> = (0..600).map(|i| datum(i, 0)).collect();
    let file = dir.path().join("datums.ndjson");
    write(&file, datums.join("\n").as_bytes());

    // --record-bytes 1: every line travels alone, so 600 records make two batches.
    let run = cwms(
        &proxy.endpoint,
        &[
            os("replay"),
            os("--stream"),
            os(STREAM),
            os("--record-bytes"),
            os("1"),
            os("--max-attempts"),
            os("3"),
            os("--concurrency"),
            os("1"),
            file.into(),
        ],
    )
    .await;
    assert!(!run.success, "{run}");
    assert!(run.stderr.contains("2 records ("), "{run}");
    assert!(run.stderr.contains(&format!("were not delivered to Firehose stream {STREAM}")), "{run}");
    assert!(run.stderr.contains("ServiceUnavailableException"), "{run}");

    let calls = proxy.calls();
    let stuck = [datums[0].clone() + "\n", datums[500].clone() + "\n"];
    assert_eq!(calls.len(), 6, "each batch: one call and two retries of the stuck record");
    for (retry, record) in [(1, &stuck[0]), (2, &stuck[0]), (4, &stuck[1]), (5, &stuck[1])] {
        assert_eq!(calls[retry].received, [record.as_bytes()], "call {retry}");
    }
    let mut expected = count_lines(datums.iter().map(String::as_bytes));
    for record in &stuck {
        expected.remove(record.trim_end().as_bytes());
    }
    assert_lines_eq(&count_lines_in(&delivered(&moto).await), &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_refuses_a_line_too_long_for_one_record_and_sends_the_other_files() {
    let moto = lake_stream().await;
    let dir = tempfile::tempdir().unwrap();
    // A line that, with its newline, is exactly Firehose's record limit travels; one byte more
    // does not, and its whole file is held back.
    let at_limit = datum_of_len(0, MAX_RECORD_BYTES - 1);
    let good: Vec<String> = vec![datum(1, 0), at_limit, datum(2, 0)];
    let bad = [datum(3, 0), String::new(), datum_of_len(4, MAX_RECORD_BYTES), datum(5, 0)];
    write(&dir.path().join("1-good.ndjson"), good.join("\n").as_bytes());
    write(&dir.path().join("2-bad.ndjson"), bad.join("\n").as_bytes());

    let run = cwms(&moto.endpoint, &[os("replay"), os("--stream"), os(STREAM), dir.path().into()]).await;
    assert!(!run.success, "{run}");
    let bad_path = dir.path().join("2-bad.ndjson");
    assert!(run.stderr.contains(&format!("{}: line 3 is 1024001 bytes", bad_path.display())), "{run}");
    assert!(run.stderr.contains("1 files could not be sent"), "{run}");
    assert_lines_eq(&count_lines_in(&delivered(&moto).await), &count_lines(good.iter().map(String::as_bytes)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_dry_run_sends_nothing() {
    let moto = lake_stream().await;
    let proxy = FlakyFirehose::start(&moto.endpoint, |_, _| Fault::Pass);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("datums.ndjson.gz");
    let datums: Vec<String> = (0..1_200).map(|i| datum(i, 0)).collect();
    write(&file, &gzip(datums.join("\n").as_bytes()));

    let run = cwms(
        &proxy.endpoint,
        &[os("replay"), os("--stream"), os(STREAM), os("--record-bytes"), os("1"), os("--dry-run"), file.clone().into()],
    )
    .await;
    assert!(run.success, "{run}");
    let bytes: usize = datums.iter().map(|d| d.len() + 1).sum();
    assert!(run.stdout.contains(&format!("{}: 1200 lines in 1200 records ({bytes} bytes)", file.display())), "{run}");
    assert!(run.stdout.contains("in 3 PutRecordBatch calls"), "{run}");
    assert!(proxy.calls().is_empty(), "a dry run makes no call");
    assert!(delivered(&moto).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_to_a_missing_stream_stops_at_the_first_call() {
    let moto = lake_stream().await;
    let proxy = FlakyFirehose::start(&moto.endpoint, |_, _| Fault::Pass);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("datums.ndjson");
    write(&file, (0..1_500).map(|i| datum(i, 0)).collect::<Vec<_>>().join("\n").as_bytes());

    let run = cwms(
        &proxy.endpoint,
        &[os("replay"), os("--stream"), os("no-such-stream"), os("--record-bytes"), os("1"), os("--concurrency"), os("1"), file.into()],
    )
    .await;
    assert!(!run.success, "{run}");
    assert!(run.stderr.contains("1500 records ("), "{run}");
    assert!(run.stderr.contains("ResourceNotFoundException"), "{run}");
    assert_eq!(proxy.calls().len(), 1, "an error no retry can fix is not retried, and stops the run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_are_named_and_send_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let file = root.join("datums.ndjson");
    write(&file, datum(0, 0).as_bytes());
    let empty = root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let dangling = root.join("dangling");
    std::fs::create_dir(&dangling).unwrap();
    write(&dangling.join("ok.ndjson"), b"{}\n");
    std::os::unix::fs::symlink(root.join("gone"), dangling.join("link")).unwrap();
    // Nothing listens on the endpoint: a command that tried to send would fail differently.
    let endpoint = "http://127.0.0.1:9";
    let file_arg = file.display().to_string();

    let cases: Vec<(Vec<String>, String)> = vec![
        (vec!["replay".into(), file_arg.clone()], "--stream <NAME>".into()),
        (vec!["replay".into(), "--stream".into(), STREAM.into()], "<FILE|DIR>".into()),
        (
            vec!["replay".into(), "--stream".into(), "has space".into(), file_arg.clone()],
            "a Firehose delivery stream name has 1 to 64 characters".into(),
        ),
        (
            vec!["replay".into(), "--stream".into(), STREAM.into(), "--record-bytes".into(), "1024001".into(), file_arg.clone()],
            "must be 1 to 1024000".into(),
        ),
        (
            vec!["replay".into(), "--stream".into(), STREAM.into(), file_arg.clone(), root.join("missing.ndjson").display().to_string()],
            format!("cannot read {}: No such file or directory", root.join("missing.ndjson").display()),
        ),
        (
            vec!["replay".into(), "--stream".into(), STREAM.into(), empty.display().to_string()],
            format!("{} holds no files to send", empty.display()),
        ),
        (
            vec!["replay".into(), "--stream".into(), STREAM.into(), dangling.display().to_string()],
            format!("cannot read {}: No such file or directory", dangling.join("link").display()),
        ),
        (vec!["redrive".into(), "--stream".into(), STREAM.into()], "--errors <DIR|s3://BUCKET/PREFIX>".into()),
        (
            vec!["redrive".into(), "--stream".into(), STREAM.into(), "--errors".into(), root.join("missing").display().to_string()],
            format!("cannot read --errors {}: No such file or directory", root.join("missing").display()),
        ),
        (
            vec!["redrive".into(), "--stream".into(), STREAM.into(), "--errors".into(), file_arg.clone()],
            format!("--errors {file_arg} is not a folder"),
        ),
        (
            vec!["redrive".into(), "--stream".into(), STREAM.into(), "--errors".into(), "gs://bucket/errors".into()],
            "only s3:// URLs and local directory paths are supported".into(),
        ),
    ];
    for (args, expected) in cases {
        let args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
        let run = cwms(endpoint, &args).await;
        assert!(!run.success, "{args:?}: {run}");
        assert!(run.stderr.contains(&expected), "{args:?} should say {expected:?}: {run}");
    }
    assert!(!root.join("missing").exists(), "redrive does not create a missing --errors folder");

    // A folder that cannot be listed. Root reads every folder whatever its mode, so as root
    // (CI runs as root) the command runs without that capability.
    let locked = root.join("locked");
    write(&locked.join("x.ndjson"), b"{}\n");
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    let args = [os("replay"), os("--stream"), os(STREAM), locked.clone().into()];
    let run = if std::fs::read_dir(&locked).is_ok() { cwms_bound_by_modes(endpoint, &args).await } else { cwms(endpoint, &args).await };
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    assert!(!run.success && run.stderr.contains(&format!("cannot list folder {}", locked.display())), "{run}");
}

// ---------------------------------------------------------------------------------------------
// Redrive
// ---------------------------------------------------------------------------------------------

/// Records the transform would fail, as Firehose keeps them: any bytes at all.
fn failed_records() -> Vec<Vec<u8>> {
    vec![
        b"{\"metric_name\":\"CPUUtilization\",\"value\":{\"count\":".to_vec(),
        gzip(format!("{}\n", datum(7, 0)).as_bytes()),
        format!("{}\n{}", datum(8, 0), datum(9, 0)).into_bytes(),
        b"not json\r\nat all\n".to_vec(),
        Vec::new(),
        datum_of_len(10, 600_000).into_bytes(),
        vec![0, 159, 146, 150, 255],
    ]
}

/// Error objects holding `records`: a gzip object with the first three documents and a plain
/// one (a blank line, the other spelling of the code fields) with the rest.
fn write_error_objects(errors: &Path, records: &[Vec<u8>]) -> Vec<PathBuf> {
    let gz = errors.join("processing-failed/dt=2026-11-26/hour=07/metrics-to-lake-1-2026-11-26-07-00-00-a.gz");
    let plain = errors.join("processing-failed/dt=2026-11-26/hour=08/metrics-to-lake-1-2026-11-26-08-05-00-b");
    let lines: Vec<String> = records.iter().enumerate().map(|(i, r)| error_document(r, i % 2 == 1)).collect();
    write(&gz, &gzip(format!("{}\n", lines[..3].join("\n")).as_bytes()));
    write(&plain, format!("\n{}", lines[3..].join("\n")).as_bytes());
    vec![gz, plain]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_puts_each_original_record_back_once() {
    let moto = lake_stream().await;
    let proxy = FlakyFirehose::start(&moto.endpoint, |call, _| if call == 1 { Fault::FailEntries(vec![1]) } else { Fault::Pass });
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("errors");
    let records = failed_records();
    let objects = write_error_objects(&errors, &records);
    let before: Vec<Vec<u8>> = objects.iter().map(|o| std::fs::read(o).unwrap()).collect();

    let run = cwms(
        &proxy.endpoint,
        &[os("redrive"), os("--errors"), errors.clone().into(), os("--stream"), os(STREAM), os("--concurrency"), os("1")],
    )
    .await;
    assert!(run.success, "{run}");
    assert!(run.stdout.contains(&format!("{}: 3 documents, 3 records sent", objects[0].display())), "{run}");
    assert!(run.stdout.contains(&format!("{}: 4 documents, 4 records sent", objects[1].display())), "{run}");
    assert!(run.stdout.contains("1 records resent in 1 retry calls"), "{run}");

    // One Firehose record per document, byte for byte, each reaching moto once.
    let calls = proxy.calls();
    assert_eq!(calls[1].received, [calls[0].received[1].clone()], "only the refused entry is resent");
    let forwarded = count_exact(calls.iter().flat_map(|c| c.forwarded.iter().cloned()));
    assert_eq!(forwarded, count_exact(records.iter().cloned()));
    // moto concatenates each call's records into one object.
    let expected_objects = count_exact(calls.iter().filter(|c| !c.forwarded.is_empty()).map(|c| c.forwarded.concat()));
    assert_eq!(count_exact(delivered(&moto).await), expected_objects);
    let after: Vec<Vec<u8>> = objects.iter().map(|o| std::fs::read(o).unwrap()).collect();
    assert_eq!(before, after, "error objects are left as they were");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_sends_back_what_cwms_run_failed() {
    let moto = lake_stream().await;
    let proxy = FlakyFirehose::start(&moto.endpoint, |_, _| Fault::Pass);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let run = cwms_offline(&["run", "--series", "20", "--minutes", "5", "--malformed", "0.2", "--start", "2026-11-26T07:00:00Z"], &out);
    assert!(run.success, "{run}");
    // The original records, read from the error objects independently of cwms.
    let mut originals = Vec::new();
    let mut pending = vec![out.join("errors")];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(std::fs::read(&path).unwrap().as_slice()).read_to_end(&mut plain).unwrap();
        for line in plain.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let document: Value = serde_json::from_slice(line).unwrap();
            originals.push(BASE64.decode(document["rawData"].as_str().unwrap()).unwrap());
        }
    }
    assert!(!originals.is_empty(), "cwms run --malformed 0.2 leaves failed records: {run}");

    let run = cwms(&proxy.endpoint, &[os("redrive"), os("--errors"), out.join("errors").into(), os("--stream"), os(STREAM)]).await;
    assert!(run.success, "{run}");
    assert!(run.stdout.contains(&format!("sent {} records", originals.len())), "{run}");
    let calls = proxy.calls();
    assert_eq!(count_exact(calls.iter().flat_map(|c| c.received.iter().cloned())), count_exact(originals));
    let expected_objects = count_exact(calls.iter().map(|c| c.forwarded.concat()));
    assert_eq!(count_exact(delivered(&moto).await), expected_objects);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_dry_run_sends_nothing() {
    let moto = lake_stream().await;
    let proxy = FlakyFirehose::start(&moto.endpoint, |_, _| Fault::Pass);
    let dir = tempfile::tempdir().unwrap();
    let records = failed_records();
    let objects = write_error_objects(&dir.path().join("errors"), &records);

    let run = cwms(
        &proxy.endpoint,
        &[os("redrive"), os("--errors"), dir.path().join("errors").into(), os("--stream"), os(STREAM), os("--dry-run")],
    )
    .await;
    assert!(run.success, "{run}");
    let bytes: usize = records[..3].iter().map(Vec::len).sum();
    assert!(run.stdout.contains(&format!("{}: 3 documents, 3 records ({bytes} bytes) would be sent", objects[0].display())), "{run}");
    assert!(run.stdout.contains("would send 7 records"), "{run}");
    assert!(proxy.calls().is_empty(), "a dry run makes no call");
    assert!(delivered(&moto).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_names_unreadable_error_objects_and_sends_the_rest() {
    let moto = lake_stream().await;
    let dir = tempfile::tempdir().unwrap();
    let errors = dir.path().join("errors");
    let good = [b"{\"good\":1}\n".to_vec(), b"{\"good\":2}\n".to_vec()];
    write(&errors.join("a-good.gz"), &gzip(good.iter().map(|r| error_document(r, false)).collect::<Vec<_>>().join("\n").as_bytes()));
    let truncated = gzip(error_document(b"{\"lost\":1}\n", false).as_bytes());
    write(&errors.join("b-truncated.gz"), &truncated[..truncated.len() / 2]);
    write(&errors.join("c-not-a-document"), format!("{}\n{{\"rawData\":\"eA==\"}}\n", error_document(b"{\"lost\":2}\n", false)).as_bytes());
    write(&errors.join("d-bad-base64"), error_document(b"", false).replace("\"rawData\":\"\"", "\"rawData\":\"%%%\"").as_bytes());

    let run = cwms(&moto.endpoint, &[os("redrive"), os("--errors"), errors.clone().into(), os("--stream"), os(STREAM)]).await;
    assert!(!run.success, "{run}");
    for (name, reason) in [
        ("b-truncated.gz", "not sent: invalid gzip data"),
        ("c-not-a-document", "not sent: line 2: not a Firehose error document: missing field `attemptsMade`"),
        ("d-bad-base64", "not sent: line 1: `rawData` is not valid base64"),
    ] {
        assert!(run.stderr.contains(&format!("{}: {reason}", errors.join(name).display())), "{name}: {run}");
    }
    assert!(run.stderr.contains("3 error objects could not be read and sent nothing"), "{run}");
    assert!(run.stdout.contains(&format!("{}: 2 documents, 2 records sent", errors.join("a-good.gz").display())), "{run}");
    // Both records travel in one call, so moto holds exactly their concatenation.
    assert_eq!(delivered(&moto).await, [good.concat()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_reads_error_objects_from_s3() {
    let moto = lake_stream().await;
    let errors_store = moto.s3_store("firehose-errors", "").await;
    let records: Vec<Vec<u8>> = (0..5).map(|i| format!("{}\n", datum(i, 0)).into_bytes()).collect();
    let key = "errors/processing-failed/dt=2026-11-26/hour=07/metrics-to-lake-1.gz";
    let object = gzip(records.iter().map(|r| error_document(r, false)).collect::<Vec<_>>().join("\n").as_bytes());
    cwms_store::ObjectStore::put(&errors_store, key, object.into(), cwms_store::PutMode::Overwrite).await.unwrap();

    let run = cwms(&moto.endpoint, &[os("redrive"), os("--errors"), os("s3://firehose-errors/errors/"), os("--stream"), os(STREAM)]).await;
    assert!(run.success, "{run}");
    assert!(run.stdout.contains(&format!("s3://firehose-errors/{key}: 5 documents, 5 records sent")), "{run}");
    // The five records travel in one call, so moto holds exactly their concatenation.
    assert_eq!(delivered(&moto).await, [records.concat()]);
    assert!(cwms_store::ObjectStore::get(&errors_store, key).await.unwrap().is_some(), "the error object stays");
}

// ---------------------------------------------------------------------------------------------
// What moto's Firehose does, which the tests above rely on
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_firehose_quirks_are_as_documented() {
    let moto = lake_stream().await;
    let firehose = aws_sdk_firehose::Client::new(&moto.sdk_config());
    let put = |records: Vec<&'static [u8]>| {
        let firehose = firehose.clone();
        async move {
            let records = records.into_iter().map(|r| Record::builder().data(Blob::new(r)).build().unwrap()).collect();
            firehose.put_record_batch().delivery_stream_name(STREAM).set_records(Some(records)).send().await.unwrap()
        }
    };
    let output = put(vec![b"a", b"b\n", b"c"]).await;
    assert_eq!((output.failed_put_count(), output.request_responses().len()), (0, 3));
    put(vec![b"d"]).await;
    // One object per call, the records concatenated as they are, not gzip although the stream
    // says GZIP, under the prefix plus YYYY/MM/DD/HH/ (the prefix is not evaluated).
    let objects = delivered_with_keys(&moto).await;
    assert_eq!(count_exact(objects.values().cloned()), count_exact([b"ab\nc".to_vec(), b"d".to_vec()]));
    for key in objects.keys() {
        assert!(key.starts_with("raw/!{timestamp:yyyy}/2"), "{key}");
        assert!(key.contains(&format!("/{STREAM}-1-")), "{key}");
    }
    // No limit is checked: 501 records and a record over 1,000 KiB are accepted.
    let many: Vec<&'static [u8]> = vec![b"x"; MAX_CALL_RECORDS + 1];
    assert_eq!(put(many).await.failed_put_count(), 0);
    let huge: &'static [u8] = Box::leak(vec![b'y'; MAX_RECORD_BYTES + 1].into_boxed_slice());
    assert_eq!(put(vec![huge]).await.failed_put_count(), 0);
    // A stream that does not exist is ResourceNotFoundException.
    let error = firehose
        .put_record_batch()
        .delivery_stream_name("missing")
        .records(Record::builder().data(Blob::new("x")).build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(aws_sdk_firehose::error::ProvideErrorMetadata::code(&error), Some("ResourceNotFoundException"));
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// moto with a bucket and a Direct PUT delivery stream into it.
async fn lake_stream() -> MotoServer {
    let moto = MotoServer::start().await;
    moto.s3_store(LAKE_BUCKET, "").await;
    let destination = ExtendedS3DestinationConfiguration::builder()
        .role_arn("arn:aws:iam::123456789012:role/firehose-delivery")
        .bucket_arn(format!("arn:aws:s3:::{LAKE_BUCKET}"))
        .prefix("raw/!{timestamp:yyyy}/")
        .error_output_prefix("errors/!{firehose:error-output-type}/")
        .compression_format(CompressionFormat::Gzip)
        .build()
        .unwrap();
    aws_sdk_firehose::Client::new(&moto.sdk_config())
        .create_delivery_stream()
        .delivery_stream_name(STREAM)
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .extended_s3_destination_configuration(destination)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!("moto cannot create the delivery stream: {}\n{}", aws_sdk_firehose::error::DisplayErrorContext(&e), moto.log())
        });
    moto
}

/// Every object in the lake bucket, by key.
async fn delivered_with_keys(moto: &MotoServer) -> BTreeMap<String, Vec<u8>> {
    let s3 = moto.client();
    let mut objects = BTreeMap::new();
    let mut pages = s3.list_objects_v2().bucket(LAKE_BUCKET).into_paginator().send();
    while let Some(page) = pages.next().await {
        for object in page.unwrap().contents() {
            let key = object.key().unwrap().to_owned();
            let body = s3.get_object().bucket(LAKE_BUCKET).key(&key).send().await.unwrap().body.collect().await.unwrap();
            objects.insert(key, body.to_vec());
        }
    }
    objects
}

async fn delivered(moto: &MotoServer) -> Vec<Vec<u8>> {
    delivered_with_keys(moto).await.into_values().collect()
}

/// How often each byte string occurs.
fn count_exact(items: impl IntoIterator<Item = Vec<u8>>) -> BTreeMap<Vec<u8>, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_default() += 1;
    }
    counts
}

/// How often each non-blank line occurs.
fn count_lines<'a>(texts: impl IntoIterator<Item = &'a [u8]>) -> BTreeMap<Vec<u8>, usize> {
    let mut counts = BTreeMap::new();
    for text in texts {
        for line in text.split(|&b| b == b'\n') {
            if !line.iter().all(u8::is_ascii_whitespace) {
                *counts.entry(line.strip_suffix(b"\r").unwrap_or(line).to_vec()).or_default() += 1;
            }
        }
    }
    counts
}

/// The lines of every delivered object, which moto wrote as the concatenated records.
fn count_lines_in(objects: &[Vec<u8>]) -> BTreeMap<Vec<u8>, usize> {
    let all = objects.concat();
    count_lines([all.as_slice()])
}

/// The lines of every gzip or plain file below `dir`, read independently of cwms.
fn lines_below(dir: &Path) -> BTreeMap<Vec<u8>, usize> {
    let mut counts = BTreeMap::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let mut plain = Vec::new();
        if bytes.starts_with(&[0x1f, 0x8b]) {
            flate2::read::MultiGzDecoder::new(bytes.as_slice()).read_to_end(&mut plain).unwrap();
        } else {
            plain = bytes;
        }
        for (line, n) in count_lines([plain.as_slice()]) {
            *counts.entry(line).or_default() += n;
        }
    }
    counts
}

/// Compares line multisets with a short message (the lines can be megabytes long).
fn assert_lines_eq(actual: &BTreeMap<Vec<u8>, usize>, expected: &BTreeMap<Vec<u8>, usize>) {
    if actual == expected {
        return;
    }
    let show = |line: &[u8]| String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned();
    let missing: Vec<String> =
        expected.iter().filter(|(l, n)| actual.get(*l) != Some(n)).take(5).map(|(l, n)| format!("{n}x {}", show(l))).collect();
    let extra: Vec<String> =
        actual.iter().filter(|(l, n)| expected.get(*l) != Some(n)).take(5).map(|(l, n)| format!("{n}x {}", show(l))).collect();
    panic!(
        "delivered lines differ: {} distinct delivered, {} expected ({} and {} in all)\nexpected but not so delivered: {missing:#?}\ndelivered but not so expected: {extra:#?}",
        actual.len(),
        expected.len(),
        actual.values().sum::<usize>(),
        expected.values().sum::<usize>()
    );
}

/// Every call within Firehose's limits.
fn check_call_limits(calls: &[Call]) {
    assert!(!calls.is_empty());
    for (i, call) in calls.iter().enumerate() {
        let bytes: usize = call.received.iter().map(Vec::len).sum();
        assert!(call.received.len() <= MAX_CALL_RECORDS, "call {i}: {} records", call.received.len());
        assert!(bytes <= MAX_CALL_BYTES, "call {i}: {bytes} bytes");
        assert!(call.received.iter().all(|r| r.len() <= MAX_RECORD_BYTES), "call {i}: a record over 1,000 KiB");
    }
}

/// A metric-stream datum line, unique for `i`, padded with a dimension of `pad` bytes.
fn datum(i: usize, pad: usize) -> String {
    json!({
        "metric_stream_name": "cwms-test-stream",
        "account_id": "123456789012",
        "region": "us-east-1",
        "namespace": "AWS/EC2",
        "metric_name": "CPUUtilization",
        "dimensions": {"InstanceId": format!("i-{i:017}"), "Pad": "p".repeat(pad)},
        "timestamp": 1_764_140_400_000_i64 + (i as i64 % 60) * 60_000,
        "value": {"count": 1.0, "sum": i as f64, "max": i as f64, "min": i as f64, "p99": 0.5},
        "unit": "Percent"
    })
    .to_string()
}

/// A datum line of exactly `len` bytes (without its newline).
fn datum_of_len(i: usize, len: usize) -> String {
    let base = datum(i, 0).len();
    let line = datum(i, len - base);
    assert_eq!(line.len(), len);
    line
}

/// One Firehose processing-failed error document for `record`, in either spelling of the code
/// and message fields that AWS uses.
fn error_document(record: &[u8], capitalized: bool) -> String {
    let (code, message) = if capitalized { ("ErrorCode", "ErrorMessage") } else { ("errorCode", "errorMessage") };
    let mut document = json!({
        "attemptsMade": 1,
        "arrivalTimestamp": 1_764_140_400_000_i64,
        "attemptEndingTimestamp": 1_764_140_401_000_i64,
        "rawData": BASE64.encode(record),
        "lambdaArn": "arn:aws:lambda:us-east-1:123456789012:function:cwms-transform:$LATEST",
    });
    document[code] = json!("Lambda.ProcessingFailedStatus");
    document[message] = json!("ProcessingFailed status set for record");
    document.to_string()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn os(text: &str) -> OsString {
    text.into()
}

/// What a run of the `cwms` binary did.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cut = |s: &str| s.chars().take(4000).collect::<String>();
        write!(f, "success: {}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.success, cut(&self.stdout), cut(&self.stderr))
    }
}

/// Runs `cwms` against an AWS endpoint, with dummy credentials and nothing from the machine's
/// own AWS configuration.
async fn cwms(endpoint: &str, args: &[OsString]) -> Run {
    run_cwms(Command::new(built_binary("cwms")), endpoint, args).await
}

/// [`cwms`] without the capabilities that let root read any folder whatever its mode
/// (`setpriv` drops them from the bounding set), so that a permission case runs as root too.
async fn cwms_bound_by_modes(endpoint: &str, args: &[OsString]) -> Run {
    let mut command = Command::new("setpriv");
    command.args(["--bounding-set=-dac_override,-dac_read_search", "--"]).arg(built_binary("cwms"));
    run_cwms(command, endpoint, args).await
}

async fn run_cwms(mut command: Command, endpoint: &str, args: &[OsString]) -> Run {
    command
        .args(args)
        .env_clear()
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "cwms-test")
        .env("AWS_SECRET_ACCESS_KEY", "cwms-test")
        .env("AWS_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/nonexistent/aws/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws/credentials")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("cannot run cwms");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `cwms` for a command that needs no AWS, in `dir`'s parent with `--out dir`.
fn cwms_offline(args: &[&str], out: &Path) -> Run {
    let output = Command::new(built_binary("cwms")).args(args).arg("--out").arg(out).env_clear().output().expect("cannot run cwms");
    Run {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// The flaky Firehose proxy
// ---------------------------------------------------------------------------------------------

/// What the proxy does with one `PutRecordBatch` call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fault {
    /// Forward the call to moto unchanged.
    Pass,
    /// Forward all but these entries (0-based) and answer them refused, as a throttled
    /// Firehose does: HTTP 200, `FailedPutCount`, `ErrorCode` `ServiceUnavailableException`.
    FailEntries(Vec<usize>),
    /// Forward nothing and fail the whole call with this status and error code.
    Reject { status: u16, code: &'static str },
}

/// One `PutRecordBatch` call as the proxy saw it.
#[derive(Debug, Clone)]
struct Call {
    /// The records cwms sent, decoded, in order.
    received: Vec<Vec<u8>>,
    /// The records passed on to moto.
    forwarded: Vec<Vec<u8>>,
}

type Plan = Box<dyn FnMut(usize, usize) -> Fault + Send>;

struct ProxyState {
    /// Decides the fault of call `n` (1-based, in arrival order) carrying `records` records.
    plan: Plan,
    calls: Vec<Call>,
}

/// A [`FaultProxy`] in front of moto's Firehose that fails the `PutRecordBatch` calls its plan
/// says, and passes every other request on.
struct FlakyFirehose {
    /// `http://127.0.0.1:PORT`.
    endpoint: String,
    state: Arc<Mutex<ProxyState>>,
    _proxy: FaultProxy,
}

impl FlakyFirehose {
    fn start(upstream: &str, plan: impl FnMut(usize, usize) -> Fault + Send + 'static) -> FlakyFirehose {
        let state = Arc::new(Mutex::new(ProxyState { plan: Box::new(plan), calls: Vec::new() }));
        let proxy_state = state.clone();
        let proxy = FaultProxy::start(upstream, move |request, upstream| {
            if request.header("x-amz-target").is_some_and(|t| t.ends_with(".PutRecordBatch")) {
                Reply::Respond(put_record_batch(request, upstream, &proxy_state))
            } else {
                Reply::Forward
            }
        });
        FlakyFirehose { endpoint: proxy.endpoint.clone(), state, _proxy: proxy }
    }

    /// The `PutRecordBatch` calls so far, in arrival order.
    fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }
}

/// Applies the plan to one `PutRecordBatch` call.
fn put_record_batch(request: &Request, upstream: &Upstream, state: &Mutex<ProxyState>) -> Response {
    const JSON: &str = "application/x-amz-json-1.1";
    let answer = |status: u16, body: String| {
        let mut response = Response::new(status, JSON, body);
        response.headers.push(("x-amzn-requestid".to_owned(), "flaky-firehose".to_owned()));
        response
    };
    let mut call: Value = serde_json::from_slice(&request.body).expect("PutRecordBatch sends JSON");
    let records: Vec<Vec<u8>> = call["Records"]
        .as_array()
        .expect("PutRecordBatch has Records")
        .iter()
        .map(|r| BASE64.decode(r["Data"].as_str().expect("a record has Data")).expect("Data is base64"))
        .collect();
    // The call is numbered and recorded before it is answered, so the order is arrival order.
    let (index, fault) = {
        let mut state = state.lock().unwrap();
        let number = state.calls.len() + 1;
        let fault = (state.plan)(number, records.len());
        state.calls.push(Call { received: records.clone(), forwarded: Vec::new() });
        (number - 1, fault)
    };
    let refused: Vec<usize> = match fault {
        Fault::Pass => Vec::new(),
        Fault::FailEntries(entries) => entries,
        Fault::Reject { status, code } => {
            return answer(status, json!({"__type": code, "message": "Rate exceeded (flaky-firehose)"}).to_string());
        }
    };
    let kept: Vec<Value> =
        call["Records"].as_array().unwrap().iter().enumerate().filter(|(i, _)| !refused.contains(i)).map(|(_, r)| r.clone()).collect();
    let forwarded: Vec<Vec<u8>> = records.iter().enumerate().filter(|(i, _)| !refused.contains(i)).map(|(_, r)| r.clone()).collect();
    let mut accepted = Vec::new();
    if !kept.is_empty() {
        call["Records"] = Value::Array(kept);
        // moto does not check SigV4 signatures, so the call's body may be rewritten.
        let response = upstream.send(&request.with_body(call.to_string().into_bytes()));
        if response.status != 200 {
            return response;
        }
        let answer: Value = serde_json::from_slice(&response.body).unwrap();
        accepted = answer["RequestResponses"].as_array().unwrap().clone();
        assert_eq!(accepted.len(), forwarded.len(), "moto answers one entry per record");
    }
    state.lock().unwrap().calls[index].forwarded = forwarded;
    let mut accepted = accepted.into_iter();
    let responses: Vec<Value> = (0..records.len())
        .map(|i| {
            if refused.contains(&i) {
                json!({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down. (flaky-firehose)"})
            } else {
                accepted.next().unwrap()
            }
        })
        .collect();
    answer(200, json!({"FailedPutCount": refused.len(), "Encrypted": false, "RequestResponses": responses}).to_string())
}

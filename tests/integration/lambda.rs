//! The transform Lambda end to end: the built bootstrap (`target/debug/cwms-transform`) under
//! the real Lambda Runtime API emulator, and `cwms transform` on the same event files.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cwms_tests::lambda_emulator::{Bootstrap, FUNCTION_NAME, LambdaEmulator, TransformLambda, built_binary};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

/// 2024-03-10T10:58:00Z: two minutes before an hour boundary, so records span two hours.
const T0: i64 = 1_710_068_280_000;
const MINUTE: i64 = 60_000;

/// One metric-stream datum as CloudWatch writes it (every number a float, as CloudWatch does).
fn datum(namespace: &str, metric: &str, dimensions: Value, timestamp_ms: i64, stats: Value, unit: &str) -> Value {
    json!({
        "metric_stream_name": "cwms-test-stream",
        "account_id": "123456789012",
        "region": "eu-west-1",
        "namespace": namespace,
        "metric_name": metric,
        "dimensions": dimensions,
        "timestamp": timestamp_ms,
        "value": stats,
        "unit": unit,
    })
}

fn stats(count: f64, sum: f64, max: f64, min: f64) -> Value {
    json!({"count": count, "sum": sum, "max": max, "min": min})
}

fn lines(datums: &[&Value]) -> String {
    datums.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// One record of a test event and what the transform must make of it.
struct Case {
    id: &'static str,
    /// The record's bytes, or `None` when `data` is not base64 at all.
    raw: Option<Vec<u8>>,
    /// What the transform must return: the result and, for `Ok`, the datums in order.
    expected: Expected,
}

enum Expected {
    Ok(Vec<Value>),
    Dropped,
    Failed,
}

impl Case {
    fn data(&self) -> String {
        match &self.raw {
            Some(raw) => BASE64.encode(raw),
            None => "not*base64!".to_owned(),
        }
    }
}

/// A realistic batch: plain and gzip-wrapped records, several namespaces, percentiles, records
/// spanning an hour boundary, exact duplicates, a bad line, bad base64, a wrong type, and a
/// record with nothing but blank lines.
fn realistic_cases() -> Vec<Case> {
    let cpu = datum(
        "AWS/EC2",
        "CPUUtilization",
        json!({"InstanceId": "i-0123456789abcdef0"}),
        T0 + 90_000,
        json!({"count": 5.0, "sum": 212.5, "max": 61.25, "min": 30.0, "p99": 60.9, "p99.9": 61.2, "TM(25%:75%)": 41.75}),
        "Percent",
    );
    let disk = datum("AWS/EC2", "DiskWriteOps", json!({"InstanceId": "i-123456789012"}), T0, stats(3.0, 20.0, 18.0, 0.0), "Count");
    let elb = datum(
        "AWS/ApplicationELB",
        "TargetResponseTime",
        json!({"LoadBalancer": "app/web/50dc6c495c0c9188", "TargetGroup": "targetgroup/web/73e2d6bc24d8a067", "AvailabilityZone": "eu-west-1a"}),
        T0 + 2 * MINUTE,
        json!({"count": 1200.0, "sum": 96.0, "max": 2.5, "min": 0.001, "p50": 0.05, "p90": 0.2, "p99": 1.1, "IQM": 0.07}),
        "Seconds",
    );
    let elb_later = datum(
        "AWS/ApplicationELB",
        "RequestCount",
        json!({"LoadBalancer": "app/web/50dc6c495c0c9188"}),
        T0 + 3 * MINUTE,
        stats(1.0, 1200.0, 1200.0, 1200.0),
        "Count",
    );
    let custom: Vec<Value> = (0..3)
        .map(|i| datum("Custom/Checkout", "Latency", json!({}), T0 + i * MINUTE, stats(10.0, 12.5 + i as f64, 4.0, 0.25), "Milliseconds"))
        .collect();
    let queue_a =
        datum("AWS/SQS", "ApproximateNumberOfMessagesVisible", json!({"QueueName": "orders"}), T0, stats(1.0, 7.0, 7.0, 7.0), "Count");
    let queue_b = datum("AWS/SQS", "NumberOfMessagesSent", json!({"QueueName": "orders"}), T0, stats(1.0, 9.0, 9.0, 9.0), "Count");
    let lambda_a =
        datum("AWS/Lambda", "Duration", json!({"FunctionName": "api"}), T0 + MINUTE, stats(4.0, 40.0, 20.0, 5.0), "Milliseconds");
    let lambda_b = datum("AWS/Lambda", "Errors", json!({"FunctionName": "api"}), T0 + MINUTE, stats(4.0, 0.0, 0.0, 0.0), "Count");
    let mut wrong_type = disk.clone();
    wrong_type["timestamp"] = json!("2024-03-10T10:58:00Z");

    vec![
        Case {
            id: "ok-plain",
            raw: Some(lines(&[&cpu, &disk, &elb, &elb_later]).into_bytes()),
            expected: Expected::Ok(vec![cpu.clone(), disk.clone(), elb.clone(), elb_later.clone()]),
        },
        Case {
            id: "ok-gzip",
            raw: Some(gzip(format!("{}\n", lines(&custom.iter().collect::<Vec<_>>())).as_bytes())),
            expected: Expected::Ok(custom.clone()),
        },
        Case {
            id: "failed-bad-line",
            raw: Some(format!("{}\n{{\"namespace\":\"AWS/EC2\",\"metric_name\":\n{}\n", cpu, disk).into_bytes()),
            expected: Expected::Failed,
        },
        Case { id: "failed-bad-base64", raw: None, expected: Expected::Failed },
        Case {
            id: "ok-duplicates",
            raw: Some(lines(&[&queue_a, &queue_b, &queue_a, &queue_a]).into_bytes()),
            expected: Expected::Ok(vec![queue_a.clone(), queue_b.clone()]),
        },
        Case { id: "dropped-blank", raw: Some(b"\n\n".to_vec()), expected: Expected::Dropped },
        Case { id: "failed-wrong-type", raw: Some(lines(&[&disk, &wrong_type]).into_bytes()), expected: Expected::Failed },
        Case {
            id: "ok-lambda",
            raw: Some(lines(&[&lambda_a, &lambda_b]).into_bytes()),
            expected: Expected::Ok(vec![lambda_a.clone(), lambda_b.clone()]),
        },
    ]
}

const REALISTIC_FAILED: [&str; 3] = ["failed-bad-line", "failed-bad-base64", "failed-wrong-type"];

fn event(cases: &[Case]) -> Value {
    let records: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            json!({
                "recordId": case.id,
                "approximateArrivalTimestamp": T0 + 5 * MINUTE + i as i64,
                "data": case.data(),
            })
        })
        .collect();
    json!({
        "invocationId": "6f4f9e8c-0a7f-4c1e-9c6e-1f7a1e0b9d11",
        "deliveryStreamArn": "arn:aws:firehose:eu-west-1:123456789012:deliverystream/cwms-test",
        "region": "eu-west-1",
        "records": records,
    })
}

/// Checks a response against the cases: every id once, in order, with the expected result and,
/// for `Ok`, exactly the expected datums (parsed, so field order does not matter), each line
/// ending in `\n`. Returns the total bytes of the `Ok` records' decoded data.
fn check_response(response: &Value, cases: &[Case]) -> u64 {
    let records = response["records"].as_array().unwrap_or_else(|| panic!("no records in {response}"));
    let ids: Vec<&str> = records.iter().map(|r| r["recordId"].as_str().unwrap_or("<none>")).collect();
    let expected_ids: Vec<&str> = cases.iter().map(|c| c.id).collect();
    assert_eq!(ids, expected_ids, "record ids and order");
    let mut bytes_out = 0;
    for (record, case) in records.iter().zip(cases) {
        let result = record["result"].as_str().unwrap_or("<none>");
        let keys = &record["metadata"]["partitionKeys"];
        match &case.expected {
            Expected::Ok(datums) => {
                assert_eq!(result, "Ok", "{}: {record}", case.id);
                assert!(keys["dt"].is_string() && keys["hour"].is_string(), "{}: partition keys missing: {record}", case.id);
                let data = BASE64.decode(record["data"].as_str().unwrap()).unwrap();
                bytes_out += data.len() as u64;
                let text = String::from_utf8(data).unwrap();
                assert!(text.ends_with('\n'), "{}: the last line has no newline: {text:?}", case.id);
                let got: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
                assert_eq!(&got, datums, "{}: datums", case.id);
            }
            Expected::Dropped | Expected::Failed => {
                let expected = if matches!(case.expected, Expected::Dropped) { "Dropped" } else { "ProcessingFailed" };
                // The least the contract allows: id, result and empty data (Firehose keeps the original).
                assert_eq!(record, &json!({"recordId": case.id, "result": expected, "data": ""}), "{}", case.id);
            }
        }
    }
    bytes_out
}

/// Runs `cwms` with only `env` in its environment (as the bootstrap gets only its own).
fn cwms(args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(built_binary("cwms"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run cwms");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// `cwms transform --event FILE`'s response, parsed; it must exit 0.
fn cli_response(event_file: &Path, env: &[(&str, &str)]) -> Value {
    let output = cwms(&["transform", "--event", event_file.to_str().unwrap()], env, None);
    assert!(output.status.success(), "cwms transform failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("cwms transform printed no JSON ({err}): {}", String::from_utf8_lossy(&output.stdout)))
}

fn write_event(dir: &Path, event: &Value) -> std::path::PathBuf {
    let path = dir.join("event.json");
    std::fs::write(&path, serde_json::to_vec_pretty(event).unwrap()).unwrap();
    path
}

/// The emulator's response and the CLI's on the same event, under the same settings, must be the
/// same JSON, and right.
fn check_lambda_matches_cli(env: &[(&str, &str)], cases: &[Case]) {
    let dir = tempfile::tempdir().unwrap();
    let event = event(cases);
    let event_file = write_event(dir.path(), &event);
    let mut lambda = TransformLambda::start(env);
    let from_lambda = lambda.invoke_json(&event);
    let from_cli = cli_response(&event_file, env);
    assert_eq!(from_lambda, from_cli, "the Lambda and `cwms transform` disagree");
    check_response(&from_lambda, cases);
}

#[test]
fn lambda_under_the_emulator_answers_like_cwms_transform() {
    let cases = realistic_cases();
    check_lambda_matches_cli(&[], &cases);
    // The record spanning 10:58..11:01 is partitioned by its earliest datum.
    let dir = tempfile::tempdir().unwrap();
    let response = cli_response(&write_event(dir.path(), &event(&cases)), &[]);
    assert_eq!(response["records"][0]["metadata"]["partitionKeys"], json!({"dt": "2024-03-10", "hour": "10"}));
}

#[test]
fn lambda_and_cwms_transform_apply_the_same_filters() {
    let mut cases = realistic_cases();
    for case in &mut cases {
        if case.id == "ok-lambda" {
            case.expected = Expected::Dropped;
        }
        if case.id == "ok-plain" {
            // Only the two AWS/EC2 datums stay.
            if let Expected::Ok(datums) = &mut case.expected {
                datums.retain(|d| d["namespace"] == "AWS/EC2");
            }
        }
    }
    check_lambda_matches_cli(&[("CWMS_EXCLUDE_NAMESPACES", "AWS/Lambda, AWS/ApplicationELB")], &cases);
}

/// The stdout lines of a bootstrap, each parsed (with `AWS_LAMBDA_LOG_FORMAT=JSON` every line
/// is JSON: the log lines and the EMF documents).
fn json_lines(bootstrap: &Bootstrap) -> Vec<Value> {
    let stdout = bootstrap.stdout();
    stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("a stdout line is not JSON ({err}): {line}\n{stdout}")))
        .collect()
}

fn check_emf(doc: &Value, expected: &[(&str, f64)]) {
    let directive = &doc["_aws"]["CloudWatchMetrics"][0];
    assert_eq!(directive["Namespace"], "cwms", "{doc}");
    assert_eq!(directive["Dimensions"], json!([["FunctionName"]]), "{doc}");
    assert_eq!(doc["FunctionName"], FUNCTION_NAME, "{doc}");
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let timestamp = doc["_aws"]["Timestamp"].as_i64().unwrap_or(0);
    assert!((now_ms - 600_000..=now_ms).contains(&timestamp), "EMF timestamp {timestamp} is not about now ({now_ms}): {doc}");
    let declared: Vec<&str> = directive["Metrics"].as_array().unwrap().iter().map(|m| m["Name"].as_str().unwrap()).collect();
    for name in &declared {
        assert!(doc[name].is_number(), "{name} is declared but has no value: {doc}");
    }
    for (name, value) in expected {
        assert!(declared.contains(name), "{name} is not declared: {doc}");
        assert_eq!(doc[name].as_f64(), Some(*value), "{name}: {doc}");
    }
}

#[test]
fn bootstrap_writes_one_emf_document_per_invocation_and_logs_each_failed_record() {
    let cases = realistic_cases();
    let bucket_size = datum(
        "AWS/S3",
        "BucketSizeBytes",
        json!({"BucketName": "logs", "StorageType": "StandardStorage"}),
        T0,
        stats(1.0, 5e9, 5e9, 5e9),
        "Bytes",
    );
    let small = vec![
        Case { id: "small-ok", raw: Some(bucket_size.to_string().into_bytes()), expected: Expected::Ok(vec![bucket_size]) },
        Case { id: "small-bad-base64", raw: None, expected: Expected::Failed },
    ];
    let bytes_in = |cases: &[Case]| cases.iter().filter_map(|c| c.raw.as_ref()).map(|raw| raw.len() as f64).sum::<f64>();

    let mut lambda = TransformLambda::start(&[]);
    let first = lambda.invoke_json(&event(&cases));
    let first_bytes_out = check_response(&first, &cases);
    let second = lambda.invoke_json(&event(&small));
    let second_bytes_out = check_response(&second, &small);

    let lines = json_lines(&lambda.bootstrap);
    let emf: Vec<&Value> = lines.iter().filter(|line| line.get("_aws").is_some()).collect();
    assert_eq!(emf.len(), 2, "one EMF document per invocation:\n{}", lambda.bootstrap.output());
    check_emf(
        emf[0],
        &[
            ("RecordsIn", 8.0),
            ("RecordsOk", 4.0),
            ("RecordsDropped", 1.0),
            ("RecordsFailed", 3.0),
            ("Datums", 11.0),
            ("DuplicatesRemoved", 2.0),
            ("BytesIn", bytes_in(&cases)),
            ("BytesOut", first_bytes_out as f64),
        ],
    );
    check_emf(
        emf[1],
        &[
            ("RecordsIn", 2.0),
            ("RecordsOk", 1.0),
            ("RecordsDropped", 0.0),
            ("RecordsFailed", 1.0),
            ("Datums", 1.0),
            ("DuplicatesRemoved", 0.0),
            ("BytesIn", bytes_in(&small)),
            ("BytesOut", second_bytes_out as f64),
        ],
    );

    // One structured line per batch, and one per failed record naming it and why.
    let message = |line: &Value| line["fields"]["message"].as_str().unwrap_or_default().to_owned();
    let batches: Vec<&Value> = lines.iter().filter(|line| message(line) == "batch transformed").collect();
    assert_eq!(batches.len(), 2, "{}", lambda.bootstrap.output());
    assert_eq!((batches[0]["fields"]["records_failed"].as_u64(), batches[1]["fields"]["records_failed"].as_u64()), (Some(3), Some(1)));
    let failed: Vec<(String, String, String)> = lines
        .iter()
        .filter(|line| message(line) == "record failed")
        .map(|line| {
            let field = |name: &str| line["fields"][name].as_str().unwrap_or_default().to_owned();
            (field("record_id"), field("reason"), line["level"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    let ids: Vec<&str> = failed.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids, [&REALISTIC_FAILED[..], &["small-bad-base64"]].concat(), "{}", lambda.bootstrap.output());
    for (id, reason, level) in &failed {
        assert_eq!(level, "WARN", "{id}");
        let cause = match id.as_str() {
            "failed-bad-line" => "line 2",
            "failed-wrong-type" => "timestamp",
            _ => "base64",
        };
        assert!(reason.contains(cause), "the reason for {id} does not name {cause:?}: {reason}");
    }
}

/// A bootstrap started with a malformed setting must stop at cold start, non-zero, saying which
/// setting is wrong and why.
fn check_cold_start_fails(setting: (&str, &str), message: &str) {
    let emulator = LambdaEmulator::start();
    let mut bootstrap = Bootstrap::start(&emulator, &built_binary("cwms-transform"), &[setting]);
    let status = bootstrap
        .wait_for_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the bootstrap is still running with {setting:?}\n{}", bootstrap.output()));
    assert!(!status.success(), "the bootstrap exited successfully with {setting:?}\n{}", bootstrap.output());
    // The message may be plain text (stderr) or a field of a JSON log line (stdout), where its
    // quotes are escaped: look in both.
    let output = bootstrap.output();
    let mut texts = vec![output.clone()];
    for line in bootstrap.stdout().lines() {
        if let Ok(value) = serde_json::from_str::<Value>(line) {
            collect_strings(&value, &mut texts);
        }
    }
    assert!(texts.iter().any(|text| text.contains(message)), "the cold-start failure does not say {message:?}:\n{output}");
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

#[test]
fn an_unknown_setting_fails_the_cold_start_with_a_clear_message() {
    check_cold_start_fails(("CWMS_INCLUDE_NAMESPACE", "x"), "unknown setting CWMS_INCLUDE_NAMESPACE (known: CWMS_INCLUDE_NAMESPACES, ");
}

#[test]
fn a_malformed_setting_fails_the_cold_start_with_a_clear_message() {
    check_cold_start_fails(
        ("CWMS_MAX_DECOMPRESSED_BYTES", "10MB"),
        "setting CWMS_MAX_DECOMPRESSED_BYTES=\"10MB\": not a whole number of bytes",
    );
}

#[test]
fn cwms_transform_exits_zero_for_a_readable_event_with_bad_records() {
    let cases = realistic_cases();
    let dir = tempfile::tempdir().unwrap();
    let event = event(&cases);
    let event_file = write_event(dir.path(), &event);
    let output = cwms(&["transform", "--event", event_file.to_str().unwrap(), "--stats"], &[], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "exit {:?}: {stderr}", output.status.code());
    check_response(&serde_json::from_slice(&output.stdout).unwrap(), &cases);
    assert!(stderr.contains("records: 8 in, 4 ok, 1 dropped, 3 failed"), "{stderr}");
    for id in REALISTIC_FAILED {
        assert!(stderr.contains(&format!("failed record {id}: ")), "{id} is not named: {stderr}");
    }
    // The same event on standard input gives the same response.
    let piped = cwms(&["transform", "--event", "-"], &[], Some(event.to_string().as_bytes()));
    assert!(piped.status.success(), "{}", String::from_utf8_lossy(&piped.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&piped.stdout).unwrap(), serde_json::from_slice::<Value>(&output.stdout).unwrap());
}

#[test]
fn cwms_transform_fails_clearly_for_a_missing_event_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-event.json");
    let output = cwms(&["transform", "--event", missing.to_str().unwrap()], &[], None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exit 0 for a missing file: {stderr}");
    assert!(stderr.contains(&format!("reading event file {}", missing.display())), "{stderr}");
    assert!(stderr.contains("No such file"), "{stderr}");
    assert!(output.stdout.is_empty(), "{}", String::from_utf8_lossy(&output.stdout));
}

#[test]
fn cwms_transform_fails_clearly_for_a_file_that_is_not_an_event() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content, detail) in [
        ("object.json", r#"{"hello": "world"}"#, "missing field `records`"),
        ("array.json", "[1, 2, 3]", "invalid type"),
        ("text.json", "<html>not JSON</html>", "expected value"),
        ("empty.json", "", "EOF"),
        ("bad-record.json", r#"{"records": [{"data": "eA=="}]}"#, "missing field `recordId`"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let output = cwms(&["transform", "--event", path.to_str().unwrap()], &[], None);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{name}: exit 0: {stderr}");
        assert!(stderr.contains(&format!("{} is not a Firehose transformation event", path.display())), "{name}: {stderr}");
        assert!(stderr.contains(detail), "{name}: the message does not say {detail:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{name}: {}", String::from_utf8_lossy(&output.stdout));
    }
}

/// Lines exactly as CloudWatch writes them (its field order, its number spellings: the sample
/// data and the AWS documentation's example), so that the bootstrap under the emulator takes
/// the transform's fast path, which serde_json-built lines (sorted keys) never reach: the
/// Lambda and `cwms transform` agree byte for byte, and every datum comes back as sent (in the
/// normalized field order).
#[test]
fn cloudwatch_ordered_lines_come_back_from_the_lambda_as_from_cwms_transform() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let sample = std::fs::read_to_string(root.join("sample-data/metrics.ndjson")).unwrap();
    let conformance = std::env::var_os("CWMS_CONFORMANCE_DIR").map_or_else(|| root.join("../shared/conformance"), Into::into);
    let aws = std::fs::read_to_string(conformance.join("aws-docs/json_format_example_with_extended_stats.jsonl")).unwrap();
    let sample_lines: Vec<&str> = sample.lines().collect();
    let mut groups: Vec<Vec<&str>> = sample_lines.chunks(sample_lines.len().div_ceil(6)).map(<[&str]>::to_vec).collect();
    groups.push(aws.lines().filter(|l| !l.trim().is_empty()).collect());
    const IDS: [&str; 7] = ["cw-0", "cw-1", "cw-2", "cw-3", "cw-4", "cw-5", "aws-docs"];
    assert_eq!(groups.len(), IDS.len());
    let cases: Vec<Case> = groups
        .iter()
        .zip(IDS)
        .enumerate()
        .map(|(i, (lines, id))| {
            // What the transform returns: each line once (exact duplicates removed), in order.
            let mut seen = std::collections::HashSet::new();
            let expected: Vec<Value> = lines.iter().filter(|l| seen.insert(**l)).map(|l| serde_json::from_str(l).unwrap()).collect();
            let text = lines.join("\n") + "\n";
            let raw = if i % 2 == 0 { text.into_bytes() } else { gzip(text.as_bytes()) };
            Case { id, raw: Some(raw), expected: Expected::Ok(expected) }
        })
        .collect();
    check_lambda_matches_cli(&[], &cases);
}

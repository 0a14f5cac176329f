use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;

use super::*;

const A: &str = r#"{"metric_stream_name":"S","account_id":"1","region":"us-east-1","namespace":"AWS/EC2","metric_name":"CPUUtilization","dimensions":{"InstanceId":"i-1"},"timestamp":1764140400000,"value":{"count":1,"sum":2,"max":2,"min":2},"unit":"Percent"}"#;
const B: &str = r#"{"metric_stream_name":"S","account_id":"1","region":"us-east-1","namespace":"App/Api","metric_name":"Latency","dimensions":{"Route":"/a"},"timestamp":1764140340000,"value":{"count":3,"sum":6,"max":3,"min":1,"p99":3},"unit":"Milliseconds"}"#;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn record(id: &str, bytes: &[u8]) -> FirehoseRecord<'static> {
    FirehoseRecord {
        record_id: id.to_owned(),
        approximate_arrival_timestamp: Some(1764144000000.0),
        data: Some(BASE64.encode(bytes).into()),
    }
}

fn event(records: Vec<FirehoseRecord<'static>>) -> FirehoseEvent<'static> {
    FirehoseEvent { invocation_id: Some("inv".into()), records, ..FirehoseEvent::default() }
}

/// One line per record: `id result dt/hour` and the decoded output lines (or the failure reason).
fn render(outcome: &Outcome) -> Vec<String> {
    outcome
        .response
        .records
        .iter()
        .map(|r| {
            let keys = &r.metadata.partition_keys;
            let id = r.record_id.clone().unwrap();
            let mut line = format!("{id} {} {}/{}", r.result.as_deref().unwrap(), keys["dt"], keys["hour"]);
            if let Some(f) = outcome.failures.iter().find(|f| f.record_id == id) {
                line.push_str(&format!(" | {}", f.reason));
            }
            for datum in String::from_utf8(r.data.0.clone()).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(datum).unwrap();
                line.push_str(&format!(" | {}@{}", v["metric_name"].as_str().unwrap(), v["timestamp"]));
            }
            line
        })
        .collect()
}

fn check(config: &Config, records: Vec<FirehoseRecord<'static>>, expected: &[&str]) -> Outcome {
    let event = event(records);
    let outcome = transform(config, &event);
    assert_eq!(render(&outcome), expected);
    check_json_is_the_response(&outcome, &transform_to_json(config, &event));
    check_writer_writes_the_json(config, &event);
    outcome
}

/// [`transform_to_writer`] writes exactly [`transform_to_json`]'s bytes, with the same numbers.
fn check_writer_writes_the_json(config: &Config, event: &FirehoseEvent<'_>) {
    let json = transform_to_json(config, event);
    let mut written = Vec::new();
    let streamed = transform_to_writer(config, event, &mut written).unwrap();
    assert_eq!(String::from_utf8(written).unwrap(), String::from_utf8(json.response).unwrap());
    assert_eq!(streamed.stats, Stats { duration: streamed.stats.duration, ..json.stats });
    assert_eq!(streamed.failures, json.failures);
}

/// `serde_json`'s bytes for a response, with each record's partition keys in the hand-written
/// order (`dt`, then `hour`): a `HashMap` serializes its keys in an order that varies by process.
fn serde_bytes_in_written_order(response: &KinesisFirehoseResponse) -> Vec<u8> {
    let text = serde_json::to_string(response).unwrap();
    let (marker, mut out, mut rest) = ("\"partitionKeys\":{\"hour\":", String::new(), text.as_str());
    while let Some(at) = rest.find(marker) {
        // `{"hour":"HH","dt":"YYYY-MM-DD"}` -> `{"dt":"YYYY-MM-DD","hour":"HH"}`
        let after = &rest[at + marker.len()..];
        let close = after.find('}').unwrap();
        let (hour, dt) = after[..close].split_once(",\"dt\":").unwrap();
        out.push_str(&rest[..at]);
        out.push_str(&format!("\"partitionKeys\":{{\"dt\":{dt},\"hour\":{hour}}}"));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out.into_bytes()
}

/// The hand-written JSON is exactly what `serde_json` writes for `transform`'s response, reads
/// back into `aws_lambda_events`' type as that response, and comes with the same numbers.
fn check_json_is_the_response(typed: &Outcome, json: &Outcome<Vec<u8>>) {
    assert_eq!(
        String::from_utf8(json.response.clone()).unwrap(),
        String::from_utf8(serde_bytes_in_written_order(&typed.response)).unwrap()
    );
    let parsed: KinesisFirehoseResponse = serde_json::from_slice(&json.response).unwrap();
    assert_eq!(parsed, typed.response);
    assert_eq!(json.stats, Stats { duration: json.stats.duration, ..typed.stats.clone() });
    assert_eq!(json.failures, typed.failures);
}

/// A writer that takes `room` bytes and then fails, as a closed pipe would.
struct FailingWriter {
    room: usize,
    written: Vec<u8>,
}

impl std::io::Write for FailingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.written.len() + buf.len() > self.room {
            return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the reader went away"));
        }
        self.written.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_writer_is_an_error_after_every_record_is_decided() {
    let records = (0..3).map(|i| record(&format!("r{i}"), A.as_bytes())).collect();
    let event = event(records);
    for room in [0, 40, 1000] {
        let mut out = FailingWriter { room, written: Vec::new() };
        let error = transform_to_writer(&Config::default(), &event, &mut out).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe);
        assert!(out.written.len() <= room);
    }
}

#[test]
fn record_ids_are_escaped_as_serde_json_escapes_them() {
    let ids = ["plain", "quote\"back\\slash", "line\nbreak\u{1}", "émoji 🦀", "</script>"];
    let expected: Vec<String> = ids.iter().map(|id| format!("{id} Ok 2025-11-26/07 | CPUUtilization@1764140400000")).collect();
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    check(&Config::default(), ids.iter().map(|id| record(id, A.as_bytes())).collect(), &expected);
}

#[test]
fn data_with_escapes_in_the_event_is_read_like_borrowed_data() {
    // A JSON writer may escape any character (`\/` for `/`, `\u0065` for `e`); such a string
    // cannot be borrowed, and must decode the same.
    let plain = serde_json::to_string(&event(vec![record("r", B.as_bytes())])).unwrap();
    let data = BASE64.encode(B.as_bytes());
    let escaped = plain.replace(&data, &format!("\\u{:04x}{}", data.as_bytes()[0], &data[1..]));
    assert_ne!(plain, escaped);
    let plain: FirehoseEvent<'_> = serde_json::from_str(&plain).unwrap();
    let escaped: FirehoseEvent<'_> = serde_json::from_str(&escaped).unwrap();
    assert!(matches!(plain.records[0].data, Some(Cow::Borrowed(_))));
    assert!(matches!(escaped.records[0].data, Some(Cow::Owned(_))));
    assert_eq!(transform(&Config::default(), &plain).response, transform(&Config::default(), &escaped).response);
    // `null` and an absent `data` both mean no data.
    let none: FirehoseEvent<'_> = serde_json::from_str(r#"{"records":[{"recordId":"a","data":null},{"recordId":"b"}]}"#).unwrap();
    assert!(none.records.iter().all(|r| r.data.is_none()));
}

#[test]
fn empty_event() {
    let outcome = check(&Config::default(), vec![], &[]);
    assert_eq!(outcome.stats, Stats { duration: outcome.stats.duration, ..Stats::default() });
    assert_eq!(serde_json::to_string(&outcome.response).unwrap(), r#"{"records":[]}"#);
}

#[test]
fn good_records_are_normalized_and_keyed_by_their_earliest_datum() {
    let outcome = check(
        &Config::default(),
        vec![record("r1", format!("{A}\n{B}\n").as_bytes()), record("r2", A.as_bytes())],
        &[
            "r1 Ok 2025-11-26/06 | CPUUtilization@1764140400000 | Latency@1764140340000",
            "r2 Ok 2025-11-26/07 | CPUUtilization@1764140400000",
        ],
    );
    let data = String::from_utf8(outcome.response.records[1].data.0.clone()).unwrap();
    assert_eq!(
        data,
        r#"{"metric_stream_name":"S","account_id":"1","region":"us-east-1","namespace":"AWS/EC2","metric_name":"CPUUtilization","dimensions":{"InstanceId":"i-1"},"timestamp":1764140400000,"value":{"count":1.0,"sum":2.0,"max":2.0,"min":2.0},"unit":"Percent"}"#.to_owned() + "\n"
    );
    assert_eq!((outcome.stats.records_ok, outcome.stats.datums), (2, 3));
}

#[test]
fn one_bad_line_fails_the_whole_record() {
    let outcome = check(
        &Config::default(),
        vec![
            record("good", A.as_bytes()),
            record("mixed", format!("{A}\n{{\"namespace\":\"x\"}}\n").as_bytes()),
            record("after", B.as_bytes()),
        ],
        &[
            "good Ok 2025-11-26/07 | CPUUtilization@1764140400000",
            "mixed ProcessingFailed 2025-11-26/08 | 1 of 2 lines invalid; first: line 2: missing field `account_id`",
            "after Ok 2025-11-26/06 | Latency@1764140340000",
        ],
    );
    assert!(outcome.response.records[1].data.0.is_empty(), "a failed record carries no data: Firehose keeps the original");
    assert_eq!(outcome.stats.records_failed, 1);
}

#[test]
fn undecodable_records_fail_with_a_reason() {
    let mut no_data = record("no-data", b"");
    no_data.data = None;
    let mut bad_b64 = record("bad-base64", b"");
    bad_b64.data = Some("not*base64".into());
    let whole = gzip(A.as_bytes());
    let config = Config { max_decompressed_bytes: 1 << 20, ..Config::default() };
    check(
        &config,
        vec![
            no_data,
            bad_b64,
            record("truncated-gzip", &whole[..whole.len() - 9]),
            record("bomb", &gzip(&vec![b'\n'; 5 << 20])),
            record("not-json", b"hello"),
            record("not-a-datum", br#"{"TICKER_SYMBOL":"KIN"}"#),
        ],
        &[
            "no-data ProcessingFailed 2025-11-26/08 | the record has no `data`",
            "bad-base64 ProcessingFailed 2025-11-26/08 | `data` is not valid base64: Invalid symbol 42, offset 3.",
            "truncated-gzip ProcessingFailed 2025-11-26/08 | invalid gzip data: incomplete deflate stream",
            "bomb ProcessingFailed 2025-11-26/08 | gzip data decompresses to more than 1048576 bytes (the decompression cap)",
            "not-json ProcessingFailed 2025-11-26/08 | 1 of 1 lines invalid; first: line 1: invalid JSON: expected value at column 1",
            "not-a-datum ProcessingFailed 2025-11-26/08 | 1 of 1 lines invalid; first: line 1: not a CloudWatch metric-stream datum (it has none of the datum's fields)",
        ],
    );
}

#[test]
fn gzip_wrapped_records_leave_as_plain_json() {
    let outcome = check(
        &Config::default(),
        vec![record("gz", &gzip(format!("{B}\r\n{A}").as_bytes()))],
        &["gz Ok 2025-11-26/06 | Latency@1764140340000 | CPUUtilization@1764140400000"],
    );
    assert!(outcome.response.records[0].data.0.starts_with(b"{\"metric_stream_name\""));
}

#[test]
fn exact_duplicates_inside_a_record_are_removed() {
    let b_reordered = B.replace(r#""count":3,"sum":6"#, r#""sum":6,"count":3"#);
    let outcome = check(
        &Config::default(),
        vec![record("dups", format!("{A}\n{B}\n{A}\n{b_reordered}\n").as_bytes())],
        &["dups Ok 2025-11-26/06 | CPUUtilization@1764140400000 | Latency@1764140340000"],
    );
    assert_eq!(outcome.stats.duplicates_removed, 2);
    // The same datum as CloudWatch writes it (copied to the output nearly as it is) and with its
    // fields spaced and reordered (decoded into a datum first): still one line.
    let b_spaced =
        B.replace(",", ", ").replace(r#""namespace":"App/Api","#, "").replace("{\"metric", "{\"namespace\":\"App/Api\",\"metric");
    assert_ne!(b_spaced, B);
    let outcome = check(
        &Config::default(),
        vec![record("paths", format!("{b_spaced}\n{B}\n{b_reordered}\n{b_spaced}").as_bytes())],
        &["paths Ok 2025-11-26/06 | Latency@1764140340000"],
    );
    assert_eq!(outcome.stats.duplicates_removed, 3);
    // The same datum in two records is not a duplicate within a record: the compactor merges those.
    let outcome = transform(&Config::default(), &event(vec![record("x", A.as_bytes()), record("y", A.as_bytes())]));
    assert_eq!(outcome.stats.datums, 2);
}

#[test]
fn filters_drop_records_with_nothing_left() {
    let config = Config::from_vars([("CWMS_EXCLUDE_NAMESPACES".to_owned(), "App/*".to_owned())]).unwrap();
    let outcome = check(
        &config,
        vec![record("mixed", format!("{A}\n{B}").as_bytes()), record("app-only", B.as_bytes()), record("blank", b"\n\n")],
        &["mixed Ok 2025-11-26/07 | CPUUtilization@1764140400000", "app-only Dropped 2025-11-26/08", "blank Dropped 2025-11-26/08"],
    );
    assert_eq!((outcome.stats.records_dropped, outcome.stats.datums_filtered), (2, 2));
    assert!(outcome.failures.is_empty(), "dropping is not failing");
}

#[test]
fn response_never_exceeds_its_limit() {
    let payload: String = (0..400).map(|i| A.replace("1764140400000", &(1764140400000i64 + i * 60_000).to_string()) + "\n").collect();
    let records: Vec<_> = (0..10).map(|i| record(&format!("r{i}"), payload.as_bytes())).collect();
    let config = Config { max_response_bytes: 500_000, ..Config::default() };
    let outcome = transform(&config, &event(records));
    let size = serde_json::to_vec(&outcome.response).unwrap().len();
    assert!(size <= 500_000, "response of {size} bytes");
    let results: Vec<&str> = outcome.response.records.iter().map(|r| r.result.as_deref().unwrap()).collect();
    assert!(results.contains(&"Ok") && results.contains(&"ProcessingFailed"), "{results:?}");
    // Records are failed deliberately once the budget is spent, and say why.
    assert!(outcome.failures.iter().all(|f| f.reason.contains("would take the response past its 500000 byte limit")));
    assert_eq!(outcome.stats.records_ok + outcome.stats.records_failed, 10);
}

#[test]
fn every_record_id_once_in_order() {
    let records: Vec<_> = (0..50).map(|i| record(&format!("id-{i}"), if i % 3 == 0 { b"junk" } else { A.as_bytes() })).collect();
    let outcome = transform(&Config::default(), &event(records.clone()));
    let ids: Vec<_> = outcome.response.records.iter().map(|r| r.record_id.clone().unwrap()).collect();
    assert_eq!(ids, records.iter().map(|r| r.record_id.clone()).collect::<Vec<_>>());
}

/// Bytes to corrupt a good record with: flip, cut or splice.
fn corrupt(bytes: &[u8], how: u8, at: usize) -> Vec<u8> {
    let mut v = bytes.to_vec();
    if v.is_empty() {
        return v;
    }
    let at = at % v.len();
    match how % 4 {
        0 => v[at] ^= 0x5a,
        1 => v.truncate(at),
        2 => v.insert(at, b'\n'),
        _ => v.splice(at..at, b"{\"x\":".iter().copied()).for_each(drop),
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the records hold, the response keeps Firehose's contract.
    #[test]
    fn contract_holds_for_random_and_corrupted_events(
        specs in prop::collection::vec((any::<u8>(), any::<usize>(), any::<bool>(), prop::collection::vec(any::<u8>(), 0..64), any::<bool>()), 0..40),
        cap in 20_000usize..200_000,
    ) {
        let good = format!("{A}\n{B}\n");
        let records: Vec<FirehoseRecord<'static>> = specs
            .iter()
            .enumerate()
            .map(|(i, (how, at, random, noise, zipped))| {
                let bytes = if *random { noise.clone() } else { corrupt(good.as_bytes(), *how, *at) };
                let bytes = if *zipped { gzip(&bytes) } else { bytes };
                let mut r = record(&format!("rec-{i}"), &bytes);
                if *how == 255 {
                    r.data = Some(format!("{}!", r.data.unwrap()).into());
                }
                r
            })
            .collect();
        let config = Config { max_response_bytes: cap, ..Config::default() };
        let outcome = transform(&config, &event(records.clone()));
        let response = &outcome.response.records;
        prop_assert_eq!(response.len(), records.len());
        for (out, input) in response.iter().zip(&records) {
            prop_assert_eq!(out.record_id.as_deref(), Some(input.record_id.as_str()));
            let result = out.result.as_deref().unwrap();
            prop_assert!(["Ok", "Dropped", "ProcessingFailed"].contains(&result));
            prop_assert!(out.metadata.partition_keys.contains_key("dt") && out.metadata.partition_keys.contains_key("hour"));
            if result == "Ok" {
                for line in std::str::from_utf8(&out.data.0).unwrap().lines() {
                    prop_assert!(cwms_decode::decode_line(line.as_bytes()).is_ok(), "Ok output must decode: {line}");
                }
            } else {
                prop_assert!(out.data.0.is_empty());
            }
        }
        let json = transform_to_json(&config, &event(records.clone()));
        check_json_is_the_response(&outcome, &json);
        check_writer_writes_the_json(&config, &event(records.clone()));
        let bytes = json.response;
        prop_assert!(bytes.len() <= cap, "response {} > cap {}", bytes.len(), cap);
        // The response is valid JSON whose `data` fields are valid base64.
        let parsed: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        for r in parsed["records"].as_array().unwrap() {
            prop_assert!(BASE64.decode(r["data"].as_str().unwrap()).is_ok());
        }
        let s = &outcome.stats;
        prop_assert_eq!(s.records_ok + s.records_dropped + s.records_failed, s.records_in);
        prop_assert_eq!(outcome.failures.len() as u64, s.records_failed);
    }
}

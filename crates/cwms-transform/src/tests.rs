use std::borrow::Cow;
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

/// One line per record: `id result [dt/hour]` and the decoded output lines (or the failure reason).
fn render(outcome: &Outcome) -> Vec<String> {
    outcome
        .response
        .records
        .iter()
        .map(|r| {
            let id = r.record_id.clone();
            let mut line = format!("{id} {}", r.result.as_str());
            if let Some(Metadata { partition_keys: keys }) = &r.metadata {
                line.push_str(&format!(" {}/{}", keys.dt, keys.hour));
            }
            if let Some(f) = outcome.failures.iter().find(|f| f.record_id == id) {
                line.push_str(&format!(" | {}", f.reason));
            }
            for datum in String::from_utf8(r.data.clone()).unwrap().lines() {
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
/// Returns the bytes.
fn check_writer_writes_the_json(config: &Config, event: &FirehoseEvent<'_>) -> Vec<u8> {
    let json = transform_to_json(config, event);
    let mut written = Vec::new();
    let streamed = transform_to_writer(config, event, &mut written).unwrap();
    assert!(written == json.response, "transform_to_writer and transform_to_json differ");
    assert_eq!(streamed.stats, Stats { duration: streamed.stats.duration, ..json.stats });
    assert_eq!(streamed.failures, json.failures);
    written
}

/// The hand-written JSON is exactly what `serde_json` writes for `transform`'s response, reads
/// back as that response, and comes with the same numbers; every entry has the fields Firehose
/// requires (`recordId`, `result`, `data`) and only `Ok` entries have more (`metadata`).
fn check_json_is_the_response(typed: &Outcome, json: &Outcome<Vec<u8>>) {
    assert!(json.response == serde_json::to_vec(&typed.response).unwrap(), "hand-written JSON differs from serde_json's");
    let parsed: FirehoseResponse = serde_json::from_slice(&json.response).unwrap();
    assert_eq!(parsed, typed.response);
    let untyped: serde_json::Value = serde_json::from_slice(&json.response).unwrap();
    for entry in untyped["records"].as_array().unwrap() {
        let keys: Vec<&str> = entry.as_object().unwrap().keys().map(String::as_str).collect();
        let expected: &[&str] =
            if entry["result"] == "Ok" { &["data", "metadata", "recordId", "result"] } else { &["data", "recordId", "result"] };
        assert_eq!(keys, expected, "{entry}");
        if entry["result"] != "Ok" {
            assert_eq!(entry["data"], "", "a non-Ok entry carries no data: Firehose keeps the original bytes");
        }
    }
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
    assert_eq!(transform_to_json(&Config::default(), &event(vec![])).response, br#"{"records":[]}"#);
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
    let data = String::from_utf8(outcome.response.records[1].data.clone()).unwrap();
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
            "mixed ProcessingFailed | 1 of 2 lines invalid; first: line 2: missing field `account_id`",
            "after Ok 2025-11-26/06 | Latency@1764140340000",
        ],
    );
    assert!(outcome.response.records[1].data.is_empty(), "a failed record carries no data: Firehose keeps the original");
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
            "no-data ProcessingFailed | the record has no `data`",
            "bad-base64 ProcessingFailed | `data` is not valid base64: Invalid symbol 42, offset 3.",
            "truncated-gzip ProcessingFailed | invalid gzip data: incomplete deflate stream",
            "bomb ProcessingFailed | gzip data decompresses to more than 1048576 bytes (the decompression cap)",
            "not-json ProcessingFailed | invalid OpenTelemetry record (what does not start with `{` is not JSON): message 1 at byte 0: \
             the length prefix says 104 bytes but only 4 follow in the record",
            "not-a-datum ProcessingFailed | 1 of 1 lines invalid; first: line 1: not a CloudWatch metric-stream datum (it has none of the datum's fields)",
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
    assert!(outcome.response.records[0].data.starts_with(b"{\"metric_stream_name\""));
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
        &["mixed Ok 2025-11-26/07 | CPUUtilization@1764140400000", "app-only Dropped", "blank Dropped"],
    );
    assert_eq!((outcome.stats.records_dropped, outcome.stats.datums_filtered), (2, 2));
    assert!(outcome.failures.is_empty(), "dropping is not failing");
}

#[test]
fn every_record_id_once_in_order() {
    let records: Vec<_> = (0..50).map(|i| record(&format!("id-{i}"), if i % 3 == 0 { b"junk" } else { A.as_bytes() })).collect();
    let outcome = transform(&Config::default(), &event(records.clone()));
    let ids: Vec<_> = outcome.response.records.iter().map(|r| r.record_id.clone()).collect();
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

/// A datum of instance `series` at minute `minute`, as CloudWatch writes it.
fn datum(series: usize, minute: usize) -> String {
    A.replace("\"i-1\"", &format!("\"i-{series:06}\"")).replace("1764140400000", &(1_764_140_400_000 + minute as i64 * 60_000).to_string())
}

/// `lines` distinct datums of one series, one per line.
fn datums(series: usize, lines: usize) -> String {
    (0..lines).map(|minute| datum(series, minute) + "\n").collect()
}

/// A record id as Firehose makes them: 56 digits.
fn firehose_id(i: usize) -> String {
    format!("4954698668313554428650745793632162567570019247{:010}", 1_156_785_154 + i)
}

/// Transforms `event` with `config` through every way of writing the response, checks that they
/// agree byte for byte, that the bytes written are within the cap and hold every record id once
/// and in order, and returns the bytes with the outcome.
fn check_budget(config: &Config, event: &FirehoseEvent<'_>) -> (Vec<u8>, Outcome) {
    let written = check_writer_writes_the_json(config, event);
    let typed = transform(config, event);
    // The bytes are serde_json's of the typed response, so its ids are theirs.
    assert!(written == serde_json::to_vec(&typed.response).unwrap(), "hand-written JSON differs from serde_json's");
    assert!(
        written.len() <= config.max_response_bytes,
        "a response of {} bytes, over the cap of {}",
        written.len(),
        config.max_response_bytes
    );
    assert!(!typed.stats.over_budget);
    let ids: Vec<&str> = typed.response.records.iter().map(|r| r.record_id.as_str()).collect();
    let sent: Vec<&str> = event.records.iter().map(|r| r.record_id.as_str()).collect();
    assert!(ids == sent, "the response's record ids are not the request's, once each and in order");
    (written, typed)
}

fn request_bytes(event: &FirehoseEvent<'_>) -> usize {
    serde_json::to_vec(event).unwrap().len()
}

/// The request the default cap was first seen broken by: 4,000 gzip-wrapped records of 20 lines,
/// 56-character ids, 2.2 MB. The `Ok` records fill the budget, and the 3,000-odd entries of the
/// records failed after them must still fit.
#[test]
fn many_failed_entries_after_a_full_budget_still_fit() {
    let records: Vec<_> = (0..4000).map(|i| record(&firehose_id(i), &gzip(datums(i, 20).as_bytes()))).collect();
    let event = event(records);
    assert!((2_000_000..2_500_000).contains(&request_bytes(&event)), "{}", request_bytes(&event));
    let (written, outcome) = check_budget(&Config::default(), &event);
    let s = &outcome.stats;
    assert!(s.records_ok > 500 && s.records_over_budget > 2500, "{s:?}");
    assert_eq!(s.records_ok + s.records_failed, 4000);
    // The budget was spent, not merely respected: no further Ok entry (about 6.3 KB) would fit.
    assert!(written.len() > MAX_RESPONSE_BYTES - 6_500, "{} bytes", written.len());
    // The first record over the budget says why.
    let reason = &outcome.failures[0].reason;
    assert!(reason.contains("would take the response past its 6000000 byte limit"), "{reason}");
}

/// One large gzip record and 40,000 empty ones: the dropped entries are 4 MB on their own.
#[test]
fn dropped_entries_count_against_the_budget() {
    let mut results = Vec::new();
    for lines in [4000, 6000, 7000, 20_000] {
        let mut records = vec![record(&firehose_id(0), &gzip(datums(0, lines).as_bytes()))];
        records.extend((1..=40_000).map(|i| record(&firehose_id(i), b"")));
        let event = event(records);
        let (written, outcome) = check_budget(&Config::default(), &event);
        assert_eq!(outcome.stats.records_dropped, 40_000);
        let big = outcome.response.records[0].result;
        if big == RecordResult::ProcessingFailed {
            assert_eq!(outcome.stats.records_over_budget, 1);
            // The envelope, 40,000 dropped entries of 100 bytes, their commas and the failed
            // entry: nothing else is in the response.
            assert_eq!(written.len(), 14 + 40_000 * 100 + 40_000 + outcome.response.records[0].record_id.len() + 53);
        }
        results.push(big);
    }
    assert!(results.contains(&RecordResult::Ok) && results.contains(&RecordResult::ProcessingFailed), "{results:?}");
}

/// A request over Lambda's limit (Firehose never sends one) still gets a response within the cap.
#[test]
fn a_seven_megabyte_request_gets_a_response_within_the_cap() {
    let payload = datums(7, 450);
    let records: Vec<_> = (0..52).map(|i| record(&firehose_id(i), payload.replace("i-000007", &format!("i-{i:06}")).as_bytes())).collect();
    let event = event(records);
    assert!(request_bytes(&event) > 7_000_000, "{}", request_bytes(&event));
    let (written, outcome) = check_budget(&Config::default(), &event);
    assert!(outcome.stats.records_over_budget > 0 && outcome.stats.records_ok > 0);
    assert!(written.len() > MAX_RESPONSE_BYTES - 150_000, "{} bytes", written.len());
}

/// The worst case of the proof at [`MAX_RESPONSE_BYTES`]: a 6 MiB request of the smallest
/// records Firehose can send (one-character ids, empty or one-character data), every one of them
/// ending `Dropped` or `ProcessingFailed`. Its response is all floor entries, and fits.
#[test]
fn floor_of_the_largest_request_firehose_can_send_fits() {
    for (timestamp, data) in [(1_764_144_000_000.0, ""), (1_764_144_000_000.0, "!"), (1.0, "!")] {
        let mut records = Vec::new();
        let mut size = 2 + r#""records":[]"#.len();
        let mut i = 0usize;
        loop {
            let id = char::from_u32(0x21 + (i % 90) as u32).filter(|c| *c != '"' && *c != '\\').unwrap_or('a').to_string();
            let record = FirehoseRecord { record_id: id, approximate_arrival_timestamp: Some(timestamp), data: Some(data.into()) };
            let entry = serde_json::to_vec(&record).unwrap().len() + 1;
            if size + entry > 6_291_456 {
                break;
            }
            size += entry;
            records.push(record);
            i += 1;
        }
        let event = FirehoseEvent { records, ..FirehoseEvent::default() };
        let request = request_bytes(&event);
        assert!(request > 6_291_456 - 100, "{request}");
        let (written, outcome) = check_budget(&Config::default(), &event);
        assert_eq!(outcome.stats.records_ok, 0);
        assert!(written.len() as f64 <= request as f64 * 54.0 / 58.0 + 14.0, "{} > 54/58 of {request}", written.len());
    }
}

/// What a Firehose request's records hold, for the property test.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A few datums, plain.
    Plain,
    /// 400 distinct datums gzip-wrapped: about 90 KB of normalized output from 6 KB of base64.
    Inflating,
    /// No bytes at all: `Dropped`.
    Empty,
    /// Not JSON: `ProcessingFailed`.
    BadLine,
    /// Not base64: `ProcessingFailed`.
    BadBase64,
}

fn payload(kind: Kind) -> &'static str {
    use std::sync::LazyLock;
    static PLAIN: LazyLock<String> = LazyLock::new(|| BASE64.encode(datums(1, 3)));
    static INFLATING: LazyLock<String> = LazyLock::new(|| BASE64.encode(gzip(datums(2, 400).as_bytes())));
    static BAD_LINE: LazyLock<String> = LazyLock::new(|| BASE64.encode(format!("{A}\nhello\n")));
    match kind {
        Kind::Plain => &PLAIN,
        Kind::Inflating => &INFLATING,
        Kind::Empty => "",
        Kind::BadLine => &BAD_LINE,
        Kind::BadBase64 => "QUJD!",
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![Just(Kind::Plain), Just(Kind::Inflating), Just(Kind::Empty), Just(Kind::BadLine), Just(Kind::BadBase64)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// Requests up to 6,000,000 bytes of thousands of records, mixing inflating gzip records,
    /// empty records, bad records and long ids: the response is at most the cap, holds every id
    /// exactly once and in order, and is the same bytes however it is written.
    #[test]
    fn no_request_gets_a_response_over_the_cap(
        runs in prop::collection::vec((kind(), 1usize..3000, 1usize..400), 1..20),
        target in 1usize..=6_000_000,
    ) {
        let mut records = Vec::new();
        let mut size = r#"{"records":[]}"#.len();
        let mut inflating = 0;
        'fill: for (kind, count, id_len) in runs.iter().cycle().take(200) {
            for _ in 0..*count {
                if matches!(kind, Kind::Inflating) {
                    // Bound the test's time, not the request's size.
                    if inflating == 60 { break; }
                    inflating += 1;
                }
                let id = format!("{:0>id_len$}", records.len());
                let record = FirehoseRecord { record_id: id, approximate_arrival_timestamp: Some(1_764_144_000_000.0), data: Some(Cow::Borrowed(payload(*kind))) };
                let entry = serde_json::to_vec(&record).unwrap().len() + 1;
                if size + entry > target {
                    break 'fill;
                }
                size += entry;
                records.push(record);
            }
        }
        let event = FirehoseEvent { records, ..FirehoseEvent::default() };
        prop_assert!(request_bytes(&event) <= 6_000_000);
        check_budget(&Config::default(), &event);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Whatever the records hold, the response keeps Firehose's contract; with caps small enough
    /// to bite (and sometimes below the floor, which is then what is written).
    #[test]
    fn contract_holds_for_random_and_corrupted_events(
        specs in prop::collection::vec((any::<u8>(), any::<usize>(), any::<bool>(), prop::collection::vec(any::<u8>(), 0..64), any::<bool>()), 0..40),
        cap in 200usize..20_000,
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
            prop_assert_eq!(out.record_id.as_str(), input.record_id.as_str());
            prop_assert_eq!(out.metadata.is_some(), out.result == RecordResult::Ok);
            if out.result == RecordResult::Ok {
                for line in std::str::from_utf8(&out.data).unwrap().lines() {
                    prop_assert!(cwms_decode::decode_line(line.as_bytes()).is_ok(), "Ok output must decode: {line}");
                }
            } else {
                prop_assert!(out.data.is_empty());
            }
        }
        let json = transform_to_json(&config, &event(records.clone()));
        check_json_is_the_response(&outcome, &json);
        let bytes = check_writer_writes_the_json(&config, &event(records.clone()));
        if outcome.stats.over_budget {
            // Even the smallest entries do not fit: they are all there is, and none is `Ok`.
            prop_assert_eq!(outcome.stats.records_ok, 0);
            let floor: Vec<u8> = serde_json::to_vec(&FirehoseResponse {
                records: response.iter().map(|r| ResponseRecord { data: Vec::new(), metadata: None, ..r.clone() }).collect(),
            }).unwrap();
            prop_assert!(bytes.len() <= floor.len() + 9 * response.len());
        } else {
            prop_assert!(bytes.len() <= cap, "response {} > cap {}", bytes.len(), cap);
        }
        let s = &outcome.stats;
        prop_assert_eq!(s.records_ok + s.records_dropped + s.records_failed, s.records_in);
        prop_assert_eq!(outcome.failures.len() as u64, s.records_failed);
    }
}

mod otel;

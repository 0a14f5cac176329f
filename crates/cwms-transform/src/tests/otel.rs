//! OpenTelemetry records: the same datums as JSON records leave as the same response.

use cwms_decode::decode_lines;
use cwms_model::OwnedDatum;
use cwms_model::otel::{OtelVersion, write_otel_message};

use super::*;

/// The datums of JSON lines.
fn datums_of(lines: &str) -> Vec<OwnedDatum> {
    let decoded = decode_lines(lines.as_bytes());
    assert!(decoded.is_clean(), "{:?}", decoded.errors);
    decoded.datums.into_iter().map(cwms_model::Datum::into_owned).collect()
}

/// The datums of JSON lines as one OpenTelemetry record of `version`, a message of at most
/// `per_message` data points at a time.
fn otel(lines: &str, version: OtelVersion, per_message: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in datums_of(lines).chunks(per_message) {
        write_otel_message(chunk, version, &mut out).unwrap();
    }
    out
}

/// Every record in the three formats (and gzip-wrapped), with the same ids: one event per format.
fn events(records: &[(&str, String)]) -> [FirehoseEvent<'static>; 5] {
    let each = |encode: &dyn Fn(&str) -> Vec<u8>| event(records.iter().map(|(id, lines)| record(id, &encode(lines))).collect());
    [
        each(&|lines| lines.as_bytes().to_vec()),
        each(&|lines| otel(lines, OtelVersion::V1_0, 1)),
        each(&|lines| otel(lines, OtelVersion::V0_7, 2)),
        each(&|lines| gzip(&otel(lines, OtelVersion::V1_0, 3))),
        each(&|lines| gzip(&otel(lines, OtelVersion::V0_7, 100))),
    ]
}

#[test]
fn the_same_datums_in_every_format_give_the_same_response() {
    let a_later = datum(1, 3);
    let records = [
        ("one", format!("{A}\n")),
        ("two-with-duplicates", format!("{A}\n{B}\n{A}\n{a_later}\n{B}\n")),
        ("several-series", datums(2, 7) + &datums(3, 5)),
    ];
    let [json, rest @ ..] = events(&records);
    let config = Config::default();
    let expected = transform_to_json(&config, &json);
    assert_eq!(
        render(&transform(&config, &json)),
        [
            "one Ok 2025-11-26/07 | CPUUtilization@1764140400000",
            "two-with-duplicates Ok 2025-11-26/06 | CPUUtilization@1764140400000 | Latency@1764140340000 | CPUUtilization@1764140580000",
            "several-series Ok 2025-11-26/07 | CPUUtilization@1764140400000 | CPUUtilization@1764140460000 | CPUUtilization@1764140520000 | CPUUtilization@1764140580000 | CPUUtilization@1764140640000 | CPUUtilization@1764140700000 | CPUUtilization@1764140760000 | CPUUtilization@1764140400000 | CPUUtilization@1764140460000 | CPUUtilization@1764140520000 | CPUUtilization@1764140580000 | CPUUtilization@1764140640000",
        ]
    );
    let datums = 1 + 5 + 12;
    assert_eq!((expected.stats.records_json, expected.stats.records_opentelemetry, expected.stats.duplicates_removed), (3, 0, 2));
    for (i, event) in rest.iter().enumerate() {
        let got = transform_to_json(&config, event);
        assert!(got.response == expected.response, "format {i}: the response differs from JSON's");
        let s = &got.stats;
        assert_eq!((s.records_ok, s.datums, s.duplicates_removed, s.records_json, s.records_opentelemetry), (3, 16, 2, 0, 3), "{i}");
        let by_version = (s.datums_opentelemetry_1_0, s.datums_opentelemetry_0_7);
        assert_eq!(by_version, if i % 2 == 0 { (datums, 0) } else { (0, datums) }, "{i}");
        check_json_is_the_response(&transform(&config, event), &got);
        check_writer_writes_the_json(&config, event);
    }
}

#[test]
fn filters_apply_to_opentelemetry_records() {
    let config = Config::from_vars([("CWMS_EXCLUDE_NAMESPACES".to_owned(), "App/*".to_owned())]).unwrap();
    let records = [("mixed", format!("{A}\n{B}\n")), ("app-only", format!("{B}\n"))];
    let [json, rest @ ..] = events(&records);
    let expected = transform_to_json(&config, &json);
    assert_eq!(render(&transform(&config, &json)), ["mixed Ok 2025-11-26/07 | CPUUtilization@1764140400000", "app-only Dropped"]);
    for event in &rest {
        let got = transform_to_json(&config, event);
        assert!(got.response == expected.response);
        assert_eq!((got.stats.records_dropped, got.stats.datums_filtered), (1, 2));
    }
}

#[test]
fn a_bad_opentelemetry_record_fails_alone_naming_what_and_where() {
    // Two messages, of 372 and 373 bytes with their prefixes.
    let good = otel(&format!("{A}\n{B}\n"), OtelVersion::V1_0, 1);
    assert_eq!(good.len(), 745);
    let mut trailing = good.clone();
    trailing.push(0x80);
    let outcome = check(
        &Config::default(),
        vec![
            record("good", &good),
            record("cut", &good[..744]),
            record("trailing", &trailing),
            record("cut-gzip", &gzip(&good[..253])),
            record("after", &good),
        ],
        &[
            "good Ok 2025-11-26/06 | CPUUtilization@1764140400000 | Latency@1764140340000",
            "cut ProcessingFailed | invalid OpenTelemetry record (what does not start with `{` is not JSON): message 2 at byte 372: the last 372 bytes of the record are not a \
             length-prefixed message: the length prefix says 371 bytes but only 370 follow in the record",
            "trailing ProcessingFailed | invalid OpenTelemetry record (what does not start with `{` is not JSON): message 3 at byte 745: the last 1 bytes of the record are not a \
             length-prefixed message: the record ends inside the length prefix (a truncated varint)",
            "cut-gzip ProcessingFailed | invalid OpenTelemetry record (what does not start with `{` is not JSON): message 1 at byte 0: the length prefix says 370 bytes but only \
             251 follow in the record",
            "after Ok 2025-11-26/06 | CPUUtilization@1764140400000 | Latency@1764140340000",
        ],
    );
    assert_eq!((outcome.stats.records_ok, outcome.stats.records_failed, outcome.stats.records_opentelemetry), (2, 3, 5));
    // A failed record's datums count for no version: it delivered none.
    assert_eq!(outcome.stats.datums_opentelemetry_1_0, 4);
}

#[test]
fn a_set_stream_format_overrides_the_bytes() {
    let lines = format!("{A}\n");
    let (v10, v07) = (otel(&lines, OtelVersion::V1_0, 1), otel(&lines, OtelVersion::V0_7, 1));
    let records = || vec![record("json", lines.as_bytes()), record("v1.0", &v10), record("v0.7", &gzip(&v07))];
    let with = |format: &str| Config::from_vars([("CWMS_STREAM_FORMAT".to_owned(), format.to_owned())]).unwrap();
    let ok = "Ok 2025-11-26/07 | CPUUtilization@1764140400000";
    let point = "resource_metrics[0].scope_metrics[0].metrics[0].summary.data_points[0] (metric \"amazonaws.com/AWS/EC2/CPUUtilization\")";
    check(&with("auto"), records(), &[&format!("json {ok}"), &format!("v1.0 {ok}"), &format!("v0.7 {ok}")]);
    let outcome = check(
        &with("json"),
        records(),
        &[
            &format!("json {ok}"),
            "v1.0 ProcessingFailed | 25 of 25 lines invalid; first: line 1: invalid JSON: expected value at column 1",
            "v0.7 ProcessingFailed | 23 of 23 lines invalid; first: line 1: invalid JSON: expected value at column 1",
        ],
    );
    assert_eq!((outcome.stats.records_json, outcome.stats.records_opentelemetry), (3, 0));
    check(
        &with("opentelemetry1.0"),
        records(),
        &[
            // `{` read as a length (123) and the line's text as protobuf.
            "json ProcessingFailed | invalid OpenTelemetry record: message 1 at byte 121: field 12 needs 4 bytes but its message has 2 left",
            &format!("v1.0 {ok}"),
            &format!(
                "v0.7 ProcessingFailed | invalid OpenTelemetry record: message 1 at byte 210, {point}: \
                 the data point has 0.7 labels (field 1), but the stream format is set to opentelemetry1.0"
            ),
        ],
    );
    check(
        &with("opentelemetry0.7"),
        records(),
        &[
            "json ProcessingFailed | invalid OpenTelemetry record: message 1 at byte 121: field 12 needs 4 bytes but its message has 2 left",
            &format!(
                "v1.0 ProcessingFailed | invalid OpenTelemetry record: message 1 at byte 210, {point}: \
                 the data point has 1.0 attributes (field 7), but the stream format is set to opentelemetry0.7"
            ),
            &format!("v0.7 {ok}"),
        ],
    );
}

/// OpenTelemetry records are smaller than their normalized lines: an event of them can ask for
/// more than the response may hold, and the records past the budget fail, from the end.
#[test]
fn opentelemetry_records_past_the_budget_fail_and_the_response_fits() {
    let records: Vec<_> = (0..600).map(|i| record(&firehose_id(i), &otel(&datums(i, 40), OtelVersion::V1_0, 50))).collect();
    let event = event(records);
    let (written, outcome) = check_budget(&Config::default(), &event);
    let s = &outcome.stats;
    assert!(s.records_ok > 0 && s.records_over_budget > 0, "{s:?}");
    assert!(written.len() > MAX_RESPONSE_BYTES - 20_000, "{} bytes", written.len());
    assert!(outcome.failures[0].reason.contains("would take the response past its 6000000 byte limit"));
}

//! The OpenTelemetry decoder: records built field by field here (a small protobuf writer that
//! shares nothing with the decoder or the encoder), every problem it names, and properties over
//! random and mutated records.

use std::borrow::Cow;

use cwms_model::Datum;
use proptest::prelude::*;

use super::*;
use crate::rules::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};

/// A protobuf message written field by field.
#[derive(Clone, Default)]
struct Pb(Vec<u8>);

fn varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

impl Pb {
    fn tag(mut self, field: u32, wire_type: u8) -> Self {
        varint(&mut self.0, u64::from(field) << 3 | u64::from(wire_type));
        self
    }
    fn bytes(self, field: u32, b: &[u8]) -> Self {
        let mut s = self.tag(field, 2);
        varint(&mut s.0, b.len() as u64);
        s.0.extend_from_slice(b);
        s
    }
    fn str(self, field: u32, s: &str) -> Self {
        self.bytes(field, s.as_bytes())
    }
    fn msg(self, field: u32, m: Pb) -> Self {
        self.bytes(field, &m.0)
    }
    fn fixed(self, field: u32, v: u64) -> Self {
        let mut s = self.tag(field, 1);
        s.0.extend_from_slice(&v.to_le_bytes());
        s
    }
    fn double(self, field: u32, v: f64) -> Self {
        self.fixed(field, v.to_bits())
    }
    fn varint(self, field: u32, v: u64) -> Self {
        let mut s = self.tag(field, 0);
        varint(&mut s.0, v);
        s
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
}

/// Messages framed as one record: each preceded by its length as a varint.
fn record(messages: &[Pb]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        varint(&mut out, m.0.len() as u64);
        out.extend_from_slice(&m.0);
    }
    out
}

fn any_str(s: &str) -> Pb {
    Pb::default().str(1, s)
}

fn kv(key: &str, value: Pb) -> Pb {
    Pb::default().str(1, key).msg(2, value)
}

const ARN: &str = "arn:aws:cloudwatch:us-east-1:123456789012:metric-stream/MyMetricStream";

/// CloudWatch's resource: provider, account, region, stream ARN (as the AWS examples order them).
fn resource(account: &str, region: &str, arn: &str) -> Pb {
    Pb::default()
        .msg(1, kv("cloud.provider", any_str("aws")))
        .msg(1, kv("cloud.account.id", any_str(account)))
        .msg(1, kv("cloud.region", any_str(region)))
        .msg(1, kv("aws.exporter.arn", any_str(arn)))
}

/// A summary data point, before it is written in one version or the other.
#[derive(Clone)]
struct Point {
    namespace: Option<&'static str>,
    metric_name: Option<&'static str>,
    dimensions: Vec<(&'static str, &'static str)>,
    start_nanos: u64,
    count: u64,
    sum: f64,
    /// (quantile, value); a quantile of exactly 0.0 is written without its field, as proto3 does.
    quantiles: Vec<(f64, f64)>,
    /// Whether 1.0 writes the `Dimensions` attribute (it does, even for no dimensions).
    dimensions_attribute: bool,
    /// More fields, appended to the data point.
    extra: Pb,
}

const T0_NANOS: u64 = 1_764_140_400_000_000_000; // 2025-11-26T07:00:00Z

fn point() -> Point {
    Point {
        namespace: Some("AWS/EC2"),
        metric_name: Some("CPUUtilization"),
        dimensions: vec![("InstanceId", "i-1")],
        start_nanos: T0_NANOS,
        count: 3,
        sum: 20.0,
        quantiles: vec![(0.0, 1.0), (0.99, 17.5), (1.0, 18.0)],
        dimensions_attribute: true,
        extra: Pb::default(),
    }
}

fn quantile(q: f64, v: f64) -> Pb {
    let m = Pb::default();
    let m = if q.to_bits() == 0 { m } else { m.double(1, q) };
    if v.to_bits() == 0 { m } else { m.double(2, v) }
}

impl Point {
    fn common(&self, m: Pb) -> Pb {
        let mut m = m.fixed(2, self.start_nanos).fixed(3, self.start_nanos + 60_000_000_000).fixed(4, self.count);
        if self.sum.to_bits() != 0 {
            m = m.double(5, self.sum);
        }
        for &(q, v) in &self.quantiles {
            m = m.msg(6, quantile(q, v));
        }
        m
    }

    /// 1.0: `attributes = 7` after the numbers, as Python's protobuf writes them.
    fn v10(&self) -> Pb {
        let mut m = self.common(Pb::default());
        if let Some(ns) = self.namespace {
            m = m.msg(7, kv("Namespace", any_str(ns)));
        }
        if let Some(name) = self.metric_name {
            m = m.msg(7, kv("MetricName", any_str(name)));
        }
        if self.dimensions_attribute {
            let list = self.dimensions.iter().fold(Pb::default(), |l, (k, v)| l.msg(1, kv(k, any_str(v))));
            m = m.msg(7, kv("Dimensions", Pb::default().msg(6, list)));
        }
        m.raw(&self.extra.0)
    }

    /// 0.7: `labels = 1` first, as CloudWatch writes them.
    fn v07(&self) -> Pb {
        let label = |m: Pb, k: &str, v: &str| m.msg(1, Pb::default().str(1, k).str(2, v));
        let mut m = Pb::default();
        if let Some(ns) = self.namespace {
            m = label(m, "Namespace", ns);
        }
        if let Some(name) = self.metric_name {
            m = label(m, "MetricName", name);
        }
        for (k, v) in &self.dimensions {
            m = label(m, k, v);
        }
        self.common(m).raw(&self.extra.0)
    }
}

fn metric(name: &str, unit: &str, points: &[Pb]) -> Pb {
    let summary = points.iter().fold(Pb::default(), |s, p| s.msg(1, p.clone()));
    Pb::default().str(1, name).str(3, unit).msg(11, summary)
}

fn request(resource: Pb, metrics: &[Pb]) -> Pb {
    let scope = metrics.iter().fold(Pb::default(), |s, m| s.msg(2, m.clone()));
    Pb::default().msg(1, Pb::default().msg(1, resource).msg(2, scope))
}

/// One record, one message, one metric of the given data points.
fn one(points: &[Pb]) -> Vec<u8> {
    record(&[request(resource("123456789012", "us-east-1", ARN), &[metric("amazonaws.com/AWS/EC2/CPUUtilization", "%", points)])])
}

/// The normalized lines of a record, or its error as displayed.
fn lines(record: &[u8]) -> Result<Vec<String>, String> {
    let datums = decode_otel(record).map_err(|e| e.to_string())?;
    // The lending form sees the same datums.
    let mut lent = Vec::new();
    let count = for_each_otel_datum(record, |d| lent.push(d.clone().into_owned())).unwrap();
    assert_eq!(count, datums.len());
    assert_eq!(lent, datums);
    Ok(datums
        .iter()
        .map(|d| {
            let mut out = Vec::new();
            d.write_json_line(&mut out);
            String::from_utf8(out).unwrap().trim_end().to_owned()
        })
        .collect())
}

/// The one (first) datum of a record, detached from it.
fn first(record: Vec<u8>) -> Datum<'static> {
    decode_otel(&record).unwrap().remove(0).into_owned()
}

/// The problem and the field path of a record that must fail.
fn error(record: &[u8]) -> (OtelProblem, String) {
    let e = decode_otel(record).expect_err("the record must fail");
    // Compared as text, so that a NaN in a problem equals itself.
    assert_eq!(format!("{:?}", for_each_otel_datum(record, |_| {}).unwrap_err()), format!("{e:?}"), "both forms fail alike");
    (e.problem, e.field)
}

const POINT0: &str = "resource_metrics[0].scope_metrics[0].metrics[0].summary.data_points[0]";

/// A data point that fails, written in both versions: the same problem at the same place.
fn bad_point(p: Point, problem: OtelProblem, leaf: &str) {
    // Compared as text, so that a NaN in a problem equals itself.
    let field = if leaf.is_empty() { POINT0.to_owned() } else { format!("{POINT0}.{leaf}") };
    let expected = format!("{:?}", (problem, field));
    assert_eq!(format!("{:?}", error(&one(&[p.v10()]))), expected, "1.0");
    assert_eq!(format!("{:?}", error(&one(&[p.v07()]))), expected.replace("attributes[", "labels["), "0.7");
}

const LINE: &str = r#"{"metric_stream_name":"MyMetricStream","account_id":"123456789012","region":"us-east-1","namespace":"AWS/EC2","metric_name":"CPUUtilization","dimensions":{"InstanceId":"i-1"},"timestamp":1764140400000,"value":{"count":3.0,"sum":20.0,"max":18.0,"min":1.0,"p99":17.5},"unit":"Percent"}"#;

#[test]
fn a_datum_in_either_version_is_the_json_datum() {
    assert_eq!(lines(&one(&[point().v10()])), Ok(vec![LINE.to_owned()]));
    assert_eq!(lines(&one(&[point().v07()])), Ok(vec![LINE.to_owned()]));
    let json = crate::decode_lines(LINE.as_bytes());
    assert_eq!(decode_otel(&one(&[point().v10()])).unwrap(), json.datums);
}

/// AWS's 1.0 example (the format page), field for field. Its times are 60 s and 70 s after the
/// epoch, which no metric stream sends: cwms refuses them, and reads the same example moved to
/// 2020 (1.6e18 ns later).
#[test]
fn aws_1_0_example() {
    let aws = |shift: u64| {
        let attributes = |m: Pb| {
            m.msg(7, kv("Namespace", any_str("AWS/DynamoDB")))
                .msg(7, kv("MetricName", any_str("ConsumedReadCapacityUnits")))
                .msg(7, kv("Dimensions", Pb::default().msg(6, Pb::default().msg(1, kv("TableName", any_str("MyTable"))))))
        };
        let p1 = Pb::default()
            .fixed(2, 60_000_000_000 + shift)
            .fixed(3, 120_000_000_000 + shift)
            .fixed(4, 1)
            .double(5, 1.0)
            .msg(6, Pb::default().double(2, 1.0))
            .msg(6, quantile(0.95, 1.0))
            .msg(6, quantile(0.99, 1.0))
            .msg(6, quantile(1.0, 1.0));
        let p2 = Pb::default()
            .fixed(2, 70_000_000_000 + shift)
            .fixed(3, 130_000_000_000 + shift)
            .fixed(4, 2)
            .double(5, 5.0)
            .msg(6, Pb::default().double(2, 2.0))
            .msg(6, quantile(1.0, 3.0));
        let m = metric("amazonaws.com/AWS/DynamoDB/ConsumedReadCapacityUnits", "NoneTranslated", &[attributes(p1), attributes(p2)]);
        record(&[request(resource("123456789012", "us-east-1", ARN), &[m])])
    };
    let unshifted = aws(0);
    let e = decode_otel(&unshifted).unwrap_err();
    // The offset is that of the field's tag (0x11, field 2 as fixed64).
    let mut start_field = vec![0x11];
    start_field.extend_from_slice(&60_000_000_000u64.to_le_bytes());
    assert_eq!(unshifted.windows(9).position(|w| w == start_field), Some(274));
    assert_eq!(
        e.to_string(),
        "message 1 at byte 274, resource_metrics[0].scope_metrics[0].metrics[0].summary.data_points[0].start_time_unix_nano \
         (metric \"amazonaws.com/AWS/DynamoDB/ConsumedReadCapacityUnits\"): \
         startTimeUnixNano 60000000000 is not a time from 2000 to 2099 (seconds or microseconds?)"
    );
    let head = r#"{"metric_stream_name":"MyMetricStream","account_id":"123456789012","region":"us-east-1","namespace":"AWS/DynamoDB","metric_name":"ConsumedReadCapacityUnits","dimensions":{"TableName":"MyTable"},"#;
    assert_eq!(
        lines(&aws(1_600_000_000_000_000_000)),
        Ok(vec![
            format!(
                r#"{head}"timestamp":1600000060000,"value":{{"count":1.0,"sum":1.0,"max":1.0,"min":1.0,"p95":1.0,"p99":1.0}},"unit":"NoneTranslated"}}"#
            ),
            format!(r#"{head}"timestamp":1600000070000,"value":{{"count":2.0,"sum":5.0,"max":3.0,"min":2.0}},"unit":"NoneTranslated"}}"#),
        ])
    );
}

/// AWS's 0.7 example (the archived format page), field for field; its account differs from the
/// ARN's, as on the page, and is kept.
#[test]
fn aws_0_7_example() {
    let labels = |m: Pb| {
        [("Namespace", "AWS/DynamoDB"), ("MetricName", "ConsumedReadCapacityUnits"), ("TableName", "MyTable")]
            .iter()
            .fold(m, |m, (k, v)| m.msg(1, Pb::default().str(1, k).str(2, v)))
    };
    let p1 = labels(Pb::default())
        .fixed(2, 1_604_948_400_000_000_000)
        .fixed(3, 1_604_948_460_000_000_000)
        .fixed(4, 1)
        .double(5, 1.0)
        .msg(6, Pb::default().double(2, 1.0))
        .msg(6, quantile(0.95, 1.0))
        .msg(6, quantile(0.99, 1.0))
        .msg(6, quantile(1.0, 1.0));
    let p2 = labels(Pb::default())
        .fixed(2, 1_604_948_460_000_000_000)
        .fixed(3, 1_604_948_520_000_000_000)
        .fixed(4, 2)
        .double(5, 5.0)
        .msg(6, Pb::default().double(2, 2.0))
        .msg(6, quantile(1.0, 3.0));
    let m = metric("amazonaws.com/AWS/DynamoDB/ConsumedReadCapacityUnits", "1", &[p1, p2]);
    let head = r#"{"metric_stream_name":"MyMetricStream","account_id":"2345678901","region":"us-east-1","namespace":"AWS/DynamoDB","metric_name":"ConsumedReadCapacityUnits","dimensions":{"TableName":"MyTable"},"#;
    assert_eq!(
        lines(&record(&[request(resource("2345678901", "us-east-1", ARN), &[m])])),
        Ok(vec![
            format!(
                r#"{head}"timestamp":1604948400000,"value":{{"count":1.0,"sum":1.0,"max":1.0,"min":1.0,"p95":1.0,"p99":1.0}},"unit":"None"}}"#
            ),
            format!(r#"{head}"timestamp":1604948460000,"value":{{"count":2.0,"sum":5.0,"max":3.0,"min":2.0}},"unit":"None"}}"#),
        ])
    );
}

/// The Collector's bug (issue 39462): it read every length from the start of the record, which
/// goes unnoticed while all messages are the same length.
#[test]
fn messages_of_different_lengths_in_one_record() {
    let mut other = point();
    other.dimensions = vec![("AutoScalingGroupName", "web"), ("InstanceId", "i-2")];
    other.start_nanos += 60_000_000_000;
    let a = request(resource("123456789012", "us-east-1", ARN), &[metric("m", "%", &[point().v10()])]);
    let b = request(resource("123456789012", "us-east-1", ARN), &[metric("m", "%", &[other.v07(), point().v07()])]);
    assert_ne!(a.0.len(), b.0.len());
    let two = record(&[a.clone(), b.clone()]);
    let datums = decode_otel(&two).unwrap();
    let dims: Vec<usize> = datums.iter().map(|d| d.dimensions.len()).collect();
    assert_eq!(dims, [1, 2, 1]);
    assert_eq!(datums[1].timestamp_ms, 1_764_140_460_000);
    // Three messages, and empty messages (length 0) between them, which hold no datums.
    let mut three = record(&[b.clone(), Pb::default(), a.clone(), b]);
    three.push(0);
    assert_eq!(decode_otel(&three).unwrap().len(), 5);
}

#[test]
fn framing() {
    let frame = |record: &[u8]| decode_otel(record).map(|d| d.len()).map_err(|e| e.to_string());
    assert_eq!(frame(&[]), Ok(0));
    assert_eq!(frame(&[0]), Ok(0));
    assert_eq!(frame(&[0x80]), Err("message 1 at byte 0: the record ends inside the length prefix (a truncated varint)".into()));
    assert_eq!(
        frame(&[0x05, 0x0a, 0x00]),
        Err("message 1 at byte 0: the length prefix says 5 bytes but only 2 follow in the record".into())
    );
    let not32 = "message 1 at byte 0: the length prefix is not a varint32 (more than 5 bytes or above 4294967295)";
    assert_eq!(frame(&[0xff, 0xff, 0xff, 0xff, 0x10]), Err(not32.into()));
    assert_eq!(frame(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]), Err(not32.into()));
    let good = one(&[point().v10()]);
    assert_eq!(frame(&good), Ok(1));
    // Bytes after the last message that are not one: a newline (a length of 10 with nothing after
    // it), a lone continuation byte.
    for (junk, framing) in [(&[0x0a][..], Framing::PastEnd { length: 10, available: 0 }), (&[0x80], Framing::Truncated)] {
        let mut r = good.clone();
        r.extend_from_slice(junk);
        let e = decode_otel(&r).unwrap_err();
        assert_eq!((e.message, e.offset, e.problem), (2, good.len(), OtelProblem::TrailingBytes { count: 1, framing }));
    }
    let mut r = good.clone();
    r.extend_from_slice(b"\n{}\n");
    assert_eq!(
        decode_otel(&r).unwrap_err().to_string(),
        format!(
            "message 2 at byte {}: the last 4 bytes of the record are not a length-prefixed message: \
             the length prefix says 10 bytes but only 3 follow in the record",
            good.len()
        )
    );
}

/// Every truncation of a record either fails or, cut exactly between messages, gives the
/// datums of the whole messages before the cut.
#[test]
fn truncation_at_every_byte() {
    let a = request(resource("123456789012", "us-east-1", ARN), &[metric("m", "%", &[point().v10()])]);
    let b = request(resource("123456789012", "us-east-1", ARN), &[metric("m", "%", &[point().v07(), point().v07()])]);
    let r = record(&[a.clone(), b]);
    let boundary = record(&[a]).len();
    for cut in 0..r.len() {
        match decode_otel(&r[..cut]) {
            Ok(datums) if cut == 0 => assert!(datums.is_empty()),
            Ok(datums) => assert_eq!((cut, datums.len()), (boundary, 1)),
            Err(e) => assert!(e.offset <= cut, "{cut}: {e}"),
        }
    }
}

#[test]
fn illegal_tags_and_wire_types() {
    let e = decode_otel(&record(&[Pb::default().raw(&[0x0b])])).unwrap_err();
    assert_eq!(e.to_string(), "message 1 at byte 1: field 1 has illegal wire type 3 (a proto2 group, which no OpenTelemetry message has)");
    let e = decode_otel(&record(&[Pb::default().raw(&[0x00])])).unwrap_err();
    assert_eq!(e.to_string(), "message 1 at byte 1: illegal field number 0 in a tag");
    let mut p = point();
    p.extra = Pb::default().raw(&[0x7f]);
    bad_point(p, OtelProblem::Wire(WireProblem::BadWireType { field: 15, wire_type: 7 }), "");
    let mut p = point();
    p.extra = Pb::default().raw(&[0x32, 0x05, 0x09]);
    bad_point(p, OtelProblem::Wire(WireProblem::PastEnd { field: 6, needed: 5, available: 1 }), "");
    // A known field with another wire type than its schema's.
    let mut p = point();
    p.extra = Pb::default().varint(2, 5);
    bad_point(p, OtelProblem::WrongWireType { expected: "a 64-bit value", found: "a varint" }, "start_time_unix_nano");
    let e = decode_otel(&record(&[Pb::default().varint(1, 3)])).unwrap_err();
    assert_eq!(e.to_string(), "message 1 at byte 1, resource_metrics[0]: is a varint, expected a length-delimited value");
}

#[test]
fn metrics_other_than_summaries() {
    let base = Pb::default().str(1, "amazonaws.com/AWS/EC2/CPUUtilization");
    for (field, kind) in [(4, "int gauge (0.7)"), (5, "gauge"), (7, "sum"), (9, "histogram"), (10, "exponential histogram (1.0)")] {
        let m = base.clone().msg(field, Pb::default());
        let e = decode_otel(&record(&[request(resource("1", "r", ARN), &[m])])).unwrap_err();
        assert_eq!(e.problem, OtelProblem::NotASummary { kind });
        assert_eq!(e.field, "resource_metrics[0].scope_metrics[0].metrics[0]");
        assert_eq!(e.metric.as_deref(), Some("amazonaws.com/AWS/EC2/CPUUtilization"));
    }
    let r = record(&[request(resource("1", "r", ARN), std::slice::from_ref(&base))]);
    let e = decode_otel(&r).unwrap_err();
    assert_eq!(e.problem, OtelProblem::NoData);
    // The offset of the metric's first byte: the tag of its name.
    let name = b"amazonaws.com/AWS/EC2/CPUUtilization";
    assert_eq!(r.windows(name.len()).position(|w| w == name), Some(177 + 2));
    assert_eq!(
        e.to_string(),
        "message 1 at byte 177, resource_metrics[0].scope_metrics[0].metrics[0] (metric \"amazonaws.com/AWS/EC2/CPUUtilization\"): \
         the metric has no data (no Summary)"
    );
    // An empty summary is a metric without data points: no datums, no error.
    assert_eq!(lines(&record(&[request(resource("1", "r", ARN), &[base.msg(11, Pb::default())])])), Ok(vec![]));
}

#[test]
fn quantiles() {
    let with = |quantiles: Vec<(f64, f64)>| Point { quantiles, ..point() };
    bad_point(with(vec![(0.99, 1.0), (1.0, 2.0)]), OtelProblem::MissingMin, "");
    bad_point(with(vec![(0.0, 1.0), (0.5, 2.0)]), OtelProblem::MissingMax, "");
    bad_point(with(vec![(0.0, 1.0), (0.0, 0.5), (1.0, 2.0)]), OtelProblem::DuplicateQuantile("min".into()), "quantile_values[1]");
    bad_point(with(vec![(0.0, 1.0), (1.0, 2.0), (1.0, 2.0)]), OtelProblem::DuplicateQuantile("max".into()), "quantile_values[2]");
    bad_point(with(vec![(0.0, 1.0), (0.99, 1.0), (99.0 / 100.0, 1.5), (1.0, 2.0)]), OtelProblem::DuplicateQuantile("p99".into()), "");
    bad_point(with(vec![(0.0, 1.0), (1.5, 1.0), (1.0, 2.0)]), OtelProblem::QuantileOutOfRange(1.5), "quantile_values[1]");
    bad_point(with(vec![(-0.5, 1.0)]), OtelProblem::QuantileOutOfRange(-0.5), "quantile_values[0]");
    bad_point(with(vec![(0.0, 1.0), (0.12345, 1.0), (1.0, 2.0)]), OtelProblem::NotAPercentile(0.12345), "quantile_values[1]");
    // Percentile names, in any order of the quantiles.
    let p = with(vec![(1.0, 9.0), (0.999, 8.0), (0.5, 5.0), (0.0, 1.0), (0.9545, 7.0), (0.001, 2.0), (99.99 / 100.0, 8.5)]);
    let d = first(one(&[p.v10()]));
    let stats: Vec<(&str, f64)> = d.stats.iter().map(|(k, v)| (k.as_ref(), *v)).collect();
    assert_eq!(stats, [("p0.1", 2.0), ("p50", 5.0), ("p95.45", 7.0), ("p99.9", 8.0), ("p99.99", 8.5)]);
    assert_eq!((d.min, d.max), (1.0, 9.0));
    // proto3 leaves out zeros: `quantile_values {}` is the minimum 0.0, no `sum` field a sum of 0.
    let p = Point { sum: 0.0, quantiles: vec![(0.0, 0.0), (1.0, 0.0)], ..point() };
    let d = first(one(&[p.v07()]));
    assert_eq!((d.sum, d.min, d.max), (0.0, 0.0, 0.0));
}

#[test]
fn numbers_must_be_finite() {
    bad_point(Point { sum: f64::NAN, ..point() }, OtelProblem::NotFinite { field: "sum", value: f64::NAN }, "sum");
    let e = decode_otel(&one(&[Point { sum: f64::INFINITY, ..point() }.v10()])).unwrap_err();
    assert_eq!(e.problem, OtelProblem::NotFinite { field: "sum", value: f64::INFINITY });
    assert!(e.to_string().ends_with("`sum` is not a finite number (inf)"), "{e}");
    let q = |quantiles| Point { quantiles, ..point() };
    let bad = f64::NEG_INFINITY;
    bad_point(q(vec![(0.0, bad), (1.0, 1.0)]), OtelProblem::NotFinite { field: "value", value: bad }, "quantile_values[0]");
    let e = decode_otel(&one(&[q(vec![(f64::NAN, 1.0)]).v10()])).unwrap_err();
    assert!(matches!(e.problem, OtelProblem::NotFinite { field: "quantile", value } if value.is_nan()), "{e}");
}

#[test]
fn timestamps() {
    let at = |start_nanos| Point { start_nanos, ..point() };
    bad_point(at(0), OtelProblem::MissingStartTime, "start_time_unix_nano");
    bad_point(at(T0_NANOS + 1), OtelProblem::NotWholeMillisecond(T0_NANOS + 1), "start_time_unix_nano");
    // Seconds read as nanoseconds land in 1970; 2100 is past the range.
    bad_point(at(1_764_140_400_000_000), OtelProblem::TimestampOutOfRange(1_764_140_400_000_000), "start_time_unix_nano");
    bad_point(at(4_102_444_800_000_000_000), OtelProblem::TimestampOutOfRange(4_102_444_800_000_000_000), "start_time_unix_nano");
    let ms = |p: Point| decode_otel(&one(&[p.v10()])).unwrap()[0].timestamp_ms;
    assert_eq!(ms(at(946_684_800_000_000_000)), 946_684_800_000, "2000-01-01T00:00:00Z");
    assert_eq!(ms(at(4_102_444_799_999_000_000)), 4_102_444_799_999, "2099-12-31T23:59:59.999Z");
    // The start is the timestamp, whatever the end says; the last of a repeated field wins.
    let mut p = point();
    p.extra = Pb::default().fixed(3, 5).fixed(2, T0_NANOS + 60_000_000_000);
    assert_eq!(ms(p), 1_764_140_460_000);
}

#[test]
fn namespace_metric_name_and_dimensions() {
    bad_point(Point { namespace: None, ..point() }, OtelProblem::MissingAttribute("Namespace"), "");
    bad_point(Point { metric_name: None, ..point() }, OtelProblem::MissingAttribute("MetricName"), "");
    bad_point(Point { namespace: Some(""), ..point() }, OtelProblem::EmptyAttribute("Namespace"), "");
    bad_point(Point { metric_name: Some(""), ..point() }, OtelProblem::EmptyAttribute("MetricName"), "");
    bad_point(Point { dimensions: vec![("A", "1"), ("A", "2")], ..point() }, OtelProblem::DuplicateDimension("A".into()), "");
    // Dimensions are sorted by name; none at all is `{}`.
    let d = first(one(&[Point { dimensions: vec![("Z", "1"), ("A", "2")], ..point() }.v07()]));
    assert_eq!(d.dimension_key(), "A=2,Z=1");
    let d = first(one(&[Point { dimensions: vec![], ..point() }.v10()]));
    assert!(d.dimensions.is_empty());
    // 0.7: the first `Namespace` and `MetricName` labels are those; a later one is a dimension.
    let mut p = point();
    p.dimensions = vec![("Namespace", "also"), ("MetricName", "also")];
    let d = first(one(&[p.v07()]));
    assert_eq!((d.namespace.as_ref(), d.dimension_key().as_str()), ("AWS/EC2", "MetricName=also,Namespace=also"));
    // 1.0: a dimension of that name is inside `Dimensions`; attributes of other keys are ignored.
    let mut p = point();
    p.dimensions = vec![("Namespace", "also")];
    p.extra = Pb::default().msg(7, kv("Future", Pb::default().varint(3, 7)));
    let d = first(one(&[p.v10()]));
    assert_eq!((d.namespace.as_ref(), d.dimension_key().as_str()), ("AWS/EC2", "Namespace=also"));
}

#[test]
fn attribute_values() {
    let mut p = point();
    p.extra = Pb::default().msg(7, kv("Namespace", any_str("again")));
    assert_eq!(error(&one(&[p.v10()])), (OtelProblem::DuplicateAttribute("Namespace".into()), format!("{POINT0}.attributes[3]")));
    p.extra = Pb::default().msg(7, kv("Dimensions", Pb::default().msg(6, Pb::default())));
    assert_eq!(error(&one(&[p.v10()])), (OtelProblem::DuplicateAttribute("Dimensions".into()), format!("{POINT0}.attributes[3]")));
    let wrong = |key: &str, value: Pb, found: &'static str, expected: &'static str| {
        let mut p = Point { namespace: None, metric_name: None, dimensions_attribute: false, ..point() };
        p.extra = Pb::default().msg(7, kv(key, value));
        let (problem, field) = error(&one(&[p.v10()]));
        assert_eq!(problem, OtelProblem::WrongValueType { key: key.into(), found, expected });
        assert_eq!(field, format!("{POINT0}.attributes[0]"));
    };
    wrong("Namespace", Pb::default().varint(3, 7), "an int", "a string");
    wrong("Namespace", Pb::default(), "unset", "a string");
    wrong("MetricName", any_str("x").varint(2, 1), "a bool", "a string");
    wrong("Dimensions", any_str("InstanceId=i-1"), "a string", "a kvlist");
    // The last member of a oneof wins, as in protobuf.
    let mut p = Point { namespace: None, ..point() };
    p.extra = Pb::default().msg(7, kv("Namespace", Pb::default().varint(3, 7).str(1, "AWS/EC2")));
    assert_eq!(decode_otel(&one(&[p.v10()])).unwrap()[0].namespace, "AWS/EC2");
    // A dimension value that is not a string.
    let mut p = Point { dimensions_attribute: false, ..point() };
    p.extra = Pb::default().msg(7, kv("Dimensions", Pb::default().msg(6, Pb::default().msg(1, kv("D", Pb::default().double(4, 1.0))))));
    let e = decode_otel(&one(&[p.v10()])).unwrap_err();
    assert_eq!(e.problem, OtelProblem::WrongValueType { key: "D".into(), found: "a double", expected: "a string" });
    assert_eq!(e.field, format!("{POINT0}.attributes[2].value.values[0]"));
    // Strings must be UTF-8.
    let mut p = Point { dimensions: vec![], ..point() };
    p.extra = Pb::default().msg(1, Pb::default().str(1, "D").bytes(2, b"\xff"));
    assert_eq!(error(&one(&[p.v07()])), (OtelProblem::InvalidUtf8, format!("{POINT0}.labels[2].value")));
}

#[test]
fn labels_and_attributes_together_are_refused() {
    let mut p = point();
    p.extra = Pb::default().msg(1, Pb::default().str(1, "D").str(2, "v"));
    assert_eq!(error(&one(&[p.v10()])), (OtelProblem::MixedVersions, POINT0.to_owned()));
    p.extra = Pb::default().msg(7, kv("D", any_str("v")));
    assert_eq!(error(&one(&[p.v07()])), (OtelProblem::MixedVersions, POINT0.to_owned()));
}

#[test]
fn no_recorded_value() {
    let mut p = point();
    p.extra = Pb::default().varint(8, 1);
    assert_eq!(error(&one(&[p.v10()])), (OtelProblem::NoRecordedValue, POINT0.to_owned()));
    p.extra = Pb::default().varint(8, 0);
    assert!(decode_otel(&one(&[p.v10()])).is_ok());
}

#[test]
fn resource_attributes() {
    let with = |resource: Pb| record(&[request(resource, &[metric("m", "%", &[point().v10()])])]);
    let res = |attributes: &[(&str, &str)]| attributes.iter().fold(Pb::default(), |r, (k, v)| r.msg(1, kv(k, any_str(v))));
    let field = "resource_metrics[0].resource";
    assert_eq!(error(&with(res(&[("cloud.region", "r")]))), (OtelProblem::MissingAttribute("cloud.account.id"), field.to_owned()));
    assert_eq!(error(&with(res(&[("cloud.account.id", "1")]))), (OtelProblem::MissingAttribute("cloud.region"), field.to_owned()));
    assert_eq!(
        error(&with(res(&[("cloud.account.id", ""), ("cloud.region", "r")]))),
        (OtelProblem::EmptyAttribute("cloud.account.id"), field.to_owned())
    );
    assert_eq!(
        error(&with(res(&[("cloud.account.id", "1"), ("cloud.region", "r"), ("cloud.region", "s")]))),
        (OtelProblem::DuplicateAttribute("cloud.region".into()), format!("{field}.attributes[2]"))
    );
    for arn in [
        "MyMetricStream",
        "arn:aws:cloudwatch:us-east-1:1:alarm/x",
        "arn:aws:cloudwatch:us-east-1:1:metric-stream/",
        "x:aws:cloudwatch:r:1:metric-stream/s",
    ] {
        let e = decode_otel(&with(resource("1", "r", arn))).unwrap_err();
        assert_eq!((e.problem, e.field.as_str()), (OtelProblem::InvalidArn(arn.into()), field), "{arn}");
    }
    // No ARN: no stream name, as in JSON without `metric_stream_name`.
    let d = first(with(res(&[("cloud.account.id", "1"), ("cloud.region", "r")])));
    assert_eq!(d.metric_stream_name, None);
    // The China partition, and a resource in two pieces after the scope metrics (protobuf merges them).
    let arn = "arn:aws-cn:cloudwatch:cn-north-1:1:metric-stream/cn-stream_1";
    let rm = Pb::default()
        .msg(2, Pb::default().msg(2, metric("m", "%", &[point().v10()])))
        .msg(1, res(&[("cloud.account.id", "1")]))
        .msg(1, res(&[("cloud.region", "cn-north-1"), ("aws.exporter.arn", arn), ("cloud.provider", "aws")]));
    let d = first(record(&[Pb::default().msg(1, rm)]));
    assert_eq!((d.account_id.as_ref(), d.region.as_ref(), d.metric_stream_name.as_deref()), ("1", "cn-north-1", Some("cn-stream_1")));
    // A resource without metrics needs nothing.
    assert_eq!(lines(&record(&[Pb::default().msg(1, Pb::default().msg(1, Pb::default()))])), Ok(vec![]));
}

#[test]
fn units() {
    let unit_of = |unit: &str| {
        let r = record(&[request(resource("1", "r", ARN), &[metric("m", unit, &[point().v10()])])]);
        decode_otel(&r).unwrap()[0].unit.to_string()
    };
    for (name, code) in UNITS {
        assert_eq!(unit_of(code), name, "{code}");
    }
    assert_eq!(unit_of(""), "None", "no unit is CloudWatch's None, as in JSON");
    assert_eq!(unit_of("NoneTranslated"), "NoneTranslated", "unknown units are kept as given");
    assert_eq!(unit_of("Seconds"), "Seconds");
    // Metrics in a row, each with its own unit (or none).
    let units = ["By", "", "x", "", "x", "By/s", "By/s", "1", ""];
    let metrics: Vec<Pb> = units.iter().map(|u| metric("m", u, &[point().v07()])).collect();
    let r = record(&[request(resource("1", "r", ARN), &metrics)]);
    let datums = decode_otel(&r).unwrap();
    let got: Vec<&str> = datums.iter().map(|d| d.unit.as_ref()).collect();
    assert_eq!(got, ["Bytes", "None", "x", "None", "x", "Bytes/Second", "Bytes/Second", "None", "None"]);
}

#[test]
fn unknown_fields_are_skipped_and_order_does_not_matter() {
    let mut p = point();
    p.extra = Pb::default().varint(99, 1).bytes(100, b"\x00\x01").tag(101, 5).raw(&[1, 2, 3, 4]).fixed(102, 7);
    assert_eq!(lines(&one(&[p.v10()])), Ok(vec![LINE.to_owned()]));
    // Unit after the summary, scope and schema_url before and after, description.
    let m = Pb::default().msg(11, Pb::default().msg(1, point().v07())).str(2, "").str(1, "m").str(3, "%").varint(12, 1);
    let scope = Pb::default().msg(1, Pb::default().str(1, "scope")).msg(2, m).str(3, "https://schema");
    let rm = Pb::default().str(3, "https://schema").msg(2, scope).msg(1, resource("123456789012", "us-east-1", ARN)).varint(1000, 1);
    assert_eq!(lines(&record(&[Pb::default().msg(1, rm).fixed(9, 1)])), Ok(vec![LINE.to_owned()]));
    // Key-value pairs not in CloudWatch's layout (value first, an unknown field, a two-byte
    // length) read as those in it do.
    let long = "i-".repeat(70);
    let expected = LINE.replace("\"i-1\"", &format!("{long:?}"));
    let mut p = Point { namespace: None, dimensions_attribute: false, ..point() };
    p.extra = Pb::default()
        .msg(7, Pb::default().msg(2, any_str("AWS/EC2")).str(1, "Namespace"))
        .msg(7, kv("Dimensions", Pb::default().msg(6, Pb::default().msg(1, kv("InstanceId", any_str(&long)).varint(9, 1)))));
    assert_eq!(lines(&one(&[p.v10()])), Ok(vec![expected.clone()]));
    let mut p = Point { namespace: None, dimensions: vec![], ..point() };
    p.extra = Pb::default()
        .msg(1, Pb::default().str(2, "AWS/EC2").str(1, "Namespace"))
        .msg(1, Pb::default().str(1, "InstanceId").varint(3, 0).str(2, &long));
    assert_eq!(lines(&one(&[p.v07()])), Ok(vec![expected]));
}

#[test]
fn strings_borrow_from_the_record() {
    let r = one(&[point().v07()]);
    let range = r.as_ptr_range();
    let d = decode_otel(&r).unwrap().remove(0);
    for s in [&d.account_id, &d.region, &d.namespace, &d.metric_name, &d.dimensions[0].0, &d.dimensions[0].1] {
        assert!(matches!(s, Cow::Borrowed(b) if range.contains(&b.as_ptr())), "{s}");
    }
    assert!(matches!(d.metric_stream_name, Some(Cow::Borrowed(_))));
    assert!(matches!(d.stats[0].0, Cow::Borrowed("p99")));
}

#[test]
fn detect_formats() {
    for json in [&b"{\"a\":1}"[..], b"  \r\n\t{", b"\xEF\xBB\xBF{", b"", b"\n\n", b"\xEF\xBB\xBF"] {
        assert_eq!(detect(json), Format::Json, "{json:?}");
    }
    for otel in [&one(&[point().v10()])[..], &one(&[point().v07()]), &[0], b"[1]", b"\xEF\xBB\xBF\x00", b"not json"] {
        assert_eq!(detect(otel), Format::OpenTelemetry, "{otel:?}");
    }
    // The corners `detect` documents: a crafted record that starts with whitespace-valued bytes and
    // then `{` (an unknown varint field 4 of value 123 before anything else) is read as JSON, and
    // one of whitespace bytes only as JSON without lines; neither holds a datum.
    let crafted = [0x0a, 0x20, 0x7b, 0x20, 0x01, 0x20, 0x01, 0x20, 0x01, 0x20, 0x01];
    assert_eq!((detect(&crafted), decode_otel(&crafted).map(|d| d.len())), (Format::Json, Ok(0)));
    let blank = [0x0a, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20];
    assert_eq!((detect(&blank), decode_otel(&blank).map(|d| d.len())), (Format::Json, Ok(0)));
}

// The encoder, read back.

fn encode(datums: &[Datum<'_>], version: OtelVersion, per_message: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in datums.chunks(per_message.max(1)) {
        write_otel_message(chunk, version, &mut out).unwrap();
    }
    out
}

#[test]
fn encoder_refuses_what_would_not_read_back() {
    let d = crate::decode_lines(LINE.as_bytes()).datums.remove(0);
    let refused = |edit: &dyn Fn(&mut Datum<'_>)| {
        let mut d = d.clone();
        edit(&mut d);
        let mut out = b"kept".to_vec();
        let e = write_otel_message(&[d], OtelVersion::V1_0, &mut out).unwrap_err();
        assert_eq!(out, b"kept");
        e.to_string()
    };
    assert_eq!(
        refused(&|d| d.stats.push(("TM(10%:90%)".into(), 1.0))),
        "datum 0: statistic `TM(10%:90%)` is not a percentile that OpenTelemetry can carry"
    );
    assert_eq!(refused(&|d| d.stats[0].0 = "p99.0".into()), "datum 0: statistic `p99.0` is not a percentile that OpenTelemetry can carry");
    assert_eq!(refused(&|d| d.count = 1.5), "datum 0: count 1.5 is not a whole number of samples");
    assert_eq!(refused(&|d| d.unit = "s".into()), "datum 0: unit `s` would read back as another unit");
    assert_eq!(
        refused(&|d| d.metric_stream_name = Some("a/b".into())),
        "datum 0: stream name \"a/b\" cannot be carried in a metric-stream ARN"
    );
    assert!(refused(&|d| d.timestamp_ms = -1).starts_with("datum 0: timestamp -1"));
    let mut out = Vec::new();
    write_otel_message(std::slice::from_ref(&d), OtelVersion::V0_7, &mut out).unwrap();
    assert_eq!(decode_otel(&out).unwrap(), [d]);
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[A-Za-z0-9/_.-]{1,12}", 1 => "\\PC{1,8}", 1 => Just("Namespace".to_owned())]
}

/// Datums that the OpenTelemetry formats can carry: percentiles only, whole counts, CloudWatch units.
fn datum() -> impl Strategy<Value = Datum<'static>> {
    let number = prop_oneof![-1e9..1e9f64, Just(0.0), Just(-0.0), any::<f64>().prop_filter("finite", |v| v.is_finite())];
    let unit = prop_oneof![prop::sample::select(UNITS.iter().map(|(n, _)| *n).collect::<Vec<_>>()), Just("NoneTranslated")];
    let percentiles = prop::collection::btree_map(1..=9_999u32, number.clone(), 0..5);
    (
        (prop::option::of("[A-Za-z0-9_-]{1,16}"), "[0-9]{1,12}", "[a-z]{2}-[a-z]{4,9}-[1-9]"),
        (name(), name(), prop::collection::btree_map(name(), "\\PC{0,8}", 0..6)),
        (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS, unit, 0..1_000_000u64, number.clone(), number.clone(), number, percentiles),
    )
        .prop_map(|((stream, account, region), (namespace, metric_name, dims), (ts, unit, count, sum, min, max, ps))| {
            let mut stats: Vec<(Cow<'static, str>, f64)> =
                ps.into_iter().map(|(n, v)| (names::percentile_name(f64::from(n) / 10_000.0).unwrap(), v)).collect();
            stats.sort_by(|a, b| a.0.cmp(&b.0));
            Datum {
                metric_stream_name: stream.map(Cow::Owned),
                account_id: account.into(),
                region: region.into(),
                namespace: namespace.into(),
                metric_name: metric_name.into(),
                dimensions: dims.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
                timestamp_ms: ts,
                unit: unit.into(),
                count: count as f64,
                sum,
                max,
                min,
                stats,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Datums written in either version, in messages of any size, read back exactly, and their
    /// lines are those of the same datums read from JSON.
    #[test]
    fn encoded_datums_read_back(datums in prop::collection::vec(datum(), 0..12), per_message in 1..6usize) {
        let mut json = Vec::new();
        for d in &datums {
            d.write_json_line(&mut json);
        }
        let from_json = crate::decode_lines(&json);
        prop_assert!(from_json.is_clean(), "{:?}", from_json.errors);
        prop_assert_eq!(&from_json.datums, &datums);
        for version in [OtelVersion::V1_0, OtelVersion::V0_7] {
            let record = encode(&datums, version, per_message);
            prop_assert_eq!(detect(&record), if datums.is_empty() { Format::Json } else { Format::OpenTelemetry });
            prop_assert_eq!(decode_otel(&record).unwrap(), datums.clone());
        }
    }

    /// Random bytes never panic, and whatever they decode to is a valid datum.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_valid(&bytes);
    }

    /// Nor do valid records with bytes changed, inserted, removed or cut off.
    #[test]
    fn mutated_records_never_panic(
        datums in prop::collection::vec(datum(), 1..4),
        v07 in any::<bool>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..4u8), 1..6),
    ) {
        let version = if v07 { OtelVersion::V0_7 } else { OtelVersion::V1_0 };
        let mut record = encode(&datums, version, 2);
        for (at, byte, kind) in edits {
            if record.is_empty() {
                break;
            }
            let i = at.index(record.len());
            match kind {
                0 => record[i] = byte,
                1 => record.insert(i, byte),
                2 => { record.remove(i); }
                _ => record.truncate(i),
            }
        }
        check_valid(&record);
    }
}

/// Decodes without panicking; any datum it gives keeps the datum's rules.
fn check_valid(record: &[u8]) {
    let Ok(datums) = decode_otel(record) else { return };
    for d in datums {
        assert!(!d.account_id.is_empty() && !d.region.is_empty() && !d.namespace.is_empty() && !d.metric_name.is_empty());
        assert!((MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&d.timestamp_ms));
        assert!([d.count, d.sum, d.min, d.max].iter().chain(d.stats.iter().map(|(_, v)| v)).all(|v| v.is_finite()));
        assert!(d.dimensions.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(d.stats.windows(2).all(|w| w[0].0 < w[1].0));
    }
}

/// The issue's list of bad input, each refused with a message that says what is wrong and where:
/// the message, the byte offset in the record, the field's path and the metric.
#[test]
fn every_bad_input_names_what_and_where() {
    let good = one(&[point().v10()]);
    assert_eq!(good.len(), 427);
    let with_tail = |tail: &[u8]| [&good[..], tail].concat();
    let mut p = point();
    p.extra = Pb::default().raw(&[0x7f]);
    let illegal_tag = one(&[p.v07()]);
    let gauge = Pb::default().str(1, "amazonaws.com/AWS/EC2/CPUUtilization").msg(5, Pb::default());
    let not_a_summary = record(&[request(resource("1", "r", ARN), &[gauge])]);
    let infinite = Point { quantiles: vec![(0.0, 1.0), (0.99, f64::INFINITY), (1.0, 2.0)], ..point() };
    let point0 = "resource_metrics[0].scope_metrics[0].metrics[0].summary.data_points[0]";
    let metric = "(metric \"amazonaws.com/AWS/EC2/CPUUtilization\")";
    let cases: [(&str, Vec<u8>, String); 12] = [
        ("a truncated varint", vec![0xa5], "message 1 at byte 0: the record ends inside the length prefix (a truncated varint)".into()),
        (
            "a truncated varint after a message",
            with_tail(&[0xa5]),
            "message 2 at byte 427: the last 1 bytes of the record are not a length-prefixed message: \
             the record ends inside the length prefix (a truncated varint)"
                .into(),
        ),
        (
            "a length past the end of the record",
            good[..426].to_vec(),
            "message 1 at byte 0: the length prefix says 425 bytes but only 424 follow in the record".into(),
        ),
        (
            "bytes after the last message",
            with_tail(b"\n"),
            "message 2 at byte 427: the last 1 bytes of the record are not a length-prefixed message: \
             the length prefix says 10 bytes but only 0 follow in the record"
                .into(),
        ),
        ("an illegal tag", illegal_tag, format!("message 1 at byte 403, {point0} {metric}: field 15 has illegal wire type 7 (undefined)")),
        (
            "a metric that is not a Summary",
            not_a_summary,
            format!(
                "message 1 at byte 215, resource_metrics[0].scope_metrics[0].metrics[0] {metric}: \
                 is a gauge metric, not a Summary (CloudWatch streams only summaries)"
            ),
        ),
        (
            "a Summary without quantile 0",
            one(&[Point { quantiles: vec![(1.0, 1.0)], ..point() }.v10()]),
            format!("message 1 at byte 245, {point0} {metric}: no quantile 0.0 (the minimum)"),
        ),
        (
            "a Summary without quantile 1",
            one(&[Point { quantiles: vec![(0.0, 1.0)], ..point() }.v07()]),
            format!("message 1 at byte 243, {point0} {metric}: no quantile 1.0 (the maximum)"),
        ),
        (
            "a missing Namespace",
            one(&[Point { namespace: None, ..point() }.v10()]),
            format!("message 1 at byte 245, {point0} {metric}: no `Namespace` attribute"),
        ),
        (
            "a missing MetricName",
            one(&[Point { metric_name: None, ..point() }.v07()]),
            format!("message 1 at byte 245, {point0} {metric}: no `MetricName` attribute"),
        ),
        (
            "a non-finite sum",
            one(&[Point { sum: f64::NAN, ..point() }.v10()]),
            format!("message 1 at byte 272, {point0}.sum {metric}: `sum` is not a finite number (NaN)"),
        ),
        (
            "a non-finite quantile value",
            one(&[infinite.v10()]),
            format!("message 1 at byte 294, {point0}.quantile_values[1] {metric}: `value` is not a finite number (inf)"),
        ),
    ];
    for (what, record, expected) in cases {
        assert_eq!(decode_otel(&record).map(|d| d.len()).map_err(|e| e.to_string()), Err(expected), "{what}");
    }
}

/// With the stream's format set, a data point of the other version fails the record; either
/// way the datums are counted by version.
#[test]
fn a_set_version_refuses_the_other() {
    let (v10, v07) = (one(&[point().v10()]), one(&[point().v07(), point().v07()]));
    let counts = |record: &[u8], expect| for_each_otel_datum_of(record, expect, |_| {}).map_err(|e| e.to_string());
    assert_eq!(counts(&v10, None), Ok(OtelCounts { v1_0: 1, v0_7: 0 }));
    assert_eq!(counts(&v10, Some(OtelVersion::V1_0)), Ok(OtelCounts { v1_0: 1, v0_7: 0 }));
    assert_eq!(counts(&v07, Some(OtelVersion::V0_7)), Ok(OtelCounts { v1_0: 0, v0_7: 2 }));
    let metric = "(metric \"amazonaws.com/AWS/EC2/CPUUtilization\")";
    assert_eq!(
        counts(&v07, Some(OtelVersion::V1_0)),
        Err(format!(
            "message 1 at byte 245, {POINT0} {metric}: the data point has 0.7 labels (field 1), but the stream format is set to opentelemetry1.0"
        ))
    );
    assert_eq!(
        counts(&v10, Some(OtelVersion::V0_7)),
        Err(format!(
            "message 1 at byte 245, {POINT0} {metric}: the data point has 1.0 attributes (field 7), but the stream format is set to opentelemetry0.7"
        ))
    );
}

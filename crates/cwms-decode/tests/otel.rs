//! The OpenTelemetry decoder against what others wrote:
//!
//! - the Collector's OpenTelemetry 1.0 descriptions in the shared conformance corpus
//!   (`../shared/conformance/otel-contrib/*.yaml`, OTLP's JSON mapping written as YAML), turned
//!   into wire bytes here by a small reader of that YAML and a table of the fields' numbers, and
//!   every field of the datum checked;
//! - fixtures from independent encoders (`tests/otel/make_fixtures.py`: Python's
//!   `opentelemetry-proto` for 1.0, `protobuf` with a declared descriptor for 0.7, AWS's
//!   documentation examples in protobuf text format), decoded here and compared, datum for datum and
//!   field for field, with the same datums written as JSON lines and read by `decode_lines`.
//!   This one runs when the test tools are installed (`scripts/test` installs them into
//!   `target/tools/venv`; under `scripts/test`, which sets `TEST_TOOLS_DIR`, it must run).

use std::path::{Path, PathBuf};
use std::process::Command;

use cwms_decode::otel::{Format, OtelProblem, decode_otel, detect};
use cwms_decode::{LineProblem, decode_lines};
use cwms_model::{Datum, OwnedDatum};
use serde_json::{Map, Value};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus_dir() -> PathBuf {
    let dir = std::env::var_os("CWMS_CONFORMANCE_DIR").map(PathBuf::from).unwrap_or_else(|| workspace().join("../shared/conformance"));
    assert!(dir.is_dir(), "conformance corpus not found at {} (set CWMS_CONFORMANCE_DIR)", dir.display());
    dir
}

// A reader of the YAML the corpus uses: block mappings and sequences by indentation, `{}`, and
// plain or quoted scalars (kept as strings: the schema below says what each one is).

struct Line<'a> {
    indent: usize,
    text: &'a str,
}

fn yaml(text: &str) -> Value {
    let mut lines: Vec<Line<'_>> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| Line { indent: l.len() - l.trim_start().len(), text: l.trim() })
        .collect();
    let mut at = 0;
    let value = block(&mut lines, &mut at);
    assert_eq!(at, lines.len(), "the whole document is read");
    value
}

fn block(lines: &mut [Line<'_>], at: &mut usize) -> Value {
    let indent = lines[*at].indent;
    if lines[*at].text == "-" || lines[*at].text.starts_with("- ") {
        let mut items = Vec::new();
        while *at < lines.len() && lines[*at].indent == indent && lines[*at].text.starts_with('-') {
            // The item's content starts two columns in, on the dash's line.
            let rest = lines[*at].text[1..].trim_start();
            lines[*at] = Line { indent: indent + 2, text: rest };
            items.push(if rest == "{}" {
                *at += 1;
                Value::Object(Map::new())
            } else {
                block(lines, at)
            });
        }
        return Value::Array(items);
    }
    let mut map = Map::new();
    while *at < lines.len() && lines[*at].indent == indent {
        let (key, rest) = lines[*at].text.split_once(':').expect("a `key: value` line");
        let rest = rest.trim();
        *at += 1;
        let value = if rest.is_empty() {
            assert!(*at < lines.len() && lines[*at].indent > indent, "a nested block after {key}:");
            block(lines, at)
        } else {
            scalar(rest)
        };
        assert!(map.insert(key.to_owned(), value).is_none(), "duplicate key {key}");
    }
    Value::Object(map)
}

fn scalar(text: &str) -> Value {
    if text == "{}" {
        return Value::Object(Map::new());
    }
    let unquoted = ['\'', '"'].iter().find_map(|q| text.strip_prefix(*q).and_then(|t| t.strip_suffix(*q))).unwrap_or(text);
    Value::String(unquoted.to_owned())
}

// OTLP's JSON names of OpenTelemetry 1.0's fields on CloudWatch's path, with their numbers and
// types. A key of the YAML that is not here fails the test, so no field is silently left out.

#[derive(Clone, Copy)]
enum Kind {
    Message(&'static str),
    String,
    Fixed64,
    Double,
}

fn schema(message: &str, key: &str) -> (u32, Kind) {
    use Kind::*;
    match (message, key) {
        ("Request", "resourceMetrics") => (1, Message("ResourceMetrics")),
        ("ResourceMetrics", "resource") => (1, Message("Resource")),
        ("ResourceMetrics", "scopeMetrics") => (2, Message("ScopeMetrics")),
        ("Resource", "attributes") => (1, Message("KeyValue")),
        ("KeyValue", "key") => (1, String),
        ("KeyValue", "value") => (2, Message("AnyValue")),
        ("AnyValue", "stringValue") => (1, String),
        ("AnyValue", "kvlistValue") => (6, Message("KeyValueList")),
        ("KeyValueList", "values") => (1, Message("KeyValue")),
        ("ScopeMetrics", "scope") => (1, Message("Scope")),
        ("ScopeMetrics", "metrics") => (2, Message("Metric")),
        ("Metric", "name") => (1, String),
        ("Metric", "unit") => (3, String),
        ("Metric", "summary") => (11, Message("Summary")),
        ("Summary", "dataPoints") => (1, Message("SummaryDataPoint")),
        ("SummaryDataPoint", "startTimeUnixNano") => (2, Fixed64),
        ("SummaryDataPoint", "timeUnixNano") => (3, Fixed64),
        ("SummaryDataPoint", "count") => (4, Fixed64),
        ("SummaryDataPoint", "sum") => (5, Double),
        ("SummaryDataPoint", "quantileValues") => (6, Message("ValueAtQuantile")),
        ("SummaryDataPoint", "attributes") => (7, Message("KeyValue")),
        ("ValueAtQuantile", "quantile") => (1, Double),
        ("ValueAtQuantile", "value") => (2, Double),
        _ => panic!("{message}.{key} is not in the test's schema"),
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The wire bytes of a message, its fields in number order (as protobuf's encoders write them).
fn encode(message: &str, value: &Value) -> Vec<u8> {
    let object = value.as_object().unwrap_or_else(|| panic!("{message} is not a mapping"));
    let mut fields: Vec<(u32, Kind, &Value)> =
        object.iter().map(|(k, v)| (schema(message, k), v)).map(|((n, kind), v)| (n, kind, v)).collect();
    fields.sort_by_key(|f| f.0);
    let mut out = Vec::new();
    for (number, kind, value) in fields {
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for item in items {
            let text = || item.as_str().unwrap_or_else(|| panic!("{message} field {number} is not a scalar"));
            match kind {
                Kind::Message(name) => {
                    let body = encode(name, item);
                    varint(&mut out, u64::from(number) << 3 | 2);
                    varint(&mut out, body.len() as u64);
                    out.extend_from_slice(&body);
                }
                Kind::String => {
                    varint(&mut out, u64::from(number) << 3 | 2);
                    varint(&mut out, text().len() as u64);
                    out.extend_from_slice(text().as_bytes());
                }
                Kind::Fixed64 => {
                    varint(&mut out, u64::from(number) << 3 | 1);
                    out.extend_from_slice(&text().parse::<u64>().unwrap().to_le_bytes());
                }
                Kind::Double => {
                    varint(&mut out, u64::from(number) << 3 | 1);
                    out.extend_from_slice(&text().parse::<f64>().unwrap().to_le_bytes());
                }
            }
        }
    }
    out
}

fn read_yaml(name: &str) -> Value {
    let path = corpus_dir().join("otel-contrib").join(name);
    yaml(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// One message, length-prefixed: a record.
fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, message.len() as u64);
    out.extend_from_slice(message);
    out
}

/// Moves every data point's start and end by `nanos`.
fn shift_times(tree: &mut Value, nanos: u64) {
    match tree {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if key == "startTimeUnixNano" || key == "timeUnixNano" {
                    let t: u64 = value.as_str().unwrap().parse().unwrap();
                    *value = Value::String((t + nanos).to_string());
                } else {
                    shift_times(value, nanos);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| shift_times(v, nanos)),
        _ => {}
    }
}

fn check_yaml_reader() {
    let tree = yaml("a:\n  - {}\n  - q: 1\n    r: 'x: y'\n  - b:\n      c: \"2\"\nd: e\n");
    assert_eq!(tree, serde_json::json!({"a": [{}, {"q": "1", "r": "x: y"}, {"b": {"c": "2"}}], "d": "e"}));
}

/// `ext_opentelemetry1_valid_metric.yaml`: the Collector's OpenTelemetry 1.0 datum. Its times are
/// 1 ms and 2 ms after the epoch, which no stream sends, so cwms refuses it as it is; moved to
/// 2025 it is one datum, every field of which is checked.
#[test]
fn collector_valid_metric() {
    check_yaml_reader();
    let mut tree = read_yaml("ext_opentelemetry1_valid_metric.yaml");
    let record = framed(&encode("Request", &tree));
    assert_eq!(detect(&record), Format::OpenTelemetry);
    let e = decode_otel(&record).unwrap_err();
    assert_eq!(e.problem, OtelProblem::TimestampOutOfRange(1_000_000), "{e}");
    assert_eq!(e.field, "resource_metrics[0].scope_metrics[0].metrics[0].summary.data_points[0].start_time_unix_nano");
    assert_eq!(e.metric.as_deref(), Some("amazonaws.com/AWS/SQS/ApproximateNumberOfMessagesVisible"));

    const SHIFT_MS: i64 = 1_764_140_400_000;
    shift_times(&mut tree, SHIFT_MS as u64 * 1_000_000);
    let record = framed(&encode("Request", &tree));
    let datums = decode_otel(&record).unwrap();
    let [d] = datums.as_slice() else { panic!("one datum: {datums:?}") };
    assert_eq!(d.metric_stream_name.as_deref(), Some("test-metric-stream"));
    assert_eq!((d.account_id.as_ref(), d.region.as_ref()), ("123", "eu-central-1"));
    assert_eq!((d.namespace.as_ref(), d.metric_name.as_ref()), ("AWS/SQS", "ApproximateNumberOfMessagesVisible"));
    assert_eq!(d.dimension_key(), "QueueName=test-queue");
    assert_eq!(d.timestamp_ms, SHIFT_MS + 1, "startTimeUnixNano 1000000 is 1 ms");
    assert_eq!(d.unit, "Count", "{{Count}} is CloudWatch's Count");
    // `quantileValues: [{}, {quantile: 1}]` and no `sum`: proto3's zeros.
    assert_eq!((d.count, d.sum, d.min, d.max), (1.0, 0.0, 0.0, 0.0));
    assert!(d.stats.is_empty());
    let mut line = Vec::new();
    d.write_json_line(&mut line);
    assert_eq!(
        String::from_utf8(line).unwrap(),
        "{\"metric_stream_name\":\"test-metric-stream\",\"account_id\":\"123\",\"region\":\"eu-central-1\",\
         \"namespace\":\"AWS/SQS\",\"metric_name\":\"ApproximateNumberOfMessagesVisible\",\"dimensions\":{\"QueueName\":\"test-queue\"},\
         \"timestamp\":1764140400001,\"value\":{\"count\":1.0,\"sum\":0.0,\"max\":0.0,\"min\":0.0},\"unit\":\"Count\"}\n"
    );
}

/// `receiver_otlpmetricstream_single_record.yaml` has none of what CloudWatch always sends:
/// refused for the first thing missing, then, each supplied in turn, for the next.
#[test]
fn collector_receiver_record_lacks_what_cloudwatch_sends() {
    let mut tree = read_yaml("receiver_otlpmetricstream_single_record.yaml");
    let problem = |tree: &Value| decode_otel(&framed(&encode("Request", tree))).map(|d| d.len()).map_err(|e| (e.problem, e.field));
    let rm = "resource_metrics[0]";
    assert_eq!(problem(&tree), Err((OtelProblem::MissingAttribute("cloud.account.id"), format!("{rm}.resource"))));
    tree["resourceMetrics"][0]["resource"] = serde_json::json!({"attributes": [
        {"key": "cloud.account.id", "value": {"stringValue": "123"}},
        {"key": "cloud.region", "value": {"stringValue": "eu-central-1"}},
    ]});
    let point = format!("{rm}.scope_metrics[0].metrics[0].summary.data_points[0]");
    assert_eq!(problem(&tree), Err((OtelProblem::MissingAttribute("Namespace"), point.clone())));
    tree["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["summary"]["dataPoints"][0]["attributes"] = serde_json::json!([
        {"key": "Namespace", "value": {"stringValue": "Custom"}},
        {"key": "MetricName", "value": {"stringValue": "TestMetric"}},
    ]);
    assert_eq!(problem(&tree), Err((OtelProblem::MissingStartTime, format!("{point}.start_time_unix_nano"))));
    tree["resourceMetrics"][0]["scopeMetrics"][0]["metrics"][0]["summary"]["dataPoints"][0]["startTimeUnixNano"] =
        "1764140400000000000".into();
    assert_eq!(problem(&tree), Ok(1));
}

// Fixtures from independent encoders.

fn tools_dir() -> (PathBuf, bool) {
    match std::env::var_os("TEST_TOOLS_DIR") {
        Some(dir) => (PathBuf::from(dir), true),
        None => (workspace().join("target/tools"), false),
    }
}

/// The tools' Python, if it has the packages the fixtures need. Under `scripts/test` (which sets
/// `TEST_TOOLS_DIR`) they must be there; elsewhere the test says it is skipped.
fn python() -> Option<PathBuf> {
    let (dir, required) = tools_dir();
    let python = dir.join("venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import opentelemetry.proto.collector.metrics.v1.metrics_service_pb2, google.protobuf, yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!required, "{} lacks opentelemetry-proto, protobuf or PyYAML: run scripts/install-tools", python.display());
        eprintln!("skipped: {} lacks opentelemetry-proto, protobuf or PyYAML (scripts/install-tools installs them)", python.display());
        return None;
    }
    Some(python)
}

/// A folder for one run's fixtures, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn line_of(d: &Datum<'_>) -> String {
    let mut out = Vec::new();
    d.write_json_line(&mut out);
    String::from_utf8(out).unwrap()
}

fn read_records(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names.into_iter().map(|n| (n.clone(), std::fs::read(dir.join(&n)).unwrap())).collect()
}

#[test]
fn independent_encoders_give_the_json_datums() {
    let Some(python) = python() else { return };
    let scratch = Scratch(std::env::temp_dir().join(format!("cwms-otel-fixtures-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0).unwrap();
    let script = workspace().join("tests/otel/make_fixtures.py");
    let output = Command::new(&python).arg(&script).arg(&scratch.0).arg(corpus_dir()).output().unwrap();
    assert!(output.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&output.stderr));
    let dir = &scratch.0;

    let json = std::fs::read(dir.join("datums.jsonl")).unwrap();
    let expected = decode_lines(&json);
    assert!(expected.is_clean(), "{:?}", expected.errors);
    assert_eq!(expected.datums.len(), 240);
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    for folder in ["otel10", "otel07"] {
        let mut datums: Vec<OwnedDatum> = Vec::new();
        let mut several = 0;
        for (name, record) in read_records(&dir.join(folder)) {
            // The messages of a record differ in length (the Collector's bug needs that to show).
            let lengths: Vec<u64> =
                manifest["records"][format!("{folder}/{name}")].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
            let mut distinct = lengths.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), lengths.len(), "{folder}/{name}: {lengths:?}");
            several += usize::from(lengths.len() > 1);
            assert_eq!(detect(&record), Format::OpenTelemetry);
            let decoded = decode_otel(&record).unwrap_or_else(|e| panic!("{folder}/{name}: {e}"));
            datums.extend(decoded.into_iter().map(Datum::into_owned));
        }
        assert!(several >= 10, "{folder}: {several} records with several messages");
        assert_eq!(datums.len(), expected.datums.len(), "{folder}");
        for (i, (got, want)) in datums.iter().zip(&expected.datums).enumerate() {
            // Every field, numbers bit for bit (`Datum`'s equality), and so the same lake row...
            assert_eq!(got, want, "{folder}: datum {i}");
            // ...and the same normalized line whatever the format.
            assert_eq!(line_of(got), line_of(want), "{folder}: datum {i}");
        }
    }

    // AWS's examples, encoded from the pages' text: the 1.0 one has 1970 times and is refused.
    let aws10 = std::fs::read(dir.join("aws10.bin")).unwrap();
    let e = decode_otel(&aws10).unwrap_err();
    assert_eq!(e.problem, OtelProblem::TimestampOutOfRange(60_000_000_000), "{e}");
    let aws07 = std::fs::read(dir.join("aws07.bin")).unwrap();
    let lines: Vec<String> = decode_otel(&aws07).unwrap().iter().map(line_of).collect();
    let head = r#"{"metric_stream_name":"MyMetricStream","account_id":"2345678901","region":"us-east-1","namespace":"AWS/DynamoDB","metric_name":"ConsumedReadCapacityUnits","dimensions":{"TableName":"MyTable"},"#;
    assert_eq!(
        lines,
        [
            format!(
                "{head}\"timestamp\":1604948400000,\"value\":{{\"count\":1.0,\"sum\":1.0,\"max\":1.0,\"min\":1.0,\"p95\":1.0,\"p99\":1.0}},\"unit\":\"None\"}}\n"
            ),
            format!(
                "{head}\"timestamp\":1604948460000,\"value\":{{\"count\":2.0,\"sum\":5.0,\"max\":3.0,\"min\":2.0}},\"unit\":\"None\"}}\n"
            ),
        ]
    );
    // The same lines as JSON decode to the same datums.
    let text = lines.concat();
    let from_json = decode_lines(text.as_bytes());
    assert_eq!(from_json.datums, decode_otel(&aws07).unwrap());

    // The corpus's YAML as protobuf's json_format reads it: the same bytes as this test's reader.
    for name in ["ext_opentelemetry1_valid_metric", "receiver_otlpmetricstream_single_record"] {
        let theirs = std::fs::read(dir.join("yaml").join(format!("{name}.bin"))).unwrap();
        assert_eq!(encode("Request", &read_yaml(&format!("{name}.yaml"))), theirs, "{name}");
    }
}

/// YAML text is neither format: it does not start with `{`, so `detect` hands it to the
/// OpenTelemetry decoder, which refuses it (as the JSON decoder refuses each of its lines).
#[test]
fn yaml_text_is_neither_format() {
    let text = std::fs::read(corpus_dir().join("otel-contrib/ext_opentelemetry1_valid_metric.yaml")).unwrap();
    assert_eq!(detect(&text), Format::OpenTelemetry);
    assert!(decode_otel(&text).is_err());
    let decoded = decode_lines(&text);
    assert!(decoded.datums.is_empty());
    assert!(decoded.errors.iter().all(|e| matches!(e.problem, LineProblem::Json(_) | LineProblem::NotAnObject(_))));
}

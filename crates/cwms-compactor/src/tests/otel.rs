//! Raw OpenTelemetry objects (a stream's records concatenated, as Firehose writes them without a
//! transform): the same datums give the same lake as JSON lines.

use cwms_model::otel::{OtelVersion, write_otel_message};

use super::*;

/// JSON lines as length-prefixed OpenTelemetry messages of 1 to `most` data points (sizes
/// cycling, so the messages differ in length).
fn otel(text: &str, version: OtelVersion, most: usize) -> Vec<u8> {
    let decoded = cwms_decode::decode_lines(text.as_bytes());
    assert!(decoded.is_clean(), "{:?}", decoded.errors);
    let mut out = Vec::new();
    let (mut rest, mut size) = (&decoded.datums[..], 1);
    while !rest.is_empty() {
        let (now, later) = rest.split_at(size.min(rest.len()));
        write_otel_message(now, version, &mut out).unwrap();
        rest = later;
        size = size % most + 1;
    }
    out
}

fn gzip_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The objects of `raw_objects`, their lines decoded and written in `version`, gzip or plain.
fn otel_objects(version: OtelVersion, gzip: bool, most: usize) -> Vec<(String, Vec<u8>)> {
    raw_objects()
        .into_iter()
        .map(|(key, bytes)| {
            let text = String::from_utf8(cwms_decode::decompress(&bytes, 1 << 30).unwrap().into_owned()).unwrap();
            let record = otel(&text, version, most);
            (key.replace(".gz", if gzip { ".gz" } else { "" }), if gzip { gzip_bytes(&record) } else { record })
        })
        .collect()
}

#[tokio::test]
async fn opentelemetry_objects_give_the_json_lake() {
    let reference = reference_lake(&raw_objects()).await;
    for (version, gzip, most) in [(OtelVersion::V1_0, true, 3), (OtelVersion::V0_7, false, 50), (OtelVersion::V0_7, true, 1)] {
        let objects = otel_objects(version, gzip, most);
        let dir = tempfile::tempdir().unwrap();
        let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
        write_raw(&raw, &objects).await;
        let report = run(&raw, &lake, &options()).await.unwrap();
        assert!(report.is_success(), "{report:?}");
        assert_eq!((report.objects_read, report.datums, report.lines_rejected), (6, 6 * 102, 0));
        assert!(snapshot(&lake) == reference, "{version:?} gzip {gzip}: the lake differs from JSON's");
    }
    // One folder may hold both formats (a stream switched from JSON to OpenTelemetry).
    let mut mixed = raw_objects();
    mixed.truncate(3);
    mixed.extend(otel_objects(OtelVersion::V1_0, false, 7).into_iter().skip(3));
    assert!(reference_lake(&mixed).await == reference);
}

/// A message of one datum whose sum is not a number.
fn bad_message() -> Vec<u8> {
    let bad_line = line("AWS/EC2", "Bad", 1, T0, 1.0, 1.0);
    let mut bad_datum = cwms_decode::decode_lines(bad_line.as_bytes()).datums.remove(0);
    bad_datum.sum = f64::NAN;
    let mut bad = Vec::new();
    write_otel_message(&[bad_datum], OtelVersion::V1_0, &mut bad).unwrap();
    bad
}

/// A message that does not decode (here a sum that is not a number) is kept whole under
/// `_cwms/rejected/`, named by its number and byte offset; the messages around it reach the lake.
#[tokio::test]
async fn a_bad_message_is_quarantined_and_the_others_kept() {
    let good: String = (0..30).map(|m| line("AWS/EC2", "Quarantine", 1, T0 + m * 60_000, 1.0, 1.0)).collect();
    let lines: Vec<&str> = good.lines().collect();
    let (before, after) =
        (otel(&(lines[..10].join("\n") + "\n"), OtelVersion::V1_0, 4), otel(&(lines[10..].join("\n") + "\n"), OtelVersion::V1_0, 4));
    let bad = bad_message();
    let object = [before.clone(), bad.clone(), after].concat();
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    write_raw(&raw, &[("2025/11/26/05/mixed".to_owned(), gzip_bytes(&object))]).await;
    let report = run(&raw, &lake, &options()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!((report.datums, report.lines_rejected), (30, 1));
    let document = std::fs::read_to_string(lake.join("_cwms/rejected/2025/11/26/05/mixed.ndjson")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(document.trim_end()).unwrap();
    use base64::Engine as _;
    let kept = base64::engine::general_purpose::STANDARD.decode(doc["rawData"].as_str().unwrap()).unwrap();
    assert_eq!(kept, bad, "the message is kept whole, with its prefix: redriven, it is a record");
    // 10 datums in messages of 1, 2, 3 and 4 points: the bad one is the fifth.
    let message = doc["errorMessage"].as_str().unwrap();
    let expected = format!(
        "mixed message 5 at byte {}, resource_metrics[0].scope_metrics[0].metrics[0].summary.data_points[0].sum \
         (metric \"amazonaws.com/AWS/EC2/Bad\"): `sum` is not a finite number (NaN)",
        before.len() + cwms_decode::otel::decode_otel(&bad).unwrap_err().offset
    );
    assert!(message.ends_with(&expected), "{message}\n{expected}");
    assert!(report.rejected[0].reason.ends_with(&expected[6..]), "{}", report.rejected[0].reason);
}

/// An object whose framing is lost (cut short, or not messages at all) fails as a whole, named
/// by the message and byte where it went wrong, and stays in place.
#[tokio::test]
async fn an_object_that_loses_its_framing_fails_by_name() {
    let (key, bytes) = otel_objects(OtelVersion::V1_0, false, 5).remove(0);
    let objects = vec![
        (key.clone(), bytes[..bytes.len() - 3].to_vec()),
        ("2025/11/26/05/not-messages".to_owned(), b"\x02hello".to_vec()),
        ("2025/11/26/05/only-bad".to_owned(), [bad_message(), bad_message()].concat()),
    ];
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    write_raw(&raw, &objects).await;
    let report = run(&raw, &lake, &options()).await.unwrap();
    let mut failed: Vec<(String, String)> =
        report.objects_failed.iter().map(|p| (p.location.rsplit('/').next().unwrap().to_owned(), p.reason.clone())).collect();
    failed.sort();
    let mut offsets = Vec::new();
    cwms_decode::otel::for_each_message(&bytes, |n, at, m| offsets.push((n, at, m.len()))).unwrap();
    let (n, at, len) = *offsets.last().unwrap();
    assert_eq!(
        failed,
        [
            // `\x02` frames `he`; then `l` (108) announces more than is left.
            (
                "not-messages".to_owned(),
                "OpenTelemetry message 2 at byte 3: the length prefix says 108 bytes but the stream ends 2 bytes after it".to_owned()
            ),
            (
                "only-bad".to_owned(),
                format!(
                    "none of its 2 OpenTelemetry messages holds a metric-stream datum (first: message 1 at byte {}, \
                     resource_metrics[0].scope_metrics[0].metrics[0].summary.data_points[0].sum (metric \"amazonaws.com/AWS/EC2/Bad\"): \
                     `sum` is not a finite number (NaN)): not a metric stream's",
                    cwms_decode::otel::decode_otel(&bad_message()).unwrap_err().offset
                )
            ),
            (
                "stream-0".to_owned(),
                format!(
                    "OpenTelemetry message {n} at byte {at}: the length prefix says {} bytes but the stream ends {} bytes after it",
                    len - 2,
                    len - 5
                )
            ),
        ]
    );
    assert!(raw.join(&key).exists(), "bad raw objects are left in place");
}

/// One huge OpenTelemetry object is read message block by message block, within the point
/// budget, into the same lake as its JSON lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_huge_opentelemetry_object_is_read_within_the_budget() {
    let mut text = String::new();
    for hour in 0..4 {
        for instance in 0..300 {
            for minute in 0..10 {
                text += &line(
                    "AWS/EC2",
                    "CPUUtilization",
                    instance,
                    T0 + hour * HOUR + minute * 60_000,
                    1.0,
                    (instance + minute as usize) as f64,
                );
            }
        }
    }
    let reference = reference_lake(&[("2025/11/26/13/huge.gz".to_owned(), gzip(&text))]).await;
    let objects = vec![("2025/11/26/13/huge".to_owned(), gzip_bytes(&otel(&text, OtelVersion::V0_7, 60)))];
    let dir = tempfile::tempdir().unwrap();
    write_raw(&dir.path().join("raw"), &objects).await;
    let max_points = 3_000;
    let options = Options { max_points, concurrency: 2, ..options() };
    let report = run(&dir.path().join("raw"), &dir.path().join("lake"), &options).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.datums, 12_000);
    assert!(report.peak_points <= max_points + max_points / 2, "peak {} points", report.peak_points);
    assert_eq!(snapshot(&dir.path().join("lake")), reference);
}

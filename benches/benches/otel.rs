//! Decoding the OpenTelemetry formats against decoding JSON, on the same datums.
//!
//! The datums are the decode bench's (`cwms_benches::decode_input`, 14,400 datums over an hour)
//! less the statistics the OpenTelemetry formats cannot carry (the trimmed means: they are JSON
//! only), so all three inputs hold exactly the same datums:
//! - JSON: those datums as metric-stream lines (`Datum::write_json_line`, CloudWatch's own
//!   field order);
//! - OpenTelemetry 1.0 and 0.7: the same datums as one record of length-prefixed
//!   `ExportMetricsServiceRequest` messages of 50 data points each, in CloudWatch's shape
//!   (`cwms_decode::otel::write_otel_message`; one real 0.7 capture has 52 points a message).
//!
//! Throughput is in datums (criterion's elements): per datum is the comparison that matters, as
//! the OpenTelemetry bytes are fewer for the same datums; per byte is in `benches/README.md`,
//! from the sizes this bench prints.
//! - `json/decode_lines`, `json/for_each_datum`: the JSON decoder, into a vector of datums, and
//!   lending one reused datum line by line;
//! - `otel1.0/decode_otel`, `otel1.0/for_each_otel_datum`, and the same for `otel0.7`: the
//!   OpenTelemetry decoder, the same two ways;
//! - `json/for_each_normalized` and `otel1.0/normalized`, `otel0.7/normalized`: records to the
//!   normalized lines the transform sends on (JSON lines mostly copied; OpenTelemetry datums
//!   decoded and written with `Datum::write_json_line`), the same bytes from all three.
//!
//! Run: `cargo bench -p cwms-benches --bench otel`; results in `benches/README.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cwms_decode::otel::{OtelVersion, decode_otel, for_each_otel_datum, write_otel_message};
use cwms_decode::{decode_lines, for_each_datum, for_each_normalized};

/// Data points per `ExportMetricsServiceRequest`.
const PER_MESSAGE: usize = 50;

fn otel(c: &mut Criterion) {
    let input = cwms_benches::decode_input();
    let decoded = decode_lines(&input);
    assert!(decoded.is_clean(), "the bench input must decode: {:?}", decoded.errors.first());
    let mut datums = decoded.datums;
    let mut dropped = 0;
    for d in &mut datums {
        let before = d.stats.len();
        d.stats.retain(|(name, _)| name.starts_with('p'));
        dropped += before - d.stats.len();
    }
    let mut json = Vec::with_capacity(input.len());
    for d in &datums {
        d.write_json_line(&mut json);
    }
    let record = |version| {
        let mut out = Vec::with_capacity(json.len() / 2);
        for chunk in datums.chunks(PER_MESSAGE) {
            write_otel_message(chunk, version, &mut out).expect("the datums carry only percentiles");
        }
        out
    };
    let (v10, v07) = (record(OtelVersion::V1_0), record(OtelVersion::V0_7));
    // The three inputs hold the same datums: checked, so the bench compares like with like.
    assert_eq!(decode_lines(&json).datums, datums);
    assert_eq!(decode_otel(&v10).expect("1.0 decodes"), datums);
    assert_eq!(decode_otel(&v07).expect("0.7 decodes"), datums);
    eprintln!(
        "otel input: {} datums ({dropped} trimmed means left out); JSON {} bytes, OpenTelemetry 1.0 {} bytes, 0.7 {} bytes, {} messages each",
        datums.len(),
        json.len(),
        v10.len(),
        v07.len(),
        datums.len().div_ceil(PER_MESSAGE),
    );

    let mut group = c.benchmark_group("otel");
    group.throughput(Throughput::Elements(datums.len() as u64));
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(8));

    group.bench_function("json/decode_lines", |b| b.iter(|| decode_lines(black_box(&json))));
    group.bench_function("json/for_each_datum", |b| {
        b.iter(|| {
            let mut timestamps = 0i64;
            for_each_datum(black_box(&json), |item| timestamps += item.map_or(0, |d| d.timestamp_ms));
            black_box(timestamps)
        })
    });
    for (name, record) in [("otel1.0", &v10), ("otel0.7", &v07)] {
        group.bench_function(format!("{name}/decode_otel"), |b| b.iter(|| decode_otel(black_box(record)).expect("decodes")));
        group.bench_function(format!("{name}/for_each_otel_datum"), |b| {
            b.iter(|| {
                let mut timestamps = 0i64;
                for_each_otel_datum(black_box(record), |d| timestamps += d.timestamp_ms).expect("decodes");
                black_box(timestamps)
            })
        });
    }
    // Records to normalized lines, as the transform does (without its duplicate check and base64).
    let normalized = |record: &[u8], otel: bool| {
        let mut out = Vec::with_capacity(json.len() + json.len() / 8);
        if otel {
            for_each_otel_datum(record, |d| d.write_json_line(&mut out)).expect("decodes");
        } else {
            for_each_normalized(record, &mut out, |_, _, item| assert!(item.is_ok()));
        }
        out
    };
    let lines = normalized(&json, false);
    assert!(normalized(&v10, true) == lines && normalized(&v07, true) == lines, "the three give the same lines");
    let mut out = Vec::with_capacity(lines.len() + lines.len() / 8);
    group.bench_function("json/for_each_normalized", |b| {
        b.iter(|| {
            out.clear();
            for_each_normalized(black_box(&json), &mut out, |_, _, _| {});
            black_box(out.len())
        })
    });
    for (name, record) in [("otel1.0", &v10), ("otel0.7", &v07)] {
        group.bench_function(format!("{name}/normalized"), |b| {
            b.iter(|| {
                out.clear();
                for_each_otel_datum(black_box(record), |d| d.write_json_line(&mut out)).expect("decodes");
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, otel);
criterion_main!(benches);

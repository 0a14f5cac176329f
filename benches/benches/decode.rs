//! Decoding metric-stream JSON, against the ceiling of merely parsing it.
//!
//! All four measure the same ~5 MB of realistic NDJSON (`cwms_benches::decode_input`), so their
//! throughputs compare directly:
//! - `decode_lines`: cwms's decoder, bytes to validated, normalized datums;
//! - `parse_only`: serde_json walking each line into `IgnoredAny`, building nothing: a ceiling
//!   for any decoder that reads JSON with serde_json;
//! - `for_each_datum`: the same, one reused datum lent line by line (what the transform does);
//! - `write_only`: writing the decoded datums as normalized lines, without decoding;
//! - `for_each_normalized`: input lines straight to normalized lines, the transform's loop (the
//!   same output as `decode_and_write`);
//! - `decode_and_write`: decoding plus writing every datum back as its normalized line, the
//!   transform's per-datum work (without its duplicate check and base64);
//! - `gunzip`: inflating the gzip of the same bytes, as the compactor does with raw objects
//!   (throughput counted in decompressed bytes).
//!
//! Run: `cargo bench -p cwms-benches --bench decode`; results in `benches/README.md`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use cwms_decode::{DEFAULT_MAX_DECOMPRESSED_BYTES, decode_lines, decompress, for_each_datum, for_each_normalized, lines};
use serde::de::IgnoredAny;

fn decode(c: &mut Criterion) {
    let input = cwms_benches::decode_input();
    let compressed = cwms_benches::gzip(&input);
    // Benchmarks of a decoder that rejects its input would measure the error path: check first.
    let decoded = decode_lines(&input);
    assert!(decoded.is_clean(), "the bench input must decode: {:?}", decoded.errors.first());
    let datums = decoded.datums.len();
    let mut normalized = Vec::with_capacity(input.len());
    for datum in &decoded.datums {
        datum.write_json_line(&mut normalized);
    }
    eprintln!(
        "decode input: {} bytes, {datums} datums, {} bytes gzip, {} bytes normalized",
        input.len(),
        compressed.len(),
        normalized.len()
    );

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(10));

    group.bench_function("decode_lines", |b| b.iter(|| decode_lines(black_box(&input))));

    group.bench_function("for_each_datum", |b| {
        b.iter(|| {
            let mut timestamps = 0i64;
            for_each_datum(black_box(&input), |item| timestamps += item.map_or(0, |d| d.timestamp_ms));
            black_box(timestamps)
        })
    });

    let mut out = Vec::with_capacity(normalized.len());
    group.bench_function("write_only", |b| {
        b.iter(|| {
            out.clear();
            for datum in &decoded.datums {
                datum.write_json_line(&mut out);
            }
            black_box(out.len())
        })
    });
    drop(decoded);

    group.bench_function("parse_only", |b| {
        b.iter(|| {
            for (_, line) in lines(black_box(&input)) {
                black_box(serde_json::from_slice::<IgnoredAny>(line).expect("the input is valid JSON"));
            }
        })
    });

    group.bench_function("decode_and_write", |b| {
        b.iter(|| {
            out.clear();
            for datum in &decode_lines(black_box(&input)).datums {
                datum.write_json_line(&mut out);
            }
            black_box(out.len())
        })
    });

    let mut out = Vec::with_capacity(normalized.len());
    for_each_normalized(&input, &mut out, |_, _, item| assert!(item.is_ok()));
    assert_eq!(out, normalized, "for_each_normalized writes what decoding and writing does");
    group.bench_function("for_each_normalized", |b| {
        b.iter(|| {
            out.clear();
            for_each_normalized(black_box(&input), &mut out, |_, _, _| {});
            black_box(out.len())
        })
    });

    group.bench_function("gunzip", |b| {
        b.iter(|| decompress(black_box(&compressed), DEFAULT_MAX_DECOMPRESSED_BYTES).expect("valid gzip").len())
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);

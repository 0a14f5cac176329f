//! Shared bench data: realistic CloudWatch metric-stream input from `cwms-sample`, the same bytes
//! on every machine and every run, so results stay comparable across runs and commits.

use std::io::Write;

pub use cwms_sample;
use cwms_sample::Spec;

/// The spec of the decode benchmark's input: 240 series over all five namespaces for an hour
/// (about 5 MB of NDJSON, 14,400 datums), with 0 to 30 dimensions and percentiles on half the
/// latency and CPU series. Fixed start and seed, so the bytes never change unless the generator does.
pub fn decode_spec() -> Spec {
    Spec { series: 240, minutes: 60, seed: 1, percentiles_share: 0.5, ..Spec::default() }
}

/// The decode benchmark's input: [`decode_spec`] as metric-stream JSON lines.
pub fn decode_input() -> Vec<u8> {
    cwms_sample::ndjson(&decode_spec())
}

/// Gzip at the default level, as Firehose compresses what it writes to S3.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 4), flate2::Compression::default());
    encoder.write_all(bytes).expect("writing into a Vec cannot fail");
    encoder.finish().expect("writing into a Vec cannot fail")
}

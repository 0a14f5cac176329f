//! The Firehose data-transformation handler for CloudWatch metric streams, as a plain function.
//!
//! [`transform`] takes a Firehose event and returns the response Firehose expects (DESIGN 3):
//! every `recordId` exactly once and in input order; `Ok` records carry normalized metric-stream
//! JSON (one datum per line, exact duplicates removed); a record that cannot be fully decoded is
//! `ProcessingFailed`, so Firehose keeps its original bytes in the error prefix; a record whose
//! datums are all filtered out is `Dropped`. Partition keys `dt` and `hour` are always returned.
//! Bad data never makes the function fail: only a malformed event (which Firehose never sends) does.
//!
//! The Lambda entry point (`src/main.rs`) and `cwms transform` both call this.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_lambda_events::firehose::{KinesisFirehoseResponse, KinesisFirehoseResponseRecord, KinesisFirehoseResponseRecordMetadata};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cwms_decode::{decode_lines, decompress};
use cwms_model::{Datum, utc_hour};
use serde::Deserialize;

mod config;
mod emf;

pub use config::{Config, ConfigError, Filters};
pub use emf::emf_document;

/// The largest response the handler produces. Lambda caps a synchronous response at 6 MB;
/// staying a little below it leaves room for the runtime's own framing.
pub const MAX_RESPONSE_BYTES: usize = 6_000_000;

/// A Firehose transformation event.
///
/// The request type is cwms's own rather than `aws_lambda_events::firehose::KinesisFirehoseEvent`
/// on purpose: that type decodes every record's base64 while parsing the event, so one record
/// with bad base64 would fail the whole invocation, and Firehose would retry the whole batch
/// forever. Here `data` stays text and each record is decoded (and failed) on its own.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseEvent {
    #[serde(default)]
    pub invocation_id: Option<String>,
    #[serde(default)]
    pub delivery_stream_arn: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    pub records: Vec<FirehoseRecord>,
}

/// One record of a Firehose event.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseRecord {
    pub record_id: String,
    /// Milliseconds since the epoch when Firehose received the record.
    #[serde(default)]
    pub approximate_arrival_timestamp: Option<f64>,
    /// The record's bytes, base64-encoded.
    #[serde(default)]
    pub data: Option<String>,
}

/// The result of one record, as Firehose spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordResult {
    Ok,
    Dropped,
    ProcessingFailed,
}

impl RecordResult {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordResult::Ok => "Ok",
            RecordResult::Dropped => "Dropped",
            RecordResult::ProcessingFailed => "ProcessingFailed",
        }
    }
}

/// Why a record was failed: its id and a message naming what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    pub record_id: String,
    pub reason: String,
}

/// The handler's own numbers for one invocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub records_in: u64,
    pub records_ok: u64,
    pub records_dropped: u64,
    pub records_failed: u64,
    /// Datums written to `Ok` records.
    pub datums: u64,
    /// Exact duplicate datums removed inside records.
    pub duplicates_removed: u64,
    /// Datums removed by the include/exclude filters.
    pub datums_filtered: u64,
    /// Decoded (base64) bytes of the input records.
    pub bytes_in: u64,
    /// Bytes of the `Ok` records' normalized output (before base64).
    pub bytes_out: u64,
    pub duration: Duration,
}

/// What one invocation produced: the response for Firehose, the numbers, and the failures.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub response: KinesisFirehoseResponse,
    pub stats: Stats,
    pub failures: Vec<RecordFailure>,
}

impl Outcome {
    /// Logs one structured line for the batch and one per failed record (with the reason).
    pub fn log(&self, invocation_id: Option<&str>) {
        let s = &self.stats;
        tracing::info!(
            invocation_id,
            records_in = s.records_in,
            records_ok = s.records_ok,
            records_dropped = s.records_dropped,
            records_failed = s.records_failed,
            datums = s.datums,
            duplicates_removed = s.duplicates_removed,
            datums_filtered = s.datums_filtered,
            bytes_in = s.bytes_in,
            bytes_out = s.bytes_out,
            duration_ms = s.duration.as_secs_f64() * 1000.0,
            "batch transformed"
        );
        for failure in &self.failures {
            tracing::warn!(invocation_id, record_id = %failure.record_id, reason = %failure.reason, "record failed");
        }
    }
}

/// What became of one record before the response budget is applied.
struct Processed {
    result: RecordResult,
    data: Vec<u8>,
    partition_hour_ms: i64,
    reason: Option<String>,
    datums: u64,
    duplicates: u64,
    filtered: u64,
    bytes_in: u64,
}

/// Transforms one Firehose event. Never fails: every record gets a result.
pub fn transform(config: &Config, event: &FirehoseEvent) -> Outcome {
    let started = Instant::now();
    let mut stats = Stats { records_in: event.records.len() as u64, ..Stats::default() };
    let mut failures = Vec::new();
    let mut records = Vec::with_capacity(event.records.len());
    // The JSON skeleton `{"records":[]}` plus, per record, its own serialized size.
    let mut response_bytes = 14usize;
    for record in &event.records {
        let mut processed = process_record(config, record);
        let mut size = record_skeleton_bytes(record, processed.result, processed.partition_hour_ms)
            + base64_len(processed.data.len());
        if processed.result == RecordResult::Ok && response_bytes + size > config.max_response_bytes {
            // Firehose would reject the whole response; failing this record instead keeps its
            // original bytes safe in the error prefix, and the rest of the batch goes through.
            processed.result = RecordResult::ProcessingFailed;
            processed.reason = Some(format!(
                "the transformed record ({} bytes) would take the response past its {} byte limit",
                processed.data.len(),
                config.max_response_bytes
            ));
            processed.data.clear();
            size = record_skeleton_bytes(record, processed.result, processed.partition_hour_ms);
        }
        response_bytes += size + 1;
        stats.bytes_in += processed.bytes_in;
        stats.duplicates_removed += processed.duplicates;
        stats.datums_filtered += processed.filtered;
        match processed.result {
            RecordResult::Ok => {
                stats.records_ok += 1;
                stats.datums += processed.datums;
                stats.bytes_out += processed.data.len() as u64;
            }
            RecordResult::Dropped => stats.records_dropped += 1,
            RecordResult::ProcessingFailed => stats.records_failed += 1,
        }
        if let Some(reason) = processed.reason {
            failures.push(RecordFailure { record_id: record.record_id.clone(), reason });
        }
        records.push(response_record(record, processed.result, processed.data, processed.partition_hour_ms));
    }
    stats.duration = started.elapsed();
    let mut response = KinesisFirehoseResponse::default();
    response.records = records;
    Outcome { response, stats, failures }
}

fn process_record(config: &Config, record: &FirehoseRecord) -> Processed {
    let arrival_ms = record.approximate_arrival_timestamp.map(|t| t as i64).unwrap_or(0);
    let fail = |reason: String, bytes_in: u64| Processed {
        result: RecordResult::ProcessingFailed,
        data: Vec::new(),
        partition_hour_ms: arrival_ms,
        reason: Some(reason),
        datums: 0,
        duplicates: 0,
        filtered: 0,
        bytes_in,
    };
    let Some(data) = record.data.as_deref() else {
        return fail("the record has no `data`".to_owned(), 0);
    };
    let raw = match BASE64.decode(data) {
        Ok(raw) => raw,
        Err(e) => return fail(format!("`data` is not valid base64: {e}"), 0),
    };
    let bytes_in = raw.len() as u64;
    let plain = match decompress(&raw, config.max_decompressed_bytes) {
        Ok(plain) => plain,
        Err(e) => return fail(e.to_string(), bytes_in),
    };
    let decoded = decode_lines(&plain);
    if let Some(first) = decoded.errors.first() {
        let lines = decoded.errors.len() + decoded.datums.len();
        return fail(format!("{} of {} lines invalid; first: {first}", decoded.errors.len(), lines), bytes_in);
    }
    let total = decoded.datums.len() as u64;
    let kept: Vec<&Datum<'_>> = decoded.datums.iter().filter(|d| config.filters.keep(d)).collect();
    let filtered = total - kept.len() as u64;
    let Some(earliest) = kept.iter().map(|d| d.timestamp_ms).min() else {
        // Nothing left to deliver: every datum was filtered out, or the record held only blank lines.
        return Processed {
            result: RecordResult::Dropped,
            data: Vec::new(),
            partition_hour_ms: arrival_ms,
            reason: None,
            datums: 0,
            duplicates: 0,
            filtered,
            bytes_in,
        };
    };
    let (data, datums, duplicates) = normalized_lines(&kept);
    Processed {
        result: RecordResult::Ok,
        data,
        partition_hour_ms: earliest,
        reason: None,
        datums,
        duplicates,
        filtered,
        bytes_in,
    }
}

/// Writes the datums as normalized JSON lines, leaving out exact duplicates.
///
/// The normalized line is canonical (fields in a fixed order, dimensions and statistics sorted,
/// numbers in shortest round-trip form), so two datums are exact duplicates exactly when their
/// lines are equal; comparing lines avoids building a second copy of each datum.
fn normalized_lines(datums: &[&Datum<'_>]) -> (Vec<u8>, u64, u64) {
    let mut out = Vec::with_capacity(datums.len() * 320);
    // Line hash -> index of the first kept line with that hash; lines with equal hashes are
    // chained through `next`, so the common case costs no allocation per datum.
    let mut first: HashMap<u64, usize> = HashMap::with_capacity(datums.len());
    let mut lines: Vec<(usize, usize, Option<usize>)> = Vec::with_capacity(datums.len());
    let mut duplicates = 0u64;
    for datum in datums {
        let start = out.len();
        datum.write_json_line(&mut out);
        let hash = xxhash_rust::xxh3::xxh3_64(&out[start..]);
        let mut candidate = first.get(&hash).copied();
        let mut duplicate = false;
        while let Some(index) = candidate {
            let (s, e, next) = lines[index];
            if out[s..e] == out[start..] {
                duplicate = true;
                break;
            }
            candidate = next;
        }
        if duplicate {
            out.truncate(start);
            duplicates += 1;
        } else {
            let previous = first.insert(hash, lines.len());
            lines.push((start, out.len(), previous));
        }
    }
    (out, lines.len() as u64, duplicates)
}

fn partition_keys(hour_ms: i64) -> HashMap<String, String> {
    let hour = utc_hour(hour_ms);
    HashMap::from([("dt".to_owned(), hour.date()), ("hour".to_owned(), hour.hour_text())])
}

fn response_record(record: &FirehoseRecord, result: RecordResult, data: Vec<u8>, hour_ms: i64) -> KinesisFirehoseResponseRecord {
    let mut metadata = KinesisFirehoseResponseRecordMetadata::default();
    metadata.partition_keys = partition_keys(hour_ms);
    let mut out = KinesisFirehoseResponseRecord::default();
    out.record_id = Some(record.record_id.clone());
    out.result = Some(result.as_str().to_owned());
    *out.data = data;
    out.metadata = metadata;
    out
}

/// The serialized size of a response record with empty `data`: exact, because it is measured.
fn record_skeleton_bytes(record: &FirehoseRecord, result: RecordResult, hour_ms: i64) -> usize {
    let skeleton = response_record(record, result, Vec::new(), hour_ms);
    serde_json::to_vec(&skeleton).map(|v| v.len()).unwrap_or(usize::MAX / 4)
}

fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

#[cfg(test)]
mod tests;

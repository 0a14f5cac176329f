//! The Firehose data-transformation handler for CloudWatch metric streams, as a plain function.
//!
//! [`transform`] takes a Firehose event and returns the response Firehose expects (DESIGN 3):
//! every `recordId` exactly once and in input order; `Ok` records carry normalized metric-stream
//! JSON (one datum per line, exact duplicates removed); a record that cannot be fully decoded is
//! `ProcessingFailed`, so Firehose keeps its original bytes in the error prefix; a record whose
//! datums are all filtered out is `Dropped`. `Ok` records carry the partition keys `dt` and `hour`
//! (of their earliest datum); the others carry nothing but their id, result and an empty `data`,
//! the least the contract allows (see `response.rs`), and the whole response, every entry
//! counted, stays within its cap (see [`MAX_RESPONSE_BYTES`]). Bad data never makes the function
//! fail: only a malformed event (which Firehose never sends) does.
//!
//! A record may be in any of a metric stream's output formats, JSON or OpenTelemetry 1.0 or 0.7
//! (gzip-wrapped or not); its format is told by its bytes (JSON starts with `{` after optional
//! whitespace, anything else is length-prefixed protobuf; see `cwms_decode::otel::detect`) unless
//! [`Config::stream_format`] sets it. Whatever the format, the `Ok` record carries the same
//! normalized JSON lines: the raw zone holds one format.
//!
//! The Lambda entry point (`src/main.rs`) and `cwms transform` both call [`transform_to_json`], the
//! same handler with the response written straight to JSON; `cwms run` calls [`transform`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cwms_decode::otel::{Format, OtelCounts, detect, for_each_otel_datum_of};
use cwms_decode::{decompress, for_each_normalized};
use cwms_model::OutputFormat;

mod config;
mod emf;
mod response;

pub use config::{Config, ConfigError, DEFAULT_MAX_DECOMPRESSED_BYTES, Filters};
pub use cwms_model::firehose::{FirehoseEvent, FirehoseRecord, RecordResult};
pub use emf::emf_document;
pub use response::{FirehoseResponse, Metadata, PartitionKeys, ResponseRecord};

/// The largest response the handler produces, by default (`CWMS_MAX_RESPONSE_BYTES` changes it).
///
/// Lambda caps a synchronous response at 6 MB; staying a little below it leaves room for the
/// runtime's own framing. EVERY entry of the response counts against this budget, not only the
/// `Ok` data: the entries of failed and dropped records are bytes too (40,000 of them are
/// megabytes). So the handler first reserves, for every record, its *floor*: the largest entry
/// it could end with short of `Ok`, `{"recordId":"ID","result":"ProcessingFailed","data":""}`;
/// then spends what is left on `Ok` entries in input order, and a record whose `Ok` entry does
/// not fit becomes `ProcessingFailed` (Firehose keeps its original bytes in the error prefix).
///
/// # Why the floor of any request Firehose can send fits
///
/// Lambda caps the request at 6 MB too; take the larger reading, 6 MiB = 6,291,456 bytes.
/// Firehose sends every record as at least `{"recordId":"ID","approximateArrivalTimestamp":T,"data":"B"}`:
/// 56 bytes, plus the id as JSON text, plus T's digits (at least 1; 13 for any time since 2001),
/// plus the base64 B (at least 0). The floor entry of that record is 53 bytes plus the id as
/// the response writes it, which is never longer than in the request, because serde_json writes
/// the shortest JSON spelling of every character (`\"`, `\\`, `\n`, `\u0001` are the shortest
/// spellings of those characters, and everything else is written raw). With the comma between
/// entries, a floor entry is at most (53 + 1 + i) / (57 + 1 + i) <= 54/58 of its request entry
/// (i >= 0 the id's length), and the response's envelope `{"records":[` `]}` (14 bytes) is
/// shorter than the request's (which also holds `invocationId`, `deliveryStreamArn` and
/// `region`). So the floor of a request of R bytes is at most 54/58 R + 14, and for
/// R <= 6,291,456 that is at most 5,857,497 bytes: under the 6,000,000-byte cap with 142 KB to
/// spare. `floor_of_the_largest_request_firehose_can_send_fits` builds such worst cases.
///
/// A request that breaks these assumptions (a hand-made event without arrival timestamps, or a
/// cap set far lower) can have a floor above the cap; then every record gets its floor entry
/// anyway (each record still answered exactly once) and [`Stats::over_budget`] says so.
pub const MAX_RESPONSE_BYTES: usize = 6_000_000;

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
    /// Records read as metric-stream JSON, whatever became of them (after base64 and gzip).
    pub records_json: u64,
    /// Records read as OpenTelemetry (either version), whatever became of them.
    pub records_opentelemetry: u64,
    /// Datums decoded from OpenTelemetry 1.0 data points of records that decoded (before the
    /// filters and duplicate removal).
    pub datums_opentelemetry_1_0: u64,
    /// The same for OpenTelemetry 0.7 data points.
    pub datums_opentelemetry_0_7: u64,
    /// Records turned `ProcessingFailed` because their `Ok` entry would not fit the response.
    pub records_over_budget: u64,
    /// The request was such that even every record's smallest entry does not fit the cap (see
    /// [`MAX_RESPONSE_BYTES`]: no request Firehose can send does this with the default cap).
    pub over_budget: bool,
    pub duration: Duration,
}

/// What one invocation produced: the response for Firehose, the numbers, and the failures.
///
/// [`transform`] gives the response as a [`FirehoseResponse`]; [`transform_to_json`] gives
/// the same response already serialized (`Outcome<Vec<u8>>`), which is what the Lambda and
/// `cwms transform` send.
#[derive(Debug, Clone)]
pub struct Outcome<R = FirehoseResponse> {
    pub response: R,
    pub stats: Stats,
    pub failures: Vec<RecordFailure>,
}

impl<R> Outcome<R> {
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
            records_json = s.records_json,
            records_opentelemetry = s.records_opentelemetry,
            datums_opentelemetry_1_0 = s.datums_opentelemetry_1_0,
            datums_opentelemetry_0_7 = s.datums_opentelemetry_0_7,
            duration_ms = s.duration.as_secs_f64() * 1000.0,
            "batch transformed"
        );
        for failure in &self.failures {
            tracing::warn!(invocation_id, record_id = %failure.record_id, reason = %failure.reason, "record failed");
        }
    }
}

/// What became of one record before the response budget is applied. An `Ok` record's
/// normalized lines are in [`Scratch::out`].
struct Processed {
    result: RecordResult,
    partition_hour_ms: i64,
    reason: Option<String>,
    datums: u64,
    duplicates: u64,
    filtered: u64,
    bytes_in: u64,
    /// The record's format, once its bytes were read (after base64 and gzip).
    format: Option<Format>,
    /// Datums by OpenTelemetry version, for an OpenTelemetry record that decoded.
    otel: OtelCounts,
}

/// Buffers reused from one record to the next, so that an invocation touches about one record's
/// worth of fresh memory for its work instead of several copies of the whole event.
#[derive(Default)]
struct Scratch {
    /// The record's bytes, base64-decoded.
    raw: Vec<u8>,
    /// The record's normalized lines.
    out: Vec<u8>,
    /// Which of them are exact duplicates.
    dedup: Dedup,
}

/// Exact duplicates among a record's normalized lines.
///
/// The normalized line is canonical (fields in a fixed order, dimensions and statistics sorted,
/// numbers in shortest round-trip form), so two datums are exact duplicates exactly when their
/// lines are equal; comparing lines avoids keeping a second copy of each datum.
#[derive(Default)]
struct Dedup {
    /// Line hash -> index into `lines` of the latest kept line with that hash.
    latest: HashMap<u64, usize, std::hash::BuildHasherDefault<HashIsKey>>,
    /// Kept lines: start and end in the record's output, and the previous kept line with the
    /// same hash. Lines with equal hashes are chained through it, so the common case allocates nothing.
    lines: Vec<(usize, usize, Option<usize>)>,
    duplicates: u64,
}

impl Dedup {
    fn clear(&mut self) {
        self.latest.clear();
        self.lines.clear();
        self.duplicates = 0;
    }

    /// Keeps the line that `out` holds from `start` on, or removes it if an equal line is already there.
    fn settle(&mut self, out: &mut Vec<u8>, start: usize) {
        let line = &out[start..];
        let hash = xxhash_rust::xxh3::xxh3_64(line);
        let mut candidate = self.latest.get(&hash).copied();
        while let Some(index) = candidate {
            let (s, e, previous) = self.lines[index];
            if out[s..e] == *line {
                out.truncate(start);
                self.duplicates += 1;
                return;
            }
            candidate = previous;
        }
        let previous = self.latest.insert(hash, self.lines.len());
        self.lines.push((start, out.len(), previous));
    }

    fn datums(&self) -> u64 {
        self.lines.len() as u64
    }
}

/// The duplicate check's keys are already XXH3 hashes of the lines: hashing them again is waste.
#[derive(Default)]
struct HashIsKey(u64);

impl std::hash::Hasher for HashIsKey {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed; this keeps any other use correct, if slow.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

/// Transforms one Firehose event. Never fails: every record gets a result.
pub fn transform(config: &Config, event: &FirehoseEvent<'_>) -> Outcome {
    let mut records = Vec::with_capacity(event.records.len());
    let (stats, failures) = transform_with(config, event, |record, result, data, hour_ms| {
        records.push(ResponseRecord::new(&record.record_id, result, data.to_vec(), hour_ms));
    });
    Outcome { response: FirehoseResponse { records }, stats, failures }
}

/// [`transform`], with the response written straight to its JSON bytes: exactly what
/// `serde_json` makes of [`transform`]'s response, without building each record's base64 as a `String` and then scanning it for
/// characters to escape (base64 has none).
pub fn transform_to_json(config: &Config, event: &FirehoseEvent<'_>) -> Outcome<Vec<u8>> {
    // Room for the whole response up front: reserving does not touch the memory, growing copies it.
    let estimate = event.records.iter().map(|r| r.data.as_deref().map_or(0, str::len) + r.record_id.len() + 128).sum::<usize>();
    let mut body = Vec::with_capacity((estimate + estimate / 8).min(config.max_response_bytes) + 16);
    body.extend_from_slice(response::START);
    let (stats, failures) = transform_with(config, event, |record, result, data, hour_ms| {
        if body.len() > response::START.len() {
            body.push(b',');
        }
        response::write_record(&mut body, &record.record_id, result, data, hour_ms);
    });
    body.extend_from_slice(response::END);
    Outcome { response: body, stats, failures }
}

/// [`transform_to_json`], with the response written to `out` a record at a time instead of
/// into one buffer: `cwms transform` prints a 6 MB response without first building it in 6 MB of
/// fresh memory (whose page faults cost about as much as encoding it). Returns the first error
/// `out` gave; records after it are still decided and counted, but not written.
pub fn transform_to_writer(config: &Config, event: &FirehoseEvent<'_>, out: &mut impl std::io::Write) -> std::io::Result<Outcome<()>> {
    let mut result = out.write_all(response::START);
    // Room for the largest record from the start: growing by doubling would copy each record
    // into fresh memory several times over as the records get larger.
    let largest = event.records.iter().map(|r| r.data.as_deref().map_or(0, str::len) + r.record_id.len()).max().unwrap_or(0);
    let mut buffer = Vec::with_capacity(largest + largest / 8 + 256);
    let mut first = true;
    let (stats, failures) = transform_with(config, event, |record, outcome, data, hour_ms| {
        buffer.clear();
        if !std::mem::take(&mut first) {
            buffer.push(b',');
        }
        response::write_record(&mut buffer, &record.record_id, outcome, data, hour_ms);
        if result.is_ok() {
            result = out.write_all(&buffer);
        }
    });
    result.and_then(|()| out.write_all(response::END))?;
    Ok(Outcome { response: (), stats, failures })
}

/// The handler proper: decides each record's result and hands it, in input order, to `emit`
/// with the record's normalized bytes (empty unless `Ok`) and the hour of its partition keys.
///
/// The response budget (see [`MAX_RESPONSE_BYTES`]) is kept here, once for every way of writing
/// the response: each record's floor entry is reserved before the first record is decided, and
/// an `Ok` entry is accepted only if its size above that floor fits what is left.
fn transform_with(
    config: &Config,
    event: &FirehoseEvent<'_>,
    mut emit: impl FnMut(&FirehoseRecord<'_>, RecordResult, &[u8], i64),
) -> (Stats, Vec<RecordFailure>) {
    let started = Instant::now();
    let mut stats = Stats { records_in: event.records.len() as u64, ..Stats::default() };
    let mut failures = Vec::new();
    let mut scratch = Scratch::default();
    let mut entry = Vec::new();
    // The envelope, the commas between entries, and every record's floor.
    let floors: Vec<usize> =
        event.records.iter().map(|r| response::entry_len(&mut entry, &r.record_id, RecordResult::ProcessingFailed, 0)).collect();
    let floor = response::START.len() + response::END.len() + event.records.len().saturating_sub(1) + floors.iter().sum::<usize>();
    stats.over_budget = floor > config.max_response_bytes;
    // What the entries may take beyond their floors.
    let mut spare = config.max_response_bytes.saturating_sub(floor);
    for (record, floor) in event.records.iter().zip(floors) {
        let mut processed = process_record(config, record, &mut scratch);
        let mut data_len = 0;
        match processed.result {
            RecordResult::Ok => {
                let size = response::entry_len(&mut entry, &record.record_id, RecordResult::Ok, processed.partition_hour_ms)
                    + base64_len(scratch.out.len());
                let above = size.saturating_sub(floor);
                if above <= spare {
                    spare -= above;
                    data_len = scratch.out.len();
                } else {
                    // Firehose would reject the whole response; failing this record instead keeps
                    // its original bytes safe in the error prefix, and the rest of the batch goes through.
                    processed.result = RecordResult::ProcessingFailed;
                    processed.reason = Some(format!(
                        "the transformed record ({} bytes, {size} in the response) would take the response past its {} byte limit",
                        scratch.out.len(),
                        config.max_response_bytes
                    ));
                    stats.records_over_budget += 1;
                }
            }
            // A dropped entry is shorter than its floor: the difference is free again.
            RecordResult::Dropped => {
                spare += floor.saturating_sub(response::entry_len(&mut entry, &record.record_id, RecordResult::Dropped, 0));
            }
            RecordResult::ProcessingFailed => {}
        }
        stats.bytes_in += processed.bytes_in;
        match processed.format {
            Some(Format::Json) => stats.records_json += 1,
            Some(Format::OpenTelemetry) => stats.records_opentelemetry += 1,
            None => {}
        }
        stats.datums_opentelemetry_1_0 += processed.otel.v1_0 as u64;
        stats.datums_opentelemetry_0_7 += processed.otel.v0_7 as u64;
        stats.duplicates_removed += processed.duplicates;
        stats.datums_filtered += processed.filtered;
        match processed.result {
            RecordResult::Ok => {
                stats.records_ok += 1;
                stats.datums += processed.datums;
                stats.bytes_out += data_len as u64;
            }
            RecordResult::Dropped => stats.records_dropped += 1,
            RecordResult::ProcessingFailed => stats.records_failed += 1,
        }
        if let Some(reason) = processed.reason {
            failures.push(RecordFailure { record_id: record.record_id.clone(), reason });
        }
        emit(record, processed.result, &scratch.out[..data_len], processed.partition_hour_ms);
    }
    stats.duration = started.elapsed();
    (stats, failures)
}

fn process_record(config: &Config, record: &FirehoseRecord<'_>, scratch: &mut Scratch) -> Processed {
    let arrival_ms = record.approximate_arrival_timestamp.map(|t| t as i64).unwrap_or(0);
    let fail = |reason: String, bytes_in: u64| Processed {
        result: RecordResult::ProcessingFailed,
        partition_hour_ms: arrival_ms,
        reason: Some(reason),
        datums: 0,
        duplicates: 0,
        filtered: 0,
        bytes_in,
        format: None,
        otel: OtelCounts::default(),
    };
    scratch.out.clear();
    scratch.dedup.clear();
    let Some(data) = record.data.as_deref() else {
        return fail("the record has no `data`".to_owned(), 0);
    };
    if let Err(reason) = response::decode_base64(data, &mut scratch.raw) {
        return fail(format!("`data` is not valid base64: {reason}"), 0);
    }
    let raw = &scratch.raw;
    let bytes_in = raw.len() as u64;
    let plain = match decompress(raw, config.max_decompressed_bytes) {
        Ok(plain) => plain,
        Err(e) => return fail(e.to_string(), bytes_in),
    };
    // The normalized lines take about as many bytes as the input's (more, for OpenTelemetry):
    // reserve that once, rather than doubling (and copying) the buffer as they are written.
    scratch.out.reserve(plain.len() + plain.len() / 8);
    let format = match config.stream_format {
        None => detect(&plain),
        Some(OutputFormat::Json) => Format::Json,
        Some(_) => Format::OpenTelemetry,
    };
    let decoded = match format {
        Format::Json => normalize_json(config, &plain, &mut scratch.out, &mut scratch.dedup),
        Format::OpenTelemetry => normalize_otel(config, &plain, &mut scratch.out, &mut scratch.dedup),
    };
    let processed = |result, partition_hour_ms, reason, scratch: &Scratch, filtered, otel| Processed {
        result,
        partition_hour_ms,
        reason,
        datums: scratch.dedup.datums(),
        duplicates: scratch.dedup.duplicates,
        filtered,
        bytes_in,
        format: Some(format),
        otel,
    };
    match decoded {
        Err(reason) => {
            scratch.out.clear();
            Processed { format: Some(format), ..fail(reason, bytes_in) }
        }
        // Nothing left to deliver: every datum was filtered out, or the record held no datum.
        Ok(Normalized { earliest: None, filtered, otel }) => {
            Processed { datums: 0, duplicates: 0, ..processed(RecordResult::Dropped, arrival_ms, None, scratch, filtered, otel) }
        }
        Ok(Normalized { earliest: Some(earliest), filtered, otel }) => processed(RecordResult::Ok, earliest, None, scratch, filtered, otel),
    }
}

/// What a record's datums came to, once written to `Scratch::out`.
struct Normalized {
    /// The earliest timestamp of the datums kept, if any was.
    earliest: Option<i64>,
    filtered: u64,
    otel: OtelCounts,
}

/// Metric-stream JSON lines into normalized lines; a bad line fails the record.
fn normalize_json(config: &Config, plain: &[u8], out: &mut Vec<u8>, dedup: &mut Dedup) -> Result<Normalized, String> {
    // Each datum is filtered and written out as it is decoded; one bad line fails the record,
    // and then the lines after it are only checked, so the reason can count them.
    let mut lines_bad = 0usize;
    let mut lines_good = 0usize;
    let mut first_error = None;
    let mut filtered = 0u64;
    let mut earliest: Option<i64> = None;
    for_each_normalized(plain, out, |out, start, item| match item {
        Ok(_) if lines_bad > 0 => {
            lines_good += 1;
            out.truncate(start);
        }
        Ok(datum) => {
            lines_good += 1;
            if !config.filters.keep(datum.namespace, datum.metric_name) {
                filtered += 1;
                out.truncate(start);
                return;
            }
            earliest = Some(earliest.map_or(datum.timestamp_ms, |e| e.min(datum.timestamp_ms)));
            dedup.settle(out, start);
        }
        Err(error) => {
            lines_bad += 1;
            first_error.get_or_insert(error);
        }
    });
    if let Some(first) = first_error {
        return Err(format!("{lines_bad} of {} lines invalid; first: {first}", lines_bad + lines_good));
    }
    Ok(Normalized { earliest, filtered, otel: OtelCounts::default() })
}

/// An OpenTelemetry record into normalized lines (`Datum::write_json_line`, the line the JSON
/// path writes for the same datum); any problem fails the record, which decodes wholly or not
/// at all.
fn normalize_otel(config: &Config, plain: &[u8], out: &mut Vec<u8>, dedup: &mut Dedup) -> Result<Normalized, String> {
    let mut filtered = 0u64;
    let mut earliest: Option<i64> = None;
    let expect = config.stream_format.and_then(OutputFormat::otel_version);
    let otel = for_each_otel_datum_of(plain, expect, |datum| {
        if !config.filters.keep(&datum.namespace, &datum.metric_name) {
            filtered += 1;
            return;
        }
        earliest = Some(earliest.map_or(datum.timestamp_ms, |e| e.min(datum.timestamp_ms)));
        let start = out.len();
        datum.write_json_line(out);
        dedup.settle(out, start);
    })
    .map_err(|e| match config.stream_format {
        Some(_) => format!("invalid OpenTelemetry record: {e}"),
        // Told by its bytes: say so, for a record that was meant as JSON.
        None => format!("invalid OpenTelemetry record (what does not start with `{{` is not JSON): {e}"),
    })?;
    Ok(Normalized { earliest, filtered, otel })
}

fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

#[cfg(test)]
mod tests;

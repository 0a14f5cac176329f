//! Delivery as Firehose sees it: CloudWatch's records, the transformation events Firehose builds
//! from them, and the raw objects it writes to S3 when no transform is configured.
//!
//! The model, with the facts it rests on:
//! - CloudWatch closes a minute and sends its datums a couple of minutes later, packing many
//!   JSON lines into each Firehose record (a record is at most 1,000 KiB; real ones are a few KB
//!   to about 100 KB).
//! - Delivery is at least once, so a datum line may arrive twice, verbatim; and datums may arrive
//!   late, in a record carrying a later minute.
//! - Malformed records are possible whenever anything but CloudWatch can write to the delivery
//!   stream. Here they are extra records that copy part of a neighbouring good record and damage
//!   it, so the good records alone still carry every datum: a correct pipeline's output is
//!   exactly [`crate::datums`], whatever the shares.
//! - On request ([`Spec::resend_share`]), CloudWatch re-sends a minute it aggregated again, with
//!   other values; then the merge law decides which of the two the lake keeps. And on request
//!   ([`Spec::blank_share`]) records with no datum at all arrive, which the transform drops.

use std::collections::BTreeMap;
use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cwms_model::firehose::{FirehoseEvent, FirehoseRecord};
use cwms_model::otel::{OtelVersion, write_otel_message};
use cwms_model::{OwnedDatum, utc_hour};

use crate::catalog::Series;
use crate::draw::{Draw, stream};
use crate::values::{Values, resent};
use crate::{Error, MINUTE_MS, Minutes, Result, Spec, wire};

/// The largest Firehose record: 1,000 KiB before base64.
pub const MAX_RECORD_BYTES: usize = 1_000 * 1024;

/// The default cap on one serialized transformation event: Firehose's largest Lambda buffer
/// (3 MiB of record data) grows by 4/3 in base64, to about 4 MiB with the JSON around it.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

/// Firehose's default S3 buffering interval: an object holds at most five minutes of arrivals.
pub const RAW_BUFFER_INTERVAL_MS: i64 = 300_000;

/// Firehose's default S3 buffer size: an object holds about 5 MiB of records (before gzip).
pub const RAW_BUFFER_BYTES: usize = 5 * 1024 * 1024;

/// How long after a minute ends CloudWatch's records for it start to arrive.
const DELIVERY_DELAY_MS: i64 = 90_000;

/// The latest a late datum arrives, in minutes after its own minute's records.
const MAX_LATE_MINUTES: u64 = 15;

/// The smallest and largest size CloudWatch aims for when it fills a record.
const RECORD_TARGET_BYTES: (u64, u64) = (4 * 1024, 128 * 1024);

/// The most data points in one OpenTelemetry message of a sample record (the one public capture
/// of a CloudWatch OpenTelemetry record has 52 in a message).
pub const OTEL_POINTS_PER_MESSAGE: usize = 50;

/// How many lines of the neighbouring good record a malformed record copies, at most.
const MALFORMED_LINES: usize = 10;

/// How a malformed record is damaged (in JSON; in an OpenTelemetry format, the same kind of
/// damage the protobuf way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformation {
    /// One line stops partway, as if a writer was cut off: invalid JSON. OpenTelemetry: the
    /// record stops inside its last message.
    TruncatedLine,
    /// One line has no `value` object: valid JSON, but not a datum. OpenTelemetry: a data
    /// point's `Namespace` is empty.
    MissingValue,
    /// One line has a statistic given as a string (`"sum":"12.0"`): a wrong type.
    /// OpenTelemetry: a statistic that is not a number (NaN; the sum, for a count).
    NonNumberStatistic,
    /// The record is gzip, cut off halfway: it does not decompress.
    BadGzip,
}

impl Malformation {
    /// Every kind, in declaration order.
    pub const ALL: [Malformation; 4] =
        [Malformation::TruncatedLine, Malformation::MissingValue, Malformation::NonNumberStatistic, Malformation::BadGzip];

    /// The kebab-case name, as a command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            Malformation::TruncatedLine => "truncated-line",
            Malformation::MissingValue => "missing-value",
            Malformation::NonNumberStatistic => "non-number-statistic",
            Malformation::BadGzip => "bad-gzip",
        }
    }
}

/// One Firehose record as CloudWatch (or a misbehaving producer) would put it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleRecord {
    /// The record's bytes: JSON lines each ending in `\n`, or length-prefixed OpenTelemetry
    /// messages (see [`Spec::stream_format`]), possibly gzip-wrapped.
    pub bytes: Vec<u8>,
    /// When Firehose received it, in epoch milliseconds; records come in arrival order.
    pub arrival_ms: i64,
    /// `Some` when the record was damaged on purpose, and how; such a record must fail.
    pub malformed: Option<Malformation>,
}

impl SampleRecord {
    pub fn is_malformed(&self) -> bool {
        self.malformed.is_some()
    }
}

/// The records CloudWatch would send Firehose for the spec, in arrival order.
///
/// Each minute's datums (in series order, preceded by any late datums due then) are packed into
/// records of a few KB to 128 KiB that arrive spread over the minute after the delivery delay.
/// [`Spec::late_share`] of the datums move to a record 1 to 15 minutes later;
/// [`Spec::duplicate_share`] of the lines are repeated later in the same minute's records;
/// [`Spec::malformed_share`] of all records are malformed extras; [`Spec::gzip_share`] of the
/// good records are gzip-wrapped. [`Spec::resend_share`] of the datums are sent again with other
/// values (just before the original, just after it, or 1 to 15 minutes later), and
/// [`Spec::blank_share`] of the good records are followed by one with no datum; both draw from
/// streams of their own, and only when their share is above 0, so that with both at 0 the records
/// are the same as without them.
///
/// In an OpenTelemetry format, a record holds the same datums as in JSON (records are cut by the
/// size of their JSON lines, so the records, their arrivals and their ids are the same in every
/// format), as messages of at most [`OTEL_POINTS_PER_MESSAGE`] data points; a malformed record is
/// damaged the OpenTelemetry way of the same kind (see [`Malformation`]).
///
/// # Panics
///
/// If the spec is invalid (see [`Spec::validate`]).
pub fn records(spec: &Spec) -> Vec<SampleRecord> {
    let mut minutes = Minutes::new(spec);
    let origin = spec.origin();
    let mut packer =
        Packer { spec, draw: Draw::new(spec.seed, stream::RECORDS), blanks: Draw::new(spec.seed, stream::BLANKS), out: Vec::new() };
    let mut resends = Draw::new(spec.seed, stream::RESENDS);
    let otel = spec.stream_format.otel_version().is_some();
    // Lines held back for a later minute's records, by the index of that minute.
    let mut late: BTreeMap<u64, Vec<Line>> = BTreeMap::new();
    let mut minute = 0u64;
    while let Some((timestamp_ms, values)) = minutes.next_minute() {
        let mut lines = late.remove(&minute).unwrap_or_default();
        let line_of = |series: &Series, v: &Values| {
            let mut text = Vec::with_capacity(400);
            wire::write_line(&origin, series, timestamp_ms, v, &mut text);
            Line { text, datum: otel.then(|| wire::datum(&origin, series, timestamp_ms, v)) }
        };
        for (series, v) in minutes.series.iter().zip(&values) {
            let line = line_of(series, v);
            let due = if packer.draw.chance(spec.late_share) { minute + packer.draw.between(1, MAX_LATE_MINUTES) } else { minute };
            if spec.resend_share > 0.0 && resends.chance(spec.resend_share) {
                let copy = line_of(series, &resent(v, &mut resends));
                match resends.below(3) {
                    0 => due_lines(&mut lines, &mut late, minute, due).extend([copy, line]),
                    1 => due_lines(&mut lines, &mut late, minute, due).extend([line, copy]),
                    _ => {
                        due_lines(&mut lines, &mut late, minute, due).push(line);
                        let later = minute + resends.between(1, MAX_LATE_MINUTES);
                        due_lines(&mut lines, &mut late, minute, later).push(copy);
                    }
                }
            } else {
                due_lines(&mut lines, &mut late, minute, due).push(line);
            }
        }
        packer.send(minute, lines);
        minute += 1;
    }
    // Late datums due after the last minute still arrive, a minute at a time.
    for (minute, lines) in late {
        packer.send(minute, lines);
    }
    packer.out
}

/// The lines due in minute `due`: this minute's (`lines`, while it is minute `minute`) or a later one's.
fn due_lines<'a>(lines: &'a mut Vec<Line>, late: &'a mut BTreeMap<u64, Vec<Line>>, minute: u64, due: u64) -> &'a mut Vec<Line> {
    if due == minute { lines } else { late.entry(due).or_default() }
}

/// One datum due in a record: its JSON line, and for an OpenTelemetry stream the datum itself.
#[derive(Clone)]
struct Line {
    text: Vec<u8>,
    datum: Option<OwnedDatum>,
}

/// Packs the lines due in one minute into records.
struct Packer<'a> {
    spec: &'a Spec,
    draw: Draw,
    /// Whether a blank record follows a good one ([`Spec::blank_share`]).
    blanks: Draw,
    out: Vec<SampleRecord>,
}

impl Packer<'_> {
    fn send(&mut self, minute: u64, lines: Vec<Line>) {
        let lines = self.with_duplicates(lines);
        let mut records: Vec<Vec<Line>> = Vec::new();
        let mut current: Vec<Line> = Vec::new();
        let (mut size, mut target) = (0usize, self.target());
        for line in lines {
            if !current.is_empty() && size + line.text.len() > target {
                records.push(std::mem::take(&mut current));
                (size, target) = (0, self.target());
            }
            size += line.text.len();
            current.push(line);
        }
        if !current.is_empty() {
            records.push(current);
        }
        // The minute's records arrive in order over the minute after the delivery delay.
        let base = self.spec.start_ms + (minute as i64 + 1) * MINUTE_MS + DELIVERY_DELAY_MS;
        let count = records.len() as i64;
        for (i, lines) in records.into_iter().enumerate() {
            let arrival_ms = base + (i as i64 * MINUTE_MS + self.draw.below(MINUTE_MS as u64) as i64) / count;
            while self.draw.chance(self.spec.malformed_share) {
                let kind = *self.draw.pick(&self.spec.malformations);
                let bytes = match self.spec.stream_format.otel_version() {
                    None => malformed(kind, &texts(&lines), &mut self.draw),
                    Some(version) => malformed_otel(kind, &lines, version, &mut self.draw),
                };
                self.out.push(SampleRecord { bytes, arrival_ms, malformed: Some(kind) });
            }
            let text = match self.spec.stream_format.otel_version() {
                None => texts(&lines).concat(),
                Some(version) => otel_record(&lines, version),
            };
            debug_assert!(text.len() <= MAX_RECORD_BYTES);
            let bytes = if self.draw.chance(self.spec.gzip_share) { gzip(&text) } else { text };
            self.out.push(SampleRecord { bytes, arrival_ms, malformed: None });
            if self.spec.blank_share > 0.0 && self.blanks.chance(self.spec.blank_share) {
                // No datum: a blank line of JSON, or no bytes at all (a byte of OpenTelemetry
                // would be the start of a message).
                let bytes = if self.spec.stream_format.otel_version().is_some() { Vec::new() } else { b"\n".to_vec() };
                self.out.push(SampleRecord { bytes, arrival_ms, malformed: None });
            }
        }
    }

    /// The lines with [`Spec::duplicate_share`] of them repeated at a later position.
    fn with_duplicates(&mut self, lines: Vec<Line>) -> Vec<Line> {
        if self.spec.duplicate_share == 0.0 {
            return lines;
        }
        // Originals sit at even keys 2i, a copy of line i at an odd key 2j+1 for some j >= i,
        // so one stable sort places every copy after its original in linear-logarithmic time.
        let len = lines.len() as u64;
        let mut keyed: Vec<(u64, usize)> = Vec::with_capacity(lines.len() + lines.len() / 8);
        for i in 0..len {
            keyed.push((2 * i, i as usize));
            if self.draw.chance(self.spec.duplicate_share) {
                keyed.push((2 * self.draw.between(i, len - 1) + 1, i as usize));
            }
        }
        keyed.sort_by_key(|&(key, _)| key);
        keyed.into_iter().map(|(_, i)| lines[i].clone()).collect()
    }

    /// The size the next record is filled to.
    fn target(&mut self) -> usize {
        self.draw.between(RECORD_TARGET_BYTES.0, RECORD_TARGET_BYTES.1) as usize
    }
}

fn texts(lines: &[Line]) -> Vec<Vec<u8>> {
    lines.iter().map(|l| l.text.clone()).collect()
}

/// The datums of `lines` as length-prefixed OpenTelemetry messages, as CloudWatch packs them.
fn otel_record(lines: &[Line], version: OtelVersion) -> Vec<u8> {
    let datums: Vec<OwnedDatum> = lines.iter().map(|l| l.datum.clone().expect("datums are kept for OpenTelemetry streams")).collect();
    let mut out = Vec::with_capacity(datums.len() * 200);
    for chunk in datums.chunks(OTEL_POINTS_PER_MESSAGE) {
        write_otel_message(chunk, version, &mut out).expect("the sample's datums carry only what OpenTelemetry can");
    }
    out
}

/// [`malformed`] for an OpenTelemetry stream: the same kind of damage, the protobuf way, with
/// exactly the same draws (so the records after it are the same in every format).
fn malformed_otel(kind: Malformation, lines: &[Line], version: OtelVersion, draw: &mut Draw) -> Vec<u8> {
    let mut lines = lines[..lines.len().min(MALFORMED_LINES)].to_vec();
    let victim = draw.index(lines.len());
    let body_len = lines[victim].text.len() - 1;
    let datum = lines[victim].datum.as_mut().expect("datums are kept for OpenTelemetry streams");
    match kind {
        Malformation::TruncatedLine => {
            // Cut strictly inside the last message: its length then says more than follows.
            let cut = 1 + draw.index(body_len - 1);
            let record = otel_record(&lines, version);
            let last = lines.len().div_ceil(OTEL_POINTS_PER_MESSAGE) - 1;
            let last_start = if last == 0 { 0 } else { otel_record(&lines[..last * OTEL_POINTS_PER_MESSAGE], version).len() };
            let keep = last_start + 1 + cut % (record.len() - last_start - 1).max(1);
            return record[..keep].to_vec();
        }
        Malformation::MissingValue => datum.namespace = "".into(),
        Malformation::NonNumberStatistic => match *draw.pick(&["max", "min", "sum", "count"]) {
            "max" => datum.max = f64::NAN,
            "min" => datum.min = f64::NAN,
            // OpenTelemetry's count is an integer: it cannot be anything but a number.
            _ => datum.sum = f64::NAN,
        },
        Malformation::BadGzip => {}
    }
    let record = otel_record(&lines, version);
    if kind == Malformation::BadGzip {
        let mut whole = gzip(&record);
        whole.truncate(whole.len() / 2);
        return whole;
    }
    record
}

/// A malformed copy of the first lines of a good record, damaged as `kind` says.
fn malformed(kind: Malformation, lines: &[Vec<u8>], draw: &mut Draw) -> Vec<u8> {
    let lines = &lines[..lines.len().min(MALFORMED_LINES)];
    let victim = draw.index(lines.len());
    let mut text = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i != victim {
            text.extend_from_slice(line);
            continue;
        }
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        match kind {
            Malformation::TruncatedLine => {
                // Any proper prefix of a JSON object is invalid JSON: the object never closes.
                let cut = 1 + draw.index(body.len() - 1);
                text.extend_from_slice(&body[..cut]);
            }
            Malformation::MissingValue => {
                let start = find(body, b",\"value\":{").expect("every line has a value");
                let end = start + find(&body[start..], b"}").expect("the value object closes");
                text.extend_from_slice(&body[..start]);
                text.extend_from_slice(&body[end + 1..]);
            }
            Malformation::NonNumberStatistic => {
                let name = *draw.pick(&["max", "min", "sum", "count"]);
                let value_at = find(body, b"\"value\":{").expect("every line has a value");
                let key = format!("\"{name}\":");
                let start = value_at + find(&body[value_at..], key.as_bytes()).expect("every value has the four statistics") + key.len();
                let end = start + body[start..].iter().position(|&b| b == b',' || b == b'}').expect("the value object closes");
                text.extend_from_slice(&body[..start]);
                text.push(b'"');
                text.extend_from_slice(&body[start..end]);
                text.push(b'"');
                text.extend_from_slice(&body[end..]);
            }
            Malformation::BadGzip => text.extend_from_slice(body),
        }
        text.push(b'\n');
    }
    if kind == Malformation::BadGzip {
        let mut whole = gzip(&text);
        whole.truncate(whole.len() / 2);
        return whole;
    }
    text
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Gzip with a fixed header (no file name, modification time 0), so the bytes are reproducible.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::GzBuilder::new().mtime(0).write(Vec::with_capacity(bytes.len() / 4), flate2::Compression::default());
    encoder.write_all(bytes).expect("writing into a Vec cannot fail");
    encoder.finish().expect("writing into a Vec cannot fail")
}

/// Batches records, in order, into Firehose data-transformation events of at most
/// `max_event_bytes` each when serialized as JSON (the Lambda invocation payload).
///
/// Record ids look like Firehose's (56 decimal digits, increasing within the delivery stream)
/// and depend only on the seed and the record's position, not on the batching; invocation ids
/// are UUIDs. `approximateArrivalTimestamp` is the record's arrival.
///
/// Firehose also cuts a batch when its buffer interval passes; this does not, so events come out
/// as large as allowed, which is what load tests want.
///
/// # Errors
///
/// [`Error::EventTooSmall`] when some record does not fit in an event of that size even alone.
pub fn firehose_events(spec: &Spec, records: &[SampleRecord], max_event_bytes: usize) -> Result<Vec<FirehoseEvent<'static>>> {
    let mut record_ids = Draw::new(spec.seed, stream::EVENT_IDS);
    let mut invocation_ids = Draw::new(spec.seed, stream::INVOCATION_IDS);
    // The digits of a Kinesis-style sequence number that stay the same within one stream.
    let stream_digits = format!("{:012}{:012}", record_ids.below(1_000_000_000_000), record_ids.below(1_000_000_000_000));
    let envelope = |invocation_id: String| FirehoseEvent {
        invocation_id: Some(invocation_id),
        delivery_stream_arn: Some(format!("arn:aws:firehose:{}:{}:deliverystream/{}", spec.region, spec.account_id, spec.stream_name)),
        region: Some(spec.region.clone()),
        records: Vec::new(),
    };
    // Every invocation id has the same length, so the envelope's size is known up front.
    let envelope_bytes = serialized_len(&envelope(String::from("00000000-0000-4000-8000-000000000000")));

    let mut events = Vec::new();
    let mut current = envelope(invocation_ids.uuid());
    let mut current_bytes = envelope_bytes;
    for (index, record) in records.iter().enumerate() {
        let record = FirehoseRecord {
            record_id: format!("49{stream_digits}{index:021}{:09}", record_ids.below(1_000_000_000)),
            approximate_arrival_timestamp: Some(record.arrival_ms as f64),
            data: Some(BASE64.encode(&record.bytes).into()),
        };
        let record_bytes = serialized_len(&record);
        if envelope_bytes + record_bytes > max_event_bytes {
            return Err(Error::EventTooSmall { index, needed: envelope_bytes + record_bytes, max: max_event_bytes });
        }
        // A comma separates a record from the one before it.
        let added = record_bytes + usize::from(!current.records.is_empty());
        if current_bytes + added > max_event_bytes {
            events.push(std::mem::replace(&mut current, envelope(invocation_ids.uuid())));
            current_bytes = envelope_bytes + record_bytes;
        } else {
            current_bytes += added;
        }
        current.records.push(record);
    }
    if !current.records.is_empty() {
        events.push(current);
    }
    Ok(events)
}

fn serialized_len<T: serde::Serialize>(value: &T) -> usize {
    serde_json::to_vec(value).expect("serializing to a Vec cannot fail").len()
}

/// One object as Firehose writes it to S3 with GZIP compression and no transform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawObject {
    /// `raw/YYYY/MM/DD/HH/<stream>-1-YYYY-MM-DD-HH-MM-SS-<uuid>.gz`: Firehose's default UTC hour
    /// prefix (under `raw/`) and object name, from the first record's arrival.
    pub key: String,
    /// The gzip of the records' bytes, concatenated as they arrived (Firehose adds no separator;
    /// OpenTelemetry records, messages each preceded by its length, concatenate into one such
    /// sequence of messages). Not gzip from [`raw_objects_uncompressed`].
    pub bytes: Vec<u8>,
    /// How many records the object holds.
    pub records: usize,
}

/// The objects Firehose would write from the records without a transform: a new object when the
/// buffer interval ([`RAW_BUFFER_INTERVAL_MS`]) has passed since the first buffered record, when
/// the buffer would exceed [`RAW_BUFFER_BYTES`], or when the arrival hour (the prefix) changes.
///
/// Records are copied verbatim, malformed ones included, exactly as Firehose would.
pub fn raw_objects(spec: &Spec, records: &[SampleRecord]) -> Vec<RawObject> {
    raw_objects_compressed(spec, records, true)
}

/// [`raw_objects`] as Firehose writes them with no compression configured (the default of a
/// delivery stream made by a metric stream's Quick S3 setup is to gzip, but it can be changed):
/// the same objects, not gzipped, without the `.gz` suffix.
pub fn raw_objects_uncompressed(spec: &Spec, records: &[SampleRecord]) -> Vec<RawObject> {
    raw_objects_compressed(spec, records, false)
}

fn raw_objects_compressed(spec: &Spec, records: &[SampleRecord], compressed: bool) -> Vec<RawObject> {
    let mut names = Draw::new(spec.seed, stream::RAW_NAMES);
    let mut objects = Vec::new();
    let mut start = 0;
    while start < records.len() {
        let first = &records[start];
        let hour = utc_hour(first.arrival_ms);
        let mut end = start;
        let mut size = 0;
        while end < records.len() {
            let r = &records[end];
            let full = end > start && size + r.bytes.len() > RAW_BUFFER_BYTES;
            if full || r.arrival_ms - first.arrival_ms >= RAW_BUFFER_INTERVAL_MS || utc_hour(r.arrival_ms) != hour {
                break;
            }
            size += r.bytes.len();
            end += 1;
        }
        let mut buffer = Vec::with_capacity(size);
        for r in &records[start..end] {
            buffer.extend_from_slice(&r.bytes);
        }
        let seconds = first.arrival_ms.div_euclid(1000);
        let (minute, second) = ((seconds / 60) % 60, seconds % 60);
        let (date, hh) = (hour.date(), hour.hour_text());
        let suffix = if compressed { ".gz" } else { "" };
        let key = format!(
            "raw/{}/{hh}/{}-1-{date}-{hh}-{minute:02}-{second:02}-{}{suffix}",
            date.replace('-', "/"),
            spec.stream_name,
            names.uuid()
        );
        let bytes = if compressed { gzip(&buffer) } else { buffer };
        objects.push(RawObject { key, bytes, records: end - start });
        start = end;
    }
    objects
}

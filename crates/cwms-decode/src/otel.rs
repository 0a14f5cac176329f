//! CloudWatch metric streams in the OpenTelemetry formats (`opentelemetry1.0` and
//! `opentelemetry0.7`) into the same datums as the JSON format.
//!
//! # The record
//!
//! AWS, on both format pages: "A Kinesis record can contain one or more
//! `ExportMetricsServiceRequest` OpenTelemetry data structures. Each data structure starts with
//! a header with an `UnsignedVarInt32` indicating the record length in bytes." So a record is
//! read message by message: a varint of at most 5 bytes and at most `u32::MAX`, then exactly that
//! many bytes of message, until the record ends. Each length is read where the previous message
//! ended (the Collector read it from the start of the record every time, which only works when
//! all messages have the same length: opentelemetry-collector-contrib issue 39462), and checked
//! against what is left before anything is sliced. An empty record holds no message; a
//! zero-length message is an empty request, with no datums.
//!
//! # A record decodes wholly or not at all
//!
//! The first problem anywhere fails the whole record with an [`OtelError`] that names the
//! message (1-based), the byte offset in the record, the field's path
//! (`resource_metrics[0].scope_metrics[0].metrics[3].summary.data_points[1].quantile_values[0]`,
//! with the field names of 1.0, whatever the version) and the metric's name when it is known.
//! There is no per-line outcome as in JSON: a protobuf record has no lines, and once one message
//! is bad nothing says where the next good one starts. The transform answers such a record
//! `ProcessingFailed` (Firehose keeps its original bytes for `cwms redrive`); the compactor
//! reports such a raw object as bad and leaves it in place, whole. [`decode_otel`] returns
//! the datums only when every one decoded; [`for_each_otel_datum`] lends them one by one and
//! its caller must drop what it got when it returns an error.
//!
//! # One decoder for both versions
//!
//! The two `metrics.proto` files (opentelemetry-proto v0.7.0 and v1.0.0) number every field on
//! CloudWatch's path the same way, with the same wire types: `ExportMetricsServiceRequest
//! .resource_metrics = 1`; `ResourceMetrics.resource = 1` and `instrumentation_library_metrics`
//! (0.7) / `scope_metrics` (1.0) `= 2`, each with `metrics = 2`; `Metric.name = 1`, `unit = 3`,
//! `double_summary` (0.7) / `summary` (1.0) `= 11` with `data_points = 1`; in the data point
//! `start_time_unix_nano = 2`, `time_unix_nano = 3`, `count = 4` (fixed64), `sum = 5`
//! (double), `quantile_values = 6` with `quantile = 1` and `value = 2` (doubles); `Resource
//! .attributes = 1` of `KeyValue { key = 1, value = 2 (AnyValue) }`, `AnyValue.string_value = 1`
//! in both. The one difference is where a data point's attributes are: 0.7's
//! `DoubleSummaryDataPoint` has `repeated StringKeyValue labels = 1` (`key = 1`, `value = 2`,
//! both strings), 1.0's `SummaryDataPoint` has `repeated KeyValue attributes = 7` and declares
//! `reserved 1`. The numbers never collide, so one reader takes field 1 as 0.7 labels and field 7
//! as 1.0 attributes, deciding per data point (one that has both is refused). A decoder generated
//! from either version's files would silently read no dimensions, no namespace and no metric name
//! from the other version's bytes (AWS says as much on the 1.0 page), which is why a data point
//! without `Namespace` or `MetricName` fails instead of becoming a datum without them. The
//! fields that do differ between versions (`Metric` fields 4 to 10: 0.7's int and double gauges,
//! sums and histograms, 1.0's gauge, sum, histogram and exponential histogram) are all metric
//! kinds that CloudWatch never streams, and are refused alike.
//!
//! # What becomes what
//!
//! - Resource attributes (AWS: "`cloud.account.id` contains the account ID, `cloud.region`
//!   contains the Region, `aws.exporter.arn` contains the metric stream ARN"): `account_id`,
//!   `region`, and `metric_stream_name`, the last `/`-segment of the ARN
//!   (`arn:aws:cloudwatch:us-east-1:123456789012:metric-stream/MyMetricStream`); no ARN, no
//!   stream name, as in JSON without `metric_stream_name`. `cloud.provider` and anything else is
//!   ignored. A `ResourceMetrics` with scope metrics must have the account and the region.
//! - 1.0 data-point attributes `Namespace`, `MetricName` (string values) and `Dimensions` (a
//!   kvlist of string values); other attribute keys are ignored, as the JSON decoder ignores
//!   fields it does not know. 0.7 labels: the first `Namespace` and the first `MetricName` label
//!   are those, every other label is a dimension (so a dimension literally called `Namespace`,
//!   which CloudWatch writes after the two, stays a dimension).
//! - `startTimeUnixNano` is the datum's `timestamp`, in epoch milliseconds. AWS's translation
//!   pages say "`startTimeUnixNano` contains the CloudWatch `startTime`, `timeUnixNano` contains
//!   the CloudWatch `endTime`"; CloudWatch's concepts page says aggregated statistics "are stamped
//!   with the time corresponding to the beginning of the period"; real JSON datums are on the
//!   minute and the one public OpenTelemetry capture (a 0.7 record in VictoriaMetrics' tests) has
//!   minute-aligned starts with `timeUnixNano = start + 60 s`. No AWS page states "JSON
//!   `timestamp` = `startTimeUnixNano`" in so many words, but every piece of evidence agrees, and
//!   DESIGN 2 makes it the contract. (The Collector stamps JSON datums as the point's *time*, so
//!   its two paths disagree by a period; cwms does not copy that.) A start of 0 (absent), not on a
//!   whole millisecond, or outside 2000 to 2099 fails; `timeUnixNano` is not needed and not checked.
//! - `count` (a fixed64) is the sample count as a float, as JSON's integer `count` is; `sum` is
//!   the sum (absent means 0, proto3's default); quantile 0.0 is the minimum and 1.0 the maximum,
//!   both required; every other quantile is a percentile named as CloudWatch names it (`p99`,
//!   `p99.9`, `p50`; see `names.rs` for why `q * 100` is not formatted). Numbers must be finite.
//!   The OpenTelemetry formats can carry no other statistic (AWS: for OpenTelemetry streams "the
//!   only valid values are `p??` percentile statistics"), so the trimmed means and the like of
//!   JSON never occur.
//! - `Metric.unit`: a UCUM code of [`UNITS`] becomes its CloudWatch name (`By/s` is
//!   `Bytes/Second`, `1` is `None`); none (or an empty one) is `None`, as in JSON; any other unit
//!   is kept exactly as given (AWS's own 1.0 example has `NoneTranslated`, which is not in its
//!   table: it stays `NoneTranslated` rather than being guessed). `Metric.name`
//!   (`amazonaws.com/<namespace>/<metric>`) repeats what the attributes say and is only used to
//!   name the metric in errors: splitting it is ambiguous (namespaces contain `/`).
//!
//! Unknown fields are skipped by wire type, fields may come in any order, and a repeated scalar
//! keeps its last value, as protobuf says. Every string that a datum keeps must be UTF-8 (the
//! metric's name, used only in error messages, is not checked). Only the fields read here are
//! checked for their wire type.
//!
//! # How it is read
//!
//! By hand, a few fields of a few messages, borrowing every string from the record: no generated
//! code, no build script and no protoc (the project builds on two cores, and the generated Rust
//! types of 1.x cannot read 0.7's labels anyway). `otel/wire.rs` reads varints and fields,
//! `otel/read.rs` walks the messages down to the datums, `otel/strings.rs` reads key-value pairs
//! (with a shortcut for the layout CloudWatch writes, and UTF-8 checked once per message rather
//! than once per string: that is where the time goes), `otel/fail.rs` builds the errors' paths on
//! the way up, only for an error. Every read is bounds-checked, there is no recursion (nested
//! values are read only as deep as CloudWatch puts them) and no `unsafe`; a property test feeds
//! it random and mutated records. `cwms_model::otel::write_otel_message` writes datums as CloudWatch
//! would, for the generator, the benchmarks and round-trip tests.

use std::fmt;

use cwms_model::{Datum, UNIT_NONE};

use read::{State, request};

mod fail;
mod names;
mod read;
mod strings;
#[cfg(test)]
mod tests;
mod wire;

pub use cwms_model::otel::{EncodeError, OtelVersion, UNITS, cloudwatch_unit, ucum_unit, write_otel_message};
pub use wire::WireProblem;

/// The format of a record's (or a raw object's) bytes, once gzip is undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Metric-stream JSON lines.
    Json,
    /// Length-prefixed OpenTelemetry `ExportMetricsServiceRequest` messages (0.7 or 1.0).
    OpenTelemetry,
}

/// Tells the two formats apart: JSON starts with `{` after optional ASCII whitespace (and a UTF-8
/// byte-order mark); anything else non-empty is OpenTelemetry. Empty or blank bytes are JSON
/// without lines.
///
/// No record that CloudWatch writes looks like JSON. It starts with a length and then nested
/// messages whose first field is field 1 (`0a`, resource metrics, resource, attributes, key);
/// where its whitespace-valued bytes end (lengths 9, 10, 12, 13 or 32, tags `0a`), the next
/// byte is a length, which `{` (123) cannot be as it exceeds the enclosing one (at most 32), or a
/// tag, and `7b` (field 15, wire type 3) is illegal. Only a crafted record whose first field is
/// an unknown varint (tag `20`) of value 123 would read as JSON, and be refused as invalid JSON
/// (so `ProcessingFailed`, nothing lost); and a record of whitespace bytes only can be nothing
/// but messages without datums, which is what JSON without lines gives too.
pub fn detect(bytes: &[u8]) -> Format {
    let rest = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match rest.iter().find(|b| !b.is_ascii_whitespace()) {
        None | Some(b'{') => Format::Json,
        Some(_) => Format::OpenTelemetry,
    }
}

/// Why an OpenTelemetry record cannot be decoded, and where.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}", self.render())]
pub struct OtelError {
    /// The 1-based index of the `ExportMetricsServiceRequest` in the record (for a framing problem,
    /// the message whose length prefix was being read).
    pub message: usize,
    /// The byte offset in the record (decompressed) where the problem is.
    pub offset: usize,
    /// The path of the field in the message (empty for a framing problem), with 1.0's names.
    pub field: String,
    /// The metric's `name` (`amazonaws.com/AWS/EC2/CPUUtilization`), when the problem is inside one.
    pub metric: Option<String>,
    pub problem: OtelProblem,
}

impl OtelError {
    fn render(&self) -> String {
        let mut out = format!("message {} at byte {}", self.message, self.offset);
        if !self.field.is_empty() {
            out.push_str(", ");
            out.push_str(&self.field);
        }
        if let Some(metric) = &self.metric {
            out.push_str(&format!(" (metric {metric:?})"));
        }
        out.push_str(&format!(": {}", self.problem));
        out
    }
}

/// The length prefix of a message cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The record ends inside the varint.
    Truncated,
    /// More than five bytes, or a value above `u32::MAX`.
    NotVarint32,
    /// The length exceeds the bytes left after the prefix.
    PastEnd { length: u64, available: usize },
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Framing::Truncated => f.write_str("the record ends inside the length prefix (a truncated varint)"),
            Framing::NotVarint32 => f.write_str("the length prefix is not a varint32 (more than 5 bytes or above 4294967295)"),
            Framing::PastEnd { length, available } => {
                write!(f, "the length prefix says {length} bytes but only {available} follow in the record")
            }
        }
    }
}

/// What is wrong with an OpenTelemetry record.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum OtelProblem {
    /// The first message's length prefix cannot be read.
    #[error("{0}")]
    Framing(Framing),
    /// Bytes after the last whole message that do not start another one.
    #[error("the last {count} bytes of the record are not a length-prefixed message: {framing}")]
    TrailingBytes { count: usize, framing: Framing },
    /// The bytes of a message are not protobuf.
    #[error("{0}")]
    Wire(WireProblem),
    /// A field read here has another wire type than its schema's.
    #[error("is {found}, expected {expected}")]
    WrongWireType { expected: &'static str, found: &'static str },
    #[error("is not valid UTF-8")]
    InvalidUtf8,
    /// A metric of another kind than Summary (field 4 to 10 of `Metric`).
    #[error("is a {kind} metric, not a Summary (CloudWatch streams only summaries)")]
    NotASummary { kind: &'static str },
    #[error("the metric has no data (no Summary)")]
    NoData,
    #[error("no quantile 0.0 (the minimum)")]
    MissingMin,
    #[error("no quantile 1.0 (the maximum)")]
    MissingMax,
    /// Two quantiles give the same statistic (`min`, `max` or a percentile name).
    #[error("two quantiles give `{0}`")]
    DuplicateQuantile(String),
    #[error("quantile {0} is not between 0 and 1")]
    QuantileOutOfRange(f64),
    #[error("quantile {0} is not a CloudWatch percentile (p0.01 to p99.99, at most two decimals)")]
    NotAPercentile(f64),
    /// A required attribute (`Namespace`, `MetricName`, `cloud.account.id`, `cloud.region`) is absent.
    #[error("no `{0}` attribute")]
    MissingAttribute(&'static str),
    #[error("`{0}` is empty")]
    EmptyAttribute(&'static str),
    #[error("attribute `{0}` appears more than once")]
    DuplicateAttribute(String),
    /// An attribute's value is not the type CloudWatch puts there.
    #[error("`{key}` is {found}, expected {expected}")]
    WrongValueType { key: String, found: &'static str, expected: &'static str },
    #[error("dimension `{0}` appears more than once")]
    DuplicateDimension(String),
    #[error("the data point has both 0.7 labels (field 1) and 1.0 attributes (field 7)")]
    MixedVersions,
    /// The data point is of the other version than the one the stream format was set to.
    #[error("{}", match expected {
        OtelVersion::V1_0 => "the data point has 0.7 labels (field 1), but the stream format is set to opentelemetry1.0",
        OtelVersion::V0_7 => "the data point has 1.0 attributes (field 7), but the stream format is set to opentelemetry0.7",
    })]
    OtherVersion { expected: OtelVersion },
    #[error("`{field}` is not a finite number ({value})")]
    NotFinite { field: &'static str, value: f64 },
    #[error("no startTimeUnixNano (the period's start, which is the datum's timestamp)")]
    MissingStartTime,
    #[error("startTimeUnixNano {0} is not a whole number of milliseconds")]
    NotWholeMillisecond(u64),
    #[error("startTimeUnixNano {0} is not a time from 2000 to 2099 (seconds or microseconds?)")]
    TimestampOutOfRange(u64),
    #[error("the data point's flags say it has no recorded value")]
    NoRecordedValue,
    #[error("`aws.exporter.arn` is not a metric-stream ARN (arn:...:metric-stream/NAME): {0:?}")]
    InvalidArn(String),
}

/// Decodes a whole OpenTelemetry record into its datums, in record order, or fails as a whole.
pub fn decode_otel(record: &[u8]) -> Result<Vec<Datum<'_>>, OtelError> {
    let mut datums = Vec::with_capacity(record.len() / 256 + 1);
    for_each_otel_datum(record, |datum| datums.push(datum.clone()))?;
    Ok(datums)
}

/// Decodes an OpenTelemetry record, lending each datum to `visit` in record order (one datum
/// reused from data point to data point, so the usual one allocates nothing), and returns how
/// many there were.
///
/// On an error, the datums already visited belong to a record that failed and must be dropped:
/// a record decodes wholly or not at all.
pub fn for_each_otel_datum<'a>(record: &'a [u8], visit: impl FnMut(&Datum<'a>)) -> Result<usize, OtelError> {
    for_each_otel_datum_of(record, None, visit).map(|counts| counts.datums())
}

/// How many datums of each version a record held.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OtelCounts {
    /// Data points with 1.0 attributes.
    pub v1_0: usize,
    /// Data points with 0.7 labels.
    pub v0_7: usize,
}

impl OtelCounts {
    pub fn datums(&self) -> usize {
        self.v1_0 + self.v0_7
    }
}

/// [`for_each_otel_datum`], counting the datums of each version; with `expect`, a data point of
/// the other version fails the record ([`OtelProblem::OtherVersion`]), for a stream whose format
/// is set explicitly.
pub fn for_each_otel_datum_of<'a>(
    record: &'a [u8],
    expect: Option<OtelVersion>,
    mut visit: impl FnMut(&Datum<'a>),
) -> Result<OtelCounts, OtelError> {
    let mut state = State { datum: crate::fast::empty_datum(), counts: OtelCounts::default(), expect, unit: (b"", UNIT_NONE) };
    let mut at = 0;
    let mut message = 0;
    while at < record.len() {
        message += 1;
        let prefix = at;
        let length = read_length(record, &mut at).map_err(|framing| framing_error(record, message, prefix, framing))?;
        let body = &record[at..at + length];
        request(body, at, &mut state, &mut visit).map_err(|fail| (*fail).finish(message))?;
        at += length;
    }
    Ok(state.counts)
}

/// Reads a message's length prefix at `record[*at..]`, checked against what follows.
fn read_length(record: &[u8], at: &mut usize) -> Result<usize, Framing> {
    let length = read_prefix(record, at).map_err(|problem| match problem {
        PrefixProblem::Truncated => Framing::Truncated,
        PrefixProblem::NotVarint32 => Framing::NotVarint32,
    })?;
    let available = record.len() - *at;
    if length > available as u64 {
        return Err(Framing::PastEnd { length, available });
    }
    Ok(length as usize)
}

/// Why a length prefix cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrefixProblem {
    /// The bytes end inside it.
    Truncated,
    /// More than five bytes, or a value above `u32::MAX`.
    NotVarint32,
}

/// Reads a length prefix (an unsigned varint32) at `bytes[*at..]`, advancing `at` past it; the
/// length is not checked against what follows.
pub(crate) fn read_prefix(bytes: &[u8], at: &mut usize) -> Result<u64, PrefixProblem> {
    let mut length = 0u64;
    for i in 0..5 {
        let Some(&b) = bytes.get(*at + i) else { return Err(PrefixProblem::Truncated) };
        length |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            if length > u64::from(u32::MAX) {
                return Err(PrefixProblem::NotVarint32);
            }
            *at += i + 1;
            return Ok(length);
        }
    }
    Err(PrefixProblem::NotVarint32)
}

/// The messages of a record, each with its length prefix (so each reads as a record of one
/// message): `visit` gets the 1-based number, the byte offset and the bytes of each. Returns the
/// number of messages, or the framing problem (as [`for_each_otel_datum`] reports it) that stops
/// the walk; the messages' contents are not read.
pub fn for_each_message<'a>(record: &'a [u8], mut visit: impl FnMut(usize, usize, &'a [u8])) -> Result<usize, OtelError> {
    let (mut at, mut message) = (0, 0);
    while at < record.len() {
        message += 1;
        let prefix = at;
        let length = read_length(record, &mut at).map_err(|framing| framing_error(record, message, prefix, framing))?;
        at += length;
        visit(message, prefix, &record[prefix..at]);
    }
    Ok(message)
}

fn framing_error(record: &[u8], message: usize, prefix: usize, framing: Framing) -> OtelError {
    OtelError {
        message,
        offset: prefix,
        field: String::new(),
        metric: None,
        problem: if message == 1 {
            OtelProblem::Framing(framing)
        } else {
            OtelProblem::TrailingBytes { count: record.len() - prefix, framing }
        },
    }
}

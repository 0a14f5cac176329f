//! CloudWatch metric streams' output formats, and datums written in the OpenTelemetry ones.
//!
//! A metric stream's `OutputFormat` is `json`, `opentelemetry1.0` or `opentelemetry0.7`
//! ([`OutputFormat`]). The OpenTelemetry formats carry units as UCUM codes ([`UNITS`]) and
//! percentiles as quantiles ([`percentile_quantile`]); [`write_otel_message`] writes datums as
//! CloudWatch does, for the generator, the benchmarks and round-trip tests. Reading them is
//! `cwms_decode::otel`'s work (writers live here, beside `Datum::write_json_line`, so that the
//! generator, which may use only this crate, can write every format).

use std::fmt;
use std::str::FromStr;

use crate::Datum;

/// A metric stream's output format, by the names CloudWatch's `OutputFormat` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// `json`: one JSON object per datum, lines separated by `\n`.
    Json,
    /// `opentelemetry1.0`: length-prefixed `ExportMetricsServiceRequest` messages, 1.0 attributes.
    OpenTelemetry1_0,
    /// `opentelemetry0.7`: the same messages with 0.7's `StringKeyValue` labels.
    OpenTelemetry0_7,
}

impl OutputFormat {
    /// Every format, in the order CloudWatch's documentation lists them.
    pub const ALL: [OutputFormat; 3] = [OutputFormat::Json, OutputFormat::OpenTelemetry1_0, OutputFormat::OpenTelemetry0_7];

    /// CloudWatch's name for the format (`AWS::CloudWatch::MetricStream` `OutputFormat`).
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Json => "json",
            OutputFormat::OpenTelemetry1_0 => "opentelemetry1.0",
            OutputFormat::OpenTelemetry0_7 => "opentelemetry0.7",
        }
    }

    /// The OpenTelemetry version of the format, `None` for JSON.
    pub fn otel_version(self) -> Option<OtelVersion> {
        match self {
            OutputFormat::Json => None,
            OutputFormat::OpenTelemetry1_0 => Some(OtelVersion::V1_0),
            OutputFormat::OpenTelemetry0_7 => Some(OtelVersion::V0_7),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of CloudWatch's output formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownOutputFormat(pub String);

impl fmt::Display for UnknownOutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown output format {:?} (known: json, opentelemetry1.0, opentelemetry0.7)", self.0)
    }
}

impl std::error::Error for UnknownOutputFormat {}

impl FromStr for OutputFormat {
    type Err = UnknownOutputFormat;

    /// CloudWatch's exact names (`opentelemetry1.0`), as the template and the API spell them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutputFormat::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| UnknownOutputFormat(s.to_owned()))
    }
}

/// CloudWatch's 27 units (the `MetricDatum.Unit` values of its API, which the JSON format uses)
/// and the UCUM code each becomes in the OpenTelemetry formats.
///
/// The first 17 rows are AWS's table ("Translating units" on the OpenTelemetry translation
/// pages); the `/Second` rows follow its rule "units that are combined with a slash are mapped
/// by applying the OpenTelemetry conversion of both the units. For example, Bytes/Second is
/// mapped to By/s". The odd capitals (`MBit`, `GBit` beside `kbit`, `Tbit`) are AWS's. No two
/// rows share a code, so the map reads back unambiguously.
pub const UNITS: [(&str, &str); 27] = [
    ("Seconds", "s"),
    ("Microseconds", "us"),
    ("Milliseconds", "ms"),
    ("Bytes", "By"),
    ("Kilobytes", "kBy"),
    ("Megabytes", "MBy"),
    ("Gigabytes", "GBy"),
    ("Terabytes", "TBy"),
    ("Bits", "bit"),
    ("Kilobits", "kbit"),
    ("Megabits", "MBit"),
    ("Gigabits", "GBit"),
    ("Terabits", "Tbit"),
    ("Percent", "%"),
    ("Count", "{Count}"),
    ("None", "1"),
    ("Bytes/Second", "By/s"),
    ("Kilobytes/Second", "kBy/s"),
    ("Megabytes/Second", "MBy/s"),
    ("Gigabytes/Second", "GBy/s"),
    ("Terabytes/Second", "TBy/s"),
    ("Bits/Second", "bit/s"),
    ("Kilobits/Second", "kbit/s"),
    ("Megabits/Second", "MBit/s"),
    ("Gigabits/Second", "GBit/s"),
    ("Terabits/Second", "Tbit/s"),
    ("Count/Second", "{Count}/s"),
];

/// The CloudWatch unit of a UCUM code from [`UNITS`], or `None` for any other text.
#[inline]
pub fn cloudwatch_unit(ucum: &str) -> Option<&'static str> {
    UNITS.iter().find(|(_, code)| *code == ucum).map(|(name, _)| *name)
}

/// The UCUM code of a CloudWatch unit from [`UNITS`], or `None` for any other text.
pub fn ucum_unit(cloudwatch: &str) -> Option<&'static str> {
    UNITS.iter().find(|(name, _)| *name == cloudwatch).map(|(_, code)| *code)
}

/// The quantile of a percentile name in its shortest spelling (`p99.9` is 0.999, `p95.45` is
/// 0.9545), or `None` for any other name (`p99.90`, `p100`, `TM(10%:90%)`): the names an
/// OpenTelemetry stream's quantiles read back as (see `cwms_decode::otel`), so only those can be
/// written as quantiles and come back unchanged.
pub fn percentile_quantile(name: &str) -> Option<f64> {
    let digits = name.strip_prefix('p')?;
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !plain(whole) || (whole.len() > 1 && whole.starts_with('0')) || (!fraction.is_empty() && !plain(fraction)) {
        return None;
    }
    if digits.contains('.') && (fraction.is_empty() || fraction.len() > 2 || fraction.ends_with('0')) {
        return None;
    }
    let whole: u32 = whole.parse().ok().filter(|w| *w < 100)?;
    let hundredths: u32 = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<u32>().ok()? * 10,
        _ => fraction.parse().ok()?,
    };
    let n = whole * 100 + hundredths;
    // A decimal literal's nearest double, as CloudWatch's own encoder would write it.
    (n > 0).then(|| format!("0.{n:04}").parse().expect("a decimal"))
}

/// Which OpenTelemetry format to write: they differ only in the data points' attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtelVersion {
    /// `opentelemetry0.7`: `StringKeyValue` labels `Namespace`, `MetricName`, then one per dimension.
    V0_7,
    /// `opentelemetry1.0`: `KeyValue` attributes `Namespace`, `MetricName` and a `Dimensions` kvlist.
    V1_0,
}

/// A datum the OpenTelemetry formats cannot carry so that it reads back the same.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Only percentiles travel as quantiles (`p99`, `p99.9`; not `p99.0`, `TM(10%:90%)`, `IQM`).
    #[error("datum {index}: statistic `{name}` is not a percentile that OpenTelemetry can carry")]
    Statistic { index: usize, name: String },
    /// OpenTelemetry's `count` is an integer.
    #[error("datum {index}: count {count} is not a whole number of samples")]
    Count { index: usize, count: f64 },
    /// A unit that is not a CloudWatch unit but reads as one (a UCUM code such as `s`).
    #[error("datum {index}: unit `{unit}` would read back as another unit")]
    Unit { index: usize, unit: String },
    /// A stream name that is empty or holds `/`, which the ARN cannot carry.
    #[error("datum {index}: stream name {name:?} cannot be carried in a metric-stream ARN")]
    StreamName { index: usize, name: String },
    #[error("datum {index}: timestamp {timestamp_ms} is before 1970 or too far ahead for nanoseconds")]
    Timestamp { index: usize, timestamp_ms: i64 },
    #[error("the message would exceed 4294967295 bytes")]
    TooLarge,
}

/// The length of the period a datum covers, for `timeUnixNano` (CloudWatch streams minutes).
const PERIOD_NANOS: u64 = 60_000_000_000;

/// Appends one length-prefixed `ExportMetricsServiceRequest` holding `datums` to `out`, in
/// CloudWatch's shape: one `ResourceMetrics` per run of datums from the same account, region
/// and stream, one `Metric` per run of the same series, one data point per datum (`timeUnixNano`
/// one minute after the start). Calling it again appends another message to the same record.
///
/// On an error nothing is appended.
pub fn write_otel_message(datums: &[Datum<'_>], version: OtelVersion, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    for (index, datum) in datums.iter().enumerate() {
        check(index, datum)?;
    }
    let mut body = Vec::with_capacity(datums.len() * 160);
    let mut rest = datums;
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|d| {
                (&d.account_id, &d.region, &d.metric_stream_name) == (&first.account_id, &first.region, &first.metric_stream_name)
            })
            .count();
        let (run, tail) = rest.split_at(same);
        nested(&mut body, 1, |out| resource_metrics(run, version, out));
        rest = tail;
    }
    if body.len() > u32::MAX as usize {
        return Err(EncodeError::TooLarge);
    }
    put_varint(out, body.len() as u64);
    out.extend_from_slice(&body);
    Ok(())
}

fn check(index: usize, datum: &Datum<'_>) -> Result<(), EncodeError> {
    for (name, _) in &datum.stats {
        if percentile_quantile(name).is_none() {
            return Err(EncodeError::Statistic { index, name: name.to_string() });
        }
    }
    if !(datum.count >= 0.0 && datum.count.fract() == 0.0 && datum.count < 18_446_744_073_709_551_616.0) {
        return Err(EncodeError::Count { index, count: datum.count });
    }
    if ucum_unit(&datum.unit).is_none() && cloudwatch_unit(&datum.unit).is_some() {
        return Err(EncodeError::Unit { index, unit: datum.unit.to_string() });
    }
    if let Some(name) = &datum.metric_stream_name
        && (name.is_empty() || name.contains('/'))
    {
        return Err(EncodeError::StreamName { index, name: name.to_string() });
    }
    if start_nanos(datum).is_none() {
        return Err(EncodeError::Timestamp { index, timestamp_ms: datum.timestamp_ms });
    }
    Ok(())
}

fn start_nanos(datum: &Datum<'_>) -> Option<u64> {
    let start = u64::try_from(datum.timestamp_ms).ok()?.checked_mul(1_000_000)?;
    start.checked_add(PERIOD_NANOS).map(|_| start)
}

fn resource_metrics(datums: &[Datum<'_>], version: OtelVersion, out: &mut Vec<u8>) {
    let first = &datums[0];
    nested(out, 1, |out| {
        string_attribute(out, 1, "cloud.provider", "aws");
        string_attribute(out, 1, "cloud.account.id", &first.account_id);
        string_attribute(out, 1, "cloud.region", &first.region);
        if let Some(name) = &first.metric_stream_name {
            let arn = format!("arn:aws:cloudwatch:{}:{}:metric-stream/{name}", first.region, first.account_id);
            string_attribute(out, 1, "aws.exporter.arn", &arn);
        }
    });
    nested(out, 2, |out| {
        let mut rest = datums;
        while let Some(first) = rest.first() {
            let same = rest
                .iter()
                .take_while(|d| {
                    (&d.namespace, &d.metric_name, &d.unit, &d.dimensions)
                        == (&first.namespace, &first.metric_name, &first.unit, &first.dimensions)
                })
                .count();
            let (run, tail) = rest.split_at(same);
            nested(out, 2, |out| metric(run, version, out));
            rest = tail;
        }
    });
}

fn metric(datums: &[Datum<'_>], version: OtelVersion, out: &mut Vec<u8>) {
    let first = &datums[0];
    string_field(out, 1, &format!("amazonaws.com/{}/{}", first.namespace, first.metric_name));
    string_field(out, 3, ucum_unit(&first.unit).unwrap_or(&first.unit));
    nested(out, 11, |out| {
        for datum in datums {
            nested(out, 1, |out| data_point(datum, version, out));
        }
    });
}

fn data_point(datum: &Datum<'_>, version: OtelVersion, out: &mut Vec<u8>) {
    if version == OtelVersion::V0_7 {
        for (key, value) in [("Namespace", &datum.namespace), ("MetricName", &datum.metric_name)] {
            nested(out, 1, |out| {
                string_field(out, 1, key);
                string_field(out, 2, value);
            });
        }
        for (key, value) in &datum.dimensions {
            nested(out, 1, |out| {
                string_field(out, 1, key);
                string_field(out, 2, value);
            });
        }
    }
    let start = start_nanos(datum).expect("checked");
    fixed64(out, 2, start);
    fixed64(out, 3, start + PERIOD_NANOS);
    fixed64(out, 4, datum.count as u64);
    fixed64(out, 5, datum.sum.to_bits());
    let mut quantiles: Vec<(f64, f64)> = datum.stats.iter().map(|(name, v)| (percentile_quantile(name).expect("checked"), *v)).collect();
    quantiles.push((0.0, datum.min));
    quantiles.push((1.0, datum.max));
    quantiles.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (q, value) in quantiles {
        nested(out, 6, |out| {
            fixed64(out, 1, q.to_bits());
            fixed64(out, 2, value.to_bits());
        });
    }
    if version == OtelVersion::V1_0 {
        string_attribute(out, 7, "Namespace", &datum.namespace);
        string_attribute(out, 7, "MetricName", &datum.metric_name);
        nested(out, 7, |out| {
            string_field(out, 1, "Dimensions");
            nested(out, 2, |out| {
                nested(out, 6, |out| {
                    for (key, value) in &datum.dimensions {
                        string_attribute(out, 1, key, value);
                    }
                });
            });
        });
    }
}

/// A `KeyValue` with a string `AnyValue`, as field `field`.
fn string_attribute(out: &mut Vec<u8>, field: u32, key: &str, value: &str) {
    nested(out, field, |out| {
        string_field(out, 1, key);
        nested(out, 2, |out| {
            // A oneof member is written even when empty, as protobuf does.
            put_varint(out, 0x0a);
            put_varint(out, value.len() as u64);
            out.extend_from_slice(value.as_bytes());
        });
    });
}

/// A string field; empty ones are left out, as proto3 leaves out defaults.
fn string_field(out: &mut Vec<u8>, field: u32, value: &str) {
    if !value.is_empty() {
        put_varint(out, u64::from(field << 3 | 2));
        put_varint(out, value.len() as u64);
        out.extend_from_slice(value.as_bytes());
    }
}

/// A fixed64 or double field (given as bits); zero is left out, as proto3 leaves out defaults.
fn fixed64(out: &mut Vec<u8>, field: u32, bits: u64) {
    if bits != 0 {
        put_varint(out, u64::from(field << 3 | 1));
        out.extend_from_slice(&bits.to_le_bytes());
    }
}

/// A message field: its body written by `body`, then its length put in front.
fn nested(out: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    put_varint(out, u64::from(field << 3 | 2));
    let start = out.len();
    body(out);
    let mut length = Vec::with_capacity(5);
    put_varint(&mut length, (out.len() - start) as u64);
    out.splice(start..start, length);
}

/// Appends a varint.
fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

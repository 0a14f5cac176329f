//! Realistic, reproducible CloudWatch metric-stream data for tests, demos and benchmarks.
//!
//! A [`Spec`] describes a stream: which namespaces, how many series, which minutes, and how much
//! of the mess real delivery brings (exact duplicates, late datums, malformed records, and on
//! request re-sends with other values, records with no datum and awkward names). From it:
//!
//! - [`series`]: the series (namespace, metric, unit, dimensions, extra statistics);
//! - [`datums`]: every datum, ordered by minute then series: the truth a pipeline must reproduce;
//! - [`ndjson`]: the same datums as metric-stream JSON lines, in the same order;
//! - [`records`]: what CloudWatch hands Firehose, in arrival order, with the duplicates, late
//!   datums and malformed records the spec asks for, in the stream's output format
//!   ([`Spec::stream_format`]: JSON lines, or OpenTelemetry 1.0 or 0.7 messages);
//! - [`firehose_events`]: those records batched into Firehose data-transformation events;
//! - [`raw_objects`]: the gzip objects Firehose would write to S3 from those records without a
//!   transform.
//!
//! The same spec gives the same bytes on every platform and every run: randomness comes from
//! ChaCha8 streams keyed by [`Spec::seed`], and values are computed with float operations that
//! round identically everywhere (see `draw.rs`). Gzip bytes additionally depend on flate2's
//! compressor, which is deterministic for a given version.
//!
//! The series look like the real thing: the AWS namespaces use CloudWatch's metric names, units
//! and dimension names, account-level aggregates have no dimensions at all, and one custom series
//! carries all 30 dimensions CloudWatch allows. On request ([`Spec::awkward_names`]) some do not:
//! their names hold every character that escaping must get right. Statistics are mutually consistent (`min <=`
//! percentiles `<= max`, `sum = mean * count`, whole counts), and a function's `Invocations`,
//! `Errors` and `Duration` share their sample count minute by minute.
//!
//! Nothing here does IO, reads the environment or needs an async runtime.

use cwms_model::{OutputFormat, OwnedDatum};

mod catalog;
mod draw;
mod firehose;
mod values;
mod wire;

#[cfg(test)]
mod tests;

pub use catalog::{AWKWARD_NAMESPACES, MAX_DIMENSIONS, NAMESPACES, Series};
pub use firehose::{
    DEFAULT_MAX_EVENT_BYTES, MAX_RECORD_BYTES, Malformation, OTEL_POINTS_PER_MESSAGE, RAW_BUFFER_BYTES, RAW_BUFFER_INTERVAL_MS, RawObject,
    SampleRecord, firehose_events, raw_objects, raw_objects_uncompressed, records,
};

/// The start of [`Spec::default`]: 2026-01-15T10:00:00Z, a fixed hour so default samples never change.
pub const DEFAULT_START_MS: i64 = 1_768_471_200_000;

/// The most series one spec may ask for (each keeps a little generator state while generating).
pub const MAX_SERIES: u32 = 100_000;

/// The most minutes one spec may cover: a week, far beyond the two hours a stream may lag.
pub const MAX_MINUTES: u32 = 7 * 24 * 60;

/// The most datums (series times minutes) one spec may produce: about 3.5 GB of JSON, all of
/// which the generators hold in memory.
pub const MAX_DATUMS: u64 = 10_000_000;

/// One minute in milliseconds.
const MINUTE_MS: i64 = 60_000;

/// The latest timestamp cwms accepts (9999-12-31T23:59:59.999Z), repeated here rather than taken
/// from cwms-decode so that the generator does not depend on the decoder it exists to test.
/// The span of times the decoder takes as epoch milliseconds (2000 to 2099, see `cwms_decode`).
const EARLIEST_TIMESTAMP_MS: i64 = 946_684_800_000;
const LATEST_TIMESTAMP_MS: i64 = 4_102_444_799_999;

/// A spec that cannot be generated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A share is not a number between 0 and 1 (or, for `malformed_share`, below 1).
    #[error("{field} must be {range}, found {value}")]
    Share { field: &'static str, value: f64, range: &'static str },
    /// A count is outside what the generator supports.
    #[error("{field} must be between {min} and {max}, found {value}")]
    OutOfRange { field: &'static str, value: u64, min: u64, max: u64 },
    /// The start is not at the beginning of a minute, or not a usable timestamp.
    #[error("the start {0} (epoch milliseconds) must be a whole minute from 2000 to 2099")]
    Start(i64),
    /// A namespace the generator does not know.
    #[error("unknown namespace {0:?} (known: {known})", known = NAMESPACES.join(", "))]
    UnknownNamespace(String),
    /// A namespace listed twice.
    #[error("namespace {0:?} is listed more than once")]
    DuplicateNamespace(String),
    /// No namespace at all.
    #[error("at least one namespace is needed (known: {known})", known = NAMESPACES.join(", "))]
    NoNamespaces,
    /// Trimmed means asked of an OpenTelemetry stream, which can carry percentiles only.
    #[error("trimmed_means needs stream_format json: an {0} stream carries percentiles only")]
    TrimmedMeans(OutputFormat),
    /// Malformed records are asked for, but no kind of malformation is allowed.
    #[error("malformed_share is above 0 but malformations is empty")]
    NoMalformations,
    /// An account id, region or stream name that AWS would not accept.
    #[error("{field} {value:?}: {reason}")]
    Name { field: &'static str, value: String, reason: &'static str },
    /// One record does not fit in an event of the requested size, even alone.
    #[error("record {index} needs an event of {needed} bytes, above the limit of {max} bytes")]
    EventTooSmall { index: usize, needed: usize, max: usize },
}

/// Crate result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to generate. Start from [`Spec::default`] and change what matters.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Epoch milliseconds of the first minute; a whole minute.
    pub start_ms: i64,
    /// How many consecutive minutes every series has a datum for.
    pub minutes: u32,
    /// How many series, spread evenly over the namespaces.
    pub series: u32,
    /// Which of [`NAMESPACES`] to draw series from, in the order series are interleaved.
    pub namespaces: Vec<String>,
    /// The seed of every random choice.
    pub seed: u64,
    /// The share of datum lines that [`records`] delivers twice (exact duplicates, as Firehose's
    /// at-least-once delivery does), the copy later in the same minute's records.
    pub duplicate_share: f64,
    /// The share of datums that [`records`] delivers late: 1 to 15 minutes after their minute,
    /// in a later record (so records span several minutes, as real ones do).
    pub late_share: f64,
    /// The share of all records [`records`] makes malformed, in `[0, 1)`. Malformed records are
    /// extra copies of part of a neighbouring good record, damaged one of the ways in
    /// [`Spec::malformations`], so every datum still arrives intact in a good record.
    pub malformed_share: f64,
    /// The kinds of damage malformed records are drawn from (uniformly).
    pub malformations: Vec<Malformation>,
    /// The share of good records that are gzip-wrapped (CloudWatch sends plain JSON; other
    /// producers writing to the same delivery stream may compress).
    pub gzip_share: f64,
    /// The share of series able to carry percentiles (latencies, CPU) that the stream is
    /// configured to send them for.
    pub percentiles_share: f64,
    /// The account every datum comes from.
    pub account_id: String,
    /// The region every datum comes from.
    pub region: String,
    /// The metric stream's name, also used as the Firehose delivery stream's name.
    pub stream_name: String,
    /// The stream's output format: what [`records`] are made of. The datums are the same in
    /// every format (as long as [`Spec::trimmed_means`] is off).
    pub stream_format: OutputFormat,
    /// Whether the series configured with a trimmed mean (`TM(10%:90%)`) beside their
    /// percentiles send it. CloudWatch accepts only percentiles for an OpenTelemetry stream, so
    /// this must be off for one; turned off, a JSON stream sends the same datums as an
    /// OpenTelemetry one.
    pub trimmed_means: bool,
    /// The share of datums that [`records`] sends a second time with other values, as CloudWatch
    /// re-sends a minute it aggregated again: a larger count, a smaller count, or the same count
    /// with a different sum, max, min or additional statistic (the merge law's tie-break), in
    /// random turn, the re-send arriving before or after the original, or minutes later. Which
    /// one the lake keeps is the merge law's business (DESIGN 4.3), so with a share above 0
    /// [`datums`] is no longer what a pipeline must reproduce: a reference applying the law to
    /// the records is. Off by default.
    pub resend_share: f64,
    /// The share of good records that [`records`] follows with a record holding no datum at all
    /// (a blank line in a JSON stream, no bytes in an OpenTelemetry one), as a producer flushing
    /// an empty buffer puts; the transform answers such a record `Dropped`. Off by default.
    pub blank_share: f64,
    /// Whether the series include awkward ones (after the namespaces' own, as if one more
    /// namespace): namespaces, dimension names and values, metric names and units with `=`, `,`,
    /// `\`, `/`, spaces, `:` and non-ASCII text (see [`AWKWARD_NAMESPACES`]), which
    /// `dimension_key` and Hive paths must escape and every reader must give back. Off by default.
    pub awkward_names: bool,
}

impl Default for Spec {
    /// One hour of 200 series over all namespaces from [`DEFAULT_START_MS`], seed 1, with the
    /// light duplication and lateness of a healthy stream and no malformed records.
    fn default() -> Spec {
        Spec {
            start_ms: DEFAULT_START_MS,
            minutes: 60,
            series: 200,
            namespaces: NAMESPACES.iter().map(|s| (*s).to_owned()).collect(),
            seed: 1,
            duplicate_share: 0.01,
            late_share: 0.02,
            malformed_share: 0.0,
            malformations: Malformation::ALL.to_vec(),
            gzip_share: 0.0,
            percentiles_share: 0.5,
            account_id: "123456789012".to_owned(),
            region: "us-east-1".to_owned(),
            stream_name: "cwms-sample-stream".to_owned(),
            stream_format: OutputFormat::Json,
            trimmed_means: true,
            resend_share: 0.0,
            blank_share: 0.0,
            awkward_names: false,
        }
    }
}

impl Spec {
    /// Checks that the spec can be generated; every generator panics on a spec this rejects.
    pub fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("duplicate_share", self.duplicate_share),
            ("late_share", self.late_share),
            ("gzip_share", self.gzip_share),
            ("percentiles_share", self.percentiles_share),
            ("resend_share", self.resend_share),
            ("blank_share", self.blank_share),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::Share { field, value, range: "between 0 and 1" });
            }
        }
        // A record is followed by more malformed ones while a coin with this bias says so; at 1
        // that would never stop.
        if !(0.0..1.0).contains(&self.malformed_share) {
            return Err(Error::Share { field: "malformed_share", value: self.malformed_share, range: "at least 0 and below 1" });
        }
        if self.trimmed_means && self.stream_format != OutputFormat::Json {
            return Err(Error::TrimmedMeans(self.stream_format));
        }
        if self.malformed_share > 0.0 && self.malformations.is_empty() {
            return Err(Error::NoMalformations);
        }
        let range = |field, value: u64, min, max| {
            if (min..=max).contains(&value) { Ok(()) } else { Err(Error::OutOfRange { field, value, min, max }) }
        };
        range("series", self.series.into(), 1, MAX_SERIES.into())?;
        range("minutes", self.minutes.into(), 1, MAX_MINUTES.into())?;
        range("datums (series times minutes)", u64::from(self.series) * u64::from(self.minutes), 1, MAX_DATUMS)?;
        // Arrivals run up to a quarter of an hour past the last minute; keep them all representable.
        let last_ms = self.start_ms.saturating_add((i64::from(self.minutes) + 60) * MINUTE_MS);
        if self.start_ms < EARLIEST_TIMESTAMP_MS || self.start_ms % MINUTE_MS != 0 || last_ms > LATEST_TIMESTAMP_MS {
            return Err(Error::Start(self.start_ms));
        }
        if self.namespaces.is_empty() {
            return Err(Error::NoNamespaces);
        }
        for (i, name) in self.namespaces.iter().enumerate() {
            if !NAMESPACES.contains(&name.as_str()) {
                return Err(Error::UnknownNamespace(name.clone()));
            }
            if self.namespaces[..i].contains(name) {
                return Err(Error::DuplicateNamespace(name.clone()));
            }
        }
        check_name("account_id", &self.account_id, 12, |c| c.is_ascii_digit(), "must be 1 to 12 digits")?;
        check_name(
            "region",
            &self.region,
            32,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
            "must be 1 to 32 of a-z, 0-9 and -",
        )?;
        check_name(
            "stream_name",
            &self.stream_name,
            64,
            |c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'),
            "must be 1 to 64 of A-Z, a-z, 0-9, _, - and . (a valid Firehose delivery stream name)",
        )?;
        Ok(())
    }

    /// The indexes into [`NAMESPACES`] of the spec's namespaces, then the awkward series' if asked for.
    fn namespace_indexes(&self) -> Vec<usize> {
        let mut indexes: Vec<usize> = self.namespaces.iter().map(|n| NAMESPACES.iter().position(|k| k == n).expect("validated")).collect();
        if self.awkward_names {
            indexes.push(catalog::AWKWARD);
        }
        indexes
    }

    fn origin(&self) -> wire::Origin<'_> {
        wire::Origin { stream_name: &self.stream_name, account_id: &self.account_id, region: &self.region }
    }

    fn assert_valid(&self) {
        if let Err(e) = self.validate() {
            panic!("invalid cwms_sample::Spec: {e}");
        }
    }
}

fn check_name(field: &'static str, value: &str, max: usize, ok: impl Fn(char) -> bool, reason: &'static str) -> Result<()> {
    if value.is_empty() || value.len() > max || !value.chars().all(ok) {
        return Err(Error::Name { field, value: value.to_owned(), reason });
    }
    Ok(())
}

/// The series of a spec, interleaved round-robin by namespace.
///
/// # Panics
///
/// If the spec is invalid (see [`Spec::validate`]).
pub fn series(spec: &Spec) -> Vec<Series> {
    spec.assert_valid();
    let mut series = catalog::build(&spec.namespace_indexes(), spec.series as usize, spec.seed, spec.percentiles_share);
    if !spec.trimmed_means {
        for s in &mut series {
            s.statistics.retain(|name| name.starts_with('p'));
        }
    }
    series
}

/// Every datum of the spec, ordered by minute and then by series, each exactly once. With
/// [`Spec::resend_share`] above 0 these are the originals: which of a datum and its re-send the
/// lake keeps is for the merge law to say.
///
/// # Panics
///
/// If the spec is invalid (see [`Spec::validate`]).
pub fn datums(spec: &Spec) -> Vec<OwnedDatum> {
    let mut minutes = Minutes::new(spec);
    let mut out = Vec::with_capacity(spec.series as usize * spec.minutes as usize);
    let origin = spec.origin();
    while let Some((timestamp_ms, values)) = minutes.next_minute() {
        out.extend(minutes.series.iter().zip(&values).map(|(s, v)| wire::datum(&origin, s, timestamp_ms, v)));
    }
    out
}

/// The datums of [`datums`], in the same order, as metric-stream JSON lines (each ending in `\n`)
/// in the field order CloudWatch uses. Nothing is duplicated, late or malformed.
///
/// # Panics
///
/// If the spec is invalid (see [`Spec::validate`]).
pub fn ndjson(spec: &Spec) -> Vec<u8> {
    let mut minutes = Minutes::new(spec);
    let mut out = Vec::with_capacity(spec.series as usize * spec.minutes as usize * 400);
    let origin = spec.origin();
    while let Some((timestamp_ms, values)) = minutes.next_minute() {
        for (s, v) in minutes.series.iter().zip(&values) {
            wire::write_line(&origin, s, timestamp_ms, v, &mut out);
        }
    }
    out
}

/// Walks a spec's minutes in order, producing the values of every series for each.
struct Minutes<'a> {
    spec: &'a Spec,
    series: Vec<Series>,
    states: Vec<values::SeriesState>,
    next: u32,
}

impl<'a> Minutes<'a> {
    fn new(spec: &'a Spec) -> Minutes<'a> {
        let series = series(spec);
        let states = series.iter().map(|s| values::SeriesState::new(s, spec.seed)).collect();
        Minutes { spec, series, states, next: 0 }
    }

    /// The start of the next minute and the values of every series in it.
    fn next_minute(&mut self) -> Option<(i64, Vec<values::Values>)> {
        if self.next == self.spec.minutes {
            return None;
        }
        let timestamp_ms = self.spec.start_ms + i64::from(self.next) * MINUTE_MS;
        self.next += 1;
        let values = self.series.iter().zip(&mut self.states).map(|(s, state)| state.next(s, timestamp_ms)).collect();
        Some((timestamp_ms, values))
    }
}

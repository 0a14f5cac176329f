//! Requests checked into queries: which series, which statistic, which period and time range,
//! and which table of the lake answers them.

use std::fmt;

use cwms_parquet::Table;

use crate::api::{DimensionInput, MetricInput, Timestamp};
use crate::error::{ApiError, ApiResult};

/// The statistic of a query.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Stat {
    SampleCount,
    Sum,
    Average,
    Minimum,
    Maximum,
    /// An additional statistic by its CloudWatch name (`p99`, `TM(10%:90%)`, ...), answered only
    /// from a streamed statistic of that name.
    Extended(String),
}

impl Stat {
    /// One of the five statistics every datum carries (GetMetricStatistics' `Statistics`).
    pub fn standard(name: &str) -> Option<Stat> {
        Some(match name {
            "SampleCount" => Stat::SampleCount,
            "Sum" => Stat::Sum,
            "Average" => Stat::Average,
            "Minimum" => Stat::Minimum,
            "Maximum" => Stat::Maximum,
            _ => return None,
        })
    }

    /// A standard statistic or an additional one of CloudWatch's syntax (GetMetricData's `Stat`).
    pub fn parse(name: &str, parameter: &str) -> ApiResult<Stat> {
        if let Some(stat) = Stat::standard(name) {
            return Ok(stat);
        }
        if is_extended_statistic(name) {
            return Ok(Stat::Extended(name.to_owned()));
        }
        Err(ApiError::invalid(format!(
            "{parameter} {name:?} is not a statistic: expected SampleCount, Sum, Average, Minimum, Maximum, or a percentile or other \
             additional statistic such as p99, tm90, TM(10%:90%), IQM"
        )))
    }
}

impl fmt::Display for Stat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stat::SampleCount => "SampleCount",
            Stat::Sum => "Sum",
            Stat::Average => "Average",
            Stat::Minimum => "Minimum",
            Stat::Maximum => "Maximum",
            Stat::Extended(name) => name,
        })
    }
}

/// Whether `name` has the syntax of one of CloudWatch's additional statistics: `pNN[.NN]`,
/// `tmNN`, `wmNN`, `tcNN`, `tsNN` (shorthands of the trimmed statistics), `TM(..)`, `WM(..)`,
/// `TC(..)`, `TS(..)`, `PR(..)` with bounds inside, and `IQM`.
pub fn is_extended_statistic(name: &str) -> bool {
    let number = |s: &str| {
        let (whole, fraction) = s.split_once('.').unwrap_or((s, "0"));
        !whole.is_empty()
            && whole.len() <= 3
            && !fraction.is_empty()
            && whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())
            && s.parse::<f64>().is_ok_and(|v| v <= 100.0)
    };
    if name == "IQM" {
        return true;
    }
    for short in ["p", "tm", "wm", "tc", "ts"] {
        if let Some(rest) = name.strip_prefix(short) {
            return number(rest);
        }
    }
    for long in ["TM(", "WM(", "TC(", "TS(", "PR("] {
        if let Some(inner) = name.strip_prefix(long).and_then(|rest| rest.strip_suffix(')')) {
            return inner.contains(':') && inner.len() <= 64 && inner.bytes().all(|b| b.is_ascii_alphanumeric() || b".:%-+eE".contains(&b));
        }
    }
    false
}

/// The periods CloudWatch accepts: 1, 5, 10, 20 and 30 seconds (high resolution) or any
/// multiple of 60.
pub fn check_period(period: i32, parameter: &str) -> ApiResult<i64> {
    if period >= 60 && period % 60 == 0 || matches!(period, 1 | 5 | 10 | 20 | 30) {
        Ok(i64::from(period))
    } else {
        Err(ApiError::invalid(format!("{parameter} {period} is not a valid period: use 1, 5, 10, 20, 30 or a multiple of 60 seconds")))
    }
}

/// CloudWatch's 27 unit names.
pub const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// Checks a unit name.
pub fn check_unit(unit: &str, parameter: &str) -> ApiResult<()> {
    if UNITS.contains(&unit) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!("{parameter} {unit:?} is not one of CloudWatch's units (Seconds, Bytes, Count, Percent, None, ...)")))
    }
}

/// An RFC 3339 rendering of an instant, for messages.
pub fn show(t: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.0) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{} ms", t.0))
}

/// A checked time range: `[start, end)` in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// Checks StartTime and EndTime: both present, the end after the start.
pub fn time_range(start: Option<Timestamp>, end: Option<Timestamp>) -> ApiResult<TimeRange> {
    let start = start.ok_or_else(|| ApiError::missing("StartTime"))?;
    let end = end.ok_or_else(|| ApiError::missing("EndTime"))?;
    if end <= start {
        return Err(ApiError::invalid(format!("EndTime {} must be after StartTime {}", show(end), show(start))));
    }
    Ok(TimeRange { start_ms: start.0, end_ms: end.0 })
}

/// The series a query names: a namespace, a metric name and its complete set of dimensions (as
/// in CloudWatch, a query matches the metric with exactly these dimensions, no more).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MetricId {
    pub namespace: String,
    pub metric_name: String,
    /// The canonical key of the dimensions ([`cwms_model::dimension_key`]).
    pub dimension_key: String,
}

/// Checks a namespace as CloudWatch does (1 to 255 characters, not starting with `:`).
pub fn check_namespace(namespace: &str, parameter: &str) -> ApiResult<()> {
    if namespace.is_empty() || namespace.chars().count() > 255 || namespace.starts_with(':') {
        return Err(ApiError::invalid(format!("{parameter} {namespace:?} must be 1 to 255 characters, not starting with ':'")));
    }
    Ok(())
}

/// Checks a metric or dimension name (1 to 255 characters) or a dimension value (1 to 1024).
fn check_length(value: &str, parameter: &str, max: usize) -> ApiResult<()> {
    if value.is_empty() || value.chars().count() > max {
        return Err(ApiError::invalid(format!("{parameter} {value:?} must be 1 to {max} characters")));
    }
    Ok(())
}

/// Checks a metric as a request names it; `parameter` says where it is (`MetricDataQueries[2].MetricStat.Metric`).
pub fn metric_id(metric: &MetricInput, parameter: &str) -> ApiResult<MetricId> {
    let namespace = metric.namespace.as_deref().ok_or_else(|| ApiError::missing(&format!("{parameter}Namespace")))?;
    let metric_name = metric.metric_name.as_deref().ok_or_else(|| ApiError::missing(&format!("{parameter}MetricName")))?;
    check_namespace(namespace, &format!("{parameter}Namespace"))?;
    check_length(metric_name, &format!("{parameter}MetricName"), 255)?;
    let dimensions = dimensions(metric.dimensions.as_deref().unwrap_or_default(), &format!("{parameter}Dimensions"), 30, true)?;
    let pairs: Vec<(&str, &str)> = dimensions.iter().map(|(k, v)| (k.as_str(), v.as_deref().unwrap_or_default())).collect();
    Ok(MetricId {
        namespace: namespace.to_owned(),
        metric_name: metric_name.to_owned(),
        dimension_key: cwms_model::dimension_key(pairs.iter().copied()),
    })
}

/// Checks dimensions (or ListMetrics' dimension filters, whose values are optional), sorted by
/// name; a name given twice is an error.
pub fn dimensions(
    input: &[DimensionInput],
    parameter: &str,
    max: usize,
    values_required: bool,
) -> ApiResult<Vec<(String, Option<String>)>> {
    if input.len() > max {
        return Err(ApiError::invalid(format!("{parameter} has {} entries; at most {max} are allowed", input.len())));
    }
    let mut out = Vec::with_capacity(input.len());
    for (i, dimension) in input.iter().enumerate() {
        let name = dimension.name.as_deref().ok_or_else(|| ApiError::missing(&format!("{parameter}[{i}].Name")))?;
        check_length(name, &format!("{parameter}[{i}].Name"), 255)?;
        match dimension.value.as_deref() {
            Some(value) => check_length(value, &format!("{parameter}[{i}].Value"), 1024)?,
            None if values_required => return Err(ApiError::missing(&format!("{parameter}[{i}].Value"))),
            None => {}
        }
        out.push((name.to_owned(), dimension.value.clone()));
    }
    out.sort();
    if let Some(pair) = out.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(ApiError::invalid(format!("{parameter} names the dimension {:?} more than once", pair[0].0)));
    }
    Ok(out)
}

/// Where a query's datapoints come from, and how its buckets fall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub table: Table,
    /// The first bucket's start: the start time rounded down to a whole minute (a whole period,
    /// for periods under a minute), as CloudWatch rounds it.
    pub origin_ms: i64,
    pub end_ms: i64,
    pub period_ms: i64,
}

impl Plan {
    /// The plan of a period over a time range.
    ///
    /// A period of a whole number of hours over a range that starts and ends on the hour reads
    /// `metrics_1h`, whose rows are exactly those hours' sums, counts, minimums and maximums; any
    /// other reads `metrics_1m`, so that no bucket takes part of an hour's row (which would not be
    /// exact). Additional statistics are only in `metrics_1m`.
    pub fn new(range: TimeRange, period_s: i64) -> Plan {
        let period_ms = period_s * 1000;
        let round = period_ms.min(60_000);
        let origin_ms = range.start_ms.div_euclid(round) * round;
        let hourly = period_ms % cwms_merge::HOUR_MS == 0
            && origin_ms % cwms_merge::HOUR_MS == 0
            && range.end_ms.rem_euclid(cwms_merge::HOUR_MS) == 0;
        let table = if hourly { Table::Metrics1h } else { Table::Metrics1m };
        Plan { table, origin_ms, end_ms: range.end_ms, period_ms }
    }

    /// The number of buckets in the range (the datapoints it can have at most).
    pub fn buckets(&self) -> i64 {
        (self.end_ms - self.origin_ms + self.period_ms - 1) / self.period_ms
    }

    /// The start of the bucket a timestamp falls in, if it falls in the range.
    pub fn bucket(&self, timestamp_ms: i64) -> Option<i64> {
        if timestamp_ms < self.origin_ms || timestamp_ms >= self.end_ms {
            return None;
        }
        Some(self.origin_ms + (timestamp_ms - self.origin_ms) / self.period_ms * self.period_ms)
    }

    /// Whether an additional statistic can be answered exactly: each bucket then holds at most
    /// one datum of a series (the data's own resolution is a minute).
    pub fn answers_extended(&self) -> bool {
        self.table == Table::Metrics1m && self.period_ms <= 60_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_statistic_names() {
        for ok in ["p99", "p99.9", "p0", "p100", "tm99", "wm90", "tc90", "ts50.5", "TM(10%:90%)", "TM(:95%)", "PR(100:2000)", "IQM"] {
            assert!(is_extended_statistic(ok), "{ok}");
        }
        for bad in ["p", "p101", "p99.", "P99", "avg", "Average2", "TM(10%)", "TM10", "p-1", "pp99", "", "SampleCount "] {
            assert!(!is_extended_statistic(bad), "{bad}");
        }
    }

    #[test]
    fn periods() {
        for ok in [1, 5, 10, 20, 30, 60, 120, 300, 3600, 86400] {
            assert_eq!(check_period(ok, "Period"), Ok(i64::from(ok)));
        }
        for bad in [0, -60, 2, 45, 90, 61, 3601] {
            let error = check_period(bad, "Period").unwrap_err();
            assert!(error.message.contains("not a valid period"), "{bad}: {error}");
        }
    }

    fn plan(start: i64, end: i64, period_s: i64) -> Plan {
        Plan::new(TimeRange { start_ms: start, end_ms: end }, period_s)
    }

    const H: i64 = 3_600_000;

    #[test]
    fn plans_pick_the_table_that_answers_exactly() {
        let day = 20_468 * 24 * H;
        assert_eq!(plan(day, day + 24 * H, 3600).table, Table::Metrics1h);
        assert_eq!(plan(day, day + 24 * H, 86400).table, Table::Metrics1h);
        // Not on the hour, or a period of part of an hour: the minutes answer.
        assert_eq!(plan(day + 60_000, day + 24 * H, 3600).table, Table::Metrics1m);
        assert_eq!(plan(day, day + 24 * H + 60_000, 3600).table, Table::Metrics1m);
        assert_eq!(plan(day, day + 24 * H, 5400).table, Table::Metrics1m);
        assert_eq!(plan(day, day + 24 * H, 300).table, Table::Metrics1m);
        // A start inside a minute is rounded down to it; periods under a minute to the period.
        let p = plan(day + 34_567, day + H, 60);
        assert_eq!((p.origin_ms, p.buckets()), (day, 60));
        assert_eq!(plan(day + 34_567, day + H, 10).origin_ms, day + 30_000);
        assert_eq!(p.bucket(day - 1), None);
        assert_eq!(p.bucket(day + 119_999), Some(day + 60_000));
        assert_eq!(p.bucket(day + H), None);
        assert_eq!(plan(day, day + 61_000, 60).buckets(), 2);
    }
}

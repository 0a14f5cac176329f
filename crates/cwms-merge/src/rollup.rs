//! Hourly rollups: the `metrics_1h` table from `metrics_1m` points.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::partition::{Partition, PointValue};

/// Milliseconds in an hour. Unix time has no leap seconds, so every UTC hour starts at a
/// multiple of this.
pub const HOUR_MS: i64 = 3_600_000;

/// The start (epoch milliseconds) of the UTC hour a timestamp falls in.
pub fn hour_start_ms(timestamp_ms: i64) -> i64 {
    timestamp_ms.div_euclid(HOUR_MS) * HOUR_MS
}

/// Rolls points up to one row per series per UTC hour (the `metrics_1h` table, DESIGN 4.3).
///
/// What a rollup row keeps:
/// - `timestamp`: the start of the UTC hour;
/// - `count`: the sum of the counts, and `sum`: the sum of the sums, both added in timestamp
///   order so that the same points always give the same bits;
/// - `min`: the smallest min and `max`: the largest max (by [`f64::total_cmp`], so `-0.0` is
///   below `0.0` and the result never depends on the order of the points);
/// - `unit`: the unit of the hour's latest point. The points of a series nearly always share
///   one unit, which is then kept; if a publisher changed units within the hour, the rollup
///   reports the newest. The values are combined regardless, as CloudWatch itself combines
///   them: it does not treat the unit as part of a metric's identity;
/// - `stats`: always EMPTY. Percentiles, trimmed means and the other additional statistics of
///   several periods cannot be computed from their per-period values, so a rollup never
///   presents them; `metrics_1m` has them.
///
/// The hour's average is `sum / count`. Rolling up a rollup gives it back unchanged.
pub fn rollup_hourly(partition: &Partition) -> Partition {
    let mut points: Vec<(usize, i64, &PointValue)> = partition.points().collect();
    // Timestamps are unique within a series, so this order is total and the additions below
    // always happen in the same order.
    points.sort_unstable_by_key(|&(series, ts, _)| (series, ts));
    let mut rollup = Partition::new();
    let mut start = 0;
    while start < points.len() {
        let (series, first_ts, first) = points[start];
        let hour = hour_start_ms(first_ts);
        let end = start + points[start..].iter().take_while(|&&(s, ts, _)| s == series && hour_start_ms(ts) == hour).count();
        rollup.insert_point(partition.series_key(series), hour, combine(first, &points[start + 1..end]));
        start = end;
    }
    rollup
}

/// Combines the points of one series-hour, sorted by timestamp.
///
/// The fold starts from the first point rather than from zero, so that a single point comes
/// back bit for bit (`0.0 + -0.0` would turn a `-0.0` sum into `0.0`).
fn combine(first: &PointValue, rest: &[(usize, i64, &PointValue)]) -> PointValue {
    let (mut count, mut sum, mut min, mut max, mut unit) = (first.count, first.sum, first.min, first.max, &first.unit);
    for &(_, _, value) in rest {
        count += value.count;
        sum += value.sum;
        if value.min.total_cmp(&min) == Ordering::Less {
            min = value.min;
        }
        if value.max.total_cmp(&max) == Ordering::Greater {
            max = value.max;
        }
        unit = &value.unit;
    }
    PointValue { unit: Arc::clone(unit), count, sum, max, min, stats: Box::new([]) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::datum;
    use cwms_model::OwnedDatum;

    /// Rollup rows rendered as `metric instance hour count sum min max unit stats`.
    fn check(input: &[OwnedDatum], expected: &str) {
        let partition: Partition = input.iter().collect();
        let rollup = rollup_hourly(&partition);
        let rendered: Vec<String> = rollup
            .rows()
            .iter()
            .map(|row| {
                let instance = row.series.dimensions().map(|(_, v)| v).collect::<Vec<_>>().join(",");
                let hour = (row.timestamp_ms - 1_764_115_200_000) / HOUR_MS;
                let v = row.value;
                format!(
                    "{} {} {} {} {} {} {} {} {}",
                    row.series.metric_name(),
                    instance,
                    hour,
                    v.count,
                    v.sum,
                    v.min,
                    v.max,
                    v.unit,
                    v.stats.len()
                )
            })
            .collect();
        assert_eq!(rendered.join("\n"), expected.trim());
        // A rollup of a rollup is the rollup itself.
        assert_eq!(rollup_hourly(&rollup), rollup);
    }

    fn with(mut d: OwnedDatum, f: impl FnOnce(&mut OwnedDatum)) -> OwnedDatum {
        f(&mut d);
        d
    }

    #[test]
    fn rollups() {
        check(&[], "");
        check(&[datum("CPU", "i-1", 0, 1.0, 5.0)], "CPU i-1 0 1 5 0 5 Percent 0");
        // One hour of two points, then the next hour: sums and counts add, min/max combine.
        check(
            &[
                with(datum("CPU", "i-1", 0, 2.0, 5.0), |d| d.min = 1.0),
                with(datum("CPU", "i-1", 59, 3.0, 7.0), |d| d.min = -2.0),
                datum("CPU", "i-1", 60, 1.0, 1.0),
            ],
            "CPU i-1 0 5 12 -2 7 Percent 0\nCPU i-1 1 1 1 0 1 Percent 0",
        );
        // Series stay apart.
        check(
            &[datum("CPU", "i-1", 0, 1.0, 1.0), datum("CPU", "i-2", 1, 1.0, 2.0)],
            "CPU i-1 0 1 1 0 1 Percent 0\nCPU i-2 0 1 2 0 2 Percent 0",
        );
        // Additional statistics are never rolled up.
        check(&[with(datum("CPU", "i-1", 0, 1.0, 1.0), |d| d.stats = vec![("p99".into(), 1.0)])], "CPU i-1 0 1 1 0 1 Percent 0");
        // Mixed units: the latest point's unit.
        check(
            &[with(datum("CPU", "i-1", 5, 1.0, 1.0), |d| d.unit = "Count".into()), datum("CPU", "i-1", 3, 1.0, 1.0)],
            "CPU i-1 0 2 2 0 1 Count 0",
        );
    }

    #[test]
    fn hour_starts() {
        assert_eq!(hour_start_ms(0), 0);
        assert_eq!(hour_start_ms(HOUR_MS - 1), 0);
        assert_eq!(hour_start_ms(HOUR_MS), HOUR_MS);
        assert_eq!(hour_start_ms(-1), -HOUR_MS);
    }

    #[test]
    fn single_point_keeps_negative_zero() {
        let partition: Partition = [with(datum("CPU", "i-1", 0, 1.0, -0.0), |d| d.min = -0.0)].iter().collect();
        let rollup = rollup_hourly(&partition);
        assert_eq!(rollup.rows()[0].value.sum.to_bits(), (-0.0f64).to_bits());
    }
}

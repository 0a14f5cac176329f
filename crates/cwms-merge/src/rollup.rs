//! Hourly rollups: the `metrics_1h` table from `metrics_1m` points.

use std::cmp::Ordering;
use std::sync::Arc;

use crate::partition::{Partition, PointValue};
use crate::series::SeriesKey;

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
    let mut rollup = HourlyRollup::new();
    for (series, timestamp_ms, value) in points {
        rollup.add(partition.series_key(series), timestamp_ms, value);
    }
    rollup.finish()
}

/// [`rollup_hourly`] built a point at a time, for points that stream past rather than sit in one
/// partition (the compactor merges a lake object row group by row group).
///
/// Each series' points must come in timestamp order (any interleaving of series is fine): the
/// rows of a lake object do, and then the result is [`rollup_hourly`]'s, bit for bit.
#[derive(Default)]
pub struct HourlyRollup {
    /// By series fingerprint: the series (compared in full, fingerprints may collide) with its
    /// current hour and that hour's running values.
    open: std::collections::HashMap<i64, Vec<(Arc<SeriesKey>, i64, PointValue)>>,
    done: Partition,
}

impl HourlyRollup {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a point; see the type's documentation for the order.
    pub fn add(&mut self, series: &Arc<SeriesKey>, timestamp_ms: i64, value: &PointValue) {
        let hour = hour_start_ms(timestamp_ms);
        let slot = self.open.entry(series.series_id()).or_default();
        match slot.iter_mut().find(|(key, _, _)| **key == **series) {
            Some((key, open_hour, running)) if *open_hour == hour => {
                let _ = key;
                fold(running, value);
            }
            Some((key, open_hour, running)) => {
                let finished = std::mem::replace(running, start(value));
                self.done.insert_point(key, *open_hour, finished);
                *open_hour = hour;
            }
            None => slot.push((Arc::clone(series), hour, start(value))),
        }
    }

    /// The rollup: one row per series per hour seen.
    pub fn finish(mut self) -> Partition {
        for (_, entries) in self.open {
            for (key, hour, value) in entries {
                self.done.insert_point(&key, hour, value);
            }
        }
        self.done
    }
}

/// A series-hour's running values, from its first point. The fold starts from the first point
/// rather than from zero, so that a single point comes back bit for bit (`0.0 + -0.0` would
/// turn a `-0.0` sum into `0.0`).
fn start(first: &PointValue) -> PointValue {
    PointValue { unit: Arc::clone(&first.unit), count: first.count, sum: first.sum, max: first.max, min: first.min, stats: Box::new([]) }
}

/// Adds the next point of a series-hour (in timestamp order) to its running values.
fn fold(running: &mut PointValue, value: &PointValue) {
    running.count += value.count;
    running.sum += value.sum;
    if value.min.total_cmp(&running.min) == Ordering::Less {
        running.min = value.min;
    }
    if value.max.total_cmp(&running.max) == Ordering::Greater {
        running.max = value.max;
    }
    running.unit = Arc::clone(&value.unit);
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

//! Statistics of the datums in one period, exactly as CloudWatch defines them.

use std::sync::Arc;

use cwms_merge::PointValue;

use crate::error::{ApiError, ApiResult};
use crate::query::{Stat, show};

/// What one bucket (one period of one series) holds: the lake rows that fall in it, combined.
///
/// `SampleCount` is the sum of the rows' counts, `Sum` the sum of their sums, `Average` the sum
/// of sums over the sum of counts (never an average of the rows' averages), `Minimum` and
/// `Maximum` the least minimum and greatest maximum. An additional statistic (a percentile and
/// the like) cannot be combined from several rows' values, so it is only given for a bucket of
/// exactly one row, as that row streamed it.
#[derive(Debug, Clone)]
pub struct Bucket {
    pub rows: u32,
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// The additional statistics of the bucket's row, while it has only one.
    pub stats: Box<[(Arc<str>, f64)]>,
}

impl Bucket {
    pub fn new(value: &PointValue) -> Bucket {
        Bucket { rows: 1, count: value.count, sum: value.sum, min: value.min, max: value.max, stats: value.stats.clone() }
    }

    /// Adds a row. Rows are added in the lake's order (by time), so the sums are the same on
    /// every run.
    pub fn add(&mut self, value: &PointValue) {
        self.rows += 1;
        self.count += value.count;
        self.sum += value.sum;
        self.min = self.min.min(value.min);
        self.max = self.max.max(value.max);
        self.stats = Box::default();
    }

    /// The value of a statistic: `Ok(None)` when the bucket has none (an Average of no samples,
    /// an additional statistic its row did not stream, a value that is not finite), an error
    /// when it cannot be answered exactly.
    pub fn statistic(&self, stat: &Stat, bucket_ms: i64) -> ApiResult<Option<f64>> {
        let value = match stat {
            Stat::SampleCount => self.count,
            Stat::Sum => self.sum,
            Stat::Average if self.count > 0.0 => self.sum / self.count,
            Stat::Average => return Ok(None),
            Stat::Minimum => self.min,
            Stat::Maximum => self.max,
            Stat::Extended(name) => {
                if self.rows > 1 {
                    return Err(ApiError::combination(format!(
                        "{name} cannot be answered exactly for the period at {}: it holds {} datums of the series, and a \
                         percentile or other additional statistic of several datums cannot be computed from theirs",
                        show(crate::api::Timestamp(bucket_ms)),
                        self.rows
                    )));
                }
                match self.stats.iter().find(|(n, _)| **n == **name) {
                    Some(&(_, v)) => v,
                    None => return Ok(None),
                }
            }
        };
        Ok(value.is_finite().then_some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(count: f64, sum: f64, min: f64, max: f64, stats: &[(&str, f64)]) -> PointValue {
        PointValue { unit: "Seconds".into(), count, sum, max, min, stats: stats.iter().map(|&(n, v)| (Arc::from(n), v)).collect() }
    }

    fn check(points: &[PointValue], stat: Stat, expected: ApiResult<Option<f64>>) {
        let mut bucket = Bucket::new(&points[0]);
        for p in &points[1..] {
            bucket.add(p);
        }
        let actual = bucket.statistic(&stat, 0).map_err(|e| e.kind);
        assert_eq!(actual, expected.map_err(|e| e.kind), "{stat}");
    }

    #[test]
    fn statistics_of_several_datums() {
        // Two minutes: 1 sample of 10, then 3 samples summing to 2. The average is 12 / 4 = 3,
        // not the average of the minutes' averages ((10 + 2/3) / 2 = 5.33).
        let points = [point(1.0, 10.0, 10.0, 10.0, &[("p99", 10.0)]), point(3.0, 2.0, 0.0, 1.5, &[("p99", 1.4)])];
        check(&points, Stat::SampleCount, Ok(Some(4.0)));
        check(&points, Stat::Sum, Ok(Some(12.0)));
        check(&points, Stat::Average, Ok(Some(3.0)));
        check(&points, Stat::Minimum, Ok(Some(0.0)));
        check(&points, Stat::Maximum, Ok(Some(10.0)));
        check(&points, Stat::Extended("p99".into()), Err(ApiError::combination("")));
    }

    #[test]
    fn additional_statistics_of_one_datum() {
        let points = [point(3.0, 2.0, 0.0, 1.5, &[("TM(10%:90%)", 0.7), ("p99", 1.4)])];
        check(&points, Stat::Extended("p99".into()), Ok(Some(1.4)));
        check(&points, Stat::Extended("TM(10%:90%)".into()), Ok(Some(0.7)));
        check(&points, Stat::Extended("p50".into()), Ok(None));
        check(&[point(0.0, 0.0, 0.0, 0.0, &[])], Stat::Average, Ok(None));
        check(&[point(1.0, f64::INFINITY, 0.0, 0.0, &[])], Stat::Sum, Ok(None));
    }
}

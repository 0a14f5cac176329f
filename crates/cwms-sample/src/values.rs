//! The numbers of each datum: a sample count and statistics that could have come from real samples.
//!
//! Every datum is consistent the way CloudWatch's are: `count >= 1`, `min <= every percentile <=
//! max`, `min <= sum / count <= max`, whole numbers where the samples are whole (counts, bytes,
//! 0-or-1 error flags). Statistics are computed from an explicit sample distribution between
//! `min` and `max` whose quantile function is `q^k` (uniform for `k = 1`, right-skewed like
//! latencies for larger `k`), so the mean, percentiles and trimmed means agree with each other.
//!
//! Levels drift slowly (a bounded autoregressive walk) on top of a daily cycle peaking at 14:00
//! UTC, so consecutive minutes of a series look related rather than independent noise.

use crate::catalog::{Model, Series, Statistic, statistic};
use crate::draw::{Draw, ipow, round_to};

/// The statistics of one datum; `stats` lines up with `Series::statistics`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Values {
    pub count: f64,
    pub sum: f64,
    pub max: f64,
    pub min: f64,
    pub stats: Vec<f64>,
}

/// A bounded random walk in `[-1, 1]`: each step keeps 90 percent of the last value.
struct Walk {
    x: f64,
}

impl Walk {
    fn new(draw: &mut Draw) -> Walk {
        Walk { x: draw.uniform(-1.0, 1.0) }
    }

    fn step(&mut self, draw: &mut Draw) -> f64 {
        self.x = 0.9 * self.x + 0.1 * draw.uniform(-1.0, 1.0);
        self.x
    }
}

/// The request count of an entity, minute by minute. Every series of the entity replays the same
/// stream, so they agree without sharing mutable state.
struct RequestCount {
    draw: Draw,
    walk: Walk,
    rate: f64,
}

impl RequestCount {
    fn next(&mut self, daily: f64) -> f64 {
        let level = daily * (1.0 + 0.3 * self.walk.step(&mut self.draw));
        (self.rate * level * self.draw.uniform(0.9, 1.1)).round().max(1.0)
    }
}

/// Where one series is in its sequence of minutes.
pub(crate) struct SeriesState {
    draw: Draw,
    walk: Walk,
    requests: Option<RequestCount>,
}

impl SeriesState {
    pub fn new(series: &Series, seed: u64) -> SeriesState {
        let mut draw = Draw::new(seed, series.values_stream);
        let walk = Walk::new(&mut draw);
        let requests = series.traffic.map(|t| {
            let mut draw = Draw::new(seed, t.stream);
            let walk = Walk::new(&mut draw);
            RequestCount { draw, walk, rate: t.rate }
        });
        SeriesState { draw, walk, requests }
    }

    /// The values of the series for the minute starting at `timestamp_ms`. Must be called for
    /// consecutive minutes: each call advances the series.
    pub fn next(&mut self, series: &Series, timestamp_ms: i64) -> Values {
        let daily = daily_cycle(timestamp_ms);
        let requests = self.requests.as_mut().map(|r| r.next(daily));
        let level = daily * (1.0 + 0.3 * self.walk.step(&mut self.draw));
        let draw = &mut self.draw;
        let n = |sources: u32| requests.unwrap_or(f64::from(sources));
        match series.model {
            Model::Percent { sources, center } => {
                let v = (center * level + draw.uniform(-2.0, 2.0)).clamp(0.05, 100.0);
                if sources == 1 {
                    return single(v, &series.statistics);
                }
                let low = v * draw.uniform(0.3, 0.8);
                let high = (v + (100.0 - v) * draw.uniform(0.1, 0.7)).clamp(low, 100.0);
                shaped(low, high, 2, n(sources), &series.statistics, None)
            }
            Model::Gauge { sources, center } => {
                let v = (center * level * draw.uniform(0.8, 1.2)).round();
                if sources == 1 {
                    return single(v, &series.statistics);
                }
                let low = (v * draw.uniform(0.2, 0.7)).round();
                let high = (v * draw.uniform(1.3, 2.5)).round().max(low);
                shaped(low, high, 2, n(sources), &series.statistics, Some(1.0))
            }
            Model::Status { sources } => {
                let failed = if draw.chance(0.003) { 1.0 } else { 0.0 };
                flags(n(sources), failed)
            }
            Model::Events => {
                let count = n(1);
                Values { count, sum: count, max: 1.0, min: 1.0, stats: Vec::new() }
            }
            Model::Flags { share } => {
                let count = n(1);
                let expected = count * share * level;
                let flagged = if expected < 1.0 {
                    if draw.chance(expected) { 1.0 } else { 0.0 }
                } else {
                    (expected * draw.uniform(0.5, 1.5)).round()
                };
                flags(count, flagged.min(count))
            }
            Model::Latency { median, skew } => {
                let count = n(1);
                let median = median * level;
                if count == 1.0 {
                    return single(round_to(median * draw.uniform(0.6, 1.6), 2).max(0.01), &series.statistics);
                }
                // The median of the q^k shape sits at low + (high - low) / 2^k.
                let low = round_to(median * draw.uniform(0.15, 0.5), 2).max(0.01);
                let high = round_to(low + (median - low) * ipow(2.0, skew) * draw.uniform(0.7, 1.3), 2).max(low);
                shaped(low, high, skew, count, &series.statistics, None)
            }
            Model::Capacity { step } => {
                let count = n(1);
                let low = step * draw.between(1, 2) as f64;
                let high = low * *draw.pick(&[1.0, 2.0, 4.0, 8.0, 16.0]);
                shaped(low, high, 3, count, &series.statistics, Some(step))
            }
        }
    }
}

/// One sample, or several equal ones: every statistic is the value.
fn single(v: f64, statistics: &[&str]) -> Values {
    Values { count: 1.0, sum: v, max: v, min: v, stats: vec![v; statistics.len()] }
}

/// `count` samples of 0 or 1, `flagged` of them 1.
fn flags(count: f64, flagged: f64) -> Values {
    Values {
        count,
        sum: flagged,
        max: if flagged > 0.0 { 1.0 } else { 0.0 },
        min: if flagged == count { 1.0 } else { 0.0 },
        stats: Vec::new(),
    }
}

/// `count` samples between `low` and `high` whose quantile function is `low + (high - low) q^k`.
///
/// With `step`, samples are multiples of it, so the sum is too; it is rounded to a step and kept
/// within `[low * count, high * count]`.
fn shaped(low: f64, high: f64, k: u32, count: f64, statistics: &[&str], step: Option<f64>) -> Values {
    let width = high - low;
    let at = |q: f64| (low + width * ipow(q, k)).clamp(low, high);
    // The mean of q^k over [0, 1] is 1 / (k + 1).
    let mean = (low + width / f64::from(k + 1)).clamp(low, high);
    let sum = match step {
        None => mean * count,
        Some(step) => ((mean * count / step).round() * step).clamp(low * count, high * count),
    };
    let stats = statistics
        .iter()
        .map(|name| match statistic(name) {
            Statistic::Percentile(q) => at(q),
            Statistic::TrimmedMean(a, b) => {
                // The mean of q^k over [a, b] is (b^(k+1) - a^(k+1)) / ((k + 1) (b - a)).
                let fraction = (ipow(b, k + 1) - ipow(a, k + 1)) / (f64::from(k + 1) * (b - a));
                (low + width * fraction).clamp(low, high)
            }
        })
        .collect();
    Values { count, sum, max: high, min: low, stats }
}

/// The values of a re-send of the datum `v` ([`crate::Spec::resend_share`]): the same minute
/// aggregated again, differing in one of the ways the merge law tells apart (DESIGN 4.3), each
/// as likely: more samples, fewer samples (when there are at least two), or the same count with a
/// larger sum, a larger max, a smaller min or another value of an additional statistic (ties the
/// law breaks by the values). The change is large enough to see at a reader's 1e-9 tolerance, and
/// whole for whole numbers; the values stay consistent (`min <=` every statistic `<= max`,
/// `min <= sum / count <= max`).
pub(crate) fn resent(v: &Values, draw: &mut Draw) -> Values {
    let mut r = v.clone();
    let whole = [v.sum, v.max, v.min].iter().all(|x| x.fract() == 0.0);
    let step = |x: f64| if whole { 1.0 } else { round_to((x.abs() * 0.01).max(0.01), 2) };
    let mean = v.sum / v.count;
    match draw.below(6) {
        kind @ (0 | 1) => {
            let k = draw.between(1, (v.count / 10.0).floor().max(1.0) as u64) as f64;
            let k = if kind == 1 && v.count > k { -k } else { k };
            let added = if whole { (k * mean).round() } else { k * mean };
            r.count += k;
            r.sum = (v.sum + added).clamp(r.count * v.min, r.count * v.max);
        }
        2 => {
            r.sum += step(v.sum);
            r.max = r.max.max(r.sum / r.count);
        }
        3 => r.max += step(v.max),
        4 => {
            let (lower, higher) = (v.min - step(v.min), v.min + step(v.min));
            if lower >= 0.0 || v.min < 0.0 {
                r.min = lower;
            } else if higher <= mean && v.stats.iter().all(|&s| s >= higher) {
                r.min = higher;
            } else {
                r.max += step(v.max);
            }
        }
        _ => {
            let i = if v.stats.is_empty() { None } else { Some(draw.index(v.stats.len())) };
            match i.map(|i| (i, v.stats[i] + step(v.stats[i]), v.stats[i] - step(v.stats[i]))) {
                Some((i, up, _)) if up <= v.max => r.stats[i] = up,
                Some((i, _, down)) if down >= v.min => r.stats[i] = down,
                _ => r.max += step(v.max),
            }
        }
    }
    r
}

/// Traffic over the day: 0.65 at 02:00 UTC rising linearly to 1.35 at 14:00 UTC and back.
fn daily_cycle(timestamp_ms: i64) -> f64 {
    let minute_of_day = timestamp_ms.div_euclid(60_000).rem_euclid(1_440) as f64;
    let from_peak = (minute_of_day - 840.0).abs();
    let distance = from_peak.min(1_440.0 - from_peak);
    0.65 + 0.7 * (1.0 - distance / 720.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_cycle_peaks_in_the_afternoon() {
        let at = |h: i64| daily_cycle(h * 3_600_000);
        assert_eq!(at(14), 1.35);
        assert_eq!(at(2), 0.65);
        assert!(at(8) > at(2) && at(8) < at(14));
        assert_eq!(at(20), at(8));
    }

    #[test]
    fn shaped_statistics_are_ordered_and_consistent() {
        let v = shaped(10.0, 90.0, 3, 50.0, &["p50", "p90", "p99", "p99.9", "TM(10%:90%)"], None);
        assert_eq!((v.min, v.max, v.count), (10.0, 90.0, 50.0));
        assert_eq!(v.sum, (10.0 + 80.0 / 4.0) * 50.0);
        assert_eq!(v.stats[0], 10.0 + 80.0 * 0.125);
        assert!(v.stats.windows(2).take(3).all(|w| w[0] <= w[1]), "{v:?}");
        let tm = v.stats[4];
        assert!(tm > v.stats[0] && tm < v.stats[1], "{v:?}");
    }

    #[test]
    fn stepped_sums_stay_whole() {
        let v = shaped(1.0, 3.0, 2, 7.0, &[], Some(1.0));
        assert_eq!(v.sum, v.sum.round());
        assert!(v.sum >= 7.0 && v.sum <= 21.0);
        let v = shaped(0.5, 8.0, 3, 3.0, &[], Some(0.5));
        assert_eq!((v.sum * 2.0).fract(), 0.0);
    }

    /// Asserts the consistency `resent` promises.
    fn consistent(v: &Values) -> bool {
        let mean = v.sum / v.count;
        v.count >= 1.0 && v.min <= mean && mean <= v.max && v.stats.iter().all(|s| (v.min..=v.max).contains(s))
    }

    #[test]
    fn resends_differ_and_stay_consistent() {
        let originals = [
            shaped(10.0, 90.0, 3, 50.0, &["p50", "p99"], None),
            shaped(1.0, 3.0, 2, 7.0, &[], Some(1.0)),
            single(4.25, &["p99"]),
            super::flags(5.0, 0.0),
            Values { count: 9.0, sum: 9.0, max: 1.0, min: 1.0, stats: vec![] },
        ];
        let mut draw = Draw::new(1, 0);
        let mut kinds = std::collections::BTreeSet::new();
        for v in &originals {
            for _ in 0..200 {
                let r = resent(v, &mut draw);
                assert!(r != *v && consistent(&r), "{v:?} re-sent as {r:?}");
                let kind = match () {
                    _ if r.count > v.count => "more",
                    _ if r.count < v.count => "fewer",
                    _ if r.sum != v.sum => "sum",
                    _ if r.max != v.max => "max",
                    _ if r.min != v.min => "min",
                    _ => "statistic",
                };
                kinds.insert(kind);
            }
        }
        assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["fewer", "max", "min", "more", "statistic", "sum"]);
    }

    #[test]
    fn flags() {
        assert_eq!(super::flags(5.0, 0.0), Values { count: 5.0, sum: 0.0, max: 0.0, min: 0.0, stats: vec![] });
        assert_eq!(super::flags(5.0, 2.0), Values { count: 5.0, sum: 2.0, max: 1.0, min: 0.0, stats: vec![] });
        assert_eq!(super::flags(2.0, 2.0), Values { count: 2.0, sum: 2.0, max: 1.0, min: 1.0, stats: vec![] });
    }
}

//! The merge law, dedup and hourly rollups of metric-stream datums (DESIGN 4.3).
//!
//! A datum's identity is its series (account, region, namespace, metric name, dimensions) and
//! its timestamp. Firehose delivers at least once and CloudWatch re-sends, so one identity can
//! arrive many times; the merge law keeps ONE datum per identity: the larger `count`, and on a
//! tie the larger by a total order over (`sum`, `max`, `min`, additional statistics, unit),
//! numbers compared with [`f64::total_cmp`] ([`PointValue::value_order`], the lake's view of
//! [`cwms_model::Datum::value_order`]). Keeping the maximum of a total order makes merging
//! idempotent, commutative and associative: re-running any step, in any order and in any
//! batches, converges to the same rows, and so to the same Parquet bytes.
//!
//! - [`Partition`] holds merged points, one [`SeriesKey`] per series shared by all its points;
//!   [`merge_into`] merges datums in, [`Partition::merge`] merges partitions, and
//!   [`Partition::rows`] lists the rows in the lake's sort order.
//! - [`dedup`] applies the law to a plain list of datums.
//! - [`rollup_hourly`] builds the `metrics_1h` rows, whose rules (what a rollup keeps, and that
//!   it never presents percentiles) are documented there.
//!
//! Nothing here does IO.

mod partition;
mod rollup;
mod series;

#[cfg(test)]
mod laws;

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};

use cwms_model::Datum;

pub use partition::{MergeStats, Outcome, Partition, PointValue, Row};
pub use rollup::{HOUR_MS, HourlyRollup, hour_start_ms, rollup_hourly};
pub use series::SeriesKey;

/// Merges datums into a partition by the merge law and reports what happened; the number of
/// duplicates merged is [`MergeStats::duplicates`].
pub fn merge_into<'a, 'd: 'a>(partition: &mut Partition, datums: impl IntoIterator<Item = &'a Datum<'d>>) -> MergeStats {
    let mut stats = MergeStats::default();
    for datum in datums {
        stats.record(partition.insert(datum));
    }
    stats
}

/// Datums with one per identity, and how many duplicates were merged away.
#[derive(Debug, Clone, PartialEq)]
pub struct Deduped<'a> {
    pub datums: Vec<Datum<'a>>,
    pub duplicates: usize,
}

/// Keeps one datum per identity (series and timestamp): the winner of the merge law, by
/// [`Datum::value_order`] (which, past the lake's values, also orders the metric-stream name,
/// so the winner is fully determined).
///
/// Each identity's winner takes the place of its first occurrence, so the output keeps the
/// input's order otherwise. Dimensions and statistics are compared in name order: a datum whose
/// pairs are not sorted is sorted in place, as the decoder would have produced it.
pub fn dedup(mut datums: Vec<Datum<'_>>) -> Deduped<'_> {
    for datum in &mut datums {
        normalize(datum);
    }
    let state = RandomState::new();
    let mut kept: Vec<Datum<'_>> = Vec::with_capacity(datums.len());
    // Identity hash -> indices into `kept` (almost always one).
    let mut index: HashMap<u64, Vec<usize>> = HashMap::with_capacity(datums.len());
    let mut duplicates = 0;
    for datum in datums {
        let bucket = index.entry(identity_hash(&state, &datum)).or_default();
        match bucket.iter().find(|&&i| same_identity(&kept[i], &datum)) {
            Some(&i) => {
                duplicates += 1;
                if kept[i].value_order(&datum).is_lt() {
                    kept[i] = datum;
                }
            }
            None => {
                bucket.push(kept.len());
                kept.push(datum);
            }
        }
    }
    Deduped { datums: kept, duplicates }
}

fn normalize(datum: &mut Datum<'_>) {
    if !datum.dimensions.is_sorted() {
        datum.dimensions.sort_unstable();
    }
    fn by_name_then_value((an, av): &(Cow<'_, str>, f64), (bn, bv): &(Cow<'_, str>, f64)) -> std::cmp::Ordering {
        an.cmp(bn).then_with(|| av.total_cmp(bv))
    }
    if !datum.stats.is_sorted_by(|a, b| by_name_then_value(a, b).is_le()) {
        datum.stats.sort_unstable_by(by_name_then_value);
    }
}

fn identity_hash(state: &RandomState, datum: &Datum<'_>) -> u64 {
    let mut h = state.build_hasher();
    datum.account_id.hash(&mut h);
    datum.region.hash(&mut h);
    datum.namespace.hash(&mut h);
    datum.metric_name.hash(&mut h);
    datum.dimensions.hash(&mut h);
    h.write_i64(datum.timestamp_ms);
    h.finish()
}

fn same_identity(a: &Datum<'_>, b: &Datum<'_>) -> bool {
    a.timestamp_ms == b.timestamp_ms
        && a.metric_name == b.metric_name
        && a.dimensions == b.dimensions
        && a.namespace == b.namespace
        && a.account_id == b.account_id
        && a.region == b.region
}

#[cfg(test)]
mod tests {
    use super::*;
    use cwms_model::OwnedDatum;

    /// A datum of series `metric` with dimension `InstanceId=instance`, in the shorthand the
    /// tests use: (metric, instance, minute, count, sum).
    pub(crate) fn datum(metric: &str, instance: &str, minute: i64, count: f64, sum: f64) -> OwnedDatum {
        Datum {
            metric_stream_name: None,
            account_id: "111122223333".into(),
            region: "us-east-1".into(),
            namespace: "AWS/EC2".into(),
            metric_name: metric.to_owned().into(),
            dimensions: vec![("InstanceId".into(), instance.to_owned().into())],
            timestamp_ms: 1_764_115_200_000 + minute * 60_000,
            unit: "Percent".into(),
            count,
            sum,
            max: sum,
            min: 0.0,
            stats: vec![],
        }
    }

    /// Rows rendered as `metric instance minute count sum`, one per line.
    fn render(partition: &Partition) -> String {
        partition
            .rows()
            .iter()
            .map(|row| {
                let instance = row.series.dimensions().map(|(_, v)| v).collect::<Vec<_>>().join(",");
                let minute = (row.timestamp_ms - 1_764_115_200_000) / 60_000;
                format!("{} {} {} {} {}", row.series.metric_name(), instance, minute, row.value.count, row.value.sum)
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn check(input: &[OwnedDatum], expected_rows: &str, expected_duplicates: usize) {
        let mut partition = Partition::new();
        let stats = merge_into(&mut partition, input);
        assert_eq!(render(&partition), expected_rows.trim());
        assert_eq!(stats.duplicates(), expected_duplicates, "{stats:?}");
        assert_eq!(stats.inserted, partition.len());
    }

    #[test]
    fn merge_keeps_one_point_per_identity() {
        check(&[], "", 0);
        check(&[datum("CPU", "i-1", 0, 1.0, 5.0)], "CPU i-1 0 1 5", 0);
        // Larger count wins, whatever the arrival order.
        check(&[datum("CPU", "i-1", 0, 1.0, 5.0), datum("CPU", "i-1", 0, 2.0, 1.0)], "CPU i-1 0 2 1", 1);
        check(&[datum("CPU", "i-1", 0, 2.0, 1.0), datum("CPU", "i-1", 0, 1.0, 5.0)], "CPU i-1 0 2 1", 1);
        // Same count: larger sum wins.
        check(&[datum("CPU", "i-1", 0, 1.0, 5.0), datum("CPU", "i-1", 0, 1.0, 7.0)], "CPU i-1 0 1 7", 1);
        // Exact duplicates count as duplicates.
        check(&[datum("CPU", "i-1", 0, 1.0, 5.0), datum("CPU", "i-1", 0, 1.0, 5.0)], "CPU i-1 0 1 5", 1);
    }

    #[test]
    fn rows_come_in_lake_order() {
        check(
            &[
                datum("Net", "i-1", 0, 1.0, 1.0),
                datum("CPU", "i-2", 1, 1.0, 1.0),
                datum("CPU", "i-2", 0, 1.0, 1.0),
                datum("CPU", "i-1", 1, 1.0, 1.0),
            ],
            "CPU i-1 1 1 1\nCPU i-2 0 1 1\nCPU i-2 1 1 1\nNet i-1 0 1 1",
            0,
        );
    }

    #[test]
    fn accounts_sharing_a_metric_interleave_by_timestamp() {
        let mut other = datum("CPU", "i-1", 0, 2.0, 2.0);
        other.account_id = "000000000000".into();
        let partition: Partition = [datum("CPU", "i-1", 1, 1.0, 1.0), datum("CPU", "i-1", 0, 1.0, 1.0), other].iter().collect();
        let order: Vec<(&str, i64)> =
            partition.rows().iter().map(|r| (r.series.account_id(), r.timestamp_ms % 3_600_000 / 60_000)).collect();
        assert_eq!(order, [("000000000000", 0), ("111122223333", 0), ("111122223333", 1)]);
    }

    #[test]
    fn tie_breaks_follow_the_total_order() {
        let base = datum("CPU", "i-1", 0, 1.0, 1.0);
        let variants: [fn(&mut OwnedDatum); 4] =
            [|d| d.max = 9.0, |d| d.min = 0.5, |d| d.stats = vec![("p99".into(), 1.0)], |d| d.unit = "Seconds".into()];
        for change in variants {
            let mut bigger = base.clone();
            change(&mut bigger);
            for input in [[base.clone(), bigger.clone()], [bigger.clone(), base.clone()]] {
                let partition: Partition = input.iter().collect();
                let rows = partition.rows();
                assert_eq!(rows.len(), 1);
                assert_eq!(rows[0].to_datum(), bigger);
            }
        }
        // Signed zeros are ordered too, so the winner never depends on arrival order.
        let (mut neg, mut pos) = (base.clone(), base.clone());
        neg.min = -0.0;
        pos.min = 0.0;
        for input in [[neg.clone(), pos.clone()], [pos.clone(), neg.clone()]] {
            let partition: Partition = input.iter().collect();
            assert_eq!(partition.rows()[0].value.min.to_bits(), 0.0f64.to_bits());
        }
    }

    #[test]
    fn dimension_order_does_not_split_a_series() {
        let mut a = datum("CPU", "i-1", 0, 1.0, 1.0);
        a.dimensions = vec![("B".into(), "2".into()), ("A".into(), "1".into())];
        a.stats = vec![("p99".into(), 2.0), ("p50".into(), 1.0)];
        let mut b = a.clone();
        b.dimensions.reverse();
        b.count = 2.0;
        let partition: Partition = [a, b].iter().collect();
        assert_eq!(partition.series_count(), 1);
        let row = partition.rows()[0];
        assert_eq!(row.series.dimension_key(), "A=1,B=2");
        assert_eq!(row.value.count, 2.0);
        let names: Vec<&str> = row.value.stats.iter().map(|(n, _)| &**n).collect();
        assert_eq!(names, ["p50", "p99"]);
    }

    #[test]
    fn partitions_merge() {
        let a: Partition = [datum("CPU", "i-1", 0, 1.0, 1.0), datum("CPU", "i-1", 1, 1.0, 1.0)].iter().collect();
        let b: Partition = [datum("CPU", "i-1", 1, 2.0, 1.0), datum("CPU", "i-2", 1, 1.0, 1.0)].iter().collect();
        let mut merged = a.clone();
        let stats = merged.merge(&b);
        assert_eq!(stats, MergeStats { inserted: 1, replaced: 1, kept: 0 });
        assert_eq!(render(&merged), "CPU i-1 0 1 1\nCPU i-1 1 2 1\nCPU i-2 1 1 1");
        assert_eq!(merged.series_count(), 2);
    }

    #[test]
    fn dedup_keeps_the_winner_in_first_position() {
        let mut later_stream = datum("CPU", "i-1", 0, 1.0, 1.0);
        later_stream.metric_stream_name = Some("b".into());
        let input = vec![
            datum("CPU", "i-1", 0, 1.0, 1.0),
            datum("CPU", "i-2", 0, 1.0, 1.0),
            datum("CPU", "i-1", 0, 3.0, 1.0),
            datum("CPU", "i-1", 0, 2.0, 9.0),
            later_stream,
        ];
        let deduped = dedup(input);
        assert_eq!(deduped.duplicates, 3);
        assert_eq!(deduped.datums, vec![datum("CPU", "i-1", 0, 3.0, 1.0), datum("CPU", "i-2", 0, 1.0, 1.0)]);
    }

    #[test]
    fn dedup_breaks_value_ties_by_stream_name() {
        let (mut a, mut b) = (datum("CPU", "i-1", 0, 1.0, 1.0), datum("CPU", "i-1", 0, 1.0, 1.0));
        a.metric_stream_name = Some("a".into());
        b.metric_stream_name = Some("b".into());
        assert_eq!(dedup(vec![a.clone(), b.clone()]).datums, [b.clone()]);
        assert_eq!(dedup(vec![b.clone(), a]).datums, [b]);
    }
}

//! Property tests of the merge law (DESIGN 4.3) and of rollups.
//!
//! Datums are drawn from small domains so that identities collide often and every tie-break
//! (count, sum, max, min, statistics, unit, signed zeros) gets exercised.

use std::collections::HashMap;

use cwms_model::{Datum, OwnedDatum};
use proptest::prelude::*;

use crate::{Partition, SeriesKey, dedup, hour_start_ms, merge_into, rollup_hourly};

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![Just(-1.0), Just(-0.0), Just(0.0), Just(1.0), Just(2.5), Just(1e300)]
}

fn datum() -> impl Strategy<Value = OwnedDatum> {
    (
        (prop_oneof![Just("111122223333"), Just("444455556666")], prop_oneof![Just("AWS/EC2"), Just("Custom/App")]),
        (
            prop_oneof![Just("CPUUtilization"), Just("NetworkIn")],
            prop::sample::subsequence(vec![("AutoScalingGroupName", "web"), ("InstanceId", "i-1")], 0..=2),
            any::<bool>(),
        ),
        (0i64..150, prop_oneof![Just(1.0), Just(2.0), Just(3.0)], number(), number(), number()),
        (prop::option::of(number()), prop_oneof![Just("Percent"), Just("Count")], prop::option::of(Just("stream-b"))),
    )
        .prop_map(|((account, namespace), (metric, dims, reversed), (minute, count, sum, max, min), (p99, unit, stream))| {
            let mut dimensions: Vec<_> = dims.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
            if reversed {
                // Unsorted input must still land in the same series.
                dimensions.reverse();
            }
            Datum {
                metric_stream_name: stream.map(Into::into),
                account_id: account.into(),
                region: "us-east-1".into(),
                namespace: namespace.into(),
                metric_name: metric.into(),
                dimensions,
                timestamp_ms: 1_764_115_200_000 + minute * 60_000,
                unit: unit.into(),
                count,
                sum,
                max,
                min,
                stats: p99.map(|v| vec![("p99".into(), v)]).unwrap_or_default(),
            }
        })
}

fn datums() -> impl Strategy<Value = Vec<OwnedDatum>> {
    prop::collection::vec(datum(), 0..60)
}

fn partition(datums: &[OwnedDatum]) -> Partition {
    let mut partition = Partition::new();
    merge_into(&mut partition, datums);
    partition
}

fn merged(a: &Partition, b: &Partition) -> Partition {
    let mut out = a.clone();
    out.merge(b);
    out
}

/// The identity of a datum as plain text, for reference computations.
fn identity(d: &Datum<'_>) -> String {
    let mut dims: Vec<_> = d.dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect();
    dims.sort();
    format!("{}|{}|{}|{}|{}|{}", d.account_id, d.region, d.namespace, d.metric_name, dims.join(","), d.timestamp_ms)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn merge_is_idempotent(a in datums()) {
        let p = partition(&a);
        prop_assert_eq!(&merged(&p, &p), &p);
        // Merging the same datums again changes nothing and reports them all as duplicates.
        let mut again = p.clone();
        let stats = merge_into(&mut again, &a);
        prop_assert_eq!(&again, &p);
        prop_assert_eq!(stats.inserted + stats.replaced, 0);
        prop_assert_eq!(stats.duplicates(), a.len());
    }

    #[test]
    fn merge_is_commutative(a in datums(), b in datums()) {
        let (pa, pb) = (partition(&a), partition(&b));
        prop_assert_eq!(merged(&pa, &pb), merged(&pb, &pa));
    }

    #[test]
    fn merge_is_associative(a in datums(), b in datums(), c in datums()) {
        let (pa, pb, pc) = (partition(&a), partition(&b), partition(&c));
        prop_assert_eq!(merged(&merged(&pa, &pb), &pc), merged(&pa, &merged(&pb, &pc)));
    }

    #[test]
    fn merge_ignores_order_and_chunking(
        (all, shuffled) in datums().prop_flat_map(|d| (Just(d.clone()), Just(d).prop_shuffle())),
        chunk in 1usize..8,
    ) {
        let whole = partition(&all);
        prop_assert_eq!(&partition(&shuffled), &whole);
        let mut chunked = Partition::new();
        let mut duplicates = 0;
        for part in shuffled.chunks(chunk) {
            duplicates += chunked.merge(&partition(part)).duplicates();
        }
        prop_assert_eq!(&chunked, &whole);
        // Duplicates inside chunks plus across chunks are exactly the datums beyond one per identity.
        let inside: usize = shuffled.chunks(chunk).map(|part| part.len() - partition(part).len()).sum();
        prop_assert_eq!(inside + duplicates, all.len() - whole.len());
    }

    #[test]
    fn merge_keeps_the_maximum_of_each_identity(a in datums()) {
        let mut best: HashMap<String, &OwnedDatum> = HashMap::new();
        for d in &a {
            let slot = best.entry(identity(d)).or_insert(d);
            if slot.value_order(d).is_lt() {
                *slot = d;
            }
        }
        let p = partition(&a);
        prop_assert_eq!(p.len(), best.len());
        for row in p.rows() {
            let mut expected = (*best[&identity(&row.to_datum())]).clone();
            expected.metric_stream_name = None;
            expected.dimensions.sort();
            prop_assert_eq!(row.to_datum(), expected);
        }
    }

    #[test]
    fn dedup_keeps_the_larger_count(a in datums()) {
        let deduped = dedup(a.clone());
        prop_assert_eq!(deduped.datums.len() + deduped.duplicates, a.len());
        let mut seen = HashMap::new();
        for kept in &deduped.datums {
            prop_assert!(seen.insert(identity(kept), ()).is_none(), "identity kept twice");
            for d in a.iter().filter(|d| identity(d) == identity(kept)) {
                prop_assert!(d.count <= kept.count);
                prop_assert!(d.value_order(kept).is_le());
            }
        }
        // dedup and Partition apply the same law.
        prop_assert_eq!(partition(&deduped.datums), partition(&a));
    }

    /// The streaming rollup, fed the rows in the lake's order (series interleaved, each in
    /// timestamp order) or cut into pieces, gives the whole-partition rollup bit for bit.
    #[test]
    fn streaming_rollup_is_the_rollup(a in datums(), cut in 0usize..50) {
        let p = partition(&a);
        let mut streamed = crate::HourlyRollup::new();
        for row in p.rows() {
            streamed.add(row.series, row.timestamp_ms, row.value);
        }
        let expected = rollup_hourly(&p);
        let streamed = streamed.finish();
        prop_assert_eq!(&streamed, &expected);
        // Bit for bit: Partition equality compares values by their bits.
        let rows = p.rows();
        let (first, second) = rows.split_at(cut.min(rows.len()));
        let mut pieces = crate::HourlyRollup::new();
        for row in first.iter().chain(second) {
            pieces.add(row.series, row.timestamp_ms, row.value);
        }
        prop_assert_eq!(&pieces.finish(), &expected);
    }

    #[test]
    fn rollup_preserves_counts_and_sums(a in datums()) {
        let p = partition(&a);
        let rollup = rollup_hourly(&p);
        let rows = p.rows();
        let count: f64 = rows.iter().map(|r| r.value.count).sum();
        let rolled_count: f64 = rollup.rows().iter().map(|r| r.value.count).sum();
        prop_assert_eq!(count, rolled_count, "integer counts add exactly");

        // Per series-hour reference, computed independently from the rows.
        let mut reference: HashMap<(SeriesKey, i64), (f64, f64, f64, f64)> = HashMap::new();
        for r in &rows {
            let e = reference
                .entry((SeriesKey::clone(r.series), hour_start_ms(r.timestamp_ms)))
                .or_insert((0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY));
            e.0 += r.value.count;
            e.1 += r.value.sum;
            e.2 = e.2.min(r.value.min);
            e.3 = e.3.max(r.value.max);
        }
        prop_assert_eq!(rollup.len(), reference.len());
        for r in rollup.rows() {
            prop_assert_eq!(hour_start_ms(r.timestamp_ms), r.timestamp_ms);
            let key = (SeriesKey::clone(r.series), r.timestamp_ms);
            let (count, sum, min, max) = reference[&key];
            prop_assert_eq!(r.value.count, count);
            prop_assert!((r.value.sum - sum).abs() <= 1e-9 * sum.abs().max(1.0), "sum {} vs {}", r.value.sum, sum);
            prop_assert_eq!(r.value.min, min);
            prop_assert_eq!(r.value.max, max);
            prop_assert!(r.value.stats.is_empty());
        }
        prop_assert_eq!(&rollup_hourly(&rollup), &rollup);
    }

    #[test]
    fn rollup_commutes_with_merge(a in datums(), b in datums()) {
        // Rolling up the merge of two inputs does not depend on which arrived first.
        let (pa, pb) = (partition(&a), partition(&b));
        prop_assert_eq!(rollup_hourly(&merged(&pa, &pb)), rollup_hourly(&merged(&pb, &pa)));
    }
}

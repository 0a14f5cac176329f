//! Reading the datapoints of several metric queries at once: queries grouped by the table and
//! namespace they read, each lake object read once for all the queries of its group.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use cwms_merge::{Row, SeriesKey};
use cwms_parquet::Table;

use crate::error::{ApiError, ApiResult};
use crate::lake::{Lake, MAX_OBJECTS_PER_REQUEST, Scanner, too_many_objects};
use crate::query::{MetricId, Plan};
use crate::stats::Bucket;

/// One metric query being read: the series, the plan, the filters, and the buckets found.
#[derive(Debug)]
pub struct SeriesRead {
    pub metric: MetricId,
    pub plan: Plan,
    /// Only rows of this unit (CloudWatch's `Unit`: data of another unit is not returned).
    pub unit: Option<String>,
    /// Only rows of this account (GetMetricData's `AccountId`).
    pub account: Option<String>,
    /// Buckets per unit too (GetMetricStatistics answers one datapoint per period and unit).
    pub by_unit: bool,
    /// (bucket start, unit or `""`) -> what the bucket holds.
    pub buckets: BTreeMap<(i64, Arc<str>), Bucket>,
    /// The (account, region) pairs whose series matched.
    pub origins: BTreeSet<(String, String)>,
    last_series: Option<Arc<SeriesKey>>,
}

impl SeriesRead {
    pub fn new(metric: MetricId, plan: Plan, unit: Option<String>, account: Option<String>, by_unit: bool) -> SeriesRead {
        SeriesRead { metric, plan, unit, account, by_unit, buckets: BTreeMap::new(), origins: BTreeSet::new(), last_series: None }
    }

    fn add(&mut self, row: &Row<'_>, no_unit: &Arc<str>) {
        if self.account.as_deref().is_some_and(|account| account != row.series.account_id())
            || self.unit.as_deref().is_some_and(|unit| unit != &*row.value.unit)
        {
            return;
        }
        let Some(bucket) = self.plan.bucket(row.timestamp_ms) else { return };
        if !self.last_series.as_ref().is_some_and(|last| Arc::ptr_eq(last, row.series)) {
            self.origins.insert((row.series.account_id().to_owned(), row.series.region().to_owned()));
            self.last_series = Some(Arc::clone(row.series));
        }
        let unit = if self.by_unit { Arc::clone(&row.value.unit) } else { Arc::clone(no_unit) };
        match self.buckets.entry((bucket, unit)) {
            std::collections::btree_map::Entry::Vacant(entry) => {
                entry.insert(Bucket::new(row.value));
            }
            std::collections::btree_map::Entry::Occupied(mut entry) => entry.get_mut().add(row.value),
        }
    }

    /// The one (account, region) the query's series came from; several are an error, since
    /// CloudWatch keeps each account's and region's metrics apart and so must an answer.
    pub fn check_one_origin(&self, what: &str) -> ApiResult<()> {
        if self.origins.len() <= 1 {
            return Ok(());
        }
        let origins: Vec<String> = self.origins.iter().map(|(account, region)| format!("{account} in {region}")).collect();
        Err(ApiError::combination(format!(
            "{what}: the lake holds the metric {} {} {{{}}} for {} accounts or regions ({}), which CloudWatch keeps apart; \
             name one with GetMetricData's AccountId",
            self.metric.namespace,
            self.metric.metric_name,
            self.metric.dimension_key,
            origins.len(),
            origins.join(", ")
        )))
    }
}

/// The reads of one (table, namespace) group, with their index by metric name and dimensions.
struct GroupScan {
    reads: Vec<SeriesRead>,
    /// metric name -> dimension key -> indices into `reads`.
    index: HashMap<String, HashMap<String, Vec<usize>>>,
    no_unit: Arc<str>,
}

impl Scanner for GroupScan {
    fn wants(&mut self, series: &SeriesKey) -> bool {
        self.index.get(series.metric_name()).is_some_and(|keys| keys.contains_key(series.dimension_key()))
    }

    fn row(&mut self, row: &Row<'_>) {
        let Some(indices) = self.index.get(row.series.metric_name()).and_then(|keys| keys.get(row.series.dimension_key())) else {
            return;
        };
        for &i in indices {
            self.reads[i].add(row, &self.no_unit);
        }
    }
}

/// Reads every query's buckets from the lake, each object once.
pub async fn read_all(lake: &Lake, reads: Vec<SeriesRead>) -> ApiResult<Vec<SeriesRead>> {
    let mut groups: BTreeMap<(Table, String), Vec<usize>> = BTreeMap::new();
    for (i, read) in reads.iter().enumerate() {
        groups.entry((read.plan.table, read.metric.namespace.clone())).or_default().push(i);
    }
    // Plan every group's objects first, so that a request over the limit reads nothing.
    let mut planned = Vec::with_capacity(groups.len());
    let mut total = 0;
    for ((table, namespace), members) in groups {
        let start = members.iter().map(|&i| reads[i].plan.origin_ms).min().unwrap_or_default();
        let end = members.iter().map(|&i| reads[i].plan.end_ms).max().unwrap_or_default();
        let objects = Lake::objects(table, &namespace, start, end)?;
        total += objects.len();
        if total > MAX_OBJECTS_PER_REQUEST {
            return Err(too_many_objects(total, table));
        }
        planned.push((members, objects));
    }
    let mut slots: Vec<Option<SeriesRead>> = reads.into_iter().map(Some).collect();
    for (members, objects) in planned {
        let mut scan = GroupScan { reads: Vec::with_capacity(members.len()), index: HashMap::new(), no_unit: Arc::from("") };
        for &i in &members {
            let Some(read) = slots[i].take() else { continue };
            scan.index
                .entry(read.metric.metric_name.clone())
                .or_default()
                .entry(read.metric.dimension_key.clone())
                .or_default()
                .push(scan.reads.len());
            scan.reads.push(read);
        }
        let scan = lake.scan(objects, scan).await?;
        for (&i, read) in members.iter().zip(scan.reads) {
            slots[i] = Some(read);
        }
    }
    Ok(slots.into_iter().flatten().collect())
}

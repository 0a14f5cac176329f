//! GetMetricStatistics: one metric's statistics per period.

use std::collections::BTreeMap;

use crate::api::{Datapoint, GetMetricStatisticsInput, GetMetricStatisticsOutput, MetricInput, Timestamp};
use crate::error::{ApiError, ApiResult};
use crate::lake::Lake;
use crate::query::{self, Plan, Stat};
use crate::read::{SeriesRead, read_all};

/// CloudWatch's limit of datapoints in one GetMetricStatistics answer.
pub const MAX_DATAPOINTS: i64 = 1_440;

pub async fn get_metric_statistics(lake: &Lake, input: GetMetricStatisticsInput) -> ApiResult<GetMetricStatisticsOutput> {
    let metric =
        query::metric_id(&MetricInput { namespace: input.namespace, metric_name: input.metric_name, dimensions: input.dimensions }, "")?;
    let range = query::time_range(input.start_time, input.end_time)?;
    let period = query::check_period(input.period.ok_or_else(|| ApiError::missing("Period"))?, "Period")?;
    let unit = input.unit.map(|unit| query::check_unit(&unit, "Unit").map(|()| unit)).transpose()?;
    let stats = match (input.statistics, input.extended_statistics) {
        (None, None) => return Err(ApiError::missing("Statistics or ExtendedStatistics")),
        (Some(_), Some(_)) => {
            return Err(ApiError::combination("give Statistics or ExtendedStatistics, not both (as CloudWatch requires)"));
        }
        (Some(names), None) => {
            check_count(names.len(), 5, "Statistics")?;
            let parse = |name: &String| {
                Stat::standard(name).ok_or_else(|| {
                    ApiError::invalid(format!(
                        "Statistics {name:?} is not one of SampleCount, Average, Sum, Minimum, Maximum (percentiles go in ExtendedStatistics)"
                    ))
                })
            };
            names.iter().map(parse).collect::<ApiResult<Vec<_>>>()?
        }
        (None, Some(names)) => {
            check_count(names.len(), 10, "ExtendedStatistics")?;
            let parse = |name: &String| match Stat::parse(name, "ExtendedStatistics")? {
                Stat::Extended(name) => Ok(Stat::Extended(name)),
                _ => Err(ApiError::invalid(format!("ExtendedStatistics {name:?} is a standard statistic: give it in Statistics"))),
            };
            names.iter().map(parse).collect::<ApiResult<Vec<_>>>()?
        }
    };
    let plan = Plan::new(range, period);
    let buckets = plan.buckets();
    if buckets > MAX_DATAPOINTS {
        return Err(ApiError::combination(format!(
            "you have requested up to {buckets} datapoints, which exceeds the limit of {MAX_DATAPOINTS}: increase Period or \
             shorten the time range"
        )));
    }
    if stats.iter().any(|s| matches!(s, Stat::Extended(_))) && !plan.answers_extended() {
        return Err(extended_not_exact(period));
    }

    let label = metric.metric_name.clone();
    let mut reads = read_all(lake, vec![SeriesRead::new(metric, plan, unit, None, true)]).await?;
    let Some(read) = reads.pop() else { return Ok(GetMetricStatisticsOutput { label, datapoints: Vec::new() }) };
    read.check_one_origin("GetMetricStatistics")?;
    let mut datapoints = Vec::with_capacity(read.buckets.len());
    for ((start, unit), bucket) in &read.buckets {
        let mut point = Datapoint {
            timestamp: Timestamp(*start),
            sample_count: None,
            average: None,
            sum: None,
            minimum: None,
            maximum: None,
            unit: unit.to_string(),
            extended_statistics: None,
        };
        for stat in &stats {
            let value = bucket.statistic(stat, *start)?;
            match stat {
                Stat::SampleCount => point.sample_count = value,
                Stat::Average => point.average = value,
                Stat::Sum => point.sum = value,
                Stat::Minimum => point.minimum = value,
                Stat::Maximum => point.maximum = value,
                Stat::Extended(name) => {
                    let map = point.extended_statistics.get_or_insert_with(BTreeMap::new);
                    if let Some(value) = value {
                        map.insert(name.clone(), value);
                    }
                }
            }
        }
        datapoints.push(point);
    }
    Ok(GetMetricStatisticsOutput { label, datapoints })
}

fn check_count(count: usize, max: usize, parameter: &str) -> ApiResult<()> {
    if count == 0 || count > max {
        return Err(ApiError::invalid(format!("{parameter} has {count} entries; give 1 to {max}")));
    }
    Ok(())
}

/// The error of an additional statistic asked for at a period it cannot be answered exactly at.
pub fn extended_not_exact(period_s: i64) -> ApiError {
    ApiError::combination(format!(
        "a percentile or other additional statistic cannot be answered exactly at a period of {period_s} seconds: the lake \
         keeps them per datum as the metric stream sent them (one a minute), and those of several datums cannot be combined, \
         so they are answered only at periods of 60 seconds or less (metrics_1h keeps none)"
    ))
}

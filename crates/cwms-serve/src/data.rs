//! GetMetricData: many metric queries over one time range, paged by datapoints.

use std::collections::HashSet;

use crate::api::{GetMetricDataInput, GetMetricDataOutput, MetricDataQueryInput, MetricDataResult, Timestamp};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::lake::Lake;
use crate::query::{self, Plan, Stat, TimeRange};
use crate::read::{SeriesRead, read_all};
use crate::statistics::extended_not_exact;

/// CloudWatch's limit of queries in one GetMetricData request.
pub const MAX_QUERIES: usize = 500;

/// CloudWatch's limit of datapoints in one GetMetricData answer (and `MaxDatapoints`' default).
pub const MAX_DATAPOINTS: i32 = 100_800;

/// The most datapoints the queries of one request may ask for, over all its pages (ten full
/// pages). Each page computes the whole answer again (the token holds only an offset), so this
/// bounds the work and memory of every page.
pub const MAX_REQUESTED_DATAPOINTS: i64 = 10 * MAX_DATAPOINTS as i64;

/// One checked query.
struct Query {
    id: String,
    label: String,
    stat: Stat,
    return_data: bool,
}

pub async fn get_metric_data(lake: &Lake, input: GetMetricDataInput) -> ApiResult<GetMetricDataOutput> {
    let queries = input.metric_data_queries.as_deref().ok_or_else(|| ApiError::missing("MetricDataQueries"))?;
    if queries.is_empty() || queries.len() > MAX_QUERIES {
        return Err(ApiError::invalid(format!("MetricDataQueries has {} queries; give 1 to {MAX_QUERIES}", queries.len())));
    }
    let range = query::time_range(input.start_time, input.end_time)?;
    let descending = match input.scan_by.as_deref() {
        None | Some("TimestampDescending") => true,
        Some("TimestampAscending") => false,
        Some(other) => {
            return Err(ApiError::invalid(format!("ScanBy {other:?} is not TimestampDescending or TimestampAscending")));
        }
    };
    let max_datapoints = input.max_datapoints.unwrap_or(MAX_DATAPOINTS);
    if !(1..=MAX_DATAPOINTS).contains(&max_datapoints) {
        return Err(ApiError::invalid(format!("MaxDatapoints {max_datapoints} must be 1 to {MAX_DATAPOINTS}")));
    }
    let offset = match &input.next_token {
        Some(token) => parse_token(token, fingerprint(&input))?,
        None => 0,
    };

    let mut checked = Vec::with_capacity(queries.len());
    let mut reads = Vec::new();
    let mut ids = HashSet::new();
    let mut requested = 0i64;
    for (i, q) in queries.iter().enumerate() {
        let (query, read) = check_query(q, i, range)?;
        if !ids.insert(query.id.clone()) {
            return Err(ApiError::invalid(format!(
                "MetricDataQueries[{i}].Id {:?} is the Id of an earlier query; Ids must be unique",
                query.id
            )));
        }
        if query.return_data {
            requested += read.plan.buckets();
            reads.push(read);
        }
        checked.push(query);
    }
    if requested > MAX_REQUESTED_DATAPOINTS {
        return Err(ApiError::combination(format!(
            "the queries ask for up to {requested} datapoints ((EndTime - StartTime) / Period, summed over the queries); cwms serve \
             answers at most {MAX_REQUESTED_DATAPOINTS} per request (in pages of MaxDatapoints): increase Period, shorten the \
             time range or split the queries"
        )));
    }

    let reads = read_all(lake, reads).await?;
    let mut series = Vec::with_capacity(reads.len());
    for (query, read) in checked.iter().filter(|q| q.return_data).zip(&reads) {
        read.check_one_origin(&format!("query {}", query.id))?;
        let mut points = Vec::with_capacity(read.buckets.len());
        for ((start, _), bucket) in &read.buckets {
            if let Some(value) = bucket.statistic(&query.stat, *start)? {
                points.push((Timestamp(*start), value));
            }
        }
        if descending {
            points.reverse();
        }
        series.push((query, points));
    }

    // The answer is the queries' datapoints one after another; this page is the
    // `max_datapoints` of them from `offset` on.
    let total: usize = series.iter().map(|(_, points)| points.len()).sum();
    let page_end = offset.saturating_add(max_datapoints as usize).min(total);
    let mut before = 0usize;
    let mut results = Vec::with_capacity(series.len());
    for (query, points) in series {
        let (from, to) = (offset.clamp(before, before + points.len()) - before, page_end.clamp(before, before + points.len()) - before);
        before += points.len();
        let page = &points[from..to];
        results.push(MetricDataResult {
            id: query.id.clone(),
            label: query.label.clone(),
            timestamps: page.iter().map(|&(t, _)| t).collect(),
            values: page.iter().map(|&(_, v)| v).collect(),
            status_code: if to < points.len() { "PartialData" } else { "Complete" },
            messages: Vec::new(),
        });
    }
    let next_token = (page_end < total).then(|| token(fingerprint(&input), page_end));
    Ok(GetMetricDataOutput { metric_data_results: results, next_token, messages: Vec::new() })
}

/// Checks one query, `i` the index in MetricDataQueries.
fn check_query(q: &MetricDataQueryInput, i: usize, range: TimeRange) -> ApiResult<(Query, SeriesRead)> {
    let at = |member: &str| format!("MetricDataQueries[{i}].{member}");
    let id = q.id.clone().ok_or_else(|| ApiError::missing(&at("Id")))?;
    let valid_id =
        id.len() <= 255 && id.starts_with(|c: char| c.is_ascii_lowercase()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_id {
        return Err(ApiError::invalid(format!(
            "{} {id:?} must start with a lowercase letter and hold only letters, digits and _ (at most 255)",
            at("Id")
        )));
    }
    let stat_input = match (&q.metric_stat, &q.expression) {
        (Some(_), Some(_)) => {
            return Err(ApiError::combination(format!("query {id} has both MetricStat and Expression; give one")));
        }
        (None, Some(expression)) => {
            return Err(ApiError::new(
                ErrorKind::InvalidParameterValue,
                format!(
                    "query {id}: metric math and Metrics Insights expressions are not supported by cwms serve \
                     (Expression {expression:?}); use MetricStat queries and compute in the client"
                ),
            ));
        }
        (None, None) => return Err(ApiError::missing(&format!("{} or {}", at("MetricStat"), at("Expression")))),
        (Some(stat), None) => stat,
    };
    let metric = stat_input.metric.as_ref().ok_or_else(|| ApiError::missing(&at("MetricStat.Metric")))?;
    let metric = query::metric_id(metric, &at("MetricStat.Metric."))?;
    let period = stat_input.period.ok_or_else(|| ApiError::missing(&at("MetricStat.Period")))?;
    let period = query::check_period(period, &at("MetricStat.Period"))?;
    let stat = stat_input.stat.as_deref().ok_or_else(|| ApiError::missing(&at("MetricStat.Stat")))?;
    let stat = Stat::parse(stat, &at("MetricStat.Stat"))?;
    let unit = stat_input.unit.clone();
    if let Some(unit) = &unit {
        query::check_unit(unit, &at("MetricStat.Unit"))?;
    }
    let plan = Plan::new(range, period);
    if matches!(stat, Stat::Extended(_)) && !plan.answers_extended() {
        let error = extended_not_exact(period);
        return Err(ApiError::new(error.kind, format!("query {id} ({stat}): {}", error.message)));
    }
    let label = q.label.clone().unwrap_or_else(|| metric.metric_name.clone());
    let read = SeriesRead::new(metric, plan, unit, q.account_id.clone(), false);
    Ok((Query { id, label, stat, return_data: q.return_data.unwrap_or(true) }, read))
}

/// What a token is bound to: the request without its NextToken and MaxDatapoints (which may
/// change from page to page), hashed.
fn fingerprint(input: &GetMetricDataInput) -> u64 {
    let mut bare = input.clone();
    bare.next_token = None;
    bare.max_datapoints = None;
    xxhash_rust::xxh3::xxh3_64(&serde_json::to_vec(&bare).unwrap_or_default())
}

const TOKEN_PREFIX: &str = "cwms-gmd-1.";

fn token(fingerprint: u64, offset: usize) -> String {
    format!("{TOKEN_PREFIX}{fingerprint:016x}.{offset}")
}

fn parse_token(token: &str, fingerprint: u64) -> ApiResult<usize> {
    let invalid = |why: &str| ApiError::new(ErrorKind::InvalidNextToken, format!("NextToken {token:?} {why}"));
    let rest = token.strip_prefix(TOKEN_PREFIX).ok_or_else(|| invalid("is not a token cwms serve gave"))?;
    let (hash, offset) = rest.split_once('.').ok_or_else(|| invalid("is not a token cwms serve gave"))?;
    let hash = u64::from_str_radix(hash, 16).map_err(|_| invalid("is not a token cwms serve gave"))?;
    let offset = offset.parse::<usize>().map_err(|_| invalid("is not a token cwms serve gave"))?;
    if hash != fingerprint {
        return Err(invalid("was given for another request: send the same queries, StartTime, EndTime and ScanBy with it"));
    }
    Ok(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_bound_to_their_request() {
        let input = GetMetricDataInput { start_time: Some(Timestamp(0)), end_time: Some(Timestamp(60_000)), ..Default::default() };
        let mut other = input.clone();
        other.end_time = Some(Timestamp(120_000));
        let t = token(fingerprint(&input), 42);
        assert_eq!(parse_token(&t, fingerprint(&input)), Ok(42));
        // The same request on its next page (a token and another MaxDatapoints) has the same fingerprint.
        let mut next = input.clone();
        next.next_token = Some(t.clone());
        next.max_datapoints = Some(10);
        assert_eq!(fingerprint(&next), fingerprint(&input));
        for (bad, fp) in [(t.as_str(), fingerprint(&other)), ("abc", fingerprint(&input)), ("cwms-gmd-1.zz.1", fingerprint(&input))] {
            assert_eq!(parse_token(bad, fp).unwrap_err().kind, ErrorKind::InvalidNextToken, "{bad}");
        }
    }
}

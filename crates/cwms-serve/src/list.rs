//! ListMetrics: the metrics of the lake's last two weeks, filtered, in pages of 500.

use std::collections::BTreeMap;

use base64::Engine as _;
use cwms_merge::{HOUR_MS, Row, SeriesKey};

use crate::api::{Dimension, ListMetricsInput, ListMetricsOutput, Metric};
use crate::error::{ApiError, ApiResult};
use crate::lake::{Lake, MAX_OBJECTS_PER_REQUEST, Scanner};
use crate::query;

/// Metrics per page, as CloudWatch pages them.
pub const PAGE: usize = 500;

/// How far back from the lake's newest day ListMetrics looks: CloudWatch lists the metrics with
/// data in the past two weeks. The lake keeps everything, and its newest data need not be
/// today's, so the two weeks end at its newest day.
const DAYS: i64 = 14;

/// (namespace, metric name, dimension key): the order of the listing and of its tokens.
type MetricKey = (String, String, String);

/// Collects the series that match the filters, and when asked their newest hour.
struct Lister {
    metric_name: Option<String>,
    dimensions: Vec<(String, Option<String>)>,
    /// Whether rows are read (for RecentlyActive); otherwise the series alone answer.
    recent: bool,
    metrics: BTreeMap<MetricKey, (Vec<Dimension>, i64)>,
    newest_ms: i64,
}

impl Lister {
    fn matches(&self, series: &SeriesKey) -> bool {
        self.metric_name.as_deref().is_none_or(|name| name == series.metric_name())
            && self
                .dimensions
                .iter()
                .all(|(name, value)| series.dimensions().any(|(n, v)| n == name && value.as_deref().is_none_or(|value| value == v)))
    }

    fn key(series: &SeriesKey) -> MetricKey {
        (series.namespace().to_owned(), series.metric_name().to_owned(), series.dimension_key().to_owned())
    }
}

impl Scanner for Lister {
    fn wants(&mut self, series: &SeriesKey) -> bool {
        if self.matches(series) {
            let dimensions = || series.dimensions().map(|(n, v)| Dimension { name: n.to_owned(), value: v.to_owned() }).collect();
            self.metrics.entry(Self::key(series)).or_insert_with(|| (dimensions(), i64::MIN));
        }
        // For RecentlyActive every series' rows are read, so the lake's newest hour is known.
        self.recent
    }

    fn row(&mut self, row: &Row<'_>) {
        self.newest_ms = self.newest_ms.max(row.timestamp_ms);
        if let Some(entry) = self.metrics.get_mut(&Self::key(row.series)) {
            entry.1 = entry.1.max(row.timestamp_ms);
        }
    }
}

pub async fn list_metrics(lake: &Lake, input: ListMetricsInput) -> ApiResult<ListMetricsOutput> {
    if let Some(namespace) = &input.namespace {
        query::check_namespace(namespace, "Namespace")?;
    }
    if let Some(name) = &input.metric_name
        && (name.is_empty() || name.chars().count() > 255)
    {
        return Err(ApiError::invalid(format!("MetricName {name:?} must be 1 to 255 characters")));
    }
    let dimensions = query::dimensions(input.dimensions.as_deref().unwrap_or_default(), "Dimensions", 10, false)?;
    let recent = match input.recently_active.as_deref() {
        None => false,
        Some("PT3H") => true,
        Some(other) => return Err(ApiError::invalid(format!("RecentlyActive {other:?} is not PT3H, the one value CloudWatch takes"))),
    };
    let after = input.next_token.as_deref().map(parse_token).transpose()?;

    let mut days = lake.days(input.namespace.as_deref()).await?;
    let newest = days.iter().map(|d| d.time_range_ms().start).max().unwrap_or_default();
    // The last two weeks; for RecentlyActive the last three hours, which are in the newest two days.
    let from = newest - if recent { HOUR_MS * 24 } else { HOUR_MS * 24 * (DAYS - 1) };
    days.retain(|d| d.time_range_ms().start >= from);
    if days.len() > MAX_OBJECTS_PER_REQUEST {
        return Err(ApiError::combination(format!(
            "listing would read {} day objects (more than {MAX_OBJECTS_PER_REQUEST}): give a Namespace",
            days.len()
        )));
    }
    let lister = Lister { metric_name: input.metric_name, dimensions, recent, metrics: BTreeMap::new(), newest_ms: i64::MIN };
    let lister = lake.scan(days, lister).await?;

    // An hourly row starts its hour: the last three hours are the newest row's and the two before.
    let recent_from = lister.newest_ms.saturating_sub(2 * HOUR_MS);
    let mut listed = lister
        .metrics
        .into_iter()
        .filter(|(_, (_, newest))| !recent || *newest >= recent_from)
        .filter(|(key, _)| after.as_ref().is_none_or(|after| key > after));
    let mut metrics = Vec::new();
    let mut last = None;
    for (key, (dimensions, _)) in listed.by_ref().take(PAGE) {
        metrics.push(Metric { namespace: key.0.clone(), metric_name: key.1.clone(), dimensions });
        last = Some(key);
    }
    let next_token = match (listed.next(), last) {
        (Some(_), Some(last)) => Some(token(&last)),
        _ => None,
    };
    Ok(ListMetricsOutput { metrics, next_token })
}

const TOKEN_PREFIX: &str = "cwms-lm-1.";

/// A token naming the last metric of a page: the next page starts after it.
fn token((namespace, metric_name, dimension_key): &MetricKey) -> String {
    let raw = format!("{namespace}\0{metric_name}\0{dimension_key}");
    format!("{TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

fn parse_token(token: &str) -> ApiResult<MetricKey> {
    let invalid = || ApiError::invalid(format!("NextToken {token:?} is not a token cwms serve gave"));
    let encoded = token.strip_prefix(TOKEN_PREFIX).ok_or_else(invalid)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(encoded).map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let mut parts = raw.splitn(3, '\0');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(c)) => Ok((a.to_owned(), b.to_owned(), c.to_owned())),
        _ => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let key = ("AWS/EC2".to_owned(), "CPUUtilization".to_owned(), "InstanceId=i-1,Path=/a\\,b".to_owned());
        assert_eq!(parse_token(&token(&key)), Ok(key));
        for bad in ["", "x", "cwms-lm-1.!!", "cwms-lm-1.YWJj"] {
            assert!(parse_token(bad).is_err(), "{bad}");
        }
    }
}

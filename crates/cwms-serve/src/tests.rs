//! The operations over a small lake written with the lake's own writer, and the router's
//! protocols, without a socket.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use cwms_merge::{Partition, rollup_hourly};
use cwms_model::Datum;
use cwms_parquet::{LakeObject, WriteOptions};
use cwms_store::{LocalStore, ObjectStore, PutMode};
use tower::ServiceExt;

use crate::api::*;
use crate::error::ErrorKind;
use crate::lake::Lake;

/// 2026-01-15T10:00:00Z.
const T0: i64 = 1_768_471_200_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

fn datum(account: &str, metric: &str, dimensions: &[(&str, &str)], ts: i64, values: [f64; 4]) -> Datum<'static> {
    let [count, sum, min, max] = values;
    let mut dims: Vec<_> = dimensions.iter().map(|&(k, v)| (k.to_owned().into(), v.to_owned().into())).collect();
    dims.sort();
    Datum {
        metric_stream_name: None,
        account_id: account.to_owned().into(),
        region: "us-east-1".into(),
        namespace: "AWS/EC2".into(),
        metric_name: metric.to_owned().into(),
        dimensions: dims,
        timestamp_ms: ts,
        unit: "Percent".into(),
        count,
        sum,
        max,
        min,
        stats: vec![("p99".into(), max * 0.99)],
    }
}

/// The test lake: two hours (10:00 to 12:00) of `CPUUtilization` for two instances in account
/// A, one of them also in account B, with counts and sums that differ minute to minute.
fn datums() -> Vec<Datum<'static>> {
    let mut out = Vec::new();
    for minute in 0..120 {
        let ts = T0 + minute * MINUTE;
        let m = minute as f64;
        let count = 1.0 + (minute % 3) as f64;
        out.push(datum("111111111111", "CPUUtilization", &[("InstanceId", "i-1")], ts, [count, m * count, m - 1.0, m + 1.0]));
        out.push(datum("111111111111", "CPUUtilization", &[("InstanceId", "i-2")], ts, [2.0, 3.0, 1.0, 2.0]));
        out.push(datum("222222222222", "CPUUtilization", &[("InstanceId", "i-2")], ts, [5.0, 50.0, 10.0, 10.0]));
    }
    out
}

/// Writes the datums as a lake (minutes and the day's rollup) in a fresh folder.
async fn lake(datums: &[Datum<'static>]) -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::create(dir.path()).await.unwrap();
    let mut objects: BTreeMap<LakeObject, Partition> = BTreeMap::new();
    for d in datums {
        objects.entry(LakeObject::minutes_at(&d.namespace, d.timestamp_ms).unwrap()).or_default().insert(d);
    }
    let mut days: BTreeMap<LakeObject, Partition> = BTreeMap::new();
    for (object, partition) in &objects {
        let bytes = cwms_parquet::encode(partition, object, &WriteOptions::default()).unwrap();
        store.put(&object.key(), bytes, PutMode::Overwrite).await.unwrap();
        days.entry(object.day()).or_default().merge(&rollup_hourly(partition));
    }
    for (object, partition) in &days {
        let bytes = cwms_parquet::encode(partition, object, &WriteOptions::default()).unwrap();
        store.put(&object.key(), bytes, PutMode::Overwrite).await.unwrap();
    }
    (dir, Lake::new(Arc::new(store)))
}

fn dims(pairs: &[(&str, &str)]) -> Option<Vec<DimensionInput>> {
    Some(pairs.iter().map(|&(n, v)| DimensionInput { name: Some(n.into()), value: Some(v.into()) }).collect())
}

fn statistics_input(start: i64, end: i64, period: i32, stats: &[&str]) -> GetMetricStatisticsInput {
    GetMetricStatisticsInput {
        namespace: Some("AWS/EC2".into()),
        metric_name: Some("CPUUtilization".into()),
        dimensions: dims(&[("InstanceId", "i-1")]),
        start_time: Some(Timestamp(start)),
        end_time: Some(Timestamp(end)),
        period: Some(period),
        statistics: Some(stats.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    }
}

/// The reference: the statistics of instance i-1 over `[from, to)` minutes, computed from the
/// generating formula.
fn reference(from: i64, to: i64) -> (f64, f64, f64, f64) {
    let (mut count, mut sum, mut min, mut max) = (0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY);
    for minute in from..to {
        let c = 1.0 + (minute % 3) as f64;
        count += c;
        sum += minute as f64 * c;
        min = f64::min(min, minute as f64 - 1.0);
        max = f64::max(max, minute as f64 + 1.0);
    }
    (count, sum, min, max)
}

#[tokio::test]
async fn statistics_are_cloudwatchs_over_the_datums() {
    let (_dir, lake) = lake(&datums()).await;
    let input = statistics_input(T0, T0 + 2 * HOUR, 300, &["SampleCount", "Sum", "Average", "Minimum", "Maximum"]);
    let output = crate::statistics::get_metric_statistics(&lake, input).await.unwrap();
    assert_eq!(output.label, "CPUUtilization");
    assert_eq!(output.datapoints.len(), 24);
    for (i, point) in output.datapoints.iter().enumerate() {
        let (count, sum, min, max) = reference(i as i64 * 5, i as i64 * 5 + 5);
        assert_eq!(point.timestamp, Timestamp(T0 + i as i64 * 5 * MINUTE));
        assert_eq!(
            (point.sample_count, point.sum, point.average, point.minimum, point.maximum),
            (Some(count), Some(sum), Some(sum / count), Some(min), Some(max))
        );
        assert_eq!(point.unit, "Percent");
        assert_eq!(point.extended_statistics, None);
    }
}

#[tokio::test]
async fn hourly_periods_read_metrics_1h_and_agree_with_the_minutes() {
    let (dir, lake) = lake(&datums()).await;
    let stats = ["SampleCount", "Sum", "Average", "Minimum", "Maximum"];
    let hourly = crate::statistics::get_metric_statistics(&lake, statistics_input(T0, T0 + 2 * HOUR, 3600, &stats)).await.unwrap();
    assert_eq!(hourly.datapoints.len(), 2);
    for (i, point) in hourly.datapoints.iter().enumerate() {
        let (count, sum, _, _) = reference(i as i64 * 60, i as i64 * 60 + 60);
        assert_eq!((point.sample_count, point.sum), (Some(count), Some(sum)));
    }
    // Proof that the hours came from metrics_1h: without the minutes, they still answer.
    std::fs::remove_dir_all(dir.path().join("metrics_1m")).unwrap();
    let again = crate::statistics::get_metric_statistics(&lake, statistics_input(T0, T0 + 2 * HOUR, 3600, &stats)).await.unwrap();
    assert_eq!(again, hourly);
    // An hour not on the hour reads the minutes, which are gone.
    let shifted = statistics_input(T0 + MINUTE, T0 + 2 * HOUR, 3600, &stats);
    assert_eq!(crate::statistics::get_metric_statistics(&lake, shifted).await.unwrap().datapoints, vec![]);
}

#[tokio::test]
async fn additional_statistics_only_where_exact() {
    let (_dir, lake) = lake(&datums()).await;
    let mut input = statistics_input(T0, T0 + 10 * MINUTE, 60, &[]);
    input.statistics = None;
    input.extended_statistics = Some(vec!["p99".into(), "p50".into()]);
    let output = crate::statistics::get_metric_statistics(&lake, input.clone()).await.unwrap();
    assert_eq!(output.datapoints.len(), 10);
    for (i, point) in output.datapoints.iter().enumerate() {
        // p99 as streamed; p50 was not streamed, so it is absent.
        let expected: BTreeMap<String, f64> = [("p99".to_owned(), (i as f64 + 1.0) * 0.99)].into();
        assert_eq!(point.extended_statistics.as_ref(), Some(&expected));
    }
    input.period = Some(300);
    let error = crate::statistics::get_metric_statistics(&lake, input).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidParameterCombination);
    assert!(error.message.contains("cannot be answered exactly at a period of 300 seconds"), "{error}");
}

#[tokio::test]
async fn bad_requests_are_named() {
    let (_dir, lake) = lake(&datums()).await;
    let check = |input: GetMetricStatisticsInput, kind: ErrorKind, needle: &'static str| {
        let lake = lake.clone();
        async move {
            let error = crate::statistics::get_metric_statistics(&lake, input).await.unwrap_err();
            assert_eq!(error.kind, kind, "{error}");
            assert!(error.message.contains(needle), "{needle:?} not in {error}");
        }
    };
    let ok = statistics_input(T0, T0 + HOUR, 60, &["Sum"]);
    check(GetMetricStatisticsInput { period: Some(90), ..ok.clone() }, ErrorKind::InvalidParameterValue, "Period 90 is not a valid period")
        .await;
    check(
        GetMetricStatisticsInput { end_time: Some(Timestamp(T0 - 1)), ..ok.clone() },
        ErrorKind::InvalidParameterValue,
        "EndTime 2026-01-15T09:59:59.999Z must be after StartTime 2026-01-15T10:00:00Z",
    )
    .await;
    check(
        GetMetricStatisticsInput { end_time: Some(Timestamp(T0 + 1441 * MINUTE)), ..ok.clone() },
        ErrorKind::InvalidParameterCombination,
        "you have requested up to 1441 datapoints, which exceeds the limit of 1440",
    )
    .await;
    check(GetMetricStatisticsInput { namespace: None, ..ok.clone() }, ErrorKind::MissingParameter, "Namespace is required").await;
    check(GetMetricStatisticsInput { statistics: None, ..ok.clone() }, ErrorKind::MissingParameter, "Statistics or ExtendedStatistics")
        .await;
    check(GetMetricStatisticsInput { statistics: Some(vec!["p99".into()]), ..ok.clone() }, ErrorKind::InvalidParameterValue, "p99").await;
    check(GetMetricStatisticsInput { unit: Some("Percents".into()), ..ok.clone() }, ErrorKind::InvalidParameterValue, "Percents").await;
    // i-2 is in two accounts: the answer would mix them.
    check(
        GetMetricStatisticsInput { dimensions: dims(&[("InstanceId", "i-2")]), ..ok.clone() },
        ErrorKind::InvalidParameterCombination,
        "for 2 accounts or regions (111111111111 in us-east-1, 222222222222 in us-east-1)",
    )
    .await;
}

fn data_query(id: &str, instance: &str, period: i32, stat: &str) -> MetricDataQueryInput {
    MetricDataQueryInput {
        id: Some(id.into()),
        metric_stat: Some(MetricStatInput {
            metric: Some(MetricInput {
                namespace: Some("AWS/EC2".into()),
                metric_name: Some("CPUUtilization".into()),
                dimensions: dims(&[("InstanceId", instance)]),
            }),
            period: Some(period),
            stat: Some(stat.into()),
            unit: None,
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn metric_data_pages_add_up_to_the_whole_answer() {
    let (_dir, lake) = lake(&datums()).await;
    let mut b = data_query("b", "i-2", 60, "Sum");
    b.account_id = Some("222222222222".into());
    let input = GetMetricDataInput {
        metric_data_queries: Some(vec![data_query("a", "i-1", 600, "Average"), b]),
        start_time: Some(Timestamp(T0)),
        end_time: Some(Timestamp(T0 + HOUR)),
        scan_by: Some("TimestampAscending".into()),
        ..Default::default()
    };
    let whole = crate::data::get_metric_data(&lake, input.clone()).await.unwrap();
    assert_eq!(whole.next_token, None);
    let [a, b] = &whole.metric_data_results[..] else { panic!("{whole:?}") };
    assert_eq!((a.id.as_str(), a.label.as_str(), a.status_code), ("a", "CPUUtilization", "Complete"));
    assert_eq!(a.values.len(), 6);
    for (i, value) in a.values.iter().enumerate() {
        let (count, sum, _, _) = reference(i as i64 * 10, i as i64 * 10 + 10);
        assert_eq!(*value, sum / count);
        assert_eq!(a.timestamps[i], Timestamp(T0 + i as i64 * 10 * MINUTE));
    }
    assert_eq!(b.values, vec![50.0; 60]);

    // Pages of 7: 66 datapoints in 10 pages, which put back together are the whole answer.
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let page = GetMetricDataInput { next_token: token, max_datapoints: Some(7), ..input.clone() };
        let page = crate::data::get_metric_data(&lake, page).await.unwrap();
        token = page.next_token.clone();
        pages.push(page);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages.len(), 10);
    for id in ["a", "b"] {
        let joined: Vec<(Timestamp, f64)> = pages
            .iter()
            .flat_map(|p| p.metric_data_results.iter().filter(|r| r.id == id))
            .flat_map(|r| r.timestamps.iter().copied().zip(r.values.iter().copied()))
            .collect();
        let result = whole.metric_data_results.iter().find(|r| r.id == id).unwrap();
        assert_eq!(joined, result.timestamps.iter().copied().zip(result.values.iter().copied()).collect::<Vec<_>>());
    }
    assert_eq!((pages[0].metric_data_results[0].status_code, pages[0].metric_data_results[1].status_code), ("Complete", "PartialData"));

    // Descending, the default, is the same datapoints newest first.
    let descending = crate::data::get_metric_data(&lake, GetMetricDataInput { scan_by: None, ..input.clone() }).await.unwrap();
    let mut reversed = whole.metric_data_results[0].values.clone();
    reversed.reverse();
    assert_eq!(descending.metric_data_results[0].values, reversed);
}

#[tokio::test]
async fn metric_data_refuses_what_it_cannot_answer() {
    let (_dir, lake) = lake(&datums()).await;
    let base = GetMetricDataInput {
        metric_data_queries: Some(vec![data_query("a", "i-1", 60, "Sum")]),
        start_time: Some(Timestamp(T0)),
        end_time: Some(Timestamp(T0 + HOUR)),
        ..Default::default()
    };
    let check = |queries: Vec<MetricDataQueryInput>, kind: ErrorKind, needle: &'static str| {
        let (lake, input) = (lake.clone(), GetMetricDataInput { metric_data_queries: Some(queries), ..base.clone() });
        async move {
            let error = crate::data::get_metric_data(&lake, input).await.unwrap_err();
            assert_eq!(error.kind, kind, "{error}");
            assert!(error.message.contains(needle), "{needle:?} not in {error}");
        }
    };
    let expression = MetricDataQueryInput { id: Some("e".into()), expression: Some("SUM(METRICS())".into()), ..Default::default() };
    check(vec![expression], ErrorKind::InvalidParameterValue, "expressions are not supported").await;
    check(vec![data_query("a", "i-1", 60, "Sum"); 501], ErrorKind::InvalidParameterValue, "has 501 queries; give 1 to 500").await;
    check(vec![data_query("a", "i-1", 60, "Sum"); 2], ErrorKind::InvalidParameterValue, "Ids must be unique").await;
    check(vec![data_query("A", "i-1", 60, "Sum")], ErrorKind::InvalidParameterValue, "must start with a lowercase letter").await;
    check(vec![data_query("a", "i-1", 60, "Mean")], ErrorKind::InvalidParameterValue, "\"Mean\" is not a statistic").await;
    check(vec![data_query("a", "i-1", 120, "p99")], ErrorKind::InvalidParameterCombination, "query a (p99)").await;
    check(vec![data_query("a", "i-2", 60, "Sum")], ErrorKind::InvalidParameterCombination, "name one with GetMetricData's AccountId").await;
    let mut many = base.clone();
    many.max_datapoints = Some(100_801);
    assert!(crate::data::get_metric_data(&lake, many).await.unwrap_err().message.contains("MaxDatapoints 100801"));
    let mut bad_token = base.clone();
    bad_token.next_token = Some("nope".into());
    assert_eq!(crate::data::get_metric_data(&lake, bad_token).await.unwrap_err().kind, ErrorKind::InvalidNextToken);
}

#[tokio::test]
async fn list_metrics_filters_and_pages() {
    // 1,001 metrics: three pages.
    let mut all = Vec::new();
    for i in 0..1001 {
        all.push(datum("111111111111", &format!("M{i:04}"), &[("Kind", if i % 2 == 0 { "even" } else { "odd" })], T0, [1.0; 4]));
    }
    all.push(datum("111111111111", "Other", &[("Kind", "even"), ("Zone", "a")], T0, [1.0; 4]));
    let (_dir, lake) = lake(&all).await;
    let mut listed = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = crate::list::list_metrics(&lake, ListMetricsInput { next_token: token, ..Default::default() }).await.unwrap();
        pages += 1;
        assert!(page.metrics.len() <= 500);
        listed.extend(page.metrics);
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!((pages, listed.len()), (3, 1002));
    assert_eq!(
        listed[0],
        Metric {
            namespace: "AWS/EC2".into(),
            metric_name: "M0000".into(),
            dimensions: vec![Dimension { name: "Kind".into(), value: "even".into() }],
        }
    );

    let filtered = |input: ListMetricsInput| {
        let lake = lake.clone();
        async move { crate::list::list_metrics(&lake, input).await.unwrap().metrics.iter().map(|m| m.metric_name.clone()).collect::<Vec<_>>() }
    };
    let zone = Some(vec![DimensionInput { name: Some("Zone".into()), value: None }]);
    assert_eq!(filtered(ListMetricsInput { dimensions: zone, ..Default::default() }).await, vec!["Other"]);
    assert_eq!(filtered(ListMetricsInput { metric_name: Some("M0007".into()), ..Default::default() }).await, vec!["M0007"]);
    let odd = dims(&[("Kind", "odd")]);
    assert_eq!(filtered(ListMetricsInput { dimensions: odd, ..Default::default() }).await.len(), 500);
    assert_eq!(filtered(ListMetricsInput { namespace: Some("AWS/Lambda".into()), ..Default::default() }).await.len(), 0);
    let recent = ListMetricsInput { recently_active: Some("PT3H".into()), metric_name: Some("Other".into()), ..Default::default() };
    assert_eq!(filtered(recent).await, vec!["Other"]);
}

async fn call(lake: &Lake, request: Request<Body>) -> (u16, axum::http::HeaderMap, Vec<u8>) {
    let response = crate::http::router(lake.clone()).oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status.as_u16(), parts.headers, axum::body::to_bytes(body, usize::MAX).await.unwrap().to_vec())
}

fn json_request(target: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post("/")
        .header("x-amz-target", format!("GraniteServiceVersion20100801.{target}"))
        .header("content-type", "application/x-amz-json-1.0")
        .body(body.into())
        .unwrap()
}

#[tokio::test]
async fn the_json_protocol_and_its_errors() {
    let (_dir, lake) = lake(&datums()).await;
    let (status, headers, body) = call(&lake, json_request("ListMetrics", r#"{"MetricName":"CPUUtilization"}"#)).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/x-amz-json-1.0");
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["Metrics"].as_array().unwrap().len(), 2, "{body}");

    let check = |request: Request<Body>, status: u16, kind: &'static str, needle: &'static str| {
        let lake = lake.clone();
        async move {
            let (actual, headers, body) = call(&lake, request).await;
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!((actual, body["__type"].as_str().unwrap()), (status, format!("com.amazonaws.cloudwatch#{kind}").as_str()), "{body}");
            assert!(body["message"].as_str().unwrap().contains(needle), "{needle:?} not in {body}");
            headers
        }
    };
    check(json_request("PutMetricData", "{}"), 400, "UnknownOperationException", "serves the lake read-only").await;
    check(json_request("ListMetrics", "{\"Namespace\":"), 400, "SerializationException", "not JSON").await;
    check(json_request("ListMetrics", "[1]"), 400, "SerializationException", "not JSON").await;
    check(json_request("GetMetricStatistics", r#"{"Period":"60"}"#), 400, "SerializationException", "Period").await;
    let headers = check(json_request("GetMetricStatistics", "{}"), 400, "MissingRequiredParameterException", "Namespace").await;
    assert_eq!(headers["x-amzn-query-error"], "MissingParameter;Sender");
    let no_target = Request::post("/").body(Body::from("{}")).unwrap();
    check(no_target, 400, "UnknownOperationException", "no X-Amz-Target header").await;
    check(Request::get("/").body(Body::empty()).unwrap(), 405, "UnknownOperationException", "POST /").await;
    check(Request::post("/x").body(Body::empty()).unwrap(), 404, "UnknownOperationException", "POST /").await;
    // A body past the limit, with and without a Content-Length saying so.
    let big = vec![b' '; crate::http::MAX_BODY_BYTES + 1];
    check(json_request("ListMetrics", big.clone()), 413, "RequestEntityTooLargeException", "larger than").await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big.chunks(1 << 16).map(|c| Ok(c.to_vec())).collect();
    let stream = Body::from_stream(futures::stream::iter(chunks));
    check(json_request("ListMetrics", stream), 413, "RequestEntityTooLargeException", "larger than").await;
}

#[tokio::test]
async fn the_cbor_protocol() {
    let (_dir, lake) = lake(&datums()).await;
    let input = statistics_input(T0, T0 + HOUR, 3600, &["Sum", "SampleCount"]);
    let mut body = Vec::new();
    ciborium::into_writer(&input, &mut body).unwrap();
    let request = Request::post("/service/GraniteServiceVersion20100801/operation/GetMetricStatistics")
        .header("smithy-protocol", "rpc-v2-cbor")
        .header("content-type", "application/cbor")
        .body(Body::from(body))
        .unwrap();
    let (status, headers, body) = call(&lake, request).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&headers["content-type"], &headers["smithy-protocol"]),
        (&"application/cbor".parse().unwrap(), &"rpc-v2-cbor".parse().unwrap())
    );
    let value: ciborium::Value = ciborium::from_reader(body.as_slice()).unwrap();
    let json = serde_json::to_value(&value).unwrap();
    let (count, sum, _, _) = reference(0, 60);
    assert_eq!(json["Datapoints"][0]["Sum"], sum, "{json}");
    assert_eq!(json["Datapoints"][0]["SampleCount"], count, "{json}");

    let bad =
        Request::post("/service/GraniteServiceVersion20100801/operation/GetMetricStatistics").body(Body::from(vec![0xff, 0x00])).unwrap();
    let (status, headers, body) = call(&lake, bad).await;
    assert_eq!((status, &headers["smithy-protocol"]), (400, &"rpc-v2-cbor".parse().unwrap()));
    let error: BTreeMap<String, String> = ciborium::from_reader(body.as_slice()).unwrap();
    assert_eq!(error["__type"], "com.amazonaws.cloudwatch#SerializationException");

    // A member of the wrong type is named by its path.
    let mut body = Vec::new();
    let queries = serde_json::json!({ "MetricDataQueries": [{ "Id": "a", "MetricStat": { "Period": "sixty" } }] });
    ciborium::into_writer(&queries, &mut body).unwrap();
    let request = Request::post("/service/GraniteServiceVersion20100801/operation/GetMetricData").body(Body::from(body)).unwrap();
    let (status, _, body) = call(&lake, request).await;
    let error: BTreeMap<String, String> = ciborium::from_reader(body.as_slice()).unwrap();
    assert_eq!(status, 400);
    assert!(
        error["message"].starts_with("the body is not CBOR of the operation's input at MetricDataQueries[0].MetricStat.Period: "),
        "{error:?}"
    );
}

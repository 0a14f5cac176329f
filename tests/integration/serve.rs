//! `cwms serve` on a lake `cwms run` made, driven over a socket by boto3 (AWS JSON 1.0), every
//! number checked against DuckDB over the same files (tests/serve/check_serve.py); the same lake
//! served from S3 (s3s-fs) answers byte for byte as the folder does; and the paths a new user
//! takes: a missing lake, a file, an empty folder, a port in use, an address others can reach.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use cwms_tests::lambda_emulator::built_binary;
use cwms_tests::servers::{ACCESS_KEY, REGION, S3Server, SECRET_KEY};
use cwms_tests::util::{self, describe, lake_files, python};

/// A running `cwms serve`, killed on drop.
struct Serve {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    endpoint: String,
    /// The first line it printed.
    banner: String,
    _stdout: BufReader<ChildStdout>,
}

impl Serve {
    /// Starts `cwms serve --lake LAKE --listen LISTEN` (port 0: the server picks a free port and
    /// prints it, so no port can be taken between choosing and binding it).
    fn start(lake: &str, listen: &str, env: &[(&str, &str)]) -> Serve {
        let mut child = Command::new(built_binary("cwms"))
            .args(["serve", "--lake", lake, "--listen", listen])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (send, receive) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            let _ = stdout.read_line(&mut line);
            let _ = send.send(line);
            stdout
        });
        let banner = receive.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let stdout = reader.join().unwrap();
        let Some(address) = banner.trim_end().strip_suffix('/').and_then(|s| s.rsplit_once(" on http://")).map(|(_, a)| a.to_owned())
        else {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("cwms serve printed no address: {banner:?}\n{}", describe(&output));
        };
        Serve { child, endpoint: format!("http://{address}"), banner, _stdout: stdout }
    }

    /// Calls an operation with AWS JSON 1.0: the status and the body.
    fn call(&self, operation: &str, body: &str) -> (u16, String) {
        let agent: ureq::Agent =
            ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(60))).http_status_as_error(false).build().into();
        let mut response = agent
            .post(&format!("{}/", self.endpoint))
            .header("X-Amz-Target", format!("GraniteServiceVersion20100801.{operation}"))
            .header("Content-Type", "application/x-amz-json-1.0")
            .send(body)
            .unwrap();
        (response.status().as_u16(), response.body_mut().read_to_string().unwrap())
    }

    /// Stops the server and returns what it wrote on standard error.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        let _ = self.child.wait();
        stderr
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A lake of 40 series over 150 minutes across midnight (two `dt` partitions), made by `cwms run`.
fn make_lake(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("demo");
    let output =
        util::cwms(&["run", "--out", out.to_str().unwrap(), "--series", "40", "--minutes", "150", "--start", "2026-01-15T22:30:00Z"], &[]);
    assert!(output.status.success(), "{}", describe(&output));
    out.join("lake")
}

#[test]
fn serve_answers_boto3_with_the_lakes_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let lake = make_lake(dir.path());
    let server = Serve::start(lake.to_str().unwrap(), "127.0.0.1:0", &[]);
    let report = python("tests/serve/check_serve.py", &[&server.endpoint, lake.to_str().unwrap()]);
    let last = report.lines().last().unwrap_or_default();
    let passed = last.strip_suffix(" passed, 0 failed").and_then(|n| n.parse::<usize>().ok());
    assert!(passed.is_some_and(|n| n >= 14), "not every check ran and passed: {last}\n{report}");
    let stderr = server.stop();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The lake on S3 answers exactly as the same lake in a folder.
#[tokio::test(flavor = "multi_thread")]
async fn serve_reads_a_lake_on_s3_as_it_reads_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let lake = make_lake(dir.path());
    let s3 = S3Server::start().await;
    let client = s3.client();
    for (key, bytes) in lake_files(&lake) {
        client.put_object().bucket(&s3.bucket).key(format!("lake/{key}")).body(bytes.into()).send().await.unwrap();
    }
    let endpoint = s3.endpoint.clone();
    let url = format!("s3://{}/lake", s3.bucket);
    let lake_path = lake.to_str().unwrap().to_owned();
    tokio::task::spawn_blocking(move || {
        let env = [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", REGION),
        ];
        let on_s3 = Serve::start(&url, "127.0.0.1:0", &env);
        assert!(on_s3.banner.starts_with(&format!("cwms serve: {url} on http://")), "{}", on_s3.banner);
        let local = Serve::start(&lake_path, "127.0.0.1:0", &[]);
        let requests = [
            ("ListMetrics", r#"{}"#.to_owned()),
            ("ListMetrics", r#"{"Namespace":"AWS/Lambda","MetricName":"Duration"}"#.to_owned()),
            (
                "GetMetricStatistics",
                r#"{"Namespace":"AWS/EC2","MetricName":"CPUUtilization","Dimensions":[],"StartTime":1768516200,
                   "EndTime":1768525200,"Period":300,"Statistics":["Sum","Average","SampleCount","Minimum","Maximum"]}"#
                    .to_owned(),
            ),
            (
                "GetMetricData",
                r#"{"StartTime":1768514400,"EndTime":1768528800,"MaxDatapoints":20,"MetricDataQueries":[
                   {"Id":"a","MetricStat":{"Metric":{"Namespace":"AWS/Lambda","MetricName":"Invocations"},"Period":3600,"Stat":"Sum"}},
                   {"Id":"b","MetricStat":{"Metric":{"Namespace":"AWS/EC2","MetricName":"NetworkIn"},"Period":60,"Stat":"Maximum"}}]}"#
                    .to_owned(),
            ),
        ];
        for (operation, body) in requests {
            let (a, b) = (on_s3.call(operation, &body), local.call(operation, &body));
            assert_eq!(a.0, 200, "{operation} {body}: {}", a.1);
            assert!(a.1.len() > 40, "{operation} {body}: an empty answer proves nothing: {}", a.1);
            assert_eq!(a, b, "{operation} {body}");
        }
        let stderr = on_s3.stop();
        assert!(!stderr.contains("panicked"), "{stderr}");
    })
    .await
    .unwrap();
}

#[test]
fn serve_says_what_is_wrong_with_its_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lake.txt");
    std::fs::write(&file, "not a lake").unwrap();
    let missing = dir.path().join("no-such-lake");
    for (args, needle) in [
        (vec!["serve"], "--lake <DIR|s3://BUCKET/PREFIX>"),
        (vec!["serve", "--lake", missing.to_str().unwrap()], "no such folder"),
        (vec!["serve", "--lake", file.to_str().unwrap()], "it is a file, not a folder"),
        (vec!["serve", "--lake", dir.path().to_str().unwrap(), "--listen", "localhost"], "invalid value 'localhost'"),
        (vec!["serve", "--lake", "gs://bucket/lake"], "only s3:// URLs and local directory paths are supported"),
    ] {
        let output = util::cwms(&args, &[]);
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(needle), "{args:?}: {needle:?} not in {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    // A port in use: the server says so and exits.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = util::cwms(&["serve", "--lake", dir.path().to_str().unwrap(), "--listen", &address], &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("cannot listen on {address} (--listen): Address already in use")), "{stderr}");
}

#[test]
fn serve_an_empty_folder_warns_and_answers_empty() {
    let dir = tempfile::tempdir().unwrap();
    // The folder `cwms run` wrote, not its lake/: the warning names the right one.
    let lake = make_lake(dir.path());
    let server = Serve::start(dir.path().join("demo").to_str().unwrap(), "127.0.0.1:0", &[]);
    let (status, body) = server.call("ListMetrics", "{}");
    assert_eq!((status, body.as_str()), (200, r#"{"Metrics":[]}"#));
    let stderr = server.stop();
    assert!(stderr.contains("holds no metrics_1m/ or metrics_1h/ objects yet, so every answer is empty"), "{stderr}");
    assert!(stderr.contains("its lake/ folder holds one: --lake"), "{stderr}");
    assert!(lake.is_dir());

    let empty = tempfile::tempdir().unwrap();
    let server = Serve::start(empty.path().to_str().unwrap(), "127.0.0.1:0", &[]);
    let (status, body) = server.call(
        "GetMetricStatistics",
        r#"{"Namespace":"AWS/EC2","MetricName":"CPUUtilization","StartTime":0,"EndTime":3600,"Period":60,"Statistics":["Sum"]}"#,
    );
    assert_eq!((status, body.as_str()), (200, r#"{"Label":"CPUUtilization","Datapoints":[]}"#));
    drop(server);
}

#[test]
fn serve_warns_loudly_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    // Bound on every interface only for as long as it takes to read its warning; no request is sent.
    let server = Serve::start(dir.path().to_str().unwrap(), "0.0.0.0:0", &[]);
    let stderr = server.stop();
    assert!(stderr.contains("WARNING: listening on 0.0.0.0:"), "{stderr}");
    assert!(stderr.contains("cwms serve checks NO credentials"), "{stderr}");

    let server = Serve::start(dir.path().to_str().unwrap(), "127.0.0.1:0", &[]);
    assert!(!server.stop().contains("WARNING"));
}

/// The Rust SDK (Smithy RPC v2 CBOR) gets the same answers as AWS JSON 1.0, whose numbers the
/// boto3 test checks against DuckDB: the same metrics, the same datapoints bit for bit.
#[tokio::test(flavor = "multi_thread")]
async fn serve_answers_the_rust_sdk_over_cbor_as_it_answers_json() {
    use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy, Statistic};

    let dir = tempfile::tempdir().unwrap();
    let lake = make_lake(dir.path());
    let server = Serve::start(lake.to_str().unwrap(), "127.0.0.1:0", &[]);
    let client = aws_sdk_cloudwatch::Client::new(&cwms_tests::servers::sdk_config(&server.endpoint));
    let json = |operation: &str, body: serde_json::Value| {
        let (status, text) = server.call(operation, &body.to_string());
        assert_eq!(status, 200, "{operation}: {text}");
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };

    // ListMetrics, every page.
    let mut listed = Vec::new();
    let mut token = None;
    loop {
        let page = client.list_metrics().set_next_token(token).send().await.unwrap();
        for m in page.metrics() {
            let dimensions: Vec<(String, String)> =
                m.dimensions().iter().map(|d| (d.name().unwrap().to_owned(), d.value().unwrap().to_owned())).collect();
            listed.push((m.namespace().unwrap().to_owned(), m.metric_name().unwrap().to_owned(), dimensions));
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let from_json: Vec<(String, String, Vec<(String, String)>)> = json("ListMetrics", serde_json::json!({}))["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let dimensions = m["Dimensions"].as_array().unwrap().iter();
            let dimensions = dimensions.map(|d| (d["Name"].as_str().unwrap().to_owned(), d["Value"].as_str().unwrap().to_owned()));
            (m["Namespace"].as_str().unwrap().to_owned(), m["MetricName"].as_str().unwrap().to_owned(), dimensions.collect())
        })
        .collect();
    assert!(listed.len() > 10);
    assert_eq!(listed, from_json);

    // GetMetricStatistics for a few metrics, every standard statistic.
    let (start, end) = (1_768_516_200, 1_768_525_200); // 22:30 to 01:00, across midnight
    for (namespace, metric, dimensions) in listed.iter().step_by(7) {
        let mut request = client
            .get_metric_statistics()
            .namespace(namespace)
            .metric_name(metric)
            .start_time(DateTime::from_secs(start))
            .end_time(DateTime::from_secs(end))
            .period(300);
        for s in [Statistic::SampleCount, Statistic::Sum, Statistic::Average, Statistic::Minimum, Statistic::Maximum] {
            request = request.statistics(s);
        }
        for (name, value) in dimensions {
            request = request.dimensions(Dimension::builder().name(name).value(value).build());
        }
        let answer = request.send().await.unwrap();
        let body = serde_json::json!({
            "Namespace": namespace, "MetricName": metric, "StartTime": start, "EndTime": end, "Period": 300,
            "Dimensions": dimensions.iter().map(|(n, v)| serde_json::json!({"Name": n, "Value": v})).collect::<Vec<_>>(),
            "Statistics": ["SampleCount", "Sum", "Average", "Minimum", "Maximum"],
        });
        let expected = json("GetMetricStatistics", body);
        let expected = expected["Datapoints"].as_array().unwrap();
        assert_eq!(answer.label(), Some(metric.as_str()));
        assert_eq!(answer.datapoints().len(), expected.len());
        assert!(!expected.is_empty());
        for (got, want) in answer.datapoints().iter().zip(expected) {
            assert_eq!(got.timestamp().unwrap().secs(), want["Timestamp"].as_i64().unwrap());
            let values = [got.sample_count(), got.sum(), got.average(), got.minimum(), got.maximum()];
            let wanted = ["SampleCount", "Sum", "Average", "Minimum", "Maximum"].map(|s| want[s].as_f64());
            assert_eq!(values, wanted, "{namespace} {metric}");
            assert_eq!(got.unit().map(|u| u.as_str()), want["Unit"].as_str());
        }
    }

    // GetMetricData in pages of 50, against one JSON answer.
    let query = |id: &str, (namespace, metric, dimensions): &(String, String, Vec<(String, String)>), period: i32, stat: &str| {
        let mut m = Metric::builder().namespace(namespace).metric_name(metric);
        for (name, value) in dimensions {
            m = m.dimensions(Dimension::builder().name(name).value(value).build());
        }
        let stat = MetricStat::builder().metric(m.build()).period(period).stat(stat).build();
        MetricDataQuery::builder().id(id).metric_stat(stat).build()
    };
    let queries = [query("a", &listed[0], 60, "Sum"), query("b", &listed[3], 600, "Average"), query("c", &listed[5], 3600, "Maximum")];
    let mut got: Vec<(String, i64, f64)> = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let mut request = client
            .get_metric_data()
            .start_time(DateTime::from_secs(1_768_514_400))
            .end_time(DateTime::from_secs(1_768_528_800))
            .scan_by(ScanBy::TimestampAscending)
            .max_datapoints(50)
            .set_next_token(token);
        for q in &queries {
            request = request.metric_data_queries(q.clone());
        }
        let page = request.send().await.unwrap();
        pages += 1;
        for r in page.metric_data_results() {
            for (t, v) in r.timestamps().iter().zip(r.values()) {
                got.push((r.id().unwrap().to_owned(), t.secs(), *v));
            }
        }
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            break;
        }
    }
    let q = |id: &str, (namespace, metric, dimensions): &(String, String, Vec<(String, String)>), period: i32, stat: &str| {
        serde_json::json!({"Id": id, "MetricStat": {"Metric": {"Namespace": namespace, "MetricName": metric,
            "Dimensions": dimensions.iter().map(|(n, v)| serde_json::json!({"Name": n, "Value": v})).collect::<Vec<_>>()},
            "Period": period, "Stat": stat}})
    };
    let whole = json(
        "GetMetricData",
        serde_json::json!({"StartTime": 1_768_514_400, "EndTime": 1_768_528_800, "ScanBy": "TimestampAscending",
            "MetricDataQueries": [q("a", &listed[0], 60, "Sum"), q("b", &listed[3], 600, "Average"), q("c", &listed[5], 3600, "Maximum")]}),
    );
    let mut want = Vec::new();
    for r in whole["MetricDataResults"].as_array().unwrap() {
        for (t, v) in r["Timestamps"].as_array().unwrap().iter().zip(r["Values"].as_array().unwrap()) {
            want.push((r["Id"].as_str().unwrap().to_owned(), t.as_i64().unwrap(), v.as_f64().unwrap()));
        }
    }
    assert!(pages > 2 && want.len() > 100, "{pages} pages, {} datapoints", want.len());
    assert_eq!(got, want);

    // Errors in the CBOR protocol's shape, with CloudWatch's codes.
    let refused = client
        .get_metric_statistics()
        .namespace("AWS/EC2")
        .metric_name("CPUUtilization")
        .start_time(DateTime::from_secs(start))
        .end_time(DateTime::from_secs(end))
        .period(90)
        .statistics(Statistic::Sum)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("InvalidParameterValue"), "{refused:?}");
    assert!(refused.message().unwrap_or_default().contains("Period 90 is not a valid period"), "{refused:?}");
    assert_eq!(refused.raw_response().map(|r| r.status().as_u16()), Some(400));
    let expression = MetricDataQuery::builder().id("e").expression("SUM(METRICS())").build();
    let refused = client
        .get_metric_data()
        .start_time(DateTime::from_secs(start))
        .end_time(DateTime::from_secs(end))
        .metric_data_queries(expression)
        .send()
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("InvalidParameterValue"), "{refused:?}");
    assert!(refused.message().unwrap_or_default().contains("not supported"), "{refused:?}");
}

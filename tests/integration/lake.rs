//! The lake the real `cwms compact` writes, read back by independent readers (DuckDB and pyarrow,
//! in tests/python/check_lake.py) and compared with a reference computed in Python from the raw
//! objects; on a folder, on S3 (s3s-fs, which checks signatures), and with Glue registration
//! (moto).

use std::path::Path;
use std::process::Output;

use aws_sdk_glue::types::{Column, DatabaseInput, SerDeInfo, StorageDescriptor, TableInput};
use cwms_tests::servers::{ACCESS_KEY, MotoServer, REGION, S3Server, SECRET_KEY, sdk_config};
use cwms_tests::util::{cwms, describe, lake_files, python};
use futures::StreamExt;

const START: &str = "2026-01-15T09:30:00Z";

/// Generates a Firehose-like raw zone (no transform: malformed records land in raw objects).
fn generate_raw(bucket: &Path, series: u32, minutes: u32, extra: &[&str]) {
    let out = bucket.to_str().unwrap();
    let (series, minutes) = (series.to_string(), minutes.to_string());
    let mut args = vec!["generate", "--format", "raw-folder", "--out", out, "--start", START, "--series", &series, "--minutes", &minutes];
    args.extend_from_slice(extra);
    let output = cwms(&args, &[]);
    assert!(output.status.success(), "generate failed: {}", describe(&output));
}

fn check_lake(raw: &Path, lake: &Path, expect_failed: usize) -> String {
    python("tests/python/check_lake.py", &[raw.to_str().unwrap(), lake.to_str().unwrap(), "--expect-failed", &expect_failed.to_string()])
}

fn check_lake_rejecting(raw: &Path, lake: &Path, expect_failed: usize, expect_rejected: u64) -> String {
    python(
        "tests/python/check_lake.py",
        &[
            raw.to_str().unwrap(),
            lake.to_str().unwrap(),
            "--expect-failed",
            &expect_failed.to_string(),
            "--expect-rejected",
            &expect_rejected.to_string(),
        ],
    )
}

#[test]
fn folder_lake_matches_the_reference_in_duckdb_and_pyarrow() {
    let dir = tempfile::tempdir().unwrap();
    generate_raw(dir.path(), 120, 90, &["--duplicates", "0.05", "--late", "0.05"]);
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    let output = cwms(&["compact", "--raw", raw.to_str().unwrap(), "--lake", lake.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("duplicates merged") && stdout.contains("metrics_1m objects"), "{stdout}");
    let summary = check_lake(&raw, &lake, 0);
    assert!(summary.contains("10800 minute rows"), "120 series x 90 minutes, each exactly once: {summary}");

    // Compacting again writes nothing and changes no byte.
    let before = lake_files(&lake);
    let again = cwms(&["compact", "--raw", raw.to_str().unwrap(), "--lake", lake.to_str().unwrap(), "--json"], &[]);
    assert!(again.status.success(), "{}", describe(&again));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!((report["objects_read"].as_u64(), report["minute_objects_written"].as_u64()), (Some(0), Some(0)), "{report}");
    assert_eq!(lake_files(&lake), before);
}

/// The hard cases, generated: re-sends with larger, smaller and equal counts (ties the merge law
/// breaks by the values, arriving before and after the original), awkward namespaces, dimension
/// names and values, metric names and units (`=`, `,`, `\`, `/`, spaces, `:`, non-ASCII), beside
/// exact duplicates, late datums and malformed records. Every column of the lake, dimension_key
/// and series_id included, must be the reference's (tests/compat/reference.py), as DuckDB and
/// pyarrow read it.
#[test]
fn resends_and_awkward_names_match_the_reference_in_every_column() {
    let dir = tempfile::tempdir().unwrap();
    let mess = ["--awkward-names", "--resends", "0.2", "--duplicates", "0.05", "--late", "0.05", "--malformed", "0.03"];
    generate_raw(dir.path(), 60, 90, &mess);
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    let output = cwms(&["compact", "--raw", raw.to_str().unwrap(), "--lake", lake.to_str().unwrap()], &[]);
    assert!(output.status.success(), "{}", describe(&output));
    let summary = check_lake(&raw, &lake, 0);
    assert!(summary.contains("5400 minute rows"), "60 series x 90 minutes, each once: {summary}");
    // The raw zone really held what the check is about: many ties, and awkward partitions.
    let ties: usize = summary.split(" of them with equal counts").next().and_then(|s| s.rsplit(' ').next()?.parse().ok()).unwrap_or(0);
    assert!(ties > 100, "{summary}");
    let folders: Vec<String> = lake_files(&lake).into_keys().filter(|k| k.starts_with("metrics_1h/")).collect();
    for escaped in ["My App%2FProd%3Av1", "Team%3DOps,EU%5CBatch", "Ünïcode ☃%2FCafé"] {
        assert!(folders.iter().any(|k| k.contains(&format!("/namespace={escaped}/"))), "no {escaped} partition: {folders:?}");
    }
}

/// Malformed lines inside raw objects (a stream without the transform, a hand-made file): the
/// good lines reach the lake, the bad ones are kept under `_cwms/rejected/` with their reasons,
/// the run exits 0 and says so; an object that does not decompress fails alone, named, and makes
/// the run exit 1.
#[test]
fn malformed_raw_lines_are_quarantined_and_the_rest_is_published() {
    let dir = tempfile::tempdir().unwrap();
    generate_raw(dir.path(), 120, 90, &["--malformed", "0.02", "--seed", "7"]);
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    let output = cwms(&["compact", "--raw", raw.to_str().unwrap(), "--lake", lake.to_str().unwrap(), "--json"], &[]);
    assert_eq!(output.status.code(), Some(0), "rejected lines are kept, not failures: {}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["objects_failed"].as_array().unwrap().is_empty(), "{report}");
    let rejected = report["lines_rejected"].as_u64().unwrap();
    assert!(rejected > 0, "{report}");
    let files = report["rejected"].as_array().unwrap();
    let mut documents = 0;
    for file in files {
        let location = file["location"].as_str().unwrap();
        assert!(location.contains("/_cwms/rejected/") && location.ends_with(".ndjson"), "{location}");
        documents += std::fs::read_to_string(location).unwrap().lines().count() as u64;
    }
    assert_eq!(documents, rejected, "one document per rejected line");
    assert!(String::from_utf8_lossy(&output.stderr).contains("rejected lines "), "{}", describe(&output));
    check_lake_rejecting(&raw, &lake, 0, rejected);

    // `cwms redrive` reads the rejected lines as it reads Firehose's error objects.
    let redrive = cwms(&["redrive", "--errors", lake.join("_cwms/rejected").to_str().unwrap(), "--stream", "s", "--dry-run"], &[]);
    assert!(redrive.status.success(), "{}", describe(&redrive));
    assert!(String::from_utf8_lossy(&redrive.stdout).contains(&format!("would send {rejected} records")), "{}", describe(&redrive));

    // An object that does not decompress fails alone.
    let broken = raw.join("broken.gz");
    std::fs::write(&broken, b"\x1f\x8b\x08\x00 not gzip").unwrap();
    let output = cwms(&["compact", "--raw", raw.to_str().unwrap(), "--lake", lake.to_str().unwrap(), "--json"], &[]);
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let failed = report["objects_failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["location"].as_str().unwrap(), broken.to_str().unwrap());
    assert!(broken.is_file(), "a bad object is left in place");
    check_lake_rejecting(&raw, &lake, 1, rejected);
}

/// The same raw zone compacted on S3 (s3s-fs) and on a folder gives byte-identical lakes.
#[tokio::test(flavor = "multi_thread")]
async fn s3_lake_is_byte_identical_to_the_folder_lake() {
    let server = S3Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    generate_raw(dir.path(), 60, 60, &["--duplicates", "0.05"]);
    // Upload the raw zone through S3 (not by copying files into the server's folder).
    let client = server.client();
    let raw = dir.path().join("raw");
    let raw_files = lake_files(&raw);
    for (key, bytes) in &raw_files {
        client.put_object().bucket(&server.bucket).key(format!("raw/{key}")).body(bytes.clone().into()).send().await.unwrap();
    }
    let endpoint = server.endpoint.clone();
    let (raw_url, lake_url) = (format!("s3://{}/raw", server.bucket), format!("s3://{}/lake", server.bucket));
    let output = tokio::task::spawn_blocking(move || {
        let env = [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", REGION),
        ];
        cwms(&["compact", "--raw", &raw_url, "--lake", &lake_url], &env)
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", describe(&output));

    let local_lake = dir.path().join("lake");
    let local = cwms(&["compact", "--raw", raw.to_str().unwrap(), "--lake", local_lake.to_str().unwrap()], &[]);
    assert!(local.status.success(), "{}", describe(&local));
    let s3_lake = server.root.join(&server.bucket).join("lake");
    let (on_s3, on_disk) = (lake_files(&s3_lake), lake_files(&local_lake));
    assert!(!on_s3.is_empty());
    assert_eq!(on_s3.keys().collect::<Vec<_>>(), on_disk.keys().collect::<Vec<_>>());
    assert!(on_s3 == on_disk, "the S3 lake and the folder lake differ in bytes");
    assert!(server.root.join(&server.bucket).join("lake/_cwms/checkpoint.json").is_file());
    check_lake(&raw, &s3_lake, 0);
}

fn glue_table(name: &str, location: &str) -> TableInput {
    let column = |n: &str, t: &str| Column::builder().name(n).r#type(t).build().unwrap();
    let columns = [
        ("account_id", "string"),
        ("region", "string"),
        ("metric_name", "string"),
        ("dimensions", "map<string,string>"),
        ("dimension_key", "string"),
        ("series_id", "bigint"),
        ("timestamp", "timestamp"),
        ("unit", "string"),
        ("min", "double"),
        ("max", "double"),
        ("sum", "double"),
        ("count", "double"),
        ("stats", "map<string,double>"),
    ];
    let descriptor = StorageDescriptor::builder()
        .set_columns(Some(columns.iter().map(|(n, t)| column(n, t)).collect()))
        .location(location)
        .input_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat")
        .output_format("org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat")
        .serde_info(SerDeInfo::builder().serialization_library("org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe").build())
        .build();
    TableInput::builder()
        .name(name)
        .table_type("EXTERNAL_TABLE")
        .storage_descriptor(descriptor)
        .partition_keys(column("dt", "string"))
        .partition_keys(column("namespace", "string"))
        .build()
        .unwrap()
}

/// With --glue-database, every new partition is registered (moto's Glue), idempotently.
#[tokio::test(flavor = "multi_thread")]
async fn partitions_are_registered_in_glue_idempotently() {
    let moto = MotoServer::start().await;
    let store = moto.s3_store("lake-bucket", "raw").await;
    let dir = tempfile::tempdir().unwrap();
    generate_raw(dir.path(), 20, 70, &["--namespaces", "AWS/EC2,AWS/Lambda"]);
    for (key, bytes) in lake_files(&dir.path().join("raw")) {
        cwms_store::ObjectStore::put(&store, &key, bytes.into(), cwms_store::PutMode::Overwrite).await.unwrap();
    }
    let glue = aws_sdk_glue::Client::new(&sdk_config(&moto.endpoint));
    glue.create_database().database_input(DatabaseInput::builder().name("cwms").build().unwrap()).send().await.unwrap();
    for table in ["metrics_1m", "metrics_1h"] {
        let input = glue_table(&format!("t_{table}"), &format!("s3://lake-bucket/lake/{table}/"));
        glue.create_table().database_name("cwms").table_input(input).send().await.unwrap();
    }
    let first = compact_with_glue(&moto.endpoint).await;
    assert!(first.status.success(), "{}\n{}", describe(&first), moto.log());
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    // 70 minutes from 09:30 fall on one day in 2 namespaces: Glue partitions are per (dt,
    // namespace), so 2 for metrics_1m and 2 for metrics_1h.
    assert_eq!(report["glue_partitions_created"].as_u64(), Some(4), "{report}");
    let partitions = glue.get_partitions().database_name("cwms").table_name("t_metrics_1m").send().await.unwrap();
    let mut values: Vec<Vec<String>> = partitions.partitions().iter().map(|p| p.values().to_vec()).collect();
    values.sort();
    assert_eq!(values, [vec!["2026-01-15".to_owned(), "AWS/EC2".to_owned()], vec!["2026-01-15".to_owned(), "AWS/Lambda".to_owned()]]);
    let location = partitions.partitions()[0].storage_descriptor().and_then(|d| d.location()).unwrap().to_owned();
    assert!(location.starts_with("s3://lake-bucket/lake/metrics_1m/dt=2026-01-15/namespace=AWS%2F"), "{location}");

    // Forgetting the checkpoint makes the compactor read everything again: the partitions
    // already exist, and registering them again is not an error.
    moto.client().delete_object().bucket("lake-bucket").key("lake/_cwms/checkpoint.json").send().await.unwrap();
    let second = compact_with_glue(&moto.endpoint).await;
    assert!(second.status.success(), "{}", describe(&second));
    let report: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(report["glue_partitions_created"].as_u64(), Some(0), "{report}");
    assert!(report["objects_read"].as_u64().unwrap() > 0);
}

/// Runs `cwms compact` from moto's S3 to moto's S3, registering partitions in moto's Glue.
async fn compact_with_glue(endpoint: &str) -> Output {
    let endpoint = endpoint.to_owned();
    tokio::task::spawn_blocking(move || {
        cwms(
            &[
                "compact",
                "--raw",
                "s3://lake-bucket/raw",
                "--lake",
                "s3://lake-bucket/lake",
                "--glue-database",
                "cwms",
                "--glue-table-prefix",
                "t_",
                "--json",
            ],
            &[("AWS_ENDPOINT_URL", &endpoint), ("AWS_ACCESS_KEY_ID", "x"), ("AWS_SECRET_ACCESS_KEY", "x"), ("AWS_REGION", REGION)],
        )
    })
    .await
    .unwrap()
}

/// More than 1,000 raw objects on S3 (one datum each): the compactor's listing follows
/// pagination and every object is read exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn compaction_lists_more_than_a_thousand_raw_objects_on_s3() {
    let server = S3Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ndjson = dir.path().join("datums.ndjson");
    let generated = cwms(
        &[
            "generate",
            "--format",
            "ndjson",
            "--series",
            "44",
            "--minutes",
            "25",
            "--start",
            START,
            "--duplicates",
            "0",
            "--late",
            "0",
            "--out",
            ndjson.to_str().unwrap(),
        ],
        &[],
    );
    assert!(generated.status.success(), "{}", describe(&generated));
    let lines: Vec<String> = std::fs::read_to_string(&ndjson).unwrap().lines().map(|l| format!("{l}\n")).collect();
    assert_eq!(lines.len(), 1100);
    // The same objects on S3 and in a folder (for the reference).
    let raw = dir.path().join("raw");
    let client = server.client();
    let uploads = lines.iter().enumerate().map(|(i, line)| {
        let key = format!("{:02}/{i:05}.json", i % 7);
        std::fs::create_dir_all(raw.join(format!("{:02}", i % 7))).unwrap();
        std::fs::write(raw.join(&key), line).unwrap();
        client.put_object().bucket(&server.bucket).key(format!("raw/{key}")).body(line.clone().into_bytes().into()).send()
    });
    let results: Vec<_> = futures::stream::iter(uploads).buffer_unordered(16).collect().await;
    assert!(results.iter().all(Result::is_ok));

    let endpoint = server.endpoint.clone();
    let bucket = server.bucket.clone();
    let output = tokio::task::spawn_blocking(move || {
        let env = [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
            ("AWS_REGION", REGION),
        ];
        cwms(&["compact", "--raw", &format!("s3://{bucket}/raw"), "--lake", &format!("s3://{bucket}/lake"), "--json"], &env)
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", describe(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (report["objects_listed"].as_u64(), report["objects_read"].as_u64(), report["datums"].as_u64()),
        (Some(1100), Some(1100), Some(1100)),
        "{report}"
    );
    let summary = check_lake(&raw, &server.root.join(&server.bucket).join("lake"), 0);
    assert!(summary.contains("1100 minute rows"), "{summary}");
}

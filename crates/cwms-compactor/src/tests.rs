use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use cwms_store::LocalStore;

use super::*;

const HOUR: i64 = 3_600_000;
const T0: i64 = 1_764_133_200_000; // 2025-11-26T05:00:00Z

/// One metric-stream line; `v` varies the values so duplicates can differ.
fn line(namespace: &str, metric: &str, instance: usize, ts: i64, count: f64, v: f64) -> String {
    format!(
        r#"{{"metric_stream_name":"s","account_id":"123456789012","region":"us-east-1","namespace":"{namespace}","metric_name":"{metric}","dimensions":{{"InstanceId":"i-{instance}"}},"timestamp":{ts},"value":{{"count":{count},"sum":{},"max":{v},"min":{},"p99":{v}}},"unit":"Percent"}}"#,
        v * count,
        v / 2.0
    ) + "\n"
}

fn gzip(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

/// A raw zone of `objects` gzip objects spread over three hours and two namespaces, with
/// duplicates across objects (one with a larger count, which must win).
fn raw_objects() -> Vec<(String, Vec<u8>)> {
    let mut objects = Vec::new();
    for o in 0..6 {
        let mut text = String::new();
        for i in 0..5 {
            for m in 0..10 {
                let ts = T0 + (o as i64 / 2) * HOUR + m * 60_000;
                text += &line("AWS/EC2", "CPUUtilization", i, ts, 1.0, (o * 100 + i * 10 + m as usize) as f64);
                text += &line("App/Perf", "ResponseTime", i, ts, 2.0, 3.5);
            }
        }
        // A re-sent datum with a larger count, and an exact duplicate.
        text += &line("AWS/EC2", "CPUUtilization", 0, T0, 5.0, 1.0);
        text += &line("App/Perf", "ResponseTime", 0, T0, 2.0, 3.5);
        objects.push((format!("2025/11/26/{:02}/stream-{o}.gz", 5 + o / 2), gzip(&text)));
    }
    objects
}

async fn write_raw(dir: &Path, objects: &[(String, Vec<u8>)]) {
    let store = LocalStore::create(dir).await.unwrap();
    for (key, bytes) in objects {
        store.put(key, Bytes::from(bytes.clone()), PutMode::Overwrite).await.unwrap();
    }
}

/// Every file under `dir` with its bytes (the checkpoint excluded).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                if !rel.starts_with("_cwms") {
                    files.insert(rel, std::fs::read(&path).unwrap());
                }
            }
        }
    }
    files
}

fn options() -> Options {
    Options { now_ms: Some(T0 + 48 * HOUR), concurrency: 3, ..Options::default() }
}

async fn run(raw: &Path, lake: &Path, options: &Options) -> Result<Report> {
    let raw_store = LocalStore::create(raw).await.unwrap();
    let lake_store = LocalStore::create(lake).await.unwrap();
    compact(&raw_store, "raw", &lake_store, options).await
}

/// The lake compacted from all objects at once, in a fresh folder.
async fn reference_lake(objects: &[(String, Vec<u8>)]) -> BTreeMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    write_raw(&dir.path().join("raw"), objects).await;
    let report = run(&dir.path().join("raw"), &dir.path().join("lake"), &options()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    snapshot(&dir.path().join("lake"))
}

#[tokio::test]
async fn compacts_into_partitioned_objects_with_the_merge_law() {
    let dir = tempfile::tempdir().unwrap();
    let objects = raw_objects();
    write_raw(&dir.path().join("raw"), &objects).await;
    let report = run(&dir.path().join("raw"), &dir.path().join("lake"), &options()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!((report.objects_read, report.datums), (6, 6 * 102));
    let lake = snapshot(&dir.path().join("lake"));
    let keys: Vec<&str> = lake.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "metrics_1h/dt=2025-11-26/namespace=AWS%2FEC2/day.parquet",
            "metrics_1h/dt=2025-11-26/namespace=App%2FPerf/day.parquet",
            "metrics_1m/dt=2025-11-26/namespace=AWS%2FEC2/05.parquet",
            "metrics_1m/dt=2025-11-26/namespace=AWS%2FEC2/06.parquet",
            "metrics_1m/dt=2025-11-26/namespace=AWS%2FEC2/07.parquet",
            "metrics_1m/dt=2025-11-26/namespace=App%2FPerf/05.parquet",
            "metrics_1m/dt=2025-11-26/namespace=App%2FPerf/06.parquet",
            "metrics_1m/dt=2025-11-26/namespace=App%2FPerf/07.parquet",
        ]
    );
    // Hour 05 of AWS/EC2: 5 instances x 10 minutes, each identity once; the re-sent datum with
    // count 5 won over the two count-1 datums of the same identity.
    let object = LakeObject::minutes("2025-11-26", "AWS/EC2", 5).unwrap();
    let partition = cwms_parquet::decode(Bytes::from(lake[&object.key()].clone()), &object, "test").unwrap();
    let rows = partition.rows();
    assert_eq!(rows.len(), 50);
    let first = rows.iter().find(|r| r.timestamp_ms == T0 && r.series.dimension_key() == "InstanceId=i-0").unwrap();
    assert_eq!(first.value.count, 5.0);
    // 6 objects x 2 extra lines, all duplicates of datums in the lake, plus the objects that
    // share an hour (two per hour) repeat each other's datums.
    assert!(report.duplicates_merged >= 12, "{report:?}");
}

#[tokio::test]
async fn compacting_again_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(&dir.path().join("raw"), &raw_objects()).await;
    run(&dir.path().join("raw"), &dir.path().join("lake"), &options()).await.unwrap();
    let before = snapshot(&dir.path().join("lake"));
    let again = run(&dir.path().join("raw"), &dir.path().join("lake"), &options()).await.unwrap();
    assert_eq!((again.objects_pending, again.minute_objects_written, again.hour_objects_written), (0, 0, 0));
    // Even forgetting the checkpoint, re-reading everything converges to the same bytes.
    std::fs::remove_file(dir.path().join("lake").join(CHECKPOINT_KEY)).unwrap();
    let reread = run(&dir.path().join("raw"), &dir.path().join("lake"), &options()).await.unwrap();
    assert_eq!((reread.objects_read, reread.minute_objects_written), (6, 0), "{reread:?}");
    assert_eq!(snapshot(&dir.path().join("lake")), before);
}

#[tokio::test]
async fn two_steps_with_late_data_give_the_same_bytes_as_one() {
    let objects = raw_objects();
    let reference = reference_lake(&objects).await;
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    // First the later hours, then the earliest (late data for an already compacted day).
    write_raw(&raw, &objects[2..]).await;
    run(&raw, &lake, &options()).await.unwrap();
    write_raw(&raw, &objects[..2]).await;
    let second = run(&raw, &lake, &options()).await.unwrap();
    assert_eq!(second.objects_read, 2);
    assert_eq!(snapshot(&lake), reference);
}

#[tokio::test]
async fn small_batches_give_the_same_bytes() {
    let objects = raw_objects();
    let reference = reference_lake(&objects).await;
    let dir = tempfile::tempdir().unwrap();
    write_raw(&dir.path().join("raw"), &objects).await;
    let options = Options { batch_bytes: 1, ..options() };
    run(&dir.path().join("raw"), &dir.path().join("lake"), &options).await.unwrap();
    assert_eq!(snapshot(&dir.path().join("lake")), reference);
}

#[tokio::test]
async fn a_small_point_budget_publishes_early_and_gives_the_same_bytes() {
    let objects = raw_objects();
    let reference = reference_lake(&objects).await;
    for max_points in [1, 60, 250] {
        let dir = tempfile::tempdir().unwrap();
        write_raw(&dir.path().join("raw"), &objects).await;
        let options = Options { max_points, concurrency: 1, ..options() };
        let report = run(&dir.path().join("raw"), &dir.path().join("lake"), &options).await.unwrap();
        assert!(report.is_success());
        // Six objects of one hour each in key order: a budget below an object's points
        // publishes after every object, so hours are written (and merged into) more than once.
        if max_points < 100 {
            assert!(report.minute_objects_written + report.minute_objects_unchanged > 6, "{max_points}: {report:?}");
        }
        assert_eq!(snapshot(&dir.path().join("lake")), reference, "max_points {max_points}");
    }
}

#[tokio::test]
async fn rollups_recompute_hours_missing_from_the_day() {
    let objects = raw_objects();
    let reference = reference_lake(&objects).await;
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    // Everything but the last object (hour 07), then the metrics_1h objects are lost.
    write_raw(&raw, &objects[..5]).await;
    run(&raw, &lake, &options()).await.unwrap();
    std::fs::remove_dir_all(lake.join("metrics_1h")).unwrap();
    // The last object touches hours 05 (its re-sent datums) and 07 only; hour 06 must come
    // back into the rollup from its metrics_1m object.
    write_raw(&raw, &objects[5..]).await;
    let report = run(&raw, &lake, &options()).await.unwrap();
    assert_eq!(report.objects_read, 1);
    assert_eq!(snapshot(&lake), reference);
}

#[tokio::test]
async fn a_crash_at_any_step_converges_on_rerun() {
    let objects = raw_objects();
    let reference = reference_lake(&objects).await;
    for point in [
        FailPoint::AfterDecode,
        FailPoint::AfterMinuteObjects(1),
        FailPoint::AfterMinuteObjects(4),
        FailPoint::BeforeRollup,
        FailPoint::BeforeCheckpoint,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
        write_raw(&raw, &objects).await;
        let crashed = run(&raw, &lake, &Options { fail_point: Some(point), ..options() }).await;
        assert!(matches!(crashed, Err(Error::Injected(p)) if p == point), "{point:?}: {crashed:?}");
        let rerun = run(&raw, &lake, &options()).await.unwrap();
        assert!(rerun.is_success());
        assert_eq!(snapshot(&lake), reference, "after a crash at {point:?}");
    }
}

#[tokio::test]
async fn a_corrupt_raw_object_is_reported_recorded_and_left_in_place() {
    let mut objects = raw_objects();
    objects.push(("2025/11/26/05/broken.gz".into(), gzip(&line("AWS/EC2", "X", 1, T0, 1.0, 1.0))[..30].to_vec()));
    objects.push(("2025/11/26/05/badline".into(), (line("AWS/EC2", "X", 1, T0, 1.0, 1.0) + "{\"namespace\":1}\n").into_bytes()));
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    write_raw(&raw, &objects).await;
    let report = run(&raw, &lake, &options()).await.unwrap();
    assert!(!report.is_success());
    let failed: Vec<(String, String)> =
        report.objects_failed.iter().map(|p| (p.location.rsplit('/').next().unwrap().to_owned(), p.reason.clone())).collect();
    assert_eq!(
        failed,
        [
            (
                "badline".to_owned(),
                "1 of 2 lines invalid; first: line 2: field `namespace`: invalid type: integer `1`, expected a string at column 14"
                    .to_owned()
            ),
            ("broken.gz".to_owned(), "invalid gzip data: incomplete deflate stream".to_owned()),
        ]
    );
    // Everything else was published, and neither bad object contributed a datum (metric X).
    assert_eq!(report.objects_read, 6);
    assert_eq!(snapshot(&lake), reference_lake(&raw_objects()).await);
    assert!(raw.join("2025/11/26/05/broken.gz").exists(), "bad raw objects are left in place");
    let again = run(&raw, &lake, &options()).await.unwrap();
    assert_eq!((again.objects_pending, again.objects_failed_earlier), (0, 2));
    assert!(again.is_success(), "known bad objects are not re-read or re-reported as new failures");
    let retry = run(&raw, &lake, &Options { retry_failed: true, ..options() }).await.unwrap();
    assert_eq!(retry.objects_failed.len(), 2);
}

#[tokio::test]
async fn a_corrupt_lake_object_stops_its_partition_and_is_not_overwritten() {
    let objects = raw_objects();
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    write_raw(&raw, &objects[..2]).await;
    run(&raw, &lake, &options()).await.unwrap();
    let victim = lake.join("metrics_1m/dt=2025-11-26/namespace=AWS%2FEC2/05.parquet");
    std::fs::write(&victim, b"PAR1 not really").unwrap();
    // Late data for the corrupt partition arrives.
    let late = vec![("2025/11/26/09/late.gz".to_owned(), gzip(&line("AWS/EC2", "CPUUtilization", 9, T0, 1.0, 1.0)))];
    write_raw(&raw, &late).await;
    let report = run(&raw, &lake, &options()).await.unwrap();
    assert!(!report.is_success());
    assert_eq!(report.partition_errors.len(), 1, "{report:?}");
    let problem = &report.partition_errors[0];
    assert!(problem.location.ends_with("metrics_1m/dt=2025-11-26/namespace=AWS%2FEC2/05.parquet"), "{problem:?}");
    assert!(problem.reason.contains("05.parquet"), "the reason names the object: {}", problem.reason);
    assert_eq!(std::fs::read(&victim).unwrap(), b"PAR1 not really");
    // The batch stays out of the checkpoint, so the late object is read again next time.
    let again = run(&raw, &lake, &options()).await.unwrap();
    assert_eq!(again.objects_pending, 1);
}

#[tokio::test]
async fn folders_collapse_once_closed() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(&dir.path().join("raw"), &raw_objects()).await;
    // `now` far in the future: every folder is closed.
    let options = Options { now_ms: Some(i64::MAX / 2), ..options() };
    run(&dir.path().join("raw"), &dir.path().join("lake"), &options).await.unwrap();
    let text = std::fs::read_to_string(dir.path().join("lake").join(CHECKPOINT_KEY)).unwrap();
    assert!(!text.contains("stream-0.gz") && text.contains("\"objects\": 2"), "{text}");
    let again = run(&dir.path().join("raw"), &dir.path().join("lake"), &options).await.unwrap();
    assert_eq!(again.objects_pending, 0);
}

#[tokio::test]
async fn a_checkpoint_for_another_raw_zone_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(&dir.path().join("raw"), &raw_objects()[..1]).await;
    run(&dir.path().join("raw"), &dir.path().join("lake"), &options()).await.unwrap();
    let raw_store = LocalStore::create(dir.path().join("raw")).await.unwrap();
    let lake_store = LocalStore::create(dir.path().join("lake")).await.unwrap();
    let err = compact(&raw_store, "other", &lake_store, &options()).await.unwrap_err();
    assert!(err.to_string().contains("the checkpoint is for raw zone \"raw\", not \"other\""), "{err}");
}

#[test]
fn batches_respect_the_byte_budget() {
    let objects: Vec<ObjectMeta> = [5u64, 5, 20, 1, 1]
        .iter()
        .enumerate()
        .map(|(i, s)| ObjectMeta { key: i.to_string(), size: *s, last_modified_ms: 0, etag: None })
        .collect();
    let refs: Vec<&ObjectMeta> = objects.iter().collect();
    let sizes: Vec<Vec<u64>> = batches(&refs, 10).iter().map(|b| b.iter().map(|o| o.size).collect()).collect();
    assert_eq!(sizes, [vec![5, 5], vec![20], vec![1, 1]]);
}

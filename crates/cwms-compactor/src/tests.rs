use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use cwms_store::{LocalStore, PutMode};

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
                if !rel.starts_with("_cwms") && !rel.starts_with(".cwms-tmp") {
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
    compact(&raw_store, &lake_store, options).await
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
    // 612 datums of 300 identities (3 hours x 2 namespaces x 5 instances x 10 minutes): each
    // object's 2 extra lines repeat datums of hour 05, and the two objects of each hour repeat
    // each other's 100 identities.
    assert_eq!(report.duplicates_merged, 6 * 102 - 300, "{report:?}");
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
        // A decoding thread waits for room after each block it merges, so the points held pass
        // the budget by at most one block per thread (see `block_bytes` in map.rs): here one
        // thread, and each object (under 30 KB of lines) is one block of 102 datums. Every budget
        // here is reached: the raw zone holds 300 points.
        assert!(
            report.peak_points > max_points && report.peak_points <= max_points + 102,
            "{max_points}: peak {} points held",
            report.peak_points
        );
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
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    write_raw(&raw, &objects).await;
    let report = run(&raw, &lake, &options()).await.unwrap();
    assert!(!report.is_success());
    let failed: Vec<(String, String)> =
        report.objects_failed.iter().map(|p| (p.location.rsplit('/').next().unwrap().to_owned(), p.reason.clone())).collect();
    assert_eq!(failed, [("broken.gz".to_owned(), "invalid gzip data: incomplete deflate stream".to_owned())]);
    // Everything else was published.
    assert_eq!(report.objects_read, 6);
    assert_eq!(snapshot(&lake), reference_lake(&raw_objects()).await);
    assert!(raw.join("2025/11/26/05/broken.gz").exists(), "bad raw objects are left in place");
    let again = run(&raw, &lake, &options()).await.unwrap();
    assert_eq!((again.objects_pending, again.objects_failed_earlier.len()), (0, 1));
    assert!(again.is_success(), "known bad objects are not re-read or re-reported as new failures");
    let retry = run(&raw, &lake, &Options { retry_failed: true, ..options() }).await.unwrap();
    assert_eq!(retry.objects_failed.len(), 1);
}

/// One bad line among good ones: the good lines reach the lake, the bad one is kept with its
/// line number and reason, byte for byte, where `cwms redrive` can send it back.
#[tokio::test]
async fn bad_lines_are_quarantined_and_good_lines_kept() {
    let mut objects = raw_objects();
    let good: String = (0..99).map(|m| line("AWS/EC2", "Quarantine", 1, T0 + m * 60_000, 1.0, 1.0)).collect();
    let bad_line = "{\"namespace\":1}";
    let mixed = format!(
        "{}{bad_line}\n{}",
        &good[..good.len() / 2 + good[good.len() / 2..].find('\n').unwrap() + 1],
        &good[good.len() / 2 + good[good.len() / 2..].find('\n').unwrap() + 1..]
    );
    objects.push(("2025/11/26/05/mixed.gz".into(), gzip(&mixed)));
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    write_raw(&raw, &objects).await;
    let report = run(&raw, &lake, &options()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!((report.objects_read, report.lines_rejected), (7, 1));
    assert_eq!(report.datums, 6 * 102 + 99);
    // The 99 good datums are in the lake.
    let object = LakeObject::minutes("2025-11-26", "AWS/EC2", 5).unwrap();
    let partition = cwms_parquet::decode(Bytes::from(std::fs::read(lake.join(object.key())).unwrap()), &object, "test").unwrap();
    assert_eq!(partition.rows().iter().filter(|r| r.series.metric_name() == "Quarantine").count(), 60);
    let hour6 = LakeObject::minutes("2025-11-26", "AWS/EC2", 6).unwrap();
    let partition = cwms_parquet::decode(Bytes::from(std::fs::read(lake.join(hour6.key())).unwrap()), &hour6, "test").unwrap();
    assert_eq!(partition.rows().iter().filter(|r| r.series.metric_name() == "Quarantine").count(), 39);
    // The bad line is kept, as Firehose would keep a failed record.
    let line_number = mixed.lines().position(|l| l == bad_line).unwrap() + 1;
    let document = std::fs::read_to_string(lake.join("_cwms/rejected/2025/11/26/05/mixed.gz.ndjson")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(document.trim_end()).unwrap();
    assert_eq!(document.lines().count(), 1);
    use base64::Engine as _;
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(doc["rawData"].as_str().unwrap()).unwrap(), bad_line.as_bytes());
    let message = doc["errorMessage"].as_str().unwrap();
    assert!(
        message.ends_with(&format!(
            "mixed.gz line {line_number}: field `namespace`: invalid type: integer `1`, expected a string at column 14"
        )),
        "{message}"
    );
    assert_eq!(report.rejected.len(), 1);
    assert!(report.rejected[0].location.ends_with("_cwms/rejected/2025/11/26/05/mixed.gz.ndjson"));
    // The object is processed: a second run reads nothing.
    assert_eq!(run(&raw, &lake, &options()).await.unwrap().objects_pending, 0);
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
    assert!(!problem.reason.contains("05.parquet"), "the reason does not repeat the location: {}", problem.reason);
    assert!(problem.reason.starts_with("not a readable parquet file"), "{}", problem.reason);
    assert!(
        problem.reason.contains("--rebuild --dt 2025-11-26 --hour 05 --namespace 'AWS/EC2'"),
        "the reason says how to rebuild it: {}",
        problem.reason
    );
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
    assert!(!text.contains("stream-0.gz") && text.contains("\"objects\": 2") && text.contains("\"names\""), "{text}");
    let again = run(&dir.path().join("raw"), &dir.path().join("lake"), &options).await.unwrap();
    assert_eq!(again.objects_pending, 0);
}

#[tokio::test]
async fn a_checkpoint_for_another_raw_zone_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(&dir.path().join("raw"), &raw_objects()[..1]).await;
    run(&dir.path().join("raw"), &dir.path().join("lake"), &options()).await.unwrap();
    // The same folder, however it is spelled, is the same raw zone.
    for spelling in [dir.path().join("raw/"), dir.path().join("raw/../raw"), dir.path().join("./raw")] {
        let again = run(&spelling, &dir.path().join("lake"), &options()).await.unwrap();
        assert_eq!(again.objects_pending, 0, "{}", spelling.display());
    }
    write_raw(&dir.path().join("other"), &raw_objects()[..1]).await;
    let err = run(&dir.path().join("other"), &dir.path().join("lake"), &options()).await.unwrap_err().to_string();
    let other = std::fs::canonicalize(dir.path().join("other")).unwrap();
    assert!(
        err.contains(&format!(
            "the checkpoint is for raw zone {:?}, not {:?}",
            std::fs::canonicalize(dir.path().join("raw")).unwrap().display().to_string(),
            other.display().to_string()
        )),
        "{err}"
    );
    assert_eq!(err.matches("the checkpoint is for").count(), 1, "said once: {err}");
}

#[test]
fn batches_respect_the_byte_budget() {
    let objects: Vec<ObjectMeta> =
        [5u64, 5, 20, 1, 1].iter().enumerate().map(|(i, s)| ObjectMeta::new(i.to_string(), *s, 0, None)).collect();
    let refs: Vec<&ObjectMeta> = objects.iter().collect();
    let sizes: Vec<Vec<u64>> = batches(&refs, 10).iter().map(|b| b.iter().map(|o| o.size).collect()).collect();
    assert_eq!(sizes, [vec![5, 5], vec![20], vec![1, 1]]);
}

/// Deleting a corrupt (or any) metrics_1m object and rerunning must not quietly leave that hour
/// with only the newest datums: the run stops the partition and says how to rebuild it, and the
/// rebuild restores everything the raw zone holds.
#[tokio::test]
async fn a_deleted_lake_object_is_noticed_and_rebuilt_from_the_raw_zone() {
    let objects = raw_objects();
    let late = vec![("2025/11/26/09/late.gz".to_owned(), gzip(&line("AWS/EC2", "CPUUtilization", 9, T0, 1.0, 1.0)))];
    let reference = reference_lake(&[objects.clone(), late.clone()].concat()).await;
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    write_raw(&raw, &objects).await;
    run(&raw, &lake, &options()).await.unwrap();
    let victim = lake.join("metrics_1m/dt=2025-11-26/namespace=AWS%2FEC2/05.parquet");
    std::fs::remove_file(&victim).unwrap();
    write_raw(&raw, &late).await;
    let report = run(&raw, &lake, &options()).await.unwrap();
    assert!(!report.is_success());
    assert_eq!(report.partition_errors.len(), 1, "{report:?}");
    let reason = &report.partition_errors[0].reason;
    assert!(reason.starts_with("the object is missing, but ") && reason.contains("has 5 rows of its hour"), "{reason}");
    assert!(reason.contains("--rebuild --dt 2025-11-26 --hour 05 --namespace 'AWS/EC2'"), "{reason}");
    assert!(!victim.exists(), "nothing half-full was written");
    // Rebuilding the hour from the raw zone gives the lake a clean run would have made.
    let rebuild = Rebuild::new(["2025-11-26".to_owned()], [5], ["AWS/EC2".to_owned()]).unwrap();
    let rebuilt = run(&raw, &lake, &Options { rebuild: Some(rebuild), ..options() }).await.unwrap();
    assert!(rebuilt.is_success(), "{rebuilt:?}");
    assert_eq!(rebuilt.minute_objects_written, 1, "only the selected partition: {rebuilt:?}");
    let after = run(&raw, &lake, &options()).await.unwrap();
    assert!(after.is_success(), "{after:?}");
    assert_eq!(snapshot(&lake), reference);
}

/// A lake that, the first time one key is read and found missing, lets another compactor run
/// over the same raw zone (without the raw objects `hidden`) to its end before answering: two
/// runs interleaved at one exact point of this run's publish.
#[derive(Debug)]
struct AnotherRunDuringGet {
    lake: LocalStore,
    raw: std::path::PathBuf,
    key: String,
    hidden: Vec<&'static str>,
    done: std::sync::atomic::AtomicBool,
}

impl ObjectStore for AnotherRunDuringGet {
    fn list<'a>(&'a self, prefix: &'a str) -> cwms_store::BoxFuture<'a, cwms_store::Result<Vec<ObjectMeta>>> {
        self.lake.list(prefix)
    }

    fn get<'a>(&'a self, key: &'a str) -> cwms_store::BoxFuture<'a, cwms_store::Result<Option<cwms_store::Object>>> {
        Box::pin(async move {
            let found = self.lake.get(key).await?;
            if key == self.key && found.is_none() && !self.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
                let aside = |key: &str| self.raw.with_file_name(format!("hidden-{}", key.replace('/', "-")));
                for key in &self.hidden {
                    std::fs::rename(self.raw.join(key), aside(key)).unwrap();
                }
                let (raw, lake) = (self.raw.clone(), self.lake.clone());
                let other = tokio::task::spawn_blocking(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                    runtime.block_on(async { compact(&LocalStore::new(raw), &lake, &options()).await })
                })
                .await
                .unwrap()
                .unwrap();
                assert!(other.is_success(), "the other run: {other:?}");
                for key in &self.hidden {
                    std::fs::rename(aside(key), self.raw.join(key)).unwrap();
                }
            }
            Ok(found)
        })
    }

    fn get_chunks<'a>(&'a self, key: &'a str) -> cwms_store::BoxFuture<'a, cwms_store::Result<Option<cwms_store::Chunks>>> {
        self.lake.get_chunks(key)
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        bytes: Bytes,
        mode: PutMode,
    ) -> cwms_store::BoxFuture<'a, cwms_store::Result<cwms_store::PutOutcome>> {
        self.lake.put(key, bytes, mode)
    }

    fn describe(&self, key: &str) -> String {
        self.lake.describe(key)
    }

    fn identity(&self) -> String {
        self.lake.identity()
    }
}

/// Another compactor creates a `metrics_1m` object, and writes its day's rollup, after this run
/// found the object missing: the rollup's rows of that hour do not mean the object was lost (the
/// guard against writing only the new datums over a deleted object), the run merges into the
/// object the other wrote, and both runs' lake is the lake of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_another_run_created_meanwhile_is_merged_into_not_reported_lost() {
    let objects = raw_objects();
    let reference = reference_lake(&objects).await;
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    write_raw(&raw, &objects).await;
    let key = LakeObject::minutes("2025-11-26", "AWS/EC2", 5).unwrap().key();
    let interleaved = AnotherRunDuringGet {
        lake: LocalStore::create(&lake).await.unwrap(),
        raw: raw.clone(),
        key,
        hidden: Vec::new(),
        done: Default::default(),
    };
    let report = compact(&LocalStore::create(&raw).await.unwrap(), &interleaved, &options()).await.unwrap();
    assert!(interleaved.done.load(std::sync::atomic::Ordering::SeqCst), "the other run ran");
    assert!(report.is_success(), "{:?}", report.partition_errors);
    assert_eq!(snapshot(&lake), reference);
    assert_eq!(run(&raw, &lake, &options()).await.unwrap().objects_pending, 0);
}

/// Another compactor, whose raw listing lacks this run's latest object, writes the `metrics_1m`
/// objects of a day between this run's reading of one and its conditional PUT: the PUT loses the
/// race, and the run reads the object again and merges into it, rather than taking the other's
/// version (without the datums only this run has) as its own or writing over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_put_race_merges_again_and_keeps_both_runs_datums() {
    let mut objects = raw_objects();
    let late: String = (0..3).map(|h| line("AWS/EC2", "CPUUtilization", 9, T0 + h * HOUR, 1.0, 7.0)).collect();
    objects.push(("2025/11/26/08/late.gz".to_owned(), gzip(&late)));
    let reference = reference_lake(&objects).await;
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    write_raw(&raw, &objects).await;
    // The day's rollup is read (and found missing) after the hour object was read and before
    // it is written: the other run goes there.
    let key = LakeObject::hourly("2025-11-26", "AWS/EC2").unwrap().key();
    let interleaved = AnotherRunDuringGet {
        lake: LocalStore::create(&lake).await.unwrap(),
        raw: raw.clone(),
        key,
        hidden: vec!["2025/11/26/08/late.gz"],
        done: Default::default(),
    };
    let report = compact(&LocalStore::create(&raw).await.unwrap(), &interleaved, &options()).await.unwrap();
    assert!(interleaved.done.load(std::sync::atomic::Ordering::SeqCst), "the other run ran");
    assert!(report.is_success(), "{:?}", report.partition_errors);
    assert_eq!(snapshot(&lake), reference);
    assert_eq!(run(&raw, &lake, &options()).await.unwrap().objects_pending, 0);
}

#[tokio::test]
async fn a_rebuild_replaces_a_corrupt_object() {
    let objects = raw_objects();
    let reference = reference_lake(&objects).await;
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    write_raw(&raw, &objects).await;
    run(&raw, &lake, &options()).await.unwrap();
    let victim = lake.join("metrics_1m/dt=2025-11-26/namespace=App%2FPerf/06.parquet");
    std::fs::write(&victim, b"PAR1 damaged").unwrap();
    let rebuild = Rebuild::new(["2025-11-26".to_owned()], [], []).unwrap();
    let rebuilt = run(&raw, &lake, &Options { rebuild: Some(rebuild), ..options() }).await.unwrap();
    assert!(rebuilt.is_success(), "{rebuilt:?}");
    assert_eq!(rebuilt.replaced_corrupt.len(), 1);
    assert!(rebuilt.replaced_corrupt[0].ends_with("App%2FPerf/06.parquet"));
    assert_eq!(snapshot(&lake), reference);
}

/// `cp -p`, `rsync -a` and `tar x` keep an old modification time: a new object in a folder the
/// checkpoint has closed must still be read, once.
#[tokio::test]
async fn a_new_object_with_an_old_time_in_a_closed_folder_is_read_once() {
    let objects = raw_objects();
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    write_raw(&raw, &objects).await;
    let later = Options { now_ms: Some(i64::MAX / 2), ..options() };
    run(&raw, &lake, &later).await.unwrap();
    assert!(std::fs::read_to_string(lake.join(CHECKPOINT_KEY)).unwrap().contains("\"names\""), "the folders are closed");
    let copied = raw.join("2025/11/26/05/copied-in.gz");
    std::fs::write(&copied, gzip(&line("AWS/EC2", "Copied", 1, T0, 1.0, 1.0))).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&copied)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
        .unwrap();
    let report = run(&raw, &lake, &later).await.unwrap();
    assert_eq!((report.objects_pending, report.objects_read, report.datums), (1, 1, 1), "{report:?}");
    let again = run(&raw, &lake, &later).await.unwrap();
    assert_eq!(again.objects_pending, 0, "remembered once read: {again:?}");
    assert_eq!(again.lag, Duration::ZERO);
}

/// CloudWatch allows 255-character namespaces; escaped, they pass the 255-byte file-name limit.
#[tokio::test]
async fn every_legal_namespace_is_writable() {
    let long = "My App/Prod:v1 ".repeat(17); // 255 characters, 315 bytes escaped
    let plain = "N".repeat(255);
    let text = line(&long, "Latency", 1, T0, 1.0, 1.0)
        + &line(&plain, "Latency", 1, T0, 1.0, 1.0)
        + &line("AWS/EC2", "CPUUtilization", 1, T0, 1.0, 1.0);
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    write_raw(&raw, &[("2025/11/26/05/long.gz".to_owned(), gzip(&text))]).await;
    let report = run(&raw, &lake, &options()).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.minute_objects_written, 3);
    for namespace in [&long, &plain] {
        let object = LakeObject::minutes("2025-11-26", namespace, 5).unwrap();
        let bytes = std::fs::read(lake.join(object.key())).unwrap();
        let partition = cwms_parquet::decode(Bytes::from(bytes), &object, "test").unwrap();
        assert_eq!(partition.len(), 1);
        assert!(lake.join(object.day().key()).is_file());
    }
    let again = run(&raw, &lake, &Options { retry_failed: true, ..options() }).await.unwrap();
    assert!(again.is_success() && again.objects_pending == 0);
}

/// What no store can read is named and skipped, and the rest of the run goes on.
#[cfg(unix)]
#[tokio::test]
async fn odd_raw_entries_fail_alone_and_by_name() {
    let objects = raw_objects();
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    write_raw(&raw, &objects).await;
    std::fs::write(raw.join("2025/11/26/05/back\\slash%2F.gz"), gzip(&line("AWS/EC2", "X", 1, T0, 1.0, 1.0))).unwrap();
    std::os::unix::fs::symlink(raw.join("nowhere.gz"), raw.join("2025/11/26/05/dangling.gz")).unwrap();
    std::os::unix::fs::symlink(&raw, raw.join("2025/11/26/loop")).unwrap();
    let report = run(&raw, &lake, &options()).await.unwrap();
    assert_eq!(report.objects_read, 6);
    let failed: Vec<(String, &str)> =
        report.objects_failed.iter().map(|p| (p.location.rsplit('/').next().unwrap().to_owned(), p.reason.as_str())).collect();
    assert_eq!(failed.len(), 3, "{failed:?}");
    assert!(failed.iter().any(|(name, why)| name == "back\\slash%2F.gz" && why.contains("backslash")), "{failed:?}");
    assert!(
        failed.iter().any(|(name, why)| name == "dangling.gz" && why.contains("dangling.gz: a symbolic link whose target cannot be read")),
        "{failed:?}"
    );
    assert!(failed.iter().any(|(name, why)| name == "loop" && why.contains("a loop")), "{failed:?}");
    assert_eq!(snapshot(&lake), reference_lake(&objects).await);
}

#[tokio::test]
async fn a_lake_inside_its_raw_zone_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_raw(&dir.path().join("raw"), &raw_objects()[..1]).await;
    for lake in [dir.path().join("raw/lake"), dir.path().join("raw")] {
        let err = run(&dir.path().join("raw"), &lake, &options()).await.unwrap_err().to_string();
        assert!(err.contains("is inside the raw zone") && err.contains("put it beside the raw zone"), "{err}");
    }
    assert!(!dir.path().join("raw/lake/metrics_1m").exists());
}

/// A gzip object beyond the cap fails alone; the cap is a setting.
#[tokio::test]
async fn the_decompression_cap_is_a_setting_and_names_the_object() {
    let text: String = (0..2000).map(|m| line("AWS/EC2", "Big", 1, T0 + (m % 60) * 60_000, 1.0, m as f64)).collect();
    let dir = tempfile::tempdir().unwrap();
    let (raw, lake) = (dir.path().join("raw"), dir.path().join("lake"));
    write_raw(&raw, &[("2025/11/26/05/big.gz".to_owned(), gzip(&text))]).await;
    let small = Options { max_decompressed_bytes: 10_000, ..options() };
    let report = run(&raw, &lake, &small).await.unwrap();
    assert_eq!(report.objects_failed.len(), 1);
    assert_eq!(report.objects_failed[0].reason, "the object decompresses to more than 10000 bytes (the decompression cap)");
    let report = run(&raw, &lake, &Options { retry_failed: true, ..options() }).await.unwrap();
    assert!(report.is_success() && report.datums == 2000, "{report:?}");
}

/// One raw object holding many hours is published as it is read: the points held stay near the
/// budget however large the object, and the lake is the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_huge_object_is_published_while_it_is_read() {
    let mut text = String::new();
    for hour in 0..8 {
        for instance in 0..400 {
            for minute in 0..10 {
                text += &line(
                    "AWS/EC2",
                    "CPUUtilization",
                    instance,
                    T0 + hour * HOUR + minute * 60_000,
                    1.0,
                    (instance + minute as usize) as f64,
                );
            }
        }
    }
    let objects = vec![("2025/11/26/13/huge.gz".to_owned(), gzip(&text))];
    let reference = reference_lake(&objects).await;
    let dir = tempfile::tempdir().unwrap();
    write_raw(&dir.path().join("raw"), &objects).await;
    let max_points = 4_000;
    let options = Options { max_points, concurrency: 2, ..options() };
    let report = run(&dir.path().join("raw"), &dir.path().join("lake"), &options).await.unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.datums, 32_000);
    // 32,000 points, never more than the budget and a block (64 bytes of lines a point) at once.
    assert!(report.peak_points > max_points / 2 && report.peak_points <= max_points + max_points / 2, "peak {} points", report.peak_points);
    assert_eq!(snapshot(&dir.path().join("lake")), reference);
}

mod otel;

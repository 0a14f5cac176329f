//! The compaction protocol (DESIGN 4.4): raw metric-stream objects into the Parquet lake.
//!
//! One run, over a raw store and a lake store:
//!
//! 1. read the checkpoint and list the raw zone; keep the objects not yet in the lake;
//! 2. in batches, fetch and decode objects in parallel ([`map_objects`]), each thread merging
//!    its datums straight into their `metrics_1m` partition (dt, namespace, hour); memory is
//!    bounded by [`Options::max_points`]: past it, the oldest hours are published early;
//! 3. merge each touched partition into its lake object and write it back with one conditional
//!    PUT, re-reading and re-merging if another writer got there first ([`publish_minutes`]);
//! 4. update the touched days' `metrics_1h` objects: the rows of the touched hours are replaced
//!    by the rollups of the `metrics_1m` objects just written ([`publish_rollups`]), so a run
//!    never re-reads the untouched hours of a day;
//! 5. register new partitions in Glue when configured;
//! 6. only then record the batch's raw objects in the checkpoint (one PUT).
//!
//! A crash anywhere leaves a valid lake: every object is replaced whole, and the next run redoes
//! unfinished work, converging to the same bytes because the merge law is idempotent,
//! commutative and associative. Raw objects are never deleted. A raw object that does not decode
//! is reported, recorded in the checkpoint and left in place; a lake object that does not decode
//! stops its partition (it is never overwritten) and keeps the batch out of the checkpoint.
//!
//! [`map_objects`] (raw objects to partitions) and [`publish_minutes`] (partitions to the lake)
//! are public so that a distributed run (e.g. a Step Functions map over raw objects, then a
//! reduce over lake partitions) can call them on separate workers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cwms_merge::{Partition, rollup_hourly};
use cwms_parquet::{LakeObject, Table, WriteOptions, partition_path};
use cwms_store::{ObjectMeta, ObjectStore, PutMode, PutOutcome};
use futures::{StreamExt, TryStreamExt};

pub mod checkpoint;
pub mod glue;
mod merged;
mod settings;

use merged::{Added, Merged};

pub use checkpoint::{CHECKPOINT_KEY, Checkpoint, CheckpointError};
pub use glue::{GlueTarget, Registered};
pub use settings::{Settings, SettingsError};

/// The default of [`Options::max_points`]: a million points, an hour of about 16,700 series.
/// The compactor benchmark (1.2 million points, 20,000 series for an hour) peaked at about
/// 650 MB with it, and at 750 to 790 MB on four times that input; an hour larger than the
/// bound is written in parts, each part after the first merged into the object again.
pub const DEFAULT_MAX_POINTS: usize = 1_000_000;

/// How often a conditional write is retried after losing a race to another writer.
const MAX_WRITE_ATTEMPTS: usize = 8;

/// What can stop a compaction run as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Store(#[from] cwms_store::Error),
    #[error("checkpoint {location}: {source} (deleting it is safe: the next run re-reads every raw object and converges to the same lake)")]
    Checkpoint {
        location: String,
        #[source]
        source: CheckpointError,
    },
    #[error("checkpoint {location}: still conflicting after {MAX_WRITE_ATTEMPTS} attempts")]
    CheckpointContention { location: String },
    #[error("glue {operation} on {table}: {message}")]
    Glue { operation: String, table: String, message: String },
    #[error("stopped at failure point {0:?} (failure injection)")]
    Injected(FailPoint),
    #[error("a worker task failed: {0}")]
    Task(String),
}

/// Crate result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Points where a run can be made to stop, for crash-safety tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    /// After decoding a batch, before writing anything.
    AfterDecode,
    /// After writing this many `metrics_1m` objects of a batch.
    AfterMinuteObjects(usize),
    /// After writing the `metrics_1m` objects, before the rollups.
    BeforeRollup,
    /// After the rollups, before the checkpoint.
    BeforeCheckpoint,
}

/// Something a run reports as it goes, for progress displays.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The raw zone was listed: objects (and their bytes) to read.
    Listed { objects: usize, bytes: u64 },
    /// One raw object was read (or failed).
    ObjectRead { bytes: u64 },
    /// Lake objects of a batch are being written.
    Publishing { objects: usize },
    /// One lake object was written (or found unchanged).
    ObjectWritten,
}

/// How a run behaves.
#[derive(Clone)]
pub struct Options {
    pub write: WriteOptions,
    /// Raw objects fetched and decoded at once.
    pub concurrency: usize,
    /// Raw bytes (as stored, usually gzip) per batch: the unit of the checkpoint.
    pub batch_bytes: u64,
    /// Points (datums after the merge) held in memory before the oldest hours are published
    /// to make room: bounds memory whatever the backlog (see [`DEFAULT_MAX_POINTS`]).
    pub max_points: usize,
    /// Cap on one raw object's decompressed size.
    pub max_decompressed_bytes: usize,
    /// Read again the raw objects recorded as undecodable.
    pub retry_failed: bool,
    /// A raw folder is considered closed (and collapsed in the checkpoint) this long after its
    /// newest object; longer than Firehose's buffering and retries.
    pub folder_grace: Duration,
    /// The current time; `None` reads the clock. Only the checkpoint's bookkeeping uses it.
    pub now_ms: Option<i64>,
    pub glue: Option<(aws_sdk_glue::Client, GlueTarget)>,
    pub fail_point: Option<FailPoint>,
    pub progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            write: WriteOptions::default(),
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()) * 2,
            batch_bytes: 256 << 20,
            max_points: DEFAULT_MAX_POINTS,
            max_decompressed_bytes: cwms_decode::DEFAULT_MAX_DECOMPRESSED_BYTES,
            retry_failed: false,
            folder_grace: Duration::from_secs(6 * 3600),
            now_ms: None,
            glue: None,
            fail_point: None,
            progress: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("write", &self.write)
            .field("concurrency", &self.concurrency)
            .field("batch_bytes", &self.batch_bytes)
            .field("max_points", &self.max_points)
            .field("retry_failed", &self.retry_failed)
            .field("glue", &self.glue.as_ref().map(|(_, t)| t))
            .field("fail_point", &self.fail_point)
            .finish_non_exhaustive()
    }
}

impl Options {
    fn report(&self, event: Progress) {
        if let Some(progress) = &self.progress {
            progress(event);
        }
    }

    fn fail_at(&self, point: FailPoint) -> Result<()> {
        if self.fail_point == Some(point) { Err(Error::Injected(point)) } else { Ok(()) }
    }
}

/// A problem with one object that did not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectProblem {
    /// Where the object is (`s3://...` or a path).
    pub location: String,
    pub reason: String,
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub objects_listed: usize,
    /// Objects not yet in the lake when the run started.
    pub objects_pending: usize,
    pub objects_read: usize,
    pub raw_bytes_read: u64,
    /// Raw objects that did not decode in this run (reported, recorded, left in place).
    pub objects_failed: Vec<ObjectProblem>,
    /// Raw objects recorded as undecodable by earlier runs and not read again.
    pub objects_failed_earlier: usize,
    pub datums: u64,
    /// Datums that arrived more than once (within the run or already in the lake) and were merged.
    pub duplicates_merged: u64,
    /// `metrics_1m` objects written (changed) and found unchanged.
    pub minute_objects_written: usize,
    pub minute_objects_unchanged: usize,
    /// `metrics_1h` objects written (changed).
    pub hour_objects_written: usize,
    pub lake_bytes_written: u64,
    /// Lake objects that could not be updated (a corrupt existing object, a lost race).
    pub partition_errors: Vec<ObjectProblem>,
    pub glue: Registered,
    /// Age of the oldest raw object still not in the lake after the run (zero when caught up).
    pub lag: Duration,
    pub elapsed: Duration,
}

impl Report {
    /// True when nothing failed: every raw object decoded and every partition was written.
    pub fn is_success(&self) -> bool {
        self.objects_failed.is_empty() && self.partition_errors.is_empty()
    }

    /// The report as a JSON object (the Lambda's response, and `cwms compact --json`).
    pub fn summary_json(&self) -> serde_json::Value {
        let problems = |list: &[ObjectProblem]| -> Vec<serde_json::Value> {
            list.iter().map(|p| serde_json::json!({"location": p.location, "reason": p.reason})).collect()
        };
        serde_json::json!({
            "objects_listed": self.objects_listed,
            "objects_pending": self.objects_pending,
            "objects_read": self.objects_read,
            "objects_failed": problems(&self.objects_failed),
            "objects_failed_earlier": self.objects_failed_earlier,
            "raw_bytes_read": self.raw_bytes_read,
            "datums": self.datums,
            "duplicates_merged": self.duplicates_merged,
            "minute_objects_written": self.minute_objects_written,
            "minute_objects_unchanged": self.minute_objects_unchanged,
            "hour_objects_written": self.hour_objects_written,
            "lake_bytes_written": self.lake_bytes_written,
            "partition_errors": problems(&self.partition_errors),
            "glue_partitions_created": self.glue.created,
            "lag_seconds": self.lag.as_secs_f64(),
            "elapsed_seconds": self.elapsed.as_secs_f64(),
        })
    }
}

/// The compactor's own numbers as one CloudWatch Embedded Metric Format document (namespace
/// `cwms`, dimension `FunctionName`); `None` is a run that stopped with an error.
pub fn emf_document(report: Option<&Report>, function_name: &str) -> String {
    let mut metrics: Vec<(&str, &str, f64)> = vec![("CompactionErrors", "Count", 1.0)];
    if let Some(r) = report {
        metrics = vec![
            ("CompactionErrors", "Count", if r.partition_errors.is_empty() { 0.0 } else { 1.0 }),
            ("ObjectsRead", "Count", r.objects_read as f64),
            ("ObjectsFailed", "Count", r.objects_failed.len() as f64),
            ("Datums", "Count", r.datums as f64),
            ("DuplicatesMerged", "Count", r.duplicates_merged as f64),
            ("LakeBytesWritten", "Bytes", r.lake_bytes_written as f64),
            ("LagSeconds", "Seconds", r.lag.as_secs_f64()),
            ("DurationMs", "Milliseconds", r.elapsed.as_secs_f64() * 1000.0),
        ];
    }
    let mut doc = serde_json::json!({
        "_aws": {
            "Timestamp": wall_clock_ms(),
            "CloudWatchMetrics": [{
                "Namespace": "cwms",
                "Dimensions": [["FunctionName"]],
                "Metrics": metrics.iter().map(|(n, u, _)| serde_json::json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
            }],
        },
        "FunctionName": function_name,
    });
    for (name, _, value) in metrics {
        doc[name] = serde_json::json!(value);
    }
    doc.to_string()
}

/// `metrics_1m` partitions built from raw objects, by lake object.
pub type Partitions = HashMap<LakeObject, Partition>;

/// The result of reading a set of raw objects.
#[derive(Debug, Default)]
pub struct Mapped {
    pub partitions: Partitions,
    /// Keys of the objects that decoded completely.
    pub decoded: Vec<String>,
    /// Keys and reasons of the objects that did not.
    pub failed: Vec<(String, String)>,
    pub datums: u64,
    pub duplicates: u64,
    pub bytes: u64,
}

/// Runs the whole protocol once. `raw_id` names the raw zone in the checkpoint (use the URL).
pub async fn compact(raw: &dyn ObjectStore, raw_id: &str, lake: &dyn ObjectStore, options: &Options) -> Result<Report> {
    let started = Instant::now();
    let now_ms = options.now_ms.unwrap_or_else(wall_clock_ms);
    let mut report = Report::default();
    let (mut checkpoint, mut checkpoint_etag) = load_checkpoint(lake, raw_id).await?;

    let listing = raw.list("").await?;
    report.objects_listed = listing.len();
    let pending: Vec<&ObjectMeta> = listing.iter().filter(|o| !checkpoint.is_processed(o, options.retry_failed)).collect();
    report.objects_pending = pending.len();
    report.objects_failed_earlier = if options.retry_failed { 0 } else { checkpoint.failed().len() };
    options.report(Progress::Listed { objects: pending.len(), bytes: pending.iter().map(|o| o.size).sum() });

    for batch in batches(&pending, options.batch_bytes) {
        let keys: Vec<&str> = batch.iter().map(|o| o.key.as_str()).collect();
        let mut published = Published::default();
        // Decoding fills the merged partitions; whenever they hold more than `max_points`,
        // the oldest hours are published (merged into their lake objects) to make room.
        // Publishing an hour twice in a batch costs a re-read, never correctness (DESIGN 4.3).
        let mapped = map_with(raw, &keys, options, async |merged: &Arc<Merged>| -> Result<()> {
            if merged.points() > options.max_points {
                let keep = options.max_points / 2;
                let merged = Arc::clone(merged);
                let oldest = tokio::task::spawn_blocking(move || merged.take_oldest(keep)).await.map_err(|e| Error::Task(e.to_string()))?;
                published.absorb(publish_minutes(lake, oldest, options).await?);
            }
            Ok(())
        })
        .await?;
        report.objects_read += mapped.decoded.len();
        report.raw_bytes_read += mapped.bytes;
        report.datums += mapped.datums;
        report.duplicates_merged += mapped.duplicates;
        for (key, reason) in &mapped.failed {
            report.objects_failed.push(ObjectProblem { location: raw.describe(key), reason: reason.clone() });
        }
        options.fail_at(FailPoint::AfterDecode)?;

        published.absorb(publish_minutes(lake, mapped.partitions, options).await?);
        report.minute_objects_written += published.written;
        report.minute_objects_unchanged += published.unchanged;
        report.lake_bytes_written += published.bytes;
        report.duplicates_merged += published.duplicates;
        let batch_clean = published.errors.is_empty();
        report.partition_errors.extend(std::mem::take(&mut published.errors));
        options.fail_at(FailPoint::BeforeRollup)?;

        let rollups = publish_rollups(lake, &published.rollups, options).await?;
        report.hour_objects_written += rollups.written;
        report.lake_bytes_written += rollups.bytes;
        let batch_clean = batch_clean && rollups.errors.is_empty();
        report.partition_errors.extend(rollups.errors);

        if let Some((client, target)) = &options.glue {
            let mut partitions = BTreeSet::new();
            for object in published.touched.iter().chain(&rollups.touched) {
                partitions.insert((object.table(), object.dt().to_owned(), object.namespace().to_owned()));
            }
            let registered = glue::register(client, target, &partitions).await?;
            report.glue.created += registered.created;
            report.glue.already_present += registered.already_present;
        }
        options.fail_at(FailPoint::BeforeCheckpoint)?;

        // A batch whose partitions did not all publish stays out of the checkpoint, so its raw
        // objects are read again next run (harmless: merging is idempotent).
        let processed: Vec<&str> = if batch_clean { mapped.decoded.iter().map(String::as_str).collect() } else { Vec::new() };
        checkpoint_etag =
            save_checkpoint(lake, raw_id, &mut checkpoint, checkpoint_etag, &processed, &mapped.failed, &listing, now_ms, options).await?;
    }

    report.lag = listing
        .iter()
        .filter(|o| !checkpoint.is_processed(o, false))
        .map(|o| now_ms.saturating_sub(o.last_modified_ms))
        .max()
        .map_or(Duration::ZERO, |ms| Duration::from_millis(ms.max(0) as u64));
    report.elapsed = started.elapsed();
    Ok(report)
}

fn wall_clock_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Splits objects into batches of at most `max_bytes` (each batch at least one object).
fn batches<'a>(objects: &[&'a ObjectMeta], max_bytes: u64) -> Vec<Vec<&'a ObjectMeta>> {
    let mut out: Vec<Vec<&ObjectMeta>> = Vec::new();
    let mut size = 0;
    for object in objects {
        if out.is_empty() || (size + object.size > max_bytes && !out.last().is_some_and(Vec::is_empty)) {
            out.push(Vec::new());
            size = 0;
        }
        size += object.size;
        out.last_mut().expect("a batch was just pushed").push(object);
    }
    out
}

async fn load_checkpoint(lake: &dyn ObjectStore, raw_id: &str) -> Result<(Checkpoint, Option<String>)> {
    match lake.get(CHECKPOINT_KEY).await? {
        None => Ok((Checkpoint::new(raw_id), None)),
        Some(object) => {
            let checkpoint = Checkpoint::from_json(&object.bytes, raw_id)
                .map_err(|source| Error::Checkpoint { location: lake.describe(CHECKPOINT_KEY), source })?;
            Ok((checkpoint, object.etag))
        }
    }
}

/// Adds a batch to the checkpoint and writes it, conditionally on the version read, merging
/// with a concurrent writer's checkpoint on conflict (both only ever add keys).
#[allow(clippy::too_many_arguments)]
async fn save_checkpoint(
    lake: &dyn ObjectStore,
    raw_id: &str,
    checkpoint: &mut Checkpoint,
    mut etag: Option<String>,
    processed: &[&str],
    failed: &[(String, String)],
    listing: &[ObjectMeta],
    now_ms: i64,
    options: &Options,
) -> Result<Option<String>> {
    let closed_before = now_ms - options.folder_grace.as_millis() as i64;
    for _ in 0..MAX_WRITE_ATTEMPTS {
        checkpoint.add_processed(processed.iter().copied());
        for (key, reason) in failed {
            checkpoint.add_failed(key, reason);
        }
        checkpoint.collapse_closed_folders(listing, closed_before);
        let mode = match &etag {
            Some(tag) => PutMode::Update(tag.clone()),
            None => PutMode::Create,
        };
        match lake.put(CHECKPOINT_KEY, Bytes::from(checkpoint.to_json()), mode).await? {
            PutOutcome::Written { etag } => return Ok(etag),
            PutOutcome::Conflict => {
                let (theirs, their_etag) = load_checkpoint(lake, raw_id).await?;
                *checkpoint = theirs;
                etag = their_etag;
            }
        }
    }
    Err(Error::CheckpointContention { location: lake.describe(CHECKPOINT_KEY) })
}

/// Fetches and decodes raw objects in parallel, grouping their datums by `metrics_1m` object.
///
/// An object counts only if every line decodes: its datums are used whole or not at all, so a
/// fixed object can be replayed later without mixing halves.
pub async fn map_objects(raw: &dyn ObjectStore, keys: &[&str], options: &Options) -> Result<Mapped> {
    map_with(raw, keys, options, async |_: &Arc<Merged>| Ok(())).await
}

/// [`map_objects`], calling `after_each` (which may take partitions out) after each object.
async fn map_with(
    raw: &dyn ObjectStore,
    keys: &[&str],
    options: &Options,
    mut after_each: impl AsyncFnMut(&Arc<Merged>) -> Result<()>,
) -> Result<Mapped> {
    let max_decompressed = options.max_decompressed_bytes;
    let merged = Arc::new(Merged::default());
    let mut results = futures::stream::iter(keys.iter().map(|&key| {
        let merged = Arc::clone(&merged);
        async move {
            let object = raw.get(key).await?;
            let Some(object) = object else {
                // Listed but gone (expired by a lifecycle rule meanwhile): nothing to read.
                return Ok::<_, Error>((key, Ok(Added::default()), 0));
            };
            let size = object.bytes.len() as u64;
            // Decoding and merging are CPU work: on the blocking pool, one object per task.
            let added = tokio::task::spawn_blocking(move || merged.add_object(&object.bytes, max_decompressed))
                .await
                .map_err(|e| Error::Task(e.to_string()))?;
            Ok((key, added, size))
        }
    }))
    .buffer_unordered(options.concurrency.max(1));

    let mut mapped = Mapped::default();
    while let Some((key, added, size)) = results.try_next().await? {
        mapped.bytes += size;
        options.report(Progress::ObjectRead { bytes: size });
        match added {
            Ok(added) => {
                mapped.datums += added.datums;
                mapped.duplicates += added.duplicates;
                mapped.decoded.push(key.to_owned());
            }
            Err(reason) => mapped.failed.push((key.to_owned(), reason)),
        }
        after_each(&merged).await?;
    }
    drop(results);
    let all = Arc::clone(&merged);
    mapped.partitions = tokio::task::spawn_blocking(move || all.take_all()).await.map_err(|e| Error::Task(e.to_string()))?;
    mapped.decoded.sort();
    mapped.failed.sort();
    Ok(mapped)
}

/// The hourly rollup of one `metrics_1m` object as it was written, for its day's `metrics_1h`.
#[derive(Debug, Clone)]
pub struct HourRollup {
    /// One row per series (see [`cwms_merge::rollup_hourly`]).
    pub rows: Partition,
    /// The version of the `metrics_1m` object the rollup was computed from, when the store
    /// reports one: if the object has changed since (another compactor), the rollup is
    /// recomputed from the object.
    pub etag: Option<String>,
}

/// What publishing a set of lake objects did.
#[derive(Debug, Default)]
pub struct Published {
    pub written: usize,
    pub unchanged: usize,
    pub bytes: u64,
    pub duplicates: u64,
    /// Every object that now holds the new datums (written or already holding them).
    pub touched: Vec<LakeObject>,
    pub errors: Vec<ObjectProblem>,
    /// For each `metrics_1m` object published, its hourly rollup (the latest, when an object
    /// was published more than once): what [`publish_rollups`] needs.
    pub rollups: BTreeMap<LakeObject, HourRollup>,
}

impl Published {
    fn absorb(&mut self, other: Published) {
        self.written += other.written;
        self.unchanged += other.unchanged;
        self.bytes += other.bytes;
        self.duplicates += other.duplicates;
        self.touched.extend(other.touched);
        self.touched.sort();
        self.touched.dedup();
        self.errors.extend(other.errors);
        self.rollups.extend(other.rollups);
    }
}

/// Merges each partition into its `metrics_1m` lake object and writes the result.
pub async fn publish_minutes(lake: &dyn ObjectStore, partitions: Partitions, options: &Options) -> Result<Published> {
    let mut work: Vec<(LakeObject, Partition)> = partitions.into_iter().collect();
    work.sort_by(|a, b| a.0.cmp(&b.0));
    options.report(Progress::Publishing { objects: work.len() });
    // One object per core: each holds its rows, Arrow arrays and Parquet pages while encoding.
    let mut results = futures::stream::iter(work.into_iter().map(|(object, partition)| async move {
        let outcome = merge_and_write(lake, &object, partition, options).await;
        (object, outcome)
    }))
    .buffer_unordered(encoders(options));
    let mut published = Published::default();
    let mut written_so_far = 0;
    while let Some((object, outcome)) = results.next().await {
        options.report(Progress::ObjectWritten);
        match outcome {
            Ok(write) => {
                published.duplicates += write.duplicates;
                if let Some(bytes) = write.bytes_written {
                    published.written += 1;
                    published.bytes += bytes;
                    written_so_far += 1;
                    if options.fail_point == Some(FailPoint::AfterMinuteObjects(written_so_far)) {
                        return Err(Error::Injected(FailPoint::AfterMinuteObjects(written_so_far)));
                    }
                } else {
                    published.unchanged += 1;
                }
                if let Some(rows) = write.rollup {
                    published.rollups.insert(object.clone(), HourRollup { rows, etag: write.etag });
                }
                published.touched.push(object);
            }
            Err(WriteError::Fatal(e)) => return Err(e),
            Err(WriteError::Object(reason)) => published.errors.push(ObjectProblem { location: lake.describe(&object.key()), reason }),
        }
    }
    published.touched.sort();
    Ok(published)
}

/// Lake objects encoded at once: one per core, and no more than the concurrency asked for.
fn encoders(options: &Options) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    options.concurrency.clamp(1, cores)
}

/// Recomputes the `metrics_1h` object of each day that has an hour in `rollups`.
///
/// The day's object is read, the rows of the hours in `rollups` are replaced by their new
/// rollups, and any other hour that has a `metrics_1m` object but no rows yet (a first run, or
/// a `metrics_1h` object deleted by hand) is rolled up from its object; then the day is written
/// back, conditionally. Only the touched hours are recomputed, so a run's cost does not grow
/// with the number of hours already in the day.
pub async fn publish_rollups(lake: &dyn ObjectStore, rollups: &BTreeMap<LakeObject, HourRollup>, options: &Options) -> Result<Published> {
    let mut days: BTreeMap<LakeObject, Vec<(&LakeObject, &HourRollup)>> = BTreeMap::new();
    for (object, rollup) in rollups {
        days.entry(object.day()).or_default().push((object, rollup));
    }
    let mut results = futures::stream::iter(days.into_iter().map(|(day, hours)| async move {
        let outcome = write_day(lake, &day, &hours, options).await;
        (day, outcome)
    }))
    .buffer_unordered(encoders(options));
    let mut published = Published::default();
    while let Some((day, outcome)) = results.next().await {
        match outcome {
            Ok(write) => {
                if let Some(bytes) = write.bytes_written {
                    published.written += 1;
                    published.bytes += bytes;
                } else {
                    published.unchanged += 1;
                }
                published.touched.push(day);
            }
            Err(WriteError::Fatal(e)) => return Err(e),
            Err(WriteError::Object(reason)) => published.errors.push(ObjectProblem { location: lake.describe(&day.key()), reason }),
        }
    }
    published.touched.sort();
    Ok(published)
}

enum WriteError {
    /// The store itself failed: stop the run.
    Fatal(Error),
    /// This object cannot be updated (corrupt existing object, endless conflicts): report it.
    Object(String),
}

impl From<cwms_store::Error> for WriteError {
    fn from(e: cwms_store::Error) -> Self {
        WriteError::Fatal(e.into())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, WriteError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| WriteError::Fatal(Error::Task(e.to_string())))
}

struct Write {
    /// Bytes written, or `None` when the object already held exactly this content.
    bytes_written: Option<u64>,
    duplicates: u64,
    /// The object's version after the write.
    etag: Option<String>,
    /// The hourly rollup of what was written (`metrics_1m` only).
    rollup: Option<Partition>,
}

/// Merges `incoming` into a `metrics_1m` object and writes it back, conditional on the version
/// read, re-reading and re-merging when another writer got there first.
async fn merge_and_write(lake: &dyn ObjectStore, object: &LakeObject, incoming: Partition, options: &Options) -> Result<Write, WriteError> {
    let key = object.key();
    let incoming = Arc::new(incoming);
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let existing = lake.get(&key).await?;
        let existing_bytes = existing.as_ref().map(|o| o.bytes.clone());
        let (object_c, incoming_c, write) = (object.clone(), Arc::clone(&incoming), options.write.clone());
        let location = lake.describe(&key);
        let (bytes, duplicates, rollup) = blocking(move || -> Result<(Bytes, u64, Partition), String> {
            let decoded;
            let (merged, duplicates) = match existing_bytes {
                // A corrupt lake object stops here, with an error naming it; it is never overwritten.
                Some(bytes) => {
                    decoded = {
                        let mut merged = cwms_parquet::decode(bytes, &object_c, &location).map_err(|e| e.to_string())?;
                        let duplicates = merged.merge(&incoming_c).duplicates() as u64;
                        (merged, duplicates)
                    };
                    (&decoded.0, decoded.1)
                }
                // Nothing to merge with: the incoming partition is the content.
                None => (&*incoming_c, 0),
            };
            let bytes = cwms_parquet::encode(merged, &object_c, &write).map_err(|e| e.to_string())?;
            Ok((bytes, duplicates, rollup_hourly(merged)))
        })
        .await?
        .map_err(WriteError::Object)?;
        match put_if_changed(lake, &key, existing.as_ref(), bytes).await? {
            Some((bytes_written, etag)) => return Ok(Write { bytes_written, duplicates, etag, rollup: Some(rollup) }),
            None => continue,
        }
    }
    Err(WriteError::Object(format!("another writer kept changing the object; gave up after {MAX_WRITE_ATTEMPTS} attempts")))
}

/// Writes the `metrics_1h` object of `day` with the new rollups of `hours` (see [`publish_rollups`]).
async fn write_day(
    lake: &dyn ObjectStore,
    day: &LakeObject,
    hours: &[(&LakeObject, &HourRollup)],
    options: &Options,
) -> Result<Write, WriteError> {
    let key = day.key();
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let existing = lake.get(&key).await?;
        let mut rows = match &existing {
            Some(found) => {
                let (bytes, day_c, location) = (found.bytes.clone(), day.clone(), lake.describe(&key));
                blocking(move || cwms_parquet::decode(bytes, &day_c, &location).map_err(|e| e.to_string()))
                    .await?
                    .map_err(WriteError::Object)?
            }
            None => Partition::new(),
        };
        let present = rows.timestamps();
        // The hours to take from this run, unless their object changed since it was written.
        let listing = lake.list(&partition_path(Table::Metrics1m, day.dt(), day.namespace())).await?;
        let mut fresh: Vec<&Partition> = Vec::new();
        let mut from_lake: Vec<LakeObject> = Vec::new();
        let listed: Vec<(LakeObject, &ObjectMeta)> =
            listing.iter().filter_map(|meta| Some((LakeObject::parse(&meta.key).ok()?, meta))).collect();
        for (object, rollup) in hours {
            match listed.iter().find(|(o, _)| o == *object) {
                Some((_, meta)) if meta.etag.is_some() && meta.etag != rollup.etag => from_lake.push((*object).clone()),
                _ => fresh.push(&rollup.rows),
            }
        }
        for (object, _) in &listed {
            if !hours.iter().any(|(o, _)| *o == object) && !present.contains(&object.time_range_ms().start) {
                from_lake.push(object.clone());
            }
        }
        let replaced: Vec<i64> =
            hours.iter().map(|(o, _)| o.time_range_ms().start).chain(from_lake.iter().map(|o| o.time_range_ms().start)).collect();
        rows.retain_timestamps(|ts| !replaced.contains(&ts));
        for partition in fresh {
            rows.merge(partition);
        }
        for object in from_lake {
            let key = object.key();
            let Some(found) = lake.get(&key).await? else { continue };
            let location = lake.describe(&key);
            let rollup = blocking(move || {
                cwms_parquet::decode(found.bytes, &object, &location).map(|p| rollup_hourly(&p)).map_err(|e| e.to_string())
            })
            .await?
            .map_err(WriteError::Object)?;
            rows.merge(&rollup);
        }
        let (day_c, write) = (day.clone(), options.write.clone());
        let bytes =
            blocking(move || cwms_parquet::encode(&rows, &day_c, &write).map_err(|e| e.to_string())).await?.map_err(WriteError::Object)?;
        if let Some((bytes_written, etag)) = put_if_changed(lake, &key, existing.as_ref(), bytes).await? {
            return Ok(Write { bytes_written, duplicates: 0, etag, rollup: None });
        }
    }
    Err(WriteError::Object(format!("another writer kept changing the object; gave up after {MAX_WRITE_ATTEMPTS} attempts")))
}

/// Writes `bytes` over `existing` (conditionally on its version when the store reports one).
/// `Some((None, etag))` when the object already held these bytes, `Some((Some(size), etag))`
/// when written, `None` when another writer changed the object first.
async fn put_if_changed(
    lake: &dyn ObjectStore,
    key: &str,
    existing: Option<&cwms_store::Object>,
    bytes: Bytes,
) -> Result<Option<(Option<u64>, Option<String>)>, WriteError> {
    if let Some(found) = existing.filter(|o| o.bytes == bytes) {
        return Ok(Some((None, found.etag.clone())));
    }
    let mode = match existing {
        Some(found) => match &found.etag {
            Some(tag) => PutMode::Update(tag.clone()),
            None => PutMode::Overwrite,
        },
        None => PutMode::Create,
    };
    let size = bytes.len() as u64;
    match lake.put(key, bytes, mode).await? {
        PutOutcome::Written { etag } => Ok(Some((Some(size), etag))),
        PutOutcome::Conflict => Ok(None),
    }
}

/// Lists the lake's objects by table, for summaries (`(objects, bytes)` per table).
pub async fn lake_summary(lake: &dyn ObjectStore) -> Result<BTreeMap<Table, (usize, u64)>> {
    let mut summary = BTreeMap::new();
    for table in [Table::Metrics1m, Table::Metrics1h] {
        let objects = lake.list(&format!("{}/", table.name())).await?;
        let entry = summary.entry(table).or_insert((0, 0));
        for object in objects.iter().filter(|o| o.key.ends_with(".parquet")) {
            entry.0 += 1;
            entry.1 += object.size;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests;

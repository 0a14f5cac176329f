//! The compaction protocol (DESIGN 4.4): raw metric-stream objects into the Parquet lake.
//!
//! One run, over a raw store and a lake store:
//!
//! 1. read the checkpoint and list the raw zone; keep the objects not yet in the lake;
//! 2. in batches of bounded size, fetch and decode objects in parallel ([`map_objects`]), each
//!    datum going to its `metrics_1m` partition (dt, namespace, hour);
//! 3. merge each touched partition into its lake object and write it back with one conditional
//!    PUT, re-reading and re-merging if another writer got there first ([`publish_minutes`]);
//! 4. recompute the touched days' `metrics_1h` objects from their `metrics_1m` objects;
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
use cwms_decode::{decode_lines, decompress};
use cwms_merge::{Partition, rollup_hourly};
use cwms_parquet::{LakeObject, Table, WriteOptions, partition_path};
use cwms_store::{ObjectMeta, ObjectStore, PutMode, PutOutcome};
use futures::{StreamExt, TryStreamExt};

pub mod checkpoint;
pub mod glue;
mod settings;

pub use checkpoint::{CHECKPOINT_KEY, Checkpoint, CheckpointError};
pub use glue::{GlueTarget, Registered};
pub use settings::{Settings, SettingsError};

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
    /// Raw bytes (as stored, usually gzip) per batch: bounds memory whatever the backlog.
    pub batch_bytes: u64,
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
        let mapped = map_objects(raw, &keys, options).await?;
        report.objects_read += mapped.decoded.len();
        report.raw_bytes_read += mapped.bytes;
        report.datums += mapped.datums;
        report.duplicates_merged += mapped.duplicates;
        for (key, reason) in &mapped.failed {
            report.objects_failed.push(ObjectProblem { location: raw.describe(key), reason: reason.clone() });
        }
        options.fail_at(FailPoint::AfterDecode)?;

        let published = publish_minutes(lake, mapped.partitions, options).await?;
        report.minute_objects_written += published.written;
        report.minute_objects_unchanged += published.unchanged;
        report.lake_bytes_written += published.bytes;
        report.duplicates_merged += published.duplicates;
        let batch_clean = published.errors.is_empty();
        report.partition_errors.extend(published.errors);
        options.fail_at(FailPoint::BeforeRollup)?;

        let days: BTreeSet<LakeObject> = published.touched.iter().map(LakeObject::day).collect();
        let rollups = publish_rollups(lake, &days, options).await?;
        report.hour_objects_written += rollups.written;
        report.lake_bytes_written += rollups.bytes;
        let batch_clean = batch_clean && rollups.errors.is_empty();
        report.partition_errors.extend(rollups.errors);

        if let Some((client, target)) = &options.glue {
            let mut partitions = BTreeSet::new();
            for object in published.touched.iter().chain(&days) {
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
        checkpoint_etag = save_checkpoint(lake, raw_id, &mut checkpoint, checkpoint_etag, &processed, &mapped.failed, &listing, now_ms, options).await?;
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
    let max_decompressed = options.max_decompressed_bytes;
    let mut results = futures::stream::iter(keys.iter().map(|&key| async move {
        let object = raw.get(key).await?;
        let Some(object) = object else {
            // Listed but gone (expired by a lifecycle rule meanwhile): nothing to read.
            return Ok::<_, Error>((key, Ok((Partitions::new(), 0, 0)), 0));
        };
        let size = object.bytes.len() as u64;
        let decoded = tokio::task::spawn_blocking(move || decode_object(&object.bytes, max_decompressed))
            .await
            .map_err(|e| Error::Task(e.to_string()))?;
        Ok((key, decoded, size))
    }))
    .buffer_unordered(options.concurrency.max(1));

    let mut mapped = Mapped::default();
    while let Some((key, decoded, size)) = results.try_next().await? {
        mapped.bytes += size;
        options.report(Progress::ObjectRead { bytes: size });
        match decoded {
            Ok((partitions, datums, duplicates)) => {
                mapped.datums += datums;
                mapped.duplicates += duplicates;
                for (object, partition) in partitions {
                    match mapped.partitions.get_mut(&object) {
                        Some(existing) => mapped.duplicates += existing.merge(&partition).duplicates() as u64,
                        None => {
                            mapped.partitions.insert(object, partition);
                        }
                    }
                }
                mapped.decoded.push(key.to_owned());
            }
            Err(reason) => mapped.failed.push((key.to_owned(), reason)),
        }
    }
    mapped.decoded.sort();
    mapped.failed.sort();
    Ok(mapped)
}

/// Decodes one raw object into partitions: `(partitions, datums, duplicates)` or why not.
fn decode_object(bytes: &[u8], max_decompressed: usize) -> Result<(Partitions, u64, u64), String> {
    let plain = decompress(bytes, max_decompressed).map_err(|e| e.to_string())?;
    let decoded = decode_lines(&plain);
    if let Some(first) = decoded.errors.first() {
        let lines = decoded.errors.len() + decoded.datums.len();
        return Err(format!("{} of {lines} lines invalid; first: {first}", decoded.errors.len()));
    }
    let mut partitions = Partitions::new();
    let mut duplicates = 0u64;
    let mut current: Option<(String, i64, LakeObject)> = None;
    for datum in &decoded.datums {
        // Consecutive datums nearly always share a namespace and hour: reuse the key.
        let hour_start = datum.timestamp_ms - datum.timestamp_ms.rem_euclid(3_600_000);
        let object = match &current {
            Some((ns, hour, object)) if *ns == datum.namespace && *hour == hour_start => object.clone(),
            _ => {
                let object = LakeObject::minutes_at(&datum.namespace, datum.timestamp_ms).map_err(|e| e.to_string())?;
                current = Some((datum.namespace.to_string(), hour_start, object.clone()));
                object
            }
        };
        let outcome = partitions.entry(object).or_default().insert(datum);
        if !matches!(outcome, cwms_merge::Outcome::Inserted) {
            duplicates += 1;
        }
    }
    Ok((partitions, decoded.datums.len() as u64, duplicates))
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
}

/// Merges each partition into its `metrics_1m` lake object and writes the result.
pub async fn publish_minutes(lake: &dyn ObjectStore, partitions: Partitions, options: &Options) -> Result<Published> {
    let mut work: Vec<(LakeObject, Partition)> = partitions.into_iter().collect();
    work.sort_by(|a, b| a.0.cmp(&b.0));
    options.report(Progress::Publishing { objects: work.len() });
    let mut results = futures::stream::iter(work.into_iter().map(|(object, partition)| async move {
        let outcome = merge_and_write(lake, &object, Some(partition), None, options).await;
        (object, outcome)
    }))
    .buffer_unordered(options.concurrency.max(1));
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
                published.touched.push(object);
            }
            Err(WriteError::Fatal(e)) => return Err(e),
            Err(WriteError::Object(reason)) => published.errors.push(ObjectProblem { location: lake.describe(&object.key()), reason }),
        }
    }
    published.touched.sort();
    Ok(published)
}

/// Recomputes the `metrics_1h` object of each day from that day's `metrics_1m` objects.
async fn publish_rollups(lake: &dyn ObjectStore, days: &BTreeSet<LakeObject>, options: &Options) -> Result<Published> {
    let mut results = futures::stream::iter(days.iter().map(|day| async move {
        let outcome = async {
            let prefix = partition_path(Table::Metrics1m, day.dt(), day.namespace());
            let mut minutes = Partition::new();
            for meta in lake.list(&prefix).await.map_err(|e| WriteError::Fatal(e.into()))? {
                let Ok(object) = LakeObject::parse(&meta.key) else { continue };
                let Some(found) = lake.get(&meta.key).await.map_err(|e| WriteError::Fatal(e.into()))? else { continue };
                let location = lake.describe(&meta.key);
                let partition = blocking(move || cwms_parquet::decode(found.bytes, &object, &location).map_err(|e| e.to_string()))
                    .await?
                    .map_err(WriteError::Object)?;
                minutes.merge(&partition);
            }
            let rollup = blocking(move || rollup_hourly(&minutes)).await?;
            merge_and_write(lake, day, None, Some(rollup), options).await
        }
        .await;
        (day, outcome)
    }))
    .buffer_unordered(options.concurrency.max(1));
    let mut published = Published::default();
    while let Some((day, outcome)) = results.next().await {
        match outcome {
            Ok(write) => {
                if let Some(bytes) = write.bytes_written {
                    published.written += 1;
                    published.bytes += bytes;
                }
                published.touched.push(day.clone());
            }
            Err(WriteError::Fatal(e)) => return Err(e),
            Err(WriteError::Object(reason)) => published.errors.push(ObjectProblem { location: lake.describe(&day.key()), reason }),
        }
    }
    Ok(published)
}

enum WriteError {
    /// The store itself failed: stop the run.
    Fatal(Error),
    /// This object cannot be updated (corrupt existing object, endless conflicts): report it.
    Object(String),
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, WriteError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| WriteError::Fatal(Error::Task(e.to_string())))
}

struct Write {
    /// Bytes written, or `None` when the object already held exactly this content.
    bytes_written: Option<u64>,
    duplicates: u64,
}

/// Writes one lake object: `merge_with` is merged into what the object holds (metrics_1m);
/// `replace_with` replaces it (metrics_1h, recomputed whole). Conditional on the version read,
/// re-reading and re-merging when another writer got there first.
async fn merge_and_write(
    lake: &dyn ObjectStore,
    object: &LakeObject,
    merge_with: Option<Partition>,
    replace_with: Option<Partition>,
    options: &Options,
) -> Result<Write, WriteError> {
    let key = object.key();
    let incoming = Arc::new(merge_with);
    let replacement = Arc::new(replace_with);
    for _ in 0..MAX_WRITE_ATTEMPTS {
        let existing = lake.get(&key).await.map_err(|e| WriteError::Fatal(e.into()))?;
        let etag = existing.as_ref().and_then(|o| o.etag.clone());
        let existing_bytes = existing.as_ref().map(|o| o.bytes.clone());
        let (object_c, incoming_c, replacement_c, write) = (object.clone(), incoming.clone(), replacement.clone(), options.write.clone());
        let location = lake.describe(&key);
        let encoded = blocking(move || -> Result<(Bytes, u64), String> {
            let mut duplicates = 0;
            let merged = match (&*replacement_c, &*incoming_c) {
                (Some(replacement), _) => replacement.clone(),
                (None, Some(incoming)) => {
                    let mut merged = match &existing_bytes {
                        // A corrupt lake object stops here, with an error naming it; it is never overwritten.
                        Some(bytes) => cwms_parquet::decode(bytes.clone(), &object_c, &location).map_err(|e| e.to_string())?,
                        None => Partition::new(),
                    };
                    duplicates = merged.merge(incoming).duplicates() as u64;
                    merged
                }
                (None, None) => Partition::new(),
            };
            let bytes = cwms_parquet::encode(&merged, &object_c, &write).map_err(|e| e.to_string())?;
            Ok((bytes, duplicates))
        })
        .await?
        .map_err(WriteError::Object)?;
        let (bytes, duplicates) = encoded;
        if existing.as_ref().is_some_and(|o| o.bytes == bytes) {
            return Ok(Write { bytes_written: None, duplicates });
        }
        let mode = match etag {
            Some(tag) => PutMode::Update(tag),
            None if existing.is_some() => PutMode::Overwrite,
            None => PutMode::Create,
        };
        let size = bytes.len() as u64;
        match lake.put(&key, bytes, mode).await.map_err(|e| WriteError::Fatal(e.into()))? {
            PutOutcome::Written { .. } => return Ok(Write { bytes_written: Some(size), duplicates }),
            PutOutcome::Conflict => continue,
        }
    }
    Err(WriteError::Object(format!("another writer kept changing the object; gave up after {MAX_WRITE_ATTEMPTS} attempts")))
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

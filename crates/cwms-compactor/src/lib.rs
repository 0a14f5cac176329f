//! The compaction protocol (DESIGN 4.4): raw metric-stream objects into the Parquet lake.
//!
//! One run, over a raw store and a lake store:
//!
//! 1. read the checkpoint and list the raw zone; keep the objects not yet in the lake;
//! 2. in batches, stream and decode objects in parallel ([`map_objects`]), each thread merging
//!    its datums straight into their `metrics_1m` partition (dt, namespace, hour); the lines
//!    that are not datums are kept under `_cwms/rejected/` ([`quarantine`]); memory is bounded
//!    by [`Options::max_points`]: past it, the oldest hours are published early;
//! 3. merge each touched partition into its lake object and write it back with one conditional
//!    PUT, re-reading and re-merging if another writer got there first ([`publish_minutes`]);
//! 4. update the touched days' `metrics_1h` objects: the rows of the touched hours are replaced
//!    by the rollups of the `metrics_1m` objects just written ([`publish_rollups`]), so a run
//!    never re-reads the untouched hours of a day (when hours are published early, their
//!    rollups are also published early once they pass a quarter of the budget);
//! 5. register new partitions in Glue when configured;
//! 6. only then record the batch's raw objects in the checkpoint (one PUT).
//!
//! A crash anywhere leaves a valid lake: every object is replaced whole, and the next run redoes
//! unfinished work, converging to the same bytes because the merge law is idempotent,
//! commutative and associative. Raw objects are never deleted. A raw object that cannot be read
//! as lines is reported, recorded in the checkpoint and left in place; a lake object that does
//! not decode, or is missing while its day's rollup shows it existed, stops its partition (it is
//! never overwritten) and keeps the batch out of the checkpoint, until a [`Rebuild`] restores it
//! from the raw zone.
//!
//! [`map_objects`] (raw objects to partitions) and [`publish_minutes`] (partitions to the lake)
//! are public so that a distributed run (e.g. a Step Functions map over raw objects, then a
//! reduce over lake partitions) can call them on separate workers.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cwms_merge::Partition;
use cwms_parquet::{LakeObject, Table, WriteOptions};
use cwms_store::{ObjectMeta, ObjectStore};

pub mod allocator;
pub mod checkpoint;
#[cfg(feature = "glue")]
pub mod glue;
mod map;
mod merged;
mod publish;
pub mod quarantine;
mod rebuild;
mod report;
mod settings;
mod stored;

use merged::Merged;
use stored::StoredCheckpoint;

pub use checkpoint::{CHECKPOINT_KEY, Checkpoint, CheckpointError};
#[cfg(feature = "glue")]
pub use glue::GlueTarget;
pub use map::{Mapped, map_objects};
pub use publish::{HourRollup, Published, publish_minutes, publish_rollups};
pub use rebuild::{Rebuild, SelectionError, arrival_hour_ms};
pub use report::Registered;
pub use report::{NAMESPACE, ObjectProblem, Report, emf_document, metrics};
pub use settings::{Settings, SettingsError};

/// The default of [`Options::max_points`]: a million points, an hour of about 16,700 series.
/// See `benches/README.md` (compactor memory) for the peak memory it gives.
pub const DEFAULT_MAX_POINTS: usize = 1_000_000;

/// The default cap on one raw object's decompressed size. Objects are streamed, so the cap
/// bounds the time a gzip bomb can take, not memory: 16 GiB passes any honest object (a 205 MB
/// backfill object of 2.8 GB of NDJSON), and a bomb of more stops after about a minute.
pub const DEFAULT_MAX_DECOMPRESSED_BYTES: u64 = 16 << 30;

/// How often a conditional write is retried after losing a race to another writer.
const MAX_WRITE_ATTEMPTS: usize = 8;

/// What can stop a compaction run as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Store(#[from] cwms_store::Error),
    #[error("checkpoint {location}: {reason} (deleting it is safe: the next run re-reads every raw object and converges to the same lake)")]
    Checkpoint { location: String, reason: String },
    #[error("the lake {lake} is inside the raw zone {raw}: its own files would be read as raw objects; put it beside the raw zone")]
    LakeInsideRaw { lake: String, raw: String },
    #[error(
        "the rebuild found no datum of the selected partitions ({selection}) in the raw zone {raw}: check the day, hours and namespaces (nothing was changed)"
    )]
    NothingToRebuild { selection: String, raw: String },
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
    /// Cap on one raw object's decompressed size (see [`DEFAULT_MAX_DECOMPRESSED_BYTES`]).
    pub max_decompressed_bytes: u64,
    /// Rebuild these partitions from the raw zone instead of compacting what is new.
    pub rebuild: Option<Rebuild>,
    /// Read again the raw objects recorded as undecodable.
    pub retry_failed: bool,
    /// A raw folder is considered closed (and collapsed in the checkpoint) this long after its
    /// newest object; longer than Firehose's buffering and retries.
    pub folder_grace: Duration,
    /// The current time; `None` reads the clock. Only the checkpoint's bookkeeping uses it.
    pub now_ms: Option<i64>,
    /// Where to register partitions (a Glue client and target), when configured.
    #[cfg(feature = "glue")]
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
            max_decompressed_bytes: DEFAULT_MAX_DECOMPRESSED_BYTES,
            rebuild: None,
            retry_failed: false,
            folder_grace: Duration::from_secs(6 * 3600),
            now_ms: None,
            #[cfg(feature = "glue")]
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
            .field("max_decompressed_bytes", &self.max_decompressed_bytes)
            .field("rebuild", &self.rebuild)
            .field("retry_failed", &self.retry_failed)
            .field("glue", &self.glue_target())
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

    /// The Glue target, for messages.
    fn glue_target(&self) -> Option<String> {
        #[cfg(feature = "glue")]
        return self.glue.as_ref().map(|(_, t)| format!("{t:?}"));
        #[cfg(not(feature = "glue"))]
        None
    }

    /// Which `metrics_1m` objects this run fills: all, or a rebuild's.
    fn keep(&self) -> Arc<dyn Fn(&LakeObject) -> bool + Send + Sync> {
        match &self.rebuild {
            Some(rebuild) => {
                let rebuild = rebuild.clone();
                Arc::new(move |object| rebuild.selects(object))
            }
            None => Arc::new(|_| true),
        }
    }
}

/// `metrics_1m` partitions built from raw objects, by lake object.
pub type Partitions = HashMap<LakeObject, Partition>;

/// Runs the whole protocol once (or, with [`Options::rebuild`], a rebuild).
///
/// The checkpoint names the raw zone by [`ObjectStore::identity`], so any spelling of one folder
/// or bucket prefix is the same raw zone; a lake inside its raw zone is refused.
pub async fn compact(raw: &dyn ObjectStore, lake: &dyn ObjectStore, options: &Options) -> Result<Report> {
    let started = Instant::now();
    let now_ms = options.now_ms.unwrap_or_else(wall_clock_ms);
    let mut report = Report::default();
    if cwms_store::contains(&raw.identity(), &lake.identity()) {
        return Err(Error::LakeInsideRaw { lake: lake.describe(""), raw: raw.describe("") });
    }
    let mut stored = StoredCheckpoint::load(lake, raw).await?;

    let listing = raw.list("").await?;
    stored.checkpoint.reconcile(&listing);
    report.objects_listed = listing.len();
    let pending: Vec<&ObjectMeta> = match &options.rebuild {
        // A rebuild reads whatever can hold the selected partitions' datums, processed or not.
        Some(rebuild) => listing.iter().filter(|o| rebuild.may_hold(o)).collect(),
        None => listing.iter().filter(|o| !stored.checkpoint.is_processed(o, options.retry_failed)).collect(),
    };
    report.objects_pending = pending.len();
    if !options.retry_failed && options.rebuild.is_none() {
        report.objects_failed_earlier = listing
            .iter()
            .filter_map(|o| {
                stored
                    .checkpoint
                    .failed()
                    .get(&o.key)
                    .map(|reason| ObjectProblem { location: raw.describe(&o.key), reason: reason.clone() })
            })
            .collect();
    }
    options.report(Progress::Listed { objects: pending.len(), bytes: pending.iter().map(|o| o.size).sum() });

    for batch in batches(&pending, options.batch_bytes) {
        let mut published = Published::default();
        // The days' objects updated early, from the rollups of hours published early.
        let mut rolled_up = Published::default();
        // Decoding fills the merged partitions; whenever they hold more than `max_points`,
        // the oldest hours are published (merged into their lake objects) to make room.
        // Publishing an hour twice in a batch costs a re-read, never correctness (DESIGN 4.3).
        // The hours' rollups (a row per series and hour) wait for the end of the batch, unless
        // they pass a quarter of the budget: then their days are updated at once, so that a long
        // backlog does not pile them up (a day written twice costs a re-read, never correctness).
        let mapped = map::map_with(raw, &batch, options, Some(options.max_points), async |merged: &Arc<Merged>| -> Result<()> {
            if merged.points() > options.max_points {
                let keep = options.max_points / 2;
                let merged = Arc::clone(merged);
                let oldest = tokio::task::spawn_blocking(move || merged.take_oldest(keep)).await.map_err(|e| Error::Task(e.to_string()))?;
                published.absorb(publish_minutes(lake, oldest, options).await?);
                if published.rollups.values().map(|r| r.rows.len()).sum::<usize>() > options.max_points / 4 {
                    rolled_up.absorb(publish_rollups(lake, &std::mem::take(&mut published.rollups), options).await?);
                }
            }
            Ok(())
        })
        .await?;
        report.objects_read += mapped.decoded.len();
        report.raw_bytes_read += mapped.bytes;
        report.datums += mapped.datums;
        report.duplicates_merged += mapped.duplicates;
        report.lines_rejected += mapped.lines_rejected;
        report.peak_points = report.peak_points.max(mapped.peak_points);
        for (key, reason) in &mapped.failed {
            report.objects_failed.push(ObjectProblem { location: raw.describe(key), reason: reason.clone() });
        }
        // Rejected lines are kept before anything counts their objects as processed.
        report.rejected.extend(quarantine::write_rejected(lake, &mapped.rejected).await?);
        options.fail_at(FailPoint::AfterDecode)?;

        published.absorb(publish_minutes(lake, mapped.partitions, options).await?);
        report.minute_objects_written += published.written;
        report.minute_objects_unchanged += published.unchanged;
        report.lake_bytes_written += published.bytes;
        report.duplicates_merged += published.duplicates;
        report.replaced_corrupt.extend(std::mem::take(&mut published.replaced));
        let batch_clean = published.errors.is_empty();
        report.partition_errors.extend(std::mem::take(&mut published.errors));
        options.fail_at(FailPoint::BeforeRollup)?;

        let mut rollups = publish_rollups(lake, &published.rollups, options).await?;
        rollups.absorb(rolled_up);
        report.hour_objects_written += rollups.written;
        report.lake_bytes_written += rollups.bytes;
        let batch_clean = batch_clean && rollups.errors.is_empty();
        report.partition_errors.extend(rollups.errors);

        #[cfg(feature = "glue")]
        if let Some((client, target)) = &options.glue {
            let mut partitions = std::collections::BTreeSet::new();
            for object in published.touched.iter().chain(&rollups.touched) {
                partitions.insert((object.table(), object.dt().to_owned(), object.namespace().to_owned()));
            }
            let registered = glue::register(client, target, &partitions).await?;
            report.glue.created += registered.created;
            report.glue.already_present += registered.already_present;
        }
        options.fail_at(FailPoint::BeforeCheckpoint)?;

        // A rebuild read only some partitions' datums of its objects: it changes no checkpoint.
        if options.rebuild.is_none() {
            // A batch whose partitions did not all publish stays out of the checkpoint, so its raw
            // objects are read again next run (harmless: merging is idempotent).
            let processed: Vec<&str> = if batch_clean { mapped.decoded.iter().map(String::as_str).collect() } else { Vec::new() };
            let closed_before = now_ms - options.folder_grace.as_millis() as i64;
            stored.save(&processed, &mapped.failed, &listing, closed_before).await?;
        }
    }

    if let Some(rebuild) = &options.rebuild
        && report.datums == 0
        && report.objects_failed.is_empty()
    {
        return Err(Error::NothingToRebuild { selection: rebuild.to_string(), raw: raw.describe("") });
    }
    report.lag = listing
        .iter()
        .filter(|o| !stored.checkpoint.is_processed(o, false))
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

/// What a table of the lake holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableSummary {
    pub files: usize,
    pub bytes: u64,
    /// Rows, from the files' footers.
    pub rows: u64,
}

/// Lists the lake's objects by table, for summaries, reading each file's footer for its rows.
pub async fn lake_summary(lake: &dyn ObjectStore) -> Result<BTreeMap<Table, TableSummary>> {
    let mut summary = BTreeMap::new();
    for table in [Table::Metrics1m, Table::Metrics1h] {
        let objects = lake.list(&format!("{}/", table.name())).await?;
        let entry: &mut TableSummary = summary.entry(table).or_default();
        for object in objects.iter().filter(|o| o.key.ends_with(".parquet") && o.problem.is_none()) {
            entry.files += 1;
            entry.bytes += object.size;
            if let Some(found) = lake.get(&object.key).await? {
                entry.rows += cwms_parquet::row_count(found.bytes, &lake.describe(&object.key)).unwrap_or(0);
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests;

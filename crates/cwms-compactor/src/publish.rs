//! The publish phase: partitions into their `metrics_1m` objects, and their rollups into the
//! days' `metrics_1h` objects, each with one conditional PUT, re-reading and re-merging when
//! another writer got there first.
//!
//! Two guards keep a lake object from losing what it holds:
//! - a corrupt object stops its partition (it is never overwritten), with the command that
//!   rebuilds it from the raw zone ([`crate::rebuild`]);
//! - a `metrics_1m` object that is missing while its day's `metrics_1h` object has rows of its
//!   hour was deleted or lost: writing only the new datums would silently drop every datum the
//!   checkpoint already counts as in the lake, so that partition stops too, with the same advice.
//!
//! A rebuild lifts both: it merges into a readable object, replaces a corrupt one, and creates
//! a missing one from what the raw zone holds.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use cwms_merge::{HourlyRollup, Partition};
use cwms_parquet::{LakeObject, Table, partition_path};
use cwms_store::{ObjectMeta, ObjectStore, PutMode, PutOutcome};
use futures::StreamExt;

use crate::report::ObjectProblem;
use crate::{Error, FailPoint, MAX_WRITE_ATTEMPTS, Options, Partitions, Progress, Result};

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
    /// Corrupt objects a rebuild replaced.
    pub replaced: Vec<String>,
}

impl Published {
    pub fn absorb(&mut self, other: Published) {
        self.written += other.written;
        self.unchanged += other.unchanged;
        self.bytes += other.bytes;
        self.duplicates += other.duplicates;
        self.touched.extend(other.touched);
        self.touched.sort();
        self.touched.dedup();
        self.errors.extend(other.errors);
        self.rollups.extend(other.rollups);
        self.replaced.extend(other.replaced);
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
                if write.replaced {
                    published.replaced.push(lake.describe(&object.key()));
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
    /// A corrupt object was replaced (by a rebuild).
    replaced: bool,
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
        let rebuilding = options.rebuild.is_some();
        if existing.is_none() && !rebuilding && !check_not_lost(lake, object).await? {
            // Another writer created the object since it was read: merge into that.
            continue;
        }
        // Merged a row group at a time (cwms_parquet::merge_into_object): memory does not grow
        // with the size of the object.
        let (bytes, duplicates, rollup, replaced) = blocking(move || -> Result<(Bytes, u64, Partition, bool), String> {
            let merged = match cwms_parquet::merge_into_object(existing_bytes.clone(), &incoming_c, &object_c, &write, &location) {
                Ok(merged) => (merged, false),
                // A rebuild replaces a corrupt object by what the raw zone holds.
                Err(_) if rebuilding && existing_bytes.is_some() => {
                    let fresh = cwms_parquet::merge_into_object(None, &incoming_c, &object_c, &write, &location)
                        .map_err(|e| without_location(&e.to_string(), &location))?;
                    (fresh, true)
                }
                // Otherwise a corrupt lake object stops here; it is never overwritten.
                Err(e) => return Err(corrupt_advice(&e, &location, &object_c)),
            };
            let (merged, replaced) = merged;
            Ok((merged.bytes, merged.duplicates, merged.rollup.unwrap_or_default(), replaced))
        })
        .await?
        .map_err(WriteError::Object)?;
        match put_if_changed(lake, &key, existing.as_ref(), bytes).await? {
            Some((bytes_written, etag)) => return Ok(Write { bytes_written, duplicates, etag, rollup: Some(rollup), replaced }),
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
        // The hours the day's object holds (read a batch of rows at a time, as below).
        let present: BTreeSet<i64> = match &existing {
            Some(found) => {
                let (bytes, day_c, location) = (found.bytes.clone(), day.clone(), lake.describe(&key));
                blocking(move || {
                    let mut hours = BTreeSet::new();
                    cwms_parquet::decode_chunks(bytes, &day_c, &location, |chunk| {
                        hours.extend(chunk.timestamps());
                        Ok(())
                    })
                    .map(|()| hours)
                    .map_err(|e| corrupt_advice(&e, &location, &day_c))
                })
                .await?
                .map_err(WriteError::Object)?
            }
            None => BTreeSet::new(),
        };
        // The hours to take from this run, unless their object changed since it was written.
        let listing = lake.list(&partition_path(Table::Metrics1m, day.dt(), day.namespace())).await?;
        let mut fresh: Vec<&Partition> = Vec::new();
        let mut from_lake: Vec<LakeObject> = Vec::new();
        // The day's hour objects, found by their keys (a long namespace's folder name cannot be
        // parsed back into the namespace, so the keys are built, not parsed).
        let listed: Vec<(LakeObject, &ObjectMeta)> = (0..24u8)
            .filter_map(|hour| {
                let object = LakeObject::minutes(day.dt(), day.namespace(), hour).ok()?;
                let key = object.key();
                let meta = listing.iter().find(|meta| meta.key == key)?;
                Some((object, meta))
            })
            .collect();
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
        let replaced: BTreeSet<i64> =
            hours.iter().map(|(o, _)| o.time_range_ms().start).chain(from_lake.iter().map(|o| o.time_range_ms().start)).collect();
        let mut new_rows = Partition::new();
        for partition in fresh {
            new_rows.merge(partition);
        }
        for object in from_lake {
            let key = object.key();
            let Some(found) = lake.get(&key).await? else { continue };
            let location = lake.describe(&key);
            let rollup = blocking(move || {
                let mut rollup = HourlyRollup::new();
                cwms_parquet::decode_chunks(found.bytes, &object, &location, |chunk| {
                    for row in chunk.rows() {
                        rollup.add(row.series, row.timestamp_ms, row.value);
                    }
                    Ok(())
                })
                .map(|()| rollup.finish())
                .map_err(|e| corrupt_advice(&e, &location, &object))
            })
            .await?
            .map_err(WriteError::Object)?;
            new_rows.merge(&rollup);
        }
        let (day_c, write, location) = (day.clone(), options.write.clone(), lake.describe(&key));
        let existing_bytes = existing.as_ref().map(|o| o.bytes.clone());
        let bytes = blocking(move || {
            cwms_parquet::merge_into_object_where(
                existing_bytes,
                |row| !replaced.contains(&row.timestamp_ms),
                &new_rows,
                &day_c,
                &write,
                &location,
            )
            .map(|merged| merged.bytes)
            .map_err(|e| without_location(&e.to_string(), &location))
        })
        .await?
        .map_err(WriteError::Object)?;
        if let Some((bytes_written, etag)) = put_if_changed(lake, &key, existing.as_ref(), bytes).await? {
            return Ok(Write { bytes_written, duplicates: 0, etag, rollup: None, replaced: false });
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

/// The reason for a lake object that does not decode, without its location (the report names
/// it), and with the way out: the raw zone is kept to rebuild it.
fn corrupt_advice(error: &cwms_parquet::Error, location: &str, object: &LakeObject) -> String {
    format!(
        "{}. It was left as it is and its partition was not updated. To rebuild it from the raw zone, run \
         `cwms compact --raw RAW --lake LAKE {}` (a readable object keeps its rows; a corrupt one is replaced)",
        without_location(&error.to_string(), location),
        rebuild_arguments(object)
    )
}

/// The `--rebuild` arguments that select `object`'s partition.
pub(crate) fn rebuild_arguments(object: &LakeObject) -> String {
    let namespace = object.namespace().replace('\'', "'\\''");
    match object.hour() {
        Some(hour) => format!("--rebuild --dt {} --hour {hour:02} --namespace '{namespace}'", object.dt()),
        None => format!("--rebuild --dt {} --namespace '{namespace}'", object.dt()),
    }
}

/// A lake error's message without its leading `lake object LOCATION: ` (the report already names
/// the object).
fn without_location(message: &str, location: &str) -> String {
    message.strip_prefix(&format!("lake object {location}: ")).unwrap_or(message).to_owned()
}

/// Stops the publish of a `metrics_1m` object that is missing while its day's rollup holds rows
/// of its hour: it was deleted or lost, and writing only the new datums would drop the rest.
/// `Ok(false)` when the object is there after all: another writer created it (and then its day's
/// rollup) after it was found missing, so the write starts over from it.
async fn check_not_lost(lake: &dyn ObjectStore, object: &LakeObject) -> Result<bool, WriteError> {
    let day = object.day();
    let Some(found) = lake.get(&day.key()).await? else { return Ok(true) };
    let (day_c, location) = (day.clone(), lake.describe(&day.key()));
    let hour_start = object.time_range_ms().start;
    // An unreadable day is reported when the day is written; here it proves nothing.
    let rows = blocking(move || {
        cwms_parquet::decode(found.bytes, &day_c, &location)
            .map(|p| p.rows().iter().filter(|r| r.timestamp_ms == hour_start).count())
            .unwrap_or(0)
    })
    .await?;
    if rows == 0 {
        return Ok(true);
    }
    if lake.get(&object.key()).await?.is_some() {
        return Ok(false);
    }
    Err(WriteError::Object(format!(
        "the object is missing, but {} has {rows} rows of its hour: it was deleted or lost after being written, and writing only \
         the new datums would lose the others. Rebuild it from the raw zone with `cwms compact --raw RAW --lake LAKE {}`",
        lake.describe(&day.key()),
        rebuild_arguments(object)
    )))
}

//! The datums of raw objects, merged by `metrics_1m` lake object as they are decoded.
//!
//! Several threads decode raw objects at once and merge each object's datums straight into the
//! partition of its lake object: there is no per-object partition to build and merge again on
//! one thread, which made the merge a serial step that two cores could not share. Each lake
//! object's partition has its own lock, and a thread inserts first into whichever of its
//! partitions is free, so two threads rarely wait for each other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError, RwLock};
use std::time::Duration;

use cwms_merge::{Outcome, Partition};
use cwms_model::Datum;
use cwms_parquet::LakeObject;

use crate::Partitions;

/// What merging one raw object did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Added {
    pub datums: u64,
    /// Datums that met a point with the same identity (in this object or an earlier one).
    pub duplicates: u64,
    /// Datums left out because their lake object was not wanted (a rebuild's selection).
    pub skipped: u64,
}

impl Added {
    pub fn absorb(&mut self, other: Added) {
        self.datums += other.datums;
        self.duplicates += other.duplicates;
        self.skipped += other.skipped;
    }
}

/// Partitions being filled by several threads.
#[derive(Default)]
pub(crate) struct Merged {
    partitions: RwLock<HashMap<LakeObject, Mutex<Partition>>>,
    /// Points held (the sum of the partitions' lengths).
    points: AtomicUsize,
    /// Where decoding threads wait for room (see [`Merged::wait_for_room`]).
    room: (Mutex<()>, Condvar),
    /// The most points held at once.
    peak: AtomicUsize,
}

impl Merged {
    /// Merges datums (of one block of one raw object) in, those of the lake objects `keep`
    /// accepts; the others are counted in [`Added::skipped`].
    pub fn add_datums(&self, datums: &[Datum<'_>], keep: &(dyn Fn(&LakeObject) -> bool + Sync)) -> Result<Added, String> {
        let mut groups = group_by_object(datums)?;
        let before: usize = groups.iter().map(|(_, d)| d.len()).sum();
        groups.retain(|(object, _)| keep(object));
        let kept: usize = groups.iter().map(|(_, d)| d.len()).sum();
        // Every datum must find its partition: a partition taken out between creating it and
        // reading the map (a publish making room) is created again.
        let partitions = loop {
            self.ensure(groups.iter().map(|(object, _)| object));
            let partitions = self.partitions.read().unwrap_or_else(PoisonError::into_inner);
            if groups.iter().all(|(object, _)| partitions.contains_key(object)) {
                break partitions;
            }
        };
        let mut pending: Vec<(&Mutex<Partition>, Vec<&Datum<'_>>)> =
            groups.into_iter().map(|(object, datums)| (&partitions[&object], datums)).collect();
        let mut added = Added { datums: kept as u64, duplicates: 0, skipped: (before - kept) as u64 };
        let mut inserted = 0;
        let mut insert = |partition: &mut Partition, datums: &[&Datum<'_>]| {
            for datum in datums {
                match partition.insert(datum) {
                    Outcome::Inserted => inserted += 1,
                    Outcome::Replaced | Outcome::Kept => added.duplicates += 1,
                }
            }
        };
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|(partition, datums)| match partition.try_lock() {
                Ok(mut partition) => {
                    insert(&mut partition, datums);
                    false
                }
                Err(std::sync::TryLockError::Poisoned(poisoned)) => {
                    insert(&mut poisoned.into_inner(), datums);
                    false
                }
                Err(std::sync::TryLockError::WouldBlock) => true,
            });
            if pending.len() == before {
                // Every partition this object still needs is busy: wait for one.
                let (partition, datums) = pending.swap_remove(0);
                insert(&mut partition.lock().unwrap_or_else(PoisonError::into_inner), &datums);
            }
        }
        let now = self.points.fetch_add(inserted, Ordering::Relaxed) + inserted;
        self.peak.fetch_max(now, Ordering::Relaxed);
        Ok(added)
    }

    /// The most points held at once so far.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Points held now.
    pub fn points(&self) -> usize {
        self.points.load(Ordering::Relaxed)
    }

    /// Blocks the calling (decoding) thread while more than `limit` points are held, until the
    /// publishing side takes some out ([`Merged::take_oldest`] wakes it): so one huge raw object
    /// cannot fill memory before anything is published. Waits in short steps, so a wake-up that
    /// comes just before the wait is never lost.
    pub fn wait_for_room(&self, limit: usize) {
        let (lock, room) = &self.room;
        let mut guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while self.points() > limit {
            guard = room.wait_timeout(guard, Duration::from_millis(50)).unwrap_or_else(PoisonError::into_inner).0;
        }
    }

    /// Removes and returns the partitions of the oldest hours until at most `keep` points
    /// remain: those are the least likely to receive more datums, since raw objects are read
    /// roughly in order of arrival. Waits for the threads merging at that moment.
    pub fn take_oldest(&self, keep: usize) -> Partitions {
        let mut partitions = self.partitions.write().unwrap_or_else(PoisonError::into_inner);
        let mut by_age: Vec<(i64, LakeObject, usize)> = partitions
            .iter_mut()
            .map(|(object, partition)| (object.time_range_ms().start, object.clone(), lock(partition).len()))
            .collect();
        by_age.sort();
        let mut held: usize = by_age.iter().map(|(_, _, len)| len).sum();
        let mut taken = Partitions::new();
        for (_, object, len) in by_age {
            if held <= keep {
                break;
            }
            if let Some(partition) = partitions.remove(&object) {
                taken.insert(object, partition.into_inner().unwrap_or_else(PoisonError::into_inner));
            }
            held -= len;
        }
        self.points.store(held, Ordering::Relaxed);
        drop(partitions);
        self.room.1.notify_all();
        taken
    }

    /// Removes and returns every partition.
    pub fn take_all(&self) -> Partitions {
        self.take_oldest(0)
    }

    /// Makes sure each object has a partition to insert into.
    fn ensure<'o>(&self, objects: impl Iterator<Item = &'o LakeObject> + Clone) {
        let missing = {
            let partitions = self.partitions.read().unwrap_or_else(PoisonError::into_inner);
            objects.clone().any(|object| !partitions.contains_key(object))
        };
        if missing {
            let mut partitions = self.partitions.write().unwrap_or_else(PoisonError::into_inner);
            for object in objects {
                partitions.entry(object.clone()).or_default();
            }
        }
    }
}

fn lock(partition: &mut Mutex<Partition>) -> &mut Partition {
    partition.get_mut().unwrap_or_else(PoisonError::into_inner)
}

/// The datums of one object grouped by lake object, in order of first appearance.
fn group_by_object<'d, 'a>(datums: &'d [Datum<'a>]) -> Result<Vec<(LakeObject, Vec<&'d Datum<'a>>)>, String> {
    // (An empty block has nothing to group.)
    let mut groups: Vec<(LakeObject, Vec<&Datum<'a>>)> = Vec::new();
    // Consecutive datums nearly always share a namespace and hour: remember the last group.
    let mut last: Option<(usize, i64)> = None;
    for datum in datums {
        let hour_start = datum.timestamp_ms - datum.timestamp_ms.rem_euclid(3_600_000);
        let index = match last {
            Some((index, hour)) if hour == hour_start && *groups[index].0.namespace() == *datum.namespace => index,
            _ => {
                let object = LakeObject::minutes_at(&datum.namespace, datum.timestamp_ms).map_err(|e| e.to_string())?;
                match groups.iter().position(|(o, _)| *o == object) {
                    Some(index) => index,
                    None => {
                        groups.push((object, Vec::new()));
                        groups.len() - 1
                    }
                }
            }
        };
        last = Some((index, hour_start));
        groups[index].1.push(datum);
    }
    Ok(groups)
}

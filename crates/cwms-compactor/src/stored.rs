//! The checkpoint as an object of the lake: read with its ETag, written conditionally on it.

use std::path::Path;

use bytes::Bytes;
use cwms_store::{ObjectMeta, ObjectStore, PutMode, PutOutcome};

use crate::checkpoint::{CHECKPOINT_KEY, Checkpoint};
use crate::{Error, MAX_WRITE_ATTEMPTS, Result};

/// The checkpoint of a lake, and the version of the object it was read from.
pub(crate) struct StoredCheckpoint<'a> {
    lake: &'a dyn ObjectStore,
    raw_id: String,
    /// Another spelling of the raw zone a version 1 checkpoint may have recorded (the raw zone's
    /// path relative to the lake's parent, as `cwms run` wrote it).
    legacy_aliases: Vec<String>,
    pub checkpoint: Checkpoint,
    etag: Option<String>,
    /// Set once a lost race made this run merge another writer's checkpoint: that writer may
    /// have listed objects and folders that arrived after this run's listing, so from then on
    /// the listing is not complete enough to forget what it does not show (`reconcile`) or to
    /// close folders by it (`collapse_closed_folders`); the next run does both.
    merged_another: bool,
}

impl<'a> StoredCheckpoint<'a> {
    /// Reads the lake's checkpoint for the raw zone `raw` (an empty one if there is none).
    pub async fn load(lake: &'a dyn ObjectStore, raw: &dyn ObjectStore) -> Result<StoredCheckpoint<'a>> {
        let raw_id = raw.identity();
        let mut stored = StoredCheckpoint {
            lake,
            legacy_aliases: legacy_aliases(&raw_id, &lake.identity()),
            checkpoint: Checkpoint::new(&raw_id),
            etag: None,
            merged_another: false,
            raw_id,
        };
        stored.reload().await?;
        Ok(stored)
    }

    async fn reload(&mut self) -> Result<()> {
        match self.lake.get(CHECKPOINT_KEY).await? {
            None => {
                self.checkpoint = Checkpoint::new(&self.raw_id);
                self.etag = None;
            }
            Some(object) => {
                let raw_id = &self.raw_id;
                let aliases = &self.legacy_aliases;
                let same = |old: &str| same_local_path(old, raw_id) || aliases.iter().any(|a| a == old);
                self.checkpoint = Checkpoint::from_json(&object.bytes, raw_id, same)
                    .map_err(|source| Error::Checkpoint { location: self.lake.describe(CHECKPOINT_KEY), reason: source.to_string() })?;
                self.etag = object.etag;
            }
        }
        Ok(())
    }

    /// Adds a batch to the checkpoint and writes it, conditionally on the version read, merging
    /// with a concurrent writer's checkpoint on conflict: what the other writer recorded is kept,
    /// even the objects and folders `listing` does not show.
    pub async fn save(
        &mut self,
        processed: &[&str],
        failed: &[(String, String)],
        listing: &[ObjectMeta],
        closed_before_ms: i64,
    ) -> Result<()> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            if !self.merged_another {
                self.checkpoint.reconcile(listing);
            }
            self.checkpoint.add_processed(processed.iter().copied());
            for (key, reason) in failed {
                self.checkpoint.add_failed(key, reason);
            }
            if !self.merged_another {
                self.checkpoint.collapse_closed_folders(listing, closed_before_ms);
            }
            let mode = match &self.etag {
                Some(tag) => PutMode::Update(tag.clone()),
                None => PutMode::Create,
            };
            match self.lake.put(CHECKPOINT_KEY, Bytes::from(self.checkpoint.to_json()), mode).await? {
                PutOutcome::Written { etag } => {
                    self.etag = etag;
                    return Ok(());
                }
                PutOutcome::Conflict => {
                    self.reload().await?;
                    self.merged_another = true;
                }
            }
        }
        Err(Error::CheckpointContention { location: self.lake.describe(CHECKPOINT_KEY) })
    }
}

/// Whether a raw zone name from a version 1 checkpoint, a path as it was typed, is the local
/// raw zone `raw_id` (resolved from the current folder).
fn same_local_path(old: &str, raw_id: &str) -> bool {
    !old.starts_with("s3://") && std::fs::canonicalize(old).is_ok_and(|p| p.display().to_string() == raw_id)
}

/// `cwms run` recorded its raw zone as `raw`, relative to the folder holding `raw/` and `lake/`.
fn legacy_aliases(raw_id: &str, lake_id: &str) -> Vec<String> {
    let (raw, lake) = (Path::new(raw_id), Path::new(lake_id));
    match (raw.parent(), lake.parent(), raw.file_name()) {
        (Some(a), Some(b), Some(name)) if a == b => vec![name.to_string_lossy().into_owned()],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use cwms_store::LocalStore;

    use super::*;

    fn listing(keys: &[&str]) -> Vec<ObjectMeta> {
        keys.iter().map(|key| ObjectMeta::new(*key, 1, 0, None)).collect()
    }

    /// Two runs read the checkpoint at once; the one that listed more (objects arrived in
    /// between) writes first, and the other loses the race: it must keep what the first
    /// recorded of objects and folders its own listing does not show, processed and failed.
    #[tokio::test]
    async fn a_lost_race_keeps_what_the_winner_recorded_beyond_this_listing() {
        let dir = tempfile::tempdir().unwrap();
        let raw = LocalStore::create(dir.path().join("raw")).await.unwrap();
        let lake = LocalStore::create(dir.path().join("lake")).await.unwrap();
        let early = listing(&["09/a.gz"]);
        let late = listing(&["09/a.gz", "09/c.gz", "10/b.gz", "10/bad.gz"]);
        let mut slow = StoredCheckpoint::load(&lake, &raw).await.unwrap();
        let mut fast = StoredCheckpoint::load(&lake, &raw).await.unwrap();
        let failed = [("10/bad.gz".to_owned(), "invalid gzip data".to_owned())];
        fast.save(&["09/a.gz", "09/c.gz", "10/b.gz"], &failed, &late, i64::MIN).await.unwrap();
        // By the time the slow run writes, folder 09 looks closed to it: its newest listed object
        // is old, and it never saw c.gz.
        slow.save(&["09/a.gz"], &[], &early, i64::MAX).await.unwrap();
        assert!(slow.merged_another, "the slow run lost the race");
        let after = StoredCheckpoint::load(&lake, &raw).await.unwrap();
        let processed: Vec<&str> = late.iter().filter(|o| after.checkpoint.is_processed(o, true)).map(|o| o.key.as_str()).collect();
        assert_eq!(processed, ["09/a.gz", "09/c.gz", "10/b.gz"]);
        assert_eq!(after.checkpoint.failed().keys().collect::<Vec<_>>(), ["10/bad.gz"]);
    }
}

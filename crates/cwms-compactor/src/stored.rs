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
    /// with a concurrent writer's checkpoint on conflict (both only ever add keys).
    pub async fn save(
        &mut self,
        processed: &[&str],
        failed: &[(String, String)],
        listing: &[ObjectMeta],
        closed_before_ms: i64,
    ) -> Result<()> {
        for _ in 0..MAX_WRITE_ATTEMPTS {
            self.checkpoint.reconcile(listing);
            self.checkpoint.add_processed(processed.iter().copied());
            for (key, reason) in failed {
                self.checkpoint.add_failed(key, reason);
            }
            self.checkpoint.collapse_closed_folders(listing, closed_before_ms);
            let mode = match &self.etag {
                Some(tag) => PutMode::Update(tag.clone()),
                None => PutMode::Create,
            };
            match self.lake.put(CHECKPOINT_KEY, Bytes::from(self.checkpoint.to_json()), mode).await? {
                PutOutcome::Written { etag } => {
                    self.etag = etag;
                    return Ok(());
                }
                PutOutcome::Conflict => self.reload().await?,
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

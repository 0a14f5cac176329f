//! Which raw objects the lake already holds: `_cwms/checkpoint.json` under the lake root.
//!
//! Keys are grouped by their folder (everything before the last `/`, which for Firehose's
//! layouts is the arrival hour). A folder whose objects are all processed and whose newest
//! object is older than a grace period is collapsed to "done" with its object count and newest
//! modification time, so the checkpoint stays small as the raw zone grows. An object appearing
//! later in a done folder (newer than what was recorded) is still found, because folders are
//! compared by modification time, never by key order alone.
//!
//! Reprocessing an object is always safe (the merge law is idempotent), so every rule here errs
//! toward processing again rather than skipping.

use std::collections::BTreeMap;

use cwms_store::ObjectMeta;
use serde::{Deserialize, Serialize};

/// Where the checkpoint lives, relative to the lake root.
pub const CHECKPOINT_KEY: &str = "_cwms/checkpoint.json";

const VERSION: u32 = 1;

/// The compactor's memory of processed raw objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    version: u32,
    /// The raw location this checkpoint is about; a checkpoint for another raw zone is refused.
    raw: String,
    /// Folders, by name (`""` for objects at the root of the raw zone).
    folders: BTreeMap<String, Folder>,
    /// Raw objects that could not be decoded, with the reason: reported, left in place, and not
    /// read again until the operator asks for a retry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    failed: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum Folder {
    /// Some objects are processed: their names (the part after the folder).
    Open { processed: Vec<String> },
    /// Every object up to `newest_ms` is processed; `objects` is how many there were.
    Done { objects: u64, newest_ms: i64 },
}

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("not a cwms checkpoint: {0}")]
    Invalid(String),
    #[error("unsupported checkpoint version {0} (this cwms reads version {VERSION})")]
    Version(u32),
    #[error("the checkpoint is for raw zone {found:?}, not {expected:?}")]
    OtherRaw { found: String, expected: String },
}

fn split(key: &str) -> (&str, &str) {
    match key.rfind('/') {
        Some(i) => (&key[..i], &key[i + 1..]),
        None => ("", key),
    }
}

impl Checkpoint {
    /// An empty checkpoint for a raw zone.
    pub fn new(raw: &str) -> Checkpoint {
        Checkpoint { version: VERSION, raw: raw.to_owned(), ..Checkpoint::default() }
    }

    /// Reads a checkpoint, checking it belongs to `raw`.
    pub fn from_json(bytes: &[u8], raw: &str) -> Result<Checkpoint, CheckpointError> {
        let checkpoint: Checkpoint = serde_json::from_slice(bytes).map_err(|e| CheckpointError::Invalid(e.to_string()))?;
        if checkpoint.version != VERSION {
            return Err(CheckpointError::Version(checkpoint.version));
        }
        if checkpoint.raw != raw {
            return Err(CheckpointError::OtherRaw { found: checkpoint.raw, expected: raw.to_owned() });
        }
        Ok(checkpoint)
    }

    /// The checkpoint as pretty JSON (small, and readable by an operator).
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a checkpoint always serializes");
        bytes.push(b'\n');
        bytes
    }

    /// True when the object is already in the lake (or known to be bad and not to be retried).
    pub fn is_processed(&self, object: &ObjectMeta, retry_failed: bool) -> bool {
        if self.failed.contains_key(&object.key) {
            return !retry_failed;
        }
        let (folder, name) = split(&object.key);
        match self.folders.get(folder) {
            None => false,
            Some(Folder::Open { processed }) => processed.binary_search_by(|p| p.as_str().cmp(name)).is_ok(),
            Some(Folder::Done { newest_ms, .. }) => object.last_modified_ms <= *newest_ms,
        }
    }

    /// Raw objects recorded as undecodable, with their reasons.
    pub fn failed(&self) -> &BTreeMap<String, String> {
        &self.failed
    }

    /// Records objects as processed (in the lake).
    pub fn add_processed<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>) {
        for key in keys {
            self.failed.remove(key);
            let (folder, name) = split(key);
            let entry = self.folders.entry(folder.to_owned()).or_insert_with(|| Folder::Open { processed: Vec::new() });
            if let Folder::Open { processed } = entry
                && let Err(at) = processed.binary_search_by(|p| p.as_str().cmp(name))
            {
                processed.insert(at, name.to_owned());
            }
        }
    }

    /// Records an object as undecodable.
    pub fn add_failed(&mut self, key: &str, reason: &str) {
        self.failed.insert(key.to_owned(), reason.to_owned());
    }

    /// Collapses every open folder whose listed objects are all processed and whose newest
    /// object was modified before `closed_before_ms` (Firehose no longer writes there).
    ///
    /// `listing` is the complete listing of the raw zone.
    pub fn collapse_closed_folders(&mut self, listing: &[ObjectMeta], closed_before_ms: i64) {
        let mut by_folder: BTreeMap<&str, Vec<&ObjectMeta>> = BTreeMap::new();
        for object in listing {
            by_folder.entry(split(&object.key).0).or_default().push(object);
        }
        for (folder, objects) in by_folder {
            let Some(entry) = self.folders.get_mut(folder) else { continue };
            let Folder::Open { processed } = entry else { continue };
            let newest_ms = objects.iter().map(|o| o.last_modified_ms).max().unwrap_or(i64::MIN);
            let all_done = objects.iter().all(|o| processed.binary_search_by(|p| p.as_str().cmp(split(&o.key).1)).is_ok());
            let none_failed = objects.iter().all(|o| !self.failed.contains_key(&o.key));
            if all_done && none_failed && newest_ms < closed_before_ms {
                *entry = Folder::Done { objects: objects.len() as u64, newest_ms };
            }
        }
    }

    /// Number of folders recorded, open and done.
    pub fn folder_count(&self) -> (usize, usize) {
        let done = self.folders.values().filter(|f| matches!(f, Folder::Done { .. })).count();
        (self.folders.len() - done, done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str, last_modified_ms: i64) -> ObjectMeta {
        ObjectMeta { key: key.to_owned(), size: 1, last_modified_ms, etag: None }
    }

    #[test]
    fn processed_keys_are_remembered_per_folder() {
        let mut c = Checkpoint::new("raw");
        let a = object("2026/11/26/07/a.gz", 10);
        let b = object("2026/11/26/07/b.gz", 20);
        let root = object("top.gz", 5);
        assert!(!c.is_processed(&a, false));
        c.add_processed([a.key.as_str(), root.key.as_str()]);
        assert!(c.is_processed(&a, false) && c.is_processed(&root, false));
        assert!(!c.is_processed(&b, false));
        let round = Checkpoint::from_json(&c.to_json(), "raw").unwrap();
        assert_eq!(round, c);
    }

    #[test]
    fn closed_folders_collapse_and_still_see_late_objects() {
        let mut c = Checkpoint::new("raw");
        let listing = vec![object("h07/a.gz", 100), object("h07/b.gz", 200), object("h08/c.gz", 300)];
        c.add_processed(["h07/a.gz", "h07/b.gz", "h08/c.gz"]);
        // h08 is still within the grace period; h07 is closed.
        c.collapse_closed_folders(&listing, 250);
        assert_eq!(c.folder_count(), (1, 1));
        assert!(c.is_processed(&listing[0], false) && c.is_processed(&listing[1], false));
        // A late object in a done folder, written after the collapse, is not processed.
        assert!(!c.is_processed(&object("h07/0-late.gz", 400), false));
    }

    #[test]
    fn folders_with_unprocessed_or_failed_objects_stay_open() {
        let mut c = Checkpoint::new("raw");
        let listing = vec![object("h/a", 1), object("h/b", 2), object("g/x", 1)];
        c.add_processed(["h/a", "g/x"]);
        c.add_failed("g/x", "bad gzip");
        c.collapse_closed_folders(&listing, 1000);
        assert_eq!(c.folder_count(), (2, 0));
        assert!(c.is_processed(&listing[2], false), "a failed object is not retried by default");
        assert!(!c.is_processed(&listing[2], true), "but is with a retry");
    }

    #[test]
    fn bad_checkpoints_are_refused() {
        assert!(matches!(Checkpoint::from_json(b"{", "raw"), Err(CheckpointError::Invalid(_))));
        let other = Checkpoint::new("elsewhere").to_json();
        assert_eq!(
            Checkpoint::from_json(&other, "raw").unwrap_err().to_string(),
            "the checkpoint is for raw zone \"elsewhere\", not \"raw\""
        );
        let future = String::from_utf8(Checkpoint::new("raw").to_json()).unwrap().replace("\"version\": 1", "\"version\": 9");
        assert_eq!(
            Checkpoint::from_json(future.as_bytes(), "raw").unwrap_err().to_string(),
            "unsupported checkpoint version 9 (this cwms reads version 1)"
        );
    }
}

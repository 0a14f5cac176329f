//! Which raw objects the lake already holds: `_cwms/checkpoint.json` under the lake root.
//!
//! Keys are grouped by their folder (everything before the last `/`, which for Firehose's
//! layouts is the arrival hour). An open folder lists the names of its processed objects. A
//! folder whose objects are all processed and whose newest object is older than a grace period
//! is collapsed to "done": its names are kept only as 64-bit XXH3 hashes (eight bytes each
//! instead of Firehose's eighty-byte names), so the checkpoint stays small as the raw zone
//! grows, and still knows every key it has seen. A key it has not seen is read, whatever its
//! modification time (`cp -p`, `rsync -a` and `tar x` keep old ones), and then remembered, in an
//! open folder or a done one alike. Folders that no longer appear in the raw listing (expired by
//! a lifecycle rule) are forgotten.
//!
//! Reprocessing an object is always safe (the merge law is idempotent), so every rule here errs
//! toward processing again rather than skipping.
//!
//! Version 1 checkpoints (done folders kept a count and a time, not names) are read: a done
//! folder whose listing still shows exactly its count of objects, none newer than its time, is
//! taken as done with the names listed; any other is read again.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use cwms_store::ObjectMeta;
use serde::{Deserialize, Serialize};

/// Where the checkpoint lives, relative to the lake root.
pub const CHECKPOINT_KEY: &str = "_cwms/checkpoint.json";

const VERSION: u32 = 2;

/// The compactor's memory of processed raw objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    version: u32,
    /// The raw zone this checkpoint is about ([`cwms_store::ObjectStore::identity`]); a
    /// checkpoint for another raw zone is refused.
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
    /// Some objects are processed: their names (the part after the folder), sorted.
    Open { processed: Vec<String> },
    /// Every object is processed: how many, the newest's modification time, and the hashes of
    /// their names ([`NameHashes`]).
    Done { objects: u64, newest_ms: i64, names: NameHashes },
    /// A version 1 done folder, before [`Checkpoint::reconcile`] decides what it holds.
    Legacy { objects: u64, newest_ms: i64 },
}

/// The sorted XXH3-64 hashes of a done folder's object names, on the wire as the base64 of
/// their little-endian bytes.
///
/// Two names with one hash would make a new object look processed; with 64-bit hashes that
/// takes billions of objects in one folder (a Firehose hour holds at most a few thousand).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct NameHashes(Vec<u64>);

impl NameHashes {
    fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> NameHashes {
        let mut hashes: Vec<u64> = names.into_iter().map(name_hash).collect();
        hashes.sort_unstable();
        hashes.dedup();
        NameHashes(hashes)
    }

    fn contains(&self, name: &str) -> bool {
        self.0.binary_search(&name_hash(name)).is_ok()
    }

    fn insert(&mut self, name: &str) {
        let hash = name_hash(name);
        if let Err(at) = self.0.binary_search(&hash) {
            self.0.insert(at, hash);
        }
    }
}

/// The hash a done folder keeps of a name: pinned by a test, since checkpoints store it.
fn name_hash(name: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}

impl Serialize for NameHashes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.0.iter().flat_map(|h| h.to_le_bytes()).collect();
        serializer.serialize_str(&BASE64.encode(bytes))
    }
}

impl<'de> Deserialize<'de> for NameHashes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = BASE64.decode(text.as_bytes()).map_err(serde::de::Error::custom)?;
        if bytes.len() % 8 != 0 {
            return Err(serde::de::Error::custom("name hashes are not a whole number of 8-byte values"));
        }
        let hashes: Vec<u64> = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        if !hashes.is_sorted() {
            return Err(serde::de::Error::custom("name hashes are not sorted"));
        }
        Ok(NameHashes(hashes))
    }
}

/// Why a checkpoint cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    #[error("not a cwms checkpoint: {0}")]
    Invalid(String),
    #[error("unsupported checkpoint version {0} (this cwms reads versions 1 and {VERSION})")]
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

    /// Reads a checkpoint, checking it belongs to the raw zone `raw`. A version 1 checkpoint
    /// named its raw zone as typed (`raw`, `demo/raw`): `same_raw` says whether such a name is
    /// this raw zone.
    pub fn from_json(bytes: &[u8], raw: &str, same_raw: impl Fn(&str) -> bool) -> Result<Checkpoint, CheckpointError> {
        let mut checkpoint: Checkpoint = serde_json::from_slice(bytes).map_err(|e| CheckpointError::Invalid(e.to_string()))?;
        match checkpoint.version {
            VERSION => {
                if checkpoint.folders.values().any(|f| matches!(f, Folder::Legacy { .. })) {
                    return Err(CheckpointError::Invalid("a version 2 checkpoint with a folder of version 1".into()));
                }
            }
            1 => {
                if checkpoint.folders.values().any(|f| matches!(f, Folder::Done { .. })) {
                    return Err(CheckpointError::Invalid("a version 1 checkpoint with a folder of version 2".into()));
                }
                if checkpoint.raw != raw && same_raw(&checkpoint.raw) {
                    checkpoint.raw = raw.to_owned();
                }
                checkpoint.version = VERSION;
            }
            other => return Err(CheckpointError::Version(other)),
        }
        if checkpoint.raw != raw {
            return Err(CheckpointError::OtherRaw { found: checkpoint.raw, expected: raw.to_owned() });
        }
        for folder in checkpoint.folders.values() {
            if let Folder::Open { processed } = folder
                && !processed.is_sorted()
            {
                return Err(CheckpointError::Invalid("a folder's processed names are not sorted".into()));
            }
        }
        Ok(checkpoint)
    }

    /// The checkpoint as pretty JSON (small, and readable by an operator).
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).expect("a checkpoint always serializes");
        bytes.push(b'\n');
        bytes
    }

    /// Brings the checkpoint in line with a complete listing of the raw zone: forgets folders
    /// and failures no longer listed (expired), and decides what each version 1 done folder
    /// holds (see the module documentation).
    pub fn reconcile(&mut self, listing: &[ObjectMeta]) {
        let by_folder = by_folder(listing);
        self.folders.retain(|folder, _| by_folder.contains_key(folder.as_str()));
        let listed: std::collections::HashSet<&str> = listing.iter().map(|o| o.key.as_str()).collect();
        self.failed.retain(|key, _| listed.contains(key.as_str()));
        for (name, folder) in &mut self.folders {
            if let Folder::Legacy { objects, newest_ms } = *folder {
                let listed = &by_folder[name.as_str()];
                let unchanged = listed.len() as u64 == objects && listed.iter().all(|o| o.last_modified_ms <= newest_ms);
                *folder = if unchanged {
                    Folder::Done { objects, newest_ms, names: NameHashes::of(listed.iter().map(|o| split(&o.key).1)) }
                } else {
                    Folder::Open { processed: Vec::new() }
                };
            }
        }
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
            Some(Folder::Done { names, .. }) => names.contains(name),
            // Not reconciled yet: read again rather than guess.
            Some(Folder::Legacy { .. }) => false,
        }
    }

    /// Raw objects recorded as undecodable, with their reasons.
    pub fn failed(&self) -> &BTreeMap<String, String> {
        &self.failed
    }

    /// Records objects as processed (in the lake), in open and done folders alike.
    pub fn add_processed<'a>(&mut self, keys: impl IntoIterator<Item = &'a str>) {
        for key in keys {
            self.failed.remove(key);
            let (folder, name) = split(key);
            let entry = self.folders.entry(folder.to_owned()).or_insert_with(|| Folder::Open { processed: Vec::new() });
            match entry {
                Folder::Open { processed } => {
                    if let Err(at) = processed.binary_search_by(|p| p.as_str().cmp(name)) {
                        processed.insert(at, name.to_owned());
                    }
                }
                Folder::Done { objects, names, .. } => {
                    if !names.contains(name) {
                        names.insert(name);
                        *objects += 1;
                    }
                }
                Folder::Legacy { .. } => *entry = Folder::Open { processed: vec![name.to_owned()] },
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
        for (folder, objects) in by_folder(listing) {
            let Some(entry) = self.folders.get_mut(folder) else { continue };
            let Folder::Open { processed } = entry else { continue };
            let newest_ms = objects.iter().map(|o| o.last_modified_ms).max().unwrap_or(i64::MIN);
            let all_done = objects.iter().all(|o| processed.binary_search_by(|p| p.as_str().cmp(split(&o.key).1)).is_ok());
            let none_failed = objects.iter().all(|o| !self.failed.contains_key(&o.key));
            if all_done && none_failed && newest_ms < closed_before_ms {
                // Only the names still listed: the others have expired.
                let names = NameHashes::of(objects.iter().map(|o| split(&o.key).1));
                *entry = Folder::Done { objects: objects.len() as u64, newest_ms, names };
            }
        }
    }

    /// Number of folders recorded, open and done.
    pub fn folder_count(&self) -> (usize, usize) {
        let done = self.folders.values().filter(|f| matches!(f, Folder::Done { .. })).count();
        (self.folders.len() - done, done)
    }
}

fn by_folder(listing: &[ObjectMeta]) -> HashMap<&str, Vec<&ObjectMeta>> {
    let mut by_folder: HashMap<&str, Vec<&ObjectMeta>> = HashMap::new();
    for object in listing {
        by_folder.entry(split(&object.key).0).or_default().push(object);
    }
    by_folder
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str, last_modified_ms: i64) -> ObjectMeta {
        ObjectMeta::new(key, 1, last_modified_ms, None)
    }

    fn read(bytes: &[u8], raw: &str) -> Result<Checkpoint, CheckpointError> {
        Checkpoint::from_json(bytes, raw, |_| false)
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
        let round = read(&c.to_json(), "raw").unwrap();
        assert_eq!(round, c);
    }

    #[test]
    fn closed_folders_collapse_and_know_every_key_they_saw() {
        let mut c = Checkpoint::new("raw");
        let listing = vec![object("h07/a.gz", 100), object("h07/b.gz", 200), object("h08/c.gz", 300)];
        c.add_processed(["h07/a.gz", "h07/b.gz", "h08/c.gz"]);
        // h08 is still within the grace period; h07 is closed.
        c.collapse_closed_folders(&listing, 250);
        assert_eq!(c.folder_count(), (1, 1));
        assert!(c.is_processed(&listing[0], false) && c.is_processed(&listing[1], false));
        // A key the checkpoint has not seen is not processed, whether newer than the folder's
        // newest object or older (copied in with its old time kept).
        assert!(!c.is_processed(&object("h07/0-late.gz", 400), false));
        assert!(!c.is_processed(&object("h07/0-copied.gz", 50), false));
        // Once processed it is remembered in the done folder, and survives a round trip.
        c.add_processed(["h07/0-copied.gz"]);
        let c = read(&c.to_json(), "raw").unwrap();
        assert!(c.is_processed(&object("h07/0-copied.gz", 50), false));
        assert!(!c.is_processed(&object("h07/0-late.gz", 400), false));
        assert_eq!(c.folder_count(), (1, 1));
    }

    #[test]
    fn done_folders_keep_eight_bytes_a_name() {
        let names: Vec<String> =
            (0..1000).map(|i| format!("h07/cwms-1-2026-11-26-07-{i:02}-00-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0.gz")).collect();
        let listing: Vec<ObjectMeta> = names.iter().map(|n| object(n, 1)).collect();
        let mut c = Checkpoint::new("raw");
        c.add_processed(names.iter().map(String::as_str));
        let open = c.to_json().len();
        c.collapse_closed_folders(&listing, 10);
        let done = c.to_json().len();
        assert!(open > 75_000 && done < 12_000, "open {open} bytes, done {done}");
        assert!(listing.iter().all(|o| c.is_processed(o, false)));
    }

    #[test]
    fn the_name_hash_is_pinned() {
        // A checkpoint stores these: changing the hash would make every done folder unknown.
        assert_eq!(format!("{:016x}", name_hash("cwms-1-2026-11-26-07-00-00-abc.gz")), "446e1619c3790f7e");
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
    fn expired_folders_and_failures_are_forgotten() {
        let mut c = Checkpoint::new("raw");
        c.add_processed(["h1/a", "h2/b"]);
        c.add_failed("h3/c", "bad");
        c.reconcile(&[object("h2/b", 1)]);
        assert_eq!(c.folder_count(), (1, 0));
        assert!(c.failed().is_empty());
        assert!(!c.is_processed(&object("h1/a", 1), false), "forgotten: read again if it ever comes back");
    }

    #[test]
    fn version_1_checkpoints_are_read_and_their_done_folders_checked() {
        let v1 = br#"{"version": 1, "raw": "raw", "folders": {
            "h07": {"objects": 2, "newest_ms": 200},
            "h08": {"objects": 2, "newest_ms": 300},
            "h09": {"processed": ["x"]}
        }, "failed": {"h09/y": "bad"}}"#;
        let mut c = Checkpoint::from_json(v1, "/abs/raw", |old| old == "raw").unwrap();
        let listing = vec![
            object("h07/a", 100),
            object("h07/b", 200),
            object("h08/a", 100),
            object("h08/b", 200),
            object("h08/c", 50),
            object("h09/x", 1),
            object("h09/y", 1),
        ];
        c.reconcile(&listing);
        // h07 is as recorded; h08 gained an object (with an old time): read all of it again.
        assert!(c.is_processed(&listing[0], false) && c.is_processed(&listing[1], false));
        assert!(!c.is_processed(&listing[2], false) && !c.is_processed(&listing[4], false));
        assert!(c.is_processed(&listing[5], false) && c.is_processed(&listing[6], false));
        let v2 = String::from_utf8(c.to_json()).unwrap();
        assert!(v2.contains("\"version\": 2") && v2.contains("\"raw\": \"/abs/raw\""), "{v2}");
        assert!(read(v2.as_bytes(), "/abs/raw").is_ok());
        // A version 1 checkpoint for another raw zone is still refused.
        let err = Checkpoint::from_json(v1, "/abs/raw", |_| false).unwrap_err().to_string();
        assert_eq!(err, "the checkpoint is for raw zone \"raw\", not \"/abs/raw\"");
    }

    #[test]
    fn bad_checkpoints_are_refused() {
        assert!(matches!(read(b"{", "raw"), Err(CheckpointError::Invalid(_))));
        let other = Checkpoint::new("elsewhere").to_json();
        assert_eq!(read(&other, "raw").unwrap_err().to_string(), "the checkpoint is for raw zone \"elsewhere\", not \"raw\"");
        let future = String::from_utf8(Checkpoint::new("raw").to_json()).unwrap().replace("\"version\": 2", "\"version\": 9");
        assert_eq!(
            read(future.as_bytes(), "raw").unwrap_err().to_string(),
            "unsupported checkpoint version 9 (this cwms reads versions 1 and 2)"
        );
        for bad in [
            r#"{"version": 2, "raw": "raw", "folders": {"h": {"objects": 1, "newest_ms": 1, "names": "AAA"}}}"#,
            r#"{"version": 2, "raw": "raw", "folders": {"h": {"objects": 1, "newest_ms": 1}}}"#,
            r#"{"version": 2, "raw": "raw", "folders": {"h": {"processed": ["b", "a"]}}}"#,
            r#"{"version": 2, "raw": "raw", "folders": {"h": {"objects": 2, "newest_ms": 1, "names": "AgAAAAAAAAABAAAAAAAAAA=="}}}"#,
        ] {
            let err = read(bad.as_bytes(), "raw").unwrap_err();
            assert!(matches!(err, CheckpointError::Invalid(_)), "{bad}: {err}");
        }
    }
}

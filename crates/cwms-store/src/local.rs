//! A store on a local directory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use futures::FutureExt;

use crate::{BoxFuture, Error, Object, ObjectMeta, ObjectStore, PutMode, PutOutcome, Result, validate_key, validate_prefix};

/// File names starting with this are writes in progress: [`LocalStore::list`] never shows them.
/// Keys whose last segment starts with it are refused, so no object can hide behind it.
const TEMP_PREFIX: &str = ".cwms-tmp-";

/// The folder at the store root where writes in progress are made, then renamed into place: no
/// engine reading a partition folder ever sees a half-written file (or one a killed run left
/// behind), and the listing skips it.
const TEMP_DIR: &str = ".cwms-tmp";

/// A file in [`TEMP_DIR`] older than this is left from a run that was killed: removed when a
/// store opens. (A write in progress takes seconds; an hour leaves any live write alone.)
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// How many bytes [`LocalStore::get_chunks`] reads at a time.
const CHUNK_BYTES: usize = 4 << 20;

/// Deeper folders than this are not a raw zone or a lake (and are likely a link loop).
const MAX_DEPTH: usize = 64;

/// Serialises the check-and-rename of every [`LocalStore::put`] in this process.
///
/// Local file systems have no compare-and-swap on file content, so a conditional put reads the
/// current file, compares, and renames while holding this lock. The lock is a plain `std` mutex
/// taken on a blocking thread (never on an async worker), which keeps it held across the rename
/// even if the calling future is dropped. It covers one process only: two processes writing the
/// same directory can both win a conditional put. Use S3 when several compactors run at once.
static PUT_LOCK: Mutex<()> = Mutex::new(());

/// Makes temporary file names unique within the process (the process id makes them unique
/// across processes).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A store on a local directory: keys are paths relative to the root.
///
/// Writes go to a temporary file in the destination directory, are flushed to disk, then renamed
/// over the destination, so readers see the old or the new object, never a partial one. `ETags`
/// are the hex xxh3-128 hash of the content, computed on every read and write.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store on `root`, without touching the file system: [`put`](ObjectStore::put) creates
    /// directories as needed, and a missing root lists as empty.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// A store on `root`, creating the directory (and its parents) if missing, and checking that
    /// a file can be written in it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the directory cannot be created or written.
    pub async fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let store = Self::new(root);
        if tokio::fs::metadata(&store.root).await.is_ok_and(|m| !m.is_dir()) {
            return Err(Error::Io {
                op: "open folder",
                location: store.root.display().to_string(),
                source: io::Error::new(io::ErrorKind::NotADirectory, "it is a file, not a folder"),
            });
        }
        tokio::fs::create_dir_all(&store.root).await.map_err(|source| Error::Io {
            op: "create directory",
            location: store.root.display().to_string(),
            source,
        })?;
        store.remove_stale_temp_files().await;
        // A folder that cannot be written (read-only, another owner's) is found now, before a
        // run spends its time reading, not at its first write.
        let (temp_dir, root) = (store.root.join(TEMP_DIR), store.root.clone());
        blocking(move || TempFile::write(&temp_dir, &root.join("probe"), b"").map(drop)).await.map_err(|source| Error::Io {
            op: "write in folder",
            location: store.root.display().to_string(),
            source,
        })?;
        Ok(store)
    }

    /// A store on `root`, which must be an existing directory (for input: a mistyped path is an
    /// error, not an empty store).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the path when it does not exist, is not a directory, or cannot be read.
    pub async fn existing(root: impl Into<PathBuf>) -> Result<Self> {
        let store = Self::new(root);
        let location = store.root.display().to_string();
        match tokio::fs::metadata(&store.root).await {
            Ok(metadata) if metadata.is_dir() => Ok(store),
            Ok(_) => Err(Error::Io {
                op: "open folder",
                location,
                source: io::Error::new(io::ErrorKind::NotADirectory, "it is a file, not a folder"),
            }),
            Err(source) if source.kind() == io::ErrorKind::NotFound => {
                Err(Error::Io { op: "open folder", location, source: io::Error::new(io::ErrorKind::NotFound, "no such folder") })
            }
            Err(source) => Err(Error::Io { op: "open folder", location, source }),
        }
    }

    /// Removes what killed runs left in [`TEMP_DIR`] (and the folder, once empty), best effort.
    async fn remove_stale_temp_files(&self) {
        let dir = self.root.join(TEMP_DIR);
        let _ = blocking(move || {
            let Ok(entries) = fs::read_dir(&dir) else { return Ok(()) };
            for entry in entries.flatten() {
                let stale = entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_TEMP_AGE));
                if stale && entry.file_name().to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX)) {
                    let _ = fs::remove_file(entry.path());
                }
            }
            let _ = fs::remove_dir(&dir);
            Ok(())
        })
        .await;
    }

    /// The directory the keys are relative to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> PathBuf {
        let mut path = self.root.clone();
        path.extend(key.split('/'));
        path
    }

    fn io_error(&self, op: &'static str, key: &str) -> impl FnOnce(io::Error) -> Error {
        let location = self.describe(key);
        move |source| Error::Io { op, location, source }
    }

    async fn list_impl(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        validate_prefix(prefix)?;
        // Walk only the directory the prefix's complete segments name; its last, partial
        // segment is matched against names on the way.
        let dir_key = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
        let start = if dir_key.is_empty() { self.root.clone() } else { self.path_of(dir_key) };
        let (dir_key, prefix_owned) = (dir_key.to_owned(), prefix.to_owned());
        let on_error = self.io_error("list", prefix);
        blocking(move || {
            let mut objects = Vec::new();
            let mut ancestors = Vec::new();
            walk(&start, &dir_key, &prefix_owned, &mut objects, &mut ancestors)?;
            objects.sort_unstable_by(|a, b| a.key.cmp(&b.key));
            Ok(objects)
        })
        .await
        .map_err(on_error)
    }

    async fn get_impl(&self, key: &str) -> Result<Option<Object>> {
        validate_key(key)?;
        let path = self.path_of(key);
        let on_error = self.io_error("read", key);
        blocking(move || match fs::read(&path) {
            Ok(content) => {
                let etag = etag_of(&content);
                Ok(Some(Object { bytes: Bytes::from(content), etag: Some(etag) }))
            }
            Err(err) if is_absent(&err) => Ok(None),
            Err(err) => Err(err),
        })
        .await
        .map_err(on_error)
    }

    async fn put_impl(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<PutOutcome> {
        validate_key(key)?;
        if key.rsplit('/').next().is_some_and(|name| name.starts_with(TEMP_PREFIX)) {
            return Err(Error::InvalidKey {
                key: key.to_owned(),
                reason: "names starting with `.cwms-tmp-` are reserved for writes in progress",
            });
        }
        let path = self.path_of(key);
        let temp_dir = self.root.join(TEMP_DIR);
        let on_error = self.io_error("write", key);
        let outcome = blocking(move || {
            let etag = etag_of(&bytes);
            let temp = TempFile::write(&temp_dir, &path, &bytes)?;
            let _lock = PUT_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
            let holds = match &mode {
                PutMode::Overwrite => true,
                PutMode::Create => !exists(&path)?,
                PutMode::Update(expected) => match fs::read(&path) {
                    Ok(current) => etag_of(&current) == *expected,
                    Err(err) if is_absent(&err) => false,
                    Err(err) => return Err(err),
                },
            };
            if !holds {
                return Ok(PutOutcome::Conflict);
            }
            temp.persist(&path)?;
            Ok(PutOutcome::Written { etag: Some(etag) })
        })
        .await
        .map_err(on_error)?;
        tracing::debug!(location = %self.describe(key), ?outcome, "local put");
        Ok(outcome)
    }
}

impl ObjectStore for LocalStore {
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<ObjectMeta>>> {
        self.list_impl(prefix).boxed()
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Object>>> {
        self.get_impl(key).boxed()
    }

    fn put<'a>(&'a self, key: &'a str, bytes: Bytes, mode: PutMode) -> BoxFuture<'a, Result<PutOutcome>> {
        self.put_impl(key, bytes, mode).boxed()
    }

    fn get_chunks<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<crate::Chunks>>> {
        self.get_chunks_impl(key).boxed()
    }

    fn describe(&self, key: &str) -> String {
        if key.is_empty() { self.root.display().to_string() } else { self.path_of(key).display().to_string() }
    }

    fn identity(&self) -> String {
        let path = fs::canonicalize(&self.root).or_else(|_| std::path::absolute(&self.root)).unwrap_or_else(|_| self.root.clone());
        path.display().to_string()
    }
}

impl LocalStore {
    async fn get_chunks_impl(&self, key: &str) -> Result<Option<crate::Chunks>> {
        validate_key(key)?;
        let path = self.path_of(key);
        let on_error = self.io_error("read", key);
        let file = match blocking(move || {
            File::open(&path).and_then(|f| if f.metadata()?.is_dir() { Err(io::ErrorKind::IsADirectory.into()) } else { Ok(f) })
        })
        .await
        {
            Ok(file) => file,
            Err(err) if is_absent(&err) => return Ok(None),
            Err(err) => return Err(on_error(err)),
        };
        let location = self.describe(key);
        let chunks = futures::stream::try_unfold(Some(file), move |file| {
            let location = location.clone();
            async move {
                let Some(mut file) = file else { return Ok(None) };
                let (file, chunk) = blocking(move || {
                    use std::io::Read;
                    // read_to_end fills the spare capacity without zeroing it first.
                    let mut chunk = Vec::with_capacity(CHUNK_BYTES);
                    (&mut file).take(CHUNK_BYTES as u64).read_to_end(&mut chunk)?;
                    Ok((file, chunk))
                })
                .await
                .map_err(|source| Error::Io { op: "read", location, source })?;
                if chunk.is_empty() {
                    return Ok(None);
                }
                Ok(Some((Bytes::from(chunk), Some(file))))
            }
        });
        Ok(Some(Box::pin(chunks)))
    }
}

/// Runs file system work on tokio's blocking pool, so async workers never wait on a disk.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        // The closure panicked: carry the panic to the caller rather than invent an error.
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(io::Error::other(err)),
    }
}

/// The `ETag` of a local object: the hex xxh3-128 hash of its bytes (fast, and collisions are out
/// of reach for content that is not crafted to collide).
fn etag_of(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// Whether a read error means "no object at this key": the file is missing, the key names a
/// directory (key `a` while `a/b` exists), or a parent is a file (key `a/b` while `a` exists).
fn is_absent(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::IsADirectory | io::ErrorKind::NotADirectory)
}

fn exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if is_absent(&err) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Collects the files under `dir` (whose key is `dir_key`) whose keys start with `prefix`.
///
/// Entries that cannot be objects are listed with their [`ObjectMeta::problem`] rather than
/// failing the whole listing or being skipped unseen: a dangling symbolic link, a link to one
/// of its own ancestors (a loop), a name that is not UTF-8, a folder that cannot be read, a
/// key with a backslash. `ancestors` holds the directories (device and inode) on the way down.
fn walk(dir: &Path, dir_key: &str, prefix: &str, out: &mut Vec<ObjectMeta>, ancestors: &mut Vec<(u64, u64)>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // A prefix naming no directory lists nothing, as on S3.
        Err(err) if is_absent(&err) => return Ok(()),
        Err(err) => return Err(err),
    };
    let this = fs::metadata(dir).map(|m| file_id(&m))?;
    ancestors.push(this);
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let (name, mut problem) = match name.to_str() {
            Some(name) => (name.to_owned(), None),
            None => (name.to_string_lossy().into_owned(), Some("the file name is not UTF-8, so it cannot be a key".to_owned())),
        };
        if name.starts_with(TEMP_PREFIX) || (dir_key.is_empty() && name == TEMP_DIR) {
            continue;
        }
        let key = if dir_key.is_empty() { name.clone() } else { format!("{dir_key}/{name}") };
        let path = entry.path();
        let link = fs::symlink_metadata(&path)?;
        // Follow links to files and directories alike, as `fs::read` does for `get`.
        let metadata = match fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(err) => {
                if key.starts_with(prefix) {
                    let why = if link.file_type().is_symlink() { "a symbolic link whose target cannot be read" } else { "cannot be read" };
                    out.push(listed_problem(&key, &link, format!("{}: {why}: {err}", path.display())));
                }
                continue;
            }
        };
        if metadata.is_dir() {
            let dir_key = format!("{key}/");
            if !(dir_key.starts_with(prefix) || prefix.starts_with(&dir_key)) {
                continue;
            }
            if ancestors.contains(&file_id(&metadata)) {
                out.push(listed_problem(&key, &link, format!("{}: a link to a folder above it (a loop); not followed", path.display())));
            } else if ancestors.len() >= MAX_DEPTH {
                out.push(listed_problem(&key, &link, format!("{}: folders nested deeper than {MAX_DEPTH}; not followed", path.display())));
            } else if let Err(err) = walk(&path, &key, prefix, out, ancestors) {
                out.push(listed_problem(&key, &link, format!("{}: the folder cannot be read: {err}", path.display())));
            }
        } else if metadata.is_file() && key.starts_with(prefix) {
            if problem.is_none() {
                problem = validate_key(&key).err().map(|e| e.to_string());
            }
            out.push(ObjectMeta { key, size: metadata.len(), last_modified_ms: epoch_ms(metadata.modified()?), etag: None, problem });
        }
    }
    ancestors.pop();
    Ok(())
}

fn listed_problem(key: &str, metadata: &fs::Metadata, problem: String) -> ObjectMeta {
    ObjectMeta {
        key: key.to_owned(),
        size: 0,
        last_modified_ms: metadata.modified().map_or(0, epoch_ms),
        etag: None,
        problem: Some(problem),
    }
}

#[cfg(unix)]
fn file_id(metadata: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (metadata.dev(), metadata.ino())
}

#[cfg(not(unix))]
fn file_id(_: &fs::Metadata) -> (u64, u64) {
    // No inode to compare: loops are caught by the depth limit.
    (0, 0)
}

fn epoch_ms(time: std::time::SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// A fully written temporary file in the store's [`TEMP_DIR`], removed on drop unless persisted.
/// The folder itself is removed once empty, so a finished run leaves nothing behind.
struct TempFile {
    path: Option<PathBuf>,
    dir: PathBuf,
}

impl TempFile {
    /// Writes `bytes` to a new file in `temp_dir` (created if needed), to be renamed to
    /// `destination`, whose folder is created too.
    fn write(temp_dir: &Path, destination: &Path, bytes: &[u8]) -> io::Result<Self> {
        let dir = destination.parent().expect("an object path always has the store root as an ancestor");
        fs::create_dir_all(dir)?;
        let name = format!("{TEMP_PREFIX}{}-{}", std::process::id(), TEMP_COUNTER.fetch_add(1, Ordering::Relaxed));
        let temp = Self { path: Some(temp_dir.join(name)), dir: temp_dir.to_owned() };
        // Another write (of this process or another) removes the folder when it empties it:
        // make it again and retry, a few times.
        let mut attempts = 0;
        let mut file = loop {
            fs::create_dir_all(temp_dir)?;
            match File::create_new(temp.path()) {
                Err(err) if err.kind() == io::ErrorKind::NotFound && attempts < 8 => attempts += 1,
                other => break other?,
            }
        };
        file.write_all(bytes)?;
        // Flush the content before the rename makes it visible: otherwise a crash could leave
        // the new name pointing at an empty or partial file.
        file.sync_all()?;
        Ok(temp)
    }

    fn path(&self) -> &Path {
        self.path.as_deref().expect("only persist takes the path")
    }

    fn persist(mut self, destination: &Path) -> io::Result<()> {
        if let Err(err) = fs::rename(self.path(), destination) {
            // A folder of the store on another file system (a mount point): copy beside the
            // destination first, so the final rename is still within one file system.
            if err.kind() != io::ErrorKind::CrossesDevices {
                return Err(err);
            }
            let dir = destination.parent().expect("an object path always has the store root as an ancestor");
            let beside = dir.join(self.path().file_name().expect("temporary files have names"));
            fs::copy(self.path(), &beside)?;
            fs::remove_file(self.path())?;
            self.path = Some(beside);
            fs::rename(self.path(), destination)?;
        }
        self.path = None;
        // Only succeeds when no other write is in progress.
        let _ = fs::remove_dir(&self.dir);
        // Make the rename itself durable. Directories cannot be opened for syncing everywhere
        // (Windows), and the object is already in place, so this is best effort.
        if let Some(dir) = destination.parent()
            && let Ok(dir) = File::open(dir)
        {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take()
            && let Err(err) = fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), %err, "cannot remove a temporary file");
        }
        let _ = fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path().join("root"));
        (dir, store)
    }

    async fn put(store: &LocalStore, key: &str, bytes: &'static [u8], mode: PutMode) -> PutOutcome {
        store.put(key, Bytes::from_static(bytes), mode).await.unwrap_or_else(|err| panic!("put {key}: {err}"))
    }

    async fn get(store: &LocalStore, key: &str) -> Option<Object> {
        store.get(key).await.unwrap_or_else(|err| panic!("get {key}: {err}"))
    }

    async fn keys(store: &LocalStore, prefix: &str) -> Vec<String> {
        let listed = store.list(prefix).await.unwrap();
        listed.into_iter().map(|meta| meta.key).collect()
    }

    fn written_etag(outcome: PutOutcome) -> String {
        match outcome {
            PutOutcome::Written { etag: Some(etag) } => etag,
            other => panic!("expected a write with an etag, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn round_trip() {
        let (_dir, store) = store();
        let etag = written_etag(put(&store, "a/b/c.txt", b"hello", PutMode::Overwrite).await);
        let object = get(&store, "a/b/c.txt").await.expect("object exists");
        assert_eq!(object.bytes, Bytes::from_static(b"hello"));
        assert_eq!(object.etag.as_deref(), Some(etag.as_str()));
        assert_eq!(etag, etag_of(b"hello"));
        assert_eq!(etag.len(), 32);

        let listed = store.list("").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].key, "a/b/c.txt");
        assert_eq!(listed[0].size, 5);
        let age_ms = epoch_ms(std::time::SystemTime::now()) - listed[0].last_modified_ms;
        assert!((0..60_000).contains(&age_ms), "mtime {age_ms} ms ago");
    }

    #[tokio::test]
    async fn missing_keys_read_as_none() {
        let (_dir, store) = store();
        assert!(get(&store, "nothing").await.is_none());
        put(&store, "a/b", b"x", PutMode::Overwrite).await;
        // `a` is a directory and `a/b/c` has a file as parent: neither is an object.
        assert!(get(&store, "a").await.is_none());
        assert!(get(&store, "a/b/c").await.is_none());
        assert!(get(&store, "a/c").await.is_none());
    }

    #[tokio::test]
    async fn list_is_sorted_and_filtered_by_prefix() {
        let (_dir, store) = store();
        assert_eq!(keys(&store, "").await, Vec::<String>::new());
        for key in ["raw/2026/11/b", "raw/2026/11/a", "raw/2026/2/x", "raw/20", "lake/x", "rawer"] {
            put(&store, key, b"x", PutMode::Overwrite).await;
        }
        assert_eq!(keys(&store, "").await, ["lake/x", "raw/20", "raw/2026/11/a", "raw/2026/11/b", "raw/2026/2/x", "rawer"]);
        assert_eq!(keys(&store, "raw/").await, ["raw/20", "raw/2026/11/a", "raw/2026/11/b", "raw/2026/2/x"]);
        assert_eq!(keys(&store, "raw").await.len(), 5);
        assert_eq!(keys(&store, "raw/2026/1").await, ["raw/2026/11/a", "raw/2026/11/b"]);
        assert_eq!(keys(&store, "raw/2026/11/a").await, ["raw/2026/11/a"]);
        assert_eq!(keys(&store, "missing/dir/").await, Vec::<String>::new());
        assert_eq!(keys(&store, "lake/x/").await, Vec::<String>::new());
    }

    #[tokio::test]
    async fn temp_files_are_not_listed_and_not_left_behind() {
        let (_dir, store) = store();
        put(&store, "d/obj", b"x", PutMode::Overwrite).await;
        // A write in progress (or one a crash left behind) sits beside its destination.
        let stray = store.path_of("d").join(format!("{TEMP_PREFIX}123-0"));
        fs::write(&stray, b"partial").unwrap();
        assert_eq!(keys(&store, "").await, ["d/obj"]);
        assert_eq!(keys(&store, "d/.cwms").await, Vec::<String>::new());
        fs::remove_file(&stray).unwrap();

        // Successful and refused writes alike leave only the object.
        put(&store, "d/obj", b"y", PutMode::Overwrite).await;
        assert_eq!(put(&store, "d/obj", b"z", PutMode::Create).await, PutOutcome::Conflict);
        let mut names: Vec<_> =
            fs::read_dir(store.path_of("d")).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["obj"]);

        let err = store.put("d/.cwms-tmp-x", Bytes::new(), PutMode::Overwrite).await.unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }), "{err}");
    }

    #[tokio::test]
    async fn writes_in_progress_live_outside_the_partitions_and_stale_ones_are_removed() {
        let (_dir, store) = store();
        put(&store, "metrics_1m/dt=2026-11-26/namespace=X/07.parquet", b"x", PutMode::Overwrite).await;
        let folder = store.path_of("metrics_1m/dt=2026-11-26/namespace=X");
        let names: Vec<_> = fs::read_dir(&folder).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, ["07.parquet"]);
        // A finished write leaves no temporary folder behind.
        assert!(!store.root().join(TEMP_DIR).exists());
        fs::create_dir(store.root().join(TEMP_DIR)).unwrap();
        // What a killed run leaves in the temporary folder goes when a store opens, once stale.
        let stale = store.root().join(TEMP_DIR).join(format!("{TEMP_PREFIX}1-1"));
        let fresh = store.root().join(TEMP_DIR).join(format!("{TEMP_PREFIX}1-2"));
        fs::write(&stale, b"partial").unwrap();
        fs::write(&fresh, b"in progress").unwrap();
        let old = std::time::SystemTime::now() - STALE_TEMP_AGE - std::time::Duration::from_secs(60);
        File::options().write(true).open(&stale).unwrap().set_modified(old).unwrap();
        LocalStore::create(store.root()).await.unwrap();
        assert!(!stale.exists() && fresh.exists());
        assert_eq!(keys(&store, "").await, ["metrics_1m/dt=2026-11-26/namespace=X/07.parquet"]);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn entries_that_cannot_be_objects_are_listed_with_a_reason() {
        use std::os::unix::ffi::OsStrExt;
        let (_dir, store) = store();
        put(&store, "raw/a.gz", b"x", PutMode::Overwrite).await;
        let raw = store.path_of("raw");
        std::os::unix::fs::symlink(raw.join("missing.gz"), raw.join("dangling.gz")).unwrap();
        std::os::unix::fs::symlink(&raw, raw.join("loop")).unwrap();
        fs::write(raw.join("back\\slash.gz"), b"x").unwrap();
        fs::write(raw.join(std::ffi::OsStr::from_bytes(b"bad\xff.gz")), b"x").unwrap();
        let listed = store.list("").await.unwrap();
        let got: Vec<(String, Option<String>)> = listed.into_iter().map(|m| (m.key, m.problem)).collect();
        let problem = |key: &str| got.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("{key} not listed: {got:?}")).1.clone();
        assert_eq!(problem("raw/a.gz"), None);
        let dangling = problem("raw/dangling.gz").unwrap();
        assert!(dangling.contains("dangling.gz: a symbolic link whose target cannot be read"), "{dangling}");
        assert!(problem("raw/loop").unwrap().contains("a link to a folder above it (a loop)"));
        assert!(problem("raw/back\\slash.gz").unwrap().contains("backslash"));
        assert!(problem("raw/bad\u{fffd}.gz").unwrap().contains("not UTF-8"));
        assert_eq!(got.len(), 5, "{got:?}");
    }

    #[tokio::test]
    async fn an_input_folder_must_exist() {
        let (dir, store) = store();
        let err = LocalStore::existing(dir.path().join("nowhere")).await.unwrap_err();
        assert_eq!(err.to_string(), format!("open folder {}", dir.path().join("nowhere").display()));
        assert!(!dir.path().join("nowhere").exists(), "nothing is created");
        put(&store, "file", b"x", PutMode::Overwrite).await;
        let err = LocalStore::existing(store.path_of("file")).await.unwrap_err();
        assert!(format!("{:?}", std::error::Error::source(&err)).contains("it is a file, not a folder"), "{err:?}");
        assert!(LocalStore::existing(store.root()).await.is_ok());
    }

    #[tokio::test]
    async fn one_folder_has_one_identity_however_it_is_spelled() {
        let (dir, store) = store();
        put(&store, "raw/a", b"x", PutMode::Overwrite).await;
        let absolute = LocalStore::new(store.root().join("raw")).identity();
        let dotted = LocalStore::new(store.root().join("./raw/")).identity();
        let around = LocalStore::new(store.root().join("raw/../raw")).identity();
        assert_eq!(absolute, dotted);
        assert_eq!(absolute, around);
        assert!(absolute.starts_with(&fs::canonicalize(dir.path()).unwrap().display().to_string()));
    }

    #[tokio::test]
    async fn chunks_read_the_whole_object() {
        let (_dir, store) = store();
        let big: Vec<u8> = (0..CHUNK_BYTES * 2 + 17).map(|i| i as u8).collect();
        store.put("big", Bytes::from(big.clone()), PutMode::Overwrite).await.unwrap();
        let chunks: Vec<Bytes> = futures::TryStreamExt::try_collect(store.get_chunks("big").await.unwrap().unwrap()).await.unwrap();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks.concat(), big);
        assert!(store.get_chunks("absent").await.unwrap().is_none());
        put(&store, "dir/x", b"x", PutMode::Overwrite).await;
        assert!(store.get_chunks("dir").await.unwrap().is_none(), "a folder is no object");
    }

    #[tokio::test]
    async fn create_writes_only_when_absent() {
        let (_dir, store) = store();
        written_etag(put(&store, "k", b"first", PutMode::Create).await);
        assert_eq!(put(&store, "k", b"second", PutMode::Create).await, PutOutcome::Conflict);
        assert_eq!(get(&store, "k").await.unwrap().bytes, Bytes::from_static(b"first"));
    }

    #[tokio::test]
    async fn update_writes_only_over_the_expected_version() {
        let (_dir, store) = store();
        let stale = written_etag(put(&store, "k", b"v1", PutMode::Overwrite).await);
        let current = written_etag(put(&store, "k", b"v2", PutMode::Overwrite).await);
        assert_ne!(stale, current);

        assert_eq!(put(&store, "k", b"lost", PutMode::Update(stale)).await, PutOutcome::Conflict);
        assert_eq!(get(&store, "k").await.unwrap().bytes, Bytes::from_static(b"v2"));

        let next = written_etag(put(&store, "k", b"v3", PutMode::Update(current)).await);
        let object = get(&store, "k").await.unwrap();
        assert_eq!(object.bytes, Bytes::from_static(b"v3"));
        assert_eq!(object.etag, Some(next));

        assert_eq!(put(&store, "missing", b"x", PutMode::Update(etag_of(b"x"))).await, PutOutcome::Conflict);
        assert!(get(&store, "missing").await.is_none());
    }

    /// Within one process the lock makes the check and the rename one step. Several rounds,
    /// with objects large enough that reading and hashing the current one takes a while, give a
    /// missing or misplaced lock every chance to let two writers win.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_updates_have_one_winner() {
        const WRITERS: usize = 16;
        const ROUNDS: usize = 10;
        let (_dir, store) = store();
        let mut etag = written_etag(put(&store, "k", b"v0", PutMode::Overwrite).await);
        for round in 0..ROUNDS {
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS));
            let writers = (0..WRITERS).map(|i| {
                let (store, etag, barrier) = (store.clone(), etag.clone(), barrier.clone());
                tokio::spawn(async move {
                    let mut bytes = vec![u8::try_from(i).unwrap(); 256 * 1024];
                    bytes[0] = u8::try_from(round).unwrap();
                    barrier.wait().await;
                    store.put("k", Bytes::from(bytes), PutMode::Update(etag)).await.unwrap()
                })
            });
            let outcomes = futures::future::try_join_all(writers).await.unwrap();
            let winners: Vec<usize> = (0..WRITERS).filter(|&i| matches!(outcomes[i], PutOutcome::Written { .. })).collect();
            assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
            let object = get(&store, "k").await.unwrap();
            assert_eq!(object.bytes[0], u8::try_from(round).unwrap());
            assert_eq!(object.bytes[1], u8::try_from(winners[0]).unwrap());
            etag = object.etag.unwrap();
        }
    }

    #[tokio::test]
    async fn invalid_keys_are_refused_before_any_io() {
        let (dir, store) = store();
        for key in ["", "../escape", "/abs", "a//b", "a/"] {
            let err = store.put(key, Bytes::new(), PutMode::Overwrite).await.unwrap_err();
            assert!(matches!(err, Error::InvalidKey { .. }), "{key}: {err}");
            let err = store.get(key).await.unwrap_err();
            assert!(matches!(err, Error::InvalidKey { .. }), "{key}: {err}");
        }
        assert!(!dir.path().join("escape").exists());
        assert!(!store.root().exists());
    }

    #[tokio::test]
    async fn errors_name_the_operation_and_the_location() {
        let (_dir, store) = store();
        put(&store, "file", b"x", PutMode::Overwrite).await;
        // The parent of `file/child` is a file, so the write cannot create its directory.
        let err = store.put("file/child", Bytes::new(), PutMode::Overwrite).await.unwrap_err();
        let expected = format!("write {}", store.root().join("file").join("child").display());
        assert_eq!(err.to_string(), expected);
        assert!(std::error::Error::source(&err).is_some());
    }
}

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

    /// A store on `root`, creating the directory (and its parents) if missing.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the directory cannot be created.
    pub async fn create(root: impl Into<PathBuf>) -> Result<Self> {
        let store = Self::new(root);
        tokio::fs::create_dir_all(&store.root).await.map_err(|source| Error::Io {
            op: "create directory",
            location: store.root.display().to_string(),
            source,
        })?;
        Ok(store)
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
            walk(&start, &dir_key, &prefix_owned, &mut objects)?;
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
        let on_error = self.io_error("write", key);
        let outcome = blocking(move || {
            let etag = etag_of(&bytes);
            let temp = TempFile::write(&path, &bytes)?;
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

    fn describe(&self, key: &str) -> String {
        if key.is_empty() { self.root.display().to_string() } else { self.path_of(key).display().to_string() }
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
fn walk(dir: &Path, dir_key: &str, prefix: &str, out: &mut Vec<ObjectMeta>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // A prefix naming no directory lists nothing, as on S3.
        Err(err) if is_absent(&err) => return Ok(()),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} has a file name that is not UTF-8, so it cannot be a key", entry.path().display()),
            ));
        };
        if name.starts_with(TEMP_PREFIX) {
            continue;
        }
        let key = if dir_key.is_empty() { name.to_owned() } else { format!("{dir_key}/{name}") };
        // Descend only where keys can still match: `key/` must extend the prefix or the
        // prefix must extend `key/`.
        let mut file_type = entry.file_type()?;
        if file_type.is_symlink() {
            // Follow links to files and directories alike, as `fs::read` does for `get`.
            file_type = fs::metadata(entry.path())?.file_type();
        }
        if file_type.is_dir() {
            let dir_key = format!("{key}/");
            if dir_key.starts_with(prefix) || prefix.starts_with(&dir_key) {
                walk(&entry.path(), &key, prefix, out)?;
            }
        } else if file_type.is_file() && key.starts_with(prefix) {
            let metadata = fs::metadata(entry.path())?;
            out.push(ObjectMeta { key, size: metadata.len(), last_modified_ms: epoch_ms(metadata.modified()?), etag: None });
        }
    }
    Ok(())
}

fn epoch_ms(time: std::time::SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// A fully written temporary file beside its destination, removed on drop unless persisted.
struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    fn write(destination: &Path, bytes: &[u8]) -> io::Result<Self> {
        let dir = destination.parent().expect("an object path always has the store root as an ancestor");
        fs::create_dir_all(dir)?;
        let name = format!("{TEMP_PREFIX}{}-{}", std::process::id(), TEMP_COUNTER.fetch_add(1, Ordering::Relaxed));
        let temp = Self { path: Some(dir.join(name)) };
        let mut file = File::create_new(temp.path())?;
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
        fs::rename(self.path(), destination)?;
        self.path = None;
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

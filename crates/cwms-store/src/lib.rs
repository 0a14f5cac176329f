//! Object storage behind one small trait: a local directory or S3
//!
//! The lake and the raw zone are read and written only through [`ObjectStore`], so every stage
//! runs unchanged against a local directory ([`LocalStore`], the CLI's default), AWS S3 or any
//! S3-compatible endpoint ([`S3Store`]). The trait is deliberately small: the compaction protocol
//! (DESIGN 4.4) needs to list a prefix, read an object with its `ETag`, and write an object either
//! unconditionally or conditionally on what was read, so that two concurrent compactors cannot
//! lose an update.
//!
//! Keys are relative to the store root (the prefix of an `s3://bucket/prefix` URL, or the
//! directory) and always use `/` as the separator. They are checked the same way by every store
//! (see [`validate_key`]), so a key that works locally works on S3 and the other way round.
//!
//! A read-modify-write that cannot lose a concurrent update:
//!
//! ```no_run
//! use cwms_store::{PutMode, PutOutcome};
//!
//! # async fn example() -> cwms_store::Result<()> {
//! let store = cwms_store::open("s3://my-bucket/lake").await?;
//! loop {
//!     let current = store.get("_cwms/checkpoint.json").await?;
//!     let (mut content, mode) = match current {
//!         Some(object) => {
//!             let etag = object.etag.expect("S3 and the local store always send ETags");
//!             (object.bytes.to_vec(), PutMode::Update(etag))
//!         }
//!         None => (Vec::new(), PutMode::Create),
//!     };
//!     content.extend_from_slice(b"more\n");
//!     match store.put("_cwms/checkpoint.json", content.into(), mode).await? {
//!         PutOutcome::Written { .. } => break,
//!         // Another writer got there first: read its version and apply the change again.
//!         PutOutcome::Conflict => continue,
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;

mod error;
mod key;
mod local;
#[cfg(feature = "s3")]
mod s3;

pub use error::{Error, Result};
pub use key::{validate_key, validate_prefix};
pub use local::LocalStore;
#[cfg(feature = "s3")]
pub use s3::{DEFAULT_MULTIPART_PART_SIZE, DEFAULT_MULTIPART_THRESHOLD, MIN_MULTIPART_PART_SIZE, S3Store, s3_client, s3_client_from_env};

/// The boxed future every [`ObjectStore`] method returns, so the trait stays object safe and
/// callers can hold an `Arc<dyn ObjectStore>` chosen at run time.
pub type BoxFuture<'a, T> = futures::future::BoxFuture<'a, T>;

/// What a listing says about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The key relative to the store root, with `/` separators.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time in milliseconds since the Unix epoch.
    pub last_modified_ms: i64,
    /// The entity tag, when the store reports it in listings.
    ///
    /// [`LocalStore`] does not (it would have to read every file to hash it) and neither does
    /// s3s-fs; AWS S3 and moto do. Use [`ObjectStore::get`] for an ETag to make a conditional
    /// write on.
    pub etag: Option<String>,
    /// Why this listed entry cannot be read as an object, when the listing already knows: a
    /// dangling symbolic link, a link loop, a file or folder name that is not UTF-8, a folder
    /// that cannot be read, a key that breaks [`validate_key`] (a backslash). Such an entry is
    /// listed rather than left out, so that a caller can report it by name instead of skipping
    /// it silently.
    pub problem: Option<String>,
}

impl ObjectMeta {
    /// A listed object that can be read.
    pub fn new(key: impl Into<String>, size: u64, last_modified_ms: i64, etag: Option<String>) -> ObjectMeta {
        ObjectMeta { key: key.into(), size, last_modified_ms, etag, problem: None }
    }
}

/// An object's bytes as a stream of chunks, in order (see [`ObjectStore::get_chunks`]).
pub type Chunks = futures::stream::BoxStream<'static, Result<bytes::Bytes>>;

/// The content of one object and the entity tag it was read with.
#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: bytes::Bytes,
    /// An opaque token naming this version of the object: pass it unchanged to
    /// [`PutMode::Update`]. `None` only when an S3-compatible server sends no ETag.
    pub etag: Option<String>,
}

/// The condition under which [`ObjectStore::put`] writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    /// Write whatever is there (S3 `PutObject` without preconditions).
    Overwrite,
    /// Write only if no object exists at the key (S3 `If-None-Match: *`).
    Create,
    /// Write only if the object's current ETag is this one (S3 `If-Match`): a compare-and-swap
    /// on the version that was read.
    Update(String),
}

/// What came of a [`ObjectStore::put`] that did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The object was written; `etag` names the new version when the store reports it.
    Written { etag: Option<String> },
    /// The precondition of [`PutMode::Create`] or [`PutMode::Update`] did not hold: another
    /// writer got there first. Re-read, re-merge and try again.
    ///
    /// A retried request whose first attempt did succeed can also report a conflict (its own
    /// write changed the ETag); re-reading and re-merging is safe because merging is idempotent.
    Conflict,
}

/// Object storage as the lake needs it: list, get, and a put that is atomic for readers and may
/// be conditional.
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// Every object whose key starts with `prefix` (relative to the store root), all pages,
    /// sorted by key.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, Result<Vec<ObjectMeta>>>;

    /// The object at `key`, or `None` when the key does not exist.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Object>>>;

    /// The object at `key` as chunks of at most a few megabytes, so that an object of any size
    /// can be read in bounded memory; `None` when the key does not exist. An error after the
    /// first chunk (a connection cut, a disk error) comes as the stream's last item.
    fn get_chunks<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Chunks>>>;

    /// Writes `bytes` at `key` under the condition `mode`. Readers see the old object or the
    /// new one, never a mix.
    fn put<'a>(&'a self, key: &'a str, bytes: bytes::Bytes, mode: PutMode) -> BoxFuture<'a, Result<PutOutcome>>;

    /// Human-readable location of a key for messages, e.g. `s3://bucket/prefix/key` or
    /// `/path/to/dir/key`.
    fn describe(&self, key: &str) -> String;

    /// What the store is, however it was spelled: `s3://bucket/prefix` for S3 (no trailing `/`),
    /// the absolute, canonical path for a directory (`./raw/`, `raw` and `/home/me/raw` are one
    /// store). A checkpoint names its raw zone by this.
    fn identity(&self) -> String;
}

/// Whether the store `inner` lies within the store `outer` (or is it), by their
/// [`ObjectStore::identity`]: a lake inside its raw zone would be read as raw objects.
pub fn contains(outer: &str, inner: &str) -> bool {
    let outer = outer.trim_end_matches('/');
    let inner = inner.trim_end_matches('/');
    if outer.starts_with("s3://") != inner.starts_with("s3://") {
        return false;
    }
    // An S3 bucket root is `s3://bucket`; a directory root is `/`.
    inner == outer || inner.starts_with(&format!("{outer}/")) || outer.is_empty()
}

/// Opens a store from a location given by a user.
///
/// `s3://bucket[/prefix]` opens an [`S3Store`] with a client configured from the environment
/// (see [`s3_client_from_env`]). Any other location is a local directory, created if missing;
/// a location that looks like a URL of another scheme (`s3a://`, `gs://`, `file://`) is refused
/// rather than silently becoming an oddly named directory.
///
/// # Errors
///
/// [`Error::InvalidLocation`] for a location that is neither, and [`Error::Io`] when the
/// directory cannot be created. Opening S3 sends no request to S3, so a wrong bucket or missing
/// credentials show up on the first operation.
pub async fn open(location: &str) -> Result<Arc<dyn ObjectStore>> {
    Ok(match Location::parse(location)? {
        Location::S3 { bucket, prefix } => s3_store(bucket, prefix, location).await?,
        Location::Local(path) => Arc::new(LocalStore::create(path).await?),
    })
}

/// Opens a store that must already exist, for input: [`open`], except that a local directory
/// is never created. A missing path, or a path that is a file, is an error naming it (a
/// mistyped `--raw` should not quietly read nothing). An S3 location is not checked here (the
/// first listing shows a missing bucket).
///
/// # Errors
///
/// [`Error::InvalidLocation`] as for [`open`], and [`Error::Io`] for a path that is missing or
/// not a directory.
pub async fn open_existing(location: &str) -> Result<Arc<dyn ObjectStore>> {
    Ok(match Location::parse(location)? {
        Location::S3 { bucket, prefix } => s3_store(bucket, prefix, location).await?,
        Location::Local(path) => Arc::new(LocalStore::existing(path).await?),
    })
}

#[cfg(feature = "s3")]
async fn s3_store(bucket: &str, prefix: &str, _location: &str) -> Result<Arc<dyn ObjectStore>> {
    Ok(Arc::new(S3Store::new(s3_client_from_env().await, bucket, prefix)))
}

#[cfg(not(feature = "s3"))]
async fn s3_store(_bucket: &str, _prefix: &str, location: &str) -> Result<Arc<dyn ObjectStore>> {
    Err(Error::InvalidLocation {
        location: location.to_owned(),
        reason: "this cwms was built without S3 support (its `s3` feature, on by default); build it with its default features",
    })
}

/// Where [`open`] finds a store, parsed without touching the network or the file system.
#[derive(Debug, PartialEq, Eq)]
enum Location<'a> {
    S3 { bucket: &'a str, prefix: &'a str },
    Local(&'a str),
}

impl<'a> Location<'a> {
    fn parse(location: &'a str) -> Result<Self> {
        let invalid = |reason| Error::InvalidLocation { location: location.to_owned(), reason };
        if let Some(rest) = location.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("the bucket name is missing"));
            }
            let prefix = prefix.trim_matches('/');
            if !prefix.is_empty() && validate_key(prefix).is_err() {
                return Err(invalid("the prefix has an empty, `.` or `..` segment, a backslash or a NUL"));
            }
            return Ok(Self::S3 { bucket, prefix });
        }
        if let Some((scheme, _)) = location.split_once("://")
            && !scheme.is_empty()
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err(invalid("only s3:// URLs and local directory paths are supported"));
        }
        // `s3:/bucket` or `s3:bucket` (one slash or none) is a mistyped URL, not a folder named `s3:`.
        // A Windows drive (`C:\lake`, `C:/lake`) has a one-letter "scheme" and stays a path.
        if let Some((scheme, _)) = location.split_once(':')
            && scheme.len() > 1
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        {
            return Err(invalid("this looks like a URL with a missing `/` (write s3://BUCKET/PREFIX), not a folder"));
        }
        if location.is_empty() {
            return Err(invalid("the location is empty"));
        }
        Ok(Self::Local(location))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(location: &str, expected: Result<Location<'_>, &str>) {
        let actual = Location::parse(location).map_err(|err| err.to_string());
        assert_eq!(actual, expected.map_err(str::to_owned), "{location}");
    }

    #[test]
    fn locations() {
        use Location::*;
        check("s3://bucket", Ok(S3 { bucket: "bucket", prefix: "" }));
        check("s3://bucket/", Ok(S3 { bucket: "bucket", prefix: "" }));
        check("s3://bucket/lake/raw/", Ok(S3 { bucket: "bucket", prefix: "lake/raw" }));
        check("/var/lake", Ok(Local("/var/lake")));
        check("lake", Ok(Local("lake")));
        check("C:\\lake", Ok(Local("C:\\lake")));
        check("", Err("invalid store location \"\": the location is empty"));
        check("s3://", Err("invalid store location \"s3://\": the bucket name is missing"));
        check("s3:///x", Err("invalid store location \"s3:///x\": the bucket name is missing"));
        check(
            "s3://bucket/a//b",
            Err("invalid store location \"s3://bucket/a//b\": the prefix has an empty, `.` or `..` segment, a backslash or a NUL"),
        );
        check(
            "s3://bucket/../b",
            Err("invalid store location \"s3://bucket/../b\": the prefix has an empty, `.` or `..` segment, a backslash or a NUL"),
        );
        for other in ["s3a://bucket/x", "gs://bucket", "file:///tmp/lake"] {
            check(other, Err(&format!("invalid store location {other:?}: only s3:// URLs and local directory paths are supported")));
        }
        for typo in ["s3:/x", "s3:bucket/lake", "S3:/b", "https:/host"] {
            check(
                typo,
                Err(&format!(
                    "invalid store location {typo:?}: this looks like a URL with a missing `/` (write s3://BUCKET/PREFIX), not a folder"
                )),
            );
        }
        check("C:/lake", Ok(Local("C:/lake")));
        check("./a:b", Ok(Local("./a:b")));
    }

    #[test]
    fn containment_is_by_identity() {
        assert!(contains("/data/raw", "/data/raw"));
        assert!(contains("/data/raw", "/data/raw/lake"));
        assert!(contains("/data/raw/", "/data/raw/lake/"));
        assert!(!contains("/data/raw", "/data/rawer"));
        assert!(!contains("/data/raw/lake", "/data/raw"));
        assert!(contains("/", "/lake"));
        assert!(contains("s3://b", "s3://b/lake"));
        assert!(contains("s3://b/raw", "s3://b/raw/lake"));
        assert!(!contains("s3://b/raw", "s3://b/lake"));
        assert!(!contains("s3://b", "s3://bb/lake"));
        assert!(!contains("s3://b", "/b/lake"));
    }

    #[tokio::test]
    async fn open_creates_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("new/lake");
        let store = open(root.to_str().unwrap()).await.unwrap();
        assert!(root.is_dir());
        assert_eq!(store.describe("a/b.parquet"), format!("{}/a/b.parquet", root.display()));
    }
}

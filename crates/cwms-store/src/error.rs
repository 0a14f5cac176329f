//! The one error type of the crate.

/// Why a store operation failed.
///
/// A lost race on a conditional write is not an error: it is [`crate::PutOutcome::Conflict`].
/// Every message names the operation and the location (see [`crate::ObjectStore::describe`]);
/// the underlying cause is available through [`std::error::Error::source`], so print the chain
/// (`{:#}` with anyhow) to see it.
#[non_exhaustive]
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// A local file system operation failed.
    #[error("{op} {location}")]
    Io {
        /// What was being done, e.g. `read` or `list`.
        op: &'static str,
        location: String,
        #[source]
        source: std::io::Error,
    },

    /// An S3 request failed after the SDK's retries.
    ///
    /// `detail` summarises the failure in this crate's words (the S3 error code and HTTP status,
    /// or why no response came back) because the SDK's own message for a service error is only
    /// "service error".
    #[error("{op} {location}: {detail}")]
    S3 {
        /// What was being done, e.g. `put` or `complete multipart upload of`.
        op: &'static str,
        location: String,
        detail: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A key or prefix that no store accepts (see [`crate::validate_key`]).
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },

    /// A store location that [`crate::open`] cannot open.
    #[error("invalid store location {location:?}: {reason}")]
    InvalidLocation { location: String, reason: &'static str },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

//! The lake's Arrow schema, Parquet writer policy, Hive path keys and reader (DESIGN 4.1, 4.2).
//!
//! - [`lake_schema`] is the one schema of `metrics_1m` and `metrics_1h` files.
//! - [`encode`] writes a merged [`Partition`] as the bytes of one lake object, sorted, with the
//!   settings of [`writer_properties`], the only place that decides them. The same rows always
//!   give the same bytes.
//! - [`decode`] reads a lake object back into a [`Partition`], checking its schema, its rows and
//!   that they belong to the object, so that the compactor can merge new datums into it and a
//!   corrupt object stops a publish instead of being overwritten.
//! - [`LakeObject`], [`partition_path`], [`hive_escape`] and [`hive_unescape`] spell and parse
//!   the Hive-style object keys.
//!
//! Nothing here does IO: files are bytes in memory.
//!
//! [`Partition`]: cwms_merge::Partition

mod footer;
mod path;
mod read;
mod schema;
mod write;

#[cfg(test)]
mod tests;

pub use path::{DAY_OBJECT_NAME, LakeObject, Table, hive_escape, hive_unescape, partition_path};
pub use read::{decode, decode_chunks, row_count};
pub use schema::{
    MAP_ENTRIES, MAP_KEY, MAP_VALUE, SCHEMA_VERSION, SCHEMA_VERSION_KEY, TIMESTAMP_TZ, column, dictionary_string, lake_schema,
};
pub use write::{
    Codec, DEFAULT_DATA_PAGE_ROWS, DEFAULT_MAX_ROW_GROUP_ROWS, DEFAULT_ZSTD_LEVEL, LakeWriter, MergedObject, PLAIN_COLUMNS,
    SORTING_COLUMNS, WriteOptions, ZstdLevel, created_by, encode, lake_row_order, merge_into_object, merge_into_object_where,
    to_record_batch, writer_properties,
};

/// A boxed error from the Parquet or Arrow libraries.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What can go wrong reading, writing or naming a lake object.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a readable Parquet file (truncated, not Parquet, damaged pages).
    #[error("lake object {object}: not a readable parquet file: {source}")]
    Corrupt {
        object: String,
        #[source]
        source: BoxError,
    },
    /// A readable Parquet file, but not a cwms lake file of this schema version.
    #[error("lake object {object}: not a cwms lake file of schema version 1: {detail}")]
    Schema { object: String, detail: String },
    /// A row that a lake file cannot hold: inconsistent keys, unsorted or duplicated rows, a
    /// timestamp outside the object's hour or day.
    #[error("lake object {object}: row {row}: {detail}")]
    InvalidRow { object: String, row: usize, detail: String },
    /// Rows that do not belong in the object being written.
    #[error("lake object {object}: cannot write {detail}")]
    WrongObject { object: String, detail: String },
    /// More rows or string bytes than one Arrow batch with 32-bit offsets holds.
    #[error("lake object {object}: too large for one file: {detail}")]
    TooLarge { object: String, detail: String },
    /// Building the record batch or writing the Parquet bytes failed.
    #[error("lake object {object}: writing parquet: {source}")]
    Write {
        object: String,
        #[source]
        source: BoxError,
    },
    /// A key that is not a lake object key.
    #[error("lake object key {key:?}: {reason}")]
    ObjectKey { key: String, reason: String },
    /// A codec name or level that is not supported.
    #[error("codec {codec:?}: {reason}")]
    Codec { codec: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

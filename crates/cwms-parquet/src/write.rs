//! Writing lake objects: rows -> one RecordBatch -> Parquet bytes, under one writer policy.

use std::fmt;
use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use arrow_array::builder::StringDictionaryBuilder;
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, Float64Array, Int64Array, MapArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray};
use arrow_buffer::OffsetBuffer;
use arrow_schema::{DataType, SchemaRef};
use bytes::Bytes;
use std::cmp::Ordering;

use cwms_merge::{HOUR_MS, HourlyRollup, Partition, Row};
use parquet::arrow::arrow_writer::{ArrowColumnChunk, ArrowRowGroupWriterFactory, compute_leaves};
use parquet::arrow::{ArrowSchemaConverter, add_encoded_arrow_schema_to_metadata};
use parquet::basic::Compression;
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use rayon::iter::{IndexedParallelIterator, IntoParallelIterator, ParallelIterator};

pub use parquet::basic::ZstdLevel;

use crate::path::{LakeObject, Table};
use crate::schema::{MAP_KEYS_SORTED, SCHEMA_VERSION, SCHEMA_VERSION_KEY, TIMESTAMP_TZ, lake_schema, map_entries, map_entry_fields};
use crate::{Error, Result};

/// The default zstd level: zstd's own default, and Athena's.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// The default number of rows in a row group.
///
/// Row groups are the unit Athena, Redshift Spectrum and DuckDB skip with min/max statistics.
/// Rows are sorted by metric name first, so a row group of 128 Ki rows spans a band of
/// metrics, and a query on one metric reads only the row groups whose `metric_name` range
/// holds it; page statistics (below) narrow that further for the readers that use them.
/// Compressed, such a row group is one to a few MB. Measured on the compactor benchmark's
/// lake (1.2 million rows, zstd(3)): 64 Ki-row groups with 8 Ki-row pages made the files 6%
/// larger than DuckDB's zstd output (122,880-row groups); 128 Ki and 32 Ki, 1.6% larger, and
/// 4% smaller than the former (benches/README.md, Compactor).
pub const DEFAULT_MAX_ROW_GROUP_ROWS: usize = 128 * 1024;

/// The default number of rows in a data page: page statistics (the column index) let readers
/// that use them (Trino, hence Athena; parquet-rs) skip within a row group, four pages to a
/// row group; smaller pages compress worse (each is compressed on its own).
pub const DEFAULT_DATA_PAGE_ROWS: usize = 32 * 1024;

/// The Parquet compression codec of lake files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// Zstandard: the smallest files; Athena (engine 3), DuckDB, pyarrow and Spark read it.
    Zstd(ZstdLevel),
    /// Snappy: larger files, but every Parquet reader, Redshift Spectrum included, reads it.
    Snappy,
    Uncompressed,
}

impl Codec {
    /// Zstandard at `level`, 1 to 22 (the levels every reader's zstd decodes; the template's
    /// parameter allows the same).
    pub fn zstd(level: i32) -> Result<Codec> {
        if !(1..=22).contains(&level) {
            return Err(Error::Codec { codec: format!("zstd({level})"), reason: "zstd levels are 1 to 22".into() });
        }
        ZstdLevel::try_new(level).map(Codec::Zstd).map_err(|e| Error::Codec { codec: format!("zstd({level})"), reason: e.to_string() })
    }

    fn compression(self) -> Compression {
        match self {
            Codec::Zstd(level) => Compression::ZSTD(level),
            Codec::Snappy => Compression::SNAPPY,
            Codec::Uncompressed => Compression::UNCOMPRESSED,
        }
    }
}

impl Default for Codec {
    fn default() -> Self {
        // The level is a constant inside zstd's range; `try_new` cannot refuse it.
        Codec::Zstd(ZstdLevel::try_new(DEFAULT_ZSTD_LEVEL).unwrap_or_default())
    }
}

/// `zstd`, `zstd(LEVEL)`, `snappy` or `uncompressed`, as configuration spells them.
impl FromStr for Codec {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "zstd" => Ok(Codec::default()),
            "snappy" => Ok(Codec::Snappy),
            "uncompressed" | "none" => Ok(Codec::Uncompressed),
            _ => {
                let level = lower.strip_prefix("zstd(").and_then(|rest| rest.strip_suffix(')')).and_then(|n| n.trim().parse().ok());
                match level {
                    Some(level) => Codec::zstd(level).map_err(|e| match e {
                        Error::Codec { reason, .. } => Error::Codec { codec: s.to_owned(), reason },
                        other => other,
                    }),
                    None => Err(Error::Codec { codec: s.to_owned(), reason: "expected zstd, zstd(LEVEL), snappy or uncompressed".into() }),
                }
            }
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Codec::Zstd(level) => write!(f, "zstd({})", level.compression_level()),
            Codec::Snappy => f.write_str("snappy"),
            Codec::Uncompressed => f.write_str("uncompressed"),
        }
    }
}

/// The knobs of the writer policy that deployments may turn; everything else is fixed by
/// [`writer_properties`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    pub codec: Codec,
    pub max_row_group_rows: NonZeroUsize,
    pub data_page_rows: NonZeroUsize,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            codec: Codec::default(),
            max_row_group_rows: NonZeroUsize::new(DEFAULT_MAX_ROW_GROUP_ROWS).unwrap_or(NonZeroUsize::MIN),
            data_page_rows: NonZeroUsize::new(DEFAULT_DATA_PAGE_ROWS).unwrap_or(NonZeroUsize::MIN),
        }
    }
}

/// The `created_by` of every lake file: `cwms version X (build parquet-rs Y)`.
///
/// The form matters: parquet-mr (and so Spark, Hive and Trino, which is Athena) parses
/// `created_by` as `APP version VERSION (build BUILD)` and IGNORES the min/max statistics of
/// string columns in files whose `created_by` it cannot parse (PARQUET-251), which would stop
/// those engines from skipping row groups by `metric_name`.
pub fn created_by() -> &'static str {
    static CREATED_BY: LazyLock<String> = LazyLock::new(|| {
        let parquet_version = parquet::file::properties::DEFAULT_CREATED_BY.trim_start_matches("parquet-rs version ");
        format!("cwms version {} (build parquet-rs {parquet_version})", env!("CARGO_PKG_VERSION"))
    });
    &CREATED_BY
}

/// The leaf columns the rows are sorted by, as Parquet leaf indices with their names:
/// `metric_name`, `dimension_key`, `timestamp`, `account_id`, `region`, all ascending.
///
/// Leaves count the two leaves of each map (`dimensions.key_value.key` is leaf 3); a test checks
/// these against the Parquet schema derived from [`lake_schema`].
pub const SORTING_COLUMNS: [(i32, &str); 5] =
    [(2, "metric_name"), (5, "dimension_key"), (7, "timestamp"), (0, "account_id"), (1, "region")];

/// The leaf columns written without a dictionary: the measures, whose values rarely repeat.
pub const PLAIN_COLUMNS: [&[&str]; 4] = [&["min"], &["max"], &["sum"], &["stats", "key_value", "value"]];

/// THE writer policy of the lake: the only place that builds [`WriterProperties`].
///
/// - codec from `options` (zstd level 3 by default);
/// - at most `options.max_row_group_rows` rows per row group and `options.data_page_rows` per
///   data page;
/// - statistics at page level (column index and offset index, besides row-group min/max);
/// - dictionary encoding on every column but the measures ([`PLAIN_COLUMNS`]): the string
///   columns are low-cardinality, and within a file of one hour `timestamp` has 60 distinct
///   values and `count` a handful, so dictionaries pay there too. The measures (`min`, `max`,
///   `sum`, statistic values) are nearly all distinct: a dictionary attempt there only adds a
///   dictionary page before the writer falls back to plain, and measured 11% larger files
///   (one hour of the EC2-like sample: 236 KB with, 196 KB without, on a par with DuckDB's
///   194 KB for the same rows);
/// - Parquet 1.0 data pages, which every engine reads (Redshift Spectrum included);
/// - `sorting_columns` declared ([`SORTING_COLUMNS`]), `created_by` ([`created_by`]) and the
///   key-value entry `cwms.schema_version`; nothing depends on the clock or on chance, so the
///   same rows give the same bytes.
pub fn writer_properties(options: &WriteOptions) -> WriterProperties {
    let builder = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(options.codec.compression())
        .set_max_row_group_row_count(Some(options.max_row_group_rows.get()))
        .set_data_page_row_count_limit(options.data_page_rows.get())
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_enabled(true);
    let builder = PLAIN_COLUMNS
        .iter()
        .fold(builder, |b, path| b.set_column_dictionary_enabled(ColumnPath::new(path.iter().map(|p| (*p).to_owned()).collect()), false));
    builder
        .set_sorting_columns(Some(
            SORTING_COLUMNS.iter().map(|&(column_idx, _)| SortingColumn { column_idx, descending: false, nulls_first: false }).collect(),
        ))
        .set_created_by(created_by().to_owned())
        .set_key_value_metadata(Some(vec![KeyValue::new(SCHEMA_VERSION_KEY.to_owned(), SCHEMA_VERSION.to_owned())]))
        .build()
}

/// The rows of a partition as one Arrow batch of [`lake_schema`], in the lake's sort order.
pub fn to_record_batch(partition: &Partition) -> Result<RecordBatch> {
    batch_of(&partition.rows(), "(in memory)")
}

/// Encodes a partition as the bytes of the lake object `object`.
///
/// The rows are written sorted ([`Partition::rows`]), one record batch per row group: Parquet
/// pages break differently when batch boundaries move, so batches cut exactly at the row
/// groups (the same bytes as one batch of all rows) are what make the bytes a function of the
/// rows alone.
///
/// Refuses rows that do not belong in `object`: another namespace, a timestamp outside the
/// object's hour (`metrics_1m`) or day (`metrics_1h`), and in `metrics_1h` a timestamp off the
/// hour or additional statistics (a rollup has none).
pub fn encode(partition: &Partition, object: &LakeObject, options: &WriteOptions) -> Result<Bytes> {
    let location = object.key();
    let rows = partition.rows();
    check_rows_belong(&rows, object, &location)?;
    let write_error = |source: parquet::errors::ParquetError| Error::Write { object: location.clone(), source: Box::new(source) };
    let mut file = FileWriter::new(options).map_err(write_error)?;
    // One Arrow batch per row group, built just before it is encoded, so that a large object
    // never holds all its rows as Arrow arrays at once; the writer would cut one batch of the
    // whole object at the same rows.
    for group in rows.chunks(options.max_row_group_rows.get()) {
        let batch = batch_of(group, &location)?;
        file.write_row_group(&batch).map_err(write_error)?;
    }
    file.finish().map(Bytes::from).map_err(write_error)
}

/// The lake's order of rows: (`metric_name`, `dimension_key`, `timestamp`, `account_id`,
/// `region`, `namespace`), the order [`Partition::rows`] gives and lake files hold. Two rows are
/// equal in it exactly when they are the same identity (series and timestamp).
pub fn lake_row_order(a: &Row<'_>, b: &Row<'_>) -> Ordering {
    let (x, y) = (a.series, b.series);
    x.metric_name()
        .cmp(y.metric_name())
        .then_with(|| x.dimension_key().cmp(y.dimension_key()))
        .then_with(|| a.timestamp_ms.cmp(&b.timestamp_ms))
        .then_with(|| x.account_id().cmp(y.account_id()))
        .then_with(|| x.region().cmp(y.region()))
        .then_with(|| x.namespace().cmp(y.namespace()))
}

/// Writes one lake object from rows that come in the lake's order ([`lake_row_order`]), a row
/// group at a time: the same bytes as [`encode`] of all the rows at once, while holding only one
/// row group of them (and the file's compressed bytes). For a `metrics_1m` object it also rolls
/// the rows up ([`HourlyRollup`]) as they pass.
pub struct LakeWriter<'o> {
    file: FileWriter,
    object: &'o LakeObject,
    location: String,
    group_rows: usize,
    /// The rows of the row group being filled.
    pending: Partition,
    /// The last row written, as its order key, to check that groups follow each other.
    last: Option<(String, String, i64, String, String)>,
    rows: u64,
    rollup: Option<HourlyRollup>,
}

impl<'o> LakeWriter<'o> {
    pub fn new(object: &'o LakeObject, options: &WriteOptions) -> Result<Self> {
        let location = object.key();
        let file = FileWriter::new(options).map_err(|e| Error::Write { object: location.clone(), source: Box::new(e) })?;
        let rollup = (object.table() == Table::Metrics1m).then(HourlyRollup::new);
        Ok(LakeWriter {
            file,
            object,
            location,
            group_rows: options.max_row_group_rows.get(),
            pending: Partition::new(),
            last: None,
            rows: 0,
            rollup,
        })
    }

    /// Adds the next row. Rows must come in the lake's order; the same identity twice is merged
    /// by the merge law.
    pub fn push(&mut self, row: &Row<'_>) -> Result<()> {
        self.pending.insert_row(row);
        if self.pending.len() >= self.group_rows {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let rows = pending.rows();
        check_rows_belong(&rows, self.object, &self.location)?;
        let first = &rows[0];
        let first_key = (
            first.series.metric_name().to_owned(),
            first.series.dimension_key().to_owned(),
            first.timestamp_ms,
            first.series.account_id().to_owned(),
            first.series.region().to_owned(),
        );
        if self.last.as_ref().is_some_and(|last| *last >= first_key) {
            return Err(Error::WrongObject { object: self.location.clone(), detail: "rows out of the lake's order".to_owned() });
        }
        let batch = batch_of(&rows, &self.location)?;
        self.file.write_row_group(&batch).map_err(|e| Error::Write { object: self.location.clone(), source: Box::new(e) })?;
        if let Some(rollup) = &mut self.rollup {
            for row in &rows {
                rollup.add(row.series, row.timestamp_ms, row.value);
            }
        }
        let last = &rows[rows.len() - 1];
        self.last = Some((
            last.series.metric_name().to_owned(),
            last.series.dimension_key().to_owned(),
            last.timestamp_ms,
            last.series.account_id().to_owned(),
            last.series.region().to_owned(),
        ));
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// The file's bytes, its row count, and (for `metrics_1m`) the hourly rollup of its rows.
    pub fn finish(mut self) -> Result<(Bytes, u64, Option<Partition>)> {
        self.flush()?;
        let location = self.location.clone();
        let bytes = self.file.finish().map_err(|e| Error::Write { object: location, source: Box::new(e) })?;
        Ok((Bytes::from(bytes), self.rows, self.rollup.map(HourlyRollup::finish)))
    }
}

/// What [`merge_into_object`] made.
#[derive(Debug)]
pub struct MergedObject {
    pub bytes: Bytes,
    pub rows: u64,
    /// Incoming points whose identity the object already held.
    pub duplicates: u64,
    /// The hourly rollup of the merged rows (`metrics_1m` objects).
    pub rollup: Option<Partition>,
}

/// Merges `incoming` into the lake object whose current bytes are `existing` (if any), by the
/// merge law, and encodes the result: the same bytes as decoding the object, merging and
/// [`encode`]-ing, in memory for a row group of the object at a time rather than the whole
/// object (both inputs are in the lake's order, so the merge is a merge of two sorted runs).
/// `location` names the object in errors.
pub fn merge_into_object(
    existing: Option<Bytes>,
    incoming: &Partition,
    object: &LakeObject,
    options: &WriteOptions,
    location: &str,
) -> Result<MergedObject> {
    merge_into_object_where(existing, |_| true, incoming, object, options, location)
}

/// [`merge_into_object`], keeping only the existing rows `keep_existing` accepts (a day's
/// `metrics_1h` object drops the hours whose rollups are replaced).
pub fn merge_into_object_where(
    existing: Option<Bytes>,
    keep_existing: impl Fn(&Row<'_>) -> bool,
    incoming: &Partition,
    object: &LakeObject,
    options: &WriteOptions,
    location: &str,
) -> Result<MergedObject> {
    let incoming_rows = incoming.rows();
    check_rows_belong(&incoming_rows, object, location)?;
    let mut writer = LakeWriter::new(object, options)?;
    let mut next = 0;
    let mut duplicates = 0u64;
    if let Some(bytes) = existing {
        crate::read::decode_chunks(bytes, object, location, |chunk| {
            for row in chunk.rows().into_iter().filter(|row| keep_existing(row)) {
                while next < incoming_rows.len() && lake_row_order(&incoming_rows[next], &row) == Ordering::Less {
                    writer.push(&incoming_rows[next])?;
                    next += 1;
                }
                if next < incoming_rows.len() && lake_row_order(&incoming_rows[next], &row) == Ordering::Equal {
                    duplicates += 1;
                    let theirs = &incoming_rows[next];
                    writer.push(if row.value.value_order(theirs.value) == Ordering::Less { theirs } else { &row })?;
                    next += 1;
                } else {
                    writer.push(&row)?;
                }
            }
            Ok(())
        })?;
    }
    for row in &incoming_rows[next..] {
        writer.push(row)?;
    }
    let (bytes, rows, rollup) = writer.finish()?;
    Ok(MergedObject { bytes, rows, duplicates, rollup })
}

/// Writes a Parquet file one row group at a time, the columns of each row group encoded in
/// parallel (rayon): encoding is most of a lake object's cost, and one object is often all
/// that is left to write at the end of a run. This is what `ArrowWriter` does with the same
/// properties, column by column on one thread; the column chunks are appended in schema
/// order, so the bytes do not depend on the scheduling (a test compares them with
/// `ArrowWriter`'s).
struct FileWriter {
    writer: SerializedFileWriter<Vec<u8>>,
    factory: ArrowRowGroupWriterFactory,
    schema: SchemaRef,
    row_groups: usize,
}

impl FileWriter {
    fn new(options: &WriteOptions) -> Result<Self, parquet::errors::ParquetError> {
        let schema = lake_schema();
        let mut properties = writer_properties(options);
        add_encoded_arrow_schema_to_metadata(&schema, &mut properties);
        let properties = Arc::new(properties);
        let parquet_schema = ArrowSchemaConverter::new().with_coerce_types(properties.coerce_types()).convert(&schema)?;
        let writer = SerializedFileWriter::new(Vec::new(), parquet_schema.root_schema_ptr(), properties)?;
        let factory = ArrowRowGroupWriterFactory::new(&writer, Arc::clone(&schema));
        Ok(FileWriter { writer, factory, schema, row_groups: 0 })
    }

    fn write_row_group(&mut self, batch: &RecordBatch) -> Result<(), parquet::errors::ParquetError> {
        let mut leaves = Vec::new();
        for (field, column) in self.schema.fields().iter().zip(batch.columns()) {
            leaves.extend(compute_leaves(field, column)?);
        }
        let chunks = self
            .factory
            .create_column_writers(self.row_groups)?
            .into_par_iter()
            .zip(leaves)
            .map(|(mut column, leaf)| {
                column.write(&leaf)?;
                column.close()
            })
            .collect::<Result<Vec<ArrowColumnChunk>, _>>()?;
        let mut row_group = self.writer.next_row_group()?;
        for chunk in chunks {
            chunk.append_to_row_group(&mut row_group)?;
        }
        row_group.close()?;
        self.row_groups += 1;
        Ok(())
    }

    /// The file's bytes, with the footer's float column orders made `TYPE_DEFINED_ORDER`
    /// (see `footer.rs`): the other half of the writer policy, which parquet-rs has no setting for.
    fn finish(self) -> Result<Vec<u8>, parquet::errors::ParquetError> {
        let mut bytes = self.writer.into_inner()?;
        crate::footer::use_type_defined_float_orders(&mut bytes)
            .map_err(|reason| parquet::errors::ParquetError::General(format!("rewriting the footer's column orders: {reason}")))?;
        Ok(bytes)
    }
}

fn check_rows_belong(rows: &[Row<'_>], object: &LakeObject, location: &str) -> Result<()> {
    let range = object.time_range_ms();
    let wrong = |detail: String| Err(Error::WrongObject { object: location.to_owned(), detail });
    for row in rows {
        if row.series.namespace() != object.namespace() {
            return wrong(format!("a row of namespace {:?}", row.series.namespace()));
        }
        if !range.contains(&row.timestamp_ms) {
            return wrong(format!("a row at {} ms, outside {}..{} ms", row.timestamp_ms, range.start, range.end));
        }
        if object.table() == Table::Metrics1h {
            if row.timestamp_ms % HOUR_MS != 0 {
                return wrong(format!("a row at {} ms, not the start of an hour, into a rollup", row.timestamp_ms));
            }
            if !row.value.stats.is_empty() {
                return wrong("additional statistics into a rollup".to_owned());
            }
        }
    }
    Ok(())
}

/// Offsets of Arrow's `Utf8` and `Map` are 32-bit: refuses sizes beyond them instead of letting
/// a builder panic.
fn check_i32(size: usize, what: &str, location: &str) -> Result<()> {
    if i32::try_from(size).is_err() {
        return Err(Error::TooLarge { object: location.to_owned(), detail: format!("{size} {what}") });
    }
    Ok(())
}

fn batch_of(rows: &[Row<'_>], location: &str) -> Result<RecordBatch> {
    let (mut dimension_entries, mut name_bytes, mut value_bytes, mut key_bytes, mut stat_entries, mut stat_bytes) = (0, 0, 0, 0, 0, 0);
    for row in rows {
        dimension_entries += row.series.dimensions().len();
        name_bytes += row.series.dimensions().map(|(k, _)| k.len()).sum::<usize>();
        value_bytes += row.series.dimensions().map(|(_, v)| v.len()).sum::<usize>();
        key_bytes += row.series.dimension_key().len();
        stat_entries += row.value.stats.len();
        stat_bytes += row.value.stats.iter().map(|(k, _)| k.len()).sum::<usize>();
    }
    check_i32(rows.len(), "rows", location)?;
    check_i32(dimension_entries, "dimension entries", location)?;
    check_i32(name_bytes, "bytes of dimension names", location)?;
    check_i32(value_bytes, "bytes of dimension values", location)?;
    check_i32(key_bytes, "bytes of dimension keys", location)?;
    check_i32(stat_entries, "statistic entries", location)?;
    check_i32(stat_bytes, "bytes of statistic names", location)?;

    let timestamps = rows
        .iter()
        .map(|row| {
            row.timestamp_ms.checked_mul(1000).ok_or_else(|| Error::TooLarge {
                object: location.to_owned(),
                detail: format!("timestamp {} ms does not fit in microseconds", row.timestamp_ms),
            })
        })
        .collect::<Result<Vec<i64>>>()?;
    let float = |value: fn(&Row<'_>) -> f64| -> ArrayRef { Arc::new(rows.iter().map(value).collect::<Float64Array>()) };
    let dictionary = |value: for<'r> fn(&Row<'r>) -> &'r str| dictionary_array(rows, value);

    let dimensions = map_array(
        DataType::Utf8,
        rows.iter().map(|row| row.series.dimensions().len()),
        Arc::new(StringArray::from_iter_values(rows.iter().flat_map(|row| row.series.dimensions().map(|(k, _)| k)))),
        Arc::new(StringArray::from_iter_values(rows.iter().flat_map(|row| row.series.dimensions().map(|(_, v)| v)))),
        location,
    )?;
    let stats = map_array(
        DataType::Float64,
        rows.iter().map(|row| row.value.stats.len()),
        Arc::new(StringArray::from_iter_values(rows.iter().flat_map(|row| row.value.stats.iter().map(|(k, _)| &**k)))),
        Arc::new(rows.iter().flat_map(|row| row.value.stats.iter().map(|&(_, v)| v)).collect::<Float64Array>()),
        location,
    )?;

    let columns: Vec<ArrayRef> = vec![
        dictionary(|row| row.series.account_id()),
        dictionary(|row| row.series.region()),
        dictionary(|row| row.series.metric_name()),
        dimensions,
        Arc::new(StringArray::from_iter_values(rows.iter().map(|row| row.series.dimension_key()))),
        Arc::new(rows.iter().map(|row| row.series.series_id()).collect::<Int64Array>()),
        Arc::new(TimestampMicrosecondArray::from(timestamps).with_timezone(TIMESTAMP_TZ)),
        dictionary(|row| &row.value.unit),
        float(|row| row.value.min),
        float(|row| row.value.max),
        float(|row| row.value.sum),
        float(|row| row.value.count),
        stats,
    ];
    RecordBatch::try_new(lake_schema(), columns).map_err(|e| Error::Write { object: location.to_owned(), source: Box::new(e) })
}

/// A `Dictionary(Int32, Utf8)` column: its values in order of first appearance, so the same
/// rows always give the same dictionary.
fn dictionary_array<'r>(rows: &[Row<'r>], value: impl Fn(&Row<'r>) -> &'r str) -> ArrayRef {
    let mut builder = StringDictionaryBuilder::<Int32Type>::with_capacity(rows.len(), 64, 1024);
    for row in rows {
        builder.append_value(value(row));
    }
    Arc::new(builder.finish())
}

fn map_array(
    value_type: DataType,
    lengths: impl Iterator<Item = usize>,
    keys: ArrayRef,
    values: ArrayRef,
    location: &str,
) -> Result<ArrayRef> {
    let entries_field = map_entries(value_type.clone());
    let build = || -> Result<MapArray, arrow_schema::ArrowError> {
        let entries = StructArray::try_new(map_entry_fields(value_type), vec![keys, values], None)?;
        // The entry count was checked against i32::MAX, so the offsets cannot overflow.
        MapArray::try_new(Arc::clone(&entries_field), OffsetBuffer::from_lengths(lengths), entries, None, MAP_KEYS_SORTED)
    };
    build().map(|array| Arc::new(array) as ArrayRef).map_err(|e| Error::Write { object: location.to_owned(), source: Box::new(e) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::ArrowSchemaConverter;

    #[test]
    fn sorting_columns_name_the_right_leaves() {
        let descriptor = ArrowSchemaConverter::new().convert(&lake_schema()).unwrap();
        for (index, name) in SORTING_COLUMNS {
            assert_eq!(descriptor.column(index as usize).path().string(), name);
        }
        let leaves: Vec<String> = (0..descriptor.num_columns()).map(|i| descriptor.column(i).path().string()).collect();
        for path in PLAIN_COLUMNS {
            assert!(leaves.contains(&path.join(".")), "{path:?}");
        }
        assert_eq!(leaves[3], "dimensions.key_value.key");
        assert_eq!(leaves[14], "stats.key_value.value");
    }

    #[test]
    fn created_by_parses_as_parquet_mr_expects() {
        // parquet-mr's VersionParser: `(.*?)\s+version\s*(?:([^(]*?)\s*(?:\(\s*build\s*([^)]*?)\s*\))?)?`
        let created_by = created_by();
        let (app, rest) = created_by.split_once(" version ").unwrap();
        assert_eq!(app, "cwms");
        let (version, build) = rest.split_once(" (build ").unwrap();
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        assert!(build.starts_with("parquet-rs ") && build.ends_with(')'), "{created_by}");
    }

    fn check_codec(text: &str, expected: Option<&str>) {
        match (text.parse::<Codec>(), expected) {
            (Ok(codec), Some(expected)) => assert_eq!(codec.to_string(), expected),
            (Err(e), None) => assert!(e.to_string().contains(&format!("{text:?}")), "{e}"),
            (got, expected) => panic!("{text}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn codecs() {
        check_codec("zstd", Some("zstd(3)"));
        check_codec("ZSTD(9)", Some("zstd(9)"));
        check_codec("zstd(23)", None);
        check_codec("snappy", Some("snappy"));
        check_codec("none", Some("uncompressed"));
        check_codec("gzip", None);
        assert_eq!(Codec::default(), Codec::zstd(3).unwrap());
    }
}

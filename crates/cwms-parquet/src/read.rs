//! Reading lake objects back into partitions, checking everything a cwms writer guarantees.

use std::borrow::Cow;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayAccessor, MapArray, RecordBatch, StringArray};
use bytes::Bytes;
use cwms_merge::{HOUR_MS, Outcome, Partition};
use cwms_model::Datum;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use crate::path::{LakeObject, Table};
use crate::schema::{SCHEMA_VERSION, SCHEMA_VERSION_KEY, column, lake_schema};
use crate::{BoxError, Error, Result};

/// Rows decoded per Arrow batch: bounds the memory of a read beyond the partition itself.
const READ_BATCH_ROWS: usize = 64 * 1024;

/// Reads the bytes of the lake object `object` back into a partition, so that new datums can
/// be merged into it. `location` names the object in errors (its full key in the store).
///
/// Everything a cwms writer guarantees is checked, and anything else is an error naming the
/// object, never a silent skip: the bytes must be a Parquet file with the key-value entry
/// `cwms.schema_version = 1` and the columns of [`lake_schema`] (by name, in order, with
/// compatible types and no nulls); each row's `dimension_key` must be the canonical key of its
/// `dimensions` and its `series_id` the fingerprint of its series in `object`'s namespace; map
/// keys must be sorted; rows must be strictly increasing in the lake's order (so no identity
/// repeats); timestamps must be whole milliseconds inside the object's hour (`metrics_1m`) or
/// day (`metrics_1h`, on the hour, without additional statistics).
pub fn decode(bytes: Bytes, object: &LakeObject, location: &str) -> Result<Partition> {
    let mut reader = open_reader(bytes, location)?;
    let mut decoder = RowDecoder::new(object, location);
    while let Some(batch) = next_batch(&mut reader, location)? {
        decoder.decode_batch(&batch)?;
    }
    Ok(decoder.partition)
}

/// [`decode`] a batch of rows at a time: `visit` gets the object's rows in the lake's order, as
/// partitions of at most 65,536 rows each, so that an object of any size is read in bounded
/// memory. Everything [`decode`] checks is checked (the order across batches too); on an error,
/// the batches before it have been visited.
pub fn decode_chunks(bytes: Bytes, object: &LakeObject, location: &str, mut visit: impl FnMut(Partition) -> Result<()>) -> Result<()> {
    let mut reader = open_reader(bytes, location)?;
    let mut decoder = RowDecoder::new(object, location);
    while let Some(batch) = next_batch(&mut reader, location)? {
        decoder.decode_batch(&batch)?;
        visit(std::mem::take(&mut decoder.partition))?;
    }
    Ok(())
}

/// The reader's next batch. The Parquet reader's checks of damaged pages are not all errors (some
/// are assertions), and a damaged object must stop its partition, never the process: a panic of
/// the reader is [`Error::Corrupt`] too.
fn next_batch(reader: &mut parquet::arrow::arrow_reader::ParquetRecordBatchReader, location: &str) -> Result<Option<RecordBatch>> {
    let corrupt = |source: BoxError| Error::Corrupt { object: location.to_owned(), source };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.next())) {
        Ok(None) => Ok(None),
        Ok(Some(batch)) => batch.map(Some).map_err(|e| corrupt(Box::new(e))),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Err(corrupt(format!("the parquet reader failed on it: {message}").into()))
        }
    }
}

/// A batch reader over a lake file, after checking its schema version and columns.
fn open_reader(bytes: Bytes, location: &str) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader> {
    let corrupt = |source: Box<dyn std::error::Error + Send + Sync>| Error::Corrupt { object: location.to_owned(), source };
    let schema_error = |detail: String| Error::Schema { object: location.to_owned(), detail };

    let metadata = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new()).map_err(|e| corrupt(Box::new(e)))?;
    let version = metadata
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|entry| entry.key == SCHEMA_VERSION_KEY))
        .and_then(|entry| entry.value.clone());
    match version.as_deref() {
        Some(SCHEMA_VERSION) => {}
        Some(other) => return Err(schema_error(format!("{SCHEMA_VERSION_KEY} is {other:?}"))),
        None => return Err(schema_error(format!("no {SCHEMA_VERSION_KEY} in the key-value metadata"))),
    }
    let names: Vec<&str> = metadata.schema().fields().iter().map(|f| f.name().as_str()).collect();
    if names != column::ALL {
        return Err(schema_error(format!("columns are {names:?}, expected {:?}", column::ALL)));
    }
    // Reading with the lake schema supplied checks every type and nullability, and yields the
    // lake's Arrow types even if the file lacks the embedded Arrow schema.
    check_column_chunks(metadata.metadata(), bytes.len() as u64).map_err(|detail| corrupt(detail.into()))?;
    let metadata = ArrowReaderMetadata::try_new(Arc::clone(metadata.metadata()), ArrowReaderOptions::new().with_schema(lake_schema()))
        .map_err(|e| schema_error(e.to_string()))?;
    ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, metadata)
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(|e| corrupt(Box::new(e)))
}

/// Every column chunk the footer describes lies inside the file. The Parquet reader asserts
/// (panics) on a negative offset or size rather than returning an error, so a damaged footer is
/// caught here, where it can be named.
fn check_column_chunks(metadata: &parquet::file::metadata::ParquetMetaData, file_len: u64) -> std::result::Result<(), String> {
    for (g, group) in metadata.row_groups().iter().enumerate() {
        for (c, chunk) in group.columns().iter().enumerate() {
            let start = chunk.dictionary_page_offset().unwrap_or(chunk.data_page_offset());
            let len = chunk.compressed_size();
            let inside = start >= 0 && len >= 0 && (start as u64).checked_add(len as u64).is_some_and(|end| end <= file_len);
            if !inside {
                return Err(format!(
                    "row group {g}, column {} ({}): its chunk ({len} bytes at offset {start}) is not inside the file's {file_len} bytes",
                    c,
                    chunk.column_path()
                ));
            }
        }
    }
    Ok(())
}

/// The number of rows in a Parquet file, read from its footer alone.
pub fn row_count(bytes: Bytes, location: &str) -> Result<u64> {
    let metadata = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new())
        .map_err(|e| Error::Corrupt { object: location.to_owned(), source: Box::new(e) })?;
    Ok(metadata.metadata().file_metadata().num_rows().max(0) as u64)
}

/// The columns of one batch, typed.
struct Columns<'b> {
    account_id: arrow_array::TypedDictionaryArray<'b, Int32Type, StringArray>,
    region: arrow_array::TypedDictionaryArray<'b, Int32Type, StringArray>,
    metric_name: arrow_array::TypedDictionaryArray<'b, Int32Type, StringArray>,
    dimensions: &'b MapArray,
    dimension_names: &'b StringArray,
    dimension_values: &'b StringArray,
    dimension_key: &'b StringArray,
    series_id: &'b arrow_array::PrimitiveArray<Int64Type>,
    timestamp: &'b arrow_array::PrimitiveArray<TimestampMicrosecondType>,
    unit: arrow_array::TypedDictionaryArray<'b, Int32Type, StringArray>,
    min: &'b arrow_array::PrimitiveArray<Float64Type>,
    max: &'b arrow_array::PrimitiveArray<Float64Type>,
    sum: &'b arrow_array::PrimitiveArray<Float64Type>,
    count: &'b arrow_array::PrimitiveArray<Float64Type>,
    stats: &'b MapArray,
    stat_names: &'b StringArray,
    stat_values: &'b arrow_array::PrimitiveArray<Float64Type>,
}

impl<'b> Columns<'b> {
    /// Types the columns; `None` if a column is not what the lake schema says, which the
    /// supplied schema already excludes.
    fn new(batch: &'b RecordBatch) -> Option<Self> {
        let column = |name: &str| batch.column_by_name(name);
        let dictionary = |name: &str| column(name)?.as_dictionary_opt::<Int32Type>()?.downcast_dict::<StringArray>();
        let float = |name: &str| column(name)?.as_primitive_opt::<Float64Type>();
        let dimensions = column(column::DIMENSIONS)?.as_map_opt()?;
        let stats = column(column::STATS)?.as_map_opt()?;
        Some(Columns {
            account_id: dictionary(column::ACCOUNT_ID)?,
            region: dictionary(column::REGION)?,
            metric_name: dictionary(column::METRIC_NAME)?,
            dimension_names: dimensions.keys().as_string_opt::<i32>()?,
            dimension_values: dimensions.values().as_string_opt::<i32>()?,
            dimensions,
            dimension_key: column(column::DIMENSION_KEY)?.as_string_opt::<i32>()?,
            series_id: column(column::SERIES_ID)?.as_primitive_opt::<Int64Type>()?,
            timestamp: column(column::TIMESTAMP)?.as_primitive_opt::<TimestampMicrosecondType>()?,
            unit: dictionary(column::UNIT)?,
            min: float(column::MIN)?,
            max: float(column::MAX)?,
            sum: float(column::SUM)?,
            count: float(column::COUNT)?,
            stat_names: stats.keys().as_string_opt::<i32>()?,
            stat_values: stats.values().as_primitive_opt::<Float64Type>()?,
            stats,
        })
    }

    /// The first column holding a null, if any. Required Parquet columns cannot hold nulls, so
    /// this only guards against a reader that would produce them anyway.
    fn null_column(&self) -> Option<&'static str> {
        let dictionary_nulls =
            |d: &arrow_array::TypedDictionaryArray<'_, Int32Type, StringArray>| d.keys().null_count() + d.values().null_count();
        [
            (column::ACCOUNT_ID, dictionary_nulls(&self.account_id)),
            (column::REGION, dictionary_nulls(&self.region)),
            (column::METRIC_NAME, dictionary_nulls(&self.metric_name)),
            (column::DIMENSIONS, self.dimensions.null_count() + self.dimension_names.null_count() + self.dimension_values.null_count()),
            (column::DIMENSION_KEY, self.dimension_key.null_count()),
            (column::SERIES_ID, self.series_id.null_count()),
            (column::TIMESTAMP, self.timestamp.null_count()),
            (column::UNIT, dictionary_nulls(&self.unit)),
            (column::MIN, self.min.null_count()),
            (column::MAX, self.max.null_count()),
            (column::SUM, self.sum.null_count()),
            (column::COUNT, self.count.null_count()),
            (column::STATS, self.stats.null_count() + self.stat_names.null_count() + self.stat_values.null_count()),
        ]
        .into_iter()
        .find(|&(_, nulls)| nulls > 0)
        .map(|(name, _)| name)
    }
}

/// The sort key of a lake row: (`metric_name`, `dimension_key`, `timestamp`, `account_id`, `region`).
type OrderKey<S> = (S, S, i64, S, S);

/// Decodes batches into a partition, carrying the checks' state from row to row.
struct RowDecoder<'o> {
    object: &'o LakeObject,
    location: &'o str,
    partition: Partition,
    /// Rows decoded so far (the index of the next row in the file).
    row: usize,
    /// The sort key of the previous row.
    previous: Option<OrderKey<String>>,
    /// The last (dimension_key, dimensions) found consistent, so a run of rows of one series
    /// checks its key once.
    checked_key: Option<(String, Vec<(String, String)>)>,
    /// The last (account_id, region, metric_name, dimension_key, series_id) found consistent.
    checked_series: Option<(String, String, String, String, i64)>,
}

impl<'o> RowDecoder<'o> {
    fn new(object: &'o LakeObject, location: &'o str) -> Self {
        RowDecoder { object, location, partition: Partition::new(), row: 0, previous: None, checked_key: None, checked_series: None }
    }

    fn invalid(&self, detail: String) -> Error {
        Error::InvalidRow { object: self.location.to_owned(), row: self.row, detail }
    }

    fn decode_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        let columns = Columns::new(batch)
            .ok_or_else(|| Error::Schema { object: self.location.to_owned(), detail: format!("columns read as {:?}", batch.schema()) })?;
        if let Some(name) = columns.null_column() {
            return Err(Error::Schema { object: self.location.to_owned(), detail: format!("column {name} holds nulls") });
        }
        let range = self.object.time_range_ms();
        let namespace = self.object.namespace();
        let (dimension_offsets, stat_offsets) = (columns.dimensions.value_offsets(), columns.stats.value_offsets());
        // One datum reused for every row, so its vectors keep their capacity.
        let mut datum = Datum {
            metric_stream_name: None,
            account_id: Cow::Borrowed(""),
            region: Cow::Borrowed(""),
            namespace: Cow::Borrowed(namespace),
            metric_name: Cow::Borrowed(""),
            dimensions: Vec::new(),
            timestamp_ms: 0,
            unit: Cow::Borrowed(""),
            count: 0.0,
            sum: 0.0,
            max: 0.0,
            min: 0.0,
            stats: Vec::new(),
        };
        let mut previous: Option<OrderKey<&str>> = None;
        for i in 0..batch.num_rows() {
            let (account_id, region, metric_name) = (columns.account_id.value(i), columns.region.value(i), columns.metric_name.value(i));
            let dimension_key = columns.dimension_key.value(i);
            let timestamp_us = columns.timestamp.value(i);

            // Whole milliseconds, inside the object's time range.
            if timestamp_us % 1000 != 0 {
                return Err(self.invalid(format!("timestamp {timestamp_us} us is not a whole millisecond")));
            }
            let timestamp_ms = timestamp_us / 1000;
            if !range.contains(&timestamp_ms) {
                return Err(self.invalid(format!("timestamp {timestamp_ms} ms is outside the object's {}..{} ms", range.start, range.end)));
            }

            // Strictly increasing in the lake's order.
            let key: OrderKey<&str> = (metric_name, dimension_key, timestamp_ms, account_id, region);
            let in_order = match (&previous, &self.previous) {
                (Some(p), _) => *p < key,
                (None, Some((m, d, t, a, r))) => (m.as_str(), d.as_str(), *t, a.as_str(), r.as_str()) < key,
                (None, None) => true,
            };
            if !in_order {
                return Err(self.invalid(format!(
                    "sort key ({metric_name}, {dimension_key}, {timestamp_ms}, {account_id}, {region}) does not follow the previous \
                     row's: rows are out of the lake's order or repeat an identity"
                )));
            }
            previous = Some(key);

            datum.dimensions.clear();
            let (start, end) = (dimension_offsets[i] as usize, dimension_offsets[i + 1] as usize);
            datum.dimensions.extend(
                (start..end).map(|j| (Cow::Borrowed(columns.dimension_names.value(j)), Cow::Borrowed(columns.dimension_values.value(j)))),
            );
            datum.stats.clear();
            let (start, end) = (stat_offsets[i] as usize, stat_offsets[i + 1] as usize);
            datum.stats.extend((start..end).map(|j| (Cow::Borrowed(columns.stat_names.value(j)), columns.stat_values.value(j))));

            self.check_dimension_key(dimension_key, &datum.dimensions)?;
            if !datum.stats.is_sorted_by(|(a, _), (b, _)| a <= b) {
                return Err(self.invalid("stats keys are not sorted".to_owned()));
            }
            self.check_series_id(account_id, region, namespace, metric_name, dimension_key, columns.series_id.value(i))?;
            if self.object.table() == Table::Metrics1h {
                if timestamp_ms % HOUR_MS != 0 {
                    return Err(self.invalid(format!("rollup timestamp {timestamp_ms} ms is not the start of an hour")));
                }
                if !datum.stats.is_empty() {
                    return Err(self.invalid("a rollup row has additional statistics".to_owned()));
                }
            }

            datum.account_id = Cow::Borrowed(account_id);
            datum.region = Cow::Borrowed(region);
            datum.metric_name = Cow::Borrowed(metric_name);
            datum.timestamp_ms = timestamp_ms;
            datum.unit = Cow::Borrowed(columns.unit.value(i));
            datum.count = columns.count.value(i);
            datum.sum = columns.sum.value(i);
            datum.max = columns.max.value(i);
            datum.min = columns.min.value(i);
            let outcome = self.partition.insert(&datum);
            // The order check makes every identity new.
            debug_assert_eq!(outcome, Outcome::Inserted);
            self.row += 1;
        }
        self.previous = previous.map(|(m, d, t, a, r)| (m.to_owned(), d.to_owned(), t, a.to_owned(), r.to_owned()));
        Ok(())
    }

    fn check_dimension_key(&mut self, dimension_key: &str, dimensions: &[(Cow<'_, str>, Cow<'_, str>)]) -> Result<()> {
        let same_as_checked = self.checked_key.as_ref().is_some_and(|(key, pairs)| {
            key == dimension_key && pairs.len() == dimensions.len() && pairs.iter().zip(dimensions).all(|((a, b), (c, d))| a == c && b == d)
        });
        if same_as_checked {
            return Ok(());
        }
        if !dimensions.is_sorted() {
            return Err(self.invalid("dimensions keys are not sorted".to_owned()));
        }
        let expected = cwms_model::dimension_key(dimensions.iter().map(|(k, v)| (k.as_ref(), v.as_ref())));
        if expected != dimension_key {
            return Err(self.invalid(format!("dimension_key {dimension_key:?} does not match the dimensions, whose key is {expected:?}")));
        }
        self.checked_key = Some((expected, dimensions.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()));
        Ok(())
    }

    fn check_series_id(
        &mut self,
        account_id: &str,
        region: &str,
        namespace: &str,
        metric_name: &str,
        dimension_key: &str,
        found: i64,
    ) -> Result<()> {
        if let Some((a, r, m, d, id)) = &self.checked_series
            && (a.as_str(), r.as_str(), m.as_str(), d.as_str()) == (account_id, region, metric_name, dimension_key)
        {
            if *id == found {
                return Ok(());
            }
            return Err(self.invalid(format!("series_id {found} is not the fingerprint of its series ({id})")));
        }
        let expected = cwms_model::series_id(account_id, region, namespace, metric_name, dimension_key);
        if expected != found {
            return Err(
                self.invalid(format!("series_id {found} is not the fingerprint of its series ({expected}) in namespace {namespace:?}"))
            );
        }
        self.checked_series = Some((account_id.to_owned(), region.to_owned(), metric_name.to_owned(), dimension_key.to_owned(), expected));
        Ok(())
    }
}

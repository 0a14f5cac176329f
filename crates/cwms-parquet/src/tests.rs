//! Whole-file tests: round trips, byte-for-byte determinism, the footer, and bad files.

use std::num::NonZeroUsize;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use bytes::Bytes;
use cwms_merge::{Partition, merge_into, rollup_hourly};
use cwms_model::{Datum, OwnedDatum};
use parquet::arrow::ArrowWriter;
use parquet::basic::{ColumnOrder, Compression, LogicalType, SortOrder, TimeUnit};
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};

use crate::*;

/// 2026-11-26T07:00:00Z.
const HOUR_START_MS: i64 = 1_795_676_400_000;

/// A deterministic pseudo-random sequence (64-bit LCG), so samples need no RNG dependency.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }

    fn float(&mut self, scale: f64) -> f64 {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 * scale
    }
}

/// An hour of EC2-like datums: `instances` instances in two accounts, four metrics, one datum a
/// minute, percentiles on CPU.
pub(crate) fn sample(instances: usize, minutes: i64) -> Vec<OwnedDatum> {
    let mut rng = Lcg(42);
    let metrics = [
        ("CPUUtilization", "Percent", 100.0),
        ("NetworkIn", "Bytes", 1e7),
        ("DiskWriteOps", "Count", 500.0),
        ("StatusCheckFailed", "Count", 1.0),
    ];
    let mut out = Vec::new();
    for minute in 0..minutes {
        for instance in 0..instances {
            for (metric, unit, scale) in metrics {
                let count = if metric == "CPUUtilization" { 1.0 } else { 5.0 };
                let (a, b) = (rng.float(scale), rng.float(scale));
                let mut dimensions = vec![("InstanceId".into(), format!("i-{:017x}", instance * 7919).into())];
                if instance % 3 == 0 {
                    dimensions.insert(0, ("AutoScalingGroupName".into(), format!("web-{}", instance % 5).into()));
                }
                out.push(Datum {
                    metric_stream_name: Some("stream".into()),
                    account_id: if instance % 2 == 0 { "111122223333".into() } else { "444455556666".into() },
                    region: "us-east-1".into(),
                    namespace: "AWS/EC2".into(),
                    metric_name: metric.into(),
                    dimensions,
                    timestamp_ms: HOUR_START_MS + minute * 60_000,
                    unit: unit.into(),
                    count,
                    sum: (a + b) * count / 2.0,
                    max: a.max(b),
                    min: a.min(b),
                    stats: if metric == "CPUUtilization" { vec![("p50".into(), a.min(b)), ("p99".into(), a.max(b))] } else { vec![] },
                });
            }
        }
    }
    out
}

fn partition_of(datums: &[OwnedDatum]) -> Partition {
    let mut partition = Partition::new();
    merge_into(&mut partition, datums);
    partition
}

fn minutes_object() -> LakeObject {
    LakeObject::minutes("2026-11-26", "AWS/EC2", 7).unwrap()
}

fn encode_default(partition: &Partition) -> Bytes {
    encode(partition, &minutes_object(), &WriteOptions::default()).unwrap()
}

fn decode_minutes(bytes: Bytes) -> Result<Partition> {
    decode(bytes, &minutes_object(), "lake/metrics_1m/dt=2026-11-26/namespace=AWS%2FEC2/07.parquet")
}

#[test]
fn partitions_round_trip() {
    let partition = partition_of(&sample(20, 60));
    assert_eq!(partition.len(), 20 * 60 * 4);
    assert_eq!(decode_minutes(encode_default(&partition)).unwrap(), partition);

    let rollup = rollup_hourly(&partition);
    let day = minutes_object().day();
    let decoded = decode(encode(&rollup, &day, &WriteOptions::default()).unwrap(), &day, "day").unwrap();
    assert_eq!(decoded, rollup);

    let empty = Partition::new();
    assert_eq!(decode_minutes(encode_default(&empty)).unwrap(), empty);
}

#[test]
fn same_rows_give_the_same_bytes() {
    let datums = sample(30, 60);
    let options = WriteOptions { max_row_group_rows: NonZeroUsize::new(1000).unwrap(), ..WriteOptions::default() };
    let once = encode(&partition_of(&datums), &minutes_object(), &options).unwrap();
    assert_eq!(encode(&partition_of(&datums), &minutes_object(), &options).unwrap(), once);

    // The same datums, reversed, duplicated and merged in uneven chunks.
    let mut chunked = Partition::new();
    let reversed: Vec<OwnedDatum> = datums.iter().rev().cloned().collect();
    for chunk in reversed.chunks(997) {
        chunked.merge(&partition_of(chunk));
    }
    merge_into(&mut chunked, &datums[..500]);
    assert_eq!(encode(&chunked, &minutes_object(), &options).unwrap(), once);

    let reader = SerializedFileReader::new(once).unwrap();
    assert_eq!(reader.metadata().num_row_groups(), (30 * 60 * 4usize).div_ceil(1000));
}

#[test]
fn parallel_encoding_writes_what_arrow_writer_writes() {
    // Several row groups, several pages per column chunk, every codec.
    let partition = partition_of(&sample(30, 60));
    for codec in [Codec::default(), Codec::Snappy, Codec::Uncompressed] {
        let options =
            WriteOptions { codec, max_row_group_rows: NonZeroUsize::new(1000).unwrap(), data_page_rows: NonZeroUsize::new(300).unwrap() };
        let mut sequential = write_batch(&to_record_batch(&partition).unwrap(), writer_properties(&options)).to_vec();
        // parquet-rs writes IEEE_754_TOTAL_ORDER for the five float leaves (min, max, sum, count,
        // stats.key_value.value); the lake's writer rewrites exactly those.
        assert_eq!(crate::footer::use_type_defined_float_orders(&mut sequential), Ok(5));
        assert_eq!(encode(&partition, &minutes_object(), &options).unwrap(), sequential, "{codec}");
    }
}

#[test]
fn footer_records_the_policy() {
    let bytes = encode_default(&partition_of(&sample(5, 60)));
    let reader = SerializedFileReader::new(bytes).unwrap();
    let metadata = reader.metadata();
    let file = metadata.file_metadata();
    assert_eq!(file.created_by(), Some(created_by()));
    let kv = file.key_value_metadata().unwrap();
    assert!(kv.iter().any(|e| e.key == SCHEMA_VERSION_KEY && e.value.as_deref() == Some(SCHEMA_VERSION)));
    // The embedded Arrow schema lets pyarrow restore dictionaries and the time zone.
    assert!(kv.iter().any(|e| e.key == "ARROW:schema"));

    // Every column order is TYPE_DEFINED_ORDER, which every reader since 2017 understands
    // (parquet-rs would write IEEE_754_TOTAL_ORDER for the floats: see footer.rs).
    let orders = file.column_orders().expect("column orders are written");
    assert_eq!(orders.len(), file.schema_descr().num_columns());
    for (i, order) in orders.iter().enumerate() {
        assert!(matches!(order, ColumnOrder::TYPE_DEFINED_ORDER(_)), "column {i}: {order:?}");
    }
    assert_eq!(file.column_order(9), ColumnOrder::TYPE_DEFINED_ORDER(SortOrder::SIGNED), "min (leaf 9) is a signed double");
    assert_eq!(file.schema_descr().column(9).path().string(), "min");

    let schema = file.schema_descr();
    let leaves: Vec<String> = (0..schema.num_columns()).map(|i| schema.column(i).path().string()).collect();
    assert!(leaves.contains(&"dimensions.key_value.key".to_owned()) && leaves.contains(&"stats.key_value.value".to_owned()), "{leaves:?}");
    assert_eq!(schema.column(7).logical_type_ref(), Some(&LogicalType::timestamp(true, TimeUnit::MICROS)));

    for group in metadata.row_groups() {
        let sorting: Vec<i32> = group.sorting_columns().unwrap().iter().map(|c| c.column_idx).collect();
        assert_eq!(sorting, SORTING_COLUMNS.map(|(i, _)| i));
        for chunk in group.columns() {
            assert!(matches!(chunk.compression(), Compression::ZSTD(_)), "{:?}", chunk.column_path());
            assert!(chunk.statistics().is_some(), "{:?}", chunk.column_path());
            assert!(chunk.column_index_offset().is_some(), "page statistics for {:?}", chunk.column_path());
            let dictionary = chunk.dictionary_page_offset().is_some();
            let plain = PLAIN_COLUMNS.iter().any(|path| chunk.column_path().parts() == *path);
            assert_eq!(dictionary, !plain, "dictionary on {:?}", chunk.column_path());
        }
        // metric_name statistics bound the row group, which is what lets readers skip it.
        let stats = group.column(2).statistics().unwrap();
        assert_eq!(stats.min_bytes_opt(), Some(&b"CPUUtilization"[..]));
        assert_eq!(stats.max_bytes_opt(), Some(&b"StatusCheckFailed"[..]));
    }
}

#[test]
fn codecs_are_applied() {
    let partition = partition_of(&sample(5, 10));
    for (codec, expected) in [(Codec::Snappy, Compression::SNAPPY), (Codec::Uncompressed, Compression::UNCOMPRESSED)] {
        let options = WriteOptions { codec, ..WriteOptions::default() };
        let bytes = encode(&partition, &minutes_object(), &options).unwrap();
        let reader = SerializedFileReader::new(bytes.clone()).unwrap();
        assert_eq!(reader.metadata().row_group(0).column(0).compression(), expected);
        assert_eq!(decode_minutes(bytes).unwrap(), partition);
    }
}

/// Asserts that decoding fails with an error that names the object and says `needle`.
fn check_decode_error(bytes: Bytes, needle: &str) {
    let error = decode_minutes(bytes).unwrap_err().to_string();
    assert!(error.contains("lake/metrics_1m/dt=2026-11-26/namespace=AWS%2FEC2/07.parquet"), "{error}");
    assert!(error.contains(needle), "expected {needle:?} in: {error}");
}

#[test]
fn unreadable_bytes_are_corrupt() {
    let bytes = encode_default(&partition_of(&sample(5, 10)));
    check_decode_error(bytes.slice(..bytes.len() / 2), "not a readable parquet file");
    check_decode_error(bytes.slice(..bytes.len() - 1), "not a readable parquet file");
    check_decode_error(Bytes::new(), "not a readable parquet file");
    let mut rng = Lcg(7);
    let noise: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
    check_decode_error(Bytes::from(noise), "not a readable parquet file");
    // Damage inside the column data, footer intact.
    let mut damaged = bytes.to_vec();
    for byte in &mut damaged[8..200] {
        *byte ^= 0x5a;
    }
    check_decode_error(Bytes::from(damaged), "not a readable parquet file");
}

fn write_batch(batch: &RecordBatch, properties: WriterProperties) -> Bytes {
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties)).unwrap();
    writer.write(batch).unwrap();
    Bytes::from(writer.into_inner().unwrap())
}

fn lake_batch() -> RecordBatch {
    to_record_batch(&partition_of(&sample(3, 5))).unwrap()
}

fn replace_column(batch: &RecordBatch, name: &str, column: ArrayRef, field: Option<Field>) -> RecordBatch {
    let index = batch.schema().index_of(name).unwrap();
    let mut columns = batch.columns().to_vec();
    columns[index] = column;
    let mut fields: Vec<Field> = batch.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    if let Some(field) = field {
        fields[index] = field;
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

#[test]
fn other_schemas_are_refused() {
    let properties = writer_properties(&WriteOptions::default());
    let foreign = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, false)])),
        vec![Arc::new(Int64Array::from(vec![1, 2]))],
    )
    .unwrap();
    check_decode_error(write_batch(&foreign, properties.clone()), "columns are [\"a\"]");

    let unversioned = properties.clone().into_builder().set_key_value_metadata(None).build();
    check_decode_error(write_batch(&lake_batch(), unversioned), "no cwms.schema_version");

    let version_2 = properties
        .clone()
        .into_builder()
        .set_key_value_metadata(Some(vec![parquet::file::metadata::KeyValue::new(SCHEMA_VERSION_KEY.into(), "2".to_owned())]))
        .build();
    check_decode_error(write_batch(&lake_batch(), version_2), "cwms.schema_version is \"2\"");

    let batch = lake_batch();
    let as_text: ArrayRef = Arc::new(StringArray::from_iter_values((0..batch.num_rows()).map(|i| i.to_string())));
    let retyped = replace_column(&batch, column::SERIES_ID, as_text, Some(Field::new(column::SERIES_ID, DataType::Utf8, false)));
    check_decode_error(write_batch(&retyped, properties.clone()), "series_id");

    let nullable =
        replace_column(&batch, column::SERIES_ID, Arc::clone(batch.column(5)), Some(Field::new(column::SERIES_ID, DataType::Int64, true)));
    check_decode_error(write_batch(&nullable, properties), "nullability");
}

#[test]
fn inconsistent_rows_are_refused() {
    let properties = writer_properties(&WriteOptions::default());
    let batch = lake_batch();
    let ids = batch.column(5).as_any().downcast_ref::<Int64Array>().unwrap();

    let mut changed: Vec<i64> = ids.values().to_vec();
    changed[3] = changed[3].wrapping_add(1);
    let bad_id = replace_column(&batch, column::SERIES_ID, Arc::new(Int64Array::from(changed)), None);
    check_decode_error(write_batch(&bad_id, properties.clone()), "row 3: series_id");

    let keys = batch.column(4).as_any().downcast_ref::<StringArray>().unwrap();
    let bad_key: Vec<String> =
        keys.iter().enumerate().map(|(i, k)| if i == 2 { "InstanceId=i-x".into() } else { k.unwrap().to_owned() }).collect();
    let bad_key = replace_column(&batch, column::DIMENSION_KEY, Arc::new(StringArray::from(bad_key)), None);
    check_decode_error(write_batch(&bad_key, properties.clone()), "row 2: dimension_key");

    let indices: Vec<u32> = (0..batch.num_rows() as u32).rev().collect();
    let unsorted = arrow_select::take::take_record_batch(&batch, &arrow_array::UInt32Array::from(indices)).unwrap();
    check_decode_error(write_batch(&unsorted, properties.clone()), "row 1: sort key (");

    let twice = arrow_select::concat::concat_batches(&batch.schema(), [&batch, &batch]).unwrap();
    check_decode_error(write_batch(&twice, properties), "row 60: sort key");

    // The right file read as another object: other namespace, other hour.
    let bytes = encode_default(&partition_of(&sample(3, 5)));
    let error = decode(bytes.clone(), &LakeObject::minutes("2026-11-26", "AWS/EBS", 7).unwrap(), "ebs").unwrap_err();
    assert!(error.to_string().contains("series_id"), "{error}");
    let error = decode(bytes, &LakeObject::minutes("2026-11-26", "AWS/EC2", 8).unwrap(), "h8").unwrap_err();
    assert!(error.to_string().contains("outside the object's"), "{error}");
}

#[test]
fn encode_refuses_rows_of_another_object() {
    let partition = partition_of(&sample(2, 5));
    let options = WriteOptions::default();
    let check = |object: LakeObject, partition: &Partition, needle: &str| {
        let error = encode(partition, &object, &options).unwrap_err().to_string();
        assert!(error.contains(&object.key()) && error.contains(needle), "{error}");
    };
    check(LakeObject::minutes("2026-11-26", "AWS/EC2", 8).unwrap(), &partition, "outside");
    check(LakeObject::minutes("2026-11-26", "AWS/EBS", 7).unwrap(), &partition, "namespace \"AWS/EC2\"");
    let mut without_stats = sample(2, 5);
    without_stats.retain(|d| d.stats.is_empty());
    check(minutes_object().day(), &partition_of(&without_stats), "not the start of an hour");
    let mut on_the_hour = sample(1, 1);
    on_the_hour.retain(|d| d.metric_name == "CPUUtilization");
    check(minutes_object().day(), &partition_of(&on_the_hour), "additional statistics into a rollup");
}

/// Damaged bytes either fail to decode or decode to something; they never panic. (Parquet has
/// no checksum over values, so a flipped bit inside a float can go unnoticed: that is what the
/// object store's own integrity checks are for.)
#[test]
fn damaged_bytes_never_panic() {
    let bytes = encode_default(&partition_of(&sample(3, 10))).to_vec();
    let mut rng = Lcg(99);
    for round in 0..500 {
        let mut damaged = bytes.clone();
        for _ in 0..1 + rng.next() % 4 {
            // Half the rounds aim at the footer, where the structure lives.
            let span = if round % 2 == 0 { damaged.len() } else { 600.min(damaged.len()) };
            let at = damaged.len() - 1 - (rng.next() as usize) % span;
            damaged[at] = rng.next() as u8;
        }
        let outcome = std::panic::catch_unwind(|| decode_minutes(Bytes::from(damaged)));
        assert!(outcome.is_ok(), "round {round} panicked");
    }
}

/// The reference of a merge into a lake object: decode it whole, merge, encode.
fn merged_whole(existing: Option<&Bytes>, incoming: &Partition, options: &WriteOptions) -> (Bytes, u64, Partition) {
    let mut merged = match existing {
        Some(bytes) => decode_minutes(bytes.clone()).unwrap(),
        None => Partition::new(),
    };
    let duplicates = merged.merge(incoming).duplicates() as u64;
    (encode(&merged, &minutes_object(), options).unwrap(), duplicates, rollup_hourly(&merged))
}

fn check_streaming_merge(existing: &[OwnedDatum], incoming: &[OwnedDatum], options: &WriteOptions) {
    let existing = (!existing.is_empty()).then(|| encode(&partition_of(existing), &minutes_object(), options).unwrap());
    let incoming = partition_of(incoming);
    let (bytes, duplicates, rollup) = merged_whole(existing.as_ref(), &incoming, options);
    let streamed = merge_into_object(existing, &incoming, &minutes_object(), options, "test").unwrap();
    assert!(streamed.bytes == bytes, "the streaming merge wrote other bytes than decode + merge + encode");
    assert_eq!(streamed.duplicates, duplicates);
    assert_eq!(streamed.rollup.unwrap(), rollup);
    assert_eq!(streamed.rows as usize, decode_minutes(bytes).unwrap().len());
}

#[test]
fn streaming_merge_writes_what_a_whole_merge_writes() {
    let all = sample(12, 60);
    let small = WriteOptions {
        max_row_group_rows: NonZeroUsize::new(97).unwrap(),
        data_page_rows: NonZeroUsize::new(31).unwrap(),
        ..WriteOptions::default()
    };
    for options in [WriteOptions::default(), small] {
        // Nothing yet; everything new; interleaved halves; overlapping with changed values.
        check_streaming_merge(&[], &all, &options);
        check_streaming_merge(&all, &[], &options);
        let (even, odd): (Vec<_>, Vec<_>) = all.iter().cloned().enumerate().partition(|(i, _)| i % 2 == 0);
        let (even, odd): (Vec<OwnedDatum>, Vec<OwnedDatum>) =
            (even.into_iter().map(|(_, d)| d).collect(), odd.into_iter().map(|(_, d)| d).collect());
        check_streaming_merge(&even, &odd, &options);
        let resent: Vec<OwnedDatum> = all.iter().step_by(3).map(|d| Datum { count: d.count + 1.0, ..d.clone() }).collect();
        let lower: Vec<OwnedDatum> = all.iter().step_by(5).map(|d| Datum { count: d.count - 0.5, sum: -1.0, ..d.clone() }).collect();
        check_streaming_merge(&all, &resent, &options);
        check_streaming_merge(&all, &lower, &options);
        check_streaming_merge(&resent, &all, &options);
    }
}

/// An object larger than one read batch (65,536 rows) is merged chunk by chunk, with the same bytes.
#[test]
fn streaming_merge_crosses_read_batches() {
    let all = sample(300, 60);
    assert!(all.len() > 65_536 + 1000, "{}", all.len());
    let later: Vec<OwnedDatum> = all.iter().step_by(7).map(|d| Datum { count: d.count + 1.0, ..d.clone() }).collect();
    check_streaming_merge(&all, &later, &WriteOptions::default());
    // decode_chunks hands out every row once, in order, in batches of at most 65,536.
    let bytes = encode_default(&partition_of(&all));
    let mut sizes = Vec::new();
    let mut rows = 0;
    decode_chunks(bytes, &minutes_object(), "test", |chunk| {
        sizes.push(chunk.len());
        rows += chunk.len();
        Ok(())
    })
    .unwrap();
    assert!(sizes.len() >= 2 && sizes.iter().all(|&n| n <= 65_536), "{sizes:?}");
    assert_eq!(rows, all.len());
}

#[test]
fn a_streaming_merge_refuses_what_decode_refuses() {
    let incoming = partition_of(&sample(2, 5));
    let err = merge_into_object(
        Some(Bytes::from_static(b"PAR1 not really")),
        &incoming,
        &minutes_object(),
        &WriteOptions::default(),
        "x.parquet",
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a readable parquet file"), "{err}");
    let other_hour = LakeObject::minutes("2026-11-26", "AWS/EC2", 8).unwrap();
    let err = merge_into_object(None, &incoming, &other_hour, &WriteOptions::default(), "x.parquet").unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
}

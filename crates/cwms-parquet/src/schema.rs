//! The lake's Arrow schema (DESIGN 4.1), shared by `metrics_1m` and `metrics_1h`.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};

/// The version of the lake's file schema, written as key-value metadata under
/// [`SCHEMA_VERSION_KEY`]. A reader refuses files of any other version rather than misreading them.
pub const SCHEMA_VERSION: &str = "1";

/// The Parquet key-value metadata key that holds [`SCHEMA_VERSION`].
pub const SCHEMA_VERSION_KEY: &str = "cwms.schema_version";

/// Column names, in file order. The order is part of the contract: Redshift's `COPY` maps
/// Parquet columns by position.
pub mod column {
    pub const ACCOUNT_ID: &str = "account_id";
    pub const REGION: &str = "region";
    pub const METRIC_NAME: &str = "metric_name";
    pub const DIMENSIONS: &str = "dimensions";
    pub const DIMENSION_KEY: &str = "dimension_key";
    pub const SERIES_ID: &str = "series_id";
    pub const TIMESTAMP: &str = "timestamp";
    pub const UNIT: &str = "unit";
    pub const MIN: &str = "min";
    pub const MAX: &str = "max";
    pub const SUM: &str = "sum";
    pub const COUNT: &str = "count";
    pub const STATS: &str = "stats";

    /// Every column, in file order.
    pub const ALL: [&str; 13] =
        [ACCOUNT_ID, REGION, METRIC_NAME, DIMENSIONS, DIMENSION_KEY, SERIES_ID, TIMESTAMP, UNIT, MIN, MAX, SUM, COUNT, STATS];
}

/// The Parquet specification's names for a map's repeated group and its two fields.
///
/// arrow-rs names them `entries`, `keys` and `values` by default; DuckDB and pyarrow read
/// either naming, but Hive-lineage readers (Athena's Hive SerDe, Redshift Spectrum, Spark)
/// expect the specification's, so the lake's Arrow schema uses them directly and the Parquet
/// schema follows without any type coercion.
pub const MAP_ENTRIES: &str = "key_value";
pub const MAP_KEY: &str = "key";
pub const MAP_VALUE: &str = "value";

/// The time zone of the `timestamp` column: instants, stored as UTC microseconds
/// (Parquet `TIMESTAMP(isAdjustedToUTC=true, MICROS)`); never nanoseconds, which Athena and
/// Redshift misread.
pub const TIMESTAMP_TZ: &str = "UTC";

/// `Dictionary(Int32, Utf8)`: the type of the low-cardinality string columns.
pub fn dictionary_string() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// The fields of a map entry: a non-null `Utf8` key and a non-null value of `value_type`.
pub(crate) fn map_entry_fields(value_type: DataType) -> Fields {
    Fields::from(vec![Field::new(MAP_KEY, DataType::Utf8, false), Field::new(MAP_VALUE, value_type, false)])
}

/// The entries field of a map with non-null keys and values of `value_type`.
pub(crate) fn map_entries(value_type: DataType) -> Arc<Field> {
    Arc::new(Field::new(MAP_ENTRIES, DataType::Struct(map_entry_fields(value_type)), false))
}

/// Map keys are written sorted (dimensions by name, statistics by name), and the Arrow type says so.
pub(crate) const MAP_KEYS_SORTED: bool = true;

/// The Arrow schema of every lake file (DESIGN 4.1).
///
/// Every column is non-nullable, including map values: a lake row always has all its values,
/// and "no additional statistics" is an empty `stats` map. `namespace` and `dt` are not columns:
/// they are Hive partition keys in the object's path (see [`crate::LakeObject`]).
pub fn lake_schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new(column::ACCOUNT_ID, dictionary_string(), false),
            Field::new(column::REGION, dictionary_string(), false),
            Field::new(column::METRIC_NAME, dictionary_string(), false),
            Field::new(column::DIMENSIONS, DataType::Map(map_entries(DataType::Utf8), MAP_KEYS_SORTED), false),
            Field::new(column::DIMENSION_KEY, DataType::Utf8, false),
            Field::new(column::SERIES_ID, DataType::Int64, false),
            Field::new(column::TIMESTAMP, DataType::Timestamp(TimeUnit::Microsecond, Some(TIMESTAMP_TZ.into())), false),
            Field::new(column::UNIT, dictionary_string(), false),
            Field::new(column::MIN, DataType::Float64, false),
            Field::new(column::MAX, DataType::Float64, false),
            Field::new(column::SUM, DataType::Float64, false),
            Field::new(column::COUNT, DataType::Float64, false),
            Field::new(column::STATS, DataType::Map(map_entries(DataType::Float64), MAP_KEYS_SORTED), false),
        ]))
    });
    Arc::clone(&SCHEMA)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_follow_the_design_table() {
        let schema = lake_schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, column::ALL);
        assert!(schema.fields().iter().all(|f| !f.is_nullable()));
    }
}

//! The lake's Arrow schema, Parquet writer policy, Hive path keys and reader

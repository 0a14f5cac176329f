//! Registers lake partitions in the Glue Data Catalog, so Redshift Spectrum and Spark (which do
//! not honour Athena's partition projection) see them.
//!
//! Registration is idempotent: a partition that already exists is reported by Glue per entry as
//! `AlreadyExistsException` and counted as present, not as an error.

use std::collections::BTreeSet;

use aws_sdk_glue::Client;
use aws_sdk_glue::types::{PartitionInput, StorageDescriptor};
use cwms_parquet::{Table, partition_path};

use crate::{Error, Result};

/// Glue's limit on partitions per BatchCreatePartition call.
const BATCH: usize = 100;

/// Where and how to register partitions.
#[derive(Debug, Clone)]
pub struct GlueTarget {
    pub database: String,
    /// Tables are `<prefix>metrics_1m` and `<prefix>metrics_1h`.
    pub table_prefix: String,
    /// The lake's S3 location, `s3://bucket/prefix/` (partition locations are below it).
    pub lake_url: String,
}

impl GlueTarget {
    /// A Glue client from the standard AWS configuration (credentials, region, endpoint), with
    /// the target it registers into: what the compactor Lambda and `cwms compact` both use.
    pub async fn connect(database: &str, table_prefix: &str, lake_url: &str) -> (Client, GlueTarget) {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let target = GlueTarget { database: database.to_owned(), table_prefix: table_prefix.to_owned(), lake_url: lake_url.to_owned() };
        (Client::new(&config), target)
    }
}

use crate::report::Registered;

/// Registers `(table, dt, namespace)` partitions, copying each table's storage descriptor
/// (format, SerDe, columns) with the partition's own location.
pub async fn register(client: &Client, target: &GlueTarget, partitions: &BTreeSet<(Table, String, String)>) -> Result<Registered> {
    let mut registered = Registered::default();
    for table in [Table::Metrics1m, Table::Metrics1h] {
        let values: Vec<&(Table, String, String)> = partitions.iter().filter(|(t, _, _)| *t == table).collect();
        if values.is_empty() {
            continue;
        }
        let table_name = format!("{}{}", target.table_prefix, table.name());
        let glue_error =
            |op: &str, e: String| Error::Glue { operation: op.to_owned(), table: format!("{}.{table_name}", target.database), message: e };
        let described = client
            .get_table()
            .database_name(&target.database)
            .name(&table_name)
            .send()
            .await
            .map_err(|e| glue_error("GetTable", aws_sdk_glue::error::DisplayErrorContext(e).to_string()))?;
        let descriptor =
            described.table().and_then(|t| t.storage_descriptor()).cloned().unwrap_or_else(|| StorageDescriptor::builder().build());
        for chunk in values.chunks(BATCH) {
            let inputs: Vec<PartitionInput> = chunk
                .iter()
                .map(|(table, dt, namespace)| {
                    let location = format!("{}/{}", target.lake_url.trim_end_matches('/'), partition_path(*table, dt, namespace));
                    let mut sd = descriptor.clone();
                    sd.location = Some(location);
                    PartitionInput::builder().values(dt.clone()).values(namespace.clone()).storage_descriptor(sd).build()
                })
                .collect();
            let output = client
                .batch_create_partition()
                .database_name(&target.database)
                .table_name(&table_name)
                .set_partition_input_list(Some(inputs))
                .send()
                .await
                .map_err(|e| glue_error("BatchCreatePartition", aws_sdk_glue::error::DisplayErrorContext(e).to_string()))?;
            let mut already = 0;
            for error in output.errors() {
                let code = error.error_detail().and_then(|d| d.error_code()).unwrap_or("");
                if code == "AlreadyExistsException" {
                    already += 1;
                } else {
                    let message = error.error_detail().and_then(|d| d.error_message()).unwrap_or("");
                    return Err(glue_error("BatchCreatePartition", format!("partition {:?}: {code}: {message}", error.partition_values())));
                }
            }
            registered.already_present += already;
            registered.created += chunk.len() - already;
        }
    }
    Ok(registered)
}

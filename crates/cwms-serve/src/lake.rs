//! Reading the lake for a query: which objects, fetched from the store, decoded off the async
//! threads, and their rows handed to a [`Scanner`].

use std::collections::HashSet;
use std::sync::Arc;

use cwms_merge::{HOUR_MS, Row, SeriesKey};
use cwms_parquet::{LakeObject, Table};
use cwms_store::ObjectStore;
use futures::StreamExt;

use crate::error::{ApiError, ApiResult};

/// The most lake objects one request may read. A `metrics_1m` object holds an hour of a
/// namespace, a `metrics_1h` object a day: 2,000 is 83 days of minutes or five years of hours per
/// namespace, more than CloudWatch's datapoint limits let a request ask for at a sensible period.
pub const MAX_OBJECTS_PER_REQUEST: usize = 2_000;

/// How many objects are fetched ahead of the one being decoded.
const PREFETCH: usize = 4;

/// What consumes the rows of the objects a query reads.
pub trait Scanner: Send + 'static {
    /// Whether the rows of a series are wanted (called once per series of each batch of rows).
    fn wants(&mut self, series: &SeriesKey) -> bool;
    /// A wanted row, in the lake's order (by metric, dimensions, then time).
    fn row(&mut self, row: &Row<'_>);
}

/// The error chain of an error, joined, for a message.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

/// The lake behind a store.
#[derive(Debug, Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
}

impl Lake {
    pub fn new(store: Arc<dyn ObjectStore>) -> Lake {
        Lake { store }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The objects of `table` for `namespace` that can hold rows in `[start_ms, end_ms)`, in time order.
    pub fn objects(table: Table, namespace: &str, start_ms: i64, end_ms: i64) -> ApiResult<Vec<LakeObject>> {
        let step = match table {
            Table::Metrics1m => HOUR_MS,
            Table::Metrics1h => 24 * HOUR_MS,
        };
        let first = start_ms.div_euclid(step) * step;
        let count = (end_ms - first + step - 1).div_euclid(step).max(0);
        if count as usize > MAX_OBJECTS_PER_REQUEST {
            return Err(too_many_objects(count as usize, table));
        }
        (0..count)
            .map(|i| {
                let object = LakeObject::minutes_at(namespace, first + i * step).map_err(|e| ApiError::invalid(e.to_string()))?;
                Ok(match table {
                    Table::Metrics1m => object,
                    Table::Metrics1h => object.day(),
                })
            })
            .collect()
    }

    /// Reads `objects` in order (a missing one holds no rows) and hands their rows to `scanner`.
    ///
    /// Fetches run a few objects ahead; decoding, which is CPU work, runs on the blocking pool.
    /// A damaged object fails the request with an error naming it (the server's fault, not the
    /// client's), never a silent gap in the answer.
    pub async fn scan<S: Scanner>(&self, objects: Vec<LakeObject>, mut scanner: S) -> ApiResult<S> {
        let store = &self.store;
        let mut fetched = futures::stream::iter(objects)
            .map(|object| async move {
                let key = object.key();
                let found = store.get(&key).await.map_err(|e| ApiError::internal(chain(&e)))?;
                Ok::<_, ApiError>(found.map(|found| (object, store.describe(&key), found.bytes)))
            })
            .buffered(PREFETCH);
        while let Some(next) = fetched.next().await {
            let Some((object, location, bytes)) = next? else { continue };
            scanner = tokio::task::spawn_blocking(move || {
                cwms_parquet::decode_chunks(bytes, &object, &location, |partition| {
                    let wanted: HashSet<*const SeriesKey> =
                        partition.series().filter(|series| scanner.wants(series)).map(|series| series as *const SeriesKey).collect();
                    if !wanted.is_empty() {
                        for row in partition.rows() {
                            if wanted.contains(&Arc::as_ptr(row.series)) {
                                scanner.row(&row);
                            }
                        }
                    }
                    Ok(())
                })
                .map(|()| scanner)
                .map_err(|e| ApiError::internal(chain(&e)))
            })
            .await
            .map_err(|e| ApiError::internal(format!("reading a lake object failed: {e}")))??;
        }
        Ok(scanner)
    }

    /// The keys of every `metrics_1h` day object, with the day and namespace each is for.
    ///
    /// A namespace too long for a folder name has a bounded, hashed folder that cannot be read
    /// back ([`cwms_parquet::partition_path`]); its objects are found only by a request that
    /// names the namespace (`wanted`), as are entries that are not lake objects at all.
    pub async fn days(&self, wanted: Option<&str>) -> ApiResult<Vec<LakeObject>> {
        let prefix = format!("{}/", Table::Metrics1h.name());
        let listed = self.store.list(&prefix).await.map_err(|e| ApiError::internal(chain(&e)))?;
        let mut days = Vec::new();
        let mut unreadable = 0usize;
        for meta in listed {
            if meta.problem.is_some() || !meta.key.ends_with(cwms_parquet::DAY_OBJECT_NAME) {
                unreadable += 1;
                continue;
            }
            if let Some(namespace) = wanted {
                // `metrics_1h/dt=D/namespace=F/day.parquet`: the day from the path, the folder compared
                // with the namespace's own (bounded or not).
                let dt = meta.key.split('/').nth(1).and_then(|s| s.strip_prefix("dt="));
                if let Some(object) = dt.and_then(|dt| LakeObject::hourly(dt, namespace).ok())
                    && object.key() == meta.key
                {
                    days.push(object);
                }
                continue;
            }
            match LakeObject::parse(&meta.key) {
                Ok(object) => days.push(object),
                Err(_) => unreadable += 1,
            }
        }
        if unreadable > 0 && wanted.is_none() {
            tracing::warn!(
                "{unreadable} entries under {} are not day objects whose namespace the path gives (long namespaces have hashed \
                 folders): ListMetrics without a Namespace leaves them out",
                self.store.describe(&prefix)
            );
        }
        days.sort();
        Ok(days)
    }
}

/// The error of a request that would read more than [`MAX_OBJECTS_PER_REQUEST`] objects.
pub fn too_many_objects(count: usize, table: Table) -> ApiError {
    let what = match table {
        Table::Metrics1m => "hours of metrics_1m",
        Table::Metrics1h => "days of metrics_1h",
    };
    ApiError::combination(format!(
        "the request would read {count} lake objects ({what}); at most {MAX_OBJECTS_PER_REQUEST} are read per request: narrow the \
         time range, or use a period of whole hours with StartTime and EndTime on the hour (read from metrics_1h)"
    ))
}

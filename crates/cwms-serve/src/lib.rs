//! The lake behind CloudWatch's own read API: `ListMetrics`, `GetMetricStatistics` and
//! `GetMetricData`, answered from `metrics_1m` and `metrics_1h` over HTTP, so that the scripts,
//! SDKs and habits people have for CloudWatch work on the lake with only an endpoint changed.
//!
//! - [`http`] speaks the SDKs' two protocols (AWS JSON 1.0, Smithy RPC v2 CBOR) and their
//!   error shapes, with a bounded request body; [`serve`] runs it on a listener.
//! - [`list`], [`statistics`] and [`data`] are the three operations, each a plain async
//!   function of the lake and the operation's input ([`api`]), checked into queries by
//!   [`query`].
//! - [`lake`] reads only the objects a query needs (its namespace's hours or days), decoding
//!   them off the async threads; [`read`] reads the objects of many queries once.
//! - [`stats`] computes CloudWatch's statistics over a period's datums exactly: `SampleCount` is
//!   the sum of counts, `Average` the sum of sums over the sum of counts, and a percentile only
//!   where the lake holds it as streamed.
//!
//! The server is read-only and checks no credentials: it is meant for 127.0.0.1.

pub mod api;
pub mod data;
pub mod error;
pub mod http;
pub mod lake;
pub mod list;
pub mod query;
pub mod read;
pub mod statistics;
pub mod stats;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;

pub use error::{ApiError, ApiResult, ErrorKind};
pub use lake::Lake;

/// What can stop the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Accepting or serving connections failed.
    #[error("serving http on {address}: {source}")]
    Serve {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Serves the lake in `store` on `listener` until `shutdown` completes (then finishes the
/// requests in flight).
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<dyn cwms_store::ObjectStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| "a listener".to_owned());
    axum::serve(listener, http::router(Lake::new(store)))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Serve { address, source })
}

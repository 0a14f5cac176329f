//! `cwms serve`: the lake behind CloudWatch's read API, for the SDKs, the AWS CLI and scripts
//! that already call ListMetrics, GetMetricStatistics and GetMetricData.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

use crate::output::{err, out};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The lake to serve, read-only: a folder or `s3://bucket/prefix` (the folder that holds
    /// metrics_1m/ and metrics_1h/).
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub lake: String,
    /// The address to listen on (port 0 picks a free one, printed at start). cwms serve checks no
    /// credentials: an address other machines can reach lets them read every metric in the lake.
    #[arg(long, value_name = "ADDRESS:PORT", default_value = "127.0.0.1:8642")]
    pub listen: SocketAddr,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<ExitCode> {
    let store = cwms_store::open_existing(&args.lake).await.with_context(|| format!("opening the lake {}", args.lake))?;
    // A first listing finds a missing bucket or missing credentials now, not at the first query,
    // and says when the folder holds no lake.
    let mut tables = Vec::new();
    for table in ["metrics_1m/", "metrics_1h/"] {
        let listed = store.list(table).await.with_context(|| format!("listing {}", store.describe(table)))?;
        tables.push(listed.len());
    }
    if tables.iter().all(|&n| n == 0) {
        let nested = store.list("lake/metrics_1h/").await.map(|l| !l.is_empty()).unwrap_or(false);
        let hint =
            if nested { format!(" (its lake/ folder holds one: --lake {}/lake)", args.lake.trim_end_matches('/')) } else { String::new() };
        err!("cwms serve: warning: {} holds no metrics_1m/ or metrics_1h/ objects yet, so every answer is empty{hint}", store.identity());
    }
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("cannot listen on {} (--listen)", args.listen))?;
    let address = listener.local_addr().context("reading the address listened on")?;
    if !address.ip().is_loopback() {
        err!(
            "cwms serve: WARNING: listening on {address}, which other machines may reach. cwms serve checks NO credentials: \
             anyone who can connect can read every metric in {}. Use 127.0.0.1 unless a firewall or proxy guards this port.",
            store.identity()
        );
    }
    out!("cwms serve: {} on http://{address}/", store.identity())?;
    out!("  CloudWatch's ListMetrics, GetMetricStatistics and GetMetricData (AWS JSON 1.0 and Smithy RPC v2 CBOR), read-only")?;
    out!("  aws cloudwatch list-metrics --endpoint-url http://{address}   (any credentials and region are accepted)")?;
    out!("  Ctrl-C stops it")?;
    let shutdown = async {
        // Without a signal handler the server would run until killed, which is also fine.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    cwms_serve::serve(listener, store, shutdown).await?;
    err!("cwms serve: stopped");
    Ok(ExitCode::SUCCESS)
}

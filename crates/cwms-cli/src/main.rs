//! `cwms`: the whole CloudWatch-metrics-to-Parquet pipeline from one command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: merging allocates small values by the million
/// across threads, where glibc's malloc spent a sixth of the compactor's time and kept freed
/// memory in per-thread arenas (a higher peak RSS).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod compact;
#[cfg(feature = "aws")]
mod firehose_put;
mod generate;
mod local_firehose;
mod output;
#[cfg(feature = "aws")]
mod redrive;
#[cfg(feature = "aws")]
mod replay;
mod run;
mod serve;
mod transform;

/// CloudWatch Metric Streams to a Parquet lake: run, transform, compact, generate, and (with the
/// default `aws` feature) replay and re-drive into Firehose.
#[derive(Debug, Parser)]
#[command(name = "cwms", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole pipeline locally: generate an hour of data, transform it as Firehose would,
    /// write raw/ and errors/, and compact into a Parquet lake (no AWS account needed).
    Run(run::Args),
    /// Run the Firehose transform on an event file and print the response, as the Lambda would.
    Transform(transform::Args),
    /// Generate realistic CloudWatch metric-stream data: NDJSON, Firehose events or raw S3 objects.
    Generate(generate::Args),
    /// Compact raw metric-stream objects (a folder or S3) into the Parquet lake.
    Compact(compact::Args),
    /// Serve the lake through CloudWatch's read API (ListMetrics, GetMetricStatistics, GetMetricData) on 127.0.0.1, read-only.
    Serve(serve::Args),
    /// Send metric-stream NDJSON files (or a raw folder) into a Firehose delivery stream, packed as CloudWatch packs them.
    #[cfg(feature = "aws")]
    Replay(replay::Args),
    /// Put the records the transform failed (Firehose's processing-failed error objects) back into a delivery stream.
    #[cfg(feature = "aws")]
    Redrive(redrive::Args),
}

fn main() -> ExitCode {
    cwms_compactor::allocator::return_freed_memory_at_once();
    let cli = Cli::parse();
    // Warnings of the libraries (a store retrying a read, say) on standard error; RUST_LOG
    // chooses more (`RUST_LOG=debug`).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).try_init();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Transform(args) => transform::run(args),
        Command::Generate(args) => generate::run(args),
        Command::Compact(args) => compact::run(args),
        Command::Serve(args) => serve::run(args),
        #[cfg(feature = "aws")]
        Command::Replay(args) => replay::run(args),
        #[cfg(feature = "aws")]
        Command::Redrive(args) => redrive::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            output::err_line(format_args!("cwms: error: {error:#}"));
            ExitCode::FAILURE
        }
    }
}

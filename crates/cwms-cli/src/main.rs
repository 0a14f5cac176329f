//! `cwms`: the whole CloudWatch-metrics-to-Parquet pipeline from one command.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod transform;

/// CloudWatch Metric Streams to a Parquet lake: transform, compact, generate, replay, re-drive.
#[derive(Debug, Parser)]
#[command(name = "cwms", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the Firehose transform on an event file and print the response, as the Lambda would.
    Transform(transform::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Transform(args) => transform::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("cwms: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

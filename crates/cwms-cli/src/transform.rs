//! `cwms transform`: the Lambda's handler on a local event file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use cwms_transform::{Config, FirehoseEvent};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A Firehose data-transformation event (JSON), or `-` for standard input.
    #[arg(long, value_name = "FILE")]
    event: PathBuf,
    /// Also print the counts (records ok, dropped, failed, datums, bytes) and each failure on stderr.
    #[arg(long)]
    stats: bool,
}

/// Prints the response JSON on stdout. Exits 0 whenever the event itself was readable, whatever
/// became of its records, exactly as the Lambda returns a response for any readable event.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = Config::from_env().context("reading CWMS_ settings from the environment")?;
    let bytes = if args.event.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("reading the event from standard input")?;
        buf
    } else {
        std::fs::read(&args.event).with_context(|| format!("reading event file {}", args.event.display()))?
    };
    let event =
        FirehoseEvent::from_json(&bytes).with_context(|| format!("{} is not a Firehose transformation event", args.event.display()))?;
    let mut outcome = cwms_transform::transform_to_json(&config, &event);
    outcome.response.push(b'\n');
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&outcome.response).and_then(|()| stdout.flush()).context("writing the response")?;
    if args.stats {
        let s = &outcome.stats;
        eprintln!(
            "records: {} in, {} ok, {} dropped, {} failed; datums: {} out, {} duplicates removed, {} filtered; bytes: {} in, {} out; {:.1} ms",
            s.records_in,
            s.records_ok,
            s.records_dropped,
            s.records_failed,
            s.datums,
            s.duplicates_removed,
            s.datums_filtered,
            s.bytes_in,
            s.bytes_out,
            s.duration.as_secs_f64() * 1000.0
        );
        for failure in &outcome.failures {
            eprintln!("failed record {}: {}", failure.record_id, failure.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}

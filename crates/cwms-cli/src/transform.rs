//! `cwms transform`: the Lambda's handler on a local event file.

use crate::output::err;
use std::io::Write;
use std::os::fd::AsFd;
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
    let event_bytes = EventBytes::read(&args.event)?;
    let event = FirehoseEvent::from_json(event_bytes.as_bytes())
        .with_context(|| format!("{} is not a Firehose transformation event", args.event.display()))?;
    // Standard output as a plain file: `Stdout` is line-buffered, and looks for the last newline
    // in every write, which for a 6 MB response of base64 is a search through all of it.
    let stdout = std::io::stdout().lock();
    let mut stdout = std::fs::File::from(stdout.as_fd().try_clone_to_owned().context("duplicating standard output")?);
    let outcome = match cwms_transform::transform_to_writer(&config, &event, &mut stdout)
        .and_then(|outcome| stdout.write_all(b"\n").and_then(|()| stdout.flush()).map(|()| outcome))
    {
        Ok(outcome) => outcome,
        // A closed pipe (`| head -c 100`): the reader has what it wanted.
        Err(e) => {
            crate::output::quiet_if_closed(e).context("writing the response to standard output")?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    if args.stats {
        let s = &outcome.stats;
        err!(
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
        err!(
            "formats: {} json records, {} opentelemetry records ({} datums of 1.0, {} of 0.7)",
            s.records_json,
            s.records_opentelemetry,
            s.datums_opentelemetry_1_0,
            s.datums_opentelemetry_0_7
        );
        for failure in &outcome.failures {
            err!("failed record {}: {}", failure.record_id, failure.reason);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The event's bytes: a regular file is mapped rather than read, so its pages come straight from
/// the page cache instead of being faulted in and copied into 6 MB of fresh memory.
enum EventBytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl EventBytes {
    fn read(path: &std::path::Path) -> anyhow::Result<Self> {
        if path.as_os_str() == "-" {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("reading the event from standard input")?;
            return Ok(Self::Read(buf));
        }
        let context = || format!("reading event file {}", path.display());
        let file = std::fs::File::open(path).with_context(context)?;
        let metadata = file.metadata().with_context(context)?;
        if !metadata.is_file() || metadata.len() == 0 {
            // A pipe, a device or an empty file: mapping is for regular files with bytes.
            let mut buf = Vec::new();
            std::io::Read::read_to_end(&mut &file, &mut buf).with_context(context)?;
            return Ok(Self::Read(buf));
        }
        // SAFETY: the map is read-only and private, and only read while this process runs; a
        // file truncated under it by another process would fault, as with any mapped input.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }.with_context(context)?;
        Ok(Self::Mapped(map))
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Mapped(map) => map,
            Self::Read(buf) => buf,
        }
    }
}

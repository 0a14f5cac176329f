//! `cwms generate`: realistic CloudWatch metric-stream data, reproducible from a seed.
//!
//! Three shapes of output, for three uses:
//! - `ndjson`: metric-stream JSON lines, as a record stream would carry them (decoder input,
//!   quick looks, piping into other tools);
//! - `firehose-event`: Firehose data-transformation events, what the transform Lambda receives;
//! - `raw-folder`: the gzip objects Firehose writes to S3 when no transform runs, under
//!   `raw/YYYY/MM/DD/HH/`, what the compactor reads.
//!
//! `--stream-format` picks the metric stream's output format (CloudWatch's `OutputFormat`:
//! `json`, `opentelemetry1.0`, `opentelemetry0.7`) for the records of events and raw folders.
//!
//! The data itself comes from `cwms_sample`; this module turns flags into a `Spec`, checks them
//! with messages that name the flag, and writes files.

use crate::output::err;
use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::ValueEnum;
use cwms_model::OutputFormat;
use cwms_sample::{DEFAULT_MAX_EVENT_BYTES, MAX_MINUTES, MAX_SERIES, Malformation, NAMESPACES, SampleRecord, Spec};
use cwms_transform::FirehoseEvent;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The largest event Lambda accepts: a synchronous invocation's payload is capped at 6 MiB.
const MAX_EVENT_BYTES: usize = 6 * 1024 * 1024;

/// Generate realistic CloudWatch metric-stream data (deterministic for a given seed and start).
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Number of series (a metric with its dimensions), spread evenly over the namespaces.
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_SERIES)))]
    series: u32,

    /// Number of consecutive minutes; every series has one datum per minute.
    #[arg(long, value_name = "N", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_MINUTES)))]
    minutes: u32,

    /// First minute, as RFC 3339 (2026-01-15T10:00:00Z) or epoch milliseconds; must be a whole
    /// minute. Default: the start of the previous UTC hour, so the data looks fresh (give --start
    /// for output that is the same on every run).
    #[arg(long, value_name = "TIME", value_parser = parse_start)]
    start: Option<i64>,

    /// Namespaces to draw series from, comma-separated. Default: all of AWS/EC2, AWS/Lambda,
    /// AWS/ApiGateway, AWS/DynamoDB, CloudWatchApiCourse/Performance.
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    namespaces: Vec<String>,

    /// Seed of every random choice: the same seed and start give the same bytes.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,

    /// Share of datum lines delivered twice (at-least-once delivery): 0 to 1, or a percentage (2%).
    #[arg(long, value_name = "SHARE", default_value = "0.01", value_parser = parse_share)]
    duplicates: f64,

    /// Share of datums delivered 1 to 15 minutes late, in a later record: 0 to 1, or a percentage.
    #[arg(long, value_name = "SHARE", default_value = "0.02", value_parser = parse_share)]
    late: f64,

    /// Share of records that are malformed (extra, damaged copies; every datum still arrives
    /// intact): at least 0 and below 1, or a percentage.
    #[arg(long, value_name = "SHARE", default_value = "0", value_parser = parse_malformed_share)]
    malformed: f64,

    /// Kinds of damage for --malformed, comma-separated. Default: all (without bad-gzip for
    /// --format ndjson, whose output is text).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_enum)]
    malformations: Vec<MalformationArg>,

    /// Share of good records gzip-wrapped (CloudWatch sends plain JSON; other producers may
    /// not): 0 to 1, or a percentage. Not for --format ndjson.
    #[arg(long, value_name = "SHARE", default_value = "0", value_parser = parse_share)]
    gzip: f64,

    /// Share of latency and CPU series for which the stream also sends percentiles (p50, p99,
    /// p99.9, TM(10%:90%), ...): 0 to 1, or a percentage.
    #[arg(long, value_name = "SHARE", default_value = "0.5", value_parser = parse_share)]
    percentiles: f64,

    /// AWS account id in every datum (up to 12 digits).
    #[arg(long, value_name = "ID", default_value = "123456789012")]
    account_id: String,

    /// AWS region in every datum and in the delivery stream ARN.
    #[arg(long, value_name = "REGION", default_value = "us-east-1")]
    region: String,

    /// Metric stream name in every datum; also the Firehose delivery stream's name in event
    /// ARNs and raw object names.
    #[arg(long, value_name = "NAME", default_value = "cwms-sample-stream")]
    stream_name: String,

    /// What to write: ndjson (JSON lines), firehose-event (transformation events, JSON) or
    /// raw-folder (gzip objects as Firehose writes them to S3 without a transform).
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    format: Format,

    /// The metric stream's output format (CloudWatch's OutputFormat): json, opentelemetry1.0 or
    /// opentelemetry0.7. The OpenTelemetry formats make every record length-prefixed protobuf
    /// messages (ExportMetricsServiceRequest), for --format firehose-event or raw-folder; their
    /// series send percentiles only (CloudWatch streams no trimmed means in them), and the same
    /// flags give the same datums in every format once --no-trimmed-means is given for json.
    #[arg(long, value_name = "FORMAT", default_value = "json", value_parser = parse_output_format)]
    stream_format: OutputFormat,

    /// Leave out the trimmed means (TM(10%:90%)) that some series send beside their percentiles,
    /// as a stream configured with percentiles only does (implied by an OpenTelemetry
    /// --stream-format): json output then holds exactly the datums of OpenTelemetry output.
    #[arg(long)]
    no_trimmed_means: bool,

    /// Share of datums sent a second time with other values, as CloudWatch re-sends a minute it
    /// aggregated again: a larger or smaller count, or the same count with another sum, max, min
    /// or percentile (the merge law's tie-break), arriving just before, just after or minutes
    /// after the original: 0 to 1, or a percentage. Default 0.
    #[arg(long, value_name = "SHARE", default_value = "0", value_parser = parse_share)]
    resends: f64,

    /// Share of good records followed by a record with no datum (a blank line; no bytes in an
    /// OpenTelemetry stream), which the transform answers Dropped: 0 to 1, or a percentage.
    /// Default 0.
    #[arg(long, value_name = "SHARE", default_value = "0", value_parser = parse_share)]
    blank_records: f64,

    /// Add awkward series: namespaces, dimension names and values, metric names and units with
    /// =, comma, backslash, /, spaces, : and non-ASCII text, which dimension_key and Hive paths
    /// must escape and every reader must give back.
    #[arg(long)]
    awkward_names: bool,

    /// For --format raw-folder: gzip (Firehose's GZIP compression, objects named .gz) or none
    /// (no compression, as a delivery stream can be configured).
    #[arg(long, value_enum, value_name = "KIND", default_value_t = RawCompression::Gzip)]
    raw_compression: RawCompression,

    /// Where to write. ndjson: a file, or - for standard output (the default). firehose-event:
    /// standard output (the default, or -) or a .json file when there is one event (see
    /// --one-event), otherwise a folder that receives event-0001.json, event-0002.json, ...
    /// raw-folder: the folder that receives raw/. Folders are created; files already in them are
    /// never overwritten, and an existing --out file only with --force.
    #[arg(long, short = 'o', value_name = "PATH")]
    out: Option<PathBuf>,

    /// Replace an --out file that already exists (ndjson, or one firehose-event .json file).
    #[arg(long)]
    force: bool,

    /// Largest serialized event for --format firehose-event, in bytes (at most 6 MiB, Lambda's
    /// payload limit). The default is about what Firehose builds from its largest (3 MiB) buffer.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_EVENT_BYTES)]
    max_event_bytes: usize,

    /// For --format firehose-event: write only the first event (as many records as fit in
    /// --max-event-bytes) and discard the rest; one full-size event, for load tests.
    #[arg(long)]
    one_event: bool,
}

const EXAMPLES: &str = "\
Examples:
  cwms generate --minutes 5 | head -3
  cwms generate --start 2026-01-15T10:00:00Z --series 1000 --out sample.ndjson
  cwms generate --format firehose-event --malformed 2% --out events/
  cwms generate --format raw-folder --minutes 180 --duplicates 5% --late 5% --out ./data
  cwms generate --format raw-folder --stream-format opentelemetry1.0 --out ./quick-s3
  cwms generate --format firehose-event --stream-format opentelemetry0.7 --gzip 10% --out otel-events/";

/// The shape of the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    /// Metric-stream JSON lines, in arrival order.
    Ndjson,
    /// Firehose data-transformation events (JSON).
    FirehoseEvent,
    /// Firehose's S3 objects without a transform: raw/YYYY/MM/DD/HH/<stream>-1-<time>-<id>.gz.
    RawFolder,
}

/// How raw-folder objects are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RawCompression {
    /// Gzip, as Firehose writes with GZIP compression.
    Gzip,
    /// Plain bytes, as Firehose writes with no compression.
    None,
}

/// How a malformed record is damaged (see `cwms_sample::Malformation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum MalformationArg {
    /// A line cut off partway.
    TruncatedLine,
    /// A line without its `value` object.
    MissingValue,
    /// A statistic given as a string.
    NonNumberStatistic,
    /// A gzip record cut off halfway.
    BadGzip,
}

impl From<MalformationArg> for Malformation {
    fn from(arg: MalformationArg) -> Malformation {
        match arg {
            MalformationArg::TruncatedLine => Malformation::TruncatedLine,
            MalformationArg::MissingValue => Malformation::MissingValue,
            MalformationArg::NonNumberStatistic => Malformation::NonNumberStatistic,
            MalformationArg::BadGzip => Malformation::BadGzip,
        }
    }
}

/// Generates and writes; a summary goes to standard error, so standard output stays data.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec = spec(&args, now_ms())?;
    let out = output(&args)?;
    let records = cwms_sample::records(&spec);
    let written = match args.format {
        Format::Ndjson => write_ndjson(&records, &out, args.force)?,
        Format::FirehoseEvent => write_events(&spec, &records, args.max_event_bytes, args.one_event, &out, args.force)?,
        Format::RawFolder => write_raw(&spec, &records, args.raw_compression, &out)?,
    };
    let malformed = records.iter().filter(|r| r.is_malformed()).count();
    err!(
        "cwms generate: {} series x {} minutes from {} (seed {}): {} {} records ({} malformed); wrote {}",
        spec.series,
        spec.minutes,
        rfc3339(spec.start_ms),
        spec.seed,
        records.len(),
        spec.stream_format,
        malformed,
        written
    );
    Ok(ExitCode::SUCCESS)
}

/// The spec the flags describe, checked. `now_ms` only matters when `--start` is absent.
fn spec(args: &Args, now_ms: i64) -> anyhow::Result<Spec> {
    const HOUR_MS: i64 = 3_600_000;
    let text_only = args.format == Format::Ndjson;
    if text_only && args.stream_format != OutputFormat::Json {
        bail!("--stream-format {} needs --format firehose-event or raw-folder: ndjson output is JSON lines", args.stream_format);
    }
    if args.raw_compression != RawCompression::Gzip && args.format != Format::RawFolder {
        bail!("--raw-compression needs --format raw-folder");
    }
    if text_only && args.gzip > 0.0 {
        bail!("--gzip needs --format firehose-event: ndjson output is text");
    }
    if args.format == Format::RawFolder && args.gzip > 0.0 {
        // Firehose gzips whole objects; records gzip-wrapped inside them would be gzip within
        // gzip, which no reader of raw objects (cwms compact included) takes apart.
        bail!(
            "--gzip needs --format firehose-event: raw-folder objects are gzip already, and records gzipped inside them could not be read"
        );
    }
    if text_only && args.malformations.contains(&MalformationArg::BadGzip) {
        bail!("--malformations bad-gzip needs --format firehose-event or raw-folder: ndjson output is text");
    }
    if args.malformed == 0.0 && !args.malformations.is_empty() {
        bail!("--malformations chooses the damage of --malformed records: give --malformed too (for example --malformed 5%)");
    }
    if args.one_event && args.format != Format::FirehoseEvent {
        bail!("--one-event needs --format firehose-event");
    }
    if !(1..=MAX_EVENT_BYTES).contains(&args.max_event_bytes) {
        bail!("--max-event-bytes must be between 1 and {MAX_EVENT_BYTES} (6 MiB, Lambda's payload limit), found {}", args.max_event_bytes);
    }
    let malformations: Vec<Malformation> = if args.malformations.is_empty() {
        Malformation::ALL.into_iter().filter(|m| !(text_only && *m == Malformation::BadGzip)).collect()
    } else {
        args.malformations.iter().map(|m| (*m).into()).collect()
    };
    let namespaces = if args.namespaces.is_empty() {
        NAMESPACES.iter().map(|n| (*n).to_owned()).collect()
    } else {
        args.namespaces.iter().map(|n| n.trim().to_owned()).collect()
    };
    let spec = Spec {
        start_ms: args.start.unwrap_or(now_ms.div_euclid(HOUR_MS) * HOUR_MS - HOUR_MS),
        minutes: args.minutes,
        series: args.series,
        namespaces,
        seed: args.seed,
        duplicate_share: args.duplicates,
        late_share: args.late,
        malformed_share: args.malformed,
        malformations,
        gzip_share: args.gzip,
        percentiles_share: args.percentiles,
        account_id: args.account_id.clone(),
        region: args.region.clone(),
        stream_name: args.stream_name.clone(),
        stream_format: args.stream_format,
        trimmed_means: args.stream_format == OutputFormat::Json && !args.no_trimmed_means,
        resend_share: args.resends,
        blank_share: args.blank_records,
        awkward_names: args.awkward_names,
    };
    spec.validate().context("invalid arguments")?;
    Ok(spec)
}

/// Where the output goes.
#[derive(Debug, PartialEq, Eq)]
enum Output {
    Stdout,
    File(PathBuf),
    Folder(PathBuf),
}

fn output(args: &Args) -> anyhow::Result<Output> {
    let stdout = |p: &Path| p.as_os_str() == "-";
    Ok(match (args.format, args.out.as_deref()) {
        (Format::RawFolder, None) => bail!("--out is required for --format raw-folder"),
        (_, None) => Output::Stdout,
        (Format::Ndjson, Some(p)) if stdout(p) => Output::Stdout,
        (Format::Ndjson, Some(p)) => Output::File(p.to_owned()),
        (Format::FirehoseEvent, Some(p)) if stdout(p) => Output::Stdout,
        (Format::FirehoseEvent, Some(p)) if p.extension().is_some_and(|e| e == "json") => Output::File(p.to_owned()),
        (Format::RawFolder, Some(p)) if stdout(p) => bail!("--format raw-folder writes a folder; --out - is not possible"),
        (_, Some(p)) => Output::Folder(p.to_owned()),
    })
}

/// The lines of every record in arrival order. The spec keeps records text (no gzip, no bad-gzip
/// damage), so with every share at 0 this is exactly `cwms_sample::ndjson`.
fn write_ndjson(records: &[SampleRecord], out: &Output, force: bool) -> anyhow::Result<String> {
    let bytes: usize = records.iter().map(|r| r.bytes.len()).sum();
    let write = |w: &mut dyn Write| -> std::io::Result<()> {
        for record in records {
            w.write_all(&record.bytes)?;
        }
        w.flush()
    };
    match out {
        Output::Stdout => {
            let mut stdout = BufWriter::new(std::io::stdout().lock());
            match write(&mut stdout) {
                Ok(()) => Ok(format!("{bytes} bytes to standard output")),
                // A reader that has seen enough (`| head`) is not a failure.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok("standard output, closed early by its reader".to_owned()),
                Err(e) => Err(e).context("writing to standard output"),
            }
        }
        Output::File(path) => {
            let mut file = BufWriter::new(create_file(path, force)?);
            write(&mut file).with_context(|| format!("writing {}", path.display()))?;
            Ok(format!("{bytes} bytes to {}", path.display()))
        }
        Output::Folder(_) => unreachable!("ndjson goes to a file or standard output"),
    }
}

fn write_events(
    spec: &Spec,
    records: &[SampleRecord],
    max_event_bytes: usize,
    one: bool,
    out: &Output,
    force: bool,
) -> anyhow::Result<String> {
    let mut events = cwms_sample::firehose_events(spec, records, max_event_bytes).context("--max-event-bytes is too small")?;
    if one {
        events.truncate(1);
    }
    let to_json = |event: &FirehoseEvent| serde_json::to_vec(event).expect("an event always serializes");
    match out {
        Output::Stdout | Output::File(_) if events.len() > 1 => bail!(
            "the records need {} events of at most {max_event_bytes} bytes; give --out a folder, add --one-event to keep only the first, or raise --max-event-bytes",
            events.len()
        ),
        Output::Stdout => {
            let mut bytes = events.first().map(to_json).unwrap_or_else(|| b"{\"records\":[]}".to_vec());
            bytes.push(b'\n');
            // A reader that has seen enough (`| head`) is not a failure.
            crate::output::write_stdout(|stdout| stdout.write_all(&bytes))?;
            Ok(format!("1 event of {} records to standard output", events.first().map_or(0, |e| e.records.len())))
        }
        Output::File(path) => {
            let bytes = events.first().map(to_json).unwrap_or_else(|| b"{\"records\":[]}".to_vec());
            create_file(path, force)?.write_all(&bytes).with_context(|| format!("writing {}", path.display()))?;
            Ok(format!("1 event of {} records to {}", events.first().map_or(0, |e| e.records.len()), path.display()))
        }
        Output::Folder(folder) => {
            let files: Vec<(PathBuf, &FirehoseEvent)> =
                events.iter().enumerate().map(|(i, e)| (folder.join(format!("event-{:04}.json", i + 1)), e)).collect();
            prepare_folder(folder, files.iter().map(|(p, _)| p.as_path()))?;
            for (path, event) in &files {
                create_new_file(path)?.write_all(&to_json(event)).with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(format!("{} to {}", crate::output::plural(files.len() as u64, "event file", "event files"), folder.display()))
        }
    }
}

fn write_raw(spec: &Spec, records: &[SampleRecord], compression: RawCompression, out: &Output) -> anyhow::Result<String> {
    let Output::Folder(folder) = out else { unreachable!("raw-folder always writes a folder") };
    let objects = match compression {
        RawCompression::Gzip => cwms_sample::raw_objects(spec, records),
        RawCompression::None => cwms_sample::raw_objects_uncompressed(spec, records),
    };
    let paths: Vec<PathBuf> = objects.iter().map(|o| folder.join(&o.key)).collect();
    prepare_folder(folder, paths.iter().map(PathBuf::as_path))?;
    for (path, object) in paths.iter().zip(&objects) {
        let parent = path.parent().expect("object keys have folders");
        fs::create_dir_all(parent).with_context(|| format!("creating folder {}", parent.display()))?;
        create_new_file(path)?.write_all(&object.bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(format!("{} under {}", crate::output::plural(objects.len() as u64, "object", "objects"), folder.join("raw").display()))
}

/// Creates the folder and checks, before anything is written, that no file would be overwritten:
/// output names repeat from run to run, and silently replacing an earlier sample is worse than
/// stopping.
fn prepare_folder<'a>(folder: &Path, files: impl Iterator<Item = &'a Path>) -> anyhow::Result<()> {
    if folder.exists() && !folder.is_dir() {
        bail!("--out {} exists and is not a folder", folder.display());
    }
    fs::create_dir_all(folder).with_context(|| format!("creating folder {}", folder.display()))?;
    for file in files {
        if file.exists() {
            bail!("{} already exists; choose another --out folder or remove it (files are never overwritten)", file.display());
        }
    }
    Ok(())
}

/// Creates the --out file (and its folder): a file already there is replaced only with --force,
/// so a second run with the same --out cannot lose a file by accident.
fn create_file(path: &Path, force: bool) -> anyhow::Result<fs::File> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).with_context(|| format!("creating folder {}", parent.display()))?;
    }
    // A device or a pipe (`--out /dev/null`) is written to, not replaced.
    if !force && fs::metadata(path).is_ok_and(|m| m.is_file()) {
        bail!("--out {} already exists; add --force to replace it, or choose another --out", path.display());
    }
    fs::File::create(path).with_context(|| format!("creating {}", path.display()))
}

/// Creates a file that must not exist yet.
fn create_new_file(path: &Path) -> anyhow::Result<fs::File> {
    fs::File::create_new(path).with_context(|| format!("creating {}", path.display()))
}

/// A metric stream output format, by CloudWatch's name.
pub(crate) fn parse_output_format(text: &str) -> Result<OutputFormat, String> {
    text.trim().parse().map_err(|e: cwms_model::otel::UnknownOutputFormat| e.to_string())
}

/// A share such as `0.05` or `5%`, between 0 and 1.
pub(crate) fn parse_share(text: &str) -> Result<f64, String> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix('%') {
        Some(percent) => (percent.trim_end(), 100.0),
        None => (text, 1.0),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a share (expected a number from 0 to 1, such as 0.05, or a percentage such as 5%)"))?;
    let share = value / scale;
    if !(0.0..=1.0).contains(&share) {
        return Err(format!("{text} is not between 0 and 1 (0% and 100%)"));
    }
    Ok(share)
}

/// A share below 1: a malformed record is followed by another with this probability, and at 1
/// the records would never end.
fn parse_malformed_share(text: &str) -> Result<f64, String> {
    let share = parse_share(text).map_err(|_| {
        format!("{} is not a share of at least 0 and below 1 (0% to 99.9%): not every record can be malformed", text.trim())
    })?;
    if share >= 1.0 {
        return Err(format!("{} is not a share of at least 0 and below 1 (0% to 99.9%): not every record can be malformed", text.trim()));
    }
    Ok(share)
}

/// `--start`: epoch milliseconds (all digits) or RFC 3339, on a whole minute.
pub(crate) fn parse_start(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let ms = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse::<i64>().map_err(|_| format!("{text} is too large for epoch milliseconds"))?
    } else {
        let at = OffsetDateTime::parse(text, &Rfc3339)
            .map_err(|e| format!("{text:?} is neither RFC 3339 (2026-01-15T10:00:00Z) nor epoch milliseconds: {e}"))?;
        i64::try_from(at.unix_timestamp_nanos() / 1_000_000).map_err(|_| format!("{text} is out of range"))?
    };
    if ms < 0 {
        return Err(format!("{text} is before 1970"));
    }
    if ms % 60_000 != 0 {
        return Err(format!("{text} is not a whole minute (seconds and milliseconds must be 0)"));
    }
    Ok(ms)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    /// 2026-01-15T10:47:12.345Z: the default start is 09:00, the previous whole hour.
    const NOW_MS: i64 = 1_768_474_032_345;

    fn parse(flags: &str) -> Result<Args, String> {
        let argv = std::iter::once("generate").chain(flags.split_whitespace());
        Cli::try_parse_from(argv).map(|c| c.args).map_err(|e| first_line(&e.to_string()))
    }

    fn first_line(s: &str) -> String {
        s.lines().next().unwrap_or_default().to_owned()
    }

    /// Parses the flags and builds the spec and output: `Ok(description)` or `Err(first line of the message)`.
    fn check(flags: &str, expected: Result<&str, &str>) {
        let got = parse(flags).and_then(|args| {
            let spec = spec(&args, NOW_MS).map_err(|e| format!("{e:#}"))?;
            let out = output(&args).map_err(|e| format!("{e:#}"))?;
            Ok(format!(
                "{} series x {} min from {}, ns {}, shares {}/{}/{}/{}/{}, {:?}, {out:?}",
                spec.series,
                spec.minutes,
                rfc3339(spec.start_ms),
                spec.namespaces.len(),
                spec.duplicate_share,
                spec.late_share,
                spec.malformed_share,
                spec.gzip_share,
                spec.percentiles_share,
                spec.malformations.iter().map(|m| m.name()).collect::<Vec<_>>(),
            ))
        });
        assert_eq!(got.as_deref(), expected.map_err(str::to_owned).as_deref(), "flags: {flags}");
    }

    #[test]
    fn defaults_match_the_library() {
        let spec = spec(&parse("").unwrap(), NOW_MS).unwrap();
        assert_eq!(spec, Spec { start_ms: spec.start_ms, malformations: Malformation::ALL[..3].to_vec(), ..Spec::default() });
        check(
            "",
            Ok(
                "200 series x 60 min from 2026-01-15T09:00:00Z, ns 5, shares 0.01/0.02/0/0/0.5, [\"truncated-line\", \"missing-value\", \"non-number-statistic\"], Stdout",
            ),
        );
    }

    #[test]
    fn flags() {
        check(
            "--series 10 --minutes 5 --start 2026-01-15T10:00:00Z --namespaces AWS/EC2,AWS/Lambda --duplicates 5% --late 0.1 --malformed 1% --gzip 0.2 --percentiles 1 --format firehose-event --out ev",
            Ok(
                "10 series x 5 min from 2026-01-15T10:00:00Z, ns 2, shares 0.05/0.1/0.01/0.2/1, [\"truncated-line\", \"missing-value\", \"non-number-statistic\", \"bad-gzip\"], Folder(\"ev\")",
            ),
        );
        check(
            "--start 1768471200000 --format firehose-event -o e.json",
            Ok(
                "200 series x 60 min from 2026-01-15T10:00:00Z, ns 5, shares 0.01/0.02/0/0/0.5, [\"truncated-line\", \"missing-value\", \"non-number-statistic\", \"bad-gzip\"], File(\"e.json\")",
            ),
        );
        check(
            "--start 2026-01-15T12:00:00+02:00 --malformed 1% --malformations missing-value -o x.ndjson",
            Ok("200 series x 60 min from 2026-01-15T10:00:00Z, ns 5, shares 0.01/0.02/0.01/0/0.5, [\"missing-value\"], File(\"x.ndjson\")"),
        );
        check(
            "--format firehose-event --one-event",
            Ok(
                "200 series x 60 min from 2026-01-15T09:00:00Z, ns 5, shares 0.01/0.02/0/0/0.5, [\"truncated-line\", \"missing-value\", \"non-number-statistic\", \"bad-gzip\"], Stdout",
            ),
        );
    }

    #[test]
    fn bad_flags() {
        check("--duplicates 1.5", Err("error: invalid value '1.5' for '--duplicates <SHARE>': 1.5 is not between 0 and 1 (0% and 100%)"));
        check(
            "--late lots",
            Err(
                "error: invalid value 'lots' for '--late <SHARE>': \"lots\" is not a share (expected a number from 0 to 1, such as 0.05, or a percentage such as 5%)",
            ),
        );
        for share in ["100%", "1", "1.5"] {
            check(
                &format!("--malformed {share}"),
                Err(&format!(
                    "error: invalid value '{share}' for '--malformed <SHARE>': {share} is not a share of at least 0 and below 1 (0% to 99.9%): not every record can be malformed"
                )),
            );
        }
        check(
            "--format raw-folder --out x --gzip 0.5",
            Err(
                "--gzip needs --format firehose-event: raw-folder objects are gzip already, and records gzipped inside them could not be read",
            ),
        );
        check(
            "--malformations truncated-line",
            Err("--malformations chooses the damage of --malformed records: give --malformed too (for example --malformed 5%)"),
        );
        check("--series 0", Err("error: invalid value '0' for '--series <N>': 0 is not in 1..=100000"));
        check("--minutes 99999", Err("error: invalid value '99999' for '--minutes <N>': 99999 is not in 1..=10080"));
        check(
            "--start 2026-01-15T10:00:30Z",
            Err(
                "error: invalid value '2026-01-15T10:00:30Z' for '--start <TIME>': 2026-01-15T10:00:30Z is not a whole minute (seconds and milliseconds must be 0)",
            ),
        );
        check(
            "--start yesterday",
            Err(
                "error: invalid value 'yesterday' for '--start <TIME>': \"yesterday\" is neither RFC 3339 (2026-01-15T10:00:00Z) nor epoch milliseconds: the 'year' component could not be parsed",
            ),
        );
        check("--format parquet", Err("error: invalid value 'parquet' for '--format <FORMAT>'"));
        check(
            "--namespaces AWS/S3",
            Err(
                "invalid arguments: unknown namespace \"AWS/S3\" (known: AWS/EC2, AWS/Lambda, AWS/ApiGateway, AWS/DynamoDB, CloudWatchApiCourse/Performance)",
            ),
        );
        check(
            "--series 100000 --minutes 1000",
            Err("invalid arguments: datums (series times minutes) must be between 1 and 10000000, found 100000000"),
        );
        check(
            "--stream-name a/b",
            Err(
                "invalid arguments: stream_name \"a/b\": must be 1 to 64 of A-Z, a-z, 0-9, _, - and . (a valid Firehose delivery stream name)",
            ),
        );
        check("--gzip 0.1", Err("--gzip needs --format firehose-event: ndjson output is text"));
        check(
            "--malformations bad-gzip",
            Err("--malformations bad-gzip needs --format firehose-event or raw-folder: ndjson output is text"),
        );
        check("--format raw-folder", Err("--out is required for --format raw-folder"));
        check("--format raw-folder --out -", Err("--format raw-folder writes a folder; --out - is not possible"));
        check("--one-event", Err("--one-event needs --format firehose-event"));
        check(
            "--format firehose-event --out e --max-event-bytes 7000000",
            Err("--max-event-bytes must be between 1 and 6291456 (6 MiB, Lambda's payload limit), found 7000000"),
        );
    }

    #[test]
    fn stream_formats() {
        let spec_of = |flags: &str| spec(&parse(flags).unwrap(), NOW_MS).map_err(|e| format!("{e:#}"));
        let json = spec_of("--format firehose-event").unwrap();
        assert_eq!((json.stream_format, json.trimmed_means), (OutputFormat::Json, true));
        let otel = spec_of("--format raw-folder --out x --stream-format opentelemetry1.0").unwrap();
        assert_eq!((otel.stream_format, otel.trimmed_means), (OutputFormat::OpenTelemetry1_0, false));
        let otel = spec_of("--format firehose-event --stream-format opentelemetry0.7 --gzip 5%").unwrap();
        assert_eq!((otel.stream_format, otel.trimmed_means, otel.gzip_share), (OutputFormat::OpenTelemetry0_7, false, 0.05));
        assert!(!spec_of("--no-trimmed-means").unwrap().trimmed_means);
        assert_eq!(
            spec_of("--stream-format opentelemetry1.0").unwrap_err(),
            "--stream-format opentelemetry1.0 needs --format firehose-event or raw-folder: ndjson output is JSON lines"
        );
        assert_eq!(spec_of("--format firehose-event --raw-compression none").unwrap_err(), "--raw-compression needs --format raw-folder");
        check(
            "--stream-format otlp",
            Err(
                "error: invalid value 'otlp' for '--stream-format <FORMAT>': unknown output format \"otlp\" (known: json, opentelemetry1.0, opentelemetry0.7)",
            ),
        );
    }

    #[test]
    fn shares_and_starts() {
        assert_eq!(parse_share("0"), Ok(0.0));
        assert_eq!(parse_share(" 12.5% "), Ok(0.125));
        assert_eq!(parse_share("1"), Ok(1.0));
        assert_eq!(parse_share("-0.1"), Err("-0.1 is not between 0 and 1 (0% and 100%)".to_owned()));
        assert_eq!(parse_share("NaN"), Err("NaN is not between 0 and 1 (0% and 100%)".to_owned()));
        assert_eq!(
            parse_share("%"),
            Err(r#""%" is not a share (expected a number from 0 to 1, such as 0.05, or a percentage such as 5%)"#.to_owned())
        );
        assert_eq!(parse_malformed_share("0.99"), Ok(0.99));
        assert_eq!(parse_start("0"), Ok(0));
        assert_eq!(parse_start("2026-01-15T10:00:00.000Z"), Ok(1_768_471_200_000));
        assert_eq!(parse_start("1969-12-31T23:59:00Z"), Err("1969-12-31T23:59:00Z is before 1970".to_owned()));
        assert_eq!(parse_start("99999999999999999999"), Err("99999999999999999999 is too large for epoch milliseconds".to_owned()));
    }
}

//! `cwms compact`: raw metric-stream objects (a folder or `s3://`) into the Parquet lake.

use crate::output::{err, out, plural};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
#[cfg(feature = "aws")]
use cwms_compactor::GlueTarget;
use cwms_compactor::{Options, Progress, Rebuild, Report};
use cwms_parquet::Codec;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where Firehose wrote the raw objects: a folder or `s3://bucket/prefix`. Every object below
    /// it is read, whatever the key layout; gzip or plain is told by the bytes.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub raw: String,
    /// The lake to update: a folder or `s3://bucket/prefix`.
    #[arg(long, value_name = "DIR|s3://BUCKET/PREFIX")]
    pub lake: String,
    /// Parquet compression: zstd, zstd(LEVEL), snappy or uncompressed.
    #[arg(long, default_value = "zstd", value_parser = parse_codec)]
    pub codec: Codec,
    /// Register new partitions in this Glue database (needs an s3:// lake).
    #[arg(long, value_name = "DATABASE")]
    pub glue_database: Option<String>,
    /// Prefix of the Glue table names (`<prefix>metrics_1m`, `<prefix>metrics_1h`).
    #[arg(long, default_value = "", value_name = "PREFIX", requires = "glue_database")]
    pub glue_table_prefix: String,
    /// Read again the raw objects an earlier run recorded as undecodable.
    #[arg(long)]
    pub retry_failed: bool,
    /// Raw objects read at once.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=512))]
    pub concurrency: Option<u16>,
    /// Raw megabytes (as stored) per batch: the raw objects recorded in the checkpoint at once.
    #[arg(long, value_name = "MB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_mb: u64,
    /// Merged datums held in memory before the oldest hours are written out to make room:
    /// bounds memory whatever the backlog: peak RSS stays under 160 MiB + 250 bytes a point + 120 MiB
    /// a core (benches/README.md, "Compactor memory").
    #[arg(long, value_name = "N", default_value_t = cwms_compactor::DEFAULT_MAX_POINTS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_points: usize,
    /// Cap on one raw object's decompressed size, in bytes (objects are streamed: the cap bounds
    /// the time a gzip bomb takes, not memory). `CWMS_MAX_DECOMPRESSED_BYTES` in the Lambda.
    #[arg(long, value_name = "BYTES", default_value_t = cwms_compactor::DEFAULT_MAX_DECOMPRESSED_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_decompressed_bytes: u64,
    /// Rebuild the selected partitions (--dt, optionally --hour and --namespace) from the raw
    /// zone, e.g. after a corrupt or deleted lake object: re-reads every raw object that can hold
    /// their datums and merges them in (a corrupt object is replaced). The checkpoint is not changed.
    #[arg(long, requires = "dt")]
    pub rebuild: bool,
    /// With --rebuild: a UTC day, YYYY-MM-DD (repeatable).
    #[arg(long, value_name = "YYYY-MM-DD", requires = "rebuild")]
    pub dt: Vec<String>,
    /// With --rebuild: a UTC hour of those days, 0 to 23 (repeatable; default every hour).
    #[arg(long, value_name = "HH", requires = "rebuild", value_parser = clap::value_parser!(u8).range(0..=23))]
    pub hour: Vec<u8>,
    /// With --rebuild: a namespace as CloudWatch spells it, e.g. AWS/EC2 (repeatable; default every namespace).
    #[arg(long, value_name = "NAMESPACE", requires = "rebuild")]
    pub namespace: Vec<String>,
    /// Print the summary as JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_codec(s: &str) -> Result<Codec, String> {
    s.parse().map_err(|e: cwms_parquet::Error| e.to_string())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(compact(args))
}

async fn compact(args: Args) -> anyhow::Result<ExitCode> {
    if args.glue_database.is_some() && !args.lake.starts_with("s3://") {
        anyhow::bail!("--glue-database needs an s3:// --lake (Glue partitions point at S3 locations), not {:?}", args.lake);
    }
    let rebuild = if args.rebuild { Some(Rebuild::new(args.dt.clone(), args.hour.clone(), args.namespace.clone())?) } else { None };
    let raw = cwms_store::open_existing(&args.raw).await.with_context(|| format!("opening the raw zone {}", args.raw))?;
    // Refused before the lake's folder is made, so a mistake leaves nothing inside the raw zone.
    if !args.lake.contains("://")
        && let Ok(lake) = std::path::absolute(&args.lake)
        && cwms_store::contains(&raw.identity(), &normalized(&lake))
    {
        anyhow::bail!(
            "the lake {} is inside the raw zone {}: its own files would be read as raw objects; put it beside the raw zone",
            args.lake,
            args.raw
        );
    }
    let lake = cwms_store::open(&args.lake).await.with_context(|| format!("opening the lake {}", args.lake))?;
    let mut options = Options {
        retry_failed: args.retry_failed,
        batch_bytes: args.batch_mb << 20,
        max_points: args.max_points,
        max_decompressed_bytes: args.max_decompressed_bytes,
        rebuild,
        ..Options::default()
    };
    options.write.codec = args.codec;
    if let Some(n) = args.concurrency {
        options.concurrency = n.into();
    }
    if let Some(database) = &args.glue_database {
        #[cfg(feature = "aws")]
        {
            options.glue = Some(GlueTarget::connect(database, &args.glue_table_prefix, &args.lake).await);
        }
        #[cfg(not(feature = "aws"))]
        anyhow::bail!("--glue-database {database}: this cwms was built without AWS support (its `aws` feature, on by default)");
    }
    let bar = progress_bar();
    options.progress = Some(Arc::new({
        let bar = bar.clone();
        move |event| match event {
            Progress::Listed { bytes, .. } => {
                bar.set_length(bytes);
                bar.set_message("reading raw objects");
            }
            Progress::ObjectRead { bytes } => bar.inc(bytes),
            Progress::Publishing { objects } => bar.set_message(format!("writing {objects} lake objects")),
            Progress::ObjectWritten => {}
        }
    }));
    let report = cwms_compactor::compact(raw.as_ref(), lake.as_ref(), &options).await;
    bar.finish_and_clear();
    let report = report.context("compaction stopped")?;
    let code = if report.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report.summary_json())?)?;
        print_problems(&report);
    } else {
        print_summary(&report)?;
    }
    Ok(code)
}

/// An absolute path with `.` and `..` resolved by their names (the path may not exist yet), and
/// the longest existing ancestor resolved by the file system (so links compare as the raw zone's
/// canonical identity does).
fn normalized(path: &std::path::Path) -> String {
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    let mut existing = out.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name().map(ToOwned::to_owned), existing.parent().map(ToOwned::to_owned)) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent;
            }
            _ => break,
        }
    }
    let mut resolved = std::fs::canonicalize(&existing).unwrap_or(existing);
    resolved.extend(rest.into_iter().rev());
    resolved.display().to_string()
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

pub fn print_summary(report: &Report) -> anyhow::Result<()> {
    out!(
        "read {} ({} bytes, {} pending of {} listed); {}, {} merged",
        plural(report.objects_read as u64, "raw object", "raw objects"),
        report.raw_bytes_read,
        report.objects_pending,
        report.objects_listed,
        plural(report.datums, "datum", "datums"),
        plural(report.duplicates_merged, "duplicate", "duplicates")
    )?;
    out!(
        "wrote {} ({} unchanged) and {}, {} bytes, in {:.2} s",
        plural(report.minute_objects_written as u64, "metrics_1m object", "metrics_1m objects"),
        report.minute_objects_unchanged,
        plural(report.hour_objects_written as u64, "metrics_1h object", "metrics_1h objects"),
        report.lake_bytes_written,
        report.elapsed.as_secs_f64()
    )?;
    if report.glue.created + report.glue.already_present > 0 {
        out!(
            "glue: {} created, {} already present",
            plural(report.glue.created as u64, "partition", "partitions"),
            report.glue.already_present
        )?;
    }
    if !report.objects_failed_earlier.is_empty() {
        out!(
            "{} recorded as undecodable by earlier runs skipped, their datums not in the lake (--retry-failed reads them again)",
            plural(report.objects_failed_earlier.len() as u64, "raw object", "raw objects")
        )?;
    }
    if report.lines_rejected > 0 {
        out!(
            "{} of {} kept out of the lake, with line numbers and reasons, in {} (`cwms redrive --errors` sends them back)",
            plural(report.lines_rejected, "line", "lines"),
            plural(report.rejected.len() as u64, "raw object", "raw objects"),
            plural(report.rejected.len() as u64, "rejected-lines file", "rejected-lines files")
        )?;
    }
    for replaced in &report.replaced_corrupt {
        out!("rebuilt the corrupt lake object {replaced} from the raw zone")?;
    }
    print_problems(report);
    Ok(())
}

/// Names every raw object that did not decode, every rejected-lines file and every lake object
/// that could not be updated, on standard error.
pub fn print_problems(report: &Report) {
    for problem in &report.objects_failed {
        err!("raw object {}: {}", problem.location, problem.reason);
    }
    // Named on every run until dealt with, so a long list is cut short here (--json has it all).
    const EARLIER_NAMED: usize = 20;
    for problem in report.objects_failed_earlier.iter().take(EARLIER_NAMED) {
        err!("raw object {}: not read, an earlier run recorded: {}", problem.location, problem.reason);
    }
    if let Some(more) = report.objects_failed_earlier.len().checked_sub(EARLIER_NAMED).filter(|n| *n > 0) {
        err!("and {} recorded as failed by earlier runs (`--json` lists them all)", plural(more as u64, "raw object", "more raw objects"));
    }
    for problem in &report.rejected {
        err!("rejected lines {}: {}", problem.location, problem.reason);
    }
    for problem in &report.partition_errors {
        err!("lake object {}: {}", problem.location, problem.reason);
    }
}

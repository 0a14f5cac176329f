//! `cwms compact`: raw metric-stream objects (a folder or `s3://`) into the Parquet lake.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cwms_compactor::{GlueTarget, Options, Progress, Report};
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
    #[arg(long, value_name = "DATABASE", requires = "lake")]
    pub glue_database: Option<String>,
    /// Prefix of the Glue table names (`<prefix>metrics_1m`, `<prefix>metrics_1h`).
    #[arg(long, default_value = "", value_name = "PREFIX")]
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
    /// bounds memory whatever the backlog (the default peaked at about 650 MB).
    #[arg(long, value_name = "N", default_value_t = cwms_compactor::DEFAULT_MAX_POINTS, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_points: usize,
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
    let raw = cwms_store::open(&args.raw).await.with_context(|| format!("opening raw location {}", args.raw))?;
    let lake = cwms_store::open(&args.lake).await.with_context(|| format!("opening lake location {}", args.lake))?;
    let mut options =
        Options { retry_failed: args.retry_failed, batch_bytes: args.batch_mb << 20, max_points: args.max_points, ..Options::default() };
    options.write.codec = args.codec;
    if let Some(n) = args.concurrency {
        options.concurrency = n.into();
    }
    if let Some(database) = &args.glue_database {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let target = GlueTarget { database: database.clone(), table_prefix: args.glue_table_prefix.clone(), lake_url: args.lake.clone() };
        options.glue = Some((aws_sdk_glue::Client::new(&config), target));
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
    let report = cwms_compactor::compact(raw.as_ref(), &args.raw, lake.as_ref(), &options).await;
    bar.finish_and_clear();
    let report = report.context("compaction stopped")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.summary_json())?);
    } else {
        print_summary(&report);
    }
    Ok(if report.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
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

pub fn print_summary(report: &Report) {
    println!(
        "read {} raw objects ({} bytes, {} pending of {} listed); {} datums, {} duplicates merged",
        report.objects_read, report.raw_bytes_read, report.objects_pending, report.objects_listed, report.datums, report.duplicates_merged
    );
    println!(
        "wrote {} metrics_1m objects ({} unchanged) and {} metrics_1h objects, {} bytes, in {:.2} s",
        report.minute_objects_written,
        report.minute_objects_unchanged,
        report.hour_objects_written,
        report.lake_bytes_written,
        report.elapsed.as_secs_f64()
    );
    if report.glue.created + report.glue.already_present > 0 {
        println!("glue: {} partitions created, {} already present", report.glue.created, report.glue.already_present);
    }
    if report.objects_failed_earlier > 0 {
        println!(
            "{} raw objects recorded as undecodable by earlier runs were skipped (--retry-failed reads them again)",
            report.objects_failed_earlier
        );
    }
    print_problems(report);
}

/// Names every raw object that did not decode and every lake object that could not be updated.
pub fn print_problems(report: &Report) {
    for problem in &report.objects_failed {
        eprintln!("raw object {}: {}", problem.location, problem.reason);
    }
    for problem in &report.partition_errors {
        eprintln!("lake object {}: {}", problem.location, problem.reason);
    }
}

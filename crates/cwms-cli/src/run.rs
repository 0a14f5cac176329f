//! `cwms run`: the whole pipeline on one machine, no AWS account.
//!
//! Generates about an hour of realistic metric-stream data, feeds it through the transform
//! exactly as Firehose would (events of at most 3 MB, base64, the Lambda's own handler), writes
//! what Firehose would write (`raw/` and `errors/processing-failed/`), then compacts `raw/` into
//! `lake/`. A small share of records is malformed on purpose so the failure path shows.
//! `--stream-format` sends the records in one of the OpenTelemetry formats instead of JSON.

use crate::output::out;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use cwms_compactor::{Options, Progress};
use cwms_model::OutputFormat;
use cwms_parquet::Table;
use cwms_sample::Spec;
use cwms_store::{LocalStore, ObjectStore, PutMode};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::local_firehose::Firehose;

/// Firehose's largest Lambda buffer: it invokes the transform with at most 3 MB of records.
const EVENT_BYTES: usize = 3 * 1024 * 1024;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The folder standing in for the S3 bucket: raw/, errors/ and lake/ are written below it.
    #[arg(long, default_value = "cwms-demo", value_name = "DIR")]
    pub out: PathBuf,
    /// How many series to generate (spread over AWS/EC2, AWS/Lambda, AWS/ApiGateway, AWS/DynamoDB
    /// and an application's own namespace).
    #[arg(long, default_value_t = 400, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub series: u32,
    /// How many minutes of data.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=1440))]
    pub minutes: u32,
    /// First minute of the data, RFC 3339 (`2026-11-26T07:00:00Z`) or epoch milliseconds;
    /// default: the start of the previous UTC hour, so the data looks fresh.
    #[arg(long, value_name = "TIME", value_parser = crate::generate::parse_start)]
    pub start: Option<i64>,
    /// Share of Firehose records made malformed on purpose (they end up in errors/).
    #[arg(long, default_value = "0.01", value_parser = crate::generate::parse_share)]
    pub malformed: f64,
    /// Seed of every random choice: the same seed and start give the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The metric stream's output format (CloudWatch's OutputFormat): json, opentelemetry1.0 or
    /// opentelemetry0.7. The records reach the transform in this format (which it tells by their
    /// bytes) and leave it as the same JSON lines; OpenTelemetry streams send percentiles only.
    #[arg(long, value_name = "FORMAT", default_value = "json", value_parser = crate::generate::parse_output_format)]
    pub stream_format: OutputFormat,
    /// Leave out the trimmed means some series send beside their percentiles (implied by an
    /// OpenTelemetry --stream-format, which cannot carry them): a json run then holds exactly
    /// the datums of an OpenTelemetry one.
    #[arg(long)]
    pub no_trimmed_means: bool,
    /// Share of datums CloudWatch sends a second time with other values (a larger or smaller
    /// count, or the same count with other values), so the lake shows the merge law at work
    /// (see `cwms generate --resends`). Default 0.
    #[arg(long, value_name = "SHARE", default_value = "0", value_parser = crate::generate::parse_share)]
    pub resends: f64,
    /// Add series with awkward names: =, comma, backslash, /, spaces, : and non-ASCII text in
    /// namespaces, dimensions, metric names and units (see `cwms generate --awkward-names`).
    #[arg(long)]
    pub awkward_names: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let start_ms = args.start.unwrap_or_else(previous_hour_ms);
    let spec = Spec {
        start_ms,
        minutes: args.minutes,
        series: args.series,
        seed: args.seed,
        malformed_share: args.malformed,
        duplicate_share: 0.02,
        late_share: 0.02,
        gzip_share: 0.05,
        stream_name: "cwms-demo".to_owned(),
        stream_format: args.stream_format,
        trimmed_means: args.stream_format == OutputFormat::Json && !args.no_trimmed_means,
        resend_share: args.resends,
        awkward_names: args.awkward_names,
        ..Spec::default()
    };
    spec.validate().context("invalid data specification")?;
    let spelled = args.out.to_string_lossy();
    if spelled.contains("://") || spelled.to_ascii_lowercase().starts_with("s3:") {
        anyhow::bail!(
            "--out {spelled}: `cwms run` writes a local folder (a stand-in for the bucket); for S3 use `cwms compact --raw s3://... --lake s3://...`"
        );
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let out = args.out.canonicalize().with_context(|| format!("resolving {}", args.out.display()))?;
    // A folder that already holds a run's lake: this run's data is merged into it (the merge law
    // makes that safe), which the summary says, so the figures are not read as this run's alone.
    let earlier = out.join("lake").join(cwms_compactor::CHECKPOINT_KEY).is_file() || out.join("raw").is_dir();

    // 1. CloudWatch: the records a metric stream hands Firehose.
    let records = cwms_sample::records(&spec);
    let events = cwms_sample::firehose_events(&spec, &records, EVENT_BYTES).context("batching records into Firehose events")?;
    let generated_datums = u64::from(spec.series) * u64::from(spec.minutes);

    // 2. Firehose invokes the transform with each event and writes what it answers.
    let transform_bar = progress_bar(events.len() as u64, "transform  {bar:30} {pos}/{len} Firehose events");
    let config = cwms_transform::Config::default();
    let mut firehose = Firehose::new(&spec.stream_name);
    for event in &events {
        let outcome = cwms_transform::transform(&config, event);
        firehose.deliver(event, &outcome);
        transform_bar.inc(1);
    }
    transform_bar.finish_and_clear();
    let delivery = firehose.finish();

    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let report = runtime.block_on(async {
        let bucket = LocalStore::create(&out).await.with_context(|| format!("opening {}", out.display()))?;
        for (key, bytes) in delivery.raw.iter().chain(&delivery.errors) {
            bucket.put(key, Bytes::from(bytes.clone()), PutMode::Overwrite).await?;
        }

        // 3. The compactor: raw/ into lake/.
        let raw = LocalStore::create(out.join("raw")).await?;
        let lake = LocalStore::create(out.join("lake")).await?;
        let bar = progress_bar(0, "compact    {bar:30} {binary_bytes}/{binary_total_bytes} raw objects read  {msg}");
        let progress = bar.clone();
        let options = Options {
            progress: Some(Arc::new(move |event| match event {
                Progress::Listed { bytes, .. } => progress.set_length(bytes),
                Progress::ObjectRead { bytes } => progress.inc(bytes),
                Progress::Publishing { objects } => progress.set_message(format!("writing {objects} lake objects")),
                Progress::ObjectWritten => {}
            })),
            ..Options::default()
        };
        let report = cwms_compactor::compact(&raw, &lake, &options).await;
        bar.finish_and_clear();
        let summary = cwms_compactor::lake_summary(&lake).await?;
        anyhow::Ok((report.context("compaction stopped")?, summary))
    })?;
    let (report, summary) = report;

    let minutes = summary.get(&Table::Metrics1m).copied().unwrap_or_default();
    let hours = summary.get(&Table::Metrics1h).copied().unwrap_or_default();
    out!("cwms run: the whole pipeline on this machine, in {}", out.display())?;
    if earlier {
        out!("  (the folder held an earlier run: this run's data was merged into its raw zone and lake; use a new --out for a fresh one)")?;
    }
    out!(
        "  generated   {} series x {} minutes = {generated_datums} datums, in {} Firehose records ({})",
        spec.series,
        spec.minutes,
        records.len(),
        spec.stream_format
    )?;
    out!(
        "  transform   {}: {} records ok, {} dropped, {} failed ({} datums out)",
        crate::output::plural(events.len() as u64, "event", "events"),
        delivery.records_ok,
        delivery.records_dropped,
        delivery.records_failed,
        delivery.datums
    )?;
    out!(
        "  firehose    {} in raw/, {} in errors/processing-failed/ (original bytes, for `cwms redrive`)",
        crate::output::plural(delivery.raw.len() as u64, "raw object", "raw objects"),
        crate::output::plural(delivery.errors.len() as u64, "error object", "error objects")
    )?;
    out!(
        "  compactor   {} read, {} merged, {} failed",
        crate::output::plural(report.datums, "datum", "datums"),
        crate::output::plural(report.duplicates_merged, "duplicate", "duplicates"),
        crate::output::plural(report.objects_failed.len() as u64, "object", "objects")
    )?;
    out!(
        "  lake        metrics_1m: {} files, {} rows, {} bytes ({:.1} bytes per row); metrics_1h: {} files, {} rows, {} bytes",
        minutes.files,
        minutes.rows,
        minutes.bytes,
        minutes.bytes as f64 / minutes.rows.max(1) as f64,
        hours.files,
        hours.rows,
        hours.bytes
    )?;
    out!("  done in {:.1} s", started.elapsed().as_secs_f64())?;
    print_queries(&out, start_ms)?;
    crate::compact::print_problems(&report);
    Ok(if report.is_success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn print_queries(out: &Path, start_ms: i64) -> anyhow::Result<()> {
    let day = cwms_model::utc_hour(start_ms).date();
    let lake = out.join("lake");
    out!()?;
    out!("Try it with DuckDB (pip install duckdb):")?;
    out!(
        "  duckdb -c \"SELECT namespace, metric_name, count(*) AS datums, round(sum(\\\"sum\\\") / sum(\\\"count\\\"), 2) AS average \
         FROM read_parquet('{}/metrics_1m/**/*.parquet', hive_partitioning = true) GROUP BY ALL ORDER BY datums DESC LIMIT 10\"",
        lake.display()
    )?;
    out!("On AWS, the same lake in Athena (database and tables from infra/template.yaml):")?;
    // The cookbook's average: the sum of sums over the sum of counts, never an average of averages.
    out!(
        "  SELECT dimension_key, sum(\"sum\") / sum(\"count\") AS avg_ms, max(element_at(stats, 'p99')) AS worst_p99 \
         FROM metrics_1m WHERE dt = '{day}' AND namespace = 'AWS/Lambda' AND metric_name = 'Duration' \
         GROUP BY dimension_key ORDER BY avg_ms DESC LIMIT 10;"
    )?;
    Ok(())
}

fn previous_hour_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    now - now.rem_euclid(3_600_000) - 3_600_000
}

fn progress_bar(length: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr());
    bar.set_style(ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> "));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

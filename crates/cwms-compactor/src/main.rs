//! The compactor Lambda: settings and clients once at cold start, one compaction per scheduled event.

use std::io::Write as _;
use std::sync::Arc;

use cwms_compactor::{GlueTarget, Options, Settings, compact, emf_document};
use lambda_runtime::{Error, LambdaEvent, service_fn};

/// mimalloc instead of the system allocator: merging allocates small values by the million
/// across threads, where glibc's malloc spent a sixth of the compactor's time and kept freed
/// memory in per-thread arenas (a higher peak RSS).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    cwms_compactor::allocator::return_freed_memory_at_once();
    lambda_runtime::tracing::init_default_subscriber();
    let settings = Settings::from_vars(std::env::vars()).map_err(startup)?;
    let raw = cwms_store::open_existing(&settings.raw).await.map_err(startup)?;
    let lake = cwms_store::open(&settings.lake).await.map_err(startup)?;
    let mut options = Options::default();
    options.write.codec = settings.codec;
    options.max_points = settings.max_points;
    options.max_decompressed_bytes = settings.max_decompressed_bytes;
    if let Some((database, table_prefix)) = &settings.glue {
        options.glue = Some(GlueTarget::connect(database, table_prefix, &settings.lake).await);
    }
    let options = Arc::new(options);
    let function_name: Arc<str> = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default().into();
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let (raw, lake, options, function_name) = (raw.clone(), lake.clone(), options.clone(), function_name.clone());
        async move {
            let report = compact(raw.as_ref(), lake.as_ref(), &options).await;
            let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            // The EMF line goes to standard output (CloudWatch Logs); a write that fails loses
            // the metrics of one invocation, never its answer, so it is logged, not raised.
            if let Err(e) = writeln!(std::io::stdout().lock(), "{}", emf_document(report.as_ref().ok(), &function_name, now_ms)) {
                tracing::warn!(error = %e, "cannot write the EMF metrics line to standard output");
            }
            let report = report?;
            tracing::info!(?report, "compaction finished");
            if !report.is_success() {
                return Err(Error::from(format!(
                    "compaction finished with problems: {:?} {:?}",
                    report.objects_failed, report.partition_errors
                )));
            }
            Ok::<_, Error>(report.summary_json())
        }
    }))
    .await
}

/// A cold-start failure, shown as its message: the runtime prints a failed `main`'s error with
/// `Debug`, and the operator reading the function's log needs the sentence, not the struct.
struct StartupError(String);

fn startup(error: impl std::fmt::Display) -> StartupError {
    StartupError(error.to_string())
}

impl std::fmt::Debug for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartupError {}

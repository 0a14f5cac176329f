//! The transform Lambda: configuration once at cold start, then `cwms_transform::transform_to_json` per event.

use std::io::Write as _;
use std::sync::Arc;

use cwms_transform::{Config, FirehoseEvent, emf_document};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::value::RawValue;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Arc::new(Config::from_env().map_err(startup)?);
    let function_name: Arc<str> = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default().into();
    // The event arrives as raw JSON and is parsed here, so that each record's base64 borrows
    // from it; the response leaves as the JSON `transform_to_json` wrote, verbatim.
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Box<RawValue>>| {
        let (config, function_name) = (config.clone(), function_name.clone());
        async move {
            let LambdaEvent { payload, context } = event;
            // Decoding is CPU work: keep it off the async worker that talks to the Runtime API.
            let outcome = tokio::task::spawn_blocking(move || {
                let firehose: FirehoseEvent<'_> = serde_json::from_str(payload.get())?;
                Ok::<_, Error>(cwms_transform::transform_to_json(&config, &firehose))
            })
            .await??;
            outcome.log(Some(&context.request_id));
            let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            // The EMF line goes to standard output (CloudWatch Logs); a write that fails loses
            // the metrics of one invocation, never its answer, so it is logged, not raised.
            if let Err(e) = writeln!(std::io::stdout().lock(), "{}", emf_document(&outcome.stats, &function_name, now_ms)) {
                tracing::warn!(error = %e, "cannot write the EMF metrics line to standard output");
            }
            let body = String::from_utf8(outcome.response)?;
            Ok::<_, Error>(RawValue::from_string(body)?)
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

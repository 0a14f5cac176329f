//! The transform Lambda: configuration once at cold start, then `cwms_transform::transform` per event.

use std::sync::Arc;

use cwms_transform::{Config, FirehoseEvent, emf_document};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Arc::new(Config::from_env().map_err(startup)?);
    let function_name: Arc<str> = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default().into();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<FirehoseEvent>| {
        let (config, function_name) = (config.clone(), function_name.clone());
        async move {
            // Decoding is CPU work: keep it off the async worker that talks to the Runtime API.
            let outcome = tokio::task::spawn_blocking(move || cwms_transform::transform(&config, &event.payload)).await?;
            outcome.log(Some(&event.context.request_id));
            let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            println!("{}", emf_document(&outcome.stats, &function_name, now_ms));
            Ok::<_, Error>(outcome.response)
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

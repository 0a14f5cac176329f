//! The transform Lambda: configuration once at cold start, then `cwms_transform::transform` per event.

use std::sync::Arc;

use cwms_transform::{Config, FirehoseEvent, emf_document};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let config = Arc::new(Config::from_env()?);
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

//! The queue worker Lambda function (lambda_runtime): SQS batches of jobs with partial batch
//! failures, and Step Functions "deliver" events.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;
use std::sync::Arc;
use whatsapp_agent_lambda::app;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let worker = app::Env::load()
        .await
        .and_then(app::Env::into_worker)
        .inspect_err(|error| {
            tracing::error!(%error, "worker cannot start");
            eprintln!("worker cannot start: {error}");
        })?;
    let worker = Arc::new(worker);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let worker = worker.clone();
        async move {
            worker
                .handle(event.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}

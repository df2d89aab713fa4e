//! The bare lambda_runtime function the cold-start harness (`tests/bench/coldstart.rs`)
//! compares the webhook with: lambda_runtime's README example and nothing more (no tracing
//! subscriber, no configuration, no AWS SDK). It answers every event with a small API Gateway
//! style response. `cargo build --release --example hello-lambda`.
//!
//! The harness also compiles this file as a module (`hello_lambda::main`) for its test mode,
//! where `cargo test --all-targets` builds examples as test harnesses, not as this program.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
pub async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handler)).await
}

/// Answers any event with `{"statusCode":200,"body":"hello"}`.
async fn handler(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(json!({"statusCode": 200, "body": "hello"}))
}

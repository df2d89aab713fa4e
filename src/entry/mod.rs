//! Entry points: how the library meets the outside world. Cold-start wiring ([`startup`]:
//! configuration and secrets in, the webhook app or the worker out), the Lambda webhook
//! ([`lambda_webhook`], API Gateway HTTP API events over the Runtime API), and plain HTTP
//! outside Lambda ([`local`]), and what the two binaries run ([`run`]: the webhook served in
//! Lambda or locally, the worker on Lambda's SQS and deliver events or polling the queue).
//! `src/bin/webhook.rs` and `src/bin/worker.rs` only call [`run`].

pub mod lambda_webhook;
pub mod local;
pub mod run;
pub mod startup;

pub use startup::{Env, StartupError};

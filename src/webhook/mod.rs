//! Meta's webhook: signature verification, payload parsing, and the HTTP handler, served over
//! the Lambda Runtime API ([`run_lambda`]) or plain HTTP ([`crate::local::serve`]).

mod handler;
pub mod lambda;
pub mod log_safe;
pub mod parse;
pub mod payload;
pub mod verify;

pub use handler::{Dispatcher, Refusal, WEBHOOK_PATH, WebhookApp};
pub use lambda::run as run_lambda;
pub use parse::{ParseError, ParsedWebhook, StatusUpdate, parse};
pub use verify::{VerifyError, sign, verify_signature};

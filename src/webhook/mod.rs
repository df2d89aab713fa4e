//! Meta's webhook: signature verification, payload parsing, the HTTP handler and its answers.
//! Served over the Lambda Runtime API (`entry::lambda_webhook`) or plain HTTP (`entry::local`).

pub mod answer;
mod handler;
pub mod parse;
pub mod payload;
pub mod verify;

pub use handler::{Dispatcher, Refusal, WEBHOOK_PATH, WebhookApp};
pub use parse::{ParseError, ParsedWebhook, StatusUpdate, TemplateUpdate, parse};
pub use verify::{VerifyError, sign, verify_signature};

//! Meta's webhook: signature verification, payload parsing, and the HTTP handler.

mod handler;
pub mod parse;
pub mod payload;
pub mod verify;

pub use handler::{Dispatcher, WEBHOOK_PATH, WebhookApp};
pub use parse::{ParseError, ParsedWebhook, StatusUpdate, parse};
pub use verify::{VerifyError, sign, verify_signature};

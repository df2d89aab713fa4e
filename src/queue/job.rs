//! The queue job: what the webhook sends the worker for one message.

use crate::domain::InboundMessage;
use serde::{Deserialize, Serialize};

/// Job format version, so a worker can refuse jobs it does not understand.
pub const JOB_VERSION: u32 = 1;

/// One queued message: everything the worker needs, no re-parsing of the webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub version: u32,
    pub message: InboundMessage,
}

impl Job {
    pub fn new(message: InboundMessage) -> Self {
        Self {
            version: JOB_VERSION,
            message,
        }
    }
}

//! The WhatsApp Graph API port: send messages, mark messages read.
//! Adapters: [`GraphClient`] (ureq, real API) and [`RecordingMessenger`] (in-memory, for tests).

mod client;
mod memory;
pub mod message;

pub use client::GraphClient;
pub use memory::{RecordingMessenger, SentRecord};
pub use message::{ListRowOut, ListSectionOut, OutgoingMessage, Recipient, ReplyButton};

use crate::BoxFuture;
use crate::message::{MessageId, PhoneNumberId};

/// Sends WhatsApp messages from one business number.
pub trait Messenger: Send + Sync {
    /// Sends one message; `context` quotes the message being answered. Returns the new wamid.
    fn send<'a>(
        &'a self,
        from: &'a PhoneNumberId,
        to: &'a Recipient,
        message: &'a OutgoingMessage,
        context: Option<&'a MessageId>,
    ) -> BoxFuture<'a, Result<MessageId, GraphError>>;

    /// Marks an inbound message read (blue ticks), optionally showing the typing indicator.
    fn mark_read<'a>(
        &'a self,
        from: &'a PhoneNumberId,
        message: &'a MessageId,
        typing: bool,
    ) -> BoxFuture<'a, Result<(), GraphError>>;
}

/// A Graph API failure, with Meta's error fields kept for the log.
/// <https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes>
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    #[error(
        "Graph API error {code} (subcode {subcode:?}, HTTP {status}): {message} [fbtrace_id {fbtrace_id:?}]"
    )]
    Api {
        status: u16,
        code: i64,
        subcode: Option<i64>,
        message: String,
        fbtrace_id: Option<String>,
    },
    #[error("Graph API unreachable: {0}")]
    Transport(String),
    #[error("Graph API timed out")]
    Timeout,
    #[error("Graph API answered HTTP {status} with an unreadable body: {body}")]
    Decode { status: u16, body: String },
    #[error("Graph API error: {0}")]
    Unknown(String),
}

impl GraphError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) | Self::Timeout => true,
            Self::Decode { status, .. } => *status == 429 || *status >= 500,
            // 4 / 80007 / 130429 / 131056 are rate limits; 1, 2, 131000 temporary.
            Self::Api { status, code, .. } => {
                matches!(code, 1 | 2 | 4 | 80007 | 130429 | 131000 | 131056)
                    || *status == 429
                    || *status >= 500
            }
            Self::Unknown(_) => false,
        }
    }
}

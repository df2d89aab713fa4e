//! The WhatsApp Graph API port: send messages, mark messages read.
//! Adapters: [`GraphClient`] (ureq, real API) and [`RecordingMessenger`] (in-memory, for tests).

mod client;
mod memory;
pub mod wire;

pub use client::{
    Backoff, GRAPH_BACKOFF_BASE, GRAPH_BACKOFF_CAP, GRAPH_MAX_ATTEMPTS, GRAPH_MAX_RETRY_AFTER,
    GRAPH_RETRY_BUDGET, GraphClient,
};
pub use memory::{RecordingMessenger, SentRecord};
pub use wire::SendBody;

use crate::BoxFuture;
use crate::domain::{MessageId, OutgoingMessage, PhoneNumberId, Recipient};

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
///
/// Meta's free text (`message`, with `error_data.details`) and an unreadable body are foreign
/// strings: they are kept scrubbed ([`crate::redact::scrub`]: controls escaped,
/// numbers masked, ids hashed, length capped) and left out of `Display`, which every caller
/// logs again (the pipeline, outcomes): the client logs them once, on the call's last line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    #[error(
        "Graph API error {code} (subcode {subcode:?}, HTTP {status}) [fbtrace_id {fbtrace_id:?}]"
    )]
    Api {
        status: u16,
        code: i64,
        subcode: Option<i64>,
        /// Meta's `message` and `error_data.details`, scrubbed.
        message: String,
        /// Meta's trace id, scrubbed like the message.
        fbtrace_id: Option<String>,
    },
    /// No answer from Meta: connection refused, DNS, TLS, a broken HTTP exchange. ureq's error
    /// is kept as the source and shown: its text never holds a request header (the token is one)
    /// or the body (the recipient is there), and the URL it may quote holds only the business's
    /// phone number id.
    #[error("Graph API unreachable: {0}")]
    Transport(#[source] ureq::Error),
    #[error("Graph API timed out")]
    Timeout,
    /// `body`: a scrubbed excerpt.
    #[error("Graph API answered HTTP {status} with an unreadable body")]
    Decode { status: u16, body: String },
    /// Nothing was sent: the phone number id (scrubbed here) would change the URL's path or
    /// query, where Meta's ids are numbers.
    #[error("phone number id {0:?} is not a Graph API id")]
    InvalidPhoneNumberId(String),
    /// Nothing was sent: the request body did not encode as JSON.
    #[error("Graph API request not encodable: {0}")]
    Encode(#[source] serde_json::Error),
    /// The blocking call ended without an answer: its task panicked or was cancelled (the
    /// argument says which). Tokio's error is not kept: a panic's message may quote whatever
    /// the call held, the request body with the recipient's number included.
    #[error("Graph API call aborted: its task {0}")]
    Aborted(&'static str),
    /// Meta answered, but not with anything we can act on (a read receipt answered
    /// `"success": false`). The text is ours, with Meta's answer only as a scrubbed excerpt.
    #[error("Graph API error: {0}")]
    Unknown(String),
}

/// Meta's code for "outside the 24-hour customer service window": only a template may be sent
/// until the user writes again. Retrying cannot help.
pub const CODE_REENGAGEMENT: i64 = 131047;
/// Meta's code for an expired, revoked or invalid access token.
pub const CODE_ACCESS_TOKEN: i64 = 190;
/// Meta's codes worth retrying after a pause: the throttling codes 4 (app call limit), 80007
/// (WhatsApp Business Account limit), 130429 (throughput) and 131056 (pair rate: same
/// recipient too often), and the temporary ones 1 (unknown, possibly a server error),
/// 2 (service temporarily down or overloaded), 131000 (something went wrong) and 131016
/// (service unavailable). Not 131048 (spam rate limit): it lifts with quality, not time.
/// <https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes>
pub const RETRYABLE_CODES: &[i64] = &[1, 2, 4, 80007, 130429, 131000, 131016, 131056];

impl GraphError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transport(_) | Self::Timeout => true,
            Self::Decode { status, .. } => *status == 429 || *status >= 500,
            Self::Api { status, code, .. } => {
                if *code == CODE_REENGAGEMENT {
                    return false;
                }
                RETRYABLE_CODES.contains(code) || *status == 429 || *status >= 500
            }
            Self::InvalidPhoneNumberId(_)
            | Self::Encode(_)
            | Self::Aborted(_)
            | Self::Unknown(_) => false,
        }
    }

    /// Meta's error code, when Meta answered with one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Meta refused the access token (code 190, or HTTP 401): it may have been rotated.
    pub fn is_token_refused(&self) -> bool {
        match self {
            Self::Api { status, code, .. } => *code == CODE_ACCESS_TOKEN || *status == 401,
            Self::Decode { status, .. } => *status == 401,
            _ => false,
        }
    }

    /// The user is outside the 24-hour customer service window (code 131047).
    pub fn is_reengagement(&self) -> bool {
        self.code() == Some(CODE_REENGAGEMENT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: i64) -> GraphError {
        GraphError::Api {
            status,
            code,
            subcode: None,
            message: String::new(),
            fbtrace_id: None,
        }
    }

    #[test]
    fn throttling_and_temporary_codes_are_retryable() {
        for code in RETRYABLE_CODES {
            assert!(api(400, *code).is_retryable(), "{code}");
        }
        assert!(api(503, 100).is_retryable());
        assert!(api(429, 100).is_retryable());
        assert!(!api(400, 100).is_retryable());
        assert!(!api(400, 131048).is_retryable());
    }

    #[test]
    fn our_own_refusals_and_aborted_calls_are_not_retried() {
        let encode = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        for error in [
            GraphError::InvalidPhoneNumberId("1/2".to_owned()),
            GraphError::Encode(encode),
            GraphError::Aborted("panicked"),
            GraphError::Unknown("Graph API did not mark wamid#0 read".to_owned()),
        ] {
            assert!(!error.is_retryable(), "{error:?}");
            assert!(!error.is_token_refused(), "{error:?}");
            assert_eq!(error.code(), None, "{error:?}");
        }
        assert_eq!(
            GraphError::Aborted("was cancelled").to_string(),
            "Graph API call aborted: its task was cancelled"
        );
    }

    #[test]
    fn reengagement_is_never_retryable() {
        assert!(!api(400, CODE_REENGAGEMENT).is_retryable());
        assert!(!api(500, CODE_REENGAGEMENT).is_retryable());
        assert!(api(400, CODE_REENGAGEMENT).is_reengagement());
    }

    #[test]
    fn code_190_or_http_401_means_the_token_was_refused() {
        assert!(api(400, CODE_ACCESS_TOKEN).is_token_refused());
        assert!(api(401, 0).is_token_refused());
        assert!(
            GraphError::Decode {
                status: 401,
                body: String::new()
            }
            .is_token_refused()
        );
        assert!(!api(403, 10).is_token_refused());
        assert!(!GraphError::Timeout.is_token_refused());
        assert!(!api(401, CODE_ACCESS_TOKEN).is_retryable());
    }
}

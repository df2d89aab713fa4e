//! The agent port: one request per inbound message, an optional reply back.
//! Adapters: [`HttpAgent`] (`AGENT_BACKEND=http`), [`StepFunctionsAgent`]
//! (`AGENT_BACKEND=stepfunctions`) and [`ScriptedAgent`] (in-memory, for tests).

pub mod contract;
pub mod deliver;
mod http;
mod memory;
pub mod registry;
mod stepfunctions;
pub mod stream;

pub use contract::{
    Action, AgentReply, AgentRequest, Attachment, AttachmentKind, DroppedPart, ListRow,
    ListSection, ListSpec, ReplyStatus,
};
pub use deliver::{Deliver, DeliverEvent};
pub use http::HttpAgent;
pub use memory::ScriptedAgent;
pub use registry::{Agents, NamedAgent};
pub use stepfunctions::{StepFunctionsAgent, StepFunctionsMode, execution_name};
pub use stream::{Part, PartSender, ReplyStream};

use crate::BoxFuture;

/// Asks the team's agent about one message.
pub trait Agent: Send + Sync {
    /// `Ok(None)` means the agent chose not to reply (HTTP 204 or an empty body).
    fn ask<'a>(
        &'a self,
        request: &'a AgentRequest,
    ) -> BoxFuture<'a, Result<Option<AgentReply>, AgentError>>;

    /// The answer part by part, as the agent produces it (see [`stream`]). An agent that
    /// answers at once gives one part: the default.
    fn ask_stream<'a>(&'a self, request: &'a AgentRequest) -> ReplyStream<'a> {
        ReplyStream::whole(self.ask(request))
    }
}

/// Why the agent gave no usable answer. Logged in full; the user only sees a short ❌ message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    #[error("agent timed out after {0:?}")]
    Timeout(std::time::Duration),
    /// No answer from the agent, or Step Functions asked to be tried later: see
    /// [`TransportError`].
    #[error("agent unreachable: {0}")]
    Transport(#[source] TransportError),
    #[error("agent answered HTTP {status}")]
    Status { status: u16, body: String },
    #[error("agent answer is not a valid reply: {error}")]
    Decode { error: String, body: String },
    #[error("agent answer is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("agent backend misconfigured: {0}")]
    Config(String),
    /// A state machine execution ended without success (`FAILED`, `TIMED_OUT`, …), with the
    /// `error` and (shortened) `cause` Step Functions reported.
    #[error(
        "state machine execution {status}: {}: {}",
        .error.as_deref().unwrap_or("no error name"),
        .cause.as_deref().unwrap_or("no cause")
    )]
    Execution {
        status: String,
        error: Option<String>,
        cause: Option<String>,
    },
}

/// Why the agent gave no answer (retryable). `Display` is the whole story, as logged;
/// `source()` keeps the typed cause where it holds nothing of the request or the answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// [`HttpAgent`]: connection, TLS, I/O or protocol failure. ureq's error is kept: for
    /// these it names neither the URL (`AGENT_URL` may hold a token in its query) nor the
    /// body; the errors that quote the URL become [`AgentError::Config`] without it.
    #[error("{source}")]
    Http {
        #[source]
        source: ureq::Error,
    },
    /// [`HttpAgent`]: the call's task ended without an answer. A panic's message is not kept:
    /// it may quote the request (the user's message); the panic hook printed it already.
    #[error(
        "agent call aborted: the call {}",
        if *.panicked { "panicked" } else { "was cancelled" }
    )]
    Aborted { panicked: bool },
    /// [`StepFunctionsAgent`]: Step Functions could not be reached or did not answer in time.
    /// The SDK's error (boxed) is kept: without an answer it holds nothing of the execution.
    #[error("{}", crate::error::sdk_context(.source))]
    Aws {
        #[source]
        source: crate::error::BoxError,
    },
    /// [`StepFunctionsAgent`]: Step Functions answered, but the answer could not be read. The
    /// SDK's error is not kept: it holds the raw answer, which for a sync execution carries
    /// its input and output (the user's message and the reply). `reason` is the reading
    /// error's text without that answer, scrubbed.
    #[error("Step Functions answer could not be read: {reason}")]
    Unreadable { reason: String },
    /// [`StepFunctionsAgent`]: Step Functions is throttling (whatever the HTTP status) or
    /// answered 5xx. `code` and `message` are its own, scrubbed.
    #[error("Step Functions answered HTTP {status}: {code}: {message}")]
    Busy {
        status: u16,
        code: String,
        message: String,
    },
}

impl AgentError {
    /// Whether trying again later may succeed (the queue worker retries these).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout(_) | Self::Transport(_) => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Decode { .. } | Self::TooLarge { .. } | Self::Config(_) => false,
            Self::Execution { status, .. } => status == stepfunctions::STATUS_TIMED_OUT,
        }
    }
}

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
pub use registry::{Agents, DEFAULT_AGENT_NAME, NamedAgent};
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
    #[error("agent unreachable: {0}")]
    Transport(String),
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

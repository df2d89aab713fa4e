//! Approvals: an agent (or a state machine) asks before it acts; the right people approve or
//! deny with a tap, exactly once, before the request expires; every step is audited.
//!
//! - [`approvers`]: `APPROVERS`, who may approve (phone numbers and BSUIDs, never `*`), and one
//!   person's canonical identity (a phone number, a BSUID, or both).
//! - [`engine`]: the engine: requests, votes, the decision (conditional writes: made exactly
//!   once however many taps arrive together), expiry, the notices and the audit lines. Its
//!   records are kept in `APPROVALS_TABLE` ([`crate::records`]), its expiry timers on
//!   `TIMER_QUEUE_URL` ([`crate::timers`]).
//! - [`TaskCallbacks`]: the answer to a Step Functions task that asked (`SendTaskSuccess`,
//!   `SendTaskFailure`): [`SfnCallbacks`] and the in-memory [`RecordingCallbacks`].

pub mod approvers;
pub mod engine;

mod callbacks;
mod sfn;

pub use callbacks::{RecordingCallbacks, TaskAnswer};
pub use sfn::SfnCallbacks;

use crate::BoxFuture;
use crate::error::BoxError;
use serde::{Deserialize, Serialize};

/// Button ids and template payloads of our approval requests:
/// `wal:approval:<id>:<nonce>:<approve|deny>` (the nonce is 128 random bits naming one
/// approver's copy of one request).
pub const APPROVAL_TAP_PREFIX: &str = "wal:approval:";

/// What an agent's reply (`"approval": {...}`) or a state machine's task asks for. Bounds are
/// the engine's: `approvers` must be a subset of `APPROVERS`, `required` at most the approvers
/// named, the expiry at most `APPROVAL_MAX_EXPIRY_SECS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalAsk {
    /// One line saying what will happen ("Restart api in prod").
    pub summary: String,
    /// The exact command to approve, shown whole or not at all.
    pub command: String,
    /// Phone numbers or BSUIDs, each one of `APPROVERS`; `None`: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approvers: Option<Vec<String>>,
    /// Approvals needed; `None`: 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<u32>,
    /// Seconds until it expires; `None`: `APPROVAL_EXPIRY_SECS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

/// An approval a Step Functions state machine asks for itself: the job its
/// `arn:aws:states:::sqs:sendMessage.waitForTaskToken` task puts on the job queue
/// (`{"version": 1, "approval": {...}}`). The decision is the task's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskApproval {
    #[serde(flatten)]
    pub ask: ApprovalAsk,
    /// Who asked (a phone number or a BSUID), told the outcome; may not approve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// `$$.Task.Token` (up to 2,048 characters): kept in the request's record, never in a
    /// button id or a log line.
    pub task_token: String,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approved,
    Denied,
    Expired,
}

impl Decision {
    /// The word in `event.approval.decision` and in the task's output.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
        }
    }
}

/// The decision a state machine's task gets: `SendTaskSuccess` with it as the output when
/// approved; `SendTaskFailure` with `error` `approval.denied`, `approval.expired` or
/// `approval.refused` and the same JSON as the `cause` otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskOutcome {
    /// The request's short id.
    pub id: String,
    /// `approved`, `denied`, `expired`, or `refused` (the request could not be asked).
    pub decision: String,
    /// Who decided, as configured or masked (empty when it expired).
    pub decided_by: Vec<String>,
    pub summary: String,
    pub command: String,
    /// Why a refused request was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Answers the Step Functions task that asked for an approval.
pub trait TaskCallbacks: Send + Sync {
    /// `SendTaskSuccess` with `output` (JSON).
    fn succeed<'a>(
        &'a self,
        task_token: &'a str,
        output: &'a str,
    ) -> BoxFuture<'a, Result<(), CallbackError>>;

    /// `SendTaskFailure` with `error` (`approval.denied`…) and `cause` (JSON).
    fn fail<'a>(
        &'a self,
        task_token: &'a str,
        error: &'a str,
        cause: &'a str,
    ) -> BoxFuture<'a, Result<(), CallbackError>>;
}

/// Why a task could not be answered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallbackError {
    /// Step Functions refused or did not answer: `code` is its error code (`unreachable`
    /// without an answer); `gone` when the task no longer waits (`TaskTimedOut`,
    /// `TaskDoesNotExist`, `InvalidToken`): nothing will ever take the answer.
    #[error("Step Functions task callback failed: {code}")]
    Sfn {
        code: String,
        retryable: bool,
        gone: bool,
        #[source]
        source: BoxError,
    },
}

impl CallbackError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Sfn { retryable, .. } => *retryable,
        }
    }

    /// The task no longer waits for an answer.
    pub fn is_gone(&self) -> bool {
        match self {
            Self::Sfn { gone, .. } => *gone,
        }
    }
}

//! Timers that must survive the process: paging's escalation steps and paced pages, approvals'
//! expiry. A [`Timer`] is scheduled for a unix second and handed back to its capability once it
//! is due (perhaps more than once: every step it drives is guarded by a conditional write).
//!
//! - [`SqsTimers`]: `TIMER_QUEUE_URL`, delayed messages on a standard queue (the worker reads
//!   them like jobs).
//! - [`LocalTimers`]: in process, for local runs only (they die with the process).

mod local;
mod sqs;

pub use local::LocalTimers;
pub use sqs::{SqsTimers, TIMER_BODY_VERSION, read_timer_body, timer_body};

use crate::BoxFuture;
use crate::error::BoxError;
use serde::{Deserialize, Serialize};

/// One incident occurrence: its key and the id of this occurrence (an alert that fires
/// again after being resolved is a new occurrence with the same key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct IncidentRef {
    pub key: String,
    pub id: String,
}

/// What a timer does when due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimerKind {
    /// Nobody acknowledged these incidents at `step` (the tier paged, from 0): page the next.
    Escalate {
        incidents: Vec<IncidentRef>,
        step: usize,
    },
    /// Pages to `person` (digits) were held back by `PAGE_MIN_INTERVAL_SECS`: send them now,
    /// folded into one.
    Flush { person: String },
    /// The approval request `id` expires now unless it was decided.
    ApprovalExpiry { id: String },
}

/// A timer: what to do, and when (unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timer {
    pub due_at: i64,
    #[serde(flatten)]
    pub kind: TimerKind,
}

/// Schedules timers.
pub trait Timers: Send + Sync {
    /// Hands `timer` back at `timer.due_at` or later (at once when that has passed). An
    /// adapter with a longest delay (SQS: 900 s) hands it back earlier; the engine schedules
    /// it again for the rest of the wait.
    fn schedule<'a>(&'a self, timer: &'a Timer) -> BoxFuture<'a, Result<(), TimerError>>;
}

/// Why a timer could not be scheduled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TimerError {
    /// SQS refused or did not answer: `code` is its error code (`unreachable` without an
    /// answer); the SDK error is kept boxed (it quotes no message body).
    #[error("timer queue failed: {code}")]
    Queue {
        code: String,
        #[source]
        source: BoxError,
    },
    /// The timer could not be encoded (serde's error, which quotes no value when writing).
    #[error("timer not encodable: {0}")]
    Encode(#[source] serde_json::Error),
    /// The in-process timer loop is gone (the process is stopping).
    #[error("in-process timers stopped")]
    Stopped,
}

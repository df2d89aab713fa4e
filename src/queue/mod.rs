//! The job queue port: the webhook hands allowed messages to the worker through it.
//! Adapters: [`SqsQueue`] (SQS FIFO, `JOB_QUEUE_URL`) and [`MemoryQueue`] (tests).

pub mod job;
mod memory;
mod sqs;

pub use job::{FailedDelivery, JOB_VERSION, Job, Work};
pub use memory::MemoryQueue;
pub use sqs::{SqsQueue, batch_entries, lambda_event};

use crate::BoxFuture;
use crate::error::BoxError;

/// Sends jobs; succeeds only when every job was accepted.
pub trait JobQueue: Send + Sync {
    fn enqueue<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Result<(), QueueError>>;
}

/// Schedules when a failed job is delivered again (SQS: its visibility timeout), so a transient
/// failure is retried in seconds, not after the queue's whole visibility timeout.
pub trait Redelivery: Send + Sync {
    fn redeliver_after<'a>(
        &'a self,
        receipt_handle: &'a str,
        delay: std::time::Duration,
    ) -> BoxFuture<'a, Result<(), QueueError>>;
}

/// Why jobs were not queued (the webhook answers 500 so Meta retries), or a retry not
/// scheduled. `Display` is the whole story on one line, as logged; `source()` keeps the typed
/// cause where it holds nothing of a job (see each variant).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// A job could not be serialized to its message body. serde's error is kept: serializing
    /// (unlike parsing) never quotes a value, it names what cannot be written.
    #[error("job queue failed: job not encodable: {0}")]
    Encode(#[source] serde_json::Error),
    /// A `SendMessageBatch` entry could not be built: the SDK's `BuildError` (boxed), which
    /// names the missing field.
    #[error("job queue failed: job entry invalid: {0}")]
    Entry(#[source] BoxError),
    /// SQS did not take every job: it refused `refused` entries of accepted calls, and
    /// `failed_calls` calls failed as a whole. `code` is the first failure's SQS error code
    /// (`unreachable` when SQS did not answer, `task` when a sending task ended). `detail` holds every failure's text, scrubbed
    /// ([`crate::redact::scrub_within`]): SQS may quote what it refused (a deduplication id is a
    /// message id, a group id a phone number), so its answers are not kept as sources. `source`
    /// is the first call that never got an answer (connection failure, timeout), which holds
    /// nothing of the jobs.
    #[error("job queue failed: {detail}")]
    NotSent {
        refused: usize,
        failed_calls: usize,
        code: String,
        detail: String,
        #[source]
        source: Option<BoxError>,
    },
    /// `ChangeMessageVisibility` failed: the SDK's error, kept (boxed). It may quote the
    /// receipt handle, an opaque SQS token, never a job.
    #[error("job queue failed: {}", crate::error::sdk_context(.source))]
    Redeliver {
        #[source]
        source: BoxError,
    },
}

impl QueueError {
    /// Whether trying again later may succeed: SQS down, throttling, a refusal the queue may
    /// not repeat. Not for a job that cannot be encoded into an entry.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::NotSent { .. } | Self::Redeliver { .. } => true,
            Self::Encode(_) | Self::Entry(_) => false,
        }
    }
}

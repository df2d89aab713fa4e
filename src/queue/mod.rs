//! The job queue port: the webhook hands allowed messages to the worker through it.
//! Adapters: [`SqsQueue`] (SQS FIFO, `JOB_QUEUE_URL`) and [`MemoryQueue`] (tests).

pub mod job;
mod memory;
mod sqs;

pub use job::{JOB_VERSION, Job};
pub use memory::MemoryQueue;
pub use sqs::{SqsQueue, batch_entries, lambda_event};

use crate::BoxFuture;

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

/// The queue refused or could not be reached: the webhook answers 500 so Meta retries.
#[derive(Debug, thiserror::Error)]
#[error("job queue failed: {0}")]
pub struct QueueError(pub String);

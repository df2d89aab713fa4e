//! Idempotency: a message id is claimed before its agent call, so a redelivered message never
//! reaches the agent twice and the user gets one answer. A claim is a lease: if the process
//! handling it dies, the claim expires and a redelivery takes over.
//! Adapters: [`MemoryIdempotency`] (one warm process) and [`DynamoIdempotency`]
//! (`IDEMPOTENCY_TABLE`, shared by every webhook and worker instance).

mod dynamodb;
mod memory;

pub use dynamodb::DynamoIdempotency;
pub use memory::MemoryIdempotency;

use crate::BoxFuture;
use crate::message::MessageId;
use std::time::Duration;

/// How long a completed id is remembered. Meta retries a webhook for up to 7 days.
pub const COMPLETED_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First time (or the previous holder's lease expired): go ahead.
    Acquired,
    /// Someone holds a live lease on it right now: try again later.
    InProgress,
    /// Already handled: do nothing.
    Completed,
}

#[derive(Debug, thiserror::Error)]
#[error("idempotency store failed: {0}")]
pub struct IdempotencyError(pub String);

/// Claims ids with a lease, marks them completed, or releases them so a retry can run.
pub trait IdempotencyStore: Send + Sync {
    /// Claims `id` for `lease`: until then nobody else acquires it.
    fn claim<'a>(
        &'a self,
        id: &'a MessageId,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, IdempotencyError>>;
    /// Records `id` as handled, remembered for [`COMPLETED_TTL`].
    fn complete<'a>(&'a self, id: &'a MessageId) -> BoxFuture<'a, Result<(), IdempotencyError>>;
    /// Gives up an in-progress claim after a failure worth retrying.
    fn release<'a>(&'a self, id: &'a MessageId) -> BoxFuture<'a, Result<(), IdempotencyError>>;
}

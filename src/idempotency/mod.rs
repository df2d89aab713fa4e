//! Idempotency: a message id is claimed before its agent call, so a redelivered message never
//! reaches the agent twice and the user gets one answer. A claim is a lease held by one owner
//! (a [`ClaimToken`]): while the message is being handled the holder renews it, so a handling
//! that outlasts one lease (a slow agent, a slow Graph API) is never taken over; if the process
//! dies, renewals stop, the claim expires and a redelivery takes over. Only the owner renews,
//! completes or releases a claim, so a stale holder cannot settle someone else's.
//! Adapters: [`MemoryIdempotency`] (one warm process) and [`DynamoIdempotency`]
//! (`IDEMPOTENCY_TABLE`, shared by every webhook and worker instance).

mod dynamodb;
mod memory;

pub use dynamodb::DynamoIdempotency;
pub use memory::MemoryIdempotency;

use crate::BoxFuture;
use crate::domain::MessageId;
use crate::error::BoxError;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// The answer to a renewal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// Still ours, held for another lease.
    Renewed,
    /// No longer ours (expired and taken over, completed, or gone): stop working on it.
    Lost,
}

/// Who holds a claim: random per attempt, so two attempts at the same message (two Lambda
/// instances, two tasks of one process) never pass for each other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimToken(String);

impl ClaimToken {
    /// A fresh token. `RandomState` keys come from the operating system's randomness (once per
    /// thread, then varied per call); a process-wide counter keeps two tokens of one process
    /// apart even so.
    pub fn new() -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let count = COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut halves = [0u64; 2];
        for (salt, half) in halves.iter_mut().enumerate() {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(count);
            hasher.write_usize(salt);
            hasher.write_u32(std::process::id());
            *half = hasher.finish();
        }
        Self(format!("{:016x}{:016x}", halves[0], halves[1]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ClaimToken {
    fn default() -> Self {
        Self::new()
    }
}

/// Why the store could not answer. The pipeline answers it with a retry; `Display` is the
/// whole story on one line, as logged; `source()` keeps the typed cause where it holds nothing
/// of a message (see each variant).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdempotencyError {
    /// A DynamoDB call (`operation`: claim, read, renew, complete, release) failed with the
    /// service's error `code` (`unknown` without one). `source`: the SDK's error (boxed), kept:
    /// DynamoDB's errors name the operation, the table and the condition, never an item's
    /// values, and requests are not part of them.
    #[error(
        "idempotency store failed: DynamoDB {operation} failed ({code}): {}",
        crate::error::sdk_context(.source)
    )]
    Store {
        operation: &'static str,
        code: String,
        #[source]
        source: BoxError,
    },
    /// DynamoDB answered, but its answer could not be read. The SDK's error is not kept: it
    /// holds the raw answer, which for a read is the item, and an item's key is the message
    /// id (whose base64 holds the sender's phone number). `reason` is the reading error's text
    /// without that answer, scrubbed.
    #[error("idempotency store failed: DynamoDB {operation} failed (unreadable answer): {reason}")]
    Unreadable {
        operation: &'static str,
        reason: String,
    },
}

impl IdempotencyError {
    /// Whether trying again later may succeed. Always: the pipeline does not handle a message
    /// it could not claim, and answers a retry (the webhook's 500, the worker's redelivery).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store { .. } | Self::Unreadable { .. } => true,
        }
    }
}

/// Claims ids with a lease, renews the lease while working, marks ids completed, or releases
/// them so a retry can run. Every call but `claim` succeeds only for the claim's owner.
pub trait IdempotencyStore: Send + Sync {
    /// Claims `id` for `owner` for `lease`: until then nobody else acquires it.
    fn claim<'a>(
        &'a self,
        id: &'a MessageId,
        owner: &'a ClaimToken,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Claim, IdempotencyError>>;
    /// Extends `owner`'s in-progress claim on `id` to `lease` from now; [`Renewal::Lost`]
    /// when the claim is no longer `owner`'s.
    fn renew<'a>(
        &'a self,
        id: &'a MessageId,
        owner: &'a ClaimToken,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Renewal, IdempotencyError>>;
    /// Records `id` as handled, remembered for [`COMPLETED_TTL`], if `owner` still holds it.
    fn complete<'a>(
        &'a self,
        id: &'a MessageId,
        owner: &'a ClaimToken,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>>;
    /// Gives up `owner`'s in-progress claim after a failure worth retrying.
    fn release<'a>(
        &'a self,
        id: &'a MessageId,
        owner: &'a ClaimToken,
    ) -> BoxFuture<'a, Result<(), IdempotencyError>>;
}

/// Implements [`IdempotencyStore`] for a store from its inherent `async fn`s `claim_now`,
/// `renew_now`, `complete_now` and `release_now`, which take the arguments of the trait's
/// methods of the same name and give their results: each trait method boxes the future of
/// its `_now` twin. The `dyn`-compatible signatures are written here once, not in every store.
macro_rules! impl_idempotency_store {
    ($store:ty) => {
        impl $crate::idempotency::IdempotencyStore for $store {
            fn claim<'a>(
                &'a self,
                id: &'a $crate::domain::MessageId,
                owner: &'a $crate::idempotency::ClaimToken,
                lease: ::std::time::Duration,
            ) -> $crate::BoxFuture<
                'a,
                Result<$crate::idempotency::Claim, $crate::idempotency::IdempotencyError>,
            > {
                Box::pin(self.claim_now(id, owner, lease))
            }

            fn renew<'a>(
                &'a self,
                id: &'a $crate::domain::MessageId,
                owner: &'a $crate::idempotency::ClaimToken,
                lease: ::std::time::Duration,
            ) -> $crate::BoxFuture<
                'a,
                Result<$crate::idempotency::Renewal, $crate::idempotency::IdempotencyError>,
            > {
                Box::pin(self.renew_now(id, owner, lease))
            }

            fn complete<'a>(
                &'a self,
                id: &'a $crate::domain::MessageId,
                owner: &'a $crate::idempotency::ClaimToken,
            ) -> $crate::BoxFuture<'a, Result<(), $crate::idempotency::IdempotencyError>> {
                Box::pin(self.complete_now(id, owner))
            }

            fn release<'a>(
                &'a self,
                id: &'a $crate::domain::MessageId,
                owner: &'a $crate::idempotency::ClaimToken,
            ) -> $crate::BoxFuture<'a, Result<(), $crate::idempotency::IdempotencyError>> {
                Box::pin(self.release_now(id, owner))
            }
        }
    };
}
pub(crate) use impl_idempotency_store;

#[cfg(test)]
mod tests {
    use super::ClaimToken;
    use std::collections::HashSet;

    #[test]
    fn claim_tokens_are_distinct() {
        let tokens: HashSet<ClaimToken> = (0..1000).map(|_| ClaimToken::new()).collect();
        assert_eq!(tokens.len(), 1000);
        assert!(tokens.iter().all(|t| t.as_str().len() == 32));
    }
}

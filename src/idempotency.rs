//! Idempotency: a message id is claimed before its agent call, so a redelivered message never
//! reaches the agent twice. [`MemoryIdempotency`] covers one warm process; a durable store
//! (DynamoDB) plugs into the same [`IdempotencyStore`] port.

use crate::BoxFuture;
use crate::message::MessageId;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a completed id is remembered in memory. Meta retries for up to 7 days, but one warm
/// Lambda process rarely lives that long; the bound below keeps memory flat anyway.
pub const MEMORY_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Ids remembered per process (about 100 bytes each).
pub const MEMORY_CAPACITY: usize = 50_000;

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First time: go ahead and handle the message.
    Acquired,
    /// Already handled, or being handled right now: do nothing.
    Duplicate,
}

#[derive(Debug, thiserror::Error)]
#[error("idempotency store failed: {0}")]
pub struct IdempotencyError(pub String);

/// Claims message ids, marks them done, or releases them so a retry can run.
pub trait IdempotencyStore: Send + Sync {
    fn claim<'a>(&'a self, id: &'a MessageId) -> BoxFuture<'a, Result<Claim, IdempotencyError>>;
    fn complete<'a>(&'a self, id: &'a MessageId) -> BoxFuture<'a, Result<(), IdempotencyError>>;
    /// Forgets an in-progress claim after a failure worth retrying.
    fn release<'a>(&'a self, id: &'a MessageId) -> BoxFuture<'a, Result<(), IdempotencyError>>;
}

/// In-process idempotency with a bounded size (oldest forgotten first) and a TTL.
#[derive(Debug)]
pub struct MemoryIdempotency {
    inner: Mutex<Memory>,
    capacity: usize,
    ttl: Duration,
}

#[derive(Debug, Default)]
struct Memory {
    seen: HashMap<MessageId, Instant>,
    order: VecDeque<(MessageId, Instant)>,
}

impl Default for MemoryIdempotency {
    fn default() -> Self {
        Self::new(MEMORY_CAPACITY, MEMORY_TTL)
    }
}

impl MemoryIdempotency {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(Memory::default()),
            capacity: capacity.max(1),
            ttl,
        }
    }

    fn claim_now(&self, id: &MessageId, now: Instant) -> Claim {
        let mut memory = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Forget expired ids and, past capacity, the oldest ones.
        while let Some((old, at)) = memory.order.front().cloned() {
            let expired = now.duration_since(at) >= self.ttl;
            if !expired && memory.order.len() < self.capacity {
                break;
            }
            memory.order.pop_front();
            if memory.seen.get(&old) == Some(&at) {
                memory.seen.remove(&old);
            }
        }
        if memory.seen.contains_key(id) {
            return Claim::Duplicate;
        }
        memory.seen.insert(id.clone(), now);
        memory.order.push_back((id.clone(), now));
        Claim::Acquired
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .seen
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl IdempotencyStore for MemoryIdempotency {
    fn claim<'a>(&'a self, id: &'a MessageId) -> BoxFuture<'a, Result<Claim, IdempotencyError>> {
        Box::pin(async move { Ok(self.claim_now(id, Instant::now())) })
    }

    fn complete<'a>(&'a self, _id: &'a MessageId) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        // A claimed id stays remembered: completion changes nothing in memory.
        Box::pin(async { Ok(()) })
    }

    fn release<'a>(&'a self, id: &'a MessageId) -> BoxFuture<'a, Result<(), IdempotencyError>> {
        Box::pin(async move {
            let mut memory = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            memory.seen.remove(id);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> MessageId {
        MessageId::from(s)
    }

    #[tokio::test]
    async fn second_claim_of_the_same_id_is_a_duplicate() {
        let store = MemoryIdempotency::default();
        assert_eq!(store.claim(&id("a")).await.unwrap(), Claim::Acquired);
        assert_eq!(store.claim(&id("a")).await.unwrap(), Claim::Duplicate);
        assert_eq!(store.claim(&id("b")).await.unwrap(), Claim::Acquired);
    }

    #[tokio::test]
    async fn released_ids_can_be_claimed_again() {
        let store = MemoryIdempotency::default();
        store.claim(&id("a")).await.unwrap();
        store.release(&id("a")).await.unwrap();
        assert_eq!(store.claim(&id("a")).await.unwrap(), Claim::Acquired);
    }

    #[test]
    fn memory_stays_bounded_and_forgets_the_oldest() {
        let store = MemoryIdempotency::new(3, MEMORY_TTL);
        let now = Instant::now();
        for n in 0..10 {
            store.claim_now(&id(&n.to_string()), now);
        }
        assert!(store.len() <= 3);
        assert_eq!(store.claim_now(&id("9"), now), Claim::Duplicate);
        assert_eq!(store.claim_now(&id("0"), now), Claim::Acquired);
    }

    #[test]
    fn expired_ids_are_forgotten() {
        let store = MemoryIdempotency::new(10, Duration::from_secs(60));
        let start = Instant::now();
        store.claim_now(&id("a"), start);
        let later = start + Duration::from_secs(61);
        assert_eq!(store.claim_now(&id("a"), later), Claim::Acquired);
    }
}

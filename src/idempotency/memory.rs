//! In-process idempotency: bounded in size (oldest forgotten first) with lease and TTL.

use super::{COMPLETED_TTL, Claim, ClaimToken, IdempotencyError, Renewal};
use crate::domain::MessageId;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Ids remembered per process (about 100 bytes each).
pub const MEMORY_CAPACITY: usize = 50_000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    InProgress {
        lease_until: Instant,
        owner: ClaimToken,
    },
    Completed,
}

#[derive(Debug, Clone)]
struct Entry {
    state: State,
    /// When the id was first claimed: the key of its place in `order`.
    since: Instant,
}

#[derive(Debug, Default)]
struct Memory {
    entries: HashMap<MessageId, Entry>,
    order: VecDeque<(MessageId, Instant)>,
}

/// Idempotency for one warm process.
#[derive(Debug)]
pub struct MemoryIdempotency {
    inner: Mutex<Memory>,
    capacity: usize,
    ttl: Duration,
}

impl Default for MemoryIdempotency {
    fn default() -> Self {
        Self::new(MEMORY_CAPACITY, COMPLETED_TTL)
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

    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn claim_at(&self, id: &MessageId, owner: &ClaimToken, lease: Duration, now: Instant) -> Claim {
        let mut memory = self.memory();
        // Forget expired ids and, past capacity, the oldest ones.
        while let Some((old, since)) = memory.order.front().cloned() {
            let expired = now.saturating_duration_since(since) >= self.ttl;
            if !expired && memory.order.len() < self.capacity {
                break;
            }
            memory.order.pop_front();
            if memory.entries.get(&old).is_some_and(|e| e.since == since) {
                memory.entries.remove(&old);
            }
        }
        match memory.entries.get_mut(id) {
            Some(Entry {
                state: State::Completed,
                ..
            }) => Claim::Completed,
            Some(Entry {
                state: State::InProgress { lease_until, .. },
                ..
            }) if *lease_until > now => Claim::InProgress,
            Some(entry) => {
                entry.state = State::InProgress {
                    lease_until: now + lease,
                    owner: owner.clone(),
                };
                Claim::Acquired
            }
            None => {
                memory.entries.insert(
                    id.clone(),
                    Entry {
                        state: State::InProgress {
                            lease_until: now + lease,
                            owner: owner.clone(),
                        },
                        since: now,
                    },
                );
                memory.order.push_back((id.clone(), now));
                Claim::Acquired
            }
        }
    }

    /// Extends `owner`'s claim. An expired lease nobody took over is still the owner's: it
    /// was never handed to anyone else, so renewing it is safe.
    fn renew_at(
        &self,
        id: &MessageId,
        owner: &ClaimToken,
        lease: Duration,
        now: Instant,
    ) -> Renewal {
        match self.memory().entries.get_mut(id) {
            Some(Entry {
                state:
                    State::InProgress {
                        lease_until,
                        owner: holder,
                    },
                ..
            }) if holder == owner => {
                *lease_until = now + lease;
                Renewal::Renewed
            }
            _ => Renewal::Lost,
        }
    }

    /// Whether `owner` holds `id` in progress.
    fn holds(memory: &Memory, id: &MessageId, owner: &ClaimToken) -> bool {
        matches!(
            memory.entries.get(id),
            Some(Entry {
                state: State::InProgress { owner: holder, .. },
                ..
            }) if holder == owner
        )
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.memory().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The port's operations, boxed into [`IdempotencyStore`] by `impl_idempotency_store!`.
impl MemoryIdempotency {
    async fn claim_now(
        &self,
        id: &MessageId,
        owner: &ClaimToken,
        lease: Duration,
    ) -> Result<Claim, IdempotencyError> {
        Ok(self.claim_at(id, owner, lease, Instant::now()))
    }

    async fn renew_now(
        &self,
        id: &MessageId,
        owner: &ClaimToken,
        lease: Duration,
    ) -> Result<Renewal, IdempotencyError> {
        Ok(self.renew_at(id, owner, lease, Instant::now()))
    }

    async fn complete_now(
        &self,
        id: &MessageId,
        owner: &ClaimToken,
    ) -> Result<(), IdempotencyError> {
        let mut memory = self.memory();
        if Self::holds(&memory, id, owner)
            && let Some(entry) = memory.entries.get_mut(id)
        {
            entry.state = State::Completed;
        }
        Ok(())
    }

    async fn release_now(
        &self,
        id: &MessageId,
        owner: &ClaimToken,
    ) -> Result<(), IdempotencyError> {
        let mut memory = self.memory();
        if Self::holds(&memory, id, owner) {
            memory.entries.remove(id);
        }
        Ok(())
    }
}

super::impl_idempotency_store!(MemoryIdempotency);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idempotency::IdempotencyStore;

    const LEASE: Duration = Duration::from_secs(60);

    fn id(s: &str) -> MessageId {
        MessageId::from(s)
    }

    #[tokio::test]
    async fn second_claim_is_in_progress_then_completed() {
        let store = MemoryIdempotency::default();
        let (first, second) = (ClaimToken::new(), ClaimToken::new());
        assert_eq!(
            store.claim(&id("a"), &first, LEASE).await.unwrap(),
            Claim::Acquired
        );
        assert_eq!(
            store.claim(&id("a"), &second, LEASE).await.unwrap(),
            Claim::InProgress
        );
        store.complete(&id("a"), &first).await.unwrap();
        assert_eq!(
            store.claim(&id("a"), &second, LEASE).await.unwrap(),
            Claim::Completed
        );
        assert_eq!(
            store.claim(&id("b"), &second, LEASE).await.unwrap(),
            Claim::Acquired
        );
    }

    #[tokio::test]
    async fn released_ids_can_be_claimed_again_but_completed_ones_stay() {
        let store = MemoryIdempotency::default();
        let owner = ClaimToken::new();
        store.claim(&id("a"), &owner, LEASE).await.unwrap();
        store.release(&id("a"), &owner).await.unwrap();
        assert_eq!(
            store.claim(&id("a"), &owner, LEASE).await.unwrap(),
            Claim::Acquired
        );
        store.complete(&id("a"), &owner).await.unwrap();
        store.release(&id("a"), &owner).await.unwrap();
        assert_eq!(
            store.claim(&id("a"), &owner, LEASE).await.unwrap(),
            Claim::Completed
        );
    }

    #[test]
    fn an_expired_lease_is_taken_over() {
        let store = MemoryIdempotency::default();
        let (first, second) = (ClaimToken::new(), ClaimToken::new());
        let start = Instant::now();
        assert_eq!(
            store.claim_at(&id("a"), &first, LEASE, start),
            Claim::Acquired
        );
        assert_eq!(
            store.claim_at(&id("a"), &second, LEASE, start + LEASE / 2),
            Claim::InProgress
        );
        assert_eq!(
            store.claim_at(&id("a"), &second, LEASE, start + LEASE * 2),
            Claim::Acquired
        );
    }

    #[test]
    fn a_renewed_lease_is_not_taken_over() {
        let store = MemoryIdempotency::default();
        let (holder, other) = (ClaimToken::new(), ClaimToken::new());
        let start = Instant::now();
        store.claim_at(&id("a"), &holder, LEASE, start);
        let renewed = start + LEASE * 9 / 10;
        assert_eq!(
            store.renew_at(&id("a"), &holder, LEASE, renewed),
            Renewal::Renewed
        );
        // Past the first lease, within the renewed one.
        assert_eq!(
            store.claim_at(&id("a"), &other, LEASE, start + LEASE * 3 / 2),
            Claim::InProgress
        );
    }

    #[tokio::test]
    async fn a_stale_holder_can_neither_renew_nor_settle_the_new_holders_claim() {
        let store = MemoryIdempotency::default();
        let (stale, current) = (ClaimToken::new(), ClaimToken::new());
        let start = Instant::now();
        store.claim_at(&id("a"), &stale, LEASE, start);
        // The stale holder's lease expired and a redelivery took over.
        assert_eq!(
            store.claim_at(&id("a"), &current, LEASE, start + LEASE * 2),
            Claim::Acquired
        );
        assert_eq!(
            store.renew_at(&id("a"), &stale, LEASE, start + LEASE * 2),
            Renewal::Lost
        );
        store.complete(&id("a"), &stale).await.unwrap();
        store.release(&id("a"), &stale).await.unwrap();
        // Still the current holder's, in progress.
        assert_eq!(
            store.claim_at(&id("a"), &stale, LEASE, start + LEASE * 2),
            Claim::InProgress
        );
        assert_eq!(
            store.renew_at(&id("a"), &current, LEASE, start + LEASE * 2),
            Renewal::Renewed
        );
        store.complete(&id("a"), &current).await.unwrap();
        assert_eq!(
            store.renew_at(&id("a"), &current, LEASE, start + LEASE * 2),
            Renewal::Lost,
            "a completed claim is no longer renewable"
        );
    }

    #[test]
    fn memory_stays_bounded_and_forgets_the_oldest() {
        let store = MemoryIdempotency::new(3, COMPLETED_TTL);
        let owner = ClaimToken::new();
        let now = Instant::now();
        for n in 0..10 {
            store.claim_at(&id(&n.to_string()), &owner, LEASE, now);
        }
        assert!(store.len() <= 3);
        assert_eq!(
            store.claim_at(&id("9"), &owner, LEASE, now),
            Claim::InProgress
        );
        assert_eq!(
            store.claim_at(&id("0"), &owner, LEASE, now),
            Claim::Acquired
        );
    }

    #[test]
    fn expired_ids_are_forgotten() {
        let store = MemoryIdempotency::new(10, Duration::from_secs(60));
        let owner = ClaimToken::new();
        let start = Instant::now();
        store.claim_at(&id("a"), &owner, Duration::from_secs(1), start);
        let later = start + Duration::from_secs(61);
        assert_eq!(
            store.claim_at(&id("a"), &owner, LEASE, later),
            Claim::Acquired
        );
    }
}

//! In-process sessions (`SESSIONS_TABLE` unset): the same semantics as the DynamoDB table
//! (versioned conditional writes, expiry, the same encoded state and size limit) for one warm
//! process, bounded in size.

use super::{
    Session, SessionError, SessionKey, SessionStore, VersionedStore, Written, decode_state,
    now_unix, update_with,
};
use crate::BoxFuture;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// Sessions kept per process; beyond it the one closest to expiry is forgotten first.
pub const MEMORY_CAPACITY: usize = 10_000;

#[derive(Debug, Clone)]
struct Stored {
    version: u64,
    agent: Option<String>,
    environment: Option<String>,
    last_user_message_at: Option<i64>,
    /// The encoded history, pending replies and menu, as the table's `state` attribute.
    state: String,
    /// Unix seconds, as the table's TTL attribute.
    expires_at: i64,
}

/// Sessions of one warm process.
#[derive(Debug)]
pub struct MemorySessions {
    items: Mutex<HashMap<String, Stored>>,
    ttl: Duration,
    capacity: usize,
}

impl MemorySessions {
    /// Sessions kept for `ttl` after their last write, at most [`MEMORY_CAPACITY`].
    pub fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, MEMORY_CAPACITY)
    }

    pub fn with_capacity(ttl: Duration, capacity: usize) -> Self {
        Self {
            items: Mutex::new(HashMap::new()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    fn items(&self) -> std::sync::MutexGuard<'_, HashMap<String, Stored>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When `key`'s session expires (unix seconds), as the table's `expires_at`.
    pub fn expires_at(&self, key: &SessionKey) -> Option<i64> {
        self.items()
            .get(key.as_str())
            .map(|stored| stored.expires_at)
    }

    /// How many sessions are held (expired ones included until they are evicted).
    pub fn len(&self) -> usize {
        self.items().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read_now(&self, key: &SessionKey, now: i64) -> Session {
        let items = self.items();
        let Some(stored) = items.get(key.as_str()) else {
            return Session::default();
        };
        if stored.expires_at <= now {
            // Expired but not yet evicted, as DynamoDB's TTL deletes late: a fresh session
            // that still writes over the item's version.
            return Session {
                version: stored.version,
                ..Session::default()
            };
        }
        let mut session = Session {
            agent: stored.agent.clone(),
            environment: stored.environment.clone(),
            last_user_message_at: stored.last_user_message_at,
            version: stored.version,
            ..Session::default()
        };
        decode_state(&mut session, &stored.state);
        session
    }

    fn write_now(
        &self,
        key: &SessionKey,
        session: &Session,
        state: &str,
        expires_at: i64,
        now: i64,
    ) -> Written {
        let mut items = self.items();
        let stored_version = items.get(key.as_str()).map_or(0, |stored| stored.version);
        if stored_version != session.version {
            return Written::Conflict;
        }
        if !items.contains_key(key.as_str()) && items.len() >= self.capacity {
            items.retain(|_, stored| stored.expires_at > now);
            if items.len() >= self.capacity
                && let Some(oldest) = items
                    .iter()
                    .min_by_key(|(_, stored)| stored.expires_at)
                    .map(|(key, _)| key.clone())
            {
                items.remove(&oldest);
            }
        }
        items.insert(
            key.as_str().to_owned(),
            Stored {
                version: session.version + 1,
                agent: session.agent.clone(),
                environment: session.environment.clone(),
                last_user_message_at: session.last_user_message_at,
                state: state.to_owned(),
                expires_at,
            },
        );
        Written::Stored
    }
}

impl VersionedStore for MemorySessions {
    fn read<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<Session, SessionError>> {
        Box::pin(async move { Ok(self.read_now(key, now_unix())) })
    }

    fn write<'a>(
        &'a self,
        key: &'a SessionKey,
        session: &'a Session,
        state: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<Written, SessionError>> {
        Box::pin(async move { Ok(self.write_now(key, session, state, expires_at, now_unix())) })
    }
}

impl SessionStore for MemorySessions {
    fn load<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<Session, SessionError>> {
        self.read(key)
    }

    fn update<'a>(
        &'a self,
        key: &'a SessionKey,
        change: &'a mut (dyn FnMut(&mut Session) + Send),
    ) -> BoxFuture<'a, Result<Session, SessionError>> {
        Box::pin(update_with(self, key, change, self.ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{PhoneNumberId, Sender};
    use crate::sessions::Turn;

    fn key(phone: &str) -> SessionKey {
        SessionKey::new(
            &PhoneNumberId::from("1065"),
            &Sender {
                phone: Some(phone.into()),
                ..Sender::default()
            },
        )
        .unwrap()
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[tokio::test]
    async fn an_expired_session_reads_as_new_and_is_written_over() {
        let store = MemorySessions::new(DAY);
        let key = key("14155551234");
        store
            .update(&key, &mut |s| s.agent = Some("k8s".into()))
            .await
            .unwrap();
        // Expire it in place, as a TTL deletion that has not happened yet.
        store.items().get_mut(key.as_str()).unwrap().expires_at = now_unix() - 1;
        let read = store.load(&key).await.unwrap();
        assert_eq!(read.agent, None);
        assert_eq!(
            read.version, 1,
            "the item's version, for the conditional write"
        );
        let written = store
            .update(&key, &mut |s| s.push_turn(Turn::user("hi", 0), 10))
            .await
            .unwrap();
        assert_eq!(written.version, 2);
        assert_eq!(written.agent, None);
    }

    #[tokio::test]
    async fn a_stale_version_is_a_conflict() {
        let store = MemorySessions::new(DAY);
        let key = key("14155551234");
        let stale = store.load(&key).await.unwrap();
        store
            .update(&key, &mut |s| s.agent = Some("k8s".into()))
            .await
            .unwrap();
        assert_eq!(store.write_now(&key, &stale, "{}", 0, 0), Written::Conflict);
    }

    #[tokio::test]
    async fn memory_stays_bounded() {
        let store = MemorySessions::with_capacity(DAY, 3);
        for n in 0..10 {
            store
                .update(&key(&format!("1415555{n:04}")), &mut |s| {
                    s.record_user_message(n)
                })
                .await
                .unwrap();
        }
        assert_eq!(store.len(), 3);
        let last = store.load(&key("14155550009")).await.unwrap();
        assert_eq!(last.last_user_message_at, Some(9));
    }
}

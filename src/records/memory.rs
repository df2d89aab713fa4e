//! An in-process records table (its variable unset, local runs): the same semantics as
//! [`super::DynamoRecords`] for one process. Records are versioned, written only when the
//! version is still the one read, and read as absent once their `expires_at` has passed (an
//! expired record may then be written over by a create, `expected: None`, as DynamoDB allows
//! while its TTL has not yet deleted the item). Expired records are dropped when the map grows
//! past [`PURGE_AT`]; what is live is bounded by the capability that writes them.

use super::{Put, RecordStore, StoreError, Versioned};
use crate::BoxFuture;
use crate::sessions::now_unix;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Records held before a write first drops the expired ones.
pub const PURGE_AT: usize = 4_096;

/// A records table of one process.
#[derive(Debug, Default)]
pub struct MemoryRecords {
    records: Mutex<HashMap<String, Versioned>>,
}

impl MemoryRecords {
    pub fn new() -> Self {
        Self::default()
    }

    fn records(&self) -> MutexGuard<'_, HashMap<String, Versioned>> {
        // A panic while holding the lock leaves whole records (every write is one insert).
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get_at(&self, key: &str, now: i64) -> Option<Versioned> {
        self.records()
            .get(key)
            .filter(|record| record.expires_at > now)
            .cloned()
    }

    fn put_at(
        &self,
        key: &str,
        doc: &serde_json::Value,
        expected: Option<u64>,
        expires_at: i64,
        now: i64,
    ) -> Result<Put, StoreError> {
        let version = next_version(expected)?;
        let mut records = self.records();
        let current = records.get(key);
        // As the table's conditions: a create needs no record or an expired one; an update
        // needs the stored version to be the one read.
        let writable = match expected {
            None => current.is_none_or(|record| record.expires_at <= now),
            Some(expected) => current.is_some_and(|record| record.version == expected),
        };
        if !writable {
            return Ok(Put::Conflict);
        }
        if records.len() >= PURGE_AT && !records.contains_key(key) {
            records.retain(|_, record| record.expires_at > now);
        }
        records.insert(
            key.to_owned(),
            Versioned {
                doc: doc.clone(),
                version,
                expires_at,
            },
        );
        Ok(Put::Stored)
    }
}

/// The version a write stores: 1 for a create, one more than the version read otherwise.
pub(super) fn next_version(expected: Option<u64>) -> Result<u64, StoreError> {
    match expected {
        None => Ok(1),
        Some(version) => version.checked_add(1).ok_or_else(|| StoreError::Corrupt {
            reason: "`version` at its largest value".to_owned(),
        }),
    }
}

impl RecordStore for MemoryRecords {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>, StoreError>> {
        Box::pin(async move { Ok(self.get_at(key, now_unix())) })
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        doc: &'a serde_json::Value,
        expected: Option<u64>,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<Put, StoreError>> {
        Box::pin(async move { self.put_at(key, doc, expected, expires_at, now_unix()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    fn later() -> i64 {
        now_unix() + 3_600
    }

    #[tokio::test]
    async fn a_record_is_created_read_and_updated() {
        let store = MemoryRecords::new();
        assert_eq!(store.get(KEY).await.unwrap(), None);
        let expires_at = later();
        let put = store
            .put(KEY, &json!({"state": "paged"}), None, expires_at)
            .await;
        assert_eq!(put.unwrap(), Put::Stored);
        assert_eq!(
            store.get(KEY).await.unwrap(),
            Some(Versioned {
                doc: json!({"state": "paged"}),
                version: 1,
                expires_at,
            })
        );

        let put = store
            .put(
                KEY,
                &json!({"state": "acknowledged"}),
                Some(1),
                expires_at + 60,
            )
            .await;
        assert_eq!(put.unwrap(), Put::Stored);
        let record = store.get(KEY).await.unwrap().unwrap();
        assert_eq!(record.doc, json!({"state": "acknowledged"}));
        assert_eq!(record.version, 2);
        assert_eq!(record.expires_at, expires_at + 60);
    }

    #[tokio::test]
    async fn a_write_on_a_stale_version_conflicts_and_changes_nothing() {
        let store = MemoryRecords::new();
        store.put(KEY, &json!(1), None, later()).await.unwrap();
        store.put(KEY, &json!(2), Some(1), later()).await.unwrap();
        let put = store.put(KEY, &json!("stale"), Some(1), later()).await;
        assert_eq!(put.unwrap(), Put::Conflict);
        let put = store.put(KEY, &json!("ahead"), Some(3), later()).await;
        assert_eq!(put.unwrap(), Put::Conflict);
        let record = store.get(KEY).await.unwrap().unwrap();
        assert_eq!((record.doc, record.version), (json!(2), 2));
    }

    #[tokio::test]
    async fn an_update_of_a_missing_record_conflicts() {
        let store = MemoryRecords::new();
        let put = store.put(KEY, &json!(1), Some(1), later()).await;
        assert_eq!(put.unwrap(), Put::Conflict);
        assert_eq!(store.get(KEY).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_create_is_refused_while_a_record_exists() {
        let store = MemoryRecords::new();
        store
            .put(KEY, &json!("first"), None, later())
            .await
            .unwrap();
        let put = store.put(KEY, &json!("second"), None, later()).await;
        assert_eq!(put.unwrap(), Put::Conflict);
        assert_eq!(store.get(KEY).await.unwrap().unwrap().doc, json!("first"));
    }

    #[tokio::test]
    async fn an_expired_record_reads_as_absent_and_is_created_again() {
        let store = MemoryRecords::new();
        let now = now_unix();
        // Expired from its last second on, as the table reads it (`expires_at <= now`).
        store.put_at(KEY, &json!("old"), None, now, now).unwrap();
        assert_eq!(store.get_at(KEY, now), None);
        assert_eq!(store.get_at(KEY, now - 1).unwrap().doc, json!("old"));

        let put = store.put_at(KEY, &json!("new"), None, now + 60, now);
        assert_eq!(put.unwrap(), Put::Stored);
        let record = store.get_at(KEY, now).unwrap();
        assert_eq!((record.doc, record.version), (json!("new"), 1));
    }

    #[tokio::test]
    async fn records_are_kept_apart_by_key() {
        let store = MemoryRecords::new();
        store.put("a", &json!("a"), None, later()).await.unwrap();
        store.put("b", &json!("b"), None, later()).await.unwrap();
        assert_eq!(store.get("a").await.unwrap().unwrap().doc, json!("a"));
        assert_eq!(store.get("b").await.unwrap().unwrap().doc, json!("b"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_two_racing_writes_on_one_version_exactly_one_is_stored() {
        let store = Arc::new(MemoryRecords::new());
        store.put(KEY, &json!(0), None, later()).await.unwrap();
        for round in 1..=20_u64 {
            let racer = |name: &'static str| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    store
                        .put(KEY, &json!(name), Some(round), later())
                        .await
                        .unwrap()
                })
            };
            let (a, b) = tokio::join!(racer("a"), racer("b"));
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!(
                matches!(
                    (a, b),
                    (Put::Stored, Put::Conflict) | (Put::Conflict, Put::Stored)
                ),
                "round {round}: {a:?} and {b:?}"
            );
            let record = store.get(KEY).await.unwrap().unwrap();
            assert_eq!(record.version, round + 1);
            let winner = if a == Put::Stored { "a" } else { "b" };
            assert_eq!(record.doc, json!(winner));
        }
    }

    #[tokio::test]
    async fn the_largest_version_cannot_be_written_past() {
        let store = MemoryRecords::new();
        let error = store
            .put(KEY, &json!(1), Some(u64::MAX), later())
            .await
            .unwrap_err();
        assert!(matches!(&error, StoreError::Corrupt { reason } if reason.contains("version")));
        assert!(!error.is_retryable());
    }

    #[test]
    fn expired_records_are_dropped_once_the_map_is_large() {
        let store = MemoryRecords::new();
        let now = now_unix();
        for n in 0..PURGE_AT {
            store
                .put_at(&n.to_string(), &json!(n), None, now, now)
                .unwrap();
        }
        store
            .put_at("live", &json!(1), None, now + 60, now)
            .unwrap();
        let records = store.records();
        assert_eq!(records.len(), 1, "only the live record is left");
        assert!(records.contains_key("live"));
    }
}

//! The alerts table as a port: versioned JSON records under string keys, written only when
//! nobody wrote since they were read (conditional writes), kept until their `expires_at`.
//! What the records mean is the paging engine's business; the store only keeps them.

use crate::BoxFuture;
use crate::error::BoxError;

/// A record as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub doc: serde_json::Value,
    /// 1 for a new record, one more per write.
    pub version: u64,
    /// Unix seconds after which the record reads as absent (and the table's TTL deletes it).
    pub expires_at: i64,
}

/// The answer to a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Stored with the next version.
    Stored,
    /// Someone else wrote first (or the record exists when `expected` was `None`): read again.
    Conflict,
}

/// Keeps the paging engine's records.
pub trait AlertStore: Send + Sync {
    /// The record under `key` (a consistent read); `None` when there is none or it expired.
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>, StoreError>>;

    /// Stores `doc` under `key` with version `expected + 1` (1 when `expected` is `None`),
    /// only if the stored version is still `expected` (`None`: no record, or an expired one).
    fn put<'a>(
        &'a self,
        key: &'a str,
        doc: &'a serde_json::Value,
        expected: Option<u64>,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<Put, StoreError>>;
}

/// Why the alerts table could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// DynamoDB failed: `code` is its error code (`unreachable` without an answer); the SDK
    /// error is kept boxed (it may quote the key, a hash, never a phone number or text).
    #[error("alerts table failed: {code}")]
    Table {
        code: String,
        retryable: bool,
        #[source]
        source: BoxError,
    },
    /// A stored item is not a record (missing or mistyped attributes, JSON that does not
    /// parse): `reason` says which, without its content.
    #[error("alerts table item unreadable: {reason}")]
    Corrupt { reason: String },
}

impl StoreError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Table { retryable, .. } => *retryable,
            Self::Corrupt { .. } => false,
        }
    }
}

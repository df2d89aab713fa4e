//! A capability's table as a port: versioned JSON records under string keys, written only
//! when nobody wrote since they were read (conditional writes), kept until their `expires_at`.
//! What the records mean is the capability's business (paging's incidents, approvals' requests);
//! the store only keeps them.
//!
//! - [`RecordStore`]: the port, with [`DynamoRecords`] (`ALERTS_TABLE`, `APPROVALS_TABLE`) and
//!   [`MemoryRecords`] (the variable unset: one process).
//! - [`Records`]: typed reads, creates and read-modify-write updates over a store, retried on
//!   conflict.

mod dynamodb;
mod memory;

pub use dynamodb::DynamoRecords;
pub use memory::MemoryRecords;

use crate::BoxFuture;
use crate::error::BoxError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// Read-modify-write attempts on one record before giving up (conflicts only).
const UPDATE_ATTEMPTS: u32 = 8;

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

/// Keeps a capability's records.
pub trait RecordStore: Send + Sync {
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

/// Why a records table could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// DynamoDB failed: `code` is its error code (`unreachable` without an answer); the SDK
    /// error is kept boxed (it may quote the key, a hash, never a phone number or text).
    #[error("records table failed: {code}")]
    Table {
        code: String,
        retryable: bool,
        #[source]
        source: BoxError,
    },
    /// A stored item is not a record (missing or mistyped attributes, JSON that does not
    /// parse): `reason` says which, without its content.
    #[error("records table item unreadable: {reason}")]
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

/// Why a typed read or write of a record failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Others kept writing the record between our read and write.
    #[error("record kept changing under us ({attempts} attempts)")]
    Conflict { attempts: u32 },
    /// A record could not be encoded (serde's error quotes no value when writing).
    #[error("record not encodable: {0}")]
    Encode(#[source] serde_json::Error),
}

impl RecordError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(error) => error.is_retryable(),
            Self::Conflict { .. } => true,
            Self::Encode(_) => false,
        }
    }
}

/// Typed access to a [`RecordStore`]: records are JSON documents of `serde` types; `what`
/// names the table in log lines (`alerts`, `approvals`).
#[derive(Clone)]
pub struct Records {
    store: Arc<dyn RecordStore>,
    what: &'static str,
}

impl Records {
    pub fn new(store: Arc<dyn RecordStore>, what: &'static str) -> Self {
        Self { store, what }
    }

    /// The record under `key`; `None` when absent, expired or unreadable (logged: a record
    /// this version cannot read is treated as absent, never as a failure that blocks a job).
    pub async fn read<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, RecordError> {
        let Some(record) = self.store.get(key).await? else {
            return Ok(None);
        };
        match serde_json::from_value(record.doc) {
            Ok(value) => Ok(Some(value)),
            Err(error) => {
                tracing::error!(table = self.what, error = %crate::redact::serde_error(&error), "record unreadable: treated as absent");
                Ok(None)
            }
        }
    }

    /// Creates the record under `key`; a record already there is a [`RecordError::Conflict`].
    pub async fn create<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        expires_at: i64,
    ) -> Result<(), RecordError> {
        let doc = serde_json::to_value(value).map_err(RecordError::Encode)?;
        match self.store.put(key, &doc, None, expires_at).await? {
            Put::Stored => Ok(()),
            Put::Conflict => Err(RecordError::Conflict { attempts: 1 }),
        }
    }

    /// Read-modify-write of one record: `change` gets the record (`None`: absent, expired or
    /// unreadable) and returns what to write (`None`: nothing) and the result; retried on
    /// conflict, so it may run more than once. Of writers racing on one record, each sees the
    /// others' writes: exactly one of them makes a given change.
    pub async fn update<T, R>(
        &self,
        key: &str,
        mut change: impl FnMut(Option<T>) -> (Option<T>, R),
        expires_at: impl Fn(&T) -> i64,
    ) -> Result<R, RecordError>
    where
        T: Serialize + DeserializeOwned,
    {
        for attempt in 1..=UPDATE_ATTEMPTS {
            let stored = self.store.get(key).await?;
            let version = stored.as_ref().map(|record| record.version);
            let current = stored.and_then(|record| serde_json::from_value(record.doc).ok());
            let (write, result) = change(current);
            let Some(value) = write else {
                return Ok(result);
            };
            let doc = serde_json::to_value(&value).map_err(RecordError::Encode)?;
            match self
                .store
                .put(key, &doc, version, expires_at(&value))
                .await?
            {
                Put::Stored => return Ok(result),
                Put::Conflict if attempt < UPDATE_ATTEMPTS => {
                    let wait = crate::backoff::delay(
                        Duration::from_millis(10),
                        attempt,
                        Duration::from_millis(200),
                        crate::backoff::Spread::UpperHalf,
                        crate::backoff::random(),
                    );
                    tokio::time::sleep(wait).await;
                }
                Put::Conflict => {}
            }
        }
        Err(RecordError::Conflict {
            attempts: UPDATE_ATTEMPTS,
        })
    }
}

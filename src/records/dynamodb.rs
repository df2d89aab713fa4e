//! A capability's records in DynamoDB (`ALERTS_TABLE`, `APPROVALS_TABLE`), shared by every
//! webhook and worker instance.
//!
//! One item per record. Table: partition key `id` (S, the record's key); TTL attribute
//! `expires_at` (N, epoch seconds). Attributes: `doc` (S, the record's JSON text, written and
//! read whole), `version` (N, 1 for a new record, one more per write). Every write is a
//! conditional `PutItem`: a create (`expected: None`) on
//! `attribute_not_exists(id) OR expires_at <= :now`, an update on `version = :expected`; a
//! failed condition is [`Put::Conflict`]. Reads are consistent. An item whose `expires_at`
//! has passed reads as absent (DynamoDB's TTL deletes expired items up to a few days late),
//! and a create writes over it with version 1.
//!
//! Size: DynamoDB refuses items over 400 KB (`ValidationException`, a
//! [`StoreError::Table`] that is not retryable). Each capability bounds what it stores (capped
//! texts and lists), so a record stays far below that.

use super::memory::next_version;
use super::{Put, RecordStore, StoreError, Versioned};
use crate::BoxFuture;
use crate::redact;
use crate::sessions::now_unix;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

use crate::aws::DYNAMODB_RETRYABLE_CODES as RETRYABLE_CODES;
/// Longest DynamoDB error code kept (theirs are at most ~50 characters).
const MAX_CODE_CHARS: usize = 100;

/// A capability's records in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoRecords {
    client: Client,
    table: String,
}

impl DynamoRecords {
    /// Records in `table` (see the module docs for its shape).
    pub fn new(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: Client::new(config),
            table: table.into(),
        }
    }

    async fn get_now(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| failure("read", error))?;
        match output.item() {
            None => Ok(None),
            Some(item) => record_from(item, now_unix()),
        }
    }

    async fn put_now(
        &self,
        key: &str,
        doc: &serde_json::Value,
        expected: Option<u64>,
        expires_at: i64,
    ) -> Result<Put, StoreError> {
        let version = next_version(expected)?;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(key.to_owned()))
            .item("doc", AttributeValue::S(doc.to_string()))
            .item("version", number(version))
            .item("expires_at", number(expires_at));
        let put = match expected {
            None => put
                .condition_expression("attribute_not_exists(id) OR expires_at <= :now")
                .expression_attribute_values(":now", number(now_unix())),
            Some(expected) => put
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", number(expected)),
        };
        match put.send().await {
            Ok(_) => Ok(Put::Stored),
            Err(SdkError::ServiceError(error))
                if error.err().is_conditional_check_failed_exception() =>
            {
                Ok(Put::Conflict)
            }
            Err(error) => Err(failure("write", error)),
        }
    }
}

/// A stored item as a record (see the module docs); `None` once expired.
fn record_from(
    item: &HashMap<String, AttributeValue>,
    now: i64,
) -> Result<Option<Versioned>, StoreError> {
    let number = |name: &str| item.get(name).and_then(|value| value.as_n().ok());
    let corrupt = |reason: &str| StoreError::Corrupt {
        reason: reason.to_owned(),
    };
    let expires_at = number("expires_at")
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| corrupt("no readable `expires_at` attribute (N, epoch seconds)"))?;
    if expires_at <= now {
        return Ok(None);
    }
    let version = number("version")
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| corrupt("no readable `version` attribute (N, a whole number)"))?;
    let text = item
        .get("doc")
        .and_then(|value| value.as_s().ok())
        .ok_or_else(|| corrupt("no `doc` attribute (S, JSON text)"))?;
    // serde's parse error quotes what it read: not kept.
    let doc = serde_json::from_str(text).map_err(|_| corrupt("the `doc` attribute is not JSON"))?;
    Ok(Some(Versioned {
        doc,
        version,
        expires_at,
    }))
}

impl RecordStore for DynamoRecords {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Versioned>, StoreError>> {
        Box::pin(self.get_now(key))
    }

    fn put<'a>(
        &'a self,
        key: &'a str,
        doc: &'a serde_json::Value,
        expected: Option<u64>,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<Put, StoreError>> {
        Box::pin(self.put_now(key, doc, expected, expires_at))
    }
}

fn number(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// DynamoDB's answer could not be read. It stands in for the SDK's error, which holds the raw
/// answer: for a read, the item, whose record may name people.
#[derive(Debug, thiserror::Error)]
#[error("unreadable answer: {0}")]
struct UnreadableAnswer(String);

/// A failed call as a [`StoreError::Table`] (`R`: the raw answer, `HttpResponse`), logged with
/// the operation and the error code (never the key, which may name a person, nor the item).
fn failure<E, R>(operation: &'static str, error: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (code, retryable) = crate::aws::failure_code(&error, RETRYABLE_CODES);
    let code = redact::scrub_within(&code, MAX_CODE_CHARS);
    tracing::warn!(operation, code = %code, retryable, "DynamoDB records table call failed");
    let source: crate::error::BoxError = match error {
        SdkError::ResponseError(_) => Box::new(UnreadableAnswer(redact::scrub(
            &crate::error::sources(&error),
        ))),
        error => Box::new(error),
    };
    StoreError::Table {
        code,
        retryable,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, AttributeValue)]) -> HashMap<String, AttributeValue> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect()
    }

    fn text(value: &str) -> AttributeValue {
        AttributeValue::S(value.to_owned())
    }

    #[test]
    fn an_item_reads_as_its_record() {
        let record = record_from(
            &item(&[
                ("id", text("k")),
                ("doc", text(r#"{"tier":1,"paged":["+14155551234"]}"#)),
                ("version", number(3)),
                ("expires_at", number(2_000)),
            ]),
            1_000,
        )
        .unwrap();
        assert_eq!(
            record,
            Some(Versioned {
                doc: serde_json::json!({"tier": 1, "paged": ["+14155551234"]}),
                version: 3,
                expires_at: 2_000,
            })
        );
    }

    #[test]
    fn an_item_expired_by_now_reads_as_absent() {
        let expired = item(&[
            ("doc", text("{}")),
            ("version", number(3)),
            ("expires_at", number(1_000)),
        ]);
        assert_eq!(record_from(&expired, 1_000).unwrap(), None);
        assert_eq!(record_from(&expired, 999).unwrap().unwrap().version, 3);
    }

    #[test]
    fn a_malformed_item_is_corrupt_and_the_reason_names_the_attribute_only() {
        let cases = [
            (
                item(&[("doc", text("{}")), ("version", number(1))]),
                "`expires_at`",
            ),
            (
                item(&[
                    ("doc", text("{}")),
                    ("version", number(1)),
                    ("expires_at", text("2000")),
                ]),
                "`expires_at`",
            ),
            (
                item(&[("doc", text("{}")), ("expires_at", number(2_000))]),
                "`version`",
            ),
            (
                item(&[
                    ("doc", text("{}")),
                    ("version", number(-1)),
                    ("expires_at", number(2_000)),
                ]),
                "`version`",
            ),
            (
                item(&[("version", number(1)), ("expires_at", number(2_000))]),
                "`doc`",
            ),
            (
                item(&[
                    ("doc", AttributeValue::N("1".into())),
                    ("version", number(1)),
                    ("expires_at", number(2_000)),
                ]),
                "`doc`",
            ),
            (
                item(&[
                    ("doc", text("call +14155551234 {")),
                    ("version", number(1)),
                    ("expires_at", number(2_000)),
                ]),
                "`doc`",
            ),
        ];
        for (item, attribute) in cases {
            let error = record_from(&item, 1_000).unwrap_err();
            let StoreError::Corrupt { reason } = &error else {
                panic!("{error:?}");
            };
            assert!(reason.contains(attribute), "{reason}");
            assert!(!error.to_string().contains("4155551234"), "{error}");
            assert!(!error.is_retryable());
        }
    }
}

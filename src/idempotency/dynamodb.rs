//! `IDEMPOTENCY_TABLE`: claims in DynamoDB, shared by every webhook and worker instance.
//! Table: partition key `id` (S); TTL attribute `expires_at` (epoch seconds). A claim in
//! progress also holds `owner` (its [`ClaimToken`]) and `lease_until` (epoch milliseconds).
//! A claim is a conditional write: it succeeds only when the id is new or its lease expired,
//! and records its owner; renewing, completing and releasing are conditional on that owner.

use super::{COMPLETED_TTL, Claim, ClaimToken, IdempotencyError, Renewal};
use crate::domain::MessageId;
use crate::redact;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const IN_PROGRESS: &str = "in_progress";
const COMPLETED: &str = "completed";
/// The condition of every write by a claim's holder: the claim is still in progress and ours.
const HELD_BY_OWNER: &str = "#state = :in_progress AND #owner = :owner";

/// Claims stored in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoIdempotency {
    client: Client,
    table: String,
}

impl DynamoIdempotency {
    pub fn new(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self {
            client: Client::new(config),
            table: table.into(),
        }
    }

    async fn claim_now(
        &self,
        id: &MessageId,
        owner: &ClaimToken,
        lease: Duration,
    ) -> Result<Claim, IdempotencyError> {
        let now = now();
        let lease_until = now.as_millis() + lease.as_millis();
        let expires_at = now.as_secs() + COMPLETED_TTL.as_secs();
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(id.0.clone()))
            .item("state", AttributeValue::S(IN_PROGRESS.to_owned()))
            .item("lease_until", number(lease_until))
            .item("owner", AttributeValue::S(owner.as_str().to_owned()))
            .item("expires_at", number(expires_at))
            .condition_expression(
                "attribute_not_exists(id) OR (#state = :in_progress AND lease_until < :now)",
            )
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.to_owned()))
            .expression_attribute_values(":now", number(now.as_millis()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(Claim::Acquired),
            Err(SdkError::ServiceError(error))
                if error.err().is_conditional_check_failed_exception() =>
            {
                self.state_of(id).await
            }
            Err(error) => Err(failure("claim", id, error)),
        }
    }

    /// After a lost race: is the holder still working, or done?
    async fn state_of(&self, id: &MessageId) -> Result<Claim, IdempotencyError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.0.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| failure("read", id, error))?;
        let state = item
            .item()
            .and_then(|item| item.get("state"))
            .and_then(|value| value.as_s().ok())
            .map(String::as_str);
        Ok(match state {
            Some(COMPLETED) => Claim::Completed,
            // Still in progress, or deleted/expired in between: let the caller retry later.
            _ => Claim::InProgress,
        })
    }

    async fn renew_now(
        &self,
        id: &MessageId,
        owner: &ClaimToken,
        lease: Duration,
    ) -> Result<Renewal, IdempotencyError> {
        let lease_until = now().as_millis() + lease.as_millis();
        let renewed = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.0.clone()))
            .update_expression("SET lease_until = :lease_until")
            .condition_expression(HELD_BY_OWNER)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.to_owned()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.as_str().to_owned()))
            .expression_attribute_values(":lease_until", number(lease_until))
            .send()
            .await;
        match renewed {
            Ok(_) => Ok(Renewal::Renewed),
            // Completed, taken over by someone else, or gone.
            Err(SdkError::ServiceError(error))
                if error.err().is_conditional_check_failed_exception() =>
            {
                Ok(Renewal::Lost)
            }
            Err(error) => Err(failure("renew", id, error)),
        }
    }

    async fn complete_now(
        &self,
        id: &MessageId,
        owner: &ClaimToken,
    ) -> Result<(), IdempotencyError> {
        let expires_at = now().as_secs() + COMPLETED_TTL.as_secs();
        let completed = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.0.clone()))
            .update_expression(
                "SET #state = :completed, expires_at = :expires_at REMOVE lease_until, #owner",
            )
            .condition_expression(HELD_BY_OWNER)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":completed", AttributeValue::S(COMPLETED.to_owned()))
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.to_owned()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.as_str().to_owned()))
            .expression_attribute_values(":expires_at", number(expires_at))
            .send()
            .await;
        match completed {
            Ok(_) => Ok(()),
            // Someone else's claim now (ours expired and was taken over), or already completed:
            // theirs to settle.
            Err(SdkError::ServiceError(error))
                if error.err().is_conditional_check_failed_exception() =>
            {
                tracing::warn!(message_id = %id, "claim no longer ours when completing: left to its holder");
                Ok(())
            }
            Err(error) => Err(failure("complete", id, error)),
        }
    }

    async fn release_now(
        &self,
        id: &MessageId,
        owner: &ClaimToken,
    ) -> Result<(), IdempotencyError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.0.clone()))
            .condition_expression(HELD_BY_OWNER)
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":in_progress", AttributeValue::S(IN_PROGRESS.to_owned()))
            .expression_attribute_values(":owner", AttributeValue::S(owner.as_str().to_owned()))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            // Already completed, someone else's, or gone: nothing of ours to release.
            Err(SdkError::ServiceError(error))
                if error.err().is_conditional_check_failed_exception() =>
            {
                Ok(())
            }
            Err(error) => Err(failure("release", id, error)),
        }
    }
}

super::impl_idempotency_store!(DynamoIdempotency);

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn number(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A failed DynamoDB call as the store's error (`R`: the raw answer, `HttpResponse`).
fn failure<E, R>(operation: &'static str, id: &MessageId, error: SdkError<E, R>) -> IdempotencyError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = error.code().unwrap_or("unknown").to_owned();
    tracing::warn!(message_id = %id, operation, code, "DynamoDB idempotency call failed");
    match error {
        // The raw answer (for a read, the item with the message id) stays out: only what
        // went wrong reading it, scrubbed.
        SdkError::ResponseError(_) => IdempotencyError::Unreadable {
            operation,
            reason: redact::scrub(&crate::error::sources(&error)),
        },
        error => IdempotencyError::Store {
            operation,
            code,
            source: Box::new(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_dynamodb::operation::get_item::GetItemError;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use std::error::Error as _;

    const WAMID: &str = "wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQzQUI1RjE0QTgwRjk2RkE1NjlDNgA=";

    #[test]
    fn a_failed_call_keeps_the_sdk_error_as_its_source() {
        let id = MessageId::from(WAMID);
        let error = failure(
            "claim",
            &id,
            SdkError::<PutItemError, String>::dispatch_failure(ConnectorError::io(
                "connection refused".into(),
            )),
        );
        let text = error.to_string();
        assert!(
            text.starts_with(
                "idempotency store failed: DynamoDB claim failed (unknown): dispatch failure"
            ),
            "{text}"
        );
        assert!(error.is_retryable());
        let IdempotencyError::Store {
            operation, code, ..
        } = &error
        else {
            panic!("expected Store, got {error:?}");
        };
        assert_eq!((*operation, code.as_str()), ("claim", "unknown"));
        let sdk = error
            .source()
            .and_then(|s| s.downcast_ref::<SdkError<PutItemError, String>>())
            .expect("the SDK's error, typed");
        assert!(matches!(sdk, SdkError::DispatchFailure(_)));

        let throttled = failure(
            "renew",
            &id,
            SdkError::<PutItemError, String>::service_error(
                PutItemError::generic(
                    ErrorMetadata::builder()
                        .code("ProvisionedThroughputExceededException")
                        .build(),
                ),
                String::new(),
            ),
        );
        assert!(
            matches!(&throttled, IdempotencyError::Store { code, .. } if code == "ProvisionedThroughputExceededException"),
            "{throttled:?}"
        );
    }

    #[test]
    fn an_unreadable_answer_is_not_kept_it_may_hold_the_item() {
        let id = MessageId::from(WAMID);
        let raw = format!(r#"{{"Item":{{"id":{{"S":"{WAMID}"}},"state":{{"S":"compl"#);
        let error = failure(
            "read",
            &id,
            SdkError::<GetItemError, String>::response_error(
                format!("unexpected end of input reading {WAMID}"),
                raw,
            ),
        );
        assert!(
            matches!(
                &error,
                IdempotencyError::Unreadable {
                    operation: "read",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.source().is_none());
        assert!(error.is_retryable());
        let text = error.to_string();
        assert!(!text.contains("HBgL"), "{text}");
        assert!(
            text.contains("response error: unexpected end of input"),
            "{text}"
        );
    }
}

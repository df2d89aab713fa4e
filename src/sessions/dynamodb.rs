//! `SESSIONS_TABLE`: sessions in DynamoDB, shared by every webhook and worker instance.
//!
//! One item per session. Table: partition key `id` (S, the [`SessionKey`]); TTL attribute
//! `expires_at` (N, epoch seconds, pushed forward by every write). Attributes: `version` (N,
//! one more per write: every write is conditional on the version read, `attribute_not_exists`
//! for the first), `agent` (S), `environment` (S) and `last_user_message_at` (N, epoch
//! seconds), each absent when unset, and `state` (S): one JSON document
//! `{"history": [...], "pending": [...], "menu": {...}}`, written and read whole (one
//! attribute keeps the item's shape simple, and the size is checked before the write).
//! An item whose `expires_at` passed reads as a new session (DynamoDB deletes expired items
//! up to a few days late).

use super::{
    Session, SessionError, SessionKey, SessionStore, VersionedStore, Written, decode_state,
    now_unix, update_with,
};
use crate::BoxFuture;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::time::Duration;

use crate::aws::DYNAMODB_RETRYABLE_CODES as RETRYABLE_CODES;

/// Sessions stored in a DynamoDB table.
#[derive(Debug, Clone)]
pub struct DynamoSessions {
    client: Client,
    table: String,
    ttl: Duration,
}

impl DynamoSessions {
    /// Sessions in `table`, kept for `ttl` after their last write.
    pub fn new(config: &aws_config::SdkConfig, table: impl Into<String>, ttl: Duration) -> Self {
        Self {
            client: Client::new(config),
            table: table.into(),
            ttl,
        }
    }

    async fn read_now(&self, key: &SessionKey) -> Result<Session, SessionError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(key.as_str().to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| failure("read", key, error))?;
        let Some(item) = output.item() else {
            return Ok(Session::default());
        };
        session_from(item, now_unix())
    }

    async fn write_now(
        &self,
        key: &SessionKey,
        session: &Session,
        state: &str,
        expires_at: i64,
    ) -> Result<Written, SessionError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(key.as_str().to_owned()))
            .item("version", number(session.version + 1))
            .item("expires_at", number(expires_at))
            .item("state", AttributeValue::S(state.to_owned()));
        if let Some(agent) = &session.agent {
            put = put.item("agent", AttributeValue::S(agent.clone()));
        }
        if let Some(environment) = &session.environment {
            put = put.item("environment", AttributeValue::S(environment.clone()));
        }
        if let Some(at) = session.last_user_message_at {
            put = put.item("last_user_message_at", number(at));
        }
        put = if session.version == 0 {
            put.condition_expression("attribute_not_exists(id)")
        } else {
            put.condition_expression("version = :version")
                .expression_attribute_values(":version", number(session.version))
        };
        match put.send().await {
            Ok(_) => Ok(Written::Stored),
            Err(SdkError::ServiceError(error))
                if error.err().is_conditional_check_failed_exception() =>
            {
                Ok(Written::Conflict)
            }
            Err(error) => Err(failure("write", key, error)),
        }
    }
}

/// A stored item as a session (see the module docs); an expired one as a new session with
/// the item's version.
fn session_from(item: &HashMap<String, AttributeValue>, now: i64) -> Result<Session, SessionError> {
    let version = item
        .get("version")
        .and_then(|value| value.as_n().ok())
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| SessionError::Corrupt("no readable `version` attribute".to_owned()))?;
    let integer = |name: &str| {
        item.get(name)
            .and_then(|value| value.as_n().ok())
            .and_then(|n| n.parse::<i64>().ok())
    };
    let text = |name: &str| item.get(name).and_then(|value| value.as_s().ok()).cloned();
    if integer("expires_at").is_some_and(|expires_at| expires_at <= now) {
        return Ok(Session {
            version,
            ..Session::default()
        });
    }
    let mut session = Session {
        agent: text("agent"),
        environment: text("environment"),
        last_user_message_at: integer("last_user_message_at"),
        version,
        ..Session::default()
    };
    if let Some(state) = item.get("state").and_then(|value| value.as_s().ok()) {
        decode_state(&mut session, state);
    }
    Ok(session)
}

impl VersionedStore for DynamoSessions {
    fn read<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<Session, SessionError>> {
        Box::pin(self.read_now(key))
    }

    fn write<'a>(
        &'a self,
        key: &'a SessionKey,
        session: &'a Session,
        state: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<Written, SessionError>> {
        Box::pin(self.write_now(key, session, state, expires_at))
    }
}

impl SessionStore for DynamoSessions {
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

fn number(value: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A failed call as a [`SessionError::Store`], the SDK error kept as its source; logged with
/// the masked key and the error code (never the item).
fn failure<E, R>(operation: &'static str, key: &SessionKey, error: SdkError<E, R>) -> SessionError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (code, retryable) = match &error {
        SdkError::ServiceError(_) => {
            let code = error.code().unwrap_or("unknown").to_owned();
            let retryable = RETRYABLE_CODES.contains(&code.as_str());
            (code, retryable)
        }
        SdkError::TimeoutError(_) => ("timeout".to_owned(), true),
        SdkError::DispatchFailure(_) => ("dispatch failure".to_owned(), true),
        SdkError::ResponseError(_) => ("unreadable response".to_owned(), true),
        _ => ("request not built".to_owned(), false),
    };
    let code = crate::redact::scrub(&code);
    tracing::warn!(session = %key, operation, code = %code, retryable, "DynamoDB session call failed");
    SessionError::Store {
        operation,
        code,
        retryable,
        source: Box::new(error),
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

    #[test]
    fn an_item_reads_as_its_session() {
        let state = r#"{"history":[{"role":"user","text":"hi","timestamp":"1970-01-01T00:00:00Z"}],"pending":[],"menu":null}"#;
        let session = session_from(
            &item(&[
                ("id", AttributeValue::S("whatsapp:1:2".into())),
                ("version", number(3)),
                ("expires_at", number(2_000)),
                ("agent", AttributeValue::S("k8s".into())),
                ("last_user_message_at", number(900)),
                ("state", AttributeValue::S(state.into())),
            ]),
            1_000,
        )
        .unwrap();
        assert_eq!(session.version, 3);
        assert_eq!(session.agent.as_deref(), Some("k8s"));
        assert_eq!(session.environment, None);
        assert_eq!(session.last_user_message_at, Some(900));
        assert_eq!(session.history.len(), 1);
    }

    #[test]
    fn an_expired_item_reads_as_new_with_its_version() {
        let session = session_from(
            &item(&[
                ("version", number(7)),
                ("expires_at", number(999)),
                ("agent", AttributeValue::S("k8s".into())),
            ]),
            1_000,
        )
        .unwrap();
        assert_eq!(
            session,
            Session {
                version: 7,
                ..Session::default()
            }
        );
    }

    #[test]
    fn an_item_without_a_version_is_corrupt() {
        let error =
            session_from(&item(&[("agent", AttributeValue::S("x".into()))]), 0).unwrap_err();
        assert!(matches!(error, SessionError::Corrupt(_)));
        assert!(!error.is_retryable());
    }
}

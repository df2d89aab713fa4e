//! The Graph API client: sends messages and read receipts through
//! `POST {base}/{version}/{phone_number_id}/messages` with ureq, off the async runtime.
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages>

use super::{GraphError, Messenger, OutgoingMessage, Recipient};
use crate::BoxFuture;
use crate::message::{MessageId, PhoneNumberId};
use crate::secrets::Secret;
use crate::text::excerpt_bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

/// Largest Graph API answer read: success and error bodies are a few hundred bytes.
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// Sends messages through the real Graph API. Cheap to share: one ureq agent for every call.
pub struct GraphClient {
    inner: Arc<Inner>,
}

struct Inner {
    /// `{base}/{version}` without a trailing slash.
    api_root: String,
    access_token: Secret,
    http: ureq::Agent,
}

/// What a call is for, in logs.
#[derive(Clone, Copy)]
enum Operation {
    Send,
    MarkRead,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::MarkRead => "mark_read",
        }
    }
}

impl GraphClient {
    /// `base_url` like `https://graph.facebook.com` (a trailing `/` is fine), `version` like
    /// `v25.0`; `timeout` bounds each whole call.
    pub fn new(
        base_url: &str,
        version: &str,
        access_token: Secret,
        timeout: std::time::Duration,
    ) -> Self {
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .max_redirects(0)
            .build()
            .into();
        let api_root = format!(
            "{}/{}",
            base_url.trim_end_matches('/'),
            version.trim_matches('/')
        );
        Self {
            inner: Arc::new(Inner {
                api_root,
                access_token,
                http,
            }),
        }
    }

    /// Runs one blocking POST on the blocking pool and logs the outcome.
    async fn post(
        &self,
        operation: Operation,
        from: &PhoneNumberId,
        recipient: Option<&Recipient>,
        body: Value,
    ) -> Result<(u16, Value), GraphError> {
        let inner = self.inner.clone();
        let from_id = from.clone();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || inner.post(&from_id, &body))
            .await
            .unwrap_or_else(|error| {
                Err(GraphError::Unknown(format!(
                    "Graph API call aborted: {error}"
                )))
            });
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let to = recipient.map(|r| crate::sender::mask(r.as_str()));
        match &result {
            Ok((status, _)) => tracing::debug!(
                operation = operation.as_str(),
                phone_number_id = %from,
                to = to.as_deref(),
                status,
                elapsed_ms,
                "Graph API call succeeded"
            ),
            Err(error) => log_failure(operation, from, to.as_deref(), Some(elapsed_ms), error),
        }
        result
    }
}

impl Messenger for GraphClient {
    fn send<'a>(
        &'a self,
        from: &'a PhoneNumberId,
        to: &'a Recipient,
        message: &'a OutgoingMessage,
        context: Option<&'a MessageId>,
    ) -> BoxFuture<'a, Result<MessageId, GraphError>> {
        Box::pin(async move {
            let body = message.to_graph_json(to, context);
            let (status, answer) = self.post(Operation::Send, from, Some(to), body).await?;
            let id = answer
                .pointer("/messages/0/id")
                .and_then(Value::as_str)
                .filter(|id| !id.is_empty());
            match id {
                Some(id) => Ok(MessageId(id.to_owned())),
                None => {
                    let error = GraphError::Decode {
                        status,
                        body: excerpt_bytes(answer.to_string().as_bytes()),
                    };
                    log_failure(
                        Operation::Send,
                        from,
                        Some(&crate::sender::mask(to.as_str())),
                        None,
                        &error,
                    );
                    Err(error)
                }
            }
        })
    }

    fn mark_read<'a>(
        &'a self,
        from: &'a PhoneNumberId,
        message: &'a MessageId,
        typing: bool,
    ) -> BoxFuture<'a, Result<(), GraphError>> {
        Box::pin(async move {
            let body = mark_read_json(message, typing);
            let (_, answer) = self.post(Operation::MarkRead, from, None, body).await?;
            // Meta answers `{"success":true}`; only an explicit `false` is a failure.
            if answer.get("success").and_then(Value::as_bool) == Some(false) {
                let error = GraphError::Unknown(format!(
                    "Graph API did not mark {message} read: {}",
                    excerpt_bytes(answer.to_string().as_bytes())
                ));
                log_failure(Operation::MarkRead, from, None, None, &error);
                return Err(error);
            }
            Ok(())
        })
    }
}

/// The read receipt body, with the typing indicator when asked.
/// <https://developers.facebook.com/docs/whatsapp/cloud-api/typing-indicators>
pub fn mark_read_json(message: &MessageId, typing: bool) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": message.as_str(),
    });
    if typing {
        body["typing_indicator"] = json!({ "type": "text" });
    }
    body
}

impl Inner {
    /// The blocking call: a 2xx JSON body, or the error Meta (or the network) gave.
    fn post(&self, from: &PhoneNumberId, body: &Value) -> Result<(u16, Value), GraphError> {
        if !is_path_safe(from.as_str()) {
            return Err(GraphError::Unknown(format!(
                "phone number id {from:?} is not a Graph API id"
            )));
        }
        let url = format!("{}/{}/messages", self.api_root, from.as_str());
        let body = serde_json::to_vec(body)
            .map_err(|error| GraphError::Unknown(format!("request not encodable: {error}")))?;
        let mut builder = self
            .http
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json");
        if !self.access_token.is_empty() {
            builder = builder.header(
                "Authorization",
                format!("Bearer {}", self.access_token.expose()),
            );
        }
        let mut response = builder.send(&body[..]).map_err(transport_error)?;
        let status = response.status().as_u16();
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(MAX_RESPONSE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|error| transport_error(ureq::Error::from(error)))?;
        if (200..300).contains(&status) {
            let value = if bytes.trim_ascii().is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).map_err(|_| GraphError::Decode {
                    status,
                    body: excerpt_bytes(&bytes),
                })?
            };
            return Ok((status, value));
        }
        Err(api_error(status, &bytes))
    }
}

/// Meta's error body: `{"error":{"message","type","code","error_subcode","fbtrace_id"}}`.
/// <https://developers.facebook.com/docs/graph-api/guides/error-handling>
#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    fbtrace_id: Option<String>,
    /// Cloud API errors often put the useful detail here.
    #[serde(default)]
    error_data: Option<ErrorData>,
}

#[derive(Deserialize)]
struct ErrorData {
    #[serde(default)]
    details: Option<String>,
}

/// A non-2xx answer: Meta's error when the body is one, else [`GraphError::Decode`].
fn api_error(status: u16, bytes: &[u8]) -> GraphError {
    let parsed = serde_json::from_slice::<ErrorEnvelope>(bytes)
        .ok()
        .and_then(|envelope| Some((envelope.error.code?, envelope.error)));
    let Some((code, error)) = parsed else {
        return GraphError::Decode {
            status,
            body: excerpt_bytes(bytes),
        };
    };
    let mut message = error.message.unwrap_or_default();
    if let Some(details) = error.error_data.and_then(|data| data.details)
        && !details.is_empty()
        && !message.contains(&details)
    {
        message = if message.is_empty() {
            details
        } else {
            format!("{message} ({details})")
        };
    }
    GraphError::Api {
        status,
        code,
        subcode: error.error_subcode,
        message,
        fbtrace_id: error.fbtrace_id,
    }
}

fn transport_error(error: ureq::Error) -> GraphError {
    match error {
        ureq::Error::Timeout(_) => GraphError::Timeout,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => GraphError::Timeout,
        other => GraphError::Transport(other.to_string()),
    }
}

/// Phone number ids are numeric; refuse anything that could change the URL's path or query.
fn is_path_safe(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && id != "."
        && id != ".."
}

/// Every failure at warn, with Meta's identifiers; never the token, the recipient masked.
fn log_failure(
    operation: Operation,
    from: &PhoneNumberId,
    to: Option<&str>,
    elapsed_ms: Option<u64>,
    error: &GraphError,
) {
    let operation = operation.as_str();
    let retryable = error.is_retryable();
    match error {
        GraphError::Api {
            status,
            code,
            subcode,
            message,
            fbtrace_id,
        } => tracing::warn!(
            operation,
            phone_number_id = %from,
            to,
            status,
            code,
            subcode,
            fbtrace_id = fbtrace_id.as_deref(),
            retryable,
            elapsed_ms,
            error_message = %message,
            "Graph API error"
        ),
        GraphError::Decode { status, body } => tracing::warn!(
            operation,
            phone_number_id = %from,
            to,
            status,
            retryable,
            elapsed_ms,
            body = %body,
            "Graph API answer unreadable"
        ),
        other => tracing::warn!(
            operation,
            phone_number_id = %from,
            to,
            retryable,
            elapsed_ms,
            error = %other,
            "Graph API call failed"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_meta_error_bodies() {
        let body = br#"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"error_subcode":2494010,"error_data":{"messaging_product":"whatsapp","details":"More than 24 hours have passed"},"fbtrace_id":"Ab"}}"#;
        match api_error(400, body) {
            GraphError::Api {
                status,
                code,
                subcode,
                message,
                fbtrace_id,
            } => {
                assert_eq!((status, code, subcode), (400, 131047, Some(2494010)));
                assert!(message.contains("Re-engagement") && message.contains("24 hours"));
                assert_eq!(fbtrace_id.as_deref(), Some("Ab"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn non_meta_error_bodies_are_decode_errors() {
        assert!(matches!(
            api_error(502, b"<html>Bad Gateway</html>"),
            GraphError::Decode { status: 502, .. }
        ));
        assert!(matches!(
            api_error(400, br#"{"error":{"message":"no code"}}"#),
            GraphError::Decode { .. }
        ));
    }

    #[test]
    fn refuses_ids_that_would_change_the_url() {
        assert!(is_path_safe("106540352242922"));
        for id in ["", "..", "1/2", "1?x=y", "1#", "a b"] {
            assert!(!is_path_safe(id), "{id}");
        }
    }

    #[test]
    fn base_url_may_end_with_a_slash() {
        let timeout = std::time::Duration::from_secs(1);
        for base in ["https://graph.facebook.com", "https://graph.facebook.com/"] {
            let client = GraphClient::new(base, "v25.0", Secret::default(), timeout);
            assert_eq!(client.inner.api_root, "https://graph.facebook.com/v25.0");
        }
    }
}

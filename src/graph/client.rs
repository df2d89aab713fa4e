//! The Graph API client: sends messages and read receipts through
//! `POST {base}/{version}/{phone_number_id}/messages` with ureq, off the async runtime.
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages>
//!
//! Faults, each call bounded in time:
//! - transient (HTTP 429 and 5xx, Meta's throttling and temporary codes in
//!   [`super::RETRYABLE_CODES`], timeouts, network errors, unreadable error pages): retried with
//!   jittered exponential backoff ([`Backoff`]), at most [`GRAPH_MAX_ATTEMPTS`] attempts,
//!   honouring `Retry-After` up to [`GRAPH_MAX_RETRY_AFTER`] (longer: give up now and let the
//!   queue retry later). Read receipts are best effort and not retried.
//! - a refused token (code 190 or HTTP 401): the [`TokenSource`] re-reads it once (it may have
//!   been rotated) and the call is repeated once with the new token.
//! - 131047 (outside the 24-hour customer service window): never retried.

use super::{GraphError, Messenger};
use crate::BoxFuture;
use crate::backoff::{self, Spread};
use crate::domain::{MessageId, PhoneNumberId};
use crate::domain::{OutgoingMessage, Recipient};
use crate::redact;
use crate::redact::excerpt_bytes;
use crate::secrets::{Secret, StaticToken, TokenSource};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest Graph API answer read: success and error bodies are a few hundred bytes.
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024;
/// Longest `fbtrace_id` logged (Meta's are about 20 characters).
const MAX_FBTRACE_ID_CHARS: usize = 64;
/// Attempts per send for transient faults, the first included.
pub const GRAPH_MAX_ATTEMPTS: u32 = 3;
/// Wait before the first retry (before jitter); it doubles with each retry.
pub const GRAPH_BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest computed wait between two attempts.
pub const GRAPH_BACKOFF_CAP: Duration = Duration::from_secs(4);
/// Longest `Retry-After` waited for: a longer one ends the call at once with the error, and the
/// worker's queue retries the job later instead of a Lambda idling.
pub const GRAPH_MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// No retry starts when the call has run this long (counting the wait before it): with the
/// 10 s per-request timeout, one send takes at most about 35 s.
pub const GRAPH_RETRY_BUDGET: Duration = Duration::from_secs(25);

/// How transient faults are retried. Tests shorten `base`; production uses [`Backoff::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Attempts per send, the first included (at least one is made).
    pub max_attempts: u32,
    /// Wait before the first retry, before jitter; doubles with each retry.
    pub base: Duration,
    /// Longest computed wait.
    pub cap: Duration,
    /// Longest `Retry-After` honoured; a longer one ends the call at once.
    pub max_retry_after: Duration,
    /// No retry starts once the call has run this long, counting the wait before it.
    pub budget: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            max_attempts: GRAPH_MAX_ATTEMPTS,
            base: GRAPH_BACKOFF_BASE,
            cap: GRAPH_BACKOFF_CAP,
            max_retry_after: GRAPH_MAX_RETRY_AFTER,
            budget: GRAPH_RETRY_BUDGET,
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (1 = the first): `base · 2^(retry-1)`, at most
    /// `cap`, whose upper half is scaled by `jitter` in `[0, 1]` ("equal jitter"): parallel
    /// senders spread out, and no retry comes immediately.
    pub fn delay(&self, retry: u32, jitter: f64) -> Duration {
        backoff::delay(self.base, retry, self.cap, Spread::UpperHalf, jitter)
    }
}

/// Sends messages through the real Graph API. Cheap to share: one ureq agent for every call.
pub struct GraphClient {
    inner: Arc<Inner>,
    tokens: Arc<dyn TokenSource>,
    backoff: Backoff,
}

struct Inner {
    /// `{base}/{version}` without a trailing slash.
    api_root: String,
    http: ureq::Agent,
}

/// What a call is for, in logs.
#[derive(Clone, Copy, PartialEq, Eq)]
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

/// One failed attempt: the error, and how long Meta asked us to wait.
struct Failure {
    error: GraphError,
    retry_after: Option<Duration>,
}

impl From<GraphError> for Failure {
    fn from(error: GraphError) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

impl GraphClient {
    /// `base_url` like `https://graph.facebook.com` (a trailing `/` is fine), `version` like
    /// `v25.0`; `timeout` bounds each request. The token never changes ([`StaticToken`]).
    pub fn new(
        base_url: &str,
        version: &str,
        access_token: Secret,
        timeout: std::time::Duration,
    ) -> Self {
        Self::with_token_source(
            base_url,
            version,
            Arc::new(StaticToken::new(access_token)),
            timeout,
        )
    }

    /// Like [`GraphClient::new`], with the token from `tokens`, re-read when Meta refuses it.
    pub fn with_token_source(
        base_url: &str,
        version: &str,
        tokens: Arc<dyn TokenSource>,
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
            inner: Arc::new(Inner { api_root, http }),
            tokens,
            backoff: Backoff::default(),
        }
    }

    /// Replaces the retry policy (tests use a short `base`).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The retry policy in use.
    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// One call with its retries: a 2xx JSON body, or the last error (logged here).
    async fn post(
        &self,
        operation: Operation,
        from: &PhoneNumberId,
        recipient: Option<&Recipient>,
        body: &Value,
    ) -> Result<(u16, Value), GraphError> {
        let to = recipient.map(|r| crate::domain::mask(r.as_str()));
        let log = CallLog {
            operation,
            from,
            to: to.as_deref(),
            started: Instant::now(),
        };
        let request = match self.inner.request(from, body) {
            Ok(request) => Arc::new(request),
            Err(error) => {
                log.failed(&error, 0, "not sendable");
                return Err(error);
            }
        };
        // A read receipt is best effort: no transient retries that would delay the answer.
        let max_attempts = match operation {
            Operation::Send => self.backoff.max_attempts.max(1),
            Operation::MarkRead => 1,
        };
        let mut attempt = 0;
        let mut token_reread = false;
        loop {
            attempt += 1;
            let token = self.tokens.current();
            let Failure { error, retry_after } = match self.attempt(&request, &token).await {
                Ok(answer) => {
                    log.succeeded(answer.0, attempt);
                    return Ok(answer);
                }
                Err(failure) => failure,
            };
            if error.is_token_refused() {
                if token_reread {
                    log.token_refused(&error, attempt, "refused again after re-reading it");
                    return Err(error);
                }
                token_reread = true;
                match self.tokens.refresh().await {
                    Ok(fresh) if !fresh.is_empty() && fresh.expose() != token.expose() => {
                        log.retrying_with_new_token(&error, attempt);
                        continue;
                    }
                    Ok(_) => {
                        log.token_refused(&error, attempt, "the token source has no newer one");
                        return Err(error);
                    }
                    Err(reread) => {
                        log.token_refused(
                            &error,
                            attempt,
                            &format!("re-reading it failed: {reread}"),
                        );
                        return Err(error);
                    }
                }
            }
            if error.is_reengagement() {
                log.reengagement(&error);
                return Err(error);
            }
            if !error.is_retryable() {
                log.failed(&error, attempt, "not retryable");
                return Err(error);
            }
            if attempt >= max_attempts {
                log.failed(&error, attempt, "no attempts left");
                return Err(error);
            }
            if let Some(wait) = retry_after
                && wait > self.backoff.max_retry_after
            {
                log.failed(&error, attempt, "Retry-After beyond the cap: retry later");
                return Err(error);
            }
            let delay = self
                .backoff
                .delay(attempt, backoff::random())
                .max(retry_after.unwrap_or_default());
            if log.started.elapsed() + delay > self.backoff.budget {
                log.failed(&error, attempt, "retry budget spent");
                return Err(error);
            }
            log.retrying(&error, attempt, max_attempts, delay, retry_after);
            tokio::time::sleep(delay).await;
        }
    }

    /// One blocking POST on the blocking pool.
    async fn attempt(
        &self,
        request: &Arc<Request>,
        token: &Secret,
    ) -> Result<(u16, Value), Failure> {
        let inner = self.inner.clone();
        let request = request.clone();
        let token = token.clone();
        tokio::task::spawn_blocking(move || inner.post(&request, &token))
            .await
            .unwrap_or_else(|error| {
                Err(GraphError::Unknown(format!("Graph API call aborted: {error}")).into())
            })
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
            let (status, answer) = self.post(Operation::Send, from, Some(to), &body).await?;
            let id = SendAnswer::message_id(&answer);
            match id {
                Some(id) => Ok(MessageId(id)),
                None => {
                    // Not retried: Meta accepted the request, so the message may be on its way.
                    let error = GraphError::Decode {
                        status,
                        body: excerpt_bytes(answer.to_string().as_bytes()),
                    };
                    let masked = crate::domain::mask(to.as_str());
                    CallLog {
                        operation: Operation::Send,
                        from,
                        to: Some(&masked),
                        started: Instant::now(),
                    }
                    .failed(&error, 1, "accepted without a message id");
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
            let (_, answer) = self.post(Operation::MarkRead, from, None, &body).await?;
            // Meta answers `{"success":true}`; only an explicit `false` is a failure.
            if ReadAnswer::refused(&answer) {
                let error = GraphError::Unknown(format!(
                    "Graph API did not mark {message} read: {}",
                    excerpt_bytes(answer.to_string().as_bytes())
                ));
                CallLog {
                    operation: Operation::MarkRead,
                    from,
                    to: None,
                    started: Instant::now(),
                }
                .failed(&error, 1, "answered success: false");
                return Err(error);
            }
            Ok(())
        })
    }
}

/// The read receipt body, with the typing indicator when asked.
/// <https://developers.facebook.com/docs/whatsapp/cloud-api/typing-indicators>
pub fn mark_read_json(message: &MessageId, typing: bool) -> Value {
    let receipt = ReadReceipt {
        messaging_product: "whatsapp",
        status: "read",
        message_id: message.as_str(),
        typing_indicator: typing.then_some(TypingIndicator { kind: "text" }),
    };
    // Strings only: serializing cannot fail.
    serde_json::to_value(receipt).unwrap_or(Value::Null)
}

/// The wire format of a read receipt; the typing indicator is left out unless asked for.
#[derive(Serialize)]
struct ReadReceipt<'a> {
    messaging_product: &'static str,
    status: &'static str,
    message_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    typing_indicator: Option<TypingIndicator>,
}

#[derive(Serialize)]
struct TypingIndicator {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Meta's answer to a send: `{"messages":[{"id":"wamid..."}], ...}`.
#[derive(Deserialize)]
struct SendAnswer {
    messages: Vec<SentMessage>,
}

/// One entry of [`SendAnswer::messages`]; only the first one's id is used, so a later entry
/// of another shape is not an error.
#[derive(Deserialize)]
#[serde(untagged)]
enum SentMessage {
    Sent { id: String },
    Other(IgnoredAny),
}

impl SendAnswer {
    /// The id Meta gave the sent message; `None` when the answer has none (or an empty one).
    fn message_id(answer: &Value) -> Option<String> {
        // Objects only: serde would also read a struct from an array of its fields.
        if !answer.is_object() {
            return None;
        }
        let answer = Self::deserialize(answer).ok()?;
        match answer.messages.into_iter().next()? {
            SentMessage::Sent { id } if !id.is_empty() => Some(id),
            _ => None,
        }
    }
}

/// Meta's answer to a read receipt: `{"success": true}`.
#[derive(Deserialize)]
struct ReadAnswer {
    #[serde(default)]
    success: Option<bool>,
}

impl ReadAnswer {
    /// Only an explicit `"success": false` is a refusal; any other answer counts as done.
    fn refused(answer: &Value) -> bool {
        // Objects only: serde would also read a struct from an array of its fields.
        answer.is_object()
            && Self::deserialize(answer).is_ok_and(|answer| answer.success == Some(false))
    }
}

/// A request ready to post, encoded once for every attempt.
struct Request {
    url: String,
    body: Vec<u8>,
}

impl Inner {
    fn request(&self, from: &PhoneNumberId, body: &Value) -> Result<Request, GraphError> {
        if !is_path_safe(from.as_str()) {
            return Err(GraphError::Unknown(format!(
                "phone number id {:?} is not a Graph API id",
                redact::scrub(from.as_str())
            )));
        }
        let body = serde_json::to_vec(body)
            .map_err(|error| GraphError::Unknown(format!("request not encodable: {error}")))?;
        Ok(Request {
            url: format!("{}/{}/messages", self.api_root, from.as_str()),
            body,
        })
    }

    /// The blocking call: a 2xx JSON body, or the error Meta (or the network) gave.
    fn post(&self, request: &Request, token: &Secret) -> Result<(u16, Value), Failure> {
        let mut builder = self
            .http
            .post(&request.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json");
        if !token.is_empty() {
            builder = builder.header("Authorization", format!("Bearer {}", token.expose()));
        }
        let mut response = builder.send(&request.body[..]).map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
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
        Err(Failure {
            error: api_error(status, &bytes),
            retry_after,
        })
    }
}

/// `Retry-After` in seconds (Meta and proxies send seconds; an HTTP date is ignored).
fn retry_after(headers: &ureq::http::HeaderMap) -> Option<Duration> {
    let value = headers
        .get(ureq::http::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
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
    // Meta's text is foreign: it may name the recipient, carry control characters or be huge.
    GraphError::Api {
        status,
        code,
        subcode: error.error_subcode,
        message: redact::scrub(&message),
        fbtrace_id: error
            .fbtrace_id
            .map(|id| redact::scrub_within(&id, MAX_FBTRACE_ID_CHARS)),
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

/// The logs of one call: every failure with Meta's identifiers; never the token, the
/// recipient masked.
struct CallLog<'a> {
    operation: Operation,
    from: &'a PhoneNumberId,
    to: Option<&'a str>,
    started: Instant,
}

/// Meta's fields of an error, for the log: HTTP status, code, subcode, fbtrace_id.
fn meta_fields(error: &GraphError) -> (Option<u16>, Option<i64>, Option<i64>, Option<&str>) {
    match error {
        GraphError::Api {
            status,
            code,
            subcode,
            fbtrace_id,
            ..
        } => (Some(*status), Some(*code), *subcode, fbtrace_id.as_deref()),
        GraphError::Decode { status, .. } => (Some(*status), None, None, None),
        _ => (None, None, None, None),
    }
}

impl CallLog<'_> {
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn succeeded(&self, status: u16, attempt: u32) {
        tracing::debug!(
            operation = self.operation.as_str(),
            phone_number_id = %self.from,
            to = self.to,
            status,
            attempt,
            elapsed_ms = self.elapsed_ms(),
            "Graph API call succeeded"
        );
    }

    /// One transient failure that will be retried after `delay`.
    fn retrying(
        &self,
        error: &GraphError,
        attempt: u32,
        max_attempts: u32,
        delay: Duration,
        retry_after: Option<Duration>,
    ) {
        let (status, code, subcode, fbtrace_id) = meta_fields(error);
        tracing::warn!(
            operation = self.operation.as_str(),
            phone_number_id = %self.from,
            to = self.to,
            attempt,
            max_attempts,
            status,
            code,
            subcode,
            fbtrace_id,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            retry_after_secs = retry_after.map(|wait| wait.as_secs()),
            error = %error,
            "Graph API call failed transiently; retrying"
        );
    }

    fn retrying_with_new_token(&self, error: &GraphError, attempt: u32) {
        let (status, code, subcode, fbtrace_id) = meta_fields(error);
        tracing::warn!(
            operation = self.operation.as_str(),
            phone_number_id = %self.from,
            to = self.to,
            attempt,
            status,
            code,
            subcode,
            fbtrace_id,
            "Graph API refused the access token; re-read it and retrying once with the new one"
        );
    }

    /// The token was refused and cannot be fixed by this call.
    fn token_refused(&self, error: &GraphError, attempt: u32, why: &str) {
        let (status, code, subcode, fbtrace_id) = meta_fields(error);
        tracing::error!(
            operation = self.operation.as_str(),
            phone_number_id = %self.from,
            to = self.to,
            attempt,
            status,
            code,
            subcode,
            fbtrace_id,
            why,
            error = %error,
            "Graph API refused the access token: replies cannot be sent until a valid system user \
             token is stored (WHATSAPP_SECRET_ID's access_token, or WHATSAPP_ACCESS_TOKEN)"
        );
    }

    /// 131047: one clear error, no retry.
    fn reengagement(&self, error: &GraphError) {
        let (status, code, subcode, fbtrace_id) = meta_fields(error);
        tracing::error!(
            operation = self.operation.as_str(),
            phone_number_id = %self.from,
            to = self.to,
            status,
            code,
            subcode,
            fbtrace_id,
            "cannot answer: more than 24 hours since the user's last message (outside WhatsApp's \
             customer service window); the user must message first, or a template message is needed"
        );
    }

    /// The call ends with `error` after `attempts` attempts, for the reason `why`.
    fn failed(&self, error: &GraphError, attempts: u32, why: &str) {
        let operation = self.operation.as_str();
        let retryable = error.is_retryable();
        let elapsed_ms = self.elapsed_ms();
        match error {
            GraphError::Api {
                status,
                code,
                subcode,
                message,
                fbtrace_id,
            } => tracing::warn!(
                operation,
                phone_number_id = %self.from,
                to = self.to,
                status,
                code,
                subcode,
                fbtrace_id = fbtrace_id.as_deref(),
                retryable,
                attempts,
                why,
                elapsed_ms,
                error_message = %message,
                "Graph API error"
            ),
            GraphError::Decode { status, body } => tracing::warn!(
                operation,
                phone_number_id = %self.from,
                to = self.to,
                status,
                retryable,
                attempts,
                why,
                elapsed_ms,
                body = %body,
                "Graph API answer unreadable"
            ),
            other => tracing::warn!(
                operation,
                phone_number_id = %self.from,
                to = self.to,
                retryable,
                attempts,
                why,
                elapsed_ms,
                error = %other,
                "Graph API call failed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn read_receipts_are_exactly_the_graph_api_wire_format() {
        let id = MessageId::from("wamid.1");
        assert_eq!(
            mark_read_json(&id, false),
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.1"})
        );
        assert_eq!(
            mark_read_json(&id, true),
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.1",
                   "typing_indicator": {"type": "text"}})
        );
    }

    #[test]
    fn the_sent_message_id_is_the_first_entrys_and_any_other_answer_has_none() {
        let id = |answer: Value| SendAnswer::message_id(&answer);
        assert_eq!(
            id(
                json!({"messaging_product": "whatsapp", "contacts": [{"wa_id": "1"}],
                      "messages": [{"id": "wamid.OUT", "message_status": "accepted"}]})
            ),
            Some("wamid.OUT".to_owned())
        );
        assert_eq!(
            id(json!({"messages": [{"id": "wamid.A"}, 7, {"id": null}]})),
            Some("wamid.A".to_owned())
        );
        for none in [
            json!(null),
            json!({}),
            json!({"messages": []}),
            json!({"messages": {"id": "wamid.A"}}),
            json!({"messages": [{"id": ""}]}),
            json!({"messages": [{"id": 5}]}),
            json!({"messages": [7, {"id": "wamid.A"}]}),
            json!([{"id": "wamid.A"}]),
            json!([[{"id": "wamid.A"}]]),
        ] {
            assert_eq!(id(none.clone()), None, "{none}");
        }
    }

    #[test]
    fn only_an_explicit_success_false_refuses_a_read_receipt() {
        assert!(ReadAnswer::refused(&json!({"success": false})));
        for done in [
            json!({"success": true}),
            json!({"success": "false"}),
            json!({"success": null}),
            json!({}),
            json!(null),
            json!([false]),
        ] {
            assert!(!ReadAnswer::refused(&done), "{done}");
        }
    }

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
    fn meta_error_text_is_kept_escaped_masked_and_capped() {
        let hostile = format!(
            "Bad recipient\nERROR forged line \x1b[31m+1 415 555 1234 wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQzQTdBNUQ0RjFFQkE3QkFBQkFBAA== {}",
            "x".repeat(60 * 1024)
        );
        let body = json!({"error": {"message": hostile, "code": 100,
            "error_data": {"details": "recipient 14155551234"}, "fbtrace_id": "Ab\n14155551234"}});
        let error = api_error(400, body.to_string().as_bytes());
        let GraphError::Api {
            message,
            fbtrace_id,
            ..
        } = &error
        else {
            panic!("{error:?}");
        };
        assert!(
            message.starts_with("Bad recipient\\nERROR forged line \\u{1b}[31m*******1234 wamid#"),
            "{message}"
        );
        assert_eq!(message.chars().count(), redact::MAX_TEXT_CHARS + 1);
        assert!(message.ends_with('…'));
        assert_eq!(fbtrace_id.as_deref(), Some("Ab\\n*******1234"));
        for shown in [message.clone(), error.to_string(), format!("{error:?}")] {
            assert!(!shown.chars().any(char::is_control), "{shown}");
            assert!(
                !shown.contains("14155551234") && !shown.contains("415 555"),
                "{shown}"
            );
            assert!(!shown.contains("HBgL"), "{shown}");
        }
        // Display leaves Meta's text to the client's one log line.
        assert!(!error.to_string().contains("Bad recipient"));
        assert!(error.to_string().contains("Graph API error 100"));
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
        let page = format!(
            "<html>\n\x1b[2JCall +1 (415) 555-1234 {}</html>",
            "x".repeat(60 * 1024)
        );
        let GraphError::Decode { body, .. } = api_error(502, page.as_bytes()) else {
            panic!("expected a decode error");
        };
        assert!(
            body.starts_with("<html>\\n\\u{1b}[2JCall *******1234 xxx"),
            "{body}"
        );
        assert_eq!(body.chars().count(), crate::redact::EXCERPT_CHARS + 1);
    }

    #[test]
    fn refuses_ids_that_would_change_the_url() {
        assert!(is_path_safe("106540352242922"));
        for id in ["", "..", "1/2", "1?x=y", "1#", "a b"] {
            assert!(!is_path_safe(id), "{id}");
        }
    }

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap_with_equal_jitter() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay(1, 0.0), Duration::from_millis(125));
        assert_eq!(backoff.delay(1, 1.0), Duration::from_millis(250));
        assert_eq!(backoff.delay(2, 1.0), Duration::from_millis(500));
        assert_eq!(backoff.delay(3, 0.5), Duration::from_millis(750));
        assert_eq!(backoff.delay(10, 1.0), GRAPH_BACKOFF_CAP);
        assert_eq!(backoff.delay(u32::MAX, 1.0), GRAPH_BACKOFF_CAP);
        assert_eq!(backoff.delay(1, 7.0), Duration::from_millis(250));
        for _ in 0..100 {
            let j = backoff::random();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds_only() {
        let mut headers = ureq::http::HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", " 7 ".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), None);
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

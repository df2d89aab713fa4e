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
//!
//! Logs: every line of a call is in its span, `graph_call` (operation, phone_number_id, the
//! recipient masked, `message_id`: the log id of the message answered or marked read, the kind
//! sent), and of an attempt in `graph_attempt` (attempt; once Meta answered, its HTTP status
//! and error code, subcode and fbtrace_id). The events are short: a retry, a token re-read, and
//! one line where the call ends, the only one with Meta's (scrubbed) text. Never the token.

use super::wire::{ErrorEnvelope, ReadAnswer, ReadReceipt, SendAnswer};
use super::{GraphError, Messenger};
use crate::BoxFuture;
use crate::backoff::{self, Spread};
use crate::domain::{MessageId, PhoneNumberId, mask};
use crate::domain::{OutgoingMessage, Recipient};
use crate::redact;
use crate::redact::excerpt_bytes;
use crate::secrets::{Secret, StaticToken, TokenSource};
use serde::Serialize;
use serde_json::Value;
use std::borrow::Cow;
use std::io::Read;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::field::{self, Empty};
use tracing::{Instrument, Span};

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

/// A 2xx answer that is not the one asked for: the error, and why the call ends, for its log.
type Unexpected = (GraphError, &'static str);

/// One call in progress: what each of its attempts needs.
struct Call {
    request: Arc<Request>,
    max_attempts: u32,
    started: Instant,
    /// The token was re-read once already: a second refusal ends the call.
    token_reread: bool,
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

    /// One call, inside the caller's [`call_span`]: the request encoded once, then attempts
    /// until `check` accepts a 2xx answer or an error ends the call (logged here, once).
    async fn call<B, T>(
        &self,
        operation: Operation,
        from: &PhoneNumberId,
        body: &B,
        check: impl Fn(u16, &Value) -> Result<T, Unexpected>,
    ) -> Result<T, GraphError>
    where
        B: Serialize + ?Sized,
    {
        let started = Instant::now();
        let request = match self.inner.request(from, body) {
            Ok(request) => Arc::new(request),
            Err(error) => {
                failed(&error, "not sendable", started);
                return Err(error);
            }
        };
        let mut call = Call {
            request,
            // A read receipt is best effort: no transient retries that would delay the answer.
            max_attempts: match operation {
                Operation::Send => self.backoff.max_attempts.max(1),
                Operation::MarkRead => 1,
            },
            started,
            token_reread: false,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Meta's fields are recorded once it answered (`record_answer`).
            let span = tracing::error_span!(
                "graph_attempt",
                attempt,
                status = Empty,
                code = Empty,
                subcode = Empty,
                fbtrace_id = Empty,
            );
            let next = self
                .attempt(&mut call, attempt, &check)
                .instrument(span)
                .await;
            if let ControlFlow::Break(result) = next {
                return result;
            }
        }
    }

    /// Attempt number `attempt`, inside its span, and what follows from it: the call's result,
    /// or `Continue` for one more attempt (after the wait, or with a re-read token).
    async fn attempt<T>(
        &self,
        call: &mut Call,
        attempt: u32,
        check: &impl Fn(u16, &Value) -> Result<T, Unexpected>,
    ) -> ControlFlow<Result<T, GraphError>> {
        let token = self.tokens.current();
        let Failure { error, retry_after } = match self.post(&call.request, &token).await {
            Ok((status, answer)) => {
                Span::current().record("status", status);
                return ControlFlow::Break(match check(status, &answer) {
                    Ok(done) => {
                        let elapsed_ms = elapsed_ms(call.started);
                        tracing::debug!(elapsed_ms, "Graph API call succeeded");
                        Ok(done)
                    }
                    // Not retried: Meta accepted the request, so the message may be on its way.
                    Err((error, why)) => {
                        failed(&error, why, call.started);
                        Err(error)
                    }
                });
            }
            Err(failure) => failure,
        };
        record_answer(&error);
        if error.is_token_refused() {
            return self.after_token_refused(call, &token, error).await;
        }
        if error.is_reengagement() {
            tracing::error!(
                "cannot answer: more than 24 hours since the user's last message (outside \
                 WhatsApp's customer service window); the user must message first, or a template \
                 message is needed"
            );
            return ControlFlow::Break(Err(error));
        }
        if !error.is_retryable() {
            failed(&error, "not retryable", call.started);
            return ControlFlow::Break(Err(error));
        }
        if attempt >= call.max_attempts {
            failed(&error, "no attempts left", call.started);
            return ControlFlow::Break(Err(error));
        }
        if let Some(wait) = retry_after
            && wait > self.backoff.max_retry_after
        {
            failed(
                &error,
                "Retry-After beyond the cap: retry later",
                call.started,
            );
            return ControlFlow::Break(Err(error));
        }
        let delay = self
            .backoff
            .delay(attempt, backoff::random())
            .max(retry_after.unwrap_or_default());
        if call.started.elapsed() + delay > self.backoff.budget {
            failed(&error, "retry budget spent", call.started);
            return ControlFlow::Break(Err(error));
        }
        tracing::warn!(
            max_attempts = call.max_attempts,
            delay_ms = millis(delay),
            retry_after_secs = retry_after.map(|wait| wait.as_secs()),
            error = %error,
            "Graph API call failed transiently; retrying"
        );
        tokio::time::sleep(delay).await;
        ControlFlow::Continue(())
    }

    /// Meta refused `token`: re-read it once and try again if the source has a newer one;
    /// otherwise the call ends.
    async fn after_token_refused<T>(
        &self,
        call: &mut Call,
        token: &Secret,
        error: GraphError,
    ) -> ControlFlow<Result<T, GraphError>> {
        let why: Cow<'static, str> = if call.token_reread {
            "refused again after re-reading it".into()
        } else {
            call.token_reread = true;
            match self.tokens.refresh().await {
                Ok(fresh) if !fresh.is_empty() && fresh.expose() != token.expose() => {
                    tracing::warn!(
                        "Graph API refused the access token; re-read it and retrying once with \
                         the new one"
                    );
                    return ControlFlow::Continue(());
                }
                Ok(_) => "the token source has no newer one".into(),
                Err(reread) => format!("re-reading it failed: {reread}").into(),
            }
        };
        tracing::error!(
            why = why.as_ref(),
            error = %error,
            "Graph API refused the access token: replies cannot be sent until a valid system user \
             token is stored (WHATSAPP_SECRET_ID's access_token, or WHATSAPP_ACCESS_TOKEN)"
        );
        ControlFlow::Break(Err(error))
    }

    /// One blocking POST on the blocking pool.
    async fn post(&self, request: &Arc<Request>, token: &Secret) -> Result<(u16, Value), Failure> {
        let inner = self.inner.clone();
        let request = request.clone();
        let token = token.clone();
        tokio::task::spawn_blocking(move || inner.post(&request, &token))
            .await
            .unwrap_or_else(|aborted| {
                // Tokio's error is dropped: a panic's message may quote the request.
                let how = if aborted.is_panic() {
                    "panicked"
                } else {
                    "was cancelled"
                };
                Err(GraphError::Aborted(how).into())
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
        let span = call_span(
            Operation::Send,
            from,
            Some(to),
            context,
            Some(message.type_name()),
        );
        Box::pin(
            async move {
                let body = message.to_graph_body(to, context);
                let check = |status, answer: &Value| match SendAnswer::message_id(answer) {
                    Some(id) => Ok(MessageId(id)),
                    None => Err((
                        GraphError::Decode {
                            status,
                            body: excerpt_bytes(answer.to_string().as_bytes()),
                        },
                        "accepted without a message id",
                    )),
                };
                self.call(Operation::Send, from, &body, check).await
            }
            .instrument(span),
        )
    }

    fn mark_read<'a>(
        &'a self,
        from: &'a PhoneNumberId,
        message: &'a MessageId,
        typing: bool,
    ) -> BoxFuture<'a, Result<(), GraphError>> {
        let span = call_span(Operation::MarkRead, from, None, Some(message), None);
        Box::pin(
            async move {
                let body = ReadReceipt::new(message, typing);
                // Meta answers `{"success":true}`; only an explicit `false` is a failure.
                let check = |_, answer: &Value| {
                    if !ReadAnswer::refused(answer) {
                        return Ok(());
                    }
                    let error = GraphError::Unknown(format!(
                        "Graph API did not mark {message} read: {}",
                        excerpt_bytes(answer.to_string().as_bytes())
                    ));
                    Err((error, "answered success: false"))
                };
                self.call(Operation::MarkRead, from, &body, check).await
            }
            .instrument(span),
        )
    }
}

/// A request ready to post, encoded once for every attempt.
struct Request {
    url: String,
    body: Vec<u8>,
}

impl Inner {
    fn request<B: Serialize + ?Sized>(
        &self,
        from: &PhoneNumberId,
        body: &B,
    ) -> Result<Request, GraphError> {
        if !is_path_safe(from.as_str()) {
            return Err(GraphError::InvalidPhoneNumberId(redact::scrub(
                from.as_str(),
            )));
        }
        let body = serde_json::to_vec(body).map_err(GraphError::Encode)?;
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
        other => GraphError::Transport(other),
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

/// The span of one call: every line of the call carries what it is (never the token; the
/// recipient masked; the message answered or marked read by its log id). At ERROR level so
/// that it is enabled at every log level: with `AWS_LAMBDA_LOG_LEVEL=warn` an INFO span would
/// be off, and its fields missing from the WARN and ERROR lines inside it.
fn call_span(
    operation: Operation,
    from: &PhoneNumberId,
    to: Option<&Recipient>,
    message: Option<&MessageId>,
    kind: Option<&'static str>,
) -> Span {
    tracing::error_span!(
        "graph_call",
        operation = operation.as_str(),
        phone_number_id = %from,
        to = to.map(|to| mask(to.as_str())),
        message_id = message.map(field::display),
        kind,
    )
}

/// Meta's answer to the current attempt, on its span: the HTTP status, and Meta's error code,
/// subcode and fbtrace_id (scrubbed) when the answer is Meta's error.
fn record_answer(error: &GraphError) {
    let span = Span::current();
    match error {
        GraphError::Api {
            status,
            code,
            subcode,
            fbtrace_id,
            ..
        } => {
            span.record("status", status);
            span.record("code", code);
            // Only fields with a value: the plain formatter writes a separator for every record.
            if let Some(subcode) = subcode {
                span.record("subcode", subcode);
            }
            if let Some(fbtrace_id) = fbtrace_id {
                span.record("fbtrace_id", fbtrace_id.as_str());
            }
        }
        GraphError::Decode { status, .. } => {
            span.record("status", status);
        }
        _ => {}
    }
}

/// The line where a call ends with `error`, for the reason `why`: the one line with Meta's
/// text (or the excerpt of an unreadable answer). Meta's codes are on the attempt's span.
fn failed(error: &GraphError, why: &str, started: Instant) {
    let retryable = error.is_retryable();
    let elapsed_ms = elapsed_ms(started);
    match error {
        GraphError::Api { message, .. } => tracing::warn!(
            retryable,
            why,
            elapsed_ms,
            error_message = %message,
            "Graph API error"
        ),
        GraphError::Decode { body, .. } => tracing::warn!(
            retryable,
            why,
            elapsed_ms,
            body = %body,
            "Graph API answer unreadable"
        ),
        other => tracing::warn!(
            retryable,
            why,
            elapsed_ms,
            error = %other,
            "Graph API call failed"
        ),
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    millis(started.elapsed())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

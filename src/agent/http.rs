//! `AGENT_BACKEND=http`: POST the contract request to `AGENT_URL` with ureq, off the async
//! runtime, and read the contract reply back: one JSON reply, or (`Content-Type:
//! application/x-ndjson`) one reply per line, each handed on as soon as its line arrives.

use super::stream::{NDJSON, read_ndjson};
use super::{Agent, AgentError, AgentReply, AgentRequest, Part, ReplyStream, TransportError};
use crate::BoxFuture;
use crate::domain::log_id;
use crate::redact::excerpt_bytes;
use crate::secrets::Secret;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest agent answer read: a WhatsApp reply is at most a few 4096-character messages, so a
/// bigger body is a bug on the agent's side, not something to buffer.
pub const MAX_REPLY_BYTES: u64 = 1024 * 1024;
/// How much of a failed answer is read for the error excerpt.
const MAX_ERROR_BODY_BYTES: u64 = 16 * 1024;

/// Calls an HTTP agent. Cheap to share: one ureq agent (connection pool) for every call.
pub struct HttpAgent {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    token: Option<Secret>,
    timeout: Duration,
    http: ureq::Agent,
}

impl HttpAgent {
    /// `timeout` bounds the whole call: connect, send, the agent's thinking, and the answer.
    pub fn new(url: String, token: Option<Secret>, timeout: Duration) -> Self {
        let http = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            // Redirecting a POST would drop its body; an agent URL must point at the agent.
            .max_redirects(0)
            .build()
            .into();
        Self {
            inner: Arc::new(Inner {
                url,
                token: token.filter(|token| !token.is_empty()),
                timeout,
                http,
            }),
        }
    }
}

impl Agent for HttpAgent {
    fn ask<'a>(
        &'a self,
        request: &'a AgentRequest,
    ) -> BoxFuture<'a, Result<Option<AgentReply>, AgentError>> {
        Box::pin(async move {
            // The whole answer: a streamed one is gathered into one reply.
            let mut stream = self.ask_stream(request);
            let mut parts = Vec::new();
            while let Some(part) = stream.next().await {
                parts.push(part?);
            }
            Ok(merge(parts))
        })
    }

    fn ask_stream<'a>(&'a self, request: &'a AgentRequest) -> ReplyStream<'a> {
        let (sender, stream) = ReplyStream::channel();
        let message_id = request.event.id.clone();
        let body = match serde_json::to_vec(request) {
            Ok(body) => body,
            Err(error) => {
                let failed = AgentError::Config(format!("request not encodable: {error}"));
                return ReplyStream::whole(Box::pin(async move { Err(failed) }));
            }
        };
        let inner = self.inner.clone();
        let on_abort = sender.clone();
        tracing::debug!(message_id = %log_id(&message_id), bytes = body.len(), "asking the agent");
        let call = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let mut failed = None;
            let mut parts = 0;
            let status = inner.call(&message_id, &body, &mut |part: Part| {
                match &part {
                    Ok(_) => parts += 1,
                    Err(error) => failed = Some(error.to_string()),
                }
                if let Err(error) = &part {
                    log_failure(&message_id, elapsed_ms(started), error);
                }
                sender.send_blocking(part)
            });
            if failed.is_none() {
                tracing::info!(
                    message_id = %log_id(&message_id),
                    status,
                    elapsed_ms = elapsed_ms(started),
                    parts,
                    replied = parts > 0,
                    "agent answered"
                );
            }
        });
        // A call whose task panicked (or was cancelled) ends the stream with that failure.
        tokio::spawn(async move {
            if let Err(error) = call.await {
                let error = aborted(&error);
                tracing::error!(%error, "agent call aborted");
                on_abort.send(Err(error)).await;
            }
        });
        stream
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Several parts of a streamed answer as one reply (for callers that want it whole): the texts
/// joined by blank lines, every attachment and left-out part, the last status, buttons and list.
fn merge(parts: Vec<AgentReply>) -> Option<AgentReply> {
    let mut parts = parts.into_iter();
    let mut merged = parts.next()?;
    for part in parts {
        merged.text = match (merged.text.take(), part.text) {
            (Some(before), Some(after)) => Some(format!("{before}\n\n{after}")),
            (before, after) => before.or(after),
        };
        merged.status = part.status.or(merged.status);
        if !part.actions.is_empty() {
            merged.actions = part.actions;
        }
        if part.list.is_some() {
            merged.list = part.list;
        }
        merged.attachments.extend(part.attachments);
        merged.dropped.extend(part.dropped);
    }
    Some(merged)
}

impl Inner {
    /// The blocking call: hands each part of the answer to `emit` (an error ends it) and returns
    /// the HTTP status (0 when there was no answer).
    fn call(&self, message_id: &str, body: &[u8], emit: &mut dyn FnMut(Part) -> bool) -> u16 {
        let mut builder = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, application/x-ndjson")
            .header("Idempotency-Key", message_id);
        if let Some(token) = &self.token {
            builder = builder.header("Authorization", format!("Bearer {}", token.expose()));
        }
        let mut response = match builder.send(body) {
            Ok(response) => response,
            Err(error) => {
                emit(Err(self.transport_error(error)));
                return 0;
            }
        };
        let status = response.status().as_u16();
        if status == 204 {
            return status;
        }
        if !(200..300).contains(&status) {
            let mut bytes = Vec::new();
            // The excerpt is best effort: a failed read leaves what arrived.
            let _ = response
                .body_mut()
                .as_reader()
                .take(MAX_ERROR_BODY_BYTES)
                .read_to_end(&mut bytes);
            emit(Err(AgentError::Status {
                status,
                body: excerpt_bytes(&bytes),
            }));
            return status;
        }
        let streamed = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.trim().to_ascii_lowercase().starts_with(NDJSON));
        if streamed {
            let reader = std::io::BufReader::new(response.body_mut().as_reader());
            read_ndjson(
                reader,
                MAX_REPLY_BYTES,
                decode,
                |error| self.read_error(error),
                emit,
            );
            return status;
        }
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_vec()
            .map_err(|error| match error {
                ureq::Error::BodyExceedsLimit(_) => AgentError::TooLarge {
                    limit: MAX_REPLY_BYTES,
                },
                other => self.transport_error(other),
            });
        match bytes.and_then(|bytes| decode(&bytes)) {
            Ok(Some(reply)) => {
                emit(Ok(reply));
            }
            Ok(None) => {}
            Err(error) => {
                emit(Err(error));
            }
        }
        status
    }

    /// A failure reading a streamed answer: ureq wraps its own errors (a timeout) in I/O errors.
    fn read_error(&self, error: std::io::Error) -> AgentError {
        match error.downcast::<ureq::Error>() {
            Ok(error) => self.transport_error(error),
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                AgentError::Timeout(self.timeout)
            }
            Err(error) => self.transport_error(ureq::Error::Io(error)),
        }
    }

    fn transport_error(&self, error: ureq::Error) -> AgentError {
        transport_error(error, self.timeout)
    }
}

/// The blocking call's task ended without an answer. Not the `JoinError` itself: a panic's
/// message may quote the request (the user's message).
fn aborted(error: &tokio::task::JoinError) -> AgentError {
    AgentError::Transport(TransportError::Aborted {
        panicked: error.is_panic(),
    })
}

/// A failed ureq call as an agent error: a timeout, a URL ureq cannot use (`Config`), or no
/// answer (`Transport`, ureq's error kept).
fn transport_error(error: ureq::Error, timeout: Duration) -> AgentError {
    match error {
        ureq::Error::Timeout(_) => AgentError::Timeout(timeout),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            AgentError::Timeout(timeout)
        }
        // These quote the URL, and `AGENT_URL` may hold a token in its query: named, not
        // quoted.
        ureq::Error::BadUri(_) => {
            AgentError::Config("AGENT_URL is not a usable URL (no scheme or host)".to_owned())
        }
        ureq::Error::RequireHttpsOnly(_) => {
            AgentError::Config("AGENT_URL must be https".to_owned())
        }
        // The http crate's errors name what is wrong, not the value.
        ureq::Error::Http(_) => AgentError::Config(error.to_string()),
        source => AgentError::Transport(TransportError::Http { source }),
    }
}

/// A 2xx body: empty, whitespace or `null` means no reply; otherwise it must be the contract.
fn decode(bytes: &[u8]) -> Result<Option<AgentReply>, AgentError> {
    if bytes.trim_ascii().is_empty() || bytes.trim_ascii() == b"null" {
        return Ok(None);
    }
    // serde's messages quote the offending value (which may be a phone number): scrubbed.
    let decode_error = |error: String| AgentError::Decode {
        error: crate::redact::scrub(&error),
        body: excerpt_bytes(bytes),
    };
    // Through `Value` first: serde would otherwise accept a JSON array as a struct.
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|error| decode_error(error.to_string()))?;
    if !value.is_object() {
        return Err(decode_error("the reply is not a JSON object".to_owned()));
    }
    let reply: AgentReply =
        serde_json::from_value(value).map_err(|error| decode_error(error.to_string()))?;
    // Some parts may have been left out (logged); only a reply with none readable fails.
    if reply.is_unreadable() {
        return Err(decode_error(reply.unreadable_reason()));
    }
    Ok(Some(reply))
}

/// Warn with what identifies the failure; the body excerpt only at debug.
fn log_failure(message_id: &str, elapsed_ms: u64, error: &AgentError) {
    let retryable = error.is_retryable();
    match error {
        AgentError::Status { status, body } => {
            tracing::warn!(
                message_id = %log_id(message_id),
                status,
                elapsed_ms,
                retryable,
                "agent answered with an error status"
            );
            tracing::debug!(message_id = %log_id(message_id), status, body = %crate::redact::scrub(body), "agent error body");
        }
        AgentError::Decode {
            error: reason,
            body,
        } => {
            tracing::warn!(message_id = %log_id(message_id), elapsed_ms, reason = %reason, "agent answer is not a valid reply");
            tracing::debug!(message_id = %log_id(message_id), body = %crate::redact::scrub(body), "agent answer body");
        }
        other => {
            tracing::warn!(message_id = %log_id(message_id), elapsed_ms, retryable, error = %other, "agent call failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    const TIMEOUT: Duration = Duration::from_secs(5);

    #[test]
    fn a_failed_connection_keeps_ureqs_error_as_the_source() {
        let error = transport_error(ureq::Error::ConnectionFailed, TIMEOUT);
        assert!(error.is_retryable());
        assert_eq!(error.to_string(), "agent unreachable: connection failed");
        let transport = error.source().expect("the transport error");
        let ureq = transport
            .source()
            .and_then(|source| source.downcast_ref::<ureq::Error>())
            .expect("ureq's error, typed");
        assert!(matches!(ureq, ureq::Error::ConnectionFailed));
        assert!(matches!(
            transport_error(ureq::Error::Timeout(ureq::Timeout::Global), TIMEOUT),
            AgentError::Timeout(TIMEOUT)
        ));
    }

    #[test]
    fn errors_that_quote_the_url_are_configuration_errors_without_it() {
        // A token in AGENT_URL's query must not reach a log through an error.
        let url = "https://agent.example/run?code=s3cr3t-token";
        for error in [
            ureq::Error::BadUri(format!("{url} is missing host")),
            ureq::Error::RequireHttpsOnly(url.to_owned()),
        ] {
            let error = transport_error(error, TIMEOUT);
            assert!(matches!(error, AgentError::Config(_)), "{error:?}");
            assert!(!error.is_retryable());
            assert!(
                !format!("{error} {error:?}").contains("s3cr3t"),
                "{error:?}"
            );
        }
    }

    #[tokio::test]
    async fn an_aborted_call_says_how_without_the_tasks_error() {
        let task = tokio::spawn(std::future::pending::<()>());
        task.abort();
        let cancelled = aborted(&task.await.unwrap_err());
        assert!(cancelled.is_retryable());
        assert_eq!(
            cancelled.to_string(),
            "agent unreachable: agent call aborted: the call was cancelled"
        );
        let panicked = AgentError::Transport(TransportError::Aborted { panicked: true });
        assert_eq!(
            panicked.to_string(),
            "agent unreachable: agent call aborted: the call panicked"
        );
        // Nothing behind it: the panic's message is not kept.
        assert!(panicked.source().and_then(|s| s.source()).is_none());
    }

    #[test]
    fn empty_whitespace_and_null_bodies_mean_no_reply() {
        for body in [&b""[..], b"  \n", b"null"] {
            assert!(decode(body).unwrap().is_none());
        }
        assert!(decode(br#"{"text":"hi"}"#).unwrap().is_some());
        assert!(matches!(decode(b"<html>"), Err(AgentError::Decode { .. })));
        assert!(matches!(
            decode(br#"["text"]"#),
            Err(AgentError::Decode { .. })
        ));
    }

    #[test]
    fn a_bad_part_is_left_out_and_only_a_reply_with_nothing_readable_fails() {
        let reply =
            decode(br#"{"text":"hi","attachments":[{"type":"hologram","url":"https://x.y/a"}]}"#)
                .unwrap()
                .unwrap();
        assert_eq!(reply.text.as_deref(), Some("hi"));
        assert!(reply.attachments.is_empty());
        assert_eq!(reply.dropped.len(), 1);
        let Err(AgentError::Decode { error, .. }) =
            decode(br#"{"attachments":[{"type":null,"url":"https://x.y/a"}]}"#)
        else {
            panic!("expected a decode error");
        };
        assert!(error.contains("attachments[0]: no type"), "{error}");
    }
}

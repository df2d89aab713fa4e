//! Faults end to end through `Pipeline::handle`: a failing agent (the real `HttpAgent` against a
//! loopback fake) gives the user exactly one ❌ message, or a retry when one is still possible;
//! a failing Graph API (the real `GraphClient` against a loopback fake) is retried within
//! bounds, its token re-read once when refused, and the user never gets a part twice.

mod support;

use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::net::free_port;
use whatsapp_agent_lambda::BoxFuture;
use whatsapp_agent_lambda::agent::{Agent, AgentReply, HttpAgent, ScriptedAgent};
use whatsapp_agent_lambda::dev::LoopbackServer;
use whatsapp_agent_lambda::domain::{
    Channel, InboundMessage, MessageId, MessageKind, PhoneNumberId, Sender,
};
use whatsapp_agent_lambda::domain::{OutgoingMessage, Recipient};
use whatsapp_agent_lambda::entry::local::handler;
use whatsapp_agent_lambda::graph::{
    Backoff, GraphClient, GraphError, Messenger, RETRYABLE_CODES, RecordingMessenger,
};
use whatsapp_agent_lambda::idempotency::MemoryIdempotency;
use whatsapp_agent_lambda::pipeline::{Attempt, Outcome, Pipeline};
use whatsapp_agent_lambda::reply::{AGENT_FAILED_PERMANENT_TEXT, AGENT_FAILED_TEXT};
use whatsapp_agent_lambda::secrets::{Secret, SecretsError, TokenSource};
use whatsapp_agent_lambda::webhook::answer::{body_bytes, response};

const PHONE_NUMBER_ID: &str = "106540352242922";
const USER_PHONE: &str = "14155551234";
const OLD_TOKEN: &str = "EAAG-old-token";
const NEW_TOKEN: &str = "EAAG-rotated-token";
/// Put in every fake agent answer: it must never reach the user.
const AGENT_INTERNALS: &str = "Traceback: db password=hunter2";
const AGENT_TIMEOUT: Duration = Duration::from_millis(500);
const GRAPH_TIMEOUT: Duration = Duration::from_secs(5);

fn message(id: &str) -> InboundMessage {
    InboundMessage {
        id: MessageId::from(id),
        timestamp: 1_795_000_000,
        sender: Sender {
            phone: Some(USER_PHONE.to_owned()),
            bsuid: None,
            display_name: Some("John Doe".to_owned()),
        },
        channel: Channel {
            phone_number_id: PhoneNumberId::from(PHONE_NUMBER_ID),
            display_phone_number: Some("15550001111".to_owned()),
            business_account_id: None,
        },
        reply_to: None,
        kind: MessageKind::Text {
            body: "pods crashing in prod".to_owned(),
        },
    }
}

fn pipeline(agent: Arc<dyn Agent>, messenger: Arc<dyn Messenger>) -> Pipeline {
    Pipeline::new(agent, messenger, Arc::new(MemoryIdempotency::default()))
        .with_lease(Duration::from_secs(60))
}

// ---------------------------------------------------------------- agent faults

/// How the fake agent misbehaves.
#[derive(Clone, Copy, Debug)]
enum AgentFault {
    /// Answers after the agent timeout.
    Slow,
    Status(u16),
    MalformedJson,
    /// A valid reply over `MAX_REPLY_BYTES`.
    Oversized,
    WrongTypes,
    /// Nothing listens on the agent's port.
    Unreachable,
}

impl AgentFault {
    fn is_retryable(self) -> bool {
        match self {
            Self::Slow | Self::Unreachable => true,
            Self::Status(status) => status >= 500 || status == 429,
            Self::MalformedJson | Self::Oversized | Self::WrongTypes => false,
        }
    }
}

/// The real HTTP agent against a fake showing `fault` (keep the server alive).
fn failing_agent(fault: AgentFault) -> (Option<LoopbackServer>, Arc<HttpAgent>) {
    if let AgentFault::Unreachable = fault {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}/agent");
        return (None, Arc::new(HttpAgent::new(url, None, AGENT_TIMEOUT)));
    }
    let server = LoopbackServer::start(handler(move |_request: Request| async move {
        match fault {
            AgentFault::Slow => {
                tokio::time::sleep(AGENT_TIMEOUT * 4).await;
                response(200, "application/json", r#"{"text":"too late"}"#)
            }
            AgentFault::Status(status) => response(status, "text/plain", AGENT_INTERNALS),
            AgentFault::MalformedJson => response(
                200,
                "application/json",
                format!(r#"{{"text": "{AGENT_INTERNALS}"#),
            ),
            AgentFault::Oversized => response(
                200,
                "application/json",
                format!(
                    r#"{{"text":"{AGENT_INTERNALS} {}"}}"#,
                    "a".repeat(1024 * 1024 + 1)
                ),
            ),
            AgentFault::WrongTypes => response(
                200,
                "application/json",
                format!(r#"{{"text": 42, "actions": "{AGENT_INTERNALS}"}}"#),
            ),
            AgentFault::Unreachable => unreachable!(),
        }
    }));
    let url = format!("{}/agent", server.url());
    (
        Some(server),
        Arc::new(HttpAgent::new(url, None, AGENT_TIMEOUT)),
    )
}

/// On the last attempt the user gets exactly the ❌ message, never the agent's body.
async fn last_attempt_tells_the_user_once(fault: AgentFault) {
    let (_server, agent) = failing_agent(fault);
    let messenger = Arc::new(RecordingMessenger::new());
    let pipeline = pipeline(agent, messenger.clone());
    let outcome = pipeline
        .handle(&message("wamid.IN.agent.last"), Attempt::Last)
        .await;
    assert_eq!(
        outcome,
        Outcome::AgentFailed {
            retryable: fault.is_retryable()
        },
        "{fault:?}"
    );
    // "Try again" only when trying again may help.
    let expected = if fault.is_retryable() {
        AGENT_FAILED_TEXT
    } else {
        AGENT_FAILED_PERMANENT_TEXT
    };
    assert_eq!(messenger.texts(), vec![expected], "{fault:?}");
    assert_eq!(messenger.send_attempts(), 1, "{fault:?}");
    let sent = format!("{:?}", messenger.sent());
    assert!(
        !sent.contains("hunter2") && !sent.contains("Traceback"),
        "{sent}"
    );
    // The ❌ quotes the user's message, like any answer.
    assert_eq!(
        messenger.sent()[0].context,
        Some(MessageId::from("wamid.IN.agent.last"))
    );
}

#[tokio::test]
async fn agent_timeout_on_the_last_attempt_sends_one_failure_message() {
    last_attempt_tells_the_user_once(AgentFault::Slow).await;
}

#[tokio::test]
async fn agent_500_on_the_last_attempt_sends_one_failure_message() {
    last_attempt_tells_the_user_once(AgentFault::Status(500)).await;
}

#[tokio::test]
async fn agent_400_on_the_last_attempt_sends_one_failure_message() {
    last_attempt_tells_the_user_once(AgentFault::Status(400)).await;
}

#[tokio::test]
async fn agent_malformed_json_on_the_last_attempt_sends_one_failure_message() {
    last_attempt_tells_the_user_once(AgentFault::MalformedJson).await;
}

#[tokio::test]
async fn agent_oversized_answer_on_the_last_attempt_sends_one_failure_message() {
    last_attempt_tells_the_user_once(AgentFault::Oversized).await;
}

#[tokio::test]
async fn agent_wrong_field_types_on_the_last_attempt_send_one_failure_message() {
    last_attempt_tells_the_user_once(AgentFault::WrongTypes).await;
}

#[tokio::test]
async fn agent_unreachable_on_the_last_attempt_sends_one_failure_message() {
    last_attempt_tells_the_user_once(AgentFault::Unreachable).await;
}

#[tokio::test]
async fn retryable_agent_faults_send_nothing_and_ask_for_a_retry() {
    for fault in [
        AgentFault::Slow,
        AgentFault::Status(500),
        AgentFault::Status(503),
        AgentFault::Unreachable,
    ] {
        let (_server, agent) = failing_agent(fault);
        let messenger = Arc::new(RecordingMessenger::new());
        let pipeline = pipeline(agent, messenger.clone());
        let outcome = pipeline
            .handle(&message("wamid.IN.agent.retry"), Attempt::Retryable)
            .await;
        assert!(
            matches!(outcome, Outcome::Retry { .. }),
            "{fault:?}: {outcome:?}"
        );
        assert_eq!(messenger.send_attempts(), 0, "{fault:?}");
    }
}

#[tokio::test]
async fn permanent_agent_faults_tell_the_user_even_when_retries_remain() {
    for fault in [
        AgentFault::Status(400),
        AgentFault::MalformedJson,
        AgentFault::WrongTypes,
    ] {
        let (_server, agent) = failing_agent(fault);
        let messenger = Arc::new(RecordingMessenger::new());
        let pipeline = pipeline(agent, messenger.clone());
        let outcome = pipeline
            .handle(&message("wamid.IN.agent.permanent"), Attempt::Retryable)
            .await;
        assert_eq!(
            outcome,
            Outcome::AgentFailed { retryable: false },
            "{fault:?}"
        );
        assert_eq!(
            messenger.texts(),
            vec![AGENT_FAILED_PERMANENT_TEXT],
            "{fault:?}"
        );
    }
}

/// What SQS does: deliveries while retries remain, then the last one. One ❌ in all.
#[tokio::test]
async fn agent_failing_on_every_delivery_gets_one_failure_message_in_all() {
    let (_server, agent) = failing_agent(AgentFault::Status(502));
    let messenger = Arc::new(RecordingMessenger::new());
    let pipeline = pipeline(agent, messenger.clone());
    let message = message("wamid.IN.agent.redelivered");
    for _ in 0..2 {
        assert!(matches!(
            pipeline.handle(&message, Attempt::Retryable).await,
            Outcome::Retry { .. }
        ));
    }
    assert_eq!(
        pipeline.handle(&message, Attempt::Last).await,
        Outcome::AgentFailed { retryable: true }
    );
    assert_eq!(
        pipeline.handle(&message, Attempt::Last).await,
        Outcome::Duplicate
    );
    assert_eq!(messenger.texts(), vec![AGENT_FAILED_TEXT]);
}

// ---------------------------------------------------------------- Graph API faults

/// One request as the fake Graph API saw it.
#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    body: Value,
    at: Instant,
}

impl Seen {
    fn is_read_receipt(&self) -> bool {
        self.body["status"] == "read"
    }

    fn bearer(&self) -> Option<&str> {
        self.authorization.as_deref()?.strip_prefix("Bearer ")
    }
}

type Answer = dyn Fn(&Seen, usize) -> Response<Body> + Send + Sync;

/// A fake Graph API: `answer(request, n)` answers the `n`-th send (from 0); read receipts
/// succeed unless `read_answer` says otherwise.
struct FakeGraph {
    server: LoopbackServer,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeGraph {
    fn start(answer: impl Fn(&Seen, usize) -> Response<Body> + Send + Sync + 'static) -> Self {
        Self::with_reads(answer, |_: &Seen, _| success_read())
    }

    fn with_reads(
        send_answer: impl Fn(&Seen, usize) -> Response<Body> + Send + Sync + 'static,
        read_answer: impl Fn(&Seen, usize) -> Response<Body> + Send + Sync + 'static,
    ) -> Self {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        let send_answer: Arc<Answer> = Arc::new(send_answer);
        let read_answer: Arc<Answer> = Arc::new(read_answer);
        let server = LoopbackServer::start(handler(move |request: Request| {
            let log = log.clone();
            let send_answer = send_answer.clone();
            let read_answer = read_answer.clone();
            async move {
                assert_eq!(
                    request.uri().path(),
                    format!("/v25.0/{PHONE_NUMBER_ID}/messages")
                );
                let request = Seen {
                    authorization: request
                        .headers()
                        .get("authorization")
                        .and_then(|value| value.to_str().ok())
                        .map(str::to_owned),
                    body: serde_json::from_slice(body_bytes(request.body())).unwrap(),
                    at: Instant::now(),
                };
                let index = {
                    let mut seen = log.lock().unwrap();
                    let index = seen
                        .iter()
                        .filter(|s| s.is_read_receipt() == request.is_read_receipt())
                        .count();
                    seen.push(request.clone());
                    index
                };
                if request.is_read_receipt() {
                    read_answer(&request, index)
                } else {
                    send_answer(&request, index)
                }
            }
        }));
        Self { server, seen }
    }

    fn sends(&self) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|s| !s.is_read_receipt())
            .cloned()
            .collect()
    }

    fn reads(&self) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|s| s.is_read_receipt())
            .cloned()
            .collect()
    }

    /// A client with the given token and a short backoff.
    fn client(&self, token: &str) -> GraphClient {
        GraphClient::new(
            &self.server.url(),
            "v25.0",
            Secret::from(token),
            GRAPH_TIMEOUT,
        )
        .with_backoff(fast_backoff())
    }

    fn client_with(&self, tokens: Arc<dyn TokenSource>) -> GraphClient {
        GraphClient::with_token_source(&self.server.url(), "v25.0", tokens, GRAPH_TIMEOUT)
            .with_backoff(fast_backoff())
    }
}

/// The production policy with a 10 ms base, so tests do not sleep for long.
fn fast_backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(10),
        ..Backoff::default()
    }
}

fn success_send(n: usize) -> Response<Body> {
    response(
        200,
        "application/json",
        json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": USER_PHONE, "wa_id": USER_PHONE}],
            "messages": [{"id": format!("wamid.OUT.{n}")}]
        })
        .to_string(),
    )
}

fn success_read() -> Response<Body> {
    response(200, "application/json", r#"{"success":true}"#)
}

/// Meta's error body with `code`, answered with `status` and an optional `Retry-After`.
fn meta_error(status: u16, code: i64, retry_after: Option<&str>) -> Response<Body> {
    let body = json!({"error": {
        "message": format!("(#{code}) fake error"),
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": "fake details"},
        "fbtrace_id": format!("trace-{code}")
    }})
    .to_string();
    let mut builder = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(seconds) = retry_after {
        builder = builder.header("retry-after", seconds);
    }
    builder.body(Body::from(body)).unwrap()
}

fn answering_agent() -> Arc<ScriptedAgent> {
    Arc::new(ScriptedAgent::replying_text("All pods healthy"))
}

#[tokio::test]
async fn graph_429_with_retry_after_waits_and_delivers_one_reply() {
    let graph = FakeGraph::start(|_, n| match n {
        0 => meta_error(429, 130429, Some("1")),
        n => success_send(n),
    });
    let pipeline = pipeline(answering_agent(), Arc::new(graph.client(OLD_TOKEN)));
    let started = Instant::now();
    let outcome = pipeline
        .handle(&message("wamid.IN.graph.429"), Attempt::Retryable)
        .await;
    assert_eq!(outcome, Outcome::Replied { messages: 1 });
    let sends = graph.sends();
    assert_eq!(sends.len(), 2, "{sends:?}");
    assert_eq!(sends[0].body, sends[1].body, "the same part, sent again");
    assert_eq!(sends[1].body["text"]["body"], "All pods healthy");
    let waited = sends[1].at - sends[0].at;
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After ignored: {waited:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn graph_503_three_times_gives_up_after_exactly_three_attempts() {
    for (attempt, expected) in [
        (Attempt::Retryable, "retry"),
        (Attempt::Last, "send failed"),
    ] {
        let graph = FakeGraph::start(|_, _| meta_error(503, 2, None));
        let pipeline = pipeline(answering_agent(), Arc::new(graph.client(OLD_TOKEN)));
        let started = Instant::now();
        let outcome = pipeline
            .handle(&message("wamid.IN.graph.503"), attempt)
            .await;
        match expected {
            "retry" => assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}"),
            _ => assert_eq!(outcome, Outcome::SendFailed { sent: 0 }),
        }
        let sends = graph.sends();
        assert_eq!(sends.len(), 3, "{attempt:?}: {sends:?}");
        // Backoff: the second retry waits at least half of twice the base.
        assert!(sends[1].at - sends[0].at >= Duration::from_millis(5));
        assert!(sends[2].at - sends[1].at >= Duration::from_millis(10));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}

#[tokio::test]
async fn graph_131047_is_not_retried() {
    let graph = FakeGraph::start(|_, _| meta_error(400, 131047, None));
    let pipeline = pipeline(answering_agent(), Arc::new(graph.client(OLD_TOKEN)));
    let outcome = pipeline
        .handle(&message("wamid.IN.graph.131047"), Attempt::Retryable)
        .await;
    // Not `Retry`: a later attempt cannot succeed until the user writes again. The reply is
    // kept in the conversation and goes out with the answer to their next message.
    assert_eq!(outcome, Outcome::Kept { parts: 1 });
    assert_eq!(graph.sends().len(), 1);
}

/// A token source whose refresh hands out `NEW_TOKEN`, counting refreshes.
struct RotatingToken {
    current: Mutex<Secret>,
    refreshes: AtomicUsize,
}

impl RotatingToken {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            current: Mutex::new(Secret::from(OLD_TOKEN)),
            refreshes: AtomicUsize::new(0),
        })
    }

    fn refreshes(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }
}

impl TokenSource for RotatingToken {
    fn current(&self) -> Secret {
        self.current.lock().unwrap().clone()
    }

    fn refresh(&self) -> BoxFuture<'_, Result<Secret, SecretsError>> {
        Box::pin(async move {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
            let fresh = Secret::from(NEW_TOKEN);
            *self.current.lock().unwrap() = fresh.clone();
            Ok(fresh)
        })
    }
}

#[tokio::test]
async fn graph_190_refreshes_the_token_once_and_delivers_one_reply() {
    let graph = FakeGraph::start(|_, n| match n {
        0 => meta_error(401, 190, None),
        n => success_send(n),
    });
    let tokens = RotatingToken::new();
    let pipeline = pipeline(
        answering_agent(),
        Arc::new(graph.client_with(tokens.clone())),
    );
    let outcome = pipeline
        .handle(&message("wamid.IN.graph.190"), Attempt::Retryable)
        .await;
    assert_eq!(outcome, Outcome::Replied { messages: 1 });
    assert_eq!(tokens.refreshes(), 1);
    let sends = graph.sends();
    let bearers: Vec<_> = sends.iter().map(Seen::bearer).collect();
    assert_eq!(bearers, vec![Some(OLD_TOKEN), Some(NEW_TOKEN)]);
    assert_eq!(sends[0].body, sends[1].body);
}

#[tokio::test]
async fn graph_refusing_the_old_token_everywhere_refreshes_once_at_the_read_receipt() {
    let refuse_old = |seen: &Seen, ok: Response<Body>| {
        if seen.bearer() == Some(NEW_TOKEN) {
            ok
        } else {
            meta_error(401, 190, None)
        }
    };
    let graph = FakeGraph::with_reads(
        move |seen, n| refuse_old(seen, success_send(n)),
        move |seen, _| refuse_old(seen, success_read()),
    );
    let tokens = RotatingToken::new();
    let pipeline = pipeline(
        answering_agent(),
        Arc::new(graph.client_with(tokens.clone())),
    );
    let outcome = pipeline
        .handle(&message("wamid.IN.graph.rotated"), Attempt::Retryable)
        .await;
    assert_eq!(outcome, Outcome::Replied { messages: 1 });
    assert_eq!(tokens.refreshes(), 1);
    let reads: Vec<_> = graph
        .reads()
        .iter()
        .map(|s| s.bearer().map(str::to_owned))
        .collect();
    assert_eq!(
        reads,
        vec![Some(OLD_TOKEN.to_owned()), Some(NEW_TOKEN.to_owned())]
    );
    let sends = graph.sends();
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].bearer(), Some(NEW_TOKEN));
}

#[tokio::test]
async fn graph_refusing_the_new_token_too_fails_after_one_refresh() {
    let graph = FakeGraph::start(|_, _| meta_error(401, 190, None));
    let tokens = RotatingToken::new();
    let pipeline = pipeline(
        answering_agent(),
        Arc::new(graph.client_with(tokens.clone())),
    );
    let outcome = pipeline
        .handle(&message("wamid.IN.graph.190.twice"), Attempt::Retryable)
        .await;
    assert_eq!(outcome, Outcome::SendFailed { sent: 0 });
    assert_eq!(tokens.refreshes(), 1);
    let bearers: Vec<_> = graph
        .sends()
        .iter()
        .map(|s| s.bearer().map(str::to_owned))
        .collect();
    assert_eq!(
        bearers,
        vec![Some(OLD_TOKEN.to_owned()), Some(NEW_TOKEN.to_owned())]
    );
}

#[tokio::test]
async fn graph_401_with_a_static_token_is_not_retried() {
    let graph = FakeGraph::start(|_, _| meta_error(401, 190, None));
    let client = graph.client(OLD_TOKEN);
    let error = client
        .send(
            &PhoneNumberId::from(PHONE_NUMBER_ID),
            &Recipient::Phone(USER_PHONE.to_owned()),
            &OutgoingMessage::Text {
                body: "hi".to_owned(),
            },
            None,
        )
        .await
        .unwrap_err();
    assert!(error.is_token_refused(), "{error:?}");
    assert_eq!(graph.sends().len(), 1);
}

#[tokio::test]
async fn graph_retry_after_beyond_the_cap_gives_up_at_once() {
    let graph = FakeGraph::start(|_, _| meta_error(429, 130429, Some("60")));
    let pipeline = pipeline(answering_agent(), Arc::new(graph.client(OLD_TOKEN)));
    let started = Instant::now();
    let outcome = pipeline
        .handle(&message("wamid.IN.graph.retry-after"), Attempt::Retryable)
        .await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
    assert_eq!(graph.sends().len(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn graph_throttling_and_temporary_codes_are_retried() {
    for code in RETRYABLE_CODES.iter().copied() {
        let graph = FakeGraph::start(move |_, n| match n {
            0 => meta_error(400, code, None),
            n => success_send(n),
        });
        let client = graph.client(OLD_TOKEN);
        let id = client
            .send(
                &PhoneNumberId::from(PHONE_NUMBER_ID),
                &Recipient::Phone(USER_PHONE.to_owned()),
                &OutgoingMessage::Text {
                    body: "hi".to_owned(),
                },
                None,
            )
            .await
            .unwrap_or_else(|error| panic!("code {code}: {error:?}"));
        assert_eq!(id.as_str(), "wamid.OUT.1", "code {code}");
        assert_eq!(graph.sends().len(), 2, "code {code}");
    }
}

#[tokio::test]
async fn graph_timeout_is_retried() {
    let graph = FakeGraph::start(|_, n| {
        if n == 0 {
            std::thread::sleep(Duration::from_millis(1500));
        }
        success_send(n)
    });
    let client = GraphClient::new(
        &graph.server.url(),
        "v25.0",
        Secret::from(OLD_TOKEN),
        Duration::from_millis(500),
    )
    .with_backoff(fast_backoff());
    let id = client
        .send(
            &PhoneNumberId::from(PHONE_NUMBER_ID),
            &Recipient::Phone(USER_PHONE.to_owned()),
            &OutgoingMessage::Text {
                body: "hi".to_owned(),
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(id.as_str(), "wamid.OUT.1");
    assert_eq!(graph.sends().len(), 2);
}

#[tokio::test]
async fn graph_unreachable_fails_within_bounds_after_retries() {
    let port = free_port();
    let client = GraphClient::new(
        &format!("http://127.0.0.1:{port}"),
        "v25.0",
        Secret::from(OLD_TOKEN),
        GRAPH_TIMEOUT,
    )
    .with_backoff(fast_backoff());
    let started = Instant::now();
    let error = client
        .send(
            &PhoneNumberId::from(PHONE_NUMBER_ID),
            &Recipient::Phone(USER_PHONE.to_owned()),
            &OutgoingMessage::Text {
                body: "hi".to_owned(),
            },
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(error, GraphError::Transport(_)), "{error:?}");
    assert!(error.is_retryable());
    // Two backoffs of at least 5 ms and 10 ms: the retries happened, and quickly.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(15) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn graph_read_receipt_is_not_retried_and_does_not_block_the_answer() {
    let graph = FakeGraph::with_reads(|_, n| success_send(n), |_, _| meta_error(503, 2, None));
    let pipeline = pipeline(answering_agent(), Arc::new(graph.client(OLD_TOKEN)));
    let outcome = pipeline
        .handle(&message("wamid.IN.graph.read"), Attempt::Retryable)
        .await;
    assert_eq!(outcome, Outcome::Replied { messages: 1 });
    assert_eq!(graph.reads().len(), 1);
    assert_eq!(graph.sends().len(), 1);
}

/// A two-part reply whose second part keeps failing: the first part is never sent again, not
/// by the client and not by a queue retry, and the agent is not asked again: the retry sends
/// only the part that was kept.
#[tokio::test]
async fn a_failing_second_part_never_resends_the_first() {
    let graph = FakeGraph::start(|_, n| match n {
        0 => success_send(n),
        _ => meta_error(500, 131000, None),
    });
    let long = format!("{}\n\n{}", "a".repeat(3000), "b".repeat(3000));
    let agent = Arc::new(ScriptedAgent::new(move |_| {
        Ok(Some(AgentReply::text(None, long.clone())))
    }));
    let pipeline = pipeline(agent.clone(), Arc::new(graph.client(OLD_TOKEN)));
    let message = message("wamid.IN.graph.parts");
    let outcome = pipeline.handle(&message, Attempt::Retryable).await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
    // The redelivery tries the kept second part again (three more times), and on the last
    // attempt gives up on it without resending the first.
    let retried = pipeline.handle(&message, Attempt::Last).await;
    assert_eq!(retried, Outcome::SendFailed { sent: 0 });
    assert_eq!(
        pipeline.handle(&message, Attempt::Retryable).await,
        Outcome::Duplicate
    );
    assert_eq!(agent.calls(), 1);
    let sends = graph.sends();
    assert_eq!(
        sends.len(),
        1 + 3 + 3,
        "first part sent, second tried three times on each attempt"
    );
    let first_part = &sends[0].body;
    assert!(
        first_part["text"]["body"]
            .as_str()
            .unwrap()
            .starts_with('a')
    );
    assert_eq!(sends.iter().filter(|s| &s.body == first_part).count(), 1);
    assert!(
        sends[1..]
            .iter()
            .all(|s| s.body["text"]["body"].as_str().unwrap().starts_with('b'))
    );
}

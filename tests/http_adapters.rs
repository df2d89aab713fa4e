//! The ureq adapters (HTTP agent, Graph API client) against loopback fakes: what they send, and
//! how every kind of answer or failure comes back.

mod support;

use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use whatsapp_agent_lambda::agent::{
    Agent, AgentError, AgentRequest, AttachmentKind, DroppedPart, ReplyStatus,
};
use whatsapp_agent_lambda::dev::LoopbackServer;
use whatsapp_agent_lambda::domain::{
    Channel, InboundMessage, MessageId, MessageKind, PhoneNumberId, Sender,
};
use whatsapp_agent_lambda::domain::{OutgoingMessage, Recipient};
use whatsapp_agent_lambda::entry::local::handler;
use whatsapp_agent_lambda::graph::RecordingMessenger;
use whatsapp_agent_lambda::graph::{
    Backoff, GRAPH_MAX_ATTEMPTS, GraphClient, GraphError, Messenger,
};
use whatsapp_agent_lambda::idempotency::MemoryIdempotency;
use whatsapp_agent_lambda::pipeline::{Attempt, Outcome, Pipeline};
use whatsapp_agent_lambda::reply::{AGENT_FAILED_PERMANENT_TEXT, AGENT_FAILED_TEXT, LEFT_OUT_NOTE};
use whatsapp_agent_lambda::secrets::Secret;
use whatsapp_agent_lambda::webhook::answer::{body_bytes, response};

const AGENT_TOKEN: &str = "agent-bearer-token";
const ACCESS_TOKEN: &str = "EAAG-access-token";
const PHONE_NUMBER_ID: &str = "106540352242922";
const TIMEOUT: Duration = Duration::from_secs(5);

/// One request as the fake saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the adapter sent JSON")
    }
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A loopback server recording every request and answering with `answer()`, after `delay`.
fn fake(
    delay: Duration,
    answer: impl Fn() -> Response<Body> + Send + Sync + 'static,
) -> (LoopbackServer, Log) {
    let log: Log = Arc::default();
    let seen = log.clone();
    let answer = Arc::new(answer);
    let server = LoopbackServer::start(handler(move |request: Request| {
        let seen = seen.clone();
        let answer = answer.clone();
        async move {
            seen.lock().unwrap().push(Seen {
                method: request.method().to_string(),
                path: request.uri().path().to_owned(),
                headers: request
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect(),
                body: body_bytes(request.body()).to_vec(),
            });
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            answer()
        }
    }));
    (server, log)
}

fn answering(status: u16, content_type: &'static str, body: &'static str) -> (LoopbackServer, Log) {
    fake(Duration::ZERO, move || response(status, content_type, body))
}

fn only(log: &Log) -> Seen {
    let seen = log.lock().unwrap();
    assert_eq!(seen.len(), 1, "expected exactly one request, got {seen:?}");
    seen[0].clone()
}

fn request() -> AgentRequest {
    serde_json::from_value(json!({
        "version": "1",
        "platform": "whatsapp",
        "session_id": "whatsapp:106540352242922:14155551234",
        "event": {
            "id": "wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQzQTdBNUQ0",
            "type": "text",
            "text": "pods crashing in prod",
            "reply_to": null,
            "timestamp": "2026-11-24T10:00:00Z",
            "user": {"id": "14155551234", "phone": "14155551234", "bsuid": null, "display_name": "John Doe"},
            "channel": {"phone_number_id": PHONE_NUMBER_ID, "display_phone_number": "15550001111", "business_account_id": "1029384756"}
        }
    }))
    .unwrap()
}

fn agent_at(
    url: &str,
    token: Option<&str>,
    timeout: Duration,
) -> whatsapp_agent_lambda::agent::HttpAgent {
    whatsapp_agent_lambda::agent::HttpAgent::new(url.to_owned(), token.map(Secret::from), timeout)
}

fn agent_for(server: &LoopbackServer) -> whatsapp_agent_lambda::agent::HttpAgent {
    agent_at(
        &format!("{}/agent", server.url()),
        Some(AGENT_TOKEN),
        TIMEOUT,
    )
}

// ---------------------------------------------------------------- agent

#[tokio::test]
async fn agent_receives_the_contract_with_bearer_and_idempotency_key() {
    let (server, log) = answering(
        200,
        "application/json",
        r#"{"status":"success","text":"Found 2 pods","actions":[{"id":"view_logs","label":"View Logs"}]}"#,
    );
    let request = request();
    let reply = agent_for(&server).ask(&request).await.unwrap().unwrap();
    assert_eq!(reply.status, Some(ReplyStatus::Success));
    assert_eq!(reply.text.as_deref(), Some("Found 2 pods"));
    assert_eq!(reply.actions[0].id, "view_logs");

    let seen = only(&log);
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/agent");
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {AGENT_TOKEN}").as_str())
    );
    assert_eq!(
        seen.header("idempotency-key"),
        Some(request.event.id.as_str())
    );
    assert_eq!(seen.json(), serde_json::to_value(&request).unwrap());
}

#[tokio::test]
async fn agent_gets_no_authorization_header_without_a_token() {
    for token in [None, Some("")] {
        let (server, log) = answering(200, "application/json", r#"{"text":"hi"}"#);
        let agent = agent_at(&server.url(), token, TIMEOUT);
        agent.ask(&request()).await.unwrap();
        assert_eq!(only(&log).header("authorization"), None, "token {token:?}");
    }
}

#[tokio::test]
async fn agent_204_means_no_reply() {
    let (server, _) = answering(204, "application/json", "");
    assert!(agent_for(&server).ask(&request()).await.unwrap().is_none());
}

#[tokio::test]
async fn agent_empty_200_means_no_reply() {
    for body in ["", "  \n"] {
        let (server, _) = answering(200, "application/json", body);
        assert!(agent_for(&server).ask(&request()).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn agent_500_is_a_retryable_status_error() {
    let (server, _) = answering(500, "text/plain", "Traceback (most recent call last): boom");
    let error = agent_for(&server).ask(&request()).await.unwrap_err();
    match &error {
        AgentError::Status { status, body } => {
            assert_eq!(*status, 500);
            assert!(body.starts_with("Traceback"), "{body}");
        }
        other => panic!("expected Status, got {other:?}"),
    }
    assert!(error.is_retryable());
}

#[tokio::test]
async fn agent_400_is_not_retryable() {
    let (server, _) = answering(400, "application/json", r#"{"detail":"bad"}"#);
    let error = agent_for(&server).ask(&request()).await.unwrap_err();
    assert!(matches!(error, AgentError::Status { status: 400, .. }));
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn agent_malformed_json_is_a_decode_error_with_a_short_excerpt() {
    let (server, _) = answering(200, "application/json", r#"{"text": "unterminated"#);
    let error = agent_for(&server).ask(&request()).await.unwrap_err();
    assert!(
        matches!(&error, AgentError::Decode { body, .. } if body.contains("unterminated")),
        "{error:?}"
    );
    assert!(!error.is_retryable());

    let html: &'static str =
        Box::leak(format!("<html>{}</html>", "ü".repeat(1000)).into_boxed_str());
    let (server, _) = answering(200, "text/html", html);
    match agent_for(&server).ask(&request()).await.unwrap_err() {
        AgentError::Decode { body, .. } => assert!(body.chars().count() <= 201, "{body}"),
        other => panic!("expected Decode, got {other:?}"),
    }
}

#[tokio::test]
async fn agent_wrong_field_types_are_a_decode_error() {
    for body in [
        r#"{"text": 42}"#,
        r#"{"actions": "view_logs"}"#,
        r#"["text"]"#,
    ] {
        let body: &'static str = Box::leak(body.to_owned().into_boxed_str());
        let (server, _) = answering(200, "application/json", body);
        let error = agent_for(&server).ask(&request()).await.unwrap_err();
        assert!(
            matches!(error, AgentError::Decode { .. }),
            "{body}: {error:?}"
        );
    }
}

/// A hostile but readable answer: every part of a kind WhatsApp sends by link, and parts that
/// cannot be read (a type in capitals, a null or unknown type, a row without a title).
const PARTLY_BAD_REPLY: &str = r#"{
    "status": "info",
    "text": "Rollout of api finished",
    "attachments": [
        {"type": "video", "url": "https://x.y/rollout.mp4", "caption": "rollout"},
        {"type": "audio", "url": "https://x.y/summary.ogg"},
        {"type": "sticker", "url": "https://x.y/done.webp"},
        {"type": "IMAGE", "url": "https://x.y/cpu.png"},
        {"type": null, "url": "https://x.y/null.png"},
        {"type": "hologram", "url": "https://x.y/h"}
    ],
    "list": {"body": "Next?", "sections": [{"rows": [{"id": "logs"}, {"title": null, "id": null}, "x"]}]}
}"#;

#[tokio::test]
async fn agent_reply_with_unreadable_parts_keeps_the_readable_ones() {
    let (server, _) = answering(200, "application/json", PARTLY_BAD_REPLY);
    let reply = agent_for(&server).ask(&request()).await.unwrap().unwrap();
    assert_eq!(reply.text.as_deref(), Some("Rollout of api finished"));
    let kinds: Vec<AttachmentKind> = reply.attachments.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        vec![
            AttachmentKind::Video,
            AttachmentKind::Audio,
            AttachmentKind::Sticker,
            AttachmentKind::Image
        ]
    );
    let rows = &reply.list.as_ref().unwrap().sections[0].rows;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        reply.dropped,
        vec![
            DroppedPart {
                part: "list.sections[0].rows[2]".into(),
                reason: "not an object"
            },
            DroppedPart {
                part: "attachments[4]".into(),
                reason: "no type"
            },
            DroppedPart {
                part: "attachments[5]".into(),
                reason: "unsupported type"
            },
        ]
    );
}

fn inbound(id: &str) -> InboundMessage {
    InboundMessage {
        id: MessageId::from(id),
        timestamp: 1_795_000_000,
        sender: Sender {
            phone: Some("14155551234".to_owned()),
            bsuid: None,
            display_name: None,
        },
        channel: Channel {
            phone_number_id: PhoneNumberId::from(PHONE_NUMBER_ID),
            display_phone_number: None,
            business_account_id: None,
        },
        reply_to: None,
        kind: MessageKind::Text {
            body: "how did the rollout go?".to_owned(),
        },
    }
}

/// The whole path from the agent's raw answer to what the user is sent.
async fn answer_through_the_pipeline(
    server: &LoopbackServer,
    attempt: Attempt,
) -> (Outcome, Arc<RecordingMessenger>) {
    let messenger = Arc::new(RecordingMessenger::new());
    let pipeline = Pipeline::new(
        Arc::new(agent_for(server)),
        messenger.clone(),
        Arc::new(MemoryIdempotency::default()),
    );
    let outcome = pipeline.handle(&inbound("wamid.IN.parts"), attempt).await;
    (outcome, messenger)
}

#[tokio::test]
async fn a_reply_with_unreadable_parts_reaches_the_user_part_by_part() {
    let (server, _) = answering(200, "application/json", PARTLY_BAD_REPLY);
    let (outcome, messenger) = answer_through_the_pipeline(&server, Attempt::Retryable).await;
    assert_eq!(outcome, Outcome::Replied { messages: 6 });
    let types: Vec<String> = messenger
        .sent()
        .iter()
        .map(|s| s.json["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        types,
        ["text", "video", "audio", "sticker", "image", "interactive"]
    );
    let sent = messenger.sent();
    assert_eq!(sent[0].json["text"]["body"], "ℹ️ Rollout of api finished");
    assert_eq!(
        sent[1].json["video"],
        json!({"link": "https://x.y/rollout.mp4", "caption": "rollout"})
    );
    assert_eq!(
        sent[2].json["audio"],
        json!({"link": "https://x.y/summary.ogg"})
    );
    assert_eq!(
        sent[3].json["sticker"],
        json!({"link": "https://x.y/done.webp"})
    );
    assert_eq!(
        sent[4].json["image"],
        json!({"link": "https://x.y/cpu.png"})
    );
    let interactive = &sent[5].json["interactive"];
    assert_eq!(
        interactive["body"]["text"],
        format!("Next?\n\n{LEFT_OUT_NOTE} 3 unreadable parts.")
    );
    assert_eq!(
        interactive["action"]["sections"][0]["rows"],
        json!([{"id": "logs", "title": "logs"}])
    );
}

#[tokio::test]
async fn the_failure_message_invites_a_retry_only_when_one_can_help() {
    for (status, body, text) in [
        (503, r#"{"detail":"overloaded"}"#, AGENT_FAILED_TEXT),
        (400, r#"{"detail":"bad"}"#, AGENT_FAILED_PERMANENT_TEXT),
        (200, r#"{"text": 42}"#, AGENT_FAILED_PERMANENT_TEXT),
        (
            200,
            r#"{"attachments": [{"type": "gif", "url": "https://x.y/a.gif"}]}"#,
            AGENT_FAILED_PERMANENT_TEXT,
        ),
    ] {
        let (server, _) = answering(status, "application/json", body);
        let (outcome, messenger) = answer_through_the_pipeline(&server, Attempt::Last).await;
        assert!(
            matches!(outcome, Outcome::AgentFailed { .. }),
            "{body}: {outcome:?}"
        );
        assert_eq!(messenger.texts(), vec![text], "{status} {body}");
    }
}

#[tokio::test]
async fn agent_slower_than_the_timeout_is_a_timeout() {
    let (server, _) = fake(Duration::from_secs(4), || {
        response(200, "application/json", r#"{"text":"late"}"#)
    });
    let agent = agent_at(&server.url(), None, Duration::from_secs(1));
    let started = std::time::Instant::now();
    let error = agent.ask(&request()).await.unwrap_err();
    assert!(
        matches!(error, AgentError::Timeout(t) if t == Duration::from_secs(1)),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(error.is_retryable());
}

#[tokio::test]
async fn agent_connection_refused_is_a_transport_error() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let agent = agent_at(&format!("http://127.0.0.1:{port}/agent"), None, TIMEOUT);
    let error = agent.ask(&request()).await.unwrap_err();
    assert!(matches!(error, AgentError::Transport(_)), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn agent_answer_over_one_mebibyte_is_too_large() {
    let (server, _) = fake(Duration::ZERO, || {
        let body = format!(r#"{{"text":"{}"}}"#, "a".repeat(1024 * 1024 + 1));
        response(200, "application/json", body)
    });
    let error = agent_for(&server).ask(&request()).await.unwrap_err();
    assert!(
        matches!(error, AgentError::TooLarge { limit: 1_048_576 }),
        "{error:?}"
    );
}

// ---------------------------------------------------------------- Graph API

fn graph_for(server: &LoopbackServer) -> GraphClient {
    GraphClient::new(&server.url(), "v25.0", Secret::from(ACCESS_TOKEN), TIMEOUT)
}

fn from() -> PhoneNumberId {
    PhoneNumberId::from(PHONE_NUMBER_ID)
}

#[tokio::test]
async fn graph_send_posts_the_message_json_with_bearer_and_returns_the_wamid() {
    let (server, log) = answering(
        200,
        "application/json",
        r#"{"messaging_product":"whatsapp","contacts":[{"input":"14155551234","wa_id":"14155551234"}],"messages":[{"id":"wamid.OUT123"}]}"#,
    );
    let to = Recipient::Phone("14155551234".to_owned());
    let message = OutgoingMessage::Text {
        body: "✅ Found 2 pods".to_owned(),
    };
    let context = MessageId::from("wamid.IN1");
    let id = graph_for(&server)
        .send(&from(), &to, &message, Some(&context))
        .await
        .unwrap();
    assert_eq!(id.as_str(), "wamid.OUT123");

    let seen = only(&log);
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, format!("/v25.0/{PHONE_NUMBER_ID}/messages"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {ACCESS_TOKEN}").as_str())
    );
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(seen.json(), message.to_graph_json(&to, Some(&context)));
}

#[tokio::test]
async fn graph_base_url_with_trailing_slash_hits_the_same_path() {
    let (server, log) = answering(
        200,
        "application/json",
        r#"{"messages":[{"id":"wamid.X"}]}"#,
    );
    let graph = GraphClient::new(
        &format!("{}/", server.url()),
        "v25.0",
        Secret::from(ACCESS_TOKEN),
        TIMEOUT,
    );
    let to = Recipient::Bsuid("US.13491208655302741918".to_owned());
    let message = OutgoingMessage::Text {
        body: "hi".to_owned(),
    };
    graph.send(&from(), &to, &message, None).await.unwrap();
    let seen = only(&log);
    assert_eq!(seen.path, format!("/v25.0/{PHONE_NUMBER_ID}/messages"));
    assert_eq!(seen.json()["recipient"], "US.13491208655302741918");
}

#[tokio::test]
async fn graph_error_body_becomes_an_api_error_with_metas_fields() {
    let (server, _) = answering(
        400,
        "application/json",
        r#"{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"error_subcode":2494010,"fbtrace_id":"Ab"}}"#,
    );
    let to = Recipient::Phone("14155551234".to_owned());
    let message = OutgoingMessage::Text {
        body: "hi".to_owned(),
    };
    let error = graph_for(&server)
        .send(&from(), &to, &message, None)
        .await
        .unwrap_err();
    match &error {
        GraphError::Api {
            status,
            code,
            subcode,
            message,
            fbtrace_id,
        } => {
            assert_eq!(*status, 400);
            assert_eq!(*code, 131047);
            assert_eq!(*subcode, Some(2494010));
            assert_eq!(message, "(#131047) Re-engagement message");
            assert_eq!(fbtrace_id.as_deref(), Some("Ab"));
        }
        other => panic!("expected Api, got {other:?}"),
    }
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn graph_html_502_is_a_retryable_decode_error() {
    let (server, _) = answering(
        502,
        "text/html",
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
    );
    let to = Recipient::Phone("14155551234".to_owned());
    let message = OutgoingMessage::Text {
        body: "hi".to_owned(),
    };
    let error = graph_for(&server)
        .send(&from(), &to, &message, None)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, GraphError::Decode { status: 502, body } if body.contains("Bad Gateway")),
        "{error:?}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn graph_success_without_a_message_id_is_a_decode_error() {
    let (server, _) = answering(200, "application/json", r#"{"messages":[]}"#);
    let to = Recipient::Phone("14155551234".to_owned());
    let message = OutgoingMessage::Text {
        body: "hi".to_owned(),
    };
    let error = graph_for(&server)
        .send(&from(), &to, &message, None)
        .await
        .unwrap_err();
    assert!(
        matches!(error, GraphError::Decode { status: 200, .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn graph_timeout_and_refused_connection_are_retryable() {
    let (server, _) = fake(Duration::from_secs(4), || {
        response(200, "application/json", "{}")
    });
    let graph = GraphClient::new(
        &server.url(),
        "v25.0",
        Secret::from(ACCESS_TOKEN),
        Duration::from_secs(1),
    );
    let error = graph
        .mark_read(&from(), &MessageId::from("wamid.IN1"), false)
        .await
        .unwrap_err();
    assert!(matches!(error, GraphError::Timeout), "{error:?}");
    assert!(error.is_retryable());

    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let graph = GraphClient::new(
        &format!("http://127.0.0.1:{port}"),
        "v25.0",
        Secret::from(ACCESS_TOKEN),
        TIMEOUT,
    );
    let error = graph
        .mark_read(&from(), &MessageId::from("wamid.IN1"), false)
        .await
        .unwrap_err();
    assert!(matches!(error, GraphError::Transport(_)), "{error:?}");
    assert!(error.is_retryable());
    // ureq's error is kept as the source; neither it nor the error shows the token.
    let source = std::error::Error::source(&error).expect("ureq's error is the source");
    assert!(source.is::<ureq::Error>(), "{source:?}");
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(shown.starts_with("Graph API unreachable") || shown.starts_with("Transport("));
        assert!(!shown.contains(ACCESS_TOKEN), "{shown}");
    }
}

#[tokio::test]
async fn graph_phone_number_id_that_would_change_the_url_is_refused_before_sending() {
    let (server, log) = answering(200, "application/json", r#"{"success":true}"#);
    let error = graph_for(&server)
        .mark_read(
            &PhoneNumberId::from("1065/../me?x=1"),
            &MessageId::from("wamid.IN1"),
            false,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, GraphError::InvalidPhoneNumberId(id) if id == "1065/../me?x=1"),
        "{error:?}"
    );
    assert!(!error.is_retryable());
    assert!(log.lock().unwrap().is_empty(), "nothing may be sent");
}

#[tokio::test]
async fn graph_mark_read_posts_the_read_receipt_with_typing_indicator() {
    let (server, log) = answering(200, "application/json", r#"{"success":true}"#);
    graph_for(&server)
        .mark_read(&from(), &MessageId::from("wamid.IN1"), true)
        .await
        .unwrap();
    let seen = only(&log);
    assert_eq!(seen.path, format!("/v25.0/{PHONE_NUMBER_ID}/messages"));
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {ACCESS_TOKEN}").as_str())
    );
    assert_eq!(
        seen.json(),
        json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.IN1",
            "typing_indicator": {"type": "text"}
        })
    );
}

#[tokio::test]
async fn graph_mark_read_without_typing_has_no_indicator() {
    let (server, log) = answering(200, "application/json", r#"{"success":true}"#);
    graph_for(&server)
        .mark_read(&from(), &MessageId::from("wamid.IN2"), false)
        .await
        .unwrap();
    assert_eq!(
        only(&log).json(),
        json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.IN2"})
    );
}

#[tokio::test]
async fn graph_mark_read_error_is_reported() {
    let (server, _) = answering(
        401,
        "application/json",
        r#"{"error":{"message":"Error validating access token","type":"OAuthException","code":190,"fbtrace_id":"Zz"}}"#,
    );
    let error = graph_for(&server)
        .mark_read(&from(), &MessageId::from("wamid.IN3"), true)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            GraphError::Api {
                status: 401,
                code: 190,
                subcode: None,
                ..
            }
        ),
        "{error:?}"
    );
}

/// A fake answering the `n`-th request (from 0) with `answer(n)`, recording every request.
fn scripted(
    answer: impl Fn(usize) -> Response<Body> + Send + Sync + 'static,
) -> (LoopbackServer, Log) {
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    fake(Duration::ZERO, move || {
        answer(count.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
    })
}

fn fast_graph_for(server: &LoopbackServer) -> GraphClient {
    graph_for(server).with_backoff(Backoff {
        base: Duration::from_millis(10),
        ..Backoff::default()
    })
}

#[tokio::test]
async fn graph_html_502_is_retried_like_a_5xx() {
    let (server, log) = scripted(|n| match n {
        0 => response(
            502,
            "text/html",
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        ),
        _ => response(
            200,
            "application/json",
            r#"{"messages":[{"id":"wamid.AFTER502"}]}"#,
        ),
    });
    let to = Recipient::Phone("14155551234".to_owned());
    let message = OutgoingMessage::Text {
        body: "hi".to_owned(),
    };
    let id = fast_graph_for(&server)
        .send(&from(), &to, &message, None)
        .await
        .unwrap();
    assert_eq!(id.as_str(), "wamid.AFTER502");
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body, seen[1].body);
}

#[tokio::test]
async fn graph_send_makes_at_most_three_attempts() {
    let (server, log) = answering(
        503,
        "application/json",
        r#"{"error":{"message":"(#2) Service temporarily unavailable","type":"OAuthException","code":2,"fbtrace_id":"Tr"}}"#,
    );
    assert_eq!(Backoff::default().max_attempts, GRAPH_MAX_ATTEMPTS);
    let to = Recipient::Phone("14155551234".to_owned());
    let message = OutgoingMessage::Text {
        body: "hi".to_owned(),
    };
    let error = fast_graph_for(&server)
        .send(&from(), &to, &message, None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            GraphError::Api {
                status: 503,
                code: 2,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(log.lock().unwrap().len(), GRAPH_MAX_ATTEMPTS as usize);
}

#[tokio::test]
async fn graph_success_without_a_message_id_is_not_sent_again() {
    let (server, log) = answering(200, "application/json", r#"{"messages":[]}"#);
    let to = Recipient::Phone("14155551234".to_owned());
    let message = OutgoingMessage::Text {
        body: "hi".to_owned(),
    };
    let error = fast_graph_for(&server)
        .send(&from(), &to, &message, None)
        .await
        .unwrap_err();
    assert!(!error.is_retryable(), "{error:?}");
    only(&log);
}

/// What a subscriber wrote, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A Graph API call logs inside one span with what the call is, each attempt in a span of its
/// own that takes Meta's codes once Meta answered, and Meta's text once, on the line that ends
/// the call. Captured in plain text and in JSON as lambda_http's `init_default_subscriber`
/// writes them (`AWS_LAMBDA_LOG_FORMAT=JSON`: the event's fields under `fields`, the current
/// span under `span`, all of them under `spans`).
#[tokio::test]
async fn graph_call_logs_in_one_span_with_metas_codes_per_attempt_and_its_text_once() {
    use lambda_http::tracing::subscriber::{
        self, Layer, filter::LevelFilter, layer::SubscriberExt,
    };
    let (server, log) = scripted(|n| match n {
        0 => response(
            503,
            "application/json",
            r#"{"error":{"message":"(#2) Service temporarily unavailable","code":2,"fbtrace_id":"Tr"}}"#,
        ),
        _ => response(
            400,
            "application/json",
            r#"{"error":{"message":"(#100) Invalid parameter","code":100,"error_subcode":33,"fbtrace_id":"Ab"}}"#,
        ),
    });
    let plain = Captured::default();
    let json = Captured::default();
    let (plain_writer, json_writer) = (plain.clone(), json.clone());
    let collector = subscriber::registry().with(vec![
        subscriber::fmt::layer()
            .with_target(false)
            .without_time()
            .with_ansi(false)
            .with_writer(move || plain_writer.clone())
            .with_filter(LevelFilter::TRACE)
            .boxed(),
        subscriber::fmt::layer()
            .json()
            .with_target(false)
            .without_time()
            .with_writer(move || json_writer.clone())
            .with_filter(LevelFilter::TRACE)
            .boxed(),
    ]);
    let context = MessageId::from("wamid.IN1");
    let error = {
        let _capturing = tracing::subscriber::set_default(collector);
        fast_graph_for(&server)
            .send(
                &from(),
                &Recipient::Phone("14155551234".to_owned()),
                &OutgoingMessage::Text {
                    body: "hi".to_owned(),
                },
                Some(&context),
            )
            .await
            .unwrap_err()
    };
    assert!(
        matches!(error, GraphError::Api { code: 100, .. }),
        "{error:?}"
    );
    assert_eq!(log.lock().unwrap().len(), 2);

    let lines: Vec<Value> = json
        .text()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    let messages: Vec<_> = lines
        .iter()
        .map(|line| &line["fields"]["message"])
        .collect();
    assert_eq!(
        messages,
        [
            "Graph API call failed transiently; retrying",
            "Graph API error"
        ]
    );
    let call = json!({"name": "graph_call", "operation": "send",
        "phone_number_id": PHONE_NUMBER_ID, "to": "*******1234",
        "message_id": context.to_string(), "kind": "text"});
    assert_eq!(
        lines[0]["spans"],
        json!([call, {"name": "graph_attempt", "attempt": 1, "status": 503, "code": 2,
            "fbtrace_id": "Tr"}])
    );
    assert_eq!(
        lines[1]["spans"],
        json!([call, {"name": "graph_attempt", "attempt": 2, "status": 400, "code": 100,
            "subcode": 33, "fbtrace_id": "Ab"}])
    );
    assert_eq!(lines[1]["span"], lines[1]["spans"][1]);
    assert_eq!(lines[0]["level"], "WARN");
    assert_eq!(lines[1]["level"], "WARN");
    assert_eq!(lines[0]["fields"]["max_attempts"], GRAPH_MAX_ATTEMPTS);
    assert!(
        lines[0]["fields"]["error"]
            .as_str()
            .is_some_and(|error| error.starts_with("Graph API error 2 ")),
        "{}",
        lines[0]
    );
    let end = &lines[1]["fields"];
    assert_eq!(end["error_message"], "(#100) Invalid parameter");
    assert_eq!(end["why"], "not retryable");
    assert_eq!(end["retryable"], false);
    assert!(end["elapsed_ms"].is_u64(), "{end}");

    let plain = plain.text();
    let ends = lines_containing(&plain, "Invalid parameter");
    assert_eq!(ends.len(), 1, "Meta's text on one line only: {plain}");
    let prefix = format!(
        "WARN graph_call{{operation=\"send\" phone_number_id={PHONE_NUMBER_ID} to=\"*******1234\" \
         message_id={context} kind=\"text\"}}:graph_attempt{{attempt=2 status=400 code=100 \
         subcode=33 fbtrace_id=\"Ab\"}}: Graph API error "
    );
    assert!(ends[0].trim_start().starts_with(&prefix), "{}", ends[0]);
    let retry = lines_containing(&plain, "retrying");
    assert_eq!(retry.len(), 1, "{plain}");
    assert!(
        retry[0].contains(
            "}:graph_attempt{attempt=1 status=503 code=2 fbtrace_id=\"Tr\"}: Graph API call failed \
             transiently; retrying max_attempts=3 "
        ),
        "{}",
        retry[0]
    );
    for log in [&plain, &json.text()] {
        assert!(!log.contains(ACCESS_TOKEN), "{log}");
        assert!(!log.contains("14155551234"), "{log}");
        assert!(!log.contains("wamid.IN1"), "{log}");
    }
}

fn lines_containing<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|line| line.contains(needle)).collect()
}

/// An agent that streams three NDJSON lines, each after `pause`.
fn streaming_agent(pause: Duration) -> support::stream_agent::StreamingAgent {
    support::stream_agent::StreamingAgent::start(vec![
        (Duration::ZERO, r#"{"text":"Checking pods…"}"#.to_owned()),
        (pause, r#"{"status":"warning","text":"api-7f9 restarted twice"}"#.to_owned()),
        (pause, r#"{"status":"success","text":"All pods running","actions":[{"id":"logs","label":"View Logs"}]}"#.to_owned()),
    ])
}

#[tokio::test]
async fn a_streamed_answer_is_handed_on_line_by_line_as_it_arrives() {
    let pause = Duration::from_millis(400);
    let server = streaming_agent(pause);
    let agent = agent_at(&server.url(), None, TIMEOUT);
    let request = request();
    let mut stream = agent.ask_stream(&request);
    let started = std::time::Instant::now();
    let mut arrived = Vec::new();
    while let Some(part) = stream.next().await {
        let part = part.expect("a readable part");
        arrived.push((started.elapsed(), part.text.unwrap_or_default()));
    }
    let texts: Vec<&str> = arrived.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Checking pods…",
            "api-7f9 restarted twice",
            "All pods running"
        ]
    );
    // The first line was there long before the last was written.
    assert!(arrived[0].0 + pause < arrived[2].0, "{arrived:?}");
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn a_streamed_answer_asked_whole_is_gathered_into_one_reply() {
    let server = streaming_agent(Duration::from_millis(10));
    let reply = agent_at(&server.url(), None, TIMEOUT)
        .ask(&request())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        reply.text.as_deref(),
        Some("Checking pods…\n\napi-7f9 restarted twice\n\nAll pods running")
    );
    assert_eq!(reply.status, Some(ReplyStatus::Success));
    assert_eq!(reply.actions.len(), 1);
}

#[tokio::test]
async fn each_streamed_part_reaches_the_user_as_its_own_message() {
    let server = streaming_agent(Duration::from_millis(50));
    let messenger = Arc::new(RecordingMessenger::new());
    let pipeline = Pipeline::new(
        Arc::new(agent_at(&server.url(), None, TIMEOUT)),
        messenger.clone(),
        Arc::new(MemoryIdempotency::default()),
    );
    let outcome = pipeline
        .handle(&inbound("wamid.IN.stream"), Attempt::Retryable)
        .await;
    assert_eq!(outcome, Outcome::Replied { messages: 3 });
    let sent = messenger.sent();
    assert_eq!(sent[0].message.text_body(), Some("Checking pods…"));
    assert_eq!(
        sent[1].message.text_body(),
        Some("⚠️ api-7f9 restarted twice")
    );
    assert!(
        matches!(&sent[2].message, OutgoingMessage::Buttons { body, .. } if body == "✅ All pods running")
    );
}

// --- make templates (dev::templates) against a loopback Graph API ----------------------------

const WABA_ID: &str = "102290129340398";

/// `create-templates --waba-id WABA_ID` against `server`: its result, stdout and stderr.
fn create_templates(
    server: &LoopbackServer,
    notice: Option<&str>,
) -> (
    Result<(), whatsapp_agent_lambda::dev::templates::TemplatesError>,
    String,
    String,
) {
    let base = format!("{}/", server.url());
    let notice = notice.map(str::to_owned);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result = whatsapp_agent_lambda::dev::templates::run(
        &["--waba-id".to_owned(), WABA_ID.to_owned()],
        move |name| match name {
            "WHATSAPP_ACCESS_TOKEN" => Some(ACCESS_TOKEN.to_owned()),
            "ALERT_TEMPLATE" => Some("oncall_alert:en".to_owned()),
            "NOTICE_TEMPLATE" => notice.clone(),
            "GRAPH_API_BASE_URL" => Some(base.clone()),
            "GRAPH_API_VERSION" => Some("v99.0".to_owned()),
            _ => None,
        },
        &mut out,
        &mut err,
    );
    (
        result,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn templates_are_created_with_the_exact_request_and_metas_answer_is_printed() {
    let (server, log) = answering(
        200,
        "application/json",
        r#"{"id":"594425479261596","status":"PENDING","category":"UTILITY"}"#,
    );
    let (result, out, err) = create_templates(&server, Some("oncall_notice:en_US"));
    result.unwrap();
    assert!(err.is_empty(), "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "oncall_alert:en (ALERT_TEMPLATE): created, id 594425479261596, status PENDING, category UTILITY",
            "oncall_notice:en_US (NOTICE_TEMPLATE): created, id 594425479261596, status PENDING, category UTILITY",
        ]
    );
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for request in &seen {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, format!("/v99.0/{WABA_ID}/message_templates"));
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {ACCESS_TOKEN}").as_str())
        );
        assert_eq!(request.header("content-type"), Some("application/json"));
    }
    assert_eq!(
        seen[0].json(),
        json!({
            "name": "oncall_alert",
            "language": "en",
            "category": "UTILITY",
            "components": [
                {
                    "type": "BODY",
                    "text": "🚨 {{1}} alert: {{2}}\n\n{{3}}\n\nStarted {{4}}. Tap Acknowledge to take it, Details to ask the on-call agent about it, or Escalate to page the next tier.",
                    "example": {"body_text": [["critical", "HighErrorRate", "5xx rate above 5% on checkout-api for 10 minutes", "2026-11-24 09:52 UTC"]]}
                },
                {"type": "BUTTONS", "buttons": [
                    {"type": "QUICK_REPLY", "text": "Acknowledge"},
                    {"type": "QUICK_REPLY", "text": "Details"},
                    {"type": "QUICK_REPLY", "text": "Escalate"}
                ]}
            ]
        })
    );
    assert_eq!(
        seen[1].json(),
        json!({
            "name": "oncall_notice",
            "language": "en_US",
            "category": "UTILITY",
            "components": [{
                "type": "BODY",
                "text": "On-call update: {{1}}\n\nThis is an automated message from your on-call paging.",
                "example": {"body_text": [["✅ Sam acknowledged: HighErrorRate"]]}
            }]
        })
    );
}

#[test]
fn a_refused_template_fails_the_command_with_metas_error_scrubbed() {
    let (server, log) = answering(
        400,
        "application/json",
        r#"{"error":{"message":"Invalid parameter","type":"OAuthException","code":100,"error_subcode":2388024,"error_user_title":"Content in this language already exists","error_user_msg":"Call +1 (415) 555-1234 for help\nERROR forged","fbtrace_id":"AbC"}}"#,
    );
    let (result, out, err) = create_templates(&server, None);
    let error = result.unwrap_err();
    assert_eq!(error.to_string(), "1 of 1 template(s) not created");
    assert_eq!(log.lock().unwrap().len(), 1);
    assert!(
        err.starts_with(
            "create-templates: oncall_alert:en: the Graph API refused it (HTTP 400, code 100, subcode *******): Invalid parameter / Content in this language already exists / Call "
        ),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "no forged line: {err}");
    assert!(
        !err.contains("555-1234") && !err.contains(ACCESS_TOKEN),
        "{err}"
    );
    assert!(out.contains("NOTICE_TEMPLATE is not set"), "{out}");
}

#[test]
fn an_answer_without_an_id_or_no_answer_at_all_fails_clearly() {
    let (server, _log) = answering(200, "application/json", r#"{"success":true}"#);
    let (result, _, err) = create_templates(&server, None);
    assert!(result.is_err());
    assert!(
        err.contains(
            "oncall_alert:en: unexpected answer from the Graph API (HTTP 200): {\"success\":true}"
        ),
        "{err}"
    );

    let closed = {
        let (server, _) = answering(200, "application/json", "{}");
        let url = server.url();
        drop(server);
        url
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let error = whatsapp_agent_lambda::dev::templates::run(
        &["--waba-id".to_owned(), WABA_ID.to_owned()],
        |name| match name {
            "WHATSAPP_ACCESS_TOKEN" => Some(ACCESS_TOKEN.to_owned()),
            "ALERT_TEMPLATE" => Some("oncall_alert:en".to_owned()),
            "GRAPH_API_BASE_URL" => Some(closed.clone()),
            _ => None,
        },
        &mut out,
        &mut err,
    )
    .unwrap_err();
    let err = String::from_utf8(err).unwrap();
    assert!(err.contains("the Graph API did not answer"), "{err}");
    assert!(matches!(
        error,
        whatsapp_agent_lambda::dev::templates::TemplatesError::NotCreated {
            failed: 1,
            total: 1
        }
    ));
}

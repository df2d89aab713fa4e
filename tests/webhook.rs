//! The webhook handler end to end, fed the sample events in `events/` (the same files
//! `cargo lambda invoke` and `sam local invoke` use), with in-memory agent and Graph API.

mod support;

use lambda_http::Body;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::fixtures::{
    BATCH_ALLOWED_IDS, event, event_json, get, post, secrets_with_app_secret, sent_messages,
    sent_texts, signed, signed_texts, text_of,
};
use support::harness::{Harness, failing_agent};
use support::slow::{CountingAgent, SlowHandling, with_redeliveries};
use whatsapp_agent_lambda::agent::DeliverEvent;
use whatsapp_agent_lambda::agent::ScriptedAgent;
use whatsapp_agent_lambda::dev::events::{LOCAL_ALLOWED_SENDERS, LOCAL_APP_SECRET};
use whatsapp_agent_lambda::domain::Allowlist;
use whatsapp_agent_lambda::domain::{OutgoingMessage, Recipient};
use whatsapp_agent_lambda::graph::RecordingMessenger;
use whatsapp_agent_lambda::idempotency::MemoryIdempotency;
use whatsapp_agent_lambda::pipeline::{Attempt, DEFAULT_LEASE, Outcome, Pipeline};
use whatsapp_agent_lambda::queue::MemoryQueue;
use whatsapp_agent_lambda::reply::{AGENT_FAILED_PERMANENT_TEXT, AGENT_FAILED_TEXT, LEFT_OUT_NOTE};
use whatsapp_agent_lambda::webhook::{Dispatcher, WebhookApp, sign};

const JOHN: &str = "14155551234";

/// `agent` behind the handler, after the sample text message was handled (answered 200).
async fn after_the_sample_text(agent: ScriptedAgent) -> Harness {
    let h = Harness::inline(agent, LOCAL_APP_SECRET, 4 * 1024 * 1024);
    assert_eq!(h.app.handle(event("post-text.json")).await.status(), 200);
    h
}

#[tokio::test]
async fn verification_get_echoes_the_challenge_as_text() {
    let h = Harness::echo();
    let answer = h.app.handle(event("get-verify.json")).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "text/plain");
    assert_eq!(text_of(answer.body()), "1158201444");
}

#[tokio::test]
async fn verification_with_a_wrong_token_or_mode_is_forbidden() {
    let h = Harness::echo();
    for query in [
        "hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
        "hub.mode=unsubscribe&hub.verify_token=local-test-verify-token&hub.challenge=1",
        "hub.mode=subscribe&hub.challenge=1",
        "hub.mode=subscribe&hub.verify_token=local-test-verify-token",
        "hub.mode=subscribe&hub.verify_token=local-test-verify-token&hub.verify_token=x&hub.challenge=1",
        "",
    ] {
        let answer = h.app.handle(get(query)).await;
        assert_eq!(answer.status(), 403, "{query}");
    }
}

#[tokio::test]
async fn text_message_reaches_the_agent_and_the_reply_is_sent() {
    let h = Harness::echo();
    let answer = h.app.handle(event("post-text.json")).await;
    assert_eq!(answer.status(), 200);

    let requests = h.agent.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.version, "1");
    assert_eq!(request.platform, "whatsapp");
    assert_eq!(
        request.session_id,
        format!("whatsapp:106540352242922:{JOHN}")
    );
    assert_eq!(request.event.kind, "text");
    assert_eq!(request.event.text, "pods crashing in prod");
    assert_eq!(request.event.timestamp, "2026-11-24T10:00:00Z");
    assert_eq!(request.event.user.phone.as_deref(), Some(JOHN));
    assert_eq!(
        request.event.user.bsuid.as_deref(),
        Some("US.13491208655302741918")
    );
    assert_eq!(request.event.user.display_name.as_deref(), Some("John Doe"));
    assert_eq!(request.event.channel.phone_number_id, "106540352242922");
    assert_eq!(
        request.event.channel.business_account_id.as_deref(),
        Some("102290129340398")
    );

    let sent = h.messenger.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, Recipient::Phone(JOHN.to_owned()));
    assert_eq!(sent[0].from.as_str(), "106540352242922");
    assert_eq!(
        sent[0].context.as_ref().map(|id| id.as_str()),
        Some(request.event.id.as_str())
    );
    assert_eq!(
        sent_texts(&h.messenger),
        vec!["✅ echo: pods crashing in prod"]
    );
    let marks = h.messenger.read_marks();
    assert_eq!(marks.len(), 1);
    assert!(marks[0].1, "typing indicator shown while the agent works");
}

#[tokio::test]
async fn duplicate_delivery_reaches_the_agent_once() {
    let h = Harness::echo();
    for _ in 0..3 {
        assert_eq!(h.app.handle(event("post-text.json")).await.status(), 200);
    }
    assert_eq!(h.agent.calls(), 1);
    assert_eq!(h.messenger.sent().len(), 1);
}

#[tokio::test]
async fn bad_signature_is_refused_and_nothing_happens() {
    let h = Harness::echo();
    let answer = h.app.handle(event("post-bad-signature.json")).await;
    assert_eq!(answer.status(), 401);
    assert_eq!(h.agent.calls(), 0);
    assert!(h.messenger.sent().is_empty());
    assert!(h.messenger.read_marks().is_empty());
}

#[tokio::test]
async fn missing_malformed_or_duplicated_signatures_are_refused() {
    let h = Harness::echo();
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    let good = sign(LOCAL_APP_SECRET.as_bytes(), body);
    for signatures in [
        vec![],
        vec![String::new()],
        vec!["sha256=".to_owned()],
        vec![good.replace("sha256=", "sha1=")],
        vec![good[..good.len() - 2].to_owned()],
        vec![sign(b"another secret", body)],
        vec![good.clone(), good.clone()],
    ] {
        let headers: Vec<&[u8]> = signatures.iter().map(|s| s.as_bytes()).collect();
        let answer = h.app.handle(post(body, &headers)).await;
        assert_eq!(answer.status(), 401, "{signatures:?}");
    }
    assert_eq!(h.agent.calls(), 0);
}

#[tokio::test]
async fn an_empty_app_secret_never_verifies() {
    let h = Harness::inline(ScriptedAgent::replying_text("hi"), "", 4096);
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    let answer = h
        .app
        .handle(post(body, &[sign(b"", body).as_bytes()]))
        .await;
    assert_eq!(answer.status(), 401);
}

#[tokio::test]
async fn base64_bodies_are_verified_over_the_decoded_bytes() {
    let h = Harness::echo();
    let answer = h.app.handle(event("post-base64.json")).await;
    assert_eq!(answer.status(), 200);
    let requests = h.agent.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].event.text.starts_with("résumé of the incident"));
    assert!(requests[0].event.text.contains('🔥'));
}

#[tokio::test]
async fn taps_and_media_reach_the_agent_with_their_contract_fields() {
    let cases = [
        ("post-button-reply.json", "button_reply", "button:view_logs"),
        ("post-list-reply.json", "list_reply", "list:env_staging"),
        (
            "post-template-button.json",
            "template_button",
            "button:ack_incident_4711",
        ),
        ("post-image.json", "image", "grafana shows this since 09:40"),
    ];
    for (file, kind, text) in cases {
        let h = Harness::echo();
        assert_eq!(h.app.handle(event(file)).await.status(), 200, "{file}");
        let requests = h.agent.requests();
        assert_eq!(requests.len(), 1, "{file}");
        assert_eq!(requests[0].event.kind, kind, "{file}");
        assert_eq!(requests[0].event.text, text, "{file}");
    }
    let h = Harness::echo();
    h.app.handle(event("post-button-reply.json")).await;
    let request = &h.agent.requests()[0];
    let interactive = request.event.interactive.as_ref().unwrap();
    assert_eq!(
        (interactive.id.as_str(), interactive.title.as_str()),
        ("view_logs", "View Logs")
    );
    assert!(
        request
            .event
            .reply_to
            .as_deref()
            .unwrap()
            .starts_with("wamid.")
    );

    let h = Harness::echo();
    h.app.handle(event("post-image.json")).await;
    let media = h.agent.requests()[0].event.media.clone().unwrap();
    assert_eq!(media.id, "1048399176812345");
    assert_eq!(media.mime_type.as_deref(), Some("image/jpeg"));
}

#[tokio::test]
async fn statuses_are_logged_not_sent_to_the_agent() {
    let h = Harness::echo();
    let answer = h.app.handle(event("post-status-only.json")).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(h.agent.calls(), 0);
    assert!(h.messenger.sent().is_empty());
}

#[tokio::test]
async fn every_allowed_message_of_a_batch_is_handled_and_unlisted_senders_ignored() {
    let h = Harness::echo();
    assert_eq!(h.app.handle(event("post-batch.json")).await.status(), 200);
    let mut ids: Vec<String> = h
        .agent
        .requests()
        .iter()
        .map(|r| r.event.id.clone())
        .collect();
    ids.sort();
    assert_eq!(ids, BATCH_ALLOWED_IDS);
    // One sender's messages reach the agent in order.
    let john: Vec<String> = h
        .agent
        .requests()
        .iter()
        .filter(|r| r.event.user.phone.as_deref() == Some(JOHN))
        .map(|r| r.event.kind.clone())
        .collect();
    assert_eq!(john, ["text", "location", "reaction"]);
    // The BSUID-only sender is answered by BSUID; the unlisted sender gets nothing.
    let recipients: Vec<Recipient> = h.messenger.sent().into_iter().map(|s| s.to).collect();
    assert!(recipients.contains(&Recipient::Bsuid("BR.20261124000000000042".to_owned())));
    assert!(!recipients.iter().any(|r| r.as_str() == "447700900123"));
    assert!(
        !h.messenger
            .read_marks()
            .iter()
            .any(|(id, _)| id.as_str() == "wamid.BATCH.0006")
    );
}

#[tokio::test]
async fn agent_failure_gets_the_user_a_short_error_message() {
    let h = after_the_sample_text(failing_agent(500, "Traceback: secret internals")).await;
    let texts = sent_texts(&h.messenger);
    assert_eq!(texts, vec![AGENT_FAILED_TEXT.to_owned()]);
    assert!(!texts[0].contains("Traceback"));
}

#[tokio::test]
async fn a_permanent_agent_failure_does_not_invite_the_user_to_try_again() {
    let h = after_the_sample_text(failing_agent(400, "bad request")).await;
    let texts = sent_texts(&h.messenger);
    assert_eq!(texts, vec![AGENT_FAILED_PERMANENT_TEXT.to_owned()]);
    assert!(!texts[0].to_lowercase().contains("try again"), "{texts:?}");
}

#[tokio::test]
async fn a_reply_with_bad_parts_reaches_the_user_with_a_note() {
    let h = after_the_sample_text(ScriptedAgent::new(|_| {
        // Decoded from JSON, as every adapter does.
        Ok(Some(
            serde_json::from_value(json!({
                "status": "success",
                "text": "Restarted api-1",
                "attachments": [
                    {"type": "VIDEO", "url": "https://x.y/rollout.mp4"},
                    {"type": "gif", "url": "https://x.y/party.gif"}
                ],
                "actions": [{"id": "logs", "label": "\u{200b}"}, {"id": ["x"], "label": "Bad"}]
            }))
            .expect("a reply"),
        ))
    }))
    .await;
    let sent = sent_messages(&h.messenger);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(
        sent[0],
        OutgoingMessage::Video {
            link: "https://x.y/rollout.mp4".into(),
            caption: None
        }
    );
    match &sent[1] {
        OutgoingMessage::Buttons { body, buttons, .. } => {
            assert_eq!(
                body,
                &format!("✅ Restarted api-1\n\n{LEFT_OUT_NOTE} 2 unreadable parts.")
            );
            assert_eq!(buttons[0].title, "logs");
        }
        other => panic!("expected buttons, got {other:?}"),
    }
}

#[tokio::test]
async fn a_reply_with_no_readable_part_is_a_failure_not_silence() {
    let h = after_the_sample_text(ScriptedAgent::new(|_| {
        Ok(Some(
            serde_json::from_value(
                json!({"attachments": [{"type": null, "url": "https://x.y/a"}]}),
            )
            .expect("a reply"),
        ))
    }))
    .await;
    assert_eq!(
        sent_texts(&h.messenger),
        vec![AGENT_FAILED_PERMANENT_TEXT.to_owned()]
    );
}

/// The sample deliver event with `reply` and `error` replaced.
fn deliver(reply: serde_json::Value, error: serde_json::Value) -> DeliverEvent {
    let mut event = event_json("sfn-deliver.json");
    event["deliver"]["reply"] = reply;
    event["deliver"]["error"] = error;
    serde_json::from_value(event).expect("a deliver event, whatever the reply's parts")
}

#[tokio::test]
async fn a_delivered_failure_or_unreadable_reply_does_not_invite_a_retry() {
    for (reply, error) in [
        (
            json!(null),
            json!({"Error": "States.TaskFailed", "Cause": "boom"}),
        ),
        (
            json!({"attachments": [{"type": "hologram", "url": "https://x.y/h"}]}),
            json!(null),
        ),
    ] {
        let h = Harness::echo();
        let pipeline = Pipeline::new(
            h.agent.clone(),
            h.messenger.clone(),
            Arc::new(MemoryIdempotency::default()),
        );
        let event = deliver(reply.clone(), error);
        let outcome = pipeline.deliver(&event.deliver, Attempt::Retryable).await;
        assert_eq!(
            outcome,
            Outcome::AgentFailed { retryable: false },
            "{reply}"
        );
        assert_eq!(
            sent_texts(&h.messenger),
            vec![AGENT_FAILED_PERMANENT_TEXT.to_owned()],
            "{reply}"
        );
    }
}

#[tokio::test]
async fn a_delivered_reply_keeps_its_good_parts() {
    let h = Harness::echo();
    let pipeline = Pipeline::new(
        h.agent.clone(),
        h.messenger.clone(),
        Arc::new(MemoryIdempotency::default()),
    );
    let event = deliver(
        json!({"text": "Deploy finished", "attachments": [{"type": null, "url": "https://x.y/a"}]}),
        json!(null),
    );
    let outcome = pipeline.deliver(&event.deliver, Attempt::Retryable).await;
    assert_eq!(outcome, Outcome::Replied { messages: 1 });
    assert_eq!(
        sent_texts(&h.messenger),
        vec![format!(
            "Deploy finished\n\n{LEFT_OUT_NOTE} 1 unreadable part."
        )]
    );
}

#[tokio::test]
async fn agent_choosing_not_to_reply_sends_nothing() {
    let h = after_the_sample_text(ScriptedAgent::new(|_| Ok(None))).await;
    assert_eq!(h.agent.calls(), 1);
    assert!(h.messenger.sent().is_empty());
}

#[tokio::test]
async fn signed_garbage_gets_200_and_reaches_nobody() {
    let h = Harness::echo();
    for body in [
        &b"not json at all wamid.X1"[..],
        b"{}",
        br#"{"object":"page","entry":[]}"#,
        b"[1,2]",
    ] {
        assert_eq!(h.app.handle(signed(body)).await.status(), 200);
    }
    assert_eq!(h.agent.calls(), 0);
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let h = Harness::inline(ScriptedAgent::replying_text("hi"), LOCAL_APP_SECRET, 1024);
    assert_eq!(h.app.handle(signed(&[b' '; 1025])).await.status(), 413);
    assert_eq!(h.app.handle(signed(&[b' '; 1024])).await.status(), 200);
}

#[tokio::test]
async fn other_methods_and_paths_get_405_and_404() {
    let h = Harness::echo();
    let put = lambda_http::http::Request::builder()
        .method("PUT")
        .uri("/webhook")
        .body(Body::Empty)
        .unwrap();
    let answer = h.app.handle(put).await;
    assert_eq!(answer.status(), 405);
    assert_eq!(answer.headers()["allow"], "GET, POST");
    let elsewhere = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/admin")
        .body(Body::Empty)
        .unwrap();
    assert_eq!(h.app.handle(elsewhere).await.status(), 404);
}

fn inline_app(
    agent: Arc<CountingAgent>,
    messenger: Arc<RecordingMessenger>,
    lease: Duration,
    allowlist: &str,
) -> WebhookApp {
    let pipeline =
        Pipeline::new(agent, messenger, Arc::new(MemoryIdempotency::default())).with_lease(lease);
    WebhookApp::new(
        secrets_with_app_secret(LOCAL_APP_SECRET),
        Allowlist::parse(allowlist).unwrap(),
        Dispatcher::Inline(pipeline),
        4 * 1024 * 1024,
    )
}

#[tokio::test]
async fn a_redelivery_during_a_handling_longer_than_the_lease_asks_the_agent_once() {
    // Lease 500 ms (renewed every 167 ms); the handling takes about 1.6 s: 400 ms of agent
    // (the read mark, 200 ms, at the same time), then 200 ms per part. Meta redelivers twice while it runs, after
    // the first lease expired.
    let lease = Duration::from_millis(500);
    let slow = SlowHandling::new(Duration::from_millis(200));
    let app = inline_app(
        slow.agent.clone(),
        slow.messenger.clone(),
        lease,
        LOCAL_ALLOWED_SENDERS,
    );
    let message = [(
        "wamid.LONG.1".to_owned(),
        JOHN.to_owned(),
        "status?".to_owned(),
    )];

    let (first, redelivered, took) = with_redeliveries(
        app.handle(signed_texts(&message)),
        &[Duration::from_millis(600), Duration::from_millis(1200)],
        async || app.handle(signed_texts(&message)).await.status().as_u16(),
    )
    .await;
    assert_eq!(first.status(), 200);
    assert_eq!(redelivered, [200, 200]);
    assert!(
        took > lease * 3,
        "the handling must outlast the lease: {took:?}"
    );
    slow.assert_answered_once();

    // Settled: a later redelivery is a duplicate.
    app.handle(signed_texts(&message)).await;
    assert_eq!(slow.agent.calls(), 1);
}

#[tokio::test]
async fn a_batch_from_many_senders_runs_a_bounded_number_of_agent_calls_at_once() {
    let agent = Arc::new(CountingAgent::new("ok", Duration::from_millis(50)));
    let messenger = Arc::new(RecordingMessenger::with_delay(Duration::ZERO));
    let app = inline_app(agent.clone(), messenger.clone(), DEFAULT_LEASE, "*");
    let messages: Vec<(String, String, String)> = (0..200)
        .map(|n| {
            (
                format!("wamid.WIDE.{n}"),
                format!("1415555{n:04}"),
                "hi".to_owned(),
            )
        })
        .collect();
    let answer = app.handle(signed_texts(&messages)).await;
    assert_eq!(answer.status(), 200);
    agent.assert_wide_batch_answered(&messenger, 200);
}

/// What `app` logs (plain text, no time or target) while it accepts `request`.
fn logs_of_accepting(app: &WebhookApp, request: &lambda_http::Request) -> String {
    use lambda_http::tracing::subscriber::util::SubscriberInitExt;
    let buffer: Arc<std::sync::Mutex<Vec<u8>>> = Arc::default();
    let sink = buffer.clone();
    let subscriber = lambda_http::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_ansi(false)
        .with_max_level(lambda_http::tracing::Level::INFO)
        .with_writer(move || LogSink(sink.clone()))
        .finish();
    {
        let _default = subscriber.set_default();
        let body = whatsapp_agent_lambda::webhook::answer::body_bytes(request.body());
        let messages = app
            .accept(request.headers(), body)
            .expect("a signed webhook is accepted");
        assert!(
            messages.messages.is_empty(),
            "a template update is no message"
        );
    }
    String::from_utf8(buffer.lock().unwrap().clone()).unwrap()
}

struct LogSink(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A signed `message_template_status_update` webhook (Meta's documented shape).
fn template_status(event: &str, name: &str, language: &str) -> lambda_http::Request {
    let body = json!({"object": "whatsapp_business_account", "entry": [{
        "id": "102290129340398", "time": 1795514400,
        "changes": [{"value": {
            "event": event, "message_template_id": 1689556908129832u64,
            "message_template_name": name, "message_template_language": language,
            "reason": if event == "REJECTED" { "INCORRECT_CATEGORY" } else { "NONE" },
        }, "field": "message_template_status_update"}]
    }]});
    signed(body.to_string().as_bytes())
}

#[tokio::test]
async fn template_status_updates_are_answered_200_and_reach_nobody() {
    let h = Harness::echo();
    let answer = h.app.handle(event("post-template-status.json")).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(h.agent.calls(), 0);
    assert!(h.messenger.sent().is_empty());
}

#[test]
fn a_watched_template_paused_disabled_or_rejected_is_an_error_naming_it() {
    let app = WebhookApp::new(
        secrets_with_app_secret(LOCAL_APP_SECRET),
        Allowlist::parse(LOCAL_ALLOWED_SENDERS).unwrap(),
        Dispatcher::Queue(Arc::new(MemoryQueue::new())),
        4 * 1024 * 1024,
    )
    .watching_templates(vec![
        "oncall_alert:en".to_owned(),
        "oncall_notice:en_US".to_owned(),
        String::new(),
    ]);

    // Meta's documented pause, as the sample event carries it.
    let logs = logs_of_accepting(&app, &event("post-template-status.json"));
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 1, "{logs}");
    let line = lines[0];
    assert!(line.starts_with("ERROR"), "{line}");
    for expected in [
        "pages will fail until it is fixed",
        "template=oncall_alert:en",
        "event=PAUSED",
        "reason=NONE",
        "info=FIRST_PAUSE",
        "details=Your WhatsApp message template has been paused for 3 hours",
    ] {
        assert!(line.contains(expected), "{expected:?} not in {line}");
    }

    for (event, name, language, level) in [
        ("DISABLED", "oncall_alert", "en", "ERROR"),
        ("REJECTED", "oncall_notice", "en-US", "ERROR"),
        // Another language of a watched name, or a template this deployment does not send.
        ("PAUSED", "oncall_alert", "de", "WARN"),
        ("REJECTED", "marketing_promo", "en", "WARN"),
        // Good news and everything else.
        ("APPROVED", "oncall_alert", "en", "INFO"),
        ("PENDING_DELETION", "oncall_notice", "en_US", "INFO"),
    ] {
        let logs = logs_of_accepting(&app, &template_status(event, name, language));
        let line = logs.lines().next().unwrap_or_default();
        assert_eq!(logs.lines().count(), 1, "{logs}");
        assert!(
            line.trim_start().starts_with(level),
            "{event} {name}:{language}: {line}"
        );
        assert!(line.contains(&format!("event={event}")), "{line}");
        assert!(
            line.contains(&format!("template={name}:{}", language.replace('-', "_"))),
            "{line}"
        );
        assert_eq!(
            line.contains("pages will fail until it is fixed"),
            level == "ERROR",
            "{line}"
        );
    }

    // Without watched templates, a pause is a warning.
    let unwatched = WebhookApp::new(
        secrets_with_app_secret(LOCAL_APP_SECRET),
        Allowlist::parse(LOCAL_ALLOWED_SENDERS).unwrap(),
        Dispatcher::Queue(Arc::new(MemoryQueue::new())),
        4 * 1024 * 1024,
    );
    let logs = logs_of_accepting(&unwatched, &event("post-template-status.json"));
    assert!(logs.trim_start().starts_with("WARN"), "{logs}");
}

/// The queue-mode webhook paging for the sample on-call list: Bob (not an allowed sender) is
/// in the second tier.
fn paging_app(queue: Arc<MemoryQueue>) -> WebhookApp {
    let oncall = whatsapp_agent_lambda::alerts::oncall::OnCall::parse(
        r#"{"tiers": [["+14155551234"], [{"number": "+447700900123", "name": "Bob"}]]}"#,
    )
    .unwrap();
    WebhookApp::new(
        secrets_with_app_secret(LOCAL_APP_SECRET),
        Allowlist::parse(LOCAL_ALLOWED_SENDERS).unwrap(),
        Dispatcher::Queue(queue),
        4 * 1024 * 1024,
    )
    .with_paging(
        oncall,
        whatsapp_agent_lambda::secrets::Secret::new(
            whatsapp_agent_lambda::dev::events::LOCAL_ALERT_TOKEN,
        ),
    )
}

/// A signed webhook body with one message `message` from `from`.
fn signed_message(from: &str, message: serde_json::Value) -> lambda_http::Request {
    let mut message = message;
    message["from"] = from.into();
    message["timestamp"] = "1795514400".into();
    let envelope =
        whatsapp_agent_lambda::dev::events::with_message(&event_json("post-text.json"), message)
            .unwrap();
    lambda_http::request::from_str(&envelope.to_string()).unwrap()
}

#[tokio::test]
async fn in_queue_mode_alerts_are_queued_in_their_own_group_and_a_wrong_bearer_queues_nothing() {
    use whatsapp_agent_lambda::queue::Work;
    let queue = Arc::new(MemoryQueue::new());
    let app = paging_app(queue.clone());

    let mut forged = event_json("post-alerts-alertmanager.json");
    forged["headers"]["authorization"] = "Bearer guessed".into();
    let answer = app
        .handle(lambda_http::request::from_str(&forged.to_string()).unwrap())
        .await;
    assert_eq!(answer.status(), 401);
    assert!(queue.jobs().is_empty());

    let answer = app.handle(event("post-alerts-alertmanager.json")).await;
    assert_eq!(answer.status(), 202);
    assert_eq!(text_of(answer.body()), "accepted");
    let jobs = queue.jobs();
    assert_eq!(jobs.len(), 1);
    let Work::Alerts(batch) = &jobs[0].work else {
        panic!("an alerts job: {:?}", jobs[0]);
    };
    assert_eq!(batch.alerts.len(), 2, "the group's two alerts, one job");
    assert!(jobs[0].group().starts_with("alerts:"));

    // GET on /alerts: only POST.
    let mut get = event_json("post-alerts-generic.json");
    get["requestContext"]["http"]["method"] = "GET".into();
    let answer = app
        .handle(lambda_http::request::from_str(&get.to_string()).unwrap())
        .await;
    assert_eq!(answer.status(), 405);
    assert_eq!(answer.headers()["allow"], "POST");
}

#[tokio::test]
async fn taps_on_pages_from_people_on_call_pass_the_allowlist_in_their_own_group_nothing_else_does()
{
    use whatsapp_agent_lambda::queue::Work;
    let queue = Arc::new(MemoryQueue::new());
    let app = paging_app(queue.clone());
    let bob = "447700900123";

    let text = json!({"id": "wamid.BOB.1", "type": "text", "text": {"body": "hi"}});
    assert_eq!(app.handle(signed_message(bob, text)).await.status(), 200);
    assert!(queue.jobs().is_empty(), "Bob is not an allowed sender");

    let lookalike = json!({"id": "wamid.BOB.2", "type": "button",
        "button": {"payload": "view_logs", "text": "View Logs"}});
    assert_eq!(
        app.handle(signed_message(bob, lookalike)).await.status(),
        200
    );
    assert!(queue.jobs().is_empty(), "only taps on our pages pass");

    let payload = format!("wal:alert:{}:acknowledge", "ab".repeat(16));
    let tap = json!({"id": "wamid.BOB.3", "type": "button",
        "context": {"from": "15550000000", "id": "wamid.out.1"},
        "button": {"payload": payload, "text": "Acknowledge"}});
    assert_eq!(app.handle(signed_message(bob, tap)).await.status(), 200);
    let jobs = queue.jobs();
    assert_eq!(jobs.len(), 1);
    assert!(matches!(&jobs[0].work, Work::Message(m) if m.sender.phone.as_deref() == Some(bob)));
    assert_eq!(jobs[0].group(), format!("page-tap:{bob}"));

    // Someone neither allowed nor on call: their tap goes nowhere.
    let stranger = json!({"id": "wamid.X.1", "type": "button",
        "context": {"from": "15550000000", "id": "wamid.out.1"},
        "button": {"payload": format!("wal:alert:{}:acknowledge", "cd".repeat(16)), "text": "Acknowledge"}});
    assert_eq!(
        app.handle(signed_message("4915112345678", stranger))
            .await
            .status(),
        200
    );
    assert_eq!(queue.jobs().len(), 1);
}

#[tokio::test]
async fn while_paging_failed_delivery_statuses_are_handed_to_the_worker() {
    use whatsapp_agent_lambda::queue::Work;
    let queue = Arc::new(MemoryQueue::new());
    let app = paging_app(queue.clone());
    let mut envelope = event_json("post-status-only.json");
    let mut body: serde_json::Value =
        serde_json::from_str(envelope["body"].as_str().unwrap()).unwrap();
    let statuses = &mut body["entry"][0]["changes"][0]["value"]["statuses"];
    statuses[0]["status"] = "failed".into();
    statuses[0]["errors"] = json!([{"code": 131049, "title": "This message was not delivered to maintain healthy ecosystem engagement."}]);
    envelope["body"] = body.to_string().into();
    whatsapp_agent_lambda::dev::events::resign(&mut envelope, false).unwrap();
    let answer = app
        .handle(lambda_http::request::from_str(&envelope.to_string()).unwrap())
        .await;
    assert_eq!(answer.status(), 200);
    // The sample already holds one failed status (131047); the sent and delivered ones are
    // not handed off.
    let failed_in_body = body["entry"][0]["changes"][0]["value"]["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|status| status["status"] == "failed")
        .count();
    assert_eq!(failed_in_body, 2);
    let jobs = queue.jobs();
    assert_eq!(jobs.len(), failed_in_body, "{jobs:?}");
    let Work::Failed(failed) = &jobs[0].work else {
        panic!("a failed-delivery job: {:?}", jobs[0]);
    };
    assert!(failed.sent_id.starts_with("wamid."));
    assert_eq!(failed.code.as_deref(), Some("131049"));
    assert!(jobs.iter().all(|job| matches!(job.work, Work::Failed(_))));
}

//! On-call paging through the public API: alerts in, pages out (template or buttons), taps
//! through the pipeline (acknowledge → agent, details, escalate), escalation timers fired by
//! hand (each step once however often its timer comes), resolution in the page's thread,
//! repeats, pages that were not delivered, pacing. The alerts table is the in-memory twin
//! here; tests/alerts_store.rs runs the DynamoDB adapter and the SQS timers on moto, and
//! tests/local_mode.rs the whole flow through the real binary.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::timers::RecordingTimers;
use whatsapp_agent_lambda::agent::contract::rfc3339;
use whatsapp_agent_lambda::agent::{AgentReply, AgentRequest, Agents, NamedAgent, ScriptedAgent};
use whatsapp_agent_lambda::alerts::AlertBatch;
use whatsapp_agent_lambda::alerts::ingress::parse_alerts;
use whatsapp_agent_lambda::alerts::oncall::OnCall;
use whatsapp_agent_lambda::alerts::paging::{Paging, PagingConfig};
use whatsapp_agent_lambda::domain::{
    InboundMessage, MessageId, MessageKind, OutgoingMessage, PhoneNumberId, Sender, TemplateRef,
};
use whatsapp_agent_lambda::graph::{GraphError, RecordingMessenger, SentRecord};
use whatsapp_agent_lambda::pipeline::{Attempt, Outcome, Pipeline};
use whatsapp_agent_lambda::records::MemoryRecords;
use whatsapp_agent_lambda::sessions::conversation::unix_now;
use whatsapp_agent_lambda::timers::{Timer, TimerKind};

const BUSINESS: &str = "106540352242922";
const ALICE: &str = "14155551234";
const BOB: &str = "447700900123";
const CAROL: &str = "4915112345678";
/// When the tests' alerts start: ten minutes ago, on the minute (the table's records expire by
/// the wall clock, so the tests' times are near it).
static T0: std::sync::LazyLock<i64> = std::sync::LazyLock::new(|| (unix_now() / 60) * 60 - 600);

fn t0() -> i64 {
    *T0
}

/// RFC 3339 of `t0() + seconds`, as Alertmanager writes `startsAt`.
fn at(seconds: i64) -> String {
    rfc3339(t0() + seconds)
}

struct Rig {
    paging: Arc<Paging>,
    pipeline: Pipeline,
    messenger: Arc<RecordingMessenger>,
    timers: Arc<RecordingTimers>,
    agent: Arc<ScriptedAgent>,
    taps: Mutex<u32>,
}

fn oncall(json: &str) -> OnCall {
    OnCall::parse(json).expect("ONCALL parses")
}

/// Alice in the first tier, Bob in the second; `min_interval` seconds between pages.
fn rig_with(oncall_json: &str, min_interval: u64) -> Rig {
    let messenger = Arc::new(RecordingMessenger::new());
    let timers = Arc::new(RecordingTimers::default());
    let agent = Arc::new(ScriptedAgent::new(|request: &AgentRequest| {
        let alert = request
            .event
            .alert
            .as_ref()
            .map_or("-", |a| a.title.as_str());
        Ok(Some(AgentReply::text(
            None,
            format!(
                "agent on {}: {} {}",
                request.event.kind,
                request.event.action.as_deref().unwrap_or("-"),
                alert
            ),
        )))
    }));
    let agents = Agents::new(
        vec![NamedAgent {
            name: "ops".to_owned(),
            description: None,
            agent: agent.clone(),
        }],
        Some("ops"),
    )
    .unwrap();
    let pipeline = support::timers::pipeline_over(agents, messenger.clone());
    let paging = Arc::new(Paging::new(
        PagingConfig {
            oncall: oncall(oncall_json),
            from: PhoneNumberId::from(BUSINESS),
            alert_template: TemplateRef::parse("oncall_alert:en").unwrap(),
            notice_template: Some(TemplateRef::parse("oncall_notice:en").unwrap()),
            min_interval: Duration::from_secs(min_interval),
        },
        Arc::new(MemoryRecords::new()),
        timers.clone(),
        messenger.clone(),
        pipeline.shared_conversations(),
    ));
    let pipeline = pipeline.with_paging(paging.clone());
    Rig {
        paging,
        pipeline,
        messenger,
        timers,
        agent,
        taps: Mutex::new(0),
    }
}

const TWO_TIERS: &str = r#"{"tiers": [[{"number": "+14155551234", "name": "Alice"}], [{"number": "+447700900123", "name": "Bob"}]], "escalate_after_secs": 300}"#;

fn rig() -> Rig {
    rig_with(TWO_TIERS, 0)
}

/// An Alertmanager (version 4) notification of `alerts` (name, fingerprint, status).
fn alertmanager(alerts: &[(&str, &str, &str)], starts_at: &str) -> AlertBatch {
    let items: Vec<serde_json::Value> = alerts
        .iter()
        .map(|(name, fingerprint, status)| {
            serde_json::json!({
                "status": status,
                "labels": {"alertname": name, "severity": "critical", "namespace": "prod"},
                "annotations": {"summary": format!("{name} in prod"), "description": "pods restarting"},
                "startsAt": starts_at,
                "endsAt": if *status == "resolved" { at(23 * 60) } else { "0001-01-01T00:00:00Z".to_owned() },
                "generatorURL": "http://prometheus.example/graph?g0.expr=up",
                "fingerprint": fingerprint
            })
        })
        .collect();
    let status = if alerts.iter().any(|a| a.2 == "firing") {
        "firing"
    } else {
        "resolved"
    };
    let body = serde_json::json!({
        "version": "4",
        "groupKey": "{}:{alertname=\"PodCrashLooping\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "whatsapp",
        "groupLabels": {"alertname": alerts[0].0},
        "commonLabels": {"severity": "critical"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example",
        "alerts": items
    });
    parse_alerts(body.to_string().as_bytes(), t0()).expect("Alertmanager body parses")
}

fn firing(name: &str, fingerprint: &str) -> AlertBatch {
    alertmanager(&[(name, fingerprint, "firing")], &at(0))
}

fn resolved(name: &str, fingerprint: &str) -> AlertBatch {
    alertmanager(&[(name, fingerprint, "resolved")], &at(0))
}

fn to(record: &SentRecord) -> &str {
    record.to.as_str()
}

fn sent_to<'a>(sent: &'a [SentRecord], number: &str) -> Vec<&'a SentRecord> {
    sent.iter().filter(|r| to(r) == number).collect()
}

/// The payloads (or button ids) of a page.
fn page_taps(record: &SentRecord) -> Vec<String> {
    match &record.message {
        OutgoingMessage::Template { quick_replies, .. } => quick_replies.clone(),
        OutgoingMessage::Buttons { buttons, .. } => buttons.iter().map(|b| b.id.clone()).collect(),
        other => panic!("not a page: {other:?}"),
    }
}

fn is_page(record: &SentRecord) -> bool {
    match &record.message {
        OutgoingMessage::Template { template, .. } => template.name == "oncall_alert",
        OutgoingMessage::Buttons { buttons, .. } => {
            buttons.iter().any(|b| b.id.starts_with("wal:alert:"))
        }
        _ => false,
    }
}

fn text_of(record: &SentRecord) -> String {
    match &record.message {
        OutgoingMessage::Text { body } => body.clone(),
        OutgoingMessage::Template { body, .. } => body.join(" | "),
        OutgoingMessage::Buttons { body, .. } => body.clone(),
        other => format!("{other:?}"),
    }
}

impl Rig {
    /// A tap by `number` on button `index` (0 acknowledge, 1 details, 2 escalate) of `page`,
    /// as the template quick reply Meta sends, quoting `context`.
    fn tap(
        &self,
        number: &str,
        page: &SentRecord,
        index: usize,
        context: &MessageId,
    ) -> InboundMessage {
        let mut count = self.taps.lock().unwrap();
        *count += 1;
        let mut message = InboundMessage::sample(
            &format!("wamid.tap.{number}.{count}"),
            MessageKind::TemplateButton {
                payload: page_taps(page)[index].clone(),
                text: ["Acknowledge", "Details", "Escalate"][index].to_owned(),
            },
        );
        message.sender = Sender {
            phone: Some(number.to_owned()),
            ..Sender::default()
        };
        message.reply_to = Some(context.clone());
        message.timestamp = t0() + 60;
        message
    }

    async fn fire_all(&self, now: i64) -> usize {
        let due = self.timers.take();
        let count = due.len();
        for timer in due {
            self.paging
                .fire(&timer, now.max(timer.due_at))
                .await
                .unwrap();
        }
        count
    }

    fn last_page_to(&self, number: &str) -> SentRecord {
        self.messenger
            .sent()
            .into_iter()
            .rev()
            .find(|r| to(r) == number && is_page(r))
            .expect("a page")
    }
}

#[tokio::test]
async fn a_firing_alert_pages_the_first_tier_with_the_template_and_sets_the_timer() {
    let rig = rig();
    let done = rig
        .paging
        .ingest(&firing("PodCrashLooping", "a1"), t0())
        .await
        .unwrap();
    assert_eq!((done.opened, done.repeats), (1, 0));
    let sent = rig.messenger.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(to(&sent[0]), ALICE);
    let OutgoingMessage::Template {
        template,
        body,
        quick_replies,
    } = &sent[0].message
    else {
        panic!("a closed window gets the template: {:?}", sent[0].message);
    };
    assert_eq!(template.name, "oncall_alert");
    assert_eq!(body.len(), 4);
    assert_eq!(body[0], "critical");
    assert_eq!(body[1], "PodCrashLooping");
    assert!(body[2].starts_with("PodCrashLooping in prod"), "{body:?}");
    assert!(body.iter().all(|p| !p.contains('\n') && !p.contains('\t')));
    assert_eq!(quick_replies.len(), 3);
    let nonce = quick_replies[0]
        .trim_start_matches("wal:alert:")
        .split(':')
        .next()
        .unwrap();
    assert!(nonce.len() >= 24, "at least 96 random bits: {nonce}");
    assert!(quick_replies[0].ends_with(":acknowledge"));
    assert!(quick_replies[1].ends_with(":details"));
    assert!(quick_replies[2].ends_with(":escalate"));
    let timers = rig.timers.take();
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0].due_at, t0() + 300);
    assert!(
        matches!(&timers[0].kind, TimerKind::Escalate { step: 0, incidents } if incidents.len() == 1)
    );
}

#[tokio::test]
async fn acknowledge_is_recorded_once_reacts_tells_the_others_and_hands_the_alert_to_the_agent() {
    let rig = rig_with(
        r#"{"tiers": [[{"number": "+14155551234", "name": "Alice"}, {"number": "+447700900123", "name": "Bob"}]], "escalate_after_secs": 300, "agent": "ops"}"#,
        0,
    );
    rig.paging
        .ingest(&firing("PodCrashLooping", "a1"), t0())
        .await
        .unwrap();
    let alice_page = rig.last_page_to(ALICE);
    let bob_page = rig.last_page_to(BOB);
    let tap = rig.tap(ALICE, &alice_page, 0, &alice_page.id);
    let outcome = rig.pipeline.handle(&tap, Attempt::Retryable).await;
    assert_eq!(outcome, Outcome::Replied { messages: 1 });

    let requests = rig.agent.requests();
    assert_eq!(requests.len(), 1);
    let event = &requests[0].event;
    assert_eq!(event.kind, "alert_action");
    assert_eq!(event.action.as_deref(), Some("acknowledge"));
    let alert = event.alert.as_ref().expect("event.alert");
    assert_eq!(alert.title, "PodCrashLooping");
    assert_eq!(alert.severity, "critical");
    assert_eq!(alert.status, "acknowledged");
    assert_eq!(alert.source, "alertmanager");
    assert_eq!(alert.started_at, at(0));
    assert_eq!(
        alert.labels.get("namespace").map(String::as_str),
        Some("prod")
    );
    assert!(
        alert
            .url
            .as_deref()
            .unwrap()
            .starts_with("http://prometheus.example")
    );
    assert!(!alert.id.is_empty());
    assert_eq!(requests[0].session.agent, "ops");

    let sent = rig.messenger.sent();
    let reaction = sent
        .iter()
        .find(|r| matches!(&r.message, OutgoingMessage::Reaction { .. }))
        .expect("a ✅ reaction");
    assert_eq!(to(reaction), ALICE);
    assert_eq!(
        reaction.message,
        OutgoingMessage::Reaction {
            message_id: alice_page.id.as_str().to_owned(),
            emoji: "✅".to_owned()
        }
    );
    let to_bob: Vec<String> = sent_to(&sent, BOB).iter().map(|r| text_of(r)).collect();
    assert!(
        to_bob
            .iter()
            .any(|t| t.contains("✅ Alice acknowledged: PodCrashLooping")),
        "{to_bob:?}"
    );
    let answer = sent_to(&sent, ALICE).into_iter().last().unwrap();
    assert!(text_of(answer).contains("agent on alert_action: acknowledge PodCrashLooping"));
    assert_eq!(
        answer.context.as_ref(),
        Some(&tap.id),
        "the answer quotes the tap"
    );

    // The escalation timer finds it acknowledged: nobody else is paged.
    let before = rig.messenger.sent().len();
    assert_eq!(rig.fire_all(t0() + 300).await, 1);
    assert_eq!(rig.messenger.sent().len(), before);

    // Bob acknowledging later is told, and nothing else happens.
    let late = rig.tap(BOB, &bob_page, 0, &bob_page.id);
    rig.pipeline.handle(&late, Attempt::Retryable).await;
    let last = rig.messenger.sent().into_iter().last().unwrap();
    assert_eq!(to(&last), BOB);
    assert!(
        text_of(&last).contains("Already acknowledged by Alice"),
        "{}",
        text_of(&last)
    );
    assert_eq!(rig.agent.calls(), 1);
}

#[tokio::test]
async fn two_people_acknowledging_at_the_same_moment_exactly_one_wins() {
    let rig = rig_with(
        r#"{"tiers": [["+14155551234", "+447700900123", "+4915112345678"]], "escalate_after_secs": 300}"#,
        0,
    );
    rig.paging
        .ingest(&firing("DiskFull", "d1"), t0())
        .await
        .unwrap();
    let taps: Vec<InboundMessage> = [ALICE, BOB, CAROL]
        .iter()
        .map(|n| {
            let page = rig.last_page_to(n);
            rig.tap(n, &page, 0, &page.id)
        })
        .collect();
    let (a, b, c) = tokio::join!(
        rig.pipeline.handle(&taps[0], Attempt::Retryable),
        rig.pipeline.handle(&taps[1], Attempt::Retryable),
        rig.pipeline.handle(&taps[2], Attempt::Retryable),
    );
    assert!(
        [a, b, c]
            .iter()
            .all(|o| matches!(o, Outcome::Replied { .. }))
    );
    assert_eq!(
        rig.agent.calls(),
        1,
        "exactly one acknowledgement reaches the agent"
    );
    let sent = rig.messenger.sent();
    let reactions = sent
        .iter()
        .filter(|r| matches!(r.message, OutgoingMessage::Reaction { .. }))
        .count();
    assert_eq!(reactions, 1);
    let losers = sent
        .iter()
        .filter(|r| text_of(r).starts_with("Already acknowledged by"))
        .count();
    assert_eq!(losers, 2);
}

#[tokio::test]
async fn nobody_acknowledging_escalates_once_per_step_then_sends_the_final_notice() {
    let rig = rig();
    rig.paging
        .ingest(&firing("ApiDown", "x1"), t0())
        .await
        .unwrap();
    let timers = rig.timers.take();
    // The same timer delivered twice (SQS is at-least-once): the second does nothing.
    rig.paging.fire(&timers[0], t0() + 300).await.unwrap();
    rig.paging.fire(&timers[0], t0() + 301).await.unwrap();
    let sent = rig.messenger.sent();
    let pages_to_bob = sent_to(&sent, BOB)
        .into_iter()
        .filter(|r| is_page(r))
        .count();
    assert_eq!(pages_to_bob, 1, "{sent:?}");
    let told_alice: Vec<String> = sent_to(&sent, ALICE).iter().map(|r| text_of(r)).collect();
    assert!(
        told_alice.iter().any(|t| t.contains("now paging Bob")),
        "{told_alice:?}"
    );

    // Tier two's timer: the last tier, so the final notice to everyone paged.
    let next = rig.timers.take();
    assert_eq!(next.len(), 1);
    assert!(matches!(next[0].kind, TimerKind::Escalate { step: 1, .. }));
    assert_eq!(next[0].due_at, t0() + 600);
    rig.paging.fire(&next[0], t0() + 600).await.unwrap();
    let sent = rig.messenger.sent();
    for number in [ALICE, BOB] {
        let last = sent_to(&sent, number).into_iter().last().unwrap();
        assert!(text_of(last).contains("Final notice"), "{}", text_of(last));
    }
    assert!(rig.timers.take().is_empty());

    // A repeat after the final notice, nobody having acknowledged: from the first tier again.
    let before = rig.messenger.sent().len();
    let again = rig
        .paging
        .ingest(&firing("ApiDown", "x1"), t0() + 4 * 3600)
        .await
        .unwrap();
    assert_eq!(again.opened, 1);
    let sent = rig.messenger.sent();
    assert_eq!(sent.len(), before + 1);
    assert_eq!(to(&sent[before]), ALICE);
}

#[tokio::test]
async fn a_repeat_of_an_incident_being_handled_pages_nobody() {
    let rig = rig();
    rig.paging
        .ingest(&firing("ApiDown", "x1"), t0())
        .await
        .unwrap();
    let again = rig
        .paging
        .ingest(&firing("ApiDown", "x1"), t0() + 3600)
        .await
        .unwrap();
    assert_eq!((again.opened, again.repeats), (0, 1));
    assert_eq!(rig.messenger.sent().len(), 1);
}

#[tokio::test]
async fn resolved_answers_in_the_page_thread_and_stops_escalation() {
    let rig = rig();
    rig.paging
        .ingest(&firing("ApiDown", "x1"), t0())
        .await
        .unwrap();
    let page = rig.last_page_to(ALICE);
    let done = rig
        .paging
        .ingest(&resolved("ApiDown", "x1"), t0() + 23 * 60)
        .await
        .unwrap();
    assert_eq!(done.resolved, 1);
    let last = rig.messenger.sent().into_iter().last().unwrap();
    assert_eq!(to(&last), ALICE);
    assert!(
        text_of(&last).contains("✅ Resolved after 23 min"),
        "{}",
        text_of(&last)
    );
    assert_eq!(
        last.context.as_ref(),
        Some(&page.id),
        "in the page's thread"
    );
    let before = rig.messenger.sent().len();
    rig.fire_all(t0() + 300).await;
    assert_eq!(rig.messenger.sent().len(), before, "escalation stopped");

    // The old page's buttons do not acknowledge the next incident of the same alert.
    rig.paging
        .ingest(
            &alertmanager(&[("ApiDown", "x1", "firing")], &at(7200)),
            t0() + 7200,
        )
        .await
        .unwrap();
    let tap = rig.tap(ALICE, &page, 0, &page.id);
    rig.pipeline.handle(&tap, Attempt::Retryable).await;
    let last = rig.messenger.sent().into_iter().last().unwrap();
    assert!(
        text_of(&last).contains("Already resolved"),
        "{}",
        text_of(&last)
    );
    assert_eq!(rig.agent.calls(), 0);
}

#[tokio::test]
async fn a_page_the_graph_api_refuses_escalates_at_once() {
    let rig = rig();
    rig.messenger.fail_next_sends(1, || GraphError::Api {
        status: 400,
        code: 131026,
        subcode: None,
        message: "Message undeliverable".to_owned(),
        fbtrace_id: None,
    });
    rig.paging
        .ingest(&firing("ApiDown", "x1"), t0())
        .await
        .unwrap();
    let sent = rig.messenger.sent();
    assert!(sent.iter().any(|r| to(r) == BOB && is_page(r)), "{sent:?}");
    let timers = rig.timers.take();
    assert_eq!(timers.len(), 1, "only the second tier's timer");
    assert!(matches!(
        timers[0].kind,
        TimerKind::Escalate { step: 1, .. }
    ));
}

#[tokio::test]
async fn a_failed_status_for_a_page_escalates_at_once_and_other_statuses_do_nothing() {
    let rig = rig();
    rig.paging
        .ingest(&firing("ApiDown", "x1"), t0())
        .await
        .unwrap();
    let page = rig.last_page_to(ALICE);
    assert!(
        !rig.paging
            .delivery_failed("wamid.not-ours", Some("131049"), t0() + 5)
            .await
            .unwrap()
    );
    assert!(
        rig.paging
            .delivery_failed(page.id.as_str(), Some("131049"), t0() + 5)
            .await
            .unwrap()
    );
    assert!(
        rig.messenger
            .sent()
            .iter()
            .any(|r| to(r) == BOB && is_page(r))
    );
    // A second failed status for the same page moves nothing further.
    let before = rig.messenger.sent().len();
    rig.paging
        .delivery_failed(page.id.as_str(), Some("131049"), t0() + 6)
        .await
        .unwrap();
    assert_eq!(rig.messenger.sent().len(), before);
}

#[tokio::test]
async fn taps_with_a_foreign_context_from_someone_else_or_forged_are_refused() {
    let rig = rig();
    rig.paging
        .ingest(&firing("ApiDown", "x1"), t0())
        .await
        .unwrap();
    let page = rig.last_page_to(ALICE);
    let cases = [
        (ALICE, MessageId::from("wamid.some-other-message")),
        (BOB, page.id.clone()),
    ];
    for (number, context) in cases {
        let tap = rig.tap(number, &page, 0, &context);
        let outcome = rig.pipeline.handle(&tap, Attempt::Retryable).await;
        assert_eq!(outcome, Outcome::Replied { messages: 1 });
    }
    let mut forged = rig.tap(ALICE, &page, 0, &page.id);
    forged.kind = MessageKind::TemplateButton {
        payload: "wal:alert:00000000000000000000000000000000:acknowledge".to_owned(),
        text: "Acknowledge".to_owned(),
    };
    rig.pipeline.handle(&forged, Attempt::Retryable).await;
    assert_eq!(rig.agent.calls(), 0, "no refused tap reaches the agent");
    let texts: Vec<String> = rig.messenger.sent()[1..].iter().map(text_of).collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(
        texts[0].contains("use the buttons on the page"),
        "{texts:?}"
    );
    assert!(texts[1].contains("not paged for this alert"), "{texts:?}");
    assert!(texts[2].contains("no longer active"), "{texts:?}");
    // Still escalating: the refused taps acknowledged nothing.
    rig.fire_all(t0() + 300).await;
    assert!(
        rig.messenger
            .sent()
            .iter()
            .any(|r| to(r) == BOB && is_page(r))
    );
}

#[tokio::test]
async fn details_goes_to_the_agent_and_escalate_pages_the_next_tier_now() {
    let rig = rig();
    rig.paging
        .ingest(&firing("ApiDown", "x1"), t0())
        .await
        .unwrap();
    let page = rig.last_page_to(ALICE);
    rig.pipeline
        .handle(&rig.tap(ALICE, &page, 1, &page.id), Attempt::Retryable)
        .await;
    let requests = rig.agent.requests();
    assert_eq!(requests[0].event.action.as_deref(), Some("details"));
    assert_eq!(requests[0].event.kind, "alert_action");
    // The history keeps what the agent was told, not the button's id.
    let mut follow_up = InboundMessage::sample(
        "wamid.follow-up",
        MessageKind::Text {
            body: "what changed?".into(),
        },
    );
    follow_up.sender.phone = Some(ALICE.to_owned());
    rig.pipeline.handle(&follow_up, Attempt::Retryable).await;
    let history = &rig.agent.requests()[1].history;
    assert_eq!(history[0].text, "details: ApiDown");
    assert!(history.iter().all(|turn| !turn.text.contains("wal:")));

    rig.pipeline
        .handle(&rig.tap(ALICE, &page, 2, &page.id), Attempt::Retryable)
        .await;
    let sent = rig.messenger.sent();
    assert!(sent.iter().any(|r| to(r) == BOB && is_page(r)), "{sent:?}");
    assert_eq!(rig.agent.calls(), 2, "escalate is answered by the function");
}

#[tokio::test]
async fn an_open_window_gets_buttons_and_a_group_is_one_page() {
    let rig = rig();
    // Alice wrote a minute ago: her window is open.
    let mut hello = InboundMessage::sample("wamid.hello", MessageKind::Text { body: "hi".into() });
    hello.sender.phone = Some(ALICE.to_owned());
    rig.pipeline.handle(&hello, Attempt::Retryable).await;
    let now = unix_now();
    let batch = alertmanager(
        &[
            ("PodCrashLooping", "g1", "firing"),
            ("HighLatency", "g2", "firing"),
            ("ErrorRate", "g3", "firing"),
        ],
        &at(0),
    );
    rig.paging.ingest(&batch, now).await.unwrap();
    let pages: Vec<SentRecord> = rig.messenger.sent().into_iter().filter(is_page).collect();
    assert_eq!(pages.len(), 1, "one page for the group");
    let OutgoingMessage::Buttons { body, buttons, .. } = &pages[0].message else {
        panic!("buttons in an open window: {:?}", pages[0].message);
    };
    assert!(body.contains("3 alerts firing"), "{body}");
    for name in ["PodCrashLooping", "HighLatency", "ErrorRate"] {
        assert!(body.contains(name), "{body}");
    }
    let titles: Vec<&str> = buttons.iter().map(|b| b.title.as_str()).collect();
    assert_eq!(titles, ["Acknowledge", "Details", "Escalate"]);
}

#[tokio::test]
async fn an_alert_storm_is_one_page_per_person_per_interval() {
    let rig = rig_with(TWO_TIERS, 60);
    for (i, name) in ["A", "B", "C", "D"].iter().enumerate() {
        rig.paging
            .ingest(&firing(name, &format!("s{i}")), t0() + i as i64)
            .await
            .unwrap();
    }
    let pages: Vec<SentRecord> = rig.messenger.sent().into_iter().filter(is_page).collect();
    assert_eq!(pages.len(), 1, "the first goes out, the rest wait");
    let timers = rig.timers.take();
    let flushes: Vec<&Timer> = timers
        .iter()
        .filter(|t| matches!(t.kind, TimerKind::Flush { .. }))
        .collect();
    assert_eq!(flushes.len(), 1);
    assert_eq!(flushes[0].due_at, t0() + 60);
    rig.paging.fire(flushes[0], t0() + 60).await.unwrap();
    let pages: Vec<SentRecord> = rig.messenger.sent().into_iter().filter(is_page).collect();
    assert_eq!(pages.len(), 2);
    let folded = text_of(&pages[1]);
    assert!(folded.contains("3 alerts firing"), "{folded}");
    // The folded page's buttons acknowledge all three.
    let tap = rig.tap(ALICE, &pages[1], 0, &pages[1].id);
    rig.pipeline.handle(&tap, Attempt::Retryable).await;
    let request = &rig.agent.requests()[0];
    assert!(
        request.event.text.contains("B") && request.event.text.contains("D"),
        "{}",
        request.event.text
    );
}

#[tokio::test]
async fn a_timer_handed_back_early_is_scheduled_again_for_the_rest() {
    let rig = rig();
    let timer = Timer {
        due_at: t0() + 3600,
        kind: TimerKind::Flush {
            person: ALICE.to_owned(),
        },
    };
    rig.paging.fire(&timer, t0() + 900).await.unwrap();
    assert_eq!(rig.timers.take(), vec![timer]);
    assert!(rig.messenger.sent().is_empty());
}

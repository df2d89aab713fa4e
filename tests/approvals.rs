//! Approvals through the public API: an agent's reply asks, the approvers get Approve/Deny
//! buttons (the template when their window is closed), taps go through the pipeline, the
//! decision is made exactly once (concurrent taps), the agent that asked gets it and its answer
//! reaches the requester; self-approval, strangers, wrong reply contexts, a second tap, deny,
//! two of three, expiry (timers fired by hand), a tap after expiry, bounds on what an agent may
//! ask, Step Functions task approvals answered through the callbacks port. The approvals table
//! is the in-memory twin here; tests/approvals_e2e.rs runs the real binary and
//! tests/approvals_sfn.rs the state machine on moto.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::timers::RecordingTimers;
use whatsapp_agent_lambda::agent::{
    Agent, AgentReply, AgentRequest, Agents, NamedAgent, ScriptedAgent,
};
use whatsapp_agent_lambda::approvals::approvers::Approvers;
use whatsapp_agent_lambda::approvals::engine::{Approvals, ApprovalsConfig};
use whatsapp_agent_lambda::approvals::{
    ApprovalAsk, RecordingCallbacks, TaskAnswer, TaskApproval, TaskOutcome,
};
use whatsapp_agent_lambda::domain::{
    InboundMessage, MessageId, MessageKind, OutgoingMessage, PhoneNumberId, Sender, TemplateRef,
};
use whatsapp_agent_lambda::graph::{RecordingMessenger, SentRecord};
use whatsapp_agent_lambda::pipeline::{Attempt, Outcome, Pipeline};
use whatsapp_agent_lambda::records::MemoryRecords;
use whatsapp_agent_lambda::sessions::Notifier;
use whatsapp_agent_lambda::sessions::conversation::unix_now;
use whatsapp_agent_lambda::timers::TimerKind;

const BUSINESS: &str = "106540352242922";
/// The on-call engineer who asks (through the agent); also one of APPROVERS in some tests.
const REQUESTER: &str = "14155550100";
const ALICE: &str = "14155551234";
const BOB: &str = "447700900123";
const CAROL: &str = "4915112345678";
const STRANGER: &str = "33612345678";
const COMMAND: &str = "kubectl rollout restart deployment/api -n prod";

struct Rig {
    approvals: Arc<Approvals>,
    pipeline: Pipeline,
    messenger: Arc<RecordingMessenger>,
    timers: Arc<RecordingTimers>,
    agent: Arc<ScriptedAgent>,
    callbacks: Arc<RecordingCallbacks>,
    messages: Mutex<u32>,
}

/// The agent: "restart" asks for `approval` (as JSON, read like an HTTP agent's reply);
/// an `approval` event is answered with its decision.
fn agent_asking(approval: serde_json::Value) -> ScriptedAgent {
    ScriptedAgent::new(move |request: &AgentRequest| {
        if request.event.kind == "approval" {
            let decision = request.event.approval.as_ref().expect("event.approval");
            return Ok(Some(AgentReply::text(
                None,
                format!(
                    "agent heard {} by [{}] for {}",
                    decision.decision,
                    decision.decided_by.join(", "),
                    decision.command
                ),
            )));
        }
        if request.event.text.contains("restart") {
            let reply = serde_json::json!({
                "text": "I can restart api in prod once someone approves.",
                "approval": approval,
            });
            return Ok(Some(serde_json::from_value(reply).unwrap()));
        }
        Ok(Some(AgentReply::text(None, "ok")))
    })
}

fn rig_of(approvers: &str, allow_self: bool, approval: serde_json::Value) -> Rig {
    let messenger = Arc::new(RecordingMessenger::new());
    let timers = Arc::new(RecordingTimers::default());
    let agent = Arc::new(agent_asking(approval));
    let callbacks = Arc::new(RecordingCallbacks::new());
    let agents = Agents::new(
        vec![
            NamedAgent {
                name: "ops".to_owned(),
                description: None,
                agent: agent.clone(),
            },
            NamedAgent {
                name: "other".to_owned(),
                description: None,
                agent: Arc::new(ScriptedAgent::replying_text("wrong agent")),
            },
        ],
        Some("ops"),
    )
    .unwrap();
    let pipeline = support::timers::pipeline_over(agents, messenger.clone());
    let mut names = std::collections::BTreeMap::new();
    names.insert(ALICE.to_owned(), "Alice".to_owned());
    names.insert(BOB.to_owned(), "Bob".to_owned());
    let approvals = Arc::new(Approvals::new(
        ApprovalsConfig {
            approvers: Approvers::parse(approvers).unwrap(),
            from: PhoneNumberId::from(BUSINESS),
            template: TemplateRef::parse("approval_request:en").unwrap(),
            default_expiry: Duration::from_secs(900),
            max_expiry: Duration::from_secs(3600),
            allow_self,
            retention: Duration::from_secs(90 * 86_400),
            names,
        },
        Arc::new(MemoryRecords::new()),
        timers.clone(),
        Notifier::new(
            messenger.clone(),
            pipeline.shared_conversations(),
            Some(TemplateRef::parse("oncall_notice:en").unwrap()),
        ),
        Some(callbacks.clone()),
    ));
    let pipeline = pipeline.with_approvals(approvals.clone());
    Rig {
        approvals,
        pipeline,
        messenger,
        timers,
        agent,
        callbacks,
        messages: Mutex::new(0),
    }
}

fn default_rig() -> Rig {
    rig_of(
        "+14155551234, +447700900123, +4915112345678",
        false,
        serde_json::json!({"summary": "Restart api in prod", "command": COMMAND}),
    )
}

fn message(rig: &Rig, from: &str, kind: MessageKind) -> InboundMessage {
    let mut count = rig.messages.lock().unwrap();
    *count += 1;
    let mut message = InboundMessage::sample(&format!("wamid.{from}.{count}"), kind);
    message.sender = Sender {
        phone: Some(from.to_owned()),
        bsuid: None,
        // Anyone can call themselves anything: never used to name them.
        display_name: Some("Alice".to_owned()),
    };
    message.timestamp = unix_now();
    message
}

fn text(rig: &Rig, from: &str, body: &str) -> InboundMessage {
    message(
        rig,
        from,
        MessageKind::Text {
            body: body.to_owned(),
        },
    )
}

fn is_request(record: &SentRecord) -> bool {
    match &record.message {
        OutgoingMessage::Template { template, .. } => template.name == "approval_request",
        OutgoingMessage::Buttons { buttons, .. } => {
            buttons.iter().any(|b| b.id.starts_with("wal:approval:"))
        }
        _ => false,
    }
}

fn requests_to(rig: &Rig, number: &str) -> Vec<SentRecord> {
    rig.messenger
        .sent()
        .into_iter()
        .filter(|r| r.to.as_str() == number && is_request(r))
        .collect()
}

fn texts_to(rig: &Rig, number: &str) -> Vec<String> {
    rig.messenger
        .sent()
        .into_iter()
        .filter(|r| r.to.as_str() == number)
        .filter_map(|r| match r.message {
            OutgoingMessage::Text { body } => Some(body),
            OutgoingMessage::Template { template, body, .. }
                if template.name == "oncall_notice" =>
            {
                Some(body.join(" | "))
            }
            _ => None,
        })
        .collect()
}

/// The buttons' ids (or the template's payloads) of a request: approve, deny.
fn tap_ids(record: &SentRecord) -> Vec<String> {
    match &record.message {
        OutgoingMessage::Template { quick_replies, .. } => quick_replies.clone(),
        OutgoingMessage::Buttons { buttons, .. } => buttons.iter().map(|b| b.id.clone()).collect(),
        other => panic!("not a request: {other:?}"),
    }
}

impl Rig {
    /// `number` taps button `index` (0 approve, 1 deny) of `request`, quoting `context`.
    fn tap(
        &self,
        number: &str,
        request: &SentRecord,
        index: usize,
        context: &MessageId,
    ) -> InboundMessage {
        let mut tap = message(
            self,
            number,
            MessageKind::ButtonReply {
                id: tap_ids(request)[index].clone(),
                title: ["Approve", "Deny"][index].to_owned(),
            },
        );
        tap.reply_to = Some(context.clone());
        tap
    }

    /// `number` taps button `index` (0 approve, 1 deny) of `request`, replying to it.
    async fn press(&self, number: &str, request: &SentRecord, index: usize) -> Outcome {
        let tap = self.tap(number, request, index, &request.id);
        self.pipeline.handle(&tap, Attempt::Retryable).await
    }

    /// The last text (or notice) sent to `number`.
    fn last_text(&self, number: &str) -> String {
        texts_to(self, number).pop().expect("a text")
    }

    /// The requester asks the agent to restart; the agent asks for the approval.
    async fn ask(&self) {
        let outcome = self
            .pipeline
            .handle(
                &text(self, REQUESTER, "restart api in prod"),
                Attempt::Retryable,
            )
            .await;
        assert!(
            matches!(outcome, Outcome::Replied { .. }),
            "the agent's answer is sent: {outcome:?}"
        );
    }

    /// Fires every timer scheduled, at `now`.
    async fn fire_all(&self, now: i64) {
        for timer in self.timers.take() {
            self.pipeline.fire_timer_at(&timer, now).await;
        }
    }

    fn decisions_heard(&self) -> Vec<String> {
        self.agent
            .requests()
            .into_iter()
            .filter(|r| r.event.kind == "approval")
            .map(|r| {
                let approval = r.event.approval.unwrap();
                format!("{}:{}", approval.decision, approval.decided_by.join(","))
            })
            .collect()
    }
}

#[tokio::test]
async fn an_agent_asks_an_approver_approves_and_the_agent_answers_the_requester() {
    let rig = default_rig();
    rig.ask().await;
    let waiting = texts_to(&rig, REQUESTER);
    assert!(
        waiting[0].contains("once someone approves"),
        "the agent's text first: {waiting:?}"
    );
    let note = &waiting[1];
    assert!(
        note.starts_with("⏳ Waiting for approval from Alice, Bob, *********5678 (1 needed)"),
        "{note}"
    );
    assert!(!note.contains(CAROL), "numbers are masked: {note}");
    let expiry = rig.timers.take();
    assert_eq!(expiry.len(), 1);
    assert!(matches!(expiry[0].kind, TimerKind::ApprovalExpiry { .. }));
    let due = expiry[0].due_at - unix_now();
    assert!((890..=900).contains(&due), "APPROVAL_EXPIRY_SECS: {due}");
    rig.timers.scheduled.lock().unwrap().extend(expiry);

    // Every approver got the request; nobody wrote to the business number: the template,
    // with the command exactly as it would run.
    for number in [ALICE, BOB, CAROL] {
        let requests = requests_to(&rig, number);
        assert_eq!(requests.len(), 1, "{number}");
        let OutgoingMessage::Template {
            template,
            body,
            quick_replies,
        } = &requests[0].message
        else {
            panic!("template while the window is closed");
        };
        assert_eq!(template.name, "approval_request");
        assert_eq!(body[1], "Restart api in prod");
        assert_eq!(body[2], COMMAND);
        assert_eq!(quick_replies.len(), 2);
        for id in quick_replies {
            assert!(id.starts_with("wal:approval:") && id.len() <= 256, "{id}");
        }
    }
    assert_ne!(
        tap_ids(&requests_to(&rig, ALICE)[0]),
        tap_ids(&requests_to(&rig, BOB)[0]),
        "each approver's copy has its own nonce"
    );

    let request = requests_to(&rig, BOB).remove(0);
    let tap = rig.tap(BOB, &request, 0, &request.id);
    let outcome = rig.pipeline.handle(&tap, Attempt::Retryable).await;
    assert!(
        matches!(outcome, Outcome::NoReply | Outcome::Replied { .. }),
        "{outcome:?}"
    );
    let requester = texts_to(&rig, REQUESTER);
    assert!(
        requester
            .iter()
            .any(|t| t.starts_with("✅ Approved by Bob: Restart api in prod")),
        "{requester:?}"
    );
    for number in [ALICE, BOB, CAROL] {
        assert!(
            texts_to(&rig, number)
                .iter()
                .any(|t| t.contains("✅ Approved by Bob")),
            "{number} is told"
        );
    }
    assert_eq!(rig.decisions_heard(), vec!["approved:Bob"]);
    let heard = rig
        .agent
        .requests()
        .into_iter()
        .find(|r| r.event.kind == "approval")
        .unwrap();
    assert_eq!(heard.session.agent, "ops", "the agent that asked");
    assert_eq!(heard.event.approval.as_ref().unwrap().command, COMMAND);
    assert!(
        rig.last_text(REQUESTER)
            .starts_with("agent heard approved by [Bob]"),
        "the agent's answer goes to the requester"
    );

    // The same tap again (Meta's retry is deduplicated; a new tap changes nothing).
    let again = rig.tap(BOB, &request, 0, &request.id);
    rig.pipeline.handle(&again, Attempt::Retryable).await;
    assert!(rig.last_text(BOB).starts_with("Already approved by Bob"));
    // The expiry timer finds it decided: nothing more happens.
    rig.fire_all(unix_now() + 901).await;
    assert_eq!(rig.decisions_heard().len(), 1);
}

#[tokio::test]
async fn two_of_three_approve_and_one_deny_denies() {
    let rig = rig_of(
        "+14155551234, +447700900123, +4915112345678",
        false,
        serde_json::json!({"summary": "Restart api in prod", "command": COMMAND, "required": 2}),
    );
    rig.ask().await;
    let alice = requests_to(&rig, ALICE).remove(0);
    rig.press(ALICE, &alice, 0).await;
    assert!(
        rig.last_text(ALICE)
            .starts_with("👍 Your approval is counted: 1 of 2 needed. Waiting for Bob, ")
    );
    assert!(
        rig.last_text(REQUESTER)
            .starts_with("👍 Alice approved (1 of 2)")
    );
    assert!(
        rig.decisions_heard().is_empty(),
        "one of two decides nothing"
    );
    let bob = requests_to(&rig, BOB).remove(0);
    rig.press(BOB, &bob, 0).await;
    assert_eq!(rig.decisions_heard(), vec!["approved:Alice,Bob"]);
    // Carol's deny comes too late.
    let carol = requests_to(&rig, CAROL).remove(0);
    rig.press(CAROL, &carol, 1).await;
    assert!(
        rig.last_text(CAROL)
            .starts_with("Already approved by Alice, Bob")
    );

    // Another request: one deny denies it, whatever the approvals before.
    rig.ask().await;
    let alice = requests_to(&rig, ALICE).pop().unwrap();
    rig.press(ALICE, &alice, 0).await;
    let bob = requests_to(&rig, BOB).pop().unwrap();
    rig.press(BOB, &bob, 1).await;
    assert_eq!(rig.decisions_heard()[1], "denied:Bob");
    assert!(
        texts_to(&rig, REQUESTER)
            .iter()
            .any(|t| t.starts_with("❌ Denied by Bob: Restart api in prod"))
    );
}

#[tokio::test]
async fn concurrent_taps_decide_exactly_once() {
    let rig = rig_of(
        "+14155551234, +447700900123, +4915112345678",
        false,
        serde_json::json!({"summary": "Restart api in prod", "command": COMMAND, "required": 2}),
    );
    rig.ask().await;
    let taps: Vec<InboundMessage> = [ALICE, BOB, CAROL]
        .iter()
        .map(|number| {
            let request = requests_to(&rig, number).remove(0);
            rig.tap(number, &request, 0, &request.id)
        })
        .collect();
    // Each approver twice, all at once.
    let handled = futures_all(&rig.pipeline, taps.iter().chain(taps.iter()).cloned()).await;
    assert_eq!(handled, 6);
    let heard = rig.decisions_heard();
    assert_eq!(heard.len(), 1, "decided once: {heard:?}");
    assert!(heard[0].starts_with("approved:"), "{heard:?}");
    let approved_by = heard[0].trim_start_matches("approved:").split(',').count();
    assert_eq!(
        approved_by, 2,
        "exactly the two votes that decided: {heard:?}"
    );
    let told: Vec<String> = texts_to(&rig, REQUESTER)
        .into_iter()
        .filter(|t| t.starts_with("✅ Approved"))
        .collect();
    assert_eq!(told.len(), 1, "the requester is told once: {told:?}");
}

async fn futures_all(pipeline: &Pipeline, messages: impl Iterator<Item = InboundMessage>) -> usize {
    let mut tasks = Vec::new();
    for message in messages {
        let pipeline = pipeline.clone();
        tasks.push(tokio::spawn(async move {
            pipeline.handle(&message, Attempt::Retryable).await
        }));
    }
    let mut count = 0;
    for task in tasks {
        task.await.unwrap();
        count += 1;
    }
    count
}

#[tokio::test]
async fn the_requester_cannot_approve_their_own_request() {
    // The requester is one of APPROVERS: not asked, and their tap on someone's button refused.
    let rig = rig_of(
        "+14155550100, +14155551234",
        false,
        serde_json::json!({"summary": "Restart api in prod", "command": COMMAND}),
    );
    rig.ask().await;
    assert!(requests_to(&rig, REQUESTER).is_empty(), "not asked");
    let alice = requests_to(&rig, ALICE).remove(0);
    rig.pipeline
        .handle(
            &rig.tap(REQUESTER, &alice, 0, &alice.id),
            Attempt::Retryable,
        )
        .await;
    assert!(
        rig.last_text(REQUESTER)
            .starts_with("You asked for this: you cannot approve your own request."),
        "{:?}",
        texts_to(&rig, REQUESTER)
    );
    assert!(rig.decisions_heard().is_empty());

    // Asking for more approvals than others can give is refused, with a reason.
    let rig = rig_asking_two_of_self();
    rig.ask().await;
    let last = texts_to(&rig, REQUESTER).pop().unwrap();
    assert!(
        last.starts_with("⚠️ Approval not requested: it needs 2 approval(s), but only 1"),
        "{last}"
    );
    assert!(requests_to(&rig, ALICE).is_empty());

    // ALLOW_SELF_APPROVAL: the requester is asked like anyone.
    let rig = rig_of(
        "+14155550100, +14155551234",
        true,
        serde_json::json!({"summary": "Restart api in prod", "command": COMMAND}),
    );
    rig.ask().await;
    let own = requests_to(&rig, REQUESTER).remove(0);
    rig.press(REQUESTER, &own, 0).await;
    assert_eq!(rig.decisions_heard(), vec!["approved:*******0100"]);
}

fn rig_asking_two_of_self() -> Rig {
    rig_of(
        "+14155550100, +14155551234",
        false,
        serde_json::json!({"summary": "Restart api in prod", "command": COMMAND, "required": 2}),
    )
}

#[tokio::test]
async fn strangers_wrong_contexts_and_forged_ids_count_for_nothing() {
    let rig = default_rig();
    rig.ask().await;
    let alice = requests_to(&rig, ALICE).remove(0);
    // A stranger with Alice's button.
    rig.press(STRANGER, &alice, 0).await;
    assert!(
        rig.last_text(STRANGER)
            .starts_with("You were not asked to approve this request")
    );
    // Bob with Alice's button.
    rig.press(BOB, &alice, 0).await;
    assert!(
        rig.last_text(BOB)
            .starts_with("You were not asked to approve this request")
    );
    // Alice quoting another message.
    rig.pipeline
        .handle(
            &rig.tap(ALICE, &alice, 0, &MessageId::from("wamid.other")),
            Attempt::Retryable,
        )
        .await;
    assert!(rig.last_text(ALICE).starts_with("That tap does not count"));
    // A forged id.
    let mut forged = rig.tap(ALICE, &alice, 0, &alice.id);
    forged.kind = MessageKind::ButtonReply {
        id: "wal:approval:AAAAAAAA:00000000000000000000000000000000:approve".to_owned(),
        title: "Approve".to_owned(),
    };
    rig.pipeline.handle(&forged, Attempt::Retryable).await;
    assert!(
        rig.last_text(ALICE)
            .starts_with("This approval request is no longer active")
    );
    assert!(rig.decisions_heard().is_empty(), "nothing decided");
    assert_eq!(
        rig.agent
            .requests()
            .iter()
            .filter(|r| r.event.kind != "text")
            .count(),
        0,
        "no tap reached the agent"
    );
}

#[tokio::test]
async fn an_undecided_request_expires_on_time_and_a_late_tap_changes_nothing() {
    let rig = rig_of(
        "+14155551234, +447700900123",
        false,
        serde_json::json!({"summary": "Restart api in prod", "command": COMMAND, "expires_in_secs": 120}),
    );
    rig.ask().await;
    let timers = rig.timers.take();
    let due = timers[0].due_at;
    // Early: delayed again, nothing expires.
    rig.pipeline.fire_timer_at(&timers[0], due - 30).await;
    assert!(rig.decisions_heard().is_empty());
    let again = rig.timers.take();
    assert_eq!(again.len(), 1, "scheduled again for the rest");
    // On time, twice (a timer may come twice): one expiry.
    rig.pipeline.fire_timer_at(&again[0], due).await;
    rig.pipeline.fire_timer_at(&again[0], due + 5).await;
    assert_eq!(rig.decisions_heard(), vec!["expired:"]);
    for number in [REQUESTER, ALICE, BOB] {
        assert!(
            texts_to(&rig, number)
                .iter()
                .any(|t| t.starts_with("⌛ Expired without a decision: Restart api in prod")),
            "{number}"
        );
    }
    let alice = requests_to(&rig, ALICE).remove(0);
    rig.press(ALICE, &alice, 0).await;
    assert!(
        rig.last_text(ALICE)
            .starts_with("⌛ This request expired without a decision")
    );
    assert_eq!(rig.decisions_heard().len(), 1);
}

#[tokio::test]
async fn the_agent_never_widens_what_configuration_allows() {
    let cases = [
        (
            serde_json::json!({"summary": "s", "command": COMMAND, "approvers": ["+33612345678"]}),
            "is not one of APPROVERS",
        ),
        (
            serde_json::json!({"summary": "s", "command": COMMAND, "required": 4}),
            "it needs 4 approval(s), but only 3",
        ),
        (
            serde_json::json!({"summary": "s", "command": "kubectl apply -f - <<EOF\nkind: Pod\nEOF"}),
            "cannot be shown exactly",
        ),
        (
            serde_json::json!({"summary": "s", "command": "x".repeat(701)}),
            "longer than 700 characters",
        ),
        (
            serde_json::json!({"summary": "s", "command": "  "}),
            "the command is empty",
        ),
        (
            serde_json::json!({"summary": "s", "command": COMMAND, "required": "two"}),
            "could not be read (approval.required: not a whole number)",
        ),
    ];
    for (approval, why) in cases {
        let rig = rig_of(
            "+14155551234, +447700900123, +4915112345678",
            false,
            approval.clone(),
        );
        rig.ask().await;
        let last = texts_to(&rig, REQUESTER).pop().unwrap();
        assert!(last.contains(why), "{approval}: {last}");
        assert!(last.contains("nothing"), "{last}");
        assert!(
            rig.messenger.sent().iter().all(|r| !is_request(r)),
            "{approval}: nobody asked"
        );
    }
    // An expiry above APPROVAL_MAX_EXPIRY_SECS (3600 here) is capped.
    let rig = rig_of(
        "+14155551234",
        false,
        serde_json::json!({"summary": "s", "command": COMMAND, "expires_in_secs": 999_999}),
    );
    rig.ask().await;
    let due = rig.timers.take()[0].due_at - unix_now();
    assert!((3590..=3600).contains(&due), "{due}");
    // A subset of APPROVERS is asked, and only it.
    let rig = rig_of(
        "+14155551234, +447700900123",
        false,
        serde_json::json!({"summary": "s", "command": COMMAND, "approvers": ["+44 7700 900123"]}),
    );
    rig.ask().await;
    assert_eq!(requests_to(&rig, BOB).len(), 1);
    assert!(requests_to(&rig, ALICE).is_empty());
}

#[tokio::test]
async fn aofs_requires_approval_asks_with_the_defaults() {
    let rig = default_rig();
    let agent = ScriptedAgent::new(|_: &AgentRequest| {
        Ok(Some(
            serde_json::from_value(serde_json::json!({
                "text": "Scale api to 0 in staging",
                "requires_approval": true,
                "command": "kubectl scale deployment/api --replicas=0 -n staging"
            }))
            .unwrap(),
        ))
    });
    let reply = agent
        .ask(&AgentRequest::from_message(&text(&rig, REQUESTER, "x")))
        .await
        .unwrap()
        .unwrap();
    let ask: &ApprovalAsk = reply.approval.as_ref().expect("an approval");
    assert_eq!(ask.summary, "Scale api to 0 in staging");
    assert_eq!(
        ask.command,
        "kubectl scale deployment/api --replicas=0 -n staging"
    );
    assert_eq!((ask.approvers.as_ref(), ask.required), (None, None));
}

#[tokio::test]
async fn an_approver_with_an_open_window_gets_buttons_showing_the_command_whole() {
    let rig = default_rig();
    // Bob wrote to the business number a moment ago: his window is open.
    rig.pipeline
        .handle(&text(&rig, BOB, "hello"), Attempt::Retryable)
        .await;
    rig.ask().await;
    let request = requests_to(&rig, BOB).remove(0);
    let OutgoingMessage::Buttons {
        body,
        footer,
        buttons,
        ..
    } = &request.message
    else {
        panic!("buttons while the window is open: {:?}", request.message);
    };
    assert!(body.contains(&format!("```{COMMAND}```")), "{body}");
    assert!(body.chars().count() <= 1024);
    assert!(footer.as_deref().unwrap().contains("expires in 15 min"));
    assert_eq!(
        buttons.iter().map(|b| b.title.as_str()).collect::<Vec<_>>(),
        ["Approve", "Deny"]
    );
}

#[tokio::test]
async fn a_state_machines_task_is_answered_with_the_decision() {
    let rig = default_rig();
    let task = TaskApproval {
        ask: ApprovalAsk {
            summary: "Restart api in prod".to_owned(),
            command: COMMAND.to_owned(),
            approvers: Some(vec!["+447700900123".to_owned()]),
            required: None,
            expires_in_secs: None,
        },
        requester: Some("+14155550100".to_owned()),
        task_token: "token-1".to_owned(),
    };
    rig.approvals.ask_for_task(&task, unix_now()).await.unwrap();
    let bob = requests_to(&rig, BOB).remove(0);
    assert_eq!(bob.from.as_str(), BUSINESS, "from PHONE_NUMBER_ID");
    rig.press(BOB, &bob, 0).await;
    let answers = rig.callbacks.answers();
    let [TaskAnswer::Success { task_token, output }] = answers.as_slice() else {
        panic!("{answers:?}");
    };
    assert_eq!(task_token, "token-1");
    let outcome: TaskOutcome = serde_json::from_str(output).unwrap();
    assert_eq!(outcome.decision, "approved");
    assert_eq!(outcome.decided_by, ["Bob"]);
    assert_eq!(outcome.command, COMMAND);
    assert!(
        rig.decisions_heard().is_empty(),
        "no agent asked: the task gets it"
    );
    assert!(
        texts_to(&rig, REQUESTER)
            .iter()
            .any(|t| t.starts_with("✅ Approved by Bob"))
    );

    // Denied and refused tasks fail with their error.
    let mut denied = task.clone();
    denied.task_token = "token-2".to_owned();
    rig.approvals
        .ask_for_task(&denied, unix_now())
        .await
        .unwrap();
    let bob = requests_to(&rig, BOB).pop().unwrap();
    rig.press(BOB, &bob, 1).await;
    let mut refused = task.clone();
    refused.task_token = "token-3".to_owned();
    refused.ask.command = "rm -rf /\nreboot".to_owned();
    rig.approvals
        .ask_for_task(&refused, unix_now())
        .await
        .unwrap();
    let errors: Vec<(String, String)> = rig
        .callbacks
        .answers()
        .into_iter()
        .filter_map(|answer| match answer {
            TaskAnswer::Failure {
                task_token, error, ..
            } => Some((task_token, error)),
            TaskAnswer::Success { .. } => None,
        })
        .collect();
    assert_eq!(
        errors,
        [
            ("token-2".to_owned(), "approval.denied".to_owned()),
            ("token-3".to_owned(), "approval.refused".to_owned())
        ]
    );
}

//! Approvals an agent asks for, end to end through the real `webhook` binary in local mode: a
//! loopback agent that answers with an approval (and later answers the decision), the loopback
//! Graph API that numbers what it is sent, and signed taps posted as Meta would post them.
//!
//! Alice (`+14155551234`, an allowed sender) asks; Carol (`+14155550100`, allowed, and her
//! 24-hour window open) and Bob (`+447700900123`, not an allowed sender, window closed) approve.
//! Carol gets interactive buttons, Bob the approval template. Timers run in the process (no
//! `TIMER_QUEUE_URL`); the expiry test waits for the engine's shortest expiry (60 s), alongside
//! the others.

mod support;

use lambda_http::Request;
use serde_json::{Value, json};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::fakes::{Sent, numbering_graph};
use support::fixtures::event_json;
use support::local_webhook::LocalWebhook;
use whatsapp_agent_lambda::dev::LoopbackServer;
use whatsapp_agent_lambda::dev::events::with_message;
use whatsapp_agent_lambda::domain::mask;
use whatsapp_agent_lambda::entry::local::handler;
use whatsapp_agent_lambda::webhook::answer::{body_bytes, response};

const ALICE: &str = "14155551234";
const CAROL: &str = "14155550100";
const BOB: &str = "447700900123";
/// Neither an approver nor an allowed sender.
const STRANGER: &str = "12025550199";
/// Alice and Carol; Bob is not listed.
const ALLOWED: &str = "+1 (415) 555-1234, +1 415 555 0100";
const APPROVERS: &str = "+14155550100, +447700900123";
const PHONE_NUMBER_ID: &str = "106540352242922";
const COMMAND: &str = "kubectl rollout restart deployment/api -n prod";
const SUMMARY: &str = "Restart api in prod";
/// How long a decision's notices and the agent's answer may take to show up.
const DEADLINE: Duration = Duration::from_secs(15);

/// The agent: a text containing "restart" is answered with `ask` (an approval), any other text
/// with "ok"; an `approval` event with "Agent saw <decision> of <id>". Every request is kept.
fn approval_agent(ask: Value) -> (LoopbackServer, Arc<Mutex<Vec<Value>>>) {
    let requests: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = requests.clone();
    let server = LoopbackServer::start(handler(move |request: Request| {
        let seen = seen.clone();
        let ask = ask.clone();
        async move {
            let body: Value =
                serde_json::from_slice(body_bytes(request.body())).unwrap_or(Value::Null);
            seen.lock().unwrap().push(body.clone());
            let event = &body["event"];
            let answer = match event["type"].as_str() {
                Some("approval") => json!({"text": format!(
                    "Agent saw {} of {}",
                    event["approval"]["decision"].as_str().unwrap_or("?"),
                    event["approval"]["id"].as_str().unwrap_or("?"),
                )}),
                _ if event["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("restart")) =>
                {
                    ask
                }
                _ => json!({"text": "ok"}),
            };
            response(200, "application/json", answer.to_string())
        }
    }));
    (server, requests)
}

/// The webhook binary with approvals on, its agent and its Graph API.
struct Rig {
    webhook: LocalWebhook,
    requests: Arc<Mutex<Vec<Value>>>,
    sent: Sent,
    next_id: Mutex<u32>,
    _agent: LoopbackServer,
    _graph: LoopbackServer,
}

impl Rig {
    /// `logging`: keep the binary's logs for [`LocalWebhook::logs`].
    fn start(ask: Value, approvers: &str, logging: bool) -> Self {
        let (agent, requests) = approval_agent(ask);
        let (graph, sent) = numbering_graph();
        let env = [
            ("ALLOWED_SENDERS", ALLOWED),
            ("APPROVERS", approvers),
            ("PHONE_NUMBER_ID", PHONE_NUMBER_ID),
            ("APPROVAL_TEMPLATE", "approval_request:en"),
            ("NOTICE_TEMPLATE", "approval_notice:en"),
            ("AGENT_TIMEOUT_SECS", "10"),
        ];
        let webhook = if logging {
            LocalWebhook::start_logging(&agent.url(), &graph.url(), &env)
        } else {
            LocalWebhook::start(&agent.url(), &graph.url(), &env, Stdio::inherit())
        };
        Self {
            webhook,
            requests,
            sent,
            next_id: Mutex::new(0),
            _agent: agent,
            _graph: graph,
        }
    }

    /// POSTs `message` from `from` (with a fresh id and the current time), signed as Meta signs.
    fn post(&self, from: &str, mut message: Value) {
        let id = {
            let mut next = self.next_id.lock().unwrap();
            *next += 1;
            format!("wamid.IN.{from}.{next}")
        };
        message["from"] = from.into();
        message["id"] = id.into();
        message["timestamp"] = now().to_string().into();
        let envelope = with_message(&event_json("post-text.json"), message).unwrap();
        assert_eq!(self.webhook.post_envelope(&envelope).0, 200);
    }

    fn text(&self, from: &str, body: &str) {
        self.post(from, json!({"type": "text", "text": {"body": body}}));
    }

    /// A tap on an interactive button `id`, quoting message `context`.
    fn tap_button(&self, from: &str, id: &str, context: &str) {
        self.post(
            from,
            json!({
                "type": "interactive",
                "context": {"from": "15550001111", "id": context},
                "interactive": {"type": "button_reply", "button_reply": {"id": id, "title": "Approve"}},
            }),
        );
    }

    /// A tap on a template's quick reply `payload`, quoting message `context`.
    fn tap_quick_reply(&self, from: &str, payload: &str, context: &str) {
        self.post(
            from,
            json!({
                "type": "button",
                "context": {"from": "15550001111", "id": context},
                "button": {"payload": payload, "text": "Approve"},
            }),
        );
    }

    /// Everything sent to `to` so far, with the ids the Graph API gave it.
    fn sent_to(&self, to: &str) -> Vec<(String, Value)> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body["to"] == to)
            .cloned()
            .collect()
    }

    /// The texts (a text's body, or a notice template's parameter) sent to `to` so far.
    fn said_to(&self, to: &str) -> Vec<String> {
        self.sent_to(to)
            .iter()
            .filter_map(|(_, body)| said(body))
            .collect()
    }

    /// Waits until something sent to `to` says `what` (bounded).
    fn wait_for(&self, to: &str, what: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(text) = self.said_to(to).into_iter().find(|t| t.contains(what)) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "nothing saying {what:?} reached {to} within {within:?}: {:#?}",
                self.said_to(to)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }

    /// The `approval` events the agent was asked about.
    fn decisions(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|request| request["event"]["type"] == "approval")
            .collect()
    }
}

/// What a sent body says: a text's body, or the first parameter of a notice template.
fn said(body: &Value) -> Option<String> {
    if let Some(text) = body["text"]["body"].as_str() {
        return Some(text.to_owned());
    }
    (body["template"]["name"] == "approval_notice")
        .then(|| body["template"]["components"][0]["parameters"][0]["text"].as_str())
        .flatten()
        .map(str::to_owned)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// The request's short id in a button or payload id `wal:approval:<id>:<nonce>:<vote>`.
fn request_id(tap: &str) -> &str {
    tap.strip_prefix("wal:approval:")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("not an approval tap id: {tap}"))
}

/// The Approve and Deny ids of the interactive request sent to `to`, and its wamid.
fn buttons_to(rig: &Rig, to: &str) -> (String, String, String) {
    let sent = rig.sent_to(to);
    let (id, body) = sent
        .iter()
        .find(|(_, body)| body["interactive"]["type"] == "button")
        .unwrap_or_else(|| panic!("no approval buttons sent to {to}: {sent:#?}"));
    let interactive = &body["interactive"];
    assert_eq!(interactive["header"]["text"], "🔐 Approval requested");
    let text = interactive["body"]["text"].as_str().unwrap();
    assert!(
        text.contains(COMMAND) && text.contains(SUMMARY),
        "the request shows what will run: {text}"
    );
    let buttons = interactive["action"]["buttons"].as_array().unwrap();
    let titles: Vec<&str> = buttons
        .iter()
        .map(|b| b["reply"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["Approve", "Deny"]);
    let ids: Vec<String> = buttons
        .iter()
        .map(|b| b["reply"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        ids[0].ends_with(":approve") && ids[1].ends_with(":deny"),
        "{ids:?}"
    );
    (ids[0].clone(), ids[1].clone(), id.clone())
}

/// The Approve and Deny payloads of the approval template sent to `to`, its body parameters
/// and its wamid.
fn template_to(rig: &Rig, to: &str) -> (String, String, Vec<String>, String) {
    let sent = rig.sent_to(to);
    let (id, body) = sent
        .iter()
        .find(|(_, body)| body["template"]["name"] == "approval_request")
        .unwrap_or_else(|| panic!("no approval template sent to {to}: {sent:#?}"));
    let components = body["template"]["components"].as_array().unwrap();
    assert_eq!(components.len(), 3, "the body and two quick replies");
    let parameters: Vec<String> = components[0]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["text"].as_str().unwrap().to_owned())
        .collect();
    let payload = |index: usize| {
        assert_eq!(components[index]["sub_type"], "quick_reply");
        components[index]["parameters"][0]["payload"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    (payload(1), payload(2), parameters, id.clone())
}

/// The approval event the agent got, checked against the request, Alice's session, and
/// `decision` by `decided_by`.
fn assert_decision(event: &Value, id: &str, decision: &str, decided_by: &[String]) {
    assert_eq!(event["event"]["type"], "approval", "{event}");
    let approval = &event["event"]["approval"];
    assert_eq!(approval["id"], id, "{event}");
    assert_eq!(approval["decision"], decision, "{event}");
    assert_eq!(approval["decided_by"], json!(decided_by), "{event}");
    assert_eq!(approval["summary"], SUMMARY, "{event}");
    assert_eq!(approval["command"], COMMAND, "{event}");
    assert_eq!(
        event["event"]["user"]["phone"], ALICE,
        "in the requester's conversation: {event}"
    );
}

#[test]
fn an_agents_approval_is_asked_voted_on_and_decided_with_signed_taps_through_the_real_binary() {
    let ask = json!({
        "text": "I will restart api once approved.",
        "approval": {"summary": SUMMARY, "command": COMMAND, "required": 2},
    });
    let rig = Rig::start(ask, APPROVERS, true);
    let (carol, bob, alice) = (mask(CAROL), mask(BOB), mask(ALICE));

    // Carol talks to the agent first: her window is open, she will get buttons.
    rig.text(CAROL, "hi");
    rig.text(ALICE, "please restart api in prod");

    let (approve, _deny, carols_request) = buttons_to(&rig, CAROL);
    let id = request_id(&approve).to_owned();
    let (bob_approve, bob_deny, parameters, bobs_request) = template_to(&rig, BOB);
    assert_eq!(request_id(&bob_approve), id);
    assert!(bob_deny.ends_with(":deny"));
    assert_ne!(
        bob_approve, approve,
        "each approver's copy has its own nonce"
    );
    assert_eq!(parameters, [alice.as_str(), SUMMARY, COMMAND, "15 min"]);
    let told = rig.said_to(ALICE);
    assert_eq!(told[0], "I will restart api once approved.", "{told:?}");
    assert_eq!(
        told[1],
        format!(
            "⏳ Waiting for approval from {carol}, {bob} (2 needed) · {id} · expires in 15 min"
        )
    );

    // Bob is no allowed sender: his text reaches nobody.
    rig.text(BOB, "hello?");
    // A stranger replays Carol's button: refused, and nothing counts.
    rig.tap_button(STRANGER, &approve, &carols_request);
    // Alice approves her own request with Bob's copy: refused.
    rig.tap_quick_reply(ALICE, &bob_approve, &bobs_request);
    // Carol's button quoting another message (Bob's copy): refused.
    rig.tap_button(CAROL, &approve, &bobs_request);
    assert_eq!(
        rig.said_to(STRANGER),
        ["You were not asked to approve this request, so your tap does not count."]
    );
    assert!(
        rig.said_to(ALICE)
            .contains(&"You asked for this: you cannot approve your own request.".to_owned()),
        "{:?}",
        rig.said_to(ALICE)
    );
    assert!(
        rig.said_to(CAROL).contains(
            &"That tap does not count: use the buttons on the request you received.".to_owned()
        ),
        "{:?}",
        rig.said_to(CAROL)
    );
    assert!(rig.decisions().is_empty(), "nothing was decided yet");

    // Carol's real tap: one of two.
    rig.tap_button(CAROL, &approve, &carols_request);
    rig.wait_for(
        CAROL,
        &format!("👍 Your approval is counted: 1 of 2 needed. Waiting for {bob}."),
        DEADLINE,
    );
    rig.wait_for(
        ALICE,
        &format!("👍 {carol} approved (1 of 2): {SUMMARY}"),
        DEADLINE,
    );
    assert!(
        rig.decisions().is_empty(),
        "one approval of two decides nothing"
    );

    // Bob's tap on his template: approved.
    rig.tap_quick_reply(BOB, &bob_approve, &bobs_request);
    let notice = format!("✅ Approved by {carol}, {bob}: {SUMMARY} ({id})");
    for person in [ALICE, CAROL, BOB] {
        rig.wait_for(person, &notice, DEADLINE);
    }
    rig.wait_for(ALICE, &format!("Agent saw approved of {id}"), DEADLINE);
    let decisions = rig.decisions();
    assert_eq!(decisions.len(), 1, "the agent is told once: {decisions:#?}");
    assert_decision(
        &decisions[0],
        &id,
        "approved",
        &[carol.clone(), bob.clone()],
    );

    // A tap after the decision changes nothing.
    rig.tap_button(CAROL, &approve, &carols_request);
    rig.wait_for(
        CAROL,
        &format!("Already approved by {carol}, {bob}: {SUMMARY}"),
        DEADLINE,
    );
    assert_eq!(rig.decisions().len(), 1);

    // The agent heard Carol's "hi", Alice's request and the decision: nothing from Bob or the
    // stranger, and no tap.
    let asked: Vec<(String, String)> = rig
        .requests()
        .iter()
        .map(|r| {
            (
                r["event"]["user"]["phone"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
                r["event"]["type"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        asked,
        [
            (CAROL.to_owned(), "text".to_owned()),
            (ALICE.to_owned(), "text".to_owned()),
            (ALICE.to_owned(), "approval".to_owned()),
        ]
    );

    // The audit trail: the request, the refusals, each vote and the decision, masked.
    let logs = rig.webhook.logs();
    let audit: Vec<&str> = logs.lines().filter(|l| l.contains("audit=true")).collect();
    let line_of = |what: &str| {
        audit
            .iter()
            .find(|line| {
                line.contains(&format!("what=\"{what}\"")) || line.contains(&format!("what={what}"))
            })
            .unwrap_or_else(|| panic!("no audit line for {what}: {audit:#?}"))
    };
    for (what, who) in [
        ("requested", &alice),
        ("refused_not_an_approver", &mask(STRANGER)),
        ("refused_self_approval", &alice),
        ("refused_wrong_message", &carol),
    ] {
        let line = line_of(what);
        assert!(
            line.contains(&id) && line.contains(who.as_str()),
            "{what}: {line}"
        );
    }
    let votes: Vec<&&str> = audit
        .iter()
        .filter(|line| line.contains("vote_approve"))
        .collect();
    assert_eq!(votes.len(), 2, "{audit:#?}");
    assert!(
        votes[0].contains(&carol) && votes[1].contains(&bob),
        "{votes:#?}"
    );
    let decided = line_of("approved");
    assert!(
        decided.contains("approval decided") && decided.contains(&id),
        "{decided}"
    );
    assert!(decided.contains(&format!("{carol},{bob}")), "{decided}");
    for full in [ALICE, CAROL, BOB, STRANGER] {
        assert!(
            !logs.contains(full),
            "a full number ({full}) in the logs:\n{logs}"
        );
    }
    assert!(!logs.contains(COMMAND), "the command in the logs:\n{logs}");
}

#[test]
fn one_deny_denies_an_aof_style_request_and_the_agent_hears_it() {
    // AOF's spelling: the summary is the text's first line.
    let ask = json!({
        "text": format!("{SUMMARY}\nI need an approval first."),
        "requires_approval": true,
        "command": COMMAND,
    });
    let rig = Rig::start(ask, APPROVERS, false);
    let (carol, bob) = (mask(CAROL), mask(BOB));
    rig.text(ALICE, "restart api please");
    let (_approve, deny, bobs_request, id) = {
        let (approve, deny, _, wamid) = template_to(&rig, BOB);
        let id = request_id(&approve).to_owned();
        (approve, deny, wamid, id)
    };
    rig.wait_for(
        ALICE,
        &format!("⏳ Waiting for approval from {carol}, {bob} (1 needed) · {id}"),
        DEADLINE,
    );

    // Bob denies: that decides it, whatever Carol would say.
    rig.tap_quick_reply(BOB, &deny, &bobs_request);
    let notice = format!("❌ Denied by {bob}: {SUMMARY} ({id})");
    for person in [ALICE, CAROL, BOB] {
        rig.wait_for(person, &notice, DEADLINE);
    }
    rig.wait_for(ALICE, &format!("Agent saw denied of {id}"), DEADLINE);
    let decisions = rig.decisions();
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    assert_decision(&decisions[0], &id, "denied", &[bob]);
}

#[test]
fn an_undecided_request_expires_on_its_in_process_timer_and_the_agent_hears_it() {
    // The engine gives every request at least 60 s: this test waits that long, alongside the
    // others.
    let ask = json!({
        "text": "I will restart api once approved.",
        "approval": {"summary": SUMMARY, "command": COMMAND, "approvers": ["+447700900123"], "expires_in_secs": 1},
    });
    let rig = Rig::start(ask, APPROVERS, false);
    let bob = mask(BOB);
    let asked = Instant::now();
    rig.text(ALICE, "restart api");
    let (approve, _deny, _, bobs_request) = template_to(&rig, BOB);
    let id = request_id(&approve).to_owned();
    assert!(
        rig.sent_to(CAROL).is_empty(),
        "only the approvers named are asked"
    );
    rig.wait_for(
        ALICE,
        &format!("⏳ Waiting for approval from {bob} (1 needed) · {id} · expires in 1 min"),
        DEADLINE,
    );

    let notice = format!("⌛ Expired without a decision: {SUMMARY} ({id}). Nothing will run.");
    rig.wait_for(ALICE, &notice, Duration::from_secs(60) + DEADLINE);
    assert!(
        asked.elapsed() >= Duration::from_secs(58),
        "expired after {:?}, before the shortest expiry",
        asked.elapsed()
    );
    rig.wait_for(BOB, &notice, DEADLINE);
    rig.wait_for(ALICE, &format!("Agent saw expired of {id}"), DEADLINE);
    let decisions = rig.decisions();
    assert_eq!(decisions.len(), 1, "{decisions:#?}");
    assert_decision(&decisions[0], &id, "expired", &[]);

    // Bob's tap comes too late.
    rig.tap_quick_reply(BOB, &approve, &bobs_request);
    rig.wait_for(
        BOB,
        &format!("⌛ This request expired without a decision: {SUMMARY}"),
        DEADLINE,
    );
    assert_eq!(rig.decisions().len(), 1);
}

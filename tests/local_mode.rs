//! The real `webhook` binary outside Lambda: it serves the same handler over plain HTTP on
//! `LOCAL_ADDR`, calls the sample agent over loopback and sends through a loopback Graph API.

mod support;

use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use support::fakes::{numbering_graph, recording_graph, requests_agent};
use support::fixtures::event_json;
use support::local_webhook::LocalWebhook;
use support::net::http_client;
use whatsapp_agent_lambda::dev::LoopbackServer;
use whatsapp_agent_lambda::dev::events::{LOCAL_ACCESS_TOKEN, with_message};
use whatsapp_agent_lambda::dev::sample_agent;

fn start_webhook(agent_url: &str, graph_url: &str) -> LocalWebhook {
    LocalWebhook::start(
        agent_url,
        graph_url,
        &[("AGENT_TIMEOUT_SECS", "10")],
        Stdio::inherit(),
    )
}

#[test]
fn local_mode_serves_the_webhook_over_http_end_to_end() {
    let agent = LoopbackServer::start(sample_agent::http_handler(None));
    let graph_bodies: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let graph = recording_graph(graph_bodies.clone());
    let webhook = start_webhook(&agent.url(), &graph.url());
    let http = http_client();

    // GET: the subscription handshake.
    let verify = event_json("get-verify.json");
    let query = verify["rawQueryString"].as_str().unwrap();
    let mut answer = http
        .get(&format!("{}?{query}", webhook.url))
        .call()
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.body_mut().read_to_string().unwrap(), "1158201444");

    // POST: the signed text event, as Meta would send it.
    assert_eq!(webhook.post_sample("post-text.json").0, 200);

    let bodies = graph_bodies.lock().unwrap().clone();
    assert!(
        bodies
            .iter()
            .all(|(auth, _)| auth == &format!("Bearer {LOCAL_ACCESS_TOKEN}"))
    );
    let read = bodies
        .iter()
        .find(|(_, b)| b["status"] == "read")
        .expect("read mark");
    assert_eq!(read.1["typing_indicator"]["type"], "text");
    let replies: Vec<&Value> = bodies
        .iter()
        .map(|(_, b)| b)
        .filter(|b| b["type"] == "interactive")
        .collect();
    assert_eq!(replies.len(), 1, "{bodies:?}");
    let interactive = &replies[0]["interactive"];
    assert_eq!(replies[0]["to"], "14155551234");
    assert!(
        interactive["body"]["text"]
            .as_str()
            .unwrap()
            .starts_with("⚠️ Found 2 pods")
    );
    let titles: Vec<&str> = interactive["action"]["buttons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["reply"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["View Logs", "Describe Pod", "Check Events"]);

    // The forged event is refused over HTTP too.
    assert_eq!(webhook.post_sample("post-bad-signature.json").0, 401);

    // Wrong paths and methods.
    assert_eq!(
        http.get(&webhook.url.replace("/webhook", "/nope"))
            .call()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(http.put(&webhook.url).send("x").unwrap().status(), 405);
}

#[test]
fn webhook_refuses_to_start_without_an_allowlist() {
    let output = Command::new(env!("CARGO_BIN_EXE_webhook"))
        .env_clear()
        .env("AGENT_URL", "http://127.0.0.1:9/")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ALLOWED_SENDERS is required"), "{stderr}");
}

/// POSTs `message` (from the sample sender) to the webhook, signed like Meta signs.
fn say(webhook: &LocalWebhook, message: Value) {
    let envelope = with_message(&event_json("post-text.json"), message).unwrap();
    assert_eq!(webhook.post_envelope(&envelope).0, 200);
}

#[test]
fn agents_then_a_tap_send_the_next_message_to_the_chosen_agent_through_the_real_binary() {
    let (k8s, k8s_requests) = requests_agent("k8s here");
    let (cost, cost_requests) = requests_agent("cost here");
    let (graph, bodies) = numbering_graph();
    let agents = serde_json::json!([
        {"name": "k8s", "url": k8s.url(), "description": "Kubernetes"},
        {"name": "cost", "url": cost.url(), "description": "AWS cost"},
    ])
    .to_string();
    let webhook = LocalWebhook::start(
        "",
        &graph.url(),
        &[("AGENTS", agents.as_str()), ("AGENT_TIMEOUT_SECS", "10")],
        Stdio::inherit(),
    );
    let from =
        |id: &str| serde_json::json!({"from": "14155551234", "id": id, "timestamp": "1795514400"});

    let mut agents_command = from("wamid.CONV.1");
    agents_command["type"] = "text".into();
    agents_command["text"] = serde_json::json!({"body": "/agents"});
    say(&webhook, agents_command);
    let (list_id, rows) = {
        let bodies = bodies.lock().unwrap();
        let (id, list) = bodies
            .iter()
            .find(|(_, body)| body["interactive"]["type"] == "list")
            .expect("the /agents list");
        let rows: Vec<(String, String)> = list["interactive"]["action"]["sections"][0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row["id"].as_str().unwrap().to_owned(),
                    row["title"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        (id.clone(), rows)
    };
    assert_eq!(
        rows.iter()
            .map(|(_, title)| title.as_str())
            .collect::<Vec<_>>(),
        ["k8s", "cost"]
    );

    let mut tap = from("wamid.CONV.2");
    tap["type"] = "interactive".into();
    tap["context"] = serde_json::json!({"from": "15550000000", "id": list_id});
    tap["interactive"] =
        serde_json::json!({"type": "list_reply", "list_reply": {"id": rows[1].0, "title": "cost"}});
    say(&webhook, tap);

    let mut question = from("wamid.CONV.3");
    question["type"] = "text".into();
    question["text"] = serde_json::json!({"body": "how much did we spend?"});
    say(&webhook, question);

    assert!(
        k8s_requests.lock().unwrap().is_empty(),
        "neither the command nor the tap reach an agent"
    );
    let cost_requests = cost_requests.lock().unwrap();
    assert_eq!(cost_requests.len(), 1);
    assert_eq!(cost_requests[0]["session"]["agent"], "cost");
    assert_eq!(cost_requests[0]["event"]["text"], "how much did we spend?");
    let texts: Vec<String> = bodies
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(_, body)| body["text"]["body"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        texts,
        ["✅ *cost* answers your messages from now on.", "cost here"]
    );
}

/// POSTs `body` to the webhook's `/alerts` with `authorization` (if any).
fn post_alerts(webhook: &LocalWebhook, authorization: Option<&str>, body: &str) -> (u16, String) {
    let url = webhook.url.replace("/webhook", "/alerts");
    let mut request = http_client()
        .post(&url)
        .header("content-type", "application/json");
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let mut answer = request.send(body).expect("the webhook answers");
    (
        answer.status().as_u16(),
        answer.body_mut().read_to_string().unwrap_or_default(),
    )
}

/// The pages (template messages) the Graph API stand-in was sent for `to`, with their ids.
fn pages_to(bodies: &support::fakes::Sent, to: &str) -> Vec<(String, Value)> {
    bodies
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, body)| body["to"] == to && body["type"] == "template")
        .cloned()
        .collect()
}

#[test]
fn an_alert_is_paged_escalated_and_acknowledged_by_a_tap_through_the_real_binary() {
    let (agent, requests) = requests_agent("Looking at the pods now.");
    let (graph, bodies) = numbering_graph();
    // Alice (the allowed sample sender) first, Bob (not an allowed sender) second; two
    // seconds to acknowledge.
    let oncall = r#"{"tiers": [[{"number": "+14155551234", "name": "Alice"}], [{"number": "+447700900123", "name": "Bob"}]], "escalate_after_secs": 2}"#;
    let webhook = LocalWebhook::start(
        &agent.url(),
        &graph.url(),
        &[
            ("ONCALL", oncall),
            ("PHONE_NUMBER_ID", "106540352242922"),
            ("ALERT_TEMPLATE", "oncall_alert:en"),
            ("NOTICE_TEMPLATE", "oncall_notice:en"),
            ("ALERT_TOKEN", "local-alert-token"),
            ("AGENT_TIMEOUT_SECS", "10"),
        ],
        Stdio::inherit(),
    );
    let alert = serde_json::json!({
        "title": "Payments API 5xx", "severity": "critical", "summary": "5xx above 5% for 10 min",
        "url": "https://grafana.example/d/payments", "dedup_key": "payments-5xx", "status": "firing"
    })
    .to_string();

    // The bearer token: missing, wrong, then right; a body that is no alert.
    assert_eq!(post_alerts(&webhook, None, &alert).0, 401);
    assert_eq!(post_alerts(&webhook, Some("Bearer nope"), &alert).0, 401);
    let (status, reason) = post_alerts(&webhook, Some("Bearer local-alert-token"), "{\"x\": 1}");
    assert_eq!(status, 400);
    assert!(!reason.is_empty());
    assert_eq!(
        post_alerts(&webhook, Some("Bearer local-alert-token"), &alert).0,
        202
    );
    let alice_pages = pages_to(&bodies, "14155551234");
    assert_eq!(alice_pages.len(), 1, "{:?}", bodies.lock().unwrap());
    let template = &alice_pages[0].1["template"];
    assert_eq!(template["name"], "oncall_alert");
    assert_eq!(
        template["components"][0]["parameters"][1]["text"],
        "Payments API 5xx"
    );

    // Nobody acknowledges within two seconds: Bob is paged.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let bob_page = loop {
        if let Some(page) = pages_to(&bodies, "447700900123").pop() {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "Bob was never paged");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };

    // Bob is not an allowed sender: his text goes nowhere, his tap on the page counts.
    let from_bob =
        |id: &str| serde_json::json!({"from": "447700900123", "id": id, "timestamp": "1796439660"});
    let mut text = from_bob("wamid.BOB.1");
    text["type"] = "text".into();
    text["text"] = serde_json::json!({"body": "hello?"});
    say(&webhook, text);
    assert!(requests.lock().unwrap().is_empty());

    let payload = bob_page.1["template"]["components"][1]["parameters"][0]["payload"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(payload.starts_with("wal:alert:") && payload.ends_with(":acknowledge"));
    // A forged context first: refused, nothing recorded.
    let mut forged = from_bob("wamid.BOB.2");
    forged["type"] = "button".into();
    forged["context"] = serde_json::json!({"from": "15550000000", "id": "wamid.out.999"});
    forged["button"] = serde_json::json!({"payload": payload, "text": "Acknowledge"});
    say(&webhook, forged);
    assert!(requests.lock().unwrap().is_empty());

    let mut tap = from_bob("wamid.BOB.3");
    tap["type"] = "button".into();
    tap["context"] = serde_json::json!({"from": "15550000000", "id": bob_page.0});
    tap["button"] = serde_json::json!({"payload": payload, "text": "Acknowledge"});
    say(&webhook, tap);

    let requests = requests.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let event = &requests[0]["event"];
    assert_eq!(event["type"], "alert_action");
    assert_eq!(event["action"], "acknowledge");
    assert_eq!(event["alert"]["title"], "Payments API 5xx");
    assert_eq!(event["alert"]["severity"], "critical");
    assert_eq!(event["alert"]["source"], "generic");
    assert_eq!(event["user"]["phone"], "447700900123");

    let sent = bodies.lock().unwrap().clone();
    let to_bob: Vec<&Value> = sent
        .iter()
        .map(|(_, body)| body)
        .filter(|body| body["to"] == "447700900123")
        .collect();
    assert!(
        to_bob.iter().any(|b| b["type"] == "reaction"
            && b["reaction"]["message_id"] == bob_page.0.as_str()
            && b["reaction"]["emoji"] == "✅"),
        "{to_bob:?}"
    );
    assert!(
        to_bob
            .iter()
            .any(|b| b["text"]["body"] == "Looking at the pods now."),
        "the agent's answer goes to the person who acknowledged: {to_bob:?}"
    );
    let refusals = to_bob
        .iter()
        .filter(|b| {
            b["text"]["body"]
                .as_str()
                .is_some_and(|t| t.contains("use the buttons on the page"))
        })
        .count();
    assert_eq!(refusals, 1, "{to_bob:?}");
    // Alice hears who acknowledged (her window is closed: the notice template).
    assert!(
        sent.iter().any(|(_, b)| b["to"] == "14155551234"
            && b["template"]["name"] == "oncall_notice"
            && b["template"]["components"][0]["parameters"][0]["text"]
                .as_str()
                .is_some_and(|t| t.contains("Bob acknowledged"))),
        "{sent:?}"
    );
}

/// Starts `binary` (local mode, agent and Graph API unreachable) with `vars`; it must refuse to
/// start: its stderr.
fn refused_start(binary: &str, vars: &[(&str, &str)]) -> String {
    let mut command = Command::new(binary);
    support::local_webhook::local_env(&mut command, "http://127.0.0.1:9/", "http://127.0.0.1:9/");
    command.envs(vars.iter().copied());
    let output = command.output().unwrap();
    assert!(!output.status.success(), "{binary} started with {vars:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn paging_inside_lambda_without_the_timer_queue_refuses_to_start() {
    let stderr = refused_start(
        env!("CARGO_BIN_EXE_webhook"),
        &[
            ("ONCALL", r#"{"tiers": [["+14155551234"]]}"#),
            ("PHONE_NUMBER_ID", "106540352242922"),
            ("ALERT_TEMPLATE", "oncall_alert:en"),
            // What Lambda sets: the function runs inside Lambda (inline dispatch, no timer queue).
            ("AWS_LAMBDA_FUNCTION_NAME", "whatsapp-webhook"),
        ],
    );
    assert!(stderr.contains("TIMER_QUEUE_URL"), "{stderr}");
    assert!(
        stderr.contains("in-process escalation timer dies"),
        "{stderr}"
    );
}

#[test]
fn approvals_inside_lambda_without_the_timer_queue_refuse_to_start() {
    let stderr = refused_start(
        env!("CARGO_BIN_EXE_worker"),
        &[
            ("APPROVERS", "+14155551234"),
            ("PHONE_NUMBER_ID", "106540352242922"),
            ("APPROVAL_TEMPLATE", "approval_request:en"),
            ("AWS_LAMBDA_FUNCTION_NAME", "whatsapp-worker"),
        ],
    );
    assert!(stderr.contains("TIMER_QUEUE_URL"), "{stderr}");
    assert!(
        stderr.contains("approvals (APPROVERS) inside Lambda needs the timer queue: an in-process expiry timer dies"),
        "{stderr}"
    );
}

#[test]
fn approvers_may_not_be_everyone_the_function_stops_at_cold_start() {
    let stderr = refused_start(
        env!("CARGO_BIN_EXE_webhook"),
        &[
            ("APPROVERS", "*"),
            ("PHONE_NUMBER_ID", "106540352242922"),
            ("APPROVAL_TEMPLATE", "approval_request:en"),
        ],
    );
    assert!(
        stderr.contains("APPROVERS") && stderr.contains("may not be `*`"),
        "{stderr}"
    );
}

#[test]
fn an_invalid_oncall_stops_the_function_at_cold_start_naming_the_fault() {
    let mut command = Command::new(env!("CARGO_BIN_EXE_webhook"));
    support::local_webhook::local_env(&mut command, "http://127.0.0.1:9/", "http://127.0.0.1:9/");
    let output = command
        .env(
            "ONCALL",
            r#"{"tiers": [["+14155551234"], ["not a number"]]}"#,
        )
        .env("PHONE_NUMBER_ID", "106540352242922")
        .env("ALERT_TEMPLATE", "oncall_alert:en")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ONCALL"), "{stderr}");
    assert!(stderr.contains("tiers[1][0]"), "{stderr}");
}

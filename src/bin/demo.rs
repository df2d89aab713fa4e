//! `make demo`: runs every sample event in `events/` through the real webhook handler, with the
//! sample agent on loopback and a loopback stand-in for the Graph API that prints each request
//! the function would send to WhatsApp, then a conversation: commands, on-call paging, and an
//! approval (the sample agent asks before it restarts a deployment; the demo's approver taps
//! Approve). No AWS account, no Meta account.
//!
//! `make pipeline` (`demo --pipeline`): the production shape instead: the webhook in queue mode
//! sends jobs to an SQS FIFO queue in a local AWS emulator (moto), and the worker polls it,
//! claims each message in DynamoDB, asks the agent and answers.

use lambda_http::{Body, Request};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use whatsapp_agent_lambda::approvals::APPROVAL_TAP_PREFIX;
use whatsapp_agent_lambda::config::Config;
use whatsapp_agent_lambda::dev::LoopbackServer;
use whatsapp_agent_lambda::dev::events::{
    LOCAL_ACCESS_TOKEN, LOCAL_ALERT_TOKEN, LOCAL_ALLOWED_SENDERS, LOCAL_APP_SECRET,
    LOCAL_VERIFY_TOKEN, body_bytes as event_body, with_message,
};
use whatsapp_agent_lambda::dev::moto::{MOTO_SERVER, Moto, create_pipeline_resources};
use whatsapp_agent_lambda::dev::sample_agent;
use whatsapp_agent_lambda::entry::local::handler;
use whatsapp_agent_lambda::secrets::Secrets;
use whatsapp_agent_lambda::webhook::answer::{body_bytes, response};
use whatsapp_agent_lambda::worker::poll_sqs;
use whatsapp_agent_lambda::{aws, entry};

/// Ids the Graph API stand-in gives the messages it is sent.
static SENT: AtomicUsize = AtomicUsize::new(0);

/// The order the demo plays the sample events in.
const STORY: [&str; 10] = [
    "get-verify.json",
    "post-text.json",
    "post-button-reply.json",
    "post-list-reply.json",
    "post-template-button.json",
    "post-image.json",
    "post-batch.json",
    "post-status-only.json",
    "post-base64.json",
    "post-bad-signature.json",
];

/// After the sample events, a conversation written from `post-text.json`: commands, a
/// switch of agent by tapping the `/agents` list, and the history in use. Then on call: an
/// Alertmanager alert paged to the sample sender, acknowledged with a tap (the sample agent
/// answers), a question about it, and its resolution in the page's thread. Then an approval:
/// the sample sender asks to restart a deployment, the sample agent asks for an approval, the
/// approver (Sam) taps Approve on the request, everyone is told, and the agent's answer to the
/// decision reaches the sample sender.
enum Say {
    Text(&'static str),
    /// A tap on row `n` of the last list the function sent.
    TapRow(usize),
    /// The sample event `events/<name>` (an alert from Alertmanager, or a message).
    Event(&'static str),
    /// A tap on button `n` of the last page (0: Acknowledge, 1: Details, 2: Escalate).
    TapPage(usize),
    /// The approver's tap on Approve, `events/<name>`, on the last approval request sent.
    TapApproval(&'static str),
}

/// The events played in the conversation rather than with the others: the alerts (on call)
/// and the approval's ask and tap.
const CONVERSATION_EVENTS: [&str; 5] = [
    "post-alerts-alertmanager.json",
    "post-alerts-generic.json",
    "post-alerts-resolved.json",
    "post-approval-request.json",
    "post-approval-approve.json",
];

/// The demo's approver: Sam, the second tier of `ONCALL` (which names them), not an allowed
/// sender (an approval tap passes the allowlist).
const APPROVERS: &str = "+447700900123";
/// The template of approval requests to an approver whose 24-hour window is closed.
const APPROVAL_TEMPLATE: &str = "approval_request:en";

const CONVERSATION: [Say; 15] = [
    Say::Text("/help"),
    Say::Text("what did I ask before?"),
    Say::Text("/agents"),
    Say::TapRow(1),
    Say::Text("how much are we spending?"),
    Say::Text("/env"),
    Say::TapRow(1),
    Say::Text("What did I ask before?"),
    Say::Event("post-alerts-alertmanager.json"),
    Say::TapPage(0),
    Say::TapPage(1),
    Say::Event("post-alerts-resolved.json"),
    Say::TapPage(0),
    Say::Event("post-approval-request.json"),
    Say::TapApproval("post-approval-approve.json"),
];

/// Who is on call in the demo: the sample sender (John Doe in `events/`), then a second tier
/// (Sam, also the demo's approver), five minutes each. The names are how notices and
/// approval requests name them.
const ONCALL: &str = r#"{"tiers": [[{"number": "+14155551234", "name": "John"}], [{"number": "+447700900123", "name": "Sam"}]], "escalate_after_secs": 300}"#;
/// The sample events' business number (their `metadata.phone_number_id`).
const SAMPLE_BUSINESS_NUMBER: &str = "106540352242922";

/// One request the function sent to the Graph API stand-in, and the id it was given.
struct GraphCall {
    path: String,
    body: Value,
    id: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "-v" || a == "--verbose") {
        lambda_http::tracing::init_default_subscriber();
    }
    let events_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events");

    let agent = LoopbackServer::start(sample_agent::http_handler(None));
    let calls: Arc<Mutex<Vec<GraphCall>>> = Arc::default();
    let graph = {
        let calls = calls.clone();
        LoopbackServer::start(handler(move |request: Request| {
            let calls = calls.clone();
            async move {
                let body =
                    serde_json::from_slice(body_bytes(request.body())).unwrap_or(Value::Null);
                let mut calls = calls.lock().unwrap_or_else(|p| p.into_inner());
                let id = format!("wamid.demo.{}", SENT.fetch_add(1, Ordering::SeqCst) + 1);
                calls.push(GraphCall {
                    path: request.uri().path().to_owned(),
                    body,
                    id: id.clone(),
                });
                let answer = serde_json::json!({
                    "messaging_product": "whatsapp",
                    "messages": [{ "id": id }],
                    "success": true,
                });
                response(200, "application/json", answer.to_string())
            }
        }))
    };

    // Two agents (both the sample agent, which answers as the one the session names) and
    // two environments: what `/agents` and `/env` offer.
    let agents = serde_json::json!([
        {"name": "k8s", "url": agent.url(), "description": "Kubernetes on-call", "timeout_secs": 10},
        {"name": "cost", "url": agent.url(), "description": "AWS cost", "timeout_secs": 10},
    ]);
    let env: HashMap<&str, String> = HashMap::from([
        ("ALLOWED_SENDERS", LOCAL_ALLOWED_SENDERS.to_owned()),
        ("AGENTS", agents.to_string()),
        ("ENVIRONMENTS", "prod,staging".to_owned()),
        ("GRAPH_API_BASE_URL", graph.url()),
        ("WHATSAPP_APP_SECRET", LOCAL_APP_SECRET.to_owned()),
        ("WHATSAPP_ACCESS_TOKEN", LOCAL_ACCESS_TOKEN.to_owned()),
        ("WHATSAPP_VERIFY_TOKEN", LOCAL_VERIFY_TOKEN.to_owned()),
        // On call: the sample sender first, then someone else; the sample alerts' bearer.
        // No pacing, so that every step of the story shows at once.
        ("ONCALL", ONCALL.to_owned()),
        ("PHONE_NUMBER_ID", SAMPLE_BUSINESS_NUMBER.to_owned()),
        ("ALERT_TEMPLATE", "oncall_alert:en".to_owned()),
        ("NOTICE_TEMPLATE", "oncall_notice:en".to_owned()),
        ("PAGE_MIN_INTERVAL_SECS", "0".to_owned()),
        ("ALERT_TOKEN", LOCAL_ALERT_TOKEN.to_owned()),
        // Approvals: Sam approves; the requests and their records in this process.
        ("APPROVERS", APPROVERS.to_owned()),
        ("APPROVAL_TEMPLATE", APPROVAL_TEMPLATE.to_owned()),
    ]);
    let pipeline_mode = std::env::args().any(|a| a == "--pipeline");
    let mut env = env;
    let mut pipeline = None;
    if pipeline_mode {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let moto = Moto::start(&root.join(MOTO_SERVER), &std::env::temp_dir())?;
        let aws = aws::sdk_config_for(moto.endpoint(), "us-east-1").await;
        let resources = create_pipeline_resources(&aws, "demo-jobs", 30, 3).await?;
        env.insert("DISPATCH", "queue".to_owned());
        env.insert("JOB_QUEUE_URL", resources.queue_url.clone());
        env.insert("IDEMPOTENCY_TABLE", resources.table.clone());
        env.insert("SESSIONS_TABLE", resources.sessions_table.clone());
        pipeline = Some((moto, aws, resources));
    }
    let lookup = |name: &str| env.get(name).cloned();
    let load = || -> Result<entry::Env, Box<dyn std::error::Error>> {
        Ok(entry::Env {
            config: Config::from_lookup(lookup)?,
            secrets: Secrets::from_env(lookup),
            aws: pipeline.as_ref().map(|(_, aws, _)| aws.clone()),
        })
    };
    let webhook = load()?.into_webhook()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let poller = match &pipeline {
        Some((_, aws, resources)) => {
            let worker = load()?.into_worker()?;
            let (aws, queue_url) = (aws.clone(), resources.queue_url.clone());
            Some(tokio::spawn(async move {
                poll_sqs(&worker, &aws, &queue_url, async {
                    let _ = stopped.await;
                })
                .await;
            }))
        }
        None => None,
    };

    println!(
        "whatsapp-agent-lambda demo ({})",
        if std::env::args().any(|a| a == "--pipeline") {
            "DISPATCH=queue: webhook → SQS FIFO → worker, claims in DynamoDB"
        } else {
            "DISPATCH=inline"
        }
    );
    println!("  sample agents     k8s, cost at {}", agent.url());
    println!("  Graph API (fake)  {}", graph.url());
    println!("  allowed senders   {LOCAL_ALLOWED_SENDERS}");
    println!(
        "  approvers         Sam ({APPROVERS}); {APPROVAL_TEMPLATE} when their window is closed"
    );
    if let Some((moto, _, resources)) = &pipeline {
        println!("  AWS emulator      {} (moto)", moto.endpoint());
        println!("  job queue         {}", resources.queue_url);
        println!("  claims table      {}", resources.table);
        println!("  sessions table    {}", resources.sessions_table);
    }
    println!("  app secret        the local test secret (events/README.md)\n");

    let mut files: Vec<_> = std::fs::read_dir(&events_dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter(|p| {
            !CONVERSATION_EVENTS
                .iter()
                .any(|name| p.file_name().is_some_and(|file| file == *name))
        })
        .collect();
    // Tell the story in order (other files follow alphabetically), and replay the first text
    // message at the end: a redelivery must not reach the agent again.
    files.sort_by_key(|path| {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rank = STORY.iter().position(|s| *s == name).unwrap_or(STORY.len());
        (rank, name)
    });
    if let Some(text) = files
        .iter()
        .find(|p| p.ends_with("post-text.json"))
        .cloned()
    {
        files.push(text);
    }

    let mut story = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        story.push(Step::File(name, std::fs::read_to_string(&path)?));
    }
    story.extend(CONVERSATION.iter().map(Step::Say));
    let template: Value =
        serde_json::from_str(&std::fs::read_to_string(events_dir.join("post-text.json"))?)?;

    let mut seen = std::collections::HashSet::new();
    let mut last_list: Option<(Vec<String>, String)> = None;
    let mut last_page: Option<(Vec<String>, String)> = None;
    let mut last_approval: Option<ApprovalRequest> = None;
    for (turn, step) in story.into_iter().enumerate() {
        let (name, raw, file) = match step {
            Step::File(name, raw) => (name, raw, true),
            Step::Say(Say::Event(name)) => (
                format!(
                    "{name} ({})",
                    if name.starts_with("post-alerts-") {
                        "an alert for the on-call engineer"
                    } else {
                        "you ask to restart a deployment"
                    }
                ),
                std::fs::read_to_string(events_dir.join(name))?,
                false,
            ),
            Step::Say(Say::TapApproval(name)) => {
                let file: Value =
                    serde_json::from_str(&std::fs::read_to_string(events_dir.join(name))?)?;
                let (label, envelope) = approval_tap(name, &file, last_approval.as_ref())?;
                (label, envelope.to_string(), false)
            }
            Step::Say(say) => {
                let (label, message) =
                    conversation_message(say, turn, last_list.as_ref(), last_page.as_ref());
                let envelope = with_message(&template, message)?;
                (label, envelope.to_string(), false)
            }
        };
        let envelope: Value = serde_json::from_str(&raw)?;
        if envelope.get("routeKey").is_none() {
            continue; // not an API Gateway event (e.g. an SQS event for the worker)
        }
        let request = match lambda_http::request::from_str(&raw) {
            Ok(request) => request,
            Err(error) => {
                println!("━━ {name}: not an API Gateway v2 event ({error})\n");
                continue;
            }
        };
        let method = request.method().to_string();
        let replay = file && !seen.insert(name.clone());
        println!(
            "━━ {name}{}  ({method} {})",
            if replay {
                " again (Meta redelivers)"
            } else {
                ""
            },
            request.uri().path()
        );
        let started = std::time::Instant::now();
        let answer = webhook.handle(request).await;
        let body = match answer.body() {
            Body::Text(text) => text.clone(),
            Body::Binary(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            _ => String::new(),
        };
        println!(
            "   webhook answered {} {:?} in {} ms",
            answer.status().as_u16(),
            body,
            started.elapsed().as_millis()
        );
        if let Some((_, aws, resources)) = &pipeline {
            wait_until_worked(aws, &resources.queue_url).await;
        }
        let drained: Vec<GraphCall> =
            std::mem::take(&mut *calls.lock().unwrap_or_else(|p| p.into_inner()));
        if drained.is_empty() {
            println!("   nothing sent to WhatsApp");
        }
        for call in drained {
            if call
                .body
                .get("interactive")
                .and_then(|i| i.get("type"))
                .and_then(Value::as_str)
                == Some("list")
            {
                let rows = call.body["interactive"]["action"]["sections"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|section| section["rows"].as_array().into_iter().flatten())
                    .filter_map(|row| row["id"].as_str().map(str::to_owned))
                    .collect();
                last_list = Some((rows, call.id.clone()));
            }
            if let Some(taps) = taps(&call.body, "wal:alert:") {
                last_page = Some((taps, call.id.clone()));
            }
            if let Some(taps) = taps(&call.body, APPROVAL_TAP_PREFIX) {
                last_approval =
                    taps.into_iter()
                        .find(|id| id.ends_with(":approve"))
                        .map(|approve| ApprovalRequest {
                            approve,
                            template: call.body["type"] == "template",
                            wamid: call.id.clone(),
                        });
            }
            if call.body.get("status").and_then(Value::as_str) == Some("read") {
                println!("   → POST {}  {}", call.path, call.body);
            } else {
                println!("   → POST {}", call.path);
                let pretty = serde_json::to_string_pretty(&call.body)?;
                for line in pretty.lines() {
                    println!("     {line}");
                }
            }
        }
        println!();
    }
    let _ = stop.send(());
    if let Some(poller) = poller {
        let _ = poller.await;
    }
    Ok(())
}

/// What the demo plays: a sample event file, or a line of the conversation.
enum Step {
    File(String, String),
    Say(&'static Say),
}

/// An approval request the function sent an approver.
struct ApprovalRequest {
    /// The id (or quick-reply payload) of its Approve button.
    approve: String,
    /// Sent as the approval template (the approver's window was closed), not with buttons.
    template: bool,
    /// The wamid the Graph API stand-in gave it: the tap quotes it.
    wamid: String,
}

/// The approver's tap on Approve, from `events/<name>` (`file`): its button payload and quoted
/// message made those of the request the function sent (a tap counts only from that very
/// message), as a quick reply to the template or a reply button to the interactive message,
/// signed again. Without a request sent, the file's tap as it is (it answers "no longer
/// active").
fn approval_tap(
    name: &str,
    file: &Value,
    request: Option<&ApprovalRequest>,
) -> Result<(String, Value), String> {
    let body = event_body(file)?.ok_or("the envelope has no body")?;
    let payload: Value =
        serde_json::from_slice(&body).map_err(|e| format!("{name}: the body is not JSON: {e}"))?;
    let value = &payload["entry"][0]["changes"][0]["value"];
    let who = value["contacts"][0]["profile"]["name"]
        .as_str()
        .unwrap_or("the approver")
        .to_owned();
    let Some(request) = request else {
        return Ok((
            format!("{who} taps Approve ({name}: no approval request was sent, the tap as it is)"),
            file.clone(),
        ));
    };
    let mut message = value["messages"][0].clone();
    if !message.is_object() {
        return Err(format!("{name}: no message to replay"));
    }
    message["context"]["id"] = request.wamid.clone().into();
    if request.template {
        message["type"] = "button".into();
        message["button"] = serde_json::json!({ "payload": request.approve, "text": "Approve" });
    } else {
        if let Some(fields) = message.as_object_mut() {
            fields.remove("button");
        }
        message["type"] = "interactive".into();
        message["interactive"] = serde_json::json!({
            "type": "button_reply",
            "button_reply": { "id": request.approve, "title": "Approve" },
        });
    }
    let envelope = with_message(file, message).map_err(|e| format!("{name}: {e}"))?;
    Ok((format!("{who} taps Approve on the request"), envelope))
}

/// The button ids (or quick-reply payloads) of a page or an approval request the function
/// sent, if `body` is one: every one starts with `prefix`.
fn taps(body: &Value, prefix: &str) -> Option<Vec<String>> {
    let buttons: Vec<String> = match body["type"].as_str()? {
        "interactive" => body["interactive"]["action"]["buttons"]
            .as_array()?
            .iter()
            .filter_map(|b| b["reply"]["id"].as_str().map(str::to_owned))
            .collect(),
        "template" => body["template"]["components"]
            .as_array()?
            .iter()
            .filter_map(|c| c["parameters"][0]["payload"].as_str().map(str::to_owned))
            .collect(),
        _ => return None,
    };
    buttons
        .iter()
        .all(|id| id.starts_with(prefix))
        .then_some(buttons)
        .filter(|buttons| !buttons.is_empty())
}

/// The message of one conversation line, from the sample sender (a tap replies to the list,
/// or to the page).
fn conversation_message(
    say: &Say,
    turn: usize,
    last_list: Option<&(Vec<String>, String)>,
    last_page: Option<&(Vec<String>, String)>,
) -> (String, Value) {
    let id = format!("wamid.demo.conversation.{turn}");
    let from = serde_json::json!({"from": "14155551234", "id": id, "timestamp": "1795514400"});
    let mut message = from;
    match say {
        Say::Text(text) => {
            message["type"] = "text".into();
            message["text"] = serde_json::json!({ "body": text });
            (format!("you: {text:?}"), message)
        }
        Say::TapRow(row) => {
            let (rows, list_id) = last_list.cloned().unwrap_or_default();
            let row_id = rows.get(*row).cloned().unwrap_or_default();
            message["type"] = "interactive".into();
            message["context"] = serde_json::json!({ "from": "15550000000", "id": list_id });
            message["interactive"] = serde_json::json!({
                "type": "list_reply",
                "list_reply": { "id": row_id, "title": format!("row {row}") },
            });
            (format!("you tap row {} of the list", row + 1), message)
        }
        Say::TapPage(button) => {
            let (ids, page_id) = last_page.cloned().unwrap_or_default();
            let id = ids.get(*button).cloned().unwrap_or_default();
            let title = ["Acknowledge", "Details", "Escalate"][(*button).min(2)];
            message["type"] = "interactive".into();
            message["context"] = serde_json::json!({ "from": "15550000000", "id": page_id });
            message["interactive"] = serde_json::json!({
                "type": "button_reply",
                "button_reply": { "id": id, "title": title },
            });
            (format!("you tap {title} on the page"), message)
        }
        // Played from its file by the caller.
        Say::Event(name) | Say::TapApproval(name) => (name.to_string(), message),
    }
}

/// Waits (bounded) until the worker has taken every job off the queue and settled it.
async fn wait_until_worked(aws: &aws_config::SdkConfig, queue_url: &str) {
    use aws_sdk_sqs::types::QueueAttributeName::{
        ApproximateNumberOfMessages, ApproximateNumberOfMessagesNotVisible,
    };
    let sqs = aws_sdk_sqs::Client::new(aws);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let Ok(attributes) = sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(ApproximateNumberOfMessages)
            .attribute_names(ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
        else {
            continue;
        };
        let pending: u64 = attributes
            .attributes()
            .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
            .unwrap_or(0);
        if pending == 0 {
            return;
        }
    }
    println!("   (the worker is still busy after 30 s)");
}

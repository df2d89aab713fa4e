//! `make demo`: runs every sample event in `events/` through the real webhook handler, with the
//! sample agent on loopback and a loopback stand-in for the Graph API that prints each request
//! the function would send to WhatsApp. No AWS account, no Meta account.
//!
//! `make pipeline` (`demo --pipeline`): the production shape instead: the webhook in queue mode
//! sends jobs to an SQS FIFO queue in a local AWS emulator (moto), and the worker polls it,
//! claims each message in DynamoDB, asks the agent and answers.

use lambda_http::{Body, Request};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use whatsapp_agent_lambda::config::Config;
use whatsapp_agent_lambda::dev::LoopbackServer;
use whatsapp_agent_lambda::dev::events::{
    LOCAL_ACCESS_TOKEN, LOCAL_ALLOWED_SENDERS, LOCAL_APP_SECRET, LOCAL_VERIFY_TOKEN,
};
use whatsapp_agent_lambda::dev::moto::{MOTO_SERVER, Moto, create_pipeline_resources};
use whatsapp_agent_lambda::dev::sample_agent;
use whatsapp_agent_lambda::entry::local::handler;
use whatsapp_agent_lambda::secrets::Secrets;
use whatsapp_agent_lambda::webhook::answer::{body_bytes, response};
use whatsapp_agent_lambda::worker::poll_sqs;
use whatsapp_agent_lambda::{aws, entry};

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

/// One request the function sent to the Graph API stand-in.
struct GraphCall {
    path: String,
    body: Value,
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
                calls.push(GraphCall {
                    path: request.uri().path().to_owned(),
                    body,
                });
                let answer = serde_json::json!({
                    "messaging_product": "whatsapp",
                    "messages": [{ "id": format!("wamid.demo.{}", calls.len()) }],
                    "success": true,
                });
                response(200, "application/json", answer.to_string())
            }
        }))
    };

    let env: HashMap<&str, String> = HashMap::from([
        ("ALLOWED_SENDERS", LOCAL_ALLOWED_SENDERS.to_owned()),
        ("AGENT_URL", agent.url()),
        ("AGENT_TIMEOUT_SECS", "10".to_owned()),
        ("GRAPH_API_BASE_URL", graph.url()),
        ("WHATSAPP_APP_SECRET", LOCAL_APP_SECRET.to_owned()),
        ("WHATSAPP_ACCESS_TOKEN", LOCAL_ACCESS_TOKEN.to_owned()),
        ("WHATSAPP_VERIFY_TOKEN", LOCAL_VERIFY_TOKEN.to_owned()),
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
    println!("  sample agent      {}", agent.url());
    println!("  Graph API (fake)  {}", graph.url());
    println!("  allowed senders   {LOCAL_ALLOWED_SENDERS}");
    if let Some((moto, _, resources)) = &pipeline {
        println!("  AWS emulator      {} (moto)", moto.endpoint());
        println!("  job queue         {}", resources.queue_url);
        println!("  claims table      {}", resources.table);
    }
    println!("  app secret        the local test secret (events/README.md)\n");

    let mut files: Vec<_> = std::fs::read_dir(&events_dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
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

    let mut seen = std::collections::HashSet::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let raw = std::fs::read_to_string(&path)?;
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
        let replay = !seen.insert(name.clone());
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

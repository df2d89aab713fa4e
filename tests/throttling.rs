//! DynamoDB and SQS throttling: the SDK retries a bounded number of times, then the message is
//! left for a retry (worker: item failed; inline webhook and queue dispatch: 500, so Meta
//! retries). Nothing reaches the agent or the user meanwhile, and nothing is lost.
//! The fake below answers every AWS JSON-protocol call with a throttling error and counts them.

mod support;

use lambda_http::Request;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::fixtures::{event, event_json, local_secrets};
use whatsapp_agent_lambda::agent::ScriptedAgent;
use whatsapp_agent_lambda::aws::{SDK_MAX_ATTEMPTS, sdk_config_for};
use whatsapp_agent_lambda::dev::LoopbackServer;
use whatsapp_agent_lambda::dev::events::LOCAL_ALLOWED_SENDERS;
use whatsapp_agent_lambda::domain::Allowlist;
use whatsapp_agent_lambda::entry::local::handler;
use whatsapp_agent_lambda::graph::RecordingMessenger;
use whatsapp_agent_lambda::idempotency::DynamoIdempotency;
use whatsapp_agent_lambda::pipeline::Pipeline;
use whatsapp_agent_lambda::queue::SqsQueue;
use whatsapp_agent_lambda::webhook::answer::response;
use whatsapp_agent_lambda::webhook::{Dispatcher, WebhookApp};
use whatsapp_agent_lambda::worker::Worker;

/// An AWS endpoint that throttles everything.
fn throttling_aws(error_type: &'static str) -> (LoopbackServer, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let server = LoopbackServer::start(handler(move |_: Request| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            let body = format!(r#"{{"__type":"{error_type}","message":"Rate exceeded"}}"#);
            let mut answer = response(400, "application/x-amz-json-1.0", body);
            answer
                .headers_mut()
                .insert("x-amzn-query-error", "Throttling;Sender".parse().unwrap());
            answer
        }
    }));
    (server, calls)
}

async fn throttled_pipeline() -> (
    Pipeline,
    Arc<ScriptedAgent>,
    Arc<RecordingMessenger>,
    Arc<AtomicUsize>,
    LoopbackServer,
) {
    let (dynamodb, calls) =
        throttling_aws("com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException");
    let config = sdk_config_for(&dynamodb.url(), "us-east-1").await;
    let agent = Arc::new(ScriptedAgent::replying_text("hi"));
    let messenger = Arc::new(RecordingMessenger::new());
    let pipeline = Pipeline::new(
        agent.clone(),
        messenger.clone(),
        Arc::new(DynamoIdempotency::new(&config, "claims")),
    )
    .with_lease(Duration::from_secs(60));
    (pipeline, agent, messenger, calls, dynamodb)
}

#[tokio::test]
async fn dynamodb_throttling_leaves_the_job_in_the_queue_and_tells_nobody() {
    let (pipeline, agent, messenger, calls, _dynamodb) = throttled_pipeline().await;
    let worker = Worker::new(pipeline, 3);
    let response = worker.handle(event_json("sqs-job.json")).await.unwrap();
    assert_eq!(
        response["batchItemFailures"].as_array().unwrap().len(),
        1,
        "retried by SQS"
    );
    assert_eq!(agent.calls(), 0);
    assert!(messenger.sent().is_empty() && messenger.read_marks().is_empty());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        SDK_MAX_ATTEMPTS as usize,
        "bounded SDK retries"
    );
}

#[tokio::test]
async fn dynamodb_throttling_in_inline_mode_answers_500_so_meta_retries() {
    let (pipeline, agent, messenger, _, _dynamodb) = throttled_pipeline().await;
    let webhook = WebhookApp::new(
        local_secrets(),
        Allowlist::parse(LOCAL_ALLOWED_SENDERS).unwrap(),
        Dispatcher::Inline(pipeline),
        4 * 1024 * 1024,
    );
    assert_eq!(webhook.handle(event("post-text.json")).await.status(), 500);
    assert_eq!(agent.calls(), 0);
    assert!(messenger.sent().is_empty());
}

#[tokio::test]
async fn sqs_throttling_answers_500_so_meta_retries() {
    let (sqs, calls) = throttling_aws("com.amazonaws.sqs#RequestThrottled");
    let config = sdk_config_for(&sqs.url(), "us-east-1").await;
    let webhook = WebhookApp::new(
        local_secrets(),
        Allowlist::parse(LOCAL_ALLOWED_SENDERS).unwrap(),
        Dispatcher::Queue(Arc::new(SqsQueue::new(
            &config,
            format!("{}/123456789012/jobs.fifo", sqs.url()),
        ))),
        4 * 1024 * 1024,
    );
    assert_eq!(webhook.handle(event("post-text.json")).await.status(), 500);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        SDK_MAX_ATTEMPTS as usize,
        "bounded SDK retries"
    );
}

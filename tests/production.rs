//! Production dispatch against real local AWS services (moto server on loopback): the webhook
//! queues jobs to SQS FIFO, the worker claims them in DynamoDB, and every message is answered
//! exactly once whatever the duplicates, crashes and outages.

mod support;

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::fixtures::{
    BATCH_ALLOWED_IDS, event, failed_ids, local_secrets, sent_texts, signed_texts,
};
use support::harness;
use support::moto::Moto;
use support::net::free_port;
use support::slow::{CountingAgent, SlowHandling, with_redeliveries};
use whatsapp_agent_lambda::agent::{
    Agent, AgentError, AgentRequest, ScriptedAgent, TransportError,
};
use whatsapp_agent_lambda::aws::sdk_config_for;
use whatsapp_agent_lambda::dev::events::LOCAL_ALLOWED_SENDERS;
use whatsapp_agent_lambda::dev::moto::create_pipeline_resources;
use whatsapp_agent_lambda::domain::Allowlist;
use whatsapp_agent_lambda::domain::MessageId;
use whatsapp_agent_lambda::graph::RecordingMessenger;
use whatsapp_agent_lambda::idempotency::IdempotencyError;
use whatsapp_agent_lambda::idempotency::{
    ClaimToken, DynamoIdempotency, IdempotencyStore, MemoryIdempotency,
};
use whatsapp_agent_lambda::pipeline::Pipeline;
use whatsapp_agent_lambda::queue::SqsQueue;
use whatsapp_agent_lambda::queue::{Job, JobQueue, QueueError};
use whatsapp_agent_lambda::reply::{AGENT_FAILED_PERMANENT_TEXT, AGENT_FAILED_TEXT};
use whatsapp_agent_lambda::webhook::{Dispatcher, WebhookApp};
use whatsapp_agent_lambda::worker::Worker;

const PREFIX: &str = "whatsapp-jobs";
const QUEUE: &str = "whatsapp-jobs.fifo";
const TABLE: &str = "whatsapp-jobs-claims";
const MAX_RECEIVE_COUNT: u32 = 3;

/// moto with the production stack's FIFO job queue, dead-letter queue and idempotency table.
struct Aws {
    _moto: Moto,
    config: aws_config::SdkConfig,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

async fn aws() -> Aws {
    let moto = Moto::start();
    let config = sdk_config_for(moto.endpoint(), "us-east-1").await;
    let resources = create_pipeline_resources(&config, PREFIX, 30, MAX_RECEIVE_COUNT)
        .await
        .expect("create the queues and the table");
    assert_eq!(resources.table, TABLE);
    Aws {
        _moto: moto,
        sqs: aws_sdk_sqs::Client::new(&config),
        config,
        queue_url: resources.queue_url,
    }
}

/// The webhook with the local test secrets, senders of `allowlist` allowed.
fn webhook(allowlist: &str, dispatcher: Dispatcher) -> WebhookApp {
    WebhookApp::new(
        local_secrets(),
        Allowlist::parse(allowlist).unwrap(),
        dispatcher,
        4 * 1024 * 1024,
    )
}

/// The webhook queueing jobs to `queue_url`, the local test senders allowed.
fn queue_webhook(config: &aws_config::SdkConfig, queue_url: &str) -> WebhookApp {
    let queue = Arc::new(SqsQueue::new(config, queue_url));
    webhook(LOCAL_ALLOWED_SENDERS, Dispatcher::Queue(queue))
}

/// One message's handling with claims in the table.
fn pipeline(
    config: &aws_config::SdkConfig,
    agent: Arc<dyn Agent>,
    messenger: Arc<RecordingMessenger>,
    lease: Duration,
) -> Pipeline {
    Pipeline::new(
        agent,
        messenger,
        Arc::new(DynamoIdempotency::new(config, TABLE)),
    )
    .with_lease(lease)
}

/// A worker asking `agent`, with a recording Graph API (returned for the test to look at) and
/// claims in the table.
fn worker(
    aws: &Aws,
    agent: Arc<ScriptedAgent>,
    lease: Duration,
) -> (Worker, Arc<RecordingMessenger>) {
    let messenger = Arc::new(RecordingMessenger::new());
    let pipeline = pipeline(&aws.config, agent, messenger.clone(), lease);
    (Worker::new(pipeline, MAX_RECEIVE_COUNT), messenger)
}

/// The echo agent, taking 200 ms a message.
fn echo_agent() -> Arc<ScriptedAgent> {
    Arc::new(harness::echo_agent().with_delay(Duration::from_millis(200)))
}

/// A [`worker`] asking the echo agent, which it returns too.
fn echo_worker(
    aws: &Aws,
    lease: Duration,
) -> (Worker, Arc<ScriptedAgent>, Arc<RecordingMessenger>) {
    let agent = echo_agent();
    let (worker, messenger) = worker(aws, agent.clone(), lease);
    (worker, agent, messenger)
}

/// A worker with in-memory claims and Graph API: no AWS needed.
fn memory_worker(agent: Arc<dyn Agent>) -> Worker {
    Worker::new(
        Pipeline::new(
            agent,
            Arc::new(RecordingMessenger::new()),
            Arc::new(MemoryIdempotency::default()),
        )
        .with_lease(Duration::from_secs(60)),
        MAX_RECEIVE_COUNT,
    )
}

/// Receives what the queue holds, as the Lambda event source mapping would.
async fn receive(aws: &Aws) -> Vec<aws_sdk_sqs::types::Message> {
    aws.sqs
        .receive_message()
        .queue_url(&aws.queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive")
        .messages()
        .to_vec()
}

/// Receives the jobs the queue holds and deletes them, as a worker that handled them would.
async fn take_jobs(aws: &Aws) -> Vec<Job> {
    let mut jobs = Vec::new();
    for message in receive(aws).await {
        jobs.push(serde_json::from_str(message.body().unwrap()).unwrap());
        aws.sqs
            .delete_message()
            .queue_url(&aws.queue_url)
            .receipt_handle(message.receipt_handle().unwrap())
            .send()
            .await
            .expect("delete");
    }
    jobs
}

/// The SQS event Lambda would hand the worker for these messages.
fn sqs_event(messages: &[aws_sdk_sqs::types::Message], receive_count: Option<u32>) -> Value {
    let arn = format!("arn:aws:sqs:us-east-1:123456789012:{QUEUE}");
    let mut event = whatsapp_agent_lambda::queue::lambda_event(messages, &arn, "us-east-1");
    if let (Some(count), Some(records)) = (receive_count, event["Records"].as_array_mut()) {
        for record in records {
            record["attributes"]["ApproximateReceiveCount"] = json!(count.to_string());
        }
    }
    event
}

/// A job as the webhook would queue it, for driving the worker directly.
fn job_event(message_id: &str, receive_count: u32) -> Value {
    let job = Job::new(
        whatsapp_agent_lambda::webhook::parse(
            &whatsapp_agent_lambda::dev::events::body_bytes(
                &serde_json::from_str(
                    &std::fs::read_to_string(format!(
                        "{}/events/post-text.json",
                        env!("CARGO_MANIFEST_DIR")
                    ))
                    .unwrap(),
                )
                .unwrap(),
            )
            .unwrap()
            .unwrap(),
        )
        .unwrap()
        .messages
        .remove(0),
    );
    json!({"Records": [{
        "messageId": message_id,
        "receiptHandle": "rh",
        "body": serde_json::to_string(&job).unwrap(),
        "attributes": {"ApproximateReceiveCount": receive_count.to_string(), "MessageGroupId": "14155551234"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "awsRegion": "us-east-1"
    }]})
}

/// A batch record of the job of `job_event` with its message's id and text replaced, in the
/// message group `group`.
fn batch_record(sqs_id: &str, wamid: &str, text: &str, group: &str) -> Value {
    let mut job: Value =
        serde_json::from_str(job_event(sqs_id, 1)["Records"][0]["body"].as_str().unwrap()).unwrap();
    job["message"]["id"] = json!(wamid);
    job["message"]["kind"]["body"] = json!(text);
    json!({"messageId": sqs_id, "body": job.to_string(), "attributes": {"ApproximateReceiveCount": "1", "MessageGroupId": group}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_message_five_times_concurrently_to_webhook_and_worker_is_answered_once() {
    let aws = aws().await;
    let webhook = Arc::new(queue_webhook(&aws.config, &aws.queue_url));

    // Meta delivers the same webhook five times at once.
    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let webhook = webhook.clone();
        posts.spawn(async move {
            webhook
                .handle(event("post-text.json"))
                .await
                .status()
                .as_u16()
        });
    }
    while let Some(status) = posts.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let queued = receive(&aws).await;
    assert_eq!(
        queued.len(),
        1,
        "FIFO deduplication keeps one job for five deliveries"
    );
    let job: Job = serde_json::from_str(queued[0].body().unwrap()).unwrap();
    assert_eq!(
        job.message().expect("a message job").id.as_str(),
        "wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQzQUI1RjE0QTgwRjk2RkE1NjlDNgA="
    );
    assert_eq!(
        queued[0].attributes().unwrap()[&MessageSystemAttributeName::MessageGroupId],
        "14155551234"
    );

    // The queue hands the job to five worker instances at once (at-least-once delivery).
    let (worker, agent, messenger) = echo_worker(&aws, Duration::from_secs(60));
    let worker = Arc::new(worker);
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..5 {
        let worker = worker.clone();
        let batch = sqs_event(&queued[..1], None);
        runs.spawn(async move { worker.handle(batch).await.unwrap() });
    }
    let mut failed = 0;
    while let Some(response) = runs.join_next().await {
        failed += failed_ids(&response.unwrap()).len();
    }
    println!(
        "five concurrent deliveries: agent calls = {}, replies sent = {}, deliveries told to retry = {failed}",
        agent.calls(),
        messenger.sent().len()
    );
    assert_eq!(agent.calls(), 1, "exactly one agent call");
    assert_eq!(
        sent_texts(&messenger),
        vec!["✅ echo: pods crashing in prod"],
        "exactly one reply"
    );

    // Later redeliveries (SQS retries of the ones told to retry) are recognised as done.
    let response = worker
        .handle(sqs_event(&queued[..1], Some(2)))
        .await
        .unwrap();
    assert_eq!(failed_ids(&response).len(), 0);
    assert_eq!(agent.calls(), 1);
    assert_eq!(messenger.sent().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_dying_after_the_claim_is_answered_once_after_the_lease() {
    let aws = aws().await;
    let lease = Duration::from_secs(2);
    let message_id =
        MessageId::from("wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQzQUI1RjE0QTgwRjk2RkE1NjlDNgA=");
    // A worker claimed the message, then died before replying.
    let store = DynamoIdempotency::new(&aws.config, TABLE);
    assert_eq!(
        store
            .claim(&message_id, &ClaimToken::new(), lease)
            .await
            .unwrap(),
        whatsapp_agent_lambda::idempotency::Claim::Acquired
    );

    let (worker, agent, messenger) = echo_worker(&aws, lease);

    // Redelivered while the dead worker's lease still holds: not handled, retried later.
    let early = worker.handle(job_event("sqs-1", 2)).await.unwrap();
    assert_eq!(failed_ids(&early).len(), 1);
    assert_eq!(agent.calls(), 0);

    // After the lease: answered exactly once.
    tokio::time::sleep(lease + Duration::from_millis(300)).await;
    let late = worker.handle(job_event("sqs-1", 3)).await.unwrap();
    assert_eq!(failed_ids(&late).len(), 0);
    let again = worker.handle(job_event("sqs-1", 3)).await.unwrap();
    assert_eq!(failed_ids(&again).len(), 0);
    println!(
        "crash after claim: agent calls = {}, replies = {}",
        agent.calls(),
        messenger.sent().len()
    );
    assert_eq!(agent.calls(), 1);
    assert_eq!(
        sent_texts(&messenger),
        vec!["✅ echo: pods crashing in prod"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_down_answers_500_and_nothing_is_lost() {
    let aws = aws().await;
    // The queue is unreachable (its URL names a queue that does not exist yet).
    let missing = aws.queue_url.replace(QUEUE, "down.fifo");
    let down = queue_webhook(&aws.config, &missing);
    assert_eq!(down.handle(event("post-text.json")).await.status(), 500);

    // An endpoint nobody listens on: 500 as well, within the SDK's bounded retries.
    let closed_port = free_port();
    let unreachable_config =
        sdk_config_for(&format!("http://127.0.0.1:{closed_port}"), "us-east-1").await;
    let unreachable = queue_webhook(&unreachable_config, &aws.queue_url);
    assert_eq!(
        unreachable.handle(event("post-text.json")).await.status(),
        500
    );

    // Meta retries; the queue is back: the message is queued, nothing lost.
    let up = queue_webhook(&aws.config, &aws.queue_url);
    assert_eq!(up.handle(event("post-text.json")).await.status(), 200);
    let queued = receive(&aws).await;
    assert_eq!(queued.len(), 1);
    let job: Job = serde_json::from_str(queued[0].body().unwrap()).unwrap();
    assert_eq!(
        job.message().expect("a message job").kind.text(),
        "pods crashing in prod"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_and_store_errors_keep_the_sdk_error_unless_it_holds_an_answer() {
    let aws = aws().await;
    let job: Job =
        serde_json::from_str(job_event("m1", 1)["Records"][0]["body"].as_str().unwrap()).unwrap();
    let jobs = std::slice::from_ref(&job);

    // SQS answered (no such queue): its answer may quote what it refused, so only text is kept.
    let missing = SqsQueue::new(&aws.config, aws.queue_url.replace(QUEUE, "down.fifo"));
    let error = missing.enqueue(jobs).await.unwrap_err();
    assert!(
        matches!(
            &error,
            QueueError::NotSent {
                refused: 0,
                failed_calls: 1,
                source: None,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.is_retryable());

    // Nobody listens: no answer, so the SDK's error is kept as the source, typed.
    let closed_port = free_port();
    let unreachable_config =
        sdk_config_for(&format!("http://127.0.0.1:{closed_port}"), "us-east-1").await;
    let unreachable = SqsQueue::new(&unreachable_config, &aws.queue_url);
    let error = unreachable.enqueue(jobs).await.unwrap_err();
    let QueueError::NotSent { code, .. } = &error else {
        panic!("expected NotSent, got {error:?}");
    };
    assert_eq!(code, "unreachable");
    let sdk = std::error::Error::source(&error)
        .and_then(|s| s.downcast_ref::<SdkError<SendMessageBatchError, HttpResponse>>())
        .expect("the SDK's error, typed");
    assert!(matches!(sdk, SdkError::DispatchFailure(_)), "{sdk:?}");
    let crate_error = whatsapp_agent_lambda::Error::from(error);
    assert!(crate_error.is_retryable());
    assert!(
        crate_error
            .to_string()
            .starts_with("job queue failed: unreachable: ")
    );

    // The same for the claim table.
    let id = MessageId::from("wamid.SOURCE.1");
    let error = DynamoIdempotency::new(&unreachable_config, TABLE)
        .claim(&id, &ClaimToken::new(), Duration::from_secs(60))
        .await
        .unwrap_err();
    let IdempotencyError::Store { operation, .. } = &error else {
        panic!("expected Store, got {error:?}");
    };
    assert_eq!(*operation, "claim");
    let sdk = std::error::Error::source(&error)
        .and_then(|s| s.downcast_ref::<SdkError<PutItemError, HttpResponse>>())
        .expect("the SDK's error, typed");
    assert!(matches!(sdk, SdkError::DispatchFailure(_)), "{sdk:?}");
    assert!(whatsapp_agent_lambda::Error::from(error).is_retryable());

    // DynamoDB's own refusal names the table, never the item: kept, with its code.
    let error = DynamoIdempotency::new(&aws.config, "no-such-table")
        .claim(&id, &ClaimToken::new(), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, IdempotencyError::Store { code, .. } if code == "ResourceNotFoundException"),
        "{error:?}"
    );
    assert!(
        std::error::Error::source(&error)
            .and_then(|s| s.downcast_ref::<SdkError<PutItemError, HttpResponse>>())
            .is_some_and(|sdk| matches!(sdk, SdkError::ServiceError(_)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_allowed_message_of_a_batch_is_queued_in_one_go() {
    let aws = aws().await;
    let webhook = queue_webhook(&aws.config, &aws.queue_url);
    assert_eq!(webhook.handle(event("post-batch.json")).await.status(), 200);
    let mut ids = Vec::new();
    for _ in 0..5 {
        for job in take_jobs(&aws).await {
            ids.push(job.message().expect("a message job").id.0.clone());
        }
        if ids.len() >= 5 {
            break;
        }
    }
    ids.sort();
    assert_eq!(ids, BATCH_ALLOWED_IDS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliver_event_delivered_twice_sends_one_reply() {
    let aws = aws().await;
    let (worker, agent, messenger) = echo_worker(&aws, Duration::from_secs(60));
    let worker = Arc::new(worker);
    let job: Job = serde_json::from_value(
        serde_json::from_str::<Value>(job_event("x", 1)["Records"][0]["body"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap();
    let request = AgentRequest::from_message(job.message().expect("a message job"));
    let deliver = json!({"deliver": {"request": request, "reply": {"status": "info", "text": "Deploy finished."}}});

    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..2 {
        let worker = worker.clone();
        let deliver = deliver.clone();
        runs.spawn(async move { worker.handle(deliver).await });
    }
    let mut delivered = 0;
    while let Some(result) = runs.join_next().await {
        // One run delivers; the other sees it done (or in progress, and would be retried).
        if result.unwrap().is_ok() {
            delivered += 1;
        }
    }
    assert!(delivered >= 1);
    assert!(
        worker.handle(deliver.clone()).await.is_ok(),
        "a late duplicate is harmless"
    );
    println!("deliver twice: replies = {}", messenger.sent().len());
    assert_eq!(sent_texts(&messenger), vec!["ℹ️ Deploy finished."]);
    assert_eq!(agent.calls(), 0, "a deliver event never calls the agent");

    // The state machine's Catch: the user gets an honest ❌ once.
    let mut failed_request = request.clone();
    failed_request.event.id = "wamid.failed.1".to_owned();
    let failure =
        json!({"deliver": {"request": failed_request, "error": {"Error": "States.Timeout"}}});
    worker.handle(failure.clone()).await.unwrap();
    worker.handle(failure).await.unwrap();
    // The state machine gave up: no invitation to try again.
    assert_eq!(
        sent_texts(&messenger).last().map(String::as_str),
        Some(AGENT_FAILED_PERMANENT_TEXT)
    );
    assert_eq!(messenger.sent().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_agent_failures_are_retried_then_the_user_is_told_and_the_job_dead_lettered() {
    let aws = aws().await;
    let agent = Arc::new(ScriptedAgent::new(|_| {
        Err(AgentError::Timeout(Duration::from_secs(60)))
    }));
    let (worker, messenger) = worker(&aws, agent.clone(), Duration::from_secs(60));
    for attempt in 1..MAX_RECEIVE_COUNT {
        let response = worker.handle(job_event("sqs-t", attempt)).await.unwrap();
        assert_eq!(
            failed_ids(&response).len(),
            1,
            "attempt {attempt} is retried"
        );
        assert!(
            sent_texts(&messenger).is_empty(),
            "no ❌ before the last attempt"
        );
    }
    let last = worker
        .handle(job_event("sqs-t", MAX_RECEIVE_COUNT))
        .await
        .unwrap();
    assert_eq!(
        failed_ids(&last).len(),
        1,
        "the last failure goes to the dead-letter queue"
    );
    assert_eq!(sent_texts(&messenger), vec![AGENT_FAILED_TEXT.to_owned()]);
    assert_eq!(agent.calls(), MAX_RECEIVE_COUNT as usize);
    // A redrive from the dead-letter queue does not answer twice.
    let redriven = worker.handle(job_event("sqs-t", 1)).await.unwrap();
    assert_eq!(failed_ids(&redriven).len(), 0);
    assert_eq!(messenger.sent().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_agent_failures_are_answered_at_once_and_not_retried() {
    let aws = aws().await;
    let agent = Arc::new(harness::failing_agent(400, "bad request"));
    let (worker, messenger) = worker(&aws, agent.clone(), Duration::from_secs(60));
    let response = worker.handle(job_event("sqs-p", 1)).await.unwrap();
    assert_eq!(failed_ids(&response).len(), 0);
    assert_eq!(
        sent_texts(&messenger),
        vec![AGENT_FAILED_PERMANENT_TEXT.to_owned()]
    );
    assert_eq!(agent.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_mode_with_a_table_shares_claims_across_instances() {
    let aws = aws().await;
    let agent = echo_agent();
    let messenger = Arc::new(RecordingMessenger::new());
    // Two warm Lambda instances of the inline webhook, one table.
    let instance = || {
        let pipeline = pipeline(
            &aws.config,
            agent.clone(),
            messenger.clone(),
            Duration::from_secs(60),
        );
        webhook(LOCAL_ALLOWED_SENDERS, Dispatcher::Inline(pipeline))
    };
    let (first, second) = (instance(), instance());
    let (a, b) = tokio::join!(
        first.handle(event("post-text.json")),
        second.handle(event("post-text.json"))
    );
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    assert_eq!(agent.calls(), 1);
    assert_eq!(messenger.sent().len(), 1);
}

#[tokio::test]
async fn a_failed_message_holds_back_the_later_ones_of_the_same_sender() {
    // Worker-level FIFO ordering with in-memory stores: no AWS needed.
    let agent = Arc::new(ScriptedAgent::new(|request| {
        if request.event.text == "first" {
            Err(agent_down())
        } else {
            Ok(None)
        }
    }));
    let worker = memory_worker(agent.clone());
    let batch = json!({"Records": [
        batch_record("1", "wamid.f1", "first", "john"),
        batch_record("2", "wamid.f2", "second", "john"),
        batch_record("3", "wamid.o1", "other", "ana"),
    ]});
    let response = worker.handle(batch).await.unwrap();
    assert_eq!(
        failed_ids(&response),
        ["1", "2"],
        "john's second message waits for his first"
    );
    let asked: Vec<String> = agent
        .requests()
        .iter()
        .map(|r| r.event.text.clone())
        .collect();
    assert_eq!(asked, ["first", "other"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_after_the_workers_backoff_not_the_visibility_timeout() {
    let aws = aws().await;
    let webhook = queue_webhook(&aws.config, &aws.queue_url);
    assert_eq!(webhook.handle(event("post-text.json")).await.status(), 200);
    let queued = receive(&aws).await;
    assert_eq!(queued.len(), 1);

    let failing = Arc::new(ScriptedAgent::new(|_| Err(agent_down())));
    let (worker, messenger) = worker(&aws, failing, Duration::from_secs(60));
    let worker = worker
        .with_redelivery(Arc::new(SqsQueue::new(&aws.config, &aws.queue_url)))
        .with_retry_base(Duration::from_secs(1));
    let response = worker.handle(sqs_event(&queued, None)).await.unwrap();
    assert_eq!(failed_ids(&response).len(), 1);
    assert!(
        sent_texts(&messenger).is_empty(),
        "no ❌ before the last attempt"
    );

    // The queue's visibility timeout is 30 s here; the worker asked for about 1 s.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let again = receive(&aws).await;
    assert_eq!(again.len(), 1, "redelivered after the worker's backoff");
    assert_eq!(
        again[0].attributes().unwrap()[&MessageSystemAttributeName::ApproximateReceiveCount],
        "2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn different_senders_in_one_batch_are_answered_concurrently() {
    let agent = Arc::new(CountingAgent::new("ok", Duration::from_millis(300)));
    let worker = memory_worker(agent.clone());
    let batch = json!({"Records": [
        batch_record("1", "wamid.j1", "status?", "john"),
        batch_record("2", "wamid.a1", "status?", "ana"),
        batch_record("3", "wamid.j2", "status?", "john"),
        batch_record("4", "wamid.e1", "status?", "eve"),
    ]});
    let response = worker.handle(batch).await.unwrap();
    assert_eq!(failed_ids(&response).len(), 0);
    assert_eq!(
        agent.most_at_once(),
        3,
        "one call per sender at a time, senders in parallel"
    );
}

/// Lease 1 s (renewed every third of it: two renewals may be late by a third of a second on a
/// loaded machine); a handling of about 2.8 s (350 ms to mark read, 350 ms of agent, 350 ms per
/// part); redeliveries at 1.2 s and 2 s, after the first lease ran out.
const SLOW_LEASE: Duration = Duration::from_millis(1000);
const SLOW_STEP: Duration = Duration::from_millis(350);
const REDELIVERIES: [Duration; 2] = [Duration::from_millis(1200), Duration::from_millis(2000)];

/// One instance's handling of `slow`'s message, claims in the table, lease [`SLOW_LEASE`].
fn slow_pipeline(aws: &Aws, slow: &SlowHandling) -> Pipeline {
    let (agent, messenger) = (slow.agent.clone(), slow.messenger.clone());
    pipeline(&aws.config, agent, messenger, SLOW_LEASE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_redelivered_during_a_handling_longer_than_the_lease_is_answered_once() {
    let aws = aws().await;
    let slow = SlowHandling::new(SLOW_STEP);
    // Two worker instances, one table: SQS hands the job to the second while the first works.
    let worker = || Worker::new(slow_pipeline(&aws, &slow), MAX_RECEIVE_COUNT);
    let (first, second) = (worker(), worker());
    let (handled, redelivered, took) = with_redeliveries(
        first.handle(job_event("sqs-1", 1)),
        &REDELIVERIES,
        async || failed_ids(&second.handle(job_event("sqs-1", 2)).await.unwrap()).len(),
    )
    .await;
    assert!(took > SLOW_LEASE * 2, "{took:?}");
    assert_eq!(failed_ids(&handled.unwrap()).len(), 0);
    assert_eq!(redelivered, [1, 1], "in progress elsewhere: retried later");
    slow.assert_answered_once();
    // SQS's later retry finds it done.
    assert_eq!(
        failed_ids(&second.handle(job_event("sqs-1", 3)).await.unwrap()).len(),
        0
    );
    assert_eq!(slow.agent.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_redelivered_during_a_handling_longer_than_the_lease_is_answered_once() {
    let aws = aws().await;
    let slow = SlowHandling::new(SLOW_STEP);
    // Two warm instances of the inline webhook, one table: Meta redelivers to the second.
    let instance = || {
        webhook(
            LOCAL_ALLOWED_SENDERS,
            Dispatcher::Inline(slow_pipeline(&aws, &slow)),
        )
    };
    let (first, second) = (instance(), instance());
    let (handled, redelivered, took) = with_redeliveries(
        first.handle(event("post-text.json")),
        &REDELIVERIES,
        async || {
            second
                .handle(event("post-text.json"))
                .await
                .status()
                .as_u16()
        },
    )
    .await;
    assert!(took > SLOW_LEASE * 2, "{took:?}");
    assert_eq!(handled.status(), 200);
    assert_eq!(redelivered, [200, 200]);
    slow.assert_answered_once();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_senders_messages_are_queued_in_order_however_many_a_body_holds() {
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 13;
    const ROUNDS: usize = 5;
    let aws = aws().await;
    let queue = Arc::new(SqsQueue::new(&aws.config, &aws.queue_url));
    let webhook = webhook("*", Dispatcher::Queue(queue));
    for round in 0..ROUNDS {
        // Interleaved as Meta may batch them: sender 0, 1, 2, 3, 0, 1, …
        let messages: Vec<(String, String, String)> = (0..PER_SENDER)
            .flat_map(|n| {
                (0..SENDERS).map(move |sender| {
                    let id = format!("wamid.ORDER.{round}.{sender}.{n:02}");
                    (id.clone(), format!("1415555000{sender}"), id)
                })
            })
            .collect();
        assert_eq!(webhook.handle(signed_texts(&messages)).await.status(), 200);

        // Read the queue back as the worker would, group by group, deleting what was read.
        let mut seen: HashMap<String, Vec<String>> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen.values().map(Vec::len).sum::<usize>() < SENDERS * PER_SENDER {
            assert!(Instant::now() < deadline, "queue not drained: {seen:?}");
            for job in take_jobs(&aws).await {
                seen.entry(job.message().expect("a message job").sender.id().to_owned())
                    .or_default()
                    .push(job.message().expect("a message job").id.as_str().to_owned());
            }
        }
        assert_eq!(seen.len(), SENDERS);
        for (sender, ids) in &seen {
            let mut sorted = ids.clone();
            sorted.sort();
            assert_eq!(ids, &sorted, "round {round}: {sender}'s jobs out of order");
            assert_eq!(ids.len(), PER_SENDER);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_holder_can_neither_renew_nor_settle_a_claim_taken_over() {
    use whatsapp_agent_lambda::idempotency::{Claim, Renewal};
    let aws = aws().await;
    let store = DynamoIdempotency::new(&aws.config, TABLE);
    let id = MessageId::from("wamid.STALE.1");
    let (stale, current) = (ClaimToken::new(), ClaimToken::new());
    let lease = Duration::from_millis(400);
    assert_eq!(
        store.claim(&id, &stale, lease).await.unwrap(),
        Claim::Acquired
    );
    // Renewed, the claim outlives its first lease.
    tokio::time::sleep(lease / 2).await;
    assert_eq!(
        store.renew(&id, &stale, lease).await.unwrap(),
        Renewal::Renewed
    );
    tokio::time::sleep(lease * 3 / 4).await;
    assert_eq!(
        store.claim(&id, &current, lease).await.unwrap(),
        Claim::InProgress
    );
    // Not renewed: taken over after it runs out.
    tokio::time::sleep(lease + Duration::from_millis(100)).await;
    assert_eq!(
        store.claim(&id, &current, lease).await.unwrap(),
        Claim::Acquired
    );
    assert_eq!(
        store.renew(&id, &stale, lease).await.unwrap(),
        Renewal::Lost
    );
    store.complete(&id, &stale).await.unwrap();
    store.release(&id, &stale).await.unwrap();
    assert_eq!(
        store.claim(&id, &ClaimToken::new(), lease).await.unwrap(),
        Claim::InProgress,
        "still the current holder's"
    );
    assert_eq!(
        store.renew(&id, &current, lease).await.unwrap(),
        Renewal::Renewed
    );
    store.complete(&id, &current).await.unwrap();
    assert_eq!(
        store.renew(&id, &current, lease).await.unwrap(),
        Renewal::Lost
    );
    assert_eq!(
        store.claim(&id, &ClaimToken::new(), lease).await.unwrap(),
        Claim::Completed
    );
}

/// The queue's message counts: (visible, in flight).
async fn queue_depth(aws: &Aws) -> (u64, u64) {
    use aws_sdk_sqs::types::QueueAttributeName;
    let attributes = aws
        .sqs
        .get_queue_attributes()
        .queue_url(&aws.queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    let count = |name: QueueAttributeName| {
        attributes
            .attributes()
            .and_then(|a| a.get(&name))
            .and_then(|n| n.parse().ok())
            .unwrap_or(u64::MAX)
    };
    (
        count(QueueAttributeName::ApproximateNumberOfMessages),
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_poller_hands_lambda_batches_over_and_deletes_all_but_the_failed_items() {
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
    let aws = aws().await;
    let queue = Arc::new(SqsQueue::new(&aws.config, &aws.queue_url));
    let webhook = webhook("*", Dispatcher::Queue(queue));
    let messages: Vec<(String, String, String)> = ["ok", "fails"]
        .iter()
        .enumerate()
        .map(|(sender, id)| {
            let id = format!("wamid.POLL.{id}");
            (id.clone(), format!("1415555000{sender}"), id)
        })
        .collect();
    assert_eq!(webhook.handle(signed_texts(&messages)).await.status(), 200);

    // Jobs seen by the handler, with the record's event source, in the order handed over.
    let seen: Arc<std::sync::Mutex<Vec<(String, String)>>> = Arc::default();
    let handled = {
        let seen = seen.clone();
        move |batch: aws_lambda_events::event::sqs::SqsEvent| {
            let mut response = SqsBatchResponse::default();
            for record in batch.records {
                let job: Job = serde_json::from_str(record.body.as_deref().unwrap()).unwrap();
                let id = job.message().expect("a message job").id.as_str().to_owned();
                if id.ends_with("fails") {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = record.message_id.clone().unwrap();
                    response.batch_item_failures.push(failure);
                }
                let source = record.event_source_arn.unwrap_or_default();
                seen.lock().unwrap().push((id, source));
            }
            std::future::ready(response)
        }
    };
    let all_seen = {
        let seen = seen.clone();
        async move {
            while seen.lock().unwrap().len() < messages.len() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let polled = tokio::time::timeout(
        Duration::from_secs(30),
        SqsQueue::new(&aws.config, &aws.queue_url).poll(handled, all_seen),
    )
    .await;
    assert!(polled.is_ok(), "the poller stops when asked");

    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "wamid.POLL.fails".to_owned(),
                format!("arn:aws:sqs:us-east-1:local:{QUEUE}")
            ),
            (
                "wamid.POLL.ok".to_owned(),
                format!("arn:aws:sqs:us-east-1:local:{QUEUE}")
            ),
        ]
    );
    // The handled job is gone; the failed one waits out its visibility timeout, still queued.
    assert_eq!(queue_depth(&aws).await, (0, 1));
}

/// What an HTTP agent that is down answers: no connection (retryable).
fn agent_down() -> AgentError {
    AgentError::Transport(TransportError::Http {
        source: ureq::Error::ConnectionFailed,
    })
}

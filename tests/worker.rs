//! The worker fed the sample events in `events/` (the files `cargo lambda invoke worker` uses),
//! with in-memory agent, Graph API and claims.

mod support;

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use support::fixtures::{event_json, failed_ids};
use support::slow::{CountingAgent, SlowHandling, with_redeliveries};
use whatsapp_agent_lambda::agent::{AgentReply, ReplyStatus, ScriptedAgent};
use whatsapp_agent_lambda::domain::{OutgoingMessage, Recipient};
use whatsapp_agent_lambda::graph::RecordingMessenger;
use whatsapp_agent_lambda::idempotency::{IdempotencyStore, MemoryIdempotency};
use whatsapp_agent_lambda::pipeline::Pipeline;
use whatsapp_agent_lambda::worker::{Worker, WorkerError};

fn worker() -> (Worker, Arc<ScriptedAgent>, Arc<RecordingMessenger>) {
    let agent = Arc::new(ScriptedAgent::new(|request| {
        Ok(Some(AgentReply::text(
            Some(ReplyStatus::Info),
            format!("got: {}", request.event.text),
        )))
    }));
    let messenger = Arc::new(RecordingMessenger::new());
    let pipeline = Pipeline::new(
        agent.clone(),
        messenger.clone(),
        Arc::new(MemoryIdempotency::default()),
    )
    .with_lease(Duration::from_secs(60));
    (Worker::new(pipeline, 3), agent, messenger)
}

#[tokio::test]
async fn sample_sqs_job_is_answered_and_reported_successful() {
    let (worker, agent, messenger) = worker();
    let response = worker.handle(event_json("sqs-job.json")).await.unwrap();
    assert_eq!(response["batchItemFailures"], serde_json::json!([]));
    assert_eq!(agent.calls(), 1);
    let sent = messenger.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, Recipient::Phone("14155551234".into()));
    assert!(
        matches!(&sent[0].message, OutgoingMessage::Text { body } if body == "ℹ️ got: pods crashing in prod")
    );
    assert_eq!(messenger.read_marks().len(), 1);
}

#[tokio::test]
async fn sample_deliver_event_sends_the_reply_without_asking_the_agent() {
    let (worker, agent, messenger) = worker();
    worker.handle(event_json("sfn-deliver.json")).await.unwrap();
    worker.handle(event_json("sfn-deliver.json")).await.unwrap();
    assert_eq!(agent.calls(), 0);
    let sent = messenger.sent();
    assert_eq!(sent.len(), 1, "a second delivery sends nothing");
    match &sent[0].message {
        OutgoingMessage::Buttons { body, buttons, .. } => {
            assert!(body.starts_with("⚠️ Found 2 pods in *CrashLoopBackOff*"));
            assert_eq!(buttons.len(), 2);
        }
        other => panic!("expected buttons, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_and_malformed_events_are_refused_clearly() {
    let (worker, _, _) = worker();
    assert!(matches!(
        worker.handle(serde_json::json!({"hello": 1})).await,
        Err(WorkerError::UnknownEvent)
    ));
    assert!(matches!(
        worker
            .handle(serde_json::json!({"deliver": {"request": 1}}))
            .await,
        Err(WorkerError::Malformed { .. })
    ));
    // A record whose body is not a job stays in the queue for the dead-letter queue.
    let response = worker
        .handle(serde_json::json!({"Records": [{"messageId": "m1", "body": "not a job", "attributes": {}}]}))
        .await
        .unwrap();
    assert_eq!(response["batchItemFailures"][0]["itemIdentifier"], "m1");
}

fn slow_worker(
    agent: Arc<CountingAgent>,
    messenger: Arc<RecordingMessenger>,
    idempotency: Arc<dyn IdempotencyStore>,
    lease: Duration,
) -> Worker {
    Worker::new(
        Pipeline::new(agent, messenger, idempotency).with_lease(lease),
        3,
    )
}

#[tokio::test]
async fn a_job_redelivered_to_another_worker_during_a_long_handling_is_answered_once() {
    // Two worker instances share the claims (as they share the DynamoDB table). Lease 500 ms
    // (renewed every 167 ms); the first worker takes about 1.6 s (400 ms of agent, the read
    // mark at the same time, then 200 ms per part); SQS hands the same job to the second one meanwhile.
    let lease = Duration::from_millis(500);
    let slow = SlowHandling::new(Duration::from_millis(200));
    let (agent, messenger) = (&slow.agent, &slow.messenger);
    let claims: Arc<dyn IdempotencyStore> = Arc::new(MemoryIdempotency::default());
    let first = slow_worker(agent.clone(), messenger.clone(), claims.clone(), lease);
    let second = slow_worker(agent.clone(), messenger.clone(), claims, lease);

    let (handled, redelivered, took) = with_redeliveries(
        first.handle(event_json("sqs-job.json")),
        &[Duration::from_millis(600), Duration::from_millis(1200)],
        async || second.handle(event_json("sqs-job.json")).await.unwrap(),
    )
    .await;
    assert!(took > lease * 3, "{took:?}");
    assert!(failed_ids(&handled.unwrap()).is_empty());
    for response in &redelivered {
        // Being handled elsewhere: retried later, not handled.
        assert_eq!(failed_ids(response).len(), 1, "{response}");
    }
    slow.assert_answered_once();

    // The retry SQS makes later finds it done.
    let late = second.handle(event_json("sqs-job.json")).await.unwrap();
    assert!(failed_ids(&late).is_empty());
    assert_eq!(agent.calls(), 1);
}

#[tokio::test]
async fn a_batch_from_many_senders_runs_a_bounded_number_of_agent_calls_at_once() {
    let agent = Arc::new(CountingAgent::new("ok", Duration::from_millis(50)));
    let messenger = Arc::new(RecordingMessenger::with_delay(Duration::ZERO));
    let worker = slow_worker(
        agent.clone(),
        messenger.clone(),
        Arc::new(MemoryIdempotency::default()),
        Duration::from_secs(60),
    );
    let template = event_json("sqs-job.json")["Records"][0].clone();
    let records: Vec<Value> = (0..100)
        .map(|n| {
            let phone = format!("1415555{n:04}");
            let mut job: Value = serde_json::from_str(template["body"].as_str().unwrap()).unwrap();
            job["message"]["id"] = json!(format!("wamid.WIDE.{n}"));
            job["message"]["sender"] = json!({"phone": phone});
            let mut record = template.clone();
            record["messageId"] = json!(format!("sqs-{n}"));
            record["body"] = json!(job.to_string());
            record["attributes"]["MessageGroupId"] = json!(phone);
            record
        })
        .collect();
    let response = worker.handle(json!({ "Records": records })).await.unwrap();
    assert!(failed_ids(&response).is_empty());
    agent.assert_wide_batch_answered(&messenger, 100);
}

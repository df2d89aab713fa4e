//! The worker fed the sample events in `events/` (the files `cargo lambda invoke worker` uses),
//! with in-memory agent, Graph API and claims.

mod support;

use std::sync::Arc;
use std::time::Duration;
use support::fixtures::event_json;
use whatsapp_agent_lambda::agent::{AgentReply, ReplyStatus, ScriptedAgent};
use whatsapp_agent_lambda::graph::{OutgoingMessage, Recipient, RecordingMessenger};
use whatsapp_agent_lambda::idempotency::MemoryIdempotency;
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
    let pipeline = Pipeline {
        agent: agent.clone(),
        messenger: messenger.clone(),
        idempotency: Arc::new(MemoryIdempotency::default()),
        lease: Duration::from_secs(60),
    };
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
        Err(WorkerError::Malformed(_))
    ));
    // A record whose body is not a job stays in the queue for the dead-letter queue.
    let response = worker
        .handle(serde_json::json!({"Records": [{"messageId": "m1", "body": "not a job", "attributes": {}}]}))
        .await
        .unwrap();
    assert_eq!(response["batchItemFailures"][0]["itemIdentifier"], "m1");
}

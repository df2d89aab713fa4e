//! The queue worker: handles SQS batches of jobs with partial batch failures, and the
//! "deliver" events a Step Functions state machine sends with a reply.
//! <https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>

use crate::job::{DeliverEvent, JOB_VERSION, Job};
use crate::pipeline::{Attempt, Outcome, Pipeline};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::Value;
use std::collections::HashSet;
use tracing::Instrument;

/// The SQS attribute counting deliveries of a message.
const RECEIVE_COUNT: &str = "ApproximateReceiveCount";

/// Why a worker invocation failed as a whole (SQS batches never do: items fail one by one).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("event is neither an SQS batch nor a deliver event")]
    UnknownEvent,
    #[error("event is malformed: {0}")]
    Malformed(String),
    #[error("reply for {message_id} not delivered yet ({reason}); retry")]
    DeliverLater { message_id: String, reason: String },
}

/// Shared state built once at cold start.
pub struct Worker {
    pipeline: Pipeline,
    max_receive_count: u32,
}

impl Worker {
    pub fn new(pipeline: Pipeline, max_receive_count: u32) -> Self {
        Self {
            pipeline,
            max_receive_count: max_receive_count.max(1),
        }
    }

    /// Any worker invocation: an SQS batch (`Records`) or a `deliver` event.
    pub async fn handle(&self, event: Value) -> Result<Value, WorkerError> {
        if event.get("Records").is_some() {
            let batch: SqsEvent =
                serde_json::from_value(event).map_err(|e| WorkerError::Malformed(e.to_string()))?;
            let response = self.handle_sqs(batch).await;
            return serde_json::to_value(response)
                .map_err(|e| WorkerError::Malformed(e.to_string()));
        }
        if event.get("deliver").is_some() {
            let deliver: DeliverEvent =
                serde_json::from_value(event).map_err(|e| WorkerError::Malformed(e.to_string()))?;
            return self.handle_deliver(deliver).await;
        }
        Err(WorkerError::UnknownEvent)
    }

    /// Handles a batch in order; returns only the failed items so SQS redelivers just those.
    /// FIFO: once a message of a group fails, the later ones of that group fail too, so one
    /// user's messages are never answered out of order.
    pub async fn handle_sqs(&self, batch: SqsEvent) -> SqsBatchResponse {
        let mut failed_groups: HashSet<String> = HashSet::new();
        let mut response = SqsBatchResponse::default();
        for record in &batch.records {
            let id = record.message_id.clone().unwrap_or_default();
            let group = record
                .attributes
                .get("MessageGroupId")
                .cloned()
                .unwrap_or_default();
            let ok = if failed_groups.contains(&group) {
                tracing::info!(sqs_message_id = %id, "an earlier message of this sender failed: retrying this one after it");
                false
            } else {
                let span = tracing::info_span!("job", sqs_message_id = %id);
                self.handle_record(record).instrument(span).await
            };
            if !ok {
                failed_groups.insert(group);
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        response
    }

    /// One SQS record; `true` when it may be deleted from the queue.
    async fn handle_record(&self, record: &SqsMessage) -> bool {
        let job: Job = match record.body.as_deref().map(serde_json::from_str::<Job>) {
            Some(Ok(job)) if job.version == JOB_VERSION => job,
            Some(Ok(job)) => {
                tracing::error!(
                    version = job.version,
                    "job of an unknown version: left for the dead-letter queue"
                );
                return false;
            }
            Some(Err(error)) => {
                tracing::error!(%error, "job is not readable: left for the dead-letter queue");
                return false;
            }
            None => {
                tracing::error!("SQS record without a body: left for the dead-letter queue");
                return false;
            }
        };
        let receive_count: u32 = record
            .attributes
            .get(RECEIVE_COUNT)
            .and_then(|count| count.parse().ok())
            .unwrap_or(1);
        let attempt = if receive_count >= self.max_receive_count {
            Attempt::Last
        } else {
            Attempt::Retryable
        };
        let outcome = self.pipeline.handle(&job.message, attempt).await;
        if outcome.should_retry() {
            tracing::info!(message_id = %job.message.id, receive_count, outcome = ?outcome, "will be retried");
            return false;
        }
        if attempt == Attempt::Last && outcome.gave_up() {
            tracing::error!(
                message_id = %job.message.id,
                receive_count,
                outcome = ?outcome,
                "last attempt failed: the user was told, the job goes to the dead-letter queue"
            );
            return false;
        }
        true
    }

    /// A reply delivered by a Step Functions execution. An error makes Step Functions retry
    /// the task (per the state machine's Retry); a duplicate delivery sends nothing.
    pub async fn handle_deliver(&self, event: DeliverEvent) -> Result<Value, WorkerError> {
        let message_id = event.deliver.request.event.id.clone();
        let span = tracing::info_span!("deliver", message_id = %message_id);
        let outcome = self
            .pipeline
            .deliver(&event.deliver, Attempt::Retryable)
            .instrument(span)
            .await;
        match outcome {
            Outcome::InProgress | Outcome::Retry { .. } => Err(WorkerError::DeliverLater {
                message_id,
                reason: format!("{outcome:?}"),
            }),
            other => {
                Ok(serde_json::json!({ "message_id": message_id, "outcome": format!("{other:?}") }))
            }
        }
    }
}

//! The queue worker: handles SQS batches of jobs with partial batch failures, and the
//! "deliver" events a Step Functions state machine sends with a reply.
//! <https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-errorhandling.html>

use crate::agent::DeliverEvent;
use crate::alerts::paging::{Paging, PagingError};
use crate::approvals::engine::{AgentDecision, ApprovalError, Approvals};
use crate::backoff::{self, Spread};
use crate::domain::log_id;
use crate::pipeline::{Attempt, MAX_CONCURRENT_SENDERS, Outcome, Pipeline, by_sender};
use crate::queue::{JOB_VERSION, Job, Work};
use crate::queue::{Redelivery, SqsQueue};
use crate::redact;
use crate::sessions::conversation::unix_now;
use crate::timers::TimerKind;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// The SQS attribute counting deliveries of a message.
const RECEIVE_COUNT: &str = "ApproximateReceiveCount";
/// The SQS attribute naming a FIFO message's group (the sender).
const MESSAGE_GROUP: &str = "MessageGroupId";
/// A failed job comes back after this, doubled per receive, so a transient failure is retried
/// in seconds rather than after the queue's whole visibility timeout.
pub const RETRY_BASE: Duration = Duration::from_secs(20);
/// The longest wait before a retry.
pub const RETRY_CAP: Duration = Duration::from_secs(15 * 60);
/// Most added to a retry's wait, in percent of it (in whole percents), so a burst of failures
/// spreads out; the wait is never shorter than the doubling schedule.
const RETRY_JITTER_PERCENT: u32 = 25;

/// How one record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Delete it from the queue.
    Done,
    /// Deliver it again after a backoff.
    Retry,
    /// The last attempt failed, or the job can never succeed (unreadable): visible again at
    /// once, so SQS moves it to the dead-letter queue after its last receive.
    GiveUp,
}

/// Why a worker invocation failed as a whole (SQS batches never do: items fail one by one).
/// The Lambda runtime logs it (`Display`) and hands it to the invoker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    #[error("event is neither an SQS batch nor a deliver event")]
    UnknownEvent,
    /// An event of a known `kind` whose shape is wrong. `reason` is serde's message without
    /// the values it quotes ([`redact::serde_error`]); serde's error is not kept as the source,
    /// since its `Display` quotes them and an event holds message ids and text.
    #[error("{kind} event is malformed: {reason}")]
    Malformed { kind: EventKind, reason: String },
    /// The answer to an SQS batch could not be encoded. serde's error is kept: serializing
    /// quotes no value (and the answer holds only SQS's record ids).
    #[error("batch response not encodable: {0}")]
    Response(#[source] serde_json::Error),
    /// `message_id` is the message's log id (a keyed hash): the Lambda runtime logs the error.
    #[error("reply for {message_id} not delivered yet ({reason}); retry")]
    DeliverLater { message_id: String, reason: String },
}

impl WorkerError {
    /// Whether invoking again later may succeed: only a delivery that met the message still
    /// in progress or failing transiently (Step Functions retries the task).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::DeliverLater { .. } => true,
            Self::UnknownEvent | Self::Malformed { .. } | Self::Response(_) => false,
        }
    }
}

/// The kinds of event the worker takes, told apart by their top-level key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `Records`: a batch from Lambda's SQS event source mapping.
    Sqs,
    /// `deliver`: a reply from a Step Functions execution.
    Deliver,
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqs => "SQS batch",
            Self::Deliver => "deliver",
        })
    }
}

/// The top-level key of an SQS batch event.
const SQS_KEY: &str = "Records";
/// The top-level key of a Step Functions delivery.
const DELIVER_KEY: &str = "deliver";

/// Every event the worker function is invoked with.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEvent {
    /// `{"Records": [...]}`: a batch from Lambda's SQS event source mapping.
    Sqs(SqsEvent),
    /// `{"deliver": {...}}`: a reply (or the agent's failure) from a Step Functions execution.
    /// Boxed: it is far larger than a batch, which is a vector.
    Deliver(Box<DeliverEvent>),
}

impl TryFrom<Value> for WorkerEvent {
    type Error = WorkerError;

    /// Picks the kind by the event's top-level key (`Records` first: SQS never sends
    /// `deliver`), then decodes the whole event once as that kind. Not an untagged enum: that
    /// would answer an event of neither kind and a known kind of the wrong shape alike, and
    /// lose serde's message saying what is wrong with the latter.
    fn try_from(event: Value) -> Result<Self, WorkerError> {
        let has = |key: &str| {
            event
                .as_object()
                .is_some_and(|fields| fields.contains_key(key))
        };
        let (kind, decoded) = if has(SQS_KEY) {
            (EventKind::Sqs, serde_json::from_value(event).map(Self::Sqs))
        } else if has(DELIVER_KEY) {
            (
                EventKind::Deliver,
                serde_json::from_value(event).map(Self::Deliver),
            )
        } else {
            return Err(WorkerError::UnknownEvent);
        };
        // serde quotes the values it refused, and an event holds message ids and text.
        decoded.map_err(|e| WorkerError::Malformed {
            kind,
            reason: redact::serde_error(&e),
        })
    }
}

/// Shared state built once at cold start.
pub struct Worker {
    pipeline: Pipeline,
    max_receive_count: u32,
    redelivery: Option<Arc<dyn Redelivery>>,
    retry_base: Duration,
}

impl Worker {
    pub fn new(pipeline: Pipeline, max_receive_count: u32) -> Self {
        Self {
            pipeline,
            max_receive_count: max_receive_count.max(1),
            redelivery: None,
            retry_base: RETRY_BASE,
        }
    }

    /// Changes the first retry's delay (tests use a second).
    pub fn with_retry_base(mut self, base: Duration) -> Self {
        self.retry_base = base;
        self
    }

    /// Lets the worker schedule retries itself (SQS `ChangeMessageVisibility`); without it a
    /// failed job waits for the queue's visibility timeout.
    pub fn with_redelivery(mut self, redelivery: Arc<dyn Redelivery>) -> Self {
        self.redelivery = Some(redelivery);
        self
    }

    /// Any worker invocation, as Lambda hands it over: decoded into a [`WorkerEvent`], then
    /// handled.
    pub async fn handle(&self, event: Value) -> Result<Value, WorkerError> {
        self.handle_event(WorkerEvent::try_from(event)?).await
    }

    /// One decoded worker event: an SQS batch answers with its failed items, a delivery with
    /// its outcome.
    pub async fn handle_event(&self, event: WorkerEvent) -> Result<Value, WorkerError> {
        match event {
            WorkerEvent::Sqs(batch) => {
                let response = self.handle_sqs(batch).await;
                serde_json::to_value(response).map_err(WorkerError::Response)
            }
            WorkerEvent::Deliver(deliver) => self.handle_deliver(*deliver).await,
        }
    }

    /// Handles a batch; returns only the failed items so SQS redelivers just those. Different
    /// senders (FIFO groups) run concurrently, at most [`MAX_CONCURRENT_SENDERS`] at once; one
    /// sender's jobs run in order, and once one fails the later ones of that sender fail too,
    /// so answers never overtake each other.
    pub async fn handle_sqs(&self, batch: SqsEvent) -> SqsBatchResponse {
        let groups = by_sender(&batch.records, |record| {
            record
                .attributes
                .get(MESSAGE_GROUP)
                .cloned()
                .unwrap_or_else(|| record.message_id.clone().unwrap_or_default())
        });
        let slots = tokio::sync::Semaphore::new(MAX_CONCURRENT_SENDERS);
        let runs = groups.iter().map(|records| async {
            // Never closed: acquiring only waits for a free slot.
            let _slot = slots.acquire().await.ok();
            self.handle_group(records).await
        });
        let mut response = SqsBatchResponse::default();
        for failed in futures_util::future::join_all(runs)
            .await
            .into_iter()
            .flatten()
        {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = failed;
            response.batch_item_failures.push(failure);
        }
        response
    }

    /// One sender's records in order; returns the ids of the failed ones.
    async fn handle_group(&self, records: &[&SqsMessage]) -> Vec<String> {
        let mut failed = Vec::new();
        let mut held: Option<Duration> = None;
        for record in records {
            let id = record.message_id.clone().unwrap_or_default();
            let delay = match held {
                Some(delay) => {
                    tracing::info!(sqs_message_id = %id, "an earlier message of this sender failed: retrying this one after it");
                    Some(delay)
                }
                None => {
                    // An ERROR-level span: its fields stay on the WARN and ERROR lines inside it whatever the
                    // log level (an INFO span is off at `AWS_LAMBDA_LOG_LEVEL=warn`).
                    let span = tracing::error_span!("job", sqs_message_id = %id);
                    match self.handle_record(record).instrument(span).await {
                        Verdict::Done => None,
                        Verdict::Retry => {
                            Some(retry_delay(self.retry_base, receive_count(record), &id))
                        }
                        Verdict::GiveUp => Some(Duration::ZERO),
                    }
                }
            };
            if let Some(delay) = delay {
                held = Some(delay);
                self.schedule(record, delay).await;
                failed.push(id);
            }
        }
        failed
    }

    /// Asks the queue to deliver a failed record again after `delay`.
    async fn schedule(&self, record: &SqsMessage, delay: Duration) {
        let (Some(redelivery), Some(handle)) = (&self.redelivery, record.receipt_handle.as_deref())
        else {
            return;
        };
        if let Err(error) = redelivery.redeliver_after(handle, delay).await {
            tracing::warn!(%error, "could not schedule the retry; the queue's visibility timeout applies");
        }
    }

    /// One SQS record.
    async fn handle_record(&self, record: &SqsMessage) -> Verdict {
        let job: Job = match record.body.as_deref().map(serde_json::from_str::<Job>) {
            Some(Ok(job)) if job.version == JOB_VERSION => job,
            Some(Ok(job)) => {
                tracing::error!(
                    version = job.version,
                    "job of an unknown version: left for the dead-letter queue"
                );
                return Verdict::GiveUp;
            }
            Some(Err(error)) => {
                // serde quotes the values it refused, and a job holds message ids and text.
                let error = redact::serde_error(&error);
                tracing::error!(%error, "job is not readable: left for the dead-letter queue");
                return Verdict::GiveUp;
            }
            None => {
                tracing::error!("SQS record without a body: left for the dead-letter queue");
                return Verdict::GiveUp;
            }
        };
        let receive_count = receive_count(record);
        let attempt = if receive_count >= self.max_receive_count {
            Attempt::Last
        } else {
            Attempt::Retryable
        };
        let message = match job.work {
            Work::Message(message) => message,
            Work::Alerts(batch) => {
                return self
                    .paging_job("alerts", attempt, |paging| async move {
                        paging.ingest(&batch, unix_now()).await.map(|_| ())
                    })
                    .await;
            }
            Work::Failed(failed) => {
                return self
                    .paging_job("delivery failed", attempt, |paging| async move {
                        paging
                            .delivery_failed(&failed.sent_id, failed.code.as_deref(), unix_now())
                            .await
                            .map(|_| ())
                    })
                    .await;
            }
            Work::Approval(task) => {
                return self
                    .approvals_job("approval task", attempt, |approvals| async move {
                        approvals
                            .ask_for_task(&task, unix_now())
                            .await
                            .map(|_| None)
                    })
                    .await;
            }
            Work::Timer(timer) if matches!(timer.kind, TimerKind::ApprovalExpiry { .. }) => {
                return self
                    .approvals_job("approval timer", attempt, |approvals| async move {
                        approvals.fire(&timer, unix_now()).await
                    })
                    .await;
            }
            Work::Timer(timer) => {
                return self
                    .paging_job("timer", attempt, |paging| async move {
                        paging.fire(&timer, unix_now()).await
                    })
                    .await;
            }
        };
        let outcome = self.pipeline.handle(&message, attempt).await;
        if outcome.should_retry() {
            tracing::info!(message_id = %message.id, receive_count, outcome = ?outcome, "will be retried");
            return Verdict::Retry;
        }
        if attempt == Attempt::Last && outcome.gave_up() {
            tracing::error!(
                message_id = %message.id,
                receive_count,
                outcome = ?outcome,
                "last attempt failed: the user was told, the job goes to the dead-letter queue"
            );
            return Verdict::GiveUp;
        }
        Verdict::Done
    }

    /// A paging job (alerts, a failed page, a timer): retried while the failure is
    /// transient, left for the dead-letter queue after the last attempt.
    async fn paging_job<F, Fut>(&self, what: &'static str, attempt: Attempt, run: F) -> Verdict
    where
        F: FnOnce(Arc<Paging>) -> Fut,
        Fut: std::future::Future<Output = Result<(), PagingError>>,
    {
        let Some(paging) = self.pipeline.paging() else {
            tracing::error!(
                what,
                "paging job, but paging is not configured (ONCALL unset): left for the dead-letter queue"
            );
            return Verdict::GiveUp;
        };
        match run(paging.clone()).await {
            Ok(()) => Verdict::Done,
            Err(error) if error.is_retryable() && attempt == Attempt::Retryable => {
                tracing::warn!(what, %error, "paging job failed; will be retried");
                Verdict::Retry
            }
            Err(error) => {
                tracing::error!(what, %error, "paging job failed: left for the dead-letter queue");
                Verdict::GiveUp
            }
        }
    }

    /// An approvals job (a state machine's request, an expiry timer): retried while the
    /// failure is transient, left for the dead-letter queue after the last attempt. A decision
    /// for an agent is then handed to it.
    async fn approvals_job<F, Fut>(&self, what: &'static str, attempt: Attempt, run: F) -> Verdict
    where
        F: FnOnce(Arc<Approvals>) -> Fut,
        Fut: std::future::Future<Output = Result<Option<Box<AgentDecision>>, ApprovalError>>,
    {
        let Some(approvals) = self.pipeline.approvals() else {
            tracing::error!(
                what,
                "approvals job, but approvals are not configured (APPROVERS unset): left for the dead-letter queue"
            );
            return Verdict::GiveUp;
        };
        match run(approvals.clone()).await {
            Ok(Some(decided)) => {
                self.pipeline.approval_decided(&decided).await;
                Verdict::Done
            }
            Ok(None) => Verdict::Done,
            Err(error) if error.is_retryable() && attempt == Attempt::Retryable => {
                tracing::warn!(what, %error, "approvals job failed; will be retried");
                Verdict::Retry
            }
            Err(error) => {
                tracing::error!(what, %error, "approvals job failed: left for the dead-letter queue");
                Verdict::GiveUp
            }
        }
    }

    /// A reply delivered by a Step Functions execution. An error makes Step Functions retry
    /// the task (per the state machine's Retry); a duplicate delivery sends nothing.
    pub async fn handle_deliver(&self, event: DeliverEvent) -> Result<Value, WorkerError> {
        // Only the log id: the answer and the error end up in logs and execution histories.
        let message_id = log_id(&event.deliver.request.event.id).to_string();
        // ERROR level: kept at every log level, like the job span.
        let span = tracing::error_span!("deliver", message_id = %message_id);
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

fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get(RECEIVE_COUNT)
        .and_then(|count| count.parse().ok())
        .unwrap_or(1)
}

/// `base` doubled per receive, capped at `RETRY_CAP`, with up to `RETRY_JITTER_PERCENT` % added,
/// taken from the record id so a burst of failures does not come back at the same second.
fn retry_delay(base: Duration, receive_count: u32, record_id: &str) -> Duration {
    backoff::delay(
        base,
        receive_count,
        RETRY_CAP,
        Spread::AddUpTo {
            percent: RETRY_JITTER_PERCENT,
        },
        backoff::keyed(record_id, RETRY_JITTER_PERCENT),
    )
}

/// Runs the worker outside Lambda: the SQS adapter polls `queue_url` like Lambda's SQS event
/// source mapping and hands each batch to the worker. Until `stop`.
pub async fn poll_sqs(
    worker: &Worker,
    config: &aws_config::SdkConfig,
    queue_url: &str,
    stop: impl std::future::Future<Output = ()>,
) {
    SqsQueue::new(config, queue_url)
        .poll(|batch| worker.handle_sqs(batch), stop)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_told_apart_by_their_top_level_key_and_decoded_once() {
        let sqs = json!({"Records": [{"messageId": "m1", "body": "{}", "attributes": {}}]});
        match WorkerEvent::try_from(sqs) {
            Ok(WorkerEvent::Sqs(batch)) => {
                assert_eq!(batch.records.len(), 1);
                assert_eq!(batch.records[0].message_id.as_deref(), Some("m1"));
            }
            other => panic!("expected an SQS batch, got {other:?}"),
        }
        // `Records` decides even when `deliver` is there too.
        let both = json!({"Records": [], "deliver": {"request": 1}});
        assert!(matches!(
            WorkerEvent::try_from(both),
            Ok(WorkerEvent::Sqs(batch)) if batch.records.is_empty()
        ));
    }

    #[test]
    fn events_of_no_known_kind_are_unknown_and_known_kinds_of_the_wrong_shape_malformed() {
        for unknown in [
            json!({"hello": 1}),
            json!({}),
            json!(null),
            json!("Records"),
            json!(["Records", "deliver"]),
            json!([{"Records": []}]),
        ] {
            assert!(
                matches!(
                    WorkerEvent::try_from(unknown.clone()),
                    Err(WorkerError::UnknownEvent)
                ),
                "{unknown}"
            );
        }
        for malformed in [
            json!({"Records": null}),
            json!({"Records": {"messageId": "m1"}}),
            json!({"deliver": null}),
            json!({"deliver": {"request": 1}}),
        ] {
            assert!(
                matches!(
                    WorkerEvent::try_from(malformed.clone()),
                    Err(WorkerError::Malformed { .. })
                ),
                "{malformed}"
            );
        }
        // Which kind, and serde's reason without the values it quoted.
        let Err(WorkerError::Malformed { kind, reason }) = WorkerEvent::try_from(
            json!({"deliver": {"request": "wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQ="}}),
        ) else {
            panic!("expected a malformed deliver event");
        };
        assert_eq!(kind, EventKind::Deliver);
        assert!(!reason.contains("HBgL"), "{reason}");
        assert!(matches!(
            WorkerEvent::try_from(json!({"Records": 1})),
            Err(WorkerError::Malformed {
                kind: EventKind::Sqs,
                ..
            })
        ));
    }

    #[test]
    fn only_a_delivery_to_retry_is_retryable_and_encoding_keeps_serdes_error() {
        use std::error::Error as _;
        let later = WorkerError::DeliverLater {
            message_id: "wamid#0123456789ab".into(),
            reason: "InProgress".into(),
        };
        assert!(later.is_retryable());
        assert!(!WorkerError::UnknownEvent.is_retryable());
        let malformed = WorkerEvent::try_from(json!({"Records": null})).unwrap_err();
        assert!(!malformed.is_retryable());
        assert!(
            malformed
                .to_string()
                .starts_with("SQS batch event is malformed: "),
            "{malformed}"
        );
        assert!(malformed.source().is_none());
        let response = WorkerError::Response(serde::ser::Error::custom("key must be a string"));
        assert!(!response.is_retryable());
        assert!(
            response
                .source()
                .is_some_and(|s| s.downcast_ref::<serde_json::Error>().is_some())
        );
    }

    #[test]
    fn retries_back_off_exponentially_with_bounded_jitter_and_a_cap() {
        let first = retry_delay(RETRY_BASE, 1, "a");
        let second = retry_delay(RETRY_BASE, 2, "a");
        assert!(
            first >= RETRY_BASE && first <= RETRY_BASE * 5 / 4,
            "{first:?}"
        );
        assert!(
            second >= RETRY_BASE * 2 && second <= RETRY_BASE * 5 / 2,
            "{second:?}"
        );
        assert_eq!(retry_delay(RETRY_BASE, 40, "a"), RETRY_CAP);
        assert_eq!(
            retry_delay(RETRY_BASE, 3, "x"),
            retry_delay(RETRY_BASE, 3, "x")
        );
        // The jitter is whole percents of the wait: exact, never a float's rounding.
        for n in 0..100 {
            let delay = retry_delay(RETRY_BASE, 1, &format!("record-{n}"));
            let added = (delay - RETRY_BASE).as_nanos() * 100 / RETRY_BASE.as_nanos();
            assert_eq!(RETRY_BASE * (100 + added as u32) / 100, delay, "{n}");
        }
    }
}

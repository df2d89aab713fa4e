//! SQS FIFO adapter: MessageGroupId = sender (one user's messages run in order),
//! MessageDeduplicationId = message id (SQS drops redeliveries within its 5-minute window),
//! batched by 10, the SQS maximum.
//!
//! FIFO order is the order SQS accepts a group's messages in, so one sender's messages must
//! reach SQS in order: within a batch SQS keeps the entries' order, but two batches sent at
//! once land in either order. The jobs are grouped by sender before batching, and a batch that
//! continues the previous one's sender is sent only after that one was accepted; batches that
//! share no sender go in parallel.
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html>

use super::{JobQueue, QueueError};
use crate::BoxFuture;
use crate::error::BoxError;
use crate::queue::Job;
use crate::redact;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, SendMessageBatchRequestEntry,
};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

/// SendMessageBatch takes at most 10 entries.
const BATCH_MAX: usize = 10;
/// Longest error text kept from a failed send (every entry's SQS message, joined).
const MAX_FAILURE_CHARS: usize = 1000;
/// Longest SQS error code kept (SQS's are at most ~40 characters).
const MAX_CODE_CHARS: usize = 100;
/// The code of a failed call that got no answer from SQS.
const UNREACHABLE: &str = "unreachable";
/// SQS's largest visibility timeout (12 hours).
const MAX_VISIBILITY_SECS: u64 = 12 * 60 * 60;
/// Group and deduplication ids: at most 128 characters of ASCII letters, digits, punctuation.
const ID_MAX: usize = 128;
/// Long-poll wait of the local poller (the Lambda event source mapping uses 20 s).
const POLL_WAIT_SECS: i32 = 2;
/// Messages per local batch (the template's event source uses 10).
const POLL_BATCH: i32 = 10;
/// The local poller's pause after a failed receive, before it polls again.
const POLL_RETRY: Duration = Duration::from_secs(1);

/// A FIFO queue of jobs.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(config: &aws_config::SdkConfig, url: impl Into<String>) -> Self {
        Self {
            client: Client::new(config),
            url: url.into(),
        }
    }

    /// Polls the queue like Lambda's SQS event source mapping, outside Lambda: hands each
    /// batch, as the Lambda event, to `handle`, and deletes the messages it did not report
    /// failed (failed ones become visible again after the queue's visibility timeout, or when
    /// the handler rescheduled them, then go to the dead-letter queue). Until `stop`.
    pub async fn poll<F, Handled>(&self, mut handle: F, stop: impl Future<Output = ()>)
    where
        F: FnMut(SqsEvent) -> Handled,
        Handled: Future<Output = SqsBatchResponse>,
    {
        let region = self
            .client
            .config()
            .region()
            .map(|r| r.to_string())
            .unwrap_or_default();
        let queue_arn = format!(
            "arn:aws:sqs:{region}:local:{}",
            self.url.rsplit('/').next().unwrap_or_default()
        );
        tokio::pin!(stop);
        loop {
            let received = tokio::select! {
                _ = &mut stop => return,
                received = self
                    .client
                    .receive_message()
                    .queue_url(&self.url)
                    .max_number_of_messages(POLL_BATCH)
                    .wait_time_seconds(POLL_WAIT_SECS)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .send() => received,
            };
            let messages = match received {
                Ok(output) => output.messages().to_vec(),
                Err(error) => {
                    tracing::warn!(error = %DisplayErrorContext(&error), "polling the job queue failed; retrying");
                    tokio::time::sleep(POLL_RETRY).await;
                    continue;
                }
            };
            if messages.is_empty() {
                continue;
            }
            let event = lambda_event(&messages, &queue_arn, &region);
            let Ok(batch) = serde_json::from_value::<SqsEvent>(event) else {
                continue;
            };
            let response = handle(batch).await;
            let failed: HashSet<&str> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            let done: Vec<DeleteMessageBatchRequestEntry> = messages
                .iter()
                .filter(|m| !failed.contains(m.message_id().unwrap_or_default()))
                .enumerate()
                .filter_map(|(index, m)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(index.to_string())
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .build()
                        .ok()
                })
                .collect();
            if !done.is_empty()
                && let Err(error) = self
                    .client
                    .delete_message_batch()
                    .queue_url(&self.url)
                    .set_entries(Some(done))
                    .send()
                    .await
            {
                tracing::warn!(error = %DisplayErrorContext(&error), "could not delete handled jobs; they will be seen again and deduplicated");
            }
        }
    }

    /// Sends every job; succeeds only when SQS accepted them all. Each chain of batches (see
    /// [`chains`]) is sent batch after batch, stopping at the first failure so no later message
    /// of a sender is queued before an earlier one that failed; chains run in parallel.
    async fn send(&self, jobs: &[Job]) -> Result<(), QueueError> {
        let mut sends = tokio::task::JoinSet::new();
        for chain in chains(batch_entries(jobs)?) {
            let client = self.client.clone();
            let url = self.url.clone();
            sends.spawn(async move {
                let mut failures = Failures::default();
                for entries in chain {
                    let sent = client
                        .send_message_batch()
                        .queue_url(&url)
                        .set_entries(Some(entries))
                        .send()
                        .await;
                    match sent {
                        Ok(output) => {
                            for refused in output.failed() {
                                failures.refused(refused.code(), refused.message());
                            }
                        }
                        Err(error) => failures.call_failed(error),
                    }
                    if !failures.is_empty() {
                        break;
                    }
                }
                failures
            });
        }
        let mut failures = Failures::default();
        while let Some(joined) = sends.join_next().await {
            match joined {
                Ok(failed) => failures.merge(failed),
                // A panic's message may quote anything the task held: scrubbed with the rest.
                Err(error) => failures.other("task", format!("send task failed: {error}")),
            }
        }
        failures.into_result()
    }
}

/// What went wrong while sending jobs: counts, texts and the first unanswered call, made into
/// [`QueueError::NotSent`].
#[derive(Debug, Default)]
struct Failures {
    refused: usize,
    failed_calls: usize,
    /// SQS's error code of each failure, in order.
    codes: Vec<String>,
    /// Each failure's text, unscrubbed until the end (scrubbing cuts at a length).
    texts: Vec<String>,
    /// The first call that never got an answer: nothing of the jobs in it.
    unanswered: Option<BoxError>,
}

impl Failures {
    fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// An entry SQS refused in an accepted call.
    fn refused(&mut self, code: &str, message: Option<&str>) {
        self.refused += 1;
        self.codes.push(code.to_owned());
        self.texts
            .push(format!("{code} ({})", message.unwrap_or_default()));
    }

    /// A `SendMessageBatch` call that failed as a whole (`R`: the raw answer, `HttpResponse`).
    fn call_failed<R>(&mut self, error: SdkError<SendMessageBatchError, R>)
    where
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let code = error.code().unwrap_or(UNREACHABLE).to_owned();
        self.other(&code, format!("{code}: {}", DisplayErrorContext(&error)));
        // Only an error without SQS's answer in it is kept: the answer may quote what SQS
        // refused (a deduplication id is a message id, a group id a phone number).
        let unanswered = matches!(
            error,
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
        );
        if unanswered && self.unanswered.is_none() {
            self.unanswered = Some(Box::new(error));
        }
    }

    /// A call that failed for another reason (the sending task ended).
    fn other(&mut self, code: &str, text: String) {
        self.failed_calls += 1;
        self.codes.push(code.to_owned());
        self.texts.push(text);
    }

    fn merge(&mut self, other: Failures) {
        self.refused += other.refused;
        self.failed_calls += other.failed_calls;
        self.codes.extend(other.codes);
        self.texts.extend(other.texts);
        if self.unanswered.is_none() {
            self.unanswered = other.unanswered;
        }
    }

    fn into_result(self) -> Result<(), QueueError> {
        let Some(code) = self.codes.first() else {
            return Ok(());
        };
        Err(QueueError::NotSent {
            refused: self.refused,
            failed_calls: self.failed_calls,
            // SQS's codes are names (`AWS.SimpleQueueService.NonExistentQueue`), but foreign.
            code: redact::scrub_within(code, MAX_CODE_CHARS),
            // SQS may quote what it refused (a deduplication id is a wamid, a group id a number).
            detail: redact::scrub_within(&self.texts.join("; "), MAX_FAILURE_CHARS),
            source: self.unanswered,
        })
    }
}

/// Splits batches into chains that must be sent one batch after the other: a batch whose first
/// entry has the same FIFO group as the previous batch's last entry continues that sender, so
/// it joins that batch's chain. Since the jobs are grouped by sender ([`batch_entries`]), no
/// other batch shares a sender with another chain.
fn chains(
    batches: Vec<Vec<SendMessageBatchRequestEntry>>,
) -> Vec<Vec<Vec<SendMessageBatchRequestEntry>>> {
    let mut chains: Vec<Vec<Vec<SendMessageBatchRequestEntry>>> = Vec::new();
    for batch in batches {
        let continues = chains
            .last()
            .and_then(|chain| chain.last())
            .and_then(|previous| previous.last())
            .and_then(|last| last.message_group_id())
            .is_some_and(|group| batch.first().and_then(|e| e.message_group_id()) == Some(group));
        match chains.last_mut() {
            Some(chain) if continues => chain.push(batch),
            _ => chains.push(vec![batch]),
        }
    }
    chains
}

impl super::Redelivery for SqsQueue {
    fn redeliver_after<'a>(
        &'a self,
        receipt_handle: &'a str,
        delay: std::time::Duration,
    ) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            let seconds = i32::try_from(delay.as_secs().min(MAX_VISIBILITY_SECS)).unwrap_or(0);
            self.client
                .change_message_visibility()
                .queue_url(&self.url)
                .receipt_handle(receipt_handle)
                .visibility_timeout(seconds)
                .send()
                .await
                .map(|_| ())
                // Its answer may quote the receipt handle (an opaque SQS token), never a job.
                .map_err(|error| QueueError::Redeliver {
                    source: Box::new(error),
                })
        })
    }
}

impl JobQueue for SqsQueue {
    fn enqueue<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(self.send(jobs))
    }
}

/// The `SendMessageBatch` entries for `jobs`, 10 to a batch: the JSON job bodies with their
/// FIFO group and deduplication ids, grouped by sender (each sender's jobs in their order, the
/// senders in order of first appearance) so that one sender's jobs fill consecutive batches.
/// Pure, so the benchmarks measure it without a network.
pub fn batch_entries(jobs: &[Job]) -> Result<Vec<Vec<SendMessageBatchRequestEntry>>, QueueError> {
    let grouped: Vec<&Job> = crate::pipeline::by_sender(jobs, |job| job.group())
        .into_iter()
        .flatten()
        .collect();
    // Loops rather than `collect::<Result<_, _>>()`, which cannot size its vectors up front.
    let mut batches = Vec::with_capacity(jobs.len().div_ceil(BATCH_MAX));
    for chunk in grouped.chunks(BATCH_MAX) {
        let mut entries = Vec::with_capacity(chunk.len());
        for (index, job) in chunk.iter().enumerate() {
            entries.push(entry(index, job)?);
        }
        batches.push(entries);
    }
    Ok(batches)
}

fn entry(index: usize, job: &Job) -> Result<SendMessageBatchRequestEntry, QueueError> {
    let body = job_body(job).map_err(QueueError::Encode)?;
    SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(body)
        .message_group_id(fifo_id(&job.group()))
        .message_deduplication_id(deduplication_id(&job.deduplication()))
        .build()
        .map_err(|e| QueueError::Entry(Box::new(e)))
}

/// Largest serialization buffer kept between calls (a job is a few KB; a 4096-character text
/// is at most ~25 KB of JSON).
const SCRATCH_KEEP: usize = 64 * 1024;

thread_local! {
    /// Where job bodies are serialized before being copied out at their exact length: a body
    /// serialized straight into a `String` grows by doubling (several reallocations and up to
    /// twice its length allocated, per job).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `serde_json::to_string(job)`, allocating only the body's own length.
fn job_body(job: &Job) -> Result<String, serde_json::Error> {
    SCRATCH.with(|scratch| {
        let Ok(mut buffer) = scratch.try_borrow_mut() else {
            return serde_json::to_string(job);
        };
        buffer.clear();
        let body = match serde_json::to_writer(&mut *buffer, job) {
            // serde_json writes UTF-8 only: the check cannot fail (and is cheap next to the
            // serialization).
            Ok(()) => std::str::from_utf8(&buffer)
                .map(str::to_owned)
                .map_err(serde::ser::Error::custom),
            Err(error) => Err(error),
        };
        if buffer.capacity() > SCRATCH_KEEP {
            *buffer = Vec::new();
        }
        body
    })
}

/// The FIFO deduplication id of a message: the message id itself when SQS accepts it,
/// else its SHA-256 (wamids are ~60 ASCII characters, so this is a safety net).
fn deduplication_id(message_id: &str) -> String {
    fifo_id(message_id)
}

fn fifo_id(id: &str) -> String {
    let valid = !id.is_empty() && id.len() <= ID_MAX && id.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        id.to_owned()
    } else {
        hex::encode(Sha256::digest(id.as_bytes()))
    }
}

/// The Lambda SQS event for received messages, exactly as the event source mapping builds it:
/// lets the worker run outside Lambda (see [`SqsQueue::poll`]) and tests drive it.
pub fn lambda_event(
    messages: &[aws_sdk_sqs::types::Message],
    queue_arn: &str,
    region: &str,
) -> serde_json::Value {
    let records: Vec<serde_json::Value> = messages
        .iter()
        .map(|message| {
            let attributes: serde_json::Map<String, serde_json::Value> = message
                .attributes()
                .map(|attributes| {
                    attributes
                        .iter()
                        .map(|(name, value)| (name.as_str().to_owned(), value.clone().into()))
                        .collect()
                })
                .unwrap_or_default();
            serde_json::json!({
                "messageId": message.message_id(),
                "receiptHandle": message.receipt_handle(),
                "body": message.body(),
                "attributes": attributes,
                "messageAttributes": {},
                "md5OfBody": message.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            })
        })
        .collect();
    serde_json::json!({ "Records": records })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::error::{ConnectorError, ErrorMetadata};
    use std::error::Error as _;

    const WAMID: &str = "wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQzQUI1RjE0QTgwRjk2RkE1NjlDNgA=";

    #[test]
    fn refused_entries_are_counted_and_their_text_scrubbed() {
        let mut failures = Failures::default();
        failures.refused(
            "InvalidParameterValue",
            Some(&format!(
                "Value {WAMID} for parameter MessageDeduplicationId is invalid"
            )),
        );
        failures.refused("InternalError", None);
        let Err(error) = failures.into_result() else {
            panic!("refusals are an error");
        };
        assert!(error.is_retryable());
        let QueueError::NotSent {
            refused,
            failed_calls,
            code,
            detail,
            source,
        } = &error
        else {
            panic!("expected NotSent, got {error:?}");
        };
        assert_eq!((*refused, *failed_calls), (2, 0));
        assert_eq!(code, "InvalidParameterValue");
        assert!(
            detail.starts_with("InvalidParameterValue (Value wamid#"),
            "{detail}"
        );
        assert!(detail.ends_with("; InternalError ()"), "{detail}");
        assert!(!error.to_string().contains("HBgL"), "{error}");
        assert!(source.is_none());
        assert!(Failures::default().into_result().is_ok());
    }

    #[test]
    fn an_unanswered_call_is_kept_as_the_source_and_an_answer_is_not() {
        let unanswered = SdkError::<SendMessageBatchError, String>::dispatch_failure(
            ConnectorError::io("connection refused".into()),
        );
        // SQS's answer quotes the group id it refused: a phone number.
        let answered = SdkError::service_error(
            SendMessageBatchError::generic(
                ErrorMetadata::builder()
                    .code("InvalidParameterValue")
                    .message("Value 14155551234 for parameter MessageGroupId is invalid")
                    .build(),
            ),
            "raw answer naming 14155551234".to_owned(),
        );
        let mut first = Failures::default();
        first.call_failed(answered);
        let mut second = Failures::default();
        second.call_failed(unanswered);
        first.merge(second);
        let Err(error) = first.into_result() else {
            panic!("failed calls are an error");
        };
        let QueueError::NotSent {
            refused,
            failed_calls,
            code,
            ..
        } = &error
        else {
            panic!("expected NotSent, got {error:?}");
        };
        assert_eq!((*refused, *failed_calls), (0, 2));
        assert_eq!(code, "InvalidParameterValue");
        let text = error.to_string();
        assert!(!text.contains("14155551234"), "{text}");
        assert!(text.contains("unreachable: dispatch failure"), "{text}");
        let source = error.source().expect("the unanswered call");
        let sdk = source
            .downcast_ref::<SdkError<SendMessageBatchError, String>>()
            .expect("the SDK's error, typed");
        assert!(matches!(sdk, SdkError::DispatchFailure(_)));
    }

    #[test]
    fn an_answered_call_alone_leaves_no_source() {
        let mut failures = Failures::default();
        failures.call_failed(SdkError::<SendMessageBatchError, String>::service_error(
            SendMessageBatchError::generic(ErrorMetadata::builder().code("AccessDenied").build()),
            String::new(),
        ));
        let error = failures.into_result().unwrap_err();
        assert!(error.source().is_none(), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with("job queue failed: AccessDenied: ")
        );
    }

    #[test]
    fn encoding_and_entry_errors_keep_their_typed_source() {
        let encode = QueueError::Encode(serde::ser::Error::custom("key must be a string"));
        assert_eq!(
            encode.to_string(),
            "job queue failed: job not encodable: key must be a string"
        );
        assert!(
            encode
                .source()
                .is_some_and(|s| s.downcast_ref::<serde_json::Error>().is_some())
        );
        assert!(!encode.is_retryable());
        let built = SendMessageBatchRequestEntry::builder()
            .message_body("{}")
            .build()
            .map_err(|e| QueueError::Entry(Box::new(e)));
        let Err(entry) = built else {
            panic!("an entry without an id is refused");
        };
        assert!(
            entry
                .to_string()
                .starts_with("job queue failed: job entry invalid: ")
        );
        assert!(
            entry
                .source()
                .is_some_and(|s| s.downcast_ref::<aws_sdk_sqs::error::BuildError>().is_some()),
            "{entry:?}"
        );
        assert!(!entry.is_retryable());
    }

    #[test]
    fn message_ids_are_used_as_deduplication_ids_when_valid() {
        let id = "wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQzQUI1RjE0QTgwRjk2RkE1NjlDNgA=";
        assert_eq!(deduplication_id(id), id);
    }

    #[test]
    fn overlong_or_odd_ids_are_hashed_deterministically() {
        let long = "x".repeat(200);
        assert_eq!(deduplication_id(&long).len(), 64);
        assert_eq!(deduplication_id(&long), deduplication_id(&long));
        assert_ne!(deduplication_id("a b"), "a b");
        assert_eq!(fifo_id(""), hex::encode(Sha256::digest(b"")));
    }

    fn job(index: usize, body: &str) -> Job {
        use crate::domain::{
            Channel, InboundMessage, MessageId, MessageKind, PhoneNumberId, Sender,
        };
        Job::new(InboundMessage {
            id: MessageId(format!("wamid.{index}")),
            timestamp: 1_795_514_400,
            sender: Sender {
                phone: Some(format!("1415555{:04}", index % 3)),
                bsuid: None,
                display_name: Some("Ana \"Ops\" Lima".into()),
            },
            channel: Channel {
                phone_number_id: PhoneNumberId("106540352242922".into()),
                display_phone_number: None,
                business_account_id: Some("102290129340398".into()),
            },
            reply_to: None,
            kind: MessageKind::Text { body: body.into() },
        })
    }

    #[test]
    fn entries_carry_the_serde_json_of_each_job_ten_to_a_batch() {
        // Escapes, non-ASCII, a body longer than the kept buffer: still exactly serde_json's.
        let bodies = [
            "pods crashing\nin \"prod\" 😀",
            "",
            &"x\u{1}".repeat(SCRATCH_KEEP),
        ];
        let jobs: Vec<Job> = (0..25).map(|i| job(i, bodies[i % bodies.len()])).collect();
        let batches = batch_entries(&jobs).expect("valid entries");
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [10, 10, 5]
        );
        // Grouped by sender (three of them, interleaved in `jobs`), each in its order.
        let grouped: Vec<Job> = (0..3)
            .flat_map(|sender| jobs.iter().skip(sender).step_by(3).cloned())
            .collect();
        for (batch, chunk) in batches.iter().zip(grouped.chunks(BATCH_MAX)) {
            for (index, (entry, job)) in batch.iter().zip(chunk).enumerate() {
                assert_eq!(entry.id(), index.to_string());
                let expected = serde_json::to_string(job).expect("serializable");
                assert_eq!(entry.message_body(), expected);
                assert_eq!(
                    entry.message_group_id(),
                    Some(job.message().unwrap().sender.id())
                );
                assert_eq!(
                    entry.message_deduplication_id(),
                    Some(job.message().unwrap().id.as_str())
                );
            }
        }
        assert!(batch_entries(&[]).expect("no jobs").is_empty());
    }

    /// The message ids of each chain's batches, in sending order.
    fn chain_ids(jobs: &[Job]) -> Vec<Vec<Vec<String>>> {
        chains(batch_entries(jobs).expect("valid entries"))
            .iter()
            .map(|chain| {
                chain
                    .iter()
                    .map(|batch| {
                        batch
                            .iter()
                            .map(|e| e.message_deduplication_id().unwrap_or_default().to_owned())
                            .collect()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_senders_later_batch_waits_for_its_earlier_one_and_other_senders_do_not() {
        // 3 senders (index % 3), 12 messages each, interleaved: 36 jobs, 4 batches.
        let jobs: Vec<Job> = (0..36).map(|i| job(i, "x")).collect();
        let chains = chain_ids(&jobs);
        let flat: Vec<&String> = chains.iter().flatten().flatten().collect();
        let expected: Vec<String> = (0..3)
            .flat_map(|sender| (0..12).map(move |n| format!("wamid.{}", n * 3 + sender)))
            .collect();
        assert_eq!(flat, expected.iter().collect::<Vec<_>>());
        // Every batch boundary falls inside a sender's run: one chain, sent in order.
        assert_eq!(chains.len(), 1);
        assert_eq!(chains[0].len(), 4);

        // Ten messages per sender: the batches share no sender and go in parallel.
        let jobs: Vec<Job> = (0..30).map(|i| job(i, "x")).collect();
        let chains = chain_ids(&jobs);
        assert_eq!(chains.len(), 3);
        for chain in &chains {
            assert_eq!(chain.len(), 1);
        }
    }
}

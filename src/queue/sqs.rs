//! SQS FIFO adapter: MessageGroupId = sender (one user's messages run in order),
//! MessageDeduplicationId = message id (SQS drops redeliveries within its 5-minute window),
//! batched by 10, the SQS maximum.
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SendMessageBatch.html>

use super::{JobQueue, QueueError};
use crate::BoxFuture;
use crate::job::Job;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use sha2::{Digest, Sha256};

/// SendMessageBatch takes at most 10 entries.
const BATCH_MAX: usize = 10;
/// SQS's largest visibility timeout (12 hours).
const MAX_VISIBILITY_SECS: u64 = 12 * 60 * 60;
/// Group and deduplication ids: at most 128 characters of ASCII letters, digits, punctuation.
const ID_MAX: usize = 128;

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

    async fn send(&self, jobs: &[Job]) -> Result<(), QueueError> {
        let mut batches = tokio::task::JoinSet::new();
        for entries in batch_entries(jobs)? {
            let request = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries));
            batches.spawn(async move { request.send().await });
        }
        let mut failures = Vec::new();
        while let Some(joined) = batches.join_next().await {
            match joined {
                Ok(Ok(output)) => failures.extend(
                    output
                        .failed()
                        .iter()
                        .map(|f| format!("{} ({})", f.code(), f.message().unwrap_or_default())),
                ),
                Ok(Err(error)) => failures.push(format!(
                    "{}: {}",
                    error.code().unwrap_or("unreachable"),
                    DisplayErrorContext(&error)
                )),
                Err(error) => failures.push(format!("send task failed: {error}")),
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(QueueError(failures.join("; ")))
        }
    }
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
                .map_err(|error| QueueError(format!("{}", DisplayErrorContext(&error))))
        })
    }
}

impl JobQueue for SqsQueue {
    fn enqueue<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(self.send(jobs))
    }
}

/// The `SendMessageBatch` entries for `jobs`, 10 to a batch: the JSON job bodies with their
/// FIFO group and deduplication ids. Pure, so the benchmarks measure it without a network.
pub fn batch_entries(jobs: &[Job]) -> Result<Vec<Vec<SendMessageBatchRequestEntry>>, QueueError> {
    jobs.chunks(BATCH_MAX)
        .map(|chunk| {
            chunk
                .iter()
                .enumerate()
                .map(|(index, job)| entry(index, job))
                .collect()
        })
        .collect()
}

fn entry(index: usize, job: &Job) -> Result<SendMessageBatchRequestEntry, QueueError> {
    let body =
        serde_json::to_string(job).map_err(|e| QueueError(format!("job not encodable: {e}")))?;
    SendMessageBatchRequestEntry::builder()
        .id(index.to_string())
        .message_body(body)
        .message_group_id(fifo_id(job.message.sender.id()))
        .message_deduplication_id(deduplication_id(job.message.id.as_str()))
        .build()
        .map_err(|e| QueueError(format!("job entry invalid: {e}")))
}

/// The FIFO deduplication id of a message: the message id itself when SQS accepts it,
/// else its SHA-256 (wamids are ~60 ASCII characters, so this is a safety net).
pub fn deduplication_id(message_id: &str) -> String {
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
/// lets the worker run outside Lambda (see [`crate::worker::poll_sqs`]) and tests drive it.
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
}

//! The queue job: what the webhook sends the worker, one piece of work each. The same body
//! shape carries the escalation timers on the timer queue.

use crate::alerts::AlertBatch;
use crate::alerts::paging::tapped_id;
use crate::approvals::TaskApproval;
use crate::approvals::engine::tapped_id as approval_tap;
use crate::domain::InboundMessage;
use crate::timers::Timer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Job format version, so a worker can refuse jobs it does not understand.
pub const JOB_VERSION: u32 = 1;

/// One queued piece of work: everything the worker needs, no re-parsing of the webhook.
/// On the wire `{"version": 1, "message": {...}}` (or `"alerts"`, `"failed"`, `"timer"`,
/// `"approval"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub version: u32,
    #[serde(flatten)]
    pub work: Work,
}

/// What a job asks the worker to do.
// Messages are nearly every job: boxing them would cost an allocation per message on the
// acknowledgement path, to save a few hundred bytes on the rare paging jobs.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Work {
    /// A message from WhatsApp: the agent answers it.
    Message(InboundMessage),
    /// A notification from `POST /alerts`: page, or resolve.
    Alerts(AlertBatch),
    /// A delivery status `failed` for a message we sent: when it is a page, escalate at once.
    Failed(FailedDelivery),
    /// A timer: paging's escalation and paced pages, an approval's expiry (timer queue only).
    Timer(Timer),
    /// An approval a Step Functions task asks for (`waitForTaskToken`): put on the job queue
    /// by the state machine itself.
    Approval(TaskApproval),
}

/// A `failed` delivery status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedDelivery {
    /// The wamid of the message that failed (it encodes the recipient: never logged).
    pub sent_id: String,
    /// Meta's error code, when it gave one.
    pub code: Option<String>,
}

impl Job {
    /// The job for one message.
    pub fn new(message: InboundMessage) -> Self {
        Self::of(Work::Message(message))
    }

    pub fn of(work: Work) -> Self {
        Self {
            version: JOB_VERSION,
            work,
        }
    }

    /// The message, when the job is one.
    pub fn message(&self) -> Option<&InboundMessage> {
        match &self.work {
            Work::Message(message) => Some(message),
            _ => None,
        }
    }

    /// The FIFO message group: a sender's messages in order; a tap on a page or on an approval
    /// request in its own group (never behind that person's agent calls); one group per alert group (a `resolved` after
    /// its `firing`); delivery failures together.
    pub fn group(&self) -> String {
        match &self.work {
            Work::Message(message) if tapped_id(&message.kind).is_some() => {
                format!("page-tap:{}", message.sender.id())
            }
            Work::Message(message) if approval_tap(&message.kind).is_some() => {
                format!("approval-tap:{}", message.sender.id())
            }
            Work::Message(message) => message.sender.id().to_owned(),
            Work::Alerts(batch) => {
                let group = batch
                    .group_key
                    .as_deref()
                    .or(batch.alerts.first().map(|alert| alert.key.as_str()))
                    .unwrap_or_default();
                format!("alerts:{}", short_hash(group))
            }
            Work::Failed(_) => "delivery-failed".to_owned(),
            Work::Timer(_) => "timer".to_owned(),
            Work::Approval(_) => "approvals".to_owned(),
        }
    }

    /// The FIFO deduplication id: a message's own id (Meta's retries are one job); every
    /// notification its own job (Alertmanager's repeats are handled as repeats); a status by
    /// its message.
    pub fn deduplication(&self) -> String {
        match &self.work {
            Work::Message(message) => message.id.as_str().to_owned(),
            Work::Alerts(_) => crate::sessions::commands::new_nonce(),
            Work::Failed(failed) => format!("failed:{}", short_hash(&failed.sent_id)),
            Work::Timer(timer) => short_hash(&serde_json::to_string(timer).unwrap_or_default()),
            Work::Approval(task) => format!("approval:{}", short_hash(&task.task_token)),
        }
    }
}

fn short_hash(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

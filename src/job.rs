//! What travels between the parts: the queue job the webhook sends the worker, and the
//! "deliver" event a Step Functions state machine sends the worker with the agent's reply.

use crate::agent::{AgentReply, AgentRequest};
use crate::message::{InboundMessage, MessageId, PhoneNumberId, Sender};
use serde::{Deserialize, Serialize};

/// Job format version, so a worker can refuse jobs it does not understand.
pub const JOB_VERSION: u32 = 1;

/// One queued message: everything the worker needs, no re-parsing of the webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub version: u32,
    pub message: InboundMessage,
}

impl Job {
    pub fn new(message: InboundMessage) -> Self {
        Self {
            version: JOB_VERSION,
            message,
        }
    }
}

/// `{"deliver": {...}}`: sent by the state machine's last state (or its Catch) to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliverEvent {
    pub deliver: Deliver,
}

/// The agent request the execution started with, and its outcome: a reply, or an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deliver {
    pub request: AgentRequest,
    #[serde(default)]
    pub reply: Option<AgentReply>,
    /// Set by the state machine's Catch: the agent failed and the user gets the ❌ message.
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

impl Deliver {
    /// The message being answered.
    pub fn message_id(&self) -> MessageId {
        MessageId(self.request.event.id.clone())
    }

    /// The business number to answer from.
    pub fn phone_number_id(&self) -> PhoneNumberId {
        PhoneNumberId(self.request.event.channel.phone_number_id.clone())
    }

    /// Who to answer.
    pub fn sender(&self) -> Sender {
        let user = &self.request.event.user;
        Sender {
            phone: user.phone.clone(),
            bsuid: user.bsuid.clone(),
            display_name: user.display_name.clone(),
        }
    }
}

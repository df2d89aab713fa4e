//! The "deliver" event: how a Step Functions state machine started in `async` mode hands the
//! agent's outcome (a reply or an error) to the worker, which sends it to WhatsApp.

use super::{AgentReply, AgentRequest};
use crate::domain::{MessageId, PhoneNumberId, Sender};
use serde::{Deserialize, Serialize};

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

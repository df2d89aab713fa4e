//! One message's journey, the same whichever way it was dispatched: claim its id → mark it read
//! with the typing indicator → ask the agent → format the reply → send it through the Graph API.

use crate::agent::{Agent, AgentRequest};
use crate::graph::{Messenger, Recipient};
use crate::idempotency::{Claim, IdempotencyStore};
use crate::message::InboundMessage;
use crate::reply::{agent_failed, format_reply};
use std::sync::Arc;
use std::time::Instant;

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The agent answered and every message of the answer was sent.
    Replied { messages: usize },
    /// The agent chose not to answer.
    NoReply,
    /// The agent failed; the user got the short ❌ message.
    AgentFailed,
    /// This message id was already handled (a redelivery): nothing was done.
    Duplicate,
    /// The sender has no address to answer at.
    Undeliverable,
    /// Sending part of the answer failed after `sent` messages went out (logged).
    SendFailed { sent: usize },
    /// The idempotency store failed before anything was done: safe to retry the whole message.
    Retry,
}

/// The ports one message needs; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    pub agent: Arc<dyn Agent>,
    pub messenger: Arc<dyn Messenger>,
    pub idempotency: Arc<dyn IdempotencyStore>,
}

impl Pipeline {
    /// Handles one message end to end. Never panics on bad input; every failure is logged.
    pub async fn handle(&self, message: &InboundMessage) -> Outcome {
        let started = Instant::now();
        let id = &message.id;
        let kind = message.kind.type_name();
        match self.idempotency.claim(id).await {
            Ok(Claim::Acquired) => {}
            Ok(Claim::Duplicate) => {
                tracing::info!(message_id = %id, kind, "duplicate delivery: already handled, skipped");
                return Outcome::Duplicate;
            }
            Err(error) => {
                tracing::error!(message_id = %id, %error, "idempotency claim failed: not handling the message now");
                return Outcome::Retry;
            }
        }
        let outcome = self.answer(message).await;
        if let Err(error) = self.idempotency.complete(id).await {
            tracing::error!(message_id = %id, %error, "could not record the message as handled");
        }
        tracing::info!(
            message_id = %id,
            kind,
            outcome = ?outcome,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "message handled"
        );
        outcome
    }

    async fn answer(&self, message: &InboundMessage) -> Outcome {
        let id = &message.id;
        let from = &message.channel.phone_number_id;
        let Some(to) = Recipient::of(&message.sender) else {
            tracing::error!(message_id = %id, "sender has neither a phone number nor a BSUID: cannot answer");
            return Outcome::Undeliverable;
        };
        if let Err(error) = self.messenger.mark_read(from, id, true).await {
            tracing::warn!(message_id = %id, %error, "could not mark the message read; answering anyway");
        }

        let request = AgentRequest::from_message(message);
        let asked = Instant::now();
        let (messages, agent_failed_now) = match self.agent.ask(&request).await {
            Ok(Some(reply)) => (format_reply(&reply), false),
            Ok(None) => (Vec::new(), false),
            Err(error) => {
                tracing::error!(
                    message_id = %id,
                    %error,
                    retryable = error.is_retryable(),
                    elapsed_ms = asked.elapsed().as_millis() as u64,
                    "agent failed; telling the user"
                );
                (vec![agent_failed()], true)
            }
        };
        tracing::info!(
            message_id = %id,
            agent_ms = asked.elapsed().as_millis() as u64,
            parts = messages.len(),
            "agent answered"
        );

        let mut sent = 0;
        for (index, outgoing) in messages.iter().enumerate() {
            // Quote the user's message on the first part so parallel questions stay readable.
            let context = (index == 0).then_some(id);
            match self.messenger.send(from, &to, outgoing, context).await {
                Ok(sent_id) => {
                    sent += 1;
                    tracing::debug!(message_id = %id, sent_id = %sent_id, kind = outgoing.type_name(), "reply part sent");
                }
                Err(error) => {
                    tracing::error!(
                        message_id = %id,
                        %error,
                        part = index + 1,
                        of = messages.len(),
                        to = %crate::sender::mask(to.as_str()),
                        "sending the reply failed"
                    );
                    return Outcome::SendFailed { sent };
                }
            }
        }
        match (agent_failed_now, sent) {
            (true, _) => Outcome::AgentFailed,
            (false, 0) => Outcome::NoReply,
            (false, messages) => Outcome::Replied { messages },
        }
    }
}

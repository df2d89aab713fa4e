//! One message's journey, the same whichever way it was dispatched: claim its id (a lease) →
//! mark it read with the typing indicator → ask the agent → format the reply → send it through
//! the Graph API → mark it completed. Also the second half of the Step Functions async path:
//! delivering a reply that arrives later.

use crate::agent::{Agent, AgentError, AgentRequest};
use crate::graph::{GraphError, Messenger, OutgoingMessage, Recipient};
use crate::idempotency::{Claim, IdempotencyStore};
use crate::job::Deliver;
use crate::message::{InboundMessage, MessageId, PhoneNumberId};
use crate::reply::{agent_failed, format_reply};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Default claim lease: longer than any single attempt (agent timeout plus sending).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(300);

/// Whether a transient failure may still be retried later (by SQS or Step Functions), or
/// this is the last chance and the user must get the ❌ message now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Retryable,
    Last,
}

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The agent answered and every message of the answer was sent.
    Replied { messages: usize },
    /// The agent chose not to answer now (or, with Step Functions async, will deliver later).
    NoReply,
    /// The agent failed and the user got the short ❌ message; `retryable` tells whether the
    /// failure was transient (the job then goes to the dead-letter queue).
    AgentFailed { retryable: bool },
    /// Already handled: nothing was done.
    Duplicate,
    /// Someone else holds a live claim on it: try again later.
    InProgress,
    /// The sender has no address to answer at.
    Undeliverable,
    /// Sending failed after `sent` messages went out (logged).
    SendFailed { sent: usize },
    /// Nothing was sent and the failure is transient: the claim was released; retry later.
    Retry { reason: String },
}

impl Outcome {
    /// Whether the delivery should be retried (SQS: report the item failed).
    pub fn should_retry(&self) -> bool {
        matches!(self, Self::InProgress | Self::Retry { .. })
    }

    /// Whether the last attempt failed for a transient reason: worth keeping in a dead-letter
    /// queue for the operator.
    pub fn gave_up(&self) -> bool {
        matches!(
            self,
            Self::AgentFailed { retryable: true } | Self::SendFailed { sent: 0 }
        )
    }
}

/// The agent failed and the user is being sent the ❌ message.
#[derive(Debug, Clone, Copy)]
struct AgentFailure {
    /// Whether the failure was transient (the job then goes to the dead-letter queue).
    retryable: bool,
}

/// The ports one message needs; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    pub agent: Arc<dyn Agent>,
    pub messenger: Arc<dyn Messenger>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// How long a claim holds before a redelivery may take over (crash recovery).
    pub lease: Duration,
}

impl Pipeline {
    /// Handles one message end to end. Never panics on bad input; every failure is logged.
    pub async fn handle(&self, message: &InboundMessage, attempt: Attempt) -> Outcome {
        let started = Instant::now();
        let id = &message.id;
        let kind = message.kind.type_name();
        if let Some(early) = self.claim(id).await {
            return early;
        }
        let outcome = self.answer(message, attempt).await;
        self.settle(id, &outcome).await;
        tracing::info!(
            message_id = %id,
            kind,
            outcome = ?outcome,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "message handled"
        );
        outcome
    }

    /// Sends a reply (or the ❌ message) that a Step Functions execution delivers later.
    /// Idempotent: a second delivery of the same message's reply sends nothing.
    pub async fn deliver(&self, deliver: &Deliver, attempt: Attempt) -> Outcome {
        let message_id = deliver.message_id();
        // The id as sent (`Display` is the log form): the key must stay what it always was.
        let key = MessageId(format!("deliver:{}", message_id.as_str()));
        if let Some(early) = self.claim(&key).await {
            return early;
        }
        let outcome = match Recipient::of(&deliver.sender()) {
            None => {
                tracing::error!(message_id = %message_id, "deliver event has no recipient: cannot answer");
                Outcome::Undeliverable
            }
            Some(to) => {
                let (messages, failure) = match (&deliver.error, &deliver.reply) {
                    (Some(error), _) => {
                        tracing::error!(message_id = %message_id, error = %error, "state machine reports the agent failed; telling the user");
                        // The state machine does not say whether it was transient: counted as final.
                        (
                            vec![agent_failed()],
                            Some(AgentFailure { retryable: false }),
                        )
                    }
                    (None, Some(reply)) => (format_reply(reply), None),
                    (None, None) => (Vec::new(), None),
                };
                self.send_outcome(
                    &deliver.phone_number_id(),
                    &to,
                    &messages,
                    &message_id,
                    attempt,
                    failure,
                )
                .await
            }
        };
        self.settle(&key, &outcome).await;
        tracing::info!(message_id = %message_id, outcome = ?outcome, "reply delivered");
        outcome
    }

    /// Claims `id`; `Some(outcome)` when the caller must stop here.
    async fn claim(&self, id: &MessageId) -> Option<Outcome> {
        match self.idempotency.claim(id, self.lease).await {
            Ok(Claim::Acquired) => None,
            Ok(Claim::Completed) => {
                tracing::info!(message_id = %id, "duplicate delivery: already handled, skipped");
                Some(Outcome::Duplicate)
            }
            Ok(Claim::InProgress) => {
                tracing::info!(message_id = %id, "being handled elsewhere right now: retry later");
                Some(Outcome::InProgress)
            }
            Err(error) => {
                tracing::error!(message_id = %id, %error, "idempotency claim failed: not handling the message now");
                Some(Outcome::Retry {
                    reason: error.to_string(),
                })
            }
        }
    }

    /// Completes the claim, or releases it when the message is to be retried.
    async fn settle(&self, id: &MessageId, outcome: &Outcome) {
        let settled = if outcome.should_retry() {
            self.idempotency.release(id).await
        } else {
            self.idempotency.complete(id).await
        };
        if let Err(error) = settled {
            tracing::error!(message_id = %id, %error, "could not record the message's state");
        }
    }

    async fn answer(&self, message: &InboundMessage, attempt: Attempt) -> Outcome {
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
        let answer = self.agent.ask(&request).await;
        let agent_ms = asked.elapsed().as_millis() as u64;
        let messages = match answer {
            Ok(Some(reply)) => format_reply(&reply),
            Ok(None) => Vec::new(),
            Err(error) if error.is_retryable() && attempt == Attempt::Retryable => {
                tracing::warn!(message_id = %id, %error, agent_ms, "agent failed transiently; will retry");
                return Outcome::Retry {
                    reason: error.to_string(),
                };
            }
            Err(error) => {
                log_agent_failure(id, &error, agent_ms);
                let failure = AgentFailure {
                    retryable: error.is_retryable(),
                };
                return self
                    .send_outcome(
                        from,
                        &to,
                        &[agent_failed()],
                        id,
                        Attempt::Last,
                        Some(failure),
                    )
                    .await;
            }
        };
        tracing::info!(message_id = %id, agent_ms, parts = messages.len(), "agent answered");
        self.send_outcome(from, &to, &messages, id, attempt, None)
            .await
    }

    /// Sends `messages` in order, the first quoting the user's message, and says how it went.
    async fn send_outcome(
        &self,
        from: &PhoneNumberId,
        to: &Recipient,
        messages: &[OutgoingMessage],
        quote: &MessageId,
        attempt: Attempt,
        agent_failure: Option<AgentFailure>,
    ) -> Outcome {
        match (
            self.send_all(from, to, messages, quote).await,
            agent_failure,
        ) {
            (Ok(_), Some(AgentFailure { retryable })) => Outcome::AgentFailed { retryable },
            (Ok(0), None) => Outcome::NoReply,
            (Ok(sent), None) => Outcome::Replied { messages: sent },
            (Err((0, error)), _) if error.is_retryable() && attempt == Attempt::Retryable => {
                Outcome::Retry {
                    reason: error.to_string(),
                }
            }
            (Err((sent, _)), _) => Outcome::SendFailed { sent },
        }
    }

    async fn send_all(
        &self,
        from: &PhoneNumberId,
        to: &Recipient,
        messages: &[OutgoingMessage],
        quote: &MessageId,
    ) -> Result<usize, (usize, GraphError)> {
        for (index, outgoing) in messages.iter().enumerate() {
            // Quote the user's message on the first part so parallel questions stay readable.
            let context = (index == 0).then_some(quote);
            if let Err(error) = self.messenger.send(from, to, outgoing, context).await {
                tracing::error!(
                    message_id = %quote,
                    %error,
                    retryable = error.is_retryable(),
                    part = index + 1,
                    of = messages.len(),
                    to = %crate::sender::mask(to.as_str()),
                    "sending the reply failed"
                );
                return Err((index, error));
            }
        }
        Ok(messages.len())
    }
}

/// Groups `items` by sender, keeping the order of first appearance and, within a sender, the
/// order of the items: what lets one sender's messages run in order while senders run
/// concurrently (inline dispatch and the worker's FIFO batches).
pub fn by_sender<T, K: PartialEq>(
    items: impl IntoIterator<Item = T>,
    sender: impl Fn(&T) -> K,
) -> Vec<Vec<T>> {
    let mut groups: Vec<(K, Vec<T>)> = Vec::new();
    for item in items {
        let key = sender(&item);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push(item),
            None => groups.push((key, vec![item])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

fn log_agent_failure(id: &MessageId, error: &AgentError, agent_ms: u64) {
    tracing::error!(
        message_id = %id,
        %error,
        retryable = error.is_retryable(),
        agent_ms,
        "agent failed; telling the user"
    );
}

#[cfg(test)]
mod tests {
    use super::by_sender;

    #[test]
    fn groups_by_sender_in_order_of_first_appearance() {
        let items = [("john", 1), ("ana", 2), ("john", 3), ("eve", 4), ("ana", 5)];
        let groups = by_sender(items, |(sender, _)| *sender);
        assert_eq!(
            groups,
            vec![
                vec![("john", 1), ("john", 3)],
                vec![("ana", 2), ("ana", 5)],
                vec![("eve", 4)]
            ]
        );
    }
}

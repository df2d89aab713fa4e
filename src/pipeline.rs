//! One message's journey, the same whichever way it was dispatched: claim its id (a lease) →
//! mark it read with the typing indicator → ask the agent → format the reply → send it through
//! the Graph API → mark it completed. Also the second half of the Step Functions async path:
//! delivering a reply that arrives later.
//!
//! While a message is being handled its claim is renewed in the background (a heartbeat every
//! third of the lease), so however long the agent and the sends take, a redelivery never finds
//! the claim expired and never asks the agent again. If a renewal finds the claim lost (it
//! expired during an outage of the store and someone else took it), no further part is sent.

use crate::agent::Deliver;
use crate::agent::{Agent, AgentError, AgentRequest};
use crate::config::{DEFAULT_AGENT_TIMEOUT, LEASE_MARGIN};
use crate::domain::{InboundMessage, MessageId, PhoneNumberId};
use crate::domain::{OutgoingMessage, Recipient};
use crate::graph::{GraphError, Messenger};
use crate::idempotency::{Claim, ClaimToken, IdempotencyStore, Renewal};
use crate::reply::{agent_failed, format_reply};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The claim lease with the default configuration (`IDEMPOTENCY_LEASE_SECS` unset, the default
/// agent timeout): what `Config` gives production, for pipelines built without a `Config`.
pub const DEFAULT_LEASE: Duration = DEFAULT_AGENT_TIMEOUT.saturating_add(LEASE_MARGIN);
/// Renewals per lease: the claim is renewed every `lease / RENEWALS_PER_LEASE`, so two renewals
/// may fail (or be slow) before the claim expires.
const RENEWALS_PER_LEASE: u32 = 3;
/// The shortest wait between two renewals, whatever the lease (tests use leases of a fraction
/// of a second).
const MIN_RENEW_INTERVAL: Duration = Duration::from_millis(10);
/// Senders of one batch (a webhook body inline, an SQS batch in the worker) handled at once:
/// each runs one agent call at a time, so this bounds the agent calls one batch opens.
pub const MAX_CONCURRENT_SENDERS: usize = 16;

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
    /// The claim was lost while handling (it expired and someone else took it over) after
    /// `sent` messages went out: nothing more was sent; its new holder settles the message,
    /// and a retry later finds it done.
    ClaimLost { sent: usize },
    /// Nothing was sent and the failure is transient: the claim was released; retry later.
    Retry { reason: String },
}

impl Outcome {
    /// Whether the delivery should be retried (SQS: report the item failed).
    pub fn should_retry(&self) -> bool {
        matches!(
            self,
            Self::InProgress | Self::Retry { .. } | Self::ClaimLost { .. }
        )
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

/// A claim being held while its message is handled: whose it is, and until when it surely
/// is (pushed forward by each renewal).
struct Held<'a> {
    id: &'a MessageId,
    token: ClaimToken,
    /// A renewal found the claim taken over, completed or gone.
    lost: AtomicBool,
    /// The end of the last lease the store granted, measured from before the request.
    valid_until: Mutex<Instant>,
}

impl<'a> Held<'a> {
    fn new(id: &'a MessageId, token: ClaimToken, valid_until: Instant) -> Self {
        Self {
            id,
            token,
            lost: AtomicBool::new(false),
            valid_until: Mutex::new(valid_until),
        }
    }

    /// Whether the claim is still ours: not reported lost, and its lease not run out (renewals
    /// failing for a whole lease mean someone else may have taken it).
    fn is_held(&self) -> bool {
        !self.lost.load(Ordering::SeqCst) && Instant::now() < *self.valid_until()
    }

    fn extend(&self, until: Instant) {
        let mut valid_until = self.valid_until();
        *valid_until = (*valid_until).max(until);
    }

    fn valid_until(&self) -> std::sync::MutexGuard<'_, Instant> {
        self.valid_until.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why sending stopped before the last part.
enum SendStop {
    Graph(GraphError),
    ClaimLost,
}

/// The ports one message needs; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    agent: Arc<dyn Agent>,
    messenger: Arc<dyn Messenger>,
    idempotency: Arc<dyn IdempotencyStore>,
    /// How long a claim holds before a redelivery may take over (crash recovery).
    lease: Duration,
}

impl Pipeline {
    /// A pipeline over these ports, with the lease production uses by default
    /// ([`DEFAULT_LEASE`]).
    pub fn new(
        agent: Arc<dyn Agent>,
        messenger: Arc<dyn Messenger>,
        idempotency: Arc<dyn IdempotencyStore>,
    ) -> Self {
        Self {
            agent,
            messenger,
            idempotency,
            lease: DEFAULT_LEASE,
        }
    }

    /// The same pipeline with claims held for `lease` instead (the configured
    /// `IDEMPOTENCY_LEASE_SECS`, or a short lease in tests).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Handles one message end to end. Never panics on bad input; every failure is logged.
    pub async fn handle(&self, message: &InboundMessage, attempt: Attempt) -> Outcome {
        let started = Instant::now();
        let id = &message.id;
        let kind = message.kind.type_name();
        let held = match self.claim(id).await {
            Ok(held) => held,
            Err(early) => return early,
        };
        let outcome = self
            .while_held(&held, self.answer(message, attempt, &held))
            .await;
        self.settle(&held, &outcome).await;
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
        let held = match self.claim(&key).await {
            Ok(held) => held,
            Err(early) => return early,
        };
        let outcome = self
            .while_held(
                &held,
                self.deliver_held(deliver, &message_id, attempt, &held),
            )
            .await;
        self.settle(&held, &outcome).await;
        tracing::info!(message_id = %message_id, outcome = ?outcome, "reply delivered");
        outcome
    }

    /// [`Self::deliver`] once its claim is held.
    async fn deliver_held(
        &self,
        deliver: &Deliver,
        message_id: &MessageId,
        attempt: Attempt,
        held: &Held<'_>,
    ) -> Outcome {
        match Recipient::of(&deliver.sender()) {
            None => {
                tracing::error!(message_id = %message_id, "deliver event has no recipient: cannot answer");
                Outcome::Undeliverable
            }
            Some(to) => {
                let (messages, failure) = match (&deliver.error, &deliver.reply) {
                    (Some(error), _) => {
                        tracing::error!(message_id = %message_id, error = %error, "state machine reports the agent failed; telling the user");
                        // The state machine does not say whether it was transient, and it has
                        // given up retrying: counted as final, and the user is not told to retry.
                        (
                            vec![agent_failed(false)],
                            Some(AgentFailure { retryable: false }),
                        )
                    }
                    (None, Some(reply)) if reply.is_unreadable() => {
                        tracing::error!(message_id = %message_id, dropped = reply.dropped.len(), "delivered reply has no readable part; telling the user");
                        (
                            vec![agent_failed(false)],
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
                    message_id,
                    attempt,
                    failure,
                    held,
                )
                .await
            }
        }
    }

    /// Claims `id` for a fresh owner; `Err(outcome)` when the caller must stop here.
    async fn claim<'a>(&self, id: &'a MessageId) -> Result<Held<'a>, Outcome> {
        let token = ClaimToken::new();
        // The lease runs from the store's clock at the write, later than this.
        let asked = Instant::now();
        match self.idempotency.claim(id, &token, self.lease).await {
            Ok(Claim::Acquired) => Ok(Held::new(id, token, asked + self.lease)),
            Ok(Claim::Completed) => {
                tracing::info!(message_id = %id, "duplicate delivery: already handled, skipped");
                Err(Outcome::Duplicate)
            }
            Ok(Claim::InProgress) => {
                tracing::info!(message_id = %id, "being handled elsewhere right now: retry later");
                Err(Outcome::InProgress)
            }
            Err(error) => {
                tracing::error!(message_id = %id, %error, "idempotency claim failed: not handling the message now");
                Err(Outcome::Retry {
                    reason: error.to_string(),
                })
            }
        }
    }

    /// Runs `work` while renewing the claim in the background; the renewals stop with it.
    async fn while_held(
        &self,
        held: &Held<'_>,
        work: impl std::future::Future<Output = Outcome>,
    ) -> Outcome {
        let heartbeat = self.heartbeat(held);
        tokio::pin!(work, heartbeat);
        tokio::select! {
            biased;
            outcome = &mut work => outcome,
            never = &mut heartbeat => match never {},
        }
    }

    /// Renews the claim every third of the lease, for as long as it is polled. A failed renewal
    /// is tried again at the next beat (the claim stays ours until its lease runs out); a claim
    /// found lost is marked so, and no further part is sent.
    async fn heartbeat(&self, held: &Held<'_>) -> Infallible {
        let interval = (self.lease / RENEWALS_PER_LEASE).max(MIN_RENEW_INTERVAL);
        loop {
            tokio::time::sleep(interval).await;
            let asked = Instant::now();
            match self
                .idempotency
                .renew(held.id, &held.token, self.lease)
                .await
            {
                Ok(Renewal::Renewed) => held.extend(asked + self.lease),
                Ok(Renewal::Lost) => {
                    held.lost.store(true, Ordering::SeqCst);
                    tracing::error!(message_id = %held.id, "claim lost while handling (taken over after its lease ran out): sending nothing more");
                    return std::future::pending().await;
                }
                Err(error) => {
                    tracing::warn!(message_id = %held.id, %error, "could not renew the claim; trying again at the next beat");
                }
            }
        }
    }

    /// Completes the claim, or releases it when the message is to be retried; a lost claim is
    /// its new holder's to settle.
    async fn settle(&self, held: &Held<'_>, outcome: &Outcome) {
        let id = held.id;
        let settled = match outcome {
            Outcome::ClaimLost { .. } => return,
            retry if retry.should_retry() => self.idempotency.release(id, &held.token).await,
            _ => self.idempotency.complete(id, &held.token).await,
        };
        if let Err(error) = settled {
            tracing::error!(message_id = %id, %error, "could not record the message's state");
        }
    }

    async fn answer(&self, message: &InboundMessage, attempt: Attempt, held: &Held<'_>) -> Outcome {
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
        let answer = match self.agent.ask(&request).await {
            // The HTTP and Step Functions adapters refuse these already; any agent's reply with
            // no readable part is a failed answer, never silence.
            Ok(Some(reply)) if reply.is_unreadable() => Err(AgentError::Decode {
                error: reply.unreadable_reason(),
                body: String::new(),
            }),
            answer => answer,
        };
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
                        &[agent_failed(failure.retryable)],
                        id,
                        Attempt::Last,
                        Some(failure),
                        held,
                    )
                    .await;
            }
        };
        tracing::info!(message_id = %id, agent_ms, parts = messages.len(), "agent answered");
        self.send_outcome(from, &to, &messages, id, attempt, None, held)
            .await
    }

    /// Sends `messages` in order, the first quoting the user's message, and says how it went.
    #[allow(clippy::too_many_arguments)]
    async fn send_outcome(
        &self,
        from: &PhoneNumberId,
        to: &Recipient,
        messages: &[OutgoingMessage],
        quote: &MessageId,
        attempt: Attempt,
        agent_failure: Option<AgentFailure>,
        held: &Held<'_>,
    ) -> Outcome {
        match (
            self.send_all(from, to, messages, quote, held).await,
            agent_failure,
        ) {
            (Err((sent, SendStop::ClaimLost)), _) => Outcome::ClaimLost { sent },
            (Ok(_), Some(AgentFailure { retryable })) => Outcome::AgentFailed { retryable },
            (Ok(0), None) => Outcome::NoReply,
            (Ok(sent), None) => Outcome::Replied { messages: sent },
            (Err((0, SendStop::Graph(error))), _)
                if error.is_retryable() && attempt == Attempt::Retryable =>
            {
                Outcome::Retry {
                    reason: error.to_string(),
                }
            }
            (Err((sent, SendStop::Graph(_))), _) => Outcome::SendFailed { sent },
        }
    }

    /// Sends the parts in order while the claim is held: a part is never sent once the claim
    /// may belong to someone else, who would send it too.
    async fn send_all(
        &self,
        from: &PhoneNumberId,
        to: &Recipient,
        messages: &[OutgoingMessage],
        quote: &MessageId,
        held: &Held<'_>,
    ) -> Result<usize, (usize, SendStop)> {
        for (index, outgoing) in messages.iter().enumerate() {
            if !held.is_held() {
                tracing::error!(
                    message_id = %quote,
                    part = index + 1,
                    of = messages.len(),
                    "claim lost before this part: not sending it or the rest"
                );
                return Err((index, SendStop::ClaimLost));
            }
            // Quote the user's message on the first part so parallel questions stay readable.
            let context = (index == 0).then_some(quote);
            if let Err(error) = self.messenger.send(from, to, outgoing, context).await {
                tracing::error!(
                    message_id = %quote,
                    %error,
                    retryable = error.is_retryable(),
                    part = index + 1,
                    of = messages.len(),
                    to = %crate::domain::mask(to.as_str()),
                    "sending the reply failed"
                );
                return Err((index, SendStop::Graph(error)));
            }
        }
        Ok(messages.len())
    }
}

/// Groups `items` by sender, keeping the order of first appearance and, within a sender, the
/// order of the items: what lets one sender's messages run in order while senders run
/// concurrently (inline dispatch and the worker's FIFO batches).
pub fn by_sender<T, K: Eq + std::hash::Hash>(
    items: impl IntoIterator<Item = T>,
    sender: impl Fn(&T) -> K,
) -> Vec<Vec<T>> {
    // An index by sender keeps a batch from a thousand senders linear.
    let mut index: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    let mut groups: Vec<Vec<T>> = Vec::new();
    for item in items {
        let key = sender(&item);
        match index.get(&key) {
            Some(&at) => groups[at].push(item),
            None => {
                index.insert(key, groups.len());
                groups.push(vec![item]);
            }
        }
    }
    groups
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
    use super::*;
    use crate::agent::{AgentReply, ScriptedAgent};
    use crate::domain::{Channel, MessageKind, Sender};
    use crate::graph::RecordingMessenger;
    use crate::idempotency::{IdempotencyError, MemoryIdempotency, impl_idempotency_store};
    use std::sync::atomic::AtomicUsize;

    /// Claims kept in memory, but the `lose_after`-th renewal (and every later one) finds the
    /// claim taken over, as when it expired during a store outage and a redelivery took it.
    struct LosingStore {
        inner: MemoryIdempotency,
        renewals: AtomicUsize,
        lose_after: usize,
    }

    impl LosingStore {
        async fn claim_now(
            &self,
            id: &MessageId,
            owner: &ClaimToken,
            lease: Duration,
        ) -> Result<Claim, IdempotencyError> {
            self.inner.claim(id, owner, lease).await
        }

        async fn renew_now(
            &self,
            id: &MessageId,
            owner: &ClaimToken,
            lease: Duration,
        ) -> Result<Renewal, IdempotencyError> {
            if self.renewals.fetch_add(1, Ordering::SeqCst) + 1 >= self.lose_after {
                return Ok(Renewal::Lost);
            }
            self.inner.renew(id, owner, lease).await
        }

        async fn complete_now(
            &self,
            id: &MessageId,
            owner: &ClaimToken,
        ) -> Result<(), IdempotencyError> {
            self.inner.complete(id, owner).await
        }

        async fn release_now(
            &self,
            id: &MessageId,
            owner: &ClaimToken,
        ) -> Result<(), IdempotencyError> {
            self.inner.release(id, owner).await
        }
    }

    impl_idempotency_store!(LosingStore);

    fn message() -> InboundMessage {
        InboundMessage {
            id: MessageId::from("wamid.LOST.1"),
            timestamp: 1_795_514_400,
            sender: Sender {
                phone: Some("14155551234".into()),
                ..Sender::default()
            },
            channel: Channel {
                phone_number_id: PhoneNumberId("106540352242922".into()),
                display_phone_number: None,
                business_account_id: None,
            },
            reply_to: None,
            kind: MessageKind::Text {
                body: "status?".into(),
            },
        }
    }

    #[tokio::test]
    async fn nothing_more_is_sent_once_a_renewal_finds_the_claim_lost() {
        let reply = (0..6)
            .map(|n| format!("part {n}: {}", "log line ".repeat(450)))
            .collect::<Vec<_>>()
            .join("\n\n");
        let parts = format_reply(&AgentReply::text(None, reply.clone()));
        assert!(parts.len() >= 5, "{} parts", parts.len());
        let messenger = Arc::new(RecordingMessenger::with_delay(Duration::from_millis(100)));
        let store = Arc::new(LosingStore {
            inner: MemoryIdempotency::default(),
            renewals: AtomicUsize::new(0),
            lose_after: 2,
        });
        // Renewals every 100 ms: the second, at about 200 ms, finds the claim lost, while
        // the read mark and the parts take 100 ms each.
        let pipeline = Pipeline::new(
            Arc::new(ScriptedAgent::replying_text(reply)),
            messenger.clone(),
            store.clone(),
        )
        .with_lease(Duration::from_millis(300));
        let outcome = pipeline.handle(&message(), Attempt::Retryable).await;
        let sent = messenger.sent().len();
        assert_eq!(outcome, Outcome::ClaimLost { sent });
        assert!(sent < parts.len(), "{sent} of {} parts sent", parts.len());
        assert!(
            outcome.should_retry(),
            "a later attempt finds out how it ended"
        );
        // The holder that lost the claim did not mark the message done.
        assert_ne!(
            store
                .inner
                .claim(&message().id, &ClaimToken::new(), Duration::from_secs(60))
                .await
                .unwrap(),
            Claim::Completed
        );
    }

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

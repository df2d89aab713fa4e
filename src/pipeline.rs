//! One message's journey, the same whichever way it was dispatched: claim its id (a lease) →
//! mark it read with the typing indicator while the agent is asked (both at once, so the user's
//! wait is the agent's own time) → format the reply → send it through the Graph API → mark it
//! completed. Also the second half of the Step Functions async path: delivering a reply that
//! arrives later.
//!
//! WhatsApp drops a typing indicator after 25 seconds or at our next message; an agent run is
//! often longer, so while the agent works the indicator is shown again every
//! [`TYPING_INTERVAL`], until the answer is there.
//!
//! While a message is being handled its claim is renewed in the background (a heartbeat every
//! third of the lease), so however long the agent and the sends take, a redelivery never finds
//! the claim expired and never asks the agent again. If a renewal finds the claim lost (it
//! expired during an outage of the store and someone else took it), no further part is sent.

use crate::agent::Deliver;
use crate::agent::{Agent, AgentError, AgentRequest, ReplyStream};
use crate::config::{DEFAULT_AGENT_TIMEOUT, LEASE_MARGIN};
use crate::domain::{InboundMessage, MessageId, PhoneNumberId};
use crate::domain::{OutgoingMessage, Recipient};
use crate::graph::{GraphError, Messenger};
use crate::idempotency::{Claim, ClaimToken, IdempotencyStore, Renewal};
use crate::reply::{agent_cut_off, agent_failed, format_reply};
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
/// How often the typing indicator is shown again while the agent works: before WhatsApp drops
/// it (25 s after it was shown).
/// <https://developers.facebook.com/docs/whatsapp/cloud-api/typing-indicators>
pub const TYPING_INTERVAL: Duration = Duration::from_secs(20);

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
    /// How often the typing indicator is renewed while the agent works.
    typing_interval: Duration,
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
            typing_interval: TYPING_INTERVAL,
        }
    }

    /// The same pipeline with claims held for `lease` instead (the configured
    /// `IDEMPOTENCY_LEASE_SECS`, or a short lease in tests).
    pub fn with_lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The same pipeline renewing the typing indicator every `interval` instead of
    /// [`TYPING_INTERVAL`] (tests).
    pub fn with_typing_interval(mut self, interval: Duration) -> Self {
        self.typing_interval = interval.max(MIN_RENEW_INTERVAL);
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
        let request = AgentRequest::from_message(message);
        let asked = Instant::now();
        let mut stream = self.agent.ask_stream(&request);
        let first = self.while_typing(from, id, true, stream.next()).await;
        let agent_ms = asked.elapsed().as_millis() as u64;
        let reply = match first {
            None => {
                tracing::info!(message_id = %id, agent_ms, parts = 0, "agent answered");
                return Outcome::NoReply;
            }
            // The HTTP and Step Functions adapters refuse these already; any agent's reply with
            // no readable part is a failed answer, never silence.
            Some(Ok(reply)) if reply.is_unreadable() => Err(AgentError::Decode {
                error: reply.unreadable_reason(),
                body: String::new(),
            }),
            Some(answer) => answer,
        };
        let messages = match reply {
            Ok(reply) => format_reply(&reply),
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
        let sent = match self.send_all(from, &to, &messages, id, true, held).await {
            Ok(sent) => sent,
            Err(stop) => return stopped(stop, attempt),
        };
        self.send_rest(from, &to, id, &mut stream, sent, held).await
    }

    /// Sends the parts a streaming agent writes after its first, each as soon as it arrives,
    /// showing the typing indicator while waiting for the next. An agent that fails after its
    /// first part has been shown cannot be asked again (a second answer would differ from the
    /// first): the user is told the answer stopped, and the message counts as answered.
    async fn send_rest(
        &self,
        from: &PhoneNumberId,
        to: &Recipient,
        id: &MessageId,
        stream: &mut ReplyStream<'_>,
        mut sent: usize,
        held: &Held<'_>,
    ) -> Outcome {
        let mut part = 1;
        while let Some(next) = self.while_typing(from, id, false, stream.next()).await {
            part += 1;
            let messages = match next {
                Ok(reply) => format_reply(&reply),
                Err(error) => {
                    tracing::error!(message_id = %id, %error, part, "agent's streamed answer broke off; telling the user");
                    vec![agent_cut_off()]
                }
            };
            tracing::info!(message_id = %id, part, messages = messages.len(), "agent sent another part");
            match self.send_all(from, to, &messages, id, false, held).await {
                Ok(count) => sent += count,
                Err((count, SendStop::ClaimLost)) => {
                    return Outcome::ClaimLost { sent: sent + count };
                }
                Err((count, SendStop::Graph(_))) => {
                    return Outcome::SendFailed { sent: sent + count };
                }
            }
        }
        if sent == 0 {
            Outcome::NoReply
        } else {
            Outcome::Replied { messages: sent }
        }
    }

    /// Waits for `work` (the agent's next part) while showing the typing indicator: marked read
    /// with it at once when `mark_first` (the first part: both at once, so the user's wait is
    /// the agent's own time; that first mark always completes, never cut off by a quick answer),
    /// then again every `typing_interval` until `work` is done.
    async fn while_typing<T>(
        &self,
        from: &PhoneNumberId,
        id: &MessageId,
        mark_first: bool,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let first_mark = async {
            if !mark_first {
                return;
            }
            if let Err(error) = self.messenger.mark_read(from, id, true).await {
                tracing::warn!(message_id = %id, %error, "could not mark the message read; answering anyway");
            }
        };
        let renewals = async {
            loop {
                tokio::time::sleep(self.typing_interval).await;
                if let Err(error) = self.messenger.mark_read(from, id, true).await {
                    tracing::warn!(message_id = %id, %error, "could not show the typing indicator again");
                }
            }
        };
        let work = async {
            tokio::pin!(renewals);
            tokio::select! {
                biased;
                done = work => done,
                never = &mut renewals => never,
            }
        };
        let ((), done) = tokio::join!(first_mark, work);
        done
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
            self.send_all(from, to, messages, quote, true, held).await,
            agent_failure,
        ) {
            (Ok(_), Some(AgentFailure { retryable })) => Outcome::AgentFailed { retryable },
            (Ok(0), None) => Outcome::NoReply,
            (Ok(sent), None) => Outcome::Replied { messages: sent },
            (Err(stop), _) => stopped(stop, attempt),
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
        quote_first: bool,
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
            let context = (quote_first && index == 0).then_some(quote);
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

/// What a send that stopped means for the message: a transient failure before anything was
/// sent may be retried (the agent is asked again: nothing of its answer was seen); otherwise
/// what was sent stands.
fn stopped((sent, stop): (usize, SendStop), attempt: Attempt) -> Outcome {
    match stop {
        SendStop::ClaimLost => Outcome::ClaimLost { sent },
        SendStop::Graph(error)
            if sent == 0 && error.is_retryable() && attempt == Attempt::Retryable =>
        {
            Outcome::Retry {
                reason: error.to_string(),
            }
        }
        SendStop::Graph(_) => Outcome::SendFailed { sent },
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
    use crate::BoxFuture;
    use crate::agent::{AgentReply, ScriptedAgent};
    use crate::domain::{Channel, MessageKind, Sender};
    use crate::graph::RecordingMessenger;
    use crate::idempotency::{IdempotencyError, MemoryIdempotency};
    use std::sync::atomic::AtomicUsize;

    /// Claims kept in memory, but the `lose_after`-th renewal (and every later one) finds the
    /// claim taken over, as when it expired during a store outage and a redelivery took it.
    struct LosingStore {
        inner: MemoryIdempotency,
        renewals: AtomicUsize,
        lose_after: usize,
    }

    impl IdempotencyStore for LosingStore {
        fn claim<'a>(
            &'a self,
            id: &'a MessageId,
            owner: &'a ClaimToken,
            lease: Duration,
        ) -> BoxFuture<'a, Result<Claim, IdempotencyError>> {
            self.inner.claim(id, owner, lease)
        }
        fn renew<'a>(
            &'a self,
            id: &'a MessageId,
            owner: &'a ClaimToken,
            lease: Duration,
        ) -> BoxFuture<'a, Result<Renewal, IdempotencyError>> {
            if self.renewals.fetch_add(1, Ordering::SeqCst) + 1 >= self.lose_after {
                return Box::pin(async { Ok(Renewal::Lost) });
            }
            self.inner.renew(id, owner, lease)
        }
        fn complete<'a>(
            &'a self,
            id: &'a MessageId,
            owner: &'a ClaimToken,
        ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
            self.inner.complete(id, owner)
        }
        fn release<'a>(
            &'a self,
            id: &'a MessageId,
            owner: &'a ClaimToken,
        ) -> BoxFuture<'a, Result<(), IdempotencyError>> {
            self.inner.release(id, owner)
        }
    }

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

    /// A pipeline over a Graph API that takes `graph` per call and an agent that takes `agent`.
    fn timed(graph: Duration, agent: Duration) -> (Pipeline, Arc<RecordingMessenger>) {
        let messenger = Arc::new(RecordingMessenger::with_delay(graph));
        let agent = Arc::new(ScriptedAgent::replying_text("all pods running").with_delay(agent));
        let pipeline = Pipeline::new(
            agent,
            messenger.clone(),
            Arc::new(MemoryIdempotency::default()),
        );
        (pipeline, messenger)
    }

    #[tokio::test(start_paused = true)]
    async fn the_read_mark_goes_out_while_the_agent_works_not_before() {
        let graph = Duration::from_secs(1);
        let agent = Duration::from_secs(5);
        let (pipeline, messenger) = timed(graph, agent);
        let started = tokio::time::Instant::now();
        let outcome = pipeline.handle(&message(), Attempt::Retryable).await;
        let waited = started.elapsed();
        assert_eq!(outcome, Outcome::Replied { messages: 1 });
        // The agent's own time plus the one send: the read mark overlapped the agent.
        assert_eq!(
            waited,
            agent + graph,
            "one after the other would take {:?}",
            graph + agent + graph
        );
        assert_eq!(messenger.read_marks(), vec![(message().id, true)]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quick_agent_never_cuts_the_read_mark_short() {
        // The Graph API is slower than the agent: the read mark still completes, before the reply.
        let (pipeline, messenger) = timed(Duration::from_secs(2), Duration::ZERO);
        let outcome = pipeline.handle(&message(), Attempt::Retryable).await;
        assert_eq!(outcome, Outcome::Replied { messages: 1 });
        assert_eq!(messenger.read_marks().len(), 1);
        assert_eq!(messenger.texts(), vec!["all pods running"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_typing_indicator_is_shown_again_while_a_slow_agent_works() {
        let (pipeline, messenger) = timed(Duration::ZERO, Duration::from_secs(50));
        let outcome = pipeline.handle(&message(), Attempt::Retryable).await;
        assert_eq!(outcome, Outcome::Replied { messages: 1 });
        // At 0 s, then every 20 s until the answer at 50 s: 20 and 40; none after it.
        let marks = messenger.read_marks();
        assert_eq!(marks.len(), 3, "{marks:?}");
        assert!(
            marks
                .iter()
                .all(|(id, typing)| *id == message().id && *typing)
        );

        // A shorter interval (as tests and a configured pipeline may set): more renewals.
        let (pipeline, messenger) = timed(Duration::ZERO, Duration::from_secs(50));
        let pipeline = pipeline.with_typing_interval(Duration::from_secs(10));
        pipeline.handle(&message(), Attempt::Retryable).await;
        assert_eq!(messenger.read_marks().len(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_renewal_does_not_stop_the_answer() {
        let messenger = Arc::new(RecordingMessenger::new());
        messenger.fail_next_read_marks(2, || GraphError::Timeout);
        let agent =
            Arc::new(ScriptedAgent::replying_text("done").with_delay(Duration::from_secs(30)));
        let pipeline = Pipeline::new(
            agent,
            messenger.clone(),
            Arc::new(MemoryIdempotency::default()),
        );
        let outcome = pipeline.handle(&message(), Attempt::Retryable).await;
        assert_eq!(outcome, Outcome::Replied { messages: 1 });
        assert_eq!(messenger.texts(), vec!["done"]);
    }

    fn streaming(parts: Vec<(u64, Result<&'static str, AgentError>)>) -> Arc<ScriptedAgent> {
        let parts = std::sync::Mutex::new(Some(parts));
        Arc::new(ScriptedAgent::streaming(move |_| {
            parts
                .lock()
                .unwrap()
                .take()
                .unwrap_or_default()
                .into_iter()
                .map(|(secs, part)| {
                    (
                        Duration::from_secs(secs),
                        part.map(|text| AgentReply::text(None, text)),
                    )
                })
                .collect()
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn streamed_parts_are_sent_as_they_arrive_with_typing_in_between() {
        let messenger = Arc::new(RecordingMessenger::new());
        let agent = streaming(vec![
            (5, Ok("Checking pods…")),
            (25, Ok("Restarting api-7f9")),
            (5, Ok("✅ 2 pods restarted")),
        ]);
        let pipeline = Pipeline::new(
            agent,
            messenger.clone(),
            Arc::new(MemoryIdempotency::default()),
        );
        let outcome = pipeline.handle(&message(), Attempt::Retryable).await;
        assert_eq!(outcome, Outcome::Replied { messages: 3 });
        assert_eq!(
            messenger.texts(),
            [
                "Checking pods…",
                "Restarting api-7f9",
                "✅ 2 pods restarted"
            ]
        );
        // Only the first part quotes the user's message.
        let quoted: Vec<bool> = messenger
            .sent()
            .iter()
            .map(|s| s.context.is_some())
            .collect();
        assert_eq!(quoted, [true, false, false]);
        // The read mark at once, and the indicator again 20 s into the 25 s wait for part two.
        assert_eq!(messenger.read_marks().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_breaks_after_a_part_is_told_not_retried() {
        let messenger = Arc::new(RecordingMessenger::new());
        let agent = streaming(vec![
            (1, Ok("Checking pods…")),
            (1, Err(AgentError::Timeout(Duration::from_secs(60)))),
        ]);
        let pipeline = Pipeline::new(
            agent,
            messenger.clone(),
            Arc::new(MemoryIdempotency::default()),
        );
        let outcome = pipeline.handle(&message(), Attempt::Retryable).await;
        assert_eq!(outcome, Outcome::Replied { messages: 2 });
        assert_eq!(
            messenger.texts(),
            ["Checking pods…", crate::reply::AGENT_CUT_OFF_TEXT]
        );
        assert!(!outcome.should_retry());
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_fails_before_its_first_part_is_retried_like_a_whole_answer() {
        let messenger = Arc::new(RecordingMessenger::new());
        let agent = streaming(vec![(1, Err(AgentError::Timeout(Duration::from_secs(60))))]);
        let pipeline = Pipeline::new(
            agent,
            messenger.clone(),
            Arc::new(MemoryIdempotency::default()),
        );
        let outcome = pipeline.handle(&message(), Attempt::Retryable).await;
        assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
        assert!(messenger.texts().is_empty());
    }
}

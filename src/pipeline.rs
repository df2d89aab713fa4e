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
use crate::agent::{Agent, AgentError, ReplyStream};
use crate::alerts::paging::{AlertAction, IncidentState, Paging, TapOutcome};
use crate::approvals::ApprovalAsk;
use crate::approvals::engine::{AgentDecision, Approvals, Asked};
use crate::config::{DEFAULT_AGENT_TIMEOUT, LEASE_MARGIN};
use crate::domain::Sender;
use crate::domain::{InboundMessage, MessageId, PhoneNumberId};
use crate::domain::{OutgoingMessage, Recipient};
use crate::graph::{GraphError, Messenger};
use crate::idempotency::{Claim, ClaimToken, IdempotencyStore, Renewal};
use crate::reply::{agent_cut_off, agent_failed, format_reply};
use crate::sessions::SessionKey;
use crate::sessions::commands::new_nonce;
use crate::sessions::conversation::Change;
use crate::sessions::conversation::{
    Conversations, KeptBecause, KeptReply, OwnAnswer, WINDOW_TAP_PREFIX, kept, take_kept, unix_now,
};
use crate::timers::{Timer, TimerKind};
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
    /// The user's 24-hour window was closed: the reply (`parts` messages) is kept in the
    /// conversation until they write again (the re-engagement template invites them to).
    Kept { parts: usize },
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
    conversations: Arc<Conversations>,
    messenger: Arc<dyn Messenger>,
    idempotency: Arc<dyn IdempotencyStore>,
    /// How long a claim holds before a redelivery may take over (crash recovery).
    lease: Duration,
    /// How often the typing indicator is renewed while the agent works.
    typing_interval: Duration,
    /// On-call paging (`ONCALL`): taps on pages are its to answer.
    paging: Option<Arc<Paging>>,
    /// Approvals (`APPROVERS`): taps on requests are its to answer, agents' asks go to it.
    approvals: Option<Arc<Approvals>>,
}

impl Pipeline {
    /// A pipeline over these ports, with the lease production uses by default
    /// ([`DEFAULT_LEASE`]): one agent, conversations in memory ([`Conversations::single`]).
    pub fn new(
        agent: Arc<dyn Agent>,
        messenger: Arc<dyn Messenger>,
        idempotency: Arc<dyn IdempotencyStore>,
    ) -> Self {
        Self::conversing(Conversations::single(agent), messenger, idempotency)
    }

    /// A pipeline over these conversations (the configured agents, environments, history and
    /// session store) and ports, with the default lease.
    pub fn conversing(
        conversations: Conversations,
        messenger: Arc<dyn Messenger>,
        idempotency: Arc<dyn IdempotencyStore>,
    ) -> Self {
        Self {
            conversations: Arc::new(conversations),
            messenger,
            idempotency,
            lease: DEFAULT_LEASE,
            typing_interval: TYPING_INTERVAL,
            paging: None,
            approvals: None,
        }
    }

    /// The same pipeline paging (`ONCALL`): taps on pages go to `paging` before anything else.
    pub fn with_paging(mut self, paging: Arc<Paging>) -> Self {
        self.paging = Some(paging);
        self
    }

    /// The same pipeline with approvals (`APPROVERS`): taps on requests go to `approvals`, and
    /// an agent's reply may ask for one.
    pub fn with_approvals(mut self, approvals: Arc<Approvals>) -> Self {
        self.approvals = Some(approvals);
        self
    }

    /// The approvals engine, when approvals are configured.
    pub fn approvals(&self) -> Option<&Arc<Approvals>> {
        self.approvals.as_ref()
    }

    /// A timer came due (the in-process timers of a local run): paging's to paging, an
    /// approval's expiry to approvals (and its decision to the agent that asked). Failures are
    /// logged.
    pub async fn fire_timer(&self, timer: &Timer) {
        self.fire_timer_at(timer, unix_now()).await;
    }

    /// [`Pipeline::fire_timer`] at `now` (unix seconds).
    pub async fn fire_timer_at(&self, timer: &Timer, now: i64) {
        match &timer.kind {
            TimerKind::ApprovalExpiry { .. } => match &self.approvals {
                Some(approvals) => match approvals.fire(timer, now).await {
                    Ok(Some(decided)) => {
                        self.approval_decided(&decided).await;
                    }
                    Ok(None) => {}
                    Err(error) => tracing::error!(%error, "approval timer failed"),
                },
                None => tracing::error!("approval timer, but approvals are off: ignored"),
            },
            _ => match &self.paging {
                Some(paging) => {
                    if let Err(error) = paging.fire(timer, now).await {
                        tracing::error!(%error, "escalation timer failed");
                    }
                }
                None => tracing::error!("paging timer, but paging is off: ignored"),
            },
        }
    }

    /// The paging engine, when paging is configured.
    pub fn paging(&self) -> Option<&Arc<Paging>> {
        self.paging.as_ref()
    }

    /// The conversations, shared (paging reads the 24-hour windows from them).
    pub fn shared_conversations(&self) -> Arc<Conversations> {
        self.conversations.clone()
    }

    /// The same pipeline with these conversations (the configured agents, environments,
    /// history and session store).
    pub fn with_conversations(mut self, conversations: Conversations) -> Self {
        self.conversations = Arc::new(conversations);
        self
    }

    /// The conversations this pipeline keeps.
    pub fn conversations(&self) -> &Conversations {
        &self.conversations
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
    /// The delivered reply sent, then the approvals it asks for asked.
    async fn deliver_held(
        &self,
        deliver: &Deliver,
        message_id: &MessageId,
        attempt: Attempt,
        held: &Held<'_>,
    ) -> Outcome {
        let outcome = self.deliver_parts(deliver, message_id, attempt, held).await;
        let mut said = Said::default();
        if let Some(reply) = deliver.reply.as_ref().filter(|r| !r.is_unreadable())
            && deliver.error.is_none()
        {
            said.note(unix_now(), reply);
        }
        let sender = deliver.sender();
        let from = deliver.phone_number_id();
        if let (false, Some(to)) = (
            matches!(outcome, Outcome::ClaimLost { .. }),
            Recipient::of(&sender),
        ) {
            let route = Route {
                from: &from,
                to,
                id: message_id,
                key: SessionKey::new(&from, &sender),
                held,
            };
            let agent = deliver.request.session.agent.clone();
            self.ask_approvals(&route, &sender, &agent, &said, unix_now())
                .await;
        }
        outcome
    }

    async fn deliver_parts(
        &self,
        deliver: &Deliver,
        message_id: &MessageId,
        attempt: Attempt,
        held: &Held<'_>,
    ) -> Outcome {
        let from = deliver.phone_number_id();
        let sender = deliver.sender();
        let Some(to) = Recipient::of(&sender) else {
            tracing::error!(message_id = %message_id, "deliver event has no recipient: cannot answer");
            return Outcome::Undeliverable;
        };
        let route = Route {
            from: &from,
            to,
            id: message_id,
            key: SessionKey::new(&from, &sender),
            held,
        };
        let (messages, failure) = match (&deliver.error, &deliver.reply) {
            (Some(error), _) => {
                tracing::error!(message_id = %message_id, error = %error, "state machine reports the agent failed; telling the user");
                // The state machine does not say whether it was transient, and it has given up
                // retrying: counted as final, and the user is not told to retry.
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
        if failure.is_some() || messages.is_empty() {
            return self.send_outcome(&route, &messages, attempt, failure).await;
        }
        // The answer of a long run: the user's window may have closed meanwhile.
        let now = unix_now();
        let session = match &route.key {
            Some(key) => self.conversations.load(key).await,
            None => None,
        };
        let answers: Vec<(i64, String)> = deliver
            .reply
            .iter()
            .map(|reply| (now, turn_text(reply)))
            .collect();
        if let Some(key) = &route.key {
            let user_text = deliver.request.event.text.clone();
            self.conversations
                .update(key, |session| {
                    self.conversations
                        .record_exchange(session, user_text.clone(), now, &answers)
                })
                .await;
        }
        // Only a window we saw open can be known closed (a conversation store that was empty
        // when the execution started knows nothing of it).
        if session.is_some_and(|session| {
            session.last_user_message_at.is_some() && !session.window_open(now)
        }) {
            return self.keep_for_window(&route, messages, now).await;
        }
        let sent = match self.send_all(&route, &messages, true).await {
            Ok(sent) => sent,
            Err((sent, stop)) => {
                return self
                    .keep_unsent(&route, messages[sent..].to_vec(), sent, stop, attempt, now)
                    .await;
            }
        };
        Outcome::Replied { messages: sent }
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
        let route = Route {
            from,
            to,
            id,
            key: SessionKey::of(message),
            held,
        };
        let now = unix_now();
        // The user's message opens (or keeps open) their 24-hour window. Counted from now, not
        // from the message's own timestamp: a sender's clock, a replayed sample event or a
        // queue's delay must not make us think the window closed while it is open. A message
        // answered more than a day late (a job redriven from the dead-letter queue) is caught
        // by Meta's refusal instead (131047): the reply is then kept like any other.
        let session = match &route.key {
            Some(key) => {
                self.conversations
                    .update(key, |session| session.record_user_message(now))
                    .await
            }
            None => None,
        };
        let session = session.unwrap_or_default();

        // A retry of a message whose answer stopped part-way: the rest, not a second answer.
        let own: Vec<KeptReply> = kept(&session)
            .into_iter()
            .filter(|kept| kept.answers == id.as_str())
            .collect();
        if !own.is_empty() {
            return self.resume(&route, own, attempt, now).await;
        }
        // Replies kept for this user (their window was closed, or an earlier answer could not
        // be sent): they wrote, so they go out first.
        if !session.pending.is_empty() {
            self.deliver_kept(&route, now).await;
        }
        if let Some(approvals) = &self.approvals
            && let Some(tapped) = approvals.tap(message, now).await
        {
            let own = OwnAnswer {
                message: tapped.reply.map(|body| OutgoingMessage::Text { body }),
                change: Change::None,
                what: "approval tap",
            };
            let outcome = self.own_answer(&route, own, attempt).await;
            if let Some(decided) = tapped.decided {
                self.approval_decided(&decided).await;
            }
            return outcome;
        }
        let tap = match &self.paging {
            Some(paging) => paging.tap(message, now).await,
            None => None,
        };
        let (named, request) = match tap {
            Some(TapOutcome::Reply(body)) => {
                let own = OwnAnswer {
                    message: Some(OutgoingMessage::Text { body }),
                    change: Change::None,
                    what: "page tap",
                };
                return self.own_answer(&route, own, attempt).await;
            }
            Some(TapOutcome::Agent(action)) => self.alert_request(message, &session, &action),
            None => {
                if let Some(own) = self.conversations.own_answer(message, &session, now) {
                    return self.own_answer(&route, own, attempt).await;
                }
                (
                    self.conversations.agent_of(&session),
                    self.conversations.request(message, &session),
                )
            }
        };
        let user_text = request.event.text.clone();
        let asked = Instant::now();
        let mut stream = named.agent.ask_stream(&request);
        let first = self.while_typing(from, id, true, stream.next()).await;
        let agent_ms = asked.elapsed().as_millis() as u64;
        let reply = match first {
            None => {
                tracing::info!(message_id = %id, agent = %named.name, agent_ms, parts = 0, "agent answered");
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
        let reply = match reply {
            Ok(reply) => reply,
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
                        &route,
                        &[agent_failed(failure.retryable)],
                        Attempt::Last,
                        Some(failure),
                    )
                    .await;
            }
        };
        let messages = format_reply(&reply);
        tracing::info!(message_id = %id, agent = %named.name, agent_ms, parts = messages.len(), "agent answered");
        let mut said = Said::default();
        said.note(now, &reply);
        let outcome = match self.send_all(&route, &messages, true).await {
            Ok(sent) => {
                self.send_rest(&route, &mut stream, sent, attempt, &mut said)
                    .await
            }
            Err((sent, stop)) => {
                let mut unsent = messages[sent..].to_vec();
                unsent.extend(self.drain(&mut stream, &mut said).await);
                self.keep_unsent(&route, unsent, sent, stop, attempt, now)
                    .await
            }
        };
        if let Some(key) = &route.key {
            self.conversations
                .update(key, |session| {
                    self.conversations
                        .record(session, message, user_text.clone(), &said.turns)
                })
                .await;
        }
        // The agent is not asked again (a retry sends what was kept): what it asked is asked
        // now, unless someone else took the message over.
        if !matches!(outcome, Outcome::ClaimLost { .. }) {
            self.ask_approvals(&route, &message.sender, &named.name, &said, now)
                .await;
        }
        outcome
    }

    /// The approvals an agent's answer asked for, asked of the approvers (the requester is
    /// told what happens); one that could not be read, or asked while approvals are off, is
    /// explained to the requester and nothing runs.
    async fn ask_approvals(
        &self,
        route: &Route<'_>,
        requester: &Sender,
        agent: &str,
        said: &Said,
        now: i64,
    ) {
        let mut notes = Vec::new();
        for reason in &said.unreadable {
            tracing::warn!(message_id = %route.id, reason = %reason, "the agent asked for an approval that cannot be read: not asked");
            notes.push(format!(
                "⚠️ The agent asked for an approval that could not be read ({reason}): nothing \
                 was asked and nothing will run."
            ));
        }
        match &self.approvals {
            None if !said.asks.is_empty() => {
                tracing::error!(message_id = %route.id, asks = said.asks.len(), "the agent asked for an approval, but approvals are off (APPROVERS unset): not asked");
                notes.push(
                    "⚠️ The agent asked for an approval, but approvals are not set up here \
                     (APPROVERS is unset): nothing was asked and nothing will run."
                        .to_owned(),
                );
            }
            None => {}
            Some(approvals) => {
                let who = crate::approvals::approvers::Identity::of(requester);
                for ask in &said.asks {
                    let asked = approvals
                        .ask_for_agent(ask, &who, route.from, Some(route.id.as_str()), agent, now)
                        .await;
                    match asked {
                        Ok(Asked::Waiting { id }) => {
                            tracing::info!(message_id = %route.id, approval = %id, "approval asked for the agent");
                        }
                        Ok(Asked::Refused { reason }) => {
                            tracing::warn!(message_id = %route.id, reason = %reason, "the agent's approval request was refused");
                        }
                        Err(error) => {
                            tracing::error!(message_id = %route.id, %error, "the agent's approval request could not be recorded");
                            notes.push(
                                "⚠️ The approval the agent asked for could not be requested \
                                 just now: nothing will run. Ask again in a moment."
                                    .to_owned(),
                            );
                        }
                    }
                }
            }
        }
        for body in notes {
            let note = OutgoingMessage::Text { body };
            if let Err(error) = self
                .messenger
                .send(route.from, &route.to, &note, None)
                .await
            {
                tracing::error!(message_id = %route.id, %error, "could not tell the requester about their approval");
            }
        }
    }

    /// A request an agent asked for is decided: that agent gets the decision (`event.type`
    /// `approval`) in the requester's conversation, and its answer goes to the requester.
    /// Exactly once per request (a claim on `approval:<id>`); the agent is asked once, its
    /// failure gives the requester the ❌ message.
    pub async fn approval_decided(&self, decided: &AgentDecision) -> Outcome {
        let key = MessageId(format!("approval:{}", decided.approval.id));
        let held = match self.claim(&key).await {
            Ok(held) => held,
            Err(early) => return early,
        };
        let outcome = self
            .while_held(&held, self.decision_held(decided, &key, &held))
            .await;
        self.settle(&held, &outcome).await;
        tracing::info!(approval = %decided.approval.id, decision = decided.decision.as_str(), outcome = ?outcome, "agent told of the approval's decision");
        outcome
    }

    async fn decision_held(
        &self,
        decided: &AgentDecision,
        key: &MessageId,
        held: &Held<'_>,
    ) -> Outcome {
        let approval = &decided.approval;
        let from = &approval.from;
        let sender = Sender {
            phone: decided.requester.phone.clone(),
            bsuid: decided.requester.bsuid.clone(),
            display_name: None,
        };
        let Some(to) = Recipient::of(&sender) else {
            return Outcome::Undeliverable;
        };
        let route = Route {
            from,
            to,
            id: key,
            key: SessionKey::new(from, &sender),
            held,
        };
        let now = unix_now();
        let session = match &route.key {
            Some(session_key) => self.conversations.load(session_key).await,
            None => None,
        }
        .unwrap_or_default();
        let agents = self.conversations.agents();
        let named = agents
            .get(&decided.agent)
            .unwrap_or_else(|| agents.selected(None));
        let text = format!("{}: {}", decided.decision.as_str(), approval.summary);
        let event = InboundMessage {
            id: key.clone(),
            timestamp: now,
            sender: sender.clone(),
            channel: crate::domain::Channel {
                phone_number_id: from.clone(),
                display_phone_number: None,
                business_account_id: None,
            },
            reply_to: approval.thread.as_deref().map(MessageId::from),
            kind: crate::domain::MessageKind::Text { body: text.clone() },
        };
        let mut request = self.conversations.request(&event, &session);
        request.event.kind = "approval".to_owned();
        request.event.approval = Some(crate::agent::contract::ApprovalRef {
            id: approval.id.clone(),
            decision: decided.decision.as_str().to_owned(),
            decided_by: approval.decided_by(),
            summary: approval.summary.clone(),
            command: approval.command.clone(),
        });
        request.session.agent = named.name.clone();
        let mut stream = named.agent.ask_stream(&request);
        let mut said = Said::default();
        let mut sent = 0;
        let mut failed = None;
        while let Some(part) = stream.next().await {
            let messages = match part {
                Ok(reply) if !reply.is_unreadable() => {
                    said.note(unix_now(), &reply);
                    format_reply(&reply)
                }
                Ok(reply) => {
                    tracing::error!(approval = %approval.id, reason = %reply.unreadable_reason(), "the agent's answer to a decision is unreadable");
                    failed = Some(AgentFailure { retryable: false });
                    vec![agent_failed(false)]
                }
                Err(error) if sent == 0 => {
                    tracing::error!(approval = %approval.id, %error, "the agent failed on an approval's decision; telling the requester");
                    failed = Some(AgentFailure {
                        retryable: error.is_retryable(),
                    });
                    vec![agent_failed(false)]
                }
                Err(error) => {
                    tracing::error!(approval = %approval.id, %error, "the agent's answer to a decision broke off");
                    vec![agent_cut_off()]
                }
            };
            match self.send_all(&route, &messages, false).await {
                Ok(count) => sent += count,
                Err((count, stop)) => {
                    return self
                        .keep_unsent(
                            &route,
                            messages[count..].to_vec(),
                            sent + count,
                            stop,
                            Attempt::Last,
                            now,
                        )
                        .await;
                }
            }
            if failed.is_some() {
                break;
            }
        }
        if let Some(session_key) = &route.key
            && !said.turns.is_empty()
        {
            self.conversations
                .update(session_key, |session| {
                    self.conversations
                        .record_exchange(session, text.clone(), now, &said.turns)
                })
                .await;
        }
        self.ask_approvals(&route, &sender, &named.name, &said, now)
            .await;
        match (failed, sent) {
            (Some(AgentFailure { retryable }), _) => Outcome::AgentFailed { retryable },
            (None, 0) => Outcome::NoReply,
            (None, sent) => Outcome::Replied { messages: sent },
        }
    }

    /// The agent and the request for an acknowledgement or a request for details on a page:
    /// `event.type` `alert_action`, to the agent `ONCALL` names for the alert.
    fn alert_request(
        &self,
        message: &InboundMessage,
        session: &crate::sessions::Session,
        action: &AlertAction,
    ) -> (&crate::agent::NamedAgent, crate::agent::AgentRequest) {
        let agents = self.conversations.agents();
        let named = action
            .agent
            .as_deref()
            .and_then(|name| agents.get(name))
            .unwrap_or_else(|| agents.selected(None));
        let mut request = self.conversations.request(message, session);
        let alert = &action.alert;
        let mut text = format!("{}: {}", action.action.as_str(), alert.title);
        for also in &action.also {
            text.push_str("; ");
            text.push_str(also);
        }
        request.event.kind = "alert_action".to_owned();
        request.event.text = text;
        request.event.action = Some(action.action.as_str().to_owned());
        request.event.alert = Some(crate::agent::contract::AlertRef {
            id: action.incident_id.clone(),
            title: alert.title.clone(),
            severity: alert.severity.clone(),
            status: match action.state {
                IncidentState::Acknowledged => "acknowledged",
                IncidentState::Resolved => "resolved",
                IncidentState::Escalating | IncidentState::Exhausted => "firing",
            }
            .to_owned(),
            summary: alert.summary.clone(),
            labels: alert.labels.clone(),
            url: alert.url.clone(),
            source: alert.source.as_str().to_owned(),
            started_at: crate::agent::contract::rfc3339(alert.started_at),
        });
        request.session.agent = named.name.clone();
        (named, request)
    }

    /// Sends the parts a streaming agent writes after its first, each as soon as it arrives,
    /// showing the typing indicator while waiting for the next. An agent that fails after its
    /// first part has been shown cannot be asked again (a second answer would differ from the
    /// first): the user is told the answer stopped, and the message counts as answered. A send
    /// that fails keeps what is left (this part's rest and the parts still to come).
    async fn send_rest(
        &self,
        route: &Route<'_>,
        stream: &mut ReplyStream<'_>,
        mut sent: usize,
        attempt: Attempt,
        said: &mut Said,
    ) -> Outcome {
        let mut part = 1;
        while let Some(next) = self
            .while_typing(route.from, route.id, false, stream.next())
            .await
        {
            part += 1;
            let messages = match next {
                Ok(reply) => {
                    said.note(unix_now(), &reply);
                    format_reply(&reply)
                }
                Err(error) => {
                    tracing::error!(message_id = %route.id, %error, part, "agent's streamed answer broke off; telling the user");
                    vec![agent_cut_off()]
                }
            };
            tracing::info!(message_id = %route.id, part, messages = messages.len(), "agent sent another part");
            match self.send_all(route, &messages, false).await {
                Ok(count) => sent += count,
                Err((count, stop)) => {
                    let mut unsent = messages[count..].to_vec();
                    unsent.extend(self.drain(stream, said).await);
                    return self
                        .keep_unsent(route, unsent, sent + count, stop, attempt, unix_now())
                        .await;
                }
            }
        }
        if sent == 0 {
            Outcome::NoReply
        } else {
            Outcome::Replied { messages: sent }
        }
    }

    /// The rest of a streamed answer, formatted, without sending it (the user is not to see
    /// it now); a part that fails ends it, with the note that it stopped.
    async fn drain(&self, stream: &mut ReplyStream<'_>, said: &mut Said) -> Vec<OutgoingMessage> {
        let mut messages = Vec::new();
        while let Some(next) = stream.next().await {
            match next {
                Ok(reply) => {
                    said.note(unix_now(), &reply);
                    messages.extend(format_reply(&reply));
                }
                Err(_) => {
                    messages.push(agent_cut_off());
                    break;
                }
            }
        }
        messages
    }

    /// A send stopped part-way: the parts not sent are kept in the conversation, to be sent by
    /// the retry (without asking the agent again) or, on the last attempt, when the user next
    /// writes. Without a conversation to keep them in, a failure before the first part is
    /// retried from the start.
    async fn keep_unsent(
        &self,
        route: &Route<'_>,
        unsent: Vec<OutgoingMessage>,
        sent: usize,
        stop: SendStop,
        attempt: Attempt,
        now: i64,
    ) -> Outcome {
        let error = match stop {
            SendStop::ClaimLost => return Outcome::ClaimLost { sent },
            SendStop::Graph(error) => error,
        };
        if error.is_reengagement() && !unsent.is_empty() {
            // Meta says the window is closed (our record of it can be wrong): keep the reply
            // for the user's next message.
            return self.keep_for_window(route, unsent, now).await;
        }
        let reason = error.to_string();
        let kept = match (&route.key, unsent.is_empty(), error.is_retryable()) {
            (Some(key), false, true) => {
                let reply = KeptReply {
                    answers: route.id.as_str().to_owned(),
                    parts: unsent,
                    because: KeptBecause::SendFailed,
                    kept_at: now,
                };
                let parts = reply.parts.len();
                self.conversations
                    .update(key, |session| {
                        take_kept(session, |kept| kept.answers == reply.answers);
                        self.conversations.keep(session, key, &reply);
                    })
                    .await
                    .map(|_| parts)
            }
            _ => None,
        };
        match (kept, attempt) {
            (Some(parts), Attempt::Retryable) => {
                tracing::warn!(message_id = %route.id, sent, kept = parts, "sending stopped part-way; the rest is kept for the retry");
                Outcome::Retry { reason }
            }
            (Some(parts), Attempt::Last) => {
                tracing::error!(message_id = %route.id, sent, kept = parts, "sending stopped on the last attempt; the rest is kept until the user writes again");
                Outcome::SendFailed { sent }
            }
            (None, _) => stopped((sent, SendStop::Graph(error)), attempt),
        }
    }

    /// Sends the parts an earlier attempt kept for this message (a retry after a send failed
    /// part-way); what still fails stays kept.
    async fn resume(
        &self,
        route: &Route<'_>,
        own: Vec<KeptReply>,
        attempt: Attempt,
        now: i64,
    ) -> Outcome {
        if let Err(error) = self.messenger.mark_read(route.from, route.id, false).await {
            tracing::warn!(message_id = %route.id, %error, "could not mark the message read");
        }
        let parts: Vec<OutgoingMessage> = own.into_iter().flat_map(|kept| kept.parts).collect();
        tracing::info!(message_id = %route.id, parts = parts.len(), "sending the rest of an answer kept by an earlier attempt");
        match self.send_all(route, &parts, false).await {
            Ok(sent) => {
                if let Some(key) = &route.key {
                    self.conversations
                        .update(key, |session| {
                            take_kept(session, |kept| kept.answers == route.id.as_str());
                        })
                        .await;
                }
                Outcome::Replied { messages: sent }
            }
            Err((sent, stop)) => {
                self.keep_unsent(route, parts[sent..].to_vec(), sent, stop, attempt, now)
                    .await
            }
        }
    }

    /// Sends the replies kept for this user by earlier messages (their window was closed, or
    /// a last attempt failed), oldest first, now that they wrote. What fails stays kept.
    async fn deliver_kept(&self, route: &Route<'_>, now: i64) {
        let Some(key) = &route.key else { return };
        let mut taken = Vec::new();
        let updated = self
            .conversations
            .update(key, |session| {
                taken = take_kept(session, |kept| kept.answers != route.id.as_str());
            })
            .await;
        if updated.is_none() || taken.is_empty() {
            return;
        }
        tracing::info!(message_id = %route.id, replies = taken.len(), "delivering replies kept for this user");
        let mut failed = Vec::new();
        for reply in taken {
            if !failed.is_empty() {
                failed.push(reply);
                continue;
            }
            if let Err((sent, _)) = self.send_all(route, &reply.parts, false).await {
                failed.push(KeptReply {
                    parts: reply.parts[sent..].to_vec(),
                    kept_at: now,
                    ..reply
                });
            }
        }
        if !failed.is_empty() {
            tracing::warn!(message_id = %route.id, replies = failed.len(), "kept replies could not all be sent; they stay kept");
            self.conversations
                .update(key, |session| {
                    for reply in &failed {
                        self.conversations.keep(session, key, reply);
                    }
                })
                .await;
        }
    }

    /// The user's 24-hour window is closed: the reply is kept, and the re-engagement template
    /// (when configured) invites them back; their next message or tap delivers it.
    async fn keep_for_window(
        &self,
        route: &Route<'_>,
        messages: Vec<OutgoingMessage>,
        now: i64,
    ) -> Outcome {
        let Some(key) = &route.key else {
            return Outcome::Undeliverable;
        };
        let reply = KeptReply {
            answers: route.id.as_str().to_owned(),
            parts: messages,
            because: KeptBecause::WindowClosed,
            kept_at: now,
        };
        let parts = reply.parts.len();
        let kept = self
            .conversations
            .update(key, |session| self.conversations.keep(session, key, &reply))
            .await;
        if kept.is_none() {
            tracing::error!(message_id = %route.id, "the 24-hour window is closed and the reply could not be kept: it is lost");
            return Outcome::SendFailed { sent: 0 };
        }
        let Some(template) = self.conversations.reengage_template() else {
            tracing::error!(message_id = %route.id, parts, "the user's 24-hour window is closed: WhatsApp refuses free-form messages until they write again (set REENGAGE_TEMPLATE to invite them back); the reply is kept until then");
            return Outcome::Kept { parts };
        };
        let invite = OutgoingMessage::Template {
            template: template.clone(),
            body: Vec::new(),
            quick_replies: vec![format!("{WINDOW_TAP_PREFIX}{}", new_nonce())],
        };
        match self
            .send_all(route, std::slice::from_ref(&invite), false)
            .await
        {
            Ok(_) => {
                tracing::info!(message_id = %route.id, parts, template = %template, "window closed: reply kept, template sent");
            }
            Err((_, _)) => {
                tracing::error!(message_id = %route.id, parts, template = %template, "window closed: reply kept, but the template could not be sent");
            }
        }
        Outcome::Kept { parts }
    }

    /// A built-in command or a tap on one of our lists: answered by the function, kept in the
    /// conversation (a list's menu with the id WhatsApp gave it, a selection, a reset).
    async fn own_answer(&self, route: &Route<'_>, own: OwnAnswer, attempt: Attempt) -> Outcome {
        if let Err(error) = self.messenger.mark_read(route.from, route.id, false).await {
            tracing::warn!(message_id = %route.id, %error, "could not mark the message read");
        }
        let mut sent_id = None;
        let mut sent = 0;
        if let Some(message) = &own.message {
            if !route.held.is_held() {
                return Outcome::ClaimLost { sent: 0 };
            }
            match self
                .messenger
                .send(route.from, &route.to, message, Some(route.id))
                .await
            {
                Ok(id) => {
                    sent_id = Some(id);
                    sent = 1;
                }
                Err(error) => {
                    tracing::error!(message_id = %route.id, %error, what = own.what, "sending the function's own answer failed");
                    return stopped((0, SendStop::Graph(error)), attempt);
                }
            }
        }
        if let Some(key) = &route.key {
            let sent_id = sent_id.as_ref().map(|id| id.as_str());
            self.conversations
                .update(key, |session| {
                    self.conversations.apply(session, &own.change, sent_id)
                })
                .await;
        }
        tracing::info!(message_id = %route.id, what = own.what, "answered by the function");
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
    async fn send_outcome(
        &self,
        route: &Route<'_>,
        messages: &[OutgoingMessage],
        attempt: Attempt,
        agent_failure: Option<AgentFailure>,
    ) -> Outcome {
        match (self.send_all(route, messages, true).await, agent_failure) {
            (Ok(_), Some(AgentFailure { retryable })) => Outcome::AgentFailed { retryable },
            (Ok(0), None) => Outcome::NoReply,
            (Ok(sent), None) => Outcome::Replied { messages: sent },
            (Err(stop), _) => stopped(stop, attempt),
        }
    }

    /// Sends the parts in order while the claim is held: a part is never sent once the claim
    /// may belong to someone else, who would send it too. With `quote_first`, the first part
    /// quotes the user's message, so that parallel questions stay readable.
    async fn send_all(
        &self,
        route: &Route<'_>,
        messages: &[OutgoingMessage],
        quote_first: bool,
    ) -> Result<usize, (usize, SendStop)> {
        for (index, outgoing) in messages.iter().enumerate() {
            if !route.held.is_held() {
                tracing::error!(
                    message_id = %route.id,
                    part = index + 1,
                    of = messages.len(),
                    "claim lost before this part: not sending it or the rest"
                );
                return Err((index, SendStop::ClaimLost));
            }
            let context = (quote_first && index == 0).then_some(route.id);
            if let Err(error) = self
                .messenger
                .send(route.from, &route.to, outgoing, context)
                .await
            {
                tracing::error!(
                    message_id = %route.id,
                    %error,
                    retryable = error.is_retryable(),
                    part = index + 1,
                    of = messages.len(),
                    to = %crate::domain::mask(route.to.as_str()),
                    "sending the reply failed"
                );
                return Err((index, SendStop::Graph(error)));
            }
        }
        Ok(messages.len())
    }
}

/// Where one answer goes: what its sends need.
struct Route<'a> {
    from: &'a PhoneNumberId,
    to: Recipient,
    /// The message answered: quoted by the first part, the key of what is kept for it.
    id: &'a MessageId,
    /// Its conversation (`None` only without a sender to key it by).
    key: Option<SessionKey>,
    held: &'a Held<'a>,
}

/// What the agent said over one answer (its parts): the turns the history keeps, and the
/// approvals it asked for.
#[derive(Default)]
struct Said {
    turns: Vec<(i64, String)>,
    asks: Vec<ApprovalAsk>,
    /// Approvals it asked for that could not be read: where and why (our words).
    unreadable: Vec<String>,
}

impl Said {
    fn note(&mut self, at: i64, reply: &crate::agent::AgentReply) {
        self.turns.push((at, turn_text(reply)));
        self.asks.extend(reply.approval.clone());
        self.unreadable.extend(
            reply
                .dropped
                .iter()
                .filter(|part| part.part.starts_with("approval") || part.part == "command")
                .map(ToString::to_string),
        );
    }
}

/// What the history keeps of a reply: its text, or what it showed when it had none.
fn turn_text(reply: &crate::agent::AgentReply) -> String {
    match &reply.text {
        Some(text) if !text.trim().is_empty() => text.clone(),
        _ if reply.list.is_some() => "[a list to choose from]".to_owned(),
        _ if !reply.attachments.is_empty() => {
            format!("[{} attachment(s)]", reply.attachments.len())
        }
        _ => "[no text]".to_owned(),
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
    use crate::agent::{AgentReply, ScriptedAgent};
    use crate::domain::MessageKind;
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
        InboundMessage::sample(
            "wamid.LOST.1",
            MessageKind::Text {
                body: "status?".into(),
            },
        )
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

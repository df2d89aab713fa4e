//! The approvals engine: a request is recorded, its approvers are asked with Approve and Deny
//! buttons (the approval template when their 24-hour window is closed), their taps are votes,
//! `required` approvals approve it and one deny denies it, and an undecided request expires on
//! time. Everyone involved is told the outcome; the agent that asked (or the Step Functions
//! task waiting on it) gets the decision.
//!
//! One record per request in the approvals table (`approval#<id>`, [`Approval`]): what is
//! asked, by whom, of whom (each approver's copy with its nonce and the wamid WhatsApp gave
//! it), the votes, the state. Every change is a read-modify-write with a conditional write, so
//! however many taps arrive at the same moment (and however often a job or a timer is
//! delivered) a vote counts once per approver and the decision is made exactly once: the write
//! that moves the request out of `pending` is the only one that decides it.
//!
//! A tap counts only when it is ours (`wal:approval:<id>:<nonce>:<approve|deny>`, the nonce
//! 128 random bits), from the approver that copy was sent to (phone number or BSUID), quoting
//! that very message, while the request is pending and before it expires. The requester may
//! not approve their own request unless `ALLOW_SELF_APPROVAL` is set (they are then not asked
//! at all). People are named by configuration (`ONCALL`'s names) or by their masked number,
//! never by their WhatsApp profile name.
//!
//! Every request, vote, refusal, decision and expiry is one log line with `audit=true`
//! (the request's id, who by masked id, what, when); the record is kept for
//! `APPROVAL_RETENTION_DAYS`.

use super::approvers::{Approvers, Identity};
use super::{
    APPROVAL_TAP_PREFIX, ApprovalAsk, CallbackError, Decision, TaskApproval, TaskCallbacks,
    TaskOutcome,
};
use crate::domain::{
    InboundMessage, MessageId, MessageKind, OutgoingMessage, PhoneNumberId, ReplyButton,
    TemplateRef,
};
use crate::graph::Messenger;
use crate::records::{RecordError, RecordStore, Records};
use crate::reply::params::{duration_words, template_param};
use crate::sessions::Notifier;
use crate::sessions::commands::new_nonce;
use crate::timers::{Timer, TimerError, TimerKind, Timers};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// The shortest expiry a request gets, whatever it asks (a tap needs time to happen).
pub const MIN_EXPIRY_SECS: u64 = 60;
/// Longest command shown (in the template's parameter and the interactive body).
pub const COMMAND_MAX: usize = 700;
/// Longest summary shown; a longer one is cut with `…` (the command never is).
const SUMMARY_MAX: usize = 200;
/// WhatsApp's limit on an interactive message's body.
const BODY_MAX: usize = 1024;
/// Characters of a request's short id.
const ID_LEN: usize = 8;
/// Crockford's base 32 (no I, L, O, U): read aloud or typed without confusion.
const ID_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// A decision whose notices and answers did not finish (the process died between the two) is
/// finished again by the next tap or timer after this long.
const FINISH_GRACE_SECS: i64 = 60;

/// A vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VoteKind {
    Approve,
    Deny,
}

impl VoteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approve => "approve",
            Self::Deny => "deny",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        [Self::Approve, Self::Deny]
            .into_iter()
            .find(|vote| vote.as_str() == word)
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl ApprovalState {
    fn decision(self) -> Option<Decision> {
        match self {
            Self::Pending => None,
            Self::Approved => Some(Decision::Approved),
            Self::Denied => Some(Decision::Denied),
            Self::Expired => Some(Decision::Expired),
        }
    }
}

/// Who asked: a person, or a state machine on their behalf.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// An agent's reply asked: the agent named gets the decision, its answer goes to the
    /// requester.
    Agent { agent: String },
    /// A Step Functions task waits on it (`waitForTaskToken`).
    Task { task_token: String },
}

/// One approver's copy of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AskedApprover {
    pub who: Identity,
    pub name: String,
    /// The 128-bit nonce of this copy's buttons.
    pub nonce: String,
    /// The wamid of the copy, once sent (`None`: it could not be sent).
    #[serde(default)]
    pub sent_id: Option<String>,
}

/// One vote, as counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    pub who: Identity,
    pub name: String,
    pub vote: VoteKind,
    /// Unix seconds (the tap's own time).
    pub at: i64,
}

/// One approval request: the table's full record of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The short id people see ("A7K2QX9M").
    pub id: String,
    pub summary: String,
    pub command: String,
    /// Who asked (`None`: a state machine that named nobody).
    #[serde(default)]
    pub requester: Option<Identity>,
    pub requester_name: String,
    /// The message of the requester the request answers (its notices quote it).
    #[serde(default)]
    pub thread: Option<String>,
    pub origin: Origin,
    /// The business number the request and its notices go out from.
    pub from: PhoneNumberId,
    pub required: u32,
    pub approvers: Vec<AskedApprover>,
    #[serde(default)]
    pub votes: Vec<Vote>,
    pub state: ApprovalState,
    pub created_at: i64,
    /// When it expires unless decided.
    pub expires_at: i64,
    #[serde(default)]
    pub decided_at: Option<i64>,
    /// Everyone was told the outcome and the task (if any) was answered.
    #[serde(default)]
    pub finished: bool,
}

impl Approval {
    fn approvals(&self) -> usize {
        self.votes
            .iter()
            .filter(|vote| vote.vote == VoteKind::Approve)
            .count()
    }

    /// Who decided: the approvers when approved, the one who denied, nobody when it expired.
    pub fn decided_by(&self) -> Vec<String> {
        let wanted = match self.state {
            ApprovalState::Approved => VoteKind::Approve,
            ApprovalState::Denied => VoteKind::Deny,
            ApprovalState::Pending | ApprovalState::Expired => return Vec::new(),
        };
        self.votes
            .iter()
            .filter(|vote| vote.vote == wanted)
            .map(|vote| vote.name.clone())
            .collect()
    }

    /// The decision, for a task's output or cause.
    pub fn task_outcome(&self) -> TaskOutcome {
        TaskOutcome {
            id: self.id.clone(),
            decision: self
                .state
                .decision()
                .map_or("pending", Decision::as_str)
                .to_owned(),
            decided_by: self.decided_by(),
            summary: self.summary.clone(),
            command: self.command.clone(),
            reason: None,
        }
    }
}

/// A decision for the agent that asked: the pipeline asks it (`event.type` `approval`) and
/// sends its answer to the requester.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentDecision {
    pub agent: String,
    pub requester: Identity,
    pub approval: Approval,
    pub decision: Decision,
}

/// What asking did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked {
    /// Recorded and sent to the approvers: waiting.
    Waiting { id: String },
    /// Not asked: `reason` (the requester was told; a task got `approval.refused`).
    Refused { reason: String },
}

/// The answer to a tap on one of our requests.
#[derive(Debug, Clone, PartialEq)]
pub struct Tapped {
    /// Tell the person who tapped this (`None`: the outcome notice already told them).
    pub reply: Option<String>,
    /// The tap decided a request an agent asked for: ask that agent.
    pub decided: Option<Box<AgentDecision>>,
}

/// Why approvals could not go on (the job is retried, the timer delivered again).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApprovalError {
    #[error("approvals table: {0}")]
    Records(#[from] RecordError),
    #[error(transparent)]
    Timer(#[from] TimerError),
    #[error(transparent)]
    Callback(#[from] CallbackError),
}

impl ApprovalError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Records(error) => error.is_retryable(),
            Self::Timer(_) => true,
            Self::Callback(error) => error.is_retryable(),
        }
    }
}

/// What approvals need from the configuration.
#[derive(Debug, Clone)]
pub struct ApprovalsConfig {
    /// `APPROVERS`.
    pub approvers: Approvers,
    /// `PHONE_NUMBER_ID`: the business number a state machine's requests go out from.
    pub from: PhoneNumberId,
    /// `APPROVAL_TEMPLATE`: the request when an approver's 24-hour window is closed. Its body
    /// has four parameters (who asks, the summary, the command, the time left) and two
    /// quick-reply buttons (Approve, Deny).
    pub template: TemplateRef,
    /// `APPROVAL_EXPIRY_SECS`.
    pub default_expiry: Duration,
    /// `APPROVAL_MAX_EXPIRY_SECS`: no request lives longer, whatever it asks.
    pub max_expiry: Duration,
    /// `ALLOW_SELF_APPROVAL`.
    pub allow_self: bool,
    /// `APPROVAL_RETENTION_DAYS`: how long the table keeps a request's record.
    pub retention: Duration,
    /// Names by phone number (digits), from `ONCALL`.
    pub names: BTreeMap<String, String>,
}

/// The approvals engine; shared (`Arc`) by the pipeline, the worker and the timers.
pub struct Approvals {
    config: ApprovalsConfig,
    records: Records,
    timers: Arc<dyn Timers>,
    messenger: Arc<dyn Messenger>,
    notifier: Notifier,
    callbacks: Option<Arc<dyn TaskCallbacks>>,
}

impl Approvals {
    pub fn new(
        config: ApprovalsConfig,
        store: Arc<dyn RecordStore>,
        timers: Arc<dyn Timers>,
        notifier: Notifier,
        callbacks: Option<Arc<dyn TaskCallbacks>>,
    ) -> Self {
        Self {
            config,
            records: Records::new(store, "approvals"),
            timers,
            messenger: notifier.messenger().clone(),
            notifier,
            callbacks,
        }
    }

    pub fn approvers(&self) -> &Approvers {
        &self.config.approvers
    }

    /// An agent's reply asked for an approval on behalf of `requester`, who wrote to `from`
    /// (`thread`: their message). The requester is told what happens either way.
    pub async fn ask_for_agent(
        &self,
        ask: &ApprovalAsk,
        requester: &Identity,
        from: &PhoneNumberId,
        thread: Option<&str>,
        agent: &str,
        now: i64,
    ) -> Result<Asked, ApprovalError> {
        let origin = Origin::Agent {
            agent: agent.to_owned(),
        };
        self.ask(ask, Some(requester), from, thread, origin, now)
            .await
    }

    /// A state machine's task asks (a job from the queue): the approvers are asked from
    /// `PHONE_NUMBER_ID`; a request that cannot be asked fails the task (`approval.refused`).
    pub async fn ask_for_task(
        &self,
        task: &TaskApproval,
        now: i64,
    ) -> Result<Asked, ApprovalError> {
        let requester = match task.requester.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(entry) => match Identity::parse(entry) {
                Some(person) => Some(person),
                None => {
                    let reason = "the task's requester is neither a phone number nor a BSUID";
                    self.refuse_task(task, reason).await?;
                    return Ok(Asked::Refused {
                        reason: reason.to_owned(),
                    });
                }
            },
        };
        let origin = Origin::Task {
            task_token: task.task_token.clone(),
        };
        let from = self.config.from.clone();
        let asked = self
            .ask(&task.ask, requester.as_ref(), &from, None, origin, now)
            .await?;
        if let Asked::Refused { reason } = &asked {
            self.refuse_task(task, reason).await?;
        }
        Ok(asked)
    }

    /// A task whose request could not be asked: `SendTaskFailure` `approval.refused`.
    async fn refuse_task(&self, task: &TaskApproval, reason: &str) -> Result<(), ApprovalError> {
        let outcome = TaskOutcome {
            id: String::new(),
            decision: "refused".to_owned(),
            decided_by: Vec::new(),
            summary: task.ask.summary.clone(),
            command: task.ask.command.clone(),
            reason: Some(reason.to_owned()),
        };
        let cause = serde_json::to_string(&outcome).unwrap_or_default();
        self.answer_task(&task.task_token, "approval.refused", &cause)
            .await
    }

    async fn ask(
        &self,
        ask: &ApprovalAsk,
        requester: Option<&Identity>,
        from: &PhoneNumberId,
        thread: Option<&str>,
        origin: Origin,
        now: i64,
    ) -> Result<Asked, ApprovalError> {
        let requester_name = requester.map_or_else(
            || "A state machine".to_owned(),
            |person| self.name_of(person),
        );
        let checked = match self.check(ask, requester, &requester_name) {
            Ok(checked) => checked,
            Err(reason) => {
                audit_line("", requester, "refused", now, Some(&reason));
                if let Some(person) = requester {
                    let text = format!(
                        "⚠️ Approval not requested: {reason}. Nothing was sent to the approvers \
                         and nothing will run."
                    );
                    self.tell(from, person, &text, thread, now).await;
                }
                return Ok(Asked::Refused { reason });
            }
        };
        let mut approval = Approval {
            id: String::new(),
            summary: checked.summary,
            command: ask.command.clone(),
            requester: requester.cloned(),
            requester_name,
            thread: thread.map(str::to_owned),
            origin,
            from: from.clone(),
            required: checked.required,
            approvers: checked
                .approvers
                .into_iter()
                .map(|who| AskedApprover {
                    name: self.name_of(&who),
                    who,
                    nonce: new_nonce(),
                    sent_id: None,
                })
                .collect(),
            votes: Vec::new(),
            state: ApprovalState::Pending,
            created_at: now,
            expires_at: now.saturating_add(secs(checked.expiry)),
            decided_at: None,
            finished: false,
        };
        // Written before anything is sent, so that a quick tap finds it.
        approval.id = self.create(&approval).await?;
        audit_line(&approval.id, requester, "requested", now, None);
        self.timers
            .schedule(&Timer {
                due_at: approval.expires_at,
                kind: TimerKind::ApprovalExpiry {
                    id: approval.id.clone(),
                },
            })
            .await?;
        let mut sent = BTreeMap::new();
        let mut unreachable = Vec::new();
        for approver in &approval.approvers {
            match self.send_request(&approval, approver, now).await {
                Some(sent_id) => {
                    sent.insert(approver.nonce.clone(), sent_id);
                }
                None => unreachable.push(approver.name.clone()),
            }
        }
        let id = approval.id.clone();
        self.records
            .update::<Approval, _>(
                &approval_key(&id),
                |current| match current {
                    Some(mut stored) => {
                        for approver in &mut stored.approvers {
                            if let Some(sent_id) = sent.get(&approver.nonce) {
                                approver.sent_id = Some(sent_id.clone());
                            }
                        }
                        (Some(stored), ())
                    }
                    None => (None, ()),
                },
                |stored| self.record_expiry(stored),
            )
            .await?;
        tracing::info!(
            approval = %id,
            approvers = approval.approvers.len(),
            unreachable = unreachable.len(),
            required = approval.required,
            "approval requested"
        );
        if let Some(person) = requester {
            let asked: Vec<String> = approval
                .approvers
                .iter()
                .filter(|a| !unreachable.contains(&a.name))
                .map(|a| a.name.clone())
                .collect();
            let mut text = format!(
                "⏳ Waiting for approval from {} ({} needed) · {} · expires in {}",
                if asked.is_empty() {
                    "nobody".to_owned()
                } else {
                    asked.join(", ")
                },
                approval.required,
                approval.id,
                time_left(approval.expires_at - now)
            );
            if !unreachable.is_empty() {
                text.push_str(&format!(
                    "\n⚠️ Could not be reached: {}",
                    unreachable.join(", ")
                ));
            }
            self.tell(from, person, &text, thread, now).await;
        }
        Ok(Asked::Waiting { id })
    }

    /// The bounds configuration sets on what an agent may ask.
    fn check(
        &self,
        ask: &ApprovalAsk,
        requester: Option<&Identity>,
        requester_name: &str,
    ) -> Result<Checked, String> {
        let command = ask.command.as_str();
        if command.trim().is_empty() {
            return Err("the command is empty".to_owned());
        }
        if command.chars().count() > COMMAND_MAX {
            return Err(format!(
                "the command is longer than {COMMAND_MAX} characters and cannot be shown whole"
            ));
        }
        if command.contains("```") || template_param(command, COMMAND_MAX) != command {
            return Err(
                "the command cannot be shown exactly as it would run (it has line \
                        breaks, tabs, runs of spaces, control characters or ```); ask for \
                        a one-line command"
                    .to_owned(),
            );
        }
        let summary = shorten(
            &template_param(ask.summary.trim(), SUMMARY_MAX),
            SUMMARY_MAX,
        );
        let named = match &ask.approvers {
            None => self.config.approvers.all().to_vec(),
            Some(list) if list.is_empty() => {
                return Err("the request names no approvers".to_owned());
            }
            Some(list) => self.config.approvers.select(list)?,
        };
        let approvers: Vec<Identity> = named
            .into_iter()
            .filter(|person| {
                self.config.allow_self || requester.is_none_or(|asker| !asker.same(person))
            })
            .collect();
        let required = ask.required.unwrap_or(1);
        if required == 0 {
            return Err("`required` must be at least 1".to_owned());
        }
        if usize::try_from(required).unwrap_or(usize::MAX) > approvers.len() {
            return Err(format!(
                "it needs {required} approval(s), but only {} approver(s) can give one (the \
                 requester cannot approve their own request)",
                approvers.len()
            ));
        }
        let expiry = ask
            .expires_in_secs
            .unwrap_or(self.config.default_expiry.as_secs())
            .clamp(MIN_EXPIRY_SECS, self.config.max_expiry.as_secs());
        let body = request_body(requester_name, &summary, command, required, "99 h 59 min");
        if body.chars().count() > BODY_MAX {
            return Err(format!(
                "the command and summary are too long for one WhatsApp message ({BODY_MAX} \
                 characters)"
            ));
        }
        Ok(Checked {
            summary,
            approvers,
            required,
            expiry,
        })
    }

    /// Creates the record under a fresh short id (another on the rare collision).
    async fn create(&self, approval: &Approval) -> Result<String, ApprovalError> {
        let mut last = None;
        for _ in 0..4 {
            let id = short_id();
            let mut record = approval.clone();
            record.id = id.clone();
            match self
                .records
                .create(&approval_key(&id), &record, self.record_expiry(&record))
                .await
            {
                Ok(()) => return Ok(id),
                Err(error @ RecordError::Conflict { .. }) => last = Some(error),
                Err(error) => return Err(error.into()),
            }
        }
        Err(last.unwrap_or(RecordError::Conflict { attempts: 4 }).into())
    }

    /// Sends one approver their copy: buttons while their window is open, else the template
    /// (and the template when Meta says the window is closed). The wamid, or `None` when it
    /// could not be sent (logged).
    async fn send_request(
        &self,
        approval: &Approval,
        approver: &AskedApprover,
        now: i64,
    ) -> Option<String> {
        let to = approver.who.recipient()?;
        let from = &approval.from;
        let window_open = self.notifier.window_open(from, &to, now).await;
        let mut message = if window_open {
            self.request_buttons(approval, approver, now)
        } else {
            self.request_template(approval, approver, now)
        };
        let mut sent = self.messenger.send(from, &to, &message, None).await;
        if window_open && matches!(&sent, Err(error) if error.is_reengagement()) {
            message = self.request_template(approval, approver, now);
            sent = self.messenger.send(from, &to, &message, None).await;
        }
        match sent {
            Ok(id) => Some(id.as_str().to_owned()),
            Err(error) => {
                tracing::error!(approval = %approval.id, to = %approver.who.masked(), %error, code = error.code(), "approval request not sent: the Graph API refused it");
                None
            }
        }
    }

    fn request_buttons(
        &self,
        approval: &Approval,
        approver: &AskedApprover,
        now: i64,
    ) -> OutgoingMessage {
        let left = time_left(approval.expires_at - now);
        OutgoingMessage::Buttons {
            header: Some("🔐 Approval requested".to_owned()),
            body: request_body(
                &approval.requester_name,
                &approval.summary,
                &approval.command,
                approval.required,
                &left,
            ),
            footer: Some(format!("{} · expires in {left}", approval.id)),
            buttons: vec![
                ReplyButton {
                    id: tap_id(&approval.id, &approver.nonce, VoteKind::Approve),
                    title: "Approve".to_owned(),
                },
                ReplyButton {
                    id: tap_id(&approval.id, &approver.nonce, VoteKind::Deny),
                    title: "Deny".to_owned(),
                },
            ],
        }
    }

    fn request_template(
        &self,
        approval: &Approval,
        approver: &AskedApprover,
        now: i64,
    ) -> OutgoingMessage {
        OutgoingMessage::Template {
            template: self.config.template.clone(),
            body: vec![
                template_param(&approval.requester_name, 100),
                template_param(&approval.summary, SUMMARY_MAX),
                // Checked when asked: the parameter is the command, unchanged.
                approval.command.clone(),
                template_param(&time_left(approval.expires_at - now), 32),
            ],
            quick_replies: vec![
                tap_id(&approval.id, &approver.nonce, VoteKind::Approve),
                tap_id(&approval.id, &approver.nonce, VoteKind::Deny),
            ],
        }
    }

    /// A tap on one of our requests' buttons; `None` when `message` is no such tap.
    pub async fn tap(&self, message: &InboundMessage, now: i64) -> Option<Tapped> {
        let id = tapped_id(&message.kind)?;
        Some(match self.tap_inner(message, id, now).await {
            Ok(tapped) => tapped,
            Err(error) => {
                tracing::error!(%error, "approval tap could not be handled");
                Tapped {
                    reply: Some(
                        "⚠️ Your tap could not be recorded just now. Please tap again.".to_owned(),
                    ),
                    decided: None,
                }
            }
        })
    }

    async fn tap_inner(
        &self,
        message: &InboundMessage,
        tap: &str,
        now: i64,
    ) -> Result<Tapped, ApprovalError> {
        let reply = |text: String| {
            Ok(Tapped {
                reply: Some(text),
                decided: None,
            })
        };
        let tapper = Identity::of(&message.sender);
        let Some((id, nonce, vote)) = parse_tap(tap) else {
            tracing::warn!(sender = %message.sender.masked(), "approval tap with a malformed id: refused");
            return reply(NOT_ACTIVE.to_owned());
        };
        let Some(approval) = self.records.read::<Approval>(&approval_key(id)).await? else {
            tracing::info!(sender = %message.sender.masked(), "tap on an approval request that is unknown or no longer kept");
            return reply(NOT_ACTIVE.to_owned());
        };
        if !self.config.allow_self
            && approval
                .requester
                .as_ref()
                .is_some_and(|asker| asker.same(&tapper))
        {
            audit_line(id, Some(&tapper), "refused_self_approval", now, None);
            return reply("You asked for this: you cannot approve your own request.".to_owned());
        }
        let Some(copy) = approval
            .approvers
            .iter()
            .find(|copy| copy.nonce == nonce && copy.who.same(&tapper))
        else {
            audit_line(id, Some(&tapper), "refused_not_an_approver", now, None);
            tracing::warn!(approval = %id, sender = %message.sender.masked(), "tap on an approval request by someone it was not sent to: refused");
            return reply(
                "You were not asked to approve this request, so your tap does not count."
                    .to_owned(),
            );
        };
        let quoted = message.reply_to.as_ref().map(MessageId::as_str);
        if copy.sent_id.is_none() || quoted != copy.sent_id.as_deref() {
            audit_line(id, Some(&tapper), "refused_wrong_message", now, None);
            return reply(
                "That tap does not count: use the buttons on the request you received.".to_owned(),
            );
        }
        let name = copy.name.clone();
        let at = if message.timestamp > 0 {
            message.timestamp.min(now)
        } else {
            now
        };
        let result = self
            .records
            .update::<Approval, _>(
                &approval_key(id),
                |current| {
                    let Some(mut stored) = current else {
                        return (None, VoteResult::Gone);
                    };
                    if stored.state != ApprovalState::Pending {
                        return (None, VoteResult::Closed(Box::new(stored)));
                    }
                    if now >= stored.expires_at {
                        stored.state = ApprovalState::Expired;
                        stored.decided_at = Some(stored.expires_at);
                        return (Some(stored.clone()), VoteResult::Expired(Box::new(stored)));
                    }
                    if let Some(earlier) = stored.votes.iter().find(|v| v.who.same(&tapper)) {
                        let earlier = earlier.vote;
                        return (None, VoteResult::Again(earlier, Box::new(stored)));
                    }
                    stored.votes.push(Vote {
                        who: copy.who.merged(&tapper),
                        name: name.clone(),
                        vote,
                        at,
                    });
                    if vote == VoteKind::Deny {
                        stored.state = ApprovalState::Denied;
                    } else if stored.approvals()
                        >= usize::try_from(stored.required).unwrap_or(usize::MAX)
                    {
                        stored.state = ApprovalState::Approved;
                    }
                    if stored.state != ApprovalState::Pending {
                        stored.decided_at = Some(now);
                    }
                    (Some(stored.clone()), VoteResult::Counted(Box::new(stored)))
                },
                |stored| self.record_expiry(stored),
            )
            .await?;
        match result {
            VoteResult::Gone => reply(NOT_ACTIVE.to_owned()),
            VoteResult::Closed(stored) => {
                let decided = self.finish_if_stuck(&stored, now).await?;
                let text = match stored.state {
                    ApprovalState::Expired => format!(
                        "⌛ This request expired without a decision: {}",
                        stored.summary
                    ),
                    state => format!(
                        "Already {} by {}: {}",
                        state.decision().map_or("decided", Decision::as_str),
                        stored.decided_by().join(", "),
                        stored.summary
                    ),
                };
                Ok(Tapped {
                    reply: Some(text),
                    decided,
                })
            }
            VoteResult::Expired(stored) => {
                audit_line(id, None, "expired", now, None);
                let decided = self.finish(&stored, now).await?;
                Ok(Tapped {
                    reply: None,
                    decided,
                })
            }
            VoteResult::Again(earlier, stored) => reply(match earlier {
                VoteKind::Approve => format!(
                    "Your approval was already counted ({} of {}).",
                    stored.approvals(),
                    stored.required
                ),
                VoteKind::Deny => "You already denied this request.".to_owned(),
            }),
            VoteResult::Counted(stored) => {
                audit_line(id, Some(&tapper), vote_what(vote), now, None);
                if stored.state == ApprovalState::Pending {
                    let waiting: Vec<String> = stored
                        .approvers
                        .iter()
                        .filter(|a| !stored.votes.iter().any(|v| v.who.same(&a.who)))
                        .map(|a| a.name.clone())
                        .collect();
                    if let Some(asker) = &stored.requester {
                        let text = format!(
                            "👍 {name} approved ({} of {}): {}",
                            stored.approvals(),
                            stored.required,
                            stored.summary
                        );
                        self.tell(&stored.from, asker, &text, stored.thread.as_deref(), now)
                            .await;
                    }
                    return reply(format!(
                        "👍 Your approval is counted: {} of {} needed. Waiting for {}.",
                        stored.approvals(),
                        stored.required,
                        waiting.join(", ")
                    ));
                }
                let decided = self.finish(&stored, now).await?;
                Ok(Tapped {
                    reply: None,
                    decided,
                })
            }
        }
    }

    /// An expiry timer came due: an undecided request expires (and a decision whose notices
    /// did not finish is finished). One handed back early is scheduled again. `Some`: the
    /// agent that asked is to be told.
    pub async fn fire(
        &self,
        timer: &Timer,
        now: i64,
    ) -> Result<Option<Box<AgentDecision>>, ApprovalError> {
        let TimerKind::ApprovalExpiry { id } = &timer.kind else {
            tracing::error!("a paging timer was handed to approvals: ignored");
            return Ok(None);
        };
        if timer.due_at > now {
            self.timers.schedule(timer).await?;
            return Ok(None);
        }
        let expired = self
            .records
            .update::<Approval, _>(
                &approval_key(id),
                |current| match current {
                    Some(mut stored) if stored.state == ApprovalState::Pending => {
                        if now < stored.expires_at {
                            // Not this request's time (cannot happen: its timer says so).
                            return (None, (None, Some(stored)));
                        }
                        stored.state = ApprovalState::Expired;
                        stored.decided_at = Some(stored.expires_at);
                        (Some(stored.clone()), (Some(stored), None))
                    }
                    other => (None, (None, other)),
                },
                |stored| self.record_expiry(stored),
            )
            .await?;
        match expired {
            (Some(stored), _) => {
                audit_line(id, None, "expired", now, None);
                self.finish(&stored, now).await
            }
            (None, Some(stored)) if stored.state == ApprovalState::Pending => {
                self.timers
                    .schedule(&Timer {
                        due_at: stored.expires_at,
                        kind: timer.kind.clone(),
                    })
                    .await?;
                Ok(None)
            }
            (None, Some(stored)) => self.finish_if_stuck(&stored, now).await,
            (None, None) => Ok(None),
        }
    }

    /// A decided request whose finishing stopped part-way (the process died): finish it.
    async fn finish_if_stuck(
        &self,
        approval: &Approval,
        now: i64,
    ) -> Result<Option<Box<AgentDecision>>, ApprovalError> {
        let stuck = !approval.finished
            && approval
                .decided_at
                .is_some_and(|at| now - at >= FINISH_GRACE_SECS);
        if stuck {
            tracing::warn!(approval = %approval.id, "a decision's notices did not finish: finishing them now");
            return self.finish(approval, now).await;
        }
        Ok(None)
    }

    /// The decision is made: the audit line, everyone involved told, the task answered. The
    /// agent that asked is returned for the pipeline to ask.
    async fn finish(
        &self,
        approval: &Approval,
        now: i64,
    ) -> Result<Option<Box<AgentDecision>>, ApprovalError> {
        let Some(decision) = approval.state.decision() else {
            return Ok(None);
        };
        let by: Vec<String> = approval
            .votes
            .iter()
            .filter(|vote| {
                matches!(
                    (decision, vote.vote),
                    (Decision::Approved, VoteKind::Approve) | (Decision::Denied, VoteKind::Deny)
                )
            })
            .map(|vote| vote.who.masked())
            .collect();
        tracing::info!(
            audit = true,
            approval = %approval.id,
            by = %by.join(","),
            what = decision.as_str(),
            at = now,
            "approval decided"
        );
        if let Origin::Task { task_token } = &approval.origin {
            let outcome = serde_json::to_string(&approval.task_outcome()).unwrap_or_default();
            match decision {
                Decision::Approved => self.succeed_task(task_token, &outcome).await?,
                Decision::Denied => {
                    self.answer_task(task_token, "approval.denied", &outcome)
                        .await?
                }
                Decision::Expired => {
                    self.answer_task(task_token, "approval.expired", &outcome)
                        .await?
                }
            }
        }
        let text = outcome_text(approval, decision);
        if let Some(asker) = &approval.requester {
            self.tell(
                &approval.from,
                asker,
                &text,
                approval.thread.as_deref(),
                now,
            )
            .await;
        }
        for copy in &approval.approvers {
            if approval
                .requester
                .as_ref()
                .is_some_and(|a| a.same(&copy.who))
            {
                continue;
            }
            if let Some(to) = copy.who.recipient() {
                self.notifier
                    .notify(&approval.from, &to, &text, copy.sent_id.as_deref(), now)
                    .await;
            }
        }
        let id = approval.id.clone();
        self.records
            .update::<Approval, _>(
                &approval_key(&id),
                |current| match current {
                    Some(mut stored) if !stored.finished => {
                        stored.finished = true;
                        (Some(stored), ())
                    }
                    _ => (None, ()),
                },
                |stored| self.record_expiry(stored),
            )
            .await?;
        Ok(match (&approval.origin, &approval.requester) {
            (Origin::Agent { agent }, Some(requester)) => Some(Box::new(AgentDecision {
                agent: agent.clone(),
                requester: requester.clone(),
                approval: approval.clone(),
                decision,
            })),
            _ => None,
        })
    }

    async fn succeed_task(&self, token: &str, output: &str) -> Result<(), ApprovalError> {
        let Some(callbacks) = &self.callbacks else {
            tracing::error!(
                "an approval for a Step Functions task, but no Step Functions client (no AWS configuration): the task is not answered"
            );
            return Ok(());
        };
        match callbacks.succeed(token, output).await {
            Ok(()) => Ok(()),
            // Nothing waits any more: the decision stands, the task is gone.
            Err(error) if error.is_gone() => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn answer_task(
        &self,
        token: &str,
        error: &str,
        cause: &str,
    ) -> Result<(), ApprovalError> {
        let Some(callbacks) = &self.callbacks else {
            tracing::error!(
                "an approval for a Step Functions task, but no Step Functions client (no AWS configuration): the task is not answered"
            );
            return Ok(());
        };
        match callbacks.fail(token, error, cause).await {
            Ok(()) => Ok(()),
            Err(error) if error.is_gone() => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// A notice to the requester (or anyone), in `thread`.
    async fn tell(
        &self,
        from: &PhoneNumberId,
        to: &Identity,
        text: &str,
        thread: Option<&str>,
        now: i64,
    ) {
        if let Some(recipient) = to.recipient() {
            self.notifier
                .notify(from, &recipient, text, thread, now)
                .await;
        }
    }

    /// How a person is named: their `ONCALL` name, else their masked number (never their
    /// WhatsApp profile name, which anyone can set).
    pub fn name_of(&self, person: &Identity) -> String {
        person
            .phone
            .as_deref()
            .and_then(|phone| self.config.names.get(phone))
            .cloned()
            .unwrap_or_else(|| person.masked())
    }

    /// The record is kept `APPROVAL_RETENTION_DAYS` after the request expires.
    fn record_expiry(&self, approval: &Approval) -> i64 {
        approval
            .expires_at
            .saturating_add(secs(self.config.retention.as_secs()))
    }
}

/// What a request may be, once checked.
struct Checked {
    summary: String,
    approvers: Vec<Identity>,
    required: u32,
    expiry: u64,
}

/// The result of a vote's write.
enum VoteResult {
    Gone,
    /// Decided or expired before this tap.
    Closed(Box<Approval>),
    /// This tap found it past its expiry: it expired now.
    Expired(Box<Approval>),
    /// The same person voted before: nothing changes.
    Again(VoteKind, Box<Approval>),
    Counted(Box<Approval>),
}

const NOT_ACTIVE: &str = "This approval request is no longer active.";

/// The id of an approval button (and its template payload):
/// `wal:approval:<id>:<nonce>:<approve|deny>`.
pub fn tap_id(id: &str, nonce: &str, vote: VoteKind) -> String {
    format!("{APPROVAL_TAP_PREFIX}{id}:{nonce}:{}", vote.as_str())
}

/// The tap's id when `kind` is a tap on one of our approval requests' buttons (an interactive
/// reply or a template quick reply).
pub fn tapped_id(kind: &MessageKind) -> Option<&str> {
    kind.tap_id()
        .filter(|id| id.starts_with(APPROVAL_TAP_PREFIX))
}

/// Reads `wal:approval:<id>:<nonce>:<vote>`.
fn parse_tap(tap: &str) -> Option<(&str, &str, VoteKind)> {
    let mut parts = tap.strip_prefix(APPROVAL_TAP_PREFIX)?.split(':');
    let (id, nonce, vote) = (parts.next()?, parts.next()?, parts.next()?);
    let id_ok = id.len() == ID_LEN && id.bytes().all(|b| ID_ALPHABET.contains(&b));
    let nonce_ok = nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_hexdigit());
    (parts.next().is_none() && id_ok && nonce_ok).then_some(())?;
    Some((id, nonce, VoteKind::parse(vote)?))
}

fn approval_key(id: &str) -> String {
    format!("approval#{id}")
}

/// A fresh short id: [`ID_LEN`] characters of [`ID_ALPHABET`] (40 bits; a collision is a
/// refused conditional create, and another id is drawn).
fn short_id() -> String {
    let nonce = new_nonce();
    let bytes = hex::decode(&nonce).unwrap_or_default();
    bytes
        .iter()
        .take(ID_LEN)
        .map(|byte| char::from(ID_ALPHABET[usize::from(byte % 32)]))
        .collect()
}

/// The body of a request's interactive message.
fn request_body(
    requester: &str,
    summary: &str,
    command: &str,
    required: u32,
    left: &str,
) -> String {
    let needed = if required == 1 {
        "1 approval needed".to_owned()
    } else {
        format!("{required} approvals needed")
    };
    format!(
        "{requester} asks to run:\n*{summary}*\n\n```{command}```\n\n{needed} · expires in {left}"
    )
}

/// The notice everyone involved gets.
fn outcome_text(approval: &Approval, decision: Decision) -> String {
    let by = approval.decided_by().join(", ");
    match decision {
        Decision::Approved => format!(
            "✅ Approved by {by}: {} ({})",
            approval.summary, approval.id
        ),
        Decision::Denied => format!("❌ Denied by {by}: {} ({})", approval.summary, approval.id),
        Decision::Expired => format!(
            "⌛ Expired without a decision: {} ({}). Nothing will run.",
            approval.summary, approval.id
        ),
    }
}

fn vote_what(vote: VoteKind) -> &'static str {
    match vote {
        VoteKind::Approve => "vote_approve",
        VoteKind::Deny => "vote_deny",
    }
}

/// One audit line: `audit=true`, the request's id, who by masked id, what, when (unix
/// seconds), and why for a refusal (our words, never the agent's text).
fn audit_line(id: &str, who: Option<&Identity>, what: &str, at: i64, why: Option<&str>) {
    let by = who.map(Identity::masked).unwrap_or_else(|| "-".to_owned());
    tracing::info!(
        audit = true,
        approval = %if id.is_empty() { "-" } else { id },
        by = %by,
        what,
        at,
        why = why.unwrap_or("-"),
        "approval audit"
    );
}

/// At most `max` characters of `text`, cut with `…`.
fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

fn secs(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

/// The time left until `seconds` from now, in minutes: "15 min", "2 h 5 min", "1 d 3 h".
fn time_left(seconds: i64) -> String {
    duration_words((seconds.max(0) + 30) / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_ids_carry_the_id_a_128_bit_nonce_and_a_vote_and_nothing_else_parses() {
        let nonce = new_nonce();
        let id = short_id();
        assert_eq!(id.len(), ID_LEN);
        let tap = tap_id(&id, &nonce, VoteKind::Approve);
        assert!(tap.len() <= 256, "a button id holds 256 characters");
        assert_eq!(
            parse_tap(&tap),
            Some((id.as_str(), nonce.as_str(), VoteKind::Approve))
        );
        let deny = tap_id(&id, &nonce, VoteKind::Deny);
        assert_eq!(parse_tap(&deny).map(|t| t.2), Some(VoteKind::Deny));
        for bad in [
            format!("wal:approval:{id}:{nonce}:maybe"),
            format!("wal:approval:{id}:{}:approve", &nonce[..31]),
            format!("wal:approval:{}:{nonce}:approve", id.to_lowercase()),
            format!("wal:approval:{id}:{nonce}:approve:extra"),
            format!("wal:alert:{nonce}:acknowledge"),
            "wal:approval:".to_owned(),
        ] {
            assert_eq!(parse_tap(&bad), None, "{bad}");
        }
    }

    #[test]
    fn short_ids_are_unambiguous_and_differ() {
        let ids: std::collections::BTreeSet<String> = (0..200).map(|_| short_id()).collect();
        assert_eq!(ids.len(), 200);
        for id in &ids {
            assert!(!id.contains(['I', 'L', 'O', 'U']), "{id}");
        }
    }

    #[test]
    fn time_left_reads_in_minutes_hours_or_days() {
        assert_eq!(time_left(-5), "0 min");
        assert_eq!(time_left(900), "15 min");
        assert_eq!(time_left(7500), "2 h 5 min");
        assert_eq!(time_left(86_400 + 3 * 3600), "1 d 3 h");
    }

    #[test]
    fn a_long_summary_is_cut_never_the_command() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcdef", 4), "abc…");
    }
}

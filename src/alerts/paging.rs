//! The paging engine: alerts become incidents, incidents become pages to the tier on call,
//! a tap acknowledges (first tap wins), asks for details or escalates, a timer escalates when
//! nobody acknowledged, a `resolved` notification closes the thread.
//!
//! Records in the alerts table ([`crate::records::RecordStore`], conditional writes, every change a
//! read-modify-write retried on conflict):
//! - `incident#<alert key>`: one incident ([`Incident`]): the alert, who is paged (the
//!   [`Policy`] chosen when it opened), the tier paged now (`step`), its state, who
//!   acknowledged, every page sent for it.
//! - `page#<nonce>`: one page sent to one person ([`PageRecord`]): its incidents, the wamid
//!   WhatsApp gave it. Button ids and template payloads are `wal:alert:<nonce>:<action>`; the
//!   nonce (128 random bits) is the only way to the record, and a tap counts only from that
//!   person, quoting that very message.
//! - `sent#<hash of the wamid>`: which page a delivery status is about (a `failed` status
//!   escalates at once).
//! - `person#<number>`: when a person was last paged, and the incidents held back for the
//!   next page (`PAGE_MIN_INTERVAL_SECS`).
//!
//! Every step that pages someone is guarded by a conditional write on the incident (its state
//! and step), so a timer delivered twice, two people tapping at the same moment or a retried
//! job page nobody twice. Records expire ([`incident_expiry`]): a lost `resolved` cannot
//! silence the alert's next incident for ever.

use super::oncall::{OnCall, Person, Policy};
use super::{ALERT_TAP_PREFIX, Alert, AlertBatch, AlertStatus};
use crate::domain::{
    InboundMessage, MessageId, MessageKind, OutgoingMessage, PhoneNumberId, Recipient, ReplyButton,
    Sender, TemplateRef, mask,
};
use crate::graph::Messenger;
use crate::records::{RecordError, Records, StoreError};
use crate::reply::params::{duration_words, start_time, template_param};
use crate::sessions::commands::new_nonce;
use crate::sessions::{Conversations, Notifier};
use crate::timers::{IncidentRef, Timer, TimerError, TimerKind, Timers};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

/// How long an incident (and its pages) is kept after it opened, at least: a repeat of an
/// incident still firing after this pages again, and a lost `resolved` silences nothing longer.
pub const INCIDENT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The buttons of a page, in the template's order: what each taps.
const ACTIONS: [(Action, &str); 3] = [
    (Action::Acknowledge, "Acknowledge"),
    (Action::Details, "Details"),
    (Action::Escalate, "Escalate"),
];
/// Longest template parameters we send (Meta allows 1024 per parameter; the page stays short).
const SEVERITY_MAX: usize = 32;
const TITLE_MAX: usize = 200;
const SUMMARY_MAX: usize = 600;
/// Interactive bodies stay well within WhatsApp's 1024 characters.
const PAGE_BODY_MAX: usize = 1000;

/// A page's buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Acknowledge,
    Details,
    Escalate,
}

impl Action {
    /// The action's word in tap ids and in the agent contract's `event.action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Acknowledge => "acknowledge",
            Self::Details => "details",
            Self::Escalate => "escalate",
        }
    }

    fn parse(word: &str) -> Option<Self> {
        [Self::Acknowledge, Self::Details, Self::Escalate]
            .into_iter()
            .find(|action| action.as_str() == word)
    }
}

/// The id of a page's button (and its template payload): `wal:alert:<nonce>:<action>`.
pub fn tap_id(nonce: &str, action: Action) -> String {
    format!("{ALERT_TAP_PREFIX}{nonce}:{}", action.as_str())
}

/// The tap's id when `kind` is a tap on one of our pages' buttons (an interactive reply or a
/// template quick reply).
pub fn tapped_id(kind: &MessageKind) -> Option<&str> {
    kind.tap_id().filter(|id| id.starts_with(ALERT_TAP_PREFIX))
}

/// Reads `wal:alert:<nonce>:<action>`.
fn parse_tap(id: &str) -> Option<(&str, Action)> {
    let (nonce, action) = id.strip_prefix(ALERT_TAP_PREFIX)?.split_once(':')?;
    let nonce_ok = nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_hexdigit());
    nonce_ok.then_some(())?;
    Some((nonce, Action::parse(action)?))
}

/// Where an incident is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentState {
    /// Paging tier `step`; the next tier when its timer fires.
    Escalating,
    Acknowledged,
    /// Every tier was paged and nobody acknowledged: the final notice went out.
    Exhausted,
    Resolved,
}

/// Who acknowledged, and when (the tap's own time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub number: String,
    pub name: String,
    pub at: i64,
}

/// One page sent for an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paged {
    pub number: String,
    /// The tier it paged.
    pub step: usize,
    /// The page's nonce.
    pub page: String,
    /// The wamid of the page.
    pub sent_id: String,
}

/// One incident: an alert from when it fires until it is resolved (or its record expires).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// This occurrence (an alert that fires again after being resolved is a new one).
    pub id: String,
    pub alert: Alert,
    pub policy: Policy,
    pub step: usize,
    pub state: IncidentState,
    #[serde(default)]
    pub acknowledged: Option<Acknowledgement>,
    #[serde(default)]
    pub resolved_at: Option<i64>,
    #[serde(default)]
    pub paged: Vec<Paged>,
    pub opened_at: i64,
}

impl Incident {
    fn reference(&self) -> IncidentRef {
        IncidentRef {
            key: self.alert.key.clone(),
            id: self.id.clone(),
        }
    }

    /// Everyone paged for it, once each, in the order they were paged.
    fn paged_people(&self) -> Vec<&Paged> {
        let mut seen = BTreeSet::new();
        self.paged
            .iter()
            .filter(|paged| seen.insert(paged.number.as_str()))
            .collect()
    }

    /// The page this person got last for it (its thread).
    fn page_of(&self, number: &str) -> Option<&Paged> {
        self.paged.iter().rev().find(|paged| paged.number == number)
    }

    fn is_open(&self) -> bool {
        self.state != IncidentState::Resolved
    }
}

/// One page sent to one person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRecord {
    pub person: String,
    /// The incidents it pages for, each with the tier it was paged at.
    pub incidents: Vec<(IncidentRef, usize)>,
    /// The wamid of the page, once sent.
    #[serde(default)]
    pub sent_id: Option<String>,
    pub sent_at: i64,
}

/// When a person was last paged, and what waits for their next page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct PersonRecord {
    last_page_at: i64,
    #[serde(default)]
    folded: Vec<(IncidentRef, usize)>,
}

/// Which page a wamid is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SentRecord {
    page: String,
}

/// Why paging could not go on (the job is retried, the timer delivered again).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PagingError {
    #[error("alerts table: {0}")]
    Records(#[from] RecordError),
    #[error(transparent)]
    Timer(#[from] TimerError),
    /// A record could not be encoded (serde's error quotes no value when writing).
    #[error("alerts record not encodable: {0}")]
    Encode(#[source] serde_json::Error),
}

impl From<StoreError> for PagingError {
    fn from(error: StoreError) -> Self {
        Self::Records(error.into())
    }
}

impl PagingError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Records(error) => error.is_retryable(),
            Self::Timer(_) => true,
            Self::Encode(_) => false,
        }
    }
}

/// What paging needs from the configuration.
#[derive(Debug, Clone)]
pub struct PagingConfig {
    pub oncall: OnCall,
    /// The business number pages go out from (`PHONE_NUMBER_ID`).
    pub from: PhoneNumberId,
    /// `ALERT_TEMPLATE`: what a page is when the person's 24-hour window is closed.
    pub alert_template: TemplateRef,
    /// `NOTICE_TEMPLATE`: what a notice is when the window is closed (else it is not sent).
    pub notice_template: Option<TemplateRef>,
    /// `PAGE_MIN_INTERVAL_SECS`: at most one page per person this often (zero: no limit).
    pub min_interval: Duration,
}

/// What one notification did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Incidents opened (or started again) and paged.
    pub opened: usize,
    /// Repeats of incidents already paged: nobody paged.
    pub repeats: usize,
    pub resolved: usize,
}

/// The answer to a tap on one of our pages.
#[derive(Debug, Clone, PartialEq)]
pub enum TapOutcome {
    /// Tell the person this, and do nothing else.
    Reply(String),
    /// Hand the action to the agent: its answer goes to the person who tapped.
    Agent(Box<AlertAction>),
}

/// An acknowledgement or a request for details, for the agent (`event.type` `alert_action`).
#[derive(Debug, Clone, PartialEq)]
pub struct AlertAction {
    pub action: Action,
    /// The agent `ONCALL` names for this alert (`None`: the default agent).
    pub agent: Option<String>,
    /// The incident's id (`event.alert.id`).
    pub incident_id: String,
    pub alert: Alert,
    pub state: IncidentState,
    /// The other alerts of the same page, by title.
    pub also: Vec<String>,
}

/// The paging engine; shared (`Arc`) by the webhook (inline), the worker and the timers.
pub struct Paging {
    config: PagingConfig,
    records: Records,
    timers: Arc<dyn Timers>,
    messenger: Arc<dyn Messenger>,
    notifier: Notifier,
}

/// How one person's page went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PageResult {
    Sent,
    /// Held back by `PAGE_MIN_INTERVAL_SECS`: it goes out folded into the next page.
    Folded,
    /// Nothing left to page for (acknowledged or resolved meanwhile).
    Nothing,
    /// The Graph API refused it: not delivered.
    Failed,
}

impl Paging {
    pub fn new(
        config: PagingConfig,
        store: Arc<dyn crate::records::RecordStore>,
        timers: Arc<dyn Timers>,
        messenger: Arc<dyn Messenger>,
        conversations: Arc<Conversations>,
    ) -> Self {
        let notifier = Notifier::new(
            messenger.clone(),
            conversations,
            config.notice_template.clone(),
        );
        Self {
            config,
            records: Records::new(store, "alerts"),
            timers,
            messenger,
            notifier,
        }
    }

    pub fn oncall(&self) -> &OnCall {
        &self.config.oncall
    }

    /// One notification: opens (or starts again) the incidents of its firing alerts and pages
    /// their first tier (alerts paged by the same people go out as one page), resolves the
    /// resolved ones in their pages' threads. Repeats of incidents being handled page nobody.
    pub async fn ingest(&self, batch: &AlertBatch, now: i64) -> Result<Ingested, PagingError> {
        let mut ingested = Ingested::default();
        let mut to_page: BTreeMap<String, (Policy, Vec<IncidentRef>)> = BTreeMap::new();
        let mut resolved = Vec::new();
        for alert in &batch.alerts {
            match alert.status {
                AlertStatus::Firing => match self.open(alert, now).await? {
                    Some(incident) => {
                        ingested.opened += 1;
                        let policy = incident.policy.clone();
                        let group = serde_json::to_string(&policy).map_err(PagingError::Encode)?;
                        to_page
                            .entry(group)
                            .or_insert_with(|| (policy, Vec::new()))
                            .1
                            .push(incident.reference());
                    }
                    None => ingested.repeats += 1,
                },
                AlertStatus::Resolved => {
                    if let Some(incident) = self.resolve(alert, now).await? {
                        resolved.push(incident);
                    }
                }
            }
        }
        ingested.resolved = resolved.len();
        self.tell_resolved(&resolved, now).await;
        for (policy, refs) in to_page.into_values() {
            self.run_tier(&policy, 0, refs, now).await?;
        }
        tracing::info!(
            source = batch.source.as_str(),
            alerts = batch.alerts.len(),
            opened = ingested.opened,
            repeats = ingested.repeats,
            resolved = ingested.resolved,
            "alerts ingested"
        );
        Ok(ingested)
    }

    /// A timer came due: escalate, or send the pages held back for someone. One handed back
    /// before it is due (SQS delays at most 15 minutes) is scheduled again for the rest.
    pub async fn fire(&self, timer: &Timer, now: i64) -> Result<(), PagingError> {
        if timer.due_at > now {
            self.timers.schedule(timer).await?;
            tracing::debug!(
                wait = timer.due_at - now,
                "timer not due yet: delayed again"
            );
            return Ok(());
        }
        match &timer.kind {
            TimerKind::Escalate { incidents, step } => {
                let steps = incidents.iter().map(|r| (r.clone(), *step)).collect();
                self.escalate(steps, now, Why::NobodyAcknowledged).await
            }
            TimerKind::Flush { person } => self.flush(person, now).await,
            TimerKind::ApprovalExpiry { .. } => {
                tracing::error!("an approval's timer was handed to paging: ignored");
                Ok(())
            }
        }
    }

    /// A delivery status `failed` for `sent_id`: when it is one of our pages, the page counts
    /// as not delivered and its incidents escalate at once. `Ok(false)`: not a page of ours.
    pub async fn delivery_failed(
        &self,
        sent_id: &str,
        code: Option<&str>,
        now: i64,
    ) -> Result<bool, PagingError> {
        let Some(sent) = self.records.read::<SentRecord>(&sent_key(sent_id)).await? else {
            return Ok(false);
        };
        let Some(page) = self
            .records
            .read::<PageRecord>(&page_key(&sent.page))
            .await?
        else {
            return Ok(false);
        };
        tracing::warn!(
            to = %mask(&page.person),
            code = code.unwrap_or("-"),
            "page not delivered (failed status): escalating at once"
        );
        self.escalate(page.incidents, now, Why::NotDelivered)
            .await?;
        Ok(true)
    }

    /// A tap on one of our pages' buttons; `None` when `message` is no such tap.
    pub async fn tap(&self, message: &InboundMessage, now: i64) -> Option<TapOutcome> {
        let id = tapped_id(&message.kind)?;
        Some(match self.tap_inner(message, id, now).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::error!(%error, "alert tap could not be handled");
                TapOutcome::Reply(
                    "⚠️ Your tap could not be recorded just now. Please tap again.".to_owned(),
                )
            }
        })
    }

    async fn tap_inner(
        &self,
        message: &InboundMessage,
        id: &str,
        now: i64,
    ) -> Result<TapOutcome, PagingError> {
        let reply = |text: &str| Ok(TapOutcome::Reply(text.to_owned()));
        let who = message.sender.masked();
        let Some((nonce, action)) = parse_tap(id) else {
            tracing::warn!(sender = %who, "alert tap with a malformed id: refused");
            return reply(NOT_ACTIVE);
        };
        let Some(page) = self.records.read::<PageRecord>(&page_key(nonce)).await? else {
            tracing::info!(sender = %who, "tap on a page that is unknown or expired");
            return reply(NOT_ACTIVE);
        };
        let tapper = message.sender.phone.clone().unwrap_or_default();
        if tapper != page.person {
            tracing::warn!(sender = %who, "tap on a page sent to someone else: refused");
            return reply(NOT_PAGED);
        }
        let quoted = message.reply_to.as_ref().map(MessageId::as_str);
        if page.sent_id.is_none() || quoted != page.sent_id.as_deref() {
            tracing::warn!(sender = %who, "tap whose reply context is not the page: refused");
            return reply(NOT_THE_PAGE);
        }
        let mut open = Vec::new();
        let mut closed = Vec::new();
        for (reference, _) in &page.incidents {
            match self.incident(reference).await? {
                Some(incident) if incident.is_open() => open.push(incident),
                Some(incident) => closed.push(incident),
                None => {}
            }
        }
        if open.is_empty() {
            tracing::info!(sender = %who, action = action.as_str(), "tap on a page whose alerts are resolved");
            return Ok(TapOutcome::Reply(match closed.first() {
                Some(incident) => format!("✅ Already resolved: {}", incident.alert.title),
                None => NOT_ACTIVE.to_owned(),
            }));
        }
        let name = self.name_of(&message.sender);
        let at = if message.timestamp > 0 {
            message.timestamp
        } else {
            now
        };
        match action {
            Action::Acknowledge => self.acknowledge(&page, open, &tapper, &name, at, now).await,
            Action::Details => Ok(TapOutcome::Agent(Box::new(
                self.action_for(Action::Details, &open),
            ))),
            Action::Escalate => self.escalate_by_tap(open, &name, now).await,
        }
    }

    /// First tap wins: each open incident is acknowledged by whoever writes first. The winner
    /// gets ✅ on their page, everyone else paged is told, and the agent is asked.
    async fn acknowledge(
        &self,
        page: &PageRecord,
        open: Vec<Incident>,
        tapper: &str,
        name: &str,
        at: i64,
        now: i64,
    ) -> Result<TapOutcome, PagingError> {
        let mut won = Vec::new();
        let mut again = Vec::new();
        let mut lost_to = None;
        for incident in open {
            let ack = Acknowledgement {
                number: tapper.to_owned(),
                name: name.to_owned(),
                at,
            };
            let reference = incident.reference();
            let result = self
                .records
                .update::<Incident, _>(
                    &incident_key(&reference.key),
                    |current| match current {
                        Some(mut incident) if incident.id == reference.id => {
                            match (&incident.state, &incident.acknowledged) {
                                (IncidentState::Resolved, _) => (None, AckWrite::Closed),
                                (_, Some(by)) if by.number == ack.number => {
                                    (None, AckWrite::Again(incident))
                                }
                                (_, Some(by)) => (None, AckWrite::Lost(by.name.clone())),
                                _ => {
                                    incident.state = IncidentState::Acknowledged;
                                    incident.acknowledged = Some(ack.clone());
                                    (Some(incident.clone()), AckWrite::Won(incident))
                                }
                            }
                        }
                        _ => (None, AckWrite::Closed),
                    },
                    incident_expiry,
                )
                .await?;
            match result {
                AckWrite::Won(incident) => won.push(incident),
                AckWrite::Again(incident) => again.push(incident),
                AckWrite::Lost(by) => lost_to = Some(by),
                AckWrite::Closed => {}
            }
        }
        if won.is_empty() && again.is_empty() {
            return Ok(TapOutcome::Reply(match lost_to {
                Some(by) => format!("Already acknowledged by {by}."),
                None => NOT_ACTIVE.to_owned(),
            }));
        }
        if !won.is_empty() {
            tracing::info!(by = %mask(tapper), incidents = won.len(), "alert acknowledged");
            if let Some(sent_id) = &page.sent_id {
                let reaction = OutgoingMessage::Reaction {
                    message_id: sent_id.clone(),
                    emoji: "✅".to_owned(),
                };
                let to = Recipient::Phone(tapper.to_owned());
                if let Err(error) = self
                    .messenger
                    .send(&self.config.from, &to, &reaction, None)
                    .await
                {
                    tracing::warn!(%error, "could not put ✅ on the acknowledged page");
                }
            }
            let mut told: BTreeMap<String, Vec<&Incident>> = BTreeMap::new();
            for incident in &won {
                for paged in incident.paged_people() {
                    if paged.number != tapper {
                        told.entry(paged.number.clone()).or_default().push(incident);
                    }
                }
            }
            for (number, incidents) in told {
                let text = format!("✅ {name} acknowledged: {}", distinct_titles(&incidents));
                let thread = incidents[0].page_of(&number).map(|p| p.sent_id.clone());
                self.notify(&number, &text, thread.as_deref(), now).await;
            }
        }
        let incidents: Vec<Incident> = won.into_iter().chain(again).collect();
        Ok(TapOutcome::Agent(Box::new(
            self.action_for(Action::Acknowledge, &incidents),
        )))
    }

    /// Escalate tapped: the next tier is paged now.
    async fn escalate_by_tap(
        &self,
        open: Vec<Incident>,
        name: &str,
        now: i64,
    ) -> Result<TapOutcome, PagingError> {
        if let Some(by) = open.iter().find_map(|i| i.acknowledged.as_ref()) {
            return Ok(TapOutcome::Reply(format!(
                "Already acknowledged by {}: nobody else is paged.",
                by.name
            )));
        }
        let steps: Vec<(IncidentRef, usize)> =
            open.iter().map(|i| (i.reference(), i.step)).collect();
        let last = open
            .iter()
            .all(|incident| incident.step + 1 >= incident.policy.tiers.len());
        self.escalate(steps, now, Why::Asked(name.to_owned()))
            .await?;
        Ok(TapOutcome::Reply(if last {
            "There is no further tier to page: everyone paged has been told nobody acknowledged."
                .to_owned()
        } else {
            "⏫ Escalated: the next tier is being paged.".to_owned()
        }))
    }

    fn action_for(&self, action: Action, incidents: &[Incident]) -> AlertAction {
        let first = &incidents[0];
        AlertAction {
            action,
            agent: first.policy.agent.clone(),
            incident_id: first.id.clone(),
            alert: first.alert.clone(),
            state: first.state,
            also: incidents[1..]
                .iter()
                .map(|incident| incident.alert.title.clone())
                .collect(),
        }
    }

    /// Opens the incident of a firing alert; `Some` when it is to be paged from the first tier
    /// (new, fired again after being resolved, or repeating after the final notice).
    async fn open(&self, alert: &Alert, now: i64) -> Result<Option<Incident>, PagingError> {
        let fresh = || Incident {
            id: new_nonce(),
            alert: alert.clone(),
            policy: self.config.oncall.policy_for(&alert.labels),
            step: 0,
            state: IncidentState::Escalating,
            acknowledged: None,
            resolved_at: None,
            paged: Vec::new(),
            opened_at: now,
        };
        Ok(self
            .records
            .update::<Incident, _>(
                &incident_key(&alert.key),
                |current| match current {
                    None => {
                        let incident = fresh();
                        (Some(incident.clone()), Some(incident))
                    }
                    Some(incident) => match incident.state {
                        IncidentState::Resolved => {
                            let incident = fresh();
                            (Some(incident.clone()), Some(incident))
                        }
                        IncidentState::Exhausted => {
                            let incident = Incident {
                                step: 0,
                                state: IncidentState::Escalating,
                                alert: alert.clone(),
                                ..incident
                            };
                            (Some(incident.clone()), Some(incident))
                        }
                        // Opened, but its first page never went out (the job failed between the
                        // two): page now.
                        IncidentState::Escalating
                            if incident.step == 0 && incident.paged.is_empty() =>
                        {
                            (None, Some(incident))
                        }
                        IncidentState::Escalating | IncidentState::Acknowledged => (None, None),
                    },
                },
                incident_expiry,
            )
            .await?)
    }

    /// Resolves the incident of a resolved alert; `None` when there is none open.
    async fn resolve(&self, alert: &Alert, now: i64) -> Result<Option<Incident>, PagingError> {
        let resolved = self
            .records
            .update::<Incident, _>(
                &incident_key(&alert.key),
                |current| match current {
                    Some(mut incident) if incident.is_open() => {
                        incident.state = IncidentState::Resolved;
                        incident.resolved_at = Some(now);
                        (Some(incident.clone()), Some(incident))
                    }
                    _ => (None, None),
                },
                incident_expiry,
            )
            .await?;
        match &resolved {
            Some(incident) => {
                tracing::info!(paged = incident.paged_people().len(), "incident resolved");
            }
            None => tracing::info!("resolved alert with no open incident: nothing to do"),
        }
        Ok(resolved)
    }

    /// Tells everyone paged for the incidents resolved by one notification, once each, in
    /// the thread of their page: "✅ Resolved after 23 min: <title>".
    async fn tell_resolved(&self, resolved: &[Incident], now: i64) {
        let mut told: BTreeMap<String, Vec<&Incident>> = BTreeMap::new();
        for incident in resolved {
            for paged in incident.paged_people() {
                told.entry(paged.number.clone()).or_default().push(incident);
            }
        }
        for (number, incidents) in told {
            let longest = incidents
                .iter()
                .map(|incident| (now - incident.alert.started_at).max(0) / 60)
                .max()
                .unwrap_or(0);
            let text = format!(
                "✅ Resolved after {}: {}",
                duration_words(longest),
                distinct_titles(&incidents)
            );
            let thread = incidents[0].page_of(&number).map(|p| p.sent_id.clone());
            self.notify(&number, &text, thread.as_deref(), now).await;
        }
    }

    /// Pages tier `step` for `refs`; a page not delivered escalates at once (to the tier after,
    /// and so on); otherwise the escalation timer is set.
    async fn run_tier(
        &self,
        policy: &Policy,
        step: usize,
        refs: Vec<IncidentRef>,
        now: i64,
    ) -> Result<(), PagingError> {
        let mut work = vec![(policy.clone(), step, refs)];
        while let Some((policy, step, refs)) = work.pop() {
            let Some(tier) = policy.tiers.get(step) else {
                continue;
            };
            let mut failed = false;
            for person in tier {
                let pairs = refs.iter().map(|r| (r.clone(), step)).collect();
                failed |= self.page_person(person, pairs, now, true).await? == PageResult::Failed;
            }
            if failed {
                let steps = refs.iter().map(|r| (r.clone(), step)).collect();
                work.extend(self.advance(steps, now, Why::NotDelivered).await?);
                continue;
            }
            let timer = Timer {
                due_at: now.saturating_add(secs(policy.escalate_after_secs)),
                kind: TimerKind::Escalate {
                    incidents: refs,
                    step,
                },
            };
            self.timers.schedule(&timer).await?;
        }
        Ok(())
    }

    /// Moves the incidents still paging tier `step` (each its own) to the next tier, tells
    /// the people paged so far, and pages it; after the last tier, the final notice.
    async fn escalate(
        &self,
        steps: Vec<(IncidentRef, usize)>,
        now: i64,
        why: Why,
    ) -> Result<(), PagingError> {
        for (policy, step, refs) in self.advance(steps, now, why).await? {
            self.run_tier(&policy, step, refs, now).await?;
        }
        Ok(())
    }

    /// The guarded step of an escalation: each incident moves on only if it is still
    /// escalating at the step given (a duplicate timer, a late status or a second tap moves
    /// nothing). Returns the tiers to page now, grouped by policy.
    async fn advance(
        &self,
        steps: Vec<(IncidentRef, usize)>,
        now: i64,
        why: Why,
    ) -> Result<Vec<(Policy, usize, Vec<IncidentRef>)>, PagingError> {
        let mut next: BTreeMap<(String, usize), (Policy, Vec<IncidentRef>)> = BTreeMap::new();
        let mut told: BTreeMap<String, Vec<(Incident, Option<String>)>> = BTreeMap::new();
        for (reference, step) in steps {
            let moved = self
                .records
                .update::<Incident, _>(
                    &incident_key(&reference.key),
                    |current| match current {
                        Some(mut incident)
                            if incident.id == reference.id
                                && incident.state == IncidentState::Escalating
                                && incident.step == step =>
                        {
                            if step + 1 < incident.policy.tiers.len() {
                                incident.step = step + 1;
                            } else {
                                incident.state = IncidentState::Exhausted;
                            }
                            (Some(incident.clone()), Some(incident))
                        }
                        _ => (None, None),
                    },
                    incident_expiry,
                )
                .await?;
            let Some(incident) = moved else { continue };
            let next_names = incident
                .policy
                .tiers
                .get(incident.step)
                .filter(|_| incident.state == IncidentState::Escalating)
                .map(|tier| names(tier));
            tracing::info!(
                step = incident.step,
                exhausted = incident.state == IncidentState::Exhausted,
                why = why.as_str(),
                "incident escalated"
            );
            for paged in incident.paged_people() {
                told.entry(paged.number.clone())
                    .or_default()
                    .push((incident.clone(), next_names.clone()));
            }
            if incident.state == IncidentState::Escalating {
                let group = serde_json::to_string(&incident.policy).map_err(PagingError::Encode)?;
                next.entry((group, incident.step))
                    .or_insert_with(|| (incident.policy.clone(), Vec::new()))
                    .1
                    .push(incident.reference());
            }
        }
        for (number, incidents) in told {
            let text = escalation_notice(&incidents, &why);
            let thread = incidents[0].0.page_of(&number).map(|p| p.sent_id.clone());
            self.notify(&number, &text, thread.as_deref(), now).await;
        }
        Ok(next
            .into_iter()
            .map(|((_, step), (policy, refs))| (policy, step, refs))
            .collect())
    }

    /// The pages held back for `person`: one page for those still escalating.
    async fn flush(&self, number: &str, now: i64) -> Result<(), PagingError> {
        let folded = self
            .records
            .update::<PersonRecord, _>(
                &person_key(number),
                |current| {
                    let mut record = current.unwrap_or_default();
                    let folded = std::mem::take(&mut record.folded);
                    record.last_page_at = now;
                    (Some(record), folded)
                },
                |_| person_expiry(now, self.config.min_interval),
            )
            .await?;
        if folded.is_empty() {
            return Ok(());
        }
        let person = self
            .config
            .oncall
            .person(number)
            .cloned()
            .unwrap_or(Person {
                number: number.to_owned(),
                name: None,
            });
        if self
            .page_person(&person, folded.clone(), now, false)
            .await?
            == PageResult::Failed
        {
            self.escalate(folded, now, Why::NotDelivered).await?;
        }
        Ok(())
    }

    /// Pages one person for `incidents` (each with the tier it pages): at most one page per
    /// `PAGE_MIN_INTERVAL_SECS` when `paced` (more are folded into the next), interactive
    /// buttons while their 24-hour window is open, else the alert template.
    async fn page_person(
        &self,
        person: &Person,
        incidents: Vec<(IncidentRef, usize)>,
        now: i64,
        paced: bool,
    ) -> Result<PageResult, PagingError> {
        let interval = secs(self.config.min_interval.as_secs());
        if paced && interval > 0 {
            let (held, flush_at) = self
                .records
                .update::<PersonRecord, _>(
                    &person_key(&person.number),
                    |current| {
                        let mut record = current.unwrap_or_default();
                        if record.last_page_at > 0 && now - record.last_page_at < interval {
                            let first = record.folded.is_empty();
                            for pair in &incidents {
                                if !record.folded.iter().any(|(r, _)| r == &pair.0) {
                                    record.folded.push(pair.clone());
                                }
                            }
                            let flush_at = first.then_some(record.last_page_at + interval);
                            (Some(record), (true, flush_at))
                        } else {
                            record.last_page_at = now;
                            (Some(record), (false, None))
                        }
                    },
                    |_| person_expiry(now, self.config.min_interval),
                )
                .await?;
            if held {
                if let Some(due_at) = flush_at {
                    let timer = Timer {
                        due_at,
                        kind: TimerKind::Flush {
                            person: person.number.clone(),
                        },
                    };
                    self.timers.schedule(&timer).await?;
                }
                tracing::info!(to = %mask(&person.number), "paged recently: this page is folded into the next");
                return Ok(PageResult::Folded);
            }
        }
        let mut current = Vec::new();
        for (reference, step) in &incidents {
            if let Some(incident) = self.incident(reference).await?
                && incident.state == IncidentState::Escalating
            {
                current.push((incident, *step));
            }
        }
        if current.is_empty() {
            return Ok(PageResult::Nothing);
        }
        let nonce = new_nonce();
        let mut page = PageRecord {
            person: person.number.clone(),
            incidents: current.iter().map(|(i, s)| (i.reference(), *s)).collect(),
            sent_id: None,
            sent_at: now,
        };
        let expires = current
            .iter()
            .map(|(incident, _)| incident_expiry(incident))
            .max()
            .unwrap_or(now);
        let to = Recipient::Phone(person.number.clone());
        let incidents: Vec<&Incident> = current.iter().map(|(i, _)| i).collect();
        let window_open = self.window_open(&person.number, now).await;
        let mut message = if window_open {
            page_buttons(&nonce, &incidents)
        } else {
            self.page_template(&nonce, &incidents)
        };
        // Written before it is sent, so that a quick tap finds it.
        self.records
            .create(&page_key(&nonce), &page, expires)
            .await?;
        let mut sent = self
            .messenger
            .send(&self.config.from, &to, &message, None)
            .await;
        if window_open && matches!(&sent, Err(error) if error.is_reengagement()) {
            message = self.page_template(&nonce, &incidents);
            sent = self
                .messenger
                .send(&self.config.from, &to, &message, None)
                .await;
        }
        let sent_id = match sent {
            Ok(id) => id,
            Err(error) => {
                tracing::error!(to = %mask(&person.number), %error, code = error.code(), "page not delivered: the Graph API refused it");
                return Ok(PageResult::Failed);
            }
        };
        tracing::info!(
            to = %mask(&person.number),
            alerts = incidents.len(),
            kind = message.type_name(),
            "paged"
        );
        page.sent_id = Some(sent_id.as_str().to_owned());
        self.records
            .update::<PageRecord, _>(&page_key(&nonce), |_| (Some(page.clone()), ()), |_| expires)
            .await?;
        let sent = SentRecord {
            page: nonce.clone(),
        };
        self.records
            .create(&sent_key(sent_id.as_str()), &sent, expires)
            .await?;
        for (incident, step) in &current {
            let reference = incident.reference();
            let paged = Paged {
                number: person.number.clone(),
                step: *step,
                page: nonce.clone(),
                sent_id: sent_id.as_str().to_owned(),
            };
            self.records
                .update::<Incident, _>(
                    &incident_key(&reference.key),
                    |current| match current {
                        Some(mut incident) if incident.id == reference.id => {
                            incident.paged.push(paged.clone());
                            (Some(incident), ())
                        }
                        _ => (None, ()),
                    },
                    incident_expiry,
                )
                .await?;
        }
        Ok(PageResult::Sent)
    }

    fn page_template(&self, nonce: &str, incidents: &[&Incident]) -> OutgoingMessage {
        let (severity, title, summary, started) = page_fields(incidents);
        OutgoingMessage::Template {
            template: self.config.alert_template.clone(),
            body: vec![
                template_param(&severity, SEVERITY_MAX),
                template_param(&title, TITLE_MAX),
                template_param(&summary, SUMMARY_MAX),
                template_param(&start_time(started), SEVERITY_MAX),
            ],
            quick_replies: ACTIONS
                .iter()
                .map(|(action, _)| tap_id(nonce, *action))
                .collect(),
        }
    }

    /// A notice to someone paged (acknowledged by, escalated, resolved, final notice): text in
    /// their page's thread while their window is open, else `NOTICE_TEMPLATE`, else logged as
    /// not sent.
    async fn notify(&self, number: &str, text: &str, thread: Option<&str>, now: i64) {
        let to = Recipient::Phone(number.to_owned());
        self.notifier
            .notify(&self.config.from, &to, text, thread, now)
            .await;
    }

    /// Whether `number`'s 24-hour window with the business number is open.
    async fn window_open(&self, number: &str, now: i64) -> bool {
        let to = Recipient::Phone(number.to_owned());
        self.notifier.window_open(&self.config.from, &to, now).await
    }

    /// How a person is named in notices: their `ONCALL` name, their WhatsApp profile name,
    /// else their masked number.
    fn name_of(&self, sender: &Sender) -> String {
        let number = sender.phone.as_deref().unwrap_or_default();
        self.config
            .oncall
            .person(number)
            .and_then(|person| person.name.clone())
            .or_else(|| sender.display_name.clone())
            .unwrap_or_else(|| mask(number))
    }

    async fn incident(&self, reference: &IncidentRef) -> Result<Option<Incident>, PagingError> {
        Ok(self
            .records
            .read::<Incident>(&incident_key(&reference.key))
            .await?
            .filter(|incident| incident.id == reference.id))
    }
}

/// The result of an acknowledgement's write.
enum AckWrite {
    Won(Incident),
    /// The same person acknowledged before (a retried tap): the agent is asked again.
    Again(Incident),
    Lost(String),
    Closed,
}

/// Why an incident moved to the next tier.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Why {
    NobodyAcknowledged,
    NotDelivered,
    /// Someone tapped Escalate.
    Asked(String),
}

impl Why {
    fn as_str(&self) -> &'static str {
        match self {
            Self::NobodyAcknowledged => "not acknowledged in time",
            Self::NotDelivered => "page not delivered",
            Self::Asked(_) => "escalate tapped",
        }
    }
}

const NOT_ACTIVE: &str = "This page is no longer active.";
const NOT_PAGED: &str = "You were not paged for this alert, so your tap does not count.";
const NOT_THE_PAGE: &str = "That tap does not count: use the buttons on the page you received.";

fn incident_key(key: &str) -> String {
    format!("incident#{key}")
}

fn page_key(nonce: &str) -> String {
    format!("page#{nonce}")
}

/// A wamid encodes the recipient's number: the table keeps its hash.
fn sent_key(sent_id: &str) -> String {
    format!(
        "sent#{}",
        hex::encode(&Sha256::digest(sent_id.as_bytes())[..16])
    )
}

fn person_key(number: &str) -> String {
    format!("person#{number}")
}

/// An incident is kept [`INCIDENT_TTL`] after it opened, and at least until its escalation
/// could have run through every tier.
pub fn incident_expiry(incident: &Incident) -> i64 {
    let tiers = u64::try_from(incident.policy.tiers.len()).unwrap_or(u64::MAX);
    let escalation = incident
        .policy
        .escalate_after_secs
        .saturating_mul(tiers.saturating_add(1));
    let keep = INCIDENT_TTL.as_secs().max(escalation.saturating_add(3600));
    incident.opened_at.saturating_add(secs(keep))
}

fn person_expiry(now: i64, interval: Duration) -> i64 {
    now.saturating_add(secs(interval.as_secs().saturating_mul(2).max(3600)))
}

fn secs(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

/// The titles, each once, with how many alerts share one: "HighErrorRate (2 alerts); DiskFull".
fn distinct_titles(incidents: &[&Incident]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for incident in incidents {
        let title = incident.alert.title.as_str();
        match counts.iter_mut().find(|(seen, _)| *seen == title) {
            Some((_, count)) => *count += 1,
            None => counts.push((title, 1)),
        }
    }
    counts
        .into_iter()
        .map(|(title, count)| match count {
            1 => title.to_owned(),
            _ => format!("{title} ({count} alerts)"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn names(tier: &[Person]) -> String {
    tier.iter()
        .map(|person| person.name.clone().unwrap_or_else(|| mask(&person.number)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn escalation_notice(incidents: &[(Incident, Option<String>)], why: &Why) -> String {
    let list: Vec<&Incident> = incidents.iter().map(|(incident, _)| incident).collect();
    let titles = distinct_titles(&list);
    match incidents.iter().find_map(|(_, next)| next.clone()) {
        Some(next) => {
            let reason = match why {
                Why::NobodyAcknowledged => "Nobody acknowledged in time".to_owned(),
                Why::NotDelivered => "A page could not be delivered".to_owned(),
                Why::Asked(name) => format!("{name} asked to escalate"),
            };
            format!("⏫ {reason}: now paging {next}. Alert: {titles}")
        }
        None => format!(
            "⚠️ Final notice: nobody acknowledged {titles}. Every tier has been paged; escalation has ended."
        ),
    }
}

/// Severity, title, summary and start of a page: one alert as it is, several summarised
/// (the first's severity and start, the titles listed).
fn page_fields(incidents: &[&Incident]) -> (String, String, String, i64) {
    let first = &incidents[0].alert;
    if incidents.len() == 1 {
        let summary = match (&first.summary, &first.url) {
            (summary, Some(url)) if !summary.is_empty() => format!("{summary} {url}"),
            (_, Some(url)) => url.clone(),
            (summary, None) => summary.clone(),
        };
        return (
            first.severity.clone(),
            first.title.clone(),
            summary,
            first.started_at,
        );
    }
    let title = format!("{} alerts firing", incidents.len());
    let summary = group_lines(incidents).join("; ");
    let started = incidents
        .iter()
        .map(|incident| incident.alert.started_at)
        .min()
        .unwrap_or(first.started_at);
    (first.severity.clone(), title, summary, started)
}

/// One line per alert of a group: its title, with the labels that tell it from the others
/// (`HighErrorRate (instance=api-2)`) when titles repeat.
fn group_lines(incidents: &[&Incident]) -> Vec<String> {
    let differing: BTreeSet<&str> = incidents
        .iter()
        .flat_map(|incident| incident.alert.labels.keys())
        .map(String::as_str)
        .filter(|key| {
            let first = incidents[0].alert.labels.get(*key);
            incidents
                .iter()
                .any(|incident| incident.alert.labels.get(*key) != first)
        })
        .collect();
    incidents
        .iter()
        .map(|incident| {
            let labels: Vec<String> = differing
                .iter()
                .filter_map(|key| {
                    let value = incident.alert.labels.get(*key)?;
                    Some(format!("{key}={value}"))
                })
                .take(2)
                .collect();
            if labels.is_empty() {
                incident.alert.title.clone()
            } else {
                format!("{} ({})", incident.alert.title, labels.join(", "))
            }
        })
        .collect()
}

/// The page as interactive buttons (the person's window is open).
fn page_buttons(nonce: &str, incidents: &[&Incident]) -> OutgoingMessage {
    let (severity, title, summary, started) = page_fields(incidents);
    let mut body = format!("🚨 {} alert: {title}", severity.to_uppercase());
    if incidents.len() > 1 {
        for line in group_lines(incidents) {
            body.push_str(&format!("\n• {line}"));
        }
    } else if !summary.is_empty() {
        body.push('\n');
        body.push_str(&summary);
    }
    body.push_str(&format!("\nStarted {}", start_time(started)));
    if body.chars().count() > PAGE_BODY_MAX {
        body = body.chars().take(PAGE_BODY_MAX - 1).collect::<String>() + "…";
    }
    OutgoingMessage::Buttons {
        header: None,
        body,
        footer: None,
        buttons: ACTIONS
            .iter()
            .map(|(action, title)| ReplyButton {
                id: tap_id(nonce, *action),
                title: (*title).to_owned(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::AlertSource;

    fn incident(title: &str, labels: &[(&str, &str)]) -> Incident {
        Incident {
            id: "i".into(),
            alert: Alert {
                key: title.into(),
                status: AlertStatus::Firing,
                title: title.into(),
                severity: "critical".into(),
                summary: String::new(),
                url: None,
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                source: AlertSource::Alertmanager,
                started_at: 0,
            },
            policy: Policy {
                tiers: vec![vec![Person {
                    number: "14155551234".into(),
                    name: None,
                }]],
                escalate_after_secs: 300,
                agent: None,
            },
            step: 0,
            state: IncidentState::Escalating,
            acknowledged: None,
            resolved_at: None,
            paged: Vec::new(),
            opened_at: 1_000,
        }
    }

    #[test]
    fn tap_ids_carry_a_128_bit_nonce_and_an_action_and_nothing_else_parses() {
        let nonce = new_nonce();
        for action in [Action::Acknowledge, Action::Details, Action::Escalate] {
            let id = tap_id(&nonce, action);
            assert!(id.starts_with(ALERT_TAP_PREFIX));
            assert_eq!(parse_tap(&id), Some((nonce.as_str(), action)));
        }
        for bad in [
            "wal:alert:",
            "wal:alert:abc:acknowledge",
            &format!("wal:alert:{nonce}:resolve"),
            &format!("wal:alert:{nonce}"),
            &format!("wal:cmd:{nonce}:acknowledge"),
            &format!("wal:alert:{}:acknowledge", "g".repeat(32)),
        ] {
            assert_eq!(parse_tap(bad), None, "{bad}");
        }
        let tap = MessageKind::TemplateButton {
            payload: tap_id(&nonce, Action::Details),
            text: "Details".into(),
        };
        assert!(tapped_id(&tap).is_some());
        let other = MessageKind::ButtonReply {
            id: "view_logs".into(),
            title: "View Logs".into(),
        };
        assert_eq!(tapped_id(&other), None);
    }

    #[test]
    fn durations_read_in_minutes_hours_or_days() {
        assert_eq!(duration_words(0), "0 min");
        assert_eq!(duration_words(23), "23 min");
        assert_eq!(duration_words(125), "2 h 5 min");
        assert_eq!(duration_words(3 * 1440 + 250), "3 d 4 h");
    }

    #[test]
    fn a_group_is_told_apart_by_the_labels_that_differ() {
        let a = incident(
            "HighErrorRate",
            &[("instance", "api-1"), ("team", "payments")],
        );
        let b = incident(
            "HighErrorRate",
            &[("instance", "api-2"), ("team", "payments")],
        );
        let c = incident("DiskFull", &[("team", "payments")]);
        assert_eq!(
            group_lines(&[&a, &b, &c]),
            [
                "HighErrorRate (instance=api-1)",
                "HighErrorRate (instance=api-2)",
                "DiskFull"
            ]
        );
        assert_eq!(
            distinct_titles(&[&a, &b, &c]),
            "HighErrorRate (2 alerts); DiskFull"
        );
        let (severity, title, summary, _) = page_fields(&[&a, &b]);
        assert_eq!(
            (severity.as_str(), title.as_str()),
            ("critical", "2 alerts firing")
        );
        assert!(
            summary.contains("api-1") && summary.contains("api-2"),
            "{summary}"
        );
    }

    #[test]
    fn a_page_in_an_open_window_fits_whatsapps_limits() {
        let long = incident(&"x".repeat(3000), &[]);
        let message = page_buttons(&new_nonce(), &[&long]);
        assert!(crate::reply::limits::check(&message).is_ok(), "{message:?}");
    }

    #[test]
    fn incidents_are_kept_a_day_or_as_long_as_their_escalation_can_run() {
        let mut short = incident("a", &[]);
        assert_eq!(incident_expiry(&short), 1_000 + 86_400);
        short.policy.escalate_after_secs = 86_400;
        short.policy.tiers = vec![short.policy.tiers[0].clone(); 3];
        assert_eq!(incident_expiry(&short), 1_000 + 4 * 86_400 + 3_600);
    }
}

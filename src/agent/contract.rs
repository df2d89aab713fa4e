//! The agent contract (README.md, "The agent contract"): the JSON request an agent receives
//! and the reply it returns. The same shapes are a Step Functions state machine's input and
//! output.

use crate::approvals::ApprovalAsk;
use crate::domain::null_default;
use crate::domain::{InboundMessage, MessageKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Contract version sent in every request.
pub const CONTRACT_VERSION: &str = "1";
/// The name of the one agent configured by the shorthand (`AGENT_URL` or `STATE_MACHINE_ARN`
/// without `AGENTS`), and the agent a request names when nobody said otherwise.
pub const DEFAULT_AGENT_NAME: &str = "default";

/// `POST AGENT_URL` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRequest {
    pub version: String,
    pub platform: String,
    /// `whatsapp:<phone_number_id>:<sender id>`: one conversation per user and business number.
    pub session_id: String,
    pub event: AgentEvent,
    /// The conversation before this message, oldest first: each user message and the text we
    /// answered (bounded: `HISTORY_TURNS` turns, 16 KB of text). Empty without a session, after
    /// `/reset`, or with `HISTORY_TURNS=0`. Read as empty when absent (an older producer).
    #[serde(default)]
    pub history: Vec<Turn>,
    /// The sender's selections: the agent this request goes to and the environment chosen
    /// with `/env`. Read as agent `default`, no environment, when absent.
    #[serde(default)]
    pub session: SessionInfo,
}

/// Who said a [`Turn`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The WhatsApp user (the text of their message, as `event.text` had it).
    User,
    /// Us: the text we answered with.
    Assistant,
}

/// One turn of the conversation: `{"role": "user", "text": "…", "timestamp": "RFC 3339"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub role: Role,
    pub text: String,
    /// RFC 3339, UTC, as `event.timestamp` ([`rfc3339`]).
    pub timestamp: String,
}

impl Turn {
    /// A turn said by `role` at `unix_seconds`.
    pub fn new(role: Role, text: impl Into<String>, unix_seconds: i64) -> Self {
        Self {
            role,
            text: text.into(),
            timestamp: rfc3339(unix_seconds),
        }
    }

    /// The user's message at `unix_seconds`.
    pub fn user(text: impl Into<String>, unix_seconds: i64) -> Self {
        Self::new(Role::User, text, unix_seconds)
    }

    /// Our answer at `unix_seconds`.
    pub fn assistant(text: impl Into<String>, unix_seconds: i64) -> Self {
        Self::new(Role::Assistant, text, unix_seconds)
    }
}

/// `session` of the request: what the sender selected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The agent's name (`AGENTS[].name`; `default` for the one-agent shorthand).
    pub agent: String,
    /// The environment chosen with `/env` (or the first of `ENVIRONMENTS`); `null` when
    /// `ENVIRONMENTS` is unset.
    pub environment: Option<String>,
}

impl Default for SessionInfo {
    fn default() -> Self {
        Self {
            agent: DEFAULT_AGENT_NAME.to_owned(),
            environment: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub interactive: Option<InteractiveRef>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub media: Option<MediaRef>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub location: Option<LocationRef>,
    pub reply_to: Option<String>,
    /// RFC 3339, UTC.
    pub timestamp: String,
    pub user: UserRef,
    pub channel: ChannelRef,
    /// `type` `alert_action` only: what was tapped on a page, `acknowledge` or `details`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub action: Option<String>,
    /// `type` `alert_action` only: the alert the page was about.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub alert: Option<AlertRef>,
    /// `type` `approval` only: the decision on an approval the agent asked for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub approval: Option<ApprovalRef>,
}

/// `event.approval` of an `approval` event: how a request the agent made ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRef {
    /// The request's short id.
    pub id: String,
    /// `approved`, `denied` or `expired`.
    pub decision: String,
    /// Who decided, as configured or masked (empty when it expired).
    pub decided_by: Vec<String>,
    pub summary: String,
    pub command: String,
}

/// `event.alert` of an `alert_action` event: the paged alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRef {
    /// The incident's id (one occurrence of the alert).
    pub id: String,
    pub title: String,
    pub severity: String,
    /// `firing`, or `acknowledged` once someone acknowledged it.
    pub status: String,
    pub summary: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub url: Option<String>,
    /// `alertmanager`, `grafana` or `generic`.
    pub source: String,
    /// RFC 3339, UTC.
    pub started_at: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InteractiveRef {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaRef {
    pub id: String,
    pub mime_type: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationRef {
    pub latitude: f64,
    pub longitude: f64,
    pub name: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRef {
    /// Phone number when known, else the BSUID.
    pub id: String,
    pub phone: Option<String>,
    pub bsuid: Option<String>,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelRef {
    pub phone_number_id: String,
    pub display_phone_number: Option<String>,
    pub business_account_id: Option<String>,
}

impl AgentRequest {
    /// Builds the contract request for one inbound message.
    pub fn from_message(message: &InboundMessage) -> Self {
        let kind = &message.kind;
        let interactive = match kind {
            MessageKind::ButtonReply { id, title } => Some(InteractiveRef {
                id: id.clone(),
                title: title.clone(),
                description: None,
            }),
            MessageKind::ListReply {
                id,
                title,
                description,
            } => Some(InteractiveRef {
                id: id.clone(),
                title: title.clone(),
                description: description.clone(),
            }),
            MessageKind::TemplateButton { payload, text } => Some(InteractiveRef {
                id: payload.clone(),
                title: text.clone(),
                description: None,
            }),
            _ => None,
        };
        let media = match kind {
            MessageKind::Media {
                id,
                mime_type,
                caption,
                filename,
                ..
            } => Some(MediaRef {
                id: id.clone(),
                mime_type: mime_type.clone(),
                caption: caption.clone(),
                filename: filename.clone(),
            }),
            _ => None,
        };
        let location = match kind {
            MessageKind::Location {
                latitude,
                longitude,
                name,
                address,
            } => Some(LocationRef {
                latitude: *latitude,
                longitude: *longitude,
                name: name.clone(),
                address: address.clone(),
            }),
            _ => None,
        };
        // A reaction refers to the message reacted to; expose it as reply_to.
        let reply_to = match kind {
            MessageKind::Reaction { message_id, .. } if !message_id.is_empty() => {
                Some(message_id.clone())
            }
            _ => message.reply_to.as_ref().map(|id| id.0.clone()),
        };
        let sender = &message.sender;
        Self {
            version: CONTRACT_VERSION.to_owned(),
            platform: "whatsapp".to_owned(),
            session_id: format!(
                "whatsapp:{}:{}",
                message.channel.phone_number_id,
                sender.id()
            ),
            event: AgentEvent {
                id: message.id.0.clone(),
                kind: kind.type_name().to_owned(),
                text: kind.text(),
                interactive,
                media,
                location,
                reply_to,
                timestamp: rfc3339(message.timestamp),
                user: UserRef {
                    id: sender.id().to_owned(),
                    phone: sender.phone.clone(),
                    bsuid: sender.bsuid.clone(),
                    display_name: sender.display_name.clone(),
                },
                channel: ChannelRef {
                    phone_number_id: message.channel.phone_number_id.0.clone(),
                    display_phone_number: message.channel.display_phone_number.clone(),
                    business_account_id: message.channel.business_account_id.clone(),
                },
                action: None,
                alert: None,
                approval: None,
            },
            history: Vec::new(),
            session: SessionInfo::default(),
        }
    }

    /// The same request with the conversation so far and the sender's selections.
    pub fn with_session(mut self, history: Vec<Turn>, session: SessionInfo) -> Self {
        self.history = history;
        self.session = session;
        self
    }
}

/// Formats unix seconds as RFC 3339 UTC (`2026-11-24T10:00:00Z`) without a date-time crate.
pub fn rfc3339(unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The agent's answer.
///
/// Read part by part (`RawReply`): an action, list row, section or attachment that cannot be
/// used is left out and recorded in [`AgentReply::dropped`] (the user is told something was
/// left out), so one malformed part never costs the user the rest of the answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(from = "RawReply")]
pub struct AgentReply {
    pub status: Option<ReplyStatus>,
    /// The reply text (Markdown). `output` is accepted as an alias.
    pub text: Option<String>,
    pub actions: Vec<Action>,
    pub list: Option<ListSpec>,
    pub attachments: Vec<Attachment>,
    /// An approval the agent asks for before it acts (`"approval": {...}`, or AOF's
    /// `"requires_approval": true` with `"command"`). Read whole or not at all: a field that
    /// cannot be read drops the approval (never a weaker one: a dropped `approvers` must not
    /// become "all of them").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalAsk>,
    /// The parts of the agent's JSON that could not be read. Never serialized: a reply that
    /// went through JSON once has only readable parts.
    #[serde(skip)]
    pub dropped: Vec<DroppedPart>,
}

impl AgentReply {
    /// A plain reply with a status.
    pub fn text(status: Option<ReplyStatus>, text: impl Into<String>) -> Self {
        Self {
            status,
            text: Some(text.into()),
            ..Self::default()
        }
    }

    /// True when the reply asks for nothing to be sent.
    pub fn is_empty(&self) -> bool {
        self.status.is_none()
            && self.text.as_deref().is_none_or(|t| t.trim().is_empty())
            && self.actions.is_empty()
            && self.list.is_none()
            && self.attachments.is_empty()
            && self.approval.is_none()
    }

    /// True when the agent sent something but no part of it could be read: a failed answer
    /// (the user gets the ❌ message), not a choice to stay silent.
    pub fn is_unreadable(&self) -> bool {
        !self.dropped.is_empty() && self.is_empty()
    }

    /// Why an unreadable reply is one: each part left out, where and why (never its text).
    pub fn unreadable_reason(&self) -> String {
        let parts: Vec<String> = self.dropped.iter().map(ToString::to_string).collect();
        format!("no part of the reply is readable ({})", parts.join(", "))
    }
}

/// A part of the agent's reply that was left out because it could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedPart {
    /// Where it was: `attachments[3]`, `list.sections[0].rows[1]`, `text`, …
    pub part: String,
    /// Why, in our words (never the agent's text).
    pub reason: &'static str,
}

impl std::fmt::Display for DroppedPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.part, self.reason)
    }
}

/// The reply as JSON values: each part is read on its own in `From<RawReply>`.
#[derive(Deserialize)]
struct RawReply {
    #[serde(default)]
    status: Value,
    #[serde(default)]
    text: Value,
    /// `text`'s alias; read when `text` is absent (an agent may send both).
    #[serde(default)]
    output: Value,
    #[serde(default)]
    actions: Value,
    #[serde(default)]
    list: Value,
    #[serde(default)]
    attachments: Value,
    #[serde(default)]
    approval: Value,
    /// AOF's spelling: `"requires_approval": true` with `"command"`.
    #[serde(default)]
    requires_approval: Value,
    #[serde(default)]
    command: Value,
}

/// Longest attachment type quoted in a log line.
const LOGGED_TYPE_MAX: usize = 20;

impl From<RawReply> for AgentReply {
    fn from(raw: RawReply) -> Self {
        let mut parts = Parts::default();
        let status = match raw.status {
            Value::Null => None,
            Value::String(status) => Some(ReplyStatus::parse(&status)),
            // Not content the user would miss: no emoji, no note.
            _ => {
                tracing::warn!("agent reply status is not a string; ignored");
                None
            }
        };
        let text = match raw.text {
            Value::Null => parts.string(raw.output, "output"),
            text => parts.string(text, "text"),
        };
        let actions = parts.each(raw.actions, "actions", action);
        let list = match raw.list {
            Value::Null => None,
            Value::Object(list) => Some(list_spec(list, &mut parts)),
            _ => {
                parts.drop("list", "not an object");
                None
            }
        };
        let attachments = parts.each(raw.attachments, "attachments", attachment);
        let approval = match (raw.approval, raw.requires_approval) {
            (Value::Null, Value::Bool(true)) => match raw.command {
                Value::String(command) => Some(ApprovalAsk {
                    summary: text
                        .as_deref()
                        .and_then(|text| text.lines().find(|line| !line.trim().is_empty()))
                        .unwrap_or("Run this command")
                        .to_owned(),
                    command,
                    approvers: None,
                    required: None,
                    expires_in_secs: None,
                }),
                _ => {
                    parts.drop("command", "requires_approval without a command string");
                    None
                }
            },
            (Value::Null, _) => None,
            (Value::Object(object), _) => match approval_ask(object) {
                Ok(ask) => Some(ask),
                Err((field, reason)) => {
                    parts.drop(format!("approval.{field}"), reason);
                    None
                }
            },
            _ => {
                parts.drop("approval", "not an object");
                None
            }
        };
        Self {
            status,
            text,
            actions,
            list,
            attachments,
            approval,
            dropped: parts.dropped,
        }
    }
}

/// What was left out while reading one reply.
#[derive(Default)]
struct Parts {
    dropped: Vec<DroppedPart>,
}

impl Parts {
    fn drop(&mut self, part: impl Into<String>, reason: &'static str) {
        let part = part.into();
        tracing::warn!(part = %part, reason, "agent reply part left out");
        self.dropped.push(DroppedPart { part, reason });
    }

    /// A string field: `null` or missing is `None`, anything but a string is dropped.
    fn string(&mut self, value: Value, part: &str) -> Option<String> {
        match value {
            Value::Null => None,
            Value::String(text) => Some(text),
            _ => {
                self.drop(part, "not a string");
                None
            }
        }
    }

    /// Each item of a list field read by `read`; `null` or missing is empty.
    fn each<T>(
        &mut self,
        value: Value,
        part: &str,
        read: impl Fn(Value) -> Result<T, &'static str>,
    ) -> Vec<T> {
        match value {
            Value::Null => Vec::new(),
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .filter_map(|(index, item)| {
                    read(item)
                        .map_err(|reason| self.drop(format!("{part}[{index}]"), reason))
                        .ok()
                })
                .collect(),
            _ => {
                self.drop(part, "not a list");
                Vec::new()
            }
        }
    }
}

/// A short field as text: strings as they are, numbers as written (`"id": 1`), `null` or
/// missing as `""`; anything else is unreadable.
fn scalar(object: &mut Map<String, Value>, key: &str) -> Result<String, &'static str> {
    match object.remove(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text),
        Some(Value::Number(number)) => Ok(number.to_string()),
        Some(_) => Err("a field is neither text nor a number"),
    }
}

/// An optional text field: anything but a string counts as absent.
fn optional(object: &mut Map<String, Value>, key: &str) -> Option<String> {
    match object.remove(key) {
        Some(Value::String(text)) => Some(text),
        _ => None,
    }
}

/// `{"summary", "command", "approvers"?, "required"?, "expires_in_secs"?}`; `Err` names the
/// field that cannot be read.
fn approval_ask(
    mut object: Map<String, Value>,
) -> Result<ApprovalAsk, (&'static str, &'static str)> {
    let command = match object.remove("command") {
        Some(Value::String(command)) => command,
        None | Some(Value::Null) => return Err(("command", "missing")),
        Some(_) => return Err(("command", "not a string")),
    };
    let summary = match object.remove("summary") {
        Some(Value::String(summary)) => summary,
        None | Some(Value::Null) => "Run this command".to_owned(),
        Some(_) => return Err(("summary", "not a string")),
    };
    let approvers = match object.remove("approvers") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .into_iter()
                .map(|item| match item {
                    Value::String(id) => Ok(id),
                    _ => Err(("approvers", "an entry is not a string")),
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(("approvers", "not a list")),
    };
    let whole = |value: Option<Value>, field: &'static str| match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number
            .as_u64()
            .map(Some)
            .ok_or((field, "not a whole number")),
        Some(_) => Err((field, "not a whole number")),
    };
    let required = whole(object.remove("required"), "required")?
        .map(|n| u32::try_from(n).map_err(|_| ("required", "too large")))
        .transpose()?;
    let expires_in_secs = whole(object.remove("expires_in_secs"), "expires_in_secs")?;
    Ok(ApprovalAsk {
        summary,
        command,
        approvers,
        required,
        expires_in_secs,
    })
}

/// `{"id": …, "label"|"title": …}`, or a bare label (`"actions": ["Yes", "No"]`).
fn action(value: Value) -> Result<Action, &'static str> {
    match value {
        Value::String(label) => Ok(Action {
            id: String::new(),
            label,
        }),
        Value::Object(mut object) => {
            let id = scalar(&mut object, "id")?;
            let label = match scalar(&mut object, "label")? {
                label if label.is_empty() => scalar(&mut object, "title")?,
                label => label,
            };
            Ok(Action { id, label })
        }
        _ => Err("not an object"),
    }
}

fn list_spec(mut list: Map<String, Value>, parts: &mut Parts) -> ListSpec {
    let header = parts.string(list.remove("header").unwrap_or_default(), "list.header");
    let body = parts.string(list.remove("body").unwrap_or_default(), "list.body");
    let button = parts.string(list.remove("button").unwrap_or_default(), "list.button");
    let sections = list.remove("sections").unwrap_or_default();
    let sections = match sections {
        Value::Null => Vec::new(),
        Value::Array(sections) => sections
            .into_iter()
            .enumerate()
            .filter_map(|(index, section)| {
                let part = format!("list.sections[{index}]");
                match section {
                    Value::Object(mut section) => {
                        let title = optional(&mut section, "title");
                        let rows = section.remove("rows").unwrap_or_default();
                        let rows = parts.each(rows, &format!("{part}.rows"), row);
                        Some(ListSection { title, rows })
                    }
                    _ => {
                        parts.drop(part, "not an object");
                        None
                    }
                }
            })
            .collect(),
        _ => {
            parts.drop("list.sections", "not a list");
            Vec::new()
        }
    };
    ListSpec {
        header,
        body,
        button,
        sections,
    }
}

/// A row; a missing title is filled from the id by the formatter, like an empty one.
fn row(value: Value) -> Result<ListRow, &'static str> {
    let Value::Object(mut object) = value else {
        return Err("not an object");
    };
    Ok(ListRow {
        id: scalar(&mut object, "id")?,
        title: scalar(&mut object, "title")?,
        description: optional(&mut object, "description"),
    })
}

fn attachment(value: Value) -> Result<Attachment, &'static str> {
    let Value::Object(mut object) = value else {
        return Err("not an object");
    };
    let kind = match object.remove("type") {
        Some(Value::String(kind)) => AttachmentKind::parse(&kind).ok_or_else(|| {
            tracing::warn!(
                kind = %crate::redact::scrub(&crate::redact::excerpt(&kind, LOGGED_TYPE_MAX)),
                "attachment type not supported"
            );
            "unsupported type"
        })?,
        None | Some(Value::Null) => return Err("no type"),
        Some(_) => return Err("type is not a string"),
    };
    // `link` is the Graph API's name for it.
    let url = object.remove("url").or_else(|| object.remove("link"));
    let Some(Value::String(url)) = url else {
        return Err("no url");
    };
    Ok(Attachment {
        kind,
        url,
        filename: optional(&mut object, "filename"),
        caption: optional(&mut object, "caption"),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplyStatus {
    Success,
    Error,
    Warning,
    Info,
    /// Any other status string: no emoji.
    #[serde(other)]
    Unknown,
}

impl ReplyStatus {
    /// The status an agent's string names, in any case; `Unknown` for any other string.
    pub fn parse(status: &str) -> Self {
        match status.trim().to_ascii_lowercase().as_str() {
            "success" => Self::Success,
            "error" => Self::Error,
            "warning" => Self::Warning,
            "info" => Self::Info,
            _ => Self::Unknown,
        }
    }

    /// The emoji put in front of the reply.
    pub fn emoji(self) -> Option<&'static str> {
        match self {
            Self::Success => Some("✅"),
            Self::Error => Some("❌"),
            Self::Warning => Some("⚠️"),
            Self::Info => Some("ℹ️"),
            Self::Unknown => None,
        }
    }
}

/// A quick action: a reply button (≤ 3) or a list row (4–10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    #[serde(default)]
    pub id: String,
    #[serde(alias = "title", default)]
    pub label: String,
}

/// An explicit list message.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ListSpec {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub button: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub sections: Vec<ListSection>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ListSection {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub rows: Vec<ListRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListRow {
    #[serde(default)]
    pub id: String,
    /// Empty (or missing) is filled from the id.
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    #[serde(rename = "type")]
    pub kind: AttachmentKind,
    pub url: String,
    #[serde(default)]
    pub filename: Option<String>,
    /// Shown under an image, video or document; audio and stickers have none (it goes into
    /// the reply text instead).
    #[serde(default)]
    pub caption: Option<String>,
}

/// The media WhatsApp sends by link.
/// <https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages#media-object>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentKind {
    Image,
    Document,
    Video,
    Audio,
    Sticker,
}

impl AttachmentKind {
    /// The kind an agent's `type` names, in any case (`IMAGE`, ` Video `); `None` otherwise.
    pub fn parse(kind: &str) -> Option<Self> {
        let kind = kind.trim();
        [
            Self::Image,
            Self::Document,
            Self::Video,
            Self::Audio,
            Self::Sticker,
        ]
        .into_iter()
        .find(|candidate| candidate.as_str().eq_ignore_ascii_case(kind))
    }

    /// The contract's (and Graph API's) name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Document => "document",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Sticker => "sticker",
        }
    }

    /// Whether WhatsApp shows a caption with this kind of media.
    pub fn has_caption(self) -> bool {
        matches!(self, Self::Image | Self::Document | Self::Video)
    }
}

impl<'de> Deserialize<'de> for AttachmentKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let kind = String::deserialize(deserializer)?;
        Self::parse(&kind).ok_or_else(|| serde::de::Error::custom("unsupported attachment type"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_unix_seconds_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_514_400), "2026-11-24T10:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn reply_accepts_output_alias_nulls_and_unknown_status() {
        let reply: AgentReply = serde_json::from_str(
            r#"{"status":"weird","output":"hi","actions":null,"list":null,"extra":1}"#,
        )
        .unwrap();
        assert_eq!(reply.status, Some(ReplyStatus::Unknown));
        assert_eq!(reply.text.as_deref(), Some("hi"));
        assert!(reply.actions.is_empty());
        let both: AgentReply = serde_json::from_str(r#"{"text":"a","output":"b"}"#).unwrap();
        assert_eq!(both.text.as_deref(), Some("a"));
    }

    #[test]
    fn attachment_types_are_read_in_any_case_and_a_link_may_be_called_link() {
        let reply: AgentReply = serde_json::from_str(
            r#"{"attachments":[{"type":" IMAGE ","url":"https://x.y/a.png"},
                               {"type":"Sticker","link":"https://x.y/s.webp"},
                               {"type":"gif","url":"https://x.y/g.gif"}]}"#,
        )
        .unwrap();
        let kinds: Vec<AttachmentKind> = reply.attachments.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, vec![AttachmentKind::Image, AttachmentKind::Sticker]);
        assert_eq!(reply.attachments[1].url, "https://x.y/s.webp");
        assert_eq!(
            reply.dropped,
            vec![DroppedPart {
                part: "attachments[2]".into(),
                reason: "unsupported type"
            }]
        );
    }

    fn message() -> InboundMessage {
        InboundMessage::sample(
            "wamid.1",
            MessageKind::Text {
                body: "and in staging?".into(),
            },
        )
    }

    #[test]
    fn a_request_carries_the_history_and_the_session() {
        let history = vec![
            Turn::user("pods crashing in prod", 1_795_514_400),
            Turn::assistant("2 pods in CrashLoopBackOff", 1_795_514_460),
        ];
        let request = AgentRequest::from_message(&message()).with_session(
            history,
            SessionInfo {
                agent: "k8s".into(),
                environment: Some("prod".into()),
            },
        );
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["version"], "1", "additive: the version stays");
        assert_eq!(
            json["history"],
            serde_json::json!([
                {"role": "user", "text": "pods crashing in prod", "timestamp": "2026-11-24T10:00:00Z"},
                {"role": "assistant", "text": "2 pods in CrashLoopBackOff", "timestamp": "2026-11-24T10:01:00Z"}
            ])
        );
        assert_eq!(
            json["session"],
            serde_json::json!({"agent": "k8s", "environment": "prod"})
        );
        let back: AgentRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back, request);
    }

    #[test]
    fn a_request_without_a_session_names_the_default_agent_and_no_environment() {
        let json = serde_json::to_value(AgentRequest::from_message(&message())).unwrap();
        assert_eq!(json["history"], serde_json::json!([]));
        assert_eq!(
            json["session"],
            serde_json::json!({"agent": "default", "environment": null})
        );
    }

    #[test]
    fn a_request_from_an_older_producer_reads_without_history_or_session() {
        // A Step Functions "deliver" event started before the upgrade has neither field.
        let mut json = serde_json::to_value(AgentRequest::from_message(&message())).unwrap();
        let object = json.as_object_mut().unwrap();
        object.remove("history");
        object.remove("session");
        let request: AgentRequest = serde_json::from_value(json).unwrap();
        assert!(request.history.is_empty());
        assert_eq!(request.session, SessionInfo::default());
        assert_eq!(request.session.agent, DEFAULT_AGENT_NAME);
    }

    #[test]
    fn a_turn_role_is_user_or_assistant_and_nothing_else() {
        assert!(
            serde_json::from_str::<Turn>(r#"{"role":"system","text":"x","timestamp":"t"}"#)
                .is_err()
        );
        let turn: Turn =
            serde_json::from_str(r#"{"role":"assistant","text":"x","timestamp":"t"}"#).unwrap();
        assert_eq!(turn.role, Role::Assistant);
    }

    #[test]
    fn empty_reply_is_empty() {
        let reply: AgentReply = serde_json::from_str("{}").unwrap();
        assert!(reply.is_empty());
        assert!(!AgentReply::text(None, "x").is_empty());
    }
}

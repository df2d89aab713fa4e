//! The agent contract (DESIGN.md): the JSON request an agent receives and the reply it returns.
//! The same shapes are a Step Functions state machine's input and output.

use crate::message::{InboundMessage, MessageKind};
use crate::serde_util::null_default;
use serde::{Deserialize, Serialize};

/// Contract version sent in every request.
pub const CONTRACT_VERSION: &str = "1";

/// `POST AGENT_URL` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRequest {
    pub version: String,
    pub platform: String,
    /// `whatsapp:<phone_number_id>:<sender id>`: one conversation per user and business number.
    pub session_id: String,
    pub event: AgentEvent,
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
            },
        }
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
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AgentReply {
    #[serde(default, deserialize_with = "null_default")]
    pub status: Option<ReplyStatus>,
    /// The reply text (Markdown). `output` is accepted as an alias.
    #[serde(default, alias = "output", deserialize_with = "null_default")]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub actions: Vec<Action>,
    #[serde(default, deserialize_with = "null_default")]
    pub list: Option<ListSpec>,
    #[serde(default, deserialize_with = "null_default")]
    pub attachments: Vec<Attachment>,
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
    }
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
    pub id: String,
    #[serde(alias = "title")]
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
    pub id: String,
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
    #[serde(default)]
    pub caption: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentKind {
    Image,
    Document,
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
    }

    #[test]
    fn empty_reply_is_empty() {
        let reply: AgentReply = serde_json::from_str("{}").unwrap();
        assert!(reply.is_empty());
        assert!(!AgentReply::text(None, "x").is_empty());
    }
}

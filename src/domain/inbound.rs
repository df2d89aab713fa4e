//! Inbound WhatsApp messages as the rest of the crate sees them: parsed once from the webhook,
//! owned, and serializable so a queue job can carry them unchanged.

use super::ids::{MessageId, PhoneNumberId};
use super::sender::Sender;
use serde::{Deserialize, Serialize};

/// The business number a message arrived on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub phone_number_id: PhoneNumberId,
    pub display_phone_number: Option<String>,
    pub business_account_id: Option<String>,
}

/// One inbound message, whatever its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub id: MessageId,
    /// Unix seconds, as Meta sends it (0 when absent or unreadable).
    pub timestamp: i64,
    pub sender: Sender,
    pub channel: Channel,
    /// The message this one replies to (`context.id`), if any.
    pub reply_to: Option<MessageId>,
    pub kind: MessageKind,
}

impl InboundMessage {
    /// A message from the sample sender (`14155551234`, as in `events/`) on the sample business
    /// number, received at 2026-11-24T10:00:00Z: for unit tests and examples.
    #[cfg(any(test, feature = "dev"))]
    pub fn sample(id: &str, kind: MessageKind) -> Self {
        Self {
            id: MessageId::from(id),
            timestamp: 1_795_514_400,
            sender: Sender {
                phone: Some("14155551234".into()),
                ..Sender::default()
            },
            channel: Channel {
                phone_number_id: PhoneNumberId::from("106540352242922"),
                display_phone_number: None,
                business_account_id: None,
            },
            reply_to: None,
            kind,
        }
    }
}

/// Media message kinds that carry a media id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaType {
    Image,
    Document,
    Audio,
    Video,
    Sticker,
}

impl MediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Document => "document",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Sticker => "sticker",
        }
    }
}

/// What a message carries. Unknown kinds are `Unsupported`, never an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MessageKind {
    Text {
        body: String,
    },
    ButtonReply {
        id: String,
        title: String,
    },
    ListReply {
        id: String,
        title: String,
        description: Option<String>,
    },
    /// A tap on a template's quick-reply button (`type: button`).
    TemplateButton {
        payload: String,
        text: String,
    },
    Media {
        media_type: MediaType,
        id: String,
        mime_type: Option<String>,
        caption: Option<String>,
        filename: Option<String>,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    },
    Contacts {
        names: Vec<String>,
    },
    /// An emoji reaction; an empty emoji means the reaction was removed.
    Reaction {
        message_id: String,
        emoji: String,
    },
    Order {
        catalog_id: Option<String>,
        text: Option<String>,
        item_count: usize,
    },
    /// Anything else: Meta's `unsupported`, unknown interactive kinds, future types.
    Unsupported {
        kind: String,
    },
}

impl MessageKind {
    /// The id of the button tapped: an interactive reply button's id, or a template quick
    /// reply's payload; `None` for anything else (a list row is a choice, not a tap).
    pub fn tap_id(&self) -> Option<&str> {
        match self {
            Self::ButtonReply { id, .. } => Some(id),
            Self::TemplateButton { payload, .. } => Some(payload),
            _ => None,
        }
    }

    /// The agent contract's `type` field.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::ButtonReply { .. } => "button_reply",
            Self::ListReply { .. } => "list_reply",
            Self::TemplateButton { .. } => "template_button",
            Self::Media { media_type, .. } => media_type.as_str(),
            Self::Location { .. } => "location",
            Self::Contacts { .. } => "contacts",
            Self::Reaction { .. } => "reaction",
            Self::Order { .. } => "order",
            Self::Unsupported { .. } => "unsupported",
        }
    }

    /// The agent contract's `text`: always set. Message text, a caption, `button:<id>` /
    /// `list:<id>` for taps (as AOF does), or a short description of a non-text message.
    pub fn text(&self) -> String {
        match self {
            Self::Text { body } => body.clone(),
            Self::ButtonReply { id, .. } => format!("button:{id}"),
            Self::ListReply { id, .. } => format!("list:{id}"),
            Self::TemplateButton { payload, .. } => format!("button:{payload}"),
            Self::Media {
                media_type,
                caption,
                filename,
                ..
            } => match (caption, filename) {
                (Some(caption), _) if !caption.is_empty() => caption.clone(),
                (_, Some(filename)) => format!("[{} {filename}]", media_type.as_str()),
                _ => format!("[{}]", media_type.as_str()),
            },
            Self::Location {
                latitude,
                longitude,
                name,
                address,
            } => {
                let label = [name.as_deref(), address.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(", ");
                if label.is_empty() {
                    format!("[location {latitude},{longitude}]")
                } else {
                    format!("[location {label} ({latitude},{longitude})]")
                }
            }
            Self::Contacts { names } => format!("[contacts: {}]", names.join(", ")),
            Self::Reaction { emoji, .. } if emoji.is_empty() => "[reaction removed]".to_owned(),
            Self::Reaction { emoji, .. } => format!("[reaction {emoji}]"),
            Self::Order {
                text, item_count, ..
            } => match text {
                Some(text) if !text.is_empty() => format!("[order: {item_count} items] {text}"),
                _ => format!("[order: {item_count} items]"),
            },
            Self::Unsupported { kind } => format!("[unsupported message: {kind}]"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_become_prefixed_ids_like_aof() {
        let button = MessageKind::ButtonReply {
            id: "view_logs".into(),
            title: "View Logs".into(),
        };
        let list = MessageKind::ListReply {
            id: "prod".into(),
            title: "Production".into(),
            description: None,
        };
        assert_eq!(button.text(), "button:view_logs");
        assert_eq!(list.text(), "list:prod");
        assert_eq!(button.type_name(), "button_reply");
    }

    #[test]
    fn media_text_prefers_caption_then_filename() {
        let media = |caption: Option<&str>, filename: Option<&str>| MessageKind::Media {
            media_type: MediaType::Document,
            id: "1".into(),
            mime_type: None,
            caption: caption.map(Into::into),
            filename: filename.map(Into::into),
        };
        assert_eq!(media(Some("logs"), Some("a.txt")).text(), "logs");
        assert_eq!(media(None, Some("a.txt")).text(), "[document a.txt]");
        assert_eq!(media(None, None).text(), "[document]");
    }
}

//! Outgoing WhatsApp messages: what the formatter makes and the Graph API client sends (its
//! wire format is `graph::wire`), and who they go to.

use super::sender::{Sender, normalize_phone};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

/// One message to send. The formatter ([`crate::reply`]) guarantees WhatsApp's limits.
/// Serializable so that a reply that could not be sent yet can be kept (in the session) and
/// sent later exactly as it was formatted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutgoingMessage {
    Text {
        body: String,
    },
    /// Interactive reply buttons (1–3).
    Buttons {
        header: Option<String>,
        body: String,
        footer: Option<String>,
        buttons: Vec<ReplyButton>,
    },
    /// Interactive list.
    List {
        header: Option<String>,
        body: String,
        footer: Option<String>,
        button: String,
        sections: Vec<ListSectionOut>,
    },
    Image {
        link: String,
        caption: Option<String>,
    },
    Document {
        link: String,
        filename: Option<String>,
        caption: Option<String>,
    },
    Video {
        link: String,
        caption: Option<String>,
    },
    /// Audio has no caption on WhatsApp.
    Audio {
        link: String,
    },
    /// A sticker (WebP) has no caption on WhatsApp.
    Sticker {
        link: String,
    },
    /// An approved message template: what a business may send when the person's 24-hour
    /// customer service window is closed.
    /// <https://developers.facebook.com/docs/whatsapp/cloud-api/guides/send-message-templates>
    Template {
        template: TemplateRef,
        /// The values of the body's `{{1}}`, `{{2}}`…, in order.
        body: Vec<String>,
        /// The payloads of the template's quick-reply buttons, in their order: what a tap on
        /// each sends back (as a `button` message).
        quick_replies: Vec<String>,
    },
    /// An emoji reaction on a message of the conversation (ours or the user's), such as the ✅
    /// on a page its reader acknowledged.
    /// <https://developers.facebook.com/docs/whatsapp/cloud-api/messages/reaction-messages>
    Reaction {
        /// The wamid reacted to.
        message_id: String,
        emoji: String,
    },
}

/// An approved message template: `name:language` (`answer_ready:en_US`), as
/// `REENGAGE_TEMPLATE` and later template variables name one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TemplateRef {
    /// Lower-case letters, digits and underscores, at most 512 (Meta's rule for names).
    pub name: String,
    /// A language code such as `en` or `en_US`.
    pub language: String,
}

/// Why a `name:language` template reference is unusable.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TemplateRefError {
    #[error("must be name:language, e.g. answer_ready:en_US")]
    Shape,
    #[error("the name must be 1-512 lower-case letters, digits or underscores")]
    Name,
    #[error("the language must be a code like en or en_US")]
    Language,
}

impl TemplateRef {
    /// Longest template name Meta accepts.
    pub const NAME_MAX: usize = 512;

    /// Reads `name:language`.
    pub fn parse(spec: &str) -> Result<Self, TemplateRefError> {
        let (name, language) = spec.trim().split_once(':').ok_or(TemplateRefError::Shape)?;
        let name_ok = !name.is_empty()
            && name.len() <= Self::NAME_MAX
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err(TemplateRefError::Name);
        }
        let (code, region) = match language.split_once('_') {
            Some((code, region)) => (code, Some(region)),
            None => (language, None),
        };
        let code_ok = (2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_lowercase());
        let region_ok = region.is_none_or(|region| {
            region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase())
        });
        if !code_ok || !region_ok {
            return Err(TemplateRefError::Language);
        }
        Ok(Self {
            name: name.to_owned(),
            language: language.to_owned(),
        })
    }
}

impl std::fmt::Display for TemplateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, self.language)
    }
}

impl FromStr for TemplateRef {
    type Err = TemplateRefError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Self::parse(spec)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyButton {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSectionOut {
    pub title: Option<String>,
    pub rows: Vec<ListRowOut>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRowOut {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
}

/// Who a message goes to: the phone number when known (`to`), else the BSUID (`recipient`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Phone(String),
    Bsuid(String),
}

impl Recipient {
    /// The address to answer a sender at; `None` when the sender has no usable id. The phone
    /// number is the one the allowlist checked, normalised the same way (digits only: Meta
    /// sends digits, a hostile or hand-written payload may say "+1 (415) 555-1234"); one that
    /// is no phone number at all is not answered, the BSUID is used if there is one.
    pub fn of(sender: &Sender) -> Option<Self> {
        if let Some(phone) = sender.phone.as_deref().and_then(normalize_phone) {
            return Some(Self::Phone(phone));
        }
        match &sender.bsuid {
            Some(bsuid) if !bsuid.is_empty() => Some(Self::Bsuid(bsuid.clone())),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Phone(id) | Self::Bsuid(id) => id,
        }
    }
}

impl OutgoingMessage {
    /// A text message's body; `None` for every other kind.
    pub fn text_body(&self) -> Option<&str> {
        match self {
            Self::Text { body } => Some(body),
            _ => None,
        }
    }

    /// The Graph API `type` of this message.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::Buttons { .. } | Self::List { .. } => "interactive",
            Self::Image { .. } => "image",
            Self::Document { .. } => "document",
            Self::Video { .. } => "video",
            Self::Audio { .. } => "audio",
            Self::Sticker { .. } => "sticker",
            Self::Template { .. } => "template",
            Self::Reaction { .. } => "reaction",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_message_comes_back_exactly_as_formatted() {
        let messages = vec![
            OutgoingMessage::Text {
                body: "✅ done".into(),
            },
            OutgoingMessage::List {
                header: Some("Agents".into()),
                body: "Pick one".into(),
                footer: None,
                button: "Choose".into(),
                sections: vec![ListSectionOut {
                    title: None,
                    rows: vec![ListRowOut {
                        id: "wal:cmd:1".into(),
                        title: "k8s".into(),
                        description: Some("Kubernetes".into()),
                    }],
                }],
            },
            OutgoingMessage::Document {
                link: "https://example.com/a.pdf".into(),
                filename: Some("a.pdf".into()),
                caption: None,
            },
        ];
        let kept = serde_json::to_string(&messages).unwrap();
        assert!(kept.contains(r#""type":"list""#), "{kept}");
        let back: Vec<OutgoingMessage> = serde_json::from_str(&kept).unwrap();
        assert_eq!(back, messages);
    }

    #[test]
    fn template_references_are_name_colon_language() {
        let template = TemplateRef::parse(" answer_ready:en ").unwrap();
        assert_eq!(template.to_string(), "answer_ready:en");
        assert_eq!(
            "x1_2:pt_BR".parse::<TemplateRef>().unwrap().language,
            "pt_BR"
        );
        assert!(TemplateRef::parse(&format!("{}:en", "a".repeat(512))).is_ok());
        for (spec, error) in [
            ("answer_ready", TemplateRefError::Shape),
            (":en", TemplateRefError::Name),
            ("Answer:en", TemplateRefError::Name),
            ("answer-ready:en", TemplateRefError::Name),
            (&format!("{}:en", "a".repeat(513)), TemplateRefError::Name),
            ("answer:", TemplateRefError::Language),
            ("answer:EN", TemplateRefError::Language),
            ("answer:en_us", TemplateRefError::Language),
            ("answer:en_USA", TemplateRefError::Language),
            ("answer:english", TemplateRefError::Language),
            ("answer:en:US", TemplateRefError::Language),
        ] {
            assert_eq!(TemplateRef::parse(spec), Err(error), "{spec}");
        }
    }

    #[test]
    fn phone_numbers_are_addressed_as_the_digits_the_allowlist_checked() {
        for spelling in ["+1 (415) 555-1234", "001 415 555 1234", " 14155551234 "] {
            let sender = Sender {
                phone: Some(spelling.into()),
                bsuid: Some("US.134".into()),
                ..Sender::default()
            };
            assert_eq!(
                Recipient::of(&sender),
                Some(Recipient::Phone("14155551234".into())),
                "{spelling}"
            );
        }
        // Not a phone number: the BSUID, or nobody.
        let odd = Sender {
            phone: Some("../14155551234".into()),
            bsuid: Some("US.134".into()),
            ..Sender::default()
        };
        assert_eq!(Recipient::of(&odd), Some(Recipient::Bsuid("US.134".into())));
        let odd = Sender {
            phone: Some("abc".into()),
            ..Sender::default()
        };
        assert_eq!(Recipient::of(&odd), None);
    }
}

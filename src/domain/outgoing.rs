//! Outgoing WhatsApp messages: what the formatter makes and the Graph API client sends (its
//! wire format is `graph::wire`), and who they go to.

use super::sender::{Sender, normalize_phone};

/// One message to send. The formatter ([`crate::reply`]) guarantees WhatsApp's limits.
#[derive(Debug, Clone, PartialEq)]
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyButton {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListSectionOut {
    pub title: Option<String>,
    pub rows: Vec<ListRowOut>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

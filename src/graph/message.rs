//! Outgoing WhatsApp messages and their Graph API JSON.
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages>

use crate::message::{MessageId, Sender};
use crate::sender::normalize_phone;
use serde_json::{Value, json};

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

    /// The `POST /{phone_number_id}/messages` body. `context` quotes the message answered.
    pub fn to_graph_json(&self, to: &Recipient, context: Option<&MessageId>) -> Value {
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "type": self.type_name(),
        });
        match to {
            Recipient::Phone(phone) => body["to"] = json!(phone),
            Recipient::Bsuid(bsuid) => body["recipient"] = json!(bsuid),
        }
        if let Some(id) = context {
            body["context"] = json!({ "message_id": id.as_str() });
        }
        let (key, payload) = match self {
            Self::Text { body: text } => ("text", json!({ "body": text, "preview_url": false })),
            Self::Buttons {
                header,
                body: text,
                footer,
                buttons,
            } => {
                let buttons: Vec<Value> = buttons
                    .iter()
                    .map(|b| json!({ "type": "reply", "reply": { "id": b.id, "title": b.title } }))
                    .collect();
                let mut interactive = json!({
                    "type": "button",
                    "body": { "text": text },
                    "action": { "buttons": buttons },
                });
                decorate(&mut interactive, header, footer);
                ("interactive", interactive)
            }
            Self::List {
                header,
                body: text,
                footer,
                button,
                sections,
            } => {
                let sections: Vec<Value> = sections
                    .iter()
                    .map(|section| {
                        let rows: Vec<Value> = section
                            .rows
                            .iter()
                            .map(|row| {
                                let mut value = json!({ "id": row.id, "title": row.title });
                                if let Some(description) = &row.description {
                                    value["description"] = json!(description);
                                }
                                value
                            })
                            .collect();
                        let mut value = json!({ "rows": rows });
                        if let Some(title) = &section.title {
                            value["title"] = json!(title);
                        }
                        value
                    })
                    .collect();
                let mut interactive = json!({
                    "type": "list",
                    "body": { "text": text },
                    "action": { "button": button, "sections": sections },
                });
                decorate(&mut interactive, header, footer);
                ("interactive", interactive)
            }
            Self::Image { link, caption } => {
                let mut image = json!({ "link": link });
                if let Some(caption) = caption {
                    image["caption"] = json!(caption);
                }
                ("image", image)
            }
            Self::Document {
                link,
                filename,
                caption,
            } => {
                let mut document = json!({ "link": link });
                if let Some(filename) = filename {
                    document["filename"] = json!(filename);
                }
                if let Some(caption) = caption {
                    document["caption"] = json!(caption);
                }
                ("document", document)
            }
            Self::Video { link, caption } => {
                let mut video = json!({ "link": link });
                if let Some(caption) = caption {
                    video["caption"] = json!(caption);
                }
                ("video", video)
            }
            Self::Audio { link } => ("audio", json!({ "link": link })),
            Self::Sticker { link } => ("sticker", json!({ "link": link })),
        };
        body[key] = payload;
        body
    }
}

fn decorate(interactive: &mut Value, header: &Option<String>, footer: &Option<String>) {
    if let Some(header) = header {
        interactive["header"] = json!({ "type": "text", "text": header });
    }
    if let Some(footer) = footer {
        interactive["footer"] = json!({ "text": footer });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_goes_to_phone_with_context() {
        let message = OutgoingMessage::Text { body: "hi".into() };
        let json = message.to_graph_json(
            &Recipient::Phone("14155551234".into()),
            Some(&MessageId::from("wamid.1")),
        );
        assert_eq!(json["to"], "14155551234");
        assert_eq!(json["type"], "text");
        assert_eq!(json["text"]["body"], "hi");
        assert_eq!(json["context"]["message_id"], "wamid.1");
        assert!(json.get("recipient").is_none());
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

    #[test]
    fn bsuid_only_sender_is_addressed_by_recipient() {
        let sender = Sender {
            bsuid: Some("US.134".into()),
            ..Sender::default()
        };
        let to = Recipient::of(&sender).unwrap();
        let json = OutgoingMessage::Text { body: "x".into() }.to_graph_json(&to, None);
        assert_eq!(json["recipient"], "US.134");
        assert!(json.get("to").is_none());
        assert!(Recipient::of(&Sender::default()).is_none());
    }

    #[test]
    fn media_by_link_use_their_own_keys_and_only_captionable_ones_carry_a_caption() {
        let to = Recipient::Phone("1".into());
        let video = OutgoingMessage::Video {
            link: "https://x.y/v.mp4".into(),
            caption: Some("deploy".into()),
        }
        .to_graph_json(&to, None);
        assert_eq!(video["type"], "video");
        assert_eq!(
            video["video"],
            json!({"link": "https://x.y/v.mp4", "caption": "deploy"})
        );
        let audio = OutgoingMessage::Audio {
            link: "https://x.y/a.ogg".into(),
        }
        .to_graph_json(&to, None);
        assert_eq!(audio["type"], "audio");
        assert_eq!(audio["audio"], json!({"link": "https://x.y/a.ogg"}));
        let sticker = OutgoingMessage::Sticker {
            link: "https://x.y/s.webp".into(),
        }
        .to_graph_json(&to, None);
        assert_eq!(sticker["type"], "sticker");
        assert_eq!(sticker["sticker"], json!({"link": "https://x.y/s.webp"}));
    }

    #[test]
    fn buttons_and_lists_use_interactive_shapes() {
        let buttons = OutgoingMessage::Buttons {
            header: None,
            body: "Pick".into(),
            footer: Some("f".into()),
            buttons: vec![ReplyButton {
                id: "a".into(),
                title: "A".into(),
            }],
        };
        let json = buttons.to_graph_json(&Recipient::Phone("1".into()), None);
        assert_eq!(json["interactive"]["type"], "button");
        assert_eq!(
            json["interactive"]["action"]["buttons"][0]["reply"]["id"],
            "a"
        );
        assert_eq!(json["interactive"]["footer"]["text"], "f");

        let list = OutgoingMessage::List {
            header: Some("h".into()),
            body: "b".into(),
            footer: None,
            button: "Choose".into(),
            sections: vec![ListSectionOut {
                title: Some("s".into()),
                rows: vec![ListRowOut {
                    id: "r".into(),
                    title: "R".into(),
                    description: None,
                }],
            }],
        };
        let json = list.to_graph_json(&Recipient::Phone("1".into()), None);
        assert_eq!(json["interactive"]["type"], "list");
        assert_eq!(json["interactive"]["header"]["text"], "h");
        assert_eq!(
            json["interactive"]["action"]["sections"][0]["rows"][0]["title"],
            "R"
        );
        assert!(
            json["interactive"]["action"]["sections"][0]["rows"][0]
                .get("description")
                .is_none()
        );
    }
}

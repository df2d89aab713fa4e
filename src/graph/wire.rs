//! The Graph API wire format, as Meta's schema names its fields: what we send to
//! `POST /{phone_number_id}/messages` (messages, read receipts) and what Meta answers (the sent
//! message's id, a read receipt's `success`, an error). Typed both ways: no body is built or
//! read by hand. <https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages>

use crate::domain::{MessageId, OutgoingMessage, Recipient};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::Value;

impl OutgoingMessage {
    /// The `POST /{phone_number_id}/messages` body. `context` quotes the message answered.
    pub fn to_graph_json(&self, to: &Recipient, context: Option<&MessageId>) -> Value {
        // Strings, booleans and lists only: serializing cannot fail.
        serde_json::to_value(self.to_graph_body(to, context)).unwrap_or(Value::Null)
    }

    /// The typed `POST /{phone_number_id}/messages` body, borrowing from the message.
    pub fn to_graph_body<'a>(
        &'a self,
        to: &'a Recipient,
        context: Option<&'a MessageId>,
    ) -> SendBody<'a> {
        let payload = match self {
            Self::Text { body } => Payload::Text(Text {
                body,
                preview_url: false,
            }),
            Self::Buttons {
                header,
                body,
                footer,
                buttons,
            } => Payload::Interactive(Interactive {
                kind: "button",
                header: header.as_deref().map(Header::text),
                body: TextObject { text: body },
                footer: footer.as_deref().map(|text| TextObject { text }),
                action: Action::Buttons {
                    buttons: buttons
                        .iter()
                        .map(|b| Button {
                            kind: "reply",
                            reply: ButtonReply {
                                id: &b.id,
                                title: &b.title,
                            },
                        })
                        .collect(),
                },
            }),
            Self::List {
                header,
                body,
                footer,
                button,
                sections,
            } => Payload::Interactive(Interactive {
                kind: "list",
                header: header.as_deref().map(Header::text),
                body: TextObject { text: body },
                footer: footer.as_deref().map(|text| TextObject { text }),
                action: Action::List {
                    button,
                    sections: sections
                        .iter()
                        .map(|section| Section {
                            title: section.title.as_deref(),
                            rows: section
                                .rows
                                .iter()
                                .map(|row| Row {
                                    id: &row.id,
                                    title: &row.title,
                                    description: row.description.as_deref(),
                                })
                                .collect(),
                        })
                        .collect(),
                },
            }),
            Self::Image { link, caption } => Payload::Image(Media::link(link, caption)),
            Self::Document {
                link,
                filename,
                caption,
            } => Payload::Document(Media {
                filename: filename.as_deref(),
                ..Media::link(link, caption)
            }),
            Self::Video { link, caption } => Payload::Video(Media::link(link, caption)),
            Self::Audio { link } => Payload::Audio(Media::link(link, &None)),
            Self::Sticker { link } => Payload::Sticker(Media::link(link, &None)),
            Self::Template {
                template,
                body,
                quick_replies,
            } => Payload::Template(Template {
                name: &template.name,
                language: Language {
                    code: &template.language,
                },
                components: (!body.is_empty())
                    .then(|| Component::Body {
                        kind: "body",
                        parameters: body
                            .iter()
                            .map(|text| TextParameter { kind: "text", text })
                            .collect(),
                    })
                    .into_iter()
                    .chain(quick_replies.iter().enumerate().map(|(index, payload)| {
                        Component::Button {
                            kind: "button",
                            sub_type: "quick_reply",
                            index: index.to_string(),
                            parameters: vec![PayloadParameter {
                                kind: "payload",
                                payload,
                            }],
                        }
                    }))
                    .collect(),
            }),
            Self::Reaction { message_id, emoji } => {
                Payload::Reaction(Reaction { message_id, emoji })
            }
        };
        SendBody {
            messaging_product: "whatsapp",
            recipient_type: "individual",
            to: match to {
                Recipient::Phone(phone) => Some(phone),
                Recipient::Bsuid(_) => None,
            },
            recipient: match to {
                Recipient::Bsuid(bsuid) => Some(bsuid),
                Recipient::Phone(_) => None,
            },
            context: context.map(|id| Context {
                message_id: id.as_str(),
            }),
            kind: self.type_name(),
            payload,
        }
    }
}

/// The wire format of `POST /{phone_number_id}/messages`, as Meta's schema names its fields;
/// absent optional fields are left out, never sent as `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SendBody<'a> {
    messaging_product: &'static str,
    recipient_type: &'static str,
    /// The phone number, when the sender has one…
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    /// …else the business-scoped user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<Context<'a>>,
    #[serde(rename = "type")]
    kind: &'static str,
    /// Under the key its `type` names (`"text": {...}`, `"interactive": {...}`, …).
    #[serde(flatten)]
    payload: Payload<'a>,
}

/// The message quoted by a reply.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Context<'a> {
    message_id: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Payload<'a> {
    Text(Text<'a>),
    Interactive(Interactive<'a>),
    Image(Media<'a>),
    Document(Media<'a>),
    Video(Media<'a>),
    Audio(Media<'a>),
    Sticker(Media<'a>),
    Template(Template<'a>),
    Reaction(Reaction<'a>),
}

/// `"reaction": {"message_id", "emoji"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Reaction<'a> {
    message_id: &'a str,
    emoji: &'a str,
}

/// `"template": {"name", "language": {"code"}, "components": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Template<'a> {
    name: &'a str,
    language: Language<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    components: Vec<Component<'a>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Language<'a> {
    code: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
enum Component<'a> {
    /// `{"type": "body", "parameters": [{"type": "text", "text"}]}`
    Body {
        #[serde(rename = "type")]
        kind: &'static str,
        parameters: Vec<TextParameter<'a>>,
    },
    /// `{"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": [{"type": "payload", "payload"}]}`
    Button {
        #[serde(rename = "type")]
        kind: &'static str,
        sub_type: &'static str,
        index: String,
        parameters: Vec<PayloadParameter<'a>>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct TextParameter<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct PayloadParameter<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    payload: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Text<'a> {
    body: &'a str,
    preview_url: bool,
}

/// A media message by link; only documents have a file name, audio and stickers no caption.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Media<'a> {
    link: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caption: Option<&'a str>,
}

impl<'a> Media<'a> {
    fn link(link: &'a str, caption: &'a Option<String>) -> Self {
        Self {
            link,
            filename: None,
            caption: caption.as_deref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Interactive<'a> {
    /// `button` or `list`.
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    header: Option<Header<'a>>,
    body: TextObject<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    footer: Option<TextObject<'a>>,
    action: Action<'a>,
}

/// A text header (`{"type": "text", "text": ...}`).
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Header<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

impl<'a> Header<'a> {
    fn text(text: &'a str) -> Self {
        Self { kind: "text", text }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct TextObject<'a> {
    text: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
enum Action<'a> {
    Buttons {
        buttons: Vec<Button<'a>>,
    },
    List {
        button: &'a str,
        sections: Vec<Section<'a>>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Button<'a> {
    /// Always `reply`.
    #[serde(rename = "type")]
    kind: &'static str,
    reply: ButtonReply<'a>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct ButtonReply<'a> {
    id: &'a str,
    title: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Section<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    rows: Vec<Row<'a>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Row<'a> {
    id: &'a str,
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
}

/// A read receipt: marks an inbound message read, with the typing indicator when asked.
/// <https://developers.facebook.com/docs/whatsapp/cloud-api/typing-indicators>
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct ReadReceipt<'a> {
    messaging_product: &'static str,
    status: &'static str,
    message_id: &'a str,
    /// Left out unless asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    typing_indicator: Option<TypingIndicator>,
}

impl<'a> ReadReceipt<'a> {
    pub(super) fn new(message: &'a MessageId, typing: bool) -> Self {
        Self {
            messaging_product: "whatsapp",
            status: "read",
            message_id: message.as_str(),
            typing_indicator: typing.then_some(TypingIndicator { kind: "text" }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct TypingIndicator {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Meta's answer to a send: `{"messages":[{"id":"wamid..."}], ...}`.
#[derive(Deserialize)]
pub(super) struct SendAnswer {
    messages: Vec<SentMessage>,
}

/// One entry of [`SendAnswer::messages`]; only the first one's id is used, so a later entry
/// of another shape is not an error.
#[derive(Deserialize)]
#[serde(untagged)]
enum SentMessage {
    Sent { id: String },
    Other(IgnoredAny),
}

impl SendAnswer {
    /// The id Meta gave the sent message; `None` when the answer has none (or an empty one).
    pub(super) fn message_id(answer: &Value) -> Option<String> {
        // Objects only: serde would also read a struct from an array of its fields.
        if !answer.is_object() {
            return None;
        }
        let answer = Self::deserialize(answer).ok()?;
        match answer.messages.into_iter().next()? {
            SentMessage::Sent { id } if !id.is_empty() => Some(id),
            _ => None,
        }
    }
}

/// Meta's answer to a read receipt: `{"success": true}`.
#[derive(Deserialize)]
pub(super) struct ReadAnswer {
    #[serde(default)]
    success: Option<bool>,
}

impl ReadAnswer {
    /// Only an explicit `"success": false` is a refusal; any other answer counts as done.
    pub(super) fn refused(answer: &Value) -> bool {
        // Objects only: serde would also read a struct from an array of its fields.
        answer.is_object()
            && Self::deserialize(answer).is_ok_and(|answer| answer.success == Some(false))
    }
}

/// Meta's error body: `{"error":{"message","type","code","error_subcode","fbtrace_id"}}`.
/// <https://developers.facebook.com/docs/graph-api/guides/error-handling>
#[derive(Deserialize)]
pub(super) struct ErrorEnvelope {
    pub(super) error: ErrorBody,
}

#[derive(Deserialize)]
pub(super) struct ErrorBody {
    #[serde(default)]
    pub(super) message: Option<String>,
    #[serde(default)]
    pub(super) code: Option<i64>,
    #[serde(default)]
    pub(super) error_subcode: Option<i64>,
    #[serde(default)]
    pub(super) fbtrace_id: Option<String>,
    /// Cloud API errors often put the useful detail here.
    #[serde(default)]
    pub(super) error_data: Option<ErrorData>,
}

#[derive(Deserialize)]
pub(super) struct ErrorData {
    #[serde(default)]
    pub(super) details: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ListRowOut, ListSectionOut, ReplyButton, Sender};
    use serde_json::json;

    /// Every message kind with every optional field set, and with none: the whole body.
    #[test]
    fn templates_carry_their_language_body_parameters_and_quick_reply_payloads() {
        let template = OutgoingMessage::Template {
            template: crate::domain::TemplateRef::parse("answer_ready:en_US").unwrap(),
            body: vec!["k8s".into()],
            quick_replies: vec!["wal:window:abc".into()],
        };
        let json = template.to_graph_json(&Recipient::Phone("14155551234".into()), None);
        assert_eq!(
            json,
            json!({
                "messaging_product": "whatsapp", "recipient_type": "individual",
                "to": "14155551234", "type": "template",
                "template": {
                    "name": "answer_ready", "language": {"code": "en_US"},
                    "components": [
                        {"type": "body", "parameters": [{"type": "text", "text": "k8s"}]},
                        {"type": "button", "sub_type": "quick_reply", "index": "0",
                         "parameters": [{"type": "payload", "payload": "wal:window:abc"}]}
                    ]
                }
            })
        );
        let bare = OutgoingMessage::Template {
            template: crate::domain::TemplateRef::parse("hello_world:en").unwrap(),
            body: Vec::new(),
            quick_replies: Vec::new(),
        };
        let json = bare.to_graph_json(&Recipient::Phone("1".into()), None);
        assert_eq!(
            json["template"],
            json!({"name": "hello_world", "language": {"code": "en"}})
        );
    }

    #[test]
    fn bodies_are_exactly_the_graph_api_wire_format() {
        let phone = Recipient::Phone("14155551234".into());
        let bsuid = Recipient::Bsuid("US.134".into());
        let quoted = MessageId::from("wamid.1");
        let envelope = |to: &Recipient, context: bool, kind: &str, payload: Value| {
            let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual", "type": kind});
            match to {
                Recipient::Phone(phone) => body["to"] = json!(phone),
                Recipient::Bsuid(bsuid) => body["recipient"] = json!(bsuid),
            }
            if context {
                body["context"] = json!({"message_id": "wamid.1"});
            }
            body[if kind == "interactive" {
                "interactive"
            } else {
                kind
            }] = payload;
            body
        };
        let some = |s: &str| Some(s.to_owned());
        let cases = [
            (
                OutgoingMessage::Text {
                    body: "hi \"there\"".into(),
                },
                "text",
                json!({"body": "hi \"there\"", "preview_url": false}),
            ),
            (
                OutgoingMessage::Buttons {
                    header: some("H"),
                    body: "B".into(),
                    footer: some("F"),
                    buttons: vec![
                        ReplyButton {
                            id: "a".into(),
                            title: "A".into(),
                        },
                        ReplyButton {
                            id: "b".into(),
                            title: "B".into(),
                        },
                    ],
                },
                "interactive",
                json!({"type": "button", "header": {"type": "text", "text": "H"}, "body": {"text": "B"},
                       "footer": {"text": "F"}, "action": {"buttons": [
                           {"type": "reply", "reply": {"id": "a", "title": "A"}},
                           {"type": "reply", "reply": {"id": "b", "title": "B"}}]}}),
            ),
            (
                OutgoingMessage::Buttons {
                    header: None,
                    body: "B".into(),
                    footer: None,
                    buttons: vec![ReplyButton {
                        id: "a".into(),
                        title: "A".into(),
                    }],
                },
                "interactive",
                json!({"type": "button", "body": {"text": "B"}, "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "a", "title": "A"}}]}}),
            ),
            (
                OutgoingMessage::List {
                    header: some("H"),
                    body: "B".into(),
                    footer: some("F"),
                    button: "Choose".into(),
                    sections: vec![
                        ListSectionOut {
                            title: some("S"),
                            rows: vec![ListRowOut {
                                id: "r".into(),
                                title: "R".into(),
                                description: some("D"),
                            }],
                        },
                        ListSectionOut {
                            title: None,
                            rows: vec![ListRowOut {
                                id: "q".into(),
                                title: "Q".into(),
                                description: None,
                            }],
                        },
                    ],
                },
                "interactive",
                json!({"type": "list", "header": {"type": "text", "text": "H"}, "body": {"text": "B"},
                       "footer": {"text": "F"}, "action": {"button": "Choose", "sections": [
                           {"title": "S", "rows": [{"id": "r", "title": "R", "description": "D"}]},
                           {"rows": [{"id": "q", "title": "Q"}]}]}}),
            ),
            (
                OutgoingMessage::Image {
                    link: "https://x.y/i.png".into(),
                    caption: some("c"),
                },
                "image",
                json!({"link": "https://x.y/i.png", "caption": "c"}),
            ),
            (
                OutgoingMessage::Image {
                    link: "https://x.y/i.png".into(),
                    caption: None,
                },
                "image",
                json!({"link": "https://x.y/i.png"}),
            ),
            (
                OutgoingMessage::Document {
                    link: "https://x.y/d.pdf".into(),
                    filename: some("d.pdf"),
                    caption: some("c"),
                },
                "document",
                json!({"link": "https://x.y/d.pdf", "filename": "d.pdf", "caption": "c"}),
            ),
            (
                OutgoingMessage::Document {
                    link: "https://x.y/d.pdf".into(),
                    filename: None,
                    caption: None,
                },
                "document",
                json!({"link": "https://x.y/d.pdf"}),
            ),
            (
                OutgoingMessage::Video {
                    link: "https://x.y/v.mp4".into(),
                    caption: None,
                },
                "video",
                json!({"link": "https://x.y/v.mp4"}),
            ),
            (
                OutgoingMessage::Audio {
                    link: "https://x.y/a.ogg".into(),
                },
                "audio",
                json!({"link": "https://x.y/a.ogg"}),
            ),
            (
                OutgoingMessage::Sticker {
                    link: "https://x.y/s.webp".into(),
                },
                "sticker",
                json!({"link": "https://x.y/s.webp"}),
            ),
        ];
        for (message, kind, payload) in cases {
            for to in [&phone, &bsuid] {
                for context in [false, true] {
                    assert_eq!(
                        message.to_graph_json(to, context.then_some(&quoted)),
                        envelope(to, context, kind, payload.clone()),
                        "{message:?} to {to:?}, context {context}"
                    );
                }
            }
        }
    }

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

    #[test]
    fn read_receipts_are_exactly_the_graph_api_wire_format() {
        let id = MessageId::from("wamid.1");
        let receipt = |typing| serde_json::to_value(ReadReceipt::new(&id, typing)).unwrap();
        assert_eq!(
            receipt(false),
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.1"})
        );
        assert_eq!(
            receipt(true),
            json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.1",
                   "typing_indicator": {"type": "text"}})
        );
    }

    #[test]
    fn the_sent_message_id_is_the_first_entrys_and_any_other_answer_has_none() {
        let id = |answer: Value| SendAnswer::message_id(&answer);
        assert_eq!(
            id(
                json!({"messaging_product": "whatsapp", "contacts": [{"wa_id": "1"}],
                      "messages": [{"id": "wamid.OUT", "message_status": "accepted"}]})
            ),
            Some("wamid.OUT".to_owned())
        );
        assert_eq!(
            id(json!({"messages": [{"id": "wamid.A"}, 7, {"id": null}]})),
            Some("wamid.A".to_owned())
        );
        for none in [
            json!(null),
            json!({}),
            json!({"messages": []}),
            json!({"messages": {"id": "wamid.A"}}),
            json!({"messages": [{"id": ""}]}),
            json!({"messages": [{"id": 5}]}),
            json!({"messages": [7, {"id": "wamid.A"}]}),
            json!([{"id": "wamid.A"}]),
            json!([[{"id": "wamid.A"}]]),
        ] {
            assert_eq!(id(none.clone()), None, "{none}");
        }
    }

    #[test]
    fn only_an_explicit_success_false_refuses_a_read_receipt() {
        assert!(ReadAnswer::refused(&json!({"success": false})));
        for done in [
            json!({"success": true}),
            json!({"success": "false"}),
            json!({"success": null}),
            json!({}),
            json!(null),
            json!([false]),
        ] {
            assert!(!ReadAnswer::refused(&done), "{done}");
        }
    }
}

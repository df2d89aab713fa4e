//! From webhook bytes to domain values: every entry, change, message and status of a batch.
//! Nothing here fails the batch except a body that is not JSON or not a WhatsApp webhook; a bad
//! item is logged and skipped, an unknown message kind is passed on as `unsupported`.

use super::log_safe;
use super::payload::{
    self, Change, Contact, Entry, ErrorItem, MessageBody, MessageHead, MessagesValue, Status, text,
};
use crate::message::{
    Channel, InboundMessage, MediaType, MessageId, MessageKind, PhoneNumberId, Sender,
};
use crate::sender::{is_bsuid, mask};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The `object` of WhatsApp Business Account webhooks.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";
/// The change field that carries messages and statuses.
pub const MESSAGES_FIELD: &str = "messages";

/// Everything one webhook POST carried.
#[derive(Debug, Default)]
pub struct ParsedWebhook {
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusUpdate>,
    /// `value.errors`: problems Meta reports about the account or a message.
    pub errors: Vec<ErrorInfo>,
    /// Changes of other subscribed fields (account updates, templates…): ignored.
    pub ignored_fields: Vec<String>,
    /// Items that could not be used at all (no id, no sender, not an object); each was logged.
    pub rejected: usize,
}

/// A delivery status of a message we sent. The recipient is kept masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub message_id: String,
    pub status: String,
    pub recipient_masked: String,
    pub errors: Vec<ErrorInfo>,
}

/// Meta's error object, flattened for the log.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorInfo {
    pub code: Option<String>,
    pub title: Option<String>,
    pub message: Option<String>,
    pub details: Option<String>,
}

/// Why a body is not a WhatsApp webhook at all (the webhook still answers 200: Meta would
/// otherwise retry it for days). Both carry only log-safe text: serde's error without the
/// values it quotes, the `object` only when it looks like a name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("not a WhatsApp Business Account webhook (object {0:?})")]
    NotWhatsApp(String),
}

/// Parses a verified webhook body.
pub fn parse(body: &[u8]) -> Result<ParsedWebhook, ParseError> {
    let envelope: payload::Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| ParseError::NotJson(log_safe::serde_error(&e)))?;
    let object = text(&envelope.object).unwrap_or_default();
    if object != WHATSAPP_OBJECT {
        return Err(ParseError::NotWhatsApp(log_safe::name(&object)));
    }
    let mut parsed = ParsedWebhook::default();
    for raw_entry in envelope.entry {
        let Some(entry) = item::<Entry<'_>>(raw_entry, "entry", &mut parsed) else {
            continue;
        };
        let business_account_id = text(&entry.id);
        for raw_change in entry.changes {
            let Some(change) = item::<Change<'_>>(raw_change, "change", &mut parsed) else {
                continue;
            };
            let field = text(&change.field).unwrap_or_default();
            if field != MESSAGES_FIELD {
                parsed.ignored_fields.push(field);
                continue;
            }
            let Some(value) = change
                .value
                .and_then(|raw| item::<MessagesValue<'_>>(raw, "change value", &mut parsed))
            else {
                continue;
            };
            parse_value(&value, business_account_id.as_deref(), &mut parsed);
        }
    }
    Ok(parsed)
}

/// Parses one raw item; on failure logs what it was and counts it rejected.
fn item<'a, T: Deserialize<'a>>(
    raw: &'a RawValue,
    what: &str,
    parsed: &mut ParsedWebhook,
) -> Option<T> {
    match serde_json::from_str(raw.get()) {
        Ok(value) => Some(value),
        Err(error) => {
            let error = log_safe::serde_error(&error);
            tracing::error!(item = what, %error, "skipping a webhook item that is not an object of the expected shape");
            parsed.rejected += 1;
            None
        }
    }
}

fn parse_value(
    value: &MessagesValue<'_>,
    business_account_id: Option<&str>,
    parsed: &mut ParsedWebhook,
) {
    let metadata = value.metadata.as_ref();
    let phone_number_id = metadata.and_then(|m| text(&m.phone_number_id));
    let contacts: Vec<Contact> = value
        .contacts
        .iter()
        .filter_map(|raw| serde_json::from_str(raw.get()).ok())
        .collect();

    for raw in &value.messages {
        let Some(head) = item::<MessageHead>(raw, "message", parsed) else {
            continue;
        };
        let Some(id) = text(&head.id) else {
            tracing::error!("skipping a message without an id");
            parsed.rejected += 1;
            continue;
        };
        let Some(phone_number_id) = phone_number_id.clone() else {
            tracing::error!(message_id = %id, "skipping a message without metadata.phone_number_id: no number to answer from");
            parsed.rejected += 1;
            continue;
        };
        let Some(sender) = sender(&head, &contacts) else {
            tracing::error!(message_id = %id, "skipping a message without a sender (no from, no from_user_id)");
            parsed.rejected += 1;
            continue;
        };
        let type_name = text(&head.kind).unwrap_or_else(|| "unknown".to_owned());
        let (kind, reply_to) = match serde_json::from_str::<MessageBody>(raw.get()) {
            Ok(body) => (
                kind(&type_name, &body),
                text_of(body.context.as_ref().map(|c| &c.id)),
            ),
            Err(error) => {
                let error = log_safe::serde_error(&error);
                let kind = log_safe::name(&type_name);
                tracing::warn!(message_id = %id, %kind, %error, "message body malformed: passed on as unsupported");
                (
                    MessageKind::Unsupported {
                        kind: format!("{type_name} (malformed)"),
                    },
                    None,
                )
            }
        };
        parsed.messages.push(InboundMessage {
            id: MessageId(id),
            timestamp: text(&head.timestamp)
                .and_then(|t| t.parse().ok())
                .unwrap_or_default(),
            sender,
            channel: Channel {
                phone_number_id: PhoneNumberId(phone_number_id),
                display_phone_number: metadata.and_then(|m| text(&m.display_phone_number)),
                business_account_id: business_account_id.map(str::to_owned),
            },
            reply_to: reply_to.map(MessageId),
            kind,
        });
    }

    for raw in &value.statuses {
        let Some(status) = item::<Status>(raw, "status", parsed) else {
            continue;
        };
        let recipient = text(&status.recipient_id)
            .or_else(|| text(&status.recipient_user_id))
            .unwrap_or_default();
        parsed.statuses.push(StatusUpdate {
            message_id: text(&status.id).unwrap_or_default(),
            status: text(&status.status).unwrap_or_else(|| "unknown".to_owned()),
            recipient_masked: mask(&recipient),
            errors: status.errors.iter().map(error_info).collect(),
        });
    }

    for raw in &value.errors {
        if let Some(error) = item::<ErrorItem>(raw, "error", parsed) {
            parsed.errors.push(error_info(&error));
        }
    }
}

fn text_of(value: Option<&Option<payload::Text>>) -> Option<String> {
    value.and_then(text)
}

/// The sender: phone from `from` (or the contact's `wa_id`), BSUID from `from_user_id` (or the
/// contact's `user_id`), display name from the matching contact. A contact is the sender's only
/// when it shares an identifier with the message; a lone contact stands in only for a message
/// that names no sender at all. Otherwise a message from an unlisted BSUID would borrow the
/// phone number of whoever else is in `contacts`, pass the allowlist as them, and be answered
/// to them.
fn sender(head: &MessageHead, contacts: &[Contact]) -> Option<Sender> {
    let from = text(&head.from);
    let (from_phone, from_bsuid) = match from {
        Some(from) if is_bsuid(&from) => (None, Some(from)),
        other => (other, None),
    };
    let from_user_id = text(&head.from_user_id).or(from_bsuid);
    let names_no_sender = from_phone.is_none() && from_user_id.is_none();
    let contact = contacts
        .iter()
        .find(|c| {
            let wa_id = text(&c.wa_id);
            let user_id = text(&c.user_id);
            (from_phone.is_some() && wa_id == from_phone)
                || (from_user_id.is_some() && user_id == from_user_id)
        })
        .or(if names_no_sender && contacts.len() == 1 {
            contacts.first()
        } else {
            None
        });
    let phone = from_phone.or_else(|| contact.and_then(|c| text(&c.wa_id)));
    let bsuid = from_user_id.or_else(|| contact.and_then(|c| text(&c.user_id)));
    if phone.is_none() && bsuid.is_none() {
        return None;
    }
    Some(Sender {
        phone,
        bsuid,
        display_name: contact
            .and_then(|c| c.profile.as_ref())
            .and_then(|p| text(&p.name)),
    })
}

fn kind(type_name: &str, body: &MessageBody) -> MessageKind {
    let unsupported = |why: &str| MessageKind::Unsupported {
        kind: if why.is_empty() {
            type_name.to_owned()
        } else {
            format!("{type_name} ({why})")
        },
    };
    let media = |media_type: MediaType, media: &Option<payload::Media>| match media {
        Some(media) => MessageKind::Media {
            media_type,
            id: text(&media.id).unwrap_or_default(),
            mime_type: text(&media.mime_type),
            caption: text(&media.caption),
            filename: text(&media.filename),
        },
        None => unsupported("missing media object"),
    };
    match type_name {
        "text" => match body.text.as_ref().and_then(|t| text(&t.body)) {
            Some(body) => MessageKind::Text { body },
            None => unsupported("missing body"),
        },
        "interactive" => {
            let Some(interactive) = &body.interactive else {
                return unsupported("missing interactive object");
            };
            let interactive_type = text(&interactive.kind).unwrap_or_default();
            match (
                interactive_type.as_str(),
                &interactive.button_reply,
                &interactive.list_reply,
            ) {
                ("button_reply", Some(choice), _) => MessageKind::ButtonReply {
                    id: text(&choice.id).unwrap_or_default(),
                    title: text(&choice.title).unwrap_or_default(),
                },
                ("list_reply", _, Some(choice)) => MessageKind::ListReply {
                    id: text(&choice.id).unwrap_or_default(),
                    title: text(&choice.title).unwrap_or_default(),
                    description: text(&choice.description),
                },
                (other, _, _) => MessageKind::Unsupported {
                    kind: format!(
                        "interactive:{}",
                        if other.is_empty() { "unknown" } else { other }
                    ),
                },
            }
        }
        "button" => match &body.button {
            Some(button) => {
                let label = text(&button.text).unwrap_or_default();
                MessageKind::TemplateButton {
                    payload: text(&button.payload).unwrap_or_else(|| label.clone()),
                    text: label,
                }
            }
            None => unsupported("missing button object"),
        },
        "image" => media(MediaType::Image, &body.image),
        "document" => media(MediaType::Document, &body.document),
        "audio" => media(MediaType::Audio, &body.audio),
        "video" => media(MediaType::Video, &body.video),
        "sticker" => media(MediaType::Sticker, &body.sticker),
        "location" => match &body.location {
            Some(payload::Location {
                latitude: Some(latitude),
                longitude: Some(longitude),
                name,
                address,
            }) => MessageKind::Location {
                latitude: *latitude,
                longitude: *longitude,
                name: text(name),
                address: text(address),
            },
            _ => unsupported("missing coordinates"),
        },
        "contacts" => MessageKind::Contacts {
            names: body
                .contacts
                .iter()
                .filter_map(|c| c.name.as_ref().and_then(|n| text(&n.formatted_name)))
                .collect(),
        },
        "reaction" => match &body.reaction {
            Some(reaction) => MessageKind::Reaction {
                message_id: text(&reaction.message_id).unwrap_or_default(),
                emoji: text(&reaction.emoji).unwrap_or_default(),
            },
            None => unsupported("missing reaction object"),
        },
        "order" => match &body.order {
            Some(order) => MessageKind::Order {
                catalog_id: text(&order.catalog_id),
                text: text(&order.text),
                item_count: order.product_items.len(),
            },
            None => unsupported("missing order object"),
        },
        _ => unsupported(""),
    }
}

fn error_info(error: &ErrorItem) -> ErrorInfo {
    ErrorInfo {
        code: text(&error.code),
        title: text(&error.title),
        message: text(&error.message),
        details: error.error_data.as_ref().and_then(|d| text(&d.details)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn webhook(messages: Value, contacts: Value) -> Vec<u8> {
        json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PNID"},
                "contacts": contacts,
                "messages": messages,
            }}]}]
        })
        .to_string()
        .into_bytes()
    }

    fn one(message: Value) -> InboundMessage {
        let body = webhook(
            json!([message]),
            json!([{"wa_id": "14155551234", "profile": {"name": "John"}}]),
        );
        let mut parsed = parse(&body).unwrap();
        assert_eq!(parsed.messages.len(), 1, "{parsed:?}");
        parsed.messages.remove(0)
    }

    fn base(kind: &str) -> Value {
        json!({"id": "wamid.1", "from": "14155551234", "timestamp": "1795514400", "type": kind})
    }

    fn with(kind: &str, key: &str, value: Value) -> Value {
        let mut message = base(kind);
        message[key] = value;
        message
    }

    #[test]
    fn parses_a_text_message_with_sender_channel_and_name() {
        let message = one(with(
            "text",
            "text",
            json!({"body": "pods crashing in prod"}),
        ));
        assert_eq!(message.id.as_str(), "wamid.1");
        assert_eq!(message.timestamp, 1_795_514_400);
        assert_eq!(message.sender.phone.as_deref(), Some("14155551234"));
        assert_eq!(message.sender.display_name.as_deref(), Some("John"));
        assert_eq!(message.channel.phone_number_id.as_str(), "PNID");
        assert_eq!(message.channel.business_account_id.as_deref(), Some("WABA"));
        assert_eq!(
            message.channel.display_phone_number.as_deref(),
            Some("15550001111")
        );
        assert_eq!(
            message.kind,
            MessageKind::Text {
                body: "pods crashing in prod".into()
            }
        );
    }

    #[test]
    fn parses_button_and_list_replies_and_reply_context() {
        let mut button = with(
            "interactive",
            "interactive",
            json!({"type": "button_reply", "button_reply": {"id": "view_logs", "title": "View Logs"}}),
        );
        button["context"] = json!({"from": "15550001111", "id": "wamid.prev"});
        let message = one(button);
        assert_eq!(message.reply_to, Some(MessageId::from("wamid.prev")));
        assert_eq!(
            message.kind,
            MessageKind::ButtonReply {
                id: "view_logs".into(),
                title: "View Logs".into()
            }
        );
        let list = one(with(
            "interactive",
            "interactive",
            json!({"type": "list_reply", "list_reply": {"id": "prod", "title": "Production", "description": "us-east-1"}}),
        ));
        assert_eq!(
            list.kind,
            MessageKind::ListReply {
                id: "prod".into(),
                title: "Production".into(),
                description: Some("us-east-1".into())
            }
        );
    }

    #[test]
    fn unknown_interactive_kinds_become_unsupported() {
        let message = one(with(
            "interactive",
            "interactive",
            json!({"type": "nfm_reply", "nfm_reply": {}}),
        ));
        assert_eq!(
            message.kind,
            MessageKind::Unsupported {
                kind: "interactive:nfm_reply".into()
            }
        );
    }

    #[test]
    fn parses_template_quick_reply_buttons() {
        let message = one(with(
            "button",
            "button",
            json!({"payload": "ack_4711", "text": "Acknowledge"}),
        ));
        assert_eq!(
            message.kind,
            MessageKind::TemplateButton {
                payload: "ack_4711".into(),
                text: "Acknowledge".into()
            }
        );
    }

    #[test]
    fn parses_every_media_kind() {
        for (kind, media_type) in [
            ("image", MediaType::Image),
            ("document", MediaType::Document),
            ("audio", MediaType::Audio),
            ("video", MediaType::Video),
            ("sticker", MediaType::Sticker),
        ] {
            let message = one(with(
                kind,
                kind,
                json!({"id": "m1", "mime_type": "x/y", "caption": "c", "filename": "f.pdf"}),
            ));
            assert_eq!(
                message.kind,
                MessageKind::Media {
                    media_type,
                    id: "m1".into(),
                    mime_type: Some("x/y".into()),
                    caption: Some("c".into()),
                    filename: Some("f.pdf".into())
                },
                "{kind}"
            );
        }
    }

    #[test]
    fn parses_location_contacts_reaction_and_order() {
        let location = one(with(
            "location",
            "location",
            json!({"latitude": 52.5, "longitude": 13.4, "name": "DC", "address": "Street 1"}),
        ));
        assert!(
            matches!(location.kind, MessageKind::Location { latitude, .. } if latitude == 52.5)
        );
        let contacts = one(with(
            "contacts",
            "contacts",
            json!([{"name": {"formatted_name": "Jane Roe"}}, {"name": null}]),
        ));
        assert_eq!(
            contacts.kind,
            MessageKind::Contacts {
                names: vec!["Jane Roe".into()]
            }
        );
        let reaction = one(with(
            "reaction",
            "reaction",
            json!({"message_id": "wamid.x", "emoji": "👍"}),
        ));
        assert_eq!(
            reaction.kind,
            MessageKind::Reaction {
                message_id: "wamid.x".into(),
                emoji: "👍".into()
            }
        );
        let order = one(with(
            "order",
            "order",
            json!({"catalog_id": "c1", "text": "rush", "product_items": [{}, {}]}),
        ));
        assert_eq!(
            order.kind,
            MessageKind::Order {
                catalog_id: Some("c1".into()),
                text: Some("rush".into()),
                item_count: 2
            }
        );
    }

    #[test]
    fn unknown_and_unsupported_kinds_never_fail_the_batch() {
        let body = webhook(
            json!([
                base("unsupported"),
                base("hologram"),
                with("text", "text", "not an object".into()),
                with("text", "text", json!({"body": "still here"})),
            ]),
            json!([]),
        );
        let parsed = parse(&body).unwrap();
        let kinds: Vec<_> = parsed.messages.iter().map(|m| m.kind.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                MessageKind::Unsupported {
                    kind: "unsupported".into()
                },
                MessageKind::Unsupported {
                    kind: "hologram".into()
                },
                MessageKind::Unsupported {
                    kind: "text (malformed)".into()
                },
                MessageKind::Text {
                    body: "still here".into()
                },
            ]
        );
    }

    #[test]
    fn bsuid_only_senders_are_identified_by_bsuid() {
        let body = webhook(
            json!([{"id": "wamid.2", "from_user_id": "US.1349", "type": "text", "text": {"body": "hi"}}]),
            json!([{"user_id": "US.1349", "profile": {"name": "Ana"}}]),
        );
        let parsed = parse(&body).unwrap();
        let sender = &parsed.messages[0].sender;
        assert_eq!(sender.phone, None);
        assert_eq!(sender.bsuid.as_deref(), Some("US.1349"));
        assert_eq!(sender.display_name.as_deref(), Some("Ana"));
    }

    #[test]
    fn a_lone_contact_never_lends_its_number_to_another_sender() {
        let body = webhook(
            json!([
                {"id": "wamid.4", "from_user_id": "US.9999", "type": "text", "text": {"body": "hi"}},
                {"id": "wamid.5", "from": "447700900123", "type": "text", "text": {"body": "hi"}},
                {"id": "wamid.6", "type": "text", "text": {"body": "hi"}}
            ]),
            json!([{"wa_id": "14155551234", "profile": {"name": "John"}}]),
        );
        let parsed = parse(&body).unwrap();
        let senders: Vec<_> = parsed.messages.iter().map(|m| m.sender.clone()).collect();
        assert_eq!(senders[0].phone, None);
        assert_eq!(senders[0].bsuid.as_deref(), Some("US.9999"));
        assert_eq!(senders[0].display_name, None);
        assert_eq!(senders[1].phone.as_deref(), Some("447700900123"));
        assert_eq!(senders[1].display_name, None);
        // A message naming no sender: the lone contact is its sender.
        assert_eq!(senders[2].phone.as_deref(), Some("14155551234"));
    }

    #[test]
    fn messages_without_id_or_sender_are_skipped_and_counted() {
        let body = webhook(
            json!([
                {"from": "1", "type": "text", "text": {"body": "no id"}},
                {"id": "wamid.3", "type": "text", "text": {"body": "no sender"}},
                42,
            ]),
            json!([]),
        );
        let parsed = parse(&body).unwrap();
        assert!(parsed.messages.is_empty());
        assert_eq!(parsed.rejected, 3);
    }

    #[test]
    fn numbers_where_strings_belong_are_read_as_text() {
        let body = webhook(
            json!([{"id": 12345, "from": 14155551234_u64, "timestamp": 1795514400, "type": "text", "text": {"body": 7}}]),
            json!([]),
        );
        let parsed = parse(&body).unwrap();
        let message = &parsed.messages[0];
        assert_eq!(message.id.as_str(), "12345");
        assert_eq!(message.sender.phone.as_deref(), Some("14155551234"));
        assert_eq!(message.kind, MessageKind::Text { body: "7".into() });
    }

    #[test]
    fn statuses_errors_and_other_fields_are_reported_not_dispatched() {
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "WABA", "changes": [
                {"field": "messages", "value": {
                    "metadata": {"phone_number_id": "PNID"},
                    "statuses": [
                        {"id": "wamid.out", "status": "delivered", "recipient_id": "14155551234"},
                        {"id": "wamid.out2", "status": "failed", "recipient_id": "14155551234",
                         "errors": [{"code": 131047, "title": "Re-engagement message", "error_data": {"details": "24h"}}]}
                    ],
                    "errors": [{"code": 131000, "title": "Something went wrong"}]
                }},
                {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}
            ]}]
        });
        let parsed = parse(body.to_string().as_bytes()).unwrap();
        assert!(parsed.messages.is_empty());
        assert_eq!(parsed.statuses.len(), 2);
        assert_eq!(parsed.statuses[0].status, "delivered");
        assert_eq!(parsed.statuses[0].recipient_masked, "*******1234");
        assert_eq!(parsed.statuses[1].errors[0].code.as_deref(), Some("131047"));
        assert_eq!(parsed.statuses[1].errors[0].details.as_deref(), Some("24h"));
        assert_eq!(parsed.errors[0].code.as_deref(), Some("131000"));
        assert_eq!(parsed.ignored_fields, vec!["account_update".to_owned()]);
    }

    #[test]
    fn nulls_where_objects_belong_are_absent() {
        let body = json!({"object": "whatsapp_business_account", "entry": [
            {"id": null, "changes": null},
            {"changes": [{"field": "messages", "value": null}]},
            {"changes": [{"field": "messages", "value": {"metadata": null, "messages": null, "contacts": null}}]}
        ]});
        let parsed = parse(body.to_string().as_bytes()).unwrap();
        assert!(parsed.messages.is_empty());
    }

    #[test]
    fn not_json_and_other_objects_are_errors() {
        assert!(matches!(parse(b"not json"), Err(ParseError::NotJson(_))));
        assert!(matches!(
            parse(b"{\"object\":"),
            Err(ParseError::NotJson(_))
        ));
        assert!(matches!(parse(b"[]"), Err(ParseError::NotWhatsApp(_))));
        assert_eq!(
            parse(br#"{"object":"page","entry":[]}"#).unwrap_err(),
            ParseError::NotWhatsApp("page".into())
        );
    }

    #[test]
    fn every_entry_and_change_of_a_batch_counts() {
        let change = |id: &str| {
            json!({"field": "messages", "value": {
                "metadata": {"phone_number_id": "PNID"},
                "messages": [{"id": id, "from": "14155551234", "type": "text", "text": {"body": id}}]
            }})
        };
        let body = json!({"object": "whatsapp_business_account", "entry": [
            {"id": "A", "changes": [change("wamid.a1"), change("wamid.a2")]},
            {"id": "B", "changes": [change("wamid.b1")]}
        ]});
        let parsed = parse(body.to_string().as_bytes()).unwrap();
        let ids: Vec<_> = parsed
            .messages
            .iter()
            .map(|m| m.id.as_str().to_owned())
            .collect();
        assert_eq!(ids, ["wamid.a1", "wamid.a2", "wamid.b1"]);
        assert_eq!(
            parsed.messages[2].channel.business_account_id.as_deref(),
            Some("B")
        );
    }
}

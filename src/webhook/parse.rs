//! From webhook bytes to domain values: every entry, change, message and status of a batch.
//! Nothing here fails the batch except a body that is not JSON or not a WhatsApp webhook; a bad
//! item is logged and skipped, an unknown message kind is passed on as `unsupported`.
//!
//! One tree of types ([`payload`]), one walk over it ([`read`]). The body is read whole first:
//! in one pass, each string borrowed from it where it holds no escapes. A body with an item
//! that does not fit (not an object, a field of the wrong type, a duplicate key, a change of
//! another field whose value does not fit [`payload::ChangeValue`]) is read again, item by item
//! ([`payload::item_by_item`]): each item kept raw and read on its own, the bad ones logged
//! with serde's error and skipped. Both readings give the same values, and every check
//! (`push_message`, `sender`, `kind`, `push_status`, `push_template_update`) and log line is in
//! the one walk, so the
//! result and the logs are the same whichever reading produced the tree.
//!
//! A body that is not UTF-8 (one stray byte in one message's text) is not refused whole: each
//! run of invalid bytes is replaced by U+FFFD, remembering where ([`Damage`]), and the result
//! is read item by item. A message whose own JSON held invalid bytes is passed on as
//! `unsupported`, its text unknowable; every other message is read as usual (a U+FFFD Meta
//! sent in one stays as it is). Valid bodies never pay for this.

use super::payload::{
    self, ChangeValue, Envelope, ErrorItem, Item, MessageBody, MessageItem, Status, Str,
    item_by_item, nonempty, owned,
};
use crate::domain::{
    Channel, InboundMessage, MediaType, MessageId, MessageKind, PhoneNumberId, Sender, log_id,
};
use crate::domain::{TemplateRef, is_bsuid, mask};
use crate::redact;

/// The `object` of WhatsApp Business Account webhooks.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";
/// The change field that carries messages and statuses.
pub const MESSAGES_FIELD: &str = "messages";
/// The change field that says Meta approved, paused, disabled or rejected a message template.
pub const TEMPLATE_STATUS_FIELD: &str = "message_template_status_update";
/// Template events after which the template cannot be sent.
pub const TEMPLATE_STOPPED_EVENTS: [&str; 3] = ["PAUSED", "DISABLED", "REJECTED"];
/// Longest `metadata.phone_number_id` taken (Meta's ids have 15 or 16 digits).
const PHONE_NUMBER_ID_MAX_DIGITS: usize = 32;

/// Everything one webhook POST carried.
#[derive(Debug, Default)]
pub struct ParsedWebhook {
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusUpdate>,
    /// `value.errors`: problems Meta reports about the account or a message.
    pub errors: Vec<ErrorInfo>,
    /// `message_template_status_update` changes.
    pub template_updates: Vec<TemplateUpdate>,
    /// Changes of other subscribed fields (account updates…): ignored.
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

/// A `message_template_status_update`: what happened to one of the business's templates. All
/// of it is Meta's text as sent (the handler decides what may be logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateUpdate {
    /// `APPROVED`, `REJECTED`, `PAUSED`, `DISABLED`, `PENDING_DELETION`… (`unknown` when absent).
    pub event: String,
    pub template_id: Option<String>,
    pub name: String,
    /// As Meta wrote it (`en_US`, or `en-US` as its reference shows; empty when absent).
    pub language: String,
    /// `NONE`, `INCORRECT_CATEGORY`…
    pub reason: Option<String>,
    /// `other_info.title`: `FIRST_PAUSE`, `SECOND_PAUSE`, `UNPAUSE`…
    pub info_title: Option<String>,
    /// `other_info.description`: Meta's sentence, e.g. until when the template is paused.
    pub info_description: Option<String>,
}

impl TemplateUpdate {
    /// Whether the template can no longer be sent (paused, disabled or rejected): every
    /// message that uses it fails until it is fixed.
    pub fn stops_sending(&self) -> bool {
        TEMPLATE_STOPPED_EVENTS.contains(&self.event.as_str())
    }

    /// The template as `name:language` (a language written `en-US` read as `en_US`), when
    /// both are well formed.
    pub fn template(&self) -> Option<TemplateRef> {
        let language = self.language.replace('-', "_");
        TemplateRef::parse(&format!("{}:{language}", self.name)).ok()
    }
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
    match std::str::from_utf8(body) {
        Ok(text) => match serde_json::from_str::<Envelope<'_>>(text) {
            Ok(envelope) => read(envelope, &Damage::default()),
            Err(_) => read_item_by_item(text, &Damage::default()),
        },
        Err(_) => {
            let (text, offsets) = repair(body);
            tracing::warn!(
                invalid_runs = offsets.len(),
                "webhook body is not UTF-8: messages holding the invalid bytes are passed on as unsupported"
            );
            read_item_by_item(&text, &Damage::of(&text, offsets))
        }
    }
}

/// The item-by-item reading of `body` (see the module comment), then the walk.
fn read_item_by_item(body: &str, damage: &Damage) -> Result<ParsedWebhook, ParseError> {
    let envelope = item_by_item(|| serde_json::from_str::<Envelope<'_>>(body))
        .map_err(|e| ParseError::NotJson(redact::serde_error(&e)))?;
    read(envelope, damage)
}

/// `body` with each run of invalid UTF-8 replaced by U+FFFD (as `String::from_utf8_lossy`),
/// and the byte offsets of those replacements in the result.
fn repair(body: &[u8]) -> (String, Vec<usize>) {
    let mut text = String::with_capacity(body.len() + 8);
    let mut offsets = Vec::new();
    for chunk in body.utf8_chunks() {
        text.push_str(chunk.valid());
        if !chunk.invalid().is_empty() {
            offsets.push(text.len());
            text.push(char::REPLACEMENT_CHARACTER);
        }
    }
    (text, offsets)
}

/// Where a repaired body had invalid bytes: offsets into the repaired text, which the raw
/// items read from it borrow (so an item's place in the text is its address).
#[derive(Debug, Default)]
struct Damage {
    /// The repaired text's address.
    base: usize,
    /// Ascending byte offsets of the replacements.
    offsets: Vec<usize>,
}

impl Damage {
    fn of(text: &str, offsets: Vec<usize>) -> Self {
        Self {
            base: text.as_ptr() as usize,
            offsets,
        }
    }

    /// Whether `raw`, a slice of the repaired text, held invalid bytes.
    fn touches(&self, raw: &str) -> bool {
        if self.offsets.is_empty() {
            return false;
        }
        let Some(start) = (raw.as_ptr() as usize).checked_sub(self.base) else {
            return false;
        };
        let end = start + raw.len();
        let first = self.offsets.partition_point(|&offset| offset < start);
        self.offsets.get(first).is_some_and(|&offset| offset < end)
    }
}

/// The walk: every entry, change, message, status and error, in the body's order.
fn read(envelope: Envelope<'_>, damage: &Damage) -> Result<ParsedWebhook, ParseError> {
    let object = nonempty(&envelope.object).unwrap_or_default();
    if object != WHATSAPP_OBJECT {
        return Err(ParseError::NotWhatsApp(redact::name(object)));
    }
    let mut parsed = ParsedWebhook::default();
    for entry in envelope.entry {
        let Some(entry) = item(entry, "entry", &mut parsed) else {
            continue;
        };
        let business_account_id = nonempty(&entry.id);
        for change in entry.changes {
            let Some(change) = item(change, "change", &mut parsed) else {
                continue;
            };
            let field = nonempty(&change.field).unwrap_or_default();
            if field != MESSAGES_FIELD {
                if field == TEMPLATE_STATUS_FIELD {
                    if let Some(value) = change
                        .value
                        .and_then(|value| item(value, "change value", &mut parsed))
                    {
                        push_template_update(value, &mut parsed);
                    }
                } else {
                    parsed.ignored_fields.push(field.to_owned());
                }
                continue;
            }
            let Some(value) = change
                .value
                .and_then(|value| item(value, "change value", &mut parsed))
            else {
                continue;
            };
            read_value(value, business_account_id, damage, &mut parsed);
        }
    }
    Ok(parsed)
}

/// An item's value; a refused one is logged and counted.
fn item<T>(item: Item<T>, what: &str, parsed: &mut ParsedWebhook) -> Option<T> {
    match item {
        Item::Read(value) => Some(value),
        Item::Refused(error) => {
            refuse(what, &error, parsed);
            None
        }
    }
}

fn refuse(what: &str, error: &serde_json::Error, parsed: &mut ParsedWebhook) {
    let error = redact::serde_error(error);
    tracing::error!(item = what, %error, "skipping a webhook item that is not an object of the expected shape");
    parsed.rejected += 1;
}

fn read_value(
    value: ChangeValue<'_>,
    business_account_id: Option<&str>,
    damage: &Damage,
    parsed: &mut ParsedWebhook,
) {
    let metadata = value.metadata.as_ref();
    // A contact that does not fit is no one's: skipped without a word, as it names nobody.
    let mut contacts = Vec::with_capacity(value.contacts.len());
    contacts.extend(value.contacts.iter().filter_map(|contact| match contact {
        Item::Read(c) => Some(ContactView {
            wa_id: nonempty(&c.wa_id),
            user_id: nonempty(&c.user_id),
            name: c.profile.as_ref().and_then(|p| nonempty(&p.name)),
        }),
        Item::Refused(_) => None,
    }));
    let change = ChangeContext {
        business_account_id,
        phone_number_id: metadata.and_then(|m| nonempty(&m.phone_number_id)),
        display_phone_number: metadata.and_then(|m| nonempty(&m.display_phone_number)),
        contacts,
    };
    parsed.messages.reserve(value.messages.len());
    for message in value.messages {
        let (head, body, raw) = match message {
            MessageItem::Read { head, body, raw } => (head, body, raw),
            MessageItem::Refused(error) => {
                refuse("message", &error, parsed);
                continue;
            }
        };
        let head = HeadView {
            id: nonempty(&head.id),
            from: nonempty(&head.from),
            from_user_id: nonempty(&head.from_user_id),
            timestamp: nonempty(&head.timestamp),
            kind: nonempty(&head.kind),
        };
        let body = if raw.is_some_and(|raw| damage.touches(raw)) {
            // An id or a sender that held invalid bytes names no message and nobody for sure:
            // answering it could quote a message that does not exist or reach someone else.
            let identity = [head.id, head.from, head.from_user_id];
            if identity
                .iter()
                .flatten()
                .any(|field| field.contains(char::REPLACEMENT_CHARACTER))
            {
                tracing::error!(
                    "skipping a message whose id or sender held bytes that are not UTF-8"
                );
                parsed.rejected += 1;
                continue;
            }
            // What its text said is lost: the message is answered as one that cannot be read.
            Err(serde::de::Error::custom("it held bytes that are not UTF-8"))
        } else {
            body
        };
        push_message(&head, body, &change, parsed);
    }
    for status in value.statuses {
        if let Some(status) = item(status, "status", parsed) {
            push_status(&status, parsed);
        }
    }
    for error in value.errors {
        if let Some(error) = item(error, "error", parsed) {
            parsed.errors.push(error_info(&error));
        }
    }
}

/// What the messages of one change share: the business account, the number they arrived on,
/// and the change's contacts.
struct ChangeContext<'a> {
    business_account_id: Option<&'a str>,
    phone_number_id: Option<&'a str>,
    display_phone_number: Option<&'a str>,
    contacts: Vec<ContactView<'a>>,
}

/// A contact's identifiers, empty strings as absent.
struct ContactView<'a> {
    wa_id: Option<&'a str>,
    user_id: Option<&'a str>,
    name: Option<&'a str>,
}

/// The fields every message has, empty strings as absent.
struct HeadView<'a> {
    id: Option<&'a str>,
    from: Option<&'a str>,
    from_user_id: Option<&'a str>,
    timestamp: Option<&'a str>,
    kind: Option<&'a str>,
}

/// Checks one message and adds it. `body` is the rest of the message (its head taken), or why
/// it could not be read; it counts only for a message that has an id, a number to answer from
/// and a sender.
fn push_message(
    head: &HeadView<'_>,
    body: Result<MessageBody<'_>, serde_json::Error>,
    change: &ChangeContext<'_>,
    parsed: &mut ParsedWebhook,
) {
    let Some(id) = head.id else {
        tracing::error!("skipping a message without an id");
        parsed.rejected += 1;
        return;
    };
    let Some(phone_number_id) = change.phone_number_id else {
        tracing::error!(message_id = %log_id(id), "skipping a message without metadata.phone_number_id: no number to answer from");
        parsed.rejected += 1;
        return;
    };
    // The id becomes a Graph API path segment when answering: one that is not a number would
    // fail only then, after the agent was asked; refused here instead.
    if !is_phone_number_id(phone_number_id) {
        tracing::error!(message_id = %id, "skipping a message whose metadata.phone_number_id is not a number: no number to answer from");
        parsed.rejected += 1;
        return;
    }
    let Some(sender) = sender(head, &change.contacts) else {
        tracing::error!(message_id = %log_id(id), "skipping a message without a sender (no from, no from_user_id)");
        parsed.rejected += 1;
        return;
    };
    let type_name = head.kind.unwrap_or("unknown");
    let (kind, reply_to) = match body {
        Ok(mut body) => {
            let reply_to = body.context.take().and_then(|c| owned(c.id));
            (kind(type_name, body), reply_to)
        }
        Err(error) => {
            let error = redact::serde_error(&error);
            let kind = redact::name(type_name);
            tracing::warn!(message_id = %log_id(id), %kind, %error, "message body malformed: passed on as unsupported");
            (
                MessageKind::Unsupported {
                    kind: format!("{type_name} (malformed)"),
                },
                None,
            )
        }
    };
    parsed.messages.push(InboundMessage {
        id: MessageId(id.to_owned()),
        timestamp: head
            .timestamp
            .and_then(|t| t.parse().ok())
            .unwrap_or_default(),
        sender,
        channel: Channel {
            phone_number_id: PhoneNumberId(phone_number_id.to_owned()),
            display_phone_number: change.display_phone_number.map(str::to_owned),
            business_account_id: change.business_account_id.map(str::to_owned),
        },
        reply_to: reply_to.map(MessageId),
        kind,
    });
}

/// A business phone number id as Meta issues them: digits only.
fn is_phone_number_id(id: &str) -> bool {
    (1..=PHONE_NUMBER_ID_MAX_DIGITS).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_digit())
}

fn push_status(status: &Status<'_>, parsed: &mut ParsedWebhook) {
    let recipient = nonempty(&status.recipient_id)
        .or_else(|| nonempty(&status.recipient_user_id))
        .unwrap_or_default();
    parsed.statuses.push(StatusUpdate {
        message_id: text(&status.id).unwrap_or_default(),
        status: text(&status.status).unwrap_or_else(|| "unknown".to_owned()),
        recipient_masked: mask(recipient),
        errors: status.errors.iter().map(error_info).collect(),
    });
}

/// A `message_template_status_update` change's value; one without a template name names no
/// template and is skipped.
fn push_template_update(value: ChangeValue<'_>, parsed: &mut ParsedWebhook) {
    let Some(name) = owned(value.message_template_name) else {
        tracing::error!("skipping a template status update without message_template_name");
        parsed.rejected += 1;
        return;
    };
    let (info_title, info_description) = match value.other_info {
        Some(info) => (owned(info.title), owned(info.description)),
        None => (None, None),
    };
    parsed.template_updates.push(TemplateUpdate {
        event: owned(value.event).unwrap_or_else(|| "unknown".to_owned()),
        template_id: owned(value.message_template_id),
        name,
        language: owned(value.message_template_language).unwrap_or_default(),
        reason: owned(value.reason),
        info_title,
        info_description,
    });
}

/// Optional text, empty strings treated as absent, copied.
fn text(value: &Option<Str<'_>>) -> Option<String> {
    nonempty(value).map(str::to_owned)
}

/// The sender: phone from `from` (or the contact's `wa_id`), BSUID from `from_user_id` (or the
/// contact's `user_id`), display name from the matching contact. A contact is the sender's only
/// when it shares an identifier with the message; a lone contact stands in only for a message
/// that names no sender at all. Otherwise a message from an unlisted BSUID would borrow the
/// phone number of whoever else is in `contacts`, pass the allowlist as them, and be answered
/// to them.
fn sender(head: &HeadView<'_>, contacts: &[ContactView<'_>]) -> Option<Sender> {
    let (from_phone, from_bsuid) = match head.from {
        Some(from) if is_bsuid(from) => (None, Some(from)),
        other => (other, None),
    };
    let from_user_id = head.from_user_id.or(from_bsuid);
    let names_no_sender = from_phone.is_none() && from_user_id.is_none();
    let contact = contacts
        .iter()
        .find(|c| {
            (from_phone.is_some() && c.wa_id == from_phone)
                || (from_user_id.is_some() && c.user_id == from_user_id)
        })
        .or(if names_no_sender && contacts.len() == 1 {
            contacts.first()
        } else {
            None
        });
    let phone = from_phone.or_else(|| contact.and_then(|c| c.wa_id));
    let bsuid = from_user_id.or_else(|| contact.and_then(|c| c.user_id));
    if phone.is_none() && bsuid.is_none() {
        return None;
    }
    Some(Sender {
        phone: phone.map(str::to_owned),
        bsuid: bsuid.map(str::to_owned),
        display_name: contact.and_then(|c| c.name).map(str::to_owned),
    })
}

fn kind(type_name: &str, body: MessageBody<'_>) -> MessageKind {
    let unsupported = |why: &str| MessageKind::Unsupported {
        kind: if why.is_empty() {
            type_name.to_owned()
        } else {
            format!("{type_name} ({why})")
        },
    };
    let media = |media_type: MediaType, media: Option<Box<payload::Media<'_>>>| match media {
        Some(media) => MessageKind::Media {
            media_type,
            id: owned(media.id).unwrap_or_default(),
            mime_type: owned(media.mime_type),
            caption: owned(media.caption),
            filename: owned(media.filename),
        },
        None => unsupported("missing media object"),
    };
    match type_name {
        "text" => match body.text.and_then(|t| owned(t.body)) {
            Some(body) => MessageKind::Text { body },
            None => unsupported("missing body"),
        },
        "interactive" => {
            let Some(interactive) = body.interactive else {
                return unsupported("missing interactive object");
            };
            let payload::Interactive {
                kind,
                button_reply,
                list_reply,
            } = *interactive;
            match (
                nonempty(&kind).unwrap_or_default(),
                button_reply,
                list_reply,
            ) {
                ("button_reply", Some(choice), _) => MessageKind::ButtonReply {
                    id: owned(choice.id).unwrap_or_default(),
                    title: owned(choice.title).unwrap_or_default(),
                },
                ("list_reply", _, Some(choice)) => MessageKind::ListReply {
                    id: owned(choice.id).unwrap_or_default(),
                    title: owned(choice.title).unwrap_or_default(),
                    description: owned(choice.description),
                },
                (other, _, _) => MessageKind::Unsupported {
                    kind: format!(
                        "interactive:{}",
                        if other.is_empty() { "unknown" } else { other }
                    ),
                },
            }
        }
        "button" => match body.button {
            Some(button) => {
                let label = owned(button.text).unwrap_or_default();
                MessageKind::TemplateButton {
                    payload: owned(button.payload).unwrap_or_else(|| label.clone()),
                    text: label,
                }
            }
            None => unsupported("missing button object"),
        },
        "image" => media(MediaType::Image, body.image),
        "document" => media(MediaType::Document, body.document),
        "audio" => media(MediaType::Audio, body.audio),
        "video" => media(MediaType::Video, body.video),
        "sticker" => media(MediaType::Sticker, body.sticker),
        "location" => match body.location.map(|l| *l) {
            Some(payload::Location {
                latitude: Some(latitude),
                longitude: Some(longitude),
                name,
                address,
            }) => MessageKind::Location {
                latitude,
                longitude,
                name: owned(name),
                address: owned(address),
            },
            _ => unsupported("missing coordinates"),
        },
        "contacts" => MessageKind::Contacts {
            names: body
                .contacts
                .into_iter()
                .filter_map(|c| c.name.and_then(|n| owned(n.formatted_name)))
                .collect(),
        },
        "reaction" => match body.reaction {
            Some(reaction) => MessageKind::Reaction {
                message_id: owned(reaction.message_id).unwrap_or_default(),
                emoji: owned(reaction.emoji).unwrap_or_default(),
            },
            None => unsupported("missing reaction object"),
        },
        "order" => match body.order {
            Some(order) => MessageKind::Order {
                catalog_id: owned(order.catalog_id),
                text: owned(order.text),
                item_count: order.product_items.len(),
            },
            None => unsupported("missing order object"),
        },
        _ => unsupported(""),
    }
}

fn error_info(error: &ErrorItem<'_>) -> ErrorInfo {
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
                "metadata": {"display_phone_number": "15550001111", "phone_number_id": "106540352242922"},
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

    /// `body` with every `@BAD@` replaced by the bytes 0xFF 0xFE (never UTF-8).
    fn with_invalid_bytes(body: &[u8]) -> Vec<u8> {
        let text = std::str::from_utf8(body).unwrap();
        let bytes = text.replace("@BAD@", "\u{1}").into_bytes();
        bytes
            .into_iter()
            .flat_map(|b| if b == 1 { vec![0xFF, 0xFE] } else { vec![b] })
            .collect()
    }

    fn text_message(id: &str, body: &str) -> Value {
        json!({"id": id, "from": "14155551234", "type": "text", "text": {"body": body}})
    }

    #[test]
    fn invalid_bytes_in_one_message_make_only_that_message_unsupported() {
        let body = with_invalid_bytes(&webhook(
            json!([
                text_message("wamid.BAD", "pods @BAD@ crashing"),
                text_message("wamid.GOOD", "deploy staging \u{FFFD} please"),
            ]),
            json!([{"wa_id": "14155551234", "profile": {"name": "John"}}]),
        ));
        assert!(std::str::from_utf8(&body).is_err());
        let parsed = parse(&body).expect("the batch is read");
        assert_eq!(parsed.messages.len(), 2, "{parsed:?}");
        assert_eq!(parsed.messages[0].id.as_str(), "wamid.BAD");
        assert!(
            matches!(&parsed.messages[0].kind, MessageKind::Unsupported { kind } if kind.starts_with("text")),
            "{:?}",
            parsed.messages[0].kind
        );
        assert_eq!(
            parsed.messages[0].sender.phone.as_deref(),
            Some("14155551234")
        );
        // The other message is untouched, its own (legitimate) U+FFFD included.
        assert_eq!(parsed.messages[1].id.as_str(), "wamid.GOOD");
        assert_eq!(
            parsed.messages[1].kind,
            MessageKind::Text {
                body: "deploy staging \u{FFFD} please".into()
            }
        );
    }

    #[test]
    fn a_message_whose_id_or_sender_held_invalid_bytes_is_skipped() {
        let body = with_invalid_bytes(&webhook(
            json!([
                text_message("wamid.@BAD@", "hi"),
                {"id": "wamid.2", "from": "1415@BAD@5551234", "type": "text", "text": {"body": "hi"}},
                text_message("wamid.3", "fine"),
            ]),
            json!([]),
        ));
        let parsed = parse(&body).expect("the batch is read");
        let ids: Vec<&str> = parsed.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["wamid.3"]);
        assert_eq!(parsed.rejected, 2);
    }

    #[test]
    fn invalid_bytes_outside_messages_leave_every_message_readable() {
        let body = with_invalid_bytes(&webhook(
            json!([
                text_message("wamid.1", "pods crashing"),
                text_message("wamid.2", "deploy staging"),
            ]),
            json!([{"wa_id": "14155551234", "profile": {"name": "Jo@BAD@hn"}}]),
        ));
        assert!(std::str::from_utf8(&body).is_err());
        let parsed = parse(&body).expect("the batch is read");
        let texts: Vec<&MessageKind> = parsed.messages.iter().map(|m| &m.kind).collect();
        assert_eq!(
            texts,
            [
                &MessageKind::Text {
                    body: "pods crashing".into()
                },
                &MessageKind::Text {
                    body: "deploy staging".into()
                }
            ]
        );
    }

    #[test]
    fn phone_number_ids_that_are_not_numbers_are_refused_at_parse_time() {
        for id in [
            json!(""),
            json!("PNID"),
            json!("../me"),
            json!("1/2"),
            json!("1".repeat(40)),
        ] {
            let body = json!({"object": "whatsapp_business_account", "entry": [{"changes": [{
                "field": "messages",
                "value": {"metadata": {"phone_number_id": id}, "messages": [text_message("wamid.1", "hi")]}
            }]}]});
            let parsed = parse(body.to_string().as_bytes()).unwrap();
            assert!(parsed.messages.is_empty(), "{id}: {parsed:?}");
            assert_eq!(parsed.rejected, 1, "{id}");
        }
        // A number is as good as its digits.
        let body = json!({"object": "whatsapp_business_account", "entry": [{"changes": [{
            "field": "messages",
            "value": {"metadata": {"phone_number_id": 106540352242922_u64}, "messages": [text_message("wamid.1", "hi")]}
        }]}]});
        assert_eq!(
            parse(body.to_string().as_bytes()).unwrap().messages.len(),
            1
        );
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
        assert_eq!(message.channel.phone_number_id.as_str(), "106540352242922");
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
                    "metadata": {"phone_number_id": "106540352242922"},
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

    /// Meta's documented `message_template_status_update` payload (a pause), with `value`
    /// before `field` as Meta sends it.
    fn template_status(value: Value) -> Vec<u8> {
        json!({"object": "whatsapp_business_account", "entry": [{
            "id": "102290129340398", "time": 1739321024,
            "changes": [{"value": value, "field": "message_template_status_update"}]
        }]})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn template_status_updates_are_read_with_their_event_template_and_reason() {
        let paused = template_status(json!({
            "event": "PAUSED",
            "message_template_id": 1689556908129832u64,
            "message_template_name": "oncall_alert",
            "message_template_language": "en",
            "reason": "NONE",
            "message_template_category": "UTILITY",
            "other_info": {
                "title": "SECOND_PAUSE",
                "description": "Your WhatsApp message template has been paused for 6 hours until Aug 31 at 12:47 AM UTC because it continued to have issues."
            }
        }));
        readings_agree(&paused);
        let parsed = parse(&paused).unwrap();
        assert!(parsed.messages.is_empty() && parsed.ignored_fields.is_empty());
        assert_eq!(parsed.rejected, 0);
        let update = &parsed.template_updates[0];
        assert_eq!(
            *update,
            TemplateUpdate {
                event: "PAUSED".to_owned(),
                template_id: Some("1689556908129832".to_owned()),
                name: "oncall_alert".to_owned(),
                language: "en".to_owned(),
                reason: Some("NONE".to_owned()),
                info_title: Some("SECOND_PAUSE".to_owned()),
                info_description: Some("Your WhatsApp message template has been paused for 6 hours until Aug 31 at 12:47 AM UTC because it continued to have issues.".to_owned()),
            }
        );
        assert!(update.stops_sending());
        assert_eq!(update.template().unwrap().to_string(), "oncall_alert:en");

        // Approved (no other_info), a deletion (reason null), a rejection, a language written
        // as Meta's reference writes it.
        for (event, reason, stops) in [
            ("APPROVED", json!("NONE"), false),
            ("PENDING_DELETION", Value::Null, false),
            ("REJECTED", json!("INCORRECT_CATEGORY"), true),
            ("DISABLED", json!("NONE"), true),
        ] {
            let body = template_status(json!({
                "event": event, "message_template_id": "77",
                "message_template_name": "oncall_notice", "message_template_language": "en-US",
                "reason": reason
            }));
            readings_agree(&body);
            let update = parse(&body).unwrap().template_updates.remove(0);
            assert_eq!(update.event, event);
            assert_eq!(update.reason, reason.as_str().map(str::to_owned));
            assert_eq!(update.stops_sending(), stops, "{event}");
            assert_eq!(
                update.template().unwrap().to_string(),
                "oncall_notice:en_US"
            );
        }
    }

    #[test]
    fn template_status_updates_that_name_no_template_or_do_not_fit_are_skipped_and_logged() {
        let body = json!({"object": "whatsapp_business_account", "entry": [{"changes": [
            {"field": "message_template_status_update", "value": {"event": "PAUSED"}},
            {"field": "message_template_status_update", "value": {"event": "PAUSED",
                "message_template_name": "oncall_alert", "other_info": "x"}},
            {"field": "message_template_status_update", "value": {"event": "APPROVED",
                "message_template_name": "kept", "message_template_language": "en"}},
            {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}
        ]}]})
        .to_string();
        readings_agree(body.as_bytes());
        let (parsed, logs) = logged(body.as_bytes());
        let parsed = parsed.unwrap();
        assert_eq!(parsed.template_updates.len(), 1);
        assert_eq!(parsed.template_updates[0].name, "kept");
        assert!(!parsed.template_updates[0].stops_sending());
        assert_eq!(parsed.ignored_fields, ["account_update"]);
        assert_eq!(parsed.rejected, 2);
        assert_eq!(logs.len(), 2, "{logs:?}");
        assert!(
            logs[0].contains("without message_template_name"),
            "{logs:?}"
        );
        assert!(
            logs[1].contains("change value") && logs[1].contains("struct OtherInfo"),
            "{logs:?}"
        );
        // A template that is not well formed is no template of ours.
        let odd = TemplateUpdate {
            event: "PAUSED".to_owned(),
            template_id: None,
            name: "Not A Name".to_owned(),
            language: "en".to_owned(),
            reason: None,
            info_title: None,
            info_description: None,
        };
        assert!(odd.template().is_none());
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
                "metadata": {"phone_number_id": "106540352242922"},
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

    /// `parse(body)`'s result and the log lines it wrote (each trimmed).
    fn logged(body: &[u8]) -> (Result<ParsedWebhook, ParseError>, Vec<String>) {
        let (result, logged) = capture(&|| parse(body));
        (
            result,
            logged.lines().map(|line| line.trim().to_owned()).collect(),
        )
    }

    /// `read`'s result and everything it logged.
    fn capture<T>(read: &dyn Fn() -> T) -> (T, String) {
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let sink = lines.clone();
        let subscriber = tracing_subscriber_for_tests(move || LineWriter(sink.clone()));
        let result = tracing::subscriber::with_default(subscriber, read);
        let logged = String::from_utf8_lossy(&lines.lock().expect("log buffer")).into_owned();
        (result, logged)
    }

    /// Both readings of `body` (whole when it fits, item by item), compared: result and log
    /// lines.
    fn readings_agree(body: &[u8]) {
        let whole = capture(&|| format!("{:?}", parse(body)));
        let text = std::str::from_utf8(body).expect("only UTF-8 bodies have two readings");
        let item_by_item =
            capture(&|| format!("{:?}", read_item_by_item(text, &Damage::default())));
        assert_eq!(whole, item_by_item, "{}", String::from_utf8_lossy(body));
    }

    struct LineWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for LineWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn tracing_subscriber_for_tests<W>(writer: W) -> impl tracing::Subscriber + Send + Sync
    where
        W: for<'w> lambda_http::tracing::subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    {
        lambda_http::tracing::subscriber::fmt()
            .with_target(false)
            .without_time()
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .with_writer(writer)
            .finish()
    }

    #[test]
    fn the_whole_and_the_item_by_item_readings_agree() {
        // The sample events, each as Meta sends it.
        let dir = format!("{}/events", env!("CARGO_MANIFEST_DIR"));
        for path in std::fs::read_dir(&dir).expect("events/") {
            let path = path.expect("an event").path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let event: Value = serde_json::from_slice(&std::fs::read(&path).expect("readable"))
                .expect("events are JSON");
            if let Some(body) = event.get("body").and_then(Value::as_str) {
                readings_agree(body.as_bytes());
            }
        }
        // Odd envelopes (an array is read by position, as serde reads structs).
        for body in [
            json!({"object": "page", "entry": [42]}),
            json!(["whatsapp_business_account", []]),
            json!(["whatsapp_business_account", [["WABA", [{"field": "messages", "value":
                {"metadata": {"phone_number_id": "1"}, "messages": [text_message("wamid.1", "hi")]}}]]]]),
        ] {
            readings_agree(body.to_string().as_bytes());
        }
        // Not UTF-8 (outside any message): read item by item after repair, the same messages.
        let good = String::from_utf8(webhook(json!([base("text")]), json!([]))).expect("UTF-8");
        let mut invalid = good.clone().into_bytes();
        let at = good
            .find("whatsapp\",\"metadata")
            .expect("messaging_product");
        invalid[at + 2] = 0xff;
        assert_eq!(
            format!("{:?}", parse(&invalid).map(|p| p.messages)),
            format!("{:?}", parse(good.as_bytes()).map(|p| p.messages))
        );
    }

    /// What one message between two good ones becomes (its id and kind, as `{:?}`), and what
    /// is logged about it.
    enum Outcome {
        Read(&'static str, &'static str),
        /// Passed on as unsupported, with this warning after the message id.
        Malformed(&'static str, &'static str, &'static str),
        /// Skipped and counted as a message without an id.
        NoId,
        /// Skipped and counted as an item that is not a message, with serde's error.
        NotAMessage(&'static str),
    }

    #[test]
    fn each_bad_message_is_logged_and_skipped_or_passed_on_and_its_neighbours_are_read() {
        use Outcome::{Malformed, NoId, NotAMessage, Read};
        let contacts =
            json!([{"wa_id": "14155551234", "user_id": "US.1", "profile": {"name": "John"}}]);
        let cases = [
            // Shapes the whole reading takes: numbers for strings, nulls, escapes, every kind.
            (
                json!({"id": 7, "from": 14155551234_u64, "timestamp": 1.5, "type": "text", "text": {"body": "a\n\"b\" \u{e9} 😀"}}),
                Read("7", r#"Text { body: "a\n\"b\" é 😀" }"#),
            ),
            (
                json!({"id": "wamid.n", "from": null, "from_user_id": "US.1", "type": "text", "text": null}),
                Read("wamid.n", r#"Unsupported { kind: "text (missing body)" }"#),
            ),
            (
                json!({"id": "wamid.c", "type": "contacts", "contacts": [{"name": {"formatted_name": "A"}}, {}]}),
                Read("wamid.c", r#"Contacts { names: ["A"] }"#),
            ),
            (
                with(
                    "interactive",
                    "interactive",
                    json!({"type": "list_reply", "list_reply": {"id": "prod", "title": "P"}}),
                ),
                Read(
                    "wamid.1",
                    r#"ListReply { id: "prod", title: "P", description: None }"#,
                ),
            ),
            (
                with("image", "image", json!({"id": "m1", "caption": "c"})),
                Read(
                    "wamid.1",
                    r#"Media { media_type: Image, id: "m1", mime_type: None, caption: Some("c"), filename: None }"#,
                ),
            ),
            (
                with(
                    "location",
                    "location",
                    json!({"latitude": 1, "longitude": 2.5}),
                ),
                Read(
                    "wamid.1",
                    "Location { latitude: 1.0, longitude: 2.5, name: None, address: None }",
                ),
            ),
            (
                with(
                    "order",
                    "order",
                    json!({"product_items": [1, 2], "text": null}),
                ),
                Read(
                    "wamid.1",
                    "Order { catalog_id: None, text: None, item_count: 2 }",
                ),
            ),
            (
                with("button", "context", json!({"id": "wamid.prev"})),
                Read(
                    "wamid.1",
                    r#"Unsupported { kind: "button (missing button object)" }"#,
                ),
            ),
            // And shapes it refuses, read item by item. An array is read by position, as
            // serde reads structs: the head and the body each from the first element.
            (
                json!(["wamid.array", "14155551234"]),
                Malformed(
                    "wamid.array",
                    r#"Unsupported { kind: "unknown (malformed)" }"#,
                    "kind=unknown error=invalid type: string \"…\", expected struct Context at line 1 column 14",
                ),
            ),
            (
                with("text", "text", json!(["a body in an array"])),
                Read("wamid.1", r#"Text { body: "a body in an array" }"#),
            ),
            (
                json!(["a", "b", "c", "d", "e", "f"]),
                NotAMessage("trailing characters at line 1 column 22"),
            ),
            // A body field of the wrong type: passed on as unsupported.
            (
                with("image", "image", json!("not an object")),
                Malformed(
                    "wamid.1",
                    r#"Unsupported { kind: "image (malformed)" }"#,
                    "kind=image error=invalid type: string \"…\", expected struct Media at line 1 column 60",
                ),
            ),
            (
                with("text", "interactive", json!(42)),
                Malformed(
                    "wamid.1",
                    r#"Unsupported { kind: "text (malformed)" }"#,
                    "kind=text error=invalid type: integer `…`, expected struct Interactive at line 1 column 53",
                ),
            ),
            // No id, or not an object at all: skipped.
            (
                json!({"id": "", "from": "14155551234", "type": "text", "text": {"body": ""}}),
                NoId,
            ),
            (
                json!({"from": "1", "type": "text", "text": {"body": "no id"}}),
                NoId,
            ),
            (
                json!(42),
                NotAMessage(
                    "invalid type: integer `…`, expected struct MessageHead at line 1 column 2",
                ),
            ),
        ];
        let still_read = |id: &str| {
            format!(
                "{id} {:?}",
                MessageKind::Text {
                    body: "still read".into()
                }
            )
        };
        for (message, outcome) in cases {
            let body = webhook(
                json!([
                    text_message("wamid.before", "still read"),
                    message,
                    text_message("wamid.after", "still read")
                ]),
                contacts.clone(),
            );
            readings_agree(&body);
            let (parsed, logs) = logged(&body);
            let parsed = parsed.expect("the batch is read");
            let (read, rejected, log) = match outcome {
                Read(id, kind) => (Some(format!("{id} {kind}")), 0, None),
                Malformed(id, kind, warning) => (
                    Some(format!("{id} {kind}")),
                    0,
                    Some(format!(
                        "WARN message body malformed: passed on as unsupported message_id={} {warning}",
                        log_id(id)
                    )),
                ),
                NoId => (
                    None,
                    1,
                    Some("ERROR skipping a message without an id".to_owned()),
                ),
                NotAMessage(error) => (
                    None,
                    1,
                    Some(format!(
                        "ERROR skipping a webhook item that is not an object of the expected shape item=\"message\" error={error}"
                    )),
                ),
            };
            let expected = [
                Some(still_read("wamid.before")),
                read,
                Some(still_read("wamid.after")),
            ];
            let messages = parsed
                .messages
                .iter()
                .map(|m| format!("{} {:?}", m.id.as_str(), m.kind));
            assert_eq!(
                Vec::from_iter(messages),
                Vec::from_iter(expected.into_iter().flatten()),
                "{message}"
            );
            assert_eq!(parsed.rejected, rejected, "{message}");
            assert_eq!(logs, Vec::from_iter(log), "{message}");
        }
    }

    #[test]
    fn duplicate_keys_refuse_a_message_or_its_body() {
        let contacts = json!([{"wa_id": "14155551234", "profile": {"name": "John"}}]);
        let messages = json!([
            text_message("wamid.1", "one"),
            text_message("wamid.2", "two"),
            text_message("wamid.3", "three")
        ]);
        // In the head (a second id): the message is skipped. In the body (a second text): it
        // is passed on as unsupported.
        let body = String::from_utf8(webhook(messages, contacts))
            .expect("UTF-8")
            .replacen("\"id\":\"wamid.1\"", "\"id\":\"dup\",\"id\":\"wamid.1\"", 1)
            .replacen(
                "\"text\":{\"body\":\"two\"}",
                "\"text\":{},\"text\":{\"body\":\"two\"}",
                1,
            );
        readings_agree(body.as_bytes());
        let (parsed, logs) = logged(body.as_bytes());
        let parsed = parsed.expect("the batch is read");
        let read: Vec<(&str, &MessageKind)> = parsed
            .messages
            .iter()
            .map(|m| (m.id.as_str(), &m.kind))
            .collect();
        assert_eq!(
            read,
            [
                (
                    "wamid.2",
                    &MessageKind::Unsupported {
                        kind: "text (malformed)".into()
                    }
                ),
                (
                    "wamid.3",
                    &MessageKind::Text {
                        body: "three".into()
                    }
                ),
            ]
        );
        assert_eq!(parsed.rejected, 1);
        assert_eq!(
            logs,
            [
                "ERROR skipping a webhook item that is not an object of the expected shape item=\"message\" error=duplicate field `…` at line 1 column 37".to_owned(),
                format!("WARN message body malformed: passed on as unsupported message_id={} kind=text error=duplicate field `…` at line 1 column 53", log_id("wamid.2")),
            ]
        );
    }

    #[test]
    fn bad_entries_changes_values_statuses_and_errors_are_logged_and_skipped() {
        let skipped = |item: &str, error: &str| {
            format!(
                "ERROR skipping a webhook item that is not an object of the expected shape item=\"{item}\" error={error}"
            )
        };
        let message = text_message("wamid.1", "hi");
        let change = json!({"field": "messages", "value": {"metadata": {"phone_number_id": "106540352242922"}, "messages": [message]}});
        let body = json!({"object": "whatsapp_business_account", "entry": [
            null,
            1,
            {"id": "A", "changes": [null, "x", change]},
            {"id": "B", "changes": [
                // Another field's value is never read as that of `messages`.
                {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT", "messages": "x"}},
                {"field": "messages", "value": {"metadata": "x", "messages": [message]}},
                {"field": "messages", "value": {"metadata": {"phone_number_id": 5},
                    "contacts": [7],
                    "statuses": [{"id": "wamid.s", "status": "read", "recipient_id": "14155551234"}, 3],
                    "errors": [{"code": 1}, "x"]}}
            ]}
        ]})
        .to_string();
        readings_agree(body.as_bytes());
        let (parsed, logs) = logged(body.as_bytes());
        let parsed = parsed.expect("the batch is read");
        assert_eq!(parsed.messages.len(), 1);
        assert_eq!(
            parsed.messages[0].channel.business_account_id.as_deref(),
            Some("A")
        );
        assert_eq!(parsed.ignored_fields, ["account_update"]);
        assert_eq!(parsed.statuses.len(), 1);
        assert_eq!(parsed.statuses[0].message_id, "wamid.s");
        assert_eq!(parsed.errors.len(), 1);
        assert_eq!(parsed.errors[0].code.as_deref(), Some("1"));
        // Two entries, two changes, a value, a status and an error; a contact that is not an
        // object names nobody and is dropped without a word.
        assert_eq!(parsed.rejected, 7);
        assert_eq!(
            logs,
            [
                skipped(
                    "entry",
                    "invalid type: null, expected struct Entry at line 1 column 4"
                ),
                skipped(
                    "entry",
                    "invalid type: integer `…`, expected struct Entry at line 1 column 1"
                ),
                skipped(
                    "change",
                    "invalid type: null, expected struct Change at line 1 column 4"
                ),
                skipped(
                    "change",
                    "invalid type: string \"…\", expected struct Change at line 1 column 3"
                ),
                skipped(
                    "change value",
                    "invalid type: string \"…\", expected struct Metadata at line 1 column 101"
                ),
                skipped(
                    "status",
                    "invalid type: integer `…`, expected struct Status at line 1 column 1"
                ),
                skipped(
                    "error",
                    "invalid type: string \"…\", expected struct ErrorItem at line 1 column 3"
                ),
            ]
        );
    }
}

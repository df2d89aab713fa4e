//! From webhook bytes to domain values: every entry, change, message and status of a batch.
//! Nothing here fails the batch except a body that is not JSON or not a WhatsApp webhook; a bad
//! item is logged and skipped, an unknown message kind is passed on as `unsupported`.
//!
//! Two readings, one meaning. The fast one ([`fast`]) reads the whole body in a single pass
//! into types that borrow its strings; it takes a body only when it is UTF-8 and every entry,
//! change, value, message and contact is an object of the expected shape. Anything else (an
//! item that is not an object, a field of the wrong type, a duplicate key, a change of another
//! field whose value does not fit) goes to the item-by-item reading ([`lenient`]), which keeps
//! each item raw and logs and skips the bad ones; such a body is read twice. Both hand their
//! items to the same functions (`push_message`, `push_status`, `sender`, `kind`), and the fast
//! types take exactly the fields, string-or-number rules and `null`-as-absent of the
//! [`payload`] types, so the result and the logs are the same whichever reading produced them.
//! The fast one only avoids re-reading each level of the body (entry, change, value, head and
//! body of each message: six passes over a message's text) and copying every string twice.
//!
//! A body that is not UTF-8 (one stray byte in one message's text) is not refused whole: each
//! run of invalid bytes is replaced by U+FFFD, remembering where ([`Damage`]), and the result
//! is read item by item. A message whose own JSON held invalid bytes is passed on as
//! `unsupported`, its text unknowable; every other message is read as usual (a U+FFFD Meta
//! sent in one stays as it is). Valid bodies never pay for this.

use super::payload::{
    self, Change, Contact, Entry, ErrorItem, MessageBody, MessageHead, MessagesValue, Status, text,
};
use crate::domain::{
    Channel, InboundMessage, MediaType, MessageId, MessageKind, PhoneNumberId, Sender, log_id,
};
use crate::domain::{is_bsuid, mask};
use crate::redact;
use serde::Deserialize;
use serde_json::value::RawValue;

/// The `object` of WhatsApp Business Account webhooks.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";
/// The change field that carries messages and statuses.
pub const MESSAGES_FIELD: &str = "messages";
/// Longest `metadata.phone_number_id` taken (Meta's ids have 15 or 16 digits).
const PHONE_NUMBER_ID_MAX_DIGITS: usize = 32;

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
    // The fast reading skips the strings it does not need without looking inside them; the
    // lenient one keeps items raw, which must be UTF-8. So only UTF-8 bodies take the fast one;
    // any other is repaired first.
    match std::str::from_utf8(body) {
        Ok(text) => match serde_json::from_str::<fast::Object<fast::Envelope<'_>>>(text) {
            Ok(envelope) => fast::parse(envelope.0),
            Err(_) => lenient(text, &Damage::default()),
        },
        Err(_) => {
            let (text, offsets) = repair(body);
            tracing::warn!(
                invalid_runs = offsets.len(),
                "webhook body is not UTF-8: messages holding the invalid bytes are passed on as unsupported"
            );
            lenient(&text, &Damage::of(&text, offsets))
        }
    }
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

/// The item-by-item reading: each entry, change and message kept raw and parsed on its own,
/// so one bad item is logged and skipped without failing the others.
fn lenient(body: &str, damage: &Damage) -> Result<ParsedWebhook, ParseError> {
    let envelope: payload::Envelope<'_> =
        serde_json::from_str(body).map_err(|e| ParseError::NotJson(redact::serde_error(&e)))?;
    let object = text(&envelope.object).unwrap_or_default();
    if object != WHATSAPP_OBJECT {
        return Err(ParseError::NotWhatsApp(redact::name(&object)));
    }
    let mut parsed = ParsedWebhook::default();
    for raw_entry in envelope.entry {
        let Some(entry) = item::<Entry<'_>>(raw_entry, "entry", &mut parsed) else {
            continue;
        };
        let business_account_id = nonempty(&entry.id);
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
            lenient_value(&value, business_account_id, damage, &mut parsed);
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
            let error = redact::serde_error(&error);
            tracing::error!(item = what, %error, "skipping a webhook item that is not an object of the expected shape");
            parsed.rejected += 1;
            None
        }
    }
}

fn lenient_value(
    value: &MessagesValue<'_>,
    business_account_id: Option<&str>,
    damage: &Damage,
    parsed: &mut ParsedWebhook,
) {
    let metadata = value.metadata.as_ref();
    let contacts: Vec<Contact> = value
        .contacts
        .iter()
        .filter_map(|raw| serde_json::from_str(raw.get()).ok())
        .collect();
    let change = ChangeContext {
        business_account_id,
        phone_number_id: metadata.and_then(|m| nonempty(&m.phone_number_id)),
        display_phone_number: metadata.and_then(|m| nonempty(&m.display_phone_number)),
        contacts: contacts
            .iter()
            .map(|c| ContactView {
                wa_id: nonempty(&c.wa_id),
                user_id: nonempty(&c.user_id),
                name: c.profile.as_ref().and_then(|p| nonempty(&p.name)),
            })
            .collect(),
    };

    for raw in &value.messages {
        let Some(head) = item::<MessageHead>(raw, "message", parsed) else {
            continue;
        };
        let head = HeadView {
            id: nonempty(&head.id),
            from: nonempty(&head.from),
            from_user_id: nonempty(&head.from_user_id),
            timestamp: nonempty(&head.timestamp),
            kind: nonempty(&head.kind),
        };
        if damage.touches(raw.get()) {
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
            push_message(
                &head,
                || Err(serde::de::Error::custom("it held bytes that are not UTF-8")),
                &change,
                parsed,
            );
        } else {
            push_message(&head, || serde_json::from_str(raw.get()), &change, parsed);
        }
    }
    for raw in &value.statuses {
        if let Some(status) = item::<Status>(raw, "status", parsed) {
            push_status(&status, parsed);
        }
    }
    for raw in &value.errors {
        if let Some(error) = item::<ErrorItem>(raw, "error", parsed) {
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

/// Checks one message and adds it; the body is read only for a message that has an id, a
/// number to answer from and a sender.
fn push_message(
    head: &HeadView<'_>,
    body: impl FnOnce() -> Result<MessageBody, serde_json::Error>,
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
    let (kind, reply_to) = match body() {
        Ok(mut body) => {
            let reply_to = body.context.take().and_then(|c| take(c.id));
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

fn push_status(status: &Status, parsed: &mut ParsedWebhook) {
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

/// [`text`] without the copy: optional text, empty strings treated as absent.
fn nonempty(value: &Option<payload::Text>) -> Option<&str> {
    value
        .as_ref()
        .map(|t| t.0.as_str())
        .filter(|t| !t.is_empty())
}

/// [`text`] for a value that is not needed afterwards: moves the string out.
fn take(value: Option<payload::Text>) -> Option<String> {
    value.map(|t| t.0).filter(|t| !t.is_empty())
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

fn kind(type_name: &str, body: MessageBody) -> MessageKind {
    let unsupported = |why: &str| MessageKind::Unsupported {
        kind: if why.is_empty() {
            type_name.to_owned()
        } else {
            format!("{type_name} ({why})")
        },
    };
    let media = |media_type: MediaType, media: Option<payload::Media>| match media {
        Some(media) => MessageKind::Media {
            media_type,
            id: take(media.id).unwrap_or_default(),
            mime_type: take(media.mime_type),
            caption: take(media.caption),
            filename: take(media.filename),
        },
        None => unsupported("missing media object"),
    };
    match type_name {
        "text" => match body.text.and_then(|t| take(t.body)) {
            Some(body) => MessageKind::Text { body },
            None => unsupported("missing body"),
        },
        "interactive" => {
            let Some(interactive) = body.interactive else {
                return unsupported("missing interactive object");
            };
            let interactive_type = take(interactive.kind).unwrap_or_default();
            match (
                interactive_type.as_str(),
                interactive.button_reply,
                interactive.list_reply,
            ) {
                ("button_reply", Some(choice), _) => MessageKind::ButtonReply {
                    id: take(choice.id).unwrap_or_default(),
                    title: take(choice.title).unwrap_or_default(),
                },
                ("list_reply", _, Some(choice)) => MessageKind::ListReply {
                    id: take(choice.id).unwrap_or_default(),
                    title: take(choice.title).unwrap_or_default(),
                    description: take(choice.description),
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
                let label = take(button.text).unwrap_or_default();
                MessageKind::TemplateButton {
                    payload: take(button.payload).unwrap_or_else(|| label.clone()),
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
        "location" => match body.location {
            Some(payload::Location {
                latitude: Some(latitude),
                longitude: Some(longitude),
                name,
                address,
            }) => MessageKind::Location {
                latitude,
                longitude,
                name: take(name),
                address: take(address),
            },
            _ => unsupported("missing coordinates"),
        },
        "contacts" => MessageKind::Contacts {
            names: body
                .contacts
                .into_iter()
                .filter_map(|c| c.name.and_then(|n| take(n.formatted_name)))
                .collect(),
        },
        "reaction" => match body.reaction {
            Some(reaction) => MessageKind::Reaction {
                message_id: take(reaction.message_id).unwrap_or_default(),
                emoji: take(reaction.emoji).unwrap_or_default(),
            },
            None => unsupported("missing reaction object"),
        },
        "order" => match body.order {
            Some(order) => MessageKind::Order {
                catalog_id: take(order.catalog_id),
                text: take(order.text),
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

/// The single-pass reading: the whole body into types that borrow its strings. It succeeds
/// only on bodies whose every item would also have been read without error item by item, and
/// then gives the same values (same fields, same string-or-number rules, `null` as absent);
/// see the module comment.
mod fast {
    use super::{
        ChangeContext, ContactView, HeadView, MESSAGES_FIELD, ParseError, ParsedWebhook,
        WHATSAPP_OBJECT, error_info, push_message, push_status,
    };
    use crate::domain::null_default;
    use crate::redact;
    use crate::webhook::payload::{
        self, ContactCard, Context, ErrorItem, Interactive, Location, Media, MessageBody, Order,
        Reaction, Status, Str, TemplateButton,
    };
    use serde::Deserialize;
    use serde::de::{Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};
    use std::fmt;
    use std::marker::PhantomData;

    /// A struct read from a JSON object only. serde also reads structs from arrays (fields by
    /// position), and the fast types group fields differently from the item-by-item ones (one
    /// message type instead of a head and a body): an array goes to the lenient reading.
    pub struct Object<T>(pub T);

    impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct ObjectVisitor<T>(PhantomData<T>);
            impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
                type Value = Object<T>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Object<T>, A::Error> {
                    T::deserialize(MapAccessDeserializer::new(map)).map(Object)
                }
            }
            deserializer.deserialize_map(ObjectVisitor(PhantomData))
        }
    }

    /// Optional text, empty strings treated as absent (as [`payload::text`]), borrowed.
    fn nonempty<'s>(value: &'s Option<Str<'_>>) -> Option<&'s str> {
        value.as_ref().map(|s| &*s.0).filter(|s| !s.is_empty())
    }

    fn owned(value: Option<Str<'_>>) -> Option<payload::Text> {
        value.map(|s| payload::Text(s.0.into_owned()))
    }

    #[derive(Deserialize)]
    pub struct Envelope<'a> {
        #[serde(borrow, default)]
        object: Option<Str<'a>>,
        #[serde(borrow, default, deserialize_with = "null_default")]
        entry: Vec<Object<Entry<'a>>>,
    }

    #[derive(Deserialize)]
    struct Entry<'a> {
        #[serde(borrow, default)]
        id: Option<Str<'a>>,
        #[serde(borrow, default, deserialize_with = "null_default")]
        changes: Vec<Object<Change<'a>>>,
    }

    #[derive(Deserialize)]
    struct Change<'a> {
        #[serde(borrow, default)]
        field: Option<Str<'a>>,
        #[serde(borrow, default)]
        value: Option<Object<Value<'a>>>,
    }

    #[derive(Deserialize)]
    struct Value<'a> {
        #[serde(borrow, default)]
        metadata: Option<Object<Metadata<'a>>>,
        #[serde(borrow, default, deserialize_with = "null_default")]
        contacts: Vec<Object<Contact<'a>>>,
        #[serde(borrow, default, deserialize_with = "null_default")]
        messages: Vec<Object<Message<'a>>>,
        #[serde(default, deserialize_with = "null_default")]
        statuses: Vec<Status>,
        #[serde(default, deserialize_with = "null_default")]
        errors: Vec<ErrorItem>,
    }

    #[derive(Deserialize)]
    struct Metadata<'a> {
        #[serde(borrow, default)]
        display_phone_number: Option<Str<'a>>,
        #[serde(borrow, default)]
        phone_number_id: Option<Str<'a>>,
    }

    #[derive(Deserialize)]
    struct Contact<'a> {
        #[serde(borrow, default)]
        wa_id: Option<Str<'a>>,
        #[serde(borrow, default)]
        user_id: Option<Str<'a>>,
        #[serde(borrow, default)]
        profile: Option<Object<Profile<'a>>>,
    }

    #[derive(Deserialize)]
    struct Profile<'a> {
        #[serde(borrow, default)]
        name: Option<Str<'a>>,
    }

    /// [`payload::MessageHead`] and [`payload::MessageBody`] in one (their fields are disjoint).
    /// What only some kinds carry is boxed: the struct stays small for the common text message.
    #[derive(Deserialize)]
    struct Message<'a> {
        #[serde(borrow, default)]
        id: Option<Str<'a>>,
        #[serde(borrow, default)]
        from: Option<Str<'a>>,
        #[serde(borrow, default)]
        from_user_id: Option<Str<'a>>,
        #[serde(borrow, default)]
        timestamp: Option<Str<'a>>,
        #[serde(borrow, default, rename = "type")]
        kind: Option<Str<'a>>,
        #[serde(default)]
        context: Option<Box<Context>>,
        #[serde(borrow, default)]
        text: Option<Object<TextBody<'a>>>,
        #[serde(default)]
        interactive: Option<Box<Interactive>>,
        #[serde(default)]
        button: Option<Box<TemplateButton>>,
        #[serde(default)]
        image: Option<Box<Media>>,
        #[serde(default)]
        document: Option<Box<Media>>,
        #[serde(default)]
        audio: Option<Box<Media>>,
        #[serde(default)]
        video: Option<Box<Media>>,
        #[serde(default)]
        sticker: Option<Box<Media>>,
        #[serde(default)]
        location: Option<Box<Location>>,
        #[serde(default, deserialize_with = "null_default")]
        contacts: Vec<ContactCard>,
        #[serde(default)]
        reaction: Option<Box<Reaction>>,
        #[serde(default)]
        order: Option<Box<Order>>,
    }

    #[derive(Deserialize)]
    struct TextBody<'a> {
        #[serde(borrow, default)]
        body: Option<Str<'a>>,
    }

    pub fn parse(envelope: Envelope<'_>) -> Result<ParsedWebhook, ParseError> {
        let object = nonempty(&envelope.object).unwrap_or_default();
        if object != WHATSAPP_OBJECT {
            return Err(ParseError::NotWhatsApp(redact::name(object)));
        }
        let mut parsed = ParsedWebhook::default();
        for Object(entry) in envelope.entry {
            let business_account_id = nonempty(&entry.id);
            for Object(change) in entry.changes {
                let field = nonempty(&change.field).unwrap_or_default();
                if field != MESSAGES_FIELD {
                    parsed.ignored_fields.push(field.to_owned());
                    continue;
                }
                let Some(Object(value)) = change.value else {
                    continue;
                };
                let metadata = value.metadata.as_ref().map(|m| &m.0);
                let context = ChangeContext {
                    business_account_id,
                    phone_number_id: metadata.and_then(|m| nonempty(&m.phone_number_id)),
                    display_phone_number: metadata.and_then(|m| nonempty(&m.display_phone_number)),
                    contacts: value
                        .contacts
                        .iter()
                        .map(|Object(c)| ContactView {
                            wa_id: nonempty(&c.wa_id),
                            user_id: nonempty(&c.user_id),
                            name: c.profile.as_ref().and_then(|p| nonempty(&p.0.name)),
                        })
                        .collect(),
                };
                parsed.messages.reserve(value.messages.len());
                for Object(message) in value.messages {
                    let head = HeadView {
                        id: nonempty(&message.id),
                        from: nonempty(&message.from),
                        from_user_id: nonempty(&message.from_user_id),
                        timestamp: nonempty(&message.timestamp),
                        kind: nonempty(&message.kind),
                    };
                    let body = MessageBody {
                        context: message.context.map(|b| *b),
                        text: message.text.map(|Object(t)| payload::TextBody {
                            body: owned(t.body),
                        }),
                        interactive: message.interactive.map(|b| *b),
                        button: message.button.map(|b| *b),
                        image: message.image.map(|b| *b),
                        document: message.document.map(|b| *b),
                        audio: message.audio.map(|b| *b),
                        video: message.video.map(|b| *b),
                        sticker: message.sticker.map(|b| *b),
                        location: message.location.map(|b| *b),
                        contacts: message.contacts,
                        reaction: message.reaction.map(|b| *b),
                        order: message.order.map(|b| *b),
                    };
                    push_message(&head, || Ok(body), &context, &mut parsed);
                }
                for status in &value.statuses {
                    push_status(status, &mut parsed);
                }
                for error in &value.errors {
                    parsed.errors.push(error_info(error));
                }
            }
        }
        Ok(parsed)
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

    /// Both readings of `body`, compared: result and log lines.
    fn readings_agree(body: &[u8]) {
        let capture = |read: &dyn Fn() -> String| {
            let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
            let sink = lines.clone();
            let subscriber = tracing_subscriber_for_tests(move || LineWriter(sink.clone()));
            let result = tracing::subscriber::with_default(subscriber, read);
            let logged = String::from_utf8_lossy(&lines.lock().expect("log buffer")).into_owned();
            (result, logged)
        };
        let fast = capture(&|| format!("{:?}", parse(body)));
        let text = std::str::from_utf8(body).expect("only UTF-8 bodies have two readings");
        let lenient = capture(&|| format!("{:?}", lenient(text, &Damage::default())));
        assert_eq!(fast, lenient, "{}", String::from_utf8_lossy(body));
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
    fn the_single_pass_and_the_item_by_item_readings_agree() {
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
        let contacts =
            json!([{"wa_id": "14155551234", "user_id": "US.1", "profile": {"name": "John"}}]);
        // Shapes the fast reading takes: numbers for strings, nulls, escapes, every kind.
        for message in [
            json!({"id": 7, "from": 14155551234_u64, "timestamp": 1.5, "type": "text", "text": {"body": "a\n\"b\" \u{e9} 😀"}}),
            json!({"id": "wamid.n", "from": null, "from_user_id": "US.1", "type": "text", "text": null}),
            json!({"id": "", "from": "14155551234", "type": "text", "text": {"body": ""}}),
            json!({"id": "wamid.c", "type": "contacts", "contacts": [{"name": {"formatted_name": "A"}}, {}]}),
            with(
                "interactive",
                "interactive",
                json!({"type": "list_reply", "list_reply": {"id": "prod", "title": "P"}}),
            ),
            with("image", "image", json!({"id": "m1", "caption": "c"})),
            with(
                "location",
                "location",
                json!({"latitude": 1, "longitude": 2.5}),
            ),
            with(
                "order",
                "order",
                json!({"product_items": [1, 2], "text": null}),
            ),
            with("button", "context", json!({"id": "wamid.prev"})),
            // And shapes it refuses, read item by item.
            json!(["wamid.array", "14155551234"]),
            with("text", "text", json!(["a body in an array"])),
            with("image", "image", json!("not an object")),
            with("text", "interactive", json!(42)),
            json!({"from": "1", "type": "text", "text": {"body": "no id"}}),
            json!(42),
        ] {
            readings_agree(&webhook(json!([message, base("text")]), contacts.clone()));
        }
        // Duplicate keys, invalid UTF-8 where nothing reads it, other fields, odd envelopes.
        let good = String::from_utf8(webhook(json!([base("text")]), contacts)).expect("UTF-8");
        readings_agree(
            good.replacen("\"id\":", "\"id\":\"dup\",\"id\":", 1)
                .as_bytes(),
        );
        readings_agree(
            good.replacen(
                "\"type\":\"text\"",
                "\"type\":\"text\",\"text\":{},\"text\":{}",
                1,
            )
            .as_bytes(),
        );
        let mut invalid = good.clone().into_bytes();
        let at = good
            .find("whatsapp\",\"metadata")
            .expect("messaging_product");
        invalid[at + 2] = 0xff;
        // Not UTF-8 (outside any message): read item by item after repair, the same messages.
        assert_eq!(
            format!("{:?}", parse(&invalid).map(|p| p.messages)),
            format!("{:?}", parse(good.as_bytes()).map(|p| p.messages))
        );
        for body in [
            json!({"object": "whatsapp_business_account", "entry": [{"changes": [
                {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT", "messages": "x"}},
                {"field": "messages", "value": {"metadata": {"phone_number_id": 5},
                    "statuses": [{"id": "wamid.s", "status": "read", "recipient_id": "14155551234"}, 3],
                    "errors": [{"code": 1}]}}]}]}),
            json!({"object": "whatsapp_business_account", "entry": [null, 1, {"changes": [null]}]}),
            json!({"object": "page", "entry": [42]}),
            json!(["whatsapp_business_account", []]),
        ] {
            readings_agree(body.to_string().as_bytes());
        }
    }
}

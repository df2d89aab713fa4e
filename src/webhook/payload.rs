//! Meta's webhook JSON, as serde types that tolerate what Meta (or an attacker) may send:
//! unknown fields are ignored, `null` means absent, numbers are accepted where ids are strings,
//! and strings are borrowed from the body when they hold no escapes.
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples>
//!
//! A change's `value` is one type, [`ChangeValue`], whatever the change's `field` (which Meta
//! sends after the value, so the value cannot be read by its field in one pass): the fields of
//! a `messages` change and those of a `message_template_status_update`, each absent in the
//! other.
//!
//! **Two ways to read one tree.** Every list of items (entries, changes, contacts, messages,
//! statuses, errors) and a change's value is an [`Item`] (a message a [`MessageItem`]). Read
//! whole (the default), each item is read in place, in one pass over the body, and the first
//! item that does not fit fails the reading. Read [`item_by_item`], each item is first kept raw
//! and then read on its own, so one that does not fit is [`Item::Refused`] with serde's error
//! (its position counted within the item) and the others are read as usual; a message is read
//! in two parts, its head (id, sender, timestamp, type) and its body, so that a message with a
//! malformed body still has an id and a sender to answer. `parse` reads whole first and item by
//! item only a body that the whole reading refused: the types, and therefore the values, are
//! the same either way.

use crate::domain::null_default;
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{
    self, DeserializeSeed, Deserializer, IgnoredAny, IntoDeserializer, MapAccess, Visitor,
};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;

/// A string field that also accepts a number or a bool (rendered as text); borrowed from the
/// body when it holds no escapes.
#[derive(Debug, Default)]
pub struct Str<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(v.to_string())))
            }
        }
        deserializer.deserialize_any(StrVisitor)
    }
}

/// Optional text, empty strings treated as absent, borrowed.
pub fn nonempty<'s>(value: &'s Option<Str<'_>>) -> Option<&'s str> {
    value.as_ref().map(|s| &*s.0).filter(|s| !s.is_empty())
}

/// Optional text, empty strings treated as absent, owned (moved out when it already is).
pub fn owned(value: Option<Str<'_>>) -> Option<String> {
    value.map(|s| s.0.into_owned()).filter(|s| !s.is_empty())
}

// --- Reading whole or item by item ----------------------------------------------------------

thread_local! {
    /// Whether the reading under way on this thread is item by item (see the module comment).
    static ITEM_BY_ITEM: Cell<bool> = const { Cell::new(false) };
}

/// Runs `read` (a deserialization of these types) reading item by item.
pub fn item_by_item<R>(read: impl FnOnce() -> R) -> R {
    /// Restores the previous way even if `read` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            ITEM_BY_ITEM.set(self.0);
        }
    }
    let _restore = Restore(ITEM_BY_ITEM.replace(true));
    read()
}

/// One item of a list: read, or (item by item only) refused.
#[derive(Debug)]
pub enum Item<T> {
    Read(T),
    /// Not an object of the expected shape: why.
    Refused(serde_json::Error),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Item<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !ITEM_BY_ITEM.get() {
            return T::deserialize(deserializer).map(Item::Read);
        }
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        Ok(match serde_json::from_str(raw.get()) {
            Ok(value) => Item::Read(value),
            Err(error) => Item::Refused(error),
        })
    }
}

/// One message of a change's `messages`.
#[derive(Debug)]
// Nearly every message is `Read`: boxing it would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
pub enum MessageItem<'a> {
    /// The head read, and the body or why not. `raw` (item by item only): the message's JSON.
    Read {
        head: MessageHead<'a>,
        body: Result<MessageBody<'a>, serde_json::Error>,
        raw: Option<&'a str>,
    },
    /// Item by item: not even the head read.
    Refused(serde_json::Error),
}

impl<'de> Deserialize<'de> for MessageItem<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if !ITEM_BY_ITEM.get() {
            return deserializer.deserialize_map(WholeMessage);
        }
        // Head and body apart: a message with a malformed body still has an id and a sender.
        let raw = <&'de RawValue>::deserialize(deserializer)?.get();
        Ok(match serde_json::from_str(raw) {
            Ok(head) => MessageItem::Read {
                head,
                body: serde_json::from_str(raw),
                raw: Some(raw),
            },
            Err(error) => MessageItem::Refused(error),
        })
    }
}

/// A message read whole, in one pass: the head's fields set aside as they come, the others
/// read as the body. From an object only (from an array, serde would take the fields by
/// position, the head's and the body's each from the first element), and any error refuses
/// it (the item-by-item reading then says why).
struct WholeMessage;

impl<'de> Visitor<'de> for WholeMessage {
    type Value = MessageItem<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a message object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MessageItem<'de>, A::Error> {
        let mut entries = HeadAside {
            map,
            head: MessageHead::default(),
            seen: [false; 5],
        };
        let body = MessageBody::deserialize(MapAccessDeserializer::new(&mut entries))?;
        Ok(MessageItem::Read {
            head: entries.head,
            body: Ok(body),
            raw: None,
        })
    }
}

/// A message's entries as its body sees them: those of the head's fields are read into `head`.
struct HeadAside<'de, A> {
    map: A,
    head: MessageHead<'de>,
    /// Which of the head's fields were there, to refuse one twice as [`MessageHead`] does.
    seen: [bool; 5],
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for HeadAside<'de, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(Str(key)) = self.map.next_key()? {
            let (index, field) = match &*key {
                "id" => (0, &mut self.head.id),
                "from" => (1, &mut self.head.from),
                "from_user_id" => (2, &mut self.head.from_user_id),
                "timestamp" => (3, &mut self.head.timestamp),
                "type" => (4, &mut self.head.kind),
                _ => return seed.deserialize(key.into_deserializer()).map(Some),
            };
            if std::mem::replace(&mut self.seen[index], true) {
                return Err(de::Error::custom("a message's head field twice"));
            }
            *field = self.map.next_value()?;
        }
        Ok(None)
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

// --- The tree ---------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Envelope<'a> {
    pub object: Option<Str<'a>>,
    #[serde(deserialize_with = "null_default")]
    pub entry: Vec<Item<Entry<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Entry<'a> {
    /// The WhatsApp Business Account id.
    pub id: Option<Str<'a>>,
    #[serde(deserialize_with = "null_default")]
    pub changes: Vec<Item<Change<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Change<'a> {
    pub field: Option<Str<'a>>,
    /// Read as a [`ChangeValue`] whatever the field; used only for `messages` and
    /// `message_template_status_update` changes.
    pub value: Option<Item<ChangeValue<'a>>>,
}

/// The `value` of a change: a `messages` change's metadata, contacts, messages, statuses and
/// errors, or a `message_template_status_update`'s event and template.
/// <https://developers.facebook.com/documentation/business-messaging/whatsapp/webhooks/reference/message_template_status_update>
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct ChangeValue<'a> {
    pub metadata: Option<Metadata<'a>>,
    #[serde(deserialize_with = "null_default")]
    pub contacts: Vec<Item<Contact<'a>>>,
    #[serde(deserialize_with = "null_default")]
    pub messages: Vec<MessageItem<'a>>,
    #[serde(deserialize_with = "null_default")]
    pub statuses: Vec<Item<Status<'a>>>,
    #[serde(deserialize_with = "null_default")]
    pub errors: Vec<Item<ErrorItem<'a>>>,
    /// `message_template_status_update`: `APPROVED`, `REJECTED`, `PAUSED`, `DISABLED`…
    pub event: Option<Str<'a>>,
    /// A number in Meta's payloads.
    pub message_template_id: Option<Str<'a>>,
    pub message_template_name: Option<Str<'a>>,
    /// `en`, `en_US` (Meta's reference also shows `en-US`).
    pub message_template_language: Option<Str<'a>>,
    /// `NONE`, `INCORRECT_CATEGORY`…; `null` for a template scheduled for deletion.
    pub reason: Option<Str<'a>>,
    /// Pauses and unpauses, locks and unlocks: which, and Meta's sentence about it.
    pub other_info: Option<Box<OtherInfo<'a>>>,
}

/// `other_info` of a template status update.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct OtherInfo<'a> {
    /// `FIRST_PAUSE`, `SECOND_PAUSE`, `RATE_LIMITING_PAUSE`, `UNPAUSE`, `DISABLED`.
    pub title: Option<Str<'a>>,
    pub description: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Metadata<'a> {
    pub display_phone_number: Option<Str<'a>>,
    pub phone_number_id: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Contact<'a> {
    pub wa_id: Option<Str<'a>>,
    pub user_id: Option<Str<'a>>,
    pub profile: Option<Profile<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Profile<'a> {
    pub name: Option<Str<'a>>,
}

/// The fields every message has; read apart from the body item by item, so that a message with
/// a malformed body still has an id and a sender to log (and to be passed on as `unsupported`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct MessageHead<'a> {
    pub id: Option<Str<'a>>,
    pub from: Option<Str<'a>>,
    pub from_user_id: Option<Str<'a>>,
    pub timestamp: Option<Str<'a>>,
    #[serde(rename = "type")]
    pub kind: Option<Str<'a>>,
}

/// The kind-specific parts of a message. What only some kinds carry is boxed, so that the
/// struct stays small for the common text message.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct MessageBody<'a> {
    pub context: Option<Box<Context<'a>>>,
    pub text: Option<TextBody<'a>>,
    pub interactive: Option<Box<Interactive<'a>>>,
    pub button: Option<Box<TemplateButton<'a>>>,
    pub image: Option<Box<Media<'a>>>,
    pub document: Option<Box<Media<'a>>>,
    pub audio: Option<Box<Media<'a>>>,
    pub video: Option<Box<Media<'a>>>,
    pub sticker: Option<Box<Media<'a>>>,
    pub location: Option<Box<Location<'a>>>,
    #[serde(deserialize_with = "null_default")]
    pub contacts: Vec<ContactCard<'a>>,
    pub reaction: Option<Box<Reaction<'a>>>,
    pub order: Option<Box<Order<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Context<'a> {
    pub id: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct TextBody<'a> {
    pub body: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Interactive<'a> {
    #[serde(rename = "type")]
    pub kind: Option<Str<'a>>,
    pub button_reply: Option<Choice<'a>>,
    pub list_reply: Option<Choice<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Choice<'a> {
    pub id: Option<Str<'a>>,
    pub title: Option<Str<'a>>,
    pub description: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct TemplateButton<'a> {
    pub payload: Option<Str<'a>>,
    pub text: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Media<'a> {
    pub id: Option<Str<'a>>,
    pub mime_type: Option<Str<'a>>,
    pub caption: Option<Str<'a>>,
    pub filename: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Location<'a> {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub name: Option<Str<'a>>,
    pub address: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct ContactCard<'a> {
    pub name: Option<ContactName<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct ContactName<'a> {
    pub formatted_name: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Reaction<'a> {
    pub message_id: Option<Str<'a>>,
    pub emoji: Option<Str<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Order<'a> {
    pub catalog_id: Option<Str<'a>>,
    pub text: Option<Str<'a>>,
    #[serde(deserialize_with = "null_default")]
    pub product_items: Vec<IgnoredAny>,
}

/// A delivery status for a message we sent.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Status<'a> {
    pub id: Option<Str<'a>>,
    pub status: Option<Str<'a>>,
    pub recipient_id: Option<Str<'a>>,
    pub recipient_user_id: Option<Str<'a>>,
    #[serde(deserialize_with = "null_default")]
    pub errors: Vec<ErrorItem<'a>>,
}

/// An error object, in `statuses[].errors` or `value.errors`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct ErrorItem<'a> {
    pub code: Option<Str<'a>>,
    pub title: Option<Str<'a>>,
    pub message: Option<Str<'a>>,
    pub error_data: Option<ErrorData<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct ErrorData<'a> {
    pub details: Option<Str<'a>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_entry_refused(body: &str) -> bool {
        let envelope: Envelope<'_> = serde_json::from_str(body).expect("an envelope");
        matches!(envelope.entry.first(), Some(Item::Refused(_)))
    }

    #[test]
    fn items_are_refused_only_item_by_item_and_the_whole_reading_comes_back_after_a_panic() {
        let body = r#"{"entry": [1, {"id": "A"}]}"#;
        assert!(serde_json::from_str::<Envelope<'_>>(body).is_err());
        assert!(item_by_item(|| first_entry_refused(body)));
        let panicked = std::panic::catch_unwind(|| item_by_item(|| panic!("in the middle")));
        assert!(panicked.is_err());
        assert!(serde_json::from_str::<Envelope<'_>>(body).is_err());
    }
}

//! Meta's webhook JSON, as serde types that tolerate what Meta (or an attacker) may send:
//! unknown fields are ignored, `null` means absent, numbers are accepted where ids are strings,
//! and each entry, change and message is kept raw so one bad item never fails the others.
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples>

use crate::domain::null_default;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// A string field that also accepts a number or a bool (rendered as text).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Str::deserialize(deserializer).map(|text| Text(text.0.into_owned()))
    }
}

/// [`Text`] borrowed from the body when it has no escapes: the same string-or-number rule,
/// for the single-pass reading (`parse::fast`).
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

/// Optional text, empty strings treated as absent.
pub fn text(value: &Option<Text>) -> Option<String> {
    value
        .as_ref()
        .map(|t| t.0.clone())
        .filter(|t| !t.is_empty())
}

#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    #[serde(default)]
    pub object: Option<Text>,
    #[serde(borrow, default, deserialize_with = "null_default")]
    pub entry: Vec<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct Entry<'a> {
    /// The WhatsApp Business Account id.
    #[serde(default)]
    pub id: Option<Text>,
    #[serde(borrow, default, deserialize_with = "null_default")]
    pub changes: Vec<&'a RawValue>,
}

#[derive(Debug, Deserialize)]
pub struct Change<'a> {
    #[serde(default)]
    pub field: Option<Text>,
    #[serde(borrow, default)]
    pub value: Option<&'a RawValue>,
}

/// The `value` of a `messages` change.
#[derive(Debug, Deserialize)]
pub struct MessagesValue<'a> {
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(borrow, default, deserialize_with = "null_default")]
    pub contacts: Vec<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "null_default")]
    pub messages: Vec<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "null_default")]
    pub statuses: Vec<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "null_default")]
    pub errors: Vec<&'a RawValue>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub display_phone_number: Option<Text>,
    #[serde(default)]
    pub phone_number_id: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Contact {
    #[serde(default)]
    pub wa_id: Option<Text>,
    #[serde(default)]
    pub user_id: Option<Text>,
    #[serde(default)]
    pub profile: Option<Profile>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: Option<Text>,
}

/// The fields every message has; parsed first so a message with a malformed body still has an
/// id and a sender to log (and to be passed on as `unsupported`).
#[derive(Debug, Default, Deserialize)]
pub struct MessageHead {
    #[serde(default)]
    pub id: Option<Text>,
    #[serde(default)]
    pub from: Option<Text>,
    #[serde(default)]
    pub from_user_id: Option<Text>,
    #[serde(default)]
    pub timestamp: Option<Text>,
    #[serde(default, rename = "type")]
    pub kind: Option<Text>,
}

/// The kind-specific parts of a message.
#[derive(Debug, Default, Deserialize)]
pub struct MessageBody {
    #[serde(default)]
    pub context: Option<Context>,
    #[serde(default)]
    pub text: Option<TextBody>,
    #[serde(default)]
    pub interactive: Option<Interactive>,
    #[serde(default)]
    pub button: Option<TemplateButton>,
    #[serde(default)]
    pub image: Option<Media>,
    #[serde(default)]
    pub document: Option<Media>,
    #[serde(default)]
    pub audio: Option<Media>,
    #[serde(default)]
    pub video: Option<Media>,
    #[serde(default)]
    pub sticker: Option<Media>,
    #[serde(default)]
    pub location: Option<Location>,
    #[serde(default, deserialize_with = "null_default")]
    pub contacts: Vec<ContactCard>,
    #[serde(default)]
    pub reaction: Option<Reaction>,
    #[serde(default)]
    pub order: Option<Order>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Context {
    #[serde(default)]
    pub id: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TextBody {
    #[serde(default)]
    pub body: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Interactive {
    #[serde(default, rename = "type")]
    pub kind: Option<Text>,
    #[serde(default)]
    pub button_reply: Option<Choice>,
    #[serde(default)]
    pub list_reply: Option<Choice>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub id: Option<Text>,
    #[serde(default)]
    pub title: Option<Text>,
    #[serde(default)]
    pub description: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TemplateButton {
    #[serde(default)]
    pub payload: Option<Text>,
    #[serde(default)]
    pub text: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Media {
    #[serde(default)]
    pub id: Option<Text>,
    #[serde(default)]
    pub mime_type: Option<Text>,
    #[serde(default)]
    pub caption: Option<Text>,
    #[serde(default)]
    pub filename: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Location {
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
    #[serde(default)]
    pub name: Option<Text>,
    #[serde(default)]
    pub address: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ContactCard {
    #[serde(default)]
    pub name: Option<ContactName>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ContactName {
    #[serde(default)]
    pub formatted_name: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Reaction {
    #[serde(default)]
    pub message_id: Option<Text>,
    #[serde(default)]
    pub emoji: Option<Text>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Order {
    #[serde(default)]
    pub catalog_id: Option<Text>,
    #[serde(default)]
    pub text: Option<Text>,
    #[serde(default, deserialize_with = "null_default")]
    pub product_items: Vec<de::IgnoredAny>,
}

/// A delivery status for a message we sent.
#[derive(Debug, Default, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub id: Option<Text>,
    #[serde(default)]
    pub status: Option<Text>,
    #[serde(default)]
    pub recipient_id: Option<Text>,
    #[serde(default)]
    pub recipient_user_id: Option<Text>,
    #[serde(default, deserialize_with = "null_default")]
    pub errors: Vec<ErrorItem>,
}

/// An error object, in `statuses[].errors` or `value.errors`.
#[derive(Debug, Default, Deserialize)]
pub struct ErrorItem {
    #[serde(default)]
    pub code: Option<Text>,
    #[serde(default)]
    pub title: Option<Text>,
    #[serde(default)]
    pub message: Option<Text>,
    #[serde(default)]
    pub error_data: Option<ErrorData>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ErrorData {
    #[serde(default)]
    pub details: Option<Text>,
}

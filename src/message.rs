//! Inbound WhatsApp messages as the rest of the crate sees them: parsed once from the webhook,
//! owned, and serializable so a queue job can carry them unchanged. Also how a message id
//! appears in logs: as a keyed hash, never as sent ([`LogId`]).

use crate::secrets::Secret;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::fmt;
use std::sync::{LazyLock, OnceLock};

macro_rules! newtype_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The id as sent: for the wire and storage (Graph API, agent contract, queue and
            /// idempotency keys), never for logs.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

newtype_id!(
    /// A WhatsApp message id (`wamid.…`): the unit of idempotency. `Display` and `Debug` show
    /// its [`LogId`] (a keyed hash), since a wamid encodes the sender's phone number; the id
    /// itself is [`MessageId::as_str`].
    MessageId
);
newtype_id!(
    /// The business phone number id messages are received on and sent from.
    PhoneNumberId
);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        LogId(&self.0).fmt(f)
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({})", LogId(&self.0))
    }
}

/// The business's own number id, not a person's: shown as sent.
impl fmt::Display for PhoneNumberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PhoneNumberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PhoneNumberId").field(&self.0).finish()
    }
}

type HmacSha256 = Hmac<Sha256>;

/// What the log key is derived with from the app secret: `HMAC-SHA256(app_secret, label)`.
pub const LOG_KEY_LABEL: &str = "whatsapp-agent-lambda log id v1";
/// Hex digits of the HMAC kept in a log id: 48 bits, plenty to tell a day's messages apart.
pub const LOG_ID_HEX_CHARS: usize = 12;
/// What a hashed message id starts with in logs, so it still reads as a message id.
pub const LOG_ID_PREFIX: &str = "wamid#";

/// The deployment's log key, set once at start-up ([`init_log_key`]).
static LOG_KEY: OnceLock<HmacSha256> = OnceLock::new();
/// The key before [`init_log_key`] (unit tests, tools): the one an empty app secret gives.
static FALLBACK_LOG_KEY: LazyLock<HmacSha256> = LazyLock::new(|| log_key(b""));

/// The HMAC keyed with `HMAC-SHA256(app_secret, LOG_KEY_LABEL)`.
fn log_key(app_secret: &[u8]) -> HmacSha256 {
    let mut derive = HmacSha256::new_from_slice(app_secret).expect("HMAC takes keys of any length");
    derive.update(LOG_KEY_LABEL.as_bytes());
    HmacSha256::new_from_slice(&derive.finalize().into_bytes())
        .expect("HMAC takes keys of any length")
}

/// Derives the log key from the app secret, once per process (the first call wins; later
/// ones return `false`). The webhook and the worker both call it at cold start with the same
/// secret, so one message hashes the same in both.
pub fn init_log_key(app_secret: &Secret) -> bool {
    LOG_KEY.set(log_key(app_secret.expose().as_bytes())).is_ok()
}

/// A message id (or another identifier that could encode a phone number) as logs show it:
/// `wamid#` and [`LOG_ID_HEX_CHARS`] hex digits of `HMAC-SHA256(log key, id)`, a `name:` prefix
/// of a derived key (`deliver:`) kept. Not the id shortened: the first characters of a wamid
/// already encode most of the number. Keyed, so that no one without the app secret can check
/// a guessed id against the logs. An empty id shows as `-`.
#[derive(Clone, Copy)]
pub struct LogId<'a>(pub &'a str);

/// [`LogId`] of `id`, for log fields: `message_id = %log_id(id)`.
pub fn log_id(id: &str) -> LogId<'_> {
    LogId(id)
}

impl fmt::Display for LogId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        let (label, id) = match self.0.split_once(':') {
            Some((label, id))
                if !label.is_empty() && label.bytes().all(|b| b.is_ascii_lowercase()) =>
            {
                (&self.0[..=label.len()], id)
            }
            _ => ("", self.0),
        };
        write!(f, "{label}{LOG_ID_PREFIX}{}", KeyedDigest(id.as_bytes()))
    }
}

/// [`LOG_ID_HEX_CHARS`] hex digits of the keyed HMAC of some bytes, without a prefix (the log
/// scrubber hashes encoded runs that are not message ids with it).
#[derive(Clone, Copy)]
pub struct KeyedDigest<'a>(pub &'a [u8]);

impl fmt::Display for KeyedDigest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut mac = LOG_KEY.get().unwrap_or(&FALLBACK_LOG_KEY).clone();
        mac.update(self.0);
        let digest = mac.finalize().into_bytes();
        for byte in &digest[..LOG_ID_HEX_CHARS / 2] {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// The log id of `id` in a deployment whose app secret is `app_secret`, whatever key this
/// process holds: how an operator finds the log lines of a wamid they have (see README.md,
/// Security).
pub fn log_id_for(app_secret: &str, id: &str) -> String {
    let mut mac = log_key(app_secret.as_bytes());
    mac.update(id.as_bytes());
    let digest = mac.finalize().into_bytes();
    format!(
        "{LOG_ID_PREFIX}{}",
        hex::encode(&digest[..LOG_ID_HEX_CHARS / 2])
    )
}

/// Who sent a message: a phone number, a business-scoped user id (BSUID), or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Sender {
    /// Digits only, as Meta sends `from` / `wa_id` (no `+`).
    pub phone: Option<String>,
    /// Business-scoped user id, e.g. `US.13491208655302741918`.
    pub bsuid: Option<String>,
    /// The profile name from the webhook's `contacts`.
    pub display_name: Option<String>,
}

impl Sender {
    /// The stable id for this sender: the phone number when known, else the BSUID.
    pub fn id(&self) -> &str {
        self.phone
            .as_deref()
            .or(self.bsuid.as_deref())
            .unwrap_or_default()
    }

    /// A log-safe form of the sender id (see [`crate::sender::mask`]), for log fields.
    pub fn masked(&self) -> crate::sender::Masked<'_> {
        crate::sender::Masked(self.id())
    }
}

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

    /// A real-looking wamid: base64 of bytes holding the sender's number, 14155551234.
    const WAMID: &str = "wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQzQTdBNUQ0RjFFQkE3QkFBQkFBAA==";

    #[test]
    fn message_ids_display_as_a_keyed_hash_not_as_sent() {
        let id = MessageId::from(WAMID);
        for shown in [
            id.to_string(),
            format!("{id:?}"),
            format!("{:?}", Some(&id)),
        ] {
            assert!(!shown.contains("wamid."), "{shown}");
            assert!(!shown.contains("HBgL"), "{shown}");
            assert!(!shown.contains("MTQx"), "{shown}");
        }
        let shown = id.to_string();
        let hex = shown.strip_prefix(LOG_ID_PREFIX).expect("prefixed");
        assert_eq!(hex.len(), LOG_ID_HEX_CHARS);
        assert!(
            hex.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        // The wire keeps the id as sent.
        assert_eq!(id.as_str(), WAMID);
        assert_eq!(serde_json::to_value(&id).unwrap(), WAMID);
    }

    #[test]
    fn log_ids_are_stable_distinct_and_keyed_by_the_app_secret() {
        let one = log_id_for("secret-a", WAMID);
        assert_eq!(one, log_id_for("secret-a", WAMID));
        assert_ne!(one, log_id_for("secret-b", WAMID));
        assert_ne!(one, log_id_for("secret-a", &format!("{WAMID}x")));
        // Before `init_log_key` (as in these tests) the key is an empty secret's.
        assert_eq!(log_id(WAMID).to_string(), log_id_for("", WAMID));
        assert_eq!(MessageId::from(WAMID).to_string(), log_id_for("", WAMID));
        assert_eq!(log_id("").to_string(), "-");
    }

    #[test]
    fn operators_can_compute_a_log_id_with_openssl() {
        // The README's recipe, run with this secret and id:
        //   key=$(printf %s 'whatsapp-agent-lambda log id v1' \
        //     | openssl dgst -sha256 -hmac "$APP_SECRET" -r | cut -c1-64)
        //   printf %s "$WAMID" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$key" -r | cut -c1-12
        assert_eq!(
            log_id_for(
                "appsecret-Qz7Vx2Lk9Wm4",
                "wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQzQUI1RjE0QTgwRjk2RkE1NjlDNgA="
            ),
            "wamid#e3511b9eeb00"
        );
    }

    #[test]
    fn derived_keys_keep_their_label_and_hash_the_id() {
        let shown = log_id(&format!("deliver:{WAMID}")).to_string();
        assert_eq!(shown, format!("deliver:{}", log_id(WAMID)));
        assert!(!shown.contains("HBgL"));
        // Anything else before a colon is part of what is hashed.
        assert!(!log_id("Wamid:HBgLMTQx").to_string().contains("HBgL"));
    }

    #[test]
    fn sender_id_prefers_phone_over_bsuid() {
        let both = Sender {
            phone: Some("14155551234".into()),
            bsuid: Some("US.1".into()),
            display_name: None,
        };
        let bsuid_only = Sender {
            bsuid: Some("US.1".into()),
            ..Sender::default()
        };
        assert_eq!(both.id(), "14155551234");
        assert_eq!(bsuid_only.id(), "US.1");
    }
}

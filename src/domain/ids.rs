//! Identifiers: message ids, business phone number ids, and how a message id appears in logs
//! (as a keyed hash, never as sent: [`LogId`]).

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
pub fn init_log_key(app_secret: &str) -> bool {
    LOG_KEY.set(log_key(app_secret.as_bytes())).is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

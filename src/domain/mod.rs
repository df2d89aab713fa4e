//! The domain: what every other module speaks. Identifiers, senders and the allowlist, inbound
//! messages and their kinds, outgoing messages and their recipients. It depends on nothing
//! else in the crate (no port, no wire format), so any module may use it.

pub mod ids;
pub mod inbound;
pub mod outgoing;
pub mod sender;

pub use ids::{
    KeyedDigest, LOG_ID_HEX_CHARS, LOG_ID_PREFIX, LOG_KEY_LABEL, LogId, MessageId, PhoneNumberId,
    init_log_key, log_id, log_id_for,
};
pub use inbound::{Channel, InboundMessage, MediaType, MessageKind};
pub use outgoing::{
    ListRowOut, ListSectionOut, OutgoingMessage, Recipient, ReplyButton, TemplateRef,
    TemplateRefError,
};
pub use sender::{Allowlist, AllowlistError, Masked, Sender, is_bsuid, mask, normalize_phone};

use serde::{Deserialize, Deserializer};

/// Deserializes `null` (or a missing field, with `#[serde(default)]`) as `T::default()`: the
/// lenient reading of wire formats (Meta's webhook, agent replies) where `null` stands for an
/// absent list or object.
pub fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Default, Debug)]
    struct Holder {
        #[serde(default, deserialize_with = "null_default")]
        items: Vec<u8>,
    }

    #[test]
    fn null_and_missing_become_default() {
        let null: Holder = serde_json::from_str(r#"{"items":null}"#).unwrap();
        let missing: Holder = serde_json::from_str("{}").unwrap();
        let present: Holder = serde_json::from_str(r#"{"items":[1,2]}"#).unwrap();
        assert!(null.items.is_empty());
        assert!(missing.items.is_empty());
        assert_eq!(present.items, vec![1, 2]);
    }
}

//! Sender identity: the `ALLOWED_SENDERS` allowlist, phone-number normalisation and log-safe
//! masking of phone numbers and business-scoped user ids (BSUIDs).

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// E.164 numbers have at most 15 digits; anything shorter than 7 is not a phone number.
const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 7..=15;
/// Characters of an id left visible at the end when masking.
const MASK_VISIBLE_TAIL: usize = 4;

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

    /// A log-safe form of the sender id (see [`mask`]), for log fields.
    pub fn masked(&self) -> Masked<'_> {
        Masked(self.id())
    }
}

/// Who may reach the agent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allowlist {
    everyone: bool,
    phones: HashSet<String>,
    bsuids: HashSet<String>,
}

/// Why `ALLOWED_SENDERS` could not be read. Entries are quoted masked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllowlistError {
    #[error("ALLOWED_SENDERS is empty: list phone numbers or BSUIDs, or `*` to allow everyone")]
    Empty,
    #[error(
        "ALLOWED_SENDERS entry {0} is neither a phone number (7-15 digits) nor a BSUID (CC.id)"
    )]
    Invalid(String),
}

impl Allowlist {
    /// Parses a comma list of phone numbers (any E.164 spelling) and BSUIDs; `*` allows everyone.
    pub fn parse(spec: &str) -> Result<Self, AllowlistError> {
        let mut list = Self::default();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                list.everyone = true;
            } else if is_bsuid(entry) {
                list.bsuids.insert(entry.to_owned());
            } else if let Some(phone) = normalize_phone(entry) {
                list.phones.insert(phone);
            } else {
                return Err(AllowlistError::Invalid(mask(entry)));
            }
        }
        if !list.everyone && list.phones.is_empty() && list.bsuids.is_empty() {
            return Err(AllowlistError::Empty);
        }
        Ok(list)
    }

    /// Whether this sender may reach the agent: by phone number or by BSUID.
    pub fn allows(&self, sender: &Sender) -> bool {
        if self.everyone {
            return true;
        }
        let mut digits = PhoneDigits::new();
        let by_phone = sender
            .phone
            .as_deref()
            .and_then(|phone| digits.normalize(phone))
            .is_some_and(|phone| self.phones.contains(phone));
        let by_bsuid = sender
            .bsuid
            .as_deref()
            .is_some_and(|bsuid| self.bsuids.contains(bsuid));
        by_phone || by_bsuid
    }

    /// True when `*` was listed.
    pub fn allows_everyone(&self) -> bool {
        self.everyone
    }

    /// How many explicit entries the list has (for the startup log).
    pub fn len(&self) -> usize {
        self.phones.len() + self.bsuids.len()
    }

    pub fn is_empty(&self) -> bool {
        !self.everyone && self.len() == 0
    }
}

/// A BSUID is a two-letter country code, a dot, then an id: `US.13491208…`, `US.ENT.1181…`.
pub fn is_bsuid(id: &str) -> bool {
    let bytes = id.as_bytes();
    bytes.len() > 3
        && bytes[0].is_ascii_uppercase()
        && bytes[1].is_ascii_uppercase()
        && bytes[2] == b'.'
        && id[3..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.')
}

/// Normalises any E.164 spelling to digits only: "+1 (415) 555-1234", "001 415 555 1234" and
/// "14155551234" all become "14155551234". `None` when it cannot be a phone number.
pub fn normalize_phone(raw: &str) -> Option<String> {
    PhoneDigits::new().normalize(raw).map(str::to_owned)
}

/// Room for the digits of a phone number: the longest, plus a "00" prefix.
const PHONE_BUFFER: usize = *PHONE_DIGITS.end() + 2;

/// [`normalize_phone`] into a buffer on the stack, so the allowlist check allocates nothing.
struct PhoneDigits {
    digits: [u8; PHONE_BUFFER],
}

impl PhoneDigits {
    fn new() -> Self {
        Self {
            digits: [0; PHONE_BUFFER],
        }
    }

    fn normalize(&mut self, raw: &str) -> Option<&str> {
        let trimmed = raw.trim();
        let allowed = |c: char| c.is_ascii_digit() || " +-().".contains(c);
        if trimmed.is_empty() || !trimmed.chars().all(allowed) {
            return None;
        }
        let mut len = 0;
        for digit in trimmed.bytes().filter(u8::is_ascii_digit) {
            // More digits than a number with a "00" prefix can have: not a phone number.
            let slot = self.digits.get_mut(len)?;
            *slot = digit;
            len += 1;
        }
        let digits = &self.digits[..len];
        // "00" is the international call prefix in most of the world: same as "+".
        let digits = match digits.strip_prefix(b"00") {
            Some(rest) if !trimmed.starts_with('+') => rest,
            _ => digits,
        };
        if !PHONE_DIGITS.contains(&digits.len()) {
            return None;
        }
        std::str::from_utf8(digits).ok()
    }
}

/// Masks a phone number or BSUID for logs, keeping only what helps correlate: a BSUID's
/// country prefix and the last 4 characters. "14155551234" → "*******1234",
/// "US.13491208655302741918" → "US.****************1918".
pub fn mask(id: &str) -> String {
    use std::fmt::Write;
    let mut masked = String::with_capacity(id.len());
    // Writing to a String cannot fail.
    let _ = write!(masked, "{}", Masked(id));
    masked
}

/// [`mask`] as a `Display`, for log fields: the same text, written without building a string.
#[derive(Debug, Clone, Copy)]
pub struct Masked<'a>(pub &'a str);

impl std::fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = self.0;
        let (prefix, rest) = if is_bsuid(id) {
            id.split_at(3)
        } else {
            ("", id)
        };
        let count = rest.chars().count();
        let visible = if count > MASK_VISIBLE_TAIL * 2 {
            MASK_VISIBLE_TAIL
        } else {
            0
        };
        // Every character but the visible tail becomes one `*`.
        const STARS: &str = "****************";
        let mut hidden = count - visible;
        let tail = rest
            .char_indices()
            .nth(hidden)
            .map_or("", |(start, _)| &rest[start..]);
        f.write_str(prefix)?;
        while hidden > 0 {
            let run = hidden.min(STARS.len());
            f.write_str(&STARS[..run])?;
            hidden -= run;
        }
        f.write_str(tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn phone(p: &str) -> Sender {
        Sender {
            phone: Some(p.into()),
            ..Sender::default()
        }
    }

    #[test]
    fn any_e164_spelling_matches_the_bare_digits() {
        let list = Allowlist::parse("+1 (415) 555-1234").unwrap();
        assert!(list.allows(&phone("14155551234")));
        let list = Allowlist::parse("0044 20 7946 0958, 14155551234").unwrap();
        assert!(list.allows(&phone("442079460958")));
        assert!(list.allows(&phone("14155551234")));
        assert!(!list.allows(&phone("14155551235")));
    }

    #[test]
    fn bsuid_senders_match_by_bsuid() {
        let list = Allowlist::parse("US.13491208655302741918").unwrap();
        let sender = Sender {
            bsuid: Some("US.13491208655302741918".into()),
            ..Sender::default()
        };
        assert!(list.allows(&sender));
        assert!(!list.allows(&phone("13491208655")));
    }

    #[test]
    fn star_allows_everyone() {
        let list = Allowlist::parse(" * ").unwrap();
        assert!(list.allows(&phone("1")));
        assert!(list.allows(&Sender::default()));
    }

    #[test]
    fn empty_or_invalid_lists_are_refused() {
        assert_eq!(Allowlist::parse(" , "), Err(AllowlistError::Empty));
        assert!(matches!(
            Allowlist::parse("14155551234, bob@example.com"),
            Err(AllowlistError::Invalid(_))
        ));
        assert!(matches!(
            Allowlist::parse("123"),
            Err(AllowlistError::Invalid(_))
        ));
    }

    #[test]
    fn unlisted_and_idless_senders_are_refused() {
        let list = Allowlist::parse("14155551234").unwrap();
        assert!(!list.allows(&Sender::default()));
        assert!(!list.allows(&phone("not a number")));
    }

    #[test]
    fn masks_keep_only_the_last_four() {
        assert_eq!(mask("14155551234"), "*******1234");
        assert_eq!(mask("US.13491208655302741918"), "US.****************1918");
        assert_eq!(mask("12345"), "*****");
        assert!(!mask("14155551234").contains("415555"));
    }

    #[test]
    fn masked_displays_what_mask_returns() {
        for id in [
            "14155551234",
            "US.13491208655302741918",
            "12345",
            "",
            "123456789",
            "éé12345678901234567890",
            "US.ENT.11815799212886844830",
        ] {
            assert_eq!(Masked(id).to_string(), mask(id), "{id}");
        }
        assert_eq!(mask(&"9".repeat(40)), format!("{}9999", "*".repeat(36)));
    }

    #[test]
    fn phone_numbers_have_7_to_15_digits_after_a_00_prefix() {
        assert_eq!(normalize_phone("1234567").as_deref(), Some("1234567"));
        assert_eq!(normalize_phone("123456"), None);
        assert_eq!(
            normalize_phone("00 123456789012345").as_deref(),
            Some("123456789012345")
        );
        assert_eq!(normalize_phone("+00123456789012345"), None);
        assert_eq!(normalize_phone("001234567890123456"), None);
        assert_eq!(normalize_phone(&"1".repeat(40)), None);
        let list = Allowlist::parse("00 1 415 555 1234").unwrap();
        assert!(list.allows(&phone("+1 (415) 555-1234")));
        assert!(!list.allows(&phone("0014155551234 1")));
    }
}

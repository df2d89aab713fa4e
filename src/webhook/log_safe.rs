//! What the webhook may log of input it did not choose: names that look like Meta's own
//! identifiers, serde errors without the values they quote, and foreign free text with phone
//! numbers and BSUIDs masked. A signed body is Meta's, but its strings are the users' words and
//! numbers; an unsigned one is anybody's.

use crate::sender::{is_bsuid, mask};

/// Longest name (`object`, `field`, `hub.mode`) logged as sent.
const MAX_NAME_CHARS: usize = 64;
/// Longest foreign text (Meta's error titles and details) logged, in characters.
const MAX_TEXT_CHARS: usize = 300;
/// Digit runs this long or longer may be phone numbers (E.164 numbers have 7 to 15 digits).
const MIN_PHONE_DIGITS: usize = 7;
/// Placeholder for a quoted value serde put into an error message.
const REDACTED: &str = "…";

/// A name such as `whatsapp_business_account` or `account_update` as sent; anything else
/// (free text, numbers, a token pasted in the wrong place) as `(unexpected value)`.
pub fn name(value: &str) -> String {
    let looks_like_a_name = !value.is_empty()
        && value.chars().count() <= MAX_NAME_CHARS
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && value.bytes().filter(u8::is_ascii_digit).count() < MIN_PHONE_DIGITS;
    if looks_like_a_name {
        value.to_owned()
    } else {
        "(unexpected value)".to_owned()
    }
}

/// A numeric code such as Meta's `131047` as sent; longer digit runs (which could be a phone
/// number) and anything else are scrubbed.
pub fn code(value: &str) -> String {
    if !value.is_empty()
        && value.len() < MIN_PHONE_DIGITS
        && value.bytes().all(|b| b.is_ascii_digit())
    {
        value.to_owned()
    } else {
        scrub(value)
    }
}

/// A serde_json error without the values it quotes: `invalid type: string "pods crashing in
/// prod", expected struct TextBody` becomes `invalid type: string "…", expected struct
/// TextBody`. Serde quotes strings with `"…"` (Debug-escaped) and numbers with backticks.
pub fn serde_error(error: &serde_json::Error) -> String {
    scrub(&redact_quoted(&error.to_string()))
}

/// Foreign free text, shortened, with phone-number-like digit runs and BSUIDs masked.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_TEXT_CHARS * 4));
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        if token.is_empty() {
            return;
        }
        if is_bsuid(token) || longest_digit_run(token) >= MIN_PHONE_DIGITS {
            out.push_str(&mask(token));
        } else {
            out.push_str(token);
        }
        token.clear();
    };
    for c in text.chars().take(MAX_TEXT_CHARS) {
        // Tokens are what a phone number or a BSUID is made of: letters, digits and dots.
        if c.is_ascii_alphanumeric() || c == '.' {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(if c.is_control() { ' ' } else { c });
        }
    }
    flush(&mut token, &mut out);
    if text.chars().nth(MAX_TEXT_CHARS).is_some() {
        out.push('…');
    }
    out
}

fn longest_digit_run(token: &str) -> usize {
    token
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

/// Replaces every `"…"` (with `\"` escapes inside) and `` `…` `` segment by a placeholder.
fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let mut escaped = false;
                for inner in chars.by_ref() {
                    match inner {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => break,
                        _ => escaped = false,
                    }
                }
                out.push('"');
                out.push_str(REDACTED);
                out.push('"');
            }
            '`' => {
                for inner in chars.by_ref() {
                    if inner == '`' {
                        break;
                    }
                }
                out.push('`');
                out.push_str(REDACTED);
                out.push('`');
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_pass_and_anything_else_is_replaced() {
        assert_eq!(
            name("whatsapp_business_account"),
            "whatsapp_business_account"
        );
        assert_eq!(name("account_update"), "account_update");
        assert_eq!(name("14155551234"), "(unexpected value)");
        assert_eq!(name("pods crashing in prod"), "(unexpected value)");
        assert_eq!(name(""), "(unexpected value)");
        assert_eq!(name(&"a".repeat(65)), "(unexpected value)");
    }

    #[test]
    fn codes_pass_unless_they_could_be_numbers_of_people() {
        assert_eq!(code("131047"), "131047");
        assert_eq!(code("14155551234"), "*******1234");
        assert_eq!(code("pods crashing"), "pods crashing");
    }

    #[test]
    fn serde_errors_lose_the_values_they_quote() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Body {
            text: Option<std::collections::HashMap<String, String>>,
        }
        let error =
            serde_json::from_str::<Body>(r#"{"text": "pods \"crashing\" in prod"}"#).unwrap_err();
        let safe = serde_error(&error);
        assert!(!safe.contains("pods"), "{safe}");
        assert!(
            safe.starts_with("invalid type: string \"…\", expected a map"),
            "{safe}"
        );
        assert!(safe.contains("line 1 column"), "{safe}");

        let error = serde_json::from_str::<Body>(r#"{"text": 14155551234}"#).unwrap_err();
        let safe = serde_error(&error);
        assert!(!safe.contains("14155551234"), "{safe}");
        assert!(safe.contains("integer `…`"), "{safe}");
    }

    #[test]
    fn scrub_masks_phone_numbers_and_bsuids_in_free_text() {
        assert_eq!(
            scrub("Recipient 14155551234 (US.13491208655302741918) failed"),
            "Recipient *******1234 (US.****************1918) failed"
        );
        assert_eq!(scrub("error 131047 after 24h"), "error 131047 after 24h");
        assert_eq!(scrub("call +44 7700900123"), "call +44 ******0123");
        let long = "x".repeat(MAX_TEXT_CHARS + 10);
        assert_eq!(scrub(&long).chars().count(), MAX_TEXT_CHARS + 1);
        assert_eq!(scrub("a\nb"), "a b");
    }
}

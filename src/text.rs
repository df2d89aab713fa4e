//! Log-safe excerpts of what other services answered, for error messages: the start of the
//! body through the one scrubber of foreign text ([`crate::webhook::log_safe::scrub_within`]),
//! so an agent's or Meta's error body can neither forge a log line nor carry a phone number
//! or a message id into it.

use crate::webhook::log_safe::scrub_within;

/// Characters of a foreign body kept in an error.
pub const EXCERPT_CHARS: usize = 200;

/// The start of `text`: trimmed, scrubbed (control characters escaped, phone numbers masked,
/// message ids hashed), at most `limit` characters (never cut inside a character), `…` when
/// shortened.
pub fn excerpt(text: &str, limit: usize) -> String {
    scrub_within(text.trim(), limit)
}

/// [`excerpt`] of a body as bytes (lossy UTF-8), [`EXCERPT_CHARS`] long at most.
pub fn excerpt_bytes(bytes: &[u8]) -> String {
    excerpt(&String::from_utf8_lossy(bytes), EXCERPT_CHARS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_is_char_safe_and_bounded() {
        let long = "é".repeat(EXCERPT_CHARS + 50);
        let cut = excerpt_bytes(long.as_bytes());
        assert_eq!(cut.chars().count(), EXCERPT_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(excerpt_bytes(&[0xff, b'a']), "\u{fffd}a");
        assert_eq!(excerpt("abc", 2), "ab…");
    }

    #[test]
    fn excerpt_escapes_controls_and_masks_numbers() {
        assert_eq!(excerpt_bytes(b"  short\nbody "), "short\\nbody");
        assert_eq!(
            excerpt_bytes(b"\x1b[31mcall +1 415 555 1234\x1b[0m"),
            "\\u{1b}[31mcall *******1234\\u{1b}[0m"
        );
    }
}

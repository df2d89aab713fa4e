//! Log-safe excerpts of what other services answered, for error messages.

/// Characters of a foreign body kept in an error.
pub const EXCERPT_CHARS: usize = 200;

/// The start of `text`: trimmed, control characters as spaces, at most `limit` characters
/// (never cut inside a character), `…` when shortened.
pub fn excerpt(text: &str, limit: usize) -> String {
    let text = text.trim();
    let mut out: String = text
        .chars()
        .take(limit)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(limit).is_some() {
        out.push('…');
    }
    out
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
        assert_eq!(excerpt_bytes(b"  short\nbody "), "short body");
        assert_eq!(excerpt_bytes(&[0xff, b'a']), "\u{fffd}a");
        assert_eq!(excerpt("abc", 2), "ab…");
    }
}

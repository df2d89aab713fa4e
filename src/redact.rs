//! What may be logged of input we did not choose: names that look like Meta's own
//! identifiers, serde errors without the values they quote, and foreign free text (Meta's error
//! messages and details, agent and Graph API error bodies) through one scrubber: control
//! characters escaped, phone numbers (any spelling), BSUIDs and message ids masked or hashed,
//! length capped. A signed body is Meta's, but its strings are the users' words and numbers;
//! an unsigned one is anybody's; an error body is whatever the other side chose to send.
//! Errors quote other services' answers only as an [`excerpt`] made here. How our own
//! identifiers are shown lives with them: `domain::mask` (senders), `domain::LogId` (message ids).

use crate::domain::{KeyedDigest, LogId, is_bsuid, mask};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use std::fmt::Write;

/// Longest name (`object`, `field`, `hub.mode`) logged as sent.
const MAX_NAME_CHARS: usize = 64;
/// Longest foreign text (Meta's error messages, titles and details) logged, in characters.
pub const MAX_TEXT_CHARS: usize = 300;
/// Digit runs this long or longer may be phone numbers (E.164 numbers have 7 to 15 digits).
const MIN_PHONE_DIGITS: usize = 7;
/// What may stand between two digits of one phone number: `+1 (415) 555-1234`, `415.555.1234`.
const PHONE_SEPARATORS: &[u8] = b" -.()";
/// At most this many separators in a row inside one number, and two only with a parenthesis
/// (`) ` in `(415) 555-1234`); more end it.
const MAX_SEPARATOR_RUN: usize = 2;
/// What a message id in foreign text starts with (an agent's 422 may echo the request).
const WAMID_MARKER: &str = "wamid.";
/// Base64 runs this long or longer are decoded and checked for a phone number inside: a wamid
/// without its `wamid.`, or any other id built the same way.
const MIN_ENCODED_CHARS: usize = 16;
/// What a base64 run that decodes to a phone number is replaced by, with its keyed hash.
const ENCODED_PREFIX: &str = "b64#";
/// Placeholder for a quoted value serde put into an error message.
const REDACTED: &str = "…";

/// Decodes what looks like base64 in either alphabet, padded or not, ignoring trailing bits:
/// the question is only whether the bytes hide a phone number.
const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
    .with_decode_allow_trailing_bits(true)
    .with_decode_padding_mode(DecodePaddingMode::Indifferent);
const BASE64_STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const BASE64_URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

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

/// Foreign free text made safe for a log line, at most [`MAX_TEXT_CHARS`] characters: see
/// [`scrub_within`].
pub fn scrub(text: &str) -> String {
    scrub_within(text, MAX_TEXT_CHARS)
}

/// Foreign free text made safe for a log line:
/// - control characters, Unicode line separators and bidirectional overrides escaped (`\n`,
///   `\u{1b}`): the text cannot start a forged line or recolour a terminal;
/// - phone numbers masked (last four digits kept) however they are written: a run of at least
///   7 digits, possibly split by single separators (space, `-`, `.`, a parenthesis, or a
///   parenthesis and a space such as `) `) and led by `+` or `(`. `+1 (415) 555-1234` and
///   `+44 7700 900123` become `*******1234` and `********0123`. An ISO date that starts a run
///   (`2026-11-24`, years 1900 to 2099) stays readable; times have colons and never join one;
/// - BSUIDs masked; message ids (`wamid.…`) replaced by their [`LogId`]; base64 runs that
///   decode to bytes with a phone number in them replaced by `b64#` and a keyed hash;
/// - at most `limit` characters, `…` appended when anything was left out. Every id is replaced
///   whole before the cut, so the cut never leaves part of one in clear.
pub fn scrub_within(text: &str, limit: usize) -> String {
    let mut out = String::with_capacity(text.len().min(limit) + 16);
    let mut written = 0;
    let mut at = 0;
    while at < text.len() && written < limit {
        let (consumed, piece) = next_piece(&text[at..], text[..at].chars().next_back());
        written += piece.chars().count();
        out.push_str(&piece);
        at += consumed;
    }
    let shortened = at < text.len() || written > limit;
    if let Some((cut, _)) = out.char_indices().nth(limit) {
        out.truncate(cut);
    }
    if shortened {
        out.push('…');
    }
    out
}

/// The log-safe form of what `rest` starts with, and how many bytes of it that took.
fn next_piece(rest: &str, previous: Option<char>) -> (usize, String) {
    let c = rest.chars().next().unwrap_or_default();
    if rest
        .get(..WAMID_MARKER.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(WAMID_MARKER))
    {
        let len = wamid_len(rest);
        return (len, LogId(&rest[..len]).to_string());
    }
    let word_start = previous.is_none_or(|p| !(p.is_ascii_alphanumeric() || p == '.'));
    if word_start && c.is_ascii_alphanumeric() {
        let len = rest
            .find(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '.'))
            .unwrap_or(rest.len());
        let word = rest[..len].trim_end_matches('.');
        if is_bsuid(word) {
            return (word.len(), mask(word));
        }
    }
    if previous.is_none_or(|p| !is_base64_char(p)) && is_base64_char(c) {
        let len = encoded_len(rest);
        if hides_a_phone_number(&rest[..len]) {
            return (
                len,
                format!("{ENCODED_PREFIX}{}", KeyedDigest(&rest.as_bytes()[..len])),
            );
        }
    }
    if c.is_ascii_digit() || c == '+' || c == '(' {
        if let Some(len) = iso_date_len(rest) {
            return (len, rest[..len].to_owned());
        }
        if let Some((len, digits)) = phone_number(rest) {
            let piece = if digits.len() >= MIN_PHONE_DIGITS {
                mask(&digits)
            } else {
                rest[..len].to_owned()
            };
            return (len, piece);
        }
    }
    let mut piece = String::new();
    push_escaped(&mut piece, c);
    (c.len_utf8(), piece)
}

/// Writes `c`, escaped when it could break or disguise a log line.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{2028}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}') =>
        {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
        c => out.push(c),
    }
}

/// Length of the message id at the start of `rest`: `wamid.`, then base64 (either alphabet)
/// and dots, then `=` padding; a final `.` or `-` is punctuation, not the id's.
fn wamid_len(rest: &str) -> usize {
    let body = rest[WAMID_MARKER.len()..]
        .find(|ch: char| !(is_base64_char(ch) || ch == '.'))
        .map_or(rest.len(), |end| WAMID_MARKER.len() + end);
    let padded = rest[body..]
        .find(|ch: char| ch != '=')
        .map_or(rest.len(), |end| body + end);
    let trimmed = rest[..padded].trim_end_matches(['.', '-']).len();
    trimmed.max(WAMID_MARKER.len())
}

/// Base64 of either alphabet, without padding.
fn is_base64_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_')
}

/// Length of the base64 run at the start of `rest`, `=` padding included.
fn encoded_len(rest: &str) -> usize {
    let body = rest.find(|ch| !is_base64_char(ch)).unwrap_or(rest.len());
    rest[body..]
        .find(|ch: char| ch != '=')
        .map_or(rest.len(), |end| body + end)
}

/// Whether `run` is long enough to be an encoded id and decodes (at any of the four
/// alignments, in either alphabet) to bytes that hold a phone-number-long digit run.
fn hides_a_phone_number(run: &str) -> bool {
    let run = run.trim_end_matches('=');
    if run.len() < MIN_ENCODED_CHARS || !run.bytes().any(|b| b.is_ascii_alphabetic()) {
        return false;
    }
    let engine = if run.contains(['-', '_']) {
        &BASE64_URL_SAFE
    } else {
        &BASE64_STANDARD
    };
    (0..4).any(|skip| {
        let aligned = &run[skip..];
        let aligned = &aligned[..aligned.len() - aligned.len() % 4];
        engine
            .decode(aligned)
            .is_ok_and(|bytes| longest_digit_run(&bytes) >= MIN_PHONE_DIGITS)
    })
}

fn longest_digit_run(bytes: &[u8]) -> usize {
    bytes
        .split(|b| !b.is_ascii_digit())
        .map(<[u8]>::len)
        .max()
        .unwrap_or(0)
}

/// Length of an ISO date (`2026-11-24`, years 1900 to 2099) at the start of `rest`, when one
/// is there and no digit follows it.
fn iso_date_len(rest: &str) -> Option<usize> {
    const LEN: usize = "2026-11-24".len();
    let b = rest.as_bytes().get(..LEN)?;
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = &b[range];
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| std::str::from_utf8(digits).ok()?.parse().ok())?
    };
    let shaped = b[4] == b'-' && b[7] == b'-';
    let year = number(0..4)?;
    let month = number(5..7)?;
    let day = number(8..10)?;
    let followed_by_digit = rest.as_bytes().get(LEN).is_some_and(u8::is_ascii_digit);
    (shaped
        && (1900..2100).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && !followed_by_digit)
        .then_some(LEN)
}

/// The phone-number-like run at the start of `rest` (an optional `+` and `(`, then digits
/// with at most [`MAX_SEPARATOR_RUN`] separators between two of them): its length in bytes
/// and its digits. What follows digits is joined even when it looks like a date: only a
/// date that starts a run is kept readable, so no number can hide behind a date-like tail.
fn phone_number(rest: &str) -> Option<(usize, String)> {
    let b = rest.as_bytes();
    let mut at = 0;
    if b.get(at) == Some(&b'+') {
        at += 1;
    }
    if b.get(at) == Some(&b'(') {
        at += 1;
    }
    if !b.get(at).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let mut digits = String::new();
    loop {
        while let Some(&digit) = b.get(at).filter(|d| d.is_ascii_digit()) {
            digits.push(char::from(digit));
            at += 1;
        }
        let mut next = at;
        while next < b.len() && next - at < MAX_SEPARATOR_RUN && PHONE_SEPARATORS.contains(&b[next])
        {
            next += 1;
        }
        // One separator, or two when one is a parenthesis (`) `, ` (`): two spaces or `--`
        // are a gap between two things, not inside a number.
        let separators = &b[at..next];
        let one_gap = separators.len() == 1
            || (separators.len() == 2 && separators.iter().any(|s| matches!(s, b'(' | b')')));
        let continues = one_gap && b.get(next).is_some_and(u8::is_ascii_digit);
        if !continues {
            return Some((at, digits));
        }
        at = next;
    }
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

/// Characters of a foreign body kept in an error ([`excerpt_bytes`]).
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
    use crate::domain::log_id;

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
        assert_eq!(scrub("call +44 7700900123"), "call ********0123");
        let long = "x".repeat(MAX_TEXT_CHARS + 10);
        assert_eq!(scrub(&long).chars().count(), MAX_TEXT_CHARS + 1);
    }

    #[test]
    fn scrub_masks_numbers_written_with_separators() {
        for (spelling, masked) in [
            ("+1 415 555 1234", "*******1234"),
            ("+44 7700 900123", "********0123"),
            ("(415) 555-1234", "******1234"),
            ("415.555.1234", "******1234"),
            ("415-555-1234", "******1234"),
            ("+1 (415) 555-1234", "*******1234"),
            ("+49-151-1234-5678", "*********5678"),
            ("+44 (0) 7700 900123", "*********0123"),
            ("1 4 1 5 5 5 5", "*******"),
        ] {
            let scrubbed = scrub(&format!(
                "Message undeliverable to {spelling}: not on WhatsApp"
            ));
            assert_eq!(
                scrubbed,
                format!("Message undeliverable to {masked}: not on WhatsApp"),
                "{spelling}"
            );
        }
        // Two spaces, or a separator and then no digit, end a number: short ones stay.
        assert_eq!(
            scrub("code 131000  4155 (try later)"),
            "code 131000  4155 (try later)"
        );
        assert_eq!(scrub("HTTP 400 - 12 retries"), "HTTP 400 - 12 retries");
    }

    #[test]
    fn scrub_keeps_iso_dates_and_times_readable() {
        assert_eq!(
            scrub("expired at 2026-11-24T10:00:00Z"),
            "expired at 2026-11-24T10:00:00Z"
        );
        assert_eq!(
            scrub("since 2026-11-24 09:40 for 14155551234"),
            "since 2026-11-24 09:40 for *******1234"
        );
        // A number is not hidden behind a date-like tail, nor a date-like number kept.
        assert_eq!(scrub("+1 415 2026-11-24"), "********1124");
        assert_eq!(scrub("4155-55-1234"), "******1234");
        assert_eq!(scrub("2026-13-24"), "********");
    }

    #[test]
    fn scrub_escapes_control_characters_so_no_line_can_be_forged() {
        let forged =
            "bad\nINFO webhook answered status=200\r\x1b[31mred\x1b[0m\ttab\u{2028}x\u{202e}y";
        let scrubbed = scrub(forged);
        assert_eq!(
            scrubbed,
            "bad\\nINFO webhook answered status=200\\r\\u{1b}[31mred\\u{1b}[0m\\ttab\\u{2028}x\\u{202e}y"
        );
        assert!(!scrubbed.chars().any(char::is_control), "{scrubbed}");
    }

    #[test]
    fn scrub_replaces_message_ids_with_their_log_id() {
        let wamid = "wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQzQTdBNUQ0RjFFQkE3QkFBQkFBAA==";
        let scrubbed = scrub(&format!(
            "message {wamid}. and {{\"id\":\"wamid.LOG.ECHO\"}}"
        ));
        assert_eq!(
            scrubbed,
            format!(
                "message {}. and {{\"id\":\"{}\"}}",
                log_id(wamid),
                log_id("wamid.LOG.ECHO")
            )
        );
        assert!(!scrubbed.contains("wamid."), "{scrubbed}");
        assert!(!scrubbed.contains("HBgL"), "{scrubbed}");
    }

    #[test]
    fn scrub_replaces_base64_runs_that_hide_a_phone_number() {
        // A wamid without its prefix, in either alphabet and at any alignment.
        for run in [
            "HBgLMTQxNTU1NTEyMzQVAgASGBQzQTdBNUQ0RjFFQkE3QkFBQkFBAA==",
            "HBgLMTQxNTU1NTEyMzQVAgASGBQzQTdBNUQ0RjFFQkE3QkFBQkFBAA",
            "BgLMTQxNTU1NTEyMzQVAgASGBQzQTdBNUQ0RjFFQkE3QkFBQkFBAA",
            "dXNlcj0xNDE1NTU1MTIzNA",
        ] {
            let scrubbed = scrub(&format!("id={run} failed"));
            assert_eq!(
                scrubbed,
                format!("id={ENCODED_PREFIX}{} failed", KeyedDigest(run.as_bytes())),
                "{run}"
            );
        }
        // Long words that decode to nothing of the kind stay.
        for text in [
            "CrashLoopBackOff in whatsapp_business_account",
            "AbCdEfGh1234xyzQRSTuv",
        ] {
            assert_eq!(scrub(text), text);
        }
    }

    #[test]
    fn scrub_caps_huge_text_after_hiding_what_it_holds() {
        let huge = format!(
            "Invalid parameter\n\x1b[2J+1 415 555 1234 {}",
            "A very long explanation. ".repeat(2_500)
        );
        assert!(huge.len() > 60_000);
        let scrubbed = scrub(&huge);
        assert_eq!(scrubbed.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(scrubbed.ends_with('…'));
        assert!(scrubbed.starts_with("Invalid parameter\\n\\u{1b}[2J*******1234 A very"));
        // An id at the cut is replaced whole before it: no prefix of it is left in clear.
        let at_the_cut = format!(
            "{}wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQzQTdBNUQ0RjFFQkE3QkFBQkFBAA==",
            "x".repeat(MAX_TEXT_CHARS - 3)
        );
        let scrubbed = scrub(&at_the_cut);
        assert!(scrubbed.ends_with("xxxwam…"), "{scrubbed}");
        assert!(!scrubbed.contains("HBgL"), "{scrubbed}");
    }

    proptest::proptest! {
        #[test]
        fn scrub_gives_one_bounded_line_without_the_number_however_it_is_spelled(
            before in "[a-zA-Z :,\n\r\t\x1b]{0,40}",
            separators in proptest::collection::vec(
                proptest::sample::select(vec!["", " ", "-", ".", "(", ")", ") ", " ("]),
                11,
            ),
            plus in proptest::bool::ANY,
            after in "[a-zA-Z :,\n\x1b]{0,40}",
        ) {
            let mut number = String::from(if plus { "+" } else { "" });
            for (digit, separator) in "14155551234".chars().zip(&separators) {
                number.push(digit);
                number.push_str(separator);
            }
            let scrubbed = scrub(&format!("{before} {number} {after}"));
            proptest::prop_assert!(!scrubbed.chars().any(char::is_control), "{}", scrubbed);
            proptest::prop_assert!(scrubbed.chars().count() <= MAX_TEXT_CHARS + 1);
            let digits: String = scrubbed.chars().filter(char::is_ascii_digit).collect();
            proptest::prop_assert!(!digits.contains("4155551"), "{}", scrubbed);
        }
    }

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

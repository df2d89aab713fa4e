//! What may reach WhatsApp in the short fields of a message (button and row titles, ids,
//! headers, footers, the list button, section titles, file names, captions, links), in one
//! place so that the formatter and [`super::limits::check`] agree.
//!
//! Two kinds of characters are the trouble. *Control characters* (C0/C1, DEL, the bidi
//! embeddings and isolates, line and paragraph separators) make Meta refuse a title or break a
//! file name over lines; they are stripped from every field that is not a message body.
//! *Invisible characters* (zero-width spaces and joiners, the braille blank, Hangul fillers,
//! variation selectors, soft hyphens, …) render nothing: a title made only of them is a blank
//! button, so it counts as empty and the field's fallback is used instead.

/// Whether `c` is a control character: never sent in a title, id, file name or link.
pub fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            // Bidi embeddings, overrides and isolates: they reorder what follows them.
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            // Line and paragraph separators: line breaks in disguise.
            | '\u{2028}' | '\u{2029}'
        )
}

/// Whether `c` renders nothing on its own (whitespace and control characters included).
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || is_control(c)
        || matches!(
            c,
            '\u{00AD}' // soft hyphen
            | '\u{034F}' // combining grapheme joiner
            | '\u{061C}' // Arabic letter mark
            | '\u{115F}' | '\u{1160}' // Hangul choseong / jungseong fillers
            | '\u{17B4}' | '\u{17B5}' // Khmer inherent vowels
            | '\u{180B}'..='\u{180F}' // Mongolian variation selectors and vowel separator
            | '\u{200B}'..='\u{200F}' // zero-width space, (non-)joiners, LRM, RLM
            | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
            | '\u{206A}'..='\u{206F}' // deprecated format characters
            | '\u{2800}' // braille pattern blank
            | '\u{3164}' // Hangul filler
            | '\u{FE00}'..='\u{FE0F}' // variation selectors
            | '\u{FEFF}' // zero-width no-break space (BOM)
            | '\u{FFA0}' // halfwidth Hangul filler
            | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
            | '\u{1BCA0}'..='\u{1BCA3}' // shorthand format controls
            | '\u{1D173}'..='\u{1D17A}' // musical format controls
            | '\u{E0000}'..='\u{E007F}' // tags
            | '\u{E0100}'..='\u{E01EF}' // variation selectors supplement
        )
}

/// Whether `text` shows anything: at least one character that is not invisible.
pub fn is_visible(text: &str) -> bool {
    text.chars().any(|c| !is_invisible(c))
}

/// `text` without control characters, for a one-line field: a line break or tab becomes a
/// space (two words stay two words), any other control character is removed; then trimmed.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if !is_control(c) {
            out.push(c);
        } else if c.is_whitespace() && !out.ends_with(' ') {
            out.push(' ');
        }
    }
    out.trim().to_owned()
}

/// [`one_line`] of `text`, or `None` when nothing visible is left: the field's fallback applies.
pub fn visible_line(text: &str) -> Option<String> {
    let line = one_line(text);
    is_visible(&line).then_some(line)
}

/// `text` without control characters except line breaks, for captions (body-like fields):
/// `\r\n` and a lone `\r` become `\n`, a tab a space, any other control character is removed.
pub fn multi_line(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    text.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\u{2028}' | '\u{2029}' => Some('\n'),
            '\t' => Some(' '),
            c if is_control(c) => None,
            c => Some(c),
        })
        .collect()
}

/// Whether `link` is a URL WhatsApp can fetch media from: `http://` or `https://` (any case)
/// followed by a host, with no whitespace, control or invisible character anywhere. The caller
/// trims surrounding whitespace first; nothing inside is repaired, as a link with a space or
/// a line break in it points somewhere else than the agent meant.
pub fn is_fetchable_link(link: &str) -> bool {
    link_problem(link).is_none()
}

/// Why WhatsApp could not fetch media from `link` (see [`is_fetchable_link`]); loggable, as
/// it never quotes the link (which may carry a token or a phone number).
pub fn link_problem(link: &str) -> Option<&'static str> {
    let Some(scheme_end) = link.find("://") else {
        return Some("not an absolute URL");
    };
    let scheme = &link[..scheme_end];
    if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
        return Some("not http(s)");
    }
    if link.chars().any(is_invisible) {
        return Some("whitespace or control characters inside");
    }
    let rest = &link[scheme_end + 3..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('\\') {
        return Some("backslash in the host");
    }
    // Credentials in a link (`user:pass@host`) come before the host.
    let host_and_port = authority.rsplit('@').next().unwrap_or_default();
    let host = match host_and_port.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8080`.
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_and_port.split(':').next().unwrap_or_default(),
    };
    host.is_empty().then_some("no host")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_only_text_is_not_visible() {
        for text in [
            "",
            "   ",
            "\u{200B}",
            "\u{2800}\u{2800}",
            "\u{3164}",
            "\u{115F}\u{1160}",
            "\u{00AD}",
            "\u{FE0F}",
            "\u{FEFF} \u{2060}",
            "\u{202E}\u{200D}",
            "\n\t\u{7}",
        ] {
            assert!(!is_visible(text), "{text:?}");
        }
        for text in ["a", "\u{200B}ok", "👍", "🏳️‍🌈", "e\u{301}", "漢"] {
            assert!(is_visible(text), "{text:?}");
        }
    }

    #[test]
    fn one_line_strips_controls_and_keeps_words_apart() {
        assert_eq!(one_line(" report\n.pdf "), "report .pdf");
        assert_eq!(one_line("Re\u{7}start\r\n\tnow"), "Restart now");
        assert_eq!(one_line("\u{202E}gpj.exe"), "gpj.exe");
        assert_eq!(one_line("a\u{2028}b"), "a b");
        assert_eq!(visible_line("\u{200B}\n\u{2800}"), None);
        assert_eq!(visible_line(" OK\u{0} ").as_deref(), Some("OK"));
    }

    #[test]
    fn multi_line_keeps_line_breaks_only() {
        assert_eq!(
            multi_line("CPU\r\nspike\u{1b}[31m\tnow\u{202E}"),
            "CPU\nspike[31m now"
        );
    }

    #[test]
    fn only_absolute_http_links_without_blanks_are_fetchable() {
        for link in [
            "https://x.y/graph.png",
            "HTTP://x.y/r.pdf",
            "https://user@x.y:8443/a?b=c#d",
            "http://[::1]:8080/a",
        ] {
            assert!(is_fetchable_link(link), "{link}");
        }
        for link in [
            "",
            "https://",
            "https:///path",
            "https://:443/a",
            "ftp://x.y/a",
            "javascript:alert(1)",
            "/relative/path.png",
            "x.y/graph.png",
            "https://x.y/a b.png",
            "https://x.y/a\n.png",
            "https://x.y/a\u{200B}.png",
            "https:\\\\x.y\\a",
            "https://x.y\\@evil/",
            "file:///etc/passwd",
        ] {
            assert!(!is_fetchable_link(link), "{link:?}");
        }
    }
}

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

/// Whether `link` is a URL WhatsApp can fetch media from, as it is (see [`fetchable_link`]).
pub fn is_fetchable_link(link: &str) -> bool {
    fetchable_link(link).is_ok_and(|fetchable| fetchable == link)
}

/// Why WhatsApp could not fetch media from `link` as it is; loggable, as it never quotes the
/// link (which may carry a token or a phone number).
pub fn link_problem(link: &str) -> Option<&'static str> {
    match fetchable_link(link) {
        Ok(fetchable) if fetchable == link => None,
        Ok(_) => Some("not percent-encoded"),
        Err(problem) => Some(problem),
    }
}

/// The link WhatsApp is given for `link` (already trimmed by the caller): `http://` or
/// `https://` (any case) followed by a host (ASCII letters, digits, `-`, `.`, `_`, or an IP
/// literal) and an optional numeric port, with no whitespace, control or invisible character
/// anywhere. Nothing inside is repaired: a link with a space or a line break in it points
/// somewhere else than the agent meant. The one change is percent-encoding what a URI cannot
/// hold as it is (non-ASCII letters in a path, `"`, `<`, `>`, `` ` ``, `{`, `|`, `}`, `^`, a
/// `%` not followed by two hex digits), as a browser would. `Err` says why (never quoting it).
pub fn fetchable_link(link: &str) -> Result<String, &'static str> {
    let Some(scheme_end) = link.find("://") else {
        return Err("not an absolute URL");
    };
    let scheme = &link[..scheme_end];
    if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
        return Err("not http(s)");
    }
    if link.chars().any(is_invisible) {
        return Err("whitespace or control characters inside");
    }
    let rest = &link[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    // Credentials in a link (`user:pass@host`) come before the host.
    let (userinfo, host_and_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_and_port)) => (Some(userinfo), host_and_port),
        None => (None, authority),
    };
    let (host, port) = match host_and_port.strip_prefix('[') {
        // An IPv6 literal: `[::1]:8080`.
        Some(v6) => {
            let (address, after) = v6.split_once(']').ok_or("unclosed IPv6 literal")?;
            if address.is_empty()
                || !address
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
            {
                return Err("bad IPv6 literal");
            }
            (address, after.strip_prefix(':').unwrap_or(after))
        }
        None => match host_and_port.split_once(':') {
            Some((host, port)) => (host, port),
            None => (host_and_port, ""),
        },
    };
    if host.is_empty() {
        return Err("no host");
    }
    let host_ok = host_and_port.starts_with('[')
        || host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !host_ok {
        return Err("host is not a plain ASCII name or address");
    }
    if !port.chars().all(|c| c.is_ascii_digit()) {
        return Err("port is not a number");
    }
    let userinfo_ok = userinfo.is_none_or(|userinfo| {
        userinfo
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:%".contains(c))
    });
    if !userinfo_ok {
        return Err("credentials with characters a URL cannot hold");
    }
    let mut fetchable = String::with_capacity(link.len());
    fetchable.push_str(&link[..scheme_end + 3 + authority_end]);
    let bytes = tail.as_bytes();
    for (index, c) in tail.char_indices() {
        let escaped_percent = c == '%'
            && bytes.get(index + 1).is_some_and(u8::is_ascii_hexdigit)
            && bytes.get(index + 2).is_some_and(u8::is_ascii_hexdigit);
        let keep =
            c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=".contains(c) || escaped_percent;
        if keep {
            fetchable.push(c);
        } else {
            let mut buffer = [0; 4];
            for byte in c.encode_utf8(&mut buffer).bytes() {
                fetchable.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    Ok(fetchable)
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
            "https://exämple.com/a.png",
            "https://x.y:80a/",
            "https://[::1/a",
            "https://us er@x.y/",
        ] {
            assert!(!is_fetchable_link(link), "{link:?}");
            assert!(link_problem(link).is_some(), "{link:?}");
        }
    }

    #[test]
    fn what_a_uri_cannot_hold_is_percent_encoded_and_nothing_else_changes() {
        assert_eq!(
            fetchable_link("https://x.y/café/a\"b<c>|{d}^e`?q=100%&r=%41").as_deref(),
            Ok("https://x.y/caf%C3%A9/a%22b%3Cc%3E%7C%7Bd%7D%5Ee%60?q=100%25&r=%41")
        );
        let plain = "https://user:pw@x.y:8443/a/b.png?size=2&x=%20#top";
        assert_eq!(fetchable_link(plain).as_deref(), Ok(plain));
        assert!(!is_fetchable_link("https://x.y/café.png"));
        assert_eq!(
            link_problem("https://x.y/café.png"),
            Some("not percent-encoded")
        );
    }
}

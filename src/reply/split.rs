//! Cutting text to WhatsApp's length limits without breaking a character or an emoji sequence:
//! [`shorten`] for titles and captions, [`split_text`] and [`split_with_tail`] for long replies.
//!
//! Limits count `char`s (see [`super::limits`]); cuts fall on extended grapheme cluster
//! boundaries so a flag, a skin-tone or ZWJ emoji, or a letter with its accents stays whole.

use super::markdown::FENCE;
use unicode_segmentation::UnicodeSegmentation;

/// Appended to shortened titles and captions; counts toward the limit.
pub const ELLIPSIS: char = '…';
/// Reopens a code block at the start of the next part.
const FENCE_OPEN: &str = "```\n";
/// Closes a code block at the end of a part.
const FENCE_CLOSE: &str = "\n```";

/// The text of the marker ending a reply cut after the last allowed part.
pub fn truncation_marker(omitted_chars: usize) -> String {
    format!("\n\n{ELLIPSIS} (reply truncated: {omitted_chars} more characters)")
}

/// The longest prefix of `text` with at most `max_chars` chars that ends on a grapheme boundary.
pub fn truncate(text: &str, max_chars: usize) -> &str {
    let mut end = 0;
    let mut count = 0;
    for grapheme in text.graphemes(true) {
        count += grapheme.chars().count();
        if count > max_chars {
            break;
        }
        end += grapheme.len();
    }
    &text[..end]
}

/// `text` trimmed, and when longer than `max_chars`, cut on a grapheme boundary and ended
/// with "…" (the ellipsis counts toward `max_chars`). Only "…" is left when not even the first
/// grapheme fits, so a non-blank input never becomes blank.
pub fn shorten(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    if max_chars == 0 {
        return String::new();
    }
    let kept = truncate(text, max_chars - 1).trim_end();
    format!("{kept}{ELLIPSIS}")
}

/// Splits `text` into at most `max_parts` non-blank parts of at most `max_chars` chars each.
///
/// Cuts prefer paragraph boundaries, then line ends, then spaces, then grapheme boundaries;
/// only a single grapheme longer than a whole part is cut between its chars. The whitespace at a
/// cut is dropped; nothing else is lost or reordered. A cut inside a ```` ``` ```` block closes
/// the fence at the end of the part and reopens it at the start of the next one. When the text
/// needs more than `max_parts` parts, the last part is cut short and ends with
/// [`truncation_marker`]. `max_chars` must leave ample room for the fences and the marker
/// (a few hundred chars; WhatsApp's limits are 1024 and 4096).
pub fn split_text(text: &str, max_chars: usize, max_parts: usize) -> Vec<String> {
    let text = text.trim_end();
    Layout::new(text).split(max_chars, max_parts)
}

/// Like [`split_text`], but the last part, which becomes the body of an interactive message,
/// has at most `tail_max_chars` chars: returns the leading parts (at most `max_parts - 1`) and
/// that last part. The last part is never truncated; when the leading parts need more than
/// their share, the end of the leading text is cut with the marker. `None` for blank text or
/// when `tail_max_chars` leaves no room; `max_parts` should be at least 2.
pub fn split_with_tail(
    text: &str,
    max_chars: usize,
    tail_max_chars: usize,
    max_parts: usize,
) -> Option<(Vec<String>, String)> {
    let text = text.trim_end();
    if text.trim_start().is_empty() || max_parts == 0 {
        return None;
    }
    let layout = Layout::new(text);
    let closer = if layout.inside_code(text.len()) {
        FENCE_CLOSE.chars().count()
    } else {
        0
    };
    if text.chars().count() + closer <= tail_max_chars {
        return Some((Vec::new(), layout.part(0, text.len())));
    }
    let budget =
        tail_max_chars.saturating_sub(FENCE_OPEN.chars().count() + FENCE_CLOSE.chars().count());
    let cut = layout.backward_cut(budget)?;
    let tail = layout.part(cut.resume, text.len());
    let head = &text[..cut.cut];
    let leading = Layout::new(head).split(max_chars, max_parts - 1);
    Some((leading, tail))
}

/// How good a place to cut is; earlier variants are preferred.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Paragraph,
    Line,
    Space,
}

const PREFERRED: [Kind; 3] = [Kind::Paragraph, Kind::Line, Kind::Space];

/// A place to cut: the part ends at `cut`, the next starts at `resume` (whitespace between is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cut {
    cut: usize,
    resume: usize,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    at: Cut,
    kind: Kind,
}

/// Everything about a text the splitter needs, computed once.
struct Layout<'a> {
    text: &'a str,
    /// `grapheme_boundary[i]`: a cut at byte `i` keeps every grapheme whole.
    grapheme_boundary: Vec<bool>,
    /// Whitespace runs to cut at, in text order.
    candidates: Vec<Candidate>,
    /// Byte ranges of the lines that open or close a code block (`` ``` `` after quote markers).
    fences: Vec<(usize, usize)>,
}

impl<'a> Layout<'a> {
    fn new(text: &'a str) -> Self {
        let mut grapheme_boundary = vec![false; text.len() + 1];
        for (index, _) in text.grapheme_indices(true) {
            grapheme_boundary[index] = true;
        }
        grapheme_boundary[text.len()] = true;

        let mut fences = Vec::new();
        let mut line_start = 0;
        for line in text.split('\n') {
            let content = line.trim_start_matches([' ', '\t', '>']);
            if content.starts_with(FENCE) {
                fences.push((line_start, line_start + line.len()));
            }
            line_start += line.len() + 1;
        }

        let mut layout = Self {
            text,
            grapheme_boundary,
            candidates: Vec::new(),
            fences,
        };
        layout.candidates = layout.find_candidates();
        layout
    }

    fn find_candidates(&self) -> Vec<Candidate> {
        let mut candidates = Vec::new();
        let mut chars = self.text.char_indices().peekable();
        while let Some((start, c)) = chars.next() {
            if !c.is_whitespace() {
                continue;
            }
            let mut end = start + c.len_utf8();
            let mut newlines = usize::from(c == '\n');
            let mut after_last_newline = if c == '\n' { end } else { start };
            while let Some(&(index, next)) = chars.peek() {
                if !next.is_whitespace() {
                    break;
                }
                chars.next();
                end = index + next.len_utf8();
                if next == '\n' {
                    newlines += 1;
                    after_last_newline = end;
                }
            }
            let (kind, mut resume) = match newlines {
                0 => (Kind::Space, end),
                // The next line keeps its indentation (it matters in code blocks).
                1 => (Kind::Line, after_last_newline),
                _ => (Kind::Paragraph, after_last_newline),
            };
            if !self.grapheme_boundary[start] {
                continue;
            }
            // A combining mark after the whitespace belongs to the last space: keep that space.
            while !self.grapheme_boundary[resume] {
                resume -= 1;
            }
            let at = Cut { cut: start, resume };
            if self.awkward(at) {
                continue;
            }
            candidates.push(Candidate { at, kind });
        }
        candidates
    }

    /// A cut right after a fence opens or right before it closes would leave an empty block.
    fn awkward(&self, at: Cut) -> bool {
        self.inside_code(at.cut)
            && (self
                .fences
                .binary_search_by_key(&at.cut, |&(_, end)| end)
                .is_ok()
                || self
                    .fences
                    .binary_search_by_key(&at.resume, |&(start, _)| start)
                    .is_ok())
    }

    /// Whether byte `at` lies inside a code block: an odd number of fence lines end before it.
    fn inside_code(&self, at: usize) -> bool {
        self.fences.partition_point(|&(_, end)| end <= at) % 2 == 1
    }

    /// The text between two cuts, with fences reopened and closed as needed.
    fn part(&self, from: usize, to: usize) -> String {
        let mut part = String::with_capacity(to - from + FENCE_OPEN.len() + FENCE_CLOSE.len());
        if self.inside_code(from) {
            part.push_str(FENCE_OPEN);
        }
        part.push_str(&self.text[from..to]);
        if self.inside_code(to) {
            part.push_str(FENCE_CLOSE);
        }
        part
    }

    fn split(&self, max_chars: usize, max_parts: usize) -> Vec<String> {
        let fence_chars = FENCE_OPEN.chars().count();
        let mut parts = Vec::new();
        let mut from = 0;
        while parts.len() < max_parts {
            let rest = &self.text[from..];
            let content = rest.trim_start();
            if content.is_empty() {
                break;
            }
            // Indentation longer than a quarter of a part is not worth a part of its own.
            let indent = rest.len() - content.len();
            if rest[..indent].chars().count() * 4 >= max_chars {
                from += indent;
                continue;
            }
            let opener = if self.inside_code(from) {
                fence_chars
            } else {
                0
            };
            let closer = if self.inside_code(self.text.len()) {
                fence_chars
            } else {
                0
            };
            let rest_chars = rest.chars().count();
            if opener + rest_chars + closer <= max_chars {
                parts.push(self.part(from, self.text.len()));
                break;
            }
            let last = parts.len() + 1 == max_parts;
            let marker = if last {
                truncation_marker(rest_chars).chars().count()
            } else {
                0
            };
            // Room for a closing fence is only needed when the cut falls inside a code block.
            let budget = max_chars.saturating_sub(opener + marker);
            let Some(mut at) = self.forward_cut(from, budget) else {
                break;
            };
            if self.inside_code(at.cut) {
                match self.forward_cut(from, budget.saturating_sub(fence_chars)) {
                    Some(fenced) => at = fenced,
                    None => break,
                }
            }
            let mut part = self.part(from, at.cut);
            if last {
                let omitted = self.text[at.resume..].trim().chars().count();
                part.push_str(&truncation_marker(omitted));
            }
            parts.push(part);
            from = at.resume;
        }
        parts
    }

    /// Where to end a part starting at `from` that may hold `budget` chars.
    fn forward_cut(&self, from: usize, budget: usize) -> Option<Cut> {
        let first = from + (self.text[from..].len() - self.text[from..].trim_start().len());
        let limit = self.text[from..]
            .char_indices()
            .nth(budget)
            .map_or(self.text.len(), |(index, _)| from + index);
        if limit <= first {
            return None;
        }
        let chars = |cut: usize| self.text[from..cut].chars().count();
        let low = self.candidates.partition_point(|c| c.at.cut <= first);
        let high = self.candidates.partition_point(|c| c.at.cut <= limit);
        let window = self.candidates.get(low..high).unwrap_or_default();
        let last_of = |kind: Kind| window.iter().rev().find(|c| c.kind == kind).map(|c| c.at);
        // A good boundary that leaves at least half a part; else any boundary; else a grapheme.
        for kind in PREFERRED {
            if let Some(at) = last_of(kind)
                && chars(at.cut) * 2 >= budget
            {
                return Some(at);
            }
        }
        if let Some(at) = PREFERRED.into_iter().find_map(last_of) {
            return Some(at);
        }
        let cut = (first + 1..=limit)
            .rev()
            .find(|&index| self.grapheme_boundary[index])
            // A single grapheme longer than a part: cut between its chars, never inside one.
            .unwrap_or(limit);
        Some(Cut { cut, resume: cut })
    }

    /// Where to start a last part that may hold `budget` chars, leaving a non-blank text before it.
    fn backward_cut(&self, budget: usize) -> Option<Cut> {
        let text = self.text;
        let first = text.len() - text.trim_start().len();
        let total = text.chars().count();
        let lower = text
            .char_indices()
            .nth(total.saturating_sub(budget))
            .map_or(text.len(), |(index, _)| index);
        let usable = |c: &&Candidate| {
            c.at.resume >= lower && c.at.cut > first && !text[c.at.resume..].trim().is_empty()
        };
        let first_of = |kind: Kind| {
            self.candidates
                .iter()
                .filter(usable)
                .find(|c| c.kind == kind)
                .map(|c| c.at)
        };
        // The last paragraph, however short, makes the best body: no half-part rule here.
        if let Some(at) = PREFERRED.into_iter().find_map(first_of) {
            return Some(at);
        }
        let lower = lower.max(first + 1);
        let cut = (lower..text.len())
            .find(|&index| self.grapheme_boundary[index])
            .or_else(|| (lower..text.len()).find(|&index| text.is_char_boundary(index)))?;
        Some(Cut { cut, resume: cut })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMILY: &str = "👨‍👩‍👧‍👦";

    fn chars(text: &str) -> usize {
        text.chars().count()
    }

    #[test]
    fn shorten_keeps_short_text() {
        assert_eq!(shorten("  Restart  ", 20), "Restart");
    }

    #[test]
    fn shorten_adds_an_ellipsis_that_counts() {
        assert_eq!(shorten("Restart the payments API", 10), "Restart t…");
        assert_eq!(shorten("Restart the payments API", 12), "Restart the…");
    }

    #[test]
    fn shorten_never_splits_an_emoji_sequence() {
        let text = format!("ab{FAMILY}cd");
        // The family is 7 chars: it fits whole or not at all.
        assert_eq!(shorten(&text, 10), format!("ab{FAMILY}…"));
        assert_eq!(shorten(&text, 9), "ab…");
        assert_eq!(shorten("e\u{301}e\u{301}e\u{301}", 4), "e\u{301}…");
        assert_eq!(shorten(FAMILY, 3), "…");
    }

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split_text("hello\n\n", 100, 3), vec!["hello"]);
        assert!(split_text(" \n ", 100, 3).is_empty());
    }

    #[test]
    fn splits_long_text_on_paragraphs() {
        let a = "a".repeat(60);
        let b = "b".repeat(60);
        let c = "c ".repeat(20);
        let text = format!("{a}\n{b}\n\n{c}");
        assert_eq!(
            split_text(&text, 130, 5),
            vec![format!("{a}\n{b}"), c.trim().to_owned()]
        );
    }

    #[test]
    fn splits_on_lines_when_paragraphs_are_too_long() {
        let line = "x".repeat(40);
        let text = [line.as_str(); 5].join("\n");
        let parts = split_text(&text, 100, 5);
        assert_eq!(
            parts,
            vec![
                format!("{line}\n{line}"),
                format!("{line}\n{line}"),
                line.clone()
            ]
        );
    }

    #[test]
    fn splits_on_spaces_inside_a_long_line() {
        let text = "word ".repeat(50);
        let parts = split_text(&text, 100, 5);
        assert_eq!(parts.len(), 3);
        assert!(
            parts
                .iter()
                .all(|p| chars(p) <= 100 && !p.starts_with(' ') && !p.ends_with(' '))
        );
        assert_eq!(parts.concat().replace(' ', ""), "word".repeat(50));
    }

    #[test]
    fn a_short_first_paragraph_is_not_sent_alone() {
        let long = "y ".repeat(80);
        let text = format!("Hi\n\n{long}");
        let parts = split_text(&text, 100, 5);
        assert!(parts[0].starts_with("Hi\n\ny y"), "{parts:?}");
    }

    #[test]
    fn never_splits_an_emoji_sequence() {
        let text = FAMILY.repeat(100);
        let parts = split_text(&text, 100, 20);
        assert!(parts.iter().all(|p| chars(p) <= 100));
        // 7 chars per family: 14 families per part.
        assert_eq!(parts[0], FAMILY.repeat(14));
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn a_grapheme_longer_than_a_part_is_cut_between_chars() {
        let text = format!("a{}", "\u{301}".repeat(150));
        let parts = split_text(&text, 100, 5);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn code_fence_is_reopened_after_a_split() {
        let code: Vec<String> = (0..30).map(|n| format!("line {n:02}")).collect();
        let text = format!("Logs:\n\n```\n{}\n```\n\nDone.", code.join("\n"));
        let parts = split_text(&text, 100, 10);
        assert!(parts.len() > 1);
        assert!(parts[0].starts_with("Logs:\n\n```\nline 00\n"));
        assert!(parts[0].ends_with("\n```"), "{parts:?}");
        assert!(parts[1].starts_with("```\nline "), "{parts:?}");
        assert!(parts.iter().all(|p| chars(p) <= 100));
        // Every part is balanced on its own.
        assert!(
            parts.iter().all(|p| p.matches("```").count() % 2 == 0),
            "{parts:?}"
        );
        let joined = parts.join("\n");
        assert_eq!(joined.matches("line ").count(), 30);
        assert!(parts.last().is_some_and(|p| p.ends_with("```\n\nDone.")));
    }

    #[test]
    fn a_split_never_leaves_an_empty_code_block() {
        let text = format!("{}\n```\n{}\n```", "p ".repeat(45).trim(), "c".repeat(40));
        let parts = split_text(&text, 100, 5);
        assert!(parts.iter().all(|p| !p.contains("```\n```")), "{parts:?}");
    }

    #[test]
    fn too_many_parts_end_with_a_truncation_marker() {
        let text = "z".repeat(90) + &"\n\nmore text here".repeat(100);
        let parts = split_text(&text, 100, 3);
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| chars(p) <= 100));
        let last = &parts[2];
        assert!(last.contains("\n\n… (reply truncated: "), "{last}");
        assert!(last.ends_with(" more characters)"));
    }

    #[test]
    fn truncation_inside_code_closes_the_fence_first() {
        let text = format!("```\n{}```", "code line\n".repeat(100));
        let parts = split_text(&text, 120, 2);
        assert_eq!(parts.len(), 2);
        assert!(parts[1].starts_with("```\n"));
        assert!(
            parts[1].contains("\n```\n\n… (reply truncated: "),
            "{:?}",
            parts[1]
        );
        assert!(chars(&parts[1]) <= 120);
    }

    #[test]
    fn tail_is_the_last_short_chunk() {
        let text = format!("{}\n\nShall I restart it?", "a ".repeat(100).trim());
        let (head, tail) = split_with_tail(&text, 150, 50, 5).unwrap_or_default();
        assert_eq!(tail, "Shall I restart it?");
        assert_eq!(head.len(), 2);
        assert!(head.iter().all(|p| chars(p) <= 150));
    }

    #[test]
    fn short_text_is_all_tail() {
        assert_eq!(
            split_with_tail("Restart?", 150, 50, 5),
            Some((vec![], "Restart?".into()))
        );
        assert_eq!(split_with_tail("  ", 150, 50, 5), None);
    }

    #[test]
    fn tail_inside_code_reopens_the_fence() {
        let text = format!("```\n{}\n```", "let x = 1;\n".repeat(10).trim());
        let (head, tail) = split_with_tail(&text, 100, 40, 5).unwrap_or_default();
        assert!(
            head.last().is_some_and(|p| p.ends_with("\n```")),
            "{head:?}"
        );
        assert!(
            tail.starts_with("```\n") && tail.ends_with("\n```"),
            "{tail:?}"
        );
        assert!(chars(&tail) <= 40);
    }
}

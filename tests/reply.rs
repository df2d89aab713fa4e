//! Property tests of the reply formatter: whatever the agent answers, every message WhatsApp
//! receives is within its limits, no text is lost below the part bound, and the number of
//! messages stays bounded.

use proptest::prelude::*;
use proptest::sample::select;
use whatsapp_agent_lambda::agent::{
    Action, AgentReply, Attachment, AttachmentKind, ListRow, ListSection, ListSpec, ReplyStatus,
};
use whatsapp_agent_lambda::graph::OutgoingMessage;
use whatsapp_agent_lambda::reply::limits::{MAX_TEXT_PARTS, check};
use whatsapp_agent_lambda::reply::{format_reply, markdown::to_whatsapp};

/// Container markers a line may repeat to nest deeper.
const CONTAINERS: &[&str] = &[
    "> ", ">", "- ", "* ", "1. ", "7) ", "> - ", "* > 2) ", "  - ",
];

/// Inline spans and syntax that may follow them.
const INLINE: &[&str] = &["**", "_", "~~", "[", "![", "`", "  ", "\t", "# ", "```"];

/// Lines under a nested first line: lazy continuations, blank lines, quoted and indented
/// lines, fences, table rows.
const LINES: &[&str] = &[
    "y", "", "> y", ">", "  - y", "1. y", "```", "|-|-|", "| a |", "***", "# h", "    code",
];

/// A first line nested up to hundreds of levels deep, then runs of lines under it.
fn nested_markdown() -> impl Strategy<Value = String> {
    (
        select(CONTAINERS),
        0..300usize,
        prop::collection::vec(select(INLINE), 0..40),
        prop::collection::vec((select(LINES), 1..60usize), 0..12),
    )
        .prop_map(|(container, depth, inline, runs)| {
            let lines: Vec<&str> = runs
                .iter()
                .flat_map(|&(line, times)| std::iter::repeat_n(line, times))
                .collect();
            format!(
                "{}{}x\n{}",
                container.repeat(depth),
                inline.concat(),
                lines.join("\n")
            )
        })
}

/// Pieces that agent text is made of: words, whitespace, Markdown syntax, and the Unicode that
/// is easy to cut wrong (ZWJ and skin-tone emoji, flags, combining marks, CJK, RTL).
const ATOMS: &[&str] = &[
    "word",
    "Pod",
    "api-1",
    "restarted",
    " ",
    " ",
    " ",
    "  ",
    "\n",
    "\n",
    "\n\n",
    "\n\n\n",
    "\t",
    "\r\n",
    "**",
    "__",
    "*",
    "_",
    "~~",
    "~",
    "`",
    "```",
    "\n```\n",
    "# ",
    "## ",
    "\n- ",
    "\n* ",
    "\n1. ",
    "\n3) ",
    "\n  - ",
    "\n> ",
    "[link](https://x.y/z)",
    "<https://a.b>",
    "![img](https://i/p.png)",
    "\n| a | b |\n|---|---|\n| 1 | 2 |\n",
    "\n---\n",
    "<b>",
    "</b>",
    "\\",
    "&amp;",
    "\n\n    indented code\n",
    "👍",
    "👍🏽",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "🇩🇪",
    "\u{200d}",
    "e\u{301}",
    "\u{301}",
    "a\u{301}\u{302}\u{303}\u{304}\u{305}\u{306}\u{307}\u{308}\u{309}\u{30a}\u{30b}\u{30c}",
    "漢字",
    "한국어",
    "مرحبا",
    "…",
    "⚠️",
];

/// The longest text generated, in chars.
const TEXT_MAX_CHARS: usize = 50_000;

fn atoms(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(select(ATOMS), 0..max).prop_map(|atoms| atoms.concat())
}

/// Short, medium and very long texts, and a single grapheme longer than any limit.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => atoms(40),
        3 => atoms(800),
        2 => (prop::collection::vec(select(ATOMS), 1..30), 1..TEXT_MAX_CHARS).prop_map(
            |(pattern, target)| {
                let pattern = pattern.concat();
                let unit = pattern.chars().count().max(1);
                pattern
                    .repeat(target / unit + 1)
                    .chars()
                    .take(target)
                    .collect()
            }
        ),
        1 => (0..6_000usize).prop_map(|marks| format!("x{}", "\u{301}".repeat(marks))),
    ]
}

/// Ids, labels and titles: empty, blank, duplicates, emoji, very long.
fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec!["", "   ", "Restart", "Restart", "restart", "Scale up", "🚀", "👨‍👩‍👧‍👦 family"])
            .prop_map(str::to_owned),
        3 => atoms(8),
        1 => (1..400usize).prop_map(|n| "Restart the payments API ".repeat(n / 25 + 1)),
        1 => (1..100usize).prop_map(|n| "👩🏽‍💻".repeat(n)),
        1 => (0..300usize).prop_map(|marks| format!("e{}", "\u{301}".repeat(marks))),
    ]
}

fn status() -> impl Strategy<Value = Option<ReplyStatus>> {
    select(vec![
        None,
        Some(ReplyStatus::Success),
        Some(ReplyStatus::Error),
        Some(ReplyStatus::Warning),
        Some(ReplyStatus::Info),
        Some(ReplyStatus::Unknown),
    ])
}

fn actions() -> impl Strategy<Value = Vec<Action>> {
    prop::collection::vec(
        (label(), label()).prop_map(|(id, label)| Action { id, label }),
        0..=15,
    )
}

fn list() -> impl Strategy<Value = Option<ListSpec>> {
    let row = (label(), label(), prop::option::of(label())).prop_map(|(id, title, description)| {
        ListRow {
            id,
            title,
            description,
        }
    });
    let section = (
        prop::option::of(label()),
        prop::collection::vec(row, 0..=12),
    )
        .prop_map(|(title, rows)| ListSection { title, rows });
    prop::option::weighted(
        0.3,
        (
            prop::option::of(label()),
            prop::option::of(atoms(300)),
            prop::option::of(label()),
            prop::collection::vec(section, 0..=12),
        )
            .prop_map(|(header, body, button, sections)| ListSpec {
                header,
                body,
                button,
                sections,
            }),
    )
}

fn attachments() -> impl Strategy<Value = Vec<Attachment>> {
    let attachment = (
        any::<bool>(),
        select(vec![
            "https://x.y/graph.png",
            " HTTP://x.y/r.pdf ",
            "ftp://x.y/a",
            "",
            "https://",
            "javascript:alert(1)",
        ]),
        prop::option::of(label()),
        prop::option::of(prop_oneof![
            atoms(40),
            (0..3_000usize).prop_map(|n| "🇩🇪".repeat(n))
        ]),
    )
        .prop_map(|(image, url, filename, caption)| Attachment {
            kind: if image {
                AttachmentKind::Image
            } else {
                AttachmentKind::Document
            },
            url: url.to_owned(),
            filename,
            caption,
        });
    prop::collection::vec(attachment, 0..=3)
}

fn reply() -> impl Strategy<Value = AgentReply> {
    (
        status(),
        prop::option::of(text()),
        actions(),
        list(),
        attachments(),
    )
        .prop_map(|(status, text, actions, list, attachments)| AgentReply {
            status,
            text,
            actions,
            list,
            attachments,
        })
}

/// Non-whitespace chars in order, without backticks (fences are re-added at splits).
fn squash(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '`')
        .collect()
}

fn is_interactive(message: &OutgoingMessage) -> bool {
    matches!(
        message,
        OutgoingMessage::Buttons { .. } | OutgoingMessage::List { .. }
    )
}

fn interactive_body(message: &OutgoingMessage) -> Option<&str> {
    match message {
        OutgoingMessage::Buttons { body, .. } | OutgoingMessage::List { body, .. } => Some(body),
        _ => None,
    }
}

/// The list body the formatter uses, when the agent's list yields a list message at all.
fn explicit_list_body(reply: &AgentReply) -> Option<String> {
    let list = reply.list.as_ref()?;
    let has_rows = list.sections.iter().any(|section| {
        section
            .rows
            .iter()
            .any(|row| !row.id.trim().is_empty() || !row.title.trim().is_empty())
    });
    if !has_rows {
        return None;
    }
    list.body
        .as_deref()
        .map(to_whatsapp)
        .filter(|body| !body.is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_message_is_within_whatsapp_limits(reply in reply()) {
        for message in format_reply(&reply) {
            prop_assert!(check(&message).is_ok(), "{:?}: {:?}", check(&message), message);
        }
    }

    #[test]
    fn messages_are_bounded_and_ordered(reply in reply()) {
        let messages = format_reply(&reply);
        let texts = messages.iter().take_while(|m| matches!(m, OutgoingMessage::Text { .. })).count();
        let media = messages[texts..]
            .iter()
            .take_while(|m| matches!(m, OutgoingMessage::Image { .. } | OutgoingMessage::Document { .. }))
            .count();
        let interactive = messages.len() - texts - media;
        prop_assert!(interactive <= 1, "{messages:?}");
        prop_assert!(messages.last().is_some_and(is_interactive) || interactive == 0, "{messages:?}");
        prop_assert!(media <= reply.attachments.len());
        prop_assert!(texts <= MAX_TEXT_PARTS);
        prop_assert!(texts + interactive <= MAX_TEXT_PARTS + 1);
        prop_assert!(messages.len() <= MAX_TEXT_PARTS + 1 + reply.attachments.len());
        if messages.is_empty() {
            // Nothing is sent only when there was nothing to say.
            prop_assert!(reply.status.and_then(|s| s.emoji()).is_none());
            prop_assert!(reply.text.as_deref().is_none_or(|t| to_whatsapp(t).is_empty()));
        }
    }

    #[test]
    fn no_text_is_lost_within_the_part_bound(reply in reply()) {
        let messages = format_reply(&reply);
        let texts: Vec<&str> = messages
            .iter()
            .filter_map(|m| match m {
                OutgoingMessage::Text { body } => Some(body.as_str()),
                _ => None,
            })
            .collect();
        if texts.iter().any(|t| t.contains("(reply truncated: ")) {
            return Ok(());
        }
        let emoji = reply.status.and_then(|s| s.emoji());
        let converted = reply.text.as_deref().map(to_whatsapp).unwrap_or_default();
        let body = messages.last().and_then(interactive_body);
        if converted.is_empty() {
            // Only the status emoji, alone or in front of the interactive body.
            let expected: Vec<&str> = match (emoji, body) {
                (Some(emoji), None) => vec![emoji],
                _ => vec![],
            };
            prop_assert_eq!(texts, expected);
            return Ok(());
        }
        let expected = match emoji {
            Some(emoji) => format!("{emoji} {converted}"),
            None => converted,
        };
        let mut sent = texts.concat();
        if explicit_list_body(&reply).is_none() {
            sent.push_str(body.unwrap_or_default());
        }
        prop_assert_eq!(squash(&sent), squash(&expected));
    }

    #[test]
    fn plain_text_is_unchanged(
        lines in prop::collection::vec(
            prop::collection::vec(
                select(vec!["pod", "api-1", "Running", "10:30", "(3", "restarts)", "node_pool_a",
                    "ok.", "done!", "why?", "👍", "👨‍👩‍👧‍👦", "漢字", "café", "e\u{301}", "50%", "a@b.c"]),
                1..12,
            ),
            1..20,
        ),
        separators in prop::collection::vec(select(vec!["\n", "\n\n"]), 20),
    ) {
        let mut plain = String::new();
        for (index, words) in lines.iter().enumerate() {
            if index > 0 {
                plain.push_str(separators[index]);
            }
            plain.push_str(&words.join(" "));
        }
        prop_assert_eq!(to_whatsapp(&plain), plain);
    }

    #[test]
    fn converted_length_is_linear_in_nested_markdown(markdown in nested_markdown()) {
        // A line's prefix is bounded whatever the depth: the output cannot grow as depth × lines.
        let converted = to_whatsapp(&markdown);
        prop_assert!(
            converted.len() <= 24 * markdown.len() + 64,
            "{} bytes became {}", markdown.len(), converted.len()
        );
    }
}

#[test]
fn an_empty_reply_sends_nothing() {
    assert!(format_reply(&AgentReply::default()).is_empty());
}

#[test]
fn a_huge_reply_is_cut_with_a_marker() {
    let text = "Line of a very long log output\n".repeat(3_000);
    let messages = format_reply(&AgentReply::text(Some(ReplyStatus::Info), text));
    assert_eq!(messages.len(), MAX_TEXT_PARTS);
    assert!(messages.iter().all(|m| check(m).is_ok()));
    match messages.last() {
        Some(OutgoingMessage::Text { body }) => {
            assert!(body.contains("\n\n… (reply truncated: "), "{body}");
            assert!(body.ends_with(" more characters)"));
        }
        other => panic!("expected a text, got {other:?}"),
    }
}

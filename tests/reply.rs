//! Property tests of the reply formatter: whatever the agent answers, every message WhatsApp
//! receives is within its limits, no text is lost below the part bound, and the number of
//! messages stays bounded. Then the hostile replies one by one, from the agent's JSON: too
//! many attachments, invisible titles, unreadable parts, lists without rows, refused links.

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{Value, json};
use whatsapp_agent_lambda::agent::{
    Action, AgentReply, Attachment, AttachmentKind, ListRow, ListSection, ListSpec, ReplyStatus,
};
use whatsapp_agent_lambda::domain::{ListRowOut, ListSectionOut, OutgoingMessage, ReplyButton};
use whatsapp_agent_lambda::reply::limits::{MAX_ATTACHMENTS, MAX_TEXT_PARTS, check};
use whatsapp_agent_lambda::reply::sanitize::{
    fetchable_link, is_visible, multi_line, visible_line,
};
use whatsapp_agent_lambda::reply::{LEFT_OUT_NOTE, format_reply, markdown::to_whatsapp};

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

/// Ids, labels and titles: empty, blank, invisible, with control characters, duplicates,
/// emoji, very long.
fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec!["", "   ", "Restart", "Restart", "restart", "Scale up", "🚀", "👨‍👩‍👧‍👦 family"])
            .prop_map(str::to_owned),
        2 => select(vec!["\u{200B}", "\u{2800}\u{2800}", "\u{3164}", "\u{115F}\u{1160}", "\u{FE0F}",
            "\u{00AD}", "\u{FEFF}\u{2060}", "Re\nstart", "\u{202E}fdp.exe", "bell\u{7}", "\r\n\t", "a\u{2028}b",
            "\u{200B}ok\u{200B}"])
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
        select(vec![
            AttachmentKind::Image,
            AttachmentKind::Document,
            AttachmentKind::Video,
            AttachmentKind::Audio,
            AttachmentKind::Sticker,
        ]),
        select(vec![
            "https://x.y/graph.png",
            " HTTP://x.y/r.pdf ",
            "ftp://x.y/a",
            "",
            "https://",
            "javascript:alert(1)",
            "/relative.png",
            "https://x.y/a b.png",
            "https://x.y/a\n.png",
            "https://x.y/café <1>.png",
            "https://x.y/ca%fé.png",
        ]),
        prop::option::of(label()),
        prop::option::of(prop_oneof![
            atoms(40),
            (0..3_000usize).prop_map(|n| "🇩🇪".repeat(n))
        ]),
    )
        .prop_map(|(kind, url, filename, caption)| Attachment {
            kind,
            url: url.to_owned(),
            filename,
            caption,
        })
        .boxed();
    prop_oneof![
        4 => prop::collection::vec(attachment.clone(), 0..=3),
        1 => prop::collection::vec(attachment, 8..=14),
    ]
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
            ..AgentReply::default()
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

fn is_media(message: &OutgoingMessage) -> bool {
    matches!(
        message,
        OutgoingMessage::Image { .. }
            | OutgoingMessage::Document { .. }
            | OutgoingMessage::Video { .. }
            | OutgoingMessage::Audio { .. }
            | OutgoingMessage::Sticker { .. }
    )
}

/// Whether the agent's list has a row that shows something (id or title).
fn list_has_rows(list: &ListSpec) -> bool {
    list.sections.iter().any(|section| {
        section
            .rows
            .iter()
            .any(|row| visible_line(&row.id).is_some() || visible_line(&row.title).is_some())
    })
}

/// The list body the formatter uses, when the agent's list yields a list message at all.
fn explicit_list_body(reply: &AgentReply) -> Option<String> {
    let list = reply.list.as_ref()?;
    if !list_has_rows(list) {
        return None;
    }
    list.body
        .as_deref()
        .map(to_whatsapp)
        .filter(|body| !body.is_empty())
}

/// Attachments WhatsApp can fetch, within the bound.
fn fetchable(reply: &AgentReply) -> Vec<&Attachment> {
    reply
        .attachments
        .iter()
        .filter(|a| fetchable_link(a.url.trim()).is_ok())
        .take(MAX_ATTACHMENTS)
        .collect()
}

/// What the text must say: the agent's text, a list without rows as text, and the captions of
/// sent audio and stickers (which cannot carry one).
fn expected_text(reply: &AgentReply) -> String {
    let list_text = reply
        .list
        .as_ref()
        .filter(|list| !list_has_rows(list))
        .map(|list| {
            let header = list.header.as_deref().and_then(visible_line);
            let body = list.body.as_deref().map(to_whatsapp);
            format!("{}{}", header.unwrap_or_default(), body.unwrap_or_default())
        });
    let captions = fetchable(reply)
        .into_iter()
        .filter(|a| matches!(a.kind, AttachmentKind::Audio | AttachmentKind::Sticker))
        .filter_map(|a| a.caption.as_deref())
        .map(|caption| to_whatsapp(&multi_line(caption)))
        .filter(|caption| is_visible(caption));
    reply
        .text
        .as_deref()
        .map(to_whatsapp)
        .into_iter()
        .chain(list_text)
        .chain(captions)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_message_is_within_whatsapp_limits(reply in reply()) {
        // The reply as the agent's JSON, read back: the formatter sees what decoding gives.
        let json = serde_json::to_value(&reply).expect("JSON");
        let reply: AgentReply = serde_json::from_value(json).expect("a reply");
        for message in format_reply(&reply) {
            prop_assert!(check(&message).is_ok(), "{:?}: {:?}", check(&message), message);
        }
    }

    #[test]
    fn messages_are_bounded_and_ordered(reply in reply()) {
        let messages = format_reply(&reply);
        let texts = messages.iter().take_while(|m| matches!(m, OutgoingMessage::Text { .. })).count();
        let media = messages[texts..].iter().take_while(|m| is_media(m)).count();
        let interactive = messages.len() - texts - media;
        prop_assert!(interactive <= 1, "{messages:?}");
        prop_assert!(messages.last().is_some_and(is_interactive) || interactive == 0, "{messages:?}");
        prop_assert_eq!(media, fetchable(&reply).len());
        prop_assert!(media <= MAX_ATTACHMENTS);
        prop_assert!(texts <= MAX_TEXT_PARTS);
        prop_assert!(texts + interactive <= MAX_TEXT_PARTS + 1);
        prop_assert!(messages.len() <= MAX_TEXT_PARTS + 1 + MAX_ATTACHMENTS);
        if messages.is_empty() {
            // Nothing is sent only when there was nothing to say.
            prop_assert!(reply.status.and_then(|s| s.emoji()).is_none());
            prop_assert!(expected_text(&reply).trim().is_empty());
            prop_assert!(reply.attachments.is_empty());
        }
    }

    #[test]
    fn what_cannot_be_sent_is_told_in_a_note(reply in reply()) {
        let messages = format_reply(&reply);
        let said: String = messages
            .iter()
            .filter_map(|m| m.text_body().or_else(|| interactive_body(m)))
            .collect();
        prop_assert!(said.matches(LEFT_OUT_NOTE).count() <= 1, "{messages:?}");
        let refused = reply.attachments.iter().filter(|a| fetchable_link(a.url.trim()).is_err()).count();
        let over = reply.attachments.len() - refused - fetchable(&reply).len();
        if refused + over > 0 {
            prop_assert!(said.contains(LEFT_OUT_NOTE), "{messages:?}");
        }
        if over > 0 {
            let more = format!("{over} more attachment");
            prop_assert!(said.contains(&more), "{messages:?}");
        }
    }

    #[test]
    fn no_text_is_lost_within_the_part_bound(reply in reply()) {
        let messages = format_reply(&reply);
        let mut texts: Vec<&str> = messages
            .iter()
            .filter_map(OutgoingMessage::text_body)
            .collect();
        if texts.iter().any(|t| t.contains("(reply truncated: ")) {
            return Ok(());
        }
        // The note ends the interactive body or the text (tested above); what comes before it
        // is the reply's text.
        let without_note = |text: &mut &str| {
            if let Some(at) = text.find(LEFT_OUT_NOTE) {
                *text = &text[..at];
            }
        };
        if let Some(last) = texts.last_mut() {
            without_note(last);
        }
        let mut body = messages.last().and_then(interactive_body);
        if let Some(body) = body.as_mut() {
            without_note(body);
        }
        let emoji = reply.status.and_then(|s| s.emoji());
        let converted = expected_text(&reply);
        if converted.trim().is_empty() {
            // Only the status emoji, alone or in front of the interactive body.
            let expected = match (emoji, body) {
                (Some(emoji), None) => emoji.to_owned(),
                _ => String::new(),
            };
            prop_assert_eq!(squash(&texts.concat()), squash(&expected));
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

// ---------------------------------------------------------------------------------------------
// Hostile replies, as the agent's JSON: what the user gets.

/// The agent's JSON read the way the adapters read it, then formatted.
fn format_json(reply: Value) -> Vec<OutgoingMessage> {
    let reply: AgentReply = serde_json::from_value(reply).expect("a reply, whatever its parts");
    let messages = format_reply(&reply);
    for message in &messages {
        assert!(check(message).is_ok(), "{:?}: {message:?}", check(message));
    }
    messages
}

fn text_bodies(messages: &[OutgoingMessage]) -> Vec<&str> {
    messages
        .iter()
        .filter_map(OutgoingMessage::text_body)
        .collect()
}

#[test]
fn five_hundred_attachments_send_ten_and_count_the_rest() {
    let attachments: Vec<Value> = (0..500)
        .map(|n| json!({"type": "image", "url": format!("https://x.y/{n}.png")}))
        .collect();
    let messages = format_json(json!({"text": "Graphs", "attachments": attachments}));
    let media: Vec<&OutgoingMessage> = messages.iter().filter(|m| is_media(m)).collect();
    assert_eq!(media.len(), MAX_ATTACHMENTS);
    assert_eq!(
        media[9],
        &OutgoingMessage::Image {
            link: "https://x.y/9.png".into(),
            caption: None
        }
    );
    assert_eq!(messages.len(), 1 + MAX_ATTACHMENTS);
    assert_eq!(
        text_bodies(&messages),
        vec![format!("Graphs\n\n{LEFT_OUT_NOTE} 490 more attachments.")]
    );
}

#[test]
fn invisible_titles_fall_back_and_control_characters_never_reach_whatsapp() {
    let messages = format_json(json!({
        "text": "Restart?",
        "actions": [
            {"id": "restart", "label": "\u{200b}\u{200b}"},
            {"id": "scale", "label": "\u{2800}"},
            {"id": "\u{3164}", "label": "Roll\nback\u{0007}"},
            {"id": "\u{200b}", "label": "\u{115f}\u{1160}"}
        ]
    }));
    assert_eq!(
        messages,
        vec![OutgoingMessage::Buttons {
            header: None,
            body: "Restart?".into(),
            footer: None,
            buttons: vec![
                ReplyButton {
                    id: "restart".into(),
                    title: "restart".into()
                },
                ReplyButton {
                    id: "scale".into(),
                    title: "scale".into()
                },
                ReplyButton {
                    id: "roll-back".into(),
                    title: "Roll back".into()
                },
            ],
        }]
    );

    let messages = format_json(json!({
        "list": {
            "header": "\u{200b}", "body": "Pick one", "button": "\u{2800}\u{2800}",
            "sections": [
                {"title": "\u{feff}", "rows": [{"id": "a", "title": "\u{200b}", "description": "\u{00ad}"}]},
                {"title": "B\u{202e}\r\n", "rows": [{"id": "b\n", "title": "Bee"}]}
            ]
        },
        "attachments": [{"type": "document", "url": "https://x.y/r.pdf",
                         "filename": "report\n.pdf\u{0000}", "caption": "line 1\r\nline 2\u{001b}"}]
    }));
    assert_eq!(
        messages,
        vec![
            OutgoingMessage::Document {
                link: "https://x.y/r.pdf".into(),
                filename: Some("report .pdf".into()),
                caption: Some("line 1\nline 2".into()),
            },
            OutgoingMessage::List {
                header: None,
                body: "Pick one".into(),
                footer: None,
                button: "Choose".into(),
                sections: vec![
                    ListSectionOut {
                        title: Some("Options 1".into()),
                        rows: vec![ListRowOut {
                            id: "a".into(),
                            title: "a".into(),
                            description: None
                        }],
                    },
                    ListSectionOut {
                        title: Some("B".into()),
                        rows: vec![ListRowOut {
                            id: "b".into(),
                            title: "Bee".into(),
                            description: None
                        }],
                    },
                ],
            },
        ]
    );
}

#[test]
fn one_bad_part_leaves_the_rest_of_the_reply_to_the_user() {
    let messages = format_json(json!({
        "status": "warning",
        "text": "Here is what I found",
        "attachments": [
            {"type": "video", "url": "https://x.y/v.mp4", "caption": "the **deploy**"},
            {"type": "audio", "url": "https://x.y/a.ogg", "caption": "listen"},
            {"type": "sticker", "url": "https://x.y/s.webp"},
            {"type": "IMAGE", "url": "https://x.y/i.png"},
            {"type": null, "url": "https://x.y/n.png"},
            {"type": "hologram", "url": "https://x.y/h"},
            {"type": "image"},
            "https://x.y/bare.png"
        ],
        "list": {"body": "Pick a pod", "sections": [{"rows": [
            {"id": "api-1"},
            {"id": "api-2", "title": {"nested": true}},
            7
        ]}]}
    }));
    assert_eq!(
        messages,
        vec![
            // The audio's caption joins the text (WhatsApp shows none with audio).
            OutgoingMessage::Text {
                body: "⚠️ Here is what I found\n\nlisten".into()
            },
            OutgoingMessage::Video {
                link: "https://x.y/v.mp4".into(),
                caption: Some("the *deploy*".into())
            },
            OutgoingMessage::Audio {
                link: "https://x.y/a.ogg".into()
            },
            OutgoingMessage::Sticker {
                link: "https://x.y/s.webp".into()
            },
            OutgoingMessage::Image {
                link: "https://x.y/i.png".into(),
                caption: None
            },
            // The note ends what the user reads last: the list's body.
            OutgoingMessage::List {
                header: None,
                body: format!("Pick a pod\n\n{LEFT_OUT_NOTE} 6 unreadable parts."),
                footer: None,
                button: "Choose".into(),
                sections: vec![ListSectionOut {
                    title: None,
                    // A row without a title is titled with its id.
                    rows: vec![ListRowOut {
                        id: "api-1".into(),
                        title: "api-1".into(),
                        description: None
                    }],
                }],
            },
        ]
    );
}

#[test]
fn a_list_without_rows_is_sent_as_text() {
    for sections in [
        json!([]),
        Value::Null,
        json!([{"title": "empty", "rows": []}, {"rows": null}]),
    ] {
        let messages = format_json(json!({
            "text": "Pods in prod",
            "list": {"header": "Production", "body": "Pick a **pod**", "sections": sections}
        }));
        assert_eq!(
            messages,
            vec![OutgoingMessage::Text {
                body: "Pods in prod\n\nProduction\nPick a *pod*".into()
            }],
            "{sections}"
        );
    }
    // Without text, the list's body alone still reaches the user.
    let messages = format_json(json!({"list": {"body": "Nothing to pick today"}}));
    assert_eq!(text_bodies(&messages), vec!["Nothing to pick today"]);
}

#[test]
fn a_reply_whose_only_attachment_is_refused_names_it_instead_of_sending_nothing() {
    for url in [
        "ftp://x.y/r.pdf",
        "javascript:alert(1)",
        "/reports/r.pdf",
        "",
        "  ",
    ] {
        let messages = format_json(json!({
            "attachments": [{"type": "document", "url": url, "filename": "r\u{0}.pdf"}]
        }));
        assert_eq!(
            text_bodies(&messages),
            vec![format!("{LEFT_OUT_NOTE} r.pdf (the link cannot be used).")],
            "{url:?}"
        );
        assert_eq!(messages.len(), 1, "{url:?}");
    }
    // With no file name, the caption names it; with neither, its kind.
    let messages = format_json(json!({"attachments": [
        {"type": "image", "url": "ftp://x.y/a.png", "caption": "CPU\nspike"},
        {"type": "audio", "url": "ftp://x.y/a.ogg"}
    ]}));
    assert_eq!(
        text_bodies(&messages),
        vec![format!(
            "{LEFT_OUT_NOTE} CPU spike, an audio (the link cannot be used)."
        )]
    );
}

#[test]
fn links_with_blanks_or_control_characters_inside_are_refused_not_sent() {
    for url in [
        "https://x.y/a b.png",
        "https://x.y/a\n.png",
        "https://x.y/a\t.png",
        "https://x.y/a\u{200b}.png",
        "https:///a.png",
    ] {
        let messages = format_json(json!({
            "text": "Graph",
            "attachments": [{"type": "image", "url": url}]
        }));
        assert_eq!(
            messages,
            vec![OutgoingMessage::Text {
                body: format!("Graph\n\n{LEFT_OUT_NOTE} an image (the link cannot be used).")
            }],
            "{url:?}"
        );
    }
    // What a URI cannot hold as it is gets percent-encoded, as a browser would.
    let messages =
        format_json(json!({"attachments": [{"type": "image", "url": "https://x.y/café<1>.png"}]}));
    assert_eq!(
        messages,
        vec![OutgoingMessage::Image {
            link: "https://x.y/caf%C3%A9%3C1%3E.png".into(),
            caption: None
        }]
    );
    // Surrounding spaces are trimmed, the scheme's case does not matter.
    let messages =
        format_json(json!({"attachments": [{"type": "Image", "url": " HTTPS://x.y/a.png\n"}]}));
    assert_eq!(
        messages,
        vec![OutgoingMessage::Image {
            link: "HTTPS://x.y/a.png".into(),
            caption: None
        }]
    );
}

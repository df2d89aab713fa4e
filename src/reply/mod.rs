//! Turns an agent's reply into WhatsApp messages that respect every WhatsApp limit.
//! The agent never has to know those limits.
//!
//! [`markdown`] converts the formatting, [`split`] cuts text to length without breaking a
//! character or an emoji, `interactive` builds reply buttons and lists, [`sanitize`] keeps
//! control and invisible characters out of titles and refuses links WhatsApp cannot fetch;
//! [`format_reply`] puts them in order: the text parts, then the attachments (at most
//! [`limits::MAX_ATTACHMENTS`]), then the interactive message last so that its buttons sit at
//! the bottom of the chat. What could not be shown is told in one note ([`LEFT_OUT_NOTE`]).

mod interactive;
pub mod limits;
pub mod markdown;
pub mod params;
pub mod sanitize;
pub mod split;

pub use interactive::{DEFAULT_BODY, DEFAULT_LIST_BUTTON};
pub use markdown::to_whatsapp;
pub use split::shorten;

use crate::agent::{AgentReply, Attachment, AttachmentKind};
use crate::domain::OutgoingMessage;
use limits::{
    CAPTION_MAX, FILENAME_MAX, INTERACTIVE_BODY_MAX, MAX_ATTACHMENTS, MAX_TEXT_PARTS, TEXT_BODY_MAX,
};
use sanitize::{fetchable_link, is_visible, multi_line, visible_line};

/// The short message a user gets when the agent failed for a reason that may pass (a timeout,
/// a 5xx or 429 answer, a network failure): asking again later may work.
pub const AGENT_FAILED_TEXT: &str =
    "❌ Sorry, the agent could not answer this message. Please try again in a moment.";
/// The short message a user gets when the agent's failure will repeat (a 4xx answer, an answer
/// that is not a reply, a state machine that gave up): no invitation to try again.
pub const AGENT_FAILED_PERMANENT_TEXT: &str = "❌ Sorry, the agent could not answer this message.";
/// What the user reads when a streaming agent broke off after some of its answer was shown
/// (it cannot be asked again: a second answer would differ from what was already shown).
pub const AGENT_CUT_OFF_TEXT: &str =
    "⚠️ The agent stopped before finishing this answer. What came before stands.";
/// How the note starts that ends a reply some part of which could not be shown.
pub const LEFT_OUT_NOTE: &str = "⚠️ Part of this answer could not be shown:";
/// Refused attachments named in the note; the others are counted.
const NAMED_ATTACHMENTS_MAX: usize = 5;
/// Characters of a refused attachment's name in the note.
const ATTACHMENT_NAME_MAX: usize = 40;

/// The message sent after a streaming agent broke off ([`AGENT_CUT_OFF_TEXT`]).
pub fn agent_cut_off() -> OutgoingMessage {
    OutgoingMessage::Text {
        body: AGENT_CUT_OFF_TEXT.to_owned(),
    }
}

/// The message sent when the agent fails, times out or answers something unreadable;
/// `retryable` is [`crate::agent::AgentError::is_retryable`]: only then is the user told to
/// try again.
pub fn agent_failed(retryable: bool) -> OutgoingMessage {
    let body = if retryable {
        AGENT_FAILED_TEXT
    } else {
        AGENT_FAILED_PERMANENT_TEXT
    };
    OutgoingMessage::Text {
        body: body.to_owned(),
    }
}

/// Formats one agent reply into the messages to send, in order. Empty when there is nothing to say.
///
/// The status emoji goes in front of the text. With no text, the emoji goes in front of the
/// interactive body if there is an interactive message, else it is sent alone.
///
/// Whatever cannot be sent as the agent meant still reaches the user: a list without a usable
/// row becomes text, the caption of an audio or sticker joins the text, and what is left out
/// (unreadable parts, options and attachments over the limits, attachments whose link cannot
/// be fetched, named) is told in one note at the end of the text ([`LEFT_OUT_NOTE`]).
pub fn format_reply(reply: &AgentReply) -> Vec<OutgoingMessage> {
    let plan = interactive::menu(reply);
    let media = media(&reply.attachments);
    let note = left_out_note(
        reply.dropped.len(),
        plan.left_out,
        media.over_limit,
        &media.refused,
    );

    let emoji = reply.status.and_then(|status| status.emoji());
    let converted = reply
        .text
        .as_deref()
        .map(to_whatsapp)
        .into_iter()
        .chain(plan.fallback_text)
        .chain(media.captions)
        .filter(|text| !text.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n\n");
    let text = match emoji {
        Some(emoji) if !converted.is_empty() => {
            // A leading code block, list or quote keeps its syntax at the start of a line.
            let separator = if starts_with_block(&converted) {
                "\n"
            } else {
                " "
            };
            format!("{emoji}{separator}{converted}")
        }
        _ => converted,
    };
    let with_emoji = |body: &str| match emoji {
        Some(emoji) if text.is_empty() => shorten(&format!("{emoji} {body}"), INTERACTIVE_BODY_MAX),
        _ => body.to_owned(),
    };
    // The note may need a message of its own: the text gets one part fewer.
    let max_parts = if note.is_some() {
        MAX_TEXT_PARTS - 1
    } else {
        MAX_TEXT_PARTS
    };

    let (mut parts, interactive) = match plan.menu {
        None => {
            let text = match emoji {
                Some(emoji) if text.is_empty() => emoji.to_owned(),
                _ => text,
            };
            (split::split_text(&text, TEXT_BODY_MAX, max_parts), None)
        }
        Some(menu) => {
            let explicit = menu.body.clone();
            let (parts, body) = match explicit {
                // The agent chose the list body: the whole text goes first.
                Some(body) => (
                    split::split_text(&text, TEXT_BODY_MAX, max_parts - 1),
                    with_emoji(&body),
                ),
                // The end of the text becomes the body, right above the buttons.
                None => {
                    split::split_with_tail(&text, TEXT_BODY_MAX, INTERACTIVE_BODY_MAX, max_parts)
                        .unwrap_or_else(|| {
                            (
                                split::split_text(&text, TEXT_BODY_MAX, max_parts - 1),
                                with_emoji(DEFAULT_BODY),
                            )
                        })
                }
            };
            (parts, Some((menu, body)))
        }
    };
    let interactive = match note {
        None => interactive.map(|(menu, body)| menu.into_message(body)),
        Some(note) => match interactive {
            // The body is what the user reads last: the note goes there when it fits.
            Some((menu, body)) => {
                let body = match append(&body, &note, INTERACTIVE_BODY_MAX) {
                    Some(body) => body,
                    None => {
                        add_note(&mut parts, note);
                        body
                    }
                };
                Some(menu.into_message(body))
            }
            None => {
                add_note(&mut parts, note);
                None
            }
        },
    };

    let mut messages: Vec<OutgoingMessage> = parts
        .into_iter()
        .map(|body| OutgoingMessage::Text { body })
        .collect();
    messages.extend(media.messages);
    messages.extend(interactive);
    messages
}

/// Ends the last text part with the note, or sends it on its own when the part is full, ends
/// in an open code block, or there is no text.
fn add_note(parts: &mut Vec<String>, note: String) {
    match parts.last_mut() {
        Some(last) => match append(last, &note, TEXT_BODY_MAX) {
            Some(with_note) => *last = with_note,
            None => parts.push(note),
        },
        None => parts.push(note),
    }
}

/// `text` with `note` as its last paragraph, if that fits in `max` chars and `text` does not
/// end inside a code block (where the note would read as code).
fn append(text: &str, note: &str, max: usize) -> Option<String> {
    let fits = text.chars().count() + 2 + note.chars().count() <= max;
    let closed = text.matches(markdown::FENCE).count().is_multiple_of(2);
    (fits && closed).then(|| format!("{text}\n\n{note}"))
}

/// The note telling the user what of the answer they are not seeing; `None` when nothing.
fn left_out_note(
    unreadable: usize,
    options: usize,
    attachments: usize,
    refused: &[String],
) -> Option<String> {
    let count = |n: usize, one: &str, many: &str| {
        (n > 0).then(|| format!("{n} {}", if n == 1 { one } else { many }))
    };
    let named = (!refused.is_empty()).then(|| {
        let mut names = refused
            .iter()
            .take(NAMED_ATTACHMENTS_MAX)
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        if refused.len() > NAMED_ATTACHMENTS_MAX {
            names.push_str(&format!(
                " and {} more",
                refused.len() - NAMED_ATTACHMENTS_MAX
            ));
        }
        format!("{names} (the link cannot be used)")
    });
    let items: Vec<String> = [
        count(unreadable, "unreadable part", "unreadable parts"),
        count(options, "more option", "more options"),
        count(attachments, "more attachment", "more attachments"),
        named,
    ]
    .into_iter()
    .flatten()
    .collect();
    (!items.is_empty()).then(|| format!("{LEFT_OUT_NOTE} {}.", items.join("; ")))
}

/// Whether WhatsApp text starts with a code fence, a list item or a quote.
fn starts_with_block(text: &str) -> bool {
    let ordered_item = text
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .strip_prefix(['.', ')'])
        .is_some_and(|rest| rest.starts_with(' '))
        && text.starts_with(|c: char| c.is_ascii_digit());
    text.starts_with(markdown::FENCE)
        || text.starts_with("- ")
        || text.starts_with('>')
        || ordered_item
}

/// What a reply's attachments come to.
#[derive(Debug, Default)]
struct Media {
    /// At most [`MAX_ATTACHMENTS`] media messages, in the agent's order.
    messages: Vec<OutgoingMessage>,
    /// Captions of media WhatsApp shows without one (audio, stickers), for the text.
    captions: Vec<String>,
    /// Names of the attachments whose link WhatsApp could not fetch.
    refused: Vec<String>,
    /// Fetchable attachments beyond [`MAX_ATTACHMENTS`].
    over_limit: usize,
}

fn media(attachments: &[Attachment]) -> Media {
    let mut media = Media::default();
    for (index, attachment) in attachments.iter().enumerate() {
        let link = match fetchable_link(attachment.url.trim()) {
            Ok(link) => link,
            Err(problem) => {
                // The reason only: a link may carry a token or a phone number.
                tracing::warn!(
                    index,
                    kind = attachment.kind.as_str(),
                    problem,
                    "attachment link cannot be fetched; attachment named in the text instead"
                );
                media.refused.push(attachment_name(attachment));
                continue;
            }
        };
        if media.messages.len() == MAX_ATTACHMENTS {
            media.over_limit += 1;
            continue;
        }
        let (message, caption) = media_message(attachment, link);
        media.messages.push(message);
        media.captions.extend(caption);
    }
    if media.over_limit > 0 {
        tracing::warn!(
            dropped = media.over_limit,
            "more than {MAX_ATTACHMENTS} attachments; extra attachments dropped"
        );
    }
    media
}

/// The media message for an attachment with a fetchable `link`, and the caption it cannot
/// carry (audio, stickers), converted for the text.
fn media_message(attachment: &Attachment, link: String) -> (OutgoingMessage, Option<String>) {
    let caption = attachment
        .caption
        .as_deref()
        .map(|caption| to_whatsapp(&multi_line(caption)))
        .filter(|caption| is_visible(caption));
    let shown = || {
        caption
            .as_deref()
            .map(|caption| shorten(caption, CAPTION_MAX))
    };
    let message = match attachment.kind {
        AttachmentKind::Image => OutgoingMessage::Image {
            link,
            caption: shown(),
        },
        AttachmentKind::Video => OutgoingMessage::Video {
            link,
            caption: shown(),
        },
        AttachmentKind::Document => OutgoingMessage::Document {
            link,
            filename: attachment
                .filename
                .as_deref()
                .and_then(visible_line)
                .map(|name| shorten(&name, FILENAME_MAX)),
            caption: shown(),
        },
        AttachmentKind::Audio => OutgoingMessage::Audio { link },
        AttachmentKind::Sticker => OutgoingMessage::Sticker { link },
    };
    let leftover = (!attachment.kind.has_caption())
        .then_some(caption)
        .flatten();
    (message, leftover)
}

/// How the note names an attachment: its file name, else its caption, else its kind; on one
/// line and short.
fn attachment_name(attachment: &Attachment) -> String {
    let name = [&attachment.filename, &attachment.caption]
        .into_iter()
        .find_map(|field| field.as_deref().and_then(visible_line))
        .unwrap_or_else(|| {
            let kind = attachment.kind.as_str();
            let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            format!("{article} {kind}")
        });
    shorten(&name, ATTACHMENT_NAME_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{Action, ListRow, ListSection, ListSpec, ReplyStatus};
    use crate::domain::ReplyButton;

    fn texts(messages: &[OutgoingMessage]) -> Vec<&str> {
        messages
            .iter()
            .filter_map(OutgoingMessage::text_body)
            .collect()
    }

    fn actions(labels: &[&str]) -> Vec<Action> {
        labels
            .iter()
            .map(|label| Action {
                id: String::new(),
                label: (*label).to_owned(),
            })
            .collect()
    }

    #[test]
    fn empty_reply_sends_nothing() {
        assert!(format_reply(&AgentReply::default()).is_empty());
        assert!(format_reply(&AgentReply::text(Some(ReplyStatus::Unknown), " \n ")).is_empty());
    }

    #[test]
    fn status_emoji_goes_in_front_of_the_text() {
        let reply = AgentReply::text(Some(ReplyStatus::Warning), "Found **2** pods");
        assert_eq!(
            format_reply(&reply),
            vec![OutgoingMessage::Text {
                body: "⚠️ Found *2* pods".into()
            }]
        );
    }

    #[test]
    fn status_emoji_stands_on_its_own_line_before_a_block() {
        let reply = AgentReply::text(Some(ReplyStatus::Error), "```\nOOMKilled\n```");
        assert_eq!(
            texts(&format_reply(&reply)),
            vec!["❌\n```\nOOMKilled\n```"]
        );
        let reply = AgentReply::text(Some(ReplyStatus::Success), "1. done\n2. done");
        assert_eq!(texts(&format_reply(&reply)), vec!["✅\n1. done\n2. done"]);
    }

    #[test]
    fn unknown_status_adds_no_emoji() {
        let reply = AgentReply::text(Some(ReplyStatus::Unknown), "hi");
        assert_eq!(texts(&format_reply(&reply)), vec!["hi"]);
    }

    #[test]
    fn status_without_text_is_sent_alone() {
        let reply = AgentReply {
            status: Some(ReplyStatus::Success),
            ..AgentReply::default()
        };
        assert_eq!(texts(&format_reply(&reply)), vec!["✅"]);
    }

    #[test]
    fn long_text_becomes_several_messages() {
        let paragraph = "word ".repeat(300);
        let text = [paragraph.trim(); 10].join("\n\n");
        let messages = format_reply(&AgentReply::text(None, text));
        // Two 1499-char paragraphs fit in 4096, three do not.
        assert_eq!(messages.len(), 5);
        assert!(messages.iter().all(|m| limits::check(m).is_ok()));
    }

    #[test]
    fn short_text_becomes_the_button_body() {
        let reply = AgentReply {
            status: Some(ReplyStatus::Info),
            text: Some("Restart it?".into()),
            actions: actions(&["Yes", "No"]),
            ..AgentReply::default()
        };
        assert_eq!(
            format_reply(&reply),
            vec![OutgoingMessage::Buttons {
                header: None,
                body: "ℹ️ Restart it?".into(),
                footer: None,
                buttons: vec![
                    ReplyButton {
                        id: "yes".into(),
                        title: "Yes".into()
                    },
                    ReplyButton {
                        id: "no".into(),
                        title: "No".into()
                    },
                ],
            }]
        );
    }

    #[test]
    fn long_text_goes_first_and_its_end_becomes_the_button_body() {
        let first = "a".repeat(2000);
        let question = "Restart the api deployment?";
        let reply = AgentReply {
            text: Some(format!("{first}\n\n{question}")),
            actions: actions(&["Yes"]),
            ..AgentReply::default()
        };
        let messages = format_reply(&reply);
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0], OutgoingMessage::Text { body: first });
        match &messages[1] {
            OutgoingMessage::Buttons { body, .. } => assert_eq!(body, question),
            other => panic!("expected buttons, got {other:?}"),
        }
    }

    #[test]
    fn buttons_without_text_get_a_default_body() {
        let reply = AgentReply {
            status: Some(ReplyStatus::Error),
            actions: actions(&["Retry"]),
            ..AgentReply::default()
        };
        match format_reply(&reply).as_slice() {
            [OutgoingMessage::Buttons { body, .. }] => assert_eq!(body, "❌ Choose an option:"),
            other => panic!("expected one buttons message, got {other:?}"),
        }
    }

    #[test]
    fn explicit_list_body_keeps_the_text_as_messages() {
        let reply = AgentReply {
            text: Some("Pods in prod".into()),
            list: Some(ListSpec {
                body: Some("Pick a pod".into()),
                sections: vec![ListSection {
                    title: None,
                    rows: vec![ListRow {
                        id: "api-1".into(),
                        title: "api-1".into(),
                        description: None,
                    }],
                }],
                ..ListSpec::default()
            }),
            ..AgentReply::default()
        };
        let messages = format_reply(&reply);
        assert_eq!(texts(&messages), vec!["Pods in prod"]);
        match messages.last() {
            Some(OutgoingMessage::List { body, button, .. }) => {
                assert_eq!(body, "Pick a pod");
                assert_eq!(button, "Choose");
            }
            other => panic!("expected a list last, got {other:?}"),
        }
    }

    #[test]
    fn list_without_rows_sends_only_the_text() {
        let reply = AgentReply {
            text: Some("Nothing to pick".into()),
            list: Some(ListSpec {
                sections: vec![ListSection::default()],
                ..ListSpec::default()
            }),
            ..AgentReply::default()
        };
        assert_eq!(
            format_reply(&reply),
            vec![OutgoingMessage::Text {
                body: "Nothing to pick".into()
            }]
        );
    }

    #[test]
    fn messages_come_as_text_then_attachments_then_buttons() {
        let reply = AgentReply {
            text: Some("x ".repeat(2000)),
            actions: actions(&["OK"]),
            attachments: vec![
                Attachment {
                    kind: AttachmentKind::Image,
                    url: " https://x.y/graph.png ".into(),
                    filename: None,
                    caption: Some("CPU **spike**".into()),
                },
                Attachment {
                    kind: AttachmentKind::Document,
                    url: "file:///etc/passwd".into(),
                    filename: None,
                    caption: None,
                },
                Attachment {
                    kind: AttachmentKind::Document,
                    url: "http://x.y/r.pdf".into(),
                    filename: Some(" report.pdf ".into()),
                    caption: Some(" ".into()),
                },
            ],
            ..AgentReply::default()
        };
        let messages = format_reply(&reply);
        let kinds: Vec<&str> = messages
            .iter()
            .map(|m| match m {
                OutgoingMessage::Text { .. } => "text",
                OutgoingMessage::Image { .. } => "image",
                OutgoingMessage::Buttons { .. } => "buttons",
                OutgoingMessage::List { .. } => "list",
                media => media.type_name(),
            })
            .collect();
        assert_eq!(kinds, vec!["text", "image", "document", "buttons"]);
        // The refused `file:` link is named at the end of the text (here its first part, the
        // buttons' body being too full), not silently gone.
        assert!(
            texts(&messages)[0].ends_with(
                "\n\n⚠️ Part of this answer could not be shown: a document (the link cannot be used)."
            ),
            "{messages:?}"
        );
        assert_eq!(
            messages[1],
            OutgoingMessage::Image {
                link: "https://x.y/graph.png".into(),
                caption: Some("CPU *spike*".into())
            }
        );
        assert_eq!(
            messages[2],
            OutgoingMessage::Document {
                link: "http://x.y/r.pdf".into(),
                filename: Some("report.pdf".into()),
                caption: None
            }
        );
    }

    #[test]
    fn failure_text_invites_a_retry_only_when_one_can_help() {
        let body = |message: OutgoingMessage| match message {
            OutgoingMessage::Text { body } => body,
            other => panic!("expected text, got {other:?}"),
        };
        assert_eq!(body(agent_failed(true)), AGENT_FAILED_TEXT);
        assert!(AGENT_FAILED_TEXT.contains("try again"));
        let permanent = body(agent_failed(false));
        assert_eq!(permanent, AGENT_FAILED_PERMANENT_TEXT);
        assert!(
            !permanent.to_lowercase().contains("try again"),
            "{permanent}"
        );
    }

    #[test]
    fn the_note_counts_and_names_what_was_left_out() {
        let refused: Vec<String> = (1..=7).map(|n| format!("r{n}.pdf")).collect();
        assert_eq!(left_out_note(0, 0, 0, &[]), None);
        assert_eq!(
            left_out_note(1, 2, 3, &refused[..1]).as_deref(),
            Some(
                "⚠️ Part of this answer could not be shown: 1 unreadable part; 2 more options; 3 more attachments; r1.pdf (the link cannot be used)."
            )
        );
        assert_eq!(
            left_out_note(2, 1, 1, &refused).as_deref(),
            Some(
                "⚠️ Part of this answer could not be shown: 2 unreadable parts; 1 more option; 1 more attachment; r1.pdf, r2.pdf, r3.pdf, r4.pdf, r5.pdf and 2 more (the link cannot be used)."
            )
        );
    }

    #[test]
    fn long_captions_are_shortened() {
        let reply = AgentReply {
            attachments: vec![Attachment {
                kind: AttachmentKind::Image,
                url: "https://x.y/a.png".into(),
                filename: None,
                caption: Some("🇩🇪".repeat(CAPTION_MAX)),
            }],
            ..AgentReply::default()
        };
        match format_reply(&reply).as_slice() {
            [
                OutgoingMessage::Image {
                    caption: Some(caption),
                    ..
                },
            ] => {
                assert!(caption.chars().count() <= CAPTION_MAX);
                assert!(caption.ends_with("🇩🇪…"));
            }
            other => panic!("expected one image, got {other:?}"),
        }
    }
}

//! Turns an agent's reply into WhatsApp messages that respect every WhatsApp limit.
//! The agent never has to know those limits.
//!
//! [`markdown`] converts the formatting, [`split`] cuts text to length without breaking a
//! character or an emoji, `interactive` builds reply buttons and lists; [`format_reply`] puts
//! them in order: the text parts, then the attachments, then the interactive message last so
//! that its buttons sit at the bottom of the chat.

mod interactive;
pub mod limits;
pub mod markdown;
pub mod split;

pub use interactive::{DEFAULT_BODY, DEFAULT_LIST_BUTTON};
pub use markdown::to_whatsapp;
pub use split::shorten;

use crate::agent::{AgentReply, Attachment, AttachmentKind};
use crate::graph::OutgoingMessage;
use limits::{CAPTION_MAX, INTERACTIVE_BODY_MAX, MAX_TEXT_PARTS, TEXT_BODY_MAX};

/// The short message a user gets when the agent cannot answer (no internals).
pub const AGENT_FAILED_TEXT: &str =
    "❌ Sorry, the agent could not answer this message. Please try again in a moment.";

/// Link schemes WhatsApp can fetch media from.
const MEDIA_SCHEMES: [&str; 2] = ["https://", "http://"];
/// How much of a rejected link goes into the log (an agent may send anything there).
const LOGGED_URL_MAX: usize = 100;

/// The message sent when the agent fails, times out or answers something unreadable.
pub fn agent_failed() -> OutgoingMessage {
    OutgoingMessage::Text {
        body: AGENT_FAILED_TEXT.to_owned(),
    }
}

/// Formats one agent reply into the messages to send, in order. Empty when there is nothing to say.
///
/// The status emoji goes in front of the text. With no text, the emoji goes in front of the
/// interactive body if there is an interactive message, else it is sent alone.
pub fn format_reply(reply: &AgentReply) -> Vec<OutgoingMessage> {
    let emoji = reply.status.and_then(|status| status.emoji());
    let converted = reply.text.as_deref().map(to_whatsapp).unwrap_or_default();
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

    let menu = interactive::menu(reply);
    let (parts, interactive) = match menu {
        None => {
            let text = match emoji {
                Some(emoji) if text.is_empty() => emoji.to_owned(),
                _ => text,
            };
            (
                split::split_text(&text, TEXT_BODY_MAX, MAX_TEXT_PARTS),
                None,
            )
        }
        Some(menu) => {
            let explicit = menu.body.clone();
            let (parts, body) = match explicit {
                // The agent chose the list body: the whole text goes first.
                Some(body) => (
                    split::split_text(&text, TEXT_BODY_MAX, MAX_TEXT_PARTS - 1),
                    with_emoji(&body),
                ),
                // The end of the text becomes the body, right above the buttons.
                None => split::split_with_tail(
                    &text,
                    TEXT_BODY_MAX,
                    INTERACTIVE_BODY_MAX,
                    MAX_TEXT_PARTS,
                )
                .unwrap_or_else(|| {
                    (
                        split::split_text(&text, TEXT_BODY_MAX, MAX_TEXT_PARTS - 1),
                        with_emoji(DEFAULT_BODY),
                    )
                }),
            };
            (parts, Some(menu.into_message(body)))
        }
    };

    let mut messages: Vec<OutgoingMessage> = parts
        .into_iter()
        .map(|body| OutgoingMessage::Text { body })
        .collect();
    messages.extend(reply.attachments.iter().filter_map(attachment));
    messages.extend(interactive);
    messages
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

/// An image or document message; `None` (logged) when WhatsApp could not fetch its link.
fn attachment(attachment: &Attachment) -> Option<OutgoingMessage> {
    let link = attachment.url.trim();
    let fetchable = MEDIA_SCHEMES.iter().any(|scheme| {
        link.len() > scheme.len()
            && link
                .get(..scheme.len())
                .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
    });
    if !fetchable {
        tracing::warn!(
            url = %shorten(link, LOGGED_URL_MAX),
            "attachment link is not http(s); attachment dropped"
        );
        return None;
    }
    let caption = attachment
        .caption
        .as_deref()
        .map(|caption| shorten(&to_whatsapp(caption), CAPTION_MAX))
        .filter(|caption| !caption.is_empty());
    let link = link.to_owned();
    Some(match attachment.kind {
        AttachmentKind::Image => OutgoingMessage::Image { link, caption },
        AttachmentKind::Document => OutgoingMessage::Document {
            link,
            filename: attachment
                .filename
                .as_deref()
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(str::to_owned),
            caption,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::{Action, ListRow, ListSection, ListSpec, ReplyStatus};
    use crate::graph::ReplyButton;

    fn texts(messages: &[OutgoingMessage]) -> Vec<&str> {
        messages
            .iter()
            .filter_map(|m| match m {
                OutgoingMessage::Text { body } => Some(body.as_str()),
                _ => None,
            })
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
                OutgoingMessage::Document { .. } => "document",
                OutgoingMessage::Buttons { .. } => "buttons",
                OutgoingMessage::List { .. } => "list",
            })
            .collect();
        assert_eq!(kinds, vec!["text", "image", "document", "buttons"]);
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

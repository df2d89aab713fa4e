//! `reply::format_reply` on whatever an agent may answer: every message is within WhatsApp's
//! limits, and one reply becomes at most `MAX_TEXT_PARTS` texts (the interactive body counted
//! among them), then its attachments, then at most one interactive message, in that order.
//!
//! Bytes that deserialize as an `AgentReply` are formatted as such; any other bytes are used as
//! the reply text (lossy UTF-8), alone and with two buttons, so the Markdown converter and the
//! splitter see arbitrary text too. Seeds: agent replies as JSON (written by `make fuzz`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use whatsapp_agent_lambda::agent::{Action, AgentReply, ReplyStatus};
use whatsapp_agent_lambda::domain::OutgoingMessage;
use whatsapp_agent_lambda::reply::format_reply;
use whatsapp_agent_lambda::reply::limits::{MAX_ATTACHMENTS, MAX_TEXT_PARTS, check};

fuzz_target!(|data: &[u8]| {
    match serde_json::from_slice::<AgentReply>(data) {
        Ok(reply) => assert_formats_within_limits(&reply),
        Err(_) => {
            let text = String::from_utf8_lossy(data);
            let mut reply = AgentReply::text(Some(ReplyStatus::Info), text);
            assert_formats_within_limits(&reply);
            reply.actions = ["Yes", "No"]
                .map(|label| Action {
                    id: String::new(),
                    label: label.to_owned(),
                })
                .to_vec();
            assert_formats_within_limits(&reply);
        }
    }
});

fn assert_formats_within_limits(reply: &AgentReply) {
    let messages = format_reply(reply);
    for message in &messages {
        if let Err(broken) = check(message) {
            panic!("{broken}: {message:?}");
        }
    }
    let texts = messages
        .iter()
        .take_while(|m| matches!(m, OutgoingMessage::Text { .. }))
        .count();
    let media = messages[texts..]
        .iter()
        .take_while(|m| {
            matches!(
                m,
                OutgoingMessage::Image { .. }
                    | OutgoingMessage::Document { .. }
                    | OutgoingMessage::Video { .. }
                    | OutgoingMessage::Audio { .. }
                    | OutgoingMessage::Sticker { .. }
            )
        })
        .count();
    let interactive = messages.len() - texts - media;
    assert!(texts <= MAX_TEXT_PARTS, "{texts} text parts: {messages:?}");
    assert!(
        media <= reply.attachments.len().min(MAX_ATTACHMENTS),
        "{media} attachments from {}: {messages:?}",
        reply.attachments.len()
    );
    assert!(
        interactive <= 1,
        "{interactive} interactive messages, or out of order: {messages:?}"
    );
    // The bound counts the interactive body as one of the reply's text parts (limits.rs).
    assert!(
        texts + interactive <= MAX_TEXT_PARTS,
        "{texts} text parts and {interactive} interactive: {messages:?}"
    );
    assert!(
        messages[texts + media..].iter().all(|m| matches!(
            m,
            OutgoingMessage::Buttons { .. } | OutgoingMessage::List { .. }
        )),
        "messages out of order (texts, attachments, interactive): {messages:?}"
    );
}

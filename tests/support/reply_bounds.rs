//! What `format_reply` must make of any agent reply: every message within WhatsApp's limits,
//! and at most `MAX_TEXT_PARTS` texts (the interactive body counted among them), then at most
//! the reply's attachments, then at most one interactive message, in that order.
//!
//! Shared by the property tests (`tests/properties.rs`) and the `format_reply` fuzz target
//! (`tests/fuzz/fuzz_targets/format_reply.rs`, which includes this file by path): it uses the
//! crate and nothing else, so it builds in either.

use whatsapp_agent_lambda::agent::AgentReply;
use whatsapp_agent_lambda::domain::OutgoingMessage;
use whatsapp_agent_lambda::reply::limits::{MAX_ATTACHMENTS, MAX_TEXT_PARTS, check};

/// Checks `messages`, what `format_reply(reply)` gave; the first rule they break, in words.
pub fn check_formatted(reply: &AgentReply, messages: &[OutgoingMessage]) -> Result<(), String> {
    for message in messages {
        if let Err(broken) = check(message) {
            return Err(format!("{broken}: {message:?}"));
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
    let broken = if texts > MAX_TEXT_PARTS {
        format!("{texts} text parts")
    } else if media > reply.attachments.len().min(MAX_ATTACHMENTS) {
        format!("{media} attachments from {}", reply.attachments.len())
    } else if interactive > 1 {
        format!("{interactive} interactive messages, or out of order")
    } else if texts + interactive > MAX_TEXT_PARTS {
        // The bound counts the interactive body as one of the reply's text parts (limits.rs).
        format!("{texts} text parts and {interactive} interactive")
    } else if !messages[texts + media..].iter().all(|m| {
        matches!(
            m,
            OutgoingMessage::Buttons { .. } | OutgoingMessage::List { .. }
        )
    }) {
        "messages out of order (texts, attachments, interactive)".to_owned()
    } else {
        return Ok(());
    };
    Err(format!("{broken}: {messages:?}"))
}

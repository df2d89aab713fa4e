//! Turns an agent's reply into WhatsApp messages that respect every WhatsApp limit.
//! The agent never has to know those limits.

pub mod limits;

use crate::agent::AgentReply;
use crate::graph::OutgoingMessage;

/// The short message a user gets when the agent cannot answer (no internals).
pub const AGENT_FAILED_TEXT: &str =
    "❌ Sorry, the agent could not answer this message. Please try again in a moment.";

/// The message sent when the agent fails, times out or answers something unreadable.
pub fn agent_failed() -> OutgoingMessage {
    OutgoingMessage::Text {
        body: AGENT_FAILED_TEXT.to_owned(),
    }
}

/// Formats one agent reply into the messages to send, in order. Empty when there is nothing to say.
pub fn format_reply(reply: &AgentReply) -> Vec<OutgoingMessage> {
    // Placeholder body replaced by the formatter implementation (see the reply module's brief).
    let _ = reply;
    Vec::new()
}

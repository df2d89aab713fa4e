//! `reply::format_reply` on whatever an agent may answer: every message is within WhatsApp's
//! limits, and one reply becomes at most `MAX_TEXT_PARTS` texts (the interactive body counted
//! among them), then its attachments, then at most one interactive message, in that order.
//!
//! Bytes that deserialize as an `AgentReply` are formatted as such; any other bytes are used as
//! the reply text (lossy UTF-8), alone and with two buttons, so the Markdown converter and the
//! splitter see arbitrary text too. Seeds: agent replies as JSON (written by `make fuzz`).

#![no_main]

/// The property, shared with `tests/properties.rs`.
#[path = "../../support/reply_bounds.rs"]
mod reply_bounds;

use libfuzzer_sys::fuzz_target;
use reply_bounds::check_formatted;
use whatsapp_agent_lambda::agent::{Action, AgentReply, ReplyStatus};
use whatsapp_agent_lambda::reply::format_reply;

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
    if let Err(broken) = check_formatted(reply, &format_reply(reply)) {
        panic!("{broken}");
    }
}

//! `webhook::parse` on arbitrary bytes: it never panics, and every message it returns has an id,
//! a sender and a number to answer from, can be queued as a job (JSON there and back, unchanged)
//! and turned into the agent's request.
//!
//! Seeds: the webhook bodies of `events/*.json` (written by `make fuzz`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use whatsapp_agent_lambda::agent::AgentRequest;
use whatsapp_agent_lambda::queue::Job;
use whatsapp_agent_lambda::webhook;

fuzz_target!(|data: &[u8]| {
    let Ok(parsed) = webhook::parse(data) else {
        return;
    };
    for message in &parsed.messages {
        assert!(
            !message.id.as_str().is_empty(),
            "message without an id: {message:?}"
        );
        let sender = &message.sender;
        assert!(
            sender.phone.as_deref().is_some_and(|p| !p.is_empty())
                || sender.bsuid.as_deref().is_some_and(|b| !b.is_empty()),
            "message without a sender: {message:?}"
        );
        assert!(!sender.id().is_empty());
        assert!(
            !message.channel.phone_number_id.as_str().is_empty(),
            "message without a number to answer from: {message:?}"
        );

        let job = Job::new(message.clone());
        let json = serde_json::to_vec(&job).expect("a parsed message serializes");
        let back: Job = serde_json::from_slice(&json).expect("a queued job deserializes");
        assert_eq!(back, job, "the job changed on its way through the queue");

        let request = AgentRequest::from_message(message);
        assert_eq!(request.event.id, message.id.as_str());
        serde_json::to_vec(&request).expect("the agent request serializes");
    }
});

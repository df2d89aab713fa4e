//! The webhook handler in-process with inline dispatch: a scripted agent (the echo agent, say),
//! a recording Graph API and in-memory claims behind it, the local test senders allowed.

use super::fixtures::secrets_with_app_secret;
use std::sync::Arc;
use whatsapp_agent_lambda::agent::{AgentError, AgentReply, ReplyStatus, ScriptedAgent};
use whatsapp_agent_lambda::config::DEFAULT_MAX_BODY_BYTES;
use whatsapp_agent_lambda::dev::events::{LOCAL_ALLOWED_SENDERS, LOCAL_APP_SECRET};
use whatsapp_agent_lambda::domain::Allowlist;
use whatsapp_agent_lambda::graph::RecordingMessenger;
use whatsapp_agent_lambda::idempotency::MemoryIdempotency;
use whatsapp_agent_lambda::pipeline::Pipeline;
use whatsapp_agent_lambda::webhook::{Dispatcher, WebhookApp};

/// The handler and what it calls, for a test to look at.
pub struct Harness {
    pub app: WebhookApp,
    pub agent: Arc<ScriptedAgent>,
    pub messenger: Arc<RecordingMessenger>,
}

impl Harness {
    /// The [`echo_agent`] behind the handler, requests signed with the local app secret
    /// accepted, bodies up to the default limit read.
    pub fn echo() -> Self {
        Self::inline(echo_agent(), LOCAL_APP_SECRET, DEFAULT_MAX_BODY_BYTES)
    }

    /// `agent` behind the handler, requests signed with `app_secret` accepted, bodies of up to
    /// `max_body` bytes read.
    pub fn inline(agent: ScriptedAgent, app_secret: &str, max_body: usize) -> Self {
        let agent = Arc::new(agent);
        let messenger = Arc::new(RecordingMessenger::new());
        let pipeline = Pipeline::new(
            agent.clone(),
            messenger.clone(),
            Arc::new(MemoryIdempotency::default()),
        );
        let app = WebhookApp::new(
            secrets_with_app_secret(app_secret),
            Allowlist::parse(LOCAL_ALLOWED_SENDERS).unwrap(),
            Dispatcher::Inline(pipeline),
            max_body,
        );
        Self {
            app,
            agent,
            messenger,
        }
    }
}

/// An agent that answers every message at once with ✅ "echo: " and its text.
pub fn echo_agent() -> ScriptedAgent {
    ScriptedAgent::new(|request| {
        Ok(Some(AgentReply::text(
            Some(ReplyStatus::Success),
            format!("echo: {}", request.event.text),
        )))
    })
}

/// An agent that fails every call with HTTP `status` and `body`, as an agent's server would.
pub fn failing_agent(status: u16, body: &'static str) -> ScriptedAgent {
    ScriptedAgent::new(move |_| {
        Err(AgentError::Status {
            status,
            body: body.to_owned(),
        })
    })
}

//! In-memory agent for tests and the demo: answers from a script and records every request.

use super::{Agent, AgentError, AgentReply, AgentRequest};
use crate::BoxFuture;
use std::sync::Mutex;
use std::time::Duration;

type Script = dyn Fn(&AgentRequest) -> Result<Option<AgentReply>, AgentError> + Send + Sync;

/// Answers from a script and records every request.
pub struct ScriptedAgent {
    script: Box<Script>,
    requests: Mutex<Vec<AgentRequest>>,
    delay: Option<Duration>,
}

impl ScriptedAgent {
    /// Answers each request with `script(request)`.
    pub fn new<F>(script: F) -> Self
    where
        F: Fn(&AgentRequest) -> Result<Option<AgentReply>, AgentError> + Send + Sync + 'static,
    {
        Self {
            script: Box::new(script),
            requests: Mutex::new(Vec::new()),
            delay: None,
        }
    }

    /// Answers every request with the same plain text (no status).
    pub fn replying_text(text: impl Into<String>) -> Self {
        let text = text.into();
        Self::new(move |_| Ok(Some(AgentReply::text(None, text.clone()))))
    }

    /// Sleeps (asynchronously) before answering, like a slow agent; the request is recorded
    /// before the sleep, so concurrency tests see calls in flight.
    pub fn with_delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<AgentRequest> {
        self.lock().clone()
    }

    /// How many requests were received.
    pub fn calls(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<AgentRequest>> {
        // A panicking test thread must not hide the requests from the others.
        self.requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Agent for ScriptedAgent {
    fn ask<'a>(
        &'a self,
        request: &'a AgentRequest,
    ) -> BoxFuture<'a, Result<Option<AgentReply>, AgentError>> {
        Box::pin(async move {
            self.lock().push(request.clone());
            if let Some(delay) = self.delay {
                tokio::time::sleep(delay).await;
            }
            (self.script)(request)
        })
    }
}

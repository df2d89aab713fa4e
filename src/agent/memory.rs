//! In-memory agent for tests and the demo: answers from a script and records every request.

use super::{Agent, AgentError, AgentReply, AgentRequest, Part, ReplyStream};
use crate::BoxFuture;
use std::sync::Mutex;
use std::time::Duration;

type Script = dyn Fn(&AgentRequest) -> Result<Option<AgentReply>, AgentError> + Send + Sync;
/// A streamed answer: each part after its own pause.
type PartScript = dyn Fn(&AgentRequest) -> Vec<(Duration, Part)> + Send + Sync;

/// Answers from a script and records every request.
pub struct ScriptedAgent {
    script: Box<Script>,
    parts: Option<Box<PartScript>>,
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
            parts: None,
            requests: Mutex::new(Vec::new()),
            delay: None,
        }
    }

    /// Answers part by part, like an agent streaming NDJSON: each part of `script(request)`
    /// after its pause. (Asked for a whole answer, it gives the last part.)
    pub fn streaming<F>(script: F) -> Self
    where
        F: Fn(&AgentRequest) -> Vec<(Duration, Part)> + Send + Sync + 'static,
    {
        let script = std::sync::Arc::new(script);
        let whole = script.clone();
        let mut agent = Self::new(move |request| {
            whole(request)
                .into_iter()
                .map(|(_, part)| part)
                .last()
                .transpose()
        });
        agent.parts = Some(Box::new(move |request| script(request)));
        agent
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

    fn ask_stream<'a>(&'a self, request: &'a AgentRequest) -> ReplyStream<'a> {
        let Some(parts) = &self.parts else {
            return ReplyStream::whole(self.ask(request));
        };
        self.lock().push(request.clone());
        let parts = parts(request);
        let delay = self.delay;
        let (sender, stream) = ReplyStream::channel();
        tokio::spawn(async move {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            for (pause, part) in parts {
                tokio::time::sleep(pause).await;
                if !sender.send(part).await {
                    return;
                }
            }
        });
        stream
    }
}

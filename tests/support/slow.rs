//! Fakes for long handlings and wide batches: an agent that counts how many of its calls run at
//! once, and a Graph API that takes its time over every send.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use whatsapp_agent_lambda::BoxFuture;
use whatsapp_agent_lambda::agent::{Agent, AgentError, AgentReply, AgentRequest};
use whatsapp_agent_lambda::graph::{
    GraphError, Messenger, OutgoingMessage, Recipient, RecordingMessenger,
};
use whatsapp_agent_lambda::message::{MessageId, PhoneNumberId};

/// Answers every request with `reply` after `delay`; records the most calls in flight at once.
pub struct CountingAgent {
    reply: String,
    delay: Duration,
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    most: AtomicUsize,
}

impl CountingAgent {
    pub fn new(reply: impl Into<String>, delay: Duration) -> Self {
        Self {
            reply: reply.into(),
            delay,
            calls: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        }
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// The most calls that were running at the same time.
    pub fn most_at_once(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

impl Agent for CountingAgent {
    fn ask<'a>(
        &'a self,
        _request: &'a AgentRequest,
    ) -> BoxFuture<'a, Result<Option<AgentReply>, AgentError>> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            Ok(Some(AgentReply::text(None, self.reply.clone())))
        })
    }
}

/// A Graph API that takes `delay` over every send (and read mark), then records it.
pub struct SlowMessenger {
    pub recorded: Arc<RecordingMessenger>,
    delay: Duration,
}

impl SlowMessenger {
    pub fn new(delay: Duration) -> Self {
        Self {
            recorded: Arc::new(RecordingMessenger::new()),
            delay,
        }
    }
}

impl Messenger for SlowMessenger {
    fn send<'a>(
        &'a self,
        from: &'a PhoneNumberId,
        to: &'a Recipient,
        message: &'a OutgoingMessage,
        context: Option<&'a MessageId>,
    ) -> BoxFuture<'a, Result<MessageId, GraphError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.recorded.send(from, to, message, context).await
        })
    }

    fn mark_read<'a>(
        &'a self,
        from: &'a PhoneNumberId,
        message: &'a MessageId,
        typing: bool,
    ) -> BoxFuture<'a, Result<(), GraphError>> {
        Box::pin(async move {
            tokio::time::sleep(self.delay).await;
            self.recorded.mark_read(from, message, typing).await
        })
    }
}

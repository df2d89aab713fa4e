//! A fake for long handlings and wide batches: an agent that counts how many of its calls run at
//! once (a slow Graph API is `RecordingMessenger::with_delay`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use whatsapp_agent_lambda::BoxFuture;
use whatsapp_agent_lambda::agent::{Agent, AgentError, AgentReply, AgentRequest};

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

    /// Asserts that the calls ran concurrently, but never more than `bound` at once.
    pub fn assert_concurrent_within(&self, bound: usize) {
        let most = self.most_at_once();
        assert!(most <= bound, "{most} agent calls at once, bound {bound}");
        assert!(most > 1, "senders still run concurrently");
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

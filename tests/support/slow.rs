//! Long handlings and wide batches: an agent that counts how many of its calls run at once (a
//! slow Graph API is `RecordingMessenger::with_delay`), a reply that goes out in several parts,
//! and redeliveries of a message while its first handling still runs.

use super::fixtures::sent_messages;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use whatsapp_agent_lambda::BoxFuture;
use whatsapp_agent_lambda::agent::{Agent, AgentError, AgentReply, AgentRequest};
use whatsapp_agent_lambda::domain::OutgoingMessage;
use whatsapp_agent_lambda::graph::RecordingMessenger;
use whatsapp_agent_lambda::pipeline::MAX_CONCURRENT_SENDERS;
use whatsapp_agent_lambda::reply::format_reply;

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

    /// Asserts that a batch from `senders` senders, one message each, was answered in full,
    /// its agent calls concurrent but never more than [`MAX_CONCURRENT_SENDERS`] at once.
    pub fn assert_wide_batch_answered(&self, messenger: &RecordingMessenger, senders: usize) {
        assert_eq!(self.calls(), senders);
        assert_eq!(messenger.sent().len(), senders);
        assert!(
            MAX_CONCURRENT_SENDERS < senders / 4,
            "a bound well under the batch's senders"
        );
        let most = self.most_at_once();
        assert!(
            most <= MAX_CONCURRENT_SENDERS,
            "{most} agent calls at once, bound {MAX_CONCURRENT_SENDERS}"
        );
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

/// A handling that takes `step` per part: the agent answers [`long_reply`] after two steps
/// (the read mark, one step, goes out meanwhile), and the Graph API takes `step` for each call.
pub struct SlowHandling {
    pub agent: Arc<CountingAgent>,
    pub messenger: Arc<RecordingMessenger>,
    parts: Vec<OutgoingMessage>,
}

impl SlowHandling {
    pub fn new(step: Duration) -> Self {
        let (reply, parts) = long_reply();
        Self {
            agent: Arc::new(CountingAgent::new(reply, step * 2)),
            messenger: Arc::new(RecordingMessenger::with_delay(step)),
            parts,
        }
    }

    /// Asserts that, whatever the redeliveries, the agent was asked once and the user got each
    /// part of its reply exactly once, in order.
    pub fn assert_answered_once(&self) {
        assert_eq!(self.agent.calls(), 1, "the agent was asked again");
        let sent = sent_messages(&self.messenger);
        assert_eq!(sent.len(), self.parts.len(), "each part exactly once");
        assert_eq!(sent, self.parts, "the parts, in order");
    }
}

/// A reply long enough to go out in several parts (five or more), and those parts.
pub fn long_reply() -> (String, Vec<OutgoingMessage>) {
    let reply = (0..6)
        .map(|n| format!("part {n}: {}", "log line ".repeat(450)))
        .collect::<Vec<_>>()
        .join("\n\n");
    let parts = format_reply(&AgentReply::text(None, reply.clone()));
    assert!(parts.len() >= 5, "{} parts", parts.len());
    (reply, parts)
}

/// Runs `handling` and meanwhile, at each of `at` after the start, `redelivery` (one at a
/// time): what the handling and each redelivery returned, and how long it all took.
pub async fn with_redeliveries<H: Future, R>(
    handling: H,
    at: &[Duration],
    mut redelivery: impl AsyncFnMut() -> R,
) -> (H::Output, Vec<R>, Duration) {
    let started = Instant::now();
    let redeliveries = async {
        let mut answers = Vec::new();
        for at in at {
            tokio::time::sleep_until((started + *at).into()).await;
            answers.push(redelivery().await);
        }
        answers
    };
    let (handled, redelivered) = tokio::join!(handling, redeliveries);
    (handled, redelivered, started.elapsed())
}

//! Kit for the capability tests: timers recorded instead of scheduled (a test fires them by
//! hand, as often as it likes), and a pipeline over in-memory conversations.

use std::sync::Mutex;
use whatsapp_agent_lambda::BoxFuture;
use whatsapp_agent_lambda::timers::{Timer, TimerError, Timers};

#[derive(Default)]
pub struct RecordingTimers {
    pub scheduled: Mutex<Vec<Timer>>,
}

impl RecordingTimers {
    /// Every timer scheduled since the last take.
    pub fn take(&self) -> Vec<Timer> {
        std::mem::take(&mut *self.scheduled.lock().unwrap())
    }
}

impl Timers for RecordingTimers {
    fn schedule<'a>(&'a self, timer: &'a Timer) -> BoxFuture<'a, Result<(), TimerError>> {
        self.scheduled.lock().unwrap().push(timer.clone());
        Box::pin(async { Ok(()) })
    }
}

/// A pipeline over `agents` (conversations in memory, ten turns of history, no environments),
/// sending through `messenger`: what the capability tests (paging, approvals) build on.
pub fn pipeline_over(
    agents: whatsapp_agent_lambda::agent::Agents,
    messenger: std::sync::Arc<whatsapp_agent_lambda::graph::RecordingMessenger>,
) -> whatsapp_agent_lambda::pipeline::Pipeline {
    use std::sync::Arc;
    use whatsapp_agent_lambda::sessions::{Conversations, MemorySessions};
    let conversations = Conversations::new(
        Arc::new(MemorySessions::new(std::time::Duration::from_secs(86_400))),
        agents,
        Vec::new(),
        10,
        None,
    );
    whatsapp_agent_lambda::pipeline::Pipeline::conversing(
        conversations,
        messenger,
        Arc::new(whatsapp_agent_lambda::idempotency::MemoryIdempotency::default()),
    )
}

//! Timers recorded instead of scheduled: a test fires them by hand, as often as it likes.

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

//! In-memory job queue for tests.

use super::{JobQueue, QueueError};
use crate::BoxFuture;
use crate::job::Job;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Records enqueued jobs; can be told to fail like an unreachable queue.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    jobs: Mutex<Vec<Job>>,
    down: AtomicBool,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every job accepted so far.
    pub fn jobs(&self) -> Vec<Job> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// While down, every enqueue fails.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }
}

impl JobQueue for MemoryQueue {
    fn enqueue<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            if self.down.load(Ordering::SeqCst) {
                return Err(QueueError("queue is down".to_owned()));
            }
            self.jobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(jobs);
            Ok(())
        })
    }
}

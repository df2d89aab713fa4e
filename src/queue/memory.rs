//! In-memory job queue for tests.

use super::{JobQueue, QueueError};
use crate::BoxFuture;
use crate::queue::Job;
use std::sync::Mutex;

/// Records enqueued jobs.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    jobs: Mutex<Vec<Job>>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every job accepted so far.
    pub fn jobs(&self) -> Vec<Job> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl JobQueue for MemoryQueue {
    fn enqueue<'a>(&'a self, jobs: &'a [Job]) -> BoxFuture<'a, Result<(), QueueError>> {
        Box::pin(async move {
            self.jobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(jobs);
            Ok(())
        })
    }
}

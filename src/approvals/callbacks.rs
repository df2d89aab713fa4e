//! In-memory [`TaskCallbacks`]: records every answer (tests, and local runs without AWS).

use super::{CallbackError, TaskCallbacks};
use crate::BoxFuture;
use std::sync::Mutex;

/// One answer given to a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskAnswer {
    Success {
        task_token: String,
        output: String,
    },
    Failure {
        task_token: String,
        error: String,
        cause: String,
    },
}

/// Keeps the answers it is given, in order.
#[derive(Debug, Default)]
pub struct RecordingCallbacks {
    answers: Mutex<Vec<TaskAnswer>>,
}

impl RecordingCallbacks {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every answer so far.
    pub fn answers(&self) -> Vec<TaskAnswer> {
        self.answers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn push(&self, answer: TaskAnswer) {
        self.answers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(answer);
    }
}

impl TaskCallbacks for RecordingCallbacks {
    fn succeed<'a>(
        &'a self,
        task_token: &'a str,
        output: &'a str,
    ) -> BoxFuture<'a, Result<(), CallbackError>> {
        self.push(TaskAnswer::Success {
            task_token: task_token.to_owned(),
            output: output.to_owned(),
        });
        Box::pin(async { Ok(()) })
    }

    fn fail<'a>(
        &'a self,
        task_token: &'a str,
        error: &'a str,
        cause: &'a str,
    ) -> BoxFuture<'a, Result<(), CallbackError>> {
        self.push(TaskAnswer::Failure {
            task_token: task_token.to_owned(),
            error: error.to_owned(),
            cause: cause.to_owned(),
        });
        Box::pin(async { Ok(()) })
    }
}

//! The answer to a Step Functions task waiting on an approval (`waitForTaskToken`):
//! `SendTaskSuccess` when approved, `SendTaskFailure` otherwise.
//! <https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token>

use super::{CallbackError, TaskCallbacks};
use crate::BoxFuture;
use crate::redact;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::error::{ProvideErrorMetadata, SdkError};

/// Codes after which nothing waits for the answer any more: the task timed out or was closed
/// (`TaskTimedOut`), the task is unknown (`TaskDoesNotExist`), or the token is not one Step
/// Functions knows (`InvalidToken`; moto also answers it for the token of a task that ended).
/// The errors of `SendTaskSuccess` and `SendTaskFailure` in the API reference
/// (<https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html>).
const GONE_CODES: [&str; 3] = ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"];
/// Codes worth trying again; `KmsThrottlingException`: KMS throttled the call Step Functions
/// made for us (an execution encrypted with a customer managed key).
const RETRYABLE_CODES: [&str; 5] = [
    "ThrottlingException",
    "ServiceUnavailable",
    "InternalFailure",
    "RequestTimeout",
    "KmsThrottlingException",
];
/// Step Functions' limits on a failure's `error` and `cause`.
const ERROR_MAX: usize = 256;
const CAUSE_MAX: usize = 32_768;
/// Longest error code kept.
const MAX_CODE_CHARS: usize = 100;

/// Answers tasks through the Step Functions API.
#[derive(Debug, Clone)]
pub struct SfnCallbacks {
    client: Client,
}

impl SfnCallbacks {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            client: Client::new(config),
        }
    }
}

impl TaskCallbacks for SfnCallbacks {
    fn succeed<'a>(
        &'a self,
        task_token: &'a str,
        output: &'a str,
    ) -> BoxFuture<'a, Result<(), CallbackError>> {
        Box::pin(async move {
            self.client
                .send_task_success()
                .task_token(task_token)
                .output(output)
                .send()
                .await
                .map(|_| ())
                .map_err(|error| failure("SendTaskSuccess", error))
        })
    }

    fn fail<'a>(
        &'a self,
        task_token: &'a str,
        error: &'a str,
        cause: &'a str,
    ) -> BoxFuture<'a, Result<(), CallbackError>> {
        Box::pin(async move {
            self.client
                .send_task_failure()
                .task_token(task_token)
                .error(truncate(error, ERROR_MAX))
                .cause(truncate(cause, CAUSE_MAX))
                .send()
                .await
                .map(|_| ())
                .map_err(|error| failure("SendTaskFailure", error))
        })
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A failed call as a [`CallbackError`], logged with its code (never the token).
fn failure<E, R>(operation: &'static str, error: SdkError<E, R>) -> CallbackError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (code, retryable) = crate::aws::failure_code(&error, &RETRYABLE_CODES);
    let gone = GONE_CODES.contains(&code.as_str());
    let code = redact::scrub_within(&code, MAX_CODE_CHARS);
    tracing::warn!(operation, code = %code, retryable, gone, "Step Functions task callback failed");
    CallbackError::Sfn {
        code,
        retryable,
        gone,
        // The SDK's error may quote the request (the token): only its code and message kind.
        source: format!("{operation} failed").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}

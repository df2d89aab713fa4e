//! `TIMER_QUEUE_URL`: escalation timers as delayed messages on a STANDARD SQS queue (a FIFO
//! queue delays only whole queues, never single messages). They survive any process dying:
//! the message waits in SQS until due, then goes to whoever consumes the queue.
//!
//! One message per timer: the body is [`timer_body`], `{"version": 1, "timer": <Timer>}`
//! (read back with [`read_timer_body`]), sent with `DelaySeconds` = the seconds until
//! `due_at`, between 0 and SQS's longest delay, 900 s. A timer due later comes back early
//! (its `due_at` still ahead) and the paging engine schedules it again for the rest of the
//! wait. A standard queue may deliver a message more than once: every step a timer drives is
//! guarded by a conditional write.
//! <https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-message-timers.html>

use super::{Timer, TimerError, Timers};
use crate::BoxFuture;
use crate::redact;
use crate::sessions::now_unix;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use serde::{Deserialize, Serialize};

/// The version of the timer messages' body this build writes and reads.
pub const TIMER_BODY_VERSION: u32 = 1;
/// SQS's longest `DelaySeconds` (15 minutes).
const MAX_DELAY_SECS: i64 = 900;
/// The code of a failed call that got no answer from SQS.
const UNREACHABLE: &str = "unreachable";
/// Longest SQS error code kept (SQS's are at most ~40 characters).
const MAX_CODE_CHARS: usize = 100;

/// Schedules timers as delayed messages on a standard SQS queue.
#[derive(Debug, Clone)]
pub struct SqsTimers {
    client: Client,
    url: String,
}

impl SqsTimers {
    /// Timers on the standard queue at `queue_url` (`TIMER_QUEUE_URL`).
    pub fn new(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self {
            client: Client::new(config),
            url: queue_url.into(),
        }
    }

    async fn schedule_now(&self, timer: &Timer) -> Result<(), TimerError> {
        let body = timer_body(timer)?;
        let sent = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .delay_seconds(delay_seconds(timer.due_at, now_unix()))
            .send()
            .await;
        sent.map(|_| ()).map_err(failure)
    }
}

impl Timers for SqsTimers {
    fn schedule<'a>(&'a self, timer: &'a Timer) -> BoxFuture<'a, Result<(), TimerError>> {
        Box::pin(self.schedule_now(timer))
    }
}

#[derive(Serialize)]
struct BodyOut<'a> {
    version: u32,
    timer: &'a Timer,
}

/// A timer message's body: `{"version": 1, "timer": <Timer>}` ([`TIMER_BODY_VERSION`]).
pub fn timer_body(timer: &Timer) -> Result<String, TimerError> {
    serde_json::to_string(&BodyOut {
        version: TIMER_BODY_VERSION,
        timer,
    })
    .map_err(TimerError::Encode)
}

/// The timer in a message's body; `None` for anything that is not a timer body of
/// [`TIMER_BODY_VERSION`] (another version, another message, text that is not JSON).
pub fn read_timer_body(body: &str) -> Option<Timer> {
    #[derive(Deserialize)]
    struct BodyIn {
        version: u32,
        timer: serde_json::Value,
    }
    let body: BodyIn = serde_json::from_str(body).ok()?;
    if body.version != TIMER_BODY_VERSION {
        return None;
    }
    serde_json::from_value(body.timer).ok()
}

/// The `DelaySeconds` of a timer due at `due_at` sent at `now`: the wait, between 0 and 900.
fn delay_seconds(due_at: i64, now: i64) -> i32 {
    let wait = due_at.saturating_sub(now).clamp(0, MAX_DELAY_SECS);
    // Within 0..=900: always fits.
    i32::try_from(wait).unwrap_or(0)
}

/// A failed `SendMessage` as a [`TimerError::Queue`]; the SDK's error is kept (SQS's answers
/// to a send quote no body).
fn failure<E, R>(error: SdkError<E, R>) -> TimerError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = match &error {
        SdkError::ServiceError(_) => error.code().unwrap_or("unknown"),
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => UNREACHABLE,
        SdkError::ResponseError(_) => "unreadable response",
        _ => "request not built",
    };
    let code = redact::scrub_within(code, MAX_CODE_CHARS);
    tracing::warn!(code = %code, "scheduling a timer on SQS failed");
    TimerError::Queue {
        code,
        source: Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timers::{IncidentRef, TimerKind};

    fn escalate() -> Timer {
        Timer {
            due_at: 1_795_514_700,
            kind: TimerKind::Escalate {
                incidents: vec![IncidentRef {
                    key: "0123456789abcdef0123456789abcdef".into(),
                    id: "occurrence-1".into(),
                }],
                step: 1,
            },
        }
    }

    #[test]
    fn the_body_is_versioned_json_and_reads_back() {
        let timer = escalate();
        let body = timer_body(&timer).unwrap();
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "version": 1,
                "timer": {
                    "due_at": 1_795_514_700,
                    "kind": "escalate",
                    "incidents": [{"key": "0123456789abcdef0123456789abcdef", "id": "occurrence-1"}],
                    "step": 1,
                },
            })
        );
        assert_eq!(read_timer_body(&body), Some(timer));

        let flush = Timer {
            due_at: 5,
            kind: TimerKind::Flush {
                person: "14155551234".into(),
            },
        };
        assert_eq!(read_timer_body(&timer_body(&flush).unwrap()), Some(flush));
    }

    #[test]
    fn anything_else_is_not_a_timer_body() {
        let timer = serde_json::to_value(escalate()).unwrap();
        for body in [
            serde_json::json!({"version": 2, "timer": timer}).to_string(),
            serde_json::json!({"timer": timer}).to_string(),
            serde_json::json!({"version": 1}).to_string(),
            serde_json::json!({"version": 1, "timer": {"due_at": 5, "kind": "snooze"}}).to_string(),
            serde_json::json!({"version": "1", "timer": timer}).to_string(),
            timer.to_string(),
            r#"{"message_id":"wamid.x","sender":"14155551234"}"#.to_owned(),
            "not json".to_owned(),
            String::new(),
        ] {
            assert_eq!(read_timer_body(&body), None, "{body}");
        }
    }

    #[test]
    fn the_delay_is_the_wait_within_what_sqs_allows() {
        assert_eq!(delay_seconds(1_060, 1_000), 60);
        assert_eq!(delay_seconds(1_000, 1_000), 0);
        assert_eq!(delay_seconds(900, 1_000), 0, "overdue: at once");
        assert_eq!(delay_seconds(1_900, 1_000), 900);
        assert_eq!(
            delay_seconds(1_000 + 7_200, 1_000),
            900,
            "later: re-delayed"
        );
        assert_eq!(delay_seconds(i64::MAX, i64::MIN), 900);
        assert_eq!(delay_seconds(i64::MIN, i64::MAX), 0);
    }
}

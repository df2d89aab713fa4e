//! In-process timers, for local runs only (`TIMER_QUEUE_URL` unset outside Lambda): each
//! timer is a tokio task that sleeps until `due_at` and then hands the timer to the channel
//! [`LocalTimers::channel`] returned. A timer dies with the process: one scheduled before a
//! restart never fires, so escalation does not survive one. On Lambda use `SqsTimers`.

use super::{Timer, TimerError, Timers};
use crate::BoxFuture;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

/// Schedules timers in this process. Clones share one channel.
#[derive(Debug, Clone)]
pub struct LocalTimers {
    /// An `Arc` inside: every clone sends into the same channel.
    due: UnboundedSender<Timer>,
}

impl LocalTimers {
    /// The timers and the receiver of those that are due, in the order they fall due.
    /// Scheduling fails with [`TimerError::Stopped`] once the receiver is dropped.
    pub fn channel() -> (LocalTimers, UnboundedReceiver<Timer>) {
        let (due, receiver) = unbounded_channel();
        (LocalTimers { due }, receiver)
    }

    async fn schedule_now(&self, timer: &Timer) -> Result<(), TimerError> {
        if self.due.is_closed() {
            return Err(TimerError::Stopped);
        }
        // Read from the system clock once; the wait itself runs on tokio's clock (paused in
        // tests).
        let wait = wait_until(timer.due_at, SystemTime::now());
        let due = self.due.clone();
        let timer = timer.clone();
        if wait.is_zero() {
            return due.send(timer).map_err(|_| TimerError::Stopped);
        }
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if due.send(timer).is_err() {
                tracing::debug!("in-process timer fell due after its receiver stopped");
            }
        });
        Ok(())
    }
}

impl Timers for LocalTimers {
    fn schedule<'a>(&'a self, timer: &'a Timer) -> BoxFuture<'a, Result<(), TimerError>> {
        Box::pin(self.schedule_now(timer))
    }
}

/// How long from `now` until the unix second `due_at` (zero once it has passed).
fn wait_until(due_at: i64, now: SystemTime) -> Duration {
    let Ok(due_at) = u64::try_from(due_at) else {
        return Duration::ZERO;
    };
    match UNIX_EPOCH.checked_add(Duration::from_secs(due_at)) {
        Some(due) => due.duration_since(now).unwrap_or(Duration::ZERO),
        // Past what the clock can name: never, in effect (tokio caps the sleep).
        None => Duration::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::now_unix;
    use crate::timers::TimerKind;

    fn flush(due_at: i64, person: &str) -> Timer {
        Timer {
            due_at,
            kind: TimerKind::Flush {
                person: person.to_owned(),
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_timer_comes_back_when_due_and_not_before() {
        let (timers, mut due) = LocalTimers::channel();
        let timer = flush(now_unix() + 300, "14155551234");
        let start = tokio::time::Instant::now();
        timers.schedule(&timer).await.unwrap();

        tokio::time::sleep(Duration::from_secs(298)).await;
        assert!(due.try_recv().is_err(), "not yet due");
        assert_eq!(due.recv().await, Some(timer));
        let waited = start.elapsed();
        assert!(
            (Duration::from_secs(299)..=Duration::from_secs(300)).contains(&waited),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn timers_come_back_in_the_order_they_fall_due() {
        let (timers, mut due) = LocalTimers::channel();
        let now = now_unix();
        for (offset, person) in [(120, "b"), (600, "c"), (60, "a")] {
            timers.schedule(&flush(now + offset, person)).await.unwrap();
        }
        for person in ["a", "b", "c"] {
            let timer = due.recv().await.unwrap();
            assert_eq!(timer.kind, flush(0, person).kind);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_overdue_timer_comes_back_at_once() {
        let (timers, mut due) = LocalTimers::channel();
        let timer = flush(now_unix() - 60, "14155551234");
        timers.schedule(&timer).await.unwrap();
        assert_eq!(due.try_recv().ok(), Some(timer));
        timers.schedule(&flush(i64::MIN, "x")).await.unwrap();
        assert!(due.try_recv().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_the_channel() {
        let (timers, mut due) = LocalTimers::channel();
        let other = timers.clone();
        other.schedule(&flush(now_unix() + 10, "a")).await.unwrap();
        drop(other);
        assert_eq!(due.recv().await.unwrap().kind, flush(0, "a").kind);
        drop(timers);
        assert_eq!(due.recv().await, None, "no timers left: the channel ends");
    }

    #[tokio::test(start_paused = true)]
    async fn scheduling_after_the_receiver_stopped_fails() {
        let (timers, due) = LocalTimers::channel();
        drop(due);
        let error = timers
            .schedule(&flush(now_unix() + 10, "a"))
            .await
            .unwrap_err();
        assert!(matches!(error, TimerError::Stopped), "{error:?}");
        let error = timers.schedule(&flush(0, "a")).await.unwrap_err();
        assert!(matches!(error, TimerError::Stopped), "{error:?}");
    }

    #[test]
    fn the_wait_is_measured_from_the_system_clock() {
        let now = UNIX_EPOCH + Duration::from_millis(1_000_250);
        assert_eq!(wait_until(1_060, now), Duration::from_millis(59_750));
        assert_eq!(wait_until(1_000, now), Duration::ZERO);
        assert_eq!(wait_until(-5, now), Duration::ZERO);
        assert!(wait_until(i64::MAX, now) > Duration::from_secs(100 * 365 * 86_400));
    }
}

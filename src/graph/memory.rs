//! In-memory messenger for tests and the demo: records every send and read mark instead of
//! calling Meta, and can be told to fail or to take its time (a slow Graph API).

use super::{GraphError, Messenger};
use crate::BoxFuture;
use crate::domain::{MessageId, PhoneNumberId};
use crate::domain::{OutgoingMessage, Recipient};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Makes the error a scripted failure returns (`GraphError` is not `Clone`).
type ErrorFactory = Box<dyn Fn() -> GraphError + Send + Sync>;

/// Records every message instead of sending it. Sent messages get ids `wamid.out.<n>`, `n`
/// counting successful sends from 1.
#[derive(Default)]
pub struct RecordingMessenger {
    state: Mutex<State>,
    /// How long every send and read mark takes before it is recorded.
    delay: Duration,
}

#[derive(Default)]
struct State {
    sent: Vec<SentRecord>,
    read_marks: Vec<(MessageId, bool)>,
    send_attempts: usize,
    failing_sends: Option<(usize, ErrorFactory)>,
    failing_read_marks: Option<(usize, ErrorFactory)>,
}

/// One recorded send, with the exact Graph API JSON the real client would have posted.
#[derive(Debug, Clone, PartialEq)]
pub struct SentRecord {
    /// The id the send returned (what WhatsApp would have given the message).
    pub id: MessageId,
    pub from: PhoneNumberId,
    pub to: Recipient,
    pub message: OutgoingMessage,
    pub context: Option<MessageId>,
    pub json: serde_json::Value,
}

impl RecordingMessenger {
    pub fn new() -> Self {
        Self::default()
    }

    /// A Graph API that takes `delay` over every send and read mark (long handlings in tests).
    pub fn with_delay(delay: Duration) -> Self {
        Self {
            delay,
            ..Self::default()
        }
    }

    /// The next `count` sends fail with `error()` and are not recorded as sent.
    pub fn fail_next_sends(
        &self,
        count: usize,
        error: impl Fn() -> GraphError + Send + Sync + 'static,
    ) {
        self.lock().failing_sends = (count > 0).then(|| (count, Box::new(error) as ErrorFactory));
    }

    /// The next `count` read marks fail with `error()` and are not recorded.
    pub fn fail_next_read_marks(
        &self,
        count: usize,
        error: impl Fn() -> GraphError + Send + Sync + 'static,
    ) {
        self.lock().failing_read_marks =
            (count > 0).then(|| (count, Box::new(error) as ErrorFactory));
    }

    /// Successful sends, in order.
    pub fn sent(&self) -> Vec<SentRecord> {
        self.lock().sent.clone()
    }

    /// What each successful send said, in order: a text message's body, any other message's
    /// Graph API JSON.
    pub fn texts(&self) -> Vec<String> {
        self.lock()
            .sent
            .iter()
            .map(|record| match &record.message {
                OutgoingMessage::Text { body } => body.clone(),
                _ => record.json.to_string(),
            })
            .collect()
    }

    /// Every send call, failed ones included.
    pub fn send_attempts(&self) -> usize {
        self.lock().send_attempts
    }

    /// Successful read marks: the message marked and whether typing was shown.
    pub fn read_marks(&self) -> Vec<(MessageId, bool)> {
        self.lock().read_marks.clone()
    }

    async fn wait(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not hide the records from the others.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Takes one scripted failure, if any are left.
fn next_failure(slot: &mut Option<(usize, ErrorFactory)>) -> Option<GraphError> {
    let (left, factory) = slot.as_mut()?;
    let error = factory();
    *left -= 1;
    if *left == 0 {
        *slot = None;
    }
    Some(error)
}

impl Messenger for RecordingMessenger {
    fn send<'a>(
        &'a self,
        from: &'a PhoneNumberId,
        to: &'a Recipient,
        message: &'a OutgoingMessage,
        context: Option<&'a MessageId>,
    ) -> BoxFuture<'a, Result<MessageId, GraphError>> {
        Box::pin(async move {
            self.wait().await;
            let mut state = self.lock();
            state.send_attempts += 1;
            if let Some(error) = next_failure(&mut state.failing_sends) {
                return Err(error);
            }
            let id = MessageId(format!("wamid.out.{}", state.sent.len() + 1));
            state.sent.push(SentRecord {
                id: id.clone(),
                from: from.clone(),
                to: to.clone(),
                message: message.clone(),
                context: context.cloned(),
                json: message.to_graph_json(to, context),
            });
            Ok(id)
        })
    }

    fn mark_read<'a>(
        &'a self,
        _from: &'a PhoneNumberId,
        message: &'a MessageId,
        typing: bool,
    ) -> BoxFuture<'a, Result<(), GraphError>> {
        Box::pin(async move {
            self.wait().await;
            let mut state = self.lock();
            if let Some(error) = next_failure(&mut state.failing_read_marks) {
                return Err(error);
            }
            state.read_marks.push((message.clone(), typing));
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(body: &str) -> OutgoingMessage {
        OutgoingMessage::Text {
            body: body.to_owned(),
        }
    }

    #[tokio::test]
    async fn records_sends_with_numbered_ids_and_fails_on_request() {
        let messenger = RecordingMessenger::new();
        let from = PhoneNumberId::from("1065");
        let to = Recipient::Phone("14155551234".to_owned());
        let context = MessageId::from("wamid.IN");
        let id = messenger
            .send(&from, &to, &text("one"), Some(&context))
            .await
            .unwrap();
        assert_eq!(id.as_str(), "wamid.out.1");

        messenger.fail_next_sends(2, || GraphError::Timeout);
        for _ in 0..2 {
            assert!(matches!(
                messenger.send(&from, &to, &text("lost"), None).await,
                Err(GraphError::Timeout)
            ));
        }
        let id = messenger
            .send(&from, &to, &text("two"), None)
            .await
            .unwrap();
        assert_eq!(id.as_str(), "wamid.out.2");
        assert_eq!(messenger.send_attempts(), 4);

        let sent = messenger.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].context, Some(context.clone()));
        assert_eq!(sent[0].json["context"]["message_id"], "wamid.IN");
        assert_eq!(sent[1].message, text("two"));
        assert_eq!(messenger.texts(), vec!["one", "two"]);
    }

    #[tokio::test]
    async fn records_read_marks() {
        let messenger = RecordingMessenger::new();
        let from = PhoneNumberId::from("1065");
        messenger.fail_next_read_marks(1, || GraphError::Unknown("nope".to_owned()));
        assert!(
            messenger
                .mark_read(&from, &MessageId::from("wamid.A"), true)
                .await
                .is_err()
        );
        messenger
            .mark_read(&from, &MessageId::from("wamid.B"), false)
            .await
            .unwrap();
        assert_eq!(
            messenger.read_marks(),
            vec![(MessageId::from("wamid.B"), false)]
        );
    }
}

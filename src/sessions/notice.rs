//! Notices: short texts the function sends on its own (someone acknowledged a page, a request
//! was approved), in the thread of the message they are about. While the person's 24-hour
//! window is open a notice is a text; when it is closed, `NOTICE_TEMPLATE` carries it (one
//! body parameter); without that template it is logged as not sent.

use super::{Conversations, SessionKey};
use crate::domain::{
    MessageId, OutgoingMessage, PhoneNumberId, Recipient, Sender, TemplateRef, mask,
};
use crate::graph::Messenger;
use crate::reply::params::template_param;
use std::sync::Arc;

/// Longest notice carried by the template (Meta's body holds 1024 characters).
const NOTICE_MAX: usize = 900;

/// Sends notices, and tells whether someone's 24-hour window is open.
#[derive(Clone)]
pub struct Notifier {
    messenger: Arc<dyn Messenger>,
    conversations: Arc<Conversations>,
    /// `NOTICE_TEMPLATE`.
    template: Option<TemplateRef>,
}

impl Notifier {
    pub fn new(
        messenger: Arc<dyn Messenger>,
        conversations: Arc<Conversations>,
        template: Option<TemplateRef>,
    ) -> Self {
        Self {
            messenger,
            conversations,
            template,
        }
    }

    /// The Graph API client notices go through.
    pub fn messenger(&self) -> &Arc<dyn Messenger> {
        &self.messenger
    }

    /// Whether `to`'s 24-hour window with the business number `from` is open.
    pub async fn window_open(&self, from: &PhoneNumberId, to: &Recipient, now: i64) -> bool {
        let sender = match to {
            Recipient::Phone(phone) => Sender {
                phone: Some(phone.clone()),
                ..Sender::default()
            },
            Recipient::Bsuid(bsuid) => Sender {
                bsuid: Some(bsuid.clone()),
                ..Sender::default()
            },
        };
        let Some(key) = SessionKey::new(from, &sender) else {
            return false;
        };
        self.conversations
            .load(&key)
            .await
            .is_some_and(|session| session.window_open(now))
    }

    /// Sends `text` to `to` from `from`, quoting `thread` (a wamid) when given: a text while
    /// their window is open (or Meta does not say it is closed), else `NOTICE_TEMPLATE`.
    /// Never fails: what cannot be sent is logged (masked).
    pub async fn notify(
        &self,
        from: &PhoneNumberId,
        to: &Recipient,
        text: &str,
        thread: Option<&str>,
        now: i64,
    ) {
        let context = thread.map(MessageId::from);
        if self.window_open(from, to, now).await {
            let message = OutgoingMessage::Text {
                body: text.to_owned(),
            };
            match self
                .messenger
                .send(from, to, &message, context.as_ref())
                .await
            {
                Ok(_) => return,
                Err(error) if error.is_reengagement() => {}
                Err(error) => {
                    tracing::warn!(to = %mask(to.as_str()), %error, "notice not sent");
                    return;
                }
            }
        }
        let Some(template) = &self.template else {
            tracing::warn!(to = %mask(to.as_str()), "notice not sent: the 24-hour window is closed and NOTICE_TEMPLATE is unset");
            return;
        };
        let message = OutgoingMessage::Template {
            template: template.clone(),
            body: vec![template_param(text, NOTICE_MAX)],
            quick_replies: Vec::new(),
        };
        if let Err(error) = self
            .messenger
            .send(from, to, &message, context.as_ref())
            .await
        {
            tracing::warn!(to = %mask(to.as_str()), %error, "notice template not sent");
        }
    }
}

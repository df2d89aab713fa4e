//! The conversation around one message: which agent and environment it goes to, the history
//! the agent gets, the built-in commands the function answers itself, and the replies kept
//! for later (a send that failed part-way, a reply that found the 24-hour window closed).
//! The pipeline asks; the store ([`SessionStore`]) remembers.
//!
//! A session store that fails never silences a user: the message is answered without memory
//! (empty history, the default agent and environment) and the failure is logged.

use super::commands::{
    self, Command, CommandReply, MenuKind, Selection, agents_reply, environments_reply, help_text,
    reset_text, resolve_tap, selected_text, stale_tap_text,
};
use super::memory::MemorySessions;
use super::{
    DEFAULT_HISTORY_TURNS, DEFAULT_SESSION_TTL_DAYS, Session, SessionKey, SessionStore, ttl_days,
};
use crate::agent::contract::{Role, SessionInfo, Turn};
use crate::agent::{Agent, AgentRequest, Agents, NamedAgent};
use crate::domain::{InboundMessage, MessageKind, OutgoingMessage, TemplateRef};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The quick-reply payload prefix of the re-engagement template: a tap on it (like any
/// message from the user) delivers the replies kept for them.
pub const WINDOW_TAP_PREFIX: &str = "wal:window:";

/// Why a reply was kept instead of sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeptBecause {
    /// Sending stopped part-way (a Graph API failure): the parts not yet sent are sent on the
    /// retry, without asking the agent again (a second answer would differ).
    SendFailed,
    /// The user's 24-hour window was closed: sent when they write or tap the template.
    WindowClosed,
}

/// A reply (or the rest of one) waiting in the session, exactly as formatted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptReply {
    /// The message it answers (its id as sent: a storage key, never logged).
    pub answers: String,
    pub parts: Vec<OutgoingMessage>,
    pub because: KeptBecause,
    /// Unix seconds.
    pub kept_at: i64,
}

impl KeptReply {
    fn to_value(&self) -> serde_json::Value {
        // Strings, numbers and lists only: cannot fail.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// What a built-in command or a tap on one of our lists does to the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Nothing (`/help`, a stale tap).
    None,
    /// A list was sent: its menu becomes the current one.
    Menu(commands::Menu),
    /// A tap selected an agent or environment.
    Select(Selection),
    /// `/reset`: the history is cleared.
    Reset,
    /// A tap on the re-engagement template: the kept replies are delivered (nothing to say).
    Deliver,
}

/// The function's own answer to a message that is not for the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct OwnAnswer {
    /// `None` for a template tap, which only delivers the kept replies.
    pub message: Option<OutgoingMessage>,
    pub change: Change,
    /// For logs: `/agents`, `tap`, …
    pub what: &'static str,
}

/// Every conversation of the deployment.
pub struct Conversations {
    store: Arc<dyn SessionStore>,
    agents: Agents,
    environments: Vec<String>,
    history_turns: usize,
    reengage: Option<TemplateRef>,
}

impl Conversations {
    pub fn new(
        store: Arc<dyn SessionStore>,
        agents: Agents,
        environments: Vec<String>,
        history_turns: usize,
        reengage: Option<TemplateRef>,
    ) -> Self {
        Self {
            store,
            agents,
            environments,
            history_turns,
            reengage,
        }
    }

    /// One agent named `default`, conversations in memory, the default history length, no
    /// environments and no re-engagement template.
    pub fn single(agent: Arc<dyn Agent>) -> Self {
        Self::new(
            Arc::new(MemorySessions::new(ttl_days(DEFAULT_SESSION_TTL_DAYS))),
            Agents::single(agent),
            Vec::new(),
            DEFAULT_HISTORY_TURNS,
            None,
        )
    }

    pub fn agents(&self) -> &Agents {
        &self.agents
    }

    pub fn reengage_template(&self) -> Option<&TemplateRef> {
        self.reengage.as_ref()
    }

    /// Reads the session; `None` (logged) when the store failed.
    pub async fn load(&self, key: &SessionKey) -> Option<Session> {
        match self.store.load(key).await {
            Ok(session) => Some(session),
            Err(error) => {
                tracing::warn!(session = %key, %error, "could not read the conversation; answering without it");
                None
            }
        }
    }

    /// Changes the session (conditional writes, retried on conflict); `None` (logged) when
    /// the store failed.
    pub async fn update(
        &self,
        key: &SessionKey,
        mut change: impl FnMut(&mut Session) + Send,
    ) -> Option<Session> {
        match self.store.update(key, &mut change).await {
            Ok(session) => Some(session),
            Err(error) => {
                tracing::warn!(session = %key, %error, retryable = error.is_retryable(), "could not update the conversation");
                None
            }
        }
    }

    /// The agent this session talks to: its choice, or the default.
    pub fn agent_of(&self, session: &Session) -> &NamedAgent {
        self.agents.selected(session.agent.as_deref())
    }

    /// The environment this session works in: its choice while still configured, else the
    /// first of `ENVIRONMENTS`; `None` without environments.
    pub fn environment_of<'a>(&'a self, session: &'a Session) -> Option<&'a str> {
        session
            .environment
            .as_deref()
            .filter(|chosen| self.environments.iter().any(|env| env == chosen))
            .or(self.environments.first().map(String::as_str))
    }

    /// The agent's request for `message`: the contract, the history before it, the session.
    pub fn request(&self, message: &InboundMessage, session: &Session) -> AgentRequest {
        let history = if self.history_turns == 0 {
            Vec::new()
        } else {
            session.history.clone()
        };
        let mut request = AgentRequest::from_message(message).with_session(
            history,
            SessionInfo {
                agent: self.agent_of(session).name.clone(),
                environment: self.environment_of(session).map(str::to_owned),
            },
        );
        // The conversation's own key: any spelling of one number is one session.
        if let Some(key) = SessionKey::of(message) {
            request.session_id = key.as_str().to_owned();
        }
        request
    }

    /// The function's own answer when `message` is a built-in command or a tap on one of our
    /// lists or templates; `None` when it is for the agent.
    pub fn own_answer(
        &self,
        message: &InboundMessage,
        session: &Session,
        now: i64,
    ) -> Option<OwnAnswer> {
        let text = |body: String| Some(OutgoingMessage::Text { body });
        match &message.kind {
            MessageKind::Text { body } => {
                let command = Command::parse(body)?;
                let agent = self.agent_of(session);
                let environment = self.environment_of(session);
                let answer = match command {
                    Command::Agents => {
                        let rows: Vec<(&str, Option<&str>)> = self
                            .agents
                            .all()
                            .iter()
                            .map(|a| (a.name.as_str(), a.description.as_deref()))
                            .collect();
                        list(agents_reply(&rows, &agent.name, now))
                    }
                    Command::Env => list(environments_reply(&self.environments, environment, now)),
                    Command::Reset => (text(reset_text(&agent.name, environment)), Change::Reset),
                    Command::Help => (
                        text(help_text(
                            (&agent.name, agent.description.as_deref()),
                            environment,
                            !self.environments.is_empty(),
                        )),
                        Change::None,
                    ),
                };
                Some(OwnAnswer {
                    message: answer.0,
                    change: answer.1,
                    what: command.as_str(),
                })
            }
            MessageKind::ListReply { id, .. } | MessageKind::ButtonReply { id, .. }
                if commands::is_reserved(id) =>
            {
                let reply_to = message.reply_to.as_ref().map(|id| id.as_str());
                let selection =
                    resolve_tap(session, id, reply_to).filter(|selection| match selection.kind {
                        MenuKind::Agents => self.agents.get(&selection.choice).is_some(),
                        MenuKind::Environments => self.environments.contains(&selection.choice),
                    });
                Some(match selection {
                    Some(selection) => OwnAnswer {
                        message: text(selected_text(&selection)),
                        change: Change::Select(selection),
                        what: "tap",
                    },
                    None => OwnAnswer {
                        message: text(stale_tap_text()),
                        change: Change::None,
                        what: "stale tap",
                    },
                })
            }
            MessageKind::TemplateButton { payload, .. }
                if payload.starts_with(WINDOW_TAP_PREFIX) =>
            {
                Some(OwnAnswer {
                    message: None,
                    change: Change::Deliver,
                    what: "template tap",
                })
            }
            // One of ours that nobody here answers (a page's button while paging is off).
            MessageKind::TemplateButton { payload, .. } if commands::is_reserved(payload) => {
                Some(OwnAnswer {
                    message: text(stale_tap_text()),
                    change: Change::None,
                    what: "stale tap",
                })
            }
            _ => None,
        }
    }

    /// Keeps `answer`'s change in the session; `sent` is the id WhatsApp gave our list.
    pub fn apply(&self, session: &mut Session, change: &Change, sent: Option<&str>) {
        match change {
            Change::None | Change::Deliver => {}
            Change::Menu(menu) => {
                let mut menu = menu.clone();
                menu.sent_id = sent.map(str::to_owned);
                session.menu = Some(menu);
            }
            Change::Select(selection) => session.apply(selection),
            Change::Reset => session.clear_history(),
        }
    }

    /// Records one exchange: the user's message (`said`, as the agent's `event.text` had it: a
    /// tap on a page reads "acknowledge: <title>", not its button id) and what the agent
    /// answered (one turn per part of a streamed answer).
    pub fn record(
        &self,
        session: &mut Session,
        message: &InboundMessage,
        said: String,
        answers: &[(i64, String)],
    ) {
        if answers.is_empty() {
            return;
        }
        let said_at = if message.timestamp > 0 {
            message.timestamp
        } else {
            answers[0].0
        };
        self.record_exchange(session, said, said_at, answers);
    }

    /// Records one exchange from its texts: the user's (`event.text`, said at `said_at`) and
    /// the agent's answers (a Step Functions delivery has only the request's event).
    pub fn record_exchange(
        &self,
        session: &mut Session,
        user_text: String,
        said_at: i64,
        answers: &[(i64, String)],
    ) {
        if answers.is_empty() {
            return;
        }
        session.push_turn(
            Turn::new(Role::User, user_text, said_at),
            self.history_turns,
        );
        self.record_answers(session, answers);
    }

    /// Records what the agent answered.
    fn record_answers(&self, session: &mut Session, answers: &[(i64, String)]) {
        for (at, text) in answers {
            session.push_turn(
                Turn::new(Role::Assistant, text.clone(), *at),
                self.history_turns,
            );
        }
    }

    /// Keeps `reply` in `session`; replies dropped to stay within the bounds are logged.
    pub fn keep(&self, session: &mut Session, key: &SessionKey, reply: &KeptReply) {
        let dropped = session.push_pending(reply.to_value());
        if !dropped.is_empty() {
            tracing::error!(session = %key, dropped = dropped.len(), "too many replies waiting for this user: the oldest were dropped");
        }
    }
}

/// The replies kept in `session` (unreadable ones left out).
pub fn kept(session: &Session) -> Vec<KeptReply> {
    session
        .pending
        .iter()
        .filter_map(|value| serde_json::from_value(value.clone()).ok())
        .collect()
}

/// Removes the kept replies `take` chooses from `session` (and unreadable ones) and returns them.
pub fn take_kept(
    session: &mut Session,
    mut take: impl FnMut(&KeptReply) -> bool,
) -> Vec<KeptReply> {
    let mut taken = Vec::new();
    session.pending.retain(|value| {
        match serde_json::from_value::<KeptReply>(value.clone()) {
            Ok(reply) if take(&reply) => {
                taken.push(reply);
                false
            }
            Ok(_) => true,
            // Unreadable (a format from another version): dropped, never sent half-understood.
            Err(_) => false,
        }
    });
    taken
}

fn list(reply: CommandReply) -> (Option<OutgoingMessage>, Change) {
    let change = match reply.menu {
        Some(menu) => Change::Menu(menu),
        None => Change::None,
    };
    (Some(reply.message), change)
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::ScriptedAgent;
    use crate::domain::MessageId;

    fn message(kind: MessageKind) -> InboundMessage {
        InboundMessage::sample("wamid.C.1", kind)
    }

    fn text(body: &str) -> InboundMessage {
        message(MessageKind::Text { body: body.into() })
    }

    fn two_agents() -> Conversations {
        let named = |name: &str| NamedAgent {
            name: name.into(),
            description: Some(format!("{name} things")),
            agent: Arc::new(ScriptedAgent::replying_text(name)),
        };
        Conversations::new(
            Arc::new(MemorySessions::new(ttl_days(1))),
            Agents::new(vec![named("k8s"), named("cost")], None).unwrap(),
            vec!["prod".into(), "staging".into()],
            10,
            None,
        )
    }

    #[test]
    fn the_request_carries_history_agent_and_environment() {
        let conversations = two_agents();
        let mut session = Session::default();
        conversations.record(
            &mut session,
            &text("pods crashing?"),
            "pods crashing?".to_owned(),
            &[(1_795_000_010, "2 pods restarting".into())],
        );
        session.agent = Some("cost".into());
        let request = conversations.request(&text("what did I ask before?"), &session);
        assert_eq!(request.history.len(), 2);
        assert_eq!(request.history[0].role, Role::User);
        assert_eq!(request.history[0].text, "pods crashing?");
        assert_eq!(request.history[1].text, "2 pods restarting");
        assert_eq!(request.session.agent, "cost");
        assert_eq!(request.session.environment.as_deref(), Some("prod"));
        assert_eq!(request.session_id, "whatsapp:106540352242922:14155551234");
        // A choice no longer configured falls back.
        session.agent = Some("retired".into());
        session.environment = Some("qa".into());
        let request = conversations.request(&text("hi"), &session);
        assert_eq!(request.session.agent, "k8s");
        assert_eq!(request.session.environment.as_deref(), Some("prod"));
    }

    #[test]
    fn commands_and_our_taps_are_answered_by_the_function_others_go_to_the_agent() {
        let conversations = two_agents();
        let mut session = Session::default();
        let answer = conversations
            .own_answer(&text(" /AGENTS "), &session, 5)
            .unwrap();
        let Change::Menu(menu) = &answer.change else {
            panic!("a list keeps its menu: {answer:?}");
        };
        conversations.apply(&mut session, &answer.change, Some("wamid.LIST"));
        assert_eq!(
            session.menu.as_ref().unwrap().sent_id.as_deref(),
            Some("wamid.LIST")
        );

        let mut tap = message(MessageKind::ListReply {
            id: menu.tap_id(1),
            title: "cost".into(),
            description: None,
        });
        tap.reply_to = Some(MessageId::from("wamid.LIST"));
        let answer = conversations.own_answer(&tap, &session, 6).unwrap();
        assert!(matches!(&answer.change, Change::Select(s) if s.choice == "cost"));
        conversations.apply(&mut session, &answer.change, None);
        assert_eq!(conversations.agent_of(&session).name, "cost");

        // The same tap on another message, or an agent's own row: not ours to select, or not ours.
        tap.reply_to = Some(MessageId::from("wamid.OTHER"));
        assert_eq!(
            conversations.own_answer(&tap, &session, 7).unwrap().change,
            Change::None
        );
        let agent_row = message(MessageKind::ListReply {
            id: "view_logs".into(),
            title: "View logs".into(),
            description: None,
        });
        assert!(conversations.own_answer(&agent_row, &session, 7).is_none());
        assert!(
            conversations
                .own_answer(&text("/deploy now"), &session, 7)
                .is_none()
        );
        assert!(
            conversations
                .own_answer(&text("status?"), &session, 7)
                .is_none()
        );

        let reset = conversations
            .own_answer(&text("/reset"), &session, 8)
            .unwrap();
        assert_eq!(reset.change, Change::Reset);
        let template = message(MessageKind::TemplateButton {
            payload: format!("{WINDOW_TAP_PREFIX}abc"),
            text: "Show answer".into(),
        });
        assert_eq!(
            conversations
                .own_answer(&template, &session, 9)
                .unwrap()
                .change,
            Change::Deliver
        );
    }

    #[test]
    fn kept_replies_come_back_by_message_and_unreadable_ones_are_dropped() {
        let conversations = two_agents();
        let key = SessionKey::of(&text("x")).unwrap();
        let mut session = Session::default();
        let reply = |answers: &str, because| KeptReply {
            answers: answers.into(),
            parts: vec![OutgoingMessage::Text {
                body: format!("for {answers}"),
            }],
            because,
            kept_at: 1,
        };
        conversations.keep(
            &mut session,
            &key,
            &reply("wamid.A", KeptBecause::SendFailed),
        );
        conversations.keep(
            &mut session,
            &key,
            &reply("wamid.B", KeptBecause::WindowClosed),
        );
        session
            .pending
            .push(serde_json::json!({"something": "else"}));
        assert_eq!(kept(&session).len(), 2);
        let mine = take_kept(&mut session, |kept| kept.answers == "wamid.A");
        assert_eq!(mine, vec![reply("wamid.A", KeptBecause::SendFailed)]);
        assert_eq!(
            kept(&session),
            vec![reply("wamid.B", KeptBecause::WindowClosed)]
        );
        assert_eq!(session.pending.len(), 1, "the unreadable one is gone");
    }
}

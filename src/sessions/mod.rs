//! Conversations: one session per (business phone number id, sender), holding what the sender
//! selected (agent, environment), the last turns of the conversation (handed to the agent as
//! `history`), the time of the sender's last message (WhatsApp's 24-hour window), replies kept
//! while that window is closed, and the command menu last sent (see [`commands`]).
//!
//! The store is a port, [`SessionStore`]: [`DynamoSessions`] (`SESSIONS_TABLE`, shared by every
//! instance) and [`MemorySessions`] (one warm process, when the variable is unset). Both share
//! one update loop (`update_with`): read, apply the caller's change, write conditionally on the
//! version read, and on a conflict (another message of the same sender was handled meanwhile)
//! read again and reapply, a bounded number of times. So two messages from one user handled at
//! once never lose an update. Every write pushes the expiry ([`SessionStore`]'s TTL,
//! `SESSION_TTL_DAYS`) forward: an idle session is forgotten.
//!
//! Never logged: the history's text, pending replies, the full sender id (a [`SessionKey`]
//! displays masked).

pub mod commands;
pub mod conversation;
mod dynamodb;
mod memory;
pub mod notice;

pub use crate::agent::contract::{Role, SessionInfo, Turn};
pub use commands::{Menu, MenuKind};
pub use conversation::{Conversations, KeptBecause, KeptReply};
pub use dynamodb::DynamoSessions;
pub use memory::{MEMORY_CAPACITY, MemorySessions};
pub use notice::Notifier;

use crate::BoxFuture;
use crate::domain::{InboundMessage, PhoneNumberId, Recipient, Sender, mask};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Turns kept by default (`HISTORY_TURNS`).
pub const DEFAULT_HISTORY_TURNS: usize = 10;
/// Bytes of turn text kept in all, whatever `HISTORY_TURNS` says: the oldest turns go first.
pub const HISTORY_TEXT_MAX_BYTES: usize = 16 * 1024;
/// What ends a turn cut to fit [`HISTORY_TEXT_MAX_BYTES`].
pub const CUT_MARKER: &str = " …[cut]";
/// Days an idle session is kept by default (`SESSION_TTL_DAYS`).
pub const DEFAULT_SESSION_TTL_DAYS: u64 = 30;
/// Replies kept while the 24-hour window is closed: the oldest go first beyond this many.
pub const PENDING_MAX: usize = 20;
/// Bytes of kept replies (as JSON) in all: the oldest go first beyond this.
pub const PENDING_MAX_BYTES: usize = 128 * 1024;
/// Largest encoded session (`state` JSON) written: DynamoDB items stop at 400 KB. The bounds
/// above keep a session far below it; this catches what they cannot foresee.
pub const STATE_MAX_BYTES: usize = 350 * 1024;
/// Attempts of one [`SessionStore::update`] (a read and a conditional write each) before it
/// gives up with [`SessionError::Conflict`]. Each conflict means another update of the same
/// session landed, so this many concurrent messages of one sender always all land.
pub const UPDATE_ATTEMPTS: u32 = 8;
/// Wait before the first retry of a conflicting update, doubled per retry up to
/// [`UPDATE_BACKOFF_CAP`], the upper half jittered so that the racers spread out.
pub const UPDATE_BACKOFF_BASE: Duration = Duration::from_millis(20);
pub const UPDATE_BACKOFF_CAP: Duration = Duration::from_millis(400);

/// `whatsapp:<phone_number_id>:<sender id>`, the sender id normalised as the reply is
/// addressed ([`Recipient::of`]): the digits of the phone number, else the BSUID. So
/// `+1 415 555 1234` and `14155551234` are one session. `Display`/`Debug` mask the sender;
/// [`SessionKey::as_str`] is for storage only.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionKey {
    key: String,
    /// Byte offset of the sender id in `key`.
    sender_at: usize,
}

impl SessionKey {
    /// The session of `sender` on the business number `phone_number_id`; `None` when the
    /// sender has no usable id (no phone number, no BSUID): such a message is never answered.
    pub fn new(phone_number_id: &PhoneNumberId, sender: &Sender) -> Option<Self> {
        let recipient = Recipient::of(sender)?;
        let prefix = format!("whatsapp:{}:", phone_number_id.as_str());
        Some(Self {
            sender_at: prefix.len(),
            key: prefix + recipient.as_str(),
        })
    }

    /// The session a message belongs to.
    pub fn of(message: &InboundMessage) -> Option<Self> {
        Self::new(&message.channel.phone_number_id, &message.sender)
    }

    /// The key as stored (it holds the full phone number: never log it).
    pub fn as_str(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (prefix, sender) = self.key.split_at(self.sender_at);
        write!(f, "{prefix}{}", mask(sender))
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({self})")
    }
}

/// One sender's conversation. A session nobody wrote yet (or expired) is the `Default`:
/// no selection (the default agent, the first environment), no history, version 0.
#[derive(Clone, PartialEq, Default)]
pub struct Session {
    /// The agent chosen with `/agents`; `None`: the default agent (`DEFAULT_AGENT`).
    pub agent: Option<String>,
    /// The environment chosen with `/env`; `None`: the first of `ENVIRONMENTS`.
    pub environment: Option<String>,
    /// The last turns, oldest first, bounded by [`Session::push_turn`].
    pub history: Vec<Turn>,
    /// Unix seconds of the sender's last message: WhatsApp's 24-hour window opens there.
    pub last_user_message_at: Option<i64>,
    /// Replies kept while the 24-hour window is closed, oldest first, to be sent when the
    /// user writes again. Opaque JSON here: the pipeline decides what a reply is (it
    /// serializes its own type into a `Value` and reads it back). Bounded by
    /// [`Session::push_pending`].
    pub pending: Vec<serde_json::Value>,
    /// The last command list sent (`/agents`, `/env`): only a tap on it counts.
    pub menu: Option<Menu>,
    /// Written by the store: 0 for a session never written, then one more per write. An
    /// update's change to it is ignored.
    pub version: u64,
}

/// The history's text, pending replies and the menu stay out of logs: only their sizes show.
impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("agent", &self.agent)
            .field("environment", &self.environment)
            .field("history_turns", &self.history.len())
            .field("last_user_message_at", &self.last_user_message_at)
            .field("pending", &self.pending.len())
            .field("menu", &self.menu.as_ref().map(|menu| menu.kind))
            .field("version", &self.version)
            .finish()
    }
}

impl Session {
    /// Appends `turn`, then drops the oldest turns until at most `max_turns` remain and their
    /// text is at most [`HISTORY_TEXT_MAX_BYTES`] in all. A turn longer than that on its own
    /// keeps its beginning, cut at a character boundary and ended with [`CUT_MARKER`].
    /// `max_turns` 0 keeps no history at all.
    pub fn push_turn(&mut self, mut turn: Turn, max_turns: usize) {
        if max_turns == 0 {
            self.history.clear();
            return;
        }
        cut_to(&mut turn.text, HISTORY_TEXT_MAX_BYTES);
        self.history.push(turn);
        let excess = self.history.len().saturating_sub(max_turns);
        self.history.drain(..excess);
        let mut total: usize = self.history.iter().map(|turn| turn.text.len()).sum();
        let mut drop = 0;
        while total > HISTORY_TEXT_MAX_BYTES {
            total -= self.history[drop].text.len();
            drop += 1;
        }
        self.history.drain(..drop);
    }

    /// `/reset`: forgets the history; the selections and kept replies stay.
    pub fn clear_history(&mut self) {
        self.history.clear();
    }

    /// Records the sender's message time (the 24-hour window's start), never moving it back.
    pub fn record_user_message(&mut self, unix_seconds: i64) {
        self.last_user_message_at = Some(
            self.last_user_message_at
                .map_or(unix_seconds, |last| last.max(unix_seconds)),
        );
    }

    /// Whether WhatsApp's 24-hour customer service window is open at `now` (unix seconds):
    /// the sender wrote less than 24 hours ago. Closed when they never wrote.
    pub fn window_open(&self, now: i64) -> bool {
        const WINDOW_SECS: i64 = 24 * 60 * 60;
        self.last_user_message_at
            .is_some_and(|last| now.saturating_sub(last) < WINDOW_SECS)
    }

    /// Keeps `reply` to send once the window opens again. Beyond [`PENDING_MAX`] replies or
    /// [`PENDING_MAX_BYTES`] of JSON the oldest go; what went is returned (oldest first) for
    /// the caller to log; a reply too large on its own is itself returned, and not kept.
    pub fn push_pending(&mut self, reply: serde_json::Value) -> Vec<serde_json::Value> {
        let size = |value: &serde_json::Value| value.to_string().len();
        if size(&reply) > PENDING_MAX_BYTES {
            return vec![reply];
        }
        self.pending.push(reply);
        let mut sizes: Vec<usize> = self.pending.iter().map(size).collect();
        let mut total: usize = sizes.iter().sum();
        let mut drop = self.pending.len().saturating_sub(PENDING_MAX);
        total -= sizes.drain(..drop).sum::<usize>();
        for size in sizes {
            if total <= PENDING_MAX_BYTES {
                break;
            }
            total -= size;
            drop += 1;
        }
        self.pending.drain(..drop).collect()
    }

    /// The kept replies, oldest first, leaving none.
    pub fn take_pending(&mut self) -> Vec<serde_json::Value> {
        std::mem::take(&mut self.pending)
    }
}

/// Cuts `text` to at most `max` bytes, at a character boundary, ending with [`CUT_MARKER`].
fn cut_to(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    let mut end = max.saturating_sub(CUT_MARKER.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(CUT_MARKER);
}

/// Why a session could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The store failed (throttled, unreachable, refused). The SDK error is the source.
    #[error("session store {operation} failed ({code}){}", if *.retryable { "; worth retrying" } else { "" })]
    Store {
        operation: &'static str,
        /// The service's error code, or the kind of failure (`timeout`, `dispatch`, …).
        code: String,
        retryable: bool,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Every attempt of an update met a concurrent write: the sender is very busy.
    #[error("session update gave up after {attempts} attempts, each overtaken by another write")]
    Conflict { attempts: u32 },
    /// The stored item cannot be used (no readable version): written by something else.
    #[error("stored session is unreadable: {0}")]
    Corrupt(String),
    /// The session would not fit in one item.
    #[error("session too large to store: {bytes} bytes of state, limit {limit}")]
    TooLarge { bytes: usize, limit: usize },
}

impl SessionError {
    /// Whether trying again later may succeed (a throttled or unreachable store, a burst of
    /// concurrent updates); otherwise the caller answers without the session or tells the user.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store { retryable, .. } => *retryable,
            Self::Conflict { .. } => true,
            Self::Corrupt(_) | Self::TooLarge { .. } => false,
        }
    }
}

/// Loads and updates sessions. An absent or expired session loads as [`Session::default`].
pub trait SessionStore: Send + Sync {
    /// The session of `key` (a consistent read).
    fn load<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<Session, SessionError>>;

    /// Applies `change` to the current session and stores it unless another write came first;
    /// then reads again and reapplies (at most [`UPDATE_ATTEMPTS`] times): `change` may run
    /// more than once and must only change the session it is given. Returns the session as
    /// stored. A change that changes nothing writes nothing. Each write keeps the session for
    /// the store's TTL from now.
    fn update<'a>(
        &'a self,
        key: &'a SessionKey,
        change: &'a mut (dyn FnMut(&mut Session) + Send),
    ) -> BoxFuture<'a, Result<Session, SessionError>>;
}

/// What an adapter does for the shared update loop.
pub(crate) trait VersionedStore: Send + Sync {
    /// The stored session (version 0 if none); an expired one as the default with its version.
    fn read<'a>(&'a self, key: &'a SessionKey) -> BoxFuture<'a, Result<Session, SessionError>>;
    /// Stores `session` with version `session.version + 1` and `expires_at`, if the stored
    /// version is still `session.version` (0: no item). `state` is the encoded
    /// history/pending/menu ([`encode_state`]).
    fn write<'a>(
        &'a self,
        key: &'a SessionKey,
        session: &'a Session,
        state: &'a str,
        expires_at: i64,
    ) -> BoxFuture<'a, Result<Written, SessionError>>;
}

/// The answer to a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    Stored,
    /// Someone else wrote first: read again.
    Conflict,
}

/// The part of a session stored as one JSON document (the `state` attribute): history,
/// pending replies, menu.
#[derive(Serialize, Deserialize, Default)]
struct State {
    #[serde(default)]
    history: Vec<Turn>,
    #[serde(default)]
    pending: Vec<serde_json::Value>,
    #[serde(default)]
    menu: Option<Menu>,
}

/// The `state` JSON of `session`, refused beyond [`STATE_MAX_BYTES`].
pub(crate) fn encode_state(session: &Session) -> Result<String, SessionError> {
    #[derive(Serialize)]
    struct StateRef<'a> {
        history: &'a [Turn],
        pending: &'a [serde_json::Value],
        menu: &'a Option<Menu>,
    }
    let state = serde_json::to_string(&StateRef {
        history: &session.history,
        pending: &session.pending,
        menu: &session.menu,
    })
    .map_err(|error| SessionError::Corrupt(crate::redact::serde_error(&error)))?;
    if state.len() > STATE_MAX_BYTES {
        return Err(SessionError::TooLarge {
            bytes: state.len(),
            limit: STATE_MAX_BYTES,
        });
    }
    Ok(state)
}

/// Fills `session`'s history, pending replies and menu from `state`; an unreadable document
/// leaves them empty (logged without its content): a broken item must not silence the sender.
pub(crate) fn decode_state(session: &mut Session, state: &str) {
    match serde_json::from_str::<State>(state) {
        Ok(state) => {
            session.history = state.history;
            session.pending = state.pending;
            session.menu = state.menu;
        }
        Err(error) => {
            tracing::warn!(
                error = %crate::redact::serde_error(&error),
                "stored session state unreadable: history, kept replies and menu start empty"
            );
        }
    }
}

/// The shared update loop of both adapters (see [`SessionStore::update`]).
pub(crate) async fn update_with<S: VersionedStore + ?Sized>(
    store: &S,
    key: &SessionKey,
    change: &mut (dyn FnMut(&mut Session) + Send),
    ttl: Duration,
) -> Result<Session, SessionError> {
    for attempt in 1..=UPDATE_ATTEMPTS {
        let read = store.read(key).await?;
        let mut session = read.clone();
        change(&mut session);
        session.version = read.version;
        if session == read {
            return Ok(read);
        }
        let state = encode_state(&session)?;
        let expires_at =
            now_unix().saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
        match store.write(key, &session, &state, expires_at).await? {
            Written::Stored => {
                session.version += 1;
                return Ok(session);
            }
            Written::Conflict if attempt < UPDATE_ATTEMPTS => {
                let wait = crate::backoff::delay(
                    UPDATE_BACKOFF_BASE,
                    attempt,
                    UPDATE_BACKOFF_CAP,
                    crate::backoff::Spread::UpperHalf,
                    crate::backoff::random(),
                );
                tracing::debug!(session = %key, attempt, ?wait, "session write conflict; reading again");
                tokio::time::sleep(wait).await;
            }
            Written::Conflict => {}
        }
    }
    tracing::warn!(session = %key, attempts = UPDATE_ATTEMPTS, "session update gave up after repeated conflicts");
    Err(SessionError::Conflict {
        attempts: UPDATE_ATTEMPTS,
    })
}

/// Unix seconds now.
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// A session TTL of `days` days.
pub fn ttl_days(days: u64) -> Duration {
    Duration::from_secs(days.saturating_mul(24 * 60 * 60))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Channel, MessageId, MessageKind};

    fn sender(phone: Option<&str>, bsuid: Option<&str>) -> Sender {
        Sender {
            phone: phone.map(str::to_owned),
            bsuid: bsuid.map(str::to_owned),
            display_name: None,
        }
    }

    #[test]
    fn any_spelling_of_a_number_is_one_session() {
        let number = PhoneNumberId::from("106540352242922");
        let keys: Vec<SessionKey> = ["+1 415 555 1234", "14155551234", "001 (415) 555-1234"]
            .into_iter()
            .map(|phone| SessionKey::new(&number, &sender(Some(phone), Some("US.1"))).unwrap())
            .collect();
        assert!(keys.iter().all(|key| key == &keys[0]));
        assert_eq!(keys[0].as_str(), "whatsapp:106540352242922:14155551234");
        // Without a usable phone number: the BSUID; without either: no session.
        let bsuid = SessionKey::new(&number, &sender(Some("n/a"), Some("US.134912"))).unwrap();
        assert_eq!(bsuid.as_str(), "whatsapp:106540352242922:US.134912");
        assert!(SessionKey::new(&number, &sender(None, None)).is_none());
    }

    #[test]
    fn a_session_key_displays_the_sender_masked() {
        let key = SessionKey::new(
            &PhoneNumberId::from("1065"),
            &sender(Some("14155551234"), None),
        )
        .unwrap();
        for shown in [key.to_string(), format!("{key:?}")] {
            assert!(!shown.contains("14155551234"), "{shown}");
            assert!(shown.contains("whatsapp:1065:*******1234"), "{shown}");
        }
    }

    #[test]
    fn a_message_has_the_session_of_its_sender_and_number() {
        let message = InboundMessage {
            id: MessageId::from("wamid.1"),
            timestamp: 0,
            sender: sender(Some("+14155551234"), None),
            channel: Channel {
                phone_number_id: PhoneNumberId::from("1065"),
                display_phone_number: None,
                business_account_id: None,
            },
            reply_to: None,
            kind: MessageKind::Text { body: "hi".into() },
        };
        assert_eq!(
            SessionKey::of(&message).unwrap().as_str(),
            "whatsapp:1065:14155551234"
        );
    }

    #[test]
    fn history_keeps_the_last_turns() {
        let mut session = Session::default();
        for n in 0..15 {
            session.push_turn(Turn::user(format!("message {n}"), n), 10);
        }
        assert_eq!(session.history.len(), 10);
        assert_eq!(session.history[0].text, "message 5");
        assert_eq!(session.history[9].text, "message 14");
        // A smaller bound (HISTORY_TURNS lowered) applies at the next turn.
        session.push_turn(Turn::assistant("answer", 15), 3);
        let texts: Vec<&str> = session.history.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["message 13", "message 14", "answer"]);
        session.push_turn(Turn::user("no history", 16), 0);
        assert!(session.history.is_empty());
    }

    #[test]
    fn history_keeps_at_most_16_kb_of_text() {
        let mut session = Session::default();
        for n in 0..6 {
            session.push_turn(Turn::user(format!("{n}").repeat(5000), n), 10);
        }
        let total: usize = session.history.iter().map(|t| t.text.len()).sum();
        assert!(total <= HISTORY_TEXT_MAX_BYTES, "{total}");
        assert_eq!(
            session.history.len(),
            3,
            "three 5000-byte turns fit, four do not"
        );
        assert!(session.history[0].text.starts_with('3'));
    }

    #[test]
    fn a_turn_longer_than_16_kb_is_cut_at_a_character_boundary() {
        let mut session = Session::default();
        session.push_turn(Turn::user("an older turn", 0), 10);
        // 4-byte characters: a byte cut would split one.
        session.push_turn(Turn::assistant("🙂".repeat(5000), 1), 10);
        assert_eq!(session.history.len(), 1, "the long turn fills the budget");
        let text = &session.history[0].text;
        assert!(text.len() <= HISTORY_TEXT_MAX_BYTES, "{}", text.len());
        assert!(text.ends_with(CUT_MARKER));
        assert!(text.trim_end_matches(CUT_MARKER).chars().all(|c| c == '🙂'));
        // Exactly at the bound: kept whole.
        session.push_turn(Turn::user("x".repeat(HISTORY_TEXT_MAX_BYTES), 2), 10);
        assert_eq!(session.history.len(), 1);
        assert!(!session.history[0].text.ends_with(CUT_MARKER));
    }

    #[test]
    fn the_window_is_open_for_24_hours_after_the_last_message() {
        let mut session = Session::default();
        assert!(!session.window_open(1_000), "never wrote: closed");
        session.record_user_message(1_000);
        session.record_user_message(500);
        assert_eq!(
            session.last_user_message_at,
            Some(1_000),
            "never moves back"
        );
        assert!(session.window_open(1_000 + 24 * 3600 - 1));
        assert!(!session.window_open(1_000 + 24 * 3600));
    }

    #[test]
    fn pending_replies_are_bounded_oldest_first() {
        let mut session = Session::default();
        for n in 0..PENDING_MAX {
            assert!(
                session
                    .push_pending(serde_json::json!({ "n": n }))
                    .is_empty()
            );
        }
        let dropped = session.push_pending(serde_json::json!({ "n": PENDING_MAX }));
        assert_eq!(dropped, vec![serde_json::json!({"n": 0})]);
        assert_eq!(session.pending.len(), PENDING_MAX);

        let big = |tag: &str| serde_json::json!({ "text": tag.repeat(50 * 1024) });
        let mut session = Session::default();
        session.push_pending(serde_json::json!({"n": 1}));
        assert!(session.push_pending(big("a")).is_empty());
        assert!(session.push_pending(big("b")).is_empty());
        // Three of them are over 128 KB: the oldest go until the rest fit.
        assert_eq!(
            session.push_pending(big("c")),
            vec![serde_json::json!({"n": 1}), big("a")]
        );
        assert_eq!(session.pending, vec![big("b"), big("c")]);
        let too_big = serde_json::json!({ "text": "c".repeat(PENDING_MAX_BYTES) });
        assert_eq!(session.push_pending(too_big.clone()), vec![too_big]);
        assert_eq!(session.take_pending().len(), 2);
        assert!(session.pending.is_empty());
    }

    #[test]
    fn debug_shows_no_text() {
        let mut session = Session::default();
        session.push_turn(Turn::user("secret plans", 0), 10);
        session.push_pending(serde_json::json!({"text": "secret reply"}));
        let shown = format!("{session:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("history_turns: 1"), "{shown}");
    }

    #[test]
    fn state_round_trips_and_an_unreadable_one_starts_empty() {
        let mut session = Session::default();
        session.push_turn(Turn::user("a", 0), 10);
        session.push_pending(serde_json::json!({"text": "b"}));
        let state = encode_state(&session).unwrap();
        let mut back = Session::default();
        decode_state(&mut back, &state);
        assert_eq!(back, session);
        let mut broken = Session::default();
        decode_state(&mut broken, "{not json");
        assert_eq!(broken, Session::default());
    }

    /// A store every write of which is overtaken by another.
    struct AlwaysOvertaken {
        writes: std::sync::atomic::AtomicU32,
    }

    impl VersionedStore for AlwaysOvertaken {
        fn read<'a>(
            &'a self,
            _key: &'a SessionKey,
        ) -> BoxFuture<'a, Result<Session, SessionError>> {
            Box::pin(async { Ok(Session::default()) })
        }

        fn write<'a>(
            &'a self,
            _key: &'a SessionKey,
            _session: &'a Session,
            _state: &'a str,
            _expires_at: i64,
        ) -> BoxFuture<'a, Result<Written, SessionError>> {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async { Ok(Written::Conflict) })
        }
    }

    #[tokio::test]
    async fn an_update_always_overtaken_gives_up_retryably_after_its_attempts() {
        let store = AlwaysOvertaken { writes: 0.into() };
        let key = SessionKey::new(
            &PhoneNumberId::from("1"),
            &sender(Some("14155551234"), None),
        )
        .unwrap();
        let mut applied = 0;
        let error = update_with(
            &store,
            &key,
            &mut |s: &mut Session| {
                applied += 1;
                s.agent = Some("k8s".into());
            },
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
        assert!(matches!(
            error,
            SessionError::Conflict {
                attempts: UPDATE_ATTEMPTS
            }
        ));
        assert!(error.is_retryable());
        assert_eq!(applied, UPDATE_ATTEMPTS);
        assert_eq!(
            store.writes.load(std::sync::atomic::Ordering::SeqCst),
            UPDATE_ATTEMPTS
        );
    }

    #[test]
    fn an_oversized_state_is_refused() {
        let session = Session {
            pending: vec![serde_json::json!("x".repeat(STATE_MAX_BYTES))],
            ..Session::default()
        };
        let error = encode_state(&session).unwrap_err();
        assert!(matches!(error, SessionError::TooLarge { .. }));
        assert!(!error.is_retryable());
        assert!(SessionError::Conflict { attempts: 8 }.is_retryable());
    }
}

//! Built-in commands, answered without an agent: `/agents` and `/env` send a WhatsApp list to
//! choose from, `/reset` clears the history, `/help` lists the commands with the current
//! selections. Pure: parsing, tap ids, and the messages to send; the pipeline does the I/O.
//!
//! A list we send has row ids `wal:cmd:<nonce>:<index>` ([`RESERVED_PREFIX`] is ours: a tap
//! whose id starts with it is never the agent's). The nonce (128 random bits, fresh per list)
//! and the choices are kept in the session as its [`Menu`]; a tap counts only when its nonce is
//! the session's current menu's, so an old list, a forged id or a list sent to another user
//! selects nothing.

use super::Session;
use crate::domain::{ListRowOut, ListSectionOut, OutgoingMessage};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// Row and button ids starting with this are ours (command lists), never an agent's.
pub const RESERVED_PREFIX: &str = "wal:";
/// Our command lists' row ids: `wal:cmd:<nonce>:<index>`.
const COMMAND_TAP_PREFIX: &str = "wal:cmd:";
/// Bytes of randomness in a nonce (shown as twice as many hex digits).
const NONCE_BYTES: usize = 16;
/// WhatsApp's row title and description limits (`reply::limits`), which names fit by
/// construction (`config` refuses longer ones).
const ROW_DESCRIPTION_MAX: usize = crate::reply::limits::ROW_DESCRIPTION_MAX;
/// What marks the current choice in its row's description.
pub const CURRENT_MARK: &str = "✓ current";

/// A built-in command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// `/agents`: the list of agents to choose from.
    Agents,
    /// `/env`: the list of environments to choose from.
    Env,
    /// `/reset`: forget the conversation's history.
    Reset,
    /// `/help`: the commands, the current agent and environment.
    Help,
}

impl Command {
    /// The command `text` is, in any case and with surrounding spaces: `/agents`, `/env`,
    /// `/reset`, `/help`. Anything else (other `/words` included, or a command with more
    /// text after it) is `None`: a message for the agent.
    pub fn parse(text: &str) -> Option<Self> {
        let word = text.trim();
        [Self::Agents, Self::Env, Self::Reset, Self::Help]
            .into_iter()
            .find(|command| command.as_str().eq_ignore_ascii_case(word))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agents => "/agents",
            Self::Env => "/env",
            Self::Reset => "/reset",
            Self::Help => "/help",
        }
    }
}

/// What a command list chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MenuKind {
    Agents,
    Environments,
}

/// The command list last sent to a sender: a tap counts only on this one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Menu {
    /// 128 random bits, hex: part of every row id of the list.
    pub nonce: String,
    pub kind: MenuKind,
    /// The names offered, in row order (a row id's index points here).
    pub choices: Vec<String>,
    /// Unix seconds when the list was sent.
    pub sent_at: i64,
    /// The id WhatsApp gave the list message: a tap counts only when it replies to it (taps
    /// carry the tapped message as their context). Unknown until the list was sent.
    #[serde(default)]
    pub sent_id: Option<String>,
}

impl Menu {
    /// A menu of `choices` with a fresh nonce.
    pub fn new(kind: MenuKind, choices: Vec<String>, sent_at: i64) -> Self {
        Self {
            nonce: new_nonce(),
            kind,
            choices,
            sent_at,
            sent_id: None,
        }
    }

    /// The row id of choice `index`: `wal:cmd:<nonce>:<index>`.
    pub fn tap_id(&self, index: usize) -> String {
        format!("{COMMAND_TAP_PREFIX}{}:{index}", self.nonce)
    }
}

/// A fresh nonce: 128 bits, as 32 hex digits. No random-number dependency: SHA-256 over
/// `RandomState` keys (seeded per process from the operating system, varied per instance),
/// the time and a process-wide counter, as [`crate::idempotency::ClaimToken`] does.
pub fn new_nonce() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut digest = Sha256::new();
    for salt in 0..2u8 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(count);
        hasher.write_u8(salt);
        digest.update(hasher.finish().to_le_bytes());
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    digest.update(nanos.to_le_bytes());
    digest.update(count.to_le_bytes());
    digest.update(std::process::id().to_le_bytes());
    hex::encode(&digest.finalize()[..NONCE_BYTES])
}

/// Whether a tapped row or button id is ours ([`RESERVED_PREFIX`]): the function answers it,
/// the agent never sees it (even when [`resolve_tap`] finds it stale).
pub fn is_reserved(id: &str) -> bool {
    id.starts_with(RESERVED_PREFIX)
}

/// What a tap on a current command list selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub kind: MenuKind,
    /// The agent or environment name.
    pub choice: String,
}

/// The selection a tapped id makes: only a row of the session's current menu (same nonce,
/// an index within its choices) tapped on that very list message (`reply_to`, the tap's
/// context, is the list we sent, when we know its id); `None` for anything else.
pub fn resolve_tap(session: &Session, id: &str, reply_to: Option<&str>) -> Option<Selection> {
    let menu = session.menu.as_ref()?;
    if let Some(sent) = &menu.sent_id
        && reply_to != Some(sent.as_str())
    {
        return None;
    }
    let (nonce, index) = id.strip_prefix(COMMAND_TAP_PREFIX)?.split_once(':')?;
    if nonce != menu.nonce || index.starts_with('+') {
        return None;
    }
    let choice = menu.choices.get(index.parse::<usize>().ok()?)?;
    Some(Selection {
        kind: menu.kind,
        choice: choice.clone(),
    })
}

impl Session {
    /// Keeps `selection` as the sender's agent or environment.
    pub fn apply(&mut self, selection: &Selection) {
        let choice = Some(selection.choice.clone());
        match selection.kind {
            MenuKind::Agents => self.agent = choice,
            MenuKind::Environments => self.environment = choice,
        }
    }
}

/// A command's answer: the message, and for a list the menu to keep in the session (it
/// replaces the previous one, whose taps then select nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct CommandReply {
    pub message: OutgoingMessage,
    pub menu: Option<Menu>,
}

impl CommandReply {
    fn text(body: String) -> Self {
        Self {
            message: OutgoingMessage::Text { body },
            menu: None,
        }
    }
}

/// `/agents`: a list of `agents` (name as row title, description below, `current` marked
/// [`CURRENT_MARK`]), sent at `now`. `config` allows at most 10 agents, names of at most 24
/// characters and descriptions of at most 72: one WhatsApp list.
pub fn agents_reply(agents: &[(&str, Option<&str>)], current: &str, now: i64) -> CommandReply {
    list_reply(
        MenuKind::Agents,
        agents,
        Some(current),
        format!("*{current}* answers your messages. Tap an agent to switch."),
        "Choose agent",
        "Agents",
        now,
    )
}

/// `/env`: a list of `environments`, `current` marked; a text when none are configured.
pub fn environments_reply(
    environments: &[String],
    current: Option<&str>,
    now: i64,
) -> CommandReply {
    if environments.is_empty() {
        return CommandReply::text(
            "No environments are set up here (ENVIRONMENTS is empty), so there is nothing to \
             choose."
                .to_owned(),
        );
    }
    let rows: Vec<(&str, Option<&str>)> = environments
        .iter()
        .map(|environment| (environment.as_str(), None))
        .collect();
    let body = match current {
        Some(current) => format!("Your agent works in *{current}*. Tap an environment to switch."),
        None => "Tap an environment for your agent to work in.".to_owned(),
    };
    list_reply(
        MenuKind::Environments,
        &rows,
        current,
        body,
        "Choose environment",
        "Environments",
        now,
    )
}

fn list_reply(
    kind: MenuKind,
    rows: &[(&str, Option<&str>)],
    current: Option<&str>,
    body: String,
    button: &str,
    section: &str,
    now: i64,
) -> CommandReply {
    let menu = Menu::new(
        kind,
        rows.iter().map(|(name, _)| (*name).to_owned()).collect(),
        now,
    );
    let rows = rows
        .iter()
        .enumerate()
        .map(|(index, (name, description))| {
            let description = match (current == Some(*name), description) {
                (true, Some(description)) => Some(fit(
                    &format!("{CURRENT_MARK} · {description}"),
                    ROW_DESCRIPTION_MAX,
                )),
                (true, None) => Some(CURRENT_MARK.to_owned()),
                (false, description) => description.map(|d| fit(d, ROW_DESCRIPTION_MAX)),
            };
            ListRowOut {
                id: menu.tap_id(index),
                title: (*name).to_owned(),
                description,
            }
        })
        .collect();
    CommandReply {
        message: OutgoingMessage::List {
            header: None,
            body,
            footer: None,
            button: button.to_owned(),
            sections: vec![ListSectionOut {
                title: Some(section.to_owned()),
                rows,
            }],
        },
        menu: Some(menu),
    }
}

/// `text` in at most `max` characters, `…` ending a cut one.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// `/help`: the commands (`/env` only when environments are configured), then the current
/// agent (with its description) and environment.
pub fn help_text(
    agent: (&str, Option<&str>),
    environment: Option<&str>,
    has_environments: bool,
) -> String {
    let (name, description) = agent;
    let mut text = String::from("*Commands*\n/agents: choose the agent that answers you\n");
    if has_environments {
        text.push_str("/env: choose the environment it works in\n");
    }
    text.push_str("/reset: start the conversation afresh (the agent forgets it)\n");
    text.push_str("/help: this list\n\n");
    text.push_str(&format!("Agent: *{name}*"));
    if let Some(description) = description {
        text.push_str(&format!(" ({description})"));
    }
    if let Some(environment) = environment {
        text.push_str(&format!("\nEnvironment: *{environment}*"));
    }
    text
}

/// `/reset`'s confirmation: the history is gone, the selections stay.
pub fn reset_text(agent: &str, environment: Option<&str>) -> String {
    match environment {
        Some(environment) => {
            format!("Conversation cleared: *{agent}* starts afresh, still in *{environment}*.")
        }
        None => format!("Conversation cleared: *{agent}* starts afresh."),
    }
}

/// The confirmation of a tap on a command list.
pub fn selected_text(selection: &Selection) -> String {
    match selection.kind {
        MenuKind::Agents => format!(
            "✅ *{}* answers your messages from now on.",
            selection.choice
        ),
        MenuKind::Environments => format!("✅ Environment set to *{}*.", selection.choice),
    }
}

/// The answer to a tap on one of our lists that selects nothing: an older list (a newer one
/// was sent since), or a choice no longer configured.
pub fn stale_tap_text() -> String {
    "That list is out of date. Send /agents or /env for a fresh one.".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::limits::check;

    /// An agent as the `/agents` list shows it: its name and description.
    fn agent(name: &str, description: Option<&str>) -> (String, Option<String>) {
        (name.to_owned(), description.map(str::to_owned))
    }

    fn as_rows(agents: &[(String, Option<String>)]) -> Vec<(&str, Option<&str>)> {
        agents
            .iter()
            .map(|(name, description)| (name.as_str(), description.as_deref()))
            .collect()
    }

    #[test]
    fn commands_are_read_in_any_case_with_surrounding_spaces() {
        assert_eq!(Command::parse("/agents"), Some(Command::Agents));
        assert_eq!(Command::parse("  /AGENTS \n"), Some(Command::Agents));
        assert_eq!(Command::parse("/Env"), Some(Command::Env));
        assert_eq!(Command::parse("/reset"), Some(Command::Reset));
        assert_eq!(Command::parse("\t/help"), Some(Command::Help));
        for other in [
            "/deploy",
            "/agent",
            "/env prod",
            "agents",
            "/ help",
            "",
            "/",
            "help",
            "//help",
        ] {
            assert_eq!(Command::parse(other), None, "{other:?} goes to the agent");
        }
    }

    #[test]
    fn nonces_are_128_bit_hex_and_distinct() {
        let nonces: std::collections::HashSet<String> = (0..1000).map(|_| new_nonce()).collect();
        assert_eq!(nonces.len(), 1000);
        assert!(nonces.iter().all(|n| {
            n.len() == 32
                && n.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }));
    }

    #[test]
    fn the_agents_list_marks_the_current_one_and_fits_whatsapp() {
        let agents = [
            agent("k8s", Some("Kubernetes")),
            agent("cost", Some("AWS cost")),
            agent("x".repeat(24).as_str(), Some(&"d".repeat(72))),
            agent("plain", None),
        ];
        let reply = agents_reply(&as_rows(&agents), "cost", 1_000);
        check(&reply.message).unwrap();
        let menu = reply.menu.expect("a list keeps its menu");
        assert_eq!(menu.kind, MenuKind::Agents);
        assert_eq!(
            menu.choices,
            ["k8s", "cost", "x".repeat(24).as_str(), "plain"]
        );
        assert_eq!(menu.sent_at, 1_000);
        let OutgoingMessage::List { body, sections, .. } = reply.message else {
            panic!("a list");
        };
        assert!(body.contains("*cost*"), "{body}");
        let rows = &sections[0].rows;
        assert_eq!(rows[0].title, "k8s");
        assert_eq!(rows[0].description.as_deref(), Some("Kubernetes"));
        assert_eq!(rows[1].description.as_deref(), Some("✓ current · AWS cost"));
        assert_eq!(rows[3].description, None);
        assert_eq!(rows[2].id, menu.tap_id(2));
        assert!(rows.iter().all(|row| row.id.starts_with(RESERVED_PREFIX)));

        // The current one with the longest description: cut to fit.
        let reply = agents_reply(&as_rows(&agents), &"x".repeat(24), 1_000);
        check(&reply.message).unwrap();
    }

    #[test]
    fn ten_agents_fit_one_list() {
        let agents: Vec<(String, Option<String>)> = (0..10)
            .map(|n| agent(&format!("agent-{n}"), Some(&"é".repeat(72))))
            .collect();
        let reply = agents_reply(&as_rows(&agents), "agent-9", 0);
        check(&reply.message).unwrap();
    }

    #[test]
    fn the_environments_list_or_a_note_that_there_are_none() {
        let environments = vec!["prod".to_owned(), "staging".to_owned(), "dev".to_owned()];
        let reply = environments_reply(&environments, Some("staging"), 5);
        check(&reply.message).unwrap();
        let menu = reply.menu.unwrap();
        assert_eq!(menu.kind, MenuKind::Environments);
        let OutgoingMessage::List { sections, .. } = reply.message else {
            panic!("a list");
        };
        assert_eq!(
            sections[0].rows[1].description.as_deref(),
            Some(CURRENT_MARK)
        );
        assert_eq!(sections[0].rows[0].description, None);

        let none = environments_reply(&[], None, 5);
        assert!(none.menu.is_none());
        assert!(none.message.text_body().unwrap().contains("ENVIRONMENTS"));
        check(&none.message).unwrap();
    }

    #[test]
    fn a_tap_selects_only_on_the_current_menu() {
        let mut session = Session::default();
        let environments = vec!["prod".to_owned(), "staging".to_owned()];
        let old = environments_reply(&environments, None, 1).menu.unwrap();
        let menu = environments_reply(&environments, None, 2).menu.unwrap();
        session.menu = Some(menu.clone());

        let selection = resolve_tap(&session, &menu.tap_id(1), None).unwrap();
        assert_eq!(
            selection,
            Selection {
                kind: MenuKind::Environments,
                choice: "staging".into()
            }
        );
        session.apply(&selection);
        assert_eq!(session.environment.as_deref(), Some("staging"));
        assert!(selected_text(&selection).contains("*staging*"));

        let nonce = &menu.nonce;
        for stale in [
            old.tap_id(1),                 // an older list
            menu.tap_id(2),                // no such row
            format!("wal:cmd:{nonce}:+1"), // not how we write an index
            format!("wal:cmd:{nonce}:"),
            format!("wal:cmd:{nonce}"),
            format!("wal:cmd::{nonce}:1"),
            format!("env_prod:{nonce}:1"),
            "wal:cmd:".to_owned(),
        ] {
            assert_eq!(resolve_tap(&session, &stale, None), None, "{stale}");
        }
        assert!(is_reserved(&old.tap_id(1)), "ours, though stale");
        assert!(!is_reserved("env_prod"));
        assert_eq!(
            resolve_tap(&Session::default(), &menu.tap_id(0), None),
            None,
            "no menu kept"
        );
    }

    #[test]
    fn a_tap_counts_only_on_the_list_message_we_sent() {
        let mut session = Session::default();
        let mut menu = environments_reply(&["prod".to_owned()], None, 1)
            .menu
            .unwrap();
        menu.sent_id = Some("wamid.LIST".to_owned());
        session.menu = Some(menu.clone());
        assert!(resolve_tap(&session, &menu.tap_id(0), Some("wamid.LIST")).is_some());
        assert_eq!(
            resolve_tap(&session, &menu.tap_id(0), Some("wamid.OTHER")),
            None
        );
        assert_eq!(resolve_tap(&session, &menu.tap_id(0), None), None);
    }

    #[test]
    fn selecting_an_agent_keeps_it() {
        let mut session = Session::default();
        let reply = agents_reply(&[("k8s", None), ("cost", None)], "k8s", 0);
        session.menu = reply.menu.clone();
        let selection = resolve_tap(&session, &reply.menu.unwrap().tap_id(1), None).unwrap();
        session.apply(&selection);
        assert_eq!(session.agent.as_deref(), Some("cost"));
        assert_eq!(session.environment, None);
        assert!(selected_text(&selection).contains("*cost*"));
    }

    #[test]
    fn help_lists_the_commands_and_the_current_selection() {
        let k8s = agent("k8s", Some("Kubernetes"));
        let help = help_text((&k8s.0, k8s.1.as_deref()), Some("prod"), true);
        for part in [
            "/agents",
            "/env",
            "/reset",
            "/help",
            "*k8s* (Kubernetes)",
            "*prod*",
        ] {
            assert!(help.contains(part), "{part}: {help}");
        }
        let help = help_text(("default", None), None, false);
        assert!(
            !help.contains("/env") && !help.contains("Environment"),
            "{help}"
        );
        assert!(help.contains("Agent: *default*"), "{help}");
        check(&OutgoingMessage::Text { body: help }).unwrap();
    }

    #[test]
    fn reset_and_stale_texts_name_what_stays() {
        assert!(reset_text("k8s", Some("prod")).contains("*prod*"));
        assert!(reset_text("k8s", None).contains("*k8s*"));
        assert!(stale_tap_text().contains("/agents"));
    }
}

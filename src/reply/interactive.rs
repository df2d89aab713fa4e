//! The agent's quick actions and explicit lists → one WhatsApp interactive message (reply
//! buttons or a list) within every interactive limit; the body is chosen by the caller.
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-reply-buttons-messages>
//! <https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-list-messages>

use super::limits::{
    BUTTON_ID_MAX, BUTTON_TITLE_MAX, BUTTONS_MAX, HEADER_MAX, INTERACTIVE_BODY_MAX,
    LIST_BUTTON_MAX, LIST_ROWS_MAX, LIST_SECTIONS_MAX, ROW_DESCRIPTION_MAX, ROW_ID_MAX,
    ROW_TITLE_MAX, SECTION_TITLE_MAX,
};
use super::markdown::to_whatsapp;
use super::sanitize::{is_visible, visible_line};
use super::split::{shorten, truncate};
use crate::agent::{Action, AgentReply, ListRow, ListSpec};
use crate::domain::{ListRowOut, ListSectionOut, OutgoingMessage, ReplyButton};
use std::collections::HashSet;

/// The list's menu button when the agent names none.
pub const DEFAULT_LIST_BUTTON: &str = "Choose";
/// The body of an interactive message when the reply has no text.
pub const DEFAULT_BODY: &str = "Choose an option:";
/// Title of the n-th section of a multi-section list that has none (WhatsApp requires one).
const DEFAULT_SECTION_TITLE: &str = "Options";
/// Id of an action whose label has nothing to make a slug from.
const FALLBACK_ID: &str = "option";

/// An interactive message waiting for its body.
#[derive(Debug, Clone, PartialEq)]
pub struct Menu {
    /// The body the agent set explicitly (`list.body`), converted and within the limit.
    pub body: Option<String>,
    kind: MenuKind,
}

#[derive(Debug, Clone, PartialEq)]
enum MenuKind {
    Buttons(Vec<ReplyButton>),
    List {
        header: Option<String>,
        button: String,
        sections: Vec<ListSectionOut>,
    },
}

impl Menu {
    /// The message, with `body` (non-blank, at most [`INTERACTIVE_BODY_MAX`] chars) as its body.
    pub fn into_message(self, body: String) -> OutgoingMessage {
        match self.kind {
            MenuKind::Buttons(buttons) => OutgoingMessage::Buttons {
                header: None,
                body,
                footer: None,
                buttons,
            },
            MenuKind::List {
                header,
                button,
                sections,
            } => OutgoingMessage::List {
                header,
                body,
                footer: None,
                button,
                sections,
            },
        }
    }
}

/// What the reply's actions and list come to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// The interactive message, if any: the explicit list, else the actions.
    pub menu: Option<Menu>,
    /// A list without a usable row: its header and body, to be sent as text instead, so that
    /// what the agent wrote above its (empty) menu still reaches the user.
    pub fallback_text: Option<String>,
    /// Actions and rows that had something to show but could not be: over WhatsApp's limits,
    /// or actions given with a list that was sent.
    pub left_out: usize,
}

/// The interactive message a reply asks for, if any: its explicit list, else its actions.
pub fn menu(reply: &AgentReply) -> Plan {
    let mut plan = Plan::default();
    if let Some(list) = &reply.list {
        let (menu, left_out) = explicit_list(list);
        plan.left_out += left_out;
        if let Some(menu) = menu {
            let ignored = choices(&reply.actions).len();
            if ignored > 0 {
                tracing::warn!(
                    dropped = ignored,
                    "reply has both a list and actions; the list wins, actions dropped"
                );
                plan.left_out += ignored;
            }
            plan.menu = Some(menu);
            return plan;
        }
        plan.fallback_text = list_as_text(list);
        tracing::warn!(
            as_text = plan.fallback_text.is_some(),
            "reply list has no usable rows; its header and body sent as text"
        );
    }
    let (menu, left_out) = actions_menu(&reply.actions);
    plan.menu = menu;
    plan.left_out += left_out;
    plan
}

/// The header and body of a list that cannot be sent as one, as WhatsApp text.
fn list_as_text(list: &ListSpec) -> Option<String> {
    let header = list.header.as_deref().and_then(visible_line);
    let body = list
        .body
        .as_deref()
        .map(to_whatsapp)
        .filter(|body| !body.trim().is_empty());
    match (header, body) {
        (Some(header), Some(body)) => Some(format!("{header}\n{body}")),
        (header, body) => header.or(body),
    }
}

/// An action or row with its id and title filled in from each other.
#[derive(Debug, Clone, PartialEq)]
struct Choice {
    id: String,
    title: String,
    /// A list row's description as the agent wrote it.
    description: Option<String>,
}

impl Choice {
    /// Control characters stripped from both; `None` when neither shows anything. An id with
    /// nothing visible becomes a slug of the title, a title with nothing visible the id (so a
    /// title of zero-width spaces or braille blanks never makes a blank button).
    ///
    /// An id under the prefix reserved for the function's own lists, pages and templates
    /// ([`crate::sessions::commands::RESERVED_PREFIX`]) is dropped with its button or row, and
    /// logged: a tap on it would be taken for ours (a page's Acknowledge, a command list's row).
    fn new(id: &str, title: &str) -> Option<Self> {
        if crate::sessions::commands::is_reserved(id.trim()) {
            tracing::warn!(
                "agent's button or row uses the reserved id prefix {:?}: dropped",
                crate::sessions::commands::RESERVED_PREFIX
            );
            return None;
        }
        let (id, title) = (visible_line(id), visible_line(title));
        let (id, title) = match (id, title) {
            (None, None) => return None,
            (Some(id), None) => (id.clone(), id),
            (None, Some(title)) => (slug(&title), title),
            (Some(id), Some(title)) => (id, title),
        };
        Some(Self {
            id,
            title,
            description: None,
        })
    }
}

/// Lowercase letters and digits of `label`, other runs replaced by one `-`: "Restart API!" → "restart-api".
pub fn slug(label: &str) -> String {
    let mut slug = String::with_capacity(label.len());
    for c in label.chars() {
        if c.is_alphanumeric() {
            slug.extend(c.to_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        FALLBACK_ID.to_owned()
    } else {
        slug.to_owned()
    }
}

/// The actions that show something, in order.
fn choices(actions: &[Action]) -> Vec<Choice> {
    actions
        .iter()
        .filter_map(|action| Choice::new(&action.id, &action.label))
        .collect()
}

/// The actions as buttons or a list, and how many were left out (over the limit).
fn actions_menu(actions: &[Action]) -> (Option<Menu>, usize) {
    let mut choices = choices(actions);
    let mut left_out = 0;
    if choices.len() > LIST_ROWS_MAX {
        left_out = choices.len() - LIST_ROWS_MAX;
        tracing::warn!(
            dropped = left_out,
            "more than {LIST_ROWS_MAX} actions; extra actions dropped"
        );
        choices.truncate(LIST_ROWS_MAX);
    }
    if choices.is_empty() {
        return (None, left_out);
    }
    let kind = if choices.len() <= BUTTONS_MAX {
        let ids = unique_ids(choices.iter().map(|c| c.id.as_str()), BUTTON_ID_MAX);
        let titles = unique_titles(choices.iter().map(|c| c.title.as_str()), BUTTON_TITLE_MAX);
        MenuKind::Buttons(
            ids.into_iter()
                .zip(titles)
                .map(|(id, title)| ReplyButton { id, title })
                .collect(),
        )
    } else {
        // More than three actions do not fit as buttons: a one-section list.
        let ids = unique_ids(choices.iter().map(|c| c.id.as_str()), ROW_ID_MAX);
        let rows = ids
            .into_iter()
            .zip(&choices)
            .map(|(id, choice)| {
                let title = shorten(&choice.title, ROW_TITLE_MAX);
                // The full label still reads in the description when the title had to be cut.
                let description = (choice.title.chars().count() > ROW_TITLE_MAX)
                    .then(|| shorten(&choice.title, ROW_DESCRIPTION_MAX));
                ListRowOut {
                    id,
                    title,
                    description,
                }
            })
            .collect();
        MenuKind::List {
            header: None,
            button: DEFAULT_LIST_BUTTON.to_owned(),
            sections: vec![ListSectionOut { title: None, rows }],
        }
    };
    (Some(Menu { body: None, kind }), left_out)
}

/// The agent's list within every list limit (`None` when no row is left), and how many rows
/// were left out over the limits.
fn explicit_list(list: &ListSpec) -> (Option<Menu>, usize) {
    let mut kept: Vec<(Option<String>, Vec<Choice>)> = Vec::new();
    let mut rows_left = LIST_ROWS_MAX;
    let (mut dropped_rows, mut dropped_sections) = (0, 0);
    for section in &list.sections {
        let rows: Vec<Choice> = section.rows.iter().filter_map(row_choice).collect();
        if rows.is_empty() {
            continue;
        }
        if kept.len() == LIST_SECTIONS_MAX || rows_left == 0 {
            dropped_sections += 1;
            dropped_rows += rows.len();
            continue;
        }
        let take = rows.len().min(rows_left);
        dropped_rows += rows.len() - take;
        rows_left -= take;
        let title = section.title.as_deref().and_then(visible_line);
        kept.push((title, rows.into_iter().take(take).collect()));
    }
    if dropped_rows > 0 {
        tracing::warn!(
            dropped_rows,
            dropped_sections,
            "list exceeds WhatsApp's {LIST_ROWS_MAX} rows / {LIST_SECTIONS_MAX} sections; extra dropped"
        );
    }
    if kept.is_empty() {
        return (None, dropped_rows);
    }

    let mut ids = unique_ids(
        kept.iter()
            .flat_map(|(_, rows)| rows.iter().map(|r| r.id.as_str())),
        ROW_ID_MAX,
    )
    .into_iter();
    let several = kept.len() > 1;
    let sections = kept
        .into_iter()
        .enumerate()
        .map(|(index, (title, rows))| {
            let title = match title {
                Some(title) => Some(shorten(&title, SECTION_TITLE_MAX)),
                None if several => Some(format!("{DEFAULT_SECTION_TITLE} {}", index + 1)),
                None => None,
            };
            let rows = rows
                .into_iter()
                .zip(&mut ids)
                .map(|(choice, id)| ListRowOut {
                    id,
                    title: shorten(&choice.title, ROW_TITLE_MAX),
                    description: choice
                        .description
                        .as_deref()
                        .and_then(visible_line)
                        .map(|d| shorten(&d, ROW_DESCRIPTION_MAX)),
                })
                .collect();
            ListSectionOut { title, rows }
        })
        .collect();

    let header = list
        .header
        .as_deref()
        .and_then(visible_line)
        .map(|header| shorten(&header, HEADER_MAX));
    let button = list
        .button
        .as_deref()
        .and_then(visible_line)
        .map(|button| shorten(&button, LIST_BUTTON_MAX))
        .unwrap_or_else(|| DEFAULT_LIST_BUTTON.to_owned());
    let body = list
        .body
        .as_deref()
        .map(|body| shorten(&to_whatsapp(body), INTERACTIVE_BODY_MAX))
        .filter(|body| !body.is_empty());
    let menu = Menu {
        body,
        kind: MenuKind::List {
            header,
            button,
            sections,
        },
    };
    (Some(menu), dropped_rows)
}

fn row_choice(row: &ListRow) -> Option<Choice> {
    let description = row.description.as_deref().unwrap_or_default();
    Choice::new(&row.id, &row.title).map(|choice| Choice {
        description: Some(description.to_owned()),
        ..choice
    })
}

/// Ids within `max` chars, without surrounding spaces, made unique with "-2", "-3", …
/// (reserved ids never get here: [`Choice::new`] drops them).
fn unique_ids<'a>(ids: impl Iterator<Item = &'a str>, max: usize) -> Vec<String> {
    let fit = |id: &str, max: usize| {
        let id = truncate(id.trim(), max).trim_end();
        if !is_visible(id) {
            truncate(FALLBACK_ID, max).to_owned()
        } else {
            id.to_owned()
        }
    };
    unique(ids, max, fit, |n| format!("-{n}"))
}

/// Titles shortened to `max` chars, made unique with " (2)", " (3)", …
pub fn unique_titles<'a>(titles: impl Iterator<Item = &'a str>, max: usize) -> Vec<String> {
    unique(titles, max, shorten, |n| format!(" ({n})"))
}

/// Fits each value to `max` chars; a value seen before gets the first free suffix, its base
/// shortened further so that base and suffix still fit.
fn unique<'a>(
    values: impl Iterator<Item = &'a str>,
    max: usize,
    fit: impl Fn(&str, usize) -> String,
    suffix: impl Fn(usize) -> String,
) -> Vec<String> {
    let mut used = HashSet::new();
    values
        .map(|value| {
            let mut candidate = fit(value, max);
            let mut n = 1;
            while used.contains(&candidate) {
                n += 1;
                let suffix = suffix(n);
                let base = fit(value, max.saturating_sub(suffix.chars().count()));
                candidate = format!("{base}{suffix}");
            }
            used.insert(candidate.clone());
            candidate
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::ListSection;

    fn action(id: &str, label: &str) -> Action {
        Action {
            id: id.into(),
            label: label.into(),
        }
    }

    fn buttons(menu: Option<Menu>) -> Vec<ReplyButton> {
        match menu.map(|m| m.into_message("b".into())) {
            Some(OutgoingMessage::Buttons { buttons, .. }) => buttons,
            other => panic!("expected buttons, got {other:?}"),
        }
    }

    fn list(menu: Option<Menu>) -> (Option<String>, String, Vec<ListSectionOut>) {
        match menu.map(|m| m.into_message("b".into())) {
            Some(OutgoingMessage::List {
                header,
                button,
                sections,
                ..
            }) => (header, button, sections),
            other => panic!("expected a list, got {other:?}"),
        }
    }

    fn reply_with_actions(actions: Vec<Action>) -> AgentReply {
        AgentReply {
            actions,
            ..AgentReply::default()
        }
    }

    fn row(id: &str, title: &str) -> ListRow {
        ListRow {
            id: id.into(),
            title: title.into(),
            description: None,
        }
    }

    #[test]
    fn actions_are_trimmed_and_filled_from_each_other() {
        let reply = reply_with_actions(vec![
            action("  restart ", " Restart pod "),
            action("", "Scale Up!"),
            action("logs", "   "),
            action("  ", ""),
        ]);
        assert_eq!(
            buttons(menu(&reply).menu),
            vec![
                ReplyButton {
                    id: "restart".into(),
                    title: "Restart pod".into()
                },
                ReplyButton {
                    id: "scale-up".into(),
                    title: "Scale Up!".into()
                },
                ReplyButton {
                    id: "logs".into(),
                    title: "logs".into()
                },
            ]
        );
    }

    #[test]
    fn long_button_titles_are_shortened_with_an_ellipsis() {
        let reply = reply_with_actions(vec![action("a", "Restart the payments API now")]);
        assert_eq!(buttons(menu(&reply).menu)[0].title, "Restart the payment…");
    }

    #[test]
    fn duplicate_button_titles_are_disambiguated() {
        let reply = reply_with_actions(vec![
            action("a", "Restart the payments API"),
            action("b", "Restart the payments API again"),
            action("c", "OK"),
        ]);
        let titles: Vec<String> = buttons(menu(&reply).menu)
            .into_iter()
            .map(|b| b.title)
            .collect();
        assert_eq!(
            titles,
            vec!["Restart the payment…", "Restart the pay… (2)", "OK"]
        );
        assert!(titles.iter().all(|t| t.chars().count() <= BUTTON_TITLE_MAX));
    }

    #[test]
    fn agent_ids_never_pass_for_the_functions_own() {
        let reply = reply_with_actions(vec![
            action("wal:cmd:0123:1", "Sneaky"),
            action(" wal:alert:0123:acknowledge", "Fake acknowledge"),
            action("logs", "Logs"),
        ]);
        let ids: Vec<String> = buttons(menu(&reply).menu)
            .into_iter()
            .map(|button| button.id)
            .collect();
        assert_eq!(
            ids,
            vec!["logs"],
            "the reserved id is dropped with its button"
        );
        assert!(
            ids.iter()
                .all(|id| !crate::sessions::commands::is_reserved(id))
        );
    }

    #[test]
    fn duplicate_ids_are_made_unique() {
        let reply =
            reply_with_actions(vec![action("x", "A"), action("x", "B"), action("x-2", "C")]);
        let ids: Vec<String> = buttons(menu(&reply).menu)
            .into_iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(ids, vec!["x", "x-2", "x-2-2"]);
    }

    #[test]
    fn slug_keeps_letters_and_digits() {
        assert_eq!(slug("Restart API (prod)!"), "restart-api-prod");
        assert_eq!(slug("🚀 Déployer"), "déployer");
        assert_eq!(slug("🚀"), "option");
    }

    #[test]
    fn more_than_three_actions_become_a_list() {
        let reply = reply_with_actions(
            [
                "one",
                "two",
                "three",
                "Restart every pod in the payments namespace",
            ]
            .iter()
            .map(|label| action("", label))
            .collect(),
        );
        let (header, button, sections) = list(menu(&reply).menu);
        assert_eq!(header, None);
        assert_eq!(button, "Choose");
        assert_eq!(sections.len(), 1);
        assert_eq!(sections[0].title, None);
        let rows = &sections[0].rows;
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].id, "one");
        assert_eq!(rows[0].description, None);
        assert_eq!(rows[3].title, "Restart every pod in th…");
        assert_eq!(
            rows[3].description.as_deref(),
            Some("Restart every pod in the payments namespace")
        );
    }

    #[test]
    fn more_than_ten_actions_keep_the_first_ten() {
        let reply = reply_with_actions((1..=13).map(|n| action(&n.to_string(), "same")).collect());
        let (_, _, sections) = list(menu(&reply).menu);
        let ids: Vec<&str> = sections[0].rows.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, vec!["1", "2", "3", "4", "5", "6", "7", "8", "9", "10"]);
    }

    #[test]
    fn list_keeps_within_ten_rows() {
        let spec = ListSpec {
            header: Some("  Pods  ".into()),
            body: Some("Pick **one**".into()),
            button: Some("   ".into()),
            sections: vec![
                ListSection {
                    title: None,
                    rows: (0..4).map(|n| row(&format!("a{n}"), "A")).collect(),
                },
                ListSection {
                    title: Some("Empty".into()),
                    rows: vec![row(" ", "")],
                },
                ListSection {
                    title: Some("B".into()),
                    rows: (0..8).map(|n| row(&format!("b{n}"), "B")).collect(),
                },
                ListSection {
                    title: Some("C".into()),
                    rows: vec![row("c", "C")],
                },
            ],
        };
        let reply = AgentReply {
            list: Some(spec),
            ..AgentReply::default()
        };
        let menu = menu(&reply).menu;
        assert_eq!(
            menu.as_ref().and_then(|m| m.body.clone()).as_deref(),
            Some("Pick *one*")
        );
        let (header, button, sections) = list(menu);
        assert_eq!(header.as_deref(), Some("Pods"));
        assert_eq!(button, "Choose");
        assert_eq!(sections.len(), 2);
        assert_eq!(sections[0].title.as_deref(), Some("Options 1"));
        assert_eq!(sections[1].title.as_deref(), Some("B"));
        assert_eq!(
            sections[0].rows.len() + sections[1].rows.len(),
            LIST_ROWS_MAX
        );
        assert_eq!(sections[1].rows.last().map(|r| r.id.as_str()), Some("b5"));
    }

    #[test]
    fn list_row_ids_are_unique_across_sections_and_descriptions_follow_their_rows() {
        let spec = ListSpec {
            sections: vec![
                ListSection {
                    title: Some("  ".into()),
                    rows: vec![ListRow {
                        id: "dup".into(),
                        title: "First".into(),
                        description: Some("  ".into()),
                    }],
                },
                ListSection {
                    title: Some("A very long section title here".into()),
                    rows: vec![
                        row("", ""),
                        ListRow {
                            id: "dup".into(),
                            title: "Second".into(),
                            description: Some("x".repeat(100)),
                        },
                    ],
                },
            ],
            ..ListSpec::default()
        };
        let reply = AgentReply {
            list: Some(spec),
            actions: vec![action("ignored", "Ignored")],
            ..AgentReply::default()
        };
        let (_, _, sections) = list(menu(&reply).menu);
        assert_eq!(sections[0].title.as_deref(), Some("Options 1"));
        assert_eq!(
            sections[1].title.as_deref(),
            Some("A very long section tit…")
        );
        assert_eq!(sections[0].rows[0].id, "dup");
        assert_eq!(sections[0].rows[0].description, None);
        assert_eq!(sections[1].rows[0].id, "dup-2");
        let description = sections[1].rows[0].description.clone().unwrap_or_default();
        assert_eq!(description.chars().count(), ROW_DESCRIPTION_MAX);
        assert!(description.ends_with('…'));
    }

    #[test]
    fn empty_list_falls_back_to_actions() {
        let reply = AgentReply {
            list: Some(ListSpec::default()),
            actions: vec![action("ok", "OK")],
            ..AgentReply::default()
        };
        assert_eq!(buttons(menu(&reply).menu).len(), 1);
    }
}

//! `ONCALL`: who is paged for an alert.
//!
//! ```json
//! {"tiers": [["+14155551234"], [{"number": "+447700900123", "name": "Sam"}, "+4915112345678"]],
//!  "escalate_after_secs": 300, "agent": "ops",
//!  "routes": [{"match": {"team": "payments"}, "tiers": [["+14155550000"]],
//!              "escalate_after_secs": 120, "agent": "payments-bot"}]}
//! ```
//!
//! - `tiers` (required, on the top level and in every route): the people paged, tier by tier:
//!   1 to 10 tiers of 1 to 50 people each. A person is a phone number in any E.164 spelling
//!   (`"+1 415 555 1234"`) or `{"number": …, "name": …}` (name: 1 to 64 characters, no
//!   control characters), listed once per tier.
//! - `escalate_after_secs`: how long a tier has to acknowledge before the next is paged, 1 to
//!   86400 seconds (default 300; a route's defaults to the top level's).
//! - `agent`: which of `AGENTS` gets this alert's events (a route's defaults to the top
//!   level's; without one, the default agent).
//! - `routes`: the first route whose `match` labels (an object of strings, at least one) all
//!   equal the alert's labels decides; otherwise the top level.
//!
//! Unknown keys are refused, so a typo (`"escalate_after_sec"`) stops the function at cold
//! start instead of being ignored. Every refusal names the place (`tiers[1][0]: not a phone
//! number`), never a number.

use crate::domain::{Sender, normalize_phone};
use crate::reply::sanitize::is_control;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Most tiers in a policy.
pub const MAX_TIERS: usize = 10;
/// Most people in one tier.
pub const MAX_PER_TIER: usize = 50;
/// A person's name, in characters.
pub const NAME_MAX_CHARS: usize = 64;
/// `escalate_after_secs` when not given.
pub const DEFAULT_ESCALATE_AFTER_SECS: u64 = 300;
/// `escalate_after_secs`' range (a second at least, so that tests can escalate quickly).
pub const ESCALATE_AFTER_SECS_RANGE: std::ops::RangeInclusive<u64> = 1..=86_400;

const TOP_KEYS: [&str; 4] = ["tiers", "escalate_after_secs", "agent", "routes"];
const ROUTE_KEYS: [&str; 4] = ["match", "tiers", "escalate_after_secs", "agent"];
const PERSON_KEYS: [&str; 2] = ["number", "name"];

/// Someone who can be paged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    /// Digits only, as [`normalize_phone`] gives them (no `+`).
    pub number: String,
    pub name: Option<String>,
}

/// Who is paged for an alert, tier by tier, and which agent gets its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// At least one tier, each of at least one person.
    pub tiers: Vec<Vec<Person>>,
    pub escalate_after_secs: u64,
    /// The agent (an `AGENTS` name) that gets this alert's events; `None`: the default agent.
    pub agent: Option<String>,
}

/// A route: alerts whose labels include all of `labels` get `policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// At least one label name and value.
    pub labels: BTreeMap<String, String>,
    /// Its `escalate_after_secs` and `agent` already defaulted to the top level's.
    pub policy: Policy,
}

/// `ONCALL`, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct OnCall {
    /// The top level: for alerts no route matches.
    pub default: Policy,
    /// In order: the first that matches decides.
    pub routes: Vec<Route>,
}

impl OnCall {
    /// Reads `ONCALL`. The error names the fault and its place (`tiers[1][0]: not a phone
    /// number`, `routes[0].match: must be an object of strings`), never a phone number.
    pub fn parse(json: &str) -> Result<OnCall, String> {
        let value: Value = serde_json::from_str(json).map_err(|error| {
            format!(
                "not JSON (line {} column {}): write an object such as \
                 {{\"tiers\": [[\"+14155551234\"]]}}",
                error.line(),
                error.column()
            )
        })?;
        let Value::Object(top) = value else {
            return Err(
                "must be a JSON object such as {\"tiers\": [[\"+14155551234\"]]}".to_owned(),
            );
        };
        known_keys(&top, "", &TOP_KEYS)?;
        let default = policy(&top, "", None)?;
        let routes = match top.get("routes") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(routes)) => routes
                .iter()
                .enumerate()
                .map(|(index, route)| read_route(route, &format!("routes[{index}]"), &default))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("routes: must be a list of routes".to_owned()),
        };
        Ok(OnCall { default, routes })
    }

    /// The policy for an alert with these labels: the first route whose labels all equal the
    /// alert's, else the top level.
    pub fn policy_for(&self, labels: &BTreeMap<String, String>) -> Policy {
        self.routes
            .iter()
            .find(|route| {
                route
                    .labels
                    .iter()
                    .all(|(name, value)| labels.get(name) == Some(value))
            })
            .map_or(&self.default, |route| &route.policy)
            .clone()
    }

    /// Everyone named, by number (digits): the first name given for each.
    pub fn names(&self) -> std::collections::BTreeMap<String, String> {
        let mut names = std::collections::BTreeMap::new();
        for person in self.people() {
            if let Some(name) = &person.name {
                names
                    .entry(person.number.clone())
                    .or_insert_with(|| name.clone());
            }
        }
        names
    }

    /// Anyone in any tier of the top level or a route, by number (any spelling; digits
    /// compared). Where one number is listed more than once, the first entry with a name.
    pub fn person(&self, number: &str) -> Option<&Person> {
        let digits = normalize_phone(number)?;
        let mut found = None;
        for person in self.people().filter(|person| person.number == digits) {
            if person.name.is_some() {
                return Some(person);
            }
            found.get_or_insert(person);
        }
        found
    }

    /// Whether `sender` (by phone number) is anyone in `ONCALL`.
    pub fn is_on_call(&self, sender: &Sender) -> bool {
        sender
            .phone
            .as_deref()
            .is_some_and(|phone| self.person(phone).is_some())
    }

    /// Every agent named, top level first, then each route's (routes that name none repeat
    /// the top level's): for checking them against `AGENTS`.
    pub fn agents(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&self.default)
            .chain(self.routes.iter().map(|route| &route.policy))
            .filter_map(|policy| policy.agent.as_deref())
    }

    /// Everyone, in every tier of every policy (with repeats).
    fn people(&self) -> impl Iterator<Item = &Person> {
        std::iter::once(&self.default)
            .chain(self.routes.iter().map(|route| &route.policy))
            .flat_map(|policy| policy.tiers.iter().flatten())
    }
}

/// One entry of `routes`.
fn read_route(value: &Value, at: &str, default: &Policy) -> Result<Route, String> {
    let Value::Object(route) = value else {
        return Err(format!(
            "{at}: must be an object with \"match\" and \"tiers\""
        ));
    };
    known_keys(route, &format!("{at}."), &ROUTE_KEYS)?;
    let labels = match route.get("match") {
        None | Some(Value::Null) => {
            return Err(format!(
                "{at}.match: missing; give the labels this route is for, e.g. {{\"team\": \"payments\"}}"
            ));
        }
        Some(Value::Object(labels)) if !labels.is_empty() => labels
            .iter()
            .map(|(name, value)| match value {
                Value::String(value) => Ok((name.clone(), value.clone())),
                _ => Err(format!("{at}.match: must be an object of strings")),
            })
            .collect::<Result<BTreeMap<_, _>, _>>()?,
        Some(Value::Object(_)) => {
            return Err(format!("{at}.match: must name at least one label"));
        }
        Some(_) => return Err(format!("{at}.match: must be an object of strings")),
    };
    let policy = policy(route, &format!("{at}."), Some(default))?;
    Ok(Route { labels, policy })
}

/// The policy fields of the top level (`prefix` empty, no `inherit`) or of a route (missing
/// `escalate_after_secs` and `agent` taken from `inherit`).
fn policy(
    object: &Map<String, Value>,
    prefix: &str,
    inherit: Option<&Policy>,
) -> Result<Policy, String> {
    let tiers = tiers(object.get("tiers"), &format!("{prefix}tiers"))?;
    let escalate_after_secs = match object.get("escalate_after_secs") {
        None | Some(Value::Null) => {
            inherit.map_or(DEFAULT_ESCALATE_AFTER_SECS, |top| top.escalate_after_secs)
        }
        Some(Value::Number(secs)) => secs
            .as_u64()
            .filter(|secs| ESCALATE_AFTER_SECS_RANGE.contains(secs))
            .ok_or_else(|| format!("{prefix}escalate_after_secs: must be 1 to 86400 seconds"))?,
        Some(_) => {
            return Err(format!(
                "{prefix}escalate_after_secs: must be a number of seconds (1 to 86400)"
            ));
        }
    };
    let agent = match object.get("agent") {
        None | Some(Value::Null) => inherit.and_then(|top| top.agent.clone()),
        Some(Value::String(agent)) if !agent.trim().is_empty() => Some(agent.trim().to_owned()),
        Some(_) => {
            return Err(format!(
                "{prefix}agent: must be the name of one of the agents (AGENTS)"
            ));
        }
    };
    Ok(Policy {
        tiers,
        escalate_after_secs,
        agent,
    })
}

/// `tiers`: 1 to [`MAX_TIERS`] lists of 1 to [`MAX_PER_TIER`] people, none twice in a tier.
fn tiers(value: Option<&Value>, at: &str) -> Result<Vec<Vec<Person>>, String> {
    let tiers = match value {
        None | Some(Value::Null) => {
            return Err(format!(
                "{at}: missing; list who is paged, tier by tier, e.g. [[\"+14155551234\"]]"
            ));
        }
        Some(Value::Array(tiers)) => tiers,
        Some(_) => return Err(format!("{at}: must be a list of tiers (lists of people)")),
    };
    if tiers.is_empty() {
        return Err(format!("{at}: must list at least one tier"));
    }
    if tiers.len() > MAX_TIERS {
        return Err(format!("{at}: {} tiers; at most {MAX_TIERS}", tiers.len()));
    }
    tiers
        .iter()
        .enumerate()
        .map(|(index, tier)| read_tier(tier, &format!("{at}[{index}]")))
        .collect()
}

fn read_tier(value: &Value, at: &str) -> Result<Vec<Person>, String> {
    let Value::Array(people) = value else {
        return Err(format!("{at}: must be a list of people"));
    };
    if people.is_empty() {
        return Err(format!("{at}: must list at least one person"));
    }
    if people.len() > MAX_PER_TIER {
        return Err(format!(
            "{at}: {} people; at most {MAX_PER_TIER} in a tier",
            people.len()
        ));
    }
    let mut tier: Vec<Person> = Vec::with_capacity(people.len());
    for (index, person) in people.iter().enumerate() {
        let here = format!("{at}[{index}]");
        let person = read_person(person, &here)?;
        if let Some(first) = tier.iter().position(|other| other.number == person.number) {
            return Err(format!(
                "{here}: the same number as {at}[{first}] (list a person once per tier)"
            ));
        }
        tier.push(person);
    }
    Ok(tier)
}

fn read_person(value: &Value, at: &str) -> Result<Person, String> {
    let (number, name) = match value {
        Value::String(number) => (number, None),
        Value::Object(person) => {
            known_keys(person, &format!("{at}."), &PERSON_KEYS)?;
            let number = match person.get("number") {
                Some(Value::String(number)) => number,
                None | Some(Value::Null) => {
                    return Err(format!("{at}.number: missing"));
                }
                Some(_) => return Err(format!("{at}.number: must be a string")),
            };
            let name = match person.get("name") {
                None | Some(Value::Null) => None,
                Some(Value::String(name)) => {
                    let name = name.trim();
                    let chars = name.chars().count();
                    if chars == 0 || chars > NAME_MAX_CHARS {
                        return Err(format!(
                            "{at}.name: must have 1 to {NAME_MAX_CHARS} characters, not {chars}"
                        ));
                    }
                    if name.chars().any(is_control) {
                        return Err(format!("{at}.name: has a control character"));
                    }
                    Some(name.to_owned())
                }
                Some(_) => return Err(format!("{at}.name: must be a string")),
            };
            (number, name)
        }
        _ => {
            return Err(format!(
                "{at}: must be a phone number (a string) or {{\"number\": …, \"name\": …}}"
            ));
        }
    };
    let number = normalize_phone(number).ok_or_else(|| {
        format!("{at}: not a phone number (7 to 15 digits, e.g. \"+14155551234\")")
    })?;
    Ok(Person { number, name })
}

/// Refuses keys other than `known` (naming the first unknown one, which is a key, not a
/// value; scrubbed all the same in case a number was pasted as a key).
fn known_keys(object: &Map<String, Value>, prefix: &str, known: &[&str]) -> Result<(), String> {
    match object.keys().find(|key| !known.contains(&key.as_str())) {
        None => Ok(()),
        Some(key) => Err(format!(
            "{prefix}{}: unknown key (known: {})",
            crate::redact::scrub_within(key, 40),
            known.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
        "tiers": [["+14155551234"], [{"number": "+447700900123", "name": "Sam"}, "+4915112345678"]],
        "escalate_after_secs": 300,
        "agent": "ops",
        "routes": [
            {"match": {"team": "payments"}, "tiers": [["+1 (415) 555-0000"]],
             "escalate_after_secs": 120, "agent": "payments-bot"},
            {"match": {"team": "web", "env": "prod"}, "tiers": [["0049 151 1234 5678", "+447700900123"]]}
        ]
    }"#;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn person(number: &str, name: Option<&str>) -> Person {
        Person {
            number: number.to_owned(),
            name: name.map(str::to_owned),
        }
    }

    #[test]
    fn the_example_is_read_with_numbers_as_digits() {
        let oncall = OnCall::parse(EXAMPLE).unwrap();
        assert_eq!(
            oncall.default,
            Policy {
                tiers: vec![
                    vec![person("14155551234", None)],
                    vec![
                        person("447700900123", Some("Sam")),
                        person("4915112345678", None)
                    ],
                ],
                escalate_after_secs: 300,
                agent: Some("ops".into()),
            }
        );
        assert_eq!(oncall.routes.len(), 2);
        assert_eq!(oncall.routes[0].labels, labels(&[("team", "payments")]));
        assert_eq!(
            oncall.routes[0].policy.tiers,
            vec![vec![person("14155550000", None)]]
        );
    }

    #[test]
    fn the_first_route_whose_labels_all_match_decides() {
        let oncall = OnCall::parse(EXAMPLE).unwrap();
        let payments =
            oncall.policy_for(&labels(&[("team", "payments"), ("severity", "critical")]));
        assert_eq!(payments.escalate_after_secs, 120);
        assert_eq!(payments.agent.as_deref(), Some("payments-bot"));
        assert_eq!(payments.tiers[0][0].number, "14155550000");

        // Both labels needed: only one matches, so the top level.
        let partial = oncall.policy_for(&labels(&[("team", "web"), ("env", "staging")]));
        assert_eq!(partial, oncall.default);
        let web = oncall.policy_for(&labels(&[("team", "web"), ("env", "prod")]));
        assert_eq!(web.tiers[0].len(), 2);
        assert_eq!(oncall.policy_for(&BTreeMap::new()), oncall.default);
    }

    #[test]
    fn a_route_takes_the_top_levels_delay_and_agent_when_it_names_none() {
        let oncall = OnCall::parse(EXAMPLE).unwrap();
        let web = &oncall.routes[1].policy;
        assert_eq!(web.escalate_after_secs, 300);
        assert_eq!(web.agent.as_deref(), Some("ops"));
        let bare = OnCall::parse(r#"{"tiers": [["+14155551234"]]}"#).unwrap();
        assert_eq!(
            bare.default.escalate_after_secs,
            DEFAULT_ESCALATE_AFTER_SECS
        );
        assert_eq!(bare.default.agent, None);
        assert!(bare.routes.is_empty());
        assert_eq!(bare.agents().count(), 0);
    }

    #[test]
    fn every_agent_named_is_listed() {
        let oncall = OnCall::parse(EXAMPLE).unwrap();
        let agents: Vec<&str> = oncall.agents().collect();
        assert_eq!(agents, ["ops", "payments-bot", "ops"]);
    }

    #[test]
    fn people_are_found_in_any_tier_of_any_route_by_any_spelling() {
        let oncall = OnCall::parse(EXAMPLE).unwrap();
        assert_eq!(
            oncall.person("+44 7700 900123"),
            Some(&person("447700900123", Some("Sam"))),
            "the named entry, although a route lists the number without a name"
        );
        assert_eq!(
            oncall.person("14155550000"),
            Some(&person("14155550000", None))
        );
        assert_eq!(oncall.person("+14155559999"), None);
        assert_eq!(oncall.person("not a number"), None);

        let sender = |phone: Option<&str>| Sender {
            phone: phone.map(str::to_owned),
            bsuid: Some("US.1234567890".into()),
            display_name: None,
        };
        assert!(oncall.is_on_call(&sender(Some("4915112345678"))));
        assert!(!oncall.is_on_call(&sender(Some("4915112345679"))));
        assert!(!oncall.is_on_call(&sender(None)));
    }

    #[test]
    fn a_one_second_delay_is_allowed_for_tests() {
        let oncall =
            OnCall::parse(r#"{"tiers": [["+14155551234"]], "escalate_after_secs": 1}"#).unwrap();
        assert_eq!(oncall.default.escalate_after_secs, 1);
    }

    #[test]
    fn every_fault_is_named_by_its_place_and_never_quotes_a_number() {
        let cases: &[(&str, &str)] = &[
            ("not json", "not JSON"),
            ("[]", "must be a JSON object"),
            ("{}", "tiers: missing"),
            (r#"{"tiers": []}"#, "tiers: must list at least one tier"),
            (
                r#"{"tiers": "+14155551234"}"#,
                "tiers: must be a list of tiers",
            ),
            (
                r#"{"tiers": [[]]}"#,
                "tiers[0]: must list at least one person",
            ),
            (
                r#"{"tiers": ["+14155551234"]}"#,
                "tiers[0]: must be a list of people",
            ),
            (
                r#"{"tiers": [["+14155551234"], ["+1415555123x"]]}"#,
                "tiers[1][0]: not a phone number",
            ),
            (
                r#"{"tiers": [["12345"]]}"#,
                "tiers[0][0]: not a phone number",
            ),
            (
                r#"{"tiers": [[14155551234]]}"#,
                "tiers[0][0]: must be a phone number (a string)",
            ),
            (
                r#"{"tiers": [["+4915112345678", "0049 151 1234 5678"]]}"#,
                "tiers[0][1]: the same number as tiers[0][0]",
            ),
            (
                r#"{"tiers": [[{"name": "Sam"}]]}"#,
                "tiers[0][0].number: missing",
            ),
            (
                r#"{"tiers": [[{"number": 14155551234}]]}"#,
                "tiers[0][0].number: must be a string",
            ),
            (
                r#"{"tiers": [[{"number": "+14155551234", "name": ""}]]}"#,
                "tiers[0][0].name: must have 1 to 64 characters, not 0",
            ),
            (
                r#"{"tiers": [[{"number": "+14155551234", "name": "Sam\u0007"}]]}"#,
                "tiers[0][0].name: has a control character",
            ),
            (
                r#"{"tiers": [[{"number": "+14155551234", "name": 7}]]}"#,
                "tiers[0][0].name: must be a string",
            ),
            (
                r#"{"tiers": [[{"number": "+14155551234", "nmae": "Sam"}]]}"#,
                "tiers[0][0].nmae: unknown key",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "escalate_after_sec": 60}"#,
                "escalate_after_sec: unknown key (known: tiers, escalate_after_secs, agent, routes)",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "escalate_after_secs": 0}"#,
                "escalate_after_secs: must be 1 to 86400",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "escalate_after_secs": 86401}"#,
                "escalate_after_secs: must be 1 to 86400",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "escalate_after_secs": 1.5}"#,
                "escalate_after_secs: must be 1 to 86400",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "escalate_after_secs": "300"}"#,
                "escalate_after_secs: must be a number",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "agent": ""}"#,
                "agent: must be the name of one of the agents",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "routes": {}}"#,
                "routes: must be a list of routes",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "routes": ["x"]}"#,
                "routes[0]: must be an object",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "routes": [{"tiers": [["+14155551234"]]}]}"#,
                "routes[0].match: missing",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "routes": [{"match": {"team": 1}, "tiers": [["+14155551234"]]}]}"#,
                "routes[0].match: must be an object of strings",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "routes": [{"match": ["team"], "tiers": [["+14155551234"]]}]}"#,
                "routes[0].match: must be an object of strings",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "routes": [{"match": {}, "tiers": [["+14155551234"]]}]}"#,
                "routes[0].match: must name at least one label",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "routes": [{"match": {"team": "a"}}]}"#,
                "routes[0].tiers: missing",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "routes": [{"match": {"team": "a"}, "tiers": [[]]}]}"#,
                "routes[0].tiers[0]: must list at least one person",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "routes": [{"match": {"team": "a"}, "tiers": [["+14155551234"]], "escalate_after_secs": 0}]}"#,
                "routes[0].escalate_after_secs: must be 1 to 86400",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "routes": [{"match": {"team": "a"}, "tiers": [["+14155551234"]], "agent": 5}]}"#,
                "routes[0].agent: must be the name",
            ),
            (
                r#"{"tiers": [["+14155551234"]], "routes": [{"match": {"team": "a"}, "tiers": [["+14155551234"]], "routes": []}]}"#,
                "routes[0].routes: unknown key",
            ),
        ];
        for (json, expected) in cases {
            let reason = OnCall::parse(json).unwrap_err();
            assert!(reason.starts_with(expected), "{json}: {reason}");
            // The examples in the reasons use +14155551234; no number from the input.
            assert!(
                !reason.contains("12345678") && !reason.contains("555123x"),
                "{json}: {reason}"
            );
        }
    }

    #[test]
    fn tiers_and_people_are_bounded() {
        let one = r#"["+14155551234"]"#;
        let eleven = format!(r#"{{"tiers": [{}]}}"#, [one; 11].join(","));
        assert_eq!(
            OnCall::parse(&eleven).unwrap_err(),
            "tiers: 11 tiers; at most 10"
        );
        let ten = format!(r#"{{"tiers": [{}]}}"#, [one; 10].join(","));
        assert_eq!(OnCall::parse(&ten).unwrap().default.tiers.len(), 10);

        let people = |count: usize| {
            (0..count)
                .map(|n| format!("\"+1415555{n:04}\""))
                .collect::<Vec<_>>()
                .join(",")
        };
        let fifty = format!(r#"{{"tiers": [[{}]]}}"#, people(50));
        assert_eq!(OnCall::parse(&fifty).unwrap().default.tiers[0].len(), 50);
        let fifty_one = format!(r#"{{"tiers": [[{}]]}}"#, people(51));
        assert_eq!(
            OnCall::parse(&fifty_one).unwrap_err(),
            "tiers[0]: 51 people; at most 50 in a tier"
        );
        let long_name = format!(
            r#"{{"tiers": [[{{"number": "+14155551234", "name": "{}"}}]]}}"#,
            "n".repeat(65)
        );
        assert!(OnCall::parse(&long_name).unwrap_err().contains("not 65"));
    }

    #[test]
    fn a_number_in_two_tiers_is_allowed() {
        let oncall =
            OnCall::parse(r#"{"tiers": [["+14155551234"], ["+14155551234", "+14155550000"]]}"#)
                .unwrap();
        assert_eq!(oncall.default.tiers.len(), 2);
    }

    #[test]
    fn a_pasted_number_as_a_key_is_masked() {
        let reason =
            OnCall::parse(r#"{"tiers": [["+14155551234"]], "+14155559876": 1}"#).unwrap_err();
        assert!(reason.contains("unknown key"), "{reason}");
        assert!(!reason.contains("5559876"), "{reason}");
    }
}

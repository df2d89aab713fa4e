//! A sample ops agent that speaks the HTTP agent contract: the demo runs it, and you can copy
//! it to start your own. Replace [`answer`] with calls to your LLM, kubectl, runbooks…
//!
//! Contract: `POST /` with an [`AgentRequest`] → 200 with an [`AgentReply`], or 204 for no reply.
//! When a token is configured, requests must carry `Authorization: Bearer <token>`.

use crate::agent::contract::ApprovalRef;
use crate::agent::{Action, AgentReply, AgentRequest, ListRow, ListSection, ListSpec, ReplyStatus};
use crate::approvals::ApprovalAsk;
use crate::entry::local::{Handler, handler};
use crate::webhook::answer::{body_bytes, response};
use lambda_http::Request;
use std::sync::Arc;

/// Serves [`answer`] over HTTP, checking the bearer token when one is given.
pub fn http_handler(token: Option<String>) -> Handler {
    let token = Arc::new(token.filter(|t| !t.is_empty()));
    handler(move |request: Request| {
        let token = token.clone();
        async move {
            if let Some(expected) = token.as_deref() {
                let presented = request
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "));
                if !crate::webhook::verify::token_matches(
                    expected.as_bytes(),
                    presented.unwrap_or_default().as_bytes(),
                ) {
                    return response(401, "application/json", r#"{"error":"unauthorized"}"#);
                }
            }
            let request: AgentRequest = match serde_json::from_slice(body_bytes(request.body())) {
                Ok(request) => request,
                Err(error) => {
                    let body =
                        serde_json::json!({ "error": format!("not an agent request: {error}") });
                    return response(400, "application/json", body.to_string());
                }
            };
            match answer(&request) {
                None => response(204, "application/json", ""),
                Some(reply) => match serde_json::to_string(&reply) {
                    Ok(json) => response(200, "application/json", json),
                    Err(_) => response(500, "application/json", r#"{"error":"serialization"}"#),
                },
            }
        }
    })
}

/// The agent's brain: answers like an on-call assistant would.
pub fn answer(request: &AgentRequest) -> Option<AgentReply> {
    let event = &request.event;
    let text = event.text.to_lowercase();
    let name = event.user.display_name.as_deref().unwrap_or("there");
    let reply = match event.kind.as_str() {
        "reaction" => return None,
        "alert_action" => alert_action(request),
        "approval" => match &event.approval {
            Some(decided) => approval_decided(decided),
            None => AgentReply::text(
                Some(ReplyStatus::Error),
                "That decision carried no approval.",
            ),
        },
        "button_reply" | "template_button" => {
            match event.interactive.as_ref().map(|i| i.id.as_str()) {
                Some("view_logs") => logs_report(),
                Some("describe_pod") => AgentReply::text(
                    Some(ReplyStatus::Info),
                    "**api-7d9f** `CrashLoopBackOff`\n\n```\nLast State: Terminated\n  Reason: OOMKilled\n  Exit Code: 137\nLimits: memory 512Mi\n```\n\nThe container exceeds its memory limit shortly after start.",
                ),
                Some("check_events") => AgentReply::text(
                    Some(ReplyStatus::Warning),
                    "Recent events in `prod`:\n\n- 09:41 `Back-off restarting failed container` (api-7d9f)\n- 09:41 `Back-off restarting failed container` (worker-5c2a)\n- 09:39 `Scaled up replica set api-7d9f to 3`",
                ),
                Some(other) => AgentReply::text(
                    Some(ReplyStatus::Success),
                    format!("Done: `{other}` acknowledged."),
                ),
                None => AgentReply::text(Some(ReplyStatus::Error), "That button carried no id."),
            }
        }
        "list_reply" => {
            let env = event
                .interactive
                .as_ref()
                .map(|i| i.title.as_str())
                .unwrap_or("?");
            AgentReply::text(
                Some(ReplyStatus::Success),
                format!("Switched context to **{env}**. Ask me about pods, deploys or a report."),
            )
        }
        "image" | "document" | "video" | "audio" | "sticker" => AgentReply::text(
            Some(ReplyStatus::Info),
            format!(
                "Got your {}: _{}_. I can't look at media yet, but I've attached it to the incident.",
                event.kind, event.text
            ),
        ),
        "location" => AgentReply::text(
            Some(ReplyStatus::Info),
            format!("Noted your location {}.", event.text),
        ),
        "unsupported" => AgentReply::text(
            Some(ReplyStatus::Warning),
            "I can't read that kind of message yet. Please send text.",
        ),
        _ if text.contains("ask before") || text.contains("asked before") => asked_before(request),
        _ if words(&text).any(|word| word == "restart") => {
            restart(&text, request.session.environment.as_deref())
        }
        _ if request.session.agent == "cost" => AgentReply::text(
            Some(ReplyStatus::Info),
            format!(
                "AWS cost in `{}` today: **$412.37** (EC2 $301.10, RDS $88.02, other $23.25), 4% above the 7-day average.",
                request
                    .session
                    .environment
                    .as_deref()
                    .unwrap_or("all accounts")
            ),
        ),
        _ if text.contains("crash") || text.contains("pods") => pods_crashing(),
        _ if text.contains("env") || text.contains("deploy") => choose_environment(),
        _ if text.contains("report") => logs_report(),
        _ => AgentReply {
            status: Some(ReplyStatus::Info),
            text: Some(format!(
                "Hi {name}! I'm the on-call assistant. Try **pods crashing in prod**, **deploy staging** or **report**."
            )),
            ..AgentReply::default()
        },
    };
    Some(reply)
}

/// A page acknowledged (start investigating) or details asked for.
fn alert_action(request: &AgentRequest) -> AgentReply {
    let event = &request.event;
    let Some(alert) = &event.alert else {
        return AgentReply::text(Some(ReplyStatus::Error), "That page carried no alert.");
    };
    let scope = alert
        .labels
        .get("namespace")
        .or_else(|| alert.labels.get("service"))
        .map_or_else(String::new, |scope| format!(" in `{scope}`"));
    match event.action.as_deref() {
        Some("acknowledge") => AgentReply::text(
            Some(ReplyStatus::Info),
            format!(
                "Thanks, you own **{}**{scope} ({}, since {}). I'm pulling recent events and logs now; ask me anything about it.",
                alert.title, alert.severity, alert.started_at
            ),
        ),
        _ => AgentReply::text(
            Some(ReplyStatus::Info),
            format!(
                "**{}** ({}){scope}\n\n{}\n\nStarted {}.{}",
                alert.title,
                alert.severity,
                if alert.summary.is_empty() {
                    "No summary."
                } else {
                    alert.summary.as_str()
                },
                alert.started_at,
                alert
                    .url
                    .as_deref()
                    .map_or_else(String::new, |url| format!(" Graph: {url}"))
            ),
        ),
    }
}

/// How long an approval to restart stays open.
const RESTART_APPROVAL_SECS: u64 = 900;

/// The words of a message, without the punctuation around them.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
        .map(|word| word.trim_matches(|c: char| ",.;:!?()'\"`*_".contains(c)))
        .filter(|word| !word.is_empty())
}

/// A Kubernetes object name fit for a command line: a DNS-1123 label (1 to 63 lower-case
/// letters, digits and `-`, starting and ending with a letter or digit). Anything else never
/// reaches a command.
fn is_label(word: &str) -> bool {
    (1..=63).contains(&word.len())
        && word
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !word.starts_with('-')
        && !word.ends_with('-')
}

/// The deployment and namespace of "restart [the] [deployment[/]]<name> [in|-n <namespace>]";
/// without a namespace, the conversation's environment, else `default`.
fn restart_target(text: &str, environment: Option<&str>) -> Option<(String, String)> {
    let words: Vec<&str> = words(text).collect();
    let start = words.iter().position(|word| *word == "restart")? + 1;
    let mut rest = words[start..]
        .iter()
        .copied()
        .filter(|word| !matches!(*word, "the" | "deployment" | "deploy"));
    let name = rest.next()?;
    let name = name.strip_prefix("deployment/").unwrap_or(name);
    if !is_label(name) {
        return None;
    }
    let namespace = match rest.next() {
        Some("in" | "-n" | "namespace" | "on") => rest.next()?.to_owned(),
        _ => environment.unwrap_or("default").to_owned(),
    };
    is_label(&namespace).then(|| (name.to_owned(), namespace))
}

/// A restart asked for: nothing runs until someone approves it (`approval` in the reply).
fn restart(text: &str, environment: Option<&str>) -> AgentReply {
    let Some((deployment, namespace)) = restart_target(text, environment) else {
        return AgentReply::text(
            Some(ReplyStatus::Info),
            "Which deployment, and where? Say it like **restart api in prod** (names are lower-case letters, digits and `-`).",
        );
    };
    AgentReply {
        status: Some(ReplyStatus::Info),
        text: Some(format!(
            "A rolling restart of **deployment/{deployment}** in `{namespace}` replaces its pods one at a time. Restarts in `{namespace}` need an approval: I've asked, and I'll run it as soon as it's approved."
        )),
        approval: Some(ApprovalAsk {
            summary: format!("Restart deployment/{deployment} in {namespace}"),
            command: restart_command(&deployment, &namespace),
            approvers: None,
            required: Some(1),
            expires_in_secs: Some(RESTART_APPROVAL_SECS),
        }),
        ..AgentReply::default()
    }
}

fn restart_command(deployment: &str, namespace: &str) -> String {
    format!("kubectl rollout restart deployment/{deployment} -n {namespace}")
}

/// The deployment and namespace of a restart command this agent asked to run.
fn restart_of(command: &str) -> Option<(&str, &str)> {
    let rest = command.strip_prefix("kubectl rollout restart deployment/")?;
    let (deployment, namespace) = rest.split_once(" -n ")?;
    (is_label(deployment) && is_label(namespace)).then_some((deployment, namespace))
}

/// The decision on an approval this agent asked for: run it (here: what running it shows) or
/// say why not.
fn approval_decided(decided: &ApprovalRef) -> AgentReply {
    let who = if decided.decided_by.is_empty() {
        "someone".to_owned()
    } else {
        decided.decided_by.join(", ")
    };
    let what = match restart_of(&decided.command) {
        Some((deployment, namespace)) => format!("deployment/{deployment} in {namespace}"),
        None => format!("`{}`", decided.command),
    };
    match (decided.decision.as_str(), restart_of(&decided.command)) {
        // No status: the answer starts with its own 🔄 (a status would add ✅ before it).
        ("approved", Some((deployment, namespace))) => AgentReply::text(
            None,
            format!(
                "🔄 Restarted deployment/{deployment} in {namespace} (approved by {who}, request {}).\n\n```\n$ {}\ndeployment.apps/{deployment} restarted\n$ kubectl rollout status deployment/{deployment} -n {namespace}\nWaiting for deployment \"{deployment}\" rollout to finish: 1 of 3 updated replicas are available...\nWaiting for deployment \"{deployment}\" rollout to finish: 2 of 3 updated replicas are available...\ndeployment \"{deployment}\" successfully rolled out\n```\n\nAll 3 pods are new and ready. I'll keep an eye on the error rate for the next 10 minutes.",
                decided.id, decided.command
            ),
        ),
        ("approved", None) => AgentReply::text(
            Some(ReplyStatus::Warning),
            format!(
                "Approved by {who}, but I don't know how to run {what}: nothing ran (request {}).",
                decided.id
            ),
        ),
        ("denied", _) => AgentReply::text(
            Some(ReplyStatus::Warning),
            format!(
                "Not restarted: denied by {who}. Nothing ran: {what} is unchanged (request {}).",
                decided.id
            ),
        ),
        ("expired", _) => AgentReply::text(
            Some(ReplyStatus::Warning),
            format!(
                "Not restarted: nobody decided in time. Nothing ran: {what} is unchanged; ask again if it's still needed (request {}).",
                decided.id
            ),
        ),
        (other, _) => AgentReply::text(
            Some(ReplyStatus::Error),
            format!(
                "I don't know the decision {:?}: nothing ran (request {}).",
                crate::redact::excerpt(other, 20),
                decided.id
            ),
        ),
    }
}

/// Uses the conversation's history: what the user asked earlier, oldest first.
fn asked_before(request: &AgentRequest) -> AgentReply {
    let asked: Vec<String> = request
        .history
        .iter()
        .filter(|turn| turn.role == crate::agent::contract::Role::User)
        .map(|turn| format!("- {}", turn.text))
        .collect();
    if asked.is_empty() {
        return AgentReply::text(
            Some(ReplyStatus::Info),
            "This is the start of our conversation: you haven't asked me anything before.",
        );
    }
    AgentReply::text(
        Some(ReplyStatus::Info),
        format!(
            "Earlier you asked ({}, {}):\n\n{}",
            request.session.agent,
            request
                .session
                .environment
                .as_deref()
                .unwrap_or("no environment"),
            asked.join("\n")
        ),
    )
}

fn pods_crashing() -> AgentReply {
    AgentReply {
        status: Some(ReplyStatus::Warning),
        text: Some(
            "Found 2 pods in **CrashLoopBackOff** in `prod`:\n\n- `api-7d9f` (restarts: 14)\n- `worker-5c2a` (restarts: 9)\n\nBoth started failing at 09:41 UTC, right after deploy `#4711`."
                .to_owned(),
        ),
        actions: vec![
            action("view_logs", "View Logs"),
            action("describe_pod", "Describe Pod"),
            action("check_events", "Check Events"),
        ],
        ..AgentReply::default()
    }
}

fn choose_environment() -> AgentReply {
    let row = |id: &str, title: &str, description: &str| ListRow {
        id: id.to_owned(),
        title: title.to_owned(),
        description: Some(description.to_owned()),
    };
    AgentReply {
        status: Some(ReplyStatus::Info),
        text: Some("Which environment?".to_owned()),
        list: Some(ListSpec {
            header: Some("Environments".to_owned()),
            body: Some("Pick the environment to work on.".to_owned()),
            button: Some("Choose environment".to_owned()),
            sections: vec![
                ListSection {
                    title: Some("Production".to_owned()),
                    rows: vec![
                        row("env_prod_us", "prod-us", "us-east-1, 48 nodes"),
                        row("env_prod_eu", "prod-eu", "eu-central-1, 36 nodes"),
                    ],
                },
                ListSection {
                    title: Some("Pre-production".to_owned()),
                    rows: vec![
                        row("env_staging", "staging", "eu-west-1, 12 nodes"),
                        row("env_dev", "dev", "shared cluster"),
                    ],
                },
            ],
        }),
        ..AgentReply::default()
    }
}

/// A report longer than one WhatsApp message, with headings, a table and code.
fn logs_report() -> AgentReply {
    let mut text = String::from(
        "# Incident report: api-7d9f\n\n## Summary\n\nThe **api** deployment has been crash-looping since 09:41 UTC. Root cause: the new release loads the full feature-flag set at start-up and exceeds its *512Mi* memory limit.\n\n## Pods\n\n| pod | restarts | reason |\n|---|---|---|\n| api-7d9f | 14 | OOMKilled |\n| worker-5c2a | 9 | OOMKilled |\n\n## Last log lines\n\n```\n",
    );
    for second in 0..60 {
        text.push_str(&format!(
            "2026-11-24T09:41:{second:02}Z ERROR api: failed to allocate buffer for flag set (requested 268435456 bytes), heap in use 501Mi of 512Mi; retrying with back-off\n"
        ));
    }
    text.push_str("```\n\n## Next steps\n\n1. Raise the memory limit to `768Mi` (see [runbook](https://runbooks.example.com/api-oom)).\n2. Roll back `#4711` if the error rate stays above 5%.\n3. Open a ticket to lazy-load the flag set.\n");
    AgentReply::text(Some(ReplyStatus::Error), text)
}

fn action(id: &str, label: &str) -> Action {
    Action {
        id: id.to_owned(),
        label: label.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{InboundMessage, MessageKind};

    fn ask(kind: MessageKind) -> Option<AgentReply> {
        let message = InboundMessage::sample("wamid.1", kind);
        answer(&AgentRequest::from_message(&message))
    }

    #[test]
    fn it_remembers_what_was_asked_and_the_cost_agent_answers_costs() {
        use crate::agent::contract::{Role, SessionInfo, Turn};
        let text = |body: &str| MessageKind::Text { body: body.into() };
        let first = ask(text("what did I ask before?")).unwrap();
        assert!(first.text.unwrap().contains("start of our conversation"));
        let message = InboundMessage::sample("wamid.2", text("What did I ask before?"));
        let request = AgentRequest::from_message(&message).with_session(
            vec![
                Turn::new(Role::User, "pods crashing in prod", 1),
                Turn::new(Role::Assistant, "2 pods", 2),
            ],
            SessionInfo {
                agent: "k8s".into(),
                environment: Some("prod".into()),
            },
        );
        let reply = answer(&request).unwrap().text.unwrap();
        assert!(reply.contains("- pods crashing in prod"), "{reply}");
        assert!(!reply.contains("2 pods"), "{reply}");

        let mut cost = request.clone();
        cost.event.text = "how much today?".into();
        cost.session.agent = "cost".into();
        assert!(
            answer(&cost)
                .unwrap()
                .text
                .unwrap()
                .contains("AWS cost in `prod`")
        );
    }

    #[test]
    fn crashing_pods_get_a_warning_with_three_actions() {
        let reply = ask(MessageKind::Text {
            body: "pods crashing in prod".into(),
        })
        .unwrap();
        assert_eq!(reply.status, Some(ReplyStatus::Warning));
        assert_eq!(reply.actions.len(), 3);
    }

    #[test]
    fn deploy_requests_get_an_environment_list_and_reports_are_long() {
        let list = ask(MessageKind::Text {
            body: "deploy staging".into(),
        })
        .unwrap();
        assert_eq!(list.list.unwrap().sections.len(), 2);
        let report = ask(MessageKind::ButtonReply {
            id: "view_logs".into(),
            title: "View Logs".into(),
        })
        .unwrap();
        assert!(report.text.unwrap().chars().count() > crate::reply::limits::TEXT_BODY_MAX);
    }

    fn text(body: &str) -> MessageKind {
        MessageKind::Text { body: body.into() }
    }

    #[test]
    fn a_restart_is_asked_for_approval_with_the_exact_command() {
        let reply = ask(text("Restart api in prod")).unwrap();
        assert_eq!(reply.status, Some(ReplyStatus::Info));
        assert!(
            reply
                .text
                .as_deref()
                .unwrap()
                .contains("**deployment/api** in `prod`"),
            "{reply:?}"
        );
        let approval = reply.approval.expect("an approval ask");
        assert_eq!(
            approval.command,
            "kubectl rollout restart deployment/api -n prod"
        );
        assert_eq!(approval.summary, "Restart deployment/api in prod");
        assert_eq!(approval.approvers, None, "all of APPROVERS");
        assert_eq!(approval.required, Some(1));
        assert_eq!(approval.expires_in_secs, Some(900));
        // It survives the contract's JSON as the function reads it.
        let json = serde_json::to_value(AgentReply {
            approval: Some(approval.clone()),
            ..AgentReply::default()
        })
        .unwrap();
        assert_eq!(json["approval"]["command"], approval.command);
        let read: AgentReply = serde_json::from_value(json).unwrap();
        assert_eq!(read.approval, Some(approval));

        // Other spellings; without a namespace, the conversation's environment.
        for (said, environment, command) in [
            (
                "please restart deployment/worker -n staging.",
                None,
                "kubectl rollout restart deployment/worker -n staging",
            ),
            (
                "restart the deployment checkout-api",
                Some("prod-eu"),
                "kubectl rollout restart deployment/checkout-api -n prod-eu",
            ),
            (
                "restart api",
                None,
                "kubectl rollout restart deployment/api -n default",
            ),
        ] {
            let mut request =
                AgentRequest::from_message(&InboundMessage::sample("wamid.3", text(said)));
            request.session.environment = environment.map(str::to_owned);
            let asked = answer(&request).unwrap().approval.expect(said);
            assert_eq!(asked.command, command, "{said}");
        }
    }

    #[test]
    fn a_restart_of_nothing_nameable_asks_which_and_runs_nothing() {
        for said in [
            "restart",
            "restart api;rm -rf / in prod",
            "restart api in $(whoami)",
            "restart API_Server",
            "restart -api",
        ] {
            let reply = ask(text(said)).unwrap();
            assert!(reply.approval.is_none(), "{said}: {reply:?}");
            assert!(
                reply
                    .text
                    .as_deref()
                    .unwrap()
                    .contains("Which deployment, and where?"),
                "{said}"
            );
        }
        // "restarting" is a question about restarts, not a request for one.
        let question = ask(text("why are the pods restarting?")).unwrap();
        assert!(question.approval.is_none());
    }

    fn decided(decision: &str, decided_by: &[&str]) -> AgentReply {
        let mut request =
            AgentRequest::from_message(&InboundMessage::sample("approval:A7K2QX9M", text("x")));
        request.event.kind = "approval".into();
        request.event.text = format!("{decision}: Restart deployment/api in prod");
        request.event.approval = Some(ApprovalRef {
            id: "A7K2QX9M".into(),
            decision: decision.into(),
            decided_by: decided_by.iter().map(|s| (*s).to_owned()).collect(),
            summary: "Restart deployment/api in prod".into(),
            command: "kubectl rollout restart deployment/api -n prod".into(),
        });
        answer(&request).unwrap()
    }

    #[test]
    fn the_decision_on_a_restart_is_answered_per_outcome() {
        let approved = decided("approved", &["Sam"]);
        assert_eq!(approved.status, None, "its own 🔄, no ✅ before it");
        assert!(approved.approval.is_none(), "it asks nothing more");
        let said = approved.text.unwrap();
        assert!(
            said.starts_with(
                "🔄 Restarted deployment/api in prod (approved by Sam, request A7K2QX9M)"
            ),
            "{said}"
        );
        assert!(said.contains("$ kubectl rollout restart deployment/api -n prod"));
        assert!(said.contains("kubectl rollout status deployment/api -n prod"));
        assert!(said.contains("deployment \"api\" successfully rolled out"));

        let denied = decided("denied", &["+44 77** ***123"]);
        assert_eq!(denied.status, Some(ReplyStatus::Warning));
        let said = denied.text.unwrap();
        assert!(
            said.starts_with("Not restarted: denied by +44 77** ***123."),
            "{said}"
        );
        assert!(said.contains("deployment/api in prod is unchanged"));

        let expired = decided("expired", &[]);
        assert_eq!(expired.status, Some(ReplyStatus::Warning));
        assert!(
            expired
                .text
                .unwrap()
                .starts_with("Not restarted: nobody decided in time.")
        );

        let unknown = decided("maybe", &[]);
        assert_eq!(unknown.status, Some(ReplyStatus::Error));
        assert!(unknown.text.unwrap().contains("nothing ran"));
    }

    #[test]
    fn an_approved_command_it_does_not_know_is_not_run() {
        let mut request =
            AgentRequest::from_message(&InboundMessage::sample("approval:B", text("x")));
        request.event.kind = "approval".into();
        let reply = answer(&request).unwrap();
        assert_eq!(reply.status, Some(ReplyStatus::Error), "no event.approval");
        request.event.approval = Some(ApprovalRef {
            id: "B7K2QX9M".into(),
            decision: "approved".into(),
            decided_by: vec!["Sam".into()],
            summary: "Drop the cache".into(),
            command: "redis-cli FLUSHALL".into(),
        });
        let said = answer(&request).unwrap().text.unwrap();
        assert!(said.contains("nothing ran"), "{said}");
        assert!(!said.contains("Restarted"), "{said}");
    }

    #[test]
    fn reactions_get_no_reply() {
        let reply = ask(MessageKind::Reaction {
            message_id: "wamid.0".into(),
            emoji: "👍".into(),
        });
        assert!(reply.is_none());
    }
}

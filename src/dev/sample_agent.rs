//! A sample ops agent that speaks the HTTP agent contract: the demo runs it, and you can copy
//! it to start your own. Replace [`answer`] with calls to your LLM, kubectl, runbooks…
//!
//! Contract: `POST /` with an [`AgentRequest`] → 200 with an [`AgentReply`], or 204 for no reply.
//! When a token is configured, requests must carry `Authorization: Bearer <token>`.

use crate::agent::{Action, AgentReply, AgentRequest, ListRow, ListSection, ListSpec, ReplyStatus};
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

    #[test]
    fn reactions_get_no_reply() {
        let reply = ask(MessageKind::Reaction {
            message_id: "wamid.0".into(),
            emoji: "👍".into(),
        });
        assert!(reply.is_none());
    }
}

//! `make templates WABA_ID=…` (`src/bin/create-templates.rs`): creates the on-call paging
//! templates (and the approval template) through the Graph API's
//! `POST /{WABA_ID}/message_templates`, so that nobody has to type them into WhatsApp Manager.
//! Meta reviews each one (usually within minutes); pages go out once the alert template is
//! approved.
//! <https://developers.facebook.com/docs/graph-api/reference/whats-app-business-account/message_templates/>
//!
//! - the alert template (`ALERT_TEMPLATE`, e.g. `oncall_alert:en`): [`ALERT_BODY`], whose body
//!   parameters are severity, title, summary and start time in that order, and the quick-reply
//!   buttons [`ALERT_BUTTONS`] (Acknowledge, Details, Escalate, in that order: a page sets the
//!   payload of each by its index);
//! - the notice template (`NOTICE_TEMPLATE`, optional, e.g. `oncall_notice:en`): [`NOTICE_BODY`]
//!   with one parameter, the notice;
//! - the approval template (`APPROVAL_TEMPLATE`, optional here, required by the functions with
//!   `APPROVERS`, e.g. `approval_request:en`): [`APPROVAL_BODY`], whose body parameters are who
//!   asks, the summary, the command and the time left in that order (as the approvals engine
//!   fills them), and the quick-reply buttons [`APPROVAL_BUTTONS`] (Approve, Deny, in that
//!   order: a request sets the payload of each by its index).
//!
//! All are category `UTILITY`. Meta refuses a body that starts or ends with a parameter, whose
//! parameters are not numbered 1, 2, 3… in order, or that has too many parameters for its
//! length; the tests check the first two. Settings come from the environment as in the
//! functions' configuration: `WHATSAPP_ACCESS_TOKEN` (a token with the
//! `whatsapp_business_management` permission), `ALERT_TEMPLATE`, `NOTICE_TEMPLATE`,
//! `APPROVAL_TEMPLATE`, `GRAPH_API_BASE_URL` and `GRAPH_API_VERSION`. The token goes only into the `Authorization`
//! header; Meta's errors are scrubbed before they are printed.

use crate::config::{DEFAULT_GRAPH_API_BASE_URL, DEFAULT_GRAPH_API_VERSION};
use crate::domain::TemplateRef;
use crate::redact;
use crate::secrets::Secret;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::time::Duration;

/// The alert template's body: `{{1}}` severity, `{{2}}` title, `{{3}}` summary, `{{4}}` start
/// time.
pub const ALERT_BODY: &str = "🚨 {{1}} alert: {{2}}\n\n{{3}}\n\nStarted {{4}}. Tap Acknowledge to take it, Details to ask the on-call agent about it, or Escalate to page the next tier.";
/// The example values Meta's review sees for [`ALERT_BODY`].
pub const ALERT_EXAMPLE: [&str; 4] = [
    "critical",
    "HighErrorRate",
    "5xx rate above 5% on checkout-api for 10 minutes",
    "2026-11-24 09:52 UTC",
];
/// The alert template's quick-reply buttons, in order.
pub const ALERT_BUTTONS: [&str; 3] = ["Acknowledge", "Details", "Escalate"];
/// The notice template's body: `{{1}}` the notice ("✅ Sam acknowledged: HighErrorRate").
pub const NOTICE_BODY: &str =
    "On-call update: {{1}}\n\nThis is an automated message from your on-call paging.";
/// The example value Meta's review sees for [`NOTICE_BODY`].
pub const NOTICE_EXAMPLE: &str = "✅ Sam acknowledged: HighErrorRate";
/// The approval template's body: `{{1}}` who asks, `{{2}}` the summary, `{{3}}` the command
/// (shown exactly, on a line of its own), `{{4}}` the time left.
pub const APPROVAL_BODY: &str = "🔐 Approval requested by {{1}}\n\n{{2}}\n\nCommand: {{3}}\n\nExpires in {{4}}. Tap Approve to let it run, or Deny to stop it. Nothing runs without a decision.";
/// The example values Meta's review sees for [`APPROVAL_BODY`].
pub const APPROVAL_EXAMPLE: [&str; 4] = [
    "Sam",
    "Restart deployment/api in prod",
    "kubectl rollout restart deployment/api -n prod",
    "15 min",
];
/// The approval template's quick-reply buttons, in order.
pub const APPROVAL_BUTTONS: [&str; 2] = ["Approve", "Deny"];
/// The category of the templates.
pub const CATEGORY: &str = "UTILITY";
/// Longest Graph API answer read.
const MAX_ANSWER_BYTES: u64 = 64 * 1024;
/// Longest wait for one Graph API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest WhatsApp Business Account id taken (Meta's have 15 or 16 digits).
const WABA_ID_MAX_DIGITS: usize = 32;

/// Which of the templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    Alert,
    Notice,
    Approval,
}

impl TemplateKind {
    /// The variable that names it.
    pub fn variable(self) -> &'static str {
        match self {
            Self::Alert => "ALERT_TEMPLATE",
            Self::Notice => "NOTICE_TEMPLATE",
            Self::Approval => "APPROVAL_TEMPLATE",
        }
    }
}

/// The JSON body of `POST /{WABA_ID}/message_templates` that creates `template` as `kind`.
pub fn request_body(kind: TemplateKind, template: &TemplateRef) -> Value {
    let components = match kind {
        TemplateKind::Alert => json!([
            {"type": "BODY", "text": ALERT_BODY, "example": {"body_text": [ALERT_EXAMPLE]}},
            {"type": "BUTTONS", "buttons": ALERT_BUTTONS
                .iter()
                .map(|text| json!({"type": "QUICK_REPLY", "text": text}))
                .collect::<Vec<_>>()},
        ]),
        TemplateKind::Notice => json!([
            {"type": "BODY", "text": NOTICE_BODY, "example": {"body_text": [[NOTICE_EXAMPLE]]}},
        ]),
        TemplateKind::Approval => json!([
            {"type": "BODY", "text": APPROVAL_BODY, "example": {"body_text": [APPROVAL_EXAMPLE]}},
            {"type": "BUTTONS", "buttons": APPROVAL_BUTTONS
                .iter()
                .map(|text| json!({"type": "QUICK_REPLY", "text": text}))
                .collect::<Vec<_>>()},
        ]),
    };
    json!({
        "name": template.name,
        "language": template.language,
        "category": CATEGORY,
        "components": components,
    })
}

/// Why templates could not be created. `Display` is the whole story on one line; Meta's text
/// only scrubbed ([`redact::excerpt`]), never the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TemplatesError {
    /// The command line: `reason` says what is wrong and what is expected.
    #[error("{reason} (usage: create-templates --waba-id <WABA_ID> [--dry-run])")]
    Usage { reason: String },
    /// A variable that must be set is not.
    #[error("{var} is not set: {hint}")]
    Missing {
        var: &'static str,
        hint: &'static str,
    },
    /// A variable (or the WABA id) is set but unusable.
    #[error("{var}: {reason}")]
    Invalid { var: &'static str, reason: String },
    /// Meta answered with an error: its HTTP status, code and subcode, and its scrubbed text.
    #[error(
        "{template}: the Graph API refused it (HTTP {status}, code {code}, subcode {subcode}): {message}"
    )]
    Refused {
        template: String,
        status: u16,
        code: String,
        subcode: String,
        message: String,
    },
    /// No answer from the Graph API (connection, timeout): the transport's scrubbed error.
    #[error("{template}: the Graph API did not answer: {reason}")]
    Unreachable { template: String, reason: String },
    /// A 2xx answer without the template's id: a scrubbed excerpt of it.
    #[error("{template}: unexpected answer from the Graph API (HTTP {status}): {body}")]
    Unexpected {
        template: String,
        status: u16,
        body: String,
    },
    /// Some templates were not created (each said why as it failed).
    #[error("{failed} of {total} template(s) not created")]
    NotCreated { failed: usize, total: usize },
}

impl TemplatesError {
    /// Whether running the command again later may succeed (Meta throttling or failing, no
    /// answer); never for bad settings or a refused template.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Refused { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// What the command was asked to do.
#[derive(Debug)]
pub struct Settings {
    pub waba_id: String,
    /// `{GRAPH_API_BASE_URL}/{GRAPH_API_VERSION}`, no trailing slash.
    pub api_root: String,
    /// `None` only for a dry run.
    pub access_token: Option<Secret>,
    /// The alert template (`ALERT_TEMPLATE`), the notice template (`NOTICE_TEMPLATE`), the
    /// approval template (`APPROVAL_TEMPLATE`): those set, in that order (the alert or the
    /// approval template at least).
    pub templates: Vec<(TemplateKind, TemplateRef)>,
    pub dry_run: bool,
}

impl Settings {
    /// Reads the command line (`--waba-id <id>` or `--waba-id=<id>`, else `WABA_ID`;
    /// `--dry-run`) and the environment through `lookup` (empty values count as unset).
    pub fn from_args(
        args: &[String],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, TemplatesError> {
        let get = |name: &str| {
            lookup(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let mut waba_id = None;
        let mut dry_run = false;
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "--dry-run" => dry_run = true,
                "--waba-id" => {
                    let value = rest.next().ok_or_else(|| TemplatesError::Usage {
                        reason: "--waba-id needs a value".to_owned(),
                    })?;
                    waba_id = Some(value.trim().to_owned());
                }
                other => match other.strip_prefix("--waba-id=") {
                    Some(value) => waba_id = Some(value.trim().to_owned()),
                    None => {
                        return Err(TemplatesError::Usage {
                            reason: format!("unknown argument {:?}", redact::excerpt(other, 40)),
                        });
                    }
                },
            }
        }
        let waba_id = waba_id
            .filter(|id| !id.is_empty())
            .or_else(|| get("WABA_ID"))
            .ok_or(TemplatesError::Missing {
                var: "WABA_ID",
                hint: "the WhatsApp Business Account ID of Meta's API Setup page (make templates WABA_ID=…)",
            })?;
        if !(1..=WABA_ID_MAX_DIGITS).contains(&waba_id.len())
            || !waba_id.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(TemplatesError::Invalid {
                var: "WABA_ID",
                reason: "must be the digits of the WhatsApp Business Account ID".to_owned(),
            });
        }

        let template = |kind: TemplateKind| -> Result<Option<TemplateRef>, TemplatesError> {
            get(kind.variable())
                .map(|spec| {
                    TemplateRef::parse(&spec).map_err(|e| TemplatesError::Invalid {
                        var: kind.variable(),
                        reason: e.to_string(),
                    })
                })
                .transpose()
        };
        let mut templates = Vec::new();
        for kind in [
            TemplateKind::Alert,
            TemplateKind::Notice,
            TemplateKind::Approval,
        ] {
            if let Some(spec) = template(kind)? {
                templates.push((kind, spec));
            }
        }
        if !templates
            .iter()
            .any(|(kind, _)| matches!(kind, TemplateKind::Alert | TemplateKind::Approval))
        {
            return Err(TemplatesError::Missing {
                var: "ALERT_TEMPLATE",
                hint: "name:language of the alert template to create, e.g. oncall_alert:en (the same value the functions get); or APPROVAL_TEMPLATE alone for the approval template",
            });
        }

        let base = get("GRAPH_API_BASE_URL")
            .unwrap_or_else(|| DEFAULT_GRAPH_API_BASE_URL.to_owned())
            .trim_end_matches('/')
            .to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(TemplatesError::Invalid {
                var: "GRAPH_API_BASE_URL",
                reason: "must start with https:// or http://".to_owned(),
            });
        }
        let version =
            get("GRAPH_API_VERSION").unwrap_or_else(|| DEFAULT_GRAPH_API_VERSION.to_owned());

        let access_token = get("WHATSAPP_ACCESS_TOKEN").map(Secret::from);
        if access_token.is_none() && !dry_run {
            return Err(TemplatesError::Missing {
                var: "WHATSAPP_ACCESS_TOKEN",
                hint: "a token with the whatsapp_business_management permission (or --dry-run to only print the requests)",
            });
        }
        Ok(Self {
            waba_id,
            api_root: format!("{base}/{version}"),
            access_token,
            templates,
            dry_run,
        })
    }

    /// Where the templates are created.
    pub fn url(&self) -> String {
        format!("{}/{}/message_templates", self.api_root, self.waba_id)
    }
}

/// Meta's answer to a created template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub id: String,
    /// `PENDING` while Meta reviews it, `APPROVED`, `REJECTED`.
    pub status: String,
    pub category: Option<String>,
}

/// Creates one template: `POST {url}` with the bearer token and [`request_body`].
pub fn create(
    http: &ureq::Agent,
    settings: &Settings,
    kind: TemplateKind,
    template: &TemplateRef,
) -> Result<Created, TemplatesError> {
    let label = template.to_string();
    let token = settings
        .access_token
        .as_ref()
        .ok_or(TemplatesError::Missing {
            var: "WHATSAPP_ACCESS_TOKEN",
            hint: "a token with the whatsapp_business_management permission",
        })?;
    let body = request_body(kind, template).to_string();
    let mut response = http
        .post(&settings.url())
        .header("Content-Type", "application/json")
        .header("Accept", "application/json")
        .header("Authorization", format!("Bearer {}", token.expose()))
        .send(body.as_bytes())
        .map_err(|error| TemplatesError::Unreachable {
            template: label.clone(),
            reason: redact::scrub(&error.to_string()),
        })?;
    let status = response.status().as_u16();
    let mut bytes = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(MAX_ANSWER_BYTES)
        .read_to_end(&mut bytes)
        .map_err(|error| TemplatesError::Unreachable {
            template: label.clone(),
            reason: redact::scrub(&error.to_string()),
        })?;
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        return Err(refusal(label, status, &answer, &bytes));
    }
    let text = |field: &str| match &answer[field] {
        Value::String(text) if !text.is_empty() => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    };
    match text("id") {
        Some(id) => Ok(Created {
            // The template's id, digits (printed whole: the operator needs it, and digits
            // carry no forged line); anything else scrubbed.
            id: if !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()) {
                id
            } else {
                redact::excerpt(&id, 64)
            },
            status: text("status").map_or_else(|| "-".to_owned(), |s| redact::excerpt(&s, 32)),
            category: text("category").map(|c| redact::excerpt(&c, 32)),
        }),
        None => Err(TemplatesError::Unexpected {
            template: label,
            status,
            body: redact::excerpt_bytes(&bytes),
        }),
    }
}

/// Meta's error answer as a [`TemplatesError::Refused`]: `error.message`, and the
/// `error_user_title`/`error_user_msg` Meta adds for template problems, scrubbed.
fn refusal(template: String, status: u16, answer: &Value, bytes: &[u8]) -> TemplatesError {
    let error = &answer["error"];
    let number = |field: &str| match &error[field] {
        Value::Number(n) => redact::code(&n.to_string()),
        Value::String(s) => redact::code(s),
        _ => "-".to_owned(),
    };
    let parts: Vec<&str> = ["message", "error_user_title", "error_user_msg"]
        .iter()
        .filter_map(|field| error[*field].as_str())
        .filter(|text| !text.trim().is_empty())
        .collect();
    let message = if parts.is_empty() {
        redact::excerpt_bytes(bytes)
    } else {
        redact::excerpt(&parts.join(" / "), redact::EXCERPT_CHARS)
    };
    TemplatesError::Refused {
        template,
        status,
        code: number("code"),
        subcode: number("error_subcode"),
        message,
    }
}

/// The command: prints each template's request (`--dry-run`) or Meta's answer to `out`, each
/// failure to `err`; `Err` when any template was not created (the binary exits 1).
pub fn run(
    args: &[String],
    lookup: impl Fn(&str) -> Option<String>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), TemplatesError> {
    let settings = Settings::from_args(args, lookup)?;
    if settings.dry_run {
        for (kind, template) in &settings.templates {
            let body =
                serde_json::to_string_pretty(&request_body(*kind, template)).unwrap_or_default();
            let _ = writeln!(
                out,
                "{template} ({}): POST {}\n{body}",
                kind.variable(),
                settings.url()
            );
        }
        return Ok(());
    }
    let http: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(CALL_TIMEOUT))
        .max_redirects(0)
        .build()
        .into();
    let mut failed = 0;
    for (kind, template) in &settings.templates {
        match create(&http, &settings, *kind, template) {
            Ok(created) => {
                let _ = writeln!(
                    out,
                    "{template} ({}): created, id {}, status {}, category {}",
                    kind.variable(),
                    created.id,
                    created.status,
                    created.category.as_deref().unwrap_or("-")
                );
            }
            Err(error) => {
                failed += 1;
                let _ = writeln!(err, "create-templates: {error}");
            }
        }
    }
    if !settings
        .templates
        .iter()
        .any(|(kind, _)| *kind == TemplateKind::Notice)
    {
        let _ = writeln!(
            out,
            "NOTICE_TEMPLATE is not set: no notice template created (notices to people whose 24-hour window is closed will be logged as not sent)"
        );
    }
    match failed {
        0 => Ok(()),
        failed => Err(TemplatesError::NotCreated {
            failed,
            total: settings.templates.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameters of a body, in order of appearance.
    fn parameters(body: &str) -> Vec<usize> {
        let mut found = Vec::new();
        let mut rest = body;
        while let Some(start) = rest.find("{{") {
            let end = rest[start..].find("}}").expect("closed") + start;
            found.push(rest[start + 2..end].parse().expect("a number"));
            rest = &rest[end + 2..];
        }
        found
    }

    #[test]
    fn bodies_follow_metas_rules_for_templates() {
        for (body, examples) in [
            (ALERT_BODY, ALERT_EXAMPLE.len()),
            (NOTICE_BODY, 1),
            (APPROVAL_BODY, APPROVAL_EXAMPLE.len()),
        ] {
            let found = parameters(body);
            assert_eq!(found, (1..=examples).collect::<Vec<_>>(), "{body}");
            let trimmed = body.trim();
            assert!(
                !trimmed.starts_with("{{"),
                "starts with a parameter: {body}"
            );
            assert!(!trimmed.ends_with("}}"), "ends with a parameter: {body}");
            assert!(!body.contains("}}{{"), "adjacent parameters: {body}");
            assert!(body.chars().count() <= 1024);
            // Meta refuses a body with too many parameters for its length.
            let words = body.split_whitespace().count();
            assert!(
                words >= 3 * found.len(),
                "{words} words for {} parameters",
                found.len()
            );
        }
        for button in ALERT_BUTTONS.iter().chain(&APPROVAL_BUTTONS) {
            assert!(button.chars().count() <= 25, "{button}");
        }
        // The command stands on a line of its own, after a label, with nothing glued to it:
        // the approver reads exactly what will run.
        assert!(
            APPROVAL_BODY.contains("\nCommand: {{3}}\n"),
            "{APPROVAL_BODY}"
        );
    }

    #[test]
    fn request_bodies_are_metas_shape() {
        let alert = TemplateRef::parse("oncall_alert:en").unwrap();
        let body = request_body(TemplateKind::Alert, &alert);
        assert_eq!(body["name"], "oncall_alert");
        assert_eq!(body["language"], "en");
        assert_eq!(body["category"], "UTILITY");
        assert_eq!(body["components"][0]["type"], "BODY");
        assert_eq!(
            body["components"][0]["example"]["body_text"],
            json!([[
                "critical",
                "HighErrorRate",
                "5xx rate above 5% on checkout-api for 10 minutes",
                "2026-11-24 09:52 UTC"
            ]])
        );
        assert_eq!(
            body["components"][1],
            json!({"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Acknowledge"},
                {"type": "QUICK_REPLY", "text": "Details"},
                {"type": "QUICK_REPLY", "text": "Escalate"}
            ]})
        );
        let notice = TemplateRef::parse("oncall_notice:en_US").unwrap();
        let body = request_body(TemplateKind::Notice, &notice);
        assert_eq!(body["language"], "en_US");
        assert_eq!(body["components"].as_array().unwrap().len(), 1);
        assert_eq!(
            body["components"][0]["example"]["body_text"],
            json!([[NOTICE_EXAMPLE]])
        );
        let approval = TemplateRef::parse("approval_request:en").unwrap();
        let body = request_body(TemplateKind::Approval, &approval);
        assert_eq!(body["name"], "approval_request");
        assert_eq!(body["category"], "UTILITY");
        assert_eq!(body["components"][0]["type"], "BODY");
        assert_eq!(body["components"][0]["text"], APPROVAL_BODY);
        assert_eq!(
            body["components"][0]["example"]["body_text"],
            json!([[
                "Sam",
                "Restart deployment/api in prod",
                "kubectl rollout restart deployment/api -n prod",
                "15 min"
            ]])
        );
        // Approve first, Deny second: the engine sets the payloads in this order.
        assert_eq!(
            body["components"][1],
            json!({"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Approve"},
                {"type": "QUICK_REPLY", "text": "Deny"}
            ]})
        );
    }

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn settings_come_from_the_command_line_and_the_environment() {
        let env = lookup(&[
            ("WHATSAPP_ACCESS_TOKEN", "EAAG-token"),
            ("ALERT_TEMPLATE", "oncall_alert:en"),
            ("NOTICE_TEMPLATE", " oncall_notice:en "),
            ("APPROVAL_TEMPLATE", "approval_request:en_US"),
            ("GRAPH_API_BASE_URL", "http://127.0.0.1:9/"),
            ("GRAPH_API_VERSION", "v99.0"),
        ]);
        let settings = Settings::from_args(&args(&["--waba-id", "102290129340398"]), &env).unwrap();
        assert_eq!(
            settings.url(),
            "http://127.0.0.1:9/v99.0/102290129340398/message_templates"
        );
        assert_eq!(settings.templates.len(), 3);
        assert_eq!(settings.templates[1].1.to_string(), "oncall_notice:en");
        assert_eq!(settings.templates[2].0, TemplateKind::Approval);
        assert_eq!(
            settings.templates[2].1.to_string(),
            "approval_request:en_US"
        );
        assert!(!settings.dry_run);
        assert!(!format!("{settings:?}").contains("EAAG-token"));

        let settings = Settings::from_args(
            &args(&["--waba-id=42", "--dry-run"]),
            lookup(&[("ALERT_TEMPLATE", "oncall_alert:en")]),
        )
        .unwrap();
        assert!(settings.dry_run && settings.access_token.is_none());
        assert_eq!(settings.templates.len(), 1);
        assert_eq!(
            settings.url(),
            "https://graph.facebook.com/v25.0/42/message_templates"
        );
        let from_env = Settings::from_args(
            &[],
            lookup(&[
                ("WABA_ID", "7"),
                ("ALERT_TEMPLATE", "a:en"),
                ("WHATSAPP_ACCESS_TOKEN", "t"),
            ]),
        )
        .unwrap();
        assert_eq!(from_env.waba_id, "7");
    }

    #[test]
    fn the_approval_template_alone_is_enough() {
        let map = [
            ("WHATSAPP_ACCESS_TOKEN", "t"),
            ("APPROVAL_TEMPLATE", "approval_request:en"),
        ];
        let settings = Settings::from_args(&["--waba-id".into(), "1".into()], |name| {
            map.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
        .unwrap();
        assert_eq!(settings.templates.len(), 1);
        assert_eq!(settings.templates[0].0, TemplateKind::Approval);
    }

    #[test]
    fn bad_settings_are_refused_naming_the_fault() {
        let complete = [
            ("WHATSAPP_ACCESS_TOKEN", "t"),
            ("ALERT_TEMPLATE", "oncall_alert:en"),
        ];
        /// The command line, the environment, and what the error says.
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
        let cases: [Case<'_>; 9] = [
            (&[], &complete, "WABA_ID is not set"),
            (
                &["--waba-id", "12ab"],
                &complete,
                "WABA_ID: must be the digits",
            ),
            (&["--waba-id"], &complete, "--waba-id needs a value"),
            (&["--wabaid=1"], &complete, "unknown argument"),
            (
                &["--waba-id", "1"],
                &[("WHATSAPP_ACCESS_TOKEN", "t")],
                "ALERT_TEMPLATE is not set",
            ),
            (
                &["--waba-id", "1"],
                &[
                    ("WHATSAPP_ACCESS_TOKEN", "t"),
                    ("ALERT_TEMPLATE", "Oncall:en"),
                ],
                "ALERT_TEMPLATE: the name must be",
            ),
            (
                &["--waba-id", "1"],
                &[("ALERT_TEMPLATE", "oncall_alert:en")],
                "WHATSAPP_ACCESS_TOKEN is not set",
            ),
            (
                &["--waba-id", "1"],
                &[
                    ("WHATSAPP_ACCESS_TOKEN", "t"),
                    ("ALERT_TEMPLATE", "a:en"),
                    ("NOTICE_TEMPLATE", "n"),
                ],
                "NOTICE_TEMPLATE: must be name:language",
            ),
            (
                &["--waba-id", "1"],
                &[
                    ("WHATSAPP_ACCESS_TOKEN", "t"),
                    ("ALERT_TEMPLATE", "a:en"),
                    ("APPROVAL_TEMPLATE", "Approval Request:en"),
                ],
                "APPROVAL_TEMPLATE: the name must be",
            ),
        ];
        for (command, vars, expected) in cases {
            let error = Settings::from_args(&args(command), lookup(vars)).unwrap_err();
            assert!(error.to_string().contains(expected), "{error} / {expected}");
            assert!(!error.is_retryable());
        }
        let base = Settings::from_args(
            &args(&["--waba-id", "1"]),
            lookup(&[
                ("WHATSAPP_ACCESS_TOKEN", "t"),
                ("ALERT_TEMPLATE", "a:en"),
                ("GRAPH_API_BASE_URL", "graph.facebook.com"),
            ]),
        )
        .unwrap_err();
        assert!(
            base.to_string()
                .starts_with("GRAPH_API_BASE_URL: must start with")
        );
    }

    #[test]
    fn a_dry_run_prints_the_requests_and_sends_nothing() {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        run(
            &args(&["--waba-id", "102290129340398", "--dry-run"]),
            lookup(&[
                ("ALERT_TEMPLATE", "oncall_alert:en"),
                ("NOTICE_TEMPLATE", "oncall_notice:en"),
                ("APPROVAL_TEMPLATE", "approval_request:en"),
                // Nothing listens here: a request would fail the run.
                ("GRAPH_API_BASE_URL", "http://127.0.0.1:9"),
            ]),
            &mut out,
            &mut err,
        )
        .unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(err.is_empty());
        assert!(out.contains(
            "oncall_alert:en (ALERT_TEMPLATE): POST http://127.0.0.1:9/v25.0/102290129340398/message_templates"
        ));
        assert!(out.contains("oncall_notice:en (NOTICE_TEMPLATE): POST"));
        assert!(out.contains("approval_request:en (APPROVAL_TEMPLATE): POST"));
        assert!(out.contains(r#""text": "Deny""#), "{out}");
        assert!(!out.contains("NOTICE_TEMPLATE is not set"), "{out}");
        assert!(out.contains(r#""text": "Acknowledge""#), "{out}");
        assert!(out.contains(r#""category": "UTILITY""#), "{out}");
    }

    #[test]
    fn metas_refusals_are_scrubbed_and_say_whether_to_retry() {
        let answer = json!({"error": {
            "message": "Invalid parameter",
            "type": "OAuthException",
            "code": 100,
            "error_subcode": 2388024,
            "error_user_title": "Content in this language already exists",
            "error_user_msg": "oncall_alert already exists in English; call +1 (415) 555-1234\nforged line",
            "fbtrace_id": "AbC123"
        }});
        let error = refusal("oncall_alert:en".to_owned(), 400, &answer, b"");
        let text = error.to_string();
        assert!(text.starts_with("oncall_alert:en: the Graph API refused it (HTTP 400, code 100, subcode *******): Invalid parameter / Content in this language already exists / oncall_alert already exists"), "{text}");
        assert!(!text.contains("555-1234") && !text.contains('\n'), "{text}");
        assert!(!error.is_retryable());
        let throttled = refusal(
            "a:en".to_owned(),
            429,
            &Value::Null,
            b"<html>slow down</html>",
        );
        assert!(throttled.is_retryable());
        assert!(
            throttled
                .to_string()
                .contains("code -, subcode -): <html>slow down</html>")
        );
    }
}

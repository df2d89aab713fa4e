//! Configuration from environment variables (README.md, "Configuration"), read once at cold start.

pub use crate::agent::StepFunctionsMode;
use crate::agent::contract::DEFAULT_AGENT_NAME;
pub use crate::alerts::oncall::OnCall;
pub use crate::approvals::approvers::Approvers;
use crate::domain::{Allowlist, AllowlistError, PhoneNumberId};
pub use crate::domain::{TemplateRef, TemplateRefError};
use crate::reply::sanitize::{is_control, is_visible};
use crate::sessions::{DEFAULT_HISTORY_TURNS, DEFAULT_SESSION_TTL_DAYS, ttl_days};
use serde_json::{Map, Value};
use std::ops::RangeBounds;
use std::str::FromStr;
use std::time::Duration;

/// Defaults (README.md, "Configuration").
pub const DEFAULT_AGENT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_GRAPH_API_BASE_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_GRAPH_API_VERSION: &str = "v25.0";
pub const DEFAULT_LOCAL_ADDR: &str = "127.0.0.1:3000";
/// Meta sends at most 3 MB per webhook; 4 MiB leaves room for API Gateway's base64.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Connections the local HTTP server serves at once: plenty for a developer and a tunnel, few
/// enough that idle ones cannot exhaust the process's file descriptors.
pub const DEFAULT_LOCAL_MAX_CONNECTIONS: usize = 256;
/// The local server's default body budget, in largest bodies (`MAX_BODY_BYTES`): a few
/// concurrent full-size webhooks, not one per connection.
pub const DEFAULT_LOCAL_BODY_BUDGET_BODIES: usize = 4;
/// Graph API calls are small and fast; anything slower is a fault.
pub const GRAPH_TIMEOUT: Duration = Duration::from_secs(10);

/// Extra lease time on top of the agent timeout: how long a crashed handler can block a retry
/// beyond its agent's time (a live handling renews its claim every third of the lease).
pub const LEASE_MARGIN: Duration = Duration::from_secs(60);
/// SQS receives before a job goes to the dead-letter queue (the template's `maxReceiveCount`).
pub const DEFAULT_MAX_RECEIVE_COUNT: u32 = 3;

/// Agents in `AGENTS`: one WhatsApp list holds 10 rows.
pub const MAX_AGENTS: usize = crate::reply::limits::LIST_ROWS_MAX;
/// Environments in `ENVIRONMENTS`: one WhatsApp list.
pub const MAX_ENVIRONMENTS: usize = crate::reply::limits::LIST_ROWS_MAX;
/// An agent or environment name is a list row title.
pub const NAME_MAX_CHARS: usize = crate::reply::limits::ROW_TITLE_MAX;
/// An agent's description is a list row description.
pub const DESCRIPTION_MAX_CHARS: usize = crate::reply::limits::ROW_DESCRIPTION_MAX;
/// `HISTORY_TURNS`' range: 0 (no history) to 50.
pub const HISTORY_TURNS_RANGE: std::ops::RangeInclusive<usize> = 0..=50;
/// `SESSION_TTL_DAYS`' range.
pub const SESSION_TTL_DAYS_RANGE: std::ops::RangeInclusive<u64> = 1..=365;
/// Lambda's limit on a function's environment variables, keys and values together.
/// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html>
pub const LAMBDA_ENVIRONMENT_MAX_BYTES: usize = 4096;
/// Variables named in the size error, largest first.
const LARGEST_NAMED: usize = 3;
/// At most one page per person per `PAGE_MIN_INTERVAL_SECS` (0: no limit).
pub const DEFAULT_PAGE_MIN_INTERVAL: Duration = Duration::from_secs(60);
/// `PAGE_MIN_INTERVAL_SECS`' range.
pub const PAGE_MIN_INTERVAL_SECS_RANGE: std::ops::RangeInclusive<u64> = 0..=3600;

/// An approval request expires after this unless it asks otherwise (`APPROVAL_EXPIRY_SECS`).
pub const DEFAULT_APPROVAL_EXPIRY: Duration = Duration::from_secs(900);
/// No approval request lives longer (`APPROVAL_MAX_EXPIRY_SECS`), whatever it asks.
pub const DEFAULT_APPROVAL_MAX_EXPIRY: Duration = Duration::from_secs(86_400);
/// The range of both expiry variables: a minute to a week.
pub const APPROVAL_EXPIRY_SECS_RANGE: std::ops::RangeInclusive<u64> = 60..=604_800;
/// How long the approvals table keeps a request (`APPROVAL_RETENTION_DAYS`).
pub const DEFAULT_APPROVAL_RETENTION_DAYS: u64 = 90;
/// `APPROVAL_RETENTION_DAYS`' range.
pub const APPROVAL_RETENTION_DAYS_RANGE: std::ops::RangeInclusive<u64> = 1..=3650;

/// Which agent backend answers messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentBackend {
    Http {
        url: String,
        timeout: Duration,
    },
    StepFunctions {
        state_machine_arn: String,
        mode: StepFunctionsMode,
    },
}

/// One agent a sender can choose (`AGENTS`, or the one-agent shorthand named `default`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// Unique (ignoring case), 1-24 characters: the `/agents` list row title, and what the
    /// session and the request's `session.agent` hold.
    pub name: String,
    /// At most 72 characters: the row's description.
    pub description: Option<String>,
    pub backend: AgentBackend,
}

/// Where the webhook runs the agent: inside the webhook invocation, or in a queue worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatch {
    Inline,
    Queue { queue_url: String },
}

/// Everything the webhook needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub secret_id: Option<String>,
    pub allowlist: Allowlist,
    /// The default agent's backend (with the one-agent shorthand, the only agent's).
    pub agent: AgentBackend,
    /// Every agent a sender can choose, in `AGENTS` order (the shorthand: one, `default`).
    pub agents: Vec<AgentSpec>,
    /// The name of the agent a sender has until they choose one (`DEFAULT_AGENT`).
    pub default_agent: String,
    /// `ENVIRONMENTS`, in order; the first is the default. Empty: no environments.
    pub environments: Vec<String>,
    /// Turns of history kept per session and sent to the agent (`HISTORY_TURNS`).
    pub history_turns: usize,
    /// How long an idle session is kept (`SESSION_TTL_DAYS`).
    pub session_ttl: Duration,
    /// DynamoDB table of sessions; `None`: in memory (one warm process).
    pub sessions_table: Option<String>,
    /// The template sent when a reply finds the 24-hour window closed (`REENGAGE_TEMPLATE`).
    pub reengage_template: Option<TemplateRef>,
    pub dispatch: Dispatch,
    /// DynamoDB table for durable idempotency; `None`: in memory (one warm process).
    pub idempotency_table: Option<String>,
    /// How long a claim holds before a redelivery may take over.
    pub lease: Duration,
    /// The worker's last attempt (SQS `ApproximateReceiveCount`) before the dead-letter queue.
    pub max_receive_count: u32,
    pub graph_api_base_url: String,
    pub graph_api_version: String,
    pub local_addr: String,
    pub max_body_bytes: usize,
    /// Local mode: connections served at once (idle ones are evicted for newcomers).
    pub local_max_connections: usize,
    /// Local mode: bytes of request bodies held at once beyond each request's small allowance.
    pub local_body_budget_bytes: usize,
    /// Who is paged for an alert (`ONCALL`); `None`: paging is off.
    pub oncall: Option<OnCall>,
    /// The business number pages are sent from (`PHONE_NUMBER_ID`, digits; required with
    /// `ONCALL`).
    pub phone_number_id: Option<PhoneNumberId>,
    /// The approved template pages are sent as (`ALERT_TEMPLATE`; required with `ONCALL`).
    pub alert_template: Option<TemplateRef>,
    /// The approved template of notices to people whose 24-hour window is closed
    /// (`NOTICE_TEMPLATE`); `None`: such notices are logged as not sent.
    pub notice_template: Option<TemplateRef>,
    /// At most one page per person per this long (`PAGE_MIN_INTERVAL_SECS`); zero: no limit.
    pub page_min_interval: Duration,
    /// DynamoDB table of incidents and pages (`ALERTS_TABLE`); `None`: in memory.
    pub alerts_table: Option<String>,
    /// Standard SQS queue of escalation timers (`TIMER_QUEUE_URL`); `None`: in-process timers
    /// (local runs only).
    pub timer_queue_url: Option<String>,
    /// Who may approve (`APPROVERS`); `None`: approvals are off.
    pub approvers: Option<Approvers>,
    /// The approved template requests go out as when an approver's window is closed
    /// (`APPROVAL_TEMPLATE`; required with `APPROVERS`).
    pub approval_template: Option<TemplateRef>,
    /// `APPROVAL_EXPIRY_SECS`.
    pub approval_expiry: Duration,
    /// `APPROVAL_MAX_EXPIRY_SECS`.
    pub approval_max_expiry: Duration,
    /// `ALLOW_SELF_APPROVAL`: whether a requester may approve their own request.
    pub allow_self_approval: bool,
    /// DynamoDB table of approval requests (`APPROVALS_TABLE`); `None`: in memory.
    pub approvals_table: Option<String>,
    /// `APPROVAL_RETENTION_DAYS`, as a duration.
    pub approval_retention: Duration,
}

/// A configuration problem, naming the variable; reported at startup.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error(transparent)]
    Allowlist(#[from] AllowlistError),
    #[error(
        "the environment has {total} bytes of variables, over Lambda's {limit}; the largest: \
         {largest}. {advice}"
    )]
    EnvironmentTooLarge {
        total: usize,
        limit: usize,
        /// `NAME (N bytes)`, largest first.
        largest: String,
        advice: String,
    },
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads configuration through `lookup` (tests pass a map). Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let allowlist = Allowlist::parse(
            &get("ALLOWED_SENDERS").ok_or(ConfigError::Missing("ALLOWED_SENDERS"))?,
        )?;

        let agent_timeout = Duration::from_secs(number(
            get("AGENT_TIMEOUT_SECS"),
            "AGENT_TIMEOUT_SECS",
            1..=900,
            DEFAULT_AGENT_TIMEOUT.as_secs(),
            "must be 1-900 seconds",
        )?);
        let agents = match get("AGENTS") {
            None => vec![AgentSpec {
                name: DEFAULT_AGENT_NAME.to_owned(),
                description: None,
                backend: shorthand_agent(&get, agent_timeout)?,
            }],
            Some(spec) => {
                if let Some(var) = SHORTHAND_VARS.iter().find(|var| get(var).is_some()) {
                    return Err(invalid(
                        "AGENTS",
                        &format!(
                            "replaces the one-agent shorthand: unset {var} (AGENT_BACKEND, \
                             AGENT_URL, STATE_MACHINE_ARN and STEP_FUNCTIONS_MODE go with it)"
                        ),
                    ));
                }
                parse_agents(&spec, agent_timeout)?
            }
        };
        // `agents` has at least one agent: the shorthand's, or AGENTS' (never an empty list).
        let default_index = match get("DEFAULT_AGENT") {
            None => 0,
            Some(wanted) => agents
                .iter()
                .position(|agent| agent.name.eq_ignore_ascii_case(&wanted))
                .ok_or_else(|| {
                    let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
                    invalid(
                        "DEFAULT_AGENT",
                        &format!("names no agent ({wanted:?}); the agents are {names:?}"),
                    )
                })?,
        };
        let default_agent = agents[default_index].name.clone();
        let agent = agents[default_index].backend.clone();
        // The lease covers the slowest agent's call.
        let longest_agent = agents
            .iter()
            .filter_map(|agent| match agent.backend {
                AgentBackend::Http { timeout, .. } => Some(timeout),
                AgentBackend::StepFunctions { .. } => None,
            })
            .fold(agent_timeout, Duration::max);

        let environments = match get("ENVIRONMENTS") {
            None => Vec::new(),
            Some(list) => parse_environments(&list)?,
        };
        let history_turns = number(
            get("HISTORY_TURNS"),
            "HISTORY_TURNS",
            HISTORY_TURNS_RANGE,
            DEFAULT_HISTORY_TURNS,
            "must be a count of turns, 0-50",
        )?;
        let session_ttl = ttl_days(number(
            get("SESSION_TTL_DAYS"),
            "SESSION_TTL_DAYS",
            SESSION_TTL_DAYS_RANGE,
            DEFAULT_SESSION_TTL_DAYS,
            "must be a number of days, 1-365",
        )?);
        let reengage_template = get("REENGAGE_TEMPLATE")
            .map(|spec| {
                TemplateRef::parse(&spec).map_err(|e| invalid("REENGAGE_TEMPLATE", &e.to_string()))
            })
            .transpose()?;

        let dispatch = match get("DISPATCH").as_deref().unwrap_or("inline") {
            "inline" => Dispatch::Inline,
            "queue" => Dispatch::Queue {
                queue_url: get("JOB_QUEUE_URL").ok_or(ConfigError::Missing("JOB_QUEUE_URL"))?,
            },
            other => {
                return Err(invalid(
                    "DISPATCH",
                    &format!("unknown mode {other:?}: use inline or queue"),
                ));
            }
        };

        let lease = Duration::from_secs(number(
            get("IDEMPOTENCY_LEASE_SECS"),
            "IDEMPOTENCY_LEASE_SECS",
            1..,
            (longest_agent + LEASE_MARGIN).as_secs(),
            "must be a number of seconds",
        )?);
        let max_receive_count = number(
            get("MAX_RECEIVE_COUNT"),
            "MAX_RECEIVE_COUNT",
            1..,
            DEFAULT_MAX_RECEIVE_COUNT,
            "must be a count of at least 1",
        )?;
        let max_body_bytes = number(
            get("MAX_BODY_BYTES"),
            "MAX_BODY_BYTES",
            1024..,
            DEFAULT_MAX_BODY_BYTES,
            "must be a byte count of at least 1024",
        )?;
        let local_max_connections = number(
            get("LOCAL_MAX_CONNECTIONS"),
            "LOCAL_MAX_CONNECTIONS",
            1..,
            DEFAULT_LOCAL_MAX_CONNECTIONS,
            "must be a count of at least 1",
        )?;
        // At least one largest body, or a full-size webhook could never be read.
        let local_body_budget_bytes = number(
            get("LOCAL_BODY_BUDGET_BYTES"),
            "LOCAL_BODY_BUDGET_BYTES",
            max_body_bytes..,
            max_body_bytes.saturating_mul(DEFAULT_LOCAL_BODY_BUDGET_BODIES),
            "must be a byte count of at least MAX_BODY_BYTES",
        )?;

        let paging = read_paging(&get, &agents)?;
        let approvals = read_approvals(&get, paging.phone_number_id.is_some())?;

        let graph_api_base_url = get("GRAPH_API_BASE_URL")
            .unwrap_or_else(|| DEFAULT_GRAPH_API_BASE_URL.to_owned())
            .trim_end_matches('/')
            .to_owned();
        if !(graph_api_base_url.starts_with("https://")
            || graph_api_base_url.starts_with("http://"))
        {
            return Err(invalid(
                "GRAPH_API_BASE_URL",
                "must start with https:// or http://",
            ));
        }

        Ok(Self {
            secret_id: get("WHATSAPP_SECRET_ID"),
            allowlist,
            agent,
            agents,
            default_agent,
            environments,
            history_turns,
            session_ttl,
            sessions_table: get("SESSIONS_TABLE"),
            reengage_template,
            dispatch,
            idempotency_table: get("IDEMPOTENCY_TABLE"),
            lease,
            max_receive_count,
            graph_api_base_url,
            graph_api_version: get("GRAPH_API_VERSION")
                .unwrap_or_else(|| DEFAULT_GRAPH_API_VERSION.to_owned()),
            local_addr: get("LOCAL_ADDR").unwrap_or_else(|| DEFAULT_LOCAL_ADDR.to_owned()),
            max_body_bytes,
            local_max_connections,
            local_body_budget_bytes,
            oncall: paging.oncall,
            phone_number_id: paging.phone_number_id,
            alert_template: paging.alert_template,
            notice_template: paging.notice_template,
            page_min_interval: paging.page_min_interval,
            alerts_table: get("ALERTS_TABLE"),
            timer_queue_url: get("TIMER_QUEUE_URL"),
            approvers: approvals.approvers,
            approval_template: approvals.template,
            approval_expiry: approvals.expiry,
            approval_max_expiry: approvals.max_expiry,
            allow_self_approval: approvals.allow_self,
            approvals_table: get("APPROVALS_TABLE"),
            approval_retention: approvals.retention,
        })
    }
}

/// The paging variables, read and checked together.
struct Paging {
    oncall: Option<OnCall>,
    phone_number_id: Option<PhoneNumberId>,
    alert_template: Option<TemplateRef>,
    notice_template: Option<TemplateRef>,
    page_min_interval: Duration,
}

/// `ONCALL` (every agent it names one of `agents`), `PHONE_NUMBER_ID` and `ALERT_TEMPLATE`
/// (required with it), `NOTICE_TEMPLATE`, `PAGE_MIN_INTERVAL_SECS`.
fn read_paging(
    get: &dyn Fn(&str) -> Option<String>,
    agents: &[AgentSpec],
) -> Result<Paging, ConfigError> {
    let oncall = get("ONCALL")
        .map(|spec| OnCall::parse(&spec).map_err(|reason| invalid("ONCALL", &reason)))
        .transpose()?;
    if let Some(oncall) = &oncall
        && let Some(unknown) = oncall
            .agents()
            .find(|name| !agents.iter().any(|agent| agent.name == *name))
    {
        let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
        return Err(invalid(
            "ONCALL",
            &format!(
                "names the agent {unknown:?}, which is not configured; the agents are {names:?}"
            ),
        ));
    }
    let phone_number_id = get("PHONE_NUMBER_ID")
        .map(|id| {
            if !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_digit()) {
                Ok(PhoneNumberId(id))
            } else {
                Err(invalid(
                    "PHONE_NUMBER_ID",
                    "must be the digits of the Phone number ID on Meta's API Setup page (not \
                     the phone number itself)",
                ))
            }
        })
        .transpose()?;
    let template = |var: &'static str| {
        get(var)
            .map(|spec| TemplateRef::parse(&spec).map_err(|e| invalid(var, &e.to_string())))
            .transpose()
    };
    let alert_template = template("ALERT_TEMPLATE")?;
    let notice_template = template("NOTICE_TEMPLATE")?;
    let page_min_interval = Duration::from_secs(number(
        get("PAGE_MIN_INTERVAL_SECS"),
        "PAGE_MIN_INTERVAL_SECS",
        PAGE_MIN_INTERVAL_SECS_RANGE,
        DEFAULT_PAGE_MIN_INTERVAL.as_secs(),
        "must be 0 (no limit) to 3600 seconds",
    )?);
    if oncall.is_some() {
        if phone_number_id.is_none() {
            return Err(invalid(
                "PHONE_NUMBER_ID",
                "missing, and ONCALL needs it: the Phone number ID of Meta's API Setup page, \
                 needed to send pages",
            ));
        }
        if alert_template.is_none() {
            return Err(invalid(
                "ALERT_TEMPLATE",
                "missing, and ONCALL needs it: the approved template pages are sent as \
                 (name:language, e.g. oncall_alert:en)",
            ));
        }
    }
    Ok(Paging {
        oncall,
        phone_number_id,
        alert_template,
        notice_template,
        page_min_interval,
    })
}

/// The approvals variables, read and checked together.
struct ApprovalVars {
    approvers: Option<Approvers>,
    template: Option<TemplateRef>,
    expiry: Duration,
    max_expiry: Duration,
    allow_self: bool,
    retention: Duration,
}

/// `APPROVERS` (never `*`), `APPROVAL_TEMPLATE` and `PHONE_NUMBER_ID` (required with it), the
/// expiries (the default never above the maximum), `ALLOW_SELF_APPROVAL`,
/// `APPROVAL_RETENTION_DAYS`.
fn read_approvals(
    get: &dyn Fn(&str) -> Option<String>,
    has_phone_number_id: bool,
) -> Result<ApprovalVars, ConfigError> {
    let approvers = get("APPROVERS")
        .map(|spec| Approvers::parse(&spec).map_err(|reason| invalid("APPROVERS", &reason)))
        .transpose()?;
    let template = get("APPROVAL_TEMPLATE")
        .map(|spec| {
            TemplateRef::parse(&spec).map_err(|e| invalid("APPROVAL_TEMPLATE", &e.to_string()))
        })
        .transpose()?;
    let range_reason = "must be 60 (a minute) to 604800 (a week) seconds";
    let max_expiry = number(
        get("APPROVAL_MAX_EXPIRY_SECS"),
        "APPROVAL_MAX_EXPIRY_SECS",
        APPROVAL_EXPIRY_SECS_RANGE,
        DEFAULT_APPROVAL_MAX_EXPIRY.as_secs(),
        range_reason,
    )?;
    let expiry = number(
        get("APPROVAL_EXPIRY_SECS"),
        "APPROVAL_EXPIRY_SECS",
        APPROVAL_EXPIRY_SECS_RANGE,
        DEFAULT_APPROVAL_EXPIRY.as_secs().min(max_expiry),
        range_reason,
    )?;
    if expiry > max_expiry {
        return Err(invalid(
            "APPROVAL_EXPIRY_SECS",
            &format!("is above APPROVAL_MAX_EXPIRY_SECS ({max_expiry})"),
        ));
    }
    let allow_self = match get("ALLOW_SELF_APPROVAL").map(|v| v.to_ascii_lowercase()) {
        None => false,
        Some(value) => match value.as_str() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(invalid("ALLOW_SELF_APPROVAL", "must be true or false")),
        },
    };
    let retention_days = number(
        get("APPROVAL_RETENTION_DAYS"),
        "APPROVAL_RETENTION_DAYS",
        APPROVAL_RETENTION_DAYS_RANGE,
        DEFAULT_APPROVAL_RETENTION_DAYS,
        "must be 1 to 3650 days",
    )?;
    if approvers.is_some() {
        if !has_phone_number_id {
            return Err(invalid(
                "PHONE_NUMBER_ID",
                "missing, and APPROVERS needs it: the Phone number ID of Meta's API Setup page, \
                 needed to send the requests a state machine asks for",
            ));
        }
        if template.is_none() {
            return Err(invalid(
                "APPROVAL_TEMPLATE",
                "missing, and APPROVERS needs it: the approved template requests are sent as \
                 when an approver's 24-hour window is closed (name:language, e.g. \
                 approval_request:en)",
            ));
        }
    }
    Ok(ApprovalVars {
        approvers,
        template,
        expiry: Duration::from_secs(expiry),
        max_expiry: Duration::from_secs(max_expiry),
        allow_self,
        retention: Duration::from_secs(retention_days.saturating_mul(86_400)),
    })
}

/// The variables of the one-agent shorthand, which `AGENTS` replaces.
const SHORTHAND_VARS: [&str; 4] = [
    "AGENT_BACKEND",
    "AGENT_URL",
    "STATE_MACHINE_ARN",
    "STEP_FUNCTIONS_MODE",
];
/// The fields an `AGENTS` entry may have.
const AGENT_FIELDS: [&str; 6] = [
    "name",
    "description",
    "url",
    "timeout_secs",
    "state_machine_arn",
    "mode",
];

/// `AGENTS`: a JSON list of `{"name", "url"}` (HTTP, optional `"timeout_secs"`, default
/// `timeout`) or `{"name", "state_machine_arn", "mode": "sync" | "async"}` (Step Functions,
/// mode `sync` by default), each with an optional `"description"`. At most
/// [`MAX_AGENTS`], names unique ignoring case.
fn parse_agents(spec: &str, timeout: Duration) -> Result<Vec<AgentSpec>, ConfigError> {
    let bad = |reason: String| invalid("AGENTS", &reason);
    let value: Value = serde_json::from_str(spec).map_err(|error| {
        bad(format!(
            "not JSON (line {} column {}): write a list such as \
             [{{\"name\": \"k8s\", \"url\": \"https://…\"}}]",
            error.line(),
            error.column()
        ))
    })?;
    let Value::Array(entries) = value else {
        return Err(bad("must be a JSON list of agents".to_owned()));
    };
    if entries.is_empty() {
        return Err(bad("is an empty list: name at least one agent".to_owned()));
    }
    if entries.len() > MAX_AGENTS {
        return Err(bad(format!(
            "lists {} agents; at most {MAX_AGENTS} fit the /agents list",
            entries.len()
        )));
    }
    let mut agents: Vec<AgentSpec> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        let Value::Object(mut entry) = entry else {
            return Err(bad(format!("agent #{} is not an object", index + 1)));
        };
        let name = match entry.remove("name") {
            Some(Value::String(name)) => name,
            _ => {
                return Err(bad(format!(
                    "agent #{} needs a \"name\" (a string)",
                    index + 1
                )));
            }
        };
        let agent = parse_agent(name, entry, timeout).map_err(bad)?;
        if let Some(twin) = agents
            .iter()
            .find(|other| other.name.eq_ignore_ascii_case(&agent.name))
        {
            return Err(bad(format!(
                "agent names must differ (ignoring case): {:?} and {:?}",
                twin.name, agent.name
            )));
        }
        agents.push(agent);
    }
    Ok(agents)
}

/// One `AGENTS` entry without its name (already taken out); errors say which agent.
fn parse_agent(
    name: String,
    mut entry: Map<String, Value>,
    timeout: Duration,
) -> Result<AgentSpec, String> {
    check_name(&name).map_err(|reason| format!("agent name {name:?} {reason}"))?;
    let which = format!("agent {name:?}");
    if let Some(field) = entry
        .keys()
        .find(|field| !AGENT_FIELDS.contains(&field.as_str()))
    {
        return Err(format!(
            "{which} has an unknown field {field:?} (known: {})",
            AGENT_FIELDS.join(", ")
        ));
    }
    let mut text = |field: &str| match entry.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.trim().to_owned())),
        Some(_) => Err(format!("{which}: \"{field}\" must be a string")),
    };
    let description = text("description")?.filter(|d| !d.is_empty());
    let url = text("url")?;
    let arn = text("state_machine_arn")?;
    let mode = text("mode")?;
    if let Some(description) = &description {
        let chars = description.chars().count();
        if chars > DESCRIPTION_MAX_CHARS {
            return Err(format!(
                "{which}: the description has {chars} characters; at most \
                 {DESCRIPTION_MAX_CHARS} fit a WhatsApp list row"
            ));
        }
        if description.chars().any(is_control) {
            return Err(format!("{which}: the description has a control character"));
        }
    }
    let timeout_secs = match entry.remove("timeout_secs") {
        None | Some(Value::Null) => None,
        Some(Value::Number(secs)) => Some(
            secs.as_u64()
                .filter(|secs| (1..=900).contains(secs))
                .ok_or_else(|| format!("{which}: \"timeout_secs\" must be 1-900 seconds"))?,
        ),
        Some(_) => return Err(format!("{which}: \"timeout_secs\" must be a number")),
    };
    let backend = match (url, arn) {
        (Some(url), None) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "{which}: \"url\" must start with http:// or https://"
                ));
            }
            if mode.is_some() {
                return Err(format!(
                    "{which}: \"mode\" is for Step Functions agents (state_machine_arn)"
                ));
            }
            AgentBackend::Http {
                url,
                timeout: timeout_secs.map_or(timeout, Duration::from_secs),
            }
        }
        (None, Some(state_machine_arn)) => {
            if !state_machine_arn.starts_with("arn:") {
                return Err(format!(
                    "{which}: \"state_machine_arn\" must be a state machine ARN"
                ));
            }
            if timeout_secs.is_some() {
                return Err(format!(
                    "{which}: \"timeout_secs\" is for HTTP agents; a state machine's time \
                     is its own (AGENT_TIMEOUT_SECS sizes the claim lease)"
                ));
            }
            let mode = match mode.as_deref().unwrap_or("sync") {
                "sync" => StepFunctionsMode::Sync,
                "async" => StepFunctionsMode::Async,
                other => {
                    return Err(format!(
                        "{which}: \"mode\" {other:?} is neither sync nor async"
                    ));
                }
            };
            AgentBackend::StepFunctions {
                state_machine_arn,
                mode,
            }
        }
        (Some(_), Some(_)) => {
            return Err(format!(
                "{which} has both \"url\" and \"state_machine_arn\": give one"
            ));
        }
        (None, None) => {
            return Err(format!(
                "{which} needs \"url\" (HTTP) or \"state_machine_arn\" (Step Functions)"
            ));
        }
    };
    Ok(AgentSpec {
        name,
        description,
        backend,
    })
}

/// `ENVIRONMENTS`: a comma list (empty entries skipped), names as agent names.
fn parse_environments(list: &str) -> Result<Vec<String>, ConfigError> {
    let mut environments: Vec<String> = Vec::new();
    for name in list
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        check_name(name)
            .map_err(|reason| invalid("ENVIRONMENTS", &format!("{name:?} {reason}")))?;
        if let Some(twin) = environments
            .iter()
            .find(|other| other.eq_ignore_ascii_case(name))
        {
            return Err(invalid(
                "ENVIRONMENTS",
                &format!("names must differ (ignoring case): {twin:?} and {name:?}"),
            ));
        }
        environments.push(name.to_owned());
    }
    if environments.len() > MAX_ENVIRONMENTS {
        return Err(invalid(
            "ENVIRONMENTS",
            &format!(
                "lists {} environments; at most {MAX_ENVIRONMENTS} fit the /env list",
                environments.len()
            ),
        ));
    }
    Ok(environments)
}

/// Whether `name` can be a list row title and a stored choice: 1-24 characters, something
/// visible, no control character, no surrounding spaces. The reason completes "name … ".
fn check_name(name: &str) -> Result<(), String> {
    let chars = name.chars().count();
    if chars == 0 || chars > NAME_MAX_CHARS {
        return Err(format!(
            "must have 1-{NAME_MAX_CHARS} characters (a WhatsApp list row title), not {chars}"
        ));
    }
    if name.chars().any(is_control) || !is_visible(name) || name.trim() != name {
        return Err(
            "must be visible text without control characters or surrounding spaces".to_owned(),
        );
    }
    Ok(())
}

/// How big the function's own variables are (see [`check_environment_size`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentSize {
    /// Bytes of keys and values of the variables Lambda counts.
    pub bytes: usize,
    pub limit: usize,
}

impl EnvironmentSize {
    /// At 80% of the limit or more: worth a warning at cold start.
    pub fn is_near_limit(&self) -> bool {
        self.bytes * 5 >= self.limit * 4
    }
}

/// Whether Lambda sets `name` itself (it is not part of the function's configuration and
/// does not count towards the 4 KB): the reserved `_HANDLER`, `_X_AMZN_TRACE_ID`, `AWS_*`
/// (region, credentials, `AWS_LAMBDA_*`, `AWS_EXECUTION_ENV`, X-Ray), `LAMBDA_TASK_ROOT`,
/// `LAMBDA_RUNTIME_DIR` and `TZ`, and the runtime's `LANG`, `PATH`, `LD_LIBRARY_PATH`.
/// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html>
pub fn set_by_lambda(name: &str) -> bool {
    name.starts_with('_')
        || name.starts_with("AWS_")
        || name.starts_with("LAMBDA_")
        || matches!(name, "TZ" | "LANG" | "PATH" | "LD_LIBRARY_PATH")
}

/// Checks that the function's own environment variables (every one but those Lambda sets,
/// [`set_by_lambda`]) fit Lambda's 4 KB, keys and values counted in bytes. Lambda refuses to
/// deploy a larger set, so this matters where nothing checked it before: local runs, a
/// container, a configuration copied from elsewhere. Over the limit the error names the
/// largest variables and what to do about them.
pub fn check_environment_size<K, V>(
    vars: impl IntoIterator<Item = (K, V)>,
) -> Result<EnvironmentSize, ConfigError>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut sizes: Vec<(String, usize)> = vars
        .into_iter()
        .filter(|(name, _)| !set_by_lambda(name.as_ref()))
        .map(|(name, value)| {
            let size = name.as_ref().len() + value.as_ref().len();
            (name.as_ref().to_owned(), size)
        })
        .collect();
    let bytes = sizes.iter().map(|(_, size)| size).sum();
    let size = EnvironmentSize {
        bytes,
        limit: LAMBDA_ENVIRONMENT_MAX_BYTES,
    };
    if bytes <= LAMBDA_ENVIRONMENT_MAX_BYTES {
        return Ok(size);
    }
    sizes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sizes.truncate(LARGEST_NAMED);
    let largest = sizes
        .iter()
        .map(|(name, size)| format!("{name} ({size} bytes)"))
        .collect::<Vec<_>>()
        .join(", ");
    let advice = match sizes.first().map(|(name, _)| name.as_str()) {
        Some("AGENTS") => {
            "Shorten AGENTS: drop the descriptions (only the /agents list shows them) and \
             timeout_secs where AGENT_TIMEOUT_SECS serves, use shorter names and URLs; keep \
             agent tokens in the secret's agent_tokens, never in AGENTS."
        }
        Some("ALLOWED_SENDERS") => {
            "Shorten ALLOWED_SENDERS: write numbers as bare digits, or allow everyone with `*` \
             behind another gate."
        }
        Some(name)
            if name.starts_with("WHATSAPP_") || name == "AGENT_TOKEN" || name == "ALERT_TOKEN" =>
        {
            "Move the credentials into a Secrets Manager secret (WHATSAPP_SECRET_ID) instead of \
             the environment."
        }
        _ => "Shorten or remove the largest variables.",
    };
    Err(ConfigError::EnvironmentTooLarge {
        total: bytes,
        limit: LAMBDA_ENVIRONMENT_MAX_BYTES,
        largest,
        advice: advice.to_owned(),
    })
}

/// [`check_environment_size`] of this process's environment (names or values that are not
/// UTF-8 counted by their bytes as well).
pub fn check_process_environment_size() -> Result<EnvironmentSize, ConfigError> {
    check_environment_size(std::env::vars_os().map(|(name, value)| {
        (
            name.to_string_lossy().into_owned(),
            value.to_string_lossy().into_owned(),
        )
    }))
}

/// The one-agent shorthand: `AGENT_BACKEND` with `AGENT_URL`, or `STATE_MACHINE_ARN` and
/// `STEP_FUNCTIONS_MODE`.
fn shorthand_agent(
    get: &dyn Fn(&str) -> Option<String>,
    timeout: Duration,
) -> Result<AgentBackend, ConfigError> {
    Ok(match get("AGENT_BACKEND").as_deref().unwrap_or("http") {
        "http" => {
            let url = get("AGENT_URL").ok_or(ConfigError::Missing("AGENT_URL"))?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(invalid("AGENT_URL", "must start with http:// or https://"));
            }
            AgentBackend::Http { url, timeout }
        }
        "stepfunctions" => {
            let state_machine_arn =
                get("STATE_MACHINE_ARN").ok_or(ConfigError::Missing("STATE_MACHINE_ARN"))?;
            if !state_machine_arn.starts_with("arn:") {
                return Err(invalid("STATE_MACHINE_ARN", "must be a state machine ARN"));
            }
            let mode = match get("STEP_FUNCTIONS_MODE").as_deref().unwrap_or("sync") {
                "sync" => StepFunctionsMode::Sync,
                "async" => StepFunctionsMode::Async,
                other => {
                    return Err(invalid(
                        "STEP_FUNCTIONS_MODE",
                        &format!("{other:?} is neither sync nor async"),
                    ));
                }
            };
            AgentBackend::StepFunctions {
                state_machine_arn,
                mode,
            }
        }
        other => {
            return Err(invalid(
                "AGENT_BACKEND",
                &format!("unknown backend {other:?}: use http or stepfunctions"),
            ));
        }
    })
}

impl Config {
    /// The agent named `name` (as configured, exactly).
    pub fn agent_named(&self, name: &str) -> Option<&AgentSpec> {
        self.agents.iter().find(|agent| agent.name == name)
    }

    /// The agent a sender has: the one they chose if it is still configured, else the default.
    pub fn selected_agent(&self, chosen: Option<&str>) -> &AgentSpec {
        chosen
            .and_then(|name| self.agent_named(name))
            .or_else(|| self.agent_named(&self.default_agent))
            .unwrap_or(&self.agents[0])
    }

    /// The environment a sender has: the one they chose if it is still configured, else the
    /// first; `None` without `ENVIRONMENTS`.
    pub fn selected_environment(&self, chosen: Option<&str>) -> Option<&str> {
        chosen
            .and_then(|name| self.environments.iter().find(|e| e.as_str() == name))
            .or_else(|| self.environments.first())
            .map(String::as_str)
    }
}

/// `value` as a whole number within `range`, or `default` when the variable is unset; anything
/// else is an error naming `var` with `reason`.
fn number<T: FromStr + PartialOrd>(
    value: Option<String>,
    var: &'static str,
    range: impl RangeBounds<T>,
    default: T,
    reason: &str,
) -> Result<T, ConfigError> {
    match value {
        None => Ok(default),
        Some(value) => value
            .parse::<T>()
            .ok()
            .filter(|number| range.contains(number))
            .ok_or_else(|| invalid(var, reason)),
    }
}

fn invalid(var: &'static str, reason: &str) -> ConfigError {
    ConfigError::Invalid {
        var,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    const MINIMAL: [(&str, &str); 2] = [
        ("ALLOWED_SENDERS", "14155551234"),
        ("AGENT_URL", "http://127.0.0.1:8080/agent"),
    ];

    #[test]
    fn minimal_configuration_takes_the_design_defaults() {
        let config = config(&MINIMAL).unwrap();
        assert_eq!(
            config.agent,
            AgentBackend::Http {
                url: "http://127.0.0.1:8080/agent".into(),
                timeout: DEFAULT_AGENT_TIMEOUT
            }
        );
        assert_eq!(config.dispatch, Dispatch::Inline);
        assert_eq!(config.graph_api_base_url, "https://graph.facebook.com");
        assert_eq!(config.graph_api_version, "v25.0");
        assert_eq!(config.local_addr, "127.0.0.1:3000");
        assert_eq!(config.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(config.local_max_connections, 256);
        assert_eq!(config.local_body_budget_bytes, 16 * 1024 * 1024);
        assert_eq!(config.secret_id, None);
    }

    #[test]
    fn allowlist_and_agent_url_are_required() {
        assert_eq!(
            config(&[("AGENT_URL", "http://a")]).unwrap_err(),
            ConfigError::Missing("ALLOWED_SENDERS")
        );
        assert_eq!(
            config(&[("ALLOWED_SENDERS", "*")]).unwrap_err(),
            ConfigError::Missing("AGENT_URL")
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let mut vars = MINIMAL.to_vec();
        vars.push(("AGENT_TIMEOUT_SECS", "soon"));
        assert!(matches!(
            config(&vars).unwrap_err(),
            ConfigError::Invalid {
                var: "AGENT_TIMEOUT_SECS",
                ..
            }
        ));
        let mut vars = MINIMAL.to_vec();
        vars.push(("DISPATCH", "queue"));
        assert_eq!(
            config(&vars).unwrap_err(),
            ConfigError::Missing("JOB_QUEUE_URL")
        );
        let mut vars = MINIMAL.to_vec();
        vars.push(("DISPATCH", "carrier-pigeon"));
        assert!(matches!(
            config(&vars).unwrap_err(),
            ConfigError::Invalid {
                var: "DISPATCH",
                ..
            }
        ));
        let mut vars = MINIMAL.to_vec();
        vars.push(("MAX_BODY_BYTES", "12"));
        assert!(matches!(
            config(&vars).unwrap_err(),
            ConfigError::Invalid {
                var: "MAX_BODY_BYTES",
                ..
            }
        ));
    }

    #[test]
    fn queue_dispatch_and_step_functions_are_configured_together() {
        let config = config(&[
            ("ALLOWED_SENDERS", "*"),
            ("AGENT_BACKEND", "stepfunctions"),
            (
                "STATE_MACHINE_ARN",
                "arn:aws:states:us-east-1:1:stateMachine:agent",
            ),
            ("STEP_FUNCTIONS_MODE", "async"),
            ("DISPATCH", "queue"),
            (
                "JOB_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/1/jobs.fifo",
            ),
            ("IDEMPOTENCY_TABLE", "claims"),
            ("MAX_RECEIVE_COUNT", "5"),
        ])
        .unwrap();
        assert_eq!(
            config.agent,
            AgentBackend::StepFunctions {
                state_machine_arn: "arn:aws:states:us-east-1:1:stateMachine:agent".into(),
                mode: StepFunctionsMode::Async
            }
        );
        assert!(matches!(config.dispatch, Dispatch::Queue { .. }));
        assert_eq!(config.idempotency_table.as_deref(), Some("claims"));
        assert_eq!(config.max_receive_count, 5);
        assert_eq!(config.lease, DEFAULT_AGENT_TIMEOUT + LEASE_MARGIN);
    }

    #[test]
    fn step_functions_needs_an_arn_and_a_known_mode() {
        let base = [("ALLOWED_SENDERS", "*"), ("AGENT_BACKEND", "stepfunctions")];
        assert_eq!(
            config(&base).unwrap_err(),
            ConfigError::Missing("STATE_MACHINE_ARN")
        );
        let mut vars = base.to_vec();
        vars.extend([
            ("STATE_MACHINE_ARN", "arn:x"),
            ("STEP_FUNCTIONS_MODE", "maybe"),
        ]);
        assert!(matches!(
            config(&vars).unwrap_err(),
            ConfigError::Invalid {
                var: "STEP_FUNCTIONS_MODE",
                ..
            }
        ));
    }

    #[test]
    fn overrides_are_read_and_trailing_slashes_dropped() {
        let mut vars = MINIMAL.to_vec();
        vars.extend([
            ("GRAPH_API_BASE_URL", "http://127.0.0.1:9/"),
            ("GRAPH_API_VERSION", "v99.0"),
            ("AGENT_TIMEOUT_SECS", "5"),
            (
                "WHATSAPP_SECRET_ID",
                "arn:aws:secretsmanager:us-east-1:1:secret:x",
            ),
            ("MAX_BODY_BYTES", "2048"),
        ]);
        let config = config(&vars).unwrap();
        assert_eq!(config.graph_api_base_url, "http://127.0.0.1:9");
        assert_eq!(config.graph_api_version, "v99.0");
        assert_eq!(config.max_body_bytes, 2048);
        assert!(
            matches!(config.agent, AgentBackend::Http { timeout, .. } if timeout == Duration::from_secs(5))
        );
        assert!(config.secret_id.is_some());
    }

    #[test]
    fn local_server_limits_are_read_and_validated() {
        let mut vars = MINIMAL.to_vec();
        vars.extend([("MAX_BODY_BYTES", "2048"), ("LOCAL_MAX_CONNECTIONS", "8")]);
        let read = config(&vars).unwrap();
        assert_eq!(read.local_max_connections, 8);
        // The default budget follows MAX_BODY_BYTES.
        assert_eq!(read.local_body_budget_bytes, 4 * 2048);
        vars.push(("LOCAL_BODY_BUDGET_BYTES", "4096"));
        assert_eq!(config(&vars).unwrap().local_body_budget_bytes, 4096);

        for (var, value) in [
            ("LOCAL_MAX_CONNECTIONS", "0"),
            ("LOCAL_MAX_CONNECTIONS", "many"),
            // Below MAX_BODY_BYTES (4 MiB by default): a full-size body could never be read.
            ("LOCAL_BODY_BUDGET_BYTES", "1048576"),
            ("LOCAL_BODY_BUDGET_BYTES", "-1"),
        ] {
            let mut vars = MINIMAL.to_vec();
            vars.push((var, value));
            assert!(
                matches!(config(&vars), Err(ConfigError::Invalid { var: named, .. }) if named == var),
                "{var}={value}"
            );
        }
    }

    fn with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut vars = vec![("ALLOWED_SENDERS", "*")];
        vars.extend_from_slice(extra);
        vars
    }

    /// The reason of an `Invalid` error for `var`; fails on anything else.
    fn reason(vars: &[(&str, &str)], var: &str) -> String {
        match config(vars) {
            Err(ConfigError::Invalid { var: named, reason }) if named == var => reason,
            other => panic!("expected {var} to be invalid, got {other:?}"),
        }
    }

    const TWO_AGENTS: &str = r#"[
        {"name": "k8s", "url": "https://k8s.example.com/agent", "description": "Kubernetes"},
        {"name": "cost", "state_machine_arn": "arn:aws:states:us-east-1:1:stateMachine:cost",
         "mode": "async", "description": "AWS cost"}
    ]"#;

    #[test]
    fn the_shorthand_is_one_agent_named_default_with_session_defaults() {
        let config = config(&MINIMAL).unwrap();
        assert_eq!(config.agents.len(), 1);
        assert_eq!(config.agents[0].name, "default");
        assert_eq!(config.agents[0].description, None);
        assert_eq!(config.agents[0].backend, config.agent);
        assert_eq!(config.default_agent, "default");
        assert!(config.environments.is_empty());
        assert_eq!(config.history_turns, 10);
        assert_eq!(config.session_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(config.sessions_table, None);
        assert_eq!(config.reengage_template, None);
        assert_eq!(config.selected_agent(Some("anything")).name, "default");
        assert_eq!(config.selected_environment(None), None);
    }

    #[test]
    fn agents_are_read_with_their_backends_and_the_first_is_the_default() {
        let config = config(&with(&[
            ("AGENTS", TWO_AGENTS),
            ("AGENT_TIMEOUT_SECS", "30"),
        ]))
        .unwrap();
        assert_eq!(
            config.agents,
            vec![
                AgentSpec {
                    name: "k8s".into(),
                    description: Some("Kubernetes".into()),
                    backend: AgentBackend::Http {
                        url: "https://k8s.example.com/agent".into(),
                        timeout: Duration::from_secs(30),
                    },
                },
                AgentSpec {
                    name: "cost".into(),
                    description: Some("AWS cost".into()),
                    backend: AgentBackend::StepFunctions {
                        state_machine_arn: "arn:aws:states:us-east-1:1:stateMachine:cost".into(),
                        mode: StepFunctionsMode::Async,
                    },
                },
            ]
        );
        assert_eq!(config.default_agent, "k8s");
        assert_eq!(config.agent, config.agents[0].backend);
        assert_eq!(config.selected_agent(None).name, "k8s");
        assert_eq!(config.selected_agent(Some("cost")).name, "cost");
        assert_eq!(
            config.selected_agent(Some("removed")).name,
            "k8s",
            "a choice no longer configured falls back to the default"
        );
    }

    #[test]
    fn default_agent_picks_one_in_any_case_or_names_the_agents() {
        let config = config(&with(&[("AGENTS", TWO_AGENTS), ("DEFAULT_AGENT", "COST")])).unwrap();
        assert_eq!(config.default_agent, "cost");
        assert!(matches!(config.agent, AgentBackend::StepFunctions { .. }));
        let reason = reason(
            &with(&[("AGENTS", TWO_AGENTS), ("DEFAULT_AGENT", "billing")]),
            "DEFAULT_AGENT",
        );
        assert!(
            reason.contains("\"billing\"") && reason.contains("\"k8s\""),
            "{reason}"
        );
        let mut vars = MINIMAL.to_vec();
        vars.push(("DEFAULT_AGENT", "k8s"));
        assert!(reason_of(&vars, "DEFAULT_AGENT"));
    }

    fn reason_of(vars: &[(&str, &str)], var: &str) -> bool {
        matches!(config(vars), Err(ConfigError::Invalid { var: named, .. }) if named == var)
    }

    #[test]
    fn agents_and_the_shorthand_exclude_each_other() {
        for shorthand in [
            ("AGENT_URL", "https://a.example.com"),
            (
                "STATE_MACHINE_ARN",
                "arn:aws:states:us-east-1:1:stateMachine:a",
            ),
            ("AGENT_BACKEND", "http"),
            ("STEP_FUNCTIONS_MODE", "sync"),
        ] {
            let reason = reason(&with(&[("AGENTS", TWO_AGENTS), shorthand]), "AGENTS");
            assert!(reason.contains(shorthand.0), "{reason}");
        }
    }

    #[test]
    fn every_agents_mistake_is_named() {
        let cases: &[(&str, &str)] = &[
            ("not json", "not JSON"),
            (r#"{"name":"k8s"}"#, "list"),
            ("[]", "at least one"),
            (r#"["k8s"]"#, "#1 is not an object"),
            (r#"[{"url":"https://a"}]"#, "needs a \"name\""),
            (r#"[{"name":"","url":"https://a"}]"#, "1-24 characters"),
            (
                r#"[{"name":"abcdefghijklmnopqrstuvwxy","url":"https://a"}]"#,
                "not 25",
            ),
            (
                r#"[{"name":" k8s","url":"https://a"}]"#,
                "surrounding spaces",
            ),
            (r#"[{"name":"k\n8s","url":"https://a"}]"#, "control"),
            (r#"[{"name":"\u200b","url":"https://a"}]"#, "visible"),
            (
                r#"[{"name":"k8s","url":"https://a"},{"name":"K8S","url":"https://b"}]"#,
                "must differ",
            ),
            (r#"[{"name":"k8s"}]"#, "needs \"url\""),
            (
                r#"[{"name":"k8s","url":"https://a","state_machine_arn":"arn:x"}]"#,
                "both",
            ),
            (r#"[{"name":"k8s","url":"ftp://a"}]"#, "http:// or https://"),
            (
                r#"[{"name":"k8s","url":"https://a","mode":"sync"}]"#,
                "Step Functions agents",
            ),
            (
                r#"[{"name":"k8s","state_machine_arn":"x"}]"#,
                "state machine ARN",
            ),
            (
                r#"[{"name":"k8s","state_machine_arn":"arn:x","mode":"later"}]"#,
                "neither",
            ),
            (
                r#"[{"name":"k8s","state_machine_arn":"arn:x","timeout_secs":5}]"#,
                "for HTTP agents",
            ),
            (
                r#"[{"name":"k8s","url":"https://a","timeout_secs":0}]"#,
                "1-900",
            ),
            (
                r#"[{"name":"k8s","url":"https://a","timeout_secs":"5"}]"#,
                "a number",
            ),
            (
                r#"[{"name":"k8s","url":"https://a","descripton":"typo"}]"#,
                "unknown field",
            ),
            (r#"[{"name":"k8s","url":5}]"#, "must be a string"),
            (
                r#"[{"name":"k8s","url":"https://a","description":"a\u0007b"}]"#,
                "control",
            ),
        ];
        for (spec, expected) in cases {
            let reason = reason(&with(&[("AGENTS", spec)]), "AGENTS");
            assert!(reason.contains(expected), "{spec}: {reason}");
        }
        let long = format!(
            r#"[{{"name":"k8s","url":"https://a","description":"{}"}}]"#,
            "d".repeat(73)
        );
        assert!(reason(&with(&[("AGENTS", &long)]), "AGENTS").contains("73 characters"));
        let eleven = format!(
            "[{}]",
            (0..11)
                .map(|n| format!(r#"{{"name":"a{n}","url":"https://a"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(reason(&with(&[("AGENTS", &eleven)]), "AGENTS").contains("11 agents"));
    }

    #[test]
    fn an_agent_may_have_its_own_timeout_and_the_lease_covers_the_slowest() {
        let config = config(&with(&[(
            "AGENTS",
            r#"[{"name":"quick","url":"https://a"},
                {"name":"slow","url":"https://b","timeout_secs":600,"description":""}]"#,
        )]))
        .unwrap();
        assert_eq!(
            config.agents[0].backend,
            AgentBackend::Http {
                url: "https://a".into(),
                timeout: DEFAULT_AGENT_TIMEOUT
            }
        );
        assert!(
            matches!(config.agents[1].backend, AgentBackend::Http { timeout, .. } if timeout == Duration::from_secs(600))
        );
        assert_eq!(
            config.agents[1].description, None,
            "an empty description is none"
        );
        assert_eq!(config.lease, Duration::from_secs(600) + LEASE_MARGIN);
    }

    #[test]
    fn environments_are_a_bounded_comma_list_whose_first_is_the_default() {
        let mut vars = MINIMAL.to_vec();
        vars.push(("ENVIRONMENTS", " prod, staging ,,dev "));
        let config = config(&vars).unwrap();
        assert_eq!(config.environments, ["prod", "staging", "dev"]);
        assert_eq!(config.selected_environment(None), Some("prod"));
        assert_eq!(config.selected_environment(Some("dev")), Some("dev"));
        assert_eq!(config.selected_environment(Some("qa")), Some("prod"));

        let eleven = (0..11)
            .map(|n| format!("e{n}"))
            .collect::<Vec<_>>()
            .join(",");
        for (list, expected) in [
            ("prod,PROD", "must differ"),
            ("a-very-long-environment-name", "1-24"),
            (eleven.as_str(), "11 environments"),
        ] {
            let mut vars = MINIMAL.to_vec();
            vars.push(("ENVIRONMENTS", list));
            let reason = reason(&vars, "ENVIRONMENTS");
            assert!(reason.contains(expected), "{list}: {reason}");
        }
    }

    #[test]
    fn history_ttl_table_and_template_are_read_and_bounded() {
        let mut vars = MINIMAL.to_vec();
        vars.extend([
            ("HISTORY_TURNS", "0"),
            ("SESSION_TTL_DAYS", "365"),
            ("SESSIONS_TABLE", "sessions"),
            ("REENGAGE_TEMPLATE", "answer_ready:en_US"),
        ]);
        let config = config(&vars).unwrap();
        assert_eq!(config.history_turns, 0);
        assert_eq!(config.session_ttl, Duration::from_secs(365 * 86_400));
        assert_eq!(config.sessions_table.as_deref(), Some("sessions"));
        assert_eq!(
            config.reengage_template,
            Some(TemplateRef {
                name: "answer_ready".into(),
                language: "en_US".into()
            })
        );
        for (var, value) in [
            ("HISTORY_TURNS", "51"),
            ("HISTORY_TURNS", "-1"),
            ("SESSION_TTL_DAYS", "0"),
            ("SESSION_TTL_DAYS", "366"),
            ("SESSION_TTL_DAYS", "a month"),
            ("REENGAGE_TEMPLATE", "answer_ready"),
        ] {
            let mut vars = MINIMAL.to_vec();
            vars.push((var, value));
            assert!(reason_of(&vars, var), "{var}={value}");
        }
    }

    const ONCALL: &str =
        r#"{"tiers": [["+14155551234"], ["+447700900123"]], "escalate_after_secs": 120}"#;

    fn paging<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut vars = MINIMAL.to_vec();
        vars.extend([
            ("ONCALL", ONCALL),
            ("PHONE_NUMBER_ID", "106540352242922"),
            ("ALERT_TEMPLATE", "oncall_alert:en"),
        ]);
        vars.extend_from_slice(extra);
        vars
    }

    #[test]
    fn paging_is_off_without_oncall() {
        let config = config(&MINIMAL).unwrap();
        assert_eq!(config.oncall, None);
        assert_eq!(config.phone_number_id, None);
        assert_eq!(config.alert_template, None);
        assert_eq!(config.notice_template, None);
        assert_eq!(config.page_min_interval, Duration::from_secs(60));
        assert_eq!(config.alerts_table, None);
        assert_eq!(config.timer_queue_url, None);
        let mut vars = MINIMAL.to_vec();
        vars.push(("ONCALL", "  "));
        assert_eq!(config_of(&vars).oncall, None, "empty is unset");
    }

    fn config_of(vars: &[(&str, &str)]) -> Config {
        config(vars).unwrap()
    }

    #[test]
    fn oncall_and_its_variables_are_read() {
        let config = config_of(&paging(&[
            ("NOTICE_TEMPLATE", "oncall_notice:en_US"),
            ("PAGE_MIN_INTERVAL_SECS", "0"),
            ("ALERTS_TABLE", "alerts"),
            (
                "TIMER_QUEUE_URL",
                "https://sqs.us-east-1.amazonaws.com/1/timers",
            ),
        ]));
        let oncall = config.oncall.expect("ONCALL");
        assert_eq!(oncall.default.tiers.len(), 2);
        assert_eq!(oncall.default.escalate_after_secs, 120);
        assert_eq!(
            config.phone_number_id,
            Some(PhoneNumberId("106540352242922".into()))
        );
        assert_eq!(
            config.alert_template,
            Some(TemplateRef {
                name: "oncall_alert".into(),
                language: "en".into()
            })
        );
        assert_eq!(
            config.notice_template.map(|t| t.to_string()).as_deref(),
            Some("oncall_notice:en_US")
        );
        assert_eq!(config.page_min_interval, Duration::ZERO);
        assert_eq!(config.alerts_table.as_deref(), Some("alerts"));
        assert_eq!(
            config.timer_queue_url.as_deref(),
            Some("https://sqs.us-east-1.amazonaws.com/1/timers")
        );
        let config = config_of(&paging(&[("PAGE_MIN_INTERVAL_SECS", "3600")]));
        assert_eq!(config.page_min_interval, Duration::from_secs(3600));
    }

    #[test]
    fn oncall_needs_the_phone_number_id_and_the_alert_template() {
        let mut vars = MINIMAL.to_vec();
        vars.extend([("ONCALL", ONCALL), ("ALERT_TEMPLATE", "oncall_alert:en")]);
        let missing_id = reason(&vars, "PHONE_NUMBER_ID");
        assert!(
            missing_id.contains("ONCALL")
                && missing_id
                    .contains("the Phone number ID of Meta's API Setup page, needed to send pages"),
            "{missing_id}"
        );
        let mut vars = MINIMAL.to_vec();
        vars.extend([("ONCALL", ONCALL), ("PHONE_NUMBER_ID", "106540352242922")]);
        let missing_template = reason(&vars, "ALERT_TEMPLATE");
        assert!(
            missing_template.contains("ONCALL") && missing_template.contains("name:language"),
            "{missing_template}"
        );

        // Without ONCALL neither is needed, but both are still checked when set.
        let mut vars = MINIMAL.to_vec();
        vars.extend([("PHONE_NUMBER_ID", "106540352242922")]);
        assert!(config(&vars).is_ok());
    }

    #[test]
    fn oncall_faults_are_named() {
        let reason = reason_for_oncall(r#"{"tiers": [["+14155551234"], ["not a number"]]}"#);
        assert!(
            reason.starts_with("tiers[1][0]: not a phone number"),
            "{reason}"
        );
        let reason =
            reason_for_oncall("{\"tiers\": [[\"+14155551234\"]], \"escalate_after_secs\": 0}");
        assert!(
            reason.contains("escalate_after_secs: must be 1 to 86400"),
            "{reason}"
        );
        let reason = reason_for_oncall("tiers");
        assert!(reason.starts_with("not JSON"), "{reason}");
    }

    fn reason_for_oncall(oncall: &str) -> String {
        let mut vars = MINIMAL.to_vec();
        vars.extend([
            ("ONCALL", oncall),
            ("PHONE_NUMBER_ID", "106540352242922"),
            ("ALERT_TEMPLATE", "oncall_alert:en"),
        ]);
        reason(&vars, "ONCALL")
    }

    #[test]
    fn every_agent_oncall_names_must_be_configured() {
        let shorthand = r#"{"tiers": [["+14155551234"]], "agent": "default"}"#;
        assert!(config(&paging(&[])).is_ok());
        let mut vars = MINIMAL.to_vec();
        vars.extend([
            ("ONCALL", shorthand),
            ("PHONE_NUMBER_ID", "1"),
            ("ALERT_TEMPLATE", "oncall_alert:en"),
        ]);
        assert!(
            config(&vars).is_ok(),
            "the shorthand's agent is named default"
        );

        let routed = r#"{"tiers": [["+14155551234"]], "agent": "k8s",
            "routes": [{"match": {"team": "finance"}, "tiers": [["+14155550000"]], "agent": "cost"}]}"#;
        let vars = with(&[
            ("AGENTS", TWO_AGENTS),
            ("ONCALL", routed),
            ("PHONE_NUMBER_ID", "1"),
            ("ALERT_TEMPLATE", "oncall_alert:en"),
        ]);
        let config = config_of(&vars);
        assert_eq!(
            config.oncall.unwrap().agents().collect::<Vec<_>>(),
            ["k8s", "cost"]
        );

        let unknown = routed.replace("\"cost\"", "\"billing\"");
        let vars = with(&[
            ("AGENTS", TWO_AGENTS),
            ("ONCALL", &unknown),
            ("PHONE_NUMBER_ID", "1"),
            ("ALERT_TEMPLATE", "oncall_alert:en"),
        ]);
        let reason = reason(&vars, "ONCALL");
        assert!(
            reason.contains("\"billing\"")
                && reason.contains("\"k8s\"")
                && reason.contains("\"cost\""),
            "{reason}"
        );
        // Names are matched exactly, as the agents are called.
        let shouting = routed.replace("\"k8s\"", "\"K8S\"");
        let vars = with(&[
            ("AGENTS", TWO_AGENTS),
            ("ONCALL", &shouting),
            ("PHONE_NUMBER_ID", "1"),
            ("ALERT_TEMPLATE", "oncall_alert:en"),
        ]);
        assert!(reason_of(&vars, "ONCALL"));
    }

    #[test]
    fn paging_values_are_checked() {
        for (var, value) in [
            ("PHONE_NUMBER_ID", "+1 415 555 1234"),
            ("PHONE_NUMBER_ID", "phone-id"),
            ("PHONE_NUMBER_ID", "123456789012345678901234567890123"),
            ("ALERT_TEMPLATE", "oncall_alert"),
            ("ALERT_TEMPLATE", "Oncall:en"),
            ("NOTICE_TEMPLATE", "oncall_notice:english"),
            ("PAGE_MIN_INTERVAL_SECS", "3601"),
            ("PAGE_MIN_INTERVAL_SECS", "-1"),
            ("PAGE_MIN_INTERVAL_SECS", "a minute"),
        ] {
            let vars = paging(&[(var, value)]);
            // A later entry wins in the lookup map.
            assert!(reason_of(&vars, var), "{var}={value}");
        }
        let reason = reason(
            &paging(&[("PHONE_NUMBER_ID", "+1 415 555 1234")]),
            "PHONE_NUMBER_ID",
        );
        assert!(
            reason.contains("API Setup page") && !reason.contains("555"),
            "{reason}"
        );
    }

    #[test]
    fn the_environment_size_counts_only_the_functions_own_variables() {
        let lambda_own = [
            ("AWS_SESSION_TOKEN", "x".repeat(3000)),
            ("AWS_LAMBDA_FUNCTION_NAME", "worker".to_owned()),
            ("_HANDLER", "bootstrap".to_owned()),
            ("_X_AMZN_TRACE_ID", "Root=1".to_owned()),
            ("LAMBDA_TASK_ROOT", "/var/task".to_owned()),
            ("TZ", ":UTC".to_owned()),
            ("PATH", "/usr/bin".repeat(100)),
        ];
        let own = [
            ("ALLOWED_SENDERS", "*".to_owned()),
            ("AGENTS", "a".repeat(1000)),
        ];
        let size =
            check_environment_size(lambda_own.iter().chain(own.iter()).map(|(k, v)| (*k, v)))
                .unwrap();
        assert_eq!(size.bytes, "ALLOWED_SENDERS*".len() + "AGENTS".len() + 1000);
        assert!(!size.is_near_limit());
        let near = check_environment_size([("AGENTS", "a".repeat(3500))]).unwrap();
        assert!(near.is_near_limit());
        assert!(
            check_environment_size([("AGENTS", "a".repeat(4090))]).is_ok(),
            "exactly 4096"
        );
    }

    #[test]
    fn an_oversized_environment_names_the_largest_variables_and_the_way_out() {
        let vars = [
            ("AGENTS", "a".repeat(3000)),
            ("ALLOWED_SENDERS", "1".repeat(1100)),
            ("ENVIRONMENTS", "prod".to_owned()),
            ("DISPATCH", "queue".to_owned()),
            ("AWS_SESSION_TOKEN", "t".repeat(3000)),
        ];
        let error = check_environment_size(vars.iter().map(|(k, v)| (*k, v))).unwrap_err();
        let ConfigError::EnvironmentTooLarge {
            total,
            limit,
            largest,
            advice,
        } = &error
        else {
            panic!("{error:?}");
        };
        assert_eq!(*limit, 4096);
        assert_eq!(*total, 3006 + 1115 + 16 + 13);
        assert_eq!(
            largest,
            "AGENTS (3006 bytes), ALLOWED_SENDERS (1115 bytes), ENVIRONMENTS (16 bytes)"
        );
        assert!(
            advice.contains("descriptions") && advice.contains("agent_tokens"),
            "{advice}"
        );
        let message = error.to_string();
        assert!(
            message.contains("4096") && message.contains("AGENTS (3006 bytes)"),
            "{message}"
        );

        let error =
            check_environment_size([("WHATSAPP_ACCESS_TOKEN", "t".repeat(5000))]).unwrap_err();
        assert!(error.to_string().contains("Secrets Manager"), "{error}");
        let error = check_environment_size([("ALLOWED_SENDERS", "1".repeat(5000))]).unwrap_err();
        assert!(
            error.to_string().contains("Shorten ALLOWED_SENDERS"),
            "{error}"
        );
        let error = check_environment_size([("LOCAL_ADDR", "1".repeat(5000))]).unwrap_err();
        assert!(error.to_string().contains("Shorten or remove"), "{error}");
    }

    #[test]
    fn this_process_environment_is_measured() {
        // The test runner's environment is the developer's: only that the check runs.
        let measured = check_process_environment_size();
        assert!(
            measured.is_ok() || matches!(measured, Err(ConfigError::EnvironmentTooLarge { .. }))
        );
    }

    fn approvals<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut vars = MINIMAL.to_vec();
        vars.extend([
            ("APPROVERS", "+14155551234, US.13491208655302741918"),
            ("PHONE_NUMBER_ID", "106540352242922"),
            ("APPROVAL_TEMPLATE", "approval_request:en"),
        ]);
        vars.extend_from_slice(extra);
        vars
    }

    #[test]
    fn approvals_are_off_without_approvers_and_read_with_their_defaults() {
        let config = config_of(&MINIMAL);
        assert_eq!(config.approvers, None);
        assert_eq!(config.approval_expiry, DEFAULT_APPROVAL_EXPIRY);
        let config = config_of(&approvals(&[]));
        assert_eq!(config.approvers.as_ref().map(|a| a.all().len()), Some(2));
        assert_eq!(
            config
                .approval_template
                .as_ref()
                .map(ToString::to_string)
                .as_deref(),
            Some("approval_request:en")
        );
        assert_eq!(config.approval_expiry, Duration::from_secs(900));
        assert_eq!(config.approval_max_expiry, Duration::from_secs(86_400));
        assert!(!config.allow_self_approval);
        assert_eq!(config.approval_retention, Duration::from_secs(90 * 86_400));
        assert_eq!(config.approvals_table, None);
        let config = config_of(&approvals(&[
            ("APPROVAL_EXPIRY_SECS", "300"),
            ("APPROVAL_MAX_EXPIRY_SECS", "3600"),
            ("ALLOW_SELF_APPROVAL", "true"),
            ("APPROVAL_RETENTION_DAYS", "30"),
            ("APPROVALS_TABLE", "approvals"),
        ]));
        assert_eq!(config.approval_expiry, Duration::from_secs(300));
        assert_eq!(config.approval_max_expiry, Duration::from_secs(3600));
        assert!(config.allow_self_approval);
        assert_eq!(config.approval_retention, Duration::from_secs(30 * 86_400));
        assert_eq!(config.approvals_table.as_deref(), Some("approvals"));
    }

    #[test]
    fn approvals_refuse_everyone_and_need_their_template_and_number() {
        let reason = |vars: &[(&str, &str)], var: &str| match config(vars) {
            Err(ConfigError::Invalid { var: named, reason }) if named == var => reason,
            other => panic!("{var}: {other:?}"),
        };
        assert!(reason(&approvals(&[("APPROVERS", "*")]), "APPROVERS").contains("`*`"));
        let mut vars = MINIMAL.to_vec();
        vars.extend([("APPROVERS", "+14155551234"), ("PHONE_NUMBER_ID", "1065")]);
        assert!(reason(&vars, "APPROVAL_TEMPLATE").contains("APPROVERS needs it"));
        let mut vars = MINIMAL.to_vec();
        vars.extend([("APPROVERS", "+14155551234"), ("APPROVAL_TEMPLATE", "a:en")]);
        assert!(reason(&vars, "PHONE_NUMBER_ID").contains("APPROVERS needs it"));
        assert!(
            reason(
                &approvals(&[
                    ("APPROVAL_EXPIRY_SECS", "7200"),
                    ("APPROVAL_MAX_EXPIRY_SECS", "3600")
                ]),
                "APPROVAL_EXPIRY_SECS"
            )
            .contains("above APPROVAL_MAX_EXPIRY_SECS")
        );
        assert!(
            reason(
                &approvals(&[("APPROVAL_EXPIRY_SECS", "10")]),
                "APPROVAL_EXPIRY_SECS"
            )
            .contains("60")
        );
        assert!(
            reason(
                &approvals(&[("ALLOW_SELF_APPROVAL", "maybe")]),
                "ALLOW_SELF_APPROVAL"
            )
            .contains("true or false")
        );
        assert!(
            reason(
                &approvals(&[("APPROVAL_RETENTION_DAYS", "0")]),
                "APPROVAL_RETENTION_DAYS"
            )
            .contains("1 to 3650")
        );
        // The maximum alone below the default expiry lowers the default with it.
        let config = config_of(&approvals(&[("APPROVAL_MAX_EXPIRY_SECS", "300")]));
        assert_eq!(config.approval_expiry, Duration::from_secs(300));
    }
}

//! Configuration from environment variables (README.md, "Configuration"), read once at cold start.

pub use crate::agent::StepFunctionsMode;
use crate::domain::{Allowlist, AllowlistError};
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
    pub agent: AgentBackend,
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
        let agent = match get("AGENT_BACKEND").as_deref().unwrap_or("http") {
            "http" => {
                let url = get("AGENT_URL").ok_or(ConfigError::Missing("AGENT_URL"))?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid("AGENT_URL", "must start with http:// or https://"));
                }
                AgentBackend::Http {
                    url,
                    timeout: agent_timeout,
                }
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
        };

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
            (agent_timeout + LEASE_MARGIN).as_secs(),
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
        })
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
}

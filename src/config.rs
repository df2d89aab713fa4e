//! Configuration from environment variables (DESIGN.md's table), read once at cold start.

use crate::sender::{Allowlist, AllowlistError};
use std::time::Duration;

/// Defaults from DESIGN.md.
pub const DEFAULT_AGENT_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_GRAPH_API_BASE_URL: &str = "https://graph.facebook.com";
pub const DEFAULT_GRAPH_API_VERSION: &str = "v25.0";
pub const DEFAULT_LOCAL_ADDR: &str = "127.0.0.1:3000";
/// Meta sends at most 3 MB per webhook; 4 MiB leaves room for API Gateway's base64.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Graph API calls are small and fast; anything slower is a fault.
pub const GRAPH_TIMEOUT: Duration = Duration::from_secs(10);

/// Which agent backend answers messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentBackend {
    Http { url: String, timeout: Duration },
}

/// Where the webhook runs the agent: inside the webhook invocation, or in a queue worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    Inline,
}

/// Everything the webhook needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub secret_id: Option<String>,
    pub allowlist: Allowlist,
    pub agent: AgentBackend,
    pub dispatch: Dispatch,
    pub graph_api_base_url: String,
    pub graph_api_version: String,
    pub local_addr: String,
    pub max_body_bytes: usize,
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

        let agent = match get("AGENT_BACKEND").as_deref().unwrap_or("http") {
            "http" => {
                let url = get("AGENT_URL").ok_or(ConfigError::Missing("AGENT_URL"))?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid("AGENT_URL", "must start with http:// or https://"));
                }
                let timeout = match get("AGENT_TIMEOUT_SECS") {
                    None => DEFAULT_AGENT_TIMEOUT,
                    Some(secs) => match secs.parse::<u64>() {
                        Ok(secs) if (1..=900).contains(&secs) => Duration::from_secs(secs),
                        _ => return Err(invalid("AGENT_TIMEOUT_SECS", "must be 1-900 seconds")),
                    },
                };
                AgentBackend::Http { url, timeout }
            }
            "stepfunctions" => {
                return Err(invalid(
                    "AGENT_BACKEND",
                    "stepfunctions is not available in this version; use http",
                ));
            }
            other => {
                return Err(invalid(
                    "AGENT_BACKEND",
                    &format!("unknown backend {other:?}"),
                ));
            }
        };

        let dispatch = match get("DISPATCH").as_deref().unwrap_or("inline") {
            "inline" => Dispatch::Inline,
            "queue" => {
                return Err(invalid(
                    "DISPATCH",
                    "queue is not available in this version; use inline",
                ));
            }
            other => return Err(invalid("DISPATCH", &format!("unknown mode {other:?}"))),
        };

        let max_body_bytes = match get("MAX_BODY_BYTES") {
            None => DEFAULT_MAX_BODY_BYTES,
            Some(value) => value
                .parse::<usize>()
                .ok()
                .filter(|bytes| *bytes >= 1024)
                .ok_or_else(|| {
                    invalid("MAX_BODY_BYTES", "must be a byte count of at least 1024")
                })?,
        };

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
            graph_api_base_url,
            graph_api_version: get("GRAPH_API_VERSION")
                .unwrap_or_else(|| DEFAULT_GRAPH_API_VERSION.to_owned()),
            local_addr: get("LOCAL_ADDR").unwrap_or_else(|| DEFAULT_LOCAL_ADDR.to_owned()),
            max_body_bytes,
        })
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
}

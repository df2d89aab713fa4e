//! The function's secrets (app secret, Graph API token, verify token, agent token, alert
//! token): the
//! redacting [`Secret`] type, and loading them once at cold start from Secrets Manager
//! (`WHATSAPP_SECRET_ID`) or, for local runs, from environment variables; and the
//! [`TokenSource`] that re-reads the Graph API token when Meta refuses it.

mod manager;
mod token;

pub use manager::{
    FAILED_REFRESH_REUSE, SecretsManagerToken, TOKEN_REFRESH_REUSE, from_secrets_manager,
};
pub use token::{StaticToken, TokenSource};

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// Environment variable holding the app secret when no secret id is configured.
pub const ENV_APP_SECRET: &str = "WHATSAPP_APP_SECRET";
/// Environment variable holding the Graph API access token when no secret id is configured.
pub const ENV_ACCESS_TOKEN: &str = "WHATSAPP_ACCESS_TOKEN";
/// Environment variable holding the webhook verify token when no secret id is configured.
pub const ENV_VERIFY_TOKEN: &str = "WHATSAPP_VERIFY_TOKEN";
/// Environment variable holding the agent's bearer token when no secret id is configured.
pub const ENV_AGENT_TOKEN: &str = "AGENT_TOKEN";
/// Environment variable holding the bearer token of `POST /alerts` when no secret id is
/// configured.
pub const ENV_ALERT_TOKEN: &str = "ALERT_TOKEN";

/// Keys of the Secrets Manager JSON document.
pub const KEY_APP_SECRET: &str = "app_secret";
pub const KEY_ACCESS_TOKEN: &str = "access_token";
pub const KEY_VERIFY_TOKEN: &str = "verify_token";
pub const KEY_AGENT_TOKEN: &str = "agent_token";
pub const KEY_AGENT_TOKENS: &str = "agent_tokens";
pub const KEY_ALERT_TOKEN: &str = "alert_token";

/// A secret string. Prints as `[redacted]` in `Debug` and `Display`, so it can sit in structs
/// that get logged; the value is only reachable through [`Secret::expose`].
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the one place that must send or verify it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Everything the functions need to talk to Meta and the agent.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Meta app secret: the HMAC key of `X-Hub-Signature-256`. Empty = every POST is refused.
    pub app_secret: Secret,
    /// Graph API access token (system user token) used to send messages.
    pub access_token: Secret,
    /// The token Meta echoes in the webhook verification GET.
    pub verify_token: Secret,
    /// Bearer token for the HTTP agent, if it wants one: the default for every agent
    /// without its own in `agent_tokens`.
    pub agent_token: Option<Secret>,
    /// Each agent's own bearer token, by agent name (`agent_tokens` in the secret JSON), so
    /// that no agent sees another's. An empty token: that agent gets none, not the default.
    pub agent_tokens: BTreeMap<String, Secret>,
    /// The bearer token monitoring systems send to `POST /alerts`. Empty = every alert is
    /// refused with 401.
    pub alert_token: Secret,
}

/// Why the secrets could not be loaded. Messages name secret ids and JSON keys, never values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretsError {
    #[error("secret `{secret_id}` not found in Secrets Manager")]
    NotFound { secret_id: String },
    #[error("access to secret `{secret_id}` denied: {message}")]
    AccessDenied { secret_id: String, message: String },
    #[error("Secrets Manager unreachable while reading `{secret_id}`: {message}")]
    Unreachable { secret_id: String, message: String },
    #[error(
        "Secrets Manager throttled reading `{secret_id}` (gave up after {attempts} attempts): {message}"
    )]
    Throttled {
        secret_id: String,
        attempts: u32,
        message: String,
    },
    #[error("Secrets Manager refused to return `{secret_id}` ({code}): {message}")]
    Service {
        secret_id: String,
        code: String,
        message: String,
    },
    #[error("secret `{secret_id}` has no SecretString (binary secrets are not supported)")]
    NotAString { secret_id: String },
    #[error("secret `{secret_id}` has an empty `{key}`")]
    EmptyKey {
        secret_id: String,
        key: &'static str,
    },
    #[error("re-reading `{secret_id}` failed moments ago, not trying again yet: {message}")]
    RefreshFailed { secret_id: String, message: String },
    #[error("secret is not a JSON object ({0})")]
    NotJsonObject(String),
    #[error("secret JSON lacks the required key `{key}`")]
    MissingKey { key: &'static str },
    #[error("secret JSON key `{key}` must be a string, found {found}")]
    WrongType {
        key: &'static str,
        found: &'static str,
    },
    #[error("secret JSON key `agent_tokens` must map agent names to strings; `{agent}` is {found}")]
    WrongAgentTokenType { agent: String, found: &'static str },
}

impl Secrets {
    /// Reads `WHATSAPP_APP_SECRET`, `WHATSAPP_ACCESS_TOKEN`, `WHATSAPP_VERIFY_TOKEN`,
    /// `AGENT_TOKEN` and `ALERT_TOKEN` through `lookup` (unset = empty; an empty agent token =
    /// none).
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| Secret::from(lookup(name).unwrap_or_default());
        let agent_token = get(ENV_AGENT_TOKEN);
        let secrets = Self {
            app_secret: get(ENV_APP_SECRET),
            access_token: get(ENV_ACCESS_TOKEN),
            verify_token: get(ENV_VERIFY_TOKEN),
            agent_token: (!agent_token.is_empty()).then_some(agent_token),
            agent_tokens: BTreeMap::new(),
            alert_token: get(ENV_ALERT_TOKEN),
        };
        secrets.log_gaps("environment");
        secrets
    }

    /// The bearer token to send to the agent named `agent`: its own from `agent_tokens`
    /// (none if that one is empty), else the default `agent_token`.
    pub fn agent_token_for(&self, agent: &str) -> Option<&Secret> {
        match self.agent_tokens.get(agent) {
            Some(own) if own.is_empty() => None,
            Some(own) => Some(own),
            None => self.agent_token.as_ref(),
        }
    }

    /// Parses the Secrets Manager document: `app_secret`, `access_token` and `verify_token` are
    /// required strings (empty allowed), `agent_token` an optional string (empty or null = none),
    /// `agent_tokens` an optional object of agent name → token string (null entries skipped),
    /// `alert_token` an optional string (absent or null = empty).
    pub fn from_json(text: &str) -> Result<Self, SecretsError> {
        // Parse into a `Value` first: serde's syntax errors carry a position, never the input.
        let value: Value = serde_json::from_str(text).map_err(|error| {
            SecretsError::NotJsonObject(format!(
                "invalid JSON at line {} column {}",
                error.line(),
                error.column()
            ))
        })?;
        let Value::Object(object) = value else {
            return Err(SecretsError::NotJsonObject(format!(
                "found {}",
                type_name(&value)
            )));
        };
        let agent_token = optional_string(&object, KEY_AGENT_TOKEN)?.filter(|s| !s.is_empty());
        Ok(Self {
            app_secret: required_string(&object, KEY_APP_SECRET)?.into(),
            access_token: required_string(&object, KEY_ACCESS_TOKEN)?.into(),
            verify_token: required_string(&object, KEY_VERIFY_TOKEN)?.into(),
            agent_token: agent_token.map(Secret::from),
            agent_tokens: agent_tokens(&object)?,
            alert_token: optional_string(&object, KEY_ALERT_TOKEN)?
                .unwrap_or_default()
                .into(),
        })
    }

    /// Logs (names only) the secrets that are empty and what that breaks.
    fn log_gaps(&self, source: &'static str) {
        if self.app_secret.is_empty() {
            tracing::error!(
                source,
                "the app secret is empty: every webhook POST will be refused with 401"
            );
        }
        if self.access_token.is_empty() {
            tracing::warn!(
                source,
                "the Graph API access token is empty: replies cannot be sent"
            );
        }
        if self.verify_token.is_empty() {
            tracing::warn!(
                source,
                "the verify token is empty: webhook verification will fail"
            );
        }
    }
}

fn required_string(object: &Map<String, Value>, key: &'static str) -> Result<String, SecretsError> {
    optional_string(object, key)?.ok_or(SecretsError::MissingKey { key })
}

/// `None` when the key is absent or null; an error (naming the key, not the value) otherwise
/// unless the value is a string.
fn optional_string(
    object: &Map<String, Value>,
    key: &'static str,
) -> Result<Option<String>, SecretsError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(other) => Err(SecretsError::WrongType {
            key,
            found: type_name(other),
        }),
    }
}

/// `agent_tokens`: absent or null = none; otherwise an object of strings (a null entry is
/// skipped). Errors name the agent (scrubbed), never a token.
fn agent_tokens(object: &Map<String, Value>) -> Result<BTreeMap<String, Secret>, SecretsError> {
    let tokens = match object.get(KEY_AGENT_TOKENS) {
        None | Some(Value::Null) => return Ok(BTreeMap::new()),
        Some(Value::Object(tokens)) => tokens,
        Some(other) => {
            return Err(SecretsError::WrongType {
                key: KEY_AGENT_TOKENS,
                found: type_name(other),
            });
        }
    };
    let mut read = BTreeMap::new();
    for (agent, token) in tokens {
        match token {
            Value::Null => {}
            Value::String(token) => {
                read.insert(agent.clone(), Secret::from(token.as_str()));
            }
            other => {
                return Err(SecretsError::WrongAgentTokenType {
                    agent: crate::redact::scrub_within(agent, 40),
                    found: type_name(other),
                });
            }
        }
    }
    Ok(read)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{"app_secret":"s3cr3t-app","access_token":"EAAG-token","verify_token":"verify-me","agent_token":"agent-bearer","alert_token":"alert-bearer"}"#;

    #[test]
    fn from_json_reads_all_five_fields() {
        let secrets = Secrets::from_json(FULL).unwrap();
        assert_eq!(secrets.app_secret.expose(), "s3cr3t-app");
        assert_eq!(secrets.access_token.expose(), "EAAG-token");
        assert_eq!(secrets.verify_token.expose(), "verify-me");
        assert_eq!(
            secrets.agent_token.as_ref().map(Secret::expose),
            Some("agent-bearer")
        );
        assert_eq!(secrets.alert_token.expose(), "alert-bearer");
    }

    #[test]
    fn from_json_leaves_an_absent_or_null_alert_token_empty() {
        for alert in [r#","alert_token":null"#, r#","alert_token":"""#, ""] {
            let text =
                format!(r#"{{"app_secret":"a","access_token":"b","verify_token":"c"{alert}}}"#);
            assert!(
                Secrets::from_json(&text).unwrap().alert_token.is_empty(),
                "{text}"
            );
        }
        let error = Secrets::from_json(
            r#"{"app_secret":"a","access_token":"b","verify_token":"c","alert_token":12345}"#,
        )
        .unwrap_err();
        assert!(matches!(
            error,
            SecretsError::WrongType {
                key: "alert_token",
                found: "a number"
            }
        ));
        assert!(!error.to_string().contains("12345"));
    }

    #[test]
    fn from_json_treats_empty_or_null_agent_token_as_none() {
        for agent in [r#","agent_token":"""#, r#","agent_token":null"#, ""] {
            let text =
                format!(r#"{{"app_secret":"a","access_token":"b","verify_token":"c"{agent}}}"#);
            assert!(
                Secrets::from_json(&text).unwrap().agent_token.is_none(),
                "{text}"
            );
        }
    }

    #[test]
    fn from_json_allows_empty_required_values() {
        let secrets =
            Secrets::from_json(r#"{"app_secret":"","access_token":"","verify_token":""}"#).unwrap();
        assert!(secrets.app_secret.is_empty());
    }

    #[test]
    fn from_json_names_the_missing_key_and_no_value() {
        let error = Secrets::from_json(r#"{"app_secret":"s3cr3t-app","verify_token":"verify-me"}"#)
            .unwrap_err();
        assert!(matches!(
            error,
            SecretsError::MissingKey {
                key: "access_token"
            }
        ));
        let message = error.to_string();
        assert!(message.contains("access_token"), "{message}");
        assert!(!message.contains("s3cr3t-app") && !message.contains("verify-me"));
    }

    #[test]
    fn from_json_rejects_wrong_types_without_echoing_them() {
        let error =
            Secrets::from_json(r#"{"app_secret":12345,"access_token":"b","verify_token":"c"}"#)
                .unwrap_err();
        assert!(matches!(
            error,
            SecretsError::WrongType {
                key: "app_secret",
                found: "a number"
            }
        ));
        assert!(!error.to_string().contains("12345"));
        let error = Secrets::from_json(
            r#"{"app_secret":"a","access_token":"b","verify_token":"c","agent_token":["x"]}"#,
        )
        .unwrap_err();
        assert!(matches!(
            error,
            SecretsError::WrongType {
                key: "agent_token",
                ..
            }
        ));
    }

    #[test]
    fn from_json_rejects_non_objects_without_echoing_them() {
        for text in [
            "plain-text-secret-value",
            "[\"a\"]",
            "\"quoted-secret\"",
            "",
        ] {
            let error = Secrets::from_json(text).unwrap_err();
            assert!(
                matches!(error, SecretsError::NotJsonObject(_)),
                "{text}: {error}"
            );
            let message = error.to_string();
            assert!(!message.contains("secret-value") && !message.contains("quoted-secret"));
        }
    }

    #[test]
    fn from_env_reads_the_five_variables() {
        let secrets = Secrets::from_env(|name| {
            Some(
                match name {
                    ENV_APP_SECRET => "app",
                    ENV_ACCESS_TOKEN => "access",
                    ENV_VERIFY_TOKEN => "verify",
                    ENV_AGENT_TOKEN => "agent",
                    ENV_ALERT_TOKEN => "alert",
                    _ => return None,
                }
                .to_owned(),
            )
        });
        assert_eq!(secrets.app_secret.expose(), "app");
        assert_eq!(secrets.access_token.expose(), "access");
        assert_eq!(secrets.verify_token.expose(), "verify");
        assert_eq!(
            secrets
                .agent_token
                .map(|t| t.expose().to_owned())
                .as_deref(),
            Some("agent")
        );
        assert_eq!(secrets.alert_token.expose(), "alert");
    }

    #[test]
    fn from_env_leaves_unset_values_empty() {
        let secrets = Secrets::from_env(|name| (name == ENV_AGENT_TOKEN).then(String::new));
        assert!(secrets.app_secret.is_empty());
        assert!(secrets.access_token.is_empty());
        assert!(secrets.verify_token.is_empty());
        assert!(secrets.agent_token.is_none());
        assert!(secrets.alert_token.is_empty());
    }

    #[test]
    fn debug_and_display_redact_every_secret() {
        let secrets = Secrets::from_json(FULL).unwrap();
        let printed = format!(
            "{secrets:?} {} {:?}",
            secrets.app_secret, secrets.agent_token
        );
        for value in [
            "s3cr3t-app",
            "EAAG-token",
            "verify-me",
            "agent-bearer",
            "alert-bearer",
        ] {
            assert!(!printed.contains(value), "{printed}");
        }
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn each_agent_gets_its_own_token_else_the_default() {
        let secrets = Secrets::from_json(
            r#"{"app_secret":"a","access_token":"b","verify_token":"c","agent_token":"shared-token",
                "agent_tokens":{"k8s":"k8s-token","cost":"","gone":null}}"#,
        )
        .unwrap();
        assert_eq!(
            secrets.agent_token_for("k8s").map(Secret::expose),
            Some("k8s-token")
        );
        assert!(
            secrets.agent_token_for("cost").is_none(),
            "empty: no token at all"
        );
        assert_eq!(
            secrets.agent_token_for("gone").map(Secret::expose),
            Some("shared-token"),
            "a null entry is no entry"
        );
        assert_eq!(
            secrets.agent_token_for("other").map(Secret::expose),
            Some("shared-token")
        );
        let printed = format!("{secrets:?}");
        assert!(!printed.contains("k8s-token") && !printed.contains("shared-token"));
        assert!(
            printed.contains("k8s"),
            "agent names are no secret: {printed}"
        );

        let without = Secrets::from_json(FULL).unwrap();
        assert!(without.agent_tokens.is_empty());
        assert_eq!(
            without.agent_token_for("default").map(Secret::expose),
            Some("agent-bearer")
        );
    }

    #[test]
    fn agent_tokens_of_the_wrong_type_are_named_without_their_value() {
        let base = r#""app_secret":"a","access_token":"b","verify_token":"c""#;
        let error =
            Secrets::from_json(&format!(r#"{{{base},"agent_tokens":"tok-123"}}"#)).unwrap_err();
        assert!(matches!(
            error,
            SecretsError::WrongType {
                key: "agent_tokens",
                found: "a string"
            }
        ));
        assert!(!error.to_string().contains("tok-123"));
        let error = Secrets::from_json(&format!(r#"{{{base},"agent_tokens":{{"k8s":12345}}}}"#))
            .unwrap_err();
        assert!(
            matches!(&error, SecretsError::WrongAgentTokenType { agent, found: "a number" } if agent == "k8s"),
            "{error}"
        );
        assert!(!error.to_string().contains("12345"));
    }

    #[test]
    fn without_a_secret_id_the_environment_is_read() {
        let secrets = Secrets::from_env(|name| (name == ENV_VERIFY_TOKEN).then(|| "v".to_owned()));
        assert_eq!(secrets.verify_token.expose(), "v");
    }
}

//! The Secrets Manager adapter: reads the JSON secret named by `WHATSAPP_SECRET_ID` at cold
//! start, and re-reads its `access_token` when Meta refuses the one in use
//! ([`SecretsManagerToken`]). The only place `aws_sdk_secretsmanager` types appear; SDK errors
//! become [`SecretsError`] here.

use super::{KEY_ACCESS_TOKEN, Secret, Secrets, SecretsError, TokenSource};
use crate::BoxFuture;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Error codes that mean "you may not read this secret" (IAM, KMS, or credentials).
const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDeniedException",
    "DecryptionFailure",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
];

/// Error codes of a throttled call (the SDK retried them before giving up).
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "Throttling",
];

/// How long a token re-read (or a failed attempt at one) is handed to every caller asking
/// again instead of reading the secret again: many sends refused at once cause one read.
pub const TOKEN_REFRESH_REUSE: Duration = Duration::from_secs(30);
/// How long a failed re-read is handed back without trying again (at most the reuse window):
/// short, so a brief Secrets Manager outage does not outlive itself.
pub const FAILED_REFRESH_REUSE: Duration = Duration::from_secs(5);

/// Reads `secret_id` (name or ARN) and parses it with [`Secrets::from_json`]. Bounded in time:
/// the SDK's retries from [`crate::aws::retry_config`] within
/// [`crate::aws::quick_call_timeouts`].
pub async fn from_secrets_manager(
    config: &aws_config::SdkConfig,
    secret_id: &str,
) -> Result<Secrets, SecretsError> {
    let secrets = fetch(&client(config), secret_id).await?;
    secrets.log_gaps("secrets-manager");
    tracing::info!(
        secret_id,
        agent_token = secrets.agent_token.is_some(),
        "secrets loaded from Secrets Manager"
    );
    Ok(secrets)
}

/// A Secrets Manager client whose calls are bounded by the quick-call timeouts.
fn client(config: &aws_config::SdkConfig) -> Client {
    let timeouts = crate::aws::quick_call_timeouts(config.timeout_config());
    let config = aws_sdk_secretsmanager::config::Builder::from(config)
        .timeout_config(timeouts)
        .build();
    Client::from_conf(config)
}

/// One `GetSecretValue`, parsed; failures are logged with the secret id and the reason.
async fn fetch(client: &Client, secret_id: &str) -> Result<Secrets, SecretsError> {
    let started = Instant::now();
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|error| {
            let error = convert(client, secret_id, error);
            tracing::error!(
                secret_id,
                %error,
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "could not read the secret from Secrets Manager"
            );
            error
        })?;
    let Some(text) = output.secret_string() else {
        return Err(SecretsError::NotAString {
            secret_id: secret_id.to_owned(),
        });
    };
    Secrets::from_json(text).inspect_err(|error| {
        tracing::error!(secret_id, %error, "secret has the wrong shape");
    })
}

/// Keeps the SDK error's code and message, not its type.
fn convert<R>(
    client: &Client,
    secret_id: &str,
    error: SdkError<GetSecretValueError, R>,
) -> SecretsError
where
    R: std::fmt::Debug,
{
    let secret_id = secret_id.to_owned();
    let attempts = client
        .config()
        .retry_config()
        .map_or(1, |retry| retry.max_attempts());
    let Some(service) = error.as_service_error() else {
        // Dispatch failure, timeout, unreadable response: nothing answered us usefully.
        return SecretsError::Unreachable {
            secret_id,
            message: format!(
                "{} (up to {attempts} attempts)",
                DisplayErrorContext(&error)
            ),
        };
    };
    if service.is_resource_not_found_exception() {
        return SecretsError::NotFound { secret_id };
    }
    let code = service.code().unwrap_or("Unknown").to_owned();
    let message = service
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| DisplayErrorContext(&error).to_string());
    if ACCESS_DENIED_CODES.contains(&code.as_str()) {
        return SecretsError::AccessDenied {
            secret_id,
            message: format!("{code}: {message}"),
        };
    }
    if THROTTLING_CODES.contains(&code.as_str()) {
        return SecretsError::Throttled {
            secret_id,
            attempts,
            message: format!("{code}: {message}"),
        };
    }
    SecretsError::Service {
        secret_id,
        code,
        message,
    }
}

/// The Graph API access token from Secrets Manager: starts from the token read at cold start
/// and re-reads the secret's `access_token` when asked. Refreshes run one at a time; callers
/// within [`TOKEN_REFRESH_REUSE`] of the last one get its result without another read.
pub struct SecretsManagerToken {
    client: Client,
    secret_id: String,
    token: Mutex<Secret>,
    /// Held across a refresh: when and how the last one ended.
    last_refresh: tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>,
    reuse: Duration,
}

impl SecretsManagerToken {
    /// `initial` is the token read at cold start; `config` is the shared SDK configuration.
    pub fn new(
        config: &aws_config::SdkConfig,
        secret_id: impl Into<String>,
        initial: Secret,
    ) -> Self {
        Self {
            client: client(config),
            secret_id: secret_id.into(),
            token: Mutex::new(initial),
            last_refresh: tokio::sync::Mutex::new(None),
            reuse: TOKEN_REFRESH_REUSE,
        }
    }

    /// Changes how long a refresh is reused (tests).
    pub fn with_reuse_window(mut self, reuse: Duration) -> Self {
        self.reuse = reuse;
        self
    }

    fn reuse_window(&self, succeeded: bool) -> Duration {
        if succeeded {
            self.reuse
        } else {
            self.reuse.min(FAILED_REFRESH_REUSE)
        }
    }

    async fn reread(&self) -> Result<Secret, SecretsError> {
        let secrets = fetch(&self.client, &self.secret_id).await?;
        if secrets.access_token.is_empty() {
            let error = SecretsError::EmptyKey {
                secret_id: self.secret_id.clone(),
                key: KEY_ACCESS_TOKEN,
            };
            tracing::error!(secret_id = %self.secret_id, %error, "re-read access token is empty: keeping the one in use");
            return Err(error);
        }
        Ok(secrets.access_token)
    }
}

impl TokenSource for SecretsManagerToken {
    fn current(&self) -> Secret {
        self.token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn refresh(&self) -> BoxFuture<'_, Result<Secret, SecretsError>> {
        Box::pin(async move {
            let mut last = self.last_refresh.lock().await;
            if let Some((at, outcome)) = last.as_ref()
                && at.elapsed() < self.reuse_window(outcome.is_ok())
            {
                tracing::debug!(secret_id = %self.secret_id, "access token was re-read moments ago: reusing that");
                return match outcome {
                    Ok(()) => Ok(self.current()),
                    Err(message) => Err(SecretsError::RefreshFailed {
                        secret_id: self.secret_id.clone(),
                        message: message.clone(),
                    }),
                };
            }
            let result = self.reread().await;
            // A failure was logged where it happened; the token in use stays.
            if let Ok(token) = &result {
                let mut current = self.token.lock().unwrap_or_else(PoisonError::into_inner);
                let changed = current.expose() != token.expose();
                *current = token.clone();
                tracing::info!(secret_id = %self.secret_id, changed, "access token re-read from Secrets Manager");
            }
            *last = Some((
                Instant::now(),
                result.as_ref().map(|_| ()).map_err(ToString::to_string),
            ));
            result
        })
    }
}

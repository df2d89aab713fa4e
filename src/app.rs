//! Cold-start wiring: configuration and secrets in, the webhook app out. The binaries call
//! this once and keep the result for every invocation.

use crate::agent::{Agent, HttpAgent};
use crate::config::{AgentBackend, Config, ConfigError, GRAPH_TIMEOUT};
use crate::graph::GraphClient;
use crate::idempotency::MemoryIdempotency;
use crate::pipeline::Pipeline;
use crate::secrets::{self, Secrets, SecretsError};
use crate::webhook::WebhookApp;
use std::sync::Arc;

/// Why the function could not start. Printed once; the Lambda init fails loudly.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("secrets: {0}")]
    Secrets(#[from] SecretsError),
}

/// Builds the webhook app from validated configuration and loaded secrets.
pub fn webhook_app(config: &Config, secrets: Secrets) -> WebhookApp {
    let agent: Arc<dyn Agent> = match &config.agent {
        AgentBackend::Http { url, timeout } => Arc::new(HttpAgent::new(
            url.clone(),
            secrets.agent_token.clone(),
            *timeout,
        )),
    };
    let messenger = Arc::new(GraphClient::new(
        &config.graph_api_base_url,
        &config.graph_api_version,
        secrets.access_token.clone(),
        GRAPH_TIMEOUT,
    ));
    let pipeline = Pipeline {
        agent,
        messenger,
        idempotency: Arc::new(MemoryIdempotency::default()),
    };
    WebhookApp::new(
        secrets,
        config.allowlist.clone(),
        pipeline,
        config.max_body_bytes,
    )
}

/// Reads the environment, loads the secrets (Secrets Manager when `WHATSAPP_SECRET_ID` is set)
/// and builds the webhook app. Logs what it configured, never a secret.
pub async fn webhook_from_env() -> Result<(WebhookApp, Config), StartupError> {
    let config = Config::from_env()?;
    let secrets =
        secrets::load(config.secret_id.as_deref(), |name| std::env::var(name).ok()).await?;
    let backend = match &config.agent {
        AgentBackend::Http { timeout, .. } => format!("http (timeout {}s)", timeout.as_secs()),
    };
    tracing::info!(
        allowlist_entries = config.allowlist.len(),
        allow_everyone = config.allowlist.allows_everyone(),
        agent = %backend,
        dispatch = ?config.dispatch,
        graph_api_version = %config.graph_api_version,
        secrets_from = if config.secret_id.is_some() { "secrets-manager" } else { "environment" },
        "webhook configured"
    );
    Ok((webhook_app(&config, secrets), config))
}

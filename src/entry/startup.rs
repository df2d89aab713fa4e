//! Cold-start wiring: configuration, secrets and one shared AWS SDK configuration in; the
//! webhook app or the worker out. The binaries call this once and keep the result for every
//! invocation. AWS clients are only built when the configuration needs them.

use crate::agent::{Agent, Agents, HttpAgent, NamedAgent, StepFunctionsAgent};
use crate::alerts::paging::{Paging, PagingConfig};
use crate::approvals::engine::{Approvals, ApprovalsConfig};
use crate::approvals::{SfnCallbacks, TaskCallbacks};
use crate::config::{AgentBackend, AgentSpec, Config, ConfigError, Dispatch, GRAPH_TIMEOUT};
use crate::graph::GraphClient;
use crate::idempotency::{DynamoIdempotency, IdempotencyStore, MemoryIdempotency};
use crate::pipeline::Pipeline;
use crate::queue::SqsQueue;
use crate::records::RecordStore;
use crate::records::{DynamoRecords, MemoryRecords};
use crate::secrets::{self, Secrets, SecretsError};
use crate::sessions::Notifier;
use crate::sessions::{Conversations, DynamoSessions, MemorySessions, SessionStore};
use crate::timers::{LocalTimers, SqsTimers, Timer, Timers};
use crate::webhook::{Dispatcher, WebhookApp};
use crate::worker::Worker;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// Why the function could not start. Printed once; the Lambda init fails loudly.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("secrets: {0}")]
    Secrets(#[from] SecretsError),
    #[error("{0} needs AWS, but no AWS configuration was loaded")]
    NoAws(&'static str),
}

/// Everything read at cold start.
pub struct Env {
    pub config: Config,
    pub secrets: Secrets,
    /// Built once when something needs AWS (secret, queue, table, state machine).
    pub aws: Option<aws_config::SdkConfig>,
}

impl Env {
    /// Reads the environment, builds the AWS configuration if needed and loads the secrets
    /// (Secrets Manager when `WHATSAPP_SECRET_ID` is set, reusing that configuration).
    pub async fn load() -> Result<Self, StartupError> {
        let started = Instant::now();
        let config = Config::from_env()?;
        // Lambda's 4 KB for environment variables: inside Lambda only (a developer's shell
        // holds many more variables than a function's configuration).
        if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
            let size = crate::config::check_process_environment_size()?;
            if size.is_near_limit() {
                tracing::warn!(
                    bytes = size.bytes,
                    limit = size.limit,
                    "environment variables are close to Lambda's 4 KB limit"
                );
            }
        }
        let aws = if needs_aws(&config) {
            Some(crate::aws::sdk_config().await)
        } else {
            None
        };
        let aws_ready = Instant::now();
        let secrets = match (&config.secret_id, &aws) {
            (Some(id), Some(aws)) => secrets::from_secrets_manager(aws, id).await?,
            _ => Secrets::from_env(|name| std::env::var(name).ok()),
        };
        // Message ids are logged as hashes keyed from the app secret: the same key in the
        // webhook and the worker, so one message can be followed through both.
        crate::domain::init_log_key(secrets.app_secret.expose());
        let timings = InitTimings {
            aws_config: aws_ready - started,
            secrets: aws_ready.elapsed(),
        };
        log_configuration(&config, &timings);
        Ok(Self {
            config,
            secrets,
            aws,
        })
    }

    /// The webhook: in queue mode it only needs the queue; inline, the whole pipeline.
    pub fn into_webhook(self) -> Result<WebhookApp, StartupError> {
        let dispatcher = match &self.config.dispatch {
            Dispatch::Inline => Dispatcher::Inline(self.pipeline()?),
            Dispatch::Queue { queue_url } => Dispatcher::Queue(Arc::new(SqsQueue::new(
                self.aws("JOB_QUEUE_URL")?,
                queue_url,
            ))),
        };
        let alert_token = self.secrets.alert_token.clone();
        let app = WebhookApp::new(
            self.secrets,
            self.config.allowlist.clone(),
            dispatcher,
            self.config.max_body_bytes,
        );
        // The templates this deployment sends: Meta pausing one is an ERROR in the logs.
        let watched = [
            &self.config.alert_template,
            &self.config.approval_template,
            &self.config.notice_template,
            &self.config.reengage_template,
        ]
        .into_iter()
        .flatten()
        .map(|template| format!("{}:{}", template.name, template.language))
        .collect();
        let mut app = app.watching_templates(watched);
        if self.config.approvers.is_some() {
            app = app.with_approvals();
        }
        Ok(match &self.config.oncall {
            Some(oncall) => app.with_paging(oncall.clone(), alert_token),
            None => app,
        })
    }

    /// The queue worker (also the target of Step Functions "deliver" events).
    pub fn into_worker(self) -> Result<Worker, StartupError> {
        let worker = Worker::new(self.pipeline()?, self.config.max_receive_count);
        Ok(match (&self.config.dispatch, &self.aws) {
            // The worker schedules its own retries on the job queue (ChangeMessageVisibility).
            (Dispatch::Queue { queue_url }, Some(aws)) => {
                worker.with_redelivery(Arc::new(SqsQueue::new(aws, queue_url)))
            }
            _ => worker,
        })
    }

    /// One agent's port: its own bearer token (`agent_tokens`), else `agent_token`.
    fn agent(&self, spec: &AgentSpec) -> Result<Arc<dyn Agent>, StartupError> {
        Ok(match &spec.backend {
            AgentBackend::Http { url, timeout } => Arc::new(HttpAgent::new(
                url.clone(),
                self.secrets.agent_token_for(&spec.name).cloned(),
                *timeout,
            )),
            AgentBackend::StepFunctions {
                state_machine_arn,
                mode,
            } => Arc::new(StepFunctionsAgent::new(
                self.aws("STATE_MACHINE_ARN")?,
                state_machine_arn.clone(),
                *mode,
            )),
        })
    }

    /// Every conversation: the agents, the environments, the history and its store.
    fn conversations(&self) -> Result<Conversations, StartupError> {
        let agents = self
            .config
            .agents
            .iter()
            .map(|spec| {
                Ok(NamedAgent {
                    name: spec.name.clone(),
                    description: spec.description.clone(),
                    agent: self.agent(spec)?,
                })
            })
            .collect::<Result<Vec<_>, StartupError>>()?;
        // The configuration refuses an empty list and an unknown default already.
        let agents = Agents::new(agents, Some(&self.config.default_agent)).ok_or_else(|| {
            ConfigError::Invalid {
                var: "DEFAULT_AGENT",
                reason: "names none of the agents".to_owned(),
            }
        })?;
        let store: Arc<dyn SessionStore> = match &self.config.sessions_table {
            Some(table) => Arc::new(DynamoSessions::new(
                self.aws("SESSIONS_TABLE")?,
                table,
                self.config.session_ttl,
            )),
            None => Arc::new(MemorySessions::new(self.config.session_ttl)),
        };
        Ok(Conversations::new(
            store,
            agents,
            self.config.environments.clone(),
            self.config.history_turns,
            self.config.reengage_template.clone(),
        ))
    }

    /// The ports one message needs, from configuration.
    pub fn pipeline(&self) -> Result<Pipeline, StartupError> {
        let conversations = self.conversations()?;
        // The Graph API token: re-read from Secrets Manager when Meta refuses it (rotation).
        let tokens: Arc<dyn secrets::TokenSource> = match (&self.config.secret_id, &self.aws) {
            (Some(secret_id), Some(aws)) => Arc::new(secrets::SecretsManagerToken::new(
                aws,
                secret_id.clone(),
                self.secrets.access_token.clone(),
            )),
            _ => Arc::new(secrets::StaticToken::new(self.secrets.access_token.clone())),
        };
        let messenger = Arc::new(GraphClient::with_token_source(
            &self.config.graph_api_base_url,
            &self.config.graph_api_version,
            tokens,
            GRAPH_TIMEOUT,
        ));
        let idempotency: Arc<dyn IdempotencyStore> = match &self.config.idempotency_table {
            Some(table) => Arc::new(DynamoIdempotency::new(
                self.aws("IDEMPOTENCY_TABLE")?,
                table,
            )),
            None => Arc::new(MemoryIdempotency::default()),
        };
        let pipeline = Pipeline::conversing(conversations, messenger.clone(), idempotency)
            .with_lease(self.config.lease);
        let Some((timers, local)) = self.timers()? else {
            return Ok(pipeline);
        };
        let mut pipeline = pipeline;
        if let Some(paging) = self.paging(&pipeline, messenger.clone(), timers.clone())? {
            pipeline = pipeline.with_paging(paging);
        }
        if let Some(approvals) = self.approvals(&pipeline, messenger, timers)? {
            pipeline = pipeline.with_approvals(approvals);
        }
        if let Some(mut due) = local {
            tracing::warn!(
                "no TIMER_QUEUE_URL: escalation and approval timers run in this process (local runs only; they die with it)"
            );
            let firing = pipeline.clone();
            tokio::spawn(async move {
                while let Some(timer) = due.recv().await {
                    firing.fire_timer(&timer).await;
                }
            });
        }
        Ok(pipeline)
    }

    /// The timers paging and approvals share, when either is on: `TIMER_QUEUE_URL`, else in
    /// process (local runs only: refused inside Lambda), with the channel they come due on.
    #[allow(clippy::type_complexity)]
    fn timers(
        &self,
    ) -> Result<Option<(Arc<dyn Timers>, Option<UnboundedReceiver<Timer>>)>, StartupError> {
        let config = &self.config;
        if config.oncall.is_none() && config.approvers.is_none() {
            return Ok(None);
        }
        if let Some(url) = &config.timer_queue_url {
            let timers: Arc<dyn Timers> =
                Arc::new(SqsTimers::new(self.aws("TIMER_QUEUE_URL")?, url));
            return Ok(Some((timers, None)));
        }
        if in_lambda() {
            let (who, timer) = if config.oncall.is_some() {
                ("paging (ONCALL)", "escalation")
            } else {
                ("approvals (APPROVERS)", "expiry")
            };
            return Err(ConfigError::Invalid {
                var: "TIMER_QUEUE_URL",
                reason: format!("{who} inside Lambda needs the timer queue: an in-process {timer} timer dies with the function's instance"),
            }
            .into());
        }
        let (timers, due) = LocalTimers::channel();
        Ok(Some((Arc::new(timers), Some(due))))
    }

    /// The paging engine when `ONCALL` is set: its table (`ALERTS_TABLE`, else in memory).
    fn paging(
        &self,
        pipeline: &Pipeline,
        messenger: Arc<GraphClient>,
        timers: Arc<dyn Timers>,
    ) -> Result<Option<Arc<Paging>>, StartupError> {
        let config = &self.config;
        let Some(oncall) = &config.oncall else {
            return Ok(None);
        };
        // The configuration requires both with ONCALL.
        let (Some(from), Some(alert_template)) = (&config.phone_number_id, &config.alert_template)
        else {
            return Err(ConfigError::Invalid {
                var: "ONCALL",
                reason: "needs PHONE_NUMBER_ID and ALERT_TEMPLATE".to_owned(),
            }
            .into());
        };
        let store: Arc<dyn RecordStore> = match &config.alerts_table {
            Some(table) => Arc::new(DynamoRecords::new(self.aws("ALERTS_TABLE")?, table)),
            None => Arc::new(MemoryRecords::new()),
        };
        let paging_config = PagingConfig {
            oncall: oncall.clone(),
            from: from.clone(),
            alert_template: alert_template.clone(),
            notice_template: config.notice_template.clone(),
            min_interval: config.page_min_interval,
        };
        Ok(Some(Arc::new(Paging::new(
            paging_config,
            store,
            timers,
            messenger,
            pipeline.shared_conversations(),
        ))))
    }

    /// The approvals engine when `APPROVERS` is set: its table (`APPROVALS_TABLE`, else in
    /// memory), and Step Functions' task callbacks when there is an AWS configuration.
    fn approvals(
        &self,
        pipeline: &Pipeline,
        messenger: Arc<GraphClient>,
        timers: Arc<dyn Timers>,
    ) -> Result<Option<Arc<Approvals>>, StartupError> {
        let config = &self.config;
        let Some(approvers) = &config.approvers else {
            return Ok(None);
        };
        // The configuration requires both with APPROVERS.
        let (Some(from), Some(template)) = (&config.phone_number_id, &config.approval_template)
        else {
            return Err(ConfigError::Invalid {
                var: "APPROVERS",
                reason: "needs PHONE_NUMBER_ID and APPROVAL_TEMPLATE".to_owned(),
            }
            .into());
        };
        let store: Arc<dyn RecordStore> = match &config.approvals_table {
            Some(table) => Arc::new(DynamoRecords::new(self.aws("APPROVALS_TABLE")?, table)),
            None => Arc::new(MemoryRecords::new()),
        };
        let names = config
            .oncall
            .as_ref()
            .map(|oncall| oncall.names())
            .unwrap_or_default();
        let approvals_config = ApprovalsConfig {
            approvers: approvers.clone(),
            from: from.clone(),
            template: template.clone(),
            default_expiry: config.approval_expiry,
            max_expiry: config.approval_max_expiry,
            allow_self: config.allow_self_approval,
            retention: config.approval_retention,
            names,
        };
        let callbacks: Option<Arc<dyn TaskCallbacks>> = self
            .aws
            .as_ref()
            .map(|aws| Arc::new(SfnCallbacks::new(aws)) as Arc<dyn TaskCallbacks>);
        let messenger: Arc<dyn crate::graph::Messenger> = messenger;
        let notifier = Notifier::new(
            messenger,
            pipeline.shared_conversations(),
            config.notice_template.clone(),
        );
        Ok(Some(Arc::new(Approvals::new(
            approvals_config,
            store,
            timers,
            notifier,
            callbacks,
        ))))
    }

    fn aws(&self, what: &'static str) -> Result<&aws_config::SdkConfig, StartupError> {
        self.aws.as_ref().ok_or(StartupError::NoAws(what))
    }
}

/// Whether this process runs inside Lambda.
fn in_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
        || std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
}

fn needs_aws(config: &Config) -> bool {
    config.secret_id.is_some()
        || config.idempotency_table.is_some()
        || config.sessions_table.is_some()
        || config.alerts_table.is_some()
        || config.timer_queue_url.is_some()
        || matches!(config.dispatch, Dispatch::Queue { .. })
        || config
            .agents
            .iter()
            .any(|agent| matches!(agent.backend, AgentBackend::StepFunctions { .. }))
}

/// Where a cold start's own time went, logged with the configuration (`make bench` reads it).
struct InitTimings {
    /// Reading the AWS SDK configuration (region, credentials chain, HTTPS client).
    aws_config: Duration,
    /// Loading the secrets: one Secrets Manager call, or the environment.
    secrets: Duration,
}

/// What was configured, never a secret.
fn log_configuration(config: &Config, timings: &InitTimings) {
    let backend = match &config.agent {
        AgentBackend::Http { timeout, .. } => format!("http (timeout {}s)", timeout.as_secs()),
        AgentBackend::StepFunctions { mode, .. } => format!("stepfunctions ({mode:?})"),
    };
    let dispatch = match &config.dispatch {
        Dispatch::Inline => "inline",
        Dispatch::Queue { .. } => "queue",
    };
    tracing::info!(
        allowlist_entries = config.allowlist.len(),
        allow_everyone = config.allowlist.allows_everyone(),
        agent = %backend,
        dispatch,
        idempotency = if config.idempotency_table.is_some() { "dynamodb" } else { "memory" },
        lease_secs = config.lease.as_secs(),
        graph_api_version = %config.graph_api_version,
        secrets_from = if config.secret_id.is_some() { "secrets-manager" } else { "environment" },
        paging = if config.oncall.is_some() { "on" } else { "off" },
        alerts = if config.alerts_table.is_some() { "dynamodb" } else { "memory" },
        timers = if config.timer_queue_url.is_some() { "sqs" } else { "in-process" },
        approvals = if config.approvers.is_some() { "on" } else { "off" },
        approvals_table = if config.approvals_table.is_some() { "dynamodb" } else { "memory" },
        aws_config_ms = millis(timings.aws_config),
        secrets_ms = millis(timings.secrets),
        "configured"
    );
}

/// Milliseconds with microsecond precision, for timing fields in logs.
fn millis(duration: Duration) -> f64 {
    (duration.as_micros() as f64) / 1000.0
}

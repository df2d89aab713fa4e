//! The crate's error: every module's error converts into [`Error`] with `?`, keeps its own
//! `Display` (what the logs print) and its typed variants, and [`Error::is_retryable`] asks the
//! module error.
//!
//! The pattern each module error follows (see the crate's house rules, **Errors.**):
//! - one `thiserror` enum per module, `#[non_exhaustive]` where callers outside may match;
//!   variants with typed fields, not a formatted `String`;
//! - `Display` is the whole story on one line, because log lines print `%error`: a variant that
//!   keeps a cause as `source()` still says what it says;
//! - the cause is kept as `#[source]` (boxed, [`BoxError`], for an adapter's SDK error, so the
//!   port names no SDK type) unless it can carry a secret or personal data: serde's parse
//!   errors quote the values they refused, an AWS answer may quote what it refused or hold an
//!   item, a panic's message may quote anything. Then only scrubbed text is kept
//!   ([`crate::redact`]), and the variant's documentation says why;
//! - `is_retryable()` where a caller chooses between retrying and telling the user.

use crate::agent::AgentError;
use crate::config::ConfigError;
use crate::domain::AllowlistError;
use crate::entry::StartupError;
use crate::entry::lambda_webhook::EventError;
use crate::graph::GraphError;
use crate::idempotency::IdempotencyError;
use crate::queue::QueueError;
use crate::secrets::SecretsError;
use crate::webhook::{ParseError, VerifyError};
use crate::worker::WorkerError;

/// A cause kept as an error's `source()` without naming its type: an adapter's SDK error in a
/// port's error. Downcast it to look inside.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Any error of this crate. `Display` and `source()` are the module error's own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The environment ([`crate::config`]).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `ALLOWED_SENDERS` ([`crate::domain::Allowlist`]).
    #[error(transparent)]
    Allowlist(#[from] AllowlistError),
    /// Cold-start wiring ([`crate::entry::startup`]).
    #[error(transparent)]
    Startup(#[from] StartupError),
    /// Loading or re-reading the secrets ([`crate::secrets`]).
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    /// The agent ([`crate::agent`]).
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The Graph API ([`crate::graph`]).
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// The job queue ([`crate::queue`]).
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The idempotency store ([`crate::idempotency`]).
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    /// A worker invocation ([`crate::worker`]).
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// A verified webhook body that is not a WhatsApp webhook ([`mod@crate::webhook::parse`]).
    #[error(transparent)]
    WebhookParse(#[from] ParseError),
    /// A webhook signature refused ([`crate::webhook::verify`]).
    #[error(transparent)]
    WebhookVerify(#[from] VerifyError),
    /// A `POST /alerts` body we cannot read ([`crate::alerts::ingress`]).
    #[error(transparent)]
    AlertIngress(#[from] crate::alerts::ingress::IngressError),
    /// On-call paging ([`crate::alerts::paging`]).
    #[error(transparent)]
    Paging(#[from] crate::alerts::paging::PagingError),
    /// A records table ([`crate::records`]).
    #[error(transparent)]
    Records(#[from] crate::records::StoreError),
    /// The escalation timers ([`crate::timers`]).
    #[error(transparent)]
    Timer(#[from] crate::timers::TimerError),
    /// A Lambda invocation that is not an HTTP API request ([`crate::entry::lambda_webhook`]).
    #[error(transparent)]
    LambdaEvent(#[from] EventError),
    /// A sample event file (`dev` feature: [`crate::dev::events`]).
    #[cfg(feature = "dev")]
    #[error(transparent)]
    DevEvent(#[from] crate::dev::events::EventError),
    /// Creating the paging templates (`dev` feature: [`crate::dev::templates`]).
    #[cfg(feature = "dev")]
    #[error(transparent)]
    DevTemplates(#[from] crate::dev::templates::TemplatesError),
}

impl Error {
    /// Whether trying again later may succeed, as the module error answers it: the agent's,
    /// the Graph API's, the queue's, the idempotency store's and the worker's own
    /// `is_retryable`; Secrets Manager unreachable, throttled or a re-read refused moments ago
    /// (also at start-up); never bad configuration, a refused signature or a body that is not
    /// a webhook, which come back the same.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Agent(error) => error.is_retryable(),
            Self::Graph(error) => error.is_retryable(),
            Self::Queue(error) => error.is_retryable(),
            Self::Idempotency(error) => error.is_retryable(),
            Self::Worker(error) => error.is_retryable(),
            Self::Paging(error) => error.is_retryable(),
            Self::Records(error) => error.is_retryable(),
            Self::Timer(_) => true,
            Self::Secrets(error) | Self::Startup(StartupError::Secrets(error)) => {
                secrets_retryable(error)
            }
            Self::Config(_)
            | Self::Allowlist(_)
            | Self::Startup(_)
            | Self::WebhookParse(_)
            | Self::WebhookVerify(_)
            | Self::AlertIngress(_)
            | Self::LambdaEvent(_) => false,
            #[cfg(feature = "dev")]
            Self::DevEvent(_) => false,
            #[cfg(feature = "dev")]
            Self::DevTemplates(error) => error.is_retryable(),
        }
    }
}

/// Secrets Manager may answer later: it was unreachable or throttling, or a re-read failed
/// moments ago and is not tried again yet.
fn secrets_retryable(error: &SecretsError) -> bool {
    matches!(
        error,
        SecretsError::Unreachable { .. }
            | SecretsError::Throttled { .. }
            | SecretsError::RefreshFailed { .. }
    )
}

/// An SDK error kept boxed, printed as the AWS SDK prints its errors (its
/// `DisplayErrorContext`: the error and its sources joined by `: `, then its `Debug`): the text
/// the logs had when these errors were strings. Here so that the ports name no SDK crate.
pub(crate) fn sdk_context(error: &BoxError) -> impl std::fmt::Display + '_ {
    // Every AWS SDK crate re-exports the same aws-smithy-types formatter.
    aws_sdk_sqs::error::DisplayErrorContext(&**error)
}

/// `error` and its sources, joined by `: `, without any `Debug` (the AWS SDK's
/// `DisplayErrorContext` appends the error's `Debug`, which for an unreadable answer holds that
/// answer's raw body).
pub(crate) fn sources(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        text.push_str(": ");
        text.push_str(&source.to_string());
        next = source.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;
    use std::time::Duration;

    fn io(message: &str) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, message.to_owned())
    }

    #[test]
    fn every_module_error_converts_and_keeps_its_text_and_retry_answer() {
        let cases: Vec<(Error, bool)> = vec![
            (ConfigError::Missing("AGENT_URL").into(), false),
            (AllowlistError::Empty.into(), false),
            (StartupError::NoAws("JOB_QUEUE_URL").into(), false),
            (
                StartupError::Secrets(SecretsError::Throttled {
                    secret_id: "whatsapp".into(),
                    attempts: 3,
                    message: "slow down".into(),
                })
                .into(),
                true,
            ),
            (
                SecretsError::NotFound {
                    secret_id: "whatsapp".into(),
                }
                .into(),
                false,
            ),
            (
                SecretsError::Unreachable {
                    secret_id: "whatsapp".into(),
                    message: "connect".into(),
                }
                .into(),
                true,
            ),
            (AgentError::Timeout(Duration::from_secs(60)).into(), true),
            (
                AgentError::Status {
                    status: 400,
                    body: String::new(),
                }
                .into(),
                false,
            ),
            (
                AgentError::Transport(crate::agent::TransportError::Aborted { panicked: true })
                    .into(),
                true,
            ),
            (GraphError::Timeout.into(), true),
            (
                GraphError::Decode {
                    status: 400,
                    body: String::new(),
                }
                .into(),
                false,
            ),
            (
                QueueError::Redeliver {
                    source: Box::new(io("refused")),
                }
                .into(),
                true,
            ),
            (
                QueueError::Encode(serde::ser::Error::custom("no")).into(),
                false,
            ),
            (
                IdempotencyError::Store {
                    operation: "claim",
                    code: "unknown".into(),
                    source: Box::new(io("refused")),
                }
                .into(),
                true,
            ),
            (WorkerError::UnknownEvent.into(), false),
            (crate::alerts::ingress::IngressError::NoAlerts.into(), false),
            (
                crate::alerts::paging::PagingError::Records(
                    crate::records::RecordError::Conflict { attempts: 8 },
                )
                .into(),
                true,
            ),
            (
                crate::records::StoreError::Corrupt {
                    reason: "version: not a number".into(),
                }
                .into(),
                false,
            ),
            (crate::timers::TimerError::Stopped.into(), true),
            (
                WorkerError::DeliverLater {
                    message_id: "wamid#0".into(),
                    reason: "InProgress".into(),
                }
                .into(),
                true,
            ),
            (ParseError::NotJson("eof".into()).into(), false),
            (VerifyError::Mismatch.into(), false),
            (EventError::BadBase64.into(), false),
        ];
        for (error, retryable) in cases {
            assert_eq!(error.is_retryable(), retryable, "{error:?}");
            assert!(!error.to_string().is_empty(), "{error:?}");
        }
    }

    #[test]
    fn the_crate_error_says_what_the_module_error_says_and_keeps_its_source() {
        let module = QueueError::Redeliver {
            source: Box::new(io("refused")),
        };
        let text = module.to_string();
        let error = Error::from(module);
        assert_eq!(error.to_string(), text);
        assert!(matches!(error, Error::Queue(QueueError::Redeliver { .. })));
        let source = error.source().expect("the queue error's source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("the kept cause, typed");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);

        let config = Error::from(ConfigError::Missing("AGENT_URL"));
        assert_eq!(config.to_string(), "AGENT_URL is required");
        assert!(matches!(
            config,
            Error::Config(ConfigError::Missing("AGENT_URL"))
        ));
    }

    #[test]
    fn question_mark_converts_module_errors() {
        fn start() -> Result<(), Error> {
            Err(StartupError::NoAws("IDEMPOTENCY_TABLE"))?;
            Ok(())
        }
        assert!(matches!(
            start(),
            Err(Error::Startup(StartupError::NoAws("IDEMPOTENCY_TABLE")))
        ));
    }

    #[test]
    fn sdk_errors_kept_boxed_print_as_the_sdk_prints_them() {
        use aws_sdk_sqs::error::{ConnectorError, DisplayErrorContext, SdkError};
        use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityError;
        let sdk = || {
            SdkError::<ChangeMessageVisibilityError, String>::dispatch_failure(ConnectorError::io(
                "connection refused".into(),
            ))
        };
        let error = QueueError::Redeliver {
            source: Box::new(sdk()),
        };
        assert_eq!(
            error.to_string(),
            format!("job queue failed: {}", DisplayErrorContext(&sdk()))
        );
    }

    #[test]
    fn sources_are_joined_without_debug() {
        #[derive(Debug, thiserror::Error)]
        #[error("response error")]
        struct Outer(#[source] std::io::Error);
        let text = sources(&Outer(io("expected `}` at offset 3")));
        assert_eq!(text, "response error: expected `}` at offset 3");
    }
}

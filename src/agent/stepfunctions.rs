//! `AGENT_BACKEND=stepfunctions`: the agent is an AWS Step Functions state machine whose input
//! is the contract request and whose output is the contract reply.
//!
//! - `sync` (Express): `StartSyncExecution` waits for the execution; its output is the reply.
//! - `async` (Standard): `StartExecution` only starts it; the state machine ends by invoking the
//!   worker with a `deliver` event carrying the reply, so [`Agent::ask`] answers `Ok(None)`.
//!
//! Both name the execution after the WhatsApp message id ([`execution_name`]): a Standard state
//! machine then refuses a second execution for a message Meta delivered twice.
//! The `aws_sdk_sfn` types stay inside this file.

use super::{Agent, AgentError, AgentReply, AgentRequest, TransportError};
use crate::BoxFuture;
use crate::domain::log_id;
use crate::redact;
use aws_config::SdkConfig;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::config::endpoint::{
    DefaultResolver, Endpoint, EndpointFuture, Params, ResolveEndpoint,
};
use aws_sdk_sfn::config::http::HttpResponse;
use aws_sdk_sfn::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_sfn::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sfn::error::{BoxError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sfn::operation::start_sync_execution::StartSyncExecutionOutput;
use aws_sdk_sfn::types::SyncExecutionStatus;
use sha2::{Digest, Sha256};
use std::time::Instant;

/// Put in front of the hashed message id, so executions started by this bot stand out.
pub const EXECUTION_NAME_PREFIX: &str = "wa-";
/// Longest execution name Step Functions accepts
/// (<https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html>).
pub const MAX_EXECUTION_NAME_CHARS: usize = 80;
/// A SHA-256 digest in hex.
const SHA256_HEX_CHARS: usize = 64;
const _: () = assert!(EXECUTION_NAME_PREFIX.len() + SHA256_HEX_CHARS <= MAX_EXECUTION_NAME_CHARS);
/// Characters of a state machine's output kept in a `Decode` error.
const OUTPUT_EXCERPT_CHARS: usize = 200;
/// Characters of an execution's `cause` kept in an `Execution` error: Step Functions allows
/// 32 KiB (often a whole stack trace); the start says what went wrong.
const MAX_CAUSE_CHARS: usize = 1000;
/// Reply-less outputs name at most this many of their keys in the warning.
const MAX_LOGGED_KEYS: usize = 10;
/// Longest output key logged, in characters.
const MAX_LOGGED_KEY_CHARS: usize = 64;
/// Status of a sync execution that ran out of time: trying again may succeed.
pub(super) const STATUS_TIMED_OUT: &str = "TIMED_OUT";
/// Service error codes that mean "slow down", whatever their HTTP status.
const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "KmsThrottlingException",
    // A Standard state machine is at its open-executions quota: executions finishing frees it.
    "ExecutionLimitExceeded",
];
/// Property our endpoint resolver puts on an endpoint that came from a configured endpoint URL.
const CONFIGURED_ENDPOINT_PROPERTY: &str = "whatsapp_agent_lambda.configured_endpoint_url";

/// `STEP_FUNCTIONS_MODE`: how the state machine is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepFunctionsMode {
    /// `StartSyncExecution` on an Express state machine: its output is the reply.
    Sync,
    /// `StartExecution` on a Standard state machine that delivers the reply to the worker.
    Async,
}

impl StepFunctionsMode {
    /// The `STEP_FUNCTIONS_MODE` spelling, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sync => "sync",
            Self::Async => "async",
        }
    }
}

/// The execution name for a WhatsApp message: `wa-` and the lowercase hex SHA-256 of the id
/// (67 characters).
///
/// Not the raw id: a wamid (`wamid.HBgL…=`) contains `.` and `=`, which execution names refuse
/// (only `A-Za-z0-9-_`, 1–80 characters, are safe everywhere, including CloudWatch Logs), and
/// its length is Meta's to choose. A hash is deterministic, so a redelivered message maps to the
/// same name, and collision-free in practice.
pub fn execution_name(message_id: &str) -> String {
    let digest = Sha256::digest(message_id.as_bytes());
    format!("{EXECUTION_NAME_PREFIX}{}", hex::encode(digest))
}

/// Runs a Step Functions state machine as the agent. Cheap to share: one SDK client.
pub struct StepFunctionsAgent {
    client: Client,
    state_machine_arn: String,
    mode: StepFunctionsMode,
}

impl StepFunctionsAgent {
    /// A client for `state_machine_arn` from the shared SDK configuration. When an endpoint URL
    /// is configured (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_SFN`, [`crate::aws::sdk_config_for`]),
    /// requests go to that very host: the `sync-` host prefix the SDK would put in front of it
    /// for `StartSyncExecution` (`sync-127.0.0.1`) is left out.
    pub fn new(
        sdk_config: &SdkConfig,
        state_machine_arn: impl Into<String>,
        mode: StepFunctionsMode,
    ) -> Self {
        Self {
            client: client(aws_sdk_sfn::config::Builder::from(sdk_config)),
            state_machine_arn: state_machine_arn.into(),
            mode,
        }
    }

    pub fn state_machine_arn(&self) -> &str {
        &self.state_machine_arn
    }

    /// Express: waits for the execution and reads the reply from its output.
    async fn run_sync(
        &self,
        message_id: &str,
        name: &str,
        input: String,
    ) -> Result<Finished, AgentError> {
        let output = self
            .client
            .start_sync_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await
            .map_err(sdk_error)?;
        finished_sync(&output, message_id)
    }

    /// Standard: starts the execution; a duplicate start is harmless.
    async fn start_async(&self, name: &str, input: String) -> Result<Finished, AgentError> {
        let started = self
            .client
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(input)
            .send()
            .await;
        match started {
            Ok(output) => Ok(Finished {
                status: "STARTED",
                execution_arn: Some(output.execution_arn().to_owned()),
                reply: None,
            }),
            // Step Functions answers this for a name already used with other input or by a
            // closed execution (with the same input while running, it answers success): either
            // way the message already has its execution.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|error| error.is_execution_already_exists()) =>
            {
                Ok(Finished {
                    status: "ALREADY_STARTED",
                    execution_arn: None,
                    reply: None,
                })
            }
            Err(error) => Err(sdk_error(error)),
        }
    }
}

impl Agent for StepFunctionsAgent {
    fn ask<'a>(
        &'a self,
        request: &'a AgentRequest,
    ) -> BoxFuture<'a, Result<Option<AgentReply>, AgentError>> {
        Box::pin(async move {
            let message_id = request.event.id.as_str();
            let execution_name = execution_name(message_id);
            let input = serde_json::to_string(request)
                .map_err(|error| AgentError::Config(format!("request not encodable: {error}")))?;
            let mode = self.mode.as_str();
            tracing::info!(
                message_id = %log_id(message_id),
                execution_name = %execution_name,
                mode,
                "starting state machine execution"
            );
            let started = Instant::now();
            let result = match self.mode {
                StepFunctionsMode::Sync => self.run_sync(message_id, &execution_name, input).await,
                StepFunctionsMode::Async => self.start_async(&execution_name, input).await,
            };
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            match result {
                Ok(finished) => {
                    let outcome = match self.mode {
                        StepFunctionsMode::Sync => "state machine execution finished",
                        StepFunctionsMode::Async => "state machine execution started",
                    };
                    tracing::info!(
                        message_id = %log_id(message_id),
                        execution_name = %execution_name,
                        execution_arn = finished.execution_arn.as_deref().unwrap_or_default(),
                        mode,
                        status = finished.status,
                        elapsed_ms,
                        replied = finished.reply.is_some(),
                        "{outcome}"
                    );
                    Ok(finished.reply)
                }
                Err(error) => {
                    log_failure(message_id, &execution_name, elapsed_ms, &error);
                    Err(error)
                }
            }
        })
    }
}

/// What a successful call came to.
struct Finished {
    /// The execution's status (sync), or whether this call started it (async).
    status: &'static str,
    execution_arn: Option<String>,
    reply: Option<AgentReply>,
}

/// SUCCEEDED → the reply in the output; FAILED / TIMED_OUT (or a status newer than this SDK)
/// → [`AgentError::Execution`].
fn finished_sync(
    output: &StartSyncExecutionOutput,
    message_id: &str,
) -> Result<Finished, AgentError> {
    let execution_arn = Some(output.execution_arn().to_owned());
    match output.status() {
        SyncExecutionStatus::Succeeded => Ok(Finished {
            status: "SUCCEEDED",
            execution_arn,
            reply: decode(output.output(), message_id)?,
        }),
        other => Err(AgentError::Execution {
            status: other.as_str().to_owned(),
            // The state machine's words: scrubbed like its output.
            error: output
                .error()
                .map(|name| redact::scrub_within(name, MAX_CAUSE_CHARS)),
            cause: output
                .cause()
                .map(|cause| crate::redact::excerpt(cause, MAX_CAUSE_CHARS)),
        }),
    }
}

/// A state machine's output: absent, empty, `null`, `""`, or an object with nothing to say
/// mean no reply; otherwise it must be the contract reply.
fn decode(output: Option<&str>, message_id: &str) -> Result<Option<AgentReply>, AgentError> {
    let Some(text) = output.map(str::trim) else {
        return Ok(None);
    };
    if text.is_empty() || text == "null" {
        return Ok(None);
    }
    // serde's messages quote the offending value (which may be a phone number): scrubbed.
    let decode_error = |error: String| AgentError::Decode {
        error: crate::redact::scrub(&error),
        body: crate::redact::excerpt(text, OUTPUT_EXCERPT_CHARS),
    };
    // Through `Value` first: serde would otherwise accept a JSON array as a struct.
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| decode_error(error.to_string()))?;
    // An HTTP Task's `ResponseBody` of an empty (204) answer.
    if value.as_str().is_some_and(|text| text.trim().is_empty()) {
        return Ok(None);
    }
    let Some(object) = value.as_object() else {
        return Err(decode_error(
            "the state machine output is not a JSON object".to_owned(),
        ));
    };
    // Keys are the state machine's choice, so foreign text: scrubbed like any.
    let keys: Vec<String> = object
        .keys()
        .take(MAX_LOGGED_KEYS)
        .map(|key| redact::scrub_within(key, MAX_LOGGED_KEY_CHARS))
        .collect();
    let reply: AgentReply =
        serde_json::from_value(value).map_err(|error| decode_error(error.to_string()))?;
    // Some parts may have been left out (logged); only a reply with none readable fails.
    if reply.is_unreadable() {
        return Err(decode_error(reply.unreadable_reason()));
    }
    if !reply.is_empty() {
        return Ok(Some(reply));
    }
    if !keys.is_empty() {
        // Typically a Task's raw result (`{"Payload": …, "StatusCode": 200}`) that should have
        // been narrowed with `OutputPath`: the user would silently get no answer.
        tracing::warn!(
            message_id = %log_id(message_id),
            keys = ?keys,
            "state machine output has none of the reply fields (status, text, actions, list, attachments)"
        );
    }
    Ok(None)
}

/// An SDK failure as an agent error. Throttling and 5xx answers, and failures to reach Step
/// Functions at all, may pass: `Transport` (retryable). A request the SDK could not build will
/// not: `Config`. Nor will other service errors (`StateMachineDoesNotExist`,
/// `AccessDeniedException`, `StateMachineTypeNotSupported`, …): `Status` with the HTTP status
/// and `code: message`.
fn sdk_error<E>(error: SdkError<E, HttpResponse>) -> AgentError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let service = match &error {
        SdkError::ServiceError(service) => service,
        // The request could not even be built (a required field, serialization): permanent.
        SdkError::ConstructionFailure(_) => {
            return AgentError::Config(DisplayErrorContext(&error).to_string());
        }
        // Credentials, endpoint, connection, timeouts: no answer, so nothing of the execution
        // in the error. Kept.
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            return AgentError::Transport(TransportError::Aws {
                source: Box::new(error),
            });
        }
        // An answer that could not be read (or a kind of failure newer than this code): its
        // raw body may be a sync execution's input and output, so only the reading error.
        _ => {
            return AgentError::Transport(TransportError::Unreadable {
                reason: redact::scrub(&crate::error::sources(&error)),
            });
        }
    };
    let status = service.raw().status().as_u16();
    let code = service.err().code().unwrap_or("UnknownError");
    let message = service.err().message().unwrap_or_default();
    if status == 429 || status >= 500 || THROTTLING_CODES.contains(&code) {
        // Step Functions' words: scrubbed like any foreign text.
        AgentError::Transport(TransportError::Busy {
            status,
            code: redact::scrub(code),
            message: redact::scrub(message),
        })
    } else {
        AgentError::Status {
            status,
            body: format!("{code}: {message}"),
        }
    }
}

/// Warn with what identifies the failure; output excerpts and causes only at debug (they may
/// quote the user's message).
fn log_failure(message_id: &str, execution_name: &str, elapsed_ms: u64, error: &AgentError) {
    let retryable = error.is_retryable();
    match error {
        AgentError::Execution {
            status,
            error: name,
            cause,
        } => {
            tracing::warn!(
                message_id = %log_id(message_id),
                execution_name,
                status = %status,
                error = name.as_deref().unwrap_or_default(),
                elapsed_ms,
                retryable,
                "state machine execution did not succeed"
            );
            tracing::debug!(message_id = %log_id(message_id), execution_name, cause = ?cause, "execution cause");
        }
        AgentError::Decode {
            error: reason,
            body,
        } => {
            tracing::warn!(
                message_id = %log_id(message_id),
                execution_name,
                elapsed_ms,
                reason = %reason,
                "state machine output is not a valid reply"
            );
            tracing::debug!(message_id = %log_id(message_id), execution_name, output = %body, "state machine output");
        }
        other => tracing::warn!(
            message_id = %log_id(message_id),
            execution_name,
            elapsed_ms,
            retryable,
            error = %other,
            "state machine call failed"
        ),
    }
}

/// The SDK client, made to honour a configured endpoint URL exactly.
///
/// `StartSyncExecution` is modelled with the host prefix `sync-` (its real endpoint is
/// `sync-states.<region>.amazonaws.com`), and the Rust SDK prepends it to custom endpoints too,
/// turning `http://127.0.0.1:4566` into the unresolvable `http://sync-127.0.0.1:4566`. Other SDKs
/// have a switch for this (botocore `inject_host_prefix`, Go `DisableEndpointHostPrefix`, Ruby
/// `disable_host_prefix_injection`); the Rust SDK (aws-sdk-sfn 1.x) has none, so: the endpoint
/// resolver marks endpoints that came from a configured URL, and an interceptor puts that URL's
/// host back before the request is signed. AWS's own endpoints keep their prefix.
fn client(builder: aws_sdk_sfn::config::Builder) -> Client {
    Client::from_conf(
        builder
            .endpoint_resolver(MarkConfiguredEndpoint::default())
            .interceptor(NoHostPrefixOnConfiguredEndpoint)
            .build(),
    )
}

/// The SDK's endpoint resolver, marking the endpoints it took from a configured endpoint URL.
#[derive(Debug, Default)]
struct MarkConfiguredEndpoint(DefaultResolver);

impl ResolveEndpoint for MarkConfiguredEndpoint {
    fn resolve_endpoint<'a>(&'a self, params: &'a Params) -> EndpointFuture<'a> {
        let resolved = ResolveEndpoint::resolve_endpoint(&self.0, params);
        if params.endpoint().is_none() {
            return resolved;
        }
        EndpointFuture::new(async move {
            Ok(resolved
                .await?
                .into_builder()
                .property(CONFIGURED_ENDPOINT_PROPERTY, true)
                .build())
        })
    }
}

/// Undoes host-prefix injection on marked endpoints.
#[derive(Debug)]
struct NoHostPrefixOnConfiguredEndpoint;

impl Intercept for NoHostPrefixOnConfiguredEndpoint {
    fn name(&self) -> &'static str {
        "NoHostPrefixOnConfiguredEndpoint"
    }

    // After the endpoint (and its prefix) is applied to each attempt, before signing: the
    // signature covers the host.
    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(endpoint) = cfg.load::<Endpoint>() else {
            return Ok(());
        };
        if !endpoint
            .properties()
            .contains_key(CONFIGURED_ENDPOINT_PROPERTY)
        {
            return Ok(());
        }
        let request = context.request_mut();
        if let Some(uri) = without_host_prefix(request.uri(), endpoint.url()) {
            request.set_uri(uri)?;
        }
        Ok(())
    }
}

/// `request_uri` with the host of `endpoint_url` when a prefix was put in front of that host;
/// `None` when there is nothing to undo.
fn without_host_prefix(request_uri: &str, endpoint_url: &str) -> Option<String> {
    let (scheme, authority, rest) = split_uri(request_uri)?;
    let (_, endpoint_authority, _) = split_uri(endpoint_url)?;
    (authority != endpoint_authority && authority.ends_with(endpoint_authority))
        .then(|| format!("{scheme}://{endpoint_authority}{rest}"))
}

/// `scheme://authority/rest?query` → (`scheme`, `authority`, `/rest?query`).
fn split_uri(uri: &str) -> Option<(&str, &str, &str)> {
    let (scheme, after) = uri.split_once("://")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    Some((scheme, &after[..end], &after[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::config::interceptors::BeforeTransmitInterceptorContextRef;
    use std::sync::{Arc, Mutex};

    const WAMID: &str = "wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQzQTdBNUQ0RjFFQkE3QkFBQkFBAA==";

    fn is_valid_execution_name(name: &str) -> bool {
        (1..=MAX_EXECUTION_NAME_CHARS).contains(&name.chars().count())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    #[test]
    fn execution_name_is_valid_for_long_and_odd_ids() {
        let ids = [
            WAMID.to_owned(),
            "x".repeat(500),
            String::new(),
            "wamid. spaces/slashes:colons=é😀\n\t".to_owned(),
            "<>{}[]?*\"#%\\^|~`$&,;:/".to_owned(),
        ];
        for id in &ids {
            let name = execution_name(id);
            assert!(is_valid_execution_name(&name), "{id:?} → {name}");
            assert!(name.starts_with(EXECUTION_NAME_PREFIX), "{name}");
            assert_eq!(name.len(), EXECUTION_NAME_PREFIX.len() + SHA256_HEX_CHARS);
        }
    }

    #[test]
    fn same_message_id_gives_same_execution_name() {
        assert_eq!(execution_name(WAMID), execution_name(WAMID));
        assert_eq!(
            execution_name("abc"),
            // sha256("abc"), the FIPS 180-2 test vector.
            "wa-ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn different_message_ids_give_different_execution_names() {
        let names: std::collections::HashSet<String> = (0..1000)
            .map(|i| execution_name(&format!("{WAMID}{i}")))
            .chain([execution_name(WAMID), execution_name(&WAMID.to_lowercase())])
            .collect();
        assert_eq!(names.len(), 1002);
    }

    #[test]
    fn output_without_anything_to_say_is_no_reply() {
        for output in [
            None,
            Some(""),
            Some("  \n"),
            Some("null"),
            Some("{}"),
            Some(r#"" ""#),
        ] {
            assert!(decode(output, WAMID).unwrap().is_none(), "{output:?}");
        }
        // A raw Lambda Task result: nothing the user can be sent.
        assert!(
            decode(Some(r#"{"Payload":{"text":"hi"},"StatusCode":200}"#), WAMID)
                .unwrap()
                .is_none()
        );
        let reply = decode(Some(r#"{"status":"success","output":"2 pods"}"#), WAMID)
            .unwrap()
            .unwrap();
        assert_eq!(reply.text.as_deref(), Some("2 pods"));
    }

    #[test]
    fn output_with_an_unreadable_part_keeps_the_rest() {
        let output =
            r#"{"text":"2 pods","attachments":[{"type":"gif","url":"https://x.y/a.gif"}]}"#;
        let reply = decode(Some(output), WAMID).unwrap().unwrap();
        assert_eq!(reply.text.as_deref(), Some("2 pods"));
        assert_eq!(reply.dropped.len(), 1);
        let only_bad = r#"{"attachments":[{"type":"gif","url":"https://x.y/a.gif"}]}"#;
        assert!(matches!(
            decode(Some(only_bad), WAMID),
            Err(AgentError::Decode { .. })
        ));
    }

    #[test]
    fn unparseable_output_is_a_decode_error_with_a_bounded_excerpt() {
        for output in [
            "<html>",
            r#"["text"]"#,
            r#""just a string""#,
            r#"{"actions":"x"}"#,
        ] {
            assert!(
                matches!(decode(Some(output), WAMID), Err(AgentError::Decode { .. })),
                "{output}"
            );
        }
        let long = format!("not json {}", "é".repeat(1000));
        let Err(AgentError::Decode { body, .. }) = decode(Some(&long), WAMID) else {
            panic!("expected a decode error");
        };
        assert_eq!(body.chars().count(), OUTPUT_EXCERPT_CHARS + 1);
        assert!(body.ends_with('…'));
    }

    #[test]
    fn host_prefix_is_undone_only_where_it_was_added() {
        assert_eq!(
            without_host_prefix("http://sync-127.0.0.1:4566/", "http://127.0.0.1:4566").as_deref(),
            Some("http://127.0.0.1:4566/")
        );
        assert_eq!(
            without_host_prefix(
                "https://sync-sfn.internal.example/base/?x=1",
                "https://sfn.internal.example/base"
            )
            .as_deref(),
            Some("https://sfn.internal.example/base/?x=1")
        );
        assert_eq!(
            without_host_prefix("http://127.0.0.1:4566/", "http://127.0.0.1:4566"),
            None
        );
        assert_eq!(without_host_prefix("not a uri", "http://127.0.0.1"), None);
    }

    /// Records the URI each request would be sent to, and stops it there.
    #[derive(Debug, Default, Clone)]
    struct StopBeforeSending(Arc<Mutex<Option<String>>>);

    impl Intercept for StopBeforeSending {
        fn name(&self) -> &'static str {
            "StopBeforeSending"
        }

        fn read_before_transmit(
            &self,
            context: &BeforeTransmitInterceptorContextRef<'_>,
            _runtime_components: &RuntimeComponents,
            _cfg: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            *self.0.lock().unwrap() = Some(context.request().uri().to_owned());
            Err("stopped by the test before sending".into())
        }
    }

    /// Where `StartSyncExecution` would go with `endpoint_url` (None: AWS's own endpoint).
    async fn sync_request_uri(endpoint_url: Option<&str>) -> String {
        let sdk_config = crate::aws::sdk_config_for("http://127.0.0.1:9", "eu-west-1").await;
        let mut builder = aws_sdk_sfn::config::Builder::from(&sdk_config);
        builder.set_endpoint_url(endpoint_url.map(str::to_owned));
        let stop = StopBeforeSending::default();
        let client = client(builder.interceptor(stop.clone()));
        let result = client
            .start_sync_execution()
            .state_machine_arn("arn:aws:states:eu-west-1:123456789012:stateMachine:agent")
            .input("{}")
            .send()
            .await;
        assert!(result.is_err(), "the request must have been stopped");
        stop.0.lock().unwrap().clone().expect("a request was built")
    }

    #[tokio::test]
    async fn configured_endpoint_gets_no_sync_host_prefix() {
        assert_eq!(
            sync_request_uri(Some("http://127.0.0.1:4566")).await,
            "http://127.0.0.1:4566/"
        );
    }

    #[tokio::test]
    async fn aws_endpoint_keeps_the_sync_host_prefix() {
        assert_eq!(
            sync_request_uri(None).await,
            "https://sync-states.eu-west-1.amazonaws.com/"
        );
    }

    #[test]
    fn execution_errors_keep_status_error_and_a_short_cause() {
        let output = StartSyncExecutionOutput::builder()
            .execution_arn("arn:aws:states:eu-west-1:123456789012:express:agent:wa-1:1")
            .start_date(aws_sdk_sfn::primitives::DateTime::from_secs(0))
            .stop_date(aws_sdk_sfn::primitives::DateTime::from_secs(1))
            .status(SyncExecutionStatus::Failed)
            .error("Agent.Crashed")
            .cause("x".repeat(5000))
            .build()
            .unwrap();
        let Err(error) = finished_sync(&output, WAMID) else {
            panic!("FAILED must be an error");
        };
        assert!(!error.is_retryable());
        let AgentError::Execution {
            status,
            error,
            cause,
        } = error
        else {
            panic!("expected an execution error");
        };
        assert_eq!(status, "FAILED");
        assert_eq!(error.as_deref(), Some("Agent.Crashed"));
        assert_eq!(cause.map(|c| c.chars().count()), Some(MAX_CAUSE_CHARS + 1));

        let timed_out = StartSyncExecutionOutput::builder()
            .execution_arn("arn:aws:states:eu-west-1:123456789012:express:agent:wa-1:1")
            .start_date(aws_sdk_sfn::primitives::DateTime::from_secs(0))
            .stop_date(aws_sdk_sfn::primitives::DateTime::from_secs(1))
            .status(SyncExecutionStatus::TimedOut)
            .build()
            .unwrap();
        let Err(error) = finished_sync(&timed_out, WAMID) else {
            panic!("TIMED_OUT must be an error");
        };
        assert!(error.is_retryable(), "{error}");
    }
}

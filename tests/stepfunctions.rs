//! The Step Functions agent backend: `sync` (Express, `StartSyncExecution`) against the
//! `sfn_sync` stand-in, `async` (Standard, `StartExecution`) against a real moto server.

mod support;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_sdk_sfn::config::http::HttpResponse;
use aws_sdk_sfn::error::SdkError;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sfn::operation::start_sync_execution::StartSyncExecutionError;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::fixtures::agent_request;
use support::moto::Moto;
use support::net::free_port;
use support::sfn_sync::{CONTENT_TYPE, SfnSync, SyncAnswer, TARGET};
use whatsapp_agent_lambda::agent::{
    Agent, AgentError, AgentReply, AgentRequest, ReplyStatus, StepFunctionsAgent,
    StepFunctionsMode, TransportError, execution_name,
};
use whatsapp_agent_lambda::aws::sdk_config_for;

const REGION: &str = "us-east-1";
/// moto's default account.
const ACCOUNT: &str = "123456789012";
const EXPRESS_ARN: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:ops-agent-express";
/// moto accepts any role; AWS would need one that Step Functions can assume.
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/sfn";
/// How long moto's ASL interpreter may take to run the example state machine.
const EXECUTION_DEADLINE: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// An example agent as a state machine: its input is the contract request, its output the
/// contract reply (it echoes the message and offers a button).
const EXAMPLE_DEFINITION: &str = r#"{
  "Comment": "Example agent: answers every message in the agent contract",
  "StartAt": "Answer",
  "States": {
    "Answer": {
      "Type": "Pass",
      "Parameters": {
        "status": "success",
        "text.$": "States.Format('You said: {}', $.event.text)",
        "actions": [{"id": "view_logs", "label": "View Logs"}]
      },
      "End": true
    }
  }
}"#;

/// The SDK configuration for a local endpoint, without SDK retries: one call, one request.
async fn config_without_retries(endpoint: &str) -> SdkConfig {
    sdk_config_for(endpoint, REGION)
        .await
        .into_builder()
        .retry_config(RetryConfig::disabled())
        .build()
}

/// A sync agent in front of a stand-in ending every execution with `answer`.
async fn sync_agent(answer: SyncAnswer) -> (SfnSync, StepFunctionsAgent) {
    let stand_in = SfnSync::start(answer);
    let config = config_without_retries(&stand_in.endpoint()).await;
    let agent = StepFunctionsAgent::new(&config, EXPRESS_ARN, StepFunctionsMode::Sync);
    (stand_in, agent)
}

// ---------------------------------------------------------------- sync (Express)

#[tokio::test]
async fn sync_sends_the_contract_request_under_the_deterministic_name_and_returns_the_reply() {
    let (stand_in, agent) = sync_agent(SyncAnswer::succeeded(
        r#"{"status":"success","text":"Found 2 pods in CrashLoopBackOff","actions":[{"id":"view_logs","label":"View Logs"}]}"#,
    ))
    .await;
    let request = agent_request();

    let reply = agent.ask(&request).await.unwrap().expect("a reply");

    assert_eq!(reply.status, Some(ReplyStatus::Success));
    assert_eq!(
        reply.text.as_deref(),
        Some("Found 2 pods in CrashLoopBackOff")
    );
    assert_eq!(reply.actions.len(), 1);
    let calls = stand_in.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(call.target.as_deref(), Some(TARGET));
    assert_eq!(call.content_type.as_deref(), Some(CONTENT_TYPE));
    let host = call.host.as_deref().unwrap_or_default();
    assert!(
        host.starts_with("127.0.0.1:"),
        "no sync- host prefix on a configured endpoint: {host}"
    );
    assert_eq!(call.state_machine_arn(), Some(EXPRESS_ARN));
    assert_eq!(
        call.name(),
        Some(execution_name(&request.event.id).as_str())
    );
    assert_eq!(call.input(), serde_json::to_value(&request).unwrap());
}

#[tokio::test]
async fn sync_output_alias_is_accepted() {
    let (_stand_in, agent) =
        sync_agent(SyncAnswer::succeeded(r#"{"output":"all pods healthy"}"#)).await;
    let reply = agent.ask(&agent_request()).await.unwrap().expect("a reply");
    assert_eq!(reply.text.as_deref(), Some("all pods healthy"));
}

#[tokio::test]
async fn sync_null_empty_or_absent_output_means_no_reply() {
    for answer in [
        SyncAnswer::succeeded("null"),
        SyncAnswer::succeeded("{}"),
        SyncAnswer::succeeded(""),
        SyncAnswer::Succeeded { output: None },
    ] {
        let (stand_in, agent) = sync_agent(answer.clone()).await;
        assert_eq!(
            agent.ask(&agent_request()).await.unwrap(),
            None,
            "{answer:?}"
        );
        assert_eq!(stand_in.calls().len(), 1);
    }
}

#[tokio::test]
async fn sync_failed_execution_is_not_retryable_and_keeps_error_and_cause() {
    let (_stand_in, agent) = sync_agent(SyncAnswer::failed(
        "Agent.LlmUnavailable",
        "model endpoint answered 503 three times",
    ))
    .await;

    let error = agent.ask(&agent_request()).await.unwrap_err();

    assert!(!error.is_retryable(), "{error}");
    let AgentError::Execution {
        status,
        error: name,
        cause,
    } = &error
    else {
        panic!("expected an execution error, got {error:?}");
    };
    assert_eq!(status, "FAILED");
    assert_eq!(name.as_deref(), Some("Agent.LlmUnavailable"));
    assert_eq!(
        cause.as_deref(),
        Some("model endpoint answered 503 three times")
    );
    let message = error.to_string();
    assert!(
        message.contains("FAILED") && message.contains("Agent.LlmUnavailable"),
        "{message}"
    );
}

#[tokio::test]
async fn sync_timed_out_execution_is_retryable() {
    let (_stand_in, agent) = sync_agent(SyncAnswer::TimedOut).await;
    let error = agent.ask(&agent_request()).await.unwrap_err();
    assert!(
        matches!(&error, AgentError::Execution { status, .. } if status == "TIMED_OUT"),
        "{error:?}"
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn sync_malformed_output_is_a_decode_error_with_an_excerpt() {
    for output in ["<html>oops</html>", r#"{"text": 42}"#, r#"["text"]"#] {
        let (_stand_in, agent) = sync_agent(SyncAnswer::succeeded(output)).await;
        let error = agent.ask(&agent_request()).await.unwrap_err();
        let AgentError::Decode { body, .. } = &error else {
            panic!("expected a decode error for {output}, got {error:?}");
        };
        assert_eq!(body, output);
        assert!(!error.is_retryable());
    }
}

#[tokio::test]
async fn sync_unknown_state_machine_is_a_non_retryable_service_error() {
    let (_stand_in, agent) = sync_agent(SyncAnswer::service_error(
        400,
        "StateMachineDoesNotExist",
        "State Machine Does Not Exist: 'arn:aws:states:us-east-1:123456789012:stateMachine:ops-agent-express'",
    ))
    .await;
    let error = agent.ask(&agent_request()).await.unwrap_err();
    assert!(
        matches!(&error, AgentError::Status { status: 400, body } if body.starts_with("StateMachineDoesNotExist: State Machine Does Not Exist")),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn sync_throttling_and_server_errors_are_retryable_transport_errors() {
    for (status, kind) in [(400, "ThrottlingException"), (500, "InternalFailure")] {
        let (stand_in, agent) =
            sync_agent(SyncAnswer::service_error(status, kind, "slow down")).await;
        let error = agent.ask(&agent_request()).await.unwrap_err();
        assert!(
            matches!(
                &error,
                AgentError::Transport(TransportError::Busy { status: s, code, .. })
                    if *s == status && code == kind
            ),
            "{error:?}"
        );
        assert!(error.to_string().contains(kind), "{error}");
        assert!(error.is_retryable());
        assert_eq!(
            stand_in.calls().len(),
            1,
            "SDK retries are off in these tests"
        );
    }
}

#[tokio::test]
async fn sync_unreachable_endpoint_is_a_retryable_transport_error() {
    // Bound and dropped: nothing listens there.
    let port = free_port();
    let config = config_without_retries(&format!("http://127.0.0.1:{port}")).await;
    let agent = StepFunctionsAgent::new(&config, EXPRESS_ARN, StepFunctionsMode::Sync);
    let error = agent.ask(&agent_request()).await.unwrap_err();
    assert!(matches!(error, AgentError::Transport(_)), "{error:?}");
    assert!(error.is_retryable());
    // No answer: the SDK's error is kept as the source, typed.
    let AgentError::Transport(TransportError::Aws { source }) = &error else {
        panic!("expected an unanswered call, got {error:?}");
    };
    assert!(
        source
            .downcast_ref::<SdkError<StartSyncExecutionError, HttpResponse>>()
            .is_some_and(|sdk| matches!(sdk, SdkError::DispatchFailure(_))),
        "{source:?}"
    );
    assert!(std::error::Error::source(&error).is_some());
}

// ---------------------------------------------------------------- async (Standard)

/// moto with the example Standard state machine, and an async agent in front of it.
struct StandardMachine {
    _moto: Moto,
    config: SdkConfig,
    /// The state machine's ARN.
    arn: String,
    /// A plain client, for looking at executions.
    sfn: aws_sdk_sfn::Client,
    agent: StepFunctionsAgent,
}

impl StandardMachine {
    /// Creates the state machine; moto runs its executions when `execute` is set.
    async fn start(execute: bool) -> Self {
        let moto = Moto::start();
        if execute {
            moto.configure(&json!({"stepfunctions": {"execute_state_machine": true}}));
        }
        let config = sdk_config_for(moto.endpoint(), REGION).await;
        let sfn = aws_sdk_sfn::Client::new(&config);
        let created = sfn
            .create_state_machine()
            .name("ops-agent")
            .definition(EXAMPLE_DEFINITION)
            .role_arn(ROLE_ARN)
            .r#type(aws_sdk_sfn::types::StateMachineType::Standard)
            .send()
            .await
            .expect("create the state machine in moto");
        let arn = created.state_machine_arn().to_owned();
        assert!(arn.contains(ACCOUNT), "{arn}");
        let agent = StepFunctionsAgent::new(&config, arn.clone(), StepFunctionsMode::Async);
        Self {
            _moto: moto,
            config,
            arn,
            sfn,
            agent,
        }
    }

    /// Step Functions' description of the execution `execution_arn`.
    async fn describe(&self, execution_arn: &str) -> DescribeExecutionOutput {
        self.sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .expect("describe the execution")
    }

    /// Asks the agent about `request`, which it answers later (no reply now), and returns every
    /// execution of the state machine since: (name, execution ARN).
    async fn ask(&self, request: &AgentRequest) -> Vec<(String, String)> {
        assert_eq!(self.agent.ask(request).await.unwrap(), None);
        self.sfn
            .list_executions()
            .state_machine_arn(&self.arn)
            .send()
            .await
            .expect("list executions")
            .executions()
            .iter()
            .map(|e| (e.name().to_owned(), e.execution_arn().to_owned()))
            .collect()
    }
}

#[tokio::test]
async fn async_starts_one_execution_named_after_the_message_with_the_request_as_input() {
    let machine = StandardMachine::start(false).await;
    let request = agent_request();

    let started = machine.ask(&request).await;
    assert_eq!(started.len(), 1, "{started:?}");
    let (name, execution_arn) = &started[0];
    assert_eq!(name, &execution_name(&request.event.id));
    let described = machine.describe(execution_arn).await;
    assert_eq!(described.name(), Some(name.as_str()));
    let input: Value =
        serde_json::from_str(described.input().expect("an input")).expect("JSON input");
    assert_eq!(input, serde_json::to_value(&request).unwrap());

    // Meta delivers the same message again while the execution runs.
    assert_eq!(machine.ask(&request).await.len(), 1);
}

#[tokio::test]
async fn async_example_state_machine_answers_in_the_contract_and_a_late_duplicate_is_harmless() {
    let machine = StandardMachine::start(true).await;
    let request = agent_request();

    let started = machine.ask(&request).await;
    assert_eq!(started.len(), 1, "{started:?}");
    let execution_arn = &started[0].1;
    let deadline = Instant::now() + EXECUTION_DEADLINE;
    let finished = loop {
        let described = machine.describe(execution_arn).await;
        if described.status().as_str() != "RUNNING" {
            break described;
        }
        assert!(Instant::now() < deadline, "the execution is still running");
        tokio::time::sleep(POLL_INTERVAL).await;
    };
    assert_eq!(finished.status().as_str(), "SUCCEEDED", "{finished:?}");
    let reply: AgentReply =
        serde_json::from_str(finished.output().expect("an output")).expect("a contract reply");
    assert_eq!(reply.status, Some(ReplyStatus::Success));
    assert_eq!(
        reply.text.as_deref(),
        Some("You said: pods crashing in prod")
    );
    assert_eq!(reply.actions.len(), 1);

    // The same message again after its execution closed: Step Functions answers
    // ExecutionAlreadyExists, which is no error for us.
    assert_eq!(machine.ask(&request).await.len(), 1);
}

#[tokio::test]
async fn async_unknown_state_machine_is_a_non_retryable_error() {
    let machine = StandardMachine::start(false).await;
    let missing = machine.arn.replace("ops-agent", "no-such-agent");
    let agent = StepFunctionsAgent::new(&machine.config, missing, StepFunctionsMode::Async);
    let error = agent.ask(&agent_request()).await.unwrap_err();
    assert!(
        matches!(&error, AgentError::Status { status: 400, body } if body.starts_with("StateMachineDoesNotExist")),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

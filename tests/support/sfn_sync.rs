//! A stand-in for Step Functions' `StartSyncExecution`, and the only stand-in for an AWS service
//! in the test suite: every other AWS call is tested against a real moto server. moto (5.x) does
//! not implement `StartSyncExecution` (Express sync executions), so this loopback server speaks
//! just that operation of the Step Functions JSON protocol (`POST /`,
//! `X-Amz-Target: AWSStepFunctions.StartSyncExecution`,
//! `Content-Type: application/x-amz-json-1.0`), records what it was sent, and answers with a
//! scripted result. Anything else gets the 400 `UnknownOperationException` Step Functions would
//! send, so a wrong target or path fails the test instead of passing silently.

use super::fakes::header;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use whatsapp_agent_lambda::dev::LoopbackServer;
use whatsapp_agent_lambda::entry::local::handler;
use whatsapp_agent_lambda::webhook::answer::{body_bytes, response};

/// The operation this stand-in serves.
pub const TARGET: &str = "AWSStepFunctions.StartSyncExecution";
/// The content type of the Step Functions protocol (AWS JSON 1.0), both ways.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// Start and stop dates of every scripted execution (2026-11-24T10:00:00Z, plus 1.5 s).
const START_DATE: f64 = 1_795_514_400.0;
const STOP_DATE: f64 = 1_795_514_401.5;

/// How the scripted execution ends.
#[derive(Debug, Clone)]
pub enum SyncAnswer {
    /// `SUCCEEDED` with this `output` (absent when `None`).
    Succeeded { output: Option<String> },
    /// `FAILED` with the state machine's error name and cause.
    Failed { error: String, cause: String },
    /// `TIMED_OUT`, as after the Express 5-minute limit.
    TimedOut,
    /// Not an execution result: the service refuses the call with HTTP `status` and
    /// `{"__type": kind, "message": message}`.
    ServiceError {
        status: u16,
        kind: String,
        message: String,
    },
}

impl SyncAnswer {
    pub fn succeeded(output: &str) -> Self {
        Self::Succeeded {
            output: Some(output.to_owned()),
        }
    }

    pub fn failed(error: &str, cause: &str) -> Self {
        Self::Failed {
            error: error.to_owned(),
            cause: cause.to_owned(),
        }
    }

    pub fn service_error(status: u16, kind: &str, message: &str) -> Self {
        Self::ServiceError {
            status,
            kind: kind.to_owned(),
            message: message.to_owned(),
        }
    }
}

/// One request as the stand-in saw it.
#[derive(Debug, Clone)]
pub struct SyncCall {
    pub method: String,
    pub path: String,
    pub target: Option<String>,
    pub content_type: Option<String>,
    pub host: Option<String>,
    /// The JSON body (`Value::Null` when it was not JSON).
    pub body: Value,
}

impl SyncCall {
    pub fn state_machine_arn(&self) -> Option<&str> {
        self.body["stateMachineArn"].as_str()
    }

    pub fn name(&self) -> Option<&str> {
        self.body["name"].as_str()
    }

    /// The execution input, parsed (it travels as a JSON string inside the JSON body).
    pub fn input(&self) -> Value {
        let text = self.body["input"]
            .as_str()
            .expect("StartSyncExecution carries an input string");
        serde_json::from_str(text).expect("the input is JSON")
    }
}

/// A running stand-in; stops when dropped.
pub struct SfnSync {
    server: LoopbackServer,
    calls: Arc<Mutex<Vec<SyncCall>>>,
}

impl SfnSync {
    /// Serves `StartSyncExecution`, ending every execution with `answer`.
    pub fn start(answer: SyncAnswer) -> Self {
        let calls: Arc<Mutex<Vec<SyncCall>>> = Arc::default();
        let log = calls.clone();
        let server = LoopbackServer::start(handler(move |request: Request| {
            let call = record(&request);
            let reply = answer_to(&call, &answer);
            log.lock().expect("call log").push(call);
            async move { reply }
        }));
        Self { server, calls }
    }

    /// `http://127.0.0.1:<port>`: the endpoint URL for `sdk_config_for`.
    pub fn endpoint(&self) -> String {
        self.server.url()
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<SyncCall> {
        self.calls.lock().expect("call log").clone()
    }
}

fn record(request: &Request) -> SyncCall {
    let header = |name: &str| header(request, name);
    SyncCall {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        target: header("x-amz-target"),
        content_type: header("content-type"),
        host: header("host"),
        body: serde_json::from_slice(body_bytes(request.body())).unwrap_or(Value::Null),
    }
}

fn answer_to(call: &SyncCall, answer: &SyncAnswer) -> Response<Body> {
    if call.method != "POST" || call.path != "/" || call.target.as_deref() != Some(TARGET) {
        return error(
            400,
            "UnknownOperationException",
            &format!(
                "this stand-in only serves POST / {TARGET}, not {} {} {:?}",
                call.method, call.path, call.target
            ),
        );
    }
    if call.content_type.as_deref() != Some(CONTENT_TYPE) {
        return error(400, "SerializationException", "expected AWS JSON 1.0");
    }
    let state_machine_arn = call.state_machine_arn().unwrap_or_default();
    let name = call.name().unwrap_or("generated-name");
    let mut execution = json!({
        "executionArn": format!(
            "{}:{name}:0a1b2c3d",
            state_machine_arn.replacen(":stateMachine:", ":express:", 1)
        ),
        "stateMachineArn": state_machine_arn,
        "name": name,
        "startDate": START_DATE,
        "stopDate": STOP_DATE,
        "input": call.body["input"],
    });
    match answer {
        SyncAnswer::Succeeded { output } => {
            execution["status"] = json!("SUCCEEDED");
            if let Some(output) = output {
                execution["output"] = json!(output);
            }
        }
        SyncAnswer::Failed { error, cause } => {
            execution["status"] = json!("FAILED");
            execution["error"] = json!(error);
            execution["cause"] = json!(cause);
        }
        SyncAnswer::TimedOut => execution["status"] = json!("TIMED_OUT"),
        SyncAnswer::ServiceError {
            status,
            kind,
            message,
        } => return error(*status, kind, message),
    }
    response(200, CONTENT_TYPE, execution.to_string())
}

fn error(status: u16, kind: &str, message: &str) -> Response<Body> {
    response(
        status,
        CONTENT_TYPE,
        json!({"__type": kind, "message": message}).to_string(),
    )
}

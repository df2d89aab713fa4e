//! Approvals a Step Functions state machine asks for itself, on moto's executing Step Functions:
//! the example state machine of `template.yaml` (`ApprovalExampleStateMachine`), started by
//! the async agent backend as the worker starts it. Its definition is read from the template
//! and run as written, except that its Lambda steps (the worker's "deliver" invocations) become
//! Pass states whose output is the event the worker would get: the approval step is the
//! template's own (`sqs:sendMessage.waitForTaskToken` onto a moto FIFO job queue). Most tests
//! receive the job, read it as the worker does (`Job`, `Work::Approval`) and answer the task
//! through [`SfnCallbacks`], as the approvals engine does once the approvers decided. The last
//! runs the real binaries instead: the `worker` polling the job queue asks the approver through
//! a loopback Graph API, and the approver's signed tap goes through the `webhook` (queue mode)
//! onto the job queue, back to the worker, which answers the task.

mod support;

use aws_config::SdkConfig;
use aws_sdk_sfn::operation::describe_execution::DescribeExecutionOutput;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::fixtures::{agent_request, event_json};
use support::moto::Moto;
use support::template::raw_template;
use whatsapp_agent_lambda::agent::{
    Agent, AgentRequest, DeliverEvent, ReplyStatus, StepFunctionsAgent, StepFunctionsMode,
    execution_name,
};
use whatsapp_agent_lambda::approvals::{SfnCallbacks, TaskApproval, TaskCallbacks, TaskOutcome};
use whatsapp_agent_lambda::aws::sdk_config_for;
use whatsapp_agent_lambda::dev::moto::job_queue;
use whatsapp_agent_lambda::queue::{JOB_VERSION, Job, Work};

const REGION: &str = "us-east-1";
/// moto accepts any role; AWS would need one that Step Functions can assume.
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/sfn";
/// The stack name the machine's `Name` is substituted with.
const STACK_NAME: &str = "whatsapp-agent";
const MACHINE: &str = "ApprovalExampleStateMachine";
/// The resource of the template's Lambda steps, which the test runs as Pass states.
const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
const WAIT_FOR_SQS: &str = "arn:aws:states:::sqs:sendMessage.waitForTaskToken";
/// The worker the Lambda steps would invoke (never called here).
const WORKER_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:whatsapp-agent-worker";
/// The longest expiry as the template's default gives it.
const MAX_EXPIRY: &str = "86400";
/// A longest expiry that makes the machine's Approval timeout (longest expiry + 600 s, which the
/// machine computes itself) one second, to see a task nobody answers.
const ONE_SECOND_TIMEOUT: &str = "-599";
/// How long moto may take to run an execution to its end, or to put its job on the queue.
const DEADLINE: Duration = Duration::from_secs(20);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const COMMAND: &str = "kubectl rollout restart deployment/api -n prod";

/// `template.yaml`, read once per test binary.
fn template() -> &'static Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    TEMPLATE.get_or_init(raw_template)
}

/// The example machine's properties as the template writes them.
fn machine_properties() -> &'static Value {
    let properties = &template()["Resources"][MACHINE]["Properties"];
    assert!(
        properties.is_object(),
        "template.yaml has no {MACHINE}: update this test"
    );
    properties
}

/// The example machine's definition as the template writes it.
fn template_definition() -> &'static Value {
    &machine_properties()["Definition"]
}

/// The definition this test runs: the template's, each Lambda step replaced by a Pass state
/// whose output is the Lambda's payload (what the worker would be invoked with), and every
/// `${...}` of `DefinitionSubstitutions` filled in from `substitutions` (which must name each).
fn test_definition(substitutions: &[(&str, &str)]) -> String {
    let mut definition = template_definition().clone();
    let states = definition["States"]
        .as_object_mut()
        .expect("the definition has States");
    let mut replaced = 0;
    for (name, state) in states.iter_mut() {
        if state["Resource"] != json!(LAMBDA_INVOKE) {
            continue;
        }
        let fields = state.as_object().expect("a state is an object");
        for key in fields.keys() {
            // What a Pass state keeps (Next/End, ResultPath, Comment), or what it replaces
            // (Type, Resource, Parameters, the Lambda's Retry): anything else (ResultSelector,
            // OutputPath, Catch…) would change what the test sees.
            assert!(
                [
                    "Type",
                    "Resource",
                    "Parameters",
                    "Retry",
                    "Next",
                    "End",
                    "ResultPath",
                    "Comment"
                ]
                .contains(&key.as_str()),
                "{name} has `{key}`: this test does not know how to run it as a Pass state"
            );
        }
        let payload = state["Parameters"]["Payload"].clone();
        assert!(
            payload.is_object(),
            "{name} invokes a Lambda without a Payload"
        );
        let mut pass = serde_json::Map::new();
        pass.insert("Type".into(), json!("Pass"));
        pass.insert("Parameters".into(), payload);
        for kept in ["Next", "End", "ResultPath", "Comment"] {
            if let Some(value) = fields.get(kept) {
                pass.insert(kept.into(), value.clone());
            }
        }
        *state = Value::Object(pass);
        replaced += 1;
    }
    assert!(
        replaced >= 2,
        "{MACHINE} reports through the worker (a Lambda step for the reply and one for a \
         failure); {replaced} found"
    );

    let mut expected: Vec<String> = machine_properties()["DefinitionSubstitutions"]
        .as_object()
        .expect("DefinitionSubstitutions")
        .keys()
        .cloned()
        .collect();
    expected.sort();
    let mut given: Vec<String> = substitutions.iter().map(|(k, _)| (*k).to_owned()).collect();
    given.sort();
    assert_eq!(
        given, expected,
        "the substitutions of {MACHINE} changed: update this test"
    );
    let mut text = definition.to_string();
    for (name, value) in substitutions {
        text = text.replace(&format!("${{{name}}}"), value);
    }
    assert!(!text.contains("${"), "a substitution is left: {text}");
    text
}

/// The machine's name as the template's `Name` makes it for [`STACK_NAME`].
fn machine_name() -> String {
    let name = &machine_properties()["Name"];
    let pattern = name["Fn::Sub"]
        .as_str()
        .unwrap_or_else(|| panic!("{MACHINE}'s Name is not a !Sub: {name}"));
    pattern.replace("${AWS::StackName}", STACK_NAME)
}

/// What the template's Propose step proposes as the summary.
fn proposed_summary() -> String {
    let propose = &template_definition()["States"]["Propose"];
    assert_eq!(
        propose["Parameters"]["command.$"],
        json!("$.event.text"),
        "the example proposes to run what the user wrote: update this test"
    );
    propose["Parameters"]["summary"]
        .as_str()
        .expect("a fixed summary")
        .to_owned()
}

/// A request from the sample user asking for [`COMMAND`], as message `id`.
fn request_for(id: &str) -> AgentRequest {
    let mut request = agent_request();
    request.event.id = id.to_owned();
    request.event.text = COMMAND.to_owned();
    request
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// moto running Step Functions executions, with the job queue.
struct Rig {
    _moto: Moto,
    config: SdkConfig,
    sqs: aws_sdk_sqs::Client,
    sfn: aws_sdk_sfn::Client,
    queue_url: String,
    callbacks: SfnCallbacks,
}

/// One variant of the example machine in moto, and the async agent that starts it.
struct Machine {
    arn: String,
    agent: StepFunctionsAgent,
}

/// A job received from the queue, with the attributes it was sent with.
struct Received {
    task: TaskApproval,
    group: String,
    deduplication: String,
}

impl Rig {
    async fn start() -> Self {
        let moto = Moto::start();
        moto.configure(&json!({"stepfunctions": {"execute_state_machine": true}}));
        let config = sdk_config_for(moto.endpoint(), REGION).await;
        let queue_url = job_queue(&config, "whatsapp-agent-jobs")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Self {
            sqs: aws_sdk_sqs::Client::new(&config),
            sfn: aws_sdk_sfn::Client::new(&config),
            callbacks: SfnCallbacks::new(&config),
            _moto: moto,
            config,
            queue_url,
        }
    }

    /// The example machine as `name`, with the longest expiry `max_expiry` and its jobs going
    /// to `queue_url`.
    async fn machine(&self, name: &str, max_expiry: &str, queue_url: &str) -> Machine {
        let definition = test_definition(&[
            ("JobQueueUrl", queue_url),
            ("ApprovalMaxExpirySecs", max_expiry),
            ("WorkerFunctionArn", WORKER_ARN),
        ]);
        let created = self
            .sfn
            .create_state_machine()
            .name(name)
            .definition(definition)
            .role_arn(ROLE_ARN)
            .r#type(aws_sdk_sfn::types::StateMachineType::Standard)
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "create {name} in moto: {}",
                    aws_sdk_sfn::error::DisplayErrorContext(e)
                )
            });
        let arn = created.state_machine_arn().to_owned();
        let agent = StepFunctionsAgent::new(&self.config, arn.clone(), StepFunctionsMode::Async);
        Machine { arn, agent }
    }

    /// Starts `machine` for `request` as the worker does (no reply now); the execution's ARN.
    async fn ask(&self, machine: &Machine, request: &AgentRequest) -> String {
        assert_eq!(
            machine
                .agent
                .ask(request)
                .await
                .expect("the execution starts"),
            None,
            "an async agent answers later"
        );
        let name = execution_name(&request.event.id);
        self.sfn
            .list_executions()
            .state_machine_arn(&machine.arn)
            .send()
            .await
            .expect("list executions")
            .executions()
            .iter()
            .find(|execution| execution.name() == name)
            .map(|execution| execution.execution_arn().to_owned())
            .unwrap_or_else(|| panic!("no execution {name}"))
    }

    /// The next job on the queue, read as the worker reads it; deleted, so that the next job of
    /// the FIFO group can be received.
    async fn next_job(&self) -> Received {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(1)
                .wait_time_seconds(1)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .expect("receive from the job queue");
            if let Some(message) = received.messages().first() {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue_url)
                    .receipt_handle(message.receipt_handle().expect("a receipt handle"))
                    .send()
                    .await
                    .expect("delete the job");
                let body = message.body().expect("a body");
                let job: Job = serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("the job is not a Job ({e}): {body}"));
                assert_eq!(job.version, JOB_VERSION);
                let Work::Approval(task) = job.work else {
                    panic!("the job is not an approval: {body}");
                };
                let attribute = |name: MessageSystemAttributeName| {
                    message
                        .attributes()
                        .and_then(|attributes| attributes.get(&name))
                        .cloned()
                        .unwrap_or_else(|| panic!("no {name:?} on the job"))
                };
                return Received {
                    task,
                    group: attribute(MessageSystemAttributeName::MessageGroupId),
                    deduplication: attribute(MessageSystemAttributeName::MessageDeduplicationId),
                };
            }
            assert!(
                Instant::now() < deadline,
                "no approval job on the queue within {DEADLINE:?}"
            );
        }
    }

    /// The execution once it ended.
    async fn finished(&self, execution_arn: &str) -> DescribeExecutionOutput {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let described = self
                .sfn
                .describe_execution()
                .execution_arn(execution_arn)
                .send()
                .await
                .expect("describe the execution");
            if described.status().as_str() != "RUNNING" {
                return described;
            }
            assert!(
                Instant::now() < deadline,
                "the execution still runs after {DEADLINE:?}"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// `None` while the execution runs, else its status.
    async fn finished_or_running(&self, execution_arn: &str) -> Option<String> {
        let described = self
            .sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .expect("describe the execution");
        let status = described.status().as_str();
        (status != "RUNNING").then(|| status.to_owned())
    }

    /// The "deliver" event the execution ended with: what its last step would invoke the
    /// worker with.
    async fn delivered(&self, execution_arn: &str) -> DeliverEvent {
        let finished = self.finished(execution_arn).await;
        assert_eq!(finished.status().as_str(), "SUCCEEDED", "{finished:?}");
        let output = finished.output().expect("an output");
        serde_json::from_str(output)
            .unwrap_or_else(|e| panic!("the output is not a deliver event ({e}): {output}"))
    }
}

/// The outcome the engine answers a task with.
fn outcome(task: &TaskApproval, id: &str, decision: &str, decided_by: &[&str]) -> TaskOutcome {
    TaskOutcome {
        id: id.to_owned(),
        decision: decision.to_owned(),
        decided_by: decided_by.iter().map(|s| (*s).to_owned()).collect(),
        summary: task.ask.summary.clone(),
        command: task.ask.command.clone(),
        reason: (decision == "refused").then(|| "the requester is not allowed to ask".to_owned()),
    }
}

#[tokio::test]
async fn approved_task_acts_and_reports_to_the_requester() {
    let rig = Rig::start().await;
    let machine = rig
        .machine(&machine_name(), MAX_EXPIRY, &rig.queue_url)
        .await;
    let request = request_for("wamid.approval-approved");
    let execution = rig.ask(&machine, &request).await;

    let job = rig.next_job().await;
    let task = &job.task;
    assert_eq!(task.ask.summary, proposed_summary());
    assert_eq!(
        task.ask.command, COMMAND,
        "the command proposed is the user's text"
    );
    assert_eq!(
        task.requester.as_deref(),
        Some(request.event.user.id.as_str()),
        "the requester is the user who asked"
    );
    assert_eq!(task.ask.required, Some(1));
    assert_eq!(task.ask.approvers, None, "all of APPROVERS");
    assert_eq!(
        task.ask.expires_in_secs, None,
        "APPROVAL_EXPIRY_SECS applies"
    );
    assert!(
        !task.task_token.is_empty(),
        "the job carries the task token"
    );
    // The FIFO attributes: the group the worker's own approval jobs use; one job per task.
    assert_eq!(
        job.group,
        Job::of(Work::Approval(task.clone())).group(),
        "the machine's MessageGroupId"
    );
    assert_eq!(job.deduplication, sha256_hex(&task.task_token));

    // Someone else's late or forged answer: not a task Step Functions knows.
    let bogus = rig
        .callbacks
        .succeed("not-a-task-token", "{}")
        .await
        .expect_err("a bogus token is refused");
    assert!(bogus.is_gone(), "{bogus}");
    assert!(!bogus.is_retryable(), "{bogus}");
    assert!(bogus.to_string().contains("InvalidToken"), "{bogus}");

    let approved = outcome(task, "k3x9q2", "approved", &["+447700900123"]);
    rig.callbacks
        .succeed(
            &task.task_token,
            &serde_json::to_string(&approved).expect("encodable"),
        )
        .await
        .expect("the task takes the answer");

    let delivered = rig.delivered(&execution).await.deliver;
    assert_eq!(delivered.request, request, "delivered to the requester");
    assert_eq!(delivered.error, None);
    let reply = delivered.reply.expect("a reply");
    assert_eq!(reply.status, Some(ReplyStatus::Success), "{reply:?}");
    let text = reply.text.expect("a text");
    assert!(
        text.starts_with("Approved (k3x9q2)") && text.contains(COMMAND),
        "the Act step's reply names the request and the command: {text}"
    );

    // A second answer (another approver's tap racing the first) finds nothing waiting.
    let late = rig
        .callbacks
        .succeed(
            &task.task_token,
            &serde_json::to_string(&approved).expect("encodable"),
        )
        .await
        .expect_err("the task was answered");
    assert!(late.is_gone(), "{late}");
}

#[tokio::test]
async fn refused_tasks_end_through_the_catch_and_the_refusal_is_reported() {
    let rig = Rig::start().await;
    let machine = rig
        .machine(&machine_name(), MAX_EXPIRY, &rig.queue_url)
        .await;
    for (error, decided_by) in [
        ("approval.denied", &["+447700900123"][..]),
        ("approval.expired", &[][..]),
        ("approval.refused", &[][..]),
    ] {
        let decision = error.trim_start_matches("approval.");
        let request = request_for(&format!("wamid.approval-{decision}"));
        let execution = rig.ask(&machine, &request).await;
        let job = rig.next_job().await;
        let cause = outcome(&job.task, "p7w2m4", decision, decided_by);
        rig.callbacks
            .fail(
                &job.task.task_token,
                error,
                &serde_json::to_string(&cause).expect("encodable"),
            )
            .await
            .unwrap_or_else(|e| panic!("{error}: the task takes the answer: {e}"));

        let delivered = rig.delivered(&execution).await.deliver;
        assert_eq!(delivered.request, request, "{error}");
        assert_eq!(delivered.error, None, "{error}: a refusal is no failure");
        let reply = delivered.reply.expect("a reply");
        assert_eq!(
            reply.status,
            Some(ReplyStatus::Warning),
            "{error}: {reply:?}"
        );
        let text = reply.text.expect("a text");
        assert_eq!(
            text,
            format!("Not run ({error}): {COMMAND}"),
            "{error}: the Refused step's reply"
        );
    }
}

#[tokio::test]
async fn a_task_nobody_answers_times_out_and_a_job_that_cannot_be_queued_fails_visibly() {
    let rig = Rig::start().await;

    // Nobody answers within the longest expiry + 600 s (here 1 s): States.Timeout, reported.
    let timing_out = rig
        .machine("approval-timeout", ONE_SECOND_TIMEOUT, &rig.queue_url)
        .await;
    let request = request_for("wamid.approval-unanswered");
    let execution = rig.ask(&timing_out, &request).await;
    let job = rig.next_job().await;
    let delivered = rig.delivered(&execution).await.deliver;
    let reply = delivered.reply.expect("a reply");
    assert_eq!(reply.status, Some(ReplyStatus::Warning), "{reply:?}");
    assert_eq!(
        reply.text.as_deref(),
        Some(format!("Not run (States.Timeout): {COMMAND}").as_str())
    );
    // An approval arriving after the machine gave up finds nothing waiting. (SendTaskSuccess:
    // moto takes a SendTaskFailure for a task that ended, where AWS answers TaskTimedOut.)
    let approved = outcome(&job.task, "t5r8n1", "approved", &["+447700900123"]);
    let late = rig
        .callbacks
        .succeed(
            &job.task.task_token,
            &serde_json::to_string(&approved).expect("encodable"),
        )
        .await
        .expect_err("the task timed out");
    assert!(late.is_gone(), "{late}");

    // The job queue refuses the job: the requester gets the ❌ message (a deliver error).
    let missing_queue = rig
        .queue_url
        .replace("whatsapp-agent-jobs", "no-such-queue");
    let unqueued = rig
        .machine("approval-no-queue", MAX_EXPIRY, &missing_queue)
        .await;
    let request = request_for("wamid.approval-unqueued");
    let execution = rig.ask(&unqueued, &request).await;
    let delivered = rig.delivered(&execution).await.deliver;
    assert_eq!(delivered.request, request);
    assert_eq!(delivered.reply, None);
    let error = delivered.error.expect("the failure is delivered");
    assert!(
        error["Error"]
            .as_str()
            .is_some_and(|e| e.starts_with("SQS.")),
        "{error}"
    );
}

#[test]
fn the_sample_event_carries_the_job_the_example_machine_sends() {
    let event = event_json("sqs-approval-task.json");
    let records = event["Records"].as_array().expect("Records");
    assert_eq!(records.len(), 1);
    let record = &records[0];
    let body = record["body"].as_str().expect("a body");
    let job: Job = serde_json::from_str(body).unwrap_or_else(|e| panic!("not a Job ({e}): {body}"));
    assert_eq!(job.version, JOB_VERSION);
    let Work::Approval(task) = &job.work else {
        panic!("not an approval job: {body}");
    };
    assert!(!task.task_token.is_empty());
    assert!(task.requester.is_some());

    // The same FIFO attributes as the template's Approval step writes.
    let approval = &template_definition()["States"]["Approval"];
    assert_eq!(approval["Resource"], json!(WAIT_FOR_SQS));
    let parameters = &approval["Parameters"];
    let attributes = &record["attributes"];
    assert_eq!(attributes["MessageGroupId"], parameters["MessageGroupId"]);
    assert_eq!(
        parameters["MessageDeduplicationId.$"],
        json!("States.Hash($$.Task.Token, 'SHA-256')")
    );
    assert_eq!(
        attributes["MessageDeduplicationId"],
        json!(sha256_hex(&task.task_token))
    );
    // Every field the machine sends is in the sample; the fixed ones with the same value.
    let sample: HashMap<String, Value> =
        serde_json::from_value(serde_json::from_str::<Value>(body).unwrap()["approval"].clone())
            .expect("an approval object");
    for (field, value) in parameters["MessageBody"]["approval"]
        .as_object()
        .expect("the approval the machine sends")
    {
        let field = field.trim_end_matches(".$");
        assert!(sample.contains_key(field), "the sample has no {field}");
        if !value.is_string() {
            assert_eq!(&sample[field], value, "{field}");
        }
    }
    assert_eq!(parameters["MessageBody"]["version"], json!(JOB_VERSION));
}

// The whole flow through the real binaries: the `worker` polling the job queue (and the timer
// queue) on moto as Lambda's event source mappings would, the `webhook` in queue mode taking the
// approver's signed tap onto the same job queue, the loopback Graph API the worker sends
// through. The machine runs on moto as above; nothing is answered by the test itself.

/// The approver (not an allowed sender: only the tap on the request passes).
const BOB: &str = "447700900123";
/// The requester: the sample user of `agent_request`.
const ALICE: &str = "14155551234";

/// A real binary started by a test; killed when dropped.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What both binaries need to reach moto and run approvals, with jobs on `queue_url` and timers
/// on `timer_queue_url`.
fn binary_env(endpoint: &str, queue_url: &str, timer_queue_url: &str) -> Vec<(String, String)> {
    let missing = std::env::temp_dir().join("no-such-aws-config");
    let missing = missing.to_string_lossy().into_owned();
    [
        ("DISPATCH", "queue"),
        ("JOB_QUEUE_URL", queue_url),
        ("TIMER_QUEUE_URL", timer_queue_url),
        ("APPROVERS", "+447700900123"),
        ("PHONE_NUMBER_ID", "106540352242922"),
        ("APPROVAL_TEMPLATE", "approval_request:en"),
        ("NOTICE_TEMPLATE", "approval_notice:en"),
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_CONFIG_FILE", missing.as_str()),
        ("AWS_SHARED_CREDENTIALS_FILE", missing.as_str()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// One approval request sent to Bob.
struct BobsRequest {
    /// The wamid the Graph API stand-in gave it.
    wamid: String,
    approve: String,
    deny: String,
    /// Sent as the approval template (his window closed), else as interactive buttons.
    template: bool,
    /// The template's body parameters (empty for buttons).
    parameters: Vec<String>,
}

/// The approval requests the Graph API stand-in was sent for Bob, oldest first.
fn requests_to_bob(sent: &support::fakes::Sent) -> Vec<BobsRequest> {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    sent.lock()
        .unwrap()
        .iter()
        .filter(|(_, body)| body["to"] == BOB)
        .filter_map(|(id, body)| {
            if body["template"]["name"] == "approval_request" {
                let components = &body["template"]["components"];
                return Some(BobsRequest {
                    wamid: id.clone(),
                    approve: text(&components[1]["parameters"][0]["payload"]),
                    deny: text(&components[2]["parameters"][0]["payload"]),
                    template: true,
                    parameters: components[0]["parameters"]
                        .as_array()
                        .expect("body parameters")
                        .iter()
                        .map(|p| text(&p["text"]))
                        .collect(),
                });
            }
            let buttons = &body["interactive"]["action"]["buttons"];
            (body["interactive"]["header"]["text"] == "🔐 Approval requested").then(|| {
                BobsRequest {
                    wamid: id.clone(),
                    approve: text(&buttons[0]["reply"]["id"]),
                    deny: text(&buttons[1]["reply"]["id"]),
                    template: false,
                    parameters: Vec::new(),
                }
            })
        })
        .collect()
}

/// What was said to `to` (a text, or an `approval_notice` template's parameter).
fn said_to(sent: &support::fakes::Sent, to: &str) -> Vec<String> {
    sent.lock()
        .unwrap()
        .iter()
        .filter(|(_, body)| body["to"] == to)
        .filter_map(|(_, body)| {
            body["text"]["body"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| {
                    (body["template"]["name"] == "approval_notice")
                        .then(|| {
                            body["template"]["components"][0]["parameters"][0]["text"].as_str()
                        })
                        .flatten()
                        .map(str::to_owned)
                })
        })
        .collect()
}

/// Bob taps `tap` (a quick reply of the template, else a button) on `request`, signed as Meta
/// signs.
fn bob_taps(
    webhook: &support::local_webhook::LocalWebhook,
    n: u32,
    request: &BobsRequest,
    tap: &str,
) {
    let mut message = json!({
        "from": BOB, "id": format!("wamid.BOB.TAP.{n}"),
        "timestamp": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH).unwrap().as_secs().to_string(),
        "context": {"from": "15550001111", "id": request.wamid},
    });
    if request.template {
        message["type"] = "button".into();
        message["button"] = json!({"payload": tap, "text": "Approve"});
    } else {
        message["type"] = "interactive".into();
        message["interactive"] =
            json!({"type": "button_reply", "button_reply": {"id": tap, "title": "Deny"}});
    }
    let envelope =
        whatsapp_agent_lambda::dev::events::with_message(&event_json("post-text.json"), message)
            .expect("a signed envelope");
    assert_eq!(webhook.post_envelope(&envelope).0, 200);
}

/// Waits (bounded) until `check` finds something, polling.
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The output of the execution's `TaskSucceeded` event (the approval's decision), or the error
/// and cause of its `TaskFailed` event.
async fn task_answer(rig: &Rig, execution_arn: &str) -> (Option<String>, Option<(String, String)>) {
    let history = rig
        .sfn
        .get_execution_history()
        .execution_arn(execution_arn)
        .send()
        .await
        .expect("the execution's history");
    let mut succeeded = None;
    let mut failed = None;
    for event in history.events() {
        if let Some(details) = event.task_succeeded_event_details() {
            succeeded = details.output().map(str::to_owned);
        }
        if let Some(details) = event.task_failed_event_details() {
            failed = Some((
                details.error().unwrap_or_default().to_owned(),
                details.cause().unwrap_or_default().to_owned(),
            ));
        }
    }
    (succeeded, failed)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_binary_asks_the_approver_and_a_signed_tap_through_the_webhook_decides_the_task()
{
    use support::fakes::{numbering_graph, requests_agent};
    use support::local_webhook::{LocalWebhook, local_env};
    use whatsapp_agent_lambda::domain::mask;

    let rig = Rig::start().await;
    let timer_queue = whatsapp_agent_lambda::dev::moto::timer_queue(&rig.config, "timers")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let machine = rig
        .machine(&machine_name(), MAX_EXPIRY, &rig.queue_url)
        .await;
    let (agent, agent_requests) = requests_agent("never asked");
    let (graph, sent) = numbering_graph();
    let env = binary_env(rig._moto.endpoint(), &rig.queue_url, &timer_queue);
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();

    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_worker"));
    local_env(&mut worker, &agent.url(), &graph.url());
    worker
        .envs(env_refs.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit());
    let _worker = Process(worker.spawn().expect("start the worker binary"));
    let webhook = LocalWebhook::start(
        &agent.url(),
        &graph.url(),
        &env_refs,
        std::process::Stdio::inherit(),
    );
    let (alice, bob) = (mask(ALICE), mask(BOB));

    // Approved: the execution goes on to Act.
    let request = request_for("wamid.e2e-approved");
    let execution = rig.ask(&machine, &request).await;
    let asked = eventually("the worker asks Bob", || requests_to_bob(&sent).pop()).await;
    assert!(asked.template, "Bob never wrote: his window is closed");
    let id = asked
        .approve
        .strip_prefix("wal:approval:")
        .and_then(|rest| rest.split(':').next())
        .expect("an approval payload")
        .to_owned();
    assert_eq!(
        asked.parameters,
        [
            alice.as_str(),
            proposed_summary().as_str(),
            COMMAND,
            "15 min"
        ],
        "Bob's window is closed: the template, naming the requester masked"
    );
    let waiting = eventually("Alice is told who is asked", || {
        said_to(&sent, ALICE)
            .into_iter()
            .find(|t| t.starts_with("⏳ Waiting for approval"))
    })
    .await;
    assert!(waiting.contains(&bob) && waiting.contains(&id), "{waiting}");
    assert_eq!(
        rig.finished_or_running(&execution).await,
        None,
        "the machine waits for the decision"
    );

    bob_taps(&webhook, 1, &asked, &asked.approve);
    let finished = rig.finished(&execution).await;
    assert_eq!(finished.status().as_str(), "SUCCEEDED", "{finished:?}");
    let output: DeliverEvent =
        serde_json::from_str(finished.output().expect("an output")).expect("a deliver event");
    let text = output.deliver.reply.expect("a reply").text.expect("a text");
    assert!(
        text.starts_with(&format!("Approved ({id}): {COMMAND}")),
        "the Act step ran with the decision: {text}"
    );
    let (succeeded, failed) = task_answer(&rig, &execution).await;
    assert_eq!(failed, None);
    let decision: TaskOutcome =
        serde_json::from_str(&succeeded.expect("SendTaskSuccess")).expect("the decision");
    assert_eq!(decision.id, id);
    assert_eq!(decision.decision, "approved");
    assert_eq!(decision.decided_by, [bob.as_str()]);
    assert_eq!(decision.command, COMMAND);
    let notice = format!("✅ Approved by {bob}: {} ({id})", proposed_summary());
    for person in [ALICE, BOB] {
        eventually("the outcome notices", || {
            said_to(&sent, person).into_iter().find(|t| *t == notice)
        })
        .await;
    }

    // Denied: the execution goes through the Catch to Refused.
    let request = request_for("wamid.e2e-denied");
    let execution = rig.ask(&machine, &request).await;
    let asked = eventually("the worker asks Bob again", || {
        requests_to_bob(&sent).into_iter().nth(1)
    })
    .await;
    assert!(
        !asked.template,
        "Bob's tap opened his 24-hour window: buttons this time"
    );
    bob_taps(&webhook, 2, &asked, &asked.deny);
    let delivered = rig.delivered(&execution).await.deliver;
    let reply = delivered.reply.expect("a reply");
    assert_eq!(reply.status, Some(ReplyStatus::Warning), "{reply:?}");
    assert_eq!(
        reply.text.as_deref(),
        Some(format!("Not run (approval.denied): {COMMAND}").as_str())
    );
    let (succeeded, failed) = task_answer(&rig, &execution).await;
    assert_eq!(succeeded, None);
    // moto keeps SendTaskFailure's error but drops its cause (the decision as JSON): the
    // decision shows in the notices instead.
    let (error, _cause) = failed.expect("SendTaskFailure");
    assert_eq!(error, "approval.denied");
    let id = asked
        .deny
        .strip_prefix("wal:approval:")
        .and_then(|rest| rest.split(':').next())
        .expect("an approval button id")
        .to_owned();
    let notice = format!("❌ Denied by {bob}: {} ({id})", proposed_summary());
    for person in [ALICE, BOB] {
        eventually("the outcome notices", || {
            said_to(&sent, person).into_iter().find(|t| *t == notice)
        })
        .await;
    }

    assert!(
        agent_requests.lock().unwrap().is_empty(),
        "the machine asked, not an agent: nothing reaches the agent"
    );
}

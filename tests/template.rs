//! The deployment template (`template.yaml`): cfn-lint and `sam validate --lint` accept it,
//! offline and without AWS credentials; the pinned cfn-lint really catches a broken reference
//! anywhere in it, including inside `AWS::Serverless::Function`; and the stack it describes,
//! read from the output of the real SAM transform (which cfn-lint prints with `--info`), has
//! the production shape of README's "How it works": a FIFO job queue with a dead-letter queue
//! after the worker's last attempt, partial batch failures, least-privilege roles, a claims
//! table with TTL, a dead-letter alarm, and environments the configuration accepts for every
//! agent backend. With `OnCall` set (on-call paging), also the alerts table (TTL), the timer
//! queue with its own dead-letter queue and alarm, the worker's second event source, the
//! `POST /alerts` route with its own throttling, and paging permissions scoped to those
//! resources; without it, none of them. With `Approvers` set (approvals), the approvals table
//! (TTL), the timer queue (shared with paging), their permissions, and on request the example
//! state machine that asks for an approval through the job queue and reports through the
//! worker, which may answer its tasks (and those of `ApprovalStateMachineArns`) and nothing
//! else's; without it, none of them.
//!
//! The tools come from the project's `.venv` (`make venv`, pinned in `tests/requirements.txt`).
//! Every child process gets a clean environment: a throwaway `HOME`, no AWS credentials or
//! profile, instance metadata disabled and every HTTP(S) proxy pointed at a closed loopback
//! port, so a tool that tried to reach AWS or the internet would fail instead of passing.

use serde_json::{Value, json};
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use whatsapp_agent_lambda::config::{
    AgentBackend, Config, DEFAULT_AGENT_TIMEOUT, DEFAULT_MAX_RECEIVE_COUNT, Dispatch, LEASE_MARGIN,
    StepFunctionsMode,
};
use whatsapp_agent_lambda::sessions::{DEFAULT_HISTORY_TURNS, DEFAULT_SESSION_TTL_DAYS};

/// A tool that takes longer is killed and the test fails (a hang must not stall CI).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
/// Extra time a cfn-lint run gets per template it lints beyond the first (about 0.5 s each on
/// an idle machine; CI runners are slower and run other tests meanwhile).
const PER_EXTRA_TEMPLATE: Duration = Duration::from_secs(3);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Port 9 (discard) on loopback: nothing listens, so any proxied request fails at once.
const DEAD_PROXY: &str = "http://127.0.0.1:9";
const REGION: &str = "us-east-1";
const TEMPLATE: &str = "template.yaml";
const MISSING_PREFIX: &str = "Missing";

#[test]
fn template_passes_cfn_lint() {
    let scratch = Scratch::new("cfn-lint");
    let out = run(
        &tool("cfn-lint"),
        [repo().join(TEMPLATE).as_os_str()],
        &scratch,
    );
    assert!(
        out.status.success(),
        "cfn-lint {TEMPLATE} failed ({}):\n{}",
        out.status,
        out.text()
    );
}

#[test]
fn cfn_lint_rejects_a_broken_ref() {
    // The webhook's permission to read its secret: a typo here must not reach a deploy.
    // cfn-lint 1.54-1.58 validate AWS::Serverless::Function against bundled schemas and miss
    // it; the pinned one lints the output of the real SAM transform.
    let anchor = "Sid: WebhookReadsWhatsAppSecret";
    let original = "!Ref WhatsAppSecret,";
    let template = read_template();
    assert_eq!(
        template.matches(anchor).count(),
        1,
        "{TEMPLATE} no longer has exactly one `{anchor}`: update this test"
    );
    let statement = template.find(anchor).expect("counted above") + anchor.len();
    let at = template[statement..]
        .find(original)
        .map(|offset| statement + offset)
        .filter(|&at| !template[statement..at].contains("Sid:"))
        .unwrap_or_else(|| {
            panic!("the `{anchor}` statement no longer has `{original}`: update this test")
        });
    let missing = format!("{MISSING_PREFIX}WhatsAppSecret");
    let scratch = Scratch::new("broken-ref");
    let copy = scratch.path().join(TEMPLATE);
    write(
        &copy,
        &format!(
            "{}!Ref {missing},{}",
            &template[..at],
            &template[at + original.len()..]
        ),
    );

    let out = run(&tool("cfn-lint"), [copy.as_os_str()], &scratch);
    let text = out.text();
    assert!(
        !out.status.success(),
        "cfn-lint accepted a !Ref to the missing `{missing}`:\n{text}"
    );
    assert!(
        text.contains("E1020") && text.contains(&format!("'{missing}'")),
        "cfn-lint failed without naming the broken reference `{missing}` (E1020):\n{text}"
    );
}

#[test]
fn cfn_lint_catches_every_broken_ref() {
    // One copy per `!Ref` and `!GetAtt` in the template, that one's target renamed, linted by
    // a few cfn-lint runs side by side.
    let template = read_template();
    let refs = references(&template);
    assert!(
        refs.iter().any(|r| r.tag == "!Ref") && refs.iter().any(|r| r.tag == "!GetAtt"),
        "{TEMPLATE} has no `!Ref` or no `!GetAtt` to break"
    );

    let scratch = Scratch::new("every-ref");
    let copies: Vec<(String, &Reference)> = refs
        .iter()
        .enumerate()
        .map(|(i, reference)| {
            let file = format!("ref{i:03}.yaml");
            let at = reference.at;
            let broken = format!("{}{MISSING_PREFIX}{}", &template[..at], &template[at..]);
            write(&scratch.path().join(&file), &broken);
            (file, reference)
        })
        .collect();

    let runs = thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4));
    let per_run = copies.len().div_ceil(runs);
    let outputs: Vec<Output> = thread::scope(|scope| {
        let scratch = &scratch;
        let handles: Vec<_> = copies
            .chunks(per_run)
            .map(|chunk| {
                scope.spawn(move || {
                    let mut args = vec![OsStr::new("--format"), OsStr::new("parseable")];
                    args.extend(chunk.iter().map(|(file, _)| OsStr::new(file.as_str())));
                    let extra = PER_EXTRA_TEMPLATE * u32::try_from(chunk.len() - 1).unwrap_or(0);
                    run_bounded(&tool("cfn-lint"), args, scratch, TOOL_TIMEOUT + extra)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e))
            })
            .collect()
    });

    let stdout: String = outputs.iter().map(|out| out.stdout.as_str()).collect();
    let missed: Vec<String> = copies
        .iter()
        .filter(|(file, _)| !has_error_for(&stdout, file))
        .map(|(file, r)| format!("{file}: `{} {}` on line {}", r.tag, r.name, r.line))
        .collect();
    assert!(
        missed.is_empty(),
        "cfn-lint found no error after renaming these references to {MISSING_PREFIX}<name>:\n  {}\n\
         output:\n{}",
        missed.join("\n  "),
        outputs.iter().map(Output::text).collect::<String>()
    );
}

#[test]
fn template_passes_sam_validate_lint() {
    let scratch = Scratch::new("sam-validate");
    let template = repo().join(TEMPLATE);
    let args = [
        OsStr::new("validate"),
        OsStr::new("--lint"),
        OsStr::new("--template"),
        template.as_os_str(),
    ];
    let out = run(&tool("sam"), args, &scratch);
    let text = out.text();
    assert!(
        out.status.success(),
        "sam validate --lint failed ({}):\n{text}",
        out.status
    );
    assert!(
        text.contains("is a valid SAM Template"),
        "sam validate --lint exited 0 without saying the template is valid:\n{text}"
    );
}

#[test]
fn job_queue_is_fifo_and_dead_letters_after_the_workers_last_attempt() {
    let stack = Stack::deployed(&[]);
    let queue = stack.properties("JobQueue");
    assert_eq!(
        queue["FifoQueue"],
        json!(true),
        "the job queue must be FIFO"
    );
    // Deduplication is by message id (MessageDeduplicationId), never by content.
    assert_eq!(queue["ContentBasedDeduplication"], json!(false));
    let redrive = &queue["RedrivePolicy"];
    assert_eq!(
        redrive["deadLetterTargetArn"],
        json!({"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}),
        "the job queue must redrive to DeadLetterQueue"
    );
    let dead_letters = stack.properties("DeadLetterQueue");
    assert_eq!(
        dead_letters["FifoQueue"],
        json!(true),
        "a FIFO queue's DLQ is FIFO"
    );
    assert!(
        retention(&dead_letters) > retention(&queue),
        "dead letters must outlive the jobs they come from"
    );

    // The worker's last attempt (MAX_RECEIVE_COUNT) is the queue's last delivery.
    let max_receive_count = &redrive["maxReceiveCount"];
    let parameter = max_receive_count["Ref"]
        .as_str()
        .unwrap_or_else(|| panic!("maxReceiveCount is not a parameter: {max_receive_count}"));
    assert_eq!(
        stack.raw_environment("WorkerFunction")["MAX_RECEIVE_COUNT"],
        *max_receive_count,
        "the worker's MAX_RECEIVE_COUNT must be the queue's maxReceiveCount ({parameter})"
    );
    assert_eq!(
        stack.parameter_default(parameter),
        DEFAULT_MAX_RECEIVE_COUNT.to_string(),
        "{parameter}'s default must be the configuration's"
    );
    assert_eq!(
        stack.parameter_default("AgentTimeoutSecs"),
        DEFAULT_AGENT_TIMEOUT.as_secs().to_string(),
        "AgentTimeoutSecs' default must be the configuration's"
    );
}

#[test]
fn job_queue_hides_a_job_longer_than_the_worker_and_its_claim_can_hold_it() {
    let stack = Stack::deployed(&[]);
    let worker_timeout = number(&stack.properties("WorkerFunction")["Timeout"]);
    let visibility = number(&stack.properties("JobQueue")["VisibilityTimeout"]);
    let longest_agent = number(&stack.template["Parameters"]["AgentTimeoutSecs"]["MaxValue"]);
    // The configuration's lease: IDEMPOTENCY_LEASE_SECS, by default agent timeout + margin.
    let longest_lease = match stack
        .raw_environment("WorkerFunction")
        .get("IDEMPOTENCY_LEASE_SECS")
    {
        Some(lease) => number(lease),
        None => longest_agent + LEASE_MARGIN.as_secs(),
    };

    assert!(
        worker_timeout >= longest_agent + LEASE_MARGIN.as_secs(),
        "the worker ({worker_timeout} s) must outlast the longest agent call ({longest_agent} s) \
         by {LEASE_MARGIN:?} to send the reply or the ❌ message"
    );
    // Lambda refuses an SQS event source whose queue hides messages for less than the
    // function's timeout.
    assert!(
        visibility > worker_timeout,
        "VisibilityTimeout ({visibility} s) must exceed the worker's Timeout ({worker_timeout} s)"
    );
    // A worker that dies at the end of a full invocation holding a fresh claim: its job must
    // come back only after the claim's lease expired, or the retry finds it in progress.
    assert!(
        visibility >= worker_timeout + longest_lease,
        "VisibilityTimeout ({visibility} s) must cover the worker's Timeout ({worker_timeout} s) \
         plus the longest claim lease ({longest_lease} s)"
    );
}

#[test]
fn worker_reports_batch_item_failures_with_bounded_concurrency() {
    let stack = Stack::deployed(&[]);
    let mappings = stack.resources_of_type("AWS::Lambda::EventSourceMapping");
    let worker_mappings: Vec<&(String, Value)> = mappings
        .iter()
        .filter(|(_, mapping)| {
            mapping["Properties"]["FunctionName"] == json!({"Ref": "WorkerFunction"})
        })
        .collect();
    assert_eq!(
        worker_mappings.len(),
        1,
        "the worker needs exactly one event source: {mappings:?}"
    );
    let mapping = &worker_mappings[0].1["Properties"];
    assert_eq!(
        mapping["EventSourceArn"],
        json!({"Fn::GetAtt": ["JobQueue", "Arn"]})
    );
    assert_eq!(
        mapping["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"]),
        "the worker returns batchItemFailures: without this SQS would redeliver whole batches"
    );
    assert_eq!(mapping["BatchSize"], json!(10));
    let concurrency = &mapping["ScalingConfig"]["MaximumConcurrency"];
    let smallest = match concurrency["Ref"].as_str() {
        Some(parameter) => number(&stack.template["Parameters"][parameter]["MinValue"]),
        None => number(concurrency),
    };
    assert!(
        smallest >= 2,
        "MaximumConcurrency must be set, and SQS needs at least 2: {concurrency}"
    );
}

#[test]
fn webhook_may_only_queue_jobs_and_read_the_secret() {
    let own_secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:whatsapp-AbCdEf";
    let stacks = Stack::every_backend()
        .into_iter()
        .chain([Stack::deployed(&[("WhatsAppSecretArn", own_secret)])])
        .chain([paging_stack(&[])])
        .chain([approvals_stack(&[("ApprovalExample", "true")])])
        .chain([paging_stack(&APPROVALS)]);
    for stack in stacks {
        let statements = stack.role_statements("WebhookFunction");
        let mut granted: Vec<(String, Value)> = Vec::new();
        for statement in &statements {
            assert_eq!(statement["Effect"], json!("Allow"), "{statement}");
            for action in strings(&statement["Action"]) {
                for resource in list(&statement["Resource"]) {
                    granted.push((action.clone(), resource));
                }
            }
        }
        granted.sort_by_key(|(action, resource)| format!("{action} {resource}"));
        let secret = match stack.param("WhatsAppSecretArn") {
            "" => json!({"Ref": "WhatsAppSecret"}),
            _ => json!({"Ref": "WhatsAppSecretArn"}),
        };
        let mut expected = vec![
            ("secretsmanager:GetSecretValue".to_owned(), secret),
            (
                "sqs:SendMessage".to_owned(),
                json!({"Fn::GetAtt": ["JobQueue", "Arn"]}),
            ),
        ];
        // Incidents and approval requests (consistent read, conditional write), and timers
        // (send only).
        for (condition, table) in [
            ("PagingOn", "AlertsTable"),
            ("ApprovalsOn", "ApprovalsTable"),
        ] {
            if stack.condition(condition) {
                let table = json!({"Fn::GetAtt": [table, "Arn"]});
                expected.extend([
                    ("dynamodb:GetItem".to_owned(), table.clone()),
                    ("dynamodb:PutItem".to_owned(), table),
                ]);
            }
        }
        if stack.condition("PagingOrApprovalsOn") {
            expected.push((
                "sqs:SendMessage".to_owned(),
                json!({"Fn::GetAtt": ["TimerQueue", "Arn"]}),
            ));
        }
        expected.sort_by_key(|(action, resource)| format!("{action} {resource}"));
        assert_eq!(
            granted, expected,
            "{}: the webhook may send jobs to the job queue and read its secret (and with paging \
             or approvals keep incidents or requests and schedule timers), nothing else",
            stack.label
        );
        assert_eq!(
            stack.managed_policies("WebhookFunction"),
            vec![BASIC_EXECUTION_ROLE.to_owned()],
            "{}",
            stack.label
        );

        let environment = stack.raw_environment("WebhookFunction");
        assert_eq!(environment["DISPATCH"], json!("queue"), "{}", stack.label);
        assert_eq!(environment["JOB_QUEUE_URL"], json!({"Ref": "JobQueue"}));
        for unused in [
            "IDEMPOTENCY_TABLE",
            "MAX_RECEIVE_COUNT",
            "AGENT_TIMEOUT_SECS",
            "SESSIONS_TABLE",
            "ENVIRONMENTS",
            "HISTORY_TURNS",
            "SESSION_TTL_DAYS",
            "REENGAGE_TEMPLATE",
        ] {
            assert!(
                environment.get(unused).is_none(),
                "{}: the webhook does not use {unused}",
                stack.label
            );
        }
    }
}

#[test]
fn worker_may_start_only_the_state_machine_its_mode_uses() {
    for stack in Stack::every_backend() {
        let statements = stack.role_statements("WorkerFunction");
        let states: Vec<(String, Value)> = statements
            .iter()
            .flat_map(|statement| {
                strings(&statement["Action"])
                    .into_iter()
                    .filter(|action| action.starts_with("states:"))
                    .flat_map(|action| {
                        list(&statement["Resource"])
                            .into_iter()
                            .map(move |resource| (action.clone(), resource))
                    })
            })
            .collect();
        let environment = stack.environment("WorkerFunction");
        let expected = match (
            stack.param("AgentBackend"),
            stack.param("StepFunctionsMode"),
        ) {
            ("http", _) => None,
            ("stepfunctions", "sync") => Some((
                "states:StartSyncExecution",
                "AgentSyncStateMachine",
                "EXPRESS",
            )),
            ("stepfunctions", "async") => Some((
                "states:StartExecution",
                "AgentAsyncStateMachine",
                "STANDARD",
            )),
            other => panic!("unknown backend {other:?}"),
        };
        let Some((action, machine, kind)) = expected else {
            assert!(
                states.is_empty(),
                "{}: no Step Functions access: {states:?}",
                stack.label
            );
            assert!(
                !environment.contains_key("STATE_MACHINE_ARN"),
                "{}",
                stack.label
            );
            continue;
        };
        assert!(
            stack.exists(machine),
            "{}: {machine} is not created",
            stack.label
        );
        assert_eq!(
            stack.properties(machine)["StateMachineType"],
            json!(kind),
            "{}",
            stack.label
        );
        assert_eq!(states.len(), 1, "{}: {states:?}", stack.label);
        let (granted, resource) = &states[0];
        assert_eq!(granted, action, "{}", stack.label);
        // The very state machine the configuration names, and the one this stack creates.
        let arn = stack.value(resource);
        assert_eq!(environment["STATE_MACHINE_ARN"], arn, "{}", stack.label);
        assert_eq!(arn, stack.reference(machine), "{}", stack.label);
    }
}

#[test]
fn roles_grant_no_wildcard_beyond_log_delivery() {
    let listed = stack_with_agents("http", &[("AgentStateMachineArns", LISTED_MACHINES)]);
    let paging = paging_stack(&[("AgentBackend", "stepfunctions")]);
    let approvals = approvals_stack(&[
        ("ApprovalExample", "true"),
        ("ApprovalStateMachineArns", APPROVAL_MACHINES),
    ]);
    let both = paging_stack(&APPROVALS);
    for stack in Stack::every_backend()
        .into_iter()
        .chain([listed, paging, approvals, both])
    {
        for (name, role) in stack.resources_of_type("AWS::IAM::Role") {
            for statement in stack.statements_of_role(&role) {
                // Evaluated: a parameter or a substitution could hide one.
                let wildcard = stack
                    .values(&statement["Resource"])
                    .iter()
                    .any(|r| r.contains('*'))
                    || strings(&statement["Action"])
                        .iter()
                        .any(|a| a.contains('*'));
                let log_delivery = strings(&statement["Action"])
                    .iter()
                    .all(|a| a.starts_with("logs:"));
                assert!(
                    !wildcard || log_delivery,
                    "{}: {name} grants a wildcard: {statement}",
                    stack.label
                );
            }
            // SAM's own SQS event would add AWSLambdaSQSQueueExecutionRole: every queue.
            let managed = role["Properties"]["ManagedPolicyArns"].clone();
            assert!(
                list(&managed)
                    .iter()
                    .all(|arn| *arn == json!(BASIC_EXECUTION_ROLE)),
                "{}: {name} has managed policies beyond {BASIC_EXECUTION_ROLE}: {managed}",
                stack.label
            );
        }
    }
}

/// A table as both of ours are declared: partition key `id` (S), TTL on `expires_at`, on
/// demand, point-in-time recovery, encrypted.
fn assert_keyed_table(stack: &Stack, name: &str) {
    let table = stack.properties(name);
    assert_eq!(
        table["KeySchema"],
        json!([{"AttributeName": "id", "KeyType": "HASH"}])
    );
    assert_eq!(
        table["AttributeDefinitions"],
        json!([{"AttributeName": "id", "AttributeType": "S"}])
    );
    assert_eq!(
        table["TimeToLiveSpecification"],
        json!({"AttributeName": "expires_at", "Enabled": true})
    );
    assert_eq!(table["BillingMode"], json!("PAY_PER_REQUEST"));
    assert_eq!(
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        json!(true)
    );
    assert_eq!(table["SSESpecification"]["SSEEnabled"], json!(true));
}

#[test]
fn idempotency_table_expires_claims_on_expires_at() {
    let stack = Stack::deployed(&[]);
    assert_keyed_table(&stack, "IdempotencyTable");

    assert_eq!(
        stack.raw_environment("WorkerFunction")["IDEMPOTENCY_TABLE"],
        json!({"Ref": "IdempotencyTable"})
    );
    let table_arn = json!({"Fn::GetAtt": ["IdempotencyTable", "Arn"]});
    let mut actions: Vec<String> = stack
        .role_statements("WorkerFunction")
        .iter()
        .filter(|statement| list(&statement["Resource"]).contains(&table_arn))
        .flat_map(|statement| strings(&statement["Action"]))
        .collect();
    actions.sort();
    assert_eq!(
        actions,
        [
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem"
        ],
        "the worker's claims: conditional put, consistent get, update, delete"
    );
}

#[test]
fn dead_letter_queue_alarm_notifies_the_alarm_topic() {
    for email in ["", "oncall@example.com"] {
        let stack = Stack::deployed(&[("AlarmEmail", email)]);
        let alarms: Vec<(String, Value)> = stack
            .resources_of_type("AWS::CloudWatch::Alarm")
            .into_iter()
            .filter(|(_, alarm)| {
                let properties = &alarm["Properties"];
                properties["Namespace"] == json!("AWS/SQS")
                    && properties["MetricName"] == json!("ApproximateNumberOfMessagesVisible")
                    && properties["Dimensions"]
                        == json!([{"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}])
            })
            .collect();
        assert_eq!(
            alarms.len(),
            1,
            "one alarm on the dead-letter queue: {alarms:?}"
        );
        let alarm = &alarms[0].1["Properties"];
        assert_eq!(alarm["ComparisonOperator"], json!("GreaterThanThreshold"));
        assert_eq!(
            number(&alarm["Threshold"]),
            0,
            "the first dead letter must alarm"
        );
        let actions = list(&alarm["AlarmActions"]);
        assert!(!actions.is_empty(), "the alarm notifies nobody");
        for action in &actions {
            let topic = action["Ref"].as_str().unwrap_or_else(|| panic!("{action}"));
            assert_eq!(stack.resource(topic)["Type"], json!("AWS::SNS::Topic"));
        }

        let subscriptions = stack.resources_of_type("AWS::SNS::Subscription");
        if email.is_empty() {
            assert!(subscriptions.is_empty(), "no AlarmEmail, no subscription");
        } else {
            assert_eq!(subscriptions.len(), 1);
            let subscription = &subscriptions[0].1["Properties"];
            assert_eq!(subscription["Endpoint"], json!({"Ref": "AlarmEmail"}));
            assert!(actions.contains(&subscription["TopicArn"]));
        }
    }
}

#[test]
fn async_state_machine_delivers_its_reply_to_the_worker() {
    let stack = Stack::deployed(&[
        ("AgentBackend", "stepfunctions"),
        ("StepFunctionsMode", "async"),
    ]);
    let machine = stack.properties("AgentAsyncStateMachine");
    let definition = definition(&machine);
    let states = &definition["States"];
    let ask = &states[definition["StartAt"].as_str().expect("StartAt")];
    assert_eq!(ask["Next"], json!("DeliverReply"));
    assert_eq!(
        ask["Catch"],
        json!([{"ErrorEquals": ["States.ALL"], "ResultPath": "$", "Next": "DeliverError"}])
    );
    for (state, outcome) in [
        ("DeliverReply", json!({"reply.$": "$"})),
        ("DeliverError", json!({"error.$": "$.Cause"})),
    ] {
        assert_delivers(&states[state], state, outcome);
    }
    assert_eq!(
        machine["DefinitionSubstitutions"]["WorkerFunctionArn"],
        json!({"Fn::GetAtt": ["WorkerFunction", "Arn"]})
    );
    // The worker spells this machine's ARN out from its name (a !Ref would be circular).
    let name = stack.value(&machine["StateMachineName"]);
    assert!(
        stack.environment("WorkerFunction")["STATE_MACHINE_ARN"]
            .ends_with(&format!(":stateMachine:{name}")),
        "the worker's STATE_MACHINE_ARN does not name {name}"
    );
    let role = stack.role_statements("AgentAsyncStateMachine");
    assert!(
        role.iter().any(
            |statement| strings(&statement["Action"]) == ["lambda:InvokeFunction"]
                && list(&statement["Resource"])
                    .contains(&json!({"Fn::GetAtt": ["WorkerFunction", "Arn"]}))
        ),
        "the async state machine may not invoke the worker: {role:?}"
    );
}

#[test]
fn both_functions_start_with_the_template_configuration_for_every_backend() {
    for stack in Stack::every_backend() {
        for function in ["WebhookFunction", "WorkerFunction"] {
            let environment = stack.environment(function);
            let config =
                Config::from_lookup(|name| environment.get(name).cloned()).unwrap_or_else(|e| {
                    panic!(
                        "{}: {function} would not start: {e}\n{environment:?}",
                        stack.label
                    )
                });
            assert_eq!(
                config.dispatch,
                Dispatch::Queue {
                    queue_url: stack.reference("JobQueue")
                },
                "{}: {function}",
                stack.label
            );
            assert!(
                config.secret_id.is_some(),
                "{}: {function} reads the secret from Secrets Manager",
                stack.label
            );
            match (&config.agent, stack.param("AgentBackend")) {
                (AgentBackend::Http { url, .. }, "http") => {
                    assert_eq!(url, stack.param("AgentUrl"))
                }
                (AgentBackend::StepFunctions { mode, .. }, "stepfunctions") => assert_eq!(
                    *mode,
                    match stack.param("StepFunctionsMode") {
                        "sync" => StepFunctionsMode::Sync,
                        _ => StepFunctionsMode::Async,
                    }
                ),
                (agent, backend) => {
                    panic!("{}: {function} runs {agent:?}, not {backend}", stack.label)
                }
            }
        }
        let worker =
            Config::from_lookup(|name| stack.environment("WorkerFunction").get(name).cloned())
                .expect("checked above");
        assert_eq!(
            worker.idempotency_table,
            Some(stack.reference("IdempotencyTable"))
        );
        assert_eq!(
            worker.sessions_table,
            Some(stack.reference("SessionsTable"))
        );
        assert_eq!(
            worker.history_turns.to_string(),
            stack.param("HistoryTurns")
        );
        assert_eq!(
            (worker.session_ttl.as_secs() / 86_400).to_string(),
            stack.param("SessionTtlDays")
        );
        assert_eq!(worker.agents.len(), 1, "the shorthand: one agent");
        assert!(worker.environments.is_empty() && worker.reengage_template.is_none());
        assert_eq!(
            worker.max_receive_count.to_string(),
            stack.param("MaxReceiveCount")
        );
        if let AgentBackend::Http { timeout, .. } = worker.agent {
            assert_eq!(
                timeout.as_secs().to_string(),
                stack.param("AgentTimeoutSecs")
            );
        }
    }
}

#[test]
fn each_agent_backend_refuses_to_deploy_without_its_agent() {
    for (backend, needed) in [("http", "AgentUrl"), ("stepfunctions", "AgentFunctionName")] {
        let complete = Stack::deployed(&[("AgentBackend", backend)]);
        assert!(
            complete.broken_rules().is_empty(),
            "{backend}: {:?}",
            complete.broken_rules()
        );
        let missing = Stack::deployed(&[("AgentBackend", backend), (needed, "")]);
        assert!(
            !missing.broken_rules().is_empty(),
            "AgentBackend={backend} deploys without {needed}"
        );
    }
}

#[test]
fn template_sets_only_variables_the_configuration_reads() {
    let config_source =
        std::fs::read_to_string(repo().join("src/config.rs")).expect("read src/config.rs");
    for stack in [
        Stack::deployed(&[]),
        paging_stack(&[]),
        approvals_stack(&[]),
    ] {
        for function in ["WebhookFunction", "WorkerFunction"] {
            for name in stack.raw_environment(function).keys() {
                assert!(
                    config_source.contains(&format!("\"{name}\"")),
                    "{}: {function} sets {name}, which src/config.rs never reads (a typo?)",
                    stack.label
                );
            }
        }
    }
}

#[test]
fn sessions_table_expires_sessions_on_expires_at_and_only_the_worker_uses_it() {
    let stack = Stack::deployed(&[]);
    assert_keyed_table(&stack, "SessionsTable");

    assert_eq!(
        stack.raw_environment("WorkerFunction")["SESSIONS_TABLE"],
        json!({"Ref": "SessionsTable"})
    );
    let table_arn = json!({"Fn::GetAtt": ["SessionsTable", "Arn"]});
    let actions_on_table = |function: &str| {
        let mut actions: Vec<String> = stack
            .role_statements(function)
            .iter()
            .filter(|statement| list(&statement["Resource"]).contains(&table_arn))
            .flat_map(|statement| strings(&statement["Action"]))
            .collect();
        actions.sort();
        actions
    };
    assert_eq!(
        actions_on_table("WorkerFunction"),
        ["dynamodb:GetItem", "dynamodb:PutItem"],
        "sessions: a consistent read and a conditional whole-item write, nothing else"
    );
    assert!(actions_on_table("WebhookFunction").is_empty());
    assert_eq!(
        stack.parameter_default("HistoryTurns"),
        DEFAULT_HISTORY_TURNS.to_string(),
        "HistoryTurns' default must be the configuration's"
    );
    assert_eq!(
        stack.parameter_default("SessionTtlDays"),
        DEFAULT_SESSION_TTL_DAYS.to_string(),
        "SessionTtlDays' default must be the configuration's"
    );
}

const AGENTS: &str = r#"[{"name": "k8s", "url": "https://k8s.example.com/agent", "description": "Kubernetes"}, {"name": "cost", "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:cost", "mode": "sync"}, {"name": "audit", "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:audit", "mode": "async"}]"#;
const LISTED_MACHINES: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:cost,arn:aws:states:us-east-1:123456789012:stateMachine:audit";

/// A stack with `Agents` set (and the shorthand's parameters empty, as its rule wants).
fn stack_with_agents(backend: &str, extra: &[(&str, &str)]) -> Stack {
    let mut overrides = vec![
        ("Agents", AGENTS),
        ("AgentBackend", backend),
        ("AgentUrl", ""),
        ("AgentFunctionName", ""),
    ];
    overrides.extend_from_slice(extra);
    Stack::deployed(&overrides)
}

#[test]
fn agents_replace_the_shorthand_in_both_functions() {
    for backend in ["http", "stepfunctions"] {
        let stack = stack_with_agents(
            backend,
            &[
                ("AgentStateMachineArns", LISTED_MACHINES),
                ("DefaultAgent", "cost"),
                ("Environments", "prod,staging"),
                ("ReengageTemplate", "answer_ready:en_US"),
            ],
        );
        assert!(
            stack.broken_rules().is_empty(),
            "{backend}: {:?}",
            stack.broken_rules()
        );
        for machine in ["AgentSyncStateMachine", "AgentAsyncStateMachine"] {
            assert!(
                !stack.exists(machine),
                "{backend}: Agents names its own state machines; {machine} is not created"
            );
        }
        for function in ["WebhookFunction", "WorkerFunction"] {
            let environment = stack.environment(function);
            for shorthand in [
                "AGENT_BACKEND",
                "AGENT_URL",
                "STATE_MACHINE_ARN",
                "STEP_FUNCTIONS_MODE",
            ] {
                assert!(
                    !environment.contains_key(shorthand),
                    "{backend}: {function} sets {shorthand} beside AGENTS"
                );
            }
            let config = Config::from_lookup(|name| environment.get(name).cloned())
                .unwrap_or_else(|e| panic!("{backend}: {function} would not start: {e}"));
            let names: Vec<&str> = config.agents.iter().map(|a| a.name.as_str()).collect();
            assert_eq!(names, ["k8s", "cost", "audit"], "{function}");
            assert_eq!(config.default_agent, "cost", "{function}");
        }
        let worker = stack.environment("WorkerFunction");
        let worker = Config::from_lookup(|name| worker.get(name).cloned()).expect("checked");
        assert_eq!(worker.environments, ["prod", "staging"]);
        assert_eq!(
            worker.reengage_template.map(|t| t.to_string()).as_deref(),
            Some("answer_ready:en_US")
        );
    }
    // The shorthand's parameters beside Agents: refused before anything is deployed.
    let both = Stack::deployed(&[("Agents", AGENTS)]);
    assert_eq!(both.broken_rules(), ["AgentsReplaceTheShorthand"]);
}

#[test]
fn worker_may_start_exactly_the_listed_agent_state_machines() {
    let granted = |stack: &Stack| -> Vec<(String, String)> {
        let mut granted: Vec<(String, String)> = stack
            .role_statements("WorkerFunction")
            .iter()
            .flat_map(|statement| {
                let resources = stack.values(&statement["Resource"]);
                strings(&statement["Action"])
                    .into_iter()
                    .filter(|action| action.starts_with("states:"))
                    .flat_map(move |action| {
                        resources
                            .clone()
                            .into_iter()
                            .map(move |resource| (action.clone(), resource))
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        granted.sort();
        granted
    };
    let listed = stack_with_agents("http", &[("AgentStateMachineArns", LISTED_MACHINES)]);
    let mut expected: Vec<(String, String)> = LISTED_MACHINES
        .split(',')
        .flat_map(|arn| {
            ["states:StartExecution", "states:StartSyncExecution"]
                .map(|action| (action.to_owned(), arn.to_owned()))
        })
        .collect();
    expected.sort();
    assert_eq!(granted(&listed), expected);
    assert!(
        granted(&stack_with_agents("http", &[])).is_empty(),
        "no ARNs listed, no Step Functions access"
    );
    // Beside the stack's own example machine.
    let both = Stack::deployed(&[
        ("AgentBackend", "stepfunctions"),
        ("StepFunctionsMode", "sync"),
        ("AgentStateMachineArns", LISTED_MACHINES),
    ]);
    let own = both.reference("AgentSyncStateMachine");
    let granted = granted(&both);
    assert!(granted.contains(&("states:StartSyncExecution".to_owned(), own)));
    assert_eq!(granted.len(), expected.len() + 1, "{granted:?}");
}

// --- On-call paging (OnCall) -----------------------------------------------------------------

/// The ONCALL of the paging stacks: two tiers and a route.
const ONCALL: &str = r#"{"tiers": [["+14155551234"], [{"number": "+447700900123", "name": "Sam"}]], "escalate_after_secs": 300, "routes": [{"match": {"team": "payments"}, "tiers": [["+4915112345678"]], "escalate_after_secs": 120}]}"#;

/// What paging adds to the stack when `OnCall` is set.
const PAGING_RESOURCES: [&str; 5] = [
    "AlertsTable",
    "TimerQueue",
    "TimerDeadLetterQueue",
    "WorkerTimers",
    "TimerDeadLetterQueueAlarm",
];
/// The variables of paging, in both functions.
const PAGING_VARIABLES: [&str; 7] = [
    "ONCALL",
    "PHONE_NUMBER_ID",
    "ALERT_TEMPLATE",
    "NOTICE_TEMPLATE",
    "PAGE_MIN_INTERVAL_SECS",
    "ALERTS_TABLE",
    "TIMER_QUEUE_URL",
];

/// A stack with paging on (`OnCall` and what it needs set); `extra` wins.
fn paging_stack(extra: &[(&str, &str)]) -> Stack {
    let mut overrides = vec![
        ("OnCall", ONCALL),
        ("PhoneNumberId", "106540352242922"),
        ("AlertTemplate", "oncall_alert:en"),
        ("NoticeTemplate", "oncall_notice:en"),
    ];
    overrides.extend_from_slice(extra);
    Stack::deployed(&overrides)
}

/// Every (action, resource) a function's role grants on `resource` (as written).
fn actions_on(stack: &Stack, function: &str, resource: &Value) -> Vec<String> {
    let mut actions: Vec<String> = stack
        .role_statements(function)
        .iter()
        .filter(|statement| list(&statement["Resource"]).contains(resource))
        .flat_map(|statement| strings(&statement["Action"]))
        .collect();
    actions.sort();
    actions
}

#[test]
fn paging_is_off_by_default_and_then_creates_and_grants_nothing() {
    for stack in Stack::every_backend() {
        assert!(!stack.condition("PagingOn"), "{}", stack.label);
        for resource in PAGING_RESOURCES {
            assert!(
                !stack.exists(resource),
                "{}: {resource} without OnCall",
                stack.label
            );
        }
        for function in ["WebhookFunction", "WorkerFunction"] {
            let environment = stack.raw_environment(function);
            for variable in PAGING_VARIABLES {
                assert!(
                    environment.get(variable).is_none(),
                    "{}: {function} sets {variable} without OnCall",
                    stack.label
                );
            }
            for statement in stack.role_statements(function) {
                let text = statement.to_string();
                assert!(
                    !text.contains("AlertsTable") && !text.contains("TimerQueue"),
                    "{}: {function} has a paging permission without OnCall: {statement}",
                    stack.label
                );
            }
        }
        assert!(stack.broken_rules().is_empty(), "{}", stack.label);
    }
    for output in ["AlertsUrl", "AlertsTableName"] {
        assert_eq!(
            transformed()["Outputs"][output]["Condition"],
            json!("PagingOn"),
            "{output} only with OnCall"
        );
    }
    assert_eq!(
        transformed()["Outputs"]["TimerQueueUrl"]["Condition"],
        json!("PagingOrApprovalsOn"),
        "TimerQueueUrl only with OnCall or Approvers"
    );
}

#[test]
fn paging_refuses_to_deploy_without_its_number_and_template() {
    assert!(paging_stack(&[]).broken_rules().is_empty());
    assert!(
        paging_stack(&[("NoticeTemplate", "")])
            .broken_rules()
            .is_empty(),
        "NoticeTemplate is optional"
    );
    for needed in ["PhoneNumberId", "AlertTemplate"] {
        assert_eq!(
            paging_stack(&[(needed, "")]).broken_rules(),
            ["PagingNeedsNumberAndTemplate"],
            "OnCall deploys without {needed}"
        );
    }
    let parameters = &transformed()["Parameters"];
    for (parameter, default) in [
        ("OnCall", ""),
        ("PhoneNumberId", ""),
        ("AlertTemplate", ""),
        ("NoticeTemplate", ""),
        ("PageMinIntervalSecs", "60"),
        ("AlertsBurstLimit", "20"),
        ("AlertsRateLimit", "5"),
    ] {
        assert_eq!(
            scalar(&parameters[parameter]["Default"]),
            default,
            "{parameter}'s default"
        );
    }
    assert_eq!(number(&parameters["PageMinIntervalSecs"]["MinValue"]), 0);
    assert_eq!(number(&parameters["PageMinIntervalSecs"]["MaxValue"]), 3600);
}

#[test]
fn both_functions_get_the_paging_configuration() {
    for backend in ["http", "stepfunctions"] {
        let stack = paging_stack(&[("AgentBackend", backend)]);
        for resource in PAGING_RESOURCES {
            assert!(stack.exists(resource), "{}: {resource}", stack.label);
        }
        for function in ["WebhookFunction", "WorkerFunction"] {
            let raw = stack.raw_environment(function);
            for (variable, parameter) in [
                ("ONCALL", "OnCall"),
                ("PHONE_NUMBER_ID", "PhoneNumberId"),
                ("ALERT_TEMPLATE", "AlertTemplate"),
                ("NOTICE_TEMPLATE", "NoticeTemplate"),
                ("PAGE_MIN_INTERVAL_SECS", "PageMinIntervalSecs"),
                ("ALERTS_TABLE", "AlertsTable"),
                ("TIMER_QUEUE_URL", "TimerQueue"),
            ] {
                assert_eq!(
                    raw.get(variable),
                    Some(&json!({"Ref": parameter})),
                    "{}: {function}'s {variable}",
                    stack.label
                );
            }
            let environment = stack.environment(function);
            assert_eq!(environment["ONCALL"], ONCALL);
            assert_eq!(environment["PAGE_MIN_INTERVAL_SECS"], "60");
            assert!(
                environment["TIMER_QUEUE_URL"].starts_with("https://sqs.")
                    && !environment["TIMER_QUEUE_URL"].ends_with(".fifo"),
                "{}",
                environment["TIMER_QUEUE_URL"]
            );
            Config::from_lookup(|name| environment.get(name).cloned()).unwrap_or_else(|e| {
                panic!(
                    "{}: {function} would not start with paging: {e}",
                    stack.label
                )
            });
        }
    }
}

#[test]
fn alerts_table_expires_incidents_and_both_functions_read_and_write_it_conditionally() {
    let stack = paging_stack(&[]);
    assert_keyed_table(&stack, "AlertsTable");
    let table = json!({"Fn::GetAtt": ["AlertsTable", "Arn"]});
    for function in ["WebhookFunction", "WorkerFunction"] {
        assert_eq!(
            actions_on(&stack, function, &table),
            ["dynamodb:GetItem", "dynamodb:PutItem"],
            "{function}: incidents are a consistent read and a conditional write, nothing else"
        );
    }
}

#[test]
fn timer_queue_is_standard_outlasts_the_worker_and_dead_letters_with_an_alarm() {
    for stack in [paging_stack(&[]), approvals_stack(&[])] {
        timer_queue_is_standard_outlasts_the_worker_and_dead_letters_with_an_alarm_in(&stack);
    }
}

fn timer_queue_is_standard_outlasts_the_worker_and_dead_letters_with_an_alarm_in(stack: &Stack) {
    let queue = stack.properties("TimerQueue");
    // A FIFO queue cannot delay single messages: timers need a standard one.
    assert_ne!(
        queue["FifoQueue"],
        json!(true),
        "the timer queue is standard"
    );
    assert_eq!(queue["SqsManagedSseEnabled"], json!(true));
    let worker_timeout = number(&stack.properties("WorkerFunction")["Timeout"]);
    let visibility = number(&queue["VisibilityTimeout"]);
    assert!(
        visibility >= worker_timeout,
        "VisibilityTimeout ({visibility} s) must cover the worker's Timeout ({worker_timeout} s)"
    );
    let redrive = &queue["RedrivePolicy"];
    assert_eq!(
        redrive["deadLetterTargetArn"],
        json!({"Fn::GetAtt": ["TimerDeadLetterQueue", "Arn"]}),
        "the timer queue has its own dead-letter queue (not the FIFO job queue's)"
    );
    assert!(number(&redrive["maxReceiveCount"]) >= 2, "{redrive}");
    let dead_letters = stack.properties("TimerDeadLetterQueue");
    assert_ne!(dead_letters["FifoQueue"], json!(true));
    assert_eq!(dead_letters["SqsManagedSseEnabled"], json!(true));
    assert!(retention(&dead_letters) > retention(&queue));

    let alarm = stack.properties("TimerDeadLetterQueueAlarm");
    assert_eq!(
        alarm["Dimensions"],
        json!([{"Name": "QueueName", "Value": {"Fn::GetAtt": ["TimerDeadLetterQueue", "QueueName"]}}])
    );
    assert_eq!(
        alarm["MetricName"],
        json!("ApproximateNumberOfMessagesVisible")
    );
    assert_eq!(alarm["ComparisonOperator"], json!("GreaterThanThreshold"));
    assert_eq!(
        number(&alarm["Threshold"]),
        0,
        "the first dead timer must alarm"
    );
    assert_eq!(alarm["AlarmActions"], json!([{"Ref": "AlarmTopic"}]));
}

#[test]
fn worker_consumes_due_timers_with_partial_batch_failures_and_scoped_rights() {
    for stack in [paging_stack(&[]), approvals_stack(&[])] {
        worker_consumes_due_timers_with_partial_batch_failures_and_scoped_rights_in(&stack);
    }
}

fn worker_consumes_due_timers_with_partial_batch_failures_and_scoped_rights_in(stack: &Stack) {
    let mappings: Vec<Value> = stack
        .resources_of_type("AWS::Lambda::EventSourceMapping")
        .into_iter()
        .map(|(_, mapping)| mapping["Properties"].clone())
        .filter(|mapping| mapping["FunctionName"] == json!({"Ref": "WorkerFunction"}))
        .collect();
    let mut sources: Vec<String> = mappings
        .iter()
        .map(|mapping| mapping["EventSourceArn"].to_string())
        .collect();
    sources.sort();
    assert_eq!(
        sources,
        [
            json!({"Fn::GetAtt": ["JobQueue", "Arn"]}).to_string(),
            json!({"Fn::GetAtt": ["TimerQueue", "Arn"]}).to_string(),
        ],
        "the worker consumes the job queue and the timer queue"
    );
    let timers = mappings
        .iter()
        .find(|mapping| mapping["EventSourceArn"] == json!({"Fn::GetAtt": ["TimerQueue", "Arn"]}))
        .expect("checked above");
    assert_eq!(
        timers["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );
    assert_eq!(timers["BatchSize"], json!(10));
    let concurrency = &timers["ScalingConfig"]["MaximumConcurrency"];
    assert_eq!(concurrency, &json!({"Ref": "WorkerMaxConcurrency"}));

    let timer_queue = json!({"Fn::GetAtt": ["TimerQueue", "Arn"]});
    assert_eq!(
        actions_on(stack, "WorkerFunction", &timer_queue),
        [
            "sqs:ChangeMessageVisibility",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ReceiveMessage",
            "sqs:SendMessage",
        ],
        "the worker schedules timers and consumes them (what its event source polls with)"
    );
    assert_eq!(
        actions_on(stack, "WebhookFunction", &timer_queue),
        ["sqs:SendMessage"],
        "the webhook may only schedule a timer"
    );
}

#[test]
fn alerts_route_reaches_the_webhook_function_with_its_own_throttling() {
    for stack in [Stack::deployed(&[]), paging_stack(&[])] {
        let api = stack.properties("WebhookHttpApi");
        let paths = &api["Body"]["paths"];
        let integration = |path: &str, method: &str| {
            paths[path][method]["x-amazon-apigateway-integration"]["uri"].to_string()
        };
        for (path, method) in [
            ("/webhook", "get"),
            ("/webhook", "post"),
            ("/alerts", "post"),
        ] {
            assert!(
                integration(path, method).contains("${WebhookFunction.Arn}"),
                "{}: {method} {path} does not reach the webhook function: {}",
                stack.label,
                paths[path]
            );
        }
        assert_eq!(
            paths["/alerts"]
                .as_object()
                .map(|methods| methods.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["post".to_owned()]),
            "only POST /alerts"
        );

        let stages = stack.resources_of_type("AWS::ApiGatewayV2::Stage");
        assert_eq!(stages.len(), 1, "{stages:?}");
        let stage = &stages[0].1["Properties"];
        let settings = stage["RouteSettings"]
            .as_object()
            .expect("route settings on the stage");
        assert_eq!(
            settings.keys().collect::<Vec<_>>(),
            ["POST /alerts"],
            "throttled on its own: /webhook (Meta) keeps the stage's defaults"
        );
        assert!(
            stage.get("DefaultRouteSettings").is_none(),
            "/webhook's throttling is left as it was"
        );
        let alerts = &settings["POST /alerts"];
        assert_eq!(stack.value(&alerts["ThrottlingBurstLimit"]), "20");
        assert_eq!(stack.value(&alerts["ThrottlingRateLimit"]), "5");
        assert_eq!(
            alerts["ThrottlingBurstLimit"],
            json!({"Ref": "AlertsBurstLimit"})
        );
        assert_eq!(
            alerts["ThrottlingRateLimit"],
            json!({"Ref": "AlertsRateLimit"})
        );
    }
    let stack = paging_stack(&[]);
    let url = stack.value(&transformed()["Outputs"]["AlertsUrl"]["Value"]);
    assert_eq!(
        url,
        "https://WebhookHttpApi.execute-api.us-east-1.amazonaws.com/alerts"
    );
}

#[test]
fn the_created_secret_has_a_slot_for_the_alert_token() {
    let stack = Stack::deployed(&[]);
    let generate = &stack.properties("WhatsAppSecret")["GenerateSecretString"];
    let template: Value = serde_json::from_str(
        generate["SecretStringTemplate"]
            .as_str()
            .expect("a template string"),
    )
    .expect("the secret's template is JSON");
    assert_eq!(template["alert_token"], json!(""), "{template}");
    assert_eq!(generate["GenerateStringKey"], json!("verify_token"));
}

// --- Approvals (Approvers) -------------------------------------------------------------------

/// The parameters that turn approvals on (with what they need).
const APPROVALS: [(&str, &str); 3] = [
    ("Approvers", "+447700900123, US.13491208655302741918"),
    ("PhoneNumberId", "106540352242922"),
    ("ApprovalTemplate", "approval_request:en"),
];
/// Users' own state machines that ask for approvals.
const APPROVAL_MACHINES: &str = "arn:aws:states:us-east-1:123456789012:stateMachine:deploy,arn:aws:states:us-east-1:123456789012:stateMachine:rotate-keys";
/// What approvals add to the stack (the example state machine only on request).
const APPROVALS_RESOURCES: [&str; 1] = ["ApprovalsTable"];
/// What approvals and paging both need.
const TIMER_RESOURCES: [&str; 4] = [
    "TimerQueue",
    "TimerDeadLetterQueue",
    "WorkerTimers",
    "TimerDeadLetterQueueAlarm",
];
/// The variables of approvals in both functions, and the parameter or resource each is.
const APPROVALS_VARIABLES: [(&str, &str); 9] = [
    ("APPROVERS", "Approvers"),
    ("APPROVAL_TEMPLATE", "ApprovalTemplate"),
    ("APPROVAL_EXPIRY_SECS", "ApprovalExpirySecs"),
    ("APPROVAL_MAX_EXPIRY_SECS", "ApprovalMaxExpirySecs"),
    ("ALLOW_SELF_APPROVAL", "AllowSelfApproval"),
    ("APPROVAL_RETENTION_DAYS", "ApprovalRetentionDays"),
    ("APPROVALS_TABLE", "ApprovalsTable"),
    ("PHONE_NUMBER_ID", "PhoneNumberId"),
    ("TIMER_QUEUE_URL", "TimerQueue"),
];
const EXAMPLE: &str = "ApprovalExampleStateMachine";
/// The errors the worker fails an approval task with (`src/approvals/sfn.rs`), and Step
/// Functions' own when nobody answers in time.
const REFUSALS: [&str; 4] = [
    "approval.denied",
    "approval.expired",
    "approval.refused",
    "States.Timeout",
];

/// A stack with approvals on (`Approvers` and what it needs set); `extra` wins.
fn approvals_stack(extra: &[(&str, &str)]) -> Stack {
    let mut overrides = APPROVALS.to_vec();
    overrides.extend_from_slice(extra);
    Stack::deployed(&overrides)
}

/// Every (action, resource) of `prefix` (`states:`) a function's role grants, evaluated.
fn granted_actions(stack: &Stack, function: &str, prefix: &str) -> Vec<(String, String)> {
    let mut granted: Vec<(String, String)> = stack
        .role_statements(function)
        .iter()
        .flat_map(|statement| {
            let resources = stack.values(&statement["Resource"]);
            strings(&statement["Action"])
                .into_iter()
                .filter(|action| action.starts_with(prefix))
                .flat_map(move |action| {
                    resources
                        .clone()
                        .into_iter()
                        .map(move |resource| (action.clone(), resource))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    granted.sort();
    granted
}

#[test]
fn approvals_are_off_by_default_and_then_create_and_grant_nothing() {
    let stacks = Stack::every_backend()
        .into_iter()
        .chain([paging_stack(&[])])
        .chain([Stack::deployed(&[(
            "ApprovalStateMachineArns",
            APPROVAL_MACHINES,
        )])]);
    for stack in stacks {
        assert!(!stack.condition("ApprovalsOn"), "{}", stack.label);
        for resource in APPROVALS_RESOURCES.into_iter().chain([EXAMPLE]) {
            assert!(
                !stack.exists(resource),
                "{}: {resource} without Approvers",
                stack.label
            );
        }
        for function in ["WebhookFunction", "WorkerFunction"] {
            let environment = stack.raw_environment(function);
            for (variable, _) in APPROVALS_VARIABLES {
                // Paging sets these two for itself.
                if stack.condition("PagingOn")
                    && ["PHONE_NUMBER_ID", "TIMER_QUEUE_URL"].contains(&variable)
                {
                    continue;
                }
                assert!(
                    environment.get(variable).is_none(),
                    "{}: {function} sets {variable} without Approvers",
                    stack.label
                );
            }
            for statement in stack.role_statements(function) {
                let text = statement.to_string();
                assert!(
                    !text.contains("ApprovalsTable")
                        && !text.contains("approval-example")
                        && !text.contains("states:SendTask"),
                    "{}: {function} has an approvals permission without Approvers: {statement}",
                    stack.label
                );
            }
        }
        assert!(stack.broken_rules().is_empty(), "{}", stack.label);
    }
    // Not even the timer queue when paging is off as well.
    let off = Stack::deployed(&[]);
    for resource in TIMER_RESOURCES {
        assert!(
            !off.exists(resource),
            "{resource} without OnCall or Approvers"
        );
    }
    // The example asked for without approvals: refused before anything is deployed.
    assert_eq!(
        Stack::deployed(&[("ApprovalExample", "true")]).broken_rules(),
        ["ApprovalExampleNeedsApprovers"]
    );
    for (output, condition) in [
        ("ApprovalsTableName", "ApprovalsOn"),
        ("ApprovalExampleStateMachineArn", "ApprovalExampleOn"),
    ] {
        assert_eq!(
            transformed()["Outputs"][output]["Condition"],
            json!(condition),
            "{output}"
        );
    }
}

#[test]
fn approvals_refuse_to_deploy_without_their_number_and_template() {
    assert!(approvals_stack(&[]).broken_rules().is_empty());
    assert!(
        approvals_stack(&[("ApprovalExample", "true")])
            .broken_rules()
            .is_empty()
    );
    for needed in ["PhoneNumberId", "ApprovalTemplate"] {
        assert_eq!(
            approvals_stack(&[(needed, "")]).broken_rules(),
            ["ApprovalsNeedNumberAndTemplate"],
            "Approvers deploys without {needed}"
        );
    }
    let parameters = &transformed()["Parameters"];
    for (parameter, default) in [
        ("Approvers", ""),
        ("ApprovalTemplate", ""),
        ("ApprovalExpirySecs", "900"),
        ("ApprovalMaxExpirySecs", "86400"),
        ("AllowSelfApproval", "false"),
        ("ApprovalRetentionDays", "90"),
        ("ApprovalExample", "false"),
        ("ApprovalStateMachineArns", ""),
    ] {
        assert_eq!(
            scalar(&parameters[parameter]["Default"]),
            default,
            "{parameter}'s default"
        );
    }
    // Approvers are named people: `*` (everyone) is refused by the parameter itself.
    assert_eq!(parameters["Approvers"]["AllowedPattern"], json!("^[^*]*$"));
    assert_eq!(
        parameters["ApprovalTemplate"]["AllowedPattern"],
        parameters["AlertTemplate"]["AllowedPattern"],
        "a template is name:language"
    );
    assert_eq!(
        parameters["ApprovalStateMachineArns"]["AllowedPattern"],
        parameters["AgentStateMachineArns"]["AllowedPattern"],
        "full state machine ARNs, no wildcards"
    );
    for flag in ["AllowSelfApproval", "ApprovalExample"] {
        assert_eq!(
            parameters[flag]["AllowedValues"],
            json!(["true", "false"]),
            "{flag}"
        );
    }
    // The example machine's timeout is computed from the longest expiry: it must be one.
    assert!(
        number(&parameters["ApprovalExpirySecs"]["MaxValue"])
            <= number(&parameters["ApprovalMaxExpirySecs"]["MaxValue"])
    );
}

#[test]
fn both_functions_get_the_approvals_configuration() {
    for stack in [
        approvals_stack(&[]),
        approvals_stack(&[("AgentBackend", "stepfunctions")]),
        paging_stack(&APPROVALS),
    ] {
        for resource in APPROVALS_RESOURCES.into_iter().chain(TIMER_RESOURCES) {
            assert!(stack.exists(resource), "{}: {resource}", stack.label);
        }
        assert_eq!(
            stack.exists("AlertsTable"),
            stack.condition("PagingOn"),
            "{}: the alerts table is paging's",
            stack.label
        );
        for function in ["WebhookFunction", "WorkerFunction"] {
            let raw = stack.raw_environment(function);
            for (variable, parameter) in APPROVALS_VARIABLES {
                assert_eq!(
                    raw.get(variable),
                    Some(&json!({"Ref": parameter})),
                    "{}: {function}'s {variable}",
                    stack.label
                );
            }
            let environment = stack.environment(function);
            assert_eq!(environment["APPROVERS"], APPROVALS[0].1);
            assert_eq!(environment["APPROVAL_TEMPLATE"], "approval_request:en");
            assert_eq!(environment["APPROVAL_EXPIRY_SECS"], "900");
            assert_eq!(environment["APPROVAL_MAX_EXPIRY_SECS"], "86400");
            assert_eq!(environment["ALLOW_SELF_APPROVAL"], "false");
            assert_eq!(environment["APPROVAL_RETENTION_DAYS"], "90");
            assert!(
                environment["TIMER_QUEUE_URL"].starts_with("https://sqs.")
                    && !environment["TIMER_QUEUE_URL"].ends_with(".fifo"),
                "{}",
                environment["TIMER_QUEUE_URL"]
            );
            let config =
                Config::from_lookup(|name| environment.get(name).cloned()).unwrap_or_else(|e| {
                    panic!(
                        "{}: {function} would not start with approvals: {e}",
                        stack.label
                    )
                });
            assert_eq!(
                config.phone_number_id.map(|id| id.0).as_deref(),
                Some("106540352242922"),
                "{}: {function}",
                stack.label
            );
            assert_eq!(
                config.timer_queue_url,
                Some(stack.reference("TimerQueue")),
                "{}: {function}",
                stack.label
            );
            assert!(
                config.approvers.is_some() && config.approval_template.is_some(),
                "{}: {function} has approvals on",
                stack.label
            );
            assert!(!config.allow_self_approval);
            assert_eq!(config.approval_expiry.as_secs(), 900);
            assert_eq!(config.approval_retention.as_secs(), 90 * 86_400);
        }
    }
}

#[test]
fn approvals_table_expires_requests_and_both_functions_read_and_write_it_conditionally() {
    let stack = approvals_stack(&[]);
    assert_keyed_table(&stack, "ApprovalsTable");
    let approvals = json!({"Fn::GetAtt": ["ApprovalsTable", "Arn"]});
    let alerts = json!({"Fn::GetAtt": ["AlertsTable", "Arn"]});
    let paging = paging_stack(&[]);
    for function in ["WebhookFunction", "WorkerFunction"] {
        assert_eq!(
            actions_on(&stack, function, &approvals),
            ["dynamodb:GetItem", "dynamodb:PutItem"],
            "{function}: requests are a consistent read and a conditional write, nothing else"
        );
        assert_eq!(
            actions_on(&stack, function, &approvals),
            actions_on(&paging, function, &alerts),
            "{function}: the same rights as on the alerts table"
        );
    }
}

#[test]
fn worker_may_answer_only_the_tasks_of_the_approval_state_machines() {
    let example_arn =
        format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{STACK_NAME}-approval-example");
    let answer = |arn: &str| {
        ["states:SendTaskFailure", "states:SendTaskSuccess"]
            .map(|action| (action.to_owned(), arn.to_owned()))
    };
    let listed: Vec<&str> = APPROVAL_MACHINES.split(',').collect();

    // Approvals on, no machine that asks: no Step Functions access at all.
    let none = approvals_stack(&[]);
    assert!(!none.exists(EXAMPLE));
    assert_eq!(granted_actions(&none, "WorkerFunction", "states:"), []);

    // The example: answer its tasks, and start it (it is an async agent, listed in Agents).
    let example = approvals_stack(&[("ApprovalExample", "true")]);
    let mut expected: Vec<(String, String)> = answer(&example_arn).to_vec();
    expected.push(("states:StartExecution".to_owned(), example_arn.clone()));
    expected.sort();
    assert_eq!(
        granted_actions(&example, "WorkerFunction", "states:"),
        expected
    );
    // The very machine the stack creates.
    assert_eq!(example.reference(EXAMPLE), example_arn);
    assert_eq!(
        example.value(&transformed()["Outputs"]["ApprovalExampleStateMachineArn"]["Value"]),
        example_arn
    );

    // Your own machines: answer theirs, start none of them.
    let own = approvals_stack(&[("ApprovalStateMachineArns", APPROVAL_MACHINES)]);
    let mut expected: Vec<(String, String)> = listed.iter().flat_map(|arn| answer(arn)).collect();
    expected.sort();
    assert_eq!(granted_actions(&own, "WorkerFunction", "states:"), expected);

    // Both, beside the async agent backend's own machine.
    let all = approvals_stack(&[
        ("ApprovalExample", "true"),
        ("ApprovalStateMachineArns", APPROVAL_MACHINES),
        ("AgentBackend", "stepfunctions"),
        ("StepFunctionsMode", "async"),
    ]);
    let granted = granted_actions(&all, "WorkerFunction", "states:");
    let sends: Vec<&(String, String)> = granted
        .iter()
        .filter(|(action, _)| action.starts_with("states:SendTask"))
        .collect();
    assert_eq!(sends.len(), 2 * (listed.len() + 1), "{granted:?}");
    assert!(granted.contains(&(
        "states:StartExecution".to_owned(),
        all.reference("AgentAsyncStateMachine")
    )));
    // The webhook never answers tasks.
    assert_eq!(granted_actions(&all, "WebhookFunction", "states:"), []);
}

#[test]
fn approval_example_asks_through_the_job_queue_and_reports_through_the_worker() {
    let stack = approvals_stack(&[("ApprovalExample", "true")]);
    let machine = stack.properties(EXAMPLE);
    assert_eq!(
        machine["StateMachineType"],
        json!("STANDARD"),
        "an async agent"
    );
    let definition = definition(&machine);
    let states = &definition["States"];
    let substitutions = &machine["DefinitionSubstitutions"];
    assert_eq!(definition["StartAt"], json!("Propose"));
    assert_eq!(states["Propose"]["Next"], json!("ApprovalTimeout"));
    assert_eq!(states["ApprovalTimeout"]["Next"], json!("Approval"));

    // The approval: the job onto the job queue with the task's token, waiting for the answer.
    let approval = &states["Approval"];
    assert_eq!(
        approval["Resource"],
        json!("arn:aws:states:::sqs:sendMessage.waitForTaskToken")
    );
    let parameters = &approval["Parameters"];
    assert_eq!(parameters["QueueUrl"], json!("${JobQueueUrl}"));
    assert_eq!(substitutions["JobQueueUrl"], json!({"Ref": "JobQueue"}));
    // The job queue is FIFO without content-based deduplication: both ids are given.
    assert_eq!(
        stack.properties("JobQueue")["ContentBasedDeduplication"],
        json!(false)
    );
    assert_eq!(parameters["MessageGroupId"], json!("approvals"));
    assert_eq!(
        parameters["MessageDeduplicationId.$"],
        json!("States.Hash($$.Task.Token, 'SHA-256')")
    );
    let body = &parameters["MessageBody"];
    assert_eq!(body["version"], json!(1));
    let asked = &body["approval"];
    assert_eq!(asked["task_token.$"], json!("$$.Task.Token"));
    assert_eq!(
        asked["requester.$"],
        json!("$.event.user.id"),
        "the user who asked"
    );
    assert_eq!(asked["summary.$"], json!("$.proposal.summary"));
    assert_eq!(asked["command.$"], json!("$.proposal.command"));
    assert_eq!(states["Propose"]["ResultPath"], json!("$.proposal"));

    // Its timeout: the longest expiry plus a margin, computed by the machine.
    assert_eq!(
        approval["TimeoutSecondsPath"],
        json!("$.approval_timeout.secs")
    );
    assert_eq!(
        states["ApprovalTimeout"]["ResultPath"],
        json!("$.approval_timeout")
    );
    let timeout = states["ApprovalTimeout"]["Parameters"]["secs.$"]
        .as_str()
        .expect("a computed timeout");
    let margin: i64 = timeout
        .strip_prefix("States.MathAdd(${ApprovalMaxExpirySecs}, ")
        .and_then(|rest| rest.strip_suffix(')'))
        .and_then(|margin| margin.parse().ok())
        .unwrap_or_else(|| panic!("not the longest expiry plus a margin: {timeout}"));
    assert!((60..=3600).contains(&margin), "a bit above: {margin} s");
    assert_eq!(
        substitutions["ApprovalMaxExpirySecs"],
        json!({"Ref": "ApprovalMaxExpirySecs"})
    );

    // Approved: act, then report. Refused or timed out: report that. Anything else: ❌.
    assert_eq!(approval["Next"], json!("Act"));
    assert_eq!(approval["ResultPath"], json!("$.approval"));
    assert_eq!(
        approval["Catch"],
        json!([
            {"ErrorEquals": REFUSALS, "ResultPath": "$.refusal", "Next": "Refused"},
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "ReportError"}
        ])
    );
    for step in ["Act", "Refused"] {
        assert_eq!(states[step]["ResultPath"], json!("$.result"), "{step}");
        assert_eq!(states[step]["Next"], json!("Report"), "{step}");
    }
    for (step, outcome) in [
        ("Report", json!({"reply.$": "$.result"})),
        ("ReportError", json!({"error.$": "$.failure"})),
    ] {
        let task = &states[step];
        assert_delivers(task, step, outcome);
        assert!(task["Retry"].is_array(), "{step}: a delivery is retried");
    }
    assert_eq!(
        substitutions["WorkerFunctionArn"],
        json!({"Fn::GetAtt": ["WorkerFunction", "Arn"]})
    );
    assert_eq!(
        substitutions.as_object().map(|s| s.len()),
        Some(3),
        "{substitutions}"
    );

    // Its role: put jobs on the job queue, invoke the worker; nothing else.
    let mut granted: Vec<(String, Value)> = stack
        .role_statements(EXAMPLE)
        .iter()
        .flat_map(|statement| {
            strings(&statement["Action"])
                .into_iter()
                .flat_map(|action| {
                    list(&statement["Resource"])
                        .into_iter()
                        .map(move |resource| (action.clone(), resource))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    granted.sort_by_key(|(action, resource)| format!("{action} {resource}"));
    assert_eq!(
        granted,
        [
            (
                "lambda:InvokeFunction".to_owned(),
                json!({"Fn::GetAtt": ["WorkerFunction", "Arn"]})
            ),
            (
                "sqs:SendMessage".to_owned(),
                json!({"Fn::GetAtt": ["JobQueue", "Arn"]})
            ),
        ]
    );
    // Named, and the worker's policy spells that name out (a !Ref would be circular).
    let name = stack.value(&machine["StateMachineName"]);
    assert_eq!(name, format!("{STACK_NAME}-approval-example"));
    assert!(
        name.len() <= 80,
        "state machine names stop at 80 characters"
    );
}

/// The managed policy SAM gives every function it makes a role for: CloudWatch Logs.
const BASIC_EXECUTION_ROLE: &str =
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";
/// Stand-ins for the pseudo parameters when the tests evaluate a value.
const ACCOUNT: &str = "123456789012";
const STACK_NAME: &str = "whatsapp-agent";

/// The template after the real SAM transform, exactly as the pinned cfn-lint lints it: its
/// `--info` log prints it (and the lint must pass). Produced once for all tests.
fn transformed() -> &'static Value {
    static TRANSFORMED: OnceLock<Value> = OnceLock::new();
    TRANSFORMED.get_or_init(|| {
        const MARKER: &str = "Transformed template: \n";
        let scratch = Scratch::new("transform");
        let template = repo().join(TEMPLATE);
        let out = run(
            &tool("cfn-lint"),
            [OsStr::new("--info"), template.as_os_str()],
            &scratch,
        );
        assert!(
            out.status.success(),
            "cfn-lint {TEMPLATE} failed ({}):\n{}",
            out.status,
            out.stdout
        );
        let at = out.stderr.find(MARKER).unwrap_or_else(|| {
            panic!(
                "cfn-lint --info did not log the transformed template:\n{}",
                out.stderr
            )
        }) + MARKER.len();
        serde_json::Deserializer::from_str(&out.stderr[at..])
            .into_iter::<Value>()
            .next()
            .expect("a JSON document after the marker")
            .unwrap_or_else(|e| panic!("the transformed template is not JSON: {e}"))
    })
}

/// A reference in the template text: `!Ref Name` or `!GetAtt Name.Attribute`.
struct Reference<'t> {
    tag: &'static str,
    /// Byte offset of the target's name.
    at: usize,
    name: &'t str,
    line: usize,
}

/// Every `!Ref` and `!GetAtt` of `template`, in order.
fn references(template: &str) -> Vec<Reference<'_>> {
    let mut refs: Vec<Reference<'_>> = [("!Ref", "!Ref "), ("!GetAtt", "!GetAtt ")]
        .into_iter()
        .flat_map(|(tag, with_space)| {
            template.match_indices(with_space).map(move |(at, found)| {
                let start = at + found.len();
                let len = template[start..]
                    .find(|c: char| !c.is_ascii_alphanumeric())
                    .unwrap_or(template.len() - start);
                Reference {
                    tag,
                    at: start,
                    name: &template[start..start + len],
                    line: template[..start].lines().count(),
                }
            })
        })
        .filter(|reference| !reference.name.is_empty() && !in_comment(template, reference.at))
        .collect();
    refs.sort_by_key(|reference| reference.at);
    refs
}

/// Whether `at` is inside a YAML comment (`#` to the end of the line, outside quotes).
fn in_comment(template: &str, at: usize) -> bool {
    let line_start = template[..at].rfind('\n').map_or(0, |newline| newline + 1);
    let mut quote = None;
    for c in template[line_start..at].chars() {
        match (quote, c) {
            (None, '#') => return true,
            (None, '"' | '\'') => quote = Some(c),
            (Some(open), c) if c == open => quote = None,
            _ => {}
        }
    }
    false
}

/// The transformed template as one deployment sees it: parameter values (defaults plus
/// overrides) decide the conditions, so `Fn::If` and conditional resources can be resolved.
struct Stack {
    template: &'static Value,
    params: HashMap<String, String>,
    label: String,
}

impl Stack {
    /// Required parameters get plausible values; `overrides` win.
    fn deployed(overrides: &[(&str, &str)]) -> Self {
        let template = transformed();
        let mut params: HashMap<String, String> = template["Parameters"]
            .as_object()
            .expect("Parameters")
            .iter()
            .filter_map(|(name, parameter)| {
                parameter.get("Default").map(|d| (name.clone(), scalar(d)))
            })
            .collect();
        for (name, value) in [
            ("AllowedSenders", "+1 415 555 1234"),
            ("AgentUrl", "https://agent.example.com/whatsapp"),
            ("AgentFunctionName", "ops-agent"),
        ]
        .into_iter()
        .chain(overrides.iter().copied())
        {
            params.insert(name.to_owned(), value.to_owned());
        }
        let mut label = format!(
            "AgentBackend={} StepFunctionsMode={}",
            params["AgentBackend"], params["StepFunctionsMode"]
        );
        if !params["OnCall"].is_empty() {
            label.push_str(" OnCall=set");
        }
        if !params["Approvers"].is_empty() {
            label.push_str(" Approvers=set");
        }
        if params["ApprovalExample"] == "true" {
            label.push_str(" ApprovalExample=true");
        }
        if !params["ApprovalStateMachineArns"].is_empty() {
            label.push_str(" ApprovalStateMachineArns=set");
        }
        Self {
            template,
            params,
            label,
        }
    }

    /// One deployment per agent backend and mode.
    fn every_backend() -> Vec<Self> {
        [
            ("http", "sync"),
            ("http", "async"),
            ("stepfunctions", "sync"),
            ("stepfunctions", "async"),
        ]
        .into_iter()
        .map(|(backend, mode)| {
            Self::deployed(&[("AgentBackend", backend), ("StepFunctionsMode", mode)])
        })
        .collect()
    }

    fn param(&self, name: &str) -> &str {
        self.params
            .get(name)
            .unwrap_or_else(|| panic!("no parameter {name}"))
    }

    fn parameter_default(&self, name: &str) -> String {
        scalar(&self.template["Parameters"][name]["Default"])
    }

    fn condition(&self, name: &str) -> bool {
        let condition = &self.template["Conditions"][name];
        assert!(!condition.is_null(), "no condition {name}");
        self.holds(condition)
    }

    fn holds(&self, condition: &Value) -> bool {
        match intrinsic(condition) {
            Some(("Fn::Equals", Value::Array(sides))) => {
                self.value(&sides[0]) == self.value(&sides[1])
            }
            Some(("Fn::Not", Value::Array(inner))) => !self.holds(&inner[0]),
            Some(("Fn::And", Value::Array(all))) => all.iter().all(|c| self.holds(c)),
            Some(("Fn::Or", Value::Array(any))) => any.iter().any(|c| self.holds(c)),
            Some(("Condition", Value::String(name))) => self.condition(name),
            _ => panic!("not a condition: {condition}"),
        }
    }

    /// The template's `Rules` whose assertions fail for these parameter values.
    fn broken_rules(&self) -> Vec<String> {
        let rules = self.template["Rules"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        rules
            .iter()
            .filter(|(_, rule)| rule.get("RuleCondition").is_none_or(|c| self.holds(c)))
            .filter(|(_, rule)| {
                !list(&rule["Assertions"])
                    .iter()
                    .all(|assertion| self.holds(&assertion["Assert"]))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// `value` with every `Fn::If` decided and every `AWS::NoValue` left out (`None` if it is one).
    fn resolve(&self, value: &Value) -> Option<Value> {
        if let Some(("Fn::If", Value::Array(branches))) = intrinsic(value) {
            let name = branches[0].as_str().expect("Fn::If names a condition");
            return self.resolve(&branches[if self.condition(name) { 1 } else { 2 }]);
        }
        if *value == json!({"Ref": "AWS::NoValue"}) {
            return None;
        }
        Some(match value {
            Value::Array(items) => {
                Value::Array(items.iter().filter_map(|item| self.resolve(item)).collect())
            }
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .filter_map(|(key, field)| Some((key.clone(), self.resolve(field)?)))
                    .collect(),
            ),
            other => other.clone(),
        })
    }

    fn exists(&self, name: &str) -> bool {
        let resource = &self.template["Resources"][name];
        assert!(!resource.is_null(), "no resource {name}");
        resource["Condition"]
            .as_str()
            .is_none_or(|condition| self.condition(condition))
    }

    /// A resource this deployment creates, resolved.
    fn resource(&self, name: &str) -> Value {
        assert!(self.exists(name), "{}: {name} is not created", self.label);
        self.resolve(&self.template["Resources"][name])
            .expect("a resource")
    }

    fn properties(&self, name: &str) -> Value {
        self.resource(name)["Properties"].clone()
    }

    fn resources_of_type(&self, kind: &str) -> Vec<(String, Value)> {
        self.template["Resources"]
            .as_object()
            .expect("Resources")
            .iter()
            .filter(|(name, resource)| resource["Type"] == json!(kind) && self.exists(name))
            .map(|(name, _)| (name.clone(), self.resource(name)))
            .collect()
    }

    /// A function's environment as written (intrinsics kept).
    fn raw_environment(&self, function: &str) -> serde_json::Map<String, Value> {
        self.properties(function)["Environment"]["Variables"]
            .as_object()
            .unwrap_or_else(|| panic!("{function} has no environment"))
            .clone()
    }

    /// A function's environment as the process would see it (stand-ins for ARNs and URLs).
    fn environment(&self, function: &str) -> HashMap<String, String> {
        self.raw_environment(function)
            .iter()
            .map(|(name, value)| (name.clone(), self.value(value)))
            .collect()
    }

    /// The statements of the role a function or state machine runs with.
    fn role_statements(&self, resource: &str) -> Vec<Value> {
        self.statements_of_role(&self.role_of(resource))
    }

    fn managed_policies(&self, resource: &str) -> Vec<String> {
        strings(&self.role_of(resource)["Properties"]["ManagedPolicyArns"])
    }

    fn role_of(&self, resource: &str) -> Value {
        let properties = self.properties(resource);
        let role = properties
            .get("Role")
            .or_else(|| properties.get("RoleArn"))
            .expect("a role");
        match intrinsic(role) {
            Some(("Fn::GetAtt", Value::Array(parts))) if parts[1] == json!("Arn") => {
                self.resource(parts[0].as_str().expect("a role name"))
            }
            _ => panic!("{resource}'s role is not one of this stack's: {role}"),
        }
    }

    fn statements_of_role(&self, role: &Value) -> Vec<Value> {
        list(&role["Properties"]["Policies"])
            .iter()
            .flat_map(|policy| list(&policy["PolicyDocument"]["Statement"]))
            .collect()
    }

    /// What a value evaluates to at run time, with stand-ins for what AWS would make up.
    fn value(&self, value: &Value) -> String {
        match intrinsic(value) {
            Some(("Ref", Value::String(name))) => self.reference(name),
            Some(("Fn::GetAtt", Value::Array(parts))) => {
                format!(
                    "arn:aws:fake:{REGION}:{ACCOUNT}:{}/{}",
                    scalar(&parts[0]),
                    scalar(&parts[1])
                )
            }
            Some(("Fn::Sub", Value::String(text))) => self.substitute(text),
            Some(("Fn::Join", Value::Array(parts))) => {
                self.values(&parts[1]).join(&scalar(&parts[0]))
            }
            Some(_) => {
                let resolved = self.resolve(value).expect("a value");
                assert_ne!(&resolved, value, "cannot evaluate {value}");
                self.value(&resolved)
            }
            None => scalar(value),
        }
    }

    /// What a list evaluates to: each item of a list, or a `CommaDelimitedList` parameter's
    /// values (none for an empty one).
    fn values(&self, value: &Value) -> Vec<String> {
        match (intrinsic(value), value) {
            (Some(("Ref", Value::String(name))), _) if self.is_list_parameter(name) => self
                .reference(name)
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
            (_, Value::Array(items)) => items.iter().map(|item| self.value(item)).collect(),
            _ => vec![self.value(value)],
        }
    }

    fn is_list_parameter(&self, name: &str) -> bool {
        self.template["Parameters"][name]["Type"] == json!("CommaDelimitedList")
    }

    /// `Ref`: a parameter's value, a pseudo parameter, or what AWS returns for the resource.
    fn reference(&self, name: &str) -> String {
        if let Some(value) = self.params.get(name) {
            return value.clone();
        }
        match name {
            "AWS::Partition" => return "aws".to_owned(),
            "AWS::Region" => return REGION.to_owned(),
            "AWS::AccountId" => return ACCOUNT.to_owned(),
            "AWS::StackName" => return STACK_NAME.to_owned(),
            "AWS::URLSuffix" => return "amazonaws.com".to_owned(),
            _ => {}
        }
        let resource = self.resource(name);
        match resource["Type"].as_str().expect("a type") {
            "AWS::SQS::Queue" => {
                let fifo = resource["Properties"]["FifoQueue"] == json!(true);
                let suffix = if fifo { ".fifo" } else { "" };
                format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}{suffix}")
            }
            "AWS::StepFunctions::StateMachine" => {
                let machine = match resource["Properties"].get("StateMachineName") {
                    Some(given) => self.value(given),
                    None => name.to_owned(),
                };
                format!("arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine}")
            }
            "AWS::SecretsManager::Secret" => {
                format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}")
            }
            _ => name.to_owned(),
        }
    }

    /// `Fn::Sub` with `${Name}` and `${Resource.Attribute}` (no variable map).
    fn substitute(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').expect("closing brace") + start;
            let name = &rest[start + 2..end];
            out.push_str(&match name.split_once('.') {
                Some((resource, attribute)) if !name.starts_with("AWS::") => {
                    self.value(&json!({"Fn::GetAtt": [resource, attribute]}))
                }
                _ => self.reference(name),
            });
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// `{"Fn::X": argument}` (or `Ref`, `Condition`) as (name, argument).
fn intrinsic(value: &Value) -> Option<(&str, &Value)> {
    let object = value.as_object()?;
    let (name, argument) = object.iter().next()?;
    (object.len() == 1 && (name.starts_with("Fn::") || name == "Ref" || name == "Condition"))
        .then_some((name.as_str(), argument))
}

/// A JSON scalar as CloudFormation passes it on: a string.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Number(_) | Value::Bool(_) => value.to_string(),
        other => panic!("not a scalar: {other}"),
    }
}

/// A number, whether the template wrote it as one or as a string.
fn number(value: &Value) -> u64 {
    scalar(value)
        .parse()
        .unwrap_or_else(|_| panic!("not a whole number: {value}"))
}

/// IAM's "one or a list".
fn list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        one => vec![one.clone()],
    }
}

fn strings(value: &Value) -> Vec<String> {
    list(value).iter().map(scalar).collect()
}

fn retention(queue: &Value) -> u64 {
    number(&queue["MessageRetentionPeriod"])
}

/// A state machine's definition (SAM writes it as `Fn::Join` of JSON lines), parsed.
fn definition(machine: &Value) -> Value {
    let lines = match intrinsic(&machine["DefinitionString"]) {
        Some(("Fn::Join", Value::Array(join))) => strings(&join[1]).join(&scalar(&join[0])),
        _ => scalar(&machine["DefinitionString"]),
    };
    serde_json::from_str(&lines).unwrap_or_else(|e| panic!("definition is not JSON: {e}\n{lines}"))
}

/// Whether cfn-lint's parseable output (`file:line:col:line:col:CODE:message`) has an error
/// (`E....`) for `file`.
fn has_error_for(parseable: &str, file: &str) -> bool {
    parseable.lines().any(|line| {
        let mut fields = line.splitn(7, ':');
        fields.next() == Some(file) && fields.nth(4).is_some_and(|code| code.starts_with('E'))
    })
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_bin() -> PathBuf {
    repo().join(".venv/bin")
}

/// A tool installed by `make venv`.
fn tool(name: &str) -> PathBuf {
    let path = venv_bin().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make test` (it installs the test tools into .venv)",
        path.display()
    );
    path
}

fn read_template() -> String {
    let path = repo().join(TEMPLATE);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A fresh directory under the system temp dir, removed when dropped. It is the child's
/// working directory and holds its `HOME`.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "whatsapp-agent-lambda-{label}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let home = dir.join("home");
        std::fs::create_dir_all(home.join(".aws-sam"))
            .unwrap_or_else(|e| panic!("create {}: {e}", home.display()));
        // SAM CLI checks PyPI for a newer version once a week; a fresh HOME would make it try
        // on every run. Record a check "now" so it does not.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        write(
            &home.join(".aws-sam/metadata.json"),
            &format!("{{\"lastVersionCheck\": {now}}}"),
        );
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn home(&self) -> PathBuf {
        self.0.join("home")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `program` in `scratch` with a clean, offline, credential-free environment, killing it
/// after [`TOOL_TIMEOUT`].
fn run<I, S>(program: &Path, args: I, scratch: &Scratch) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_bounded(program, args, scratch, TOOL_TIMEOUT)
}

/// [`run`], killing the tool after `timeout`.
fn run_bounded<I, S>(program: &Path, args: I, scratch: &Scratch, timeout: Duration) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let home = scratch.home();
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let path =
        std::env::join_paths(std::iter::once(venv_bin()).chain(std::env::split_paths(&inherited)))
            .expect("PATH entries contain no separator");
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(scratch.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", home.join(".aws/config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join(".aws/credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("SAM_CLI_TELEMETRY", "0");
    for proxy in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        command.env(proxy, DEAD_PROXY);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    // Drained on their own threads so a chatty tool cannot block on a full pipe.
    let stdout = Drain::start(child.stdout.take());
    let stderr = Drain::start(child.stderr.take());
    let Some(status) = wait_bounded(&mut child, program, timeout) else {
        // Not joined: a stray grandchild could hold the pipes open forever.
        panic!(
            "{} did not finish within {timeout:?} and was killed; output so far:\n{}{}",
            program.display(),
            stdout.so_far(),
            stderr.so_far()
        );
    };
    Output {
        status,
        stdout: stdout.finish(),
        stderr: stderr.finish(),
    }
}

/// The exit status, or `None` if the child was killed for running past `timeout`.
fn wait_bounded(child: &mut Child, program: &Path, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Err(e) => panic!("wait for {}: {e}", program.display()),
        }
    }
}

/// A pipe read to the end on its own thread, into a buffer that can be looked at any time.
struct Drain {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

impl Drain {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Self {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bytes);
        let reader = thread::spawn(move || {
            let Some(mut pipe) = pipe else { return };
            let mut chunk = [0; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]);
            }
        });
        Self { bytes, reader }
    }

    fn so_far(&self) -> String {
        text_of(&self.bytes)
    }

    fn finish(self) -> String {
        let _ = self.reader.join();
        text_of(&self.bytes)
    }
}

fn text_of(bytes: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&bytes.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// A state that ends its machine by invoking the worker with the deliver event: the execution's
/// input as the request, and `outcome` (`reply.$` or `error.$`).
fn assert_delivers(task: &Value, name: &str, outcome: Value) {
    assert_eq!(
        task["Resource"],
        json!("arn:aws:states:::lambda:invoke"),
        "{name}"
    );
    assert_eq!(
        task["Parameters"]["FunctionName"],
        json!("${WorkerFunctionArn}"),
        "{name}"
    );
    let mut deliver = json!({"request.$": "$$.Execution.Input"});
    deliver
        .as_object_mut()
        .unwrap()
        .extend(outcome.as_object().unwrap().clone());
    assert_eq!(
        task["Parameters"]["Payload"],
        json!({"deliver": deliver}),
        "{name}"
    );
    assert_eq!(task["End"], json!(true), "{name}");
}

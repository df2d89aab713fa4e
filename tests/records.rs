//! The shared records and timers adapters on moto: a capability's table (`DynamoRecords`:
//! create, read, conditional updates and conflicts, expiry, a race on one version, corrupt items,
//! failures told apart; approvals' concurrent votes on it decide once) and the timers
//! (`SqsTimers`: a delayed message on a standard queue, invisible until due; a wait past SQS's
//! 900 s is sent with the longest delay).

mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::json;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::moto::Moto;
use support::net::{free_port, http_client};
use whatsapp_agent_lambda::aws::sdk_config_for;
use whatsapp_agent_lambda::dev::moto::{alerts_table, timer_queue};
use whatsapp_agent_lambda::records::DynamoRecords;
use whatsapp_agent_lambda::records::{Put, RecordStore, StoreError, Versioned};
use whatsapp_agent_lambda::timers::SqsTimers;
use whatsapp_agent_lambda::timers::{IncidentRef, Timer, TimerError, TimerKind, Timers};

const REGION: &str = "us-east-1";
const TABLE: &str = "whatsapp-alerts";
const QUEUE: &str = "whatsapp-alert-timers";
const KEY: &str = "0123456789abcdef0123456789abcdef";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

fn in_an_hour() -> i64 {
    now() + 3_600
}

/// moto with the alerts table as `template.yaml` declares it.
struct Aws {
    moto: Moto,
    config: aws_config::SdkConfig,
}

impl Aws {
    async fn start() -> Self {
        let moto = Moto::start();
        let config = sdk_config_for(moto.endpoint(), REGION).await;
        alerts_table(&config, TABLE)
            .await
            .expect("create the alerts table");
        Self { moto, config }
    }

    /// A store with its own SDK configuration and client: another instance.
    async fn store(&self) -> DynamoRecords {
        DynamoRecords::new(&sdk_config_for(self.moto.endpoint(), REGION).await, TABLE)
    }

    fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.config)
    }

    async fn item(&self, key: &str) -> Option<std::collections::HashMap<String, AttributeValue>> {
        self.dynamodb()
            .get_item()
            .table_name(TABLE)
            .key("id", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("read the item")
            .item()
            .cloned()
    }

    async fn put_raw(&self, pairs: &[(&str, AttributeValue)]) {
        let mut put = self.dynamodb().put_item().table_name(TABLE);
        for (name, value) in pairs {
            put = put.item(*name, value.clone());
        }
        put.send().await.expect("put the raw item");
    }
}

fn n(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

// ---------------------------------------------------------------------------------------------
// The alerts table.

#[tokio::test]
async fn dynamodb_records_are_created_read_and_updated_on_their_version_only() {
    let aws = Aws::start().await;
    let store = aws.store().await;
    let other = aws.store().await;
    assert_eq!(store.get(KEY).await.unwrap(), None);

    // Create.
    let expires_at = in_an_hour();
    let doc = json!({"step": 0, "paged": ["14155551234"], "title": "Disk full — /var"});
    assert_eq!(
        store.put(KEY, &doc, None, expires_at).await.unwrap(),
        Put::Stored
    );
    // Read, by another instance: the documented attributes.
    assert_eq!(
        other.get(KEY).await.unwrap(),
        Some(Versioned {
            doc: doc.clone(),
            version: 1,
            expires_at,
        })
    );
    let item = aws.item(KEY).await.expect("the item");
    assert_eq!(item["version"].as_n().unwrap(), "1");
    assert_eq!(item["expires_at"].as_n().unwrap(), &expires_at.to_string());
    let stored: serde_json::Value = serde_json::from_str(item["doc"].as_s().unwrap()).unwrap();
    assert_eq!(stored, doc);

    // A create while the record exists: conflict, nothing changed.
    let put = other.put(KEY, &json!("again"), None, in_an_hour()).await;
    assert_eq!(put.unwrap(), Put::Conflict);

    // Conditional update on the version read.
    let acknowledged = json!({"step": 0, "acknowledged_by": "Sam"});
    let put = other
        .put(KEY, &acknowledged, Some(1), expires_at + 60)
        .await;
    assert_eq!(put.unwrap(), Put::Stored);
    let record = store.get(KEY).await.unwrap().unwrap();
    assert_eq!(
        (&record.doc, record.version, record.expires_at),
        (&acknowledged, 2, expires_at + 60)
    );

    // A write on the stale version, or one not yet reached: conflict, nothing changed.
    let put = store.put(KEY, &json!("stale"), Some(1), in_an_hour()).await;
    assert_eq!(put.unwrap(), Put::Conflict);
    let put = store.put(KEY, &json!("ahead"), Some(5), in_an_hour()).await;
    assert_eq!(put.unwrap(), Put::Conflict);
    // An update of a record that does not exist: conflict, nothing created.
    let put = store
        .put("no-such-record", &json!(1), Some(1), in_an_hour())
        .await;
    assert_eq!(put.unwrap(), Put::Conflict);
    assert_eq!(aws.item("no-such-record").await, None);
    assert_eq!(store.get(KEY).await.unwrap().unwrap().doc, acknowledged);
}

#[tokio::test]
async fn dynamodb_an_expired_record_reads_as_absent_and_is_created_again() {
    let aws = Aws::start().await;
    let store = aws.store().await;
    // The table's TTL is on `expires_at`.
    let ttl = aws
        .dynamodb()
        .describe_time_to_live()
        .table_name(TABLE)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some("expires_at"));

    let expired = now() - 10;
    store.put(KEY, &json!("old"), None, expired).await.unwrap();
    store
        .put(KEY, &json!("older"), Some(1), expired)
        .await
        .unwrap();
    // Still in the table (moto, like DynamoDB for a while, has not deleted it), read as absent.
    assert!(aws.item(KEY).await.is_some());
    assert_eq!(store.get(KEY).await.unwrap(), None);

    // A create writes over it, from version 1.
    let put = store.put(KEY, &json!("new"), None, in_an_hour()).await;
    assert_eq!(put.unwrap(), Put::Stored);
    let record = store.get(KEY).await.unwrap().unwrap();
    assert_eq!((record.doc, record.version), (json!("new"), 1));
    // And it is live now: a second create conflicts.
    let put = store.put(KEY, &json!("newer"), None, in_an_hour()).await;
    assert_eq!(put.unwrap(), Put::Conflict);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_of_two_racing_writes_on_one_version_exactly_one_is_stored() {
    let aws = Aws::start().await;
    let (a, b) = (aws.store().await, aws.store().await);
    a.put(KEY, &json!("paged"), None, in_an_hour())
        .await
        .unwrap();
    for round in 1..=5_u64 {
        let doc_a = json!({"acknowledged_by": "a", "round": round});
        let doc_b = json!({"acknowledged_by": "b", "round": round});
        let (put_a, put_b) = tokio::join!(
            a.put(KEY, &doc_a, Some(round), in_an_hour()),
            b.put(KEY, &doc_b, Some(round), in_an_hour()),
        );
        let (put_a, put_b) = (put_a.unwrap(), put_b.unwrap());
        let winner = match (put_a, put_b) {
            (Put::Stored, Put::Conflict) => doc_a,
            (Put::Conflict, Put::Stored) => doc_b,
            other => panic!("round {round}: {other:?}"),
        };
        let record = a.get(KEY).await.unwrap().unwrap();
        assert_eq!((record.doc, record.version), (winner, round + 1));
    }

    // Two creates at once: one record, one winner.
    let (doc_a, doc_b) = (json!("a"), json!("b"));
    let (put_a, put_b) = tokio::join!(
        a.put("fresh", &doc_a, None, in_an_hour()),
        b.put("fresh", &doc_b, None, in_an_hour()),
    );
    let mut answers = [put_a.unwrap(), put_b.unwrap()];
    answers.sort_by_key(|put| *put == Put::Conflict);
    assert_eq!(answers, [Put::Stored, Put::Conflict]);
}

#[tokio::test]
async fn dynamodb_a_malformed_item_is_corrupt_without_its_content() {
    let aws = Aws::start().await;
    let store = aws.store().await;
    let later = in_an_hour();
    // (key, attributes besides `id`, the attribute the reason names)
    type Case<'a> = (&'a str, Vec<(&'a str, AttributeValue)>, &'a str);
    let cases: [Case; 4] = [
        (
            "doc-not-json",
            vec![
                ("doc", s("page +14155551234 now {")),
                ("version", n(1)),
                ("expires_at", n(later)),
            ],
            "`doc`",
        ),
        (
            "no-version",
            vec![("doc", s("{}")), ("expires_at", n(later))],
            "`version`",
        ),
        (
            "version-as-text",
            vec![
                ("doc", s("{}")),
                ("version", s("1")),
                ("expires_at", n(later)),
            ],
            "`version`",
        ),
        (
            "no-expiry",
            vec![("doc", s("{}")), ("version", n(1))],
            "`expires_at`",
        ),
    ];
    for (key, attributes, named) in cases {
        let mut pairs = vec![("id", s(key))];
        pairs.extend(attributes);
        aws.put_raw(&pairs).await;
        let error = store.get(key).await.unwrap_err();
        let StoreError::Corrupt { reason } = &error else {
            panic!("{key}: {error:?}");
        };
        assert!(reason.contains(named), "{key}: {reason}");
        assert!(!error.to_string().contains("4155551234"), "{error}");
        assert!(!error.is_retryable());
    }
}

#[tokio::test]
async fn dynamodb_failures_say_whether_a_retry_can_help() {
    let aws = Aws::start().await;
    let missing = DynamoRecords::new(&aws.config, "no-such-table");
    let error = missing.get(KEY).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Table { code, .. } if code == "ResourceNotFoundException"),
        "{error:?}"
    );
    assert!(!error.is_retryable(), "a missing table stays missing");
    assert!(std::error::Error::source(&error).is_some(), "kept");
    let error = missing
        .put(KEY, &json!(1), None, in_an_hour())
        .await
        .unwrap_err();
    assert!(!error.is_retryable(), "{error:?}");

    let closed = sdk_config_for(&format!("http://127.0.0.1:{}", free_port()), REGION).await;
    let error = DynamoRecords::new(&closed, TABLE)
        .put(KEY, &json!(1), None, in_an_hour())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Table { code, .. } if code == "unreachable"),
        "{error:?}"
    );
    assert!(error.is_retryable(), "unreachable: worth retrying");
}

// ---------------------------------------------------------------------------------------------
// The timer queue.

fn escalate(due_at: i64) -> Timer {
    Timer {
        due_at,
        kind: TimerKind::Escalate {
            incidents: vec![IncidentRef {
                key: KEY.to_owned(),
                id: "occurrence-1".to_owned(),
            }],
            step: 0,
        },
    }
}

/// moto with the timer queue.
async fn timer_aws() -> (Moto, aws_sdk_sqs::Client, String, SqsTimers) {
    let moto = Moto::start();
    let config = sdk_config_for(moto.endpoint(), REGION).await;
    let url = timer_queue(&config, QUEUE)
        .await
        .expect("create the timer queue");
    let timers = SqsTimers::new(&config, &url);
    (moto, aws_sdk_sqs::Client::new(&config), url, timers)
}

/// The bodies of the messages visible now (waiting up to `wait_secs` for one).
async fn receive(sqs: &aws_sdk_sqs::Client, url: &str, wait_secs: i32) -> Vec<String> {
    sqs.receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_secs)
        .send()
        .await
        .expect("receive")
        .messages()
        .iter()
        .filter_map(|message| message.body().map(str::to_owned))
        .collect()
}

async fn delayed_count(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .expect("queue attributes")
        .attributes()
        .and_then(|a| {
            a.get(&QueueAttributeName::ApproximateNumberOfMessagesDelayed)
                .cloned()
        })
        .unwrap_or_default()
}

/// The timer in a body, read as the documented wire format `{"version": 1, "timer": …}`.
fn timer_in(body: &str) -> Timer {
    let body: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(body["version"], 1, "{body}");
    serde_json::from_value(body["timer"].clone()).expect("a timer")
}

#[tokio::test]
async fn sqs_a_timer_is_invisible_until_due_then_comes_back_whole() {
    let (_moto, sqs, url, timers) = timer_aws().await;
    let timer = escalate(now() + 1);
    let sent = Instant::now();
    timers.schedule(&timer).await.unwrap();

    // moto honours DelaySeconds: nothing to receive yet, one message delayed.
    assert_eq!(receive(&sqs, &url, 0).await, Vec::<String>::new());
    assert_eq!(delayed_count(&sqs, &url).await, "1");

    tokio::time::sleep(Duration::from_millis(2_100).saturating_sub(sent.elapsed())).await;
    let bodies = receive(&sqs, &url, 2).await;
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(timer_in(&bodies[0]), timer);
}

#[tokio::test]
async fn sqs_a_timer_due_later_than_sqs_can_delay_is_sent_with_the_longest_delay() {
    let (moto, sqs, url, timers) = timer_aws().await;
    // SQS (and moto) refuse a DelaySeconds over 900: this send succeeding is the clamp.
    let timer = escalate(now() + 2 * 3_600);
    timers.schedule(&timer).await.unwrap();
    assert_eq!(receive(&sqs, &url, 0).await, Vec::<String>::new());
    assert_eq!(delayed_count(&sqs, &url).await, "1");

    // The delay moto applied, from its model data: delayed until 900 s after it was sent.
    let data = http_client()
        .get(&format!("{}/moto-api/data.json", moto.endpoint()))
        .call()
        .expect("moto's model data")
        .body_mut()
        .read_to_string()
        .expect("moto's model data");
    let data: serde_json::Value = serde_json::from_str(&data).expect("JSON");
    let messages = data["sqs"]["Message"].as_array().expect("sqs messages");
    let message = messages
        .iter()
        .find(|m| m["body"].as_str().is_some_and(|b| timer_in(b) == timer))
        .expect("the timer's message");
    let sent = message["sent_timestamp"].as_f64().expect("sent_timestamp");
    let delayed_until = message["delayed_until"].as_f64().expect("delayed_until");
    let delay_ms = delayed_until - sent;
    assert!(
        (900_000.0..901_000.0).contains(&delay_ms),
        "delayed {delay_ms} ms"
    );
}

#[tokio::test]
async fn sqs_failures_carry_the_code() {
    let (moto, _sqs, url, _timers) = timer_aws().await;
    let config = sdk_config_for(moto.endpoint(), REGION).await;
    let missing = url.replace(QUEUE, "no-such-queue");
    let error = SqsTimers::new(&config, missing)
        .schedule(&escalate(now()))
        .await
        .unwrap_err();
    let TimerError::Queue { code, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(
        code.contains("NonExistentQueue") || code.contains("QueueDoesNotExist"),
        "{code}"
    );

    let closed = sdk_config_for(&format!("http://127.0.0.1:{}", free_port()), REGION).await;
    let error = SqsTimers::new(&closed, url)
        .schedule(&escalate(now()))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, TimerError::Queue { code, .. } if code == "unreachable"),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approvals_votes_racing_on_dynamodb_decide_exactly_once() {
    use std::sync::Arc;
    use whatsapp_agent_lambda::agent::{Agents, NamedAgent, ScriptedAgent};
    use whatsapp_agent_lambda::approvals::approvers::Approvers;
    use whatsapp_agent_lambda::approvals::engine::{Approvals, ApprovalsConfig};
    use whatsapp_agent_lambda::approvals::{
        ApprovalAsk, RecordingCallbacks, TaskAnswer, TaskApproval,
    };
    use whatsapp_agent_lambda::domain::{
        InboundMessage, MessageKind, OutgoingMessage, PhoneNumberId, Sender, TemplateRef,
    };
    use whatsapp_agent_lambda::graph::RecordingMessenger;
    use whatsapp_agent_lambda::sessions::{Conversations, MemorySessions, Notifier};

    let aws = Aws::start().await;
    let messenger = Arc::new(RecordingMessenger::new());
    let callbacks = Arc::new(RecordingCallbacks::new());
    let conversations = Arc::new(Conversations::new(
        Arc::new(MemorySessions::new(Duration::from_secs(3600))),
        Agents::new(
            vec![NamedAgent {
                name: "ops".to_owned(),
                description: None,
                agent: Arc::new(ScriptedAgent::replying_text("ok")),
            }],
            None,
        )
        .unwrap(),
        Vec::new(),
        0,
        None,
    ));
    // Three instances (the worker scaled out), each with its own client, one table.
    let mut engines = Vec::new();
    for _ in 0..3 {
        engines.push(Arc::new(Approvals::new(
            ApprovalsConfig {
                approvers: Approvers::parse("+14155551234, +447700900123, +4915112345678").unwrap(),
                from: PhoneNumberId::from("106540352242922"),
                template: TemplateRef::parse("approval_request:en").unwrap(),
                default_expiry: Duration::from_secs(900),
                max_expiry: Duration::from_secs(3600),
                allow_self: false,
                retention: Duration::from_secs(86_400),
                names: Default::default(),
            },
            Arc::new(aws.store().await),
            Arc::new(support::timers::RecordingTimers::default()),
            Notifier::new(messenger.clone(), conversations.clone(), None),
            Some(callbacks.clone()),
        )));
    }
    let task = TaskApproval {
        ask: ApprovalAsk {
            summary: "Restart api in prod".to_owned(),
            command: "kubectl rollout restart deployment/api -n prod".to_owned(),
            approvers: None,
            required: Some(2),
            expires_in_secs: None,
        },
        requester: None,
        task_token: "token".to_owned(),
    };
    engines[0].ask_for_task(&task, now()).await.unwrap();
    let requests = messenger.sent();
    assert_eq!(requests.len(), 3, "every approver asked");
    let mut taps = Vec::new();
    for (index, request) in requests.iter().enumerate() {
        let OutgoingMessage::Template { quick_replies, .. } = &request.message else {
            panic!("{:?}", request.message);
        };
        for copy in 0..2 {
            let mut tap = InboundMessage::sample(
                &format!("wamid.tap.{index}.{copy}"),
                MessageKind::TemplateButton {
                    payload: quick_replies[0].clone(),
                    text: "Approve".to_owned(),
                },
            );
            tap.sender = Sender {
                phone: Some(request.to.as_str().to_owned()),
                ..Sender::default()
            };
            tap.reply_to = Some(request.id.clone());
            tap.timestamp = now();
            taps.push((engines[(index + copy) % 3].clone(), tap));
        }
    }
    let handles: Vec<_> = taps
        .into_iter()
        .map(|(engine, tap)| tokio::spawn(async move { engine.tap(&tap, now()).await }))
        .collect();
    for handle in handles {
        assert!(handle.await.unwrap().is_some(), "each tap is ours");
    }
    let answers = callbacks.answers();
    let successes: Vec<&TaskAnswer> = answers
        .iter()
        .filter(|a| matches!(a, TaskAnswer::Success { .. }))
        .collect();
    assert_eq!(answers.len(), 1, "decided exactly once: {answers:?}");
    let TaskAnswer::Success { output, .. } = successes[0] else {
        unreachable!()
    };
    let output: serde_json::Value = serde_json::from_str(output).unwrap();
    assert_eq!(output["decision"], "approved");
    assert_eq!(
        output["decided_by"].as_array().unwrap().len(),
        2,
        "the two votes that decided, not a third: {output}"
    );
}

//! The session store against moto's DynamoDB (`DynamoSessions`) and its in-memory twin
//! (`MemorySessions`), the same scenarios on both: concurrent updates of one session from 8
//! tasks all land (each conflict read again and reapplied, no lost turn); history bounds
//! (turn count and 16 KB of text) hold in what is stored; every write sets the expiry; an
//! expired session reads as new and is written over. DynamoDB only: a session written by one
//! instance is read by a fresh one (a new process, a new client), and store failures are told
//! apart (retryable or not).

mod support;

use aws_sdk_dynamodb::types::AttributeValue;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::moto::Moto;
use support::net::free_port;
use whatsapp_agent_lambda::aws::sdk_config_for;
use whatsapp_agent_lambda::domain::{PhoneNumberId, Sender};
use whatsapp_agent_lambda::sessions::{
    DynamoSessions, HISTORY_TEXT_MAX_BYTES, MemorySessions, Menu, MenuKind, Role, Session,
    SessionError, SessionKey, SessionStore, Turn, UPDATE_ATTEMPTS, ttl_days,
};

const REGION: &str = "us-east-1";
const TABLE: &str = "whatsapp-sessions";
const TTL: Duration = Duration::from_secs(30 * 86_400);
/// Concurrent updates of one session.
const RACERS: usize = 8;

fn key(phone: &str) -> SessionKey {
    SessionKey::new(
        &PhoneNumberId::from("106540352242922"),
        &Sender {
            phone: Some(phone.to_owned()),
            ..Sender::default()
        },
    )
    .expect("a phone number")
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// moto with the sessions table as `template.yaml` declares it.
struct Aws {
    moto: Moto,
    config: aws_config::SdkConfig,
}

impl Aws {
    async fn start() -> Self {
        let moto = Moto::start();
        let config = sdk_config_for(moto.endpoint(), REGION).await;
        create_sessions_table(&config, TABLE).await;
        Self { moto, config }
    }

    /// A store with its own SDK configuration and client: another process.
    async fn fresh_store(&self, ttl: Duration) -> DynamoSessions {
        let config = sdk_config_for(self.moto.endpoint(), REGION).await;
        DynamoSessions::new(&config, TABLE, ttl)
    }

    async fn item(&self, key: &SessionKey) -> std::collections::HashMap<String, AttributeValue> {
        aws_sdk_dynamodb::Client::new(&self.config)
            .get_item()
            .table_name(TABLE)
            .key("id", AttributeValue::S(key.as_str().to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("read the item")
            .item()
            .cloned()
            .expect("the item exists")
    }
}

/// Partition key `id` (S), TTL on `expires_at`, on demand.
async fn create_sessions_table(config: &aws_config::SdkConfig, table: &str) {
    whatsapp_agent_lambda::dev::moto::create_keyed_table(config, table)
        .await
        .expect("create the sessions table");
}

// ---------------------------------------------------------------------------------------------
// The scenarios, run on both stores.

/// 8 updates of one session at once, each from its own thread and runtime (as from separate
/// Lambda instances): all 8 read the session before any writes (a barrier in the change), so
/// 7 of them must conflict and read again. Every turn lands, and the version counts 8 writes.
fn concurrent_updates_all_land(make_store: impl Fn() -> Arc<dyn SessionStore> + Sync) {
    let key = key("14155551234");
    let barrier = Arc::new(Barrier::new(RACERS));
    let changes = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| {
        for racer in 0..RACERS {
            let (key, barrier, changes) = (&key, Arc::clone(&barrier), Arc::clone(&changes));
            let make_store = &make_store;
            scope.spawn(move || {
                let store = make_store();
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime");
                runtime.block_on(async move {
                    let mut first = true;
                    let mut change = |session: &mut Session| {
                        changes.fetch_add(1, Ordering::SeqCst);
                        if std::mem::take(&mut first) {
                            barrier.wait();
                        }
                        session.push_turn(Turn::user(format!("message {racer}"), racer as i64), 50);
                        session.record_user_message(racer as i64);
                    };
                    store
                        .update(key, &mut change)
                        .await
                        .unwrap_or_else(|e| panic!("racer {racer}: {e}"));
                });
            });
        }
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let session = runtime
        .block_on(make_store().load(&key))
        .expect("load the session");
    let mut texts: Vec<String> = session.history.iter().map(|t| t.text.clone()).collect();
    texts.sort();
    let expected: Vec<String> = (0..RACERS).map(|n| format!("message {n}")).collect();
    assert_eq!(texts, expected, "a turn was lost");
    assert_eq!(session.version, RACERS as u64, "one write per update");
    assert_eq!(session.last_user_message_at, Some(RACERS as i64 - 1));
    let changes = changes.load(Ordering::SeqCst);
    assert!(
        changes >= RACERS + RACERS - 1,
        "all but one racer must have reapplied after a conflict: {changes} changes"
    );
    assert!(changes <= RACERS * UPDATE_ATTEMPTS as usize);
}

/// What is stored keeps `HISTORY_TURNS` turns and 16 KB of text.
async fn history_bounds_hold_in_the_store(store: &dyn SessionStore) {
    let key = key("14155550001");
    for n in 0..15 {
        store
            .update(&key, &mut |s| {
                s.push_turn(Turn::user(format!("question {n}"), n), 10);
                s.push_turn(Turn::assistant(format!("answer {n}"), n), 10);
            })
            .await
            .unwrap();
    }
    let session = store.load(&key).await.unwrap();
    assert_eq!(session.history.len(), 10);
    assert_eq!(session.history[0].text, "question 10");
    assert_eq!(session.history[0].role, Role::User);
    assert_eq!(session.history[9].text, "answer 14");

    for n in 0..3 {
        store
            .update(&key, &mut |s| {
                s.push_turn(Turn::assistant("ü".repeat(4_000), 100 + n), 10)
            })
            .await
            .unwrap();
    }
    store
        .update(&key, &mut |s| {
            s.push_turn(Turn::user("x".repeat(HISTORY_TEXT_MAX_BYTES * 2), 200), 10)
        })
        .await
        .unwrap();
    let session = store.load(&key).await.unwrap();
    let total: usize = session.history.iter().map(|t| t.text.len()).sum();
    assert!(total <= HISTORY_TEXT_MAX_BYTES, "{total} bytes of history");
    assert_eq!(
        session.history.len(),
        1,
        "the cut 32 KB turn fills the budget"
    );
    assert!(session.history[0].text.ends_with("[cut]"));

    store
        .update(&key, &mut Session::clear_history)
        .await
        .unwrap();
    assert!(store.load(&key).await.unwrap().history.is_empty());
}

/// Everything a session holds survives the store, and a change that changes nothing writes
/// nothing.
async fn a_session_round_trips(writer: &dyn SessionStore, reader: &dyn SessionStore) {
    let key = key("+1 (415) 555-0002");
    let menu = Menu::new(MenuKind::Agents, vec!["k8s".into(), "cost".into()], 1_700);
    let written = writer
        .update(&key, &mut |s| {
            s.agent = Some("cost".into());
            s.environment = Some("staging".into());
            s.record_user_message(1_795_514_400);
            s.push_turn(Turn::user("pods crashing in prod", 1_795_514_400), 10);
            s.push_turn(Turn::assistant("2 pods restarting", 1_795_514_460), 10);
            s.push_pending(serde_json::json!({"text": "the cost report", "parts": 2}));
            s.menu = Some(menu.clone());
            s.version = 99; // ignored: the store counts
        })
        .await
        .unwrap();
    assert_eq!(written.version, 1);
    // Another spelling of the same number: the same session.
    let read = reader.load(&self::key("14155550002")).await.unwrap();
    assert_eq!(read, written);
    assert_eq!(read.menu, Some(menu));
    assert_eq!(read.history[1].timestamp, "2026-11-24T10:01:00Z");

    let unchanged = reader
        .update(&key, &mut |s| s.agent = Some("cost".into()))
        .await
        .unwrap();
    assert_eq!(unchanged.version, 1, "nothing changed, nothing written");
    let taken = reader
        .update(&key, &mut |s| {
            s.take_pending();
        })
        .await
        .unwrap();
    assert_eq!(taken.version, 2);
    assert!(writer.load(&key).await.unwrap().pending.is_empty());
}

/// A session whose expiry passed reads as new and is written over (DynamoDB deletes expired
/// items late; the twin keeps them until evicted).
async fn an_expired_session_starts_afresh(store: &dyn SessionStore) {
    let key = key("14155550003");
    store
        .update(&key, &mut |s| {
            s.agent = Some("k8s".into());
            s.push_turn(Turn::user("old", 0), 10);
        })
        .await
        .unwrap();
    // Written with a TTL of 0: expired as soon as written.
    let read = store.load(&key).await.unwrap();
    assert_eq!(read.agent, None);
    assert!(read.history.is_empty());
    assert_eq!(
        read.version, 1,
        "the stored version, for the next conditional write"
    );
    let written = store
        .update(&key, &mut |s| s.environment = Some("prod".into()))
        .await
        .unwrap();
    assert_eq!(written.version, 2);
    assert_eq!(
        written.agent, None,
        "nothing of the expired session comes back"
    );
}

fn assert_expiry(expires_at: i64, before: i64, after: i64, ttl: Duration) {
    let ttl = ttl.as_secs() as i64;
    assert!(
        (before + ttl..=after + ttl).contains(&expires_at),
        "expires_at {expires_at} is not now + {ttl} s"
    );
}

// ---------------------------------------------------------------------------------------------
// DynamoDB (moto).

#[test]
fn dynamodb_concurrent_updates_of_one_session_all_land() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let aws = runtime.block_on(Aws::start());
    let endpoint = aws.moto.endpoint().to_owned();
    // Each racer builds its store (its own client) in its own runtime.
    concurrent_updates_all_land(|| {
        let config = futures_block_on(sdk_config_for(&endpoint, REGION));
        Arc::new(DynamoSessions::new(&config, TABLE, TTL))
    });
}

/// Runs a future that needs no runtime of its own (loading the SDK configuration).
fn futures_block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

#[tokio::test]
async fn dynamodb_history_bounds_hold() {
    let aws = Aws::start().await;
    history_bounds_hold_in_the_store(&DynamoSessions::new(&aws.config, TABLE, TTL)).await;
}

#[tokio::test]
async fn dynamodb_a_session_survives_a_new_process() {
    let aws = Aws::start().await;
    let writer = DynamoSessions::new(&aws.config, TABLE, TTL);
    let reader = aws.fresh_store(TTL).await;
    a_session_round_trips(&writer, &reader).await;
}

#[tokio::test]
async fn dynamodb_every_write_sets_the_expiry_and_the_documented_attributes() {
    let aws = Aws::start().await;
    let store = DynamoSessions::new(&aws.config, TABLE, ttl_days(30));
    let key = key("14155550004");
    let before = now();
    store
        .update(&key, &mut |s| {
            s.agent = Some("k8s".into());
            s.record_user_message(1_795_514_400);
            s.push_turn(Turn::user("hi", 1_795_514_400), 10);
        })
        .await
        .unwrap();
    let after = now();
    let item = aws.item(&key).await;
    let number = |name: &str| -> i64 {
        item[name]
            .as_n()
            .unwrap_or_else(|_| panic!("{name} is not a number"))
            .parse()
            .unwrap()
    };
    assert_expiry(number("expires_at"), before, after, TTL);
    assert_eq!(number("version"), 1);
    assert_eq!(number("last_user_message_at"), 1_795_514_400);
    assert_eq!(item["agent"].as_s().unwrap(), "k8s");
    assert!(!item.contains_key("environment"), "unset: absent");
    let state: serde_json::Value =
        serde_json::from_str(item["state"].as_s().unwrap()).expect("state is JSON");
    assert_eq!(state["history"][0]["text"], "hi");
    assert_eq!(state["history"][0]["role"], "user");

    // A later write pushes it forward.
    std::thread::sleep(Duration::from_millis(1_100));
    let before = now();
    store
        .update(&key, &mut |s| s.environment = Some("prod".into()))
        .await
        .unwrap();
    assert_expiry(
        number_of(&aws.item(&key).await, "expires_at"),
        before,
        now(),
        TTL,
    );
}

fn number_of(item: &std::collections::HashMap<String, AttributeValue>, name: &str) -> i64 {
    item[name].as_n().unwrap().parse().unwrap()
}

#[tokio::test]
async fn dynamodb_an_expired_session_starts_afresh() {
    let aws = Aws::start().await;
    an_expired_session_starts_afresh(&DynamoSessions::new(&aws.config, TABLE, Duration::ZERO))
        .await;
}

#[tokio::test]
async fn dynamodb_failures_say_whether_a_retry_can_help() {
    let aws = Aws::start().await;
    let missing = DynamoSessions::new(&aws.config, "no-such-table", TTL);
    let error = missing.load(&key("14155550005")).await.unwrap_err();
    assert!(
        matches!(&error, SessionError::Store { code, .. } if code == "ResourceNotFoundException"),
        "{error:?}"
    );
    assert!(!error.is_retryable(), "a missing table stays missing");
    assert!(
        std::error::Error::source(&error).is_some(),
        "the SDK error is kept"
    );
    assert!(!error.to_string().contains("14155550005"), "{error}");

    let closed = sdk_config_for(&format!("http://127.0.0.1:{}", free_port()), REGION).await;
    let error = DynamoSessions::new(&closed, TABLE, TTL)
        .update(&key("14155550005"), &mut |s| s.agent = Some("k8s".into()))
        .await
        .unwrap_err();
    assert!(
        error.is_retryable(),
        "unreachable: worth retrying: {error:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The in-memory twin: the same scenarios.

#[test]
fn memory_concurrent_updates_of_one_session_all_land() {
    let store: Arc<dyn SessionStore> = Arc::new(MemorySessions::new(TTL));
    concurrent_updates_all_land(|| Arc::clone(&store));
}

#[tokio::test]
async fn memory_history_bounds_hold() {
    history_bounds_hold_in_the_store(&MemorySessions::new(TTL)).await;
}

#[tokio::test]
async fn memory_a_session_round_trips() {
    let store = MemorySessions::new(TTL);
    a_session_round_trips(&store, &store).await;
}

#[tokio::test]
async fn memory_every_write_sets_the_expiry() {
    let store = MemorySessions::new(TTL);
    let key = key("14155550004");
    let before = now();
    store
        .update(&key, &mut |s| s.agent = Some("k8s".into()))
        .await
        .unwrap();
    assert_expiry(store.expires_at(&key).unwrap(), before, now(), TTL);
}

#[tokio::test]
async fn memory_an_expired_session_starts_afresh() {
    an_expired_session_starts_afresh(&MemorySessions::new(Duration::ZERO)).await;
}

/// The real `webhook` binary (inline dispatch) with `SESSIONS_TABLE` on moto: the conversation
/// outlives the process. The second process's agent request carries the first exchange.
#[tokio::test(flavor = "multi_thread")]
async fn a_conversation_survives_a_new_process_of_the_real_binary() {
    use support::fakes::{recording_graph, requests_agent};
    use support::local_webhook::LocalWebhook;
    use whatsapp_agent_lambda::dev::events::with_message;

    let aws = Aws::start().await;
    let (agent, requests) = requests_agent("noted");
    let graph = recording_graph(Arc::default());
    let missing = std::env::temp_dir().join("no-such-aws-config");
    let missing = missing.to_string_lossy().into_owned();
    let env = [
        ("SESSIONS_TABLE", TABLE),
        ("AWS_ENDPOINT_URL", aws.moto.endpoint()),
        ("AWS_REGION", REGION),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_CONFIG_FILE", missing.as_str()),
        ("AWS_SHARED_CREDENTIALS_FILE", missing.as_str()),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let say = |webhook: &LocalWebhook, id: &str, text: &str| {
        let message = serde_json::json!({
            "from": "14155551234", "id": id, "timestamp": "1795514400",
            "type": "text", "text": {"body": text},
        });
        let envelope =
            with_message(&support::fixtures::event_json("post-text.json"), message).unwrap();
        assert_eq!(webhook.post_envelope(&envelope).0, 200);
    };
    let first = LocalWebhook::start(
        &agent.url(),
        &graph.url(),
        &env,
        std::process::Stdio::inherit(),
    );
    say(&first, "wamid.PROC.1", "pods crashing in prod");
    drop(first);
    let second = LocalWebhook::start(
        &agent.url(),
        &graph.url(),
        &env,
        std::process::Stdio::inherit(),
    );
    say(&second, "wamid.PROC.2", "what did I ask before?");
    drop(second);

    let requests = requests.lock().unwrap();
    assert_eq!(requests.len(), 2);
    let history = requests[1]["history"].as_array().expect("a history");
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[0]["role"], "user");
    assert_eq!(history[0]["text"], "pods crashing in prod");
    assert_eq!(history[1]["role"], "assistant");
    assert_eq!(history[1]["text"], "noted");
}

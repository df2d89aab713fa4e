//! A bounded load test of the local HTTP mode: the real `webhook` binary, signed requests from
//! many concurrent keep-alive connections on 127.0.0.1, a loopback fake agent and a fake Graph
//! API. Zero errors, every answer as expected, every message at the agent exactly once, and
//! bounded memory (VmHWM / VmRSS of the webhook process, from /proc).
//!
//! Two phases, measured separately:
//! - unique: every request carries a new message id, so each goes the full inline pipeline
//!   (verify → parse → claim → mark read → agent → format → send → complete) before the 200;
//! - duplicate: the same requests again, answered from the idempotency claims without calling
//!   the agent or the Graph API (Meta's at-least-once redeliveries).
//!
//! `cargo test` runs a small version (debug build). `make load` runs the full size on the
//! release build: `LOAD_REQUESTS=20000 LOAD_CONNECTIONS=64 cargo test --release --test load --
//! --nocapture`, and prints requests/s, p50/p99 latency and peak RSS.

mod support;

use serde_json::json;
use std::collections::HashSet;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::fakes::{accepting_graph, recording_agent};
use support::local_webhook::LocalWebhook;
use whatsapp_agent_lambda::dev::events::LOCAL_APP_SECRET;
use whatsapp_agent_lambda::webhook::sign;

/// Requests per phase when `LOAD_REQUESTS` is not set.
const DEFAULT_REQUESTS: usize = 2_000;
/// Concurrent connections when `LOAD_CONNECTIONS` is not set.
const DEFAULT_CONNECTIONS: usize = 16;
/// Requests sent before the memory baseline is taken (allocator pools, thread stacks, the
/// clients' connection pools all exist by then).
const WARM_UP: usize = 200;
/// The memory bound: the webhook's peak RSS may grow by at most this much over its RSS after
/// warm-up, plus `BYTES_PER_REMEMBERED_ID` per distinct message id it remembers. The first is
/// for what scales with concurrency (a blocking thread per in-flight agent or Graph call,
/// connection buffers, allocator arenas); the second is the in-memory idempotency store
/// (bounded at 50 000 ids, about 100 bytes each; 512 leaves room for the map's growth).
const MAX_GROWTH_BYTES: u64 = 64 * 1024 * 1024;
const BYTES_PER_REMEMBERED_ID: u64 = 512;
/// What the duplicate phase, which stores nothing new, may add to RSS: a leak per request of
/// even 1 KiB would show here at the full size (20 MB for 20 000 requests).
const MAX_DUPLICATE_PHASE_GROWTH_BYTES: u64 = 16 * 1024 * 1024;

const JOHN: &str = "14155551234";

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// `(VmHWM, VmRSS)` of the webhook process, in bytes.
fn memory(webhook: &LocalWebhook) -> (u64, u64) {
    let bytes = |field: &str| {
        webhook
            .status_kb(field)
            .unwrap_or_else(|| panic!("{field} of /proc/<pid>/status (Linux only)"))
            * 1024
    };
    (bytes("VmHWM"), bytes("VmRSS"))
}

fn start_webhook(agent_url: &str, graph_url: &str) -> LocalWebhook {
    LocalWebhook::start(
        agent_url,
        graph_url,
        // Production's log level; the lines go to /dev/null.
        &[
            ("AGENT_TIMEOUT_SECS", "30"),
            ("AWS_LAMBDA_LOG_LEVEL", "info"),
        ],
        Stdio::inherit(),
    )
}

/// The agent's answer to every message.
const AGENT_ANSWER: &str = r#"{"status":"success","text":"All 12 pods are **Running**."}"#;

fn message_body(id: &str) -> Vec<u8> {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [
        {"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "John Doe"}, "wa_id": JOHN}],
            "messages": [{"id": id, "from": JOHN, "timestamp": "1795514400", "type": "text",
                "text": {"body": "are the pods in prod healthy?"}}]
        }}
    ]}]})
    .to_string()
    .into_bytes()
}

/// What one phase measured.
struct Phase {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    errors: Vec<String>,
}

impl Phase {
    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }

    /// Asserts that every answer of the phase was as expected.
    fn assert_no_errors(&self, name: &str) {
        assert!(
            self.errors.is_empty(),
            "{name}: {} errors, first: {:?}",
            self.errors.len(),
            &self.errors[..self.errors.len().min(5)]
        );
    }

    fn report(&self, name: &str) -> String {
        format!(
            "{name}: {} requests in {:.2} s = {:.0} requests/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.requests as f64 / self.elapsed.as_secs_f64(),
            self.percentile(0.50).as_secs_f64() * 1e3,
            self.percentile(0.99).as_secs_f64() * 1e3,
            self.latencies.last().unwrap().as_secs_f64() * 1e3,
        )
    }
}

/// Sends `ids.len()` signed requests, one message each, from `connections` threads with one
/// keep-alive connection each. Every answer must be 200 "ok".
fn run_phase(url: &str, ids: &[String], connections: usize) -> Phase {
    let next = AtomicUsize::new(0);
    let latencies = Mutex::new(Vec::with_capacity(ids.len()));
    let errors = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..connections {
            scope.spawn(|| {
                let http: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .timeout_global(Some(Duration::from_secs(60)))
                    .max_idle_connections_per_host(1)
                    .build()
                    .into();
                let mut mine = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(id) = ids.get(index) else { break };
                    let body = message_body(id);
                    let signature = sign(LOCAL_APP_SECRET.as_bytes(), &body);
                    let sent = Instant::now();
                    let answer = http
                        .post(url)
                        .header("content-type", "application/json")
                        .header("x-hub-signature-256", &signature)
                        .send(&body[..]);
                    let outcome = answer.map_err(|e| e.to_string()).and_then(|mut a| {
                        let status = a.status().as_u16();
                        let text = a.body_mut().read_to_string().map_err(|e| e.to_string())?;
                        if status == 200 && text == "ok" {
                            Ok(())
                        } else {
                            Err(format!("HTTP {status}: {text}"))
                        }
                    });
                    mine.push(sent.elapsed());
                    if let Err(error) = outcome {
                        errors.lock().unwrap().push(format!("{id}: {error}"));
                    }
                }
                latencies.lock().unwrap().extend(mine);
            });
        }
    });
    let elapsed = started.elapsed();
    let mut latencies = latencies.into_inner().unwrap();
    latencies.sort();
    Phase {
        requests: ids.len(),
        elapsed,
        latencies,
        errors: errors.into_inner().unwrap(),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[test]
fn local_mode_under_load_answers_everything_once_in_bounded_memory() {
    let requests = env_count("LOAD_REQUESTS", DEFAULT_REQUESTS);
    let connections = env_count("LOAD_CONNECTIONS", DEFAULT_CONNECTIONS);
    let agent_ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let graph_calls = Arc::new(AtomicUsize::new(0));
    let agent = recording_agent(agent_ids.clone(), AGENT_ANSWER);
    let graph = accepting_graph(graph_calls.clone());
    let webhook = start_webhook(&agent.url(), &graph.url());

    let warm_up: Vec<String> = (0..WARM_UP).map(|n| format!("wamid.WARM.{n}")).collect();
    let warm = run_phase(&webhook.url, &warm_up, connections);
    warm.assert_no_errors("warm-up");
    let (_, baseline_rss) = memory(&webhook);

    // Unique ids: the full inline pipeline for every request.
    let ids: Vec<String> = (0..requests)
        .map(|n| format!("wamid.LOAD.{n:08}"))
        .collect();
    let unique = run_phase(&webhook.url, &ids, connections);
    let (unique_hwm, unique_rss) = memory(&webhook);
    unique.assert_no_errors("unique");
    let received = agent_ids.lock().unwrap().clone();
    assert_eq!(received.len(), WARM_UP + requests, "agent calls");
    let distinct: HashSet<&String> = received.iter().collect();
    assert_eq!(distinct.len(), WARM_UP + requests, "each message once");
    assert!(ids.iter().all(|id| distinct.contains(id)));
    // Mark read (with typing) and one reply per message.
    assert_eq!(
        graph_calls.load(Ordering::Relaxed),
        2 * (WARM_UP + requests)
    );

    // The same messages again: deduplicated, nothing reaches the agent or the Graph API.
    let duplicate = run_phase(&webhook.url, &ids, connections);
    let (peak, final_rss) = memory(&webhook);
    duplicate.assert_no_errors("duplicate");
    assert_eq!(agent_ids.lock().unwrap().len(), WARM_UP + requests);
    assert_eq!(
        graph_calls.load(Ordering::Relaxed),
        2 * (WARM_UP + requests)
    );

    let remembered = (WARM_UP + requests).min(50_000) as u64;
    let bound = baseline_rss + MAX_GROWTH_BYTES + BYTES_PER_REMEMBERED_ID * remembered;
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    println!(
        "load ({build} build): {requests} signed requests per phase from {connections} keep-alive connections on 127.0.0.1"
    );
    println!("  {}", unique.report("unique ids (full inline pipeline)"));
    println!(
        "  {}",
        duplicate.report("duplicate ids (answered from the claims)")
    );
    println!(
        "  webhook memory: RSS after warm-up {:.1} MiB; after unique phase RSS {:.1} MiB (peak {:.1}); after duplicate phase RSS {:.1} MiB; peak RSS (VmHWM) {:.1} MiB; bound {:.1} MiB",
        mib(baseline_rss),
        mib(unique_rss),
        mib(unique_hwm),
        mib(final_rss),
        mib(peak),
        mib(bound),
    );
    assert!(
        peak <= bound,
        "peak RSS {:.1} MiB over the bound {:.1} MiB",
        mib(peak),
        mib(bound)
    );
    assert!(
        final_rss <= unique_rss + MAX_DUPLICATE_PHASE_GROWTH_BYTES,
        "RSS grew by {:.1} MiB while answering duplicates (a leak per request?)",
        mib(final_rss.saturating_sub(unique_rss))
    );
}

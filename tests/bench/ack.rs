//! Benchmarks of the webhook's acknowledgement path and of the reply formatter, with an
//! allocation report. Run with `cargo bench --bench ack` (or `make bench`); a name filter
//! works as usual: `cargo bench --bench ack -- ack/2kb`.
//!
//! **What is measured** is the production code, in queue mode, with no network: exactly what
//! `WebhookApp::receive` does before its one SQS call.
//!
//! - `ack/<payload>`: `WebhookApp::accept` (size limit, HMAC-SHA256 over the body, parse,
//!   side-update logs, allowlist, one INFO log line per message) → `Job::new` per allowed
//!   message → `queue::batch_entries` (the SQS SendMessageBatch entries: JSON job bodies, FIFO
//!   group and deduplication ids). Throughput is in body bytes.
//! - `ack_stage/verify_2kb`, `ack_stage/parse_2kb`: the signature check and the parse alone;
//!   `ack_stage/accept_2kb` and `ack_stage/jobs_2kb`: `ack/2kb_text` in its two halves.
//! - `format/long_reply`: `reply::format_reply` on a ~16 KB Markdown incident report, split
//!   into several WhatsApp messages.
//! - `format/hostile_1mib`: `reply::format_reply` on a 1 MiB hostile reply (the most the agent
//!   client reads): a thousand nested quotes over lazy lines, the shape that once grew as
//!   depth × lines. Its peak heap is measured too (below).
//!
//! Logging is on, as in production: the same `tracing-subscriber` fmt stack as lambda_runtime's
//! default subscriber (no target, no time, an `EnvFilter`, here pinned to INFO), writing to
//! `std::io::sink`, so every log line is formatted but nothing is printed.
//!
//! **Payloads** (deterministic, `payloads.rs`): `2kb_text` (one text message, a 2048-byte body),
//! `batch_1000` (1000 text messages from 50 senders), `payload_3mb` (Meta's largest webhook,
//! 3 MiB of 4096-character messages). They are written to `<target>/bench/payloads/` as
//! `<name>.body`, `<name>.sig` (the `X-Hub-Signature-256` value), `<name>.messages` and
//! `app_secret`, for the comparison with other implementations; `<target>` is
//! `$CARGO_TARGET_DIR`, else `target/`.
//!
//! **The allocation report** runs first (also under `cargo test --all-targets`, where criterion
//! runs each benchmark once as a test): a counting global allocator measures, per payload, the
//! allocation calls and bytes (realloc growth counts as bytes) of the verify, the parse, the
//! whole `accept` and the jobs stage (`Job::new` + `batch_entries`), prints a table, writes
//! `<target>/bench/ack-allocs.json`, and fails when:
//! - verify allocates at all;
//! - `accept` allocates more than [`ACCEPT_EXTRA_PER_MESSAGE`] bytes per message on top of the
//!   parse (the allowlist and the logging must not copy the message text);
//! - the jobs stage allocates more than the SQS message bodies it produces plus
//!   [`JOBS_EXTRA_PER_MESSAGE`] bytes per message.
//!
//! Counts are taken on a warm process (after one untimed pass), like a warm Lambda: the log
//! formatter's buffer and the job serialization buffer (both per thread) already exist.
//!
//! **The formatter's peak heap** on the hostile reply (the most live heap bytes while
//! `format_reply` runs, above what was live before) is written to
//! `<target>/bench/format-peak.json` and fails the run past [`HOSTILE_PEAK_MAX`].

mod payloads;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use lambda_http::http::{HeaderMap, HeaderValue};
use payloads::Payload;
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use whatsapp_agent_lambda::agent::{AgentReply, ReplyStatus};
use whatsapp_agent_lambda::config::DEFAULT_MAX_BODY_BYTES;
use whatsapp_agent_lambda::domain::Allowlist;
use whatsapp_agent_lambda::domain::InboundMessage;
use whatsapp_agent_lambda::queue::Job;
use whatsapp_agent_lambda::queue::{MemoryQueue, batch_entries};
use whatsapp_agent_lambda::reply::format_reply;
use whatsapp_agent_lambda::reply::limits::MAX_TEXT_PARTS;
use whatsapp_agent_lambda::secrets::{Secret, Secrets};
use whatsapp_agent_lambda::webhook::{self, Dispatcher, WebhookApp, sign, verify_signature};

/// Bytes `accept` may allocate per message beyond the parse: headroom for the per-message log
/// line (the allowlist and the masked sender allocate nothing); never the message text.
const ACCEPT_EXTRA_PER_MESSAGE: u64 = 256;
/// Bytes the jobs stage may allocate per message beyond the SQS bodies: the job in the jobs
/// vector, the batch entry, its id, group id and deduplication id.
const JOBS_EXTRA_PER_MESSAGE: u64 = 1024;
/// Peak heap bytes `format_reply` may take on the 1 MiB hostile reply: the Markdown parser's
/// tree for the 256 KiB the formatter parses, the converted text and its split.
const HOSTILE_PEAK_MAX: u64 = 48 * 1024 * 1024;
/// The hostile reply's size.
const HOSTILE_REPLY_BYTES: usize = 1024 * 1024;

// --- Counting allocator ---------------------------------------------------------------------

/// `System`, counting allocation calls and bytes, and the live bytes and their peak, while
/// [`COUNTING`] is on (so the timed benchmarks pay one relaxed load per allocation, not
/// atomic adds).
struct CountingAllocator;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
/// Bytes allocated minus bytes freed while counting (negative when older blocks are freed).
static LIVE: AtomicI64 = AtomicI64::new(0);
static PEAK: AtomicI64 = AtomicI64::new(0);

impl CountingAllocator {
    fn count(bytes: usize) {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            BYTES.fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// `grown` bytes became live and then `freed` bytes were freed (a realloc is both).
    fn live(grown: usize, freed: usize) {
        if COUNTING.load(Ordering::Relaxed) {
            let live = LIVE.fetch_add(grown as i64, Ordering::Relaxed) + grown as i64;
            PEAK.fetch_max(live, Ordering::Relaxed);
            LIVE.fetch_sub(freed as i64, Ordering::Relaxed);
        }
    }
}

// SAFETY: every call is forwarded unchanged to `System`.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        Self::live(layout.size(), 0);
        // SAFETY: the caller's contract is `System`'s.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::count(layout.size());
        Self::live(layout.size(), 0);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        Self::live(0, layout.size());
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A growth is new memory; a shrink is counted as a call of 0 bytes.
        Self::count(new_size.saturating_sub(layout.size()));
        // A moving realloc holds both blocks for a moment.
        Self::live(new_size, layout.size());
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocation calls and bytes of one stage.
#[derive(Debug, Clone, Copy)]
struct Allocs {
    allocs: u64,
    bytes: u64,
}

/// Runs `stage` with counting on; its result is returned (and dropped) outside the count.
fn counted<T>(stage: impl FnOnce() -> T) -> (T, Allocs) {
    ALLOCS.store(0, Ordering::SeqCst);
    BYTES.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let result = stage();
    COUNTING.store(false, Ordering::SeqCst);
    let allocs = Allocs {
        allocs: ALLOCS.load(Ordering::SeqCst),
        bytes: BYTES.load(Ordering::SeqCst),
    };
    (result, allocs)
}

/// Runs `work` with counting on; returns its result and the peak of live heap bytes it added.
fn peak_of<T>(work: impl FnOnce() -> T) -> (T, u64) {
    LIVE.store(0, Ordering::SeqCst);
    PEAK.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    let result = work();
    COUNTING.store(false, Ordering::SeqCst);
    (result, PEAK.load(Ordering::SeqCst).max(0) as u64)
}

// --- Fixture ----------------------------------------------------------------------------------

/// One payload, signed, with the request headers Meta sends.
struct Case {
    payload: Payload,
    signature: String,
    headers: HeaderMap,
}

struct Fixture {
    app: WebhookApp,
    cases: Vec<Case>,
}

impl Fixture {
    fn new() -> Self {
        let secrets = Secrets {
            app_secret: Secret::new(payloads::APP_SECRET),
            ..Secrets::default()
        };
        let allowlist = Allowlist::parse(&payloads::allowlist_spec())
            .expect("the bench allowlist is a valid ALLOWED_SENDERS");
        let app = WebhookApp::new(
            secrets,
            allowlist,
            Dispatcher::Queue(Arc::new(MemoryQueue::default())),
            DEFAULT_MAX_BODY_BYTES,
        );
        let cases = payloads::all()
            .into_iter()
            .map(|payload| {
                let signature = sign(payloads::APP_SECRET.as_bytes(), &payload.body);
                let mut headers = HeaderMap::new();
                headers.insert("content-type", HeaderValue::from_static("application/json"));
                headers.insert("user-agent", HeaderValue::from_static("facebookexternalua"));
                headers.insert(
                    webhook::verify::SIGNATURE_HEADER,
                    HeaderValue::from_str(&signature).expect("a signature is a header value"),
                );
                Case {
                    payload,
                    signature,
                    headers,
                }
            })
            .collect();
        Self { app, cases }
    }

    fn case(&self, name: &str) -> &Case {
        self.cases
            .iter()
            .find(|case| case.payload.name == name)
            .unwrap_or_else(|| panic!("no bench payload named {name}"))
    }
}

/// The acknowledgement path of `WebhookApp::receive` in queue mode, up to the SQS call.
fn acknowledge(
    app: &WebhookApp,
    case: &Case,
) -> Vec<Vec<aws_sdk_sqs::types::SendMessageBatchRequestEntry>> {
    let allowed = accepted(app, case);
    jobs_stage(allowed)
}

fn accepted(app: &WebhookApp, case: &Case) -> Vec<InboundMessage> {
    match app.accept(&case.headers, &case.payload.body) {
        Ok(handoff) => handoff.messages,
        Err(refusal) => panic!(
            "accept refused bench payload {}: {refusal:?} (HTTP {})",
            case.payload.name,
            refusal.answer().status()
        ),
    }
}

fn jobs_stage(
    allowed: Vec<InboundMessage>,
) -> Vec<Vec<aws_sdk_sqs::types::SendMessageBatchRequestEntry>> {
    let jobs: Vec<Job> = allowed.into_iter().map(Job::new).collect();
    batch_entries(&jobs).expect("the bench jobs make valid SQS entries")
}

/// `$CARGO_TARGET_DIR`, else the package's `target/`.
fn target_dir() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => manifest.join(dir),
        _ => manifest.join("target"),
    }
}

/// Writes the payloads for the comparison with other implementations.
fn write_payloads(fixture: &Fixture) -> PathBuf {
    let dir = target_dir().join("bench").join("payloads");
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let write = |name: String, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    };
    write("app_secret".into(), payloads::APP_SECRET.as_bytes());
    for case in &fixture.cases {
        let name = case.payload.name;
        write(format!("{name}.body"), &case.payload.body);
        write(format!("{name}.sig"), case.signature.as_bytes());
        write(
            format!("{name}.messages"),
            case.payload.messages.to_string().as_bytes(),
        );
    }
    dir
}

/// lambda_runtime's default subscriber (`init_default_subscriber_with_writer`: fmt, no target,
/// no time, an `EnvFilter` with INFO as default), pinned to INFO whatever `RUST_LOG` says, and
/// writing to `std::io::sink`.
fn install_production_logging() {
    use lambda_http::tracing::subscriber::filter::{EnvFilter, LevelFilter};
    lambda_http::tracing::subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(
            EnvFilter::builder()
                .with_default_directive(LevelFilter::INFO.into())
                .parse_lossy(""),
        )
        .with_writer(std::io::sink)
        .try_init()
        .expect("the bench installs the only tracing subscriber");
}

/// Before anything is measured: every payload is accepted whole and makes ceil(n/10) batches.
fn check_paths(fixture: &Fixture) {
    for case in &fixture.cases {
        let name = case.payload.name;
        let expected = case.payload.messages;
        let allowed = accepted(&fixture.app, case);
        assert_eq!(
            allowed.len(),
            expected,
            "{name}: accept returned {} allowed messages, expected {expected}",
            allowed.len()
        );
        let batches = jobs_stage(allowed);
        assert_eq!(
            batches.len(),
            expected.div_ceil(10),
            "{name}: batch_entries made {} batches for {expected} messages",
            batches.len()
        );
        assert_eq!(
            batches.iter().map(Vec::len).sum::<usize>(),
            expected,
            "{name}: batch_entries lost or added entries"
        );
    }
}

// --- Allocation report ------------------------------------------------------------------------

fn allocation_report(fixture: &Fixture) {
    // One untimed pass: the log buffer, callsite registration and other once-per-process
    // allocations are a warm Lambda's, not a request's.
    for case in &fixture.cases {
        black_box(acknowledge(&fixture.app, case));
    }
    let mut report = serde_json::Map::new();
    println!(
        "\nallocations per request (calls / bytes; warm process)\n{:<12} {:>9} {:>6} {:>16} {:>9} {:>18} {:>18} {:>18} {:>10}",
        "payload", "body", "msgs", "verify", "", "parse", "accept", "jobs", "sqs bodies"
    );
    for case in &fixture.cases {
        let name = case.payload.name;
        let body = case.payload.body.as_slice();
        let messages = case.payload.messages as u64;
        let secret = payloads::APP_SECRET.as_bytes();

        let (verified, verify) = counted(|| verify_signature(Some(&case.signature), secret, body));
        assert_eq!(
            verified,
            Ok(()),
            "{name}: the bench signature does not verify"
        );
        let (parsed, parse) = counted(|| webhook::parse(body));
        drop(parsed.expect("the bench payloads parse"));
        let (allowed, accept) = counted(|| accepted(&fixture.app, case));
        let (batches, jobs) = counted(|| jobs_stage(allowed));
        let job_json_bytes: u64 = batches
            .iter()
            .flatten()
            .map(|entry| entry.message_body().len() as u64)
            .sum();
        drop(batches);

        println!(
            "{name:<12} {:>9} {:>6} {:>6} / {:<9} {:>6} / {:<9} {:>6} / {:<9} {:>6} / {:<9} {:>10}",
            body.len(),
            messages,
            verify.allocs,
            verify.bytes,
            parse.allocs,
            parse.bytes,
            accept.allocs,
            accept.bytes,
            jobs.allocs,
            jobs.bytes,
            job_json_bytes,
        );
        let stage = |a: Allocs| json!({"allocs": a.allocs, "bytes": a.bytes});
        report.insert(
            name.to_owned(),
            json!({
                "body_bytes": body.len(),
                "messages": messages,
                "verify": stage(verify),
                "parse": stage(parse),
                "accept": stage(accept),
                "jobs": stage(jobs),
                "job_json_bytes": job_json_bytes,
            }),
        );

        assert!(
            verify.allocs == 0 && verify.bytes == 0,
            "{name}: verify_signature allocated ({} calls, {} bytes): it must allocate nothing",
            verify.allocs,
            verify.bytes
        );
        let on_top = accept.bytes.saturating_sub(parse.bytes);
        assert!(
            on_top <= ACCEPT_EXTRA_PER_MESSAGE * messages,
            "{name}: accept allocated {on_top} bytes beyond the parse for {messages} messages, \
             over the bound of {ACCEPT_EXTRA_PER_MESSAGE} per message: the allowlist or the \
             logging copies per byte of body"
        );
        let bound = job_json_bytes + JOBS_EXTRA_PER_MESSAGE * messages;
        assert!(
            jobs.bytes <= bound,
            "{name}: Job::new + batch_entries allocated {} bytes, over the SQS bodies ({job_json_bytes}) \
             + {JOBS_EXTRA_PER_MESSAGE} per message = {bound}: something copies per byte of body",
            jobs.bytes
        );
    }
    println!(
        "bounds: verify 0 bytes; accept - parse <= {ACCEPT_EXTRA_PER_MESSAGE} B/message; \
         jobs <= sqs bodies + {JOBS_EXTRA_PER_MESSAGE} B/message: all met\n"
    );
    let path = target_dir().join("bench").join("ack-allocs.json");
    let text = serde_json::to_string_pretty(&serde_json::Value::Object(report))
        .expect("the report serializes");
    std::fs::write(&path, text + "\n")
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    println!("allocation report: {}", path.display());
}

// --- Criterion ----------------------------------------------------------------------------------

fn bench_ack(c: &mut Criterion, fixture: &Fixture) {
    let mut group = c.benchmark_group("ack");
    for (name, samples, warm_up, measurement) in [
        ("2kb_text", 100, 1, 3),
        ("batch_1000", 50, 1, 5),
        ("payload_3mb", 10, 2, 6),
    ] {
        let case = fixture.case(name);
        group
            .sample_size(samples)
            .warm_up_time(Duration::from_secs(warm_up))
            .measurement_time(Duration::from_secs(measurement))
            .sampling_mode(if samples <= 10 {
                SamplingMode::Flat
            } else {
                SamplingMode::Auto
            })
            .throughput(Throughput::Bytes(case.payload.body.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| acknowledge(black_box(&fixture.app), black_box(case)))
        });
    }
    group.finish();

    let case = fixture.case("2kb_text");
    let body = case.payload.body.as_slice();
    let mut group = c.benchmark_group("ack_stage");
    group
        .sample_size(100)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("verify_2kb", |b| {
        b.iter(|| {
            verify_signature(
                black_box(Some(case.signature.as_str())),
                black_box(payloads::APP_SECRET.as_bytes()),
                black_box(body),
            )
        })
    });
    group.bench_function("parse_2kb", |b| b.iter(|| webhook::parse(black_box(body))));
    // The two halves of `ack/2kb_text`: what the issue's floor covers (verify, parse,
    // allowlist) plus the log line, then building the SQS entry from the accepted message.
    group.bench_function("accept_2kb", |b| {
        b.iter(|| accepted(black_box(&fixture.app), black_box(case)))
    });
    let allowed = accepted(&fixture.app, case);
    group.bench_function("jobs_2kb", |b| {
        b.iter_batched(
            || allowed.clone(),
            |allowed| jobs_stage(black_box(allowed)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// A long agent answer: a ~16 KB Markdown incident report.
fn long_reply() -> AgentReply {
    let mut text = String::from(
        "# Incident report: checkout-api outage\n\n\
         **Status:** _mitigated_, monitoring. **Severity:** SEV-2. **Owner:** @oncall-payments\n\n",
    );
    let services = [
        "checkout-api",
        "payments-worker",
        "inventory-sync",
        "search-indexer",
        "notifications",
    ];
    let mut section = 0;
    while text.len() < 15_800 {
        section += 1;
        let service = services[section % services.len()];
        text.push_str(&format!(
            "## {section}. Findings for `{service}`\n\n\
             The **{service}** deployment `v2.{section}.0` rolled out at 14:0{d}Z and *within four \
             minutes* the error rate rose from 0.2% to 7.{d}%. See the [dashboard](https://grafana.example.com/d/{service}?from=now-1h) \
             and the [runbook](https://runbooks.example.com/{service}).\n\n\
             - Pods restarted: **{r}** of 12 (`CrashLoopBackOff`)\n\
             - p99 latency: _2.{d}s_ (SLO 800ms)\n\
             - Upstream `postgres-primary` connections saturated at **500/500**\n\
             - No change to the ingress or the service mesh config\n\n\
             Steps taken:\n\n\
             1. Paused the rollout with `kubectl rollout pause deploy/{service}`\n\
             2. Scaled the connection pool down from 50 to 20 per pod\n\
             3. Rolled back to `v2.{p}.3`; **error rate back under 0.5%** by 14:2{d}Z\n\n\
             ```\n\
             $ kubectl -n prod get pods -l app={service}\n\
             NAME                              READY   STATUS             RESTARTS   AGE\n\
             {service}-7d9f8c6b5-x2k4q     0/1     CrashLoopBackOff   {r}          11m\n\
             {service}-7d9f8c6b5-h8m3z     1/1     Running            0          11m\n\
             ```\n\n\
             | Metric | Before | During | After |\n\
             |---|---|---|---|\n\
             | Error rate | 0.2% | 7.{d}% | 0.4% |\n\
             | p99 latency | 310ms | 2.{d}s | 420ms |\n\
             | Throughput | 1.2k rps | 640 rps | 1.1k rps |\n\n\
             > Customer impact: roughly {r}00 failed checkouts; support has the list.\n\n",
            d = section % 10,
            r = 3 + section % 7,
            p = section.saturating_sub(1),
        ));
    }
    text.push_str(
        "## Next steps\n\n\
         - [ ] Add a connection-pool alert at 80%\n\
         - [ ] Canary analysis on error rate before 100% rollout\n\
         - [ ] Postmortem on **Thursday**, notes in the [doc](https://docs.example.com/pm/checkout)\n",
    );
    AgentReply::text(Some(ReplyStatus::Warning), text)
}

/// A 1 MiB hostile answer: a thousand nested quotes over a paragraph continued by lazy lines
/// (`"> " * 1000 + "x\n" + "y\n" * n`), the reply that once took 284 MB at 32 KB.
fn hostile_reply() -> AgentReply {
    let mut text = format!("{}x\n", "> ".repeat(1000));
    let lines = (HOSTILE_REPLY_BYTES - text.len()) / 2;
    text.push_str(&"y\n".repeat(lines));
    AgentReply::text(Some(ReplyStatus::Warning), text)
}

/// The formatter's peak heap on the hostile reply, written to `format-peak.json`; fails past
/// [`HOSTILE_PEAK_MAX`] or when the reply does not come out as a bounded set of messages.
fn format_peak_report(reply: &AgentReply) {
    // Once untimed, as for the allocation report: a warm process.
    black_box(format_reply(reply));
    let (messages, peak) = peak_of(|| format_reply(reply));
    let length = reply.text.as_deref().map_or(0, str::len);
    println!(
        "format_reply peak heap, {length}-byte hostile reply: {peak} bytes ({:.1} MiB), {} messages",
        peak as f64 / (1024.0 * 1024.0),
        messages.len()
    );
    assert!(
        (1..=MAX_TEXT_PARTS).contains(&messages.len()),
        "the hostile reply became {} messages",
        messages.len()
    );
    assert!(
        peak <= HOSTILE_PEAK_MAX,
        "format_reply peaked at {peak} heap bytes on the hostile reply, over {HOSTILE_PEAK_MAX}"
    );
    let path = target_dir().join("bench").join("format-peak.json");
    let report = json!({
        "hostile_1mib": {"reply_bytes": length, "peak_bytes": peak, "messages": messages.len()}
    });
    let text = serde_json::to_string_pretty(&report).expect("the report serializes");
    std::fs::write(&path, text + "\n")
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    println!("formatter peak report: {}", path.display());
}

fn bench_format(c: &mut Criterion) {
    let reply = long_reply();
    let length = reply.text.as_deref().map_or(0, str::len);
    let messages = format_reply(&reply);
    assert!(
        messages.len() > 1,
        "the {length}-byte reply was formatted into {} message(s), expected several",
        messages.len()
    );
    let mut group = c.benchmark_group("format");
    group
        .sample_size(100)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(length as u64));
    group.bench_function("long_reply", |b| b.iter(|| format_reply(black_box(&reply))));

    let hostile = hostile_reply();
    format_peak_report(&hostile);
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(HOSTILE_REPLY_BYTES as u64));
    group.bench_function("hostile_1mib", |b| {
        b.iter(|| format_reply(black_box(&hostile)))
    });
    group.finish();
}

fn main() {
    install_production_logging();
    let fixture = Fixture::new();
    let dir = write_payloads(&fixture);
    println!("payloads: {}", dir.display());
    check_paths(&fixture);
    allocation_report(&fixture);

    let mut criterion = Criterion::default().configure_from_args();
    bench_ack(&mut criterion, &fixture);
    bench_format(&mut criterion);
    criterion.final_summary();
}

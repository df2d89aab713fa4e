//! Cold start and warm latency of the `webhook` Lambda function compared with a bare
//! lambda_runtime "hello" function (`tests/bench/hello_lambda.rs`), both run as real processes
//! against an in-repo Lambda Runtime API emulator (`tests/support/runtime_api.rs`), with the
//! webhook's secret and job queue served by moto (the local AWS emulator, from `.venv`).
//!
//! **What is measured**, for each function:
//! - cold (`COLD_RUNS` fresh processes, default 20, webhook and hello runs interleaved):
//!   `ready` = spawn → the first `GET /next` arrives (process start + init);
//!   `first` = the first event handed over (its `/next` response sent) → `/response` arrives;
//!   `cold_total` = ready + first; median and max. For the webhook also the medians of
//!   `aws_config_ms` and `secrets_ms` from its "configured" log line (building the AWS SDK
//!   configuration, and reading the secret from Secrets Manager on moto).
//! - warm: one process per function, 5 warm-up invocations, then `WARM_INVOCATIONS` (default
//!   2000, at least 1000) back to back: event handed over → `/response` arrived; median and
//!   p99. Both processes run at once, alternating in blocks of 100 invocations, so that the
//!   noise of a shared machine hits both alike.
//! - peak RSS: `VmHWM` of `/proc/<pid>/status` after the warm run, before the process stops.
//!
//! The event (used for every ratio) is a signed API Gateway HTTP API (v2) webhook carrying one
//! `delivered` status: the webhook Meta sends most (sent/delivered/read for every reply), and
//! one the webhook answers without I/O. For information only, the warm webhook process then
//! also gets `QUEUE_INVOCATIONS` (default 200) signed text messages from an allowed sender,
//! each queued as a job on SQS FIFO in moto (so moto's own latency is included; the queue is
//! emptied between invocations, outside the measurement, as moto slows down with its depth),
//! and the job count is checked. Every answer
//! must be `statusCode` 200, or the harness panics with the body.
//!
//! Both functions start from an empty environment plus the same Lambda-like variables
//! (`AWS_LAMBDA_RUNTIME_API`, function name/version/memory, region, test credentials,
//! nonexistent AWS config files, IMDS disabled, JSON logs at INFO); the webhook also gets its
//! production configuration (`DISPATCH=queue`, `JOB_QUEUE_URL`, `WHATSAPP_SECRET_ID`,
//! `ALLOWED_SENDERS`, `AGENT_URL`, `AWS_ENDPOINT_URL` = moto). Their stdout and stderr go to
//! `<target>/bench/coldstart-logs/`.
//!
//! **Output**: a table on stdout and `<target>/bench/coldstart.json` (target = `$CARGO_TARGET_DIR`
//! or `<manifest dir>/target`), with the ratios webhook/hello next to the targets (cold ≤ 1.5×,
//! warm ≤ 1.2×, webhook peak RSS ≤ 24 MiB). Targets are reported, not asserted.
//!
//! **How to run**: needs moto (`make venv`).
//! - Full mode (release binaries `<target>/release/webhook` and
//!   `<target>/release/examples/hello-lambda`):
//!   `cargo build --release --bin webhook --example hello-lambda && cargo bench --bench coldstart`
//!   (`COLD_RUNS`, `WARM_INVOCATIONS`, `QUEUE_INVOCATIONS` override the counts;
//!   `COLDSTART_ENV="NAME=value …"` adds variables to both functions, for experiments).
//! - Test mode (no `--bench` argument, as under `cargo test --all-targets` or
//!   `cargo test --bench coldstart`): a smoke run (2 cold runs, 50 warm and 5 queue-mode
//!   invocations) of the debug webhook, asserting that the harness works (every answer 200,
//!   ready < 10 s, the "configured" line read), no performance target; it writes
//!   `<target>/bench/coldstart-test.json`. `cargo test --all-targets` builds examples as test
//!   harnesses, not as programs, so in this mode the hello function is this harness binary
//!   re-executed with `--hello-lambda`, running `hello_lambda.rs` (compiled in as a module).

#[path = "../support/fixtures.rs"]
#[allow(dead_code)]
mod fixtures;
#[path = "hello_lambda.rs"]
mod hello_lambda;
#[path = "../support/runtime_api.rs"]
mod runtime_api;

use bytes::Bytes;
use runtime_api::{Invocation, RuntimeApi};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use whatsapp_agent_lambda::aws::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, sdk_config_for};
use whatsapp_agent_lambda::dev::events::{
    LOCAL_ACCESS_TOKEN, LOCAL_ALLOWED_SENDERS, LOCAL_APP_SECRET, LOCAL_VERIFY_TOKEN,
};
use whatsapp_agent_lambda::dev::moto::{MOTO_SERVER, Moto, create_pipeline_resources};
use whatsapp_agent_lambda::secrets::{KEY_ACCESS_TOKEN, KEY_APP_SECRET, KEY_VERIFY_TOKEN};

/// The argument that makes this binary the hello function (test mode).
const HELLO_ROLE: &str = "--hello-lambda";
const REGION: &str = "us-east-1";
const SECRET_NAME: &str = "coldstart/whatsapp";
const QUEUE_PREFIX: &str = "coldstart-jobs";
/// Longest wait for anything a function does (start, answer); then the harness fails.
const WAIT: Duration = Duration::from_secs(30);
/// Invocations run before a warm measurement (not counted).
const WARMUP: usize = 5;
/// Warm invocations per function before switching to the other one.
const WARM_BLOCK: usize = 100;
/// Test mode: the longest acceptable `ready`.
const SMOKE_MAX_READY: Duration = Duration::from_secs(10);
/// Targets, reported next to the figures.
const COLD_TARGET: f64 = 1.5;
const WARM_TARGET: f64 = 1.2;
const RSS_TARGET_MIB: f64 = 24.0;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(HELLO_ROLE) {
        if let Err(error) = hello_lambda::main() {
            eprintln!("hello-lambda: {error}");
            std::process::exit(1);
        }
        return;
    }
    let started = Instant::now();
    let settings = Settings::from_args(&args);
    let paths = Paths::new();
    let functions = functions(&settings, &paths);
    let moto = Moto::start(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(MOTO_SERVER),
        &paths.logs,
    )
    .unwrap_or_else(|error| panic!("cannot start moto: {error}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = runtime.block_on(run(&settings, &paths, &moto, functions));
    drop(moto);
    let report = report.with_elapsed(started.elapsed());
    print!("{}", report.table());
    let json_path = paths.bench.join(if settings.full {
        "coldstart.json"
    } else {
        "coldstart-test.json"
    });
    let text = serde_json::to_string_pretty(&report.json()).expect("report as JSON") + "\n";
    std::fs::write(&json_path, text)
        .unwrap_or_else(|error| panic!("write {}: {error}", json_path.display()));
    println!("written: {}", json_path.display());
    if !settings.full {
        report.assert_smoke();
        println!("coldstart (test mode): ok");
    }
}

/// Full mode (`cargo bench`) or test mode, and the counts.
struct Settings {
    full: bool,
    cold_runs: usize,
    warm_invocations: usize,
    queue_invocations: usize,
}

impl Settings {
    fn from_args(args: &[String]) -> Self {
        if !args.iter().any(|arg| arg == "--bench") {
            return Self {
                full: false,
                cold_runs: 2,
                warm_invocations: 50,
                queue_invocations: 5,
            };
        }
        let settings = Self {
            full: true,
            cold_runs: count("COLD_RUNS", 20),
            warm_invocations: count("WARM_INVOCATIONS", 2000),
            queue_invocations: count("QUEUE_INVOCATIONS", 200),
        };
        assert!(
            settings.warm_invocations >= 1000,
            "WARM_INVOCATIONS must be at least 1000 in full mode (a p99 needs them)"
        );
        settings
    }
}

/// A positive count from the environment, or `default`.
fn count(var: &str, default: usize) -> usize {
    match std::env::var(var) {
        Err(_) => default,
        Ok(value) => value
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .unwrap_or_else(|| panic!("{var}={value:?} is not a positive count")),
    }
}

/// Where binaries are read and results written.
struct Paths {
    target: PathBuf,
    /// `<target>/bench`: the JSON report.
    bench: PathBuf,
    /// `<target>/bench/coldstart-logs`: the functions' stdout and stderr, moto's log.
    logs: PathBuf,
    /// A directory that does not exist: the functions' AWS config and credentials files.
    absent: PathBuf,
}

impl Paths {
    fn new() -> Self {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => manifest.join(dir),
            None => manifest.join("target"),
        };
        let bench = target.join("bench");
        let logs = bench.join("coldstart-logs");
        std::fs::create_dir_all(&logs)
            .unwrap_or_else(|error| panic!("create {}: {error}", logs.display()));
        let absent = std::env::temp_dir().join(format!(
            "coldstart-{}-no-such-directory",
            std::process::id()
        ));
        assert!(!absent.exists(), "{} exists", absent.display());
        Self {
            target,
            bench,
            logs,
            absent,
        }
    }
}

/// A function to launch: program, arguments, its own environment on top of the common one.
struct Function {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// Whether it logs the "configured" line (the webhook).
    logs_configuration: bool,
    binary_bytes: u64,
}

impl Function {
    fn new(name: &'static str, program: PathBuf, args: Vec<String>) -> Self {
        let binary_bytes = std::fs::metadata(&program)
            .unwrap_or_else(|error| panic!("{}: {error}", program.display()))
            .len();
        Self {
            name,
            program,
            args,
            env: Vec::new(),
            logs_configuration: false,
            binary_bytes,
        }
    }
}

/// The two functions of this mode; fails with a clear message if a binary is missing.
fn functions(settings: &Settings, paths: &Paths) -> (Function, Function) {
    if settings.full {
        let webhook = paths.target.join("release/webhook");
        let hello = paths.target.join("release/examples/hello-lambda");
        for binary in [&webhook, &hello] {
            assert!(
                binary.is_file(),
                "{} is missing: run `cargo build --release --bin webhook --example hello-lambda` first",
                binary.display()
            );
        }
        (
            Function::new("webhook", webhook, Vec::new()),
            Function::new("hello", hello, Vec::new()),
        )
    } else {
        let this = std::env::current_exe().expect("path of this harness");
        (
            Function::new(
                "webhook",
                PathBuf::from(env!("CARGO_BIN_EXE_webhook")),
                Vec::new(),
            ),
            Function::new("hello", this, vec![HELLO_ROLE.to_owned()]),
        )
    }
}

/// The Lambda-like environment both functions get (and nothing else from the harness's).
fn lambda_env(function: &str, runtime_api: &str, absent: &Path) -> Vec<(String, String)> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned());
    [
        ("PATH", path),
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY.to_owned()),
        (
            "AWS_CONFIG_FILE",
            absent.join("config").display().to_string(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            absent.join("credentials").display().to_string(),
        ),
        ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        // Read by lambda_runtime's default tracing subscriber (the webhook's).
        ("AWS_LAMBDA_LOG_FORMAT", "JSON".to_owned()),
        ("AWS_LAMBDA_LOG_LEVEL", "INFO".to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// `COLDSTART_ENV`: extra `NAME=value` pairs (space-separated) for both functions, applied
/// last, for experiments (e.g. `AWS_LAMBDA_LOG_LEVEL=WARN`, `SSL_CERT_FILE=/dev/null`).
fn extra_env() -> Vec<(String, String)> {
    let value = std::env::var("COLDSTART_ENV").unwrap_or_default();
    value
        .split_whitespace()
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .unwrap_or_else(|| panic!("COLDSTART_ENV: {pair:?} is not NAME=value"));
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// The webhook's production configuration (template.yaml's), against moto.
fn webhook_env(moto: &Moto, queue_url: &str) -> Vec<(String, String)> {
    [
        ("WHATSAPP_SECRET_ID", SECRET_NAME),
        ("AWS_ENDPOINT_URL", moto.endpoint()),
        ("DISPATCH", "queue"),
        ("JOB_QUEUE_URL", queue_url),
        ("ALLOWED_SENDERS", LOCAL_ALLOWED_SENDERS),
        ("GRAPH_API_VERSION", "v25.0"),
        // Never called in queue mode; the configuration requires a complete agent backend.
        ("AGENT_BACKEND", "http"),
        ("AGENT_URL", "http://127.0.0.1:9/agent"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect()
}

/// The secret and the job queue in moto; returns the queue URL.
async fn create_aws_resources(moto: &Moto) -> String {
    let config = sdk_config_for(moto.endpoint(), REGION).await;
    let resources = create_pipeline_resources(&config, QUEUE_PREFIX, 30, 3)
        .await
        .unwrap_or_else(|error| panic!("moto: {error}"));
    let secret = json!({
        KEY_APP_SECRET: LOCAL_APP_SECRET,
        KEY_ACCESS_TOKEN: LOCAL_ACCESS_TOKEN,
        KEY_VERIFY_TOKEN: LOCAL_VERIFY_TOKEN,
    });
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name(SECRET_NAME)
        .secret_string(secret.to_string())
        .send()
        .await
        .unwrap_or_else(|error| {
            panic!(
                "moto: create the secret: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(error)
            )
        });
    resources.queue_url
}

// ---------------------------------------------------------------------------------------------
// Events

const PHONE_NUMBER_ID: &str = "106540352242922";
const SENDER: &str = "14155551234";

/// The primary event: a signed webhook with one `delivered` status for a message we sent.
fn status_event() -> Bytes {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
            "statuses": [{
                "id": "wamid.HBgLMTQxNTU1NTEyMzQVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA",
                "status": "delivered",
                "timestamp": "1795514400",
                "recipient_id": SENDER,
                "conversation": {"id": "CONVERSATION_ID", "origin": {"type": "service"}},
                "pricing": {"billable": false, "pricing_model": "PMP", "category": "service"}
            }]
        }}]}]
    });
    api_gateway_event(&body.to_string())
}

/// A signed text message from an allowed sender; `n` makes its message id unique (SQS FIFO
/// would drop a repeated one as a duplicate).
fn text_event(n: usize) -> Bytes {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "John Doe"}, "wa_id": SENDER}],
            "messages": [{
                "id": format!("wamid.COLDSTART{n:010}"),
                "timestamp": "1795514400",
                "type": "text",
                "from": SENDER,
                "text": {"body": "pods crashing in prod"}
            }]
        }}]}]
    });
    api_gateway_event(&body.to_string())
}

/// The API Gateway event of a POST of `body` to /webhook, signed as Meta does.
fn api_gateway_event(body: &str) -> Bytes {
    Bytes::from(fixtures::api_gateway_event("POST", "", Some(body.as_bytes()), false).to_string())
}

// ---------------------------------------------------------------------------------------------
// Processes and sessions

/// A function process; killed (and reaped) when dropped, also on panic.
struct Process {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Process {
    /// CPU time the process has used so far, all threads, in ms: the first field of each
    /// `/proc/<pid>/task/<tid>/schedstat` (nanoseconds on a CPU). This is what Lambda's CPU
    /// share stretches at small memory sizes; waiting on the network costs none.
    fn cpu_ms(&self) -> f64 {
        let dir = format!("/proc/{}/task", self.child.id());
        let tasks = std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("{dir}: {error}"));
        let nanos: u64 = tasks
            .filter_map(|task| {
                let path = task.ok()?.path().join("schedstat");
                let text = std::fs::read_to_string(path).ok()?;
                text.split_whitespace().next()?.parse::<u64>().ok()
            })
            .sum();
        nanos as f64 / 1e6
    }

    /// `VmHWM` (peak resident set) in KiB.
    fn peak_rss_kib(&self) -> u64 {
        let path = format!("/proc/{}/status", self.child.id());
        let status =
            std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{path} has no VmHWM"))
    }

    /// The last `lines` lines of the function's stderr, for failure messages.
    fn stderr_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One function process with its own Runtime API emulator.
struct Session {
    name: &'static str,
    api: RuntimeApi,
    process: Process,
    spawned: Instant,
}

/// One invocation's instants.
struct Timed {
    handed_over: Instant,
    answered: Instant,
}

static REQUEST_IDS: AtomicU64 = AtomicU64::new(1);

impl Session {
    /// Starts the emulator, then the function (`tag` names its log files).
    async fn start(function: &Function, paths: &Paths, tag: &str) -> Self {
        let api = RuntimeApi::start(function.name)
            .await
            .unwrap_or_else(|error| panic!("Runtime API emulator: {error}"));
        let stdout = paths
            .logs
            .join(format!("{}-{tag}.stdout.log", function.name));
        let stderr = paths
            .logs
            .join(format!("{}-{tag}.stderr.log", function.name));
        let create = |path: &Path| {
            std::fs::File::create(path)
                .unwrap_or_else(|error| panic!("create {}: {error}", path.display()))
        };
        let mut command = Command::new(&function.program);
        command
            .args(&function.args)
            .env_clear()
            .envs(lambda_env(function.name, &api.address(), &paths.absent))
            .envs(function.env.iter().cloned())
            .envs(extra_env())
            .stdin(Stdio::null())
            .stdout(create(&stdout))
            .stderr(create(&stderr));
        let spawned = Instant::now();
        let child = command
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", function.program.display()));
        Self {
            name: function.name,
            api,
            process: Process {
                child,
                stdout,
                stderr,
            },
            spawned,
        }
    }

    /// Waits for `GET /next` (within [`WAIT`]): when it arrived, and where to send the event.
    /// Fails on an init error, an unexpected request, the process exiting, or silence.
    async fn next(&mut self) -> (Instant, oneshot::Sender<Invocation>) {
        match self.api.next(&mut self.process.child, WAIT).await {
            Ok(next) => next,
            Err(error) => self.fail(&error),
        }
    }

    /// Hands `event` over on the held `/next`, waits for the answer and checks it is a 200.
    async fn invoke(&mut self, reply: oneshot::Sender<Invocation>, event: Bytes) -> Timed {
        let id = REQUEST_IDS.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("c01d5747-0000-4000-8000-{id:012x}");
        let answer = match self
            .api
            .invoke(&mut self.process.child, reply, &request_id, event, WAIT)
            .await
        {
            Ok(answer) => answer,
            Err(error) => self.fail(&error),
        };
        if answer.error {
            self.fail(&format!(
                "invocation error: {}",
                String::from_utf8_lossy(&answer.body)
            ));
        }
        let status = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|answer| answer.get("statusCode").and_then(Value::as_i64));
        if status != Some(200) {
            self.fail(&format!(
                "answered {status:?} instead of statusCode 200: {}",
                String::from_utf8_lossy(&answer.body)
            ));
        }
        Timed {
            handed_over: answer.handed_over,
            answered: answer.answered,
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{}: {what}\nlogs: {} and {}\nlast lines of stderr:\n{}",
            self.name,
            self.process.stdout.display(),
            self.process.stderr.display(),
            self.process.stderr_tail(20)
        )
    }
}

/// `aws_config_ms` and `secrets_ms` of the webhook's "configured" log line (JSON format).
fn configured_timings(stdout: &Path) -> Option<(f64, f64)> {
    let text = std::fs::read_to_string(stdout).ok()?;
    text.lines().find_map(|line| {
        let entry: Value = serde_json::from_str(line).ok()?;
        let fields = entry.get("fields")?;
        if fields.get("message")?.as_str()? != "configured" {
            return None;
        }
        Some((
            fields.get("aws_config_ms")?.as_f64()?,
            fields.get("secrets_ms")?.as_f64()?,
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Measurements

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// One cold start.
struct ColdSample {
    ready_ms: f64,
    first_ms: f64,
    /// CPU time used from exec to the first answer (all threads).
    cpu_ms: f64,
    /// The webhook's `aws_config_ms` and `secrets_ms`.
    configured: Option<(f64, f64)>,
}

impl ColdSample {
    fn total_ms(&self) -> f64 {
        self.ready_ms + self.first_ms
    }
}

async fn cold_run(function: &Function, paths: &Paths, event: &Bytes, run: usize) -> ColdSample {
    let mut session = Session::start(function, paths, &format!("cold-{run:02}")).await;
    let (ready_at, reply) = session.next().await;
    let timed = session.invoke(reply, event.clone()).await;
    let sample = ColdSample {
        ready_ms: ms(ready_at - session.spawned),
        first_ms: ms(timed.answered - timed.handed_over),
        cpu_ms: session.process.cpu_ms(),
        configured: None,
    };
    let stdout = session.process.stdout.clone();
    drop(session);
    let configured = configured_timings(&stdout);
    if function.logs_configuration && configured.is_none() {
        panic!(
            "{}: no \"configured\" line with aws_config_ms and secrets_ms in {}",
            function.name,
            stdout.display()
        );
    }
    ColdSample {
        configured,
        ..sample
    }
}

/// One warm process.
struct WarmResult {
    latencies_ms: Vec<f64>,
    /// CPU time per invocation (the process's CPU over the measured run / invocations).
    cpu_ms_per_invocation: f64,
    /// The same for the webhook's queue-mode invocations.
    queue_cpu_ms_per_invocation: Option<f64>,
    peak_rss_kib: u64,
    /// The webhook: text messages queued to SQS, and the peak RSS after them.
    queue_latencies_ms: Vec<f64>,
    peak_rss_after_queue_kib: Option<u64>,
}

/// Both functions warm at once, their invocations alternating in blocks of [`WARM_BLOCK`] so
/// that a noisy moment hits both alike; then the webhook's queue-mode invocations.
async fn warm_runs(
    functions: [&Function; 2],
    paths: &Paths,
    event: &Bytes,
    invocations: usize,
    queue_events: &[Bytes],
    drain: &mut JobDrain,
) -> [WarmResult; 2] {
    let mut sessions = [
        Session::start(functions[0], paths, "warm").await,
        Session::start(functions[1], paths, "warm").await,
    ];
    let mut latencies = [Vec::new(), Vec::new()];
    for session in &mut sessions {
        invoke_all(session, std::iter::repeat_n(event.clone(), WARMUP), None).await;
    }
    let cpu_before = sessions.each_ref().map(|session| session.process.cpu_ms());
    let mut left = invocations;
    while left > 0 {
        let block = left.min(WARM_BLOCK);
        for (session, latencies) in sessions.iter_mut().zip(&mut latencies) {
            let events = std::iter::repeat_n(event.clone(), block);
            latencies.extend(invoke_all(session, events, None).await);
        }
        left -= block;
    }
    let peaks = sessions
        .each_ref()
        .map(|session| session.process.peak_rss_kib());
    let cpu_per_invocation =
        [0, 1].map(|i| (sessions[i].process.cpu_ms() - cpu_before[i]) / invocations.max(1) as f64);
    let queue_cpu_before = sessions[0].process.cpu_ms();
    // The webhook's queue-mode run: warm-up events first, like the primary event's.
    let mut queue_latencies_ms =
        invoke_all(&mut sessions[0], queue_events.iter().cloned(), Some(drain)).await;
    // (The queue-mode CPU includes its few warm-up invocations.)
    let queue_cpu_ms_per_invocation =
        (sessions[0].process.cpu_ms() - queue_cpu_before) / queue_latencies_ms.len().max(1) as f64;
    let queue_latencies_ms = queue_latencies_ms.split_off(WARMUP.min(queue_latencies_ms.len()));
    let peak_after_queue = sessions[0].process.peak_rss_kib();
    let [webhook, hello] = latencies;
    [
        WarmResult {
            latencies_ms: webhook,
            cpu_ms_per_invocation: cpu_per_invocation[0],
            queue_cpu_ms_per_invocation: Some(queue_cpu_ms_per_invocation),
            peak_rss_kib: peaks[0],
            queue_latencies_ms,
            peak_rss_after_queue_kib: Some(peak_after_queue),
        },
        WarmResult {
            latencies_ms: hello,
            cpu_ms_per_invocation: cpu_per_invocation[1],
            queue_cpu_ms_per_invocation: None,
            peak_rss_kib: peaks[1],
            queue_latencies_ms: Vec::new(),
            peak_rss_after_queue_kib: None,
        },
    ]
}

/// Invokes `events` one after the other; their latencies (hand-over → response), in ms.
/// With `drain`, the job queue is emptied after each invocation (outside the measurement).
async fn invoke_all(
    session: &mut Session,
    events: impl Iterator<Item = Bytes>,
    mut drain: Option<&mut JobDrain>,
) -> Vec<f64> {
    let mut latencies = Vec::new();
    for event in events {
        let (_, reply) = session.next().await;
        let timed = session.invoke(reply, event).await;
        latencies.push(ms(timed.answered - timed.handed_over));
        if let Some(drain) = drain.as_deref_mut() {
            drain.drain().await;
        }
    }
    latencies
}

/// Empties the job queue between queue-mode invocations, counting the jobs. moto scans every
/// message of a FIFO queue on each send (and recomputes the queue's attributes while at it), so
/// a growing queue made its send latency, not the webhook's, grow with the run: from 5 ms to
/// 27 ms over 205 sends.
struct JobDrain {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    jobs: usize,
}

impl JobDrain {
    async fn new(moto: &Moto, queue_url: &str) -> Self {
        let config = sdk_config_for(moto.endpoint(), REGION).await;
        Self {
            sqs: aws_sdk_sqs::Client::new(&config),
            queue_url: queue_url.to_owned(),
            jobs: 0,
        }
    }

    async fn drain(&mut self) {
        use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
        loop {
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .unwrap_or_else(|error| panic!("moto: receive the jobs: {error}"));
            let messages = received.messages();
            if messages.is_empty() {
                return;
            }
            let entries = messages
                .iter()
                .enumerate()
                .map(|(i, message)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(message.receipt_handle().unwrap_or_default())
                        .build()
                        .expect("delete entry")
                })
                .collect::<Vec<_>>();
            self.sqs
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .unwrap_or_else(|error| panic!("moto: delete the jobs: {error}"));
            self.jobs += messages.len();
        }
    }
}

async fn run(
    settings: &Settings,
    paths: &Paths,
    moto: &Moto,
    (mut webhook, hello): (Function, Function),
) -> Report {
    let queue_url = create_aws_resources(moto).await;
    webhook.env = webhook_env(moto, &queue_url);
    webhook.logs_configuration = true;
    let status = status_event();
    let load_before = load_average();

    // Cold starts, interleaved so that a noisy moment hits both functions alike.
    let (mut webhook_cold, mut hello_cold) = (Vec::new(), Vec::new());
    for run in 0..settings.cold_runs {
        webhook_cold.push(cold_run(&webhook, paths, &status, run).await);
        hello_cold.push(cold_run(&hello, paths, &status, run).await);
    }

    let queue_events: Vec<Bytes> = (0..WARMUP + settings.queue_invocations)
        .map(text_event)
        .collect();
    let mut drain = JobDrain::new(moto, &queue_url).await;
    let [webhook_warm, hello_warm] = warm_runs(
        [&webhook, &hello],
        paths,
        &status,
        settings.warm_invocations,
        &queue_events,
        &mut drain,
    )
    .await;
    assert_eq!(
        drain.jobs,
        queue_events.len(),
        "every queue-mode invocation should have queued exactly one job"
    );

    Report {
        settings_full: settings.full,
        cold_runs: settings.cold_runs,
        warm_invocations: settings.warm_invocations,
        queue_invocations: settings.queue_invocations,
        webhook: FunctionReport::new(&webhook, webhook_cold, webhook_warm),
        hello: FunctionReport::new(&hello, hello_cold, hello_warm),
        load_before,
        load_after: load_average(),
        elapsed: Duration::ZERO,
    }
}

/// `/proc/loadavg`'s first three figures: how busy the machine was (other builds skew timings).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "?".to_owned())
}

// ---------------------------------------------------------------------------------------------
// Statistics and report

/// Order statistics of a sample, in milliseconds.
#[derive(Clone, Copy)]
struct Summary {
    n: usize,
    min: f64,
    median: f64,
    p99: f64,
    max: f64,
    mean: f64,
}

impl Summary {
    fn of(samples: &[f64]) -> Self {
        assert!(!samples.is_empty(), "no samples");
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        // Nearest rank.
        let p99 = sorted[((0.99 * n as f64).ceil() as usize).clamp(1, n) - 1];
        Self {
            n,
            min: sorted[0],
            median,
            p99,
            max: sorted[n - 1],
            mean: sorted.iter().sum::<f64>() / n as f64,
        }
    }

    fn json(&self) -> Value {
        json!({
            "n": self.n, "min": self.min, "median": self.median, "p99": self.p99,
            "max": self.max, "mean": self.mean
        })
    }
}

struct FunctionReport {
    name: &'static str,
    binary: PathBuf,
    binary_bytes: u64,
    cold: Vec<ColdSample>,
    ready: Summary,
    first: Summary,
    total: Summary,
    cold_cpu: Summary,
    warm_cpu_ms: f64,
    queue_cpu_ms: Option<f64>,
    aws_config: Option<Summary>,
    secrets: Option<Summary>,
    warm: Summary,
    queue: Option<Summary>,
    /// After the warm run of the primary event.
    peak_rss_kib: u64,
    /// After the queue-mode invocations too (the webhook).
    peak_rss_after_queue_kib: Option<u64>,
}

impl FunctionReport {
    fn new(function: &Function, cold: Vec<ColdSample>, warm: WarmResult) -> Self {
        let pick = |f: fn(&ColdSample) -> f64| cold.iter().map(f).collect::<Vec<_>>();
        let configured: Vec<(f64, f64)> = cold.iter().filter_map(|c| c.configured).collect();
        let (aws_config, secrets) = if configured.is_empty() {
            (None, None)
        } else {
            (
                Some(Summary::of(
                    &configured.iter().map(|c| c.0).collect::<Vec<_>>(),
                )),
                Some(Summary::of(
                    &configured.iter().map(|c| c.1).collect::<Vec<_>>(),
                )),
            )
        };
        Self {
            name: function.name,
            binary: function.program.clone(),
            binary_bytes: function.binary_bytes,
            ready: Summary::of(&pick(|c| c.ready_ms)),
            first: Summary::of(&pick(|c| c.first_ms)),
            total: Summary::of(&pick(ColdSample::total_ms)),
            cold_cpu: Summary::of(&pick(|c| c.cpu_ms)),
            warm_cpu_ms: warm.cpu_ms_per_invocation,
            queue_cpu_ms: warm.queue_cpu_ms_per_invocation,
            cold,
            aws_config,
            secrets,
            warm: Summary::of(&warm.latencies_ms),
            queue: (!warm.queue_latencies_ms.is_empty())
                .then(|| Summary::of(&warm.queue_latencies_ms)),
            peak_rss_kib: warm.peak_rss_kib,
            peak_rss_after_queue_kib: warm.peak_rss_after_queue_kib,
        }
    }

    fn peak_rss_mib(&self) -> f64 {
        self.peak_rss_kib as f64 / 1024.0
    }

    /// The highest peak seen (after the queue-mode invocations, if any): what the RSS target
    /// is checked against.
    fn overall_peak_rss_mib(&self) -> f64 {
        self.peak_rss_after_queue_kib
            .unwrap_or(self.peak_rss_kib)
            .max(self.peak_rss_kib) as f64
            / 1024.0
    }

    fn json(&self) -> Value {
        let runs: Vec<Value> = self
            .cold
            .iter()
            .map(|c| {
                json!({
                    "ready_ms": c.ready_ms,
                    "first_ms": c.first_ms,
                    "cold_total_ms": c.total_ms(),
                    "cpu_ms": c.cpu_ms,
                    "aws_config_ms": c.configured.map(|c| c.0),
                    "secrets_ms": c.configured.map(|c| c.1),
                })
            })
            .collect();
        json!({
            "binary": self.binary.display().to_string(),
            "binary_bytes": self.binary_bytes,
            "cold": {
                "ready_ms": self.ready.json(),
                "first_ms": self.first.json(),
                "cold_total_ms": self.total.json(),
                "cpu_ms": self.cold_cpu.json(),
                "aws_config_ms": self.aws_config.map(|s| s.json()),
                "secrets_ms": self.secrets.map(|s| s.json()),
                "runs": runs,
            },
            "warm_ms": self.warm.json(),
            "warm_cpu_ms_per_invocation": self.warm_cpu_ms,
            "queue_mode_warm_ms": self.queue.map(|s| s.json()),
            "queue_mode_cpu_ms_per_invocation": self.queue_cpu_ms,
            "peak_rss_kib": self.peak_rss_kib,
            "peak_rss_mib": self.peak_rss_mib(),
            "peak_rss_after_queue_mode_kib": self.peak_rss_after_queue_kib,
        })
    }
}

struct Report {
    settings_full: bool,
    cold_runs: usize,
    warm_invocations: usize,
    queue_invocations: usize,
    webhook: FunctionReport,
    hello: FunctionReport,
    load_before: String,
    load_after: String,
    elapsed: Duration,
}

/// A ratio webhook/hello with its target.
struct Ratio {
    name: &'static str,
    value: f64,
    target: Option<f64>,
}

impl Report {
    fn with_elapsed(self, elapsed: Duration) -> Self {
        Self { elapsed, ..self }
    }

    fn ratios(&self) -> Vec<Ratio> {
        let (w, h) = (&self.webhook, &self.hello);
        vec![
            Ratio {
                name: "cold_total_median",
                value: w.total.median / h.total.median,
                target: Some(COLD_TARGET),
            },
            Ratio {
                name: "ready_median",
                value: w.ready.median / h.ready.median,
                target: Some(COLD_TARGET),
            },
            Ratio {
                name: "warm_median",
                value: w.warm.median / h.warm.median,
                target: Some(WARM_TARGET),
            },
            Ratio {
                name: "warm_p99",
                value: w.warm.p99 / h.warm.p99,
                target: Some(WARM_TARGET),
            },
            Ratio {
                name: "peak_rss",
                value: w.peak_rss_kib as f64 / h.peak_rss_kib as f64,
                target: None,
            },
        ]
    }

    fn table(&self) -> String {
        use std::fmt::Write;
        let (w, h) = (&self.webhook, &self.hello);
        let ratios = self.ratios();
        let ratio = |name: &str| ratios.iter().find(|r| r.name == name).expect("ratio");
        // Targets apply to release builds only: in test mode they are shown without a verdict.
        let full = self.settings_full;
        let verdict = |ok: bool| match (full, ok) {
            (false, _) => "(not checked)",
            (true, true) => "ok",
            (true, false) => "MISSED",
        };
        let target = |r: &Ratio| match r.target {
            Some(t) => format!("≤ {t:.1}x {}", verdict(r.value <= t)),
            None => String::new(),
        };
        let mut out = String::new();
        let mode = if self.settings_full {
            "full (release)"
        } else {
            "test (debug smoke run; no targets apply)"
        };
        let _ = writeln!(
            out,
            "\ncoldstart: webhook vs bare lambda_runtime hello, {mode}"
        );
        let _ = writeln!(
            out,
            "  webhook: {} ({:.1} MiB)\n  hello:   {} ({:.1} MiB)",
            w.binary.display(),
            w.binary_bytes as f64 / 1048576.0,
            h.binary.display(),
            h.binary_bytes as f64 / 1048576.0
        );
        let _ = writeln!(
            out,
            "  {} cold runs each, {} warm invocations (after {WARMUP} warm-up), event: signed `delivered` status; load average {} → {}",
            self.cold_runs, self.warm_invocations, self.load_before, self.load_after
        );
        let extra = std::env::var("COLDSTART_ENV").unwrap_or_default();
        if !extra.trim().is_empty() {
            let _ = writeln!(out, "  COLDSTART_ENV (both functions): {}", extra.trim());
        }
        let _ = writeln!(
            out,
            "\n  {:<24} {:>10} {:>10} {:>8}   target",
            "ms (RSS: MiB)", "webhook", "hello", "ratio"
        );
        let row = |out: &mut String, label: &str, a: f64, b: f64, r: Option<&Ratio>| {
            let (ratio, target) = match r {
                Some(r) => (format!("{:.2}x", r.value), target(r)),
                None => (String::new(), String::new()),
            };
            let _ = writeln!(
                out,
                "  {label:<24} {a:>10.2} {b:>10.2} {ratio:>8}   {target}"
            );
        };
        row(
            &mut out,
            "cold total  median",
            w.total.median,
            h.total.median,
            Some(ratio("cold_total_median")),
        );
        row(&mut out, "cold total  max", w.total.max, h.total.max, None);
        row(
            &mut out,
            "ready       median",
            w.ready.median,
            h.ready.median,
            Some(ratio("ready_median")),
        );
        row(&mut out, "ready       max", w.ready.max, h.ready.max, None);
        row(
            &mut out,
            "first       median",
            w.first.median,
            h.first.median,
            None,
        );
        row(&mut out, "first       max", w.first.max, h.first.max, None);
        row(
            &mut out,
            "warm        median",
            w.warm.median,
            h.warm.median,
            Some(ratio("warm_median")),
        );
        row(
            &mut out,
            "warm        p99",
            w.warm.p99,
            h.warm.p99,
            Some(ratio("warm_p99")),
        );
        let rss = ratio("peak_rss");
        let _ = writeln!(
            out,
            "  {:<24} {:>10.2} {:>10.2} {:>8}",
            "peak RSS (VmHWM)",
            w.peak_rss_mib(),
            h.peak_rss_mib(),
            format!("{:.2}x", rss.value),
        );
        let _ = writeln!(
            out,
            "  {:<24} {:>10.2} {:>10} {:>8}   ≤ {RSS_TARGET_MIB:.0} MiB {}",
            "  + queue-mode run",
            w.overall_peak_rss_mib(),
            "",
            "",
            verdict(w.overall_peak_rss_mib() <= RSS_TARGET_MIB)
        );
        if let (Some(aws), Some(secrets)) = (w.aws_config, w.secrets) {
            let _ = writeln!(
                out,
                "\n  webhook init (its \"configured\" line), median: aws_config {:.2} ms, secrets {:.2} ms (max {:.2}, {:.2})",
                aws.median, secrets.median, aws.max, secrets.max
            );
        }
        let _ = writeln!(
            out,
            "  CPU time (all threads): cold start to first answer, median {:.2} ms vs {:.2} ms; per warm invocation {:.1} µs vs {:.1} µs",
            w.cold_cpu.median,
            h.cold_cpu.median,
            w.warm_cpu_ms * 1e3,
            h.warm_cpu_ms * 1e3
        );
        if let Some(queue) = w.queue {
            let _ = writeln!(
                out,
                "  webhook queue mode (text message → SQS FIFO on moto, {} invocations): median {:.2} ms, p99 {:.2} ms, CPU {:.1} µs per invocation",
                self.queue_invocations,
                queue.median,
                queue.p99,
                w.queue_cpu_ms.unwrap_or_default() * 1e3
            );
        }
        let _ = writeln!(
            out,
            "  harness run time: {:.1} s",
            self.elapsed.as_secs_f64()
        );
        out
    }

    fn json(&self) -> Value {
        let ratios: serde_json::Map<String, Value> = self
            .ratios()
            .into_iter()
            .map(|r| {
                (
                    r.name.to_owned(),
                    json!({
                        "value": r.value,
                        "target_max": r.target,
                        "met": r.target.map(|t| r.value <= t),
                    }),
                )
            })
            .collect();
        json!({
            "mode": if self.settings_full { "full" } else { "test" },
            "cold_runs": self.cold_runs,
            "warm_invocations": self.warm_invocations,
            "warmup_invocations": WARMUP,
            "queue_invocations": self.queue_invocations,
            "event": "signed API Gateway HTTP API v2 webhook, one `delivered` status",
            "load_average_before": self.load_before,
            "load_average_after": self.load_after,
            "harness_seconds": self.elapsed.as_secs_f64(),
            "coldstart_env": std::env::var("COLDSTART_ENV").unwrap_or_default(),
            "webhook": self.webhook.json(),
            "hello": self.hello.json(),
            "ratios_webhook_over_hello": ratios,
            "webhook_peak_rss_target_mib": RSS_TARGET_MIB,
            "webhook_peak_rss_checked_mib": self.webhook.overall_peak_rss_mib(),
            "webhook_peak_rss_met": self.webhook.overall_peak_rss_mib() <= RSS_TARGET_MIB,
        })
    }

    /// Test mode: the harness worked (every answer was a 200 already, or it panicked).
    fn assert_smoke(&self) {
        for function in [&self.webhook, &self.hello] {
            assert!(
                function.ready.max < ms(SMOKE_MAX_READY),
                "{}: ready took {:.0} ms",
                function.name,
                function.ready.max
            );
            assert_eq!(function.cold.len(), self.cold_runs);
            assert!(function.peak_rss_kib > 0);
        }
        assert!(
            self.webhook.cold.iter().all(|c| c.configured.is_some()),
            "the webhook's \"configured\" line was not read"
        );
        assert_eq!(
            self.webhook.queue.map(|q| q.n),
            Some(self.queue_invocations)
        );
    }
}

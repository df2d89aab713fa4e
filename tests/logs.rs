//! What the logs of a full run may contain: no secret, no full phone number or BSUID (in
//! clear, written with separators, or inside a base64 run such as a wamid), no message id
//! (`wamid.…`: its bytes hold the sender's number; logs show a keyed hash), no forged line,
//! and no message text at INFO or above.
//!
//! A full run: the subscription handshake, every sample event (text, taps, media, a batch with
//! an unlisted sender and a BSUID-only sender, statuses with errors, a base64 body), hostile
//! requests (unsigned, forged, garbage, deep JSON, numbers and values in the wrong places,
//! invalid base64 from API Gateway, an oversized body over local HTTP), agent failures (a 500
//! with a traceback, a 422 that echoes the request, a timeout), and a Graph API refusal. It goes
//! through the real HTTP agent and Graph API clients against loopback fakes, so their logs are
//! in too; the Graph API fake also answers one send with a hostile error (a newline, an ANSI
//! escape, a full phone number with separators, 60 KB). Secrets are distinctive so that a
//! search for them means something; message ids are built like Meta's, around the sender's
//! number.
//!
//! `logs_of_a_full_run_in_process` captures with one global subscriber fanning out to four
//! in-memory buffers: plain text and JSON (as `AWS_LAMBDA_LOG_FORMAT=JSON` gives), each at
//! TRACE and at INFO. `logs_of_the_real_binary` reads the stdout of the `webhook` binary, whose
//! subscriber is lambda_http's `init_default_subscriber`, at TRACE and in JSON at INFO.

mod support;

use lambda_http::tracing::subscriber::{
    self, Layer, filter::LevelFilter, fmt::MakeWriter, layer::SubscriberExt,
};
use lambda_http::{Body, Request};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::fixtures::event_json;
use support::local_webhook::LocalWebhook;
use whatsapp_agent_lambda::agent::HttpAgent;
use whatsapp_agent_lambda::dev::LoopbackServer;
use whatsapp_agent_lambda::dev::events::{LOCAL_ALLOWED_SENDERS, body_bytes};
use whatsapp_agent_lambda::domain::Allowlist;
use whatsapp_agent_lambda::domain::{init_log_key, log_id_for};
use whatsapp_agent_lambda::entry::local;
use whatsapp_agent_lambda::entry::local::handler;
use whatsapp_agent_lambda::graph::GraphClient;
use whatsapp_agent_lambda::idempotency::MemoryIdempotency;
use whatsapp_agent_lambda::pipeline::Pipeline;
use whatsapp_agent_lambda::secrets::{Secret, Secrets};
use whatsapp_agent_lambda::webhook::answer::response;
use whatsapp_agent_lambda::webhook::{Dispatcher, WebhookApp, sign};

const APP_SECRET: &str = "appsecret-Qz7Vx2Lk9Wm4";
const ACCESS_TOKEN: &str = "EAAGaccesstoken-Hn3Rt8Yp1Bc6";
const VERIFY_TOKEN: &str = "verifytoken-Jd5Fs0Gk2Zx9";
const AGENT_TOKEN: &str = "agenttoken-Mc4Nv7Bq3Xw8";
const SECRETS: [&str; 4] = [APP_SECRET, ACCESS_TOKEN, VERIFY_TOKEN, AGENT_TOKEN];

/// Full identifiers of people, and how they may appear instead.
const JOHN: &str = "14155551234";
const EVE_UNLISTED: &str = "447700900123";
const US_BSUID: &str = "US.13491208655302741918";
const BR_BSUID: &str = "BR.20261124000000000042";
const IDENTIFIERS: [&str; 4] = [JOHN, EVE_UNLISTED, US_BSUID, BR_BSUID];
const MASKED: [&str; 4] = [
    "*******1234",
    "********0123",
    "US.****************1918",
    "BR.****************0042",
];

/// The numbers of people in the run, as digits: what no log may hold, however written.
const PHONE_DIGITS: [&str; 4] = [
    JOHN,
    EVE_UNLISTED,
    "13491208655302741918",
    "20261124000000000042",
];

/// The text of the Graph API's hostile error: it starts a forged line, recolours a terminal,
/// names the recipient with separators, and is padded to 60 KB.
const HOSTILE_GRAPH_MARKER: &str = "Hostile Graph error";
const HOSTILE_GRAPH_PADDING: usize = 60 * 1024;

/// Message text of the run (sample events and this file's own messages).
const MESSAGE_TEXTS: [&str; 12] = [
    "pods crashing in prod",
    "let me in",
    "which env is failing?",
    "deploy staging please",
    "grafana shows this since 09:40",
    "résumé of the incident",
    "agent please fail",
    "agent please echo",
    "agent please hang",
    "make graph fail",
    "pods crashing in staging",
    "make graph explode",
];
const PHONE_NUMBER_ID: &str = "106540352242922";
const MAX_BODY: usize = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// One HTTP request of the run, usable in process and over HTTP.
#[derive(Clone)]
struct Call {
    method: &'static str,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Call {
    fn post(body: Vec<u8>, signature: Option<String>) -> Self {
        let mut headers = vec![("content-type".to_owned(), b"application/json".to_vec())];
        if let Some(signature) = signature {
            headers.push(("x-hub-signature-256".to_owned(), signature.into_bytes()));
        }
        Self {
            method: "POST",
            target: "/webhook".to_owned(),
            headers,
            body,
        }
    }

    fn signed(body: Vec<u8>) -> Self {
        let signature = sign(APP_SECRET.as_bytes(), &body);
        Self::post(body, Some(signature))
    }

    fn get(query: &str) -> Self {
        Self {
            method: "GET",
            target: format!("/webhook?{query}"),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn request(&self) -> Request {
        let mut request = lambda_http::http::Request::builder()
            .method(self.method)
            .uri(&self.target)
            .body(if self.body.is_empty() {
                Body::Empty
            } else {
                Body::Binary(self.body.clone())
            })
            .unwrap();
        for (name, value) in &self.headers {
            request.headers_mut().append(
                lambda_http::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                lambda_http::http::HeaderValue::from_bytes(value).unwrap(),
            );
        }
        request
    }

    /// Sends it on a fresh connection; returns the status.
    fn send(&self, addr: &str) -> u16 {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut raw = format!(
            "{} {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            self.target,
            self.body.len()
        )
        .into_bytes();
        for (name, value) in &self.headers {
            raw.extend_from_slice(name.as_bytes());
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(value);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        raw.extend_from_slice(&self.body);
        let _ = stream.write_all(&raw);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer)
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

fn sample_body(name: &str) -> Vec<u8> {
    body_bytes(&event_json(name)).unwrap().unwrap()
}

fn webhook_body(messages: Value, contacts: Value, statuses: Value) -> Vec<u8> {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [
        {"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": contacts, "messages": messages, "statuses": statuses
        }}
    ]}]})
    .to_string()
    .into_bytes()
}

/// A message id built like Meta's: base64 of bytes that hold the number (`wamid.HBgL…` is
/// `\x1c\x18\x0b14155551234…`), then a per-message tag.
fn wamid_of(phone: &str, tag: &str) -> String {
    use base64::Engine;
    let mut bytes = vec![0x1c, 0x18, u8::try_from(phone.len()).unwrap()];
    bytes.extend_from_slice(phone.as_bytes());
    bytes.extend_from_slice(&[0x15, 0x02, 0x00, 0x12, 0x18, 0x14]);
    bytes.extend_from_slice(format!("{tag:A>20}").as_bytes());
    bytes.push(0);
    format!(
        "wamid.{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// John's message that the fake agent answers normally, followed by id in the logs.
fn john_ok() -> String {
    wamid_of(JOHN, "OK")
}

fn from_john(id: &str, text: &str) -> Vec<u8> {
    webhook_body(
        json!([{"id": id, "from": JOHN, "from_user_id": US_BSUID, "timestamp": "1795514400", "type": "text", "text": {"body": text}}]),
        json!([{"profile": {"name": "John Doe"}, "wa_id": JOHN, "user_id": US_BSUID}]),
        json!([]),
    )
}

/// Every HTTP request of the run, in order, with the status each must get.
fn calls() -> Vec<(Call, u16)> {
    let mut calls = vec![
        (
            Call::get(&format!(
                "hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
            )),
            200,
        ),
        (
            Call::get("hub.mode=subscribe&hub.verify_token=guess&hub.challenge=1"),
            403,
        ),
        (
            Call::get(&format!(
                "hub.mode={JOHN}&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"
            )),
            403,
        ),
    ];
    for name in [
        "post-text.json",
        "post-button-reply.json",
        "post-list-reply.json",
        "post-template-button.json",
        "post-image.json",
        "post-status-only.json",
        "post-batch.json",
        "post-base64.json",
    ] {
        calls.push((Call::signed(sample_body(name)), 200));
    }
    let text_body = sample_body("post-text.json");
    calls.extend([
        // Hostile: unsigned, forged, garbage, deep, values where they do not belong.
        (Call::post(text_body.clone(), None), 401),
        (
            Call::post(text_body.clone(), Some(sign(b"forged", &text_body))),
            401,
        ),
        (
            Call::post(text_body.clone(), Some(format!("sha1={JOHN}"))),
            401,
        ),
        (
            Call::signed(
                format!("pods crashing in prod 14155551234 {}", wamid_of(JOHN, "GARBAGE"))
                    .into_bytes(),
            ),
            200,
        ),
        (
            Call::signed(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes()),
            200,
        ),
        (
            Call::signed(
                json!({"object": JOHN, "entry": ["pods crashing in prod"]})
                    .to_string()
                    .into_bytes(),
            ),
            200,
        ),
        (
            Call::signed(
                json!({"object": "whatsapp_business_account", "entry": [JOHN, 14155551234_u64, US_BSUID, {"changes": [
                    {"field": "pods crashing in prod", "value": {}},
                    {"field": "messages", "value": {"metadata": {"phone_number_id": PHONE_NUMBER_ID},
                        "messages": ["pods crashing in prod", 14155551234_u64, {"id": "wamid.LOG.BAD", "from": JOHN, "type": "text", "text": "pods crashing in prod"}],
                        "contacts": [JOHN],
                        "statuses": [JOHN, {"id": "wamid.out.9", "status": "let me in", "recipient_id": JOHN}],
                        "errors": [{"code": 131000, "title": "Failed for 14155551234", "message": "Something went wrong", "error_data": {"details": format!("user {US_BSUID}")}}]}}
                ]}]})
                .to_string()
                .into_bytes(),
            ),
            200,
        ),
        // A status with errors whose texts name the recipient.
        (
            Call::signed(webhook_body(
                json!([]),
                json!([]),
                json!([{"id": wamid_of(JOHN, "OUT7"), "status": "failed", "recipient_id": JOHN, "recipient_user_id": US_BSUID,
                    "errors": [{"code": 131026, "title": format!("Message undeliverable to {JOHN}"), "error_data": {"details": format!("{US_BSUID} is not on WhatsApp")}}]}]),
            )),
            200,
        ),
        // Numbers written with separators, as people and some of Meta's texts write them.
        (
            Call::signed(webhook_body(
                json!([]),
                json!([]),
                json!([{"id": wamid_of(JOHN, "OUT8"), "status": "failed", "recipient_id": JOHN,
                    "errors": [{"code": 131026, "title": "Message undeliverable to +1 415 555 1234",
                        "error_data": {"details": "(415) 555-1234 / 415.555.1234 / +44 7700 900123 is not on WhatsApp"}}]},
                    {"id": wamid_of(EVE_UNLISTED, "OUT9"), "status": "delivered", "recipient_id": EVE_UNLISTED}]),
            )),
            200,
        ),
        // An unlisted BSUID-only sender.
        (
            Call::signed(webhook_body(
                json!([{"id": "wamid.LOG.US", "from_user_id": US_BSUID, "type": "text", "text": {"body": "let me in"}}]),
                json!([{"profile": {"name": "Unlisted"}, "user_id": US_BSUID}]),
                json!([]),
            )),
            200,
        ),
        // Agent failures and a Graph API refusal.
        (
            Call::signed(from_john(&wamid_of(JOHN, "FAIL"), "agent please fail")),
            200,
        ),
        (
            Call::signed(from_john(&wamid_of(JOHN, "HANG"), "agent please hang")),
            200,
        ),
        (
            Call::signed(from_john(&wamid_of(JOHN, "GRAPH"), "make graph fail")),
            200,
        ),
        (
            Call::signed(from_john(&wamid_of(JOHN, "EXPLODE"), "make graph explode")),
            200,
        ),
        (
            Call::signed(from_john(&john_ok(), "pods crashing in staging")),
            200,
        ),
        // Over the limit.
        (Call::signed(vec![b' '; MAX_BODY + 1]), 413),
    ]);
    calls
}

/// A message the fake agent refuses with a 422 that quotes the whole request back, as FastAPI
/// does: the session id (with the phone number) and the text are in the agent's error body.
fn echo_call() -> (Call, u16) {
    (
        Call::signed(from_john(&wamid_of(JOHN, "ECHO"), "agent please echo")),
        200,
    )
}

/// API Gateway events of the run (in process only): one valid, one with invalid base64.
fn lambda_events() -> Vec<(Value, i64)> {
    let body = from_john(&wamid_of(JOHN, "LAMBDA"), "pods crashing in prod");
    let event = |body: String, base64: bool, signature: String| {
        json!({"version": "2.0", "rawPath": "/webhook", "rawQueryString": "",
            "headers": {"x-hub-signature-256": signature},
            "requestContext": {"http": {"method": "POST", "path": "/webhook"}, "stage": "$default"},
            "body": body, "isBase64Encoded": base64})
    };
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(&body);
    vec![
        (
            event(encoded, true, sign(APP_SECRET.as_bytes(), &body)),
            200,
        ),
        (
            event(
                format!("{JOHN} pods crashing in prod!"),
                true,
                sign(APP_SECRET.as_bytes(), &body),
            ),
            400,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Loopback fakes
// ---------------------------------------------------------------------------------------------

/// The agent: checks its bearer token; fails, echoes or hangs on request.
fn fake_agent() -> LoopbackServer {
    LoopbackServer::start(handler(|request: Request| async move {
        let authorized = request
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == format!("Bearer {AGENT_TOKEN}").as_bytes());
        if !authorized {
            return response(401, "application/json", r#"{"error":"unauthorized"}"#);
        }
        let raw = whatsapp_agent_lambda::webhook::answer::body_bytes(request.body()).to_vec();
        let agent_request: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        match agent_request["event"]["text"].as_str().unwrap_or_default() {
            "agent please fail" => response(
                500,
                "text/plain",
                "Traceback (most recent call last):\n  File \"agent.py\", line 42, in answer\nKeyError: 'runbook'",
            ),
            // FastAPI's validation error quotes the input it refused: the whole request.
            "agent please echo" => response(
                422,
                "application/json",
                format!(
                    r#"{{"detail":[{{"type":"missing","loc":["body","event","x"],"msg":"Field required","input":{}}}]}}"#,
                    String::from_utf8_lossy(&raw)
                ),
            ),
            "agent please hang" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                response(200, "application/json", r#"{"text":"too late"}"#)
            }
            "make graph fail" => {
                response(200, "application/json", r#"{"text":"graph please fail"}"#)
            }
            "make graph explode" => response(
                200,
                "application/json",
                r#"{"text":"graph please explode"}"#,
            ),
            _ => response(
                200,
                "application/json",
                r#"{"status":"warning","text":"Found 2 pods in **CrashLoopBackOff**","actions":[{"id":"view_logs","label":"View Logs"}]}"#,
            ),
        }
    }))
}

/// The Graph API: checks the access token; refuses one reply like Meta does.
fn fake_graph() -> LoopbackServer {
    LoopbackServer::start(handler(|request: Request| async move {
        let authorized = request
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == format!("Bearer {ACCESS_TOKEN}").as_bytes());
        if !authorized {
            return response(
                401,
                "application/json",
                r#"{"error":{"message":"Invalid OAuth access token","code":190}}"#,
            );
        }
        if String::from_utf8_lossy(whatsapp_agent_lambda::webhook::answer::body_bytes(
            request.body(),
        ))
        .contains("graph please fail")
        {
            return response(
                400,
                "application/json",
                json!({"error": {"message": "(#131030) Recipient phone number not in allowed list", "type": "OAuthException", "code": 131030,
                    "error_data": {"messaging_product": "whatsapp", "details": "Recipient phone number not in allowed list: Add recipient phone number to recipient list and try again."},
                    "fbtrace_id": "AbCdEf123"}}).to_string(),
            );
        }
        if String::from_utf8_lossy(whatsapp_agent_lambda::webhook::answer::body_bytes(
            request.body(),
        ))
        .contains("graph please explode")
        {
            return response(400, "application/json", hostile_graph_error().to_string());
        }
        response(
            200,
            "application/json",
            json!({"success": true, "messages": [{"id": wamid_of(JOHN, "SENT")}]}).to_string(),
        )
    }))
}

/// Meta's error shape, with a message no log should take as it is.
fn hostile_graph_error() -> Value {
    let message = format!(
        "{HOSTILE_GRAPH_MARKER}\nERROR forged line: token accepted\r\n\u{1b}[31mrecipient +1 (415) 555-1234 blocked\u{1b}[0m {}",
        "x".repeat(HOSTILE_GRAPH_PADDING)
    );
    json!({"error": {"message": message, "type": "OAuthException", "code": 100,
        "error_data": {"messaging_product": "whatsapp", "details": format!("recipient {JOHN}")},
        "fbtrace_id": "AbCdEf456"}})
}

// ---------------------------------------------------------------------------------------------
// Capture
// ---------------------------------------------------------------------------------------------

/// An in-memory log sink.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The four captures of the in-process run.
struct Captures {
    plain_trace: Buffer,
    json_trace: Buffer,
    plain_info: Buffer,
    json_info: Buffer,
}

/// Installs one global subscriber (every thread: runtime workers, blocking pool, loopback
/// servers) writing the same events four ways, formatted as lambda_http's default subscriber
/// formats them (no target, no time).
fn capture() -> Captures {
    let captures = Captures {
        plain_trace: Buffer::default(),
        json_trace: Buffer::default(),
        plain_info: Buffer::default(),
        json_info: Buffer::default(),
    };
    type Boxed = Box<dyn Layer<subscriber::Registry> + Send + Sync>;
    let plain = |buffer: &Buffer, level: LevelFilter| -> Boxed {
        subscriber::fmt::layer()
            .with_target(false)
            .without_time()
            .with_ansi(false)
            .with_writer(buffer.clone())
            .with_filter(level)
            .boxed()
    };
    let json = |buffer: &Buffer, level: LevelFilter| -> Boxed {
        subscriber::fmt::layer()
            .json()
            .with_target(false)
            .without_time()
            .with_writer(buffer.clone())
            .with_filter(level)
            .boxed()
    };
    let collector = subscriber::registry().with(vec![
        plain(&captures.plain_trace, LevelFilter::TRACE),
        json(&captures.json_trace, LevelFilter::TRACE),
        plain(&captures.plain_info, LevelFilter::INFO),
        json(&captures.json_info, LevelFilter::INFO),
    ]);
    lambda_http::tracing::subscriber::util::SubscriberInitExt::init(collector);
    captures
}

// ---------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------

/// The lines of `log` that contain `needle`, for failure messages.
fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|line| line.contains(needle)).collect()
}

/// Base64 of either alphabet, the characters of an encoded id.
fn is_base64_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_')
}

/// Whether a digit run (7 digits or more) is one of the run's numbers, or part of one.
fn is_a_known_number(digits: &str) -> bool {
    digits.len() >= 7
        && PHONE_DIGITS
            .iter()
            .any(|phone| phone.contains(digits) || digits.contains(phone))
}

/// Digit runs of `bytes` that may be phone numbers (7 digits or more).
fn digit_runs(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| !b.is_ascii_digit())
        .filter(|run| run.len() >= 7)
        .map(|run| String::from_utf8_lossy(run).into_owned())
        .collect()
}

/// Every base64 run of 16 characters or more in `log` (the part after `wamid.`, say),
/// decoded at each alignment in both alphabets, with the numbers of the run found inside.
fn numbers_in_base64_runs(log: &str) -> Vec<(String, String)> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let lenient = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let engines = [
        GeneralPurpose::new(&base64::alphabet::STANDARD, lenient),
        GeneralPurpose::new(&base64::alphabet::URL_SAFE, lenient),
    ];
    let mut found = Vec::new();
    for run in log.split(|c: char| !is_base64_char(c)) {
        if run.len() < 16 {
            continue;
        }
        for skip in 0..4 {
            let aligned = &run[skip..];
            let aligned = &aligned[..aligned.len() - aligned.len() % 4];
            for engine in &engines {
                let Ok(bytes) = engine.decode(aligned) else {
                    continue;
                };
                for digits in digit_runs(&bytes) {
                    if is_a_known_number(&digits) {
                        found.push((run.to_owned(), digits));
                    }
                }
            }
        }
    }
    found
}

/// Numbers of the run written with separators (`+1 415 555 1234`, `(415) 555-1234`,
/// `415.555.1234`): digits joined across single separators, or a parenthesis and a space.
fn numbers_with_separators(log: &str) -> Vec<String> {
    let bytes = log.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if !bytes[at].is_ascii_digit() {
            at += 1;
            continue;
        }
        let mut digits = String::new();
        loop {
            while at < bytes.len() && bytes[at].is_ascii_digit() {
                digits.push(char::from(bytes[at]));
                at += 1;
            }
            let gap = bytes[at..]
                .iter()
                .take(2)
                .take_while(|b| b" -.()".contains(b))
                .count();
            if gap > 0 && bytes.get(at + gap).is_some_and(u8::is_ascii_digit) {
                at += gap;
            } else {
                break;
            }
        }
        // The people's phone numbers (BSUIDs are not written with separators).
        if digits.len() >= 7
            && [JOHN, EVE_UNLISTED]
                .iter()
                .any(|phone| digits.contains(phone) || phone.contains(&digits))
        {
            found.push(digits);
        }
    }
    found
}

fn assert_no_secrets_or_identifiers(name: &str, log: &str) {
    assert!(!log.trim().is_empty(), "{name}: the log is empty");
    assert!(
        !log.contains("wamid."),
        "{name}: a message id logged as sent: {:#?}",
        lines_with(log, "wamid.")
    );
    let encoded = numbers_in_base64_runs(log);
    assert!(
        encoded.is_empty(),
        "{name}: base64 runs that decode to a phone number: {encoded:#?}"
    );
    let separated = numbers_with_separators(log);
    assert!(
        separated.is_empty(),
        "{name}: phone numbers written with separators: {separated:#?}"
    );
    for secret in SECRETS {
        assert!(
            !log.contains(secret),
            "{name}: secret {secret} logged: {:#?}",
            lines_with(log, secret)
        );
    }
    for id in IDENTIFIERS {
        assert!(
            !log.contains(id),
            "{name}: {id} logged in full: {:#?}",
            lines_with(log, id)
        );
    }
}

fn assert_no_message_text(name: &str, log: &str) {
    for text in MESSAGE_TEXTS {
        assert!(
            !log.contains(text),
            "{name}: message text {text:?} logged at INFO or above: {:#?}",
            lines_with(log, text)
        );
    }
}

/// Meta's hostile error text is logged on one line: escaped (no forged line, no escape
/// sequence), masked, and cut short; the 60 KB are not logged, once or twice.
fn assert_hostile_graph_error_contained(name: &str, log: &str) {
    let lines = lines_with(log, HOSTILE_GRAPH_MARKER);
    assert_eq!(
        lines.len(),
        1,
        "{name}: Meta's error text should be on exactly one line: {lines:#?}"
    );
    let line = lines[0];
    assert!(line.contains("Graph API error"), "{name}: {line}");
    assert!(line.contains("forged line"), "{name}: {line}");
    assert!(line.contains(r"\u{1b}[31m"), "{name}: not escaped: {line}");
    assert!(line.contains("*******1234"), "{name}: not masked: {line}");
    assert!(
        line.len() < 2_000,
        "{name}: {} bytes on one line",
        line.len()
    );
    assert!(
        !log.contains('\u{1b}'),
        "{name}: an ANSI escape reached the log"
    );
    assert!(
        !log.lines()
            .any(|l| l.trim_start().starts_with("ERROR forged")),
        "{name}: a forged line"
    );
    assert!(
        !log.contains(&"x".repeat(1_000)),
        "{name}: the 60 KB were logged"
    );
}

fn assert_masked_forms(name: &str, log: &str) {
    for masked in MASKED {
        assert!(
            log.contains(masked),
            "{name}: expected the masked form {masked} (is the logger silent?)"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn logs_of_a_full_run_in_process() {
    let captures = capture();
    // What Env::load does at cold start with the app secret.
    assert!(init_log_key(APP_SECRET));
    let agent = fake_agent();
    let graph = fake_graph();
    let secrets = Secrets::from_env(|name| {
        match name {
            "WHATSAPP_APP_SECRET" => Some(APP_SECRET),
            "WHATSAPP_ACCESS_TOKEN" => Some(ACCESS_TOKEN),
            "WHATSAPP_VERIFY_TOKEN" => Some(VERIFY_TOKEN),
            "AGENT_TOKEN" => Some(AGENT_TOKEN),
            _ => None,
        }
        .map(str::to_owned)
    });
    let pipeline = Pipeline::new(
        Arc::new(HttpAgent::new(
            agent.url(),
            Some(Secret::from(AGENT_TOKEN)),
            Duration::from_secs(1),
        )),
        Arc::new(GraphClient::new(
            &graph.url(),
            "v25.0",
            Secret::from(ACCESS_TOKEN),
            Duration::from_secs(5),
        )),
        Arc::new(MemoryIdempotency::default()),
    );
    let app = Arc::new(WebhookApp::new(
        secrets,
        Allowlist::parse(LOCAL_ALLOWED_SENDERS).unwrap(),
        Dispatcher::Inline(pipeline),
        MAX_BODY,
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        tracing::info!(probe = "start", "log capture started");
        for (call, status) in calls() {
            let answer = app.handle(call.request()).await;
            assert_eq!(answer.status(), status, "{} {}", call.method, call.target);
        }
        for (event, status) in lambda_events() {
            assert_eq!(app.handle_event(event).await.status_code, status);
        }
        // The local HTTP server, with its own logs (413 before reading, a served request).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let served = app.clone();
        let server = tokio::spawn(local::serve(
            listener,
            local::handler(move |request: Request| {
                let app = served.clone();
                async move { app.handle(request).await }
            }),
            MAX_BODY,
        ));
        let statuses = tokio::task::spawn_blocking(move || {
            [
                Call::signed(vec![b' '; MAX_BODY + 1]).send(&addr),
                Call::signed(from_john(&wamid_of(JOHN, "HTTP"), "pods crashing in prod"))
                    .send(&addr),
            ]
        })
        .await
        .unwrap();
        assert_eq!(statuses, [413, 200]);
        server.abort();
    });
    drop(runtime);

    for (name, log) in [
        ("plain TRACE", captures.plain_trace.text()),
        ("JSON TRACE", captures.json_trace.text()),
        ("plain INFO", captures.plain_info.text()),
        ("JSON INFO", captures.json_info.text()),
    ] {
        assert_no_secrets_or_identifiers(name, &log);
        assert_masked_forms(name, &log);
        assert!(log.contains("webhook answered"), "{name}");
        // A message can be followed by its log id, computed from the app secret.
        let followed = log_id_for(APP_SECRET, &john_ok());
        assert!(log.contains(&followed), "{name}: no {followed}");
    }
    for (name, log) in [
        ("plain TRACE", captures.plain_trace.text()),
        ("plain INFO", captures.plain_info.text()),
    ] {
        assert_hostile_graph_error_contained(name, &log);
    }
    for (name, log) in [
        ("plain INFO", captures.plain_info.text()),
        ("JSON INFO", captures.json_info.text()),
    ] {
        assert_no_message_text(name, &log);
        assert!(!log.contains("DEBUG") && !log.contains("TRACE"), "{name}");
    }
    // The TRACE captures really are more verbose: the DEBUG lines of the adapters are there.
    let trace = captures.plain_trace.text();
    assert!(
        trace.contains("DEBUG"),
        "no DEBUG line in the TRACE capture"
    );
    assert!(trace.len() > captures.plain_info.text().len());
}

/// The webhook binary in local mode with this file's secrets, served `calls` over HTTP: its
/// logs.
fn run_binary(
    agent: &LoopbackServer,
    graph: &LoopbackServer,
    log_env: &[(&str, &str)],
    calls: Vec<(Call, u16)>,
) -> String {
    let max_body = MAX_BODY.to_string();
    let mut env = vec![
        ("MAX_BODY_BYTES", max_body.as_str()),
        ("AGENT_TIMEOUT_SECS", "1"),
        ("WHATSAPP_APP_SECRET", APP_SECRET),
        ("WHATSAPP_ACCESS_TOKEN", ACCESS_TOKEN),
        ("WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN),
        ("AGENT_TOKEN", AGENT_TOKEN),
    ];
    env.extend_from_slice(log_env);
    let webhook = LocalWebhook::start_logging(&agent.url(), &graph.url(), &env);
    for (call, status) in calls {
        assert_eq!(
            call.send(&webhook.addr),
            status,
            "{} {}",
            call.method,
            call.target
        );
    }
    webhook.logs()
}

#[test]
fn logs_of_the_real_binary() {
    let agent = fake_agent();
    let graph = fake_graph();
    let trace = run_binary(
        &agent,
        &graph,
        &[("AWS_LAMBDA_LOG_LEVEL", "trace")],
        calls(),
    );
    let json_info = run_binary(
        &agent,
        &graph,
        &[
            ("AWS_LAMBDA_LOG_LEVEL", "info"),
            ("AWS_LAMBDA_LOG_FORMAT", "json"),
        ],
        calls(),
    );
    for (name, log) in [("binary, TRACE", &trace), ("binary, JSON INFO", &json_info)] {
        assert_no_secrets_or_identifiers(name, log);
        assert!(log.contains("webhook answered"), "{name}");
        assert!(log.contains("configured"), "{name}: startup log missing");
        // The binary derived its log key from the app secret at start-up.
        let followed = log_id_for(APP_SECRET, &john_ok());
        assert!(log.contains(&followed), "{name}: no {followed}");
        // The BSUID-only unlisted sender and John are logged masked.
        assert!(log.contains(MASKED[0]) && log.contains(MASKED[2]), "{name}");
    }
    assert!(trace.contains("DEBUG"), "no DEBUG line at TRACE");
    assert_hostile_graph_error_contained("binary, TRACE", &trace);
    assert_no_message_text("binary, JSON INFO", &json_info);
    for line in json_info.lines().filter(|l| l.starts_with('{')) {
        let entry: Value = serde_json::from_str(line).unwrap();
        assert!(
            matches!(entry["level"].as_str(), Some("INFO" | "WARN" | "ERROR")),
            "{line}"
        );
    }
}

#[test]
fn agent_error_bodies_that_echo_the_request_stay_out_of_the_logs() {
    let agent = fake_agent();
    let graph = fake_graph();
    let log = run_binary(
        &agent,
        &graph,
        &[("AWS_LAMBDA_LOG_LEVEL", "trace")],
        vec![echo_call()],
    );
    assert!(log.contains("agent failed"), "{log}");
    assert_no_secrets_or_identifiers("binary, agent echo, TRACE", &log);
    let info: String = log
        .lines()
        .filter(|line| !line.contains("DEBUG") && !line.contains("TRACE"))
        .collect();
    assert_no_message_text("binary, agent echo, INFO+", &info);
}

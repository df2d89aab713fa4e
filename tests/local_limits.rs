//! The real `webhook` binary in local HTTP mode under hostile clients: more idle connections
//! than it has file descriptors, and many large unsigned bodies that stall before their end.
//! Either way it stays up, within a memory bound, and a signed request from Meta still gets 200.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::fakes::accepting_graph;
use support::local_webhook::LocalWebhook;
use whatsapp_agent_lambda::dev::LoopbackServer;
use whatsapp_agent_lambda::dev::sample_agent;

/// The webhook's open-files limit in the flood test: low, so the test opens few sockets itself.
const OPEN_FILES: u32 = 256;
/// Idle connections opened against it: more than it has file descriptors.
const IDLE_CONNECTIONS: usize = 300;
/// Clients each sending a large unsigned body that stalls one byte before its end.
const STALLED_BODIES: usize = 100;
/// `MAX_BODY_BYTES`' default: what each of them declares.
const DECLARED: usize = 4 * 1024 * 1024;
/// The webhook's peak resident set must stay under this (it was over 400 MB before the body
/// budget: every connection could hold a full body).
const PEAK_RSS_BOUND_KB: u64 = 100 * 1024;
/// How long the signed request may take while the webhook is under attack.
const PROMPTLY: Duration = Duration::from_secs(10);

/// The sample agent and a Graph API that accepts everything, on loopback.
fn backends() -> (LoopbackServer, LoopbackServer) {
    let agent = LoopbackServer::start(sample_agent::http_handler(None));
    (agent, accepting_graph(Arc::default()))
}

/// Sends the signed text event of `events/` as Meta would; the status and how long it took.
fn signed_post(webhook: &LocalWebhook) -> (u16, Duration) {
    let started = Instant::now();
    let (status, _) = webhook.post_sample("post-text.json");
    (status, started.elapsed())
}

#[test]
fn more_idle_connections_than_file_descriptors_neither_kill_nor_starve_the_webhook() {
    let (agent, graph) = backends();
    let mut webhook = LocalWebhook::start_with_open_files(
        OPEN_FILES,
        &agent.url(),
        &graph.url(),
        &[("AGENT_TIMEOUT_SECS", "10")],
        Stdio::null(),
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", webhook.child.id())).unwrap();
    assert!(
        limits
            .lines()
            .any(|line| line.starts_with("Max open files")
                && line.contains(&format!(" {OPEN_FILES} "))),
        "{limits}"
    );

    let idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .filter_map(|_| {
            TcpStream::connect_timeout(&webhook.addr.parse().unwrap(), Duration::from_secs(2)).ok()
        })
        .collect();
    assert_eq!(idle.len(), IDLE_CONNECTIONS, "connections were refused");
    // Let the webhook accept them all (and run out of descriptors, if it does).
    std::thread::sleep(Duration::from_millis(500));
    assert!(webhook.is_running(), "the webhook exited under the flood");

    let (status, took) = signed_post(&webhook);
    assert_eq!(status, 200);
    assert!(took < PROMPTLY, "the signed request took {took:?}");
    assert!(webhook.is_running());

    drop(idle);
    let (status, _) = signed_post(&webhook);
    assert_eq!(
        status, 200,
        "a second delivery (a duplicate) is acknowledged too"
    );
    assert!(webhook.is_running());
}

#[test]
fn stalled_unsigned_bodies_cannot_pin_memory_or_crowd_out_a_signed_request() {
    let (agent, graph) = backends();
    let mut webhook = LocalWebhook::start(
        &agent.url(),
        &graph.url(),
        &[("AGENT_TIMEOUT_SECS", "10")],
        Stdio::null(),
    );
    // One buffer for every client: the test itself stays small.
    let body = vec![b'{'; DECLARED - 1];
    let head = format!(
        "POST /webhook HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         x-hub-signature-256: sha256=00\r\ncontent-length: {DECLARED}\r\n\r\n",
        webhook.addr
    );
    let stalled: Vec<TcpStream> = std::thread::scope(|scope| {
        let senders: Vec<_> = (0..STALLED_BODIES)
            .map(|_| {
                scope.spawn(|| {
                    let mut stream = TcpStream::connect(&webhook.addr).ok()?;
                    stream
                        .set_write_timeout(Some(Duration::from_secs(10)))
                        .ok()?;
                    // Refused ones are closed under us: a write error is expected.
                    let _ = stream
                        .write_all(head.as_bytes())
                        .and_then(|()| stream.write_all(&body));
                    Some(stream)
                })
            })
            .collect();
        senders
            .into_iter()
            .filter_map(|sender| sender.join().unwrap())
            .collect()
    });
    assert_eq!(stalled.len(), STALLED_BODIES);
    // Let the webhook read what it accepted.
    std::thread::sleep(Duration::from_millis(500));

    let (status, took) = signed_post(&webhook);
    assert_eq!(status, 200);
    assert!(took < PROMPTLY, "the signed request took {took:?}");
    assert!(webhook.is_running());
    let peak = webhook.status_kb("VmHWM").expect("/proc/<pid>/status");
    assert!(
        peak < PEAK_RSS_BOUND_KB,
        "peak resident set {peak} kB with {STALLED_BODIES} stalled bodies"
    );

    // The refused clients got a 503 asking them to come back later, not a reset.
    let mut refused = 0;
    for mut stream in stalled {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut answer = [0u8; 12];
        if stream.read_exact(&mut answer).is_ok() && &answer == b"HTTP/1.1 503" {
            refused += 1;
        }
    }
    assert!(refused > 0, "no client was told 503");
}

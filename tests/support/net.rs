//! Loopback networking for tests: ports to listen on, or that nothing listens on, and an HTTP
//! client.

use std::time::Duration;

/// A loopback port nothing listens on right now (bound, read, released): for a server a test
/// starts, or for an endpoint that refuses connections.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind a loopback port")
}

/// An HTTP client for a server under test: every status is an answer (not an error), and no
/// call takes longer than 30 s.
pub fn http_client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

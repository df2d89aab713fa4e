//! Loopback networking for tests: ports to listen on, or that nothing listens on.

/// A loopback port nothing listens on right now (bound, read, released): for a server a test
/// starts, or for an endpoint that refuses connections.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind a loopback port")
}

//! Loopback servers: a `Handler` served on `127.0.0.1` with a free port, on its own runtime
//! thread, stopped when dropped. The demo, the sample agent's tests and the integration tests
//! stand up fakes (agent, Graph API) with it.

use crate::entry::local::{Handler, Limits, serve_with};
use std::net::SocketAddr;
use tokio::net::TcpListener;

/// A server on `127.0.0.1` with a free port, on its own runtime thread; stops when dropped.
/// For tests, the demo and the sample agent: usable from sync and async code alike.
pub struct LoopbackServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoopbackServer {
    /// Starts serving `handler`; panics only if loopback cannot be bound (a broken test host).
    pub fn start(handler: Handler) -> Self {
        Self::try_start("127.0.0.1:0", handler).expect("bind a loopback port")
    }

    /// Starts serving `handler` on `addr`.
    pub fn try_start(addr: &str, handler: Handler) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("loopback-{}", addr.port()))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                runtime.block_on(async move {
                    let listener = TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        result = serve_with(listener, handler, Limits::UNBOUNDED) => {
                            if let Err(error) = result {
                                tracing::error!(%error, "loopback server stopped");
                            }
                        }
                        _ = stopped => {}
                    }
                });
                runtime.shutdown_background();
            })?;
        Ok(Self {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::local::handler;
    use crate::webhook::answer::{body_bytes, response};
    use lambda_http::Request;

    #[test]
    fn serves_a_handler_on_loopback_and_stops_on_drop() {
        let server = LoopbackServer::start(handler(|request: Request| async move {
            let echoed = body_bytes(request.body()).to_vec();
            response(200, "text/plain", echoed)
        }));
        let url = format!("{}/echo", server.url());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut answer = agent.post(&url).send("ping").unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.body_mut().read_to_string().unwrap(), "ping");
        let addr = server.addr();
        drop(server);
        assert!(std::net::TcpStream::connect(addr).is_err());
    }
}

//! Plain HTTP serving of a Lambda-style handler, outside Lambda: the `webhook` binary's local
//! mode, the sample agent, and the loopback fakes of tests and the demo all use it.

use crate::BoxFuture;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use lambda_http::{Body, Request, Response};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// How long a client may take to send the request line and headers (slowloris): then the
/// connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send the body once the headers are in: then 408.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A request handler: the same shape `lambda_http::run` serves.
pub type Handler = Arc<dyn Fn(Request) -> BoxFuture<'static, Response<Body>> + Send + Sync>;

/// Wraps an async closure as a [`Handler`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Request) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    Arc::new(move |request| Box::pin(f(request)))
}

/// Serves `handler` on `listener` until the task is dropped. Bodies over `max_body` get 413.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    max_body: usize,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(dispatch(request, &handler, max_body).await) }
            });
            if let Err(error) = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "local connection closed with an error");
            }
        });
    }
}

async fn dispatch(
    request: hyper::Request<Incoming>,
    handler: &Handler,
    max_body: usize,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    // A declared length over the limit is refused before reading any of it; a chunked or
    // lying body is cut off where it crosses the limit. Either way the connection then closes.
    if declared_length(&parts.headers).is_some_and(|length| length > max_body) {
        tracing::warn!(
            status = 413,
            limit = max_body,
            "local request body too large (declared)"
        );
        return closing(plain(413, "payload too large"));
    }
    let collected =
        tokio::time::timeout(BODY_READ_TIMEOUT, Limited::new(body, max_body).collect()).await;
    let bytes = match collected {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) => {
            let too_large = error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let status = if too_large { 413 } else { 400 };
            tracing::warn!(status, %error, "local request body rejected");
            return closing(plain(
                status,
                if too_large {
                    "payload too large"
                } else {
                    "bad request"
                },
            ));
        }
        Err(_) => {
            tracing::warn!(status = 408, "local request body not received in time");
            return closing(plain(408, "request timeout"));
        }
    };
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Binary(bytes.to_vec())
    };
    // On its own task, so that a panicking handler costs one 500, not the connection.
    let response = match tokio::spawn(handler(Request::from_parts(parts, body))).await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "request handler failed");
            return plain(500, "internal error");
        }
    };
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

/// The `Content-Length` a request declares (hyper has already refused conflicting ones).
fn declared_length(headers: &hyper::HeaderMap) -> Option<usize> {
    headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

/// Tells the client this connection ends with the answer (its request body is not read).
fn closing(mut response: hyper::Response<Full<Bytes>>) -> hyper::Response<Full<Bytes>> {
    response.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    response
}

fn plain(status: u16, text: &'static str) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    response
}

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
                        result = serve(listener, handler, usize::MAX) => {
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

/// Reads a request body as bytes, whatever its `Body` variant.
pub fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    }
}

/// Builds a response with a status, a content type and a body.
pub fn response(status: u16, content_type: &str, body: impl Into<Body>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(body.into())
        .unwrap_or_else(|_| Response::new(Body::Empty))
}

#[cfg(test)]
mod tests {
    use super::*;

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

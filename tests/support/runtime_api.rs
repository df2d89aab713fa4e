//! A Lambda Runtime API emulator for the cold-start harness: HTTP/1.1 (hyper) on
//! `127.0.0.1:<free port>`, one per function process, stopped when dropped.
//! <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>
//!
//! - `GET /2018-06-01/runtime/invocation/next` is held until the harness hands over an event
//!   ([`ApiEvent::Next`]); the answer is the event with the `Lambda-Runtime-*` headers.
//! - `POST /2018-06-01/runtime/invocation/{id}/response` and `…/error` are recorded
//!   ([`ApiEvent::Result`]) and answered 202.
//! - `POST /2018-06-01/runtime/init/error` is recorded ([`ApiEvent::InitError`]) and answered 202.
//!
//! Every instant is taken in the request handler, as close to the wire as hyper allows: a
//! request's when its head has been read, an event's right before its response is returned.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";
/// What `Lambda-Runtime-Deadline-Ms` grants each invocation.
const INVOCATION_DEADLINE: Duration = Duration::from_secs(30);
/// Largest request body read (Lambda's own limit for a response payload is 6 MB).
const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
/// A fixed, well-formed X-Ray trace header.
const TRACE_ID: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0";

/// An event for the function, handed over through [`ApiEvent::Next`]'s `reply`.
pub struct Invocation {
    pub request_id: String,
    pub event: Bytes,
}

/// What the function did, in the order the emulator saw it.
pub enum ApiEvent {
    /// The function asked for its next event (`at`: when the request arrived). The request is
    /// held until an [`Invocation`] is sent through `reply`.
    Next {
        at: Instant,
        reply: oneshot::Sender<Invocation>,
    },
    /// The `/next` response carrying `request_id` is about to be sent (`at`).
    HandedOver { request_id: String, at: Instant },
    /// `/response` (`error` false) or `/error` (`error` true) for `request_id`, arrived at `at`.
    Result {
        request_id: String,
        at: Instant,
        error: bool,
        body: Bytes,
    },
    /// `/init/error`: the function could not start.
    InitError { body: Bytes },
    /// A request the emulator does not serve.
    Unexpected { method: Method, path: String },
}

/// A running emulator. Dropping it stops the server and closes every connection.
pub struct RuntimeApi {
    addr: SocketAddr,
    events: mpsc::UnboundedReceiver<ApiEvent>,
    server: JoinHandle<()>,
}

impl RuntimeApi {
    /// Starts serving on `127.0.0.1:<free port>` for the function `function_name` (its name
    /// goes into `Lambda-Runtime-Invoked-Function-Arn`).
    pub async fn start(function_name: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (sender, events) = mpsc::unbounded_channel();
        let function_arn: Arc<str> =
            format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}").into();
        let server = tokio::spawn(serve(listener, sender, function_arn));
        Ok(Self {
            addr,
            events,
            server,
        })
    }

    /// `127.0.0.1:<port>`: the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The next thing the function did, or `None` if nothing happened within `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Option<ApiEvent> {
        tokio::time::timeout(timeout, self.events.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        // Dropping the accept loop drops its JoinSet, which aborts every connection task.
        self.server.abort();
    }
}

async fn serve(
    listener: TcpListener,
    events: mpsc::UnboundedSender<ApiEvent>,
    function_arn: Arc<str>,
) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors or similar: try again shortly instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        while connections.try_join_next().is_some() {}
        let events = events.clone();
        let function_arn = function_arn.clone();
        connections.spawn(async move {
            let service =
                service_fn(move |request| handle(request, events.clone(), function_arn.clone()));
            // A function killed mid-request ends its connection with an error: nothing to do.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    request: Request<Incoming>,
    events: mpsc::UnboundedSender<ApiEvent>,
    function_arn: Arc<str>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let at = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if method == Method::GET && path == NEXT {
        let (reply, invocation) = oneshot::channel();
        if events.send(ApiEvent::Next { at, reply }).is_err() {
            return Ok(status(StatusCode::SERVICE_UNAVAILABLE));
        }
        // Held until the harness hands over an event (or drops the reply: shutting down).
        let Ok(Invocation { request_id, event }) = invocation.await else {
            return Ok(status(StatusCode::SERVICE_UNAVAILABLE));
        };
        let deadline = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            + INVOCATION_DEADLINE;
        let response = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("lambda-runtime-aws-request-id", &request_id)
            .header(
                "lambda-runtime-deadline-ms",
                deadline.as_millis().to_string(),
            )
            .header("lambda-runtime-invoked-function-arn", &*function_arn)
            .header("lambda-runtime-trace-id", TRACE_ID)
            .body(Full::new(event))
            .expect("valid /next response");
        let _ = events.send(ApiEvent::HandedOver {
            request_id,
            at: Instant::now(),
        });
        return Ok(response);
    }
    if method == Method::POST && path == INIT_ERROR {
        let body = read_body(request).await;
        let _ = events.send(ApiEvent::InitError { body });
        return Ok(status(StatusCode::ACCEPTED));
    }
    if method == Method::POST
        && let Some(rest) = path.strip_prefix(INVOCATION)
        && let Some((request_id, kind)) = rest.split_once('/')
        && (kind == "response" || kind == "error")
    {
        let request_id = request_id.to_owned();
        let error = kind == "error";
        let body = read_body(request).await;
        let _ = events.send(ApiEvent::Result {
            request_id,
            at,
            error,
            body,
        });
        return Ok(status(StatusCode::ACCEPTED));
    }
    let _ = events.send(ApiEvent::Unexpected { method, path });
    Ok(status(StatusCode::NOT_FOUND))
}

/// The request body, or what could be read of it (the harness reports it either way).
async fn read_body(request: Request<Incoming>) -> Bytes {
    match Limited::new(request.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => Bytes::from(format!("<unreadable request body: {error}>")),
    }
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

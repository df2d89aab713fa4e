//! A Lambda Runtime API emulator, for a function process run as in Lambda: HTTP/1.1 (hyper) on
//! `127.0.0.1:<free port>`, one per function process, stopped when dropped. The cold-start
//! benchmark (`tests/bench/coldstart.rs`, which includes this file) times the function through
//! it; `tests/hostile.rs` drives the real runtime loop and the real binary through it.
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
//!
//! A harness drives one invocation with [`RuntimeApi::next`] (the function asks for an event)
//! then [`RuntimeApi::invoke`] (the event handed over, the function's [`Answer`] awaited); both
//! fail, in words, when the function could not start, exited, made a request the emulator does
//! not serve, or stayed silent.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Child;
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
/// How often a waiting harness checks that the function is still alive.
const LIVENESS_POLL: Duration = Duration::from_millis(20);

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

    /// The next thing `function` (the process talking to this emulator) did within `within`.
    /// An error, in words, when it could not start (`/init/error`), made a request the emulator
    /// does not serve, exited, or did nothing in time.
    pub async fn wait(
        &mut self,
        function: &mut Child,
        waiting_for: &str,
        within: Duration,
    ) -> Result<ApiEvent, String> {
        let deadline = Instant::now() + within;
        loop {
            match self.recv(LIVENESS_POLL).await {
                Some(ApiEvent::InitError { body }) => {
                    return Err(format!("init error: {}", String::from_utf8_lossy(&body)));
                }
                Some(ApiEvent::Unexpected { method, path }) => {
                    return Err(format!("unexpected Runtime API request {method} {path}"));
                }
                Some(event) => return Ok(event),
                None => {}
            }
            if let Ok(Some(status)) = function.try_wait() {
                return Err(format!("exited ({status}) while waiting for {waiting_for}"));
            }
            if Instant::now() >= deadline {
                return Err(format!("no {waiting_for} within {within:?}"));
            }
        }
    }

    /// Waits (as [`RuntimeApi::wait`]) for `function`'s `GET /next`: when it arrived, and where
    /// to send the event.
    pub async fn next(
        &mut self,
        function: &mut Child,
        within: Duration,
    ) -> Result<(Instant, oneshot::Sender<Invocation>), String> {
        match self.wait(function, "GET /next", within).await? {
            ApiEvent::Next { at, reply } => Ok((at, reply)),
            other => Err(format!("expected GET /next, got {}", describe(&other))),
        }
    }

    /// Hands `event` over as `request_id` on the held `/next` (`reply`), then waits (as
    /// [`RuntimeApi::wait`], `within` for each step) for its hand-over and `function`'s
    /// `/response` or `/error`.
    pub async fn invoke(
        &mut self,
        function: &mut Child,
        reply: oneshot::Sender<Invocation>,
        request_id: &str,
        event: Bytes,
        within: Duration,
    ) -> Result<Answer, String> {
        let invocation = Invocation {
            request_id: request_id.to_owned(),
            event,
        };
        if reply.send(invocation).is_err() {
            return Err("the held GET /next went away".to_owned());
        }
        let handed_over = match self
            .wait(function, "the event to be handed over", within)
            .await?
        {
            ApiEvent::HandedOver { request_id: id, at } if id == request_id => at,
            other => return Err(format!("expected the hand-over, got {}", describe(&other))),
        };
        match self
            .wait(function, "the invocation's response", within)
            .await?
        {
            ApiEvent::Result {
                request_id: id,
                at,
                error,
                body,
            } if id == request_id => Ok(Answer {
                handed_over,
                answered: at,
                error,
                body,
            }),
            other => Err(format!("expected the answer, got {}", describe(&other))),
        }
    }
}

/// How the function answered one invocation.
pub struct Answer {
    /// When the event's `/next` response was about to be sent.
    pub handed_over: Instant,
    /// When `/response` or `/error` arrived.
    pub answered: Instant,
    /// `/error` (an invocation error) rather than `/response`.
    pub error: bool,
    pub body: Bytes,
}

/// What the function did, in a few words, for failure messages.
fn describe(event: &ApiEvent) -> String {
    match event {
        ApiEvent::Next { .. } => "GET /next".to_owned(),
        ApiEvent::HandedOver { request_id, .. } => format!("the hand-over of {request_id}"),
        ApiEvent::Result {
            request_id, error, ..
        } => format!(
            "/{} for {request_id}",
            if *error { "error" } else { "response" }
        ),
        ApiEvent::InitError { .. } => "/init/error".to_owned(),
        ApiEvent::Unexpected { method, path } => format!("{method} {path}"),
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

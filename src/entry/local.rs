//! Plain HTTP serving of a Lambda-style handler, outside Lambda: the `webhook` binary's local
//! mode, the sample agent, and the loopback fakes of tests and the demo all use it.
//!
//! Anyone who can reach the port can open connections and send bodies before any signature is
//! checked, so what they can hold is bounded: at most [`Limits::max_connections`] connections
//! (the oldest idle one makes room for a newcomer), each buffering at most [`BODY_ALLOWANCE`]
//! of a body on its own; bytes beyond that come from one shared [`Limits::body_budget`], and a
//! body that cannot get them is refused with 503 before it is read. Memory for bodies stays under
//! `max_connections × BODY_ALLOWANCE + body_budget`. Errors accepting a connection (out of file
//! descriptors, …) are logged and retried after a pause, never fatal.
//!
//! The server's own answers (413, 400, 408, 503, 500) are [`Answer`]s like the handler's,
//! written through the same mapping (`webhook::answer`).

use crate::BoxFuture;
use crate::config::{DEFAULT_LOCAL_BODY_BUDGET_BODIES, DEFAULT_LOCAL_MAX_CONNECTIONS};
use crate::webhook::answer::Answer;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use lambda_http::{Body, Request, Response};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// How long a client may take to send the request line and headers (slowloris): then the
/// connection is closed. Idle keep-alive connections count too.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take to send the body once the headers are in: then 408.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Body bytes every request may buffer without drawing on the shared budget: a webhook
/// notification is a few KB, so ordinary requests go through while big bodies hold the budget.
pub const BODY_ALLOWANCE: usize = 64 * 1024;
/// hyper's read buffer per connection (it holds the request head and body chunks in flight). Its
/// default, ~400 KB, would let every idle connection hold that much in headers alone.
pub const READ_BUFFER_BYTES: usize = 64 * 1024;
/// File descriptors left free when the connection cap is fitted under the open-files limit:
/// the handler's own calls (agent, Graph API), the runtime and the standard streams need them.
pub const RESERVED_FILE_DESCRIPTORS: usize = 64;
/// First pause after a failed accept; it doubles while accepting keeps failing.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(50);
/// Longest pause between accept attempts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// `Retry-After` of a 503 ([`Answer::Busy`], [`Answer::NoConnectionFree`]): stalled bodies give
/// their budget back within [`BODY_READ_TIMEOUT`].
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// What one server lets its clients hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body: over it, 413.
    pub max_body: usize,
    /// Connections served at once; lowered to fit under the process's open-files limit.
    pub max_connections: usize,
    /// Bytes all request bodies may hold at once beyond their [`BODY_ALLOWANCE`], from the first
    /// byte read until the handler is done with the request.
    pub body_budget: usize,
}

impl Limits {
    /// The configuration defaults around `max_body`: [`DEFAULT_LOCAL_MAX_CONNECTIONS`], and a
    /// budget of [`DEFAULT_LOCAL_BODY_BUDGET_BODIES`] largest bodies.
    pub fn for_max_body(max_body: usize) -> Self {
        Self {
            max_body,
            max_connections: DEFAULT_LOCAL_MAX_CONNECTIONS,
            body_budget: max_body.saturating_mul(DEFAULT_LOCAL_BODY_BUDGET_BODIES),
        }
    }

    /// No limit but the open-files one: the loopback fakes of tests and the demo, whose only
    /// client is the code under test.
    pub const UNBOUNDED: Self = Self {
        max_body: usize::MAX,
        max_connections: usize::MAX,
        body_budget: usize::MAX,
    };
}

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

/// Serves `handler` on `listener` until the task is dropped, with [`Limits::for_max_body`]:
/// bodies over `max_body` get 413. Never returns an error: accept failures are retried.
pub async fn serve(
    listener: TcpListener,
    handler: Handler,
    max_body: usize,
) -> std::io::Result<()> {
    serve_with(listener, handler, Limits::for_max_body(max_body)).await
}

/// Serves `handler` on `listener` within `limits` until the task is dropped. Never returns an
/// error: a failed accept (out of file descriptors, …) is logged, and accepting resumes after a
/// pause, having closed the oldest idle connection to free a descriptor.
pub async fn serve_with(
    listener: TcpListener,
    handler: Handler,
    limits: Limits,
) -> std::io::Result<()> {
    accept_loop(&listener, handler, limits).await;
    Ok(())
}

/// Where connections come from: a listener, or in tests one that fails on purpose.
trait Accept {
    fn accept_stream(&self) -> impl Future<Output = std::io::Result<TcpStream>> + Send;
}

impl Accept for TcpListener {
    async fn accept_stream(&self) -> std::io::Result<TcpStream> {
        self.accept().await.map(|(stream, _)| stream)
    }
}

async fn accept_loop(listener: &impl Accept, handler: Handler, limits: Limits) {
    let cap = fit_under_open_files(limits.max_connections, open_files_limit());
    if cap < limits.max_connections && limits.max_connections != usize::MAX {
        tracing::warn!(
            configured = limits.max_connections,
            cap,
            "local connection cap lowered to fit under the open-files limit"
        );
    }
    let connections = Arc::new(Connections::new(cap));
    let budget = Arc::new(BodyBudget::new(limits.body_budget));
    let refused_at_capacity = http1_bytes(&Answer::NoConnectionFree {
        retry_after: RETRY_AFTER,
    });
    let mut backoff = ACCEPT_BACKOFF_MIN;
    let mut failures: u64 = 0;
    loop {
        let stream = match listener.accept_stream().await {
            Ok(stream) => stream,
            // The peer gave up between its handshake and our accept: nothing to wait for.
            Err(error) if is_peer_gone(&error) => continue,
            Err(error) => {
                // Once per burst: under a connection flood this would otherwise log thousands
                // of lines a second.
                if failures == 0 {
                    tracing::error!(%error, "local server cannot accept connections: pausing");
                }
                failures += 1;
                // Most often out of file descriptors: closing the oldest idle connection gives
                // one back, and the pause lets its task close it.
                connections.evict_one();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        if failures > 0 {
            tracing::warn!(failures, "local server accepting connections again");
            failures = 0;
            backoff = ACCEPT_BACKOFF_MIN;
        }
        let Some(slot) = connections.admit() else {
            tracing::warn!(
                cap,
                "local connection refused: every connection has a request in progress"
            );
            // Best effort and without waiting: the newcomer must not cost us a task.
            let _ = stream.try_write(&refused_at_capacity);
            continue;
        };
        tokio::spawn(serve_connection(
            stream,
            slot,
            handler.clone(),
            budget.clone(),
            limits.max_body,
        ));
    }
}

/// Whether an accept error concerns only the connection being accepted, not the server.
fn is_peer_gone(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused
    )
}

async fn serve_connection(
    stream: TcpStream,
    slot: Slot,
    handler: Handler,
    budget: Arc<BodyBudget>,
    max_body: usize,
) {
    let slot = Arc::new(slot);
    let evicted = slot.evicted.clone();
    let service = {
        let slot = slot.clone();
        service_fn(move |request| {
            let (handler, budget, slot) = (handler.clone(), budget.clone(), slot.clone());
            async move {
                let _idle_again = slot.request();
                Ok::<_, Infallible>(dispatch(request, &handler, &budget, max_body, &slot).await)
            }
        })
    };
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(READ_BUFFER_BYTES)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = connection => {
            if let Err(error) = result {
                tracing::debug!(%error, "local connection closed with an error");
            }
        }
        () = evicted.notified() => {
            tracing::debug!("local connection closed to make room for a newer one");
        }
    }
}

async fn dispatch(
    request: hyper::Request<Incoming>,
    handler: &Handler,
    budget: &Arc<BodyBudget>,
    max_body: usize,
    slot: &Slot,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let (bytes, hold) = match read_body(body, &parts.headers, budget, max_body).await {
        Ok(read) => read,
        Err(refusal) => {
            let answer = refusal.answer();
            let status = answer.status().as_u16();
            tracing::warn!(status, limit = max_body, "{refusal}");
            return to_hyper(answer.into_response());
        }
    };
    slot.set(Stage::Handling);
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        Body::Binary(bytes)
    };
    // On its own task, so that a panicking handler costs one 500, not the connection. The body's
    // budget goes back when the handler has let go of the request, not before.
    let request = Request::from_parts(parts, body);
    let handler = handler.clone();
    let answered = tokio::spawn(async move {
        let response = handler(request).await;
        drop(hold);
        response
    });
    let response = match answered.await {
        Ok(response) => response,
        Err(error) => {
            tracing::error!(%error, "request handler failed");
            Answer::Internal.into_response()
        }
    };
    to_hyper(response)
}

/// The handler's response (or the server's own [`Answer`]) as hyper writes it.
fn to_hyper(response: Response<Body>) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

/// An answer as HTTP/1.1 bytes, written straight to a socket whose request is never read:
/// status line, content type, headers in order, `content-length`, body.
fn http1_bytes(answer: &Answer) -> Vec<u8> {
    let status = answer.status();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or_default()
    )
    .into_bytes();
    if let Some(content_type) = answer.content_type() {
        head.extend_from_slice(format!("content-type: {content_type}\r\n").as_bytes());
    }
    for (name, value) in answer.headers() {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let body = answer.body().as_bytes();
    head.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    head.extend_from_slice(body);
    head
}

/// Why a request body was not read to its end.
#[derive(Debug, thiserror::Error)]
enum BodyRefusal {
    #[error("local request body too large (declared)")]
    DeclaredTooLarge,
    #[error("local request body too large")]
    TooLarge,
    #[error("local request body refused: the body budget is in use")]
    NoBudget,
    #[error("local request body rejected: {0}")]
    Broken(hyper::Error),
    #[error("local request body not received in time")]
    Timeout,
}

impl BodyRefusal {
    /// The answer; each closes the connection, since the rest of the body is not read.
    fn answer(&self) -> Answer {
        match self {
            Self::DeclaredTooLarge | Self::TooLarge => Answer::BodyTooLarge,
            Self::NoBudget => Answer::Busy {
                retry_after: RETRY_AFTER,
            },
            Self::Broken(_) => Answer::MalformedBody,
            Self::Timeout => Answer::RequestTimeout,
        }
    }
}

/// Reads a body into one buffer (each chunk copied once), holding budget for what exceeds
/// [`BODY_ALLOWANCE`]. A declared length over the limit is refused before reading any of it,
/// and so is one the budget cannot cover; a chunked or lying body is cut off where it crosses
/// either. Either way the connection then closes.
async fn read_body(
    mut body: Incoming,
    headers: &hyper::HeaderMap,
    budget: &Arc<BodyBudget>,
    max_body: usize,
) -> Result<(Vec<u8>, BudgetHold), BodyRefusal> {
    let mut hold = BudgetHold::empty(budget.clone());
    let declared = declared_length(headers);
    if let Some(length) = declared {
        if length > max_body {
            return Err(BodyRefusal::DeclaredTooLarge);
        }
        if !hold.cover(length) {
            return Err(BodyRefusal::NoBudget);
        }
    }
    // Sized up front when declared (the budget covers it); pages are touched only as bytes come.
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0));
    let read = async {
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(BodyRefusal::Broken)?.into_data() else {
                continue; // trailers
            };
            let total = bytes.len().saturating_add(data.len());
            if total > max_body {
                return Err(BodyRefusal::TooLarge);
            }
            if !hold.cover(total) {
                return Err(BodyRefusal::NoBudget);
            }
            bytes.extend_from_slice(&data);
        }
        Ok(())
    };
    match tokio::time::timeout(BODY_READ_TIMEOUT, read).await {
        Ok(Ok(())) => Ok((bytes, hold)),
        Ok(Err(refusal)) => Err(refusal),
        Err(_) => Err(BodyRefusal::Timeout),
    }
}

/// Bytes of request bodies beyond their allowance, shared by all connections of one server.
/// Never waited for: a body that cannot be covered at once is refused.
struct BodyBudget {
    total: usize,
    used: AtomicUsize,
}

impl BodyBudget {
    fn new(total: usize) -> Self {
        Self {
            total,
            used: AtomicUsize::new(0),
        }
    }

    fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|after| *after <= self.total)
            })
            .is_ok()
    }

    #[cfg(test)]
    fn in_use(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// What one request holds of the budget; given back when dropped.
struct BudgetHold {
    budget: Arc<BodyBudget>,
    bytes: usize,
}

impl BudgetHold {
    fn empty(budget: Arc<BodyBudget>) -> Self {
        Self { budget, bytes: 0 }
    }

    /// Makes sure a body of `total` bytes is covered: the allowance, then the budget. False when
    /// the budget cannot give the rest.
    fn cover(&mut self, total: usize) -> bool {
        let needed = total.saturating_sub(BODY_ALLOWANCE);
        if needed <= self.bytes {
            return true;
        }
        if !self.budget.try_take(needed - self.bytes) {
            return false;
        }
        self.bytes = needed;
        true
    }
}

impl Drop for BudgetHold {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The soft limit on open files, where the platform tells (Linux's `/proc/self/limits`).
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files_limit(&limits)
}

/// The soft limit of the `Max open files` row of a `/proc/<pid>/limits` table; `None` when
/// unlimited or absent.
fn parse_open_files_limit(limits: &str) -> Option<usize> {
    let row = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))?;
    row.split_whitespace().next()?.parse().ok()
}

/// The connection cap that leaves [`RESERVED_FILE_DESCRIPTORS`] of `open_files` free; at least 1.
fn fit_under_open_files(max_connections: usize, open_files: Option<usize>) -> usize {
    let fitted = match open_files {
        Some(limit) => max_connections.min(limit.saturating_sub(RESERVED_FILE_DESCRIPTORS)),
        None => max_connections,
    };
    fitted.max(1)
}

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for a request line and headers, first or keep-alive: the first to make room.
    Idle,
    /// Reading a body: nothing is authenticated yet; made room with when nothing is idle.
    Reading,
    /// The handler has the request: never interrupted.
    Handling,
}

/// The open connections of one server, capped.
struct Connections {
    cap: usize,
    registry: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    /// Bumped on every stage change: orders connections by how long they have been where they are.
    clock: u64,
    open: HashMap<u64, Entry>,
}

struct Entry {
    stage: Stage,
    since: u64,
    evicted: Arc<Notify>,
}

impl Connections {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            registry: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic elsewhere cannot leave the map inconsistent: every change is one call.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a new connection, closing the longest-idle one (else the longest-reading one) if
    /// at the cap; `None` when every connection has a request in the handler.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        let mut registry = self.lock();
        if registry.open.len() >= self.cap && !registry.evict_one() {
            return None;
        }
        registry.next_id += 1;
        registry.clock += 1;
        let (id, since) = (registry.next_id, registry.clock);
        let evicted = Arc::new(Notify::new());
        registry.open.insert(
            id,
            Entry {
                stage: Stage::Idle,
                since,
                evicted: evicted.clone(),
            },
        );
        Some(Slot {
            id,
            connections: self.clone(),
            evicted,
        })
    }

    /// Closes the longest-idle connection (else the longest-reading one), if there is one.
    fn evict_one(&self) -> bool {
        self.lock().evict_one()
    }

    fn set(&self, id: u64, stage: Stage) {
        let mut registry = self.lock();
        registry.clock += 1;
        let since = registry.clock;
        if let Some(entry) = registry.open.get_mut(&id) {
            entry.stage = stage;
            entry.since = since;
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().open.len()
    }
}

impl Registry {
    fn evict_one(&mut self) -> bool {
        let oldest = |stage| {
            self.open
                .iter()
                .filter(|(_, entry)| entry.stage == stage)
                .min_by_key(|(_, entry)| entry.since)
                .map(|(id, _)| *id)
        };
        let Some(id) = oldest(Stage::Idle).or_else(|| oldest(Stage::Reading)) else {
            return false;
        };
        // Out of the count at once: its task closes the socket when it next runs.
        if let Some(entry) = self.open.remove(&id) {
            entry.evicted.notify_one();
        }
        true
    }
}

/// One admitted connection; leaves the registry when dropped.
struct Slot {
    id: u64,
    connections: Arc<Connections>,
    evicted: Arc<Notify>,
}

impl Slot {
    fn set(&self, stage: Stage) {
        self.connections.set(self.id, stage);
    }

    /// Marks a request as begun (its body being read) until the returned guard drops.
    fn request(&self) -> RequestGuard<'_> {
        self.set(Stage::Reading);
        RequestGuard(self)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.lock().open.remove(&self.id);
    }
}

/// Puts its connection back to idle when the request is over (answered or abandoned).
struct RequestGuard<'a>(&'a Slot);

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.0.set(Stage::Idle);
    }
}

/// The `Content-Length` a request declares (hyper has already refused conflicting ones).
fn declared_length(headers: &hyper::HeaderMap) -> Option<usize> {
    headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::answer::{body_bytes, response};
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn bodies_within_the_allowance_take_no_budget_and_the_rest_is_capped() {
        let budget = Arc::new(BodyBudget::new(100));
        let mut small = BudgetHold::empty(budget.clone());
        assert!(small.cover(BODY_ALLOWANCE));
        assert_eq!(budget.in_use(), 0);

        let mut big = BudgetHold::empty(budget.clone());
        assert!(big.cover(BODY_ALLOWANCE + 60));
        // Growing takes only the difference; shrinking takes nothing.
        assert!(big.cover(BODY_ALLOWANCE + 90));
        assert!(big.cover(10));
        assert_eq!(budget.in_use(), 90);

        let mut other = BudgetHold::empty(budget.clone());
        assert!(!other.cover(BODY_ALLOWANCE + 11), "over the total");
        assert!(other.cover(BODY_ALLOWANCE + 10));
        assert_eq!(budget.in_use(), 100);

        drop(big);
        assert_eq!(budget.in_use(), 10);
        drop(other);
        assert_eq!(budget.in_use(), 0);
        assert!(BudgetHold::empty(budget).cover(BODY_ALLOWANCE + 100));
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room_then_a_reading_one() {
        let connections = Arc::new(Connections::new(3));
        let first = connections.admit().unwrap();
        let second = connections.admit().unwrap();
        let third = connections.admit().unwrap();
        first.set(Stage::Reading);
        second.set(Stage::Handling);
        // Only `third` is idle: it goes, though it arrived last.
        let fourth = connections.admit().unwrap();
        assert_eq!(connections.len(), 3);
        assert!(is_notified(&third.evicted));
        assert!(!is_notified(&first.evicted));
        // The newest idle connection still goes before the reading one.
        let fifth = connections.admit().unwrap();
        assert!(is_notified(&fourth.evicted));
        assert!(!is_notified(&first.evicted));
        // Nothing idle: the reading one goes, never the one in the handler.
        fifth.set(Stage::Handling);
        let _sixth = connections.admit().unwrap();
        assert!(is_notified(&first.evicted));
        assert!(!is_notified(&second.evicted));
        assert!(!is_notified(&fifth.evicted));
        assert_eq!(connections.len(), 3);
    }

    #[test]
    fn when_every_connection_is_in_the_handler_a_newcomer_is_refused() {
        let connections = Arc::new(Connections::new(2));
        let first = connections.admit().unwrap();
        let second = connections.admit().unwrap();
        first.set(Stage::Handling);
        second.set(Stage::Handling);
        assert!(connections.admit().is_none());
        assert!(!connections.evict_one());
        drop(second);
        assert!(connections.admit().is_some());
    }

    #[test]
    fn a_finished_request_leaves_its_connection_idle_and_evictable() {
        let connections = Arc::new(Connections::new(1));
        let only = connections.admit().unwrap();
        {
            let _request = only.request();
            only.set(Stage::Handling);
            assert!(!connections.evict_one());
        }
        assert!(connections.evict_one());
        assert!(is_notified(&only.evicted));
        assert_eq!(connections.len(), 0);
    }

    #[test]
    fn the_connection_cap_fits_under_the_open_files_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max processes             95657                95657                processes \n\
                      Max open files            256                  4096                 files     \n";
        assert_eq!(parse_open_files_limit(limits), Some(256));
        assert_eq!(
            parse_open_files_limit(
                "Max open files            unlimited            unlimited            files"
            ),
            None
        );
        assert_eq!(
            fit_under_open_files(256, Some(256)),
            256 - RESERVED_FILE_DESCRIPTORS
        );
        assert_eq!(fit_under_open_files(100, Some(1024)), 100);
        assert_eq!(fit_under_open_files(100, Some(10)), 1);
        assert_eq!(fit_under_open_files(100, None), 100);
        assert!(open_files_limit().is_none_or(|limit| limit > 0));
    }

    fn is_notified(notify: &Notify) -> bool {
        use futures_util::FutureExt;
        notify.notified().now_or_never().is_some()
    }

    /// A server within `limits` whose handler answers with the length of the body it got.
    async fn length_server(limits: Limits) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let length = handler(|request: Request| async move {
            response(
                200,
                "text/plain",
                body_bytes(request.body()).len().to_string(),
            )
        });
        let server = tokio::spawn(async move {
            let _ = serve_with(listener, length, limits).await;
        });
        (addr, server)
    }

    /// Sends `head` and `body` on a new connection and reads the answer to its end.
    async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        // The server may refuse before reading the body.
        let _ = stream.write_all(body).await;
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
            .await
            .expect("an answer in time")
            .ok();
        String::from_utf8_lossy(&answer).into_owned()
    }

    fn post(length: usize) -> String {
        format!(
            "POST /webhook HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {length}\r\n\r\n"
        )
    }

    const CHUNKED: &str = "POST /webhook HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n";

    #[tokio::test]
    async fn idle_connections_make_room_for_a_newcomer_at_the_cap() {
        let (addr, server) = length_server(Limits {
            max_connections: 2,
            ..Limits::for_max_body(1024 * 1024)
        })
        .await;
        let mut idle = Vec::new();
        for _ in 0..3 {
            idle.push(TcpStream::connect(addr).await.unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let answer = exchange(addr, &post(2), b"hi").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n2"), "{answer}");
        // The oldest idle connections were closed for the later ones.
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), idle[0].read(&mut byte))
            .await
            .expect("the oldest idle connection is closed");
        assert!(matches!(closed, Ok(0) | Err(_)));
        server.abort();
    }

    #[tokio::test]
    async fn a_body_the_budget_cannot_cover_is_refused_at_once_while_small_ones_pass() {
        const KIB: usize = 1024;
        let (addr, server) = length_server(Limits {
            max_body: 1024 * KIB,
            max_connections: 16,
            body_budget: 256 * KIB,
        })
        .await;
        // A declared 300 KiB body holds 236 KiB of the budget while it stalls after 100 KiB.
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled.write_all(post(300 * KIB).as_bytes()).await.unwrap();
        stalled.write_all(&vec![b'x'; 100 * KIB]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;

        // Another one cannot be covered: 503 before its body is read.
        let refused = exchange(addr, &post(300 * KIB), b"").await;
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        assert!(refused.contains("retry-after: 5"), "{refused}");
        assert!(refused.contains("connection: close"), "{refused}");
        // A chunked one is cut off where it needs more than is left.
        let chunk = vec![b'y'; 128 * KIB];
        let mut chunked = format!("{:x}\r\n", chunk.len()).into_bytes();
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        let cut = exchange(addr, CHUNKED, &chunked).await;
        assert!(cut.starts_with("HTTP/1.1 503"), "{cut}");
        // Bodies within the allowance still pass.
        let small = exchange(addr, &post(KIB), &vec![b'z'; KIB]).await;
        assert!(small.starts_with("HTTP/1.1 200"), "{small}");
        assert!(small.ends_with("\r\n\r\n1024"), "{small}");

        // The stalled body gives its budget back when its client goes.
        drop(stalled);
        let body = vec![b'w'; 300 * KIB];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            let answer = exchange(addr, &post(body.len()), &body).await;
            if answer.starts_with("HTTP/1.1 200") {
                assert!(
                    answer.ends_with(&format!("\r\n\r\n{}", body.len())),
                    "{answer}"
                );
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{answer}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server.abort();
    }

    /// A listener whose first accepts fail as when the process is out of file descriptors.
    struct OutOfDescriptors {
        listener: TcpListener,
        failures_left: AtomicUsize,
    }

    impl Accept for OutOfDescriptors {
        async fn accept_stream(&self) -> std::io::Result<TcpStream> {
            let (stream, _) = self.listener.accept().await?;
            let left = self.failures_left.load(Ordering::Acquire);
            if left > 0 {
                self.failures_left.store(left - 1, Ordering::Release);
                // EMFILE: the kernel keeps the connection queued; here it is simply dropped.
                drop(stream);
                return Err(std::io::Error::from_raw_os_error(24));
            }
            Ok(stream)
        }
    }

    #[tokio::test]
    async fn failed_accepts_pause_the_server_instead_of_ending_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = OutOfDescriptors {
            listener,
            failures_left: AtomicUsize::new(3),
        };
        let echo = handler(|request: Request| async move {
            response(
                200,
                "text/plain",
                body_bytes(request.body()).len().to_string(),
            )
        });
        let server = tokio::spawn(async move {
            accept_loop(&listener, echo, Limits::for_max_body(1024)).await;
        });
        // Three connections meet the failures (and are dropped); the server pauses, then serves.
        let mut doomed = Vec::new();
        for _ in 0..3 {
            doomed.push(TcpStream::connect(addr).await.unwrap());
        }
        let started = std::time::Instant::now();
        let answer = exchange(addr, &post(2), b"ok").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(!server.is_finished(), "the server ended");
        assert!(started.elapsed() < ACCEPT_BACKOFF_MAX * 3);
        server.abort();
    }

    #[test]
    fn the_refusal_at_the_connection_cap_is_written_as_it_always_was() {
        assert_eq!(
            http1_bytes(&Answer::NoConnectionFree {
                retry_after: RETRY_AFTER
            }),
            b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 5\r\n\
connection: close\r\ncontent-length: 0\r\n\r\n"
        );
        assert_eq!(
            http1_bytes(&Answer::MethodNotAllowed),
            b"HTTP/1.1 405 Method Not Allowed\r\ncontent-type: text/plain\r\n\
allow: GET, POST\r\ncontent-length: 18\r\n\r\nmethod not allowed"
        );
    }

    /// Every answer of the server itself, byte for byte (less the `date` header).
    #[tokio::test]
    async fn the_servers_own_answers_keep_their_bytes() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let failing = handler(|request: Request| async move {
            if request.uri().path() == "/panic" {
                panic!("the handler fails on purpose");
            }
            response(200, "text/plain", "x")
        });
        let limits = Limits {
            max_body: 100 * 1024,
            max_connections: 16,
            body_budget: 1,
        };
        let server = tokio::spawn(async move {
            let _ = serve_with(listener, failing, limits).await;
        });
        let mut chunked_over = CHUNKED.as_bytes().to_vec();
        chunked_over.extend_from_slice(format!("{:x}\r\n", 200 * 1024).as_bytes());
        chunked_over.extend_from_slice(&vec![b'a'; 200 * 1024]);
        chunked_over.extend_from_slice(b"\r\n0\r\n\r\n");
        let cases = [
            (
                post(200 * 1024).into_bytes(),
                "HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: 17\r\n\r\npayload too large",
            ),
            (
                chunked_over,
                "HTTP/1.1 413 Payload Too Large\r\nconnection: close\r\ncontent-length: 17\r\n\r\npayload too large",
            ),
            (
                post(BODY_ALLOWANCE + 2).into_bytes(),
                "HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\nretry-after: 5\r\ncontent-length: 17\r\n\r\nbusy, retry later",
            ),
            (
                format!("{CHUNKED}zz\r\n").into_bytes(),
                "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 11\r\n\r\nbad request",
            ),
            (
                b"GET /panic HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_vec(),
                "HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\ncontent-length: 14\r\n\r\ninternal error",
            ),
            (
                b"GET /ok HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_vec(),
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: 1\r\n\r\nx",
            ),
        ];
        for (request, expected) in cases {
            let answer = exchange(addr, &String::from_utf8(request).unwrap(), b"").await;
            let without_date: Vec<&str> = answer
                .split("\r\n")
                .filter(|line| !line.starts_with("date:"))
                .collect();
            assert_eq!(without_date.join("\r\n"), expected);
        }
        server.abort();
    }

    #[tokio::test]
    async fn over_the_limit_is_still_413_and_the_budget_is_not_touched() {
        let (addr, server) = length_server(Limits::for_max_body(4096)).await;
        let declared = exchange(addr, &post(4097), b"").await;
        assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
        let mut chunked = format!("{:x}\r\n", 5000).into_bytes();
        chunked.extend_from_slice(&[b'a'; 5000]);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        let cut = exchange(addr, CHUNKED, &chunked).await;
        assert!(cut.starts_with("HTTP/1.1 413"), "{cut}");
        server.abort();
    }
}

//! Loopback fakes of the agent and the Graph API, for tests that run the real binary or the
//! real HTTP adapters against them. Each is a `LoopbackServer` on 127.0.0.1, stopped when
//! dropped. Fakes of their own (a Graph API that refuses a token, Secrets Manager) read
//! requests with [`header`].

use lambda_http::Request;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use whatsapp_agent_lambda::dev::LoopbackServer;
use whatsapp_agent_lambda::entry::local::handler;
use whatsapp_agent_lambda::webhook::answer::{body_bytes, response};

/// Meta's answer to an accepted send.
pub const GRAPH_ACCEPTED: &str = r#"{"success":true,"messages":[{"id":"wamid.out"}]}"#;

/// An agent that answers every request at once with `answer` (a JSON reply) and records the
/// id of each message it was asked about in `ids` (`?` when the request has none).
pub fn recording_agent(ids: Arc<Mutex<Vec<String>>>, answer: &'static str) -> LoopbackServer {
    LoopbackServer::start(handler(move |request: Request| {
        let ids = ids.clone();
        async move {
            let body: Value =
                serde_json::from_slice(body_bytes(request.body())).unwrap_or(Value::Null);
            let id = body["event"]["id"].as_str().unwrap_or("?").to_owned();
            ids.lock().unwrap().push(id);
            response(200, "application/json", answer)
        }
    }))
}

/// The Graph API: accepts every call and records it in `calls` as its `Authorization` header
/// and its JSON body (`Value::Null` when it is not JSON).
pub fn recording_graph(calls: Arc<Mutex<Vec<(String, Value)>>>) -> LoopbackServer {
    LoopbackServer::start(handler(move |request: Request| {
        let calls = calls.clone();
        async move {
            let authorization = header(&request, "authorization").unwrap_or_default();
            let body = serde_json::from_slice(body_bytes(request.body())).unwrap_or(Value::Null);
            calls.lock().unwrap().push((authorization, body));
            response(200, "application/json", GRAPH_ACCEPTED)
        }
    }))
}

/// The Graph API: accepts every call and counts them in `calls`.
pub fn accepting_graph(calls: Arc<AtomicUsize>) -> LoopbackServer {
    LoopbackServer::start(handler(move |_request: Request| {
        let calls = calls.clone();
        async move {
            calls.fetch_add(1, Ordering::Relaxed);
            response(200, "application/json", GRAPH_ACCEPTED)
        }
    }))
}

/// The value of header `name` of `request`, when it has one that is text.
pub fn header(request: &Request, name: &str) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// An agent that answers every request with the text `reply` and keeps each request's JSON.
pub fn requests_agent(reply: &'static str) -> (LoopbackServer, Arc<Mutex<Vec<Value>>>) {
    let requests: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = requests.clone();
    let server = LoopbackServer::start(handler(move |request: Request| {
        let seen = seen.clone();
        async move {
            let body = serde_json::from_slice(body_bytes(request.body())).unwrap_or(Value::Null);
            seen.lock().unwrap().push(body);
            response(200, "application/json", format!(r#"{{"text":"{reply}"}}"#))
        }
    }));
    (server, requests)
}

/// What the Graph API stand-in was sent: each body with the id it gave it.
pub type Sent = Arc<Mutex<Vec<(String, Value)>>>;

/// The Graph API: keeps every body with the id it gave that send (`wamid.out.<n>`), so that
/// a test can reply to a message it was sent (a tap on a list).
pub fn numbering_graph() -> (LoopbackServer, Sent) {
    let bodies: Sent = Arc::default();
    let seen = bodies.clone();
    let server = LoopbackServer::start(handler(move |request: Request| {
        let seen = seen.clone();
        async move {
            let body: Value =
                serde_json::from_slice(body_bytes(request.body())).unwrap_or(Value::Null);
            let mut seen = seen.lock().unwrap();
            let id = format!("wamid.out.{}", seen.len() + 1);
            seen.push((id.clone(), body));
            response(
                200,
                "application/json",
                format!(r#"{{"messages":[{{"id":"{id}"}}]}}"#),
            )
        }
    }));
    (server, bodies)
}

//! The sample events of `events/` and the local test secrets they are signed with.

use lambda_http::{Body, Request};
use serde_json::{Value, json};
use whatsapp_agent_lambda::agent::AgentRequest;
use whatsapp_agent_lambda::dev::events::{
    LOCAL_ACCESS_TOKEN, LOCAL_APP_SECRET, LOCAL_VERIFY_TOKEN,
};
use whatsapp_agent_lambda::domain::OutgoingMessage;
use whatsapp_agent_lambda::graph::RecordingMessenger;
use whatsapp_agent_lambda::secrets::Secrets;
use whatsapp_agent_lambda::webhook::answer::body_bytes;
use whatsapp_agent_lambda::webhook::sign;

/// The local test secrets, with `app_secret` as the app secret.
pub fn secrets_with_app_secret(app_secret: &str) -> Secrets {
    let app_secret = app_secret.to_owned();
    Secrets::from_env(move |name| match name {
        "WHATSAPP_APP_SECRET" => Some(app_secret.clone()),
        "WHATSAPP_ACCESS_TOKEN" => Some(LOCAL_ACCESS_TOKEN.to_owned()),
        "WHATSAPP_VERIFY_TOKEN" => Some(LOCAL_VERIFY_TOKEN.to_owned()),
        _ => None,
    })
}

/// The secrets the sample events are signed with.
pub fn local_secrets() -> Secrets {
    secrets_with_app_secret(LOCAL_APP_SECRET)
}

/// The messages of `events/post-batch.json` from allowed senders (not the unlisted sender's
/// `wamid.BATCH.0006`), in order of their ids.
pub const BATCH_ALLOWED_IDS: [&str; 5] = [
    "wamid.BATCH.0001",
    "wamid.BATCH.0002",
    "wamid.BATCH.0003",
    "wamid.BATCH.0004",
    "wamid.BATCH.0005",
];

/// `events/<name>` as JSON.
pub fn event_json(name: &str) -> Value {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `events/<name>`, an API Gateway event, as the request lambda_http hands the handler.
pub fn event(name: &str) -> Request {
    let path = format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"));
    let raw = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    lambda_http::request::from_str(&raw).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// An API Gateway HTTP API (v2) event for `method /webhook`, as the Runtime API delivers it:
/// the headers API Gateway passes on from Meta, and a body signed with the local app secret
/// (as Meta signs it), base64-encoded when `base64` is set.
pub fn api_gateway_event(method: &str, query: &str, body: Option<&[u8]>, base64: bool) -> Value {
    let host = "abc123.execute-api.us-east-1.amazonaws.com";
    let mut headers = json!({
        "accept": "*/*",
        "content-type": "application/json",
        "host": host,
        "user-agent": "facebookexternalua",
        "x-forwarded-proto": "https",
    });
    if let Some(body) = body {
        headers["x-hub-signature-256"] = sign(LOCAL_APP_SECRET.as_bytes(), body).into();
    }
    let encoded = body.map(|body| {
        use base64::Engine;
        if base64 {
            base64::engine::general_purpose::STANDARD.encode(body)
        } else {
            String::from_utf8(body.to_vec()).expect("a body sent as text is UTF-8")
        }
    });
    let route = format!("{method} /webhook");
    json!({
        "version": "2.0",
        "routeKey": route,
        "rawPath": "/webhook",
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": host,
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": "/webhook",
                "protocol": "HTTP/1.1",
                "sourceIp": "173.252.107.1",
                "userAgent": "facebookexternalua"
            },
            "requestId": "req",
            "routeKey": route,
            "stage": "$default",
            "time": "24/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_514_400_000_u64
        },
        "body": encoded,
        "isBase64Encoded": base64
    })
}

/// A webhook POST of text messages, `(id, from, text)` each, signed with the local app secret.
pub fn signed_texts(messages: &[(String, String, String)]) -> Request {
    let messages: Vec<Value> = messages
        .iter()
        .map(|(id, from, text)| {
            json!({"id": id, "from": from, "timestamp": "1795514400", "type": "text", "text": {"body": text}})
        })
        .collect();
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [
        {"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "106540352242922"},
            "messages": messages
        }}
    ]}]})
    .to_string()
    .into_bytes();
    signed(&body)
}

/// A webhook POST of `body` as API Gateway hands it to the handler, with one
/// `X-Hub-Signature-256` header per item of `signatures` (none: unsigned).
pub fn post(body: &[u8], signatures: &[&[u8]]) -> Request {
    let mut request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://abc123.execute-api.us-east-1.amazonaws.com/webhook")
        .header("content-type", "application/json")
        .body(if body.is_empty() {
            Body::Empty
        } else {
            Body::Binary(body.to_vec())
        })
        .unwrap();
    for value in signatures {
        request.headers_mut().append(
            "x-hub-signature-256",
            lambda_http::http::HeaderValue::from_bytes(value).unwrap(),
        );
    }
    request
}

/// A webhook POST of `body` signed with the local app secret, as Meta signs it.
pub fn signed(body: &[u8]) -> Request {
    post(body, &[sign(LOCAL_APP_SECRET.as_bytes(), body).as_bytes()])
}

/// `GET /webhook?{query}` as API Gateway hands it to the handler (Meta's verification call).
pub fn get(query: &str) -> Request {
    lambda_http::http::Request::builder()
        .method("GET")
        .uri(format!(
            "https://abc123.execute-api.us-east-1.amazonaws.com/webhook?{query}"
        ))
        .body(Body::Empty)
        .unwrap()
}

/// A response body as text, whatever its form (bytes that are not UTF-8 replaced).
pub fn text_of(body: &Body) -> String {
    String::from_utf8_lossy(body_bytes(body)).into_owned()
}

/// The messages `messenger` sent, in order.
pub fn sent_messages(messenger: &RecordingMessenger) -> Vec<OutgoingMessage> {
    messenger
        .sent()
        .into_iter()
        .map(|record| record.message)
        .collect()
}

/// The texts `messenger` sent, in order (other kinds of message left out).
pub fn sent_texts(messenger: &RecordingMessenger) -> Vec<String> {
    messenger
        .sent()
        .into_iter()
        .filter_map(|record| record.message.text_body().map(str::to_owned))
        .collect()
}

/// The ids of the records an SQS batch response (the worker's answer) reports failed.
pub fn failed_ids(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .expect("a batch response")
        .iter()
        .map(|failure| {
            failure["itemIdentifier"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// The agent contract's request for John's text "pods crashing in prod".
pub fn agent_request() -> AgentRequest {
    serde_json::from_value(json!({
        "version": "1",
        "platform": "whatsapp",
        "session_id": "whatsapp:106540352242922:14155551234",
        "event": {
            "id": "wamid.HBgLMTQxNTU1NTEyMzQVAgASGBQzQTdBNUQ0RjFFQkE3QkFBQkFBAA==",
            "type": "text",
            "text": "pods crashing in prod",
            "reply_to": null,
            "timestamp": "2026-11-24T10:00:00Z",
            "user": {"id": "14155551234", "phone": "14155551234", "bsuid": null, "display_name": "John Doe"},
            "channel": {"phone_number_id": "106540352242922", "display_phone_number": "15550001111", "business_account_id": "1029384756"}
        }
    }))
    .expect("a contract request")
}

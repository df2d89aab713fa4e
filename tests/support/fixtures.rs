//! The sample events of `events/` and the local test secrets they are signed with.

use lambda_http::Request;
use serde_json::Value;
use whatsapp_agent_lambda::events::{LOCAL_ACCESS_TOKEN, LOCAL_APP_SECRET, LOCAL_VERIFY_TOKEN};
use whatsapp_agent_lambda::secrets::Secrets;

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

//! The webhook inside Lambda: API Gateway HTTP API (payload v2) events in, v2 responses out.
//!
//! The event is decoded here rather than by `lambda_http::run`, because lambda_http's
//! conversion panics on input an attacker can shape: a body flagged `isBase64Encoded` that is
//! not base64 (`Body::from_maybe_encoded(..).expect(..)`), and a `rawQueryString` or `Host` that
//! `http::Uri` refuses (`.expect("failed to build request")`). lambda_runtime catches the panic,
//! but API Gateway then answers 500 and the panic lands in the logs. Here those are a 400
//! ([`Answer::BadRequest`]).
//! <https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html>

use crate::redact;
use crate::webhook::WebhookApp;
use crate::webhook::answer::Answer;
use base64::Engine;
use lambda_http::aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use lambda_http::request::RequestContext;
use lambda_http::{Body, LambdaEvent, Request, RequestExt, Response, service_fn};
use serde_json::Value;
use std::convert::Infallible;
use std::sync::Arc;

/// Why an invocation is not a request the webhook can answer: each is answered
/// [`Answer::BadRequest`] (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("not an API Gateway HTTP API (v2) event: {0}")]
    NotHttpApi(String),
    #[error("body is flagged base64 but is not valid base64")]
    BadBase64,
    #[error("path or query string cannot form a request URI")]
    BadUri,
}

/// Serves `app` on the Lambda Runtime API until the process ends: the Lambda twin of
/// [`crate::entry::local::serve`]. Call it from the binary instead of `lambda_http::run`.
pub async fn run(app: Arc<WebhookApp>) -> Result<(), lambda_http::Error> {
    lambda_http::lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let app = app.clone();
        async move {
            let LambdaEvent { payload, context } = event;
            Ok::<_, Infallible>(app.handle_event_in(payload, Some(context)).await)
        }
    }))
    .await
}

impl WebhookApp {
    /// Answers one Lambda invocation: the raw API Gateway HTTP API (v2) event as the Runtime
    /// API delivers it. Never panics; an event that is not a usable request gets a 400.
    pub async fn handle_event(&self, event: Value) -> ApiGatewayV2httpResponse {
        self.handle_event_in(event, None).await
    }

    async fn handle_event_in(
        &self,
        event: Value,
        context: Option<lambda_http::Context>,
    ) -> ApiGatewayV2httpResponse {
        let response = match request_from_event(event) {
            Ok(request) => {
                let request = match context {
                    Some(context) => request.with_lambda_context(context),
                    None => request,
                };
                self.handle(request).await
            }
            Err(error) => {
                let answer = Answer::BadRequest;
                let status = answer.status().as_u16();
                tracing::warn!(%error, status, "Lambda event refused before the webhook");
                answer.into_response()
            }
        };
        into_api_gateway_response(response)
    }
}

/// Builds the request the handler sees from an API Gateway HTTP API (v2) event: method, raw
/// path and query string (percent-encoding what a URI may not carry), headers, and the body
/// (base64-decoded when flagged). The URI is relative: the handler routes on path and query.
pub fn request_from_event(event: Value) -> Result<Request, EventError> {
    let event: ApiGatewayV2httpRequest = serde_json::from_value(event)
        .map_err(|error| EventError::NotHttpApi(redact::serde_error(&error)))?;
    let body = match event.body {
        None => Body::Empty,
        Some(body) if event.is_base64_encoded => Body::Binary(
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .map_err(|_| EventError::BadBase64)?,
        ),
        Some(body) => Body::Text(body),
    };
    let raw_path = event
        .raw_path
        .or(event.request_context.http.path.clone())
        .unwrap_or_default();
    let mut uri = String::with_capacity(raw_path.len() + 1);
    if !raw_path.starts_with('/') {
        uri.push('/');
    }
    uri.push_str(&uri_escape(&raw_path, false));
    if let Some(query) = event.raw_query_string.filter(|q| !q.is_empty()) {
        uri.push('?');
        uri.push_str(&uri_escape(&query, true));
    }
    let mut request = lambda_http::http::Request::builder()
        .method(event.request_context.http.method.clone())
        .uri(uri)
        .extension(RequestContext::ApiGatewayV2(event.request_context))
        .body(body)
        .map_err(|_| EventError::BadUri)?;
    *request.headers_mut() = event.headers;
    Ok(request)
}

/// The v2 response API Gateway expects (what `lambda_http` would have built).
pub fn into_api_gateway_response(response: Response<Body>) -> ApiGatewayV2httpResponse {
    let (parts, body) = response.into_parts();
    let mut answer = ApiGatewayV2httpResponse::default();
    answer.status_code = i64::from(parts.status.as_u16());
    (answer.is_base64_encoded, answer.body) = match body {
        Body::Empty => (false, None),
        text @ Body::Text(_) => (false, Some(text)),
        binary @ Body::Binary(_) => (true, Some(binary)),
        _ => (false, None),
    };
    answer.headers = parts.headers;
    answer
}

/// Percent-encodes every byte a URI path (or query) may not carry as is. `%` stays, so
/// existing escapes keep their meaning and the query decodes to the same parameters.
fn uri_escape(raw: &str, query: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || b"-._~!$&'()*+,;=:@/%".contains(&byte)
            || (query && byte == b'?');
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(path: &str, query: &str, body: Option<&str>, base64: bool) -> Value {
        json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": query,
            "headers": {"host": "abc.example.com", "x-hub-signature-256": "sha256=00"},
            "requestContext": {"http": {"method": "POST", "path": path}, "stage": "$default"},
            "body": body,
            "isBase64Encoded": base64
        })
    }

    #[test]
    fn decodes_method_path_query_headers_and_body() {
        let request = request_from_event(event("/webhook", "a=1&b=2", Some("e30="), true)).unwrap();
        assert_eq!(request.method(), "POST");
        assert_eq!(request.uri().path(), "/webhook");
        assert_eq!(request.uri().query(), Some("a=1&b=2"));
        assert_eq!(request.headers()["x-hub-signature-256"], "sha256=00");
        assert_eq!(crate::webhook::answer::body_bytes(request.body()), b"{}");
        let plain = request_from_event(event("/webhook", "", Some("{}"), false)).unwrap();
        assert_eq!(plain.uri().query(), None);
        assert_eq!(crate::webhook::answer::body_bytes(plain.body()), b"{}");
    }

    #[test]
    fn invalid_base64_is_an_error_not_a_panic() {
        for body in ["not base64!", "e30", "====", "e3 0="] {
            assert_eq!(
                request_from_event(event("/webhook", "", Some(body), true)).unwrap_err(),
                EventError::BadBase64,
                "{body}"
            );
        }
    }

    #[test]
    fn hostile_paths_and_queries_are_escaped_not_fatal() {
        let request = request_from_event(event(
            "webhook?x#y",
            "hub.mode=a b\"c#d\u{1}&hub.challenge=é{}",
            None,
            false,
        ))
        .unwrap();
        assert_eq!(request.uri().path(), "/webhook%3Fx%23y");
        let decoded: Vec<(String, String)> =
            form_urlencoded::parse(request.uri().query().unwrap().as_bytes())
                .into_owned()
                .collect();
        assert_eq!(
            decoded,
            [
                ("hub.mode".to_owned(), "a b\"c#d\u{1}".to_owned()),
                ("hub.challenge".to_owned(), "é{}".to_owned())
            ]
        );
    }

    #[test]
    fn other_events_are_errors() {
        assert!(matches!(
            request_from_event(json!({"Records": []})),
            Err(EventError::NotHttpApi(_))
        ));
        assert!(matches!(
            request_from_event(json!("just a string")),
            Err(EventError::NotHttpApi(_))
        ));
    }

    #[test]
    fn responses_keep_status_headers_and_text_body() {
        let answer =
            into_api_gateway_response(crate::webhook::answer::response(403, "text/plain", "no"));
        assert_eq!(answer.status_code, 403);
        assert_eq!(answer.headers["content-type"], "text/plain");
        assert_eq!(answer.body, Some(Body::Text("no".into())));
        assert!(!answer.is_base64_encoded);

        let answer = into_api_gateway_response(Answer::MethodNotAllowed.into_response());
        assert_eq!(answer.status_code, 405);
        assert_eq!(answer.headers["content-type"], "text/plain");
        assert_eq!(answer.headers["allow"], "GET, POST");
        assert_eq!(answer.body, Some(Body::Text("method not allowed".into())));
    }

    #[tokio::test]
    async fn unusable_events_are_answered_bad_request() {
        let app = WebhookApp::new(
            crate::secrets::Secrets::from_env(|_| Some("secret".to_owned())),
            crate::domain::Allowlist::parse("*").unwrap(),
            crate::webhook::Dispatcher::Queue(Arc::new(crate::queue::MemoryQueue::new())),
            1024,
        );
        let answer = app
            .handle_event(event("/webhook", "", Some("not base64!"), true))
            .await;
        assert_eq!(answer.status_code, 400);
        assert_eq!(answer.headers["content-type"], "text/plain");
        assert_eq!(answer.body, Some(Body::Text("bad request".into())));
    }
}

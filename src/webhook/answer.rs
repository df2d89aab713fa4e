//! The webhook's HTTP answers (the README's table "The webhook's HTTP answers"), in one place.
//!
//! Every way the webhook can answer is one [`Answer`]: the handler ([`crate::webhook::WebhookApp`]),
//! the Lambda entry (`entry::lambda_webhook`, events that are no usable request) and the local
//! HTTP server (`entry::local`, what never reaches the handler) each choose an `Answer`, and
//! [`Answer::status`], [`Answer::content_type`], [`Answer::headers`] and [`Answer::body`] say
//! what goes on the wire. The two renderers, [`Answer::into_response`] (the `lambda_http`
//! response the handler returns and the local server turns into its hyper response) and the
//! local server's raw refusal at the connection cap, read nothing else.
//!
//! Also here: [`body_bytes`] and [`response`], the request and response helpers the sample
//! agent, the loopback fakes and the tests share.

use lambda_http::http::header::{ALLOW, CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use lambda_http::http::{HeaderName, HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use std::time::Duration;

/// The content type of every answer the handler and the Lambda entry give.
const TEXT_PLAIN: &str = "text/plain";

/// One answer of the webhook: what happened, not yet how it is written.
///
/// The local server's own answers (`BodyTooLarge` … `Internal`) carry no content type and,
/// when the request body is left unread, close the connection; the handler's and the Lambda
/// entry's are `text/plain`. So a body over the limit is [`Answer::PayloadTooLarge`] in Lambda
/// and [`Answer::BodyTooLarge`] in local mode, with the same status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// GET, Meta's subscription handshake passed: 200 echoing `hub.challenge`.
    Challenge(String),
    /// POST handled (or signed but not WhatsApp, so that Meta does not retry it): 200 `ok`.
    Accepted,
    /// GET with a wrong token or mode, or a `hub.*` parameter missing or repeated: 403.
    Forbidden,
    /// POST with a missing or wrong signature, or no app secret configured: 401.
    Unauthorized,
    /// Another path: 404.
    NotFound,
    /// Another method on the webhook path: 405 with `Allow: GET, POST`.
    MethodNotAllowed,
    /// Messages not handed off (the queue refused the jobs, or the inline pipeline asks for a
    /// retry): 500, so Meta delivers them again.
    RetryLater,
    /// The handler got a body over `MAX_BODY_BYTES`: 413.
    PayloadTooLarge,
    /// A Lambda event that is no usable request: 400.
    BadRequest,
    /// Local server: a body over the limit, refused before or while reading it: 413, closing.
    BodyTooLarge,
    /// Local server: a body hyper could not read (broken chunking, …): 400, closing.
    MalformedBody,
    /// Local server: the body did not arrive in time: 408, closing.
    RequestTimeout,
    /// Local server: the shared body budget cannot cover the body: 503 with `Retry-After`,
    /// closing.
    Busy { retry_after: Duration },
    /// Local server: every connection has a request in the handler: 503 with `Retry-After` and
    /// no body, written before the request is read.
    NoConnectionFree { retry_after: Duration },
    /// Local server: the handler failed (panicked): 500.
    Internal,
    /// `POST /alerts` taken: queued for the worker, or (inline) paged: 202 `accepted`.
    AlertsAccepted,
    /// `POST /alerts` with a body that is no alert notification we read: 400 with the reason.
    AlertsRefused(String),
    /// Another method on `/alerts`: 405 with `Allow: POST`.
    AlertsMethodNotAllowed,
}

impl Answer {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Challenge(_) | Self::Accepted => StatusCode::OK,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RetryLater | Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::PayloadTooLarge | Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadRequest | Self::MalformedBody => StatusCode::BAD_REQUEST,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Busy { .. } | Self::NoConnectionFree { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::AlertsAccepted => StatusCode::ACCEPTED,
            Self::AlertsRefused(_) => StatusCode::BAD_REQUEST,
            Self::AlertsMethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The `Content-Type`, if the answer has one.
    pub fn content_type(&self) -> Option<&'static str> {
        match self {
            Self::Challenge(_)
            | Self::Accepted
            | Self::Forbidden
            | Self::Unauthorized
            | Self::NotFound
            | Self::MethodNotAllowed
            | Self::RetryLater
            | Self::PayloadTooLarge
            | Self::BadRequest
            | Self::AlertsAccepted
            | Self::AlertsRefused(_)
            | Self::AlertsMethodNotAllowed => Some(TEXT_PLAIN),
            Self::BodyTooLarge
            | Self::MalformedBody
            | Self::RequestTimeout
            | Self::Busy { .. }
            | Self::NoConnectionFree { .. }
            | Self::Internal => None,
        }
    }

    /// The other headers, in the order they are written.
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let close = || (CONNECTION, HeaderValue::from_static("close"));
        let retry = |after: &Duration| (RETRY_AFTER, HeaderValue::from(after.as_secs()));
        match self {
            Self::MethodNotAllowed => vec![(ALLOW, HeaderValue::from_static("GET, POST"))],
            Self::AlertsMethodNotAllowed => vec![(ALLOW, HeaderValue::from_static("POST"))],
            Self::BodyTooLarge | Self::MalformedBody | Self::RequestTimeout => vec![close()],
            Self::Busy { retry_after } => vec![close(), retry(retry_after)],
            Self::NoConnectionFree { retry_after } => vec![retry(retry_after), close()],
            Self::Challenge(_)
            | Self::Accepted
            | Self::Forbidden
            | Self::Unauthorized
            | Self::NotFound
            | Self::RetryLater
            | Self::PayloadTooLarge
            | Self::BadRequest
            | Self::Internal
            | Self::AlertsAccepted
            | Self::AlertsRefused(_) => Vec::new(),
        }
    }

    /// The body.
    pub fn body(&self) -> &str {
        match self {
            Self::Challenge(challenge) => challenge,
            Self::Accepted => "ok",
            Self::Forbidden => "forbidden",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not found",
            Self::MethodNotAllowed => "method not allowed",
            Self::RetryLater => "retry later",
            Self::PayloadTooLarge | Self::BodyTooLarge => "payload too large",
            Self::BadRequest | Self::MalformedBody => "bad request",
            Self::RequestTimeout => "request timeout",
            Self::Busy { .. } => "busy, retry later",
            Self::NoConnectionFree { .. } => "",
            Self::Internal => "internal error",
            Self::AlertsAccepted => "accepted",
            Self::AlertsRefused(reason) => reason,
            Self::AlertsMethodNotAllowed => "method not allowed",
        }
    }

    /// Whether this is a routine success (a 200), logged at DEBUG rather than INFO. An alert
    /// taken (202) is worth its INFO line.
    pub fn is_success(&self) -> bool {
        self.status() == StatusCode::OK
    }

    /// The HTTP response: status, content type, headers in order, and the body as text (none
    /// when empty). The handler returns it; the Lambda entry turns it into API Gateway's v2
    /// response and the local server into its hyper response.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let content_type = self.content_type();
        let headers = self.headers();
        let body = match self {
            Self::Challenge(challenge) => Body::Text(challenge),
            other if other.body().is_empty() => Body::Empty,
            other => Body::Text(other.body().to_owned()),
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        if let Some(content_type) = content_type {
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        for (name, value) in headers {
            response.headers_mut().insert(name, value);
        }
        response
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

/// Builds a response with a status, a content type and a body: for the sample agent, the
/// loopback fakes and the tests. The webhook itself answers with an [`Answer`].
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

    const RETRY: Duration = Duration::from_secs(5);

    type Row = (
        Answer,
        u16,
        Option<&'static str>,
        &'static [(&'static str, &'static str)],
        &'static str,
    );

    /// The README's table, one row per answer: status, content type, headers, body.
    #[rustfmt::skip]
    fn table() -> Vec<Row> {
        const TEXT: Option<&str> = Some("text/plain");
        const CLOSE: (&str, &str) = ("connection", "close");
        const RETRY_5: (&str, &str) = ("retry-after", "5");
        vec![
            (Answer::Challenge("1158201444".to_owned()), 200, TEXT, &[], "1158201444"),
            (Answer::Accepted,                           200, TEXT, &[], "ok"),
            (Answer::Forbidden,                          403, TEXT, &[], "forbidden"),
            (Answer::Unauthorized,                       401, TEXT, &[], "unauthorized"),
            (Answer::NotFound,                           404, TEXT, &[], "not found"),
            (Answer::MethodNotAllowed,                   405, TEXT, &[("allow", "GET, POST")], "method not allowed"),
            (Answer::RetryLater,                         500, TEXT, &[], "retry later"),
            (Answer::PayloadTooLarge,                    413, TEXT, &[], "payload too large"),
            (Answer::BadRequest,                         400, TEXT, &[], "bad request"),
            (Answer::BodyTooLarge,                       413, None, &[CLOSE], "payload too large"),
            (Answer::MalformedBody,                      400, None, &[CLOSE], "bad request"),
            (Answer::RequestTimeout,                     408, None, &[CLOSE], "request timeout"),
            (Answer::Busy { retry_after: RETRY },        503, None, &[CLOSE, RETRY_5], "busy, retry later"),
            (Answer::NoConnectionFree { retry_after: RETRY }, 503, None, &[RETRY_5, CLOSE], ""),
            (Answer::Internal,                           500, None, &[], "internal error"),
            (Answer::AlertsAccepted,                     202, TEXT, &[], "accepted"),
            (Answer::AlertsRefused("alerts: the list is empty".to_owned()), 400, TEXT, &[], "alerts: the list is empty"),
            (Answer::AlertsMethodNotAllowed,             405, TEXT, &[("allow", "POST")], "method not allowed"),
        ]
    }

    /// Fails to compile when an answer is added without a row in [`table`].
    fn in_the_table(answer: &Answer) -> bool {
        match answer {
            Answer::Challenge(_)
            | Answer::Accepted
            | Answer::Forbidden
            | Answer::Unauthorized
            | Answer::NotFound
            | Answer::MethodNotAllowed
            | Answer::RetryLater
            | Answer::PayloadTooLarge
            | Answer::BadRequest
            | Answer::BodyTooLarge
            | Answer::MalformedBody
            | Answer::RequestTimeout
            | Answer::Busy { .. }
            | Answer::NoConnectionFree { .. }
            | Answer::Internal
            | Answer::AlertsAccepted
            | Answer::AlertsRefused(_)
            | Answer::AlertsMethodNotAllowed => true,
        }
    }

    #[test]
    fn every_answer_has_its_status_content_type_headers_and_body() {
        let table = table();
        assert_eq!(table.len(), 18, "one row per variant");
        for (answer, status, content_type, headers, body) in table {
            assert!(in_the_table(&answer));
            assert_eq!(answer.status().as_u16(), status, "{answer:?}");
            assert_eq!(answer.content_type(), content_type, "{answer:?}");
            let written: Vec<(String, String)> = answer
                .headers()
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
                .collect();
            let expected: Vec<(String, String)> = headers
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect();
            assert_eq!(written, expected, "{answer:?}");
            assert_eq!(answer.body(), body, "{answer:?}");
            assert_eq!(answer.is_success(), status == 200, "{answer:?}");

            // The response carries exactly that: content type first, then the headers in order.
            let response = answer.clone().into_response();
            assert_eq!(response.status().as_u16(), status, "{answer:?}");
            let mut all: Vec<(String, String)> = content_type
                .map(|value| ("content-type".to_owned(), value.to_owned()))
                .into_iter()
                .collect();
            all.extend(expected);
            let in_response: Vec<(String, String)> = response
                .headers()
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
                .collect();
            assert_eq!(in_response, all, "{answer:?}");
            match response.body() {
                Body::Text(text) => assert_eq!(text, body, "{answer:?}"),
                Body::Empty => assert!(body.is_empty(), "{answer:?}"),
                other => panic!("{answer:?}: unexpected body {other:?}"),
            }
        }
    }

    #[test]
    fn retry_after_is_whole_seconds() {
        let answer = Answer::Busy {
            retry_after: Duration::from_millis(30_900),
        };
        assert_eq!(answer.headers()[1], (RETRY_AFTER, HeaderValue::from(30u64)));
    }

    #[test]
    fn a_challenge_is_echoed_as_is() {
        let challenge = "é {} \u{1}".to_owned();
        let response = Answer::Challenge(challenge.clone()).into_response();
        assert_eq!(response.body(), &Body::Text(challenge));
    }
}

//! The sample events in `events/`: API Gateway HTTP API (v2) envelopes, Meta's (on `/webhook`)
//! signed with a documented local test app secret, the monitoring systems' (`POST /alerts`)
//! carrying a documented local bearer token, used by the tests, the demo, `cargo lambda invoke`
//! and `sam local invoke`. `make events` re-signs Meta's after an edit.

use crate::webhook::sign;
use base64::Engine;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The app secret the sample events are signed with. Never use it outside local runs.
pub const LOCAL_APP_SECRET: &str = "local-test-app-secret";
/// The verify token of `events/get-verify.json`.
pub const LOCAL_VERIFY_TOKEN: &str = "local-test-verify-token";
/// The access token local runs send to the (fake) Graph API.
pub const LOCAL_ACCESS_TOKEN: &str = "local-test-access-token";
/// The bearer token of the sample `POST /alerts` events (`ALERT_TOKEN` in local runs, the
/// secret's `alert_token` in AWS). Never use it outside local runs.
pub const LOCAL_ALERT_TOKEN: &str = "local-alert-token";
/// The route of Meta's webhook: the only envelopes that carry a signature.
const WEBHOOK_ROUTE_SUFFIX: &str = " /webhook";
/// The senders the sample events come from that local runs allow; `447700900123` is not listed.
pub const LOCAL_ALLOWED_SENDERS: &str = "+1 (415) 555-1234, BR.20261124000000000042";
/// Events whose file name contains this are signed with the wrong secret on purpose.
pub const FORGED_MARKER: &str = "bad-signature";
const FORGED_SECRET: &str = "not-the-app-secret";
const SIGNATURE_HEADER: &str = "x-hub-signature-256";

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The exact body bytes of an envelope (base64-decoded when `isBase64Encoded`).
pub fn body_bytes(envelope: &Value) -> Result<Option<Vec<u8>>, String> {
    let Some(body) = envelope.get("body").and_then(Value::as_str) else {
        return Ok(None);
    };
    if envelope.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .map(Some)
            .map_err(|e| format!("body is not valid base64: {e}"))
    } else {
        Ok(Some(body.as_bytes().to_vec()))
    }
}

/// Sets the signature header of a POST envelope. Returns whether anything changed.
pub fn resign(envelope: &mut Value, forged: bool) -> Result<bool, String> {
    let Some(body) = body_bytes(envelope)? else {
        return Ok(false);
    };
    let secret = if forged {
        FORGED_SECRET
    } else {
        LOCAL_APP_SECRET
    };
    let signature = Value::String(sign(secret.as_bytes(), &body));
    let headers = envelope
        .get_mut("headers")
        .and_then(Value::as_object_mut)
        .ok_or("envelope has no headers object")?;
    if headers.get(SIGNATURE_HEADER) == Some(&signature) {
        return Ok(false);
    }
    headers.insert(SIGNATURE_HEADER.to_owned(), signature);
    Ok(true)
}

/// A copy of `envelope` (a signed POST of one message) carrying `message` instead of its
/// first message, signed again: how the demo and tests write a conversation from one sample.
pub fn with_message(envelope: &Value, message: Value) -> Result<Value, String> {
    let body = body_bytes(envelope)?.ok_or("envelope has no body")?;
    let mut payload: Value =
        serde_json::from_slice(&body).map_err(|e| format!("body is not JSON: {e}"))?;
    let messages = payload
        .pointer_mut("/entry/0/changes/0/value/messages")
        .and_then(Value::as_array_mut)
        .ok_or("body has no entry[0].changes[0].value.messages")?;
    *messages = vec![message];
    let mut copy = envelope.clone();
    copy["body"] = Value::String(payload.to_string());
    copy["isBase64Encoded"] = Value::Bool(false);
    resign(&mut copy, false)?;
    Ok(copy)
}

/// Re-signs every `*.json` envelope in `dir`; returns the files that changed.
pub fn resign_dir(dir: &Path) -> Result<Vec<PathBuf>, EventError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EventError::Io { path, source }
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    let mut changed = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let invalid = |reason: String| EventError::Invalid {
            path: path.clone(),
            reason,
        };
        let mut envelope: Value =
            serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        // Only Meta's API Gateway envelopes carry a signature; `/alerts` envelopes carry a
        // bearer token instead, and SQS and other events nothing: they are left alone.
        if !is_webhook_route(&envelope) {
            continue;
        }
        let forged = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().contains(FORGED_MARKER));
        if resign(&mut envelope, forged).map_err(invalid)? {
            let mut pretty =
                serde_json::to_string_pretty(&envelope).map_err(|e| invalid(e.to_string()))?;
            pretty.push('\n');
            std::fs::write(&path, pretty).map_err(io(&path))?;
            changed.push(path);
        }
    }
    Ok(changed)
}

/// Whether `envelope` is an API Gateway request on Meta's `/webhook` route.
fn is_webhook_route(envelope: &Value) -> bool {
    envelope
        .get("routeKey")
        .and_then(Value::as_str)
        .is_some_and(|route| route.ends_with(WEBHOOK_ROUTE_SUFFIX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::verify_signature;
    use serde_json::json;

    #[test]
    fn only_webhook_routes_are_signed() {
        assert!(is_webhook_route(&json!({"routeKey": "POST /webhook"})));
        assert!(is_webhook_route(&json!({"routeKey": "GET /webhook"})));
        assert!(!is_webhook_route(&json!({"routeKey": "POST /alerts"})));
        assert!(!is_webhook_route(&json!({"Records": []})));

        let dir = std::env::temp_dir().join(format!("wal-events-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let alerts = json!({"routeKey": "POST /alerts", "headers": {"authorization": "Bearer x"}, "body": "{}"});
        let webhook = json!({"routeKey": "POST /webhook", "headers": {}, "body": "{}"});
        std::fs::write(dir.join("alerts.json"), alerts.to_string()).unwrap();
        std::fs::write(dir.join("webhook.json"), webhook.to_string()).unwrap();
        let changed = resign_dir(&dir).unwrap();
        let alerts_after: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("alerts.json")).unwrap())
                .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(changed, [dir.join("webhook.json")]);
        assert_eq!(alerts_after, alerts, "an /alerts envelope is left as it is");
    }

    #[test]
    fn resigning_sets_a_verifiable_signature_once() {
        let mut envelope = json!({"routeKey": "POST /webhook", "headers": {}, "body": "{}", "isBase64Encoded": false});
        assert!(resign(&mut envelope, false).unwrap());
        assert!(!resign(&mut envelope, false).unwrap());
        let header = envelope["headers"][SIGNATURE_HEADER].as_str().unwrap();
        assert!(verify_signature(Some(header), LOCAL_APP_SECRET.as_bytes(), b"{}").is_ok());
    }

    #[test]
    fn base64_bodies_are_signed_over_the_decoded_bytes() {
        let mut envelope = json!({"headers": {}, "body": "e30=", "isBase64Encoded": true});
        resign(&mut envelope, false).unwrap();
        let header = envelope["headers"][SIGNATURE_HEADER].as_str().unwrap();
        assert!(verify_signature(Some(header), LOCAL_APP_SECRET.as_bytes(), b"{}").is_ok());
    }

    #[test]
    fn forged_events_do_not_verify() {
        let mut envelope = json!({"headers": {}, "body": "{}"});
        resign(&mut envelope, true).unwrap();
        let header = envelope["headers"][SIGNATURE_HEADER].as_str().unwrap();
        assert!(verify_signature(Some(header), LOCAL_APP_SECRET.as_bytes(), b"{}").is_err());
    }
}

#[cfg(test)]
mod sample_files {
    use crate::agent::DeliverEvent;
    use crate::queue::Job;
    use aws_lambda_events::event::sqs::SqsEvent;

    fn read(name: &str) -> String {
        std::fs::read_to_string(format!("{}/events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    }

    #[test]
    fn sqs_sample_event_carries_a_readable_job() {
        let event: SqsEvent = serde_json::from_str(&read("sqs-job.json")).unwrap();
        let job: Job = serde_json::from_str(event.records[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(
            job.message().expect("a message job").kind.text(),
            "pods crashing in prod"
        );
        assert_eq!(
            event.records[0].attributes["MessageGroupId"],
            job.message().expect("a message job").sender.id()
        );
    }

    #[test]
    fn alert_sample_events_are_bearer_authenticated_posts_of_each_shape() {
        use super::LOCAL_ALERT_TOKEN;
        use serde_json::Value;
        let body_of = |name: &str| -> Value {
            let envelope: Value = serde_json::from_str(&read(name)).unwrap();
            assert_eq!(envelope["routeKey"], "POST /alerts", "{name}");
            assert_eq!(envelope["rawPath"], "/alerts", "{name}");
            assert_eq!(
                envelope["requestContext"]["http"]["method"], "POST",
                "{name}"
            );
            assert_eq!(
                envelope["headers"]["authorization"],
                format!("Bearer {LOCAL_ALERT_TOKEN}"),
                "{name}"
            );
            assert!(
                envelope["headers"].get("x-hub-signature-256").is_none(),
                "{name}: not Meta's, not signed"
            );
            serde_json::from_str(envelope["body"].as_str().unwrap()).unwrap()
        };
        let firing = body_of("post-alerts-alertmanager.json");
        assert_eq!(firing["version"], "4");
        assert_eq!(firing["status"], "firing");
        let alerts = firing["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 2, "a firing group of two alerts");
        assert_ne!(alerts[0]["fingerprint"], alerts[1]["fingerprint"]);

        // The same two alerts (fingerprint and startsAt), resolved.
        let resolved = body_of("post-alerts-resolved.json");
        assert_eq!(resolved["status"], "resolved");
        assert_eq!(resolved["groupKey"], firing["groupKey"]);
        for (before, after) in alerts.iter().zip(resolved["alerts"].as_array().unwrap()) {
            assert_eq!(after["status"], "resolved");
            assert_eq!(after["fingerprint"], before["fingerprint"]);
            assert_eq!(after["startsAt"], before["startsAt"]);
        }

        let generic = body_of("post-alerts-generic.json");
        for field in [
            "title",
            "severity",
            "summary",
            "url",
            "dedup_key",
            "status",
            "labels",
        ] {
            assert!(generic.get(field).is_some(), "the generic JSON has {field}");
        }
    }

    #[test]
    fn template_status_sample_event_pauses_the_alert_template() {
        let envelope: serde_json::Value =
            serde_json::from_str(&read("post-template-status.json")).unwrap();
        let body = super::body_bytes(&envelope).unwrap().unwrap();
        let header = envelope["headers"]["x-hub-signature-256"].as_str();
        assert!(
            crate::webhook::verify_signature(header, super::LOCAL_APP_SECRET.as_bytes(), &body)
                .is_ok()
        );
        let parsed = crate::webhook::parse(&body).unwrap();
        let update = &parsed.template_updates[0];
        assert_eq!(update.event, "PAUSED");
        assert_eq!(update.template().unwrap().to_string(), "oncall_alert:en");
    }

    #[test]
    fn approval_sample_events_ask_for_a_restart_and_approve_it_by_template_quick_reply() {
        use crate::agent::AgentRequest;
        use crate::approvals::engine::tapped_id;
        use crate::domain::MessageKind;
        let parsed = |name: &str| {
            let envelope: serde_json::Value = serde_json::from_str(&read(name)).unwrap();
            let body = super::body_bytes(&envelope).unwrap().unwrap();
            let header = envelope["headers"]["x-hub-signature-256"].as_str();
            assert!(
                crate::webhook::verify_signature(header, super::LOCAL_APP_SECRET.as_bytes(), &body)
                    .is_ok(),
                "{name} is signed"
            );
            let mut parsed = crate::webhook::parse(&body).unwrap();
            assert_eq!(parsed.messages.len(), 1, "{name}");
            parsed.messages.remove(0)
        };
        let ask = parsed("post-approval-request.json");
        assert_eq!(ask.sender.phone.as_deref(), Some("14155551234"));
        assert_eq!(ask.kind.text(), "restart api in prod");
        let reply = crate::dev::sample_agent::answer(&AgentRequest::from_message(&ask)).unwrap();
        assert_eq!(
            reply.approval.unwrap().command,
            "kubectl rollout restart deployment/api -n prod"
        );

        let tap = parsed("post-approval-approve.json");
        assert_eq!(tap.sender.phone.as_deref(), Some("447700900123"));
        assert!(tap.reply_to.is_some(), "it quotes the request");
        assert!(matches!(tap.kind, MessageKind::TemplateButton { .. }));
        let id = tapped_id(&tap.kind).expect("an approval tap");
        assert!(id.ends_with(":approve"), "{id}");
    }

    #[test]
    fn deliver_sample_event_carries_request_and_reply() {
        let event: DeliverEvent = serde_json::from_str(&read("sfn-deliver.json")).unwrap();
        assert_eq!(event.deliver.sender().phone.as_deref(), Some("14155551234"));
        assert_eq!(event.deliver.reply.unwrap().actions.len(), 2);
    }
}

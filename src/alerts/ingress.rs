//! Alert ingress: the bodies `POST /alerts` accepts, read into one [`AlertBatch`].
//!
//! Three shapes, told apart by their fields:
//! - **Prometheus Alertmanager** (`webhook_configs`): an object with `alerts` and
//!   `"version": "4"` (`receiver`, `status`, `groupLabels`, `commonLabels`,
//!   `commonAnnotations`, `externalURL`, `groupKey`, `truncatedAlerts`; each alert with
//!   `status`, `labels`, `annotations`, `startsAt`, `endsAt`, `generatorURL`, `fingerprint`).
//!   Another `version` is refused.
//! - **Grafana Alerting** (webhook contact point): Alertmanager's shape with Grafana's own
//!   fields (`orgId`, `title`, `state`, `message`; per alert `silenceURL`, `dashboardURL`,
//!   `panelURL`, `values`, `valueString`, `imageURL`). Grafana sends `"version": "1"`, so it is
//!   recognised by `orgId`, or by `state` and `title` next to `alerts`, whatever its version.
//! - **Generic JSON**, for everything else: an object with `title` and no `alerts`:
//!   `{"title", "severity", "summary", "url", "dedup_key", "status": "firing" | "resolved",
//!   "labels": {…}}`. Only `title` is required; `status` defaults to `firing`, `severity` to
//!   `unknown`; the start time is when the body arrived.
//!
//! Each alert becomes an [`Alert`]:
//! - `key`, the incident: 32 hex digits of SHA-256 over `fingerprint`, a new line, and
//!   `startsAt` as unix seconds (two spellings of one instant are one key; a `startsAt` that
//!   does not parse is taken as written). Without a `fingerprint`, the labels (as sorted JSON)
//!   stand in for it. Generic: over `generic`, a new line and `dedup_key`, or the `title`
//!   without one (so the same title is the same incident until it is resolved).
//! - `title`: `labels.alertname`, else `annotations.summary`, else `alert`. `severity`:
//!   `labels.severity`, else `labels.priority`, else `unknown`. `summary`:
//!   `annotations.summary` (`annotations.description` when the summary is the title, or
//!   there is none), else empty. `url`: Alertmanager's `generatorURL`; Grafana's `panelURL`,
//!   else `dashboardURL`, else `generatorURL`; only http(s) links are kept.
//! - `started_at`: `startsAt` in unix seconds (RFC 3339, any offset); when it is missing or
//!   does not parse, the time the body arrived (the body is not refused for it).
//!
//! Sizes are bounded: at most [`MAX_ALERTS`] alerts are kept from one body (the rest are
//! dropped and logged), titles have at most [`TITLE_MAX_CHARS`] characters, summaries
//! [`SUMMARY_MAX_CHARS`], severities [`SEVERITY_MAX_CHARS`]; at most [`MAX_LABELS`] labels
//! are kept (names [`LABEL_NAME_MAX_CHARS`], values [`LABEL_VALUE_MAX_CHARS`] characters).
//!
//! A body that is none of these is refused with an [`IngressError`] whose `Display` is the
//! 400's reason: one line that names fields and what was expected, never a value from the
//! body.

use super::{Alert, AlertBatch, AlertSource, AlertStatus};
use crate::reply::sanitize::fetchable_link;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The largest body `POST /alerts` reads (413 above).
pub const MAX_ALERT_BODY_BYTES: usize = 1024 * 1024;
/// Alerts kept from one body.
pub const MAX_ALERTS: usize = 1000;
/// An alert's title, in characters.
pub const TITLE_MAX_CHARS: usize = 256;
/// An alert's summary, in characters.
pub const SUMMARY_MAX_CHARS: usize = 1024;
/// An alert's severity, in characters.
pub const SEVERITY_MAX_CHARS: usize = 64;
/// Labels kept per alert (the first, in name order).
pub const MAX_LABELS: usize = 64;
/// A label's name, in characters.
pub const LABEL_NAME_MAX_CHARS: usize = 128;
/// A label's value, in characters.
pub const LABEL_VALUE_MAX_CHARS: usize = 512;
/// Longer links are dropped (a cut link points elsewhere).
pub const URL_MAX_BYTES: usize = 2048;
/// Longer group keys are replaced by `sha256:` and their hash (64 hex digits).
pub const GROUP_KEY_MAX_CHARS: usize = 512;

/// Hex digits of an alert's key.
const KEY_HEX_DIGITS: usize = 32;

/// Why a body is not an alert notification: `Display` is the 400's reason (one line, naming
/// fields and expectations, never quoting the body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngressError {
    /// Over [`MAX_ALERT_BODY_BYTES`]: answered 413, not 400.
    #[error("the body has {bytes} bytes, over the {MAX_ALERT_BODY_BYTES} accepted")]
    TooLarge { bytes: usize },
    /// Not JSON at all (serde's position only: its message can quote the body).
    #[error("the body is not JSON (line {line} column {column})")]
    NotJson { line: usize, column: usize },
    /// JSON, but none of the three shapes.
    #[error("expected an Alertmanager (version 4) or Grafana webhook body, or {{\"title\": ...}}")]
    UnknownShape,
    /// Alertmanager-shaped, without Grafana's fields, and not version 4.
    #[error("version: must be \"4\" (Alertmanager's webhook version)")]
    UnsupportedVersion,
    /// `alerts` is an empty list.
    #[error("alerts: the list is empty")]
    NoAlerts,
    /// A field of the wrong type or value: `field` is its place (`alerts[2].labels`),
    /// `expected` what it must be.
    #[error("{field}: {expected}")]
    Field {
        field: String,
        expected: &'static str,
    },
}

impl IngressError {
    fn field(field: impl Into<String>, expected: &'static str) -> Self {
        Self::Field {
            field: field.into(),
            expected,
        }
    }
}

/// Reads one notification received at `received_at` (unix seconds).
pub fn parse_alerts(body: &[u8], received_at: i64) -> Result<AlertBatch, IngressError> {
    if body.len() > MAX_ALERT_BODY_BYTES {
        return Err(IngressError::TooLarge { bytes: body.len() });
    }
    let value: Value = serde_json::from_slice(body).map_err(|error| IngressError::NotJson {
        line: error.line(),
        column: error.column(),
    })?;
    let Value::Object(root) = value else {
        return Err(IngressError::UnknownShape);
    };
    if root.contains_key("alerts") {
        let source = if is_grafana(&root) {
            AlertSource::Grafana
        } else {
            match root.get("version") {
                Some(Value::String(version)) if version == "4" => AlertSource::Alertmanager,
                _ => return Err(IngressError::UnsupportedVersion),
            }
        };
        webhook(&root, source, received_at)
    } else if root.contains_key("title") {
        generic(&root, received_at)
    } else {
        Err(IngressError::UnknownShape)
    }
}

/// Grafana's own fields next to `alerts`: `orgId`, or `state` with `title`.
fn is_grafana(root: &Map<String, Value>) -> bool {
    root.contains_key("orgId") || (root.contains_key("state") && root.contains_key("title"))
}

/// Alertmanager's and Grafana's body.
fn webhook(
    root: &Map<String, Value>,
    source: AlertSource,
    received_at: i64,
) -> Result<AlertBatch, IngressError> {
    let alerts = match root.get("alerts") {
        Some(Value::Array(alerts)) => alerts,
        _ => return Err(IngressError::field("alerts", "must be a list of alerts")),
    };
    if alerts.is_empty() {
        return Err(IngressError::NoAlerts);
    }
    // Each alert has its own status; the group's stands in for one that is missing.
    let group_status = match root.get("status") {
        None | Some(Value::Null) => None,
        Some(status) => Some(status_of(Some(status), "status")?),
    };
    let group_key = optional_string(root, "groupKey", "groupKey")?.map(bounded_group_key);
    let common_labels = capped_labels(string_map(root.get("commonLabels"), "commonLabels")?);
    if let Some(truncated) = root
        .get("truncatedAlerts")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
    {
        tracing::info!(
            source = source.as_str(),
            truncated,
            "the notification says alerts were left out of it (max_alerts)"
        );
    }
    if alerts.len() > MAX_ALERTS {
        tracing::warn!(
            source = source.as_str(),
            received = alerts.len(),
            kept = MAX_ALERTS,
            dropped = alerts.len() - MAX_ALERTS,
            "more alerts in one body than are kept: the rest are dropped"
        );
    }
    let alerts = alerts
        .iter()
        .take(MAX_ALERTS)
        .enumerate()
        .map(|(index, alert)| {
            webhook_alert(
                alert,
                &format!("alerts[{index}]"),
                source,
                group_status,
                received_at,
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AlertBatch {
        source,
        group_key,
        common_labels,
        alerts,
    })
}

/// One alert of Alertmanager's or Grafana's `alerts`; `at` is its place (`alerts[3]`).
fn webhook_alert(
    value: &Value,
    at: &str,
    source: AlertSource,
    group_status: Option<AlertStatus>,
    received_at: i64,
) -> Result<Alert, IngressError> {
    let Value::Object(alert) = value else {
        return Err(IngressError::field(at, "must be an object"));
    };
    let status = match (alert.get("status"), group_status) {
        (None | Some(Value::Null), Some(group)) => group,
        (status, _) => status_of(status, &format!("{at}.status"))?,
    };
    let labels = string_map(alert.get("labels"), &format!("{at}.labels"))?;
    let annotations = string_map(alert.get("annotations"), &format!("{at}.annotations"))?;
    let fingerprint = optional_string(alert, "fingerprint", &format!("{at}.fingerprint"))?
        .map(str::trim)
        .filter(|fingerprint| !fingerprint.is_empty());
    let links = match source {
        AlertSource::Grafana => &["panelURL", "dashboardURL", "generatorURL"][..],
        _ => &["generatorURL"][..],
    };
    let mut url = None;
    for field in links {
        if let Some(link) = optional_string(alert, field, &format!("{at}.{field}"))? {
            url = url.or_else(|| http_link(link));
        }
    }
    // Lenient: a start time that is missing or does not parse is the time of arrival.
    let starts_raw = alert.get("startsAt").and_then(Value::as_str).map(str::trim);
    let starts = starts_raw.and_then(unix_seconds);
    let identity = match fingerprint {
        Some(fingerprint) => fingerprint.to_owned(),
        // A map of strings always serialises.
        None => serde_json::to_string(&labels).unwrap_or_default(),
    };
    let starts_part = match starts {
        Some(seconds) => seconds.to_string(),
        None => starts_raw.unwrap_or_default().to_owned(),
    };
    let key = key_of(&format!("{identity}\n{starts_part}"));

    let label = |name: &str| {
        labels
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    };
    let annotation = |name: &str| {
        annotations
            .get(name)
            .map(|value| value.trim())
            .filter(|value| !value.is_empty())
    };
    let (title, summary) = match (label("alertname"), annotation("summary")) {
        (Some(name), summary) => (name, summary.or_else(|| annotation("description"))),
        (None, Some(summary)) => (summary, annotation("description")),
        (None, None) => ("alert", annotation("description")),
    };
    let severity = label("severity")
        .or_else(|| label("priority"))
        .unwrap_or("unknown");
    Ok(Alert {
        key,
        status,
        title: cap(title, TITLE_MAX_CHARS),
        severity: cap(severity, SEVERITY_MAX_CHARS),
        summary: cap(summary.unwrap_or_default(), SUMMARY_MAX_CHARS),
        url,
        labels: capped_labels(labels),
        source,
        started_at: starts.unwrap_or(received_at),
    })
}

/// The generic JSON: one alert.
fn generic(root: &Map<String, Value>, received_at: i64) -> Result<AlertBatch, IngressError> {
    let title = optional_string(root, "title", "title")?
        .map(str::trim)
        .filter(|title| !title.is_empty())
        .ok_or_else(|| IngressError::field("title", "must be a non-empty string"))?;
    let severity = optional_string(root, "severity", "severity")?
        .map(str::trim)
        .filter(|severity| !severity.is_empty())
        .unwrap_or("unknown");
    let summary = optional_string(root, "summary", "summary")?.unwrap_or_default();
    let url = optional_string(root, "url", "url")?.and_then(http_link);
    let dedup_key = optional_string(root, "dedup_key", "dedup_key")?
        .map(str::trim)
        .filter(|key| !key.is_empty());
    let status = match root.get("status") {
        None | Some(Value::Null) => AlertStatus::Firing,
        status => status_of(status, "status")?,
    };
    let labels = capped_labels(string_map(root.get("labels"), "labels")?);
    let alert = Alert {
        key: key_of(&format!("generic\n{}", dedup_key.unwrap_or(title))),
        status,
        title: cap(title, TITLE_MAX_CHARS),
        severity: cap(severity, SEVERITY_MAX_CHARS),
        summary: cap(summary, SUMMARY_MAX_CHARS),
        url,
        labels: labels.clone(),
        source: AlertSource::Generic,
        started_at: received_at,
    };
    Ok(AlertBatch {
        source: AlertSource::Generic,
        group_key: None,
        common_labels: labels,
        alerts: vec![alert],
    })
}

/// `firing` or `resolved`.
fn status_of(value: Option<&Value>, at: &str) -> Result<AlertStatus, IngressError> {
    match value.and_then(Value::as_str) {
        Some("firing") => Ok(AlertStatus::Firing),
        Some("resolved") => Ok(AlertStatus::Resolved),
        _ => Err(IngressError::field(
            at,
            "must be \"firing\" or \"resolved\"",
        )),
    }
}

/// A string field, `None` when absent or null; `at` names it in the error.
fn optional_string<'a>(
    object: &'a Map<String, Value>,
    field: &str,
    at: &str,
) -> Result<Option<&'a str>, IngressError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(IngressError::field(at, "must be a string")),
    }
}

/// An object of strings (labels, annotations), empty when absent or null.
fn string_map(value: Option<&Value>, at: &str) -> Result<BTreeMap<String, String>, IngressError> {
    let wrong = || IngressError::field(at, "must be an object of strings");
    match value {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, value)| match value {
                Value::String(value) => Ok((name.clone(), value.clone())),
                _ => Err(wrong()),
            })
            .collect(),
        Some(_) => Err(wrong()),
    }
}

/// The first [`MAX_LABELS`] labels, names and values capped.
fn capped_labels(labels: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut capped = BTreeMap::new();
    for (name, value) in labels.into_iter().take(MAX_LABELS) {
        capped
            .entry(cap(&name, LABEL_NAME_MAX_CHARS))
            .or_insert_with(|| cap(&value, LABEL_VALUE_MAX_CHARS));
    }
    capped
}

/// `text` trimmed, at most `max_chars` characters (cut ones end with `…`).
fn cap(text: &str, max_chars: usize) -> String {
    let text = text.trim();
    match text.char_indices().nth(max_chars) {
        None => text.to_owned(),
        Some(_) => {
            let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
            cut.truncate(cut.trim_end().len());
            cut.push('…');
            cut
        }
    }
}

/// An http(s) link as WhatsApp can show it; `None` for anything else or a link over
/// [`URL_MAX_BYTES`].
fn http_link(link: &str) -> Option<String> {
    let link = link.trim();
    if link.is_empty() || link.len() > URL_MAX_BYTES {
        return None;
    }
    fetchable_link(link)
        .ok()
        .filter(|link| link.len() <= URL_MAX_BYTES)
}

/// A group key as kept: as sent up to [`GROUP_KEY_MAX_CHARS`], else its SHA-256.
fn bounded_group_key(group_key: &str) -> String {
    if group_key.chars().count() <= GROUP_KEY_MAX_CHARS {
        group_key.to_owned()
    } else {
        format!(
            "sha256:{}",
            hex::encode(Sha256::digest(group_key.as_bytes()))
        )
    }
}

/// RFC 3339 (`2026-12-05T03:12:45.123Z`, `2021-10-12T09:51:03.157076+02:00`) as unix seconds.
fn unix_seconds(text: &str) -> Option<i64> {
    DateTime::from_str(text, Format::DateTimeWithOffset)
        .ok()
        .map(|instant| instant.secs())
}

/// An incident key: the first 32 hex digits of SHA-256 over `identity`.
fn key_of(identity: &str) -> String {
    let mut key = hex::encode(Sha256::digest(identity.as_bytes()));
    key.truncate(KEY_HEX_DIGITS);
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_796_440_365;

    /// Alertmanager 0.27's webhook body: one firing alert.
    const AM_FIRING: &str = r#"{
      "receiver": "whatsapp",
      "status": "firing",
      "alerts": [
        {
          "status": "firing",
          "labels": {
            "alertname": "ProbeFailure",
            "instance": "https://server.example.org",
            "job": "http_checks",
            "severity": "critical",
            "team": "payments"
          },
          "annotations": {
            "description": "Instance https://server.example.org has been down for over 5m.",
            "summary": "BlackBox Probe Failure: https://server.example.org"
          },
          "startsAt": "2023-02-06T13:08:45.828Z",
          "endsAt": "0001-01-01T00:00:00Z",
          "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=probe_success+%3D%3D+0&g0.tab=1",
          "fingerprint": "1a30ba71cca2921f"
        }
      ],
      "groupLabels": {"alertname": "ProbeFailure"},
      "commonLabels": {
        "alertname": "ProbeFailure",
        "instance": "https://server.example.org",
        "job": "http_checks",
        "severity": "critical",
        "team": "payments"
      },
      "commonAnnotations": {"summary": "BlackBox Probe Failure: https://server.example.org"},
      "externalURL": "http://alertmanager.example.org:9093",
      "version": "4",
      "groupKey": "{}/{severity=\"critical\"}:{alertname=\"ProbeFailure\"}",
      "truncatedAlerts": 0
    }"#;

    /// The same alert resolved (`endsAt` set, same `fingerprint` and `startsAt`).
    const AM_RESOLVED: &str = r#"{
      "receiver": "whatsapp",
      "status": "resolved",
      "alerts": [
        {
          "status": "resolved",
          "labels": {"alertname": "ProbeFailure", "severity": "critical", "team": "payments"},
          "annotations": {"summary": "BlackBox Probe Failure: https://server.example.org"},
          "startsAt": "2023-02-06T13:08:45.828Z",
          "endsAt": "2023-02-06T13:31:45.828Z",
          "generatorURL": "http://prometheus.example.org:9090/graph?g0.expr=probe_success+%3D%3D+0&g0.tab=1",
          "fingerprint": "1a30ba71cca2921f"
        }
      ],
      "groupLabels": {"alertname": "ProbeFailure"},
      "commonLabels": {"alertname": "ProbeFailure", "severity": "critical", "team": "payments"},
      "commonAnnotations": {},
      "externalURL": "http://alertmanager.example.org:9093",
      "version": "4",
      "groupKey": "{}/{severity=\"critical\"}:{alertname=\"ProbeFailure\"}",
      "truncatedAlerts": 0
    }"#;

    /// A group of three: two firing, one resolved, labels differing by instance.
    const AM_GROUP: &str = r#"{
      "receiver": "whatsapp",
      "status": "firing",
      "alerts": [
        {"status": "firing",
         "labels": {"alertname": "HighLatency", "instance": "api-1:9100", "severity": "warning"},
         "annotations": {"summary": "p99 over 2s on api-1", "description": "p99 latency is 2.4s"},
         "startsAt": "2026-12-05T03:10:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "https://prometheus.example.org/graph?g0.expr=latency", "fingerprint": "aaaa000000000001"},
        {"status": "firing",
         "labels": {"alertname": "HighLatency", "instance": "api-2:9100", "severity": "warning"},
         "annotations": {"summary": "p99 over 2s on api-2"},
         "startsAt": "2026-12-05T03:11:00Z", "endsAt": "0001-01-01T00:00:00Z",
         "generatorURL": "https://prometheus.example.org/graph?g0.expr=latency", "fingerprint": "aaaa000000000002"},
        {"status": "resolved",
         "labels": {"alertname": "HighLatency", "instance": "api-3:9100", "severity": "warning"},
         "annotations": {"summary": "p99 over 2s on api-3"},
         "startsAt": "2026-12-05T02:50:00Z", "endsAt": "2026-12-05T03:09:00Z",
         "generatorURL": "https://prometheus.example.org/graph?g0.expr=latency", "fingerprint": "aaaa000000000003"}
      ],
      "groupLabels": {"alertname": "HighLatency"},
      "commonLabels": {"alertname": "HighLatency", "severity": "warning"},
      "commonAnnotations": {},
      "externalURL": "http://alertmanager.example.org:9093",
      "version": "4",
      "groupKey": "{}:{alertname=\"HighLatency\"}",
      "truncatedAlerts": 0
    }"#;

    /// Grafana Alerting's webhook contact point (Grafana 11's documented body, trimmed to two
    /// alerts).
    const GRAFANA_FIRING: &str = r#"{
      "receiver": "My Super Webhook",
      "status": "firing",
      "orgId": 1,
      "alerts": [
        {
          "status": "firing",
          "labels": {"alertname": "High memory usage", "team": "blue", "zone": "us-1"},
          "annotations": {
            "description": "The system has high memory usage",
            "runbook_url": "https://myrunbook.com/runbook/1234",
            "summary": "This alert was triggered for zone us-1"
          },
          "startsAt": "2021-10-12T09:51:03.157076+02:00",
          "endsAt": "0001-01-01T00:00:00Z",
          "generatorURL": "https://play.grafana.org/alerting/1afz29v7z/edit",
          "fingerprint": "c6eadffa33fcdf37",
          "silenceURL": "https://play.grafana.org/alerting/silence/new?alertmanager=grafana&matchers=alertname%3DT2%2Cteam%3Dblue%2Czone%3Dus-1",
          "dashboardURL": "",
          "panelURL": "",
          "values": {"B": 44.23943737541908, "C": 1},
          "valueString": "[ var='B' labels={} value=44.23943737541908 ]",
          "imageURL": ""
        },
        {
          "status": "firing",
          "labels": {"alertname": "High CPU usage", "team": "blue", "zone": "eu-1", "severity": "critical"},
          "annotations": {"description": "The system has high CPU usage"},
          "startsAt": "2021-10-12T09:56:03.157076+02:00",
          "endsAt": "0001-01-01T00:00:00Z",
          "generatorURL": "https://play.grafana.org/alerting/d1rdpdv7k/edit",
          "fingerprint": "bc97ff14869b13e3",
          "silenceURL": "https://play.grafana.org/alerting/silence/new",
          "dashboardURL": "https://play.grafana.org/d/cpu",
          "panelURL": "https://play.grafana.org/d/cpu?viewPanel=2",
          "values": {"B": 95.1},
          "valueString": "[ var='B' labels={} value=95.1 ]"
        }
      ],
      "groupLabels": {},
      "commonLabels": {"team": "blue"},
      "commonAnnotations": {},
      "externalURL": "https://play.grafana.org/",
      "version": "1",
      "groupKey": "{}:{}",
      "truncatedAlerts": 0,
      "title": "[FIRING:2]  (blue)",
      "state": "alerting",
      "message": "**Firing**\n\nValue: B=44.23943737541908, C=1\nLabels:\n - alertname = T2\n"
    }"#;

    fn parse(body: &str) -> Result<AlertBatch, IngressError> {
        parse_alerts(body.as_bytes(), NOW)
    }

    fn reason(body: &str) -> String {
        parse(body).unwrap_err().to_string()
    }

    #[test]
    fn an_alertmanager_firing_alert_is_read_field_by_field() {
        let batch = parse(AM_FIRING).unwrap();
        assert_eq!(batch.source, AlertSource::Alertmanager);
        assert_eq!(
            batch.group_key.as_deref(),
            Some("{}/{severity=\"critical\"}:{alertname=\"ProbeFailure\"}")
        );
        assert_eq!(
            batch.common_labels.get("team").map(String::as_str),
            Some("payments")
        );
        assert_eq!(batch.alerts.len(), 1);
        let alert = &batch.alerts[0];
        assert_eq!(alert.status, AlertStatus::Firing);
        assert_eq!(alert.title, "ProbeFailure");
        assert_eq!(alert.severity, "critical");
        assert_eq!(
            alert.summary,
            "BlackBox Probe Failure: https://server.example.org"
        );
        assert_eq!(
            alert.url.as_deref(),
            Some(
                "http://prometheus.example.org:9090/graph?g0.expr=probe_success+%3D%3D+0&g0.tab=1"
            )
        );
        assert_eq!(alert.labels.len(), 5);
        assert_eq!(alert.labels["instance"], "https://server.example.org");
        assert_eq!(alert.source, AlertSource::Alertmanager);
        // 2023-02-06T13:08:45Z
        assert_eq!(alert.started_at, 1_675_688_925);
        assert_eq!(alert.key.len(), 32);
        assert!(alert.key.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(alert.key, key_of("1a30ba71cca2921f\n1675688925"));
    }

    #[test]
    fn a_resolved_notification_has_the_firing_alerts_key() {
        let firing = parse(AM_FIRING).unwrap();
        let resolved = parse(AM_RESOLVED).unwrap();
        assert_eq!(resolved.alerts[0].status, AlertStatus::Resolved);
        assert_eq!(resolved.alerts[0].key, firing.alerts[0].key);
        assert_eq!(resolved.alerts[0].started_at, firing.alerts[0].started_at);
    }

    #[test]
    fn a_group_of_three_is_three_alerts_each_with_its_own_status_and_key() {
        let batch = parse(AM_GROUP).unwrap();
        assert_eq!(batch.alerts.len(), 3);
        let statuses: Vec<AlertStatus> = batch.alerts.iter().map(|a| a.status).collect();
        assert_eq!(
            statuses,
            [
                AlertStatus::Firing,
                AlertStatus::Firing,
                AlertStatus::Resolved
            ]
        );
        let summaries: Vec<&str> = batch.alerts.iter().map(|a| a.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "p99 over 2s on api-1",
                "p99 over 2s on api-2",
                "p99 over 2s on api-3"
            ]
        );
        let mut keys: Vec<&str> = batch.alerts.iter().map(|a| a.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), 3);
        assert_eq!(batch.alerts[0].started_at, 1_796_440_200);
        assert!(batch.alerts.iter().all(|a| a.severity == "warning"));
        assert_eq!(batch.common_labels.len(), 2);
    }

    #[test]
    fn grafana_is_recognised_by_its_fields_and_prefers_the_panel_link() {
        let batch = parse(GRAFANA_FIRING).unwrap();
        assert_eq!(batch.source, AlertSource::Grafana);
        assert_eq!(batch.group_key.as_deref(), Some("{}:{}"));
        assert_eq!(batch.alerts.len(), 2);
        let memory = &batch.alerts[0];
        assert_eq!(memory.source, AlertSource::Grafana);
        assert_eq!(memory.title, "High memory usage");
        assert_eq!(memory.severity, "unknown");
        assert_eq!(memory.summary, "This alert was triggered for zone us-1");
        // Empty panel and dashboard links: the rule's link.
        assert_eq!(
            memory.url.as_deref(),
            Some("https://play.grafana.org/alerting/1afz29v7z/edit")
        );
        // 2021-10-12T09:51:03+02:00 = 07:51:03Z
        assert_eq!(memory.started_at, 1_634_025_063);
        let cpu = &batch.alerts[1];
        assert_eq!(cpu.severity, "critical");
        assert_eq!(
            cpu.summary, "The system has high CPU usage",
            "description without summary"
        );
        assert_eq!(
            cpu.url.as_deref(),
            Some("https://play.grafana.org/d/cpu?viewPanel=2")
        );

        // Without orgId, state and title together mark it; and the dashboard comes second.
        let body = GRAFANA_FIRING
            .replace("\"orgId\": 1,", "")
            .replace("https://play.grafana.org/d/cpu?viewPanel=2", "");
        let batch = parse(&body).unwrap();
        assert_eq!(batch.source, AlertSource::Grafana);
        assert_eq!(
            batch.alerts[1].url.as_deref(),
            Some("https://play.grafana.org/d/cpu")
        );
    }

    #[test]
    fn the_key_is_stable_for_one_instant_and_differs_for_another() {
        let body = |fingerprint: &str, starts: &str| {
            format!(
                r#"{{"version": "4", "status": "firing", "alerts": [{{"status": "firing",
                    "labels": {{"alertname": "A"}}, "fingerprint": "{fingerprint}",
                    "startsAt": "{starts}"}}]}}"#
            )
        };
        let key = |fingerprint: &str, starts: &str| {
            parse(&body(fingerprint, starts)).unwrap().alerts[0]
                .key
                .clone()
        };
        let first = key("f1", "2026-12-05T03:12:45Z");
        assert_eq!(first, key("f1", "2026-12-05T03:12:45Z"));
        assert_eq!(
            first,
            key("f1", "2026-12-05T03:12:45.123456789Z"),
            "sub-second"
        );
        assert_eq!(
            first,
            key("f1", "2026-12-05T04:12:45+01:00"),
            "another offset"
        );
        assert_ne!(
            first,
            key("f1", "2026-12-05T03:13:45Z"),
            "fired again later"
        );
        assert_ne!(first, key("f2", "2026-12-05T03:12:45Z"), "another alert");
    }

    #[test]
    fn without_a_fingerprint_the_labels_identify_the_alert() {
        let body = |labels: &str| {
            format!(
                r#"{{"version": "4", "alerts": [{{"status": "firing", "labels": {labels},
                    "startsAt": "2026-12-05T03:12:45Z"}}]}}"#
            )
        };
        let key = |labels: &str| parse(&body(labels)).unwrap().alerts[0].key.clone();
        assert_eq!(
            key(r#"{"alertname": "A", "instance": "x"}"#),
            key(r#"{"instance": "x", "alertname": "A"}"#),
            "in any order"
        );
        assert_ne!(
            key(r#"{"alertname": "A", "instance": "x"}"#),
            key(r#"{"alertname": "A", "instance": "y"}"#)
        );
    }

    #[test]
    fn a_missing_or_unparsable_start_is_the_time_of_arrival() {
        for starts in [
            "",
            r#", "startsAt": "yesterday""#,
            r#", "startsAt": 12"#,
            r#", "startsAt": "2026-13-45T99:00:00Z""#,
        ] {
            let body = format!(
                r#"{{"version": "4", "alerts": [{{"status": "firing", "fingerprint": "f"{starts}}}]}}"#
            );
            let alert = &parse(&body).unwrap().alerts[0];
            assert_eq!(alert.started_at, NOW, "{starts}");
        }
        // Still one key for every arrival of the same alert.
        let body = r#"{"version": "4", "alerts": [{"status": "firing", "fingerprint": "f", "startsAt": "yesterday"}]}"#;
        assert_eq!(
            parse_alerts(body.as_bytes(), 1).unwrap().alerts[0].key,
            parse_alerts(body.as_bytes(), 2).unwrap().alerts[0].key
        );
    }

    #[test]
    fn title_severity_and_summary_fall_back_in_order() {
        let alert = |labels: &str, annotations: &str| {
            let body = format!(
                r#"{{"version": "4", "alerts": [{{"status": "firing", "labels": {labels},
                    "annotations": {annotations}}}]}}"#
            );
            parse(&body).unwrap().alerts.remove(0)
        };
        let a = alert(
            r#"{"priority": "P1"}"#,
            r#"{"summary": "Disk full", "description": "on db-1"}"#,
        );
        assert_eq!(
            (a.title.as_str(), a.summary.as_str()),
            ("Disk full", "on db-1")
        );
        assert_eq!(a.severity, "P1");
        let a = alert(
            r#"{"severity": "page", "priority": "P1"}"#,
            r#"{"summary": "Disk full"}"#,
        );
        assert_eq!((a.title.as_str(), a.summary.as_str()), ("Disk full", ""));
        assert_eq!(a.severity, "page");
        let a = alert("{}", "{}");
        assert_eq!(
            (a.title.as_str(), a.summary.as_str(), a.severity.as_str()),
            ("alert", "", "unknown")
        );
        let a = alert(r#"{"alertname": "  "}"#, r#"{"description": "only this"}"#);
        assert_eq!(
            (a.title.as_str(), a.summary.as_str()),
            ("alert", "only this")
        );
    }

    #[test]
    fn only_http_links_are_kept() {
        let url = |link: &str| {
            let body = format!(
                r#"{{"version": "4", "alerts": [{{"status": "firing", "generatorURL": "{link}"}}]}}"#
            );
            parse(&body).unwrap().alerts[0].url.clone()
        };
        assert_eq!(
            url("https://p.example.org/g").as_deref(),
            Some("https://p.example.org/g")
        );
        assert_eq!(url("javascript:alert(1)"), None);
        assert_eq!(url("ftp://p.example.org/g"), None);
        assert_eq!(url(""), None);
        assert_eq!(url("https://p.example.org/a b"), None);
        let long = format!("https://p.example.org/{}", "a".repeat(URL_MAX_BYTES));
        assert_eq!(url(&long), None);
    }

    #[test]
    fn the_generic_json_is_one_alert_with_defaults() {
        let batch = parse(r#"{"title": "Backup failed"}"#).unwrap();
        assert_eq!(batch.source, AlertSource::Generic);
        assert_eq!(batch.group_key, None);
        let alert = &batch.alerts[0];
        assert_eq!(alert.status, AlertStatus::Firing);
        assert_eq!(alert.severity, "unknown");
        assert_eq!(alert.summary, "");
        assert_eq!(alert.url, None);
        assert_eq!(alert.started_at, NOW);
        assert_eq!(alert.key, key_of("generic\nBackup failed"));

        let batch = parse(
            r#"{"title": "Backup failed", "severity": "critical", "summary": "nightly job exited 1",
                "url": "https://ci.example.org/job/7", "dedup_key": "backup-nightly",
                "status": "resolved", "labels": {"team": "storage"}}"#,
        )
        .unwrap();
        let alert = &batch.alerts[0];
        assert_eq!(alert.status, AlertStatus::Resolved);
        assert_eq!(alert.severity, "critical");
        assert_eq!(alert.summary, "nightly job exited 1");
        assert_eq!(alert.url.as_deref(), Some("https://ci.example.org/job/7"));
        assert_eq!(alert.key, key_of("generic\nbackup-nightly"));
        assert_eq!(alert.labels["team"], "storage");
        assert_eq!(batch.common_labels, alert.labels);
        assert_eq!(alert.source, AlertSource::Generic);
    }

    #[test]
    fn sizes_are_bounded() {
        let labels: Vec<String> = (0..100)
            .map(|n| format!(r#""l{n:03}{}": "{}""#, "k".repeat(200), "v".repeat(600)))
            .collect();
        let body = format!(
            r#"{{"title": "{}", "summary": "{}", "severity": "{}", "labels": {{{}}}}}"#,
            "t".repeat(300),
            "s".repeat(2000),
            "x".repeat(100),
            labels.join(",")
        );
        let alert = &parse(&body).unwrap().alerts[0];
        assert_eq!(alert.title.chars().count(), TITLE_MAX_CHARS);
        assert!(alert.title.ends_with('…'));
        assert_eq!(alert.summary.chars().count(), SUMMARY_MAX_CHARS);
        assert_eq!(alert.severity.chars().count(), SEVERITY_MAX_CHARS);
        assert_eq!(alert.labels.len(), MAX_LABELS);
        assert!(
            alert
                .labels
                .iter()
                .all(|(k, v)| k.chars().count() == LABEL_NAME_MAX_CHARS
                    && v.chars().count() == LABEL_VALUE_MAX_CHARS)
        );

        let one = r#"{"status": "firing", "labels": {"alertname": "A"}}"#;
        let body = format!(
            r#"{{"version": "4", "alerts": [{}]}}"#,
            vec![one; MAX_ALERTS + 5].join(",")
        );
        assert_eq!(parse(&body).unwrap().alerts.len(), MAX_ALERTS);

        let long_group = format!(
            r#"{{"version": "4", "groupKey": "{}", "alerts": [{one}]}}"#,
            "g".repeat(600)
        );
        let group_key = parse(&long_group).unwrap().group_key.unwrap();
        assert!(group_key.starts_with("sha256:") && group_key.len() == 7 + 64);
    }

    #[test]
    fn every_refusal_says_why_without_quoting_the_body() {
        let cases: &[(&str, &str)] = &[
            ("secret-value{", "the body is not JSON (line 1 column 1)"),
            ("", "the body is not JSON"),
            (
                r#"["secret-value"]"#,
                r#"expected an Alertmanager (version 4) or Grafana webhook body, or {"title": ...}"#,
            ),
            (
                r#"{"message": "secret-value"}"#,
                r#"expected an Alertmanager (version 4) or Grafana webhook body, or {"title": ...}"#,
            ),
            (
                r#"{"version": "4", "alerts": []}"#,
                "alerts: the list is empty",
            ),
            (
                r#"{"version": "3", "alerts": [{"status": "firing"}]}"#,
                r#"version: must be "4" (Alertmanager's webhook version)"#,
            ),
            (
                r#"{"alerts": [{"status": "firing"}]}"#,
                r#"version: must be "4" (Alertmanager's webhook version)"#,
            ),
            (
                r#"{"version": "4", "alerts": {}}"#,
                "alerts: must be a list of alerts",
            ),
            (
                r#"{"version": "4", "alerts": ["secret-value"]}"#,
                "alerts[0]: must be an object",
            ),
            (
                r#"{"version": "4", "alerts": [{"status": "firing"}, {"status": "secret-value"}]}"#,
                r#"alerts[1].status: must be "firing" or "resolved""#,
            ),
            (
                r#"{"version": "4", "alerts": [{}]}"#,
                r#"alerts[0].status: must be "firing" or "resolved""#,
            ),
            (
                r#"{"version": "4", "status": "secret-value", "alerts": [{"status": "firing"}]}"#,
                r#"status: must be "firing" or "resolved""#,
            ),
            (
                r#"{"version": "4", "alerts": [{"status": "firing", "labels": {"secret-value": 1}}]}"#,
                "alerts[0].labels: must be an object of strings",
            ),
            (
                r#"{"version": "4", "alerts": [{"status": "firing", "annotations": "secret-value"}]}"#,
                "alerts[0].annotations: must be an object of strings",
            ),
            (
                r#"{"version": "4", "alerts": [{"status": "firing", "fingerprint": 5}]}"#,
                "alerts[0].fingerprint: must be a string",
            ),
            (
                r#"{"version": "4", "alerts": [{"status": "firing", "generatorURL": ["secret-value"]}]}"#,
                "alerts[0].generatorURL: must be a string",
            ),
            (
                r#"{"version": "4", "groupKey": 7, "alerts": [{"status": "firing"}]}"#,
                "groupKey: must be a string",
            ),
            (
                r#"{"version": "4", "commonLabels": [], "alerts": [{"status": "firing"}]}"#,
                "commonLabels: must be an object of strings",
            ),
            (
                r#"{"orgId": 1, "alerts": [{"status": "firing", "panelURL": 1}]}"#,
                "alerts[0].panelURL: must be a string",
            ),
            (r#"{"title": ""}"#, "title: must be a non-empty string"),
            (r#"{"title": "  "}"#, "title: must be a non-empty string"),
            (r#"{"title": null}"#, "title: must be a non-empty string"),
            (r#"{"title": 5}"#, "title: must be a string"),
            (
                r#"{"title": "t", "severity": 1}"#,
                "severity: must be a string",
            ),
            (
                r#"{"title": "t", "summary": {}}"#,
                "summary: must be a string",
            ),
            (r#"{"title": "t", "url": 1}"#, "url: must be a string"),
            (
                r#"{"title": "t", "dedup_key": 1}"#,
                "dedup_key: must be a string",
            ),
            (
                r#"{"title": "t", "status": "secret-value"}"#,
                r#"status: must be "firing" or "resolved""#,
            ),
            (
                r#"{"title": "t", "labels": {"a": ["secret-value"]}}"#,
                "labels: must be an object of strings",
            ),
        ];
        for (body, expected) in cases {
            let reason = reason(body);
            assert!(reason.starts_with(expected), "{body}: {reason}");
            assert!(!reason.contains("secret-value"), "{body}: {reason}");
            assert!(!reason.contains('\n'), "{body}: {reason}");
        }
        let too_large = vec![b' '; MAX_ALERT_BODY_BYTES + 1];
        assert_eq!(
            parse_alerts(&too_large, NOW),
            Err(IngressError::TooLarge {
                bytes: MAX_ALERT_BODY_BYTES + 1
            })
        );
    }

    /// Any JSON value, nested a few levels, with the fields the reader looks at likely.
    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            prop_oneof![
                Just("4".to_owned()),
                Just("firing".to_owned()),
                Just("resolved".to_owned()),
                Just("2026-12-05T03:12:45Z".to_owned()),
                Just("https://example.org/x".to_owned()),
                any::<String>(),
            ]
            .prop_map(Value::String),
        ];
        let keys = prop_oneof![
            Just("alerts".to_owned()),
            Just("version".to_owned()),
            Just("status".to_owned()),
            Just("labels".to_owned()),
            Just("annotations".to_owned()),
            Just("startsAt".to_owned()),
            Just("fingerprint".to_owned()),
            Just("title".to_owned()),
            Just("orgId".to_owned()),
            Just("alertname".to_owned()),
            Just("summary".to_owned()),
            Just("panelURL".to_owned()),
            any::<String>(),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..8)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_alerts(&body, NOW);
        }

        #[test]
        fn arbitrary_json_never_panics_and_stays_bounded(value in json(), now in any::<i64>()) {
            let body = serde_json::to_vec(&value).unwrap();
            match parse_alerts(&body, now) {
                Ok(batch) => {
                    prop_assert!(!batch.alerts.is_empty() && batch.alerts.len() <= MAX_ALERTS);
                    for alert in &batch.alerts {
                        prop_assert_eq!(alert.key.len(), KEY_HEX_DIGITS);
                        prop_assert!(!alert.title.is_empty());
                        prop_assert!(alert.title.chars().count() <= TITLE_MAX_CHARS);
                        prop_assert!(alert.summary.chars().count() <= SUMMARY_MAX_CHARS);
                        prop_assert!(alert.labels.len() <= MAX_LABELS);
                        prop_assert!(alert.url.as_deref().is_none_or(|u| u.starts_with("http")));
                    }
                }
                Err(error) => prop_assert!(!error.to_string().contains('\n')),
            }
        }
    }
}

//! On-call paging: alerts in (`POST /alerts`), WhatsApp pages out, acknowledged with one tap,
//! escalated tier by tier when nobody does.
//!
//! - [`ingress`]: Alertmanager (webhook version 4), Grafana Alerting and a small generic JSON,
//!   read into one [`AlertBatch`].
//! - [`oncall`]: `ONCALL`, who is paged for an alert (tiers, routes by label, the agent).
//! - [`paging`]: the engine: incidents, pages, taps, escalation, resolution. Its records are
//!   kept in `ALERTS_TABLE` ([`crate::records`]), its escalation timers on `TIMER_QUEUE_URL`
//!   ([`crate::timers`]).

pub mod ingress;
pub mod oncall;
pub mod paging;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Button ids and template payloads of our pages: `wal:alert:<nonce>:<action>` (the nonce is
/// 128 random bits naming one page sent to one person).
pub const ALERT_TAP_PREFIX: &str = "wal:alert:";

/// Whether an alert is still firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// What sent an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertSource {
    Alertmanager,
    Grafana,
    Generic,
}

impl AlertSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alertmanager => "alertmanager",
            Self::Grafana => "grafana",
            Self::Generic => "generic",
        }
    }
}

/// One alert, whatever sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The incident this alert belongs to: a hash (32 hex digits) of Alertmanager's and
    /// Grafana's `fingerprint` with `startsAt`, or of the generic JSON's `dedup_key`. The same
    /// alert notified again (a repeat, its resolution) has the same key.
    pub key: String,
    pub status: AlertStatus,
    pub title: String,
    /// `critical`, `warning`… as the source said it (`unknown` when it did not).
    pub severity: String,
    /// One or two sentences (may be empty).
    pub summary: String,
    /// A link to the alert (Prometheus graph, Grafana panel, the generic `url`).
    pub url: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub source: AlertSource,
    /// Unix seconds the alert started (the generic JSON: when it was received).
    pub started_at: i64,
}

/// One notification from a monitoring system: one or more alerts (an Alertmanager group).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertBatch {
    pub source: AlertSource,
    /// Alertmanager's and Grafana's `groupKey`; `None` for the generic JSON.
    pub group_key: Option<String>,
    /// The group's labels common to every alert (`commonLabels`; the generic JSON's labels).
    pub common_labels: BTreeMap<String, String>,
    pub alerts: Vec<Alert>,
}

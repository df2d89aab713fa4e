//! The webhook handler: verify → parse → filter and hand off → answer. Each request ends in
//! one [`Answer`]; what it writes (status, headers, body) is decided in [`super::answer`].

use super::parse::{ParseError, ParsedWebhook, TemplateUpdate, parse};
use super::verify::{SIGNATURE_HEADER, VerifyError, token_matches, verify_signature};
use crate::alerts::ingress::{MAX_ALERT_BODY_BYTES, parse_alerts};
use crate::alerts::oncall::OnCall;
use crate::alerts::paging::tapped_id;
use crate::approvals::engine::tapped_id as approval_tap;
use crate::domain::Allowlist;
use crate::domain::{InboundMessage, log_id};
use crate::pipeline::{Attempt, MAX_CONCURRENT_SENDERS, Outcome, Pipeline, by_sender};
use crate::queue::JobQueue;
use crate::queue::{FailedDelivery, Job, Work};
use crate::redact;
use crate::secrets::Secret;
use crate::secrets::Secrets;
use crate::sessions::conversation::unix_now;
use crate::webhook::answer::{Answer, body_bytes};
use lambda_http::http::HeaderMap;
use lambda_http::http::header::AUTHORIZATION;
use lambda_http::{Body, Request, Response};
use std::sync::Arc;
use std::time::Instant;

/// The path Meta's webhook is configured with.
pub const WEBHOOK_PATH: &str = "/webhook";
/// Longest `hub.challenge` echoed back (Meta sends a short number).
const MAX_CHALLENGE_CHARS: usize = 256;
/// How many message ids a malformed body's error log quotes at most.
const MAX_IDS_IN_LOG: usize = 5;

/// Why a POST ends before any message is handed off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over `MAX_BODY_BYTES`: [`Answer::PayloadTooLarge`].
    TooLarge,
    /// Missing, malformed or wrong signature (or no app secret): [`Answer::Unauthorized`].
    BadSignature,
    /// Signed, but not a WhatsApp payload: [`Answer::Accepted`], so Meta does not retry it
    /// (logged as an error).
    NotWhatsApp,
}

impl Refusal {
    /// The answer Meta gets.
    pub fn answer(self) -> Answer {
        match self {
            Refusal::TooLarge => Answer::PayloadTooLarge,
            Refusal::BadSignature => Answer::Unauthorized,
            Refusal::NotWhatsApp => Answer::Accepted,
        }
    }
}

/// How allowed messages leave the webhook.
pub enum Dispatcher {
    /// `DISPATCH=inline`: run the pipeline before answering Meta.
    Inline(Pipeline),
    /// `DISPATCH=queue`: send one job per message to the queue; answer 200 once it accepted them.
    Queue(Arc<dyn JobQueue>),
}

/// The webhook function: shared state built once at cold start, borrowed by every request.
pub struct WebhookApp {
    secrets: Arc<Secrets>,
    allowlist: Allowlist,
    dispatcher: Dispatcher,
    max_body_bytes: usize,
    /// On-call paging (`ONCALL`): `POST /alerts`, and taps on pages from the people on call.
    paging: Option<PagingIngress>,
    /// Approvals are on (`APPROVERS`): taps on approval requests pass the allowlist.
    approvals: bool,
    /// The templates this deployment sends ([`WebhookApp::watching_templates`]).
    watched_templates: Vec<WatchedTemplate>,
}

/// What the webhook needs for paging.
struct PagingIngress {
    oncall: OnCall,
    /// `alert_token` (`ALERT_TOKEN` locally): the bearer `POST /alerts` must present; empty:
    /// every `POST /alerts` is refused.
    token: Secret,
}

/// What `accept` hands off: the allowed messages, and the `failed` delivery statuses (only
/// while paging: one may be a page that did not arrive).
#[derive(Debug, Default)]
pub struct Handoff {
    pub messages: Vec<InboundMessage>,
    pub failed: Vec<FailedDelivery>,
}

/// A template whose pause, disabling or rejection is an ERROR: `name:language`, or a name
/// alone for every language.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WatchedTemplate {
    name: String,
    language: Option<String>,
}

impl WatchedTemplate {
    fn of(spec: &str) -> Option<Self> {
        let spec = spec.trim();
        let (name, language) = match spec.split_once(':') {
            Some((name, language)) => (name, Some(language.replace('-', "_"))),
            None => (spec, None),
        };
        (!name.is_empty()).then(|| Self {
            name: name.to_owned(),
            language,
        })
    }

    fn matches(&self, update: &TemplateUpdate) -> bool {
        self.name == update.name
            && self
                .language
                .as_ref()
                .is_none_or(|language| *language == update.language.replace('-', "_"))
    }
}

impl WebhookApp {
    pub fn new(
        secrets: Secrets,
        allowlist: Allowlist,
        dispatcher: Dispatcher,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            secrets: Arc::new(secrets),
            allowlist,
            dispatcher,
            max_body_bytes,
            paging: None,
            approvals: false,
            watched_templates: Vec::new(),
        }
    }

    /// The same app paging: `POST /alerts` with the bearer `token` takes notifications, taps on
    /// pages from people in `oncall` pass the allowlist (nothing else from them does), and
    /// `failed` statuses are handed off to find pages that did not arrive.
    /// The same app with approvals on: taps on approval requests pass the allowlist (the
    /// engine refuses those not from the approver they were sent to).
    pub fn with_approvals(mut self) -> Self {
        self.approvals = true;
        self
    }

    pub fn with_paging(mut self, oncall: OnCall, token: Secret) -> Self {
        self.paging = Some(PagingIngress { oncall, token });
        self
    }

    /// The templates this deployment sends (`ALERT_TEMPLATE`, `NOTICE_TEMPLATE`,
    /// `REENGAGE_TEMPLATE`), each `name:language` or a name alone (any language): Meta pausing,
    /// disabling or rejecting one of them is logged at ERROR, since every page (or message)
    /// that uses it fails until it is fixed; other templates' at WARN. Empty entries are
    /// skipped.
    pub fn watching_templates(mut self, names: Vec<String>) -> Self {
        self.watched_templates = names
            .iter()
            .filter_map(|spec| WatchedTemplate::of(spec))
            .collect();
        self
    }

    /// Answers one HTTP request. Never panics on bad input.
    pub async fn handle(&self, request: Request) -> Response<Body> {
        let started = Instant::now();
        let method = request.method().clone();
        let answer = if is_alerts_path(request.uri().path()) {
            if method == lambda_http::http::Method::POST {
                self.receive_alerts(&request).await
            } else {
                Answer::AlertsMethodNotAllowed
            }
        } else if !is_webhook_path(request.uri().path()) {
            Answer::NotFound
        } else if method == lambda_http::http::Method::GET {
            self.verify_subscription(request.uri().query())
        } else if method == lambda_http::http::Method::POST {
            self.receive(&request).await
        } else {
            Answer::MethodNotAllowed
        };
        // A 200 is routine (Lambda's REPORT line and API Gateway's access log count them too):
        // DEBUG, which keeps the most frequent webhook, a delivery status, free of INFO lines.
        // Every other answer is worth a line.
        let status = answer.status().as_u16();
        let elapsed_us = started.elapsed().as_micros() as u64;
        if answer.is_success() {
            tracing::debug!(%method, status, elapsed_us, "webhook answered");
        } else {
            tracing::info!(%method, status, elapsed_us, "webhook answered");
        }
        answer.into_response()
    }

    /// GET: Meta's subscription handshake.
    fn verify_subscription(&self, query: Option<&str>) -> Answer {
        let (mut mode, mut token, mut challenge) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match key.as_ref() {
                "hub.mode" => mode.push(value),
                "hub.verify_token" => token.push(value),
                "hub.challenge" => challenge.push(value),
                _ => {}
            }
        }
        // Exactly one of each: a repeated parameter is ambiguous, so refused.
        let (Ok([mode]), Ok([token]), Ok([challenge])) = (
            <[_; 1]>::try_from(mode),
            <[_; 1]>::try_from(token),
            <[_; 1]>::try_from(challenge),
        ) else {
            tracing::warn!("verification GET refused: hub.* parameters missing or repeated");
            return Answer::Forbidden;
        };
        let token_ok = token_matches(
            self.secrets.verify_token.expose().as_bytes(),
            token.as_bytes(),
        );
        if mode != "subscribe"
            || !token_ok
            || challenge.is_empty()
            || challenge.chars().count() > MAX_CHALLENGE_CHARS
        {
            let mode = redact::name(&mode);
            tracing::warn!(%mode, token_ok, "verification GET refused");
            return Answer::Forbidden;
        }
        tracing::info!("webhook subscription verified");
        Answer::Challenge(challenge.into_owned())
    }

    /// POST: an update batch from Meta.
    async fn receive(&self, request: &Request) -> Answer {
        let handoff = match self.accept(request.headers(), body_bytes(request.body())) {
            Ok(handoff) => handoff,
            Err(refusal) => return refusal.answer(),
        };
        if handoff.messages.is_empty() && handoff.failed.is_empty() {
            return Answer::Accepted;
        }
        match &self.dispatcher {
            Dispatcher::Inline(pipeline) => {
                if let Some(paging) = pipeline.paging() {
                    for failed in &handoff.failed {
                        let found = paging
                            .delivery_failed(&failed.sent_id, failed.code.as_deref(), unix_now())
                            .await;
                        if let Err(error) = found {
                            tracing::error!(%error, "could not check a failed delivery against the pages");
                        }
                    }
                }
                let outcomes = dispatch_inline(pipeline, handoff.messages).await;
                if outcomes.iter().any(|o| matches!(o, Outcome::Retry { .. })) {
                    // Nothing was done for those messages: let Meta redeliver; the handled ones
                    // are deduplicated by their claims.
                    return Answer::RetryLater;
                }
                Answer::Accepted
            }
            Dispatcher::Queue(queue) => {
                let jobs: Vec<Job> = handoff
                    .messages
                    .into_iter()
                    .map(Job::new)
                    .chain(handoff.failed.into_iter().map(|f| Job::of(Work::Failed(f))))
                    .collect();
                match queue.enqueue(&jobs).await {
                    Ok(()) => {
                        tracing::info!(jobs = jobs.len(), "messages queued for the worker");
                        Answer::Accepted
                    }
                    Err(error) => {
                        // Meta retries a non-200: nothing is lost.
                        tracing::error!(%error, jobs = jobs.len(), "could not queue the messages; answering 500 so Meta retries");
                        Answer::RetryLater
                    }
                }
            }
        }
    }

    /// `POST /alerts`: a notification from Alertmanager, Grafana or anything sending the
    /// generic JSON. 404 while paging is off; 401 without the right bearer token (and for
    /// every request while none is configured); 413 over [`MAX_ALERT_BODY_BYTES`]; 400 with
    /// the reason for a body we cannot read; 202 once queued (inline: once paged).
    async fn receive_alerts(&self, request: &Request) -> Answer {
        let Some(paging) = &self.paging else {
            tracing::warn!("POST /alerts while paging is off (ONCALL unset)");
            return Answer::NotFound;
        };
        if paging.token.is_empty() {
            tracing::error!(
                "no alert token configured (alert_token / ALERT_TOKEN): refusing every POST /alerts"
            );
            return Answer::Unauthorized;
        }
        let mut values = request.headers().get_all(AUTHORIZATION).iter();
        let presented = match (values.next(), values.next()) {
            (Some(value), None) => value.to_str().ok().and_then(bearer),
            _ => None,
        };
        let token_ok = presented.is_some_and(|presented| {
            token_matches(paging.token.expose().as_bytes(), presented.as_bytes())
        });
        if !token_ok {
            tracing::warn!(
                presented = presented.is_some(),
                "POST /alerts refused: missing or wrong bearer token"
            );
            return Answer::Unauthorized;
        }
        let body = body_bytes(request.body());
        if body.len() > MAX_ALERT_BODY_BYTES {
            tracing::warn!(
                bytes = body.len(),
                limit = MAX_ALERT_BODY_BYTES,
                "alerts body too large"
            );
            return Answer::PayloadTooLarge;
        }
        let batch = match parse_alerts(body, unix_now()) {
            Ok(batch) => batch,
            Err(error) => {
                tracing::warn!(%error, bytes = body.len(), "POST /alerts refused: unreadable body");
                return Answer::AlertsRefused(error.to_string());
            }
        };
        match &self.dispatcher {
            Dispatcher::Inline(pipeline) => {
                let Some(engine) = pipeline.paging() else {
                    tracing::error!("paging is configured for the webhook but not in its pipeline");
                    return Answer::RetryLater;
                };
                match engine.ingest(&batch, unix_now()).await {
                    Ok(_) => Answer::AlertsAccepted,
                    Err(error) => {
                        tracing::error!(%error, "alerts not paged; answering 500 so the sender retries");
                        Answer::RetryLater
                    }
                }
            }
            Dispatcher::Queue(queue) => {
                let alerts = batch.alerts.len();
                match queue.enqueue(&[Job::of(Work::Alerts(batch))]).await {
                    Ok(()) => {
                        tracing::info!(alerts, "alerts queued for the worker");
                        Answer::AlertsAccepted
                    }
                    Err(error) => {
                        tracing::error!(%error, alerts, "could not queue the alerts; answering 500 so the sender retries");
                        Answer::RetryLater
                    }
                }
            }
        }
    }

    /// The acknowledgement path, no I/O: size limit, signature, parse, side-update logs,
    /// allowlist. `Ok` holds the allowed messages to hand off (possibly none: answer 200);
    /// `Err` says why the POST ends here, and so Meta's answer ([`Refusal::answer`]). Public so
    /// the benchmarks (`make bench`) measure exactly this code.
    pub fn accept(&self, headers: &HeaderMap, body: &[u8]) -> Result<Handoff, Refusal> {
        if body.len() > self.max_body_bytes {
            tracing::warn!(
                bytes = body.len(),
                limit = self.max_body_bytes,
                "webhook body too large"
            );
            return Err(Refusal::TooLarge);
        }
        let mut signatures = headers.get_all(SIGNATURE_HEADER).iter();
        let signature = match (signatures.next(), signatures.next()) {
            (_, Some(_)) => Err(VerifyError::DuplicateHeader),
            (Some(value), None) => value.to_str().map(Some).map_err(|_| VerifyError::BadHex),
            (None, None) => Ok(None),
        };
        let verified = signature.and_then(|header| {
            verify_signature(header, self.secrets.app_secret.expose().as_bytes(), body)
        });
        if let Err(reason) = verified {
            if reason == VerifyError::EmptySecret {
                tracing::error!("no app secret configured: refusing every webhook POST");
            } else {
                tracing::warn!(%reason, bytes = body.len(), "webhook POST refused: bad signature");
            }
            return Err(Refusal::BadSignature);
        }

        let parsed = match parse(body) {
            Ok(parsed) => parsed,
            Err(error) => {
                let message_ids = message_ids_in(body);
                match &error {
                    ParseError::NotJson(_) | ParseError::NotWhatsApp(_) => tracing::error!(
                        %error,
                        ?message_ids,
                        "signed webhook body is not a WhatsApp payload; answering 200 so Meta does not retry it"
                    ),
                }
                return Err(Refusal::NotWhatsApp);
            }
        };
        log_side_updates(&parsed, &self.watched_templates);
        let failed = match &self.paging {
            Some(_) => parsed
                .statuses
                .iter()
                .filter(|status| status.status == "failed")
                .map(|status| FailedDelivery {
                    sent_id: status.message_id.clone(),
                    code: status.errors.first().and_then(|error| error.code.clone()),
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(Handoff {
            messages: self.allowed(parsed.messages),
            failed,
        })
    }

    /// Keeps messages from allowed senders; the others are ignored silently and logged masked.
    fn allowed(&self, messages: Vec<InboundMessage>) -> Vec<InboundMessage> {
        messages
            .into_iter()
            .filter(|message| {
                // A tap on a page from someone on call passes; nothing else from them does. A
                // tap on an approval request passes from anyone while approvals are on: the
                // engine counts it only from the approver it was sent to, and answers anyone
                // else with a short refusal (logged).
                let allowed = self.allowlist.allows(&message.sender)
                    || (tapped_id(&message.kind).is_some()
                        && self
                            .paging
                            .as_ref()
                            .is_some_and(|paging| paging.oncall.is_on_call(&message.sender)))
                    || (self.approvals && approval_tap(&message.kind).is_some());
                if !allowed {
                    tracing::warn!(
                        message_id = %message.id,
                        sender = %message.sender.masked(),
                        kind = message.kind.type_name(),
                        "sender not on the allowlist: ignored"
                    );
                } else {
                    tracing::info!(
                        message_id = %message.id,
                        sender = %message.sender.masked(),
                        kind = message.kind.type_name(),
                        "message received"
                    );
                }
                allowed
            })
            .collect()
    }
}

/// `DISPATCH=inline`: runs the pipeline before answering. One sender's messages run in order;
/// different senders run concurrently, at most [`MAX_CONCURRENT_SENDERS`] at once (a body from
/// a thousand senders must not open a thousand agent connections). There is no later attempt:
/// failures are answered now.
async fn dispatch_inline(pipeline: &Pipeline, messages: Vec<InboundMessage>) -> Vec<Outcome> {
    let mut tasks = tokio::task::JoinSet::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_SENDERS));
    for queue in by_sender(messages, |message| message.sender.id().to_owned()) {
        let pipeline = pipeline.clone();
        let slots = slots.clone();
        tasks.spawn(async move {
            // Never closed: acquiring only waits for a free slot.
            let _slot = slots.acquire_owned().await.ok();
            let mut outcomes = Vec::with_capacity(queue.len());
            for message in &queue {
                outcomes.push(pipeline.handle(message, Attempt::Last).await);
            }
            outcomes
        });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(done) => outcomes.extend(done),
            Err(error) => tracing::error!(%error, "a message task failed"),
        }
    }
    outcomes
}

/// Logs statuses, errors, template status updates and ignored fields. Everything in them is
/// foreign text: names are logged only when they look like names, free text is scrubbed of
/// numbers and BSUIDs.
fn log_side_updates(parsed: &ParsedWebhook, watched: &[WatchedTemplate]) {
    let scrubbed = |text: &Option<String>| {
        text.as_deref()
            .map_or_else(|| "-".to_owned(), redact::scrub)
    };
    for status in &parsed.statuses {
        let name = redact::name(&status.status);
        // A wamid encodes the recipient's number: logged as its keyed hash.
        let sent_id = log_id(&status.message_id);
        // sent, delivered, read: three per reply, routine (DEBUG); failures are WARN.
        if status.errors.is_empty() {
            tracing::debug!(
                %sent_id,
                status = %name,
                recipient = %status.recipient_masked,
                "delivery status"
            );
        }
        for error in &status.errors {
            tracing::warn!(
                %sent_id,
                status = %name,
                recipient = %status.recipient_masked,
                code = %error.code.as_deref().map_or_else(|| "-".to_owned(), redact::code),
                title = %scrubbed(&error.title),
                details = %scrubbed(&error.details),
                "delivery failed"
            );
        }
    }
    for error in &parsed.errors {
        tracing::warn!(
            code = %error.code.as_deref().map_or_else(|| "-".to_owned(), redact::code),
            title = %scrubbed(&error.title),
            error_message = %scrubbed(&error.message),
            details = %scrubbed(&error.details),
            "WhatsApp reported an error"
        );
    }
    for update in &parsed.template_updates {
        let template = update.template().map_or_else(
            || "(unexpected value)".to_owned(),
            |t| format!("{}:{}", redact::name(&t.name), t.language),
        );
        let event = upper_name(&update.event);
        let reason = scrubbed(&update.reason);
        let info = update
            .info_title
            .as_deref()
            .map_or_else(|| "-".to_owned(), upper_name);
        let details = scrubbed(&update.info_description);
        if !update.stops_sending() {
            tracing::info!(%template, %event, %reason, %info, "message template status update");
        } else if watched.iter().any(|w| w.matches(update)) {
            tracing::error!(
                %template,
                %event,
                %reason,
                %info,
                %details,
                "a template this deployment sends was paused, disabled or rejected by Meta: pages will fail until it is fixed"
            );
        } else {
            tracing::warn!(
                %template,
                %event,
                %reason,
                %info,
                %details,
                "a message template was paused, disabled or rejected by Meta"
            );
        }
    }
    for field in &parsed.ignored_fields {
        let field = redact::name(field);
        tracing::info!(%field, "webhook field not handled: ignored");
    }
}

/// The path Alertmanager, Grafana and other senders post alerts to.
pub const ALERTS_PATH: &str = "/alerts";

/// Accepts `/alerts` and stage-prefixed paths such as `/prod/alerts`.
fn is_alerts_path(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    path == ALERTS_PATH || path.ends_with(ALERTS_PATH)
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in any case).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// An upper-case name such as Meta's `PAUSED` or `SECOND_PAUSE` as sent; anything else as
/// [`redact::name`] shows it (`(unexpected value)`).
fn upper_name(value: &str) -> String {
    if value
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    {
        redact::name(&value.to_ascii_lowercase()).to_ascii_uppercase()
    } else {
        redact::name(value)
    }
}

/// Accepts `/webhook` and stage-prefixed paths such as `/prod/webhook`.
fn is_webhook_path(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    path == WEBHOOK_PATH || path.ends_with(WEBHOOK_PATH)
}

/// Message ids (`wamid.…`) found in a body that could not be parsed, for the error log: as
/// their log ids (keyed hashes), since a wamid encodes a phone number.
fn message_ids_in(body: &[u8]) -> Vec<String> {
    const MARKER: &[u8] = b"wamid.";
    let mut ids = Vec::new();
    let mut rest = body;
    while ids.len() < MAX_IDS_IN_LOG {
        let Some(start) = rest.windows(MARKER.len()).position(|w| w == MARKER) else {
            break;
        };
        let tail = &rest[start..];
        let end = tail
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'=')))
            .unwrap_or(tail.len());
        ids.push(log_id(&String::from_utf8_lossy(&tail[..end])).to_string());
        rest = &tail[end..];
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_path_accepts_stage_prefixes_only_for_webhook() {
        assert!(is_webhook_path("/webhook"));
        assert!(is_webhook_path("/prod/webhook/"));
        assert!(!is_webhook_path("/"));
        assert!(!is_webhook_path("/webhooks"));
    }

    #[test]
    fn finds_message_ids_in_garbage() {
        let body = br#"{"broken": "wamid.HBgL123==", "x": wamid.ABC_-9 }"#;
        assert_eq!(
            message_ids_in(body),
            vec![
                log_id("wamid.HBgL123==").to_string(),
                log_id("wamid.ABC_-9").to_string()
            ]
        );
        assert!(message_ids_in(body).iter().all(|id| !id.contains("wamid.")));
        assert!(message_ids_in(b"nothing here").is_empty());
    }
}

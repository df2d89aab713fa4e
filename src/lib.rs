//! WhatsApp Business Cloud API front door for AI ops agents.
//!
//! The webhook verifies and parses Meta's webhook, hands every allowed message to the team's
//! agent, formats the agent's answer within WhatsApp's limits and sends it through the Graph API.
//! Each outside dependency is a trait (port) with its real adapter and an in-memory twin.
//!
//! # House rules
//!
//! **Where things live.** The tree reads like the README's diagram:
//! - [`domain`]: what every module speaks (message and phone number ids, the sender and the
//!   allowlist, inbound messages and their kinds, outgoing messages). It uses nothing else in
//!   the crate.
//! - [`webhook`]: Meta's webhook (verify, parse, the handler, its HTTP answers).
//! - Ports, each a trait in its `mod.rs` with the real adapter and an in-memory twin beside it:
//!   [`agent`] (`HttpAgent`, `StepFunctionsAgent`, `ScriptedAgent`; the contract and the Step
//!   Functions "deliver" event), [`graph`] (`GraphClient` and its wire types,
//!   `RecordingMessenger`), [`queue`] (`SqsQueue` with its poller, `MemoryQueue`; the job),
//!   [`idempotency`] (`DynamoIdempotency`, `MemoryIdempotency`), [`secrets`]. SDK shapes
//!   (`aws_sdk_*`) stay inside their adapter; [`aws`] is the SDK configuration they share.
//! - [`sessions`]: conversations (the session store as a port with its DynamoDB adapter and
//!   in-memory twin, history, built-in commands, replies kept for later, the 24-hour window).
//! - [`alerts`]: on-call paging (`POST /alerts` in, pages out, taps, escalation).
//! - [`approvals`]: approvals (an agent's or a state machine's request, approvers' taps, the
//!   decision made once, expiry, audit lines, Step Functions task callbacks).
//! - [`records`]: a capability's table as a port (versioned JSON records, conditional writes:
//!   `DynamoRecords`, `MemoryRecords`); [`timers`]: timers that survive the process
//!   (`SqsTimers`, `LocalTimers`).
//! - [`pipeline`]: one message's journey (claim, agent, format, send); [`worker`]: the queue
//!   worker; [`reply`]: the formatter; [`redact`]: what foreign text may reach a log or an
//!   error; [`config`]: the environment; [`backoff`]: retry waits.
//! - [`entry`]: start-up wiring and the entry points (Lambda webhook, Lambda worker, local HTTP);
//!   `src/bin/webhook.rs` and `src/bin/worker.rs` only call `entry::run`.
//! - `dev` (cargo feature `dev`, off in the Lambda builds): the sample events, the sample
//!   agent, loopback servers and the moto launcher, for the tests, `make demo` and `make pipeline`.
//!
//! **A new capability** (approvals, media, as sessions and alerts did) gets its own directory at
//! the top (`src/alerts/`…) holding its logic, its store as a port (trait, DynamoDB adapter,
//! in-memory twin when its table variable is unset), and its tests; the pipeline and the
//! webhook call it, never the other way round. It gets its own README section and sample events
//! in `events/`, and the README's code map lists it.
//!
//! **Errors.** One `thiserror` enum per module, with typed variants (fields, not a formatted
//! `String`), each converting into the crate's [`Error`] (`#[non_exhaustive]`, one `#[from]`
//! variant per module error, `Display` and `source()` the module error's own);
//! `is_retryable()` where a caller must choose between retrying and telling the user, and
//! [`Error::is_retryable`] asks the module error. `Display` is the whole story on one line (log
//! lines print `%error`); the cause is kept as `#[source]` (an adapter's SDK error boxed as
//! [`error::BoxError`], so a port names no SDK type) unless it can carry a secret or personal
//! data (serde's parse errors quote values, an AWS answer may quote what it refused or hold an
//! item, a panic's message may quote anything): then only scrubbed text is kept and the
//! variant's documentation says why. Foreign text (Meta's errors, agent bodies, AWS answers)
//! enters an error only through `redact::scrub` or `redact::excerpt`. The webhook's HTTP answers
//! are chosen in `webhook::answer` (the README's table).
//!
//! **Never logged at info:** a secret or token, a full phone number or BSUID (use
//! `Sender::masked`), a message id (`MessageId` displays as its keyed hash: log it with `%id`,
//! send it with `as_str()`), message text. Log one event once, with plain fields.
//!
//! **Tests.** Unit tests beside the code; integration tests in `tests/` through the public API,
//! the real binaries (`tests/local_mode.rs`, `tests/local_limits.rs`, `tests/logs.rs`), moto for
//! DynamoDB, SQS, Step Functions and Secrets Manager (started by the tests on a free loopback
//! port), and cfn-lint/SAM for `template.yaml`; property tests in `tests/properties.rs` and
//! `tests/reply.rs`; benchmarks under `tests/bench/` (`make bench`). The shared kit is
//! `tests/support/`: fixtures (sample events, signed bodies, a contract request), fakes (agents,
//! Graph API), the in-process harness, long handlings and wide batches, the real-binary
//! launcher, the Lambda Runtime API emulator (the cold-start bench includes it too), moto, free
//! ports, and the formatter's bounds (the fuzz target includes them too).

pub mod agent;
pub mod alerts;
pub mod approvals;
pub mod aws;
pub mod backoff;
pub mod config;
#[cfg(feature = "dev")]
pub mod dev;
pub mod domain;
pub mod entry;
pub mod error;
pub mod graph;
pub mod idempotency;
pub mod pipeline;
pub mod queue;
pub mod records;
pub mod redact;
pub mod reply;
pub mod secrets;
pub mod sessions;
pub mod timers;
pub mod webhook;
pub mod worker;

pub use error::Error;

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future: lets ports be trait objects chosen at run time.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

//! WhatsApp Business Cloud API front door for AI ops agents.
//!
//! The webhook verifies and parses Meta's webhook, hands every allowed message to the team's
//! agent, formats the agent's answer within WhatsApp's limits and sends it through the Graph API.
//! Each outside dependency is a trait (port) with its real adapter and an in-memory twin.
//!
//! # House rules
//!
//! **Where things live.** Ports, each a trait in its `mod.rs` with the real adapter and an
//! in-memory twin beside it: [`agent`] (`HttpAgent`, `StepFunctionsAgent`, `ScriptedAgent`),
//! [`graph`] (`GraphClient`, `RecordingMessenger`), [`queue`] (`SqsQueue`, `MemoryQueue`),
//! [`idempotency`] (`DynamoIdempotency`, `MemoryIdempotency`), [`secrets`]. The webhook
//! ([`webhook`]: verify, parse, handler, the Lambda entry) answers Meta; [`pipeline`] is one
//! message's journey (claim, agent, format, send), [`worker`] the queue worker, [`reply`] the
//! formatter, [`app`] the cold-start wiring, [`local`] plain-HTTP serving outside Lambda. SDK
//! shapes (`aws_sdk_*`) stay inside their adapter. A new capability gets its own module beside
//! the ports it uses, its own DynamoDB table (in memory when its variable is unset), its own
//! README section and its own sample events in `events/`. The README's code map lists the tree.
//!
//! **Errors.** One `thiserror` enum per module; `is_retryable()` where a caller must choose
//! between retrying and telling the user. Foreign text (Meta's errors, agent bodies) enters an
//! error only through `webhook::log_safe::scrub` or `text::excerpt`. The webhook's HTTP answers
//! are chosen in `webhook::handler` (the README's table).
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
//! `tests/support/`: fixtures (sample events, signed bodies), fakes (agent, Graph API), the
//! in-process harness, the real-binary launcher, moto, free ports.

pub mod agent;
pub mod app;
pub mod aws;
pub mod backoff;
pub mod config;
pub mod emulator;
pub mod events;
pub mod graph;
pub mod idempotency;
pub mod job;
pub mod local;
pub mod message;
pub mod pipeline;
pub mod queue;
pub mod reply;
pub mod sample_agent;
pub mod secrets;
pub mod sender;
pub mod serde_util;
pub mod text;
pub mod webhook;
pub mod worker;

use std::future::Future;
use std::pin::Pin;

/// A boxed, sendable future: lets ports be trait objects chosen at run time.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

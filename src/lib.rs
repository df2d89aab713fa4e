//! WhatsApp Business Cloud API front door for AI ops agents.
//!
//! The webhook verifies and parses Meta's webhook, hands every allowed message to the team's
//! agent, formats the agent's answer within WhatsApp's limits and sends it through the Graph API.
//! Each outside dependency is a trait (port) with its real adapter and an in-memory twin.

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

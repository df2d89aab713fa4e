//! Helpers shared by integration tests: each test binary uses only some of them.
//!
//! Two files are also compiled alone, by `#[path]`: `fixtures.rs` and `runtime_api.rs` in the
//! cold-start bench (`tests/bench/coldstart.rs`), `reply_bounds.rs` in the `format_reply` fuzz
//! target (`tests/fuzz/`, its own crate). They use the crate and their dependencies only, never
//! `super::`.
#![allow(dead_code)]

pub mod fakes;
pub mod fixtures;
pub mod harness;
pub mod local_webhook;
pub mod moto;
pub mod net;
pub mod reply_bounds;
pub mod runtime_api;
pub mod sfn_sync;
pub mod slow;
pub mod stream_agent;
pub mod template;
pub mod timers;

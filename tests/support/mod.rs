//! Helpers shared by integration tests: each test binary uses only some of them.
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

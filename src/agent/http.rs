//! `AGENT_BACKEND=http`: POST the contract request to `AGENT_URL` with ureq.

/// Calls an HTTP agent (implementation pending: see the adapters brief).
pub struct HttpAgent;

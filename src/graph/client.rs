//! The Graph API client (ureq).

/// Sends messages through the real Graph API.
pub struct GraphClient;

//! (adapter: being written)

/// Being written.
pub struct MemoryAlerts;

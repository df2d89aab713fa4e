//! (adapter: being written)

/// Being written.
pub struct DynamoAlerts;

//! In-memory messenger for tests and the demo.

/// Records every message instead of sending it.
pub struct RecordingMessenger;

/// One recorded send.
pub struct SentRecord;

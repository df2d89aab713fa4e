//! In-memory agent for tests.

/// Answers from a script and records every request.
pub struct ScriptedAgent;

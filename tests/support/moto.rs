//! A throwaway moto server (AWS emulator) per test: the library's
//! [`whatsapp_agent_lambda::dev::moto::Moto`] started from the project's `.venv`, failing the
//! test with a clear message when it cannot start. Killed when dropped.

use std::path::Path;
use whatsapp_agent_lambda::dev::moto;
use whatsapp_agent_lambda::dev::moto::MOTO_SERVER;

/// A running `moto_server`.
pub struct Moto(moto::Moto);

impl Moto {
    /// Starts `.venv/bin/moto_server` on `127.0.0.1:<free port>` and waits until it answers.
    pub fn start() -> Self {
        let binary = Path::new(env!("CARGO_MANIFEST_DIR")).join(MOTO_SERVER);
        let logs = Path::new(env!("CARGO_TARGET_TMPDIR"));
        Self(moto::Moto::start(&binary, logs).unwrap_or_else(|error| panic!("{error}")))
    }

    /// `http://127.0.0.1:<port>`, for `sdk_config_for`.
    pub fn endpoint(&self) -> &str {
        self.0.endpoint()
    }

    /// Changes this server's moto configuration (`POST /moto-api/config`): e.g.
    /// `{"stepfunctions": {"execute_state_machine": true}}` makes Step Functions really run the
    /// ASL of state machines (moto's parser) instead of leaving every execution `RUNNING`.
    pub fn configure(&self, config: &serde_json::Value) {
        self.0
            .configure(config)
            .unwrap_or_else(|error| panic!("{error}"));
    }
}

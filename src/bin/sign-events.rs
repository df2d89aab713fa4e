//! `make events`: re-signs the sample events in `events/` with the local test app secret.

use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
    match whatsapp_agent_lambda::dev::events::resign_dir(&dir) {
        Ok(changed) => {
            for path in &changed {
                println!("re-signed {}", path.display());
            }
            println!(
                "{} event(s) re-signed, the others were already current",
                changed.len()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("sign-events: {error}");
            ExitCode::FAILURE
        }
    }
}

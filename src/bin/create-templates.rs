//! `make templates WABA_ID=…`: creates the on-call paging and approval templates
//! (`ALERT_TEMPLATE`, and `NOTICE_TEMPLATE` and `APPROVAL_TEMPLATE` when set) through the Graph
//! API; `--dry-run` prints the requests instead.
//! See `whatsapp_agent_lambda::dev::templates`.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    match whatsapp_agent_lambda::dev::templates::run(
        &args,
        |name| std::env::var(name).ok(),
        &mut out,
        &mut err,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("create-templates: {error}");
            ExitCode::FAILURE
        }
    }
}

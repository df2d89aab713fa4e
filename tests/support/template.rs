//! `template.yaml` as written (before the SAM transform), as JSON: for tests that follow what
//! the template declares, such as a state machine's `Definition`. Read with the YAML decoder of
//! the pinned cfn-lint in the project's `.venv`, which turns the short-form intrinsics into
//! their JSON form (`!Ref X` into `{"Ref": "X"}`, `!GetAtt A.B` into
//! `{"Fn::GetAtt": ["A", "B"]}`). `tests/template.rs` reads the transformed template instead.

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A decoder that takes longer is killed and the test fails.
const DECODE_TIMEOUT: Duration = Duration::from_secs(60);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Prints the template named by its argument as JSON.
const DECODE: &str = "import json, sys\n\
                      from cfnlint.decode import cfn_yaml\n\
                      json.dump(cfn_yaml.load(sys.argv[1]), sys.stdout)\n";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `template.yaml`, parsed.
pub fn raw_template() -> Value {
    let python: PathBuf = repo().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: run `make test` (it installs the test tools into .venv)",
        python.display()
    );
    let template = repo().join("template.yaml");
    let mut child = Command::new(&python)
        .args(["-c", DECODE])
        .arg(&template)
        .env_clear()
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", python.display()));
    // Drained on their own threads: the template is larger than a pipe's buffer.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + DECODE_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL_INTERVAL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "decoding {} took over {DECODE_TIMEOUT:?}",
                    template.display()
                );
            }
            Err(e) => panic!("wait for {}: {e}", python.display()),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    assert!(
        status.success(),
        "decoding {} failed ({status}):\n{stderr}",
        template.display()
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{} decoded to something not JSON: {e}", template.display()))
}

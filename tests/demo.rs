//! `make demo` (`src/bin/demo.rs`, inline mode): it runs with no AWS and no Meta account, and
//! its transcript tells the whole story: the sample events, the conversation, on-call paging,
//! and an approval (the ask, the request to the approver, the tap, the notices, the agent's
//! answer to the decision).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the demo may take (it takes well under a second of work; the rest is start-up).
const DEMO_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the demo to its end; its stdout. No AWS: credentials and endpoints that would reach it
/// are unset.
fn run_demo() -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo"))
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_ENDPOINT_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the demo starts");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("the demo runs").is_some() {
            break;
        }
        if started.elapsed() > DEMO_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the demo did not finish within {DEMO_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("the demo's output");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(
        output.status.success(),
        "the demo failed ({}):\n{}\n{stdout}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The transcript's steps: each `━━ <label>` heading with what followed it.
fn steps(transcript: &str) -> Vec<(&str, &str)> {
    transcript
        .split("━━ ")
        .skip(1)
        .map(|step| step.split_once('\n').unwrap_or((step, "")))
        .collect()
}

/// The one step whose heading starts with `label`.
fn step<'a>(steps: &[(&'a str, &'a str)], label: &str) -> (usize, &'a str) {
    let found: Vec<(usize, &str)> = steps
        .iter()
        .enumerate()
        .filter(|(_, (heading, _))| heading.starts_with(label))
        .map(|(at, (_, body))| (at, *body))
        .collect();
    assert_eq!(found.len(), 1, "one step {label:?}: {found:?}");
    found[0]
}

#[test]
fn the_demo_tells_the_conversation_paging_and_approval_with_no_aws_or_meta_account() {
    let transcript = run_demo();
    assert!(
        transcript.starts_with("whatsapp-agent-lambda demo (DISPATCH=inline)"),
        "{transcript}"
    );
    assert!(transcript.contains("  approvers         Sam (+447700900123)"));
    let steps = steps(&transcript);

    // The sample events and the conversation.
    let (_, text) = step(&steps, "post-text.json  (POST /webhook)");
    assert!(text.contains("CrashLoopBackOff"), "{text}");
    let (_, forged) = step(&steps, "post-bad-signature.json");
    assert!(forged.contains("webhook answered 401"), "{forged}");
    let (_, help) = step(&steps, "you: \"/help\"");
    assert!(help.contains("\"to\": \"14155551234\""), "{help}");

    // On call: the page, its acknowledgement and the agent's answer.
    let (paged, page) = step(
        &steps,
        "post-alerts-alertmanager.json (an alert for the on-call engineer)",
    );
    assert!(page.contains("wal:alert:"), "{page}");
    let acknowledged = steps
        .iter()
        .position(|(heading, _)| heading.starts_with("you tap Acknowledge on the page"))
        .expect("the page acknowledged");
    assert!(acknowledged > paged);
    assert!(steps[acknowledged].1.contains("Thanks, you own"));

    // The approval: the ask, the agent's answer, the request to Sam, the requester told.
    let (asked, ask) = step(
        &steps,
        "post-approval-request.json (you ask to restart a deployment)",
    );
    assert!(asked > acknowledged, "after the paging part");
    assert!(
        ask.contains("A rolling restart of *deployment/api* in `prod`"),
        "{ask}"
    );
    let request = ask
        .split("→ POST ")
        .find(|call| call.contains("\"to\": \"447700900123\""))
        .expect("the request goes to Sam");
    for shown in [
        "\"name\": \"approval_request\"",
        "\"text\": \"John\"",
        "\"text\": \"Restart deployment/api in prod\"",
        "\"text\": \"kubectl rollout restart deployment/api -n prod\"",
        "wal:approval:",
    ] {
        assert!(request.contains(shown), "{shown}: {request}");
    }
    assert!(
        ask.contains("⏳ Waiting for approval from Sam (1 needed)"),
        "{ask}"
    );

    // Sam taps Approve on that request: both read the decision, the agent's answer follows.
    let (tapped, tap) = step(&steps, "Sam taps Approve on the request");
    assert_eq!(tapped, asked + 1);
    assert!(tap.contains("webhook answered 200"), "{tap}");
    let approved: Vec<&str> = tap
        .split("→ POST ")
        .filter(|call| call.contains("✅ Approved by Sam: Restart deployment/api in prod"))
        .collect();
    assert_eq!(approved.len(), 2, "the requester and the approver: {tap}");
    assert!(
        approved
            .iter()
            .any(|c| c.contains("\"to\": \"14155551234\""))
    );
    assert!(
        approved
            .iter()
            .any(|c| c.contains("\"to\": \"447700900123\""))
    );
    let answer = tap
        .split("→ POST ")
        .find(|call| call.contains("🔄 Restarted deployment/api in prod (approved by Sam"))
        .expect("the agent's answer to the decision");
    assert!(answer.contains("\"to\": \"14155551234\""), "{answer}");
    assert!(answer.contains("successfully rolled out"), "{answer}");
    for refused in ["no longer active", "does not count", "⚠️"] {
        assert!(!tap.contains(refused), "{refused}: {tap}");
    }
}

//! The real `webhook` binary in local HTTP mode (no `AWS_LAMBDA_RUNTIME_API`) on a free
//! loopback port, with the local test secrets and allowlist of `events/`; killed when dropped.

use super::fixtures::event_json;
use super::net::{free_port, http_client};
use std::io::Read;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use whatsapp_agent_lambda::dev::events::{
    LOCAL_ACCESS_TOKEN, LOCAL_ALLOWED_SENDERS, LOCAL_APP_SECRET, LOCAL_VERIFY_TOKEN, body_bytes,
};

/// How long the binary may take to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);

/// A running webhook process.
pub struct LocalWebhook {
    pub child: Child,
    /// `127.0.0.1:<port>`
    pub addr: String,
    /// `http://127.0.0.1:<port>/webhook`
    pub url: String,
}

impl LocalWebhook {
    /// Starts the binary against `agent_url` and `graph_url`, with `extra` environment variables
    /// on top of the local defaults, and waits until it listens.
    pub fn start(agent_url: &str, graph_url: &str, extra: &[(&str, &str)], stderr: Stdio) -> Self {
        Self::launch(
            Command::new(env!("CARGO_BIN_EXE_webhook")),
            agent_url,
            graph_url,
            extra,
            (Stdio::null(), stderr),
        )
    }

    /// [`LocalWebhook::start`], keeping what the binary writes to stdout and stderr (its logs)
    /// for [`LocalWebhook::logs`].
    pub fn start_logging(agent_url: &str, graph_url: &str, extra: &[(&str, &str)]) -> Self {
        Self::launch(
            Command::new(env!("CARGO_BIN_EXE_webhook")),
            agent_url,
            graph_url,
            extra,
            (Stdio::piped(), Stdio::piped()),
        )
    }

    /// [`LocalWebhook::start`], with the process's open-files limit (`RLIMIT_NOFILE`, soft and
    /// hard) set to `open_files` by the shell that then becomes the binary: same process id.
    pub fn start_with_open_files(
        open_files: u32,
        agent_url: &str,
        graph_url: &str,
        extra: &[(&str, &str)],
        stderr: Stdio,
    ) -> Self {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {open_files} && exec \"$0\""))
            .arg(env!("CARGO_BIN_EXE_webhook"));
        Self::launch(
            command,
            agent_url,
            graph_url,
            extra,
            (Stdio::null(), stderr),
        )
    }

    fn launch(
        mut command: Command,
        agent_url: &str,
        graph_url: &str,
        extra: &[(&str, &str)],
        (stdout, stderr): (Stdio, Stdio),
    ) -> Self {
        let addr = format!("127.0.0.1:{}", free_port());
        local_env(&mut command, agent_url, graph_url);
        command
            .env("LOCAL_ADDR", &addr)
            .envs(extra.iter().copied())
            .stdout(stdout)
            .stderr(stderr);
        // `AGENTS` replaces the one-agent shorthand (both set is a configuration error).
        if extra.iter().any(|(name, _)| *name == "AGENTS") {
            command.env_remove("AGENT_URL");
        }
        let child = command.spawn().expect("start the webhook binary");
        // Built before waiting, so a failed wait still kills the process.
        let webhook = Self {
            child,
            url: format!("http://{addr}/webhook"),
            addr,
        };
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        while TcpStream::connect(&webhook.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "webhook did not listen on {} within {LISTEN_TIMEOUT:?}",
                webhook.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        webhook
    }

    /// POSTs the sample event `events/<name>` over HTTP as Meta would: its body and its
    /// signature header. The status and the body of the answer.
    pub fn post_sample(&self, name: &str) -> (u16, String) {
        self.post_envelope(&event_json(name))
    }

    /// POSTs the body of an API Gateway envelope with its signature header (a sample event,
    /// or one written with `dev::events::with_message`): the status and the answer's body.
    pub fn post_envelope(&self, event: &serde_json::Value) -> (u16, String) {
        let body = body_bytes(event)
            .unwrap_or_else(|error| panic!("the envelope's body: {error}"))
            .unwrap_or_default();
        let signature = event["headers"]["x-hub-signature-256"]
            .as_str()
            .expect("the envelope carries a signature");
        let mut answer = http_client()
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .send(&body[..])
            .expect("the webhook answers");
        let status = answer.status().as_u16();
        (
            status,
            answer.body_mut().read_to_string().unwrap_or_default(),
        )
    }

    /// Stops a webhook started with [`LocalWebhook::start_logging`]: everything it wrote, its
    /// stdout then its stderr.
    pub fn logs(mut self) -> String {
        let _ = self.child.kill();
        let (stdout, stderr) = (self.child.stdout.take(), self.child.stderr.take());
        let (mut out, mut err) = (String::new(), String::new());
        stdout
            .expect("started with start_logging")
            .read_to_string(&mut out)
            .expect("read the webhook's stdout");
        stderr
            .expect("started with start_logging")
            .read_to_string(&mut err)
            .expect("read the webhook's stderr");
        out + &err
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A `/proc/<pid>/status` field in kB (Linux), such as `VmHWM`, the peak resident set.
    pub fn status_kb(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

/// The webhook binary's environment in the tests: nothing inherited but `PATH`; the local test
/// secrets and allowlist of `events/`; the agent and the Graph API at `agent_url` and
/// `graph_url`.
pub fn local_env(command: &mut Command, agent_url: &str, graph_url: &str) {
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ALLOWED_SENDERS", LOCAL_ALLOWED_SENDERS)
        .env("AGENT_URL", agent_url)
        .env("GRAPH_API_BASE_URL", graph_url)
        .env("WHATSAPP_APP_SECRET", LOCAL_APP_SECRET)
        .env("WHATSAPP_ACCESS_TOKEN", LOCAL_ACCESS_TOKEN)
        .env("WHATSAPP_VERIFY_TOKEN", LOCAL_VERIFY_TOKEN);
}

impl Drop for LocalWebhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

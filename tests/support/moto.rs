//! A throwaway moto server (AWS emulator) per test: started on a free loopback port from the
//! project's `.venv`, killed when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to answer its first request (a cold Python start takes 1-3 s).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A running `moto_server`.
pub struct Moto {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl Moto {
    /// Starts `.venv/bin/moto_server` on `127.0.0.1:<free port>` and waits until it answers.
    pub fn start() -> Self {
        let binary = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
        assert!(
            binary.is_file(),
            "{} is missing: run `make test` (it installs moto into .venv)",
            binary.display()
        );
        let port = free_port();
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("moto-{port}.log"));
        let out =
            std::fs::File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone the log file handle");
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let mut moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        moto.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)));
        moto
    }

    /// `http://127.0.0.1:<port>`, for `sdk_config_for`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Changes this server's moto configuration (`POST /moto-api/config`): e.g.
    /// `{"stepfunctions": {"execute_state_machine": true}}` makes Step Functions really run the
    /// ASL of state machines (moto's parser) instead of leaving every execution `RUNNING`.
    /// moto reads this from its config, not from an environment variable
    /// (`SF_EXECUTION_HISTORY_TYPE` only picks the canned execution history).
    pub fn configure(&self, config: &serde_json::Value) {
        let url = format!("{}/moto-api/config", self.endpoint);
        let http: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(PROBE_TIMEOUT))
            .build()
            .into();
        http.post(&url)
            .header("Content-Type", "application/json")
            .send(config.to_string())
            .unwrap_or_else(|e| panic!("configure moto at {url}: {e}"));
    }

    fn wait_ready(&mut self, addr: SocketAddr) {
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(PROBE_TIMEOUT))
            .build()
            .into();
        let probe = format!("{}/moto-api/", self.endpoint);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "moto_server exited with {status}; see {}",
                    self.log.display()
                );
            }
            let listening = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).is_ok();
            if listening && http.get(&probe).call().is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on {addr} within {STARTUP_TIMEOUT:?}; see {}",
                self.log.display()
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("bind a loopback port")
}

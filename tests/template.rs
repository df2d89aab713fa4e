//! The deployment template (`template.yaml`): cfn-lint and `sam validate --lint` accept it,
//! offline and without AWS credentials, and the pinned cfn-lint really catches a broken
//! reference anywhere in it, including inside `AWS::Serverless::Function`.
//!
//! The tools come from the project's `.venv` (`make venv`, pinned in `tests/requirements.txt`).
//! Every child process gets a clean environment: a throwaway `HOME`, no AWS credentials or
//! profile, instance metadata disabled and every HTTP(S) proxy pointed at a closed loopback
//! port, so a tool that tried to reach AWS or the internet would fail instead of passing.

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A tool that takes longer is killed and the test fails (a hang must not stall CI).
const TOOL_TIMEOUT: Duration = Duration::from_secs(120);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Port 9 (discard) on loopback: nothing listens, so any proxied request fails at once.
const DEAD_PROXY: &str = "http://127.0.0.1:9";
const REGION: &str = "us-east-1";
const TEMPLATE: &str = "template.yaml";
const MISSING_PREFIX: &str = "Missing";

#[test]
fn template_passes_cfn_lint() {
    let scratch = Scratch::new("cfn-lint");
    let out = run(
        &tool("cfn-lint"),
        [repo().join(TEMPLATE).as_os_str()],
        &scratch,
    );
    assert!(
        out.status.success(),
        "cfn-lint {TEMPLATE} failed ({}):\n{}",
        out.status,
        out.text()
    );
}

#[test]
fn cfn_lint_rejects_a_broken_ref() {
    // The function's only IAM permission: a typo here must not reach a deploy. cfn-lint
    // 1.54-1.58 validate AWS::Serverless::Function against bundled schemas and miss it; the
    // pinned one lints the output of the real SAM transform.
    let original = "Resource: !If [CreateSecret, !Ref WhatsAppSecret,";
    let missing = format!("{MISSING_PREFIX}WhatsAppSecret");
    let broken = original.replace("!Ref WhatsAppSecret", &format!("!Ref {missing}"));
    let template = read_template();
    assert_eq!(
        template.matches(original).count(),
        1,
        "{TEMPLATE} no longer has exactly one `{original}`: update this test"
    );
    let scratch = Scratch::new("broken-ref");
    let copy = scratch.path().join(TEMPLATE);
    write(&copy, &template.replacen(original, &broken, 1));

    let out = run(&tool("cfn-lint"), [copy.as_os_str()], &scratch);
    let text = out.text();
    assert!(
        !out.status.success(),
        "cfn-lint accepted a !Ref to the missing `{missing}`:\n{text}"
    );
    assert!(
        text.contains("E1020") && text.contains(&format!("'{missing}'")),
        "cfn-lint failed without naming the broken reference `{missing}` (E1020):\n{text}"
    );
}

#[test]
fn cfn_lint_catches_every_broken_ref() {
    // One copy per `!Ref` in the template, that one renamed, all linted in one run.
    let template = read_template();
    let refs: Vec<(usize, &str)> = template
        .match_indices("!Ref ")
        .map(|(at, tag)| {
            let start = at + tag.len();
            let len = template[start..]
                .find(|c: char| !c.is_ascii_alphanumeric())
                .unwrap_or(template.len() - start);
            (start, &template[start..start + len])
        })
        .filter(|(_, name)| !name.is_empty())
        .collect();
    assert!(!refs.is_empty(), "{TEMPLATE} has no `!Ref` to break");

    let scratch = Scratch::new("every-ref");
    let copies: Vec<(String, &str, usize)> = refs
        .iter()
        .enumerate()
        .map(|(i, &(at, name))| {
            let file = format!("ref{i:02}.yaml");
            let line = template[..at].lines().count();
            let broken = format!("{}{MISSING_PREFIX}{}", &template[..at], &template[at..]);
            write(&scratch.path().join(&file), &broken);
            (file, name, line)
        })
        .collect();

    let mut args = vec![OsStr::new("--format"), OsStr::new("parseable")];
    args.extend(copies.iter().map(|(file, _, _)| OsStr::new(file.as_str())));
    let out = run(&tool("cfn-lint"), args, &scratch);
    assert!(!out.status.success(), "cfn-lint accepted every broken copy");

    let stdout = &out.stdout;
    let missed: Vec<String> = copies
        .iter()
        .filter(|(file, _, _)| !has_error_for(stdout, file))
        .map(|(file, name, line)| format!("{file}: `!Ref {name}` on line {line}"))
        .collect();
    assert!(
        missed.is_empty(),
        "cfn-lint found no error after renaming these references to {MISSING_PREFIX}<name>:\n  {}\n\
         output:\n{}",
        missed.join("\n  "),
        out.text()
    );
}

#[test]
fn template_passes_sam_validate_lint() {
    let scratch = Scratch::new("sam-validate");
    let template = repo().join(TEMPLATE);
    let args = [
        OsStr::new("validate"),
        OsStr::new("--lint"),
        OsStr::new("--template"),
        template.as_os_str(),
    ];
    let out = run(&tool("sam"), args, &scratch);
    let text = out.text();
    assert!(
        out.status.success(),
        "sam validate --lint failed ({}):\n{text}",
        out.status
    );
    assert!(
        text.contains("is a valid SAM Template"),
        "sam validate --lint exited 0 without saying the template is valid:\n{text}"
    );
}

/// Whether cfn-lint's parseable output (`file:line:col:line:col:CODE:message`) has an error
/// (`E....`) for `file`.
fn has_error_for(parseable: &str, file: &str) -> bool {
    parseable.lines().any(|line| {
        let mut fields = line.splitn(7, ':');
        fields.next() == Some(file) && fields.nth(4).is_some_and(|code| code.starts_with('E'))
    })
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_bin() -> PathBuf {
    repo().join(".venv/bin")
}

/// A tool installed by `make venv`.
fn tool(name: &str) -> PathBuf {
    let path = venv_bin().join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make test` (it installs the test tools into .venv)",
        path.display()
    );
    path
}

fn read_template() -> String {
    let path = repo().join(TEMPLATE);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn write(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// A fresh directory under the system temp dir, removed when dropped. It is the child's
/// working directory and holds its `HOME`.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "whatsapp-agent-lambda-{label}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let home = dir.join("home");
        std::fs::create_dir_all(home.join(".aws-sam"))
            .unwrap_or_else(|e| panic!("create {}: {e}", home.display()));
        // SAM CLI checks PyPI for a newer version once a week; a fresh HOME would make it try
        // on every run. Record a check "now" so it does not.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        write(
            &home.join(".aws-sam/metadata.json"),
            &format!("{{\"lastVersionCheck\": {now}}}"),
        );
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn home(&self) -> PathBuf {
        self.0.join("home")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Output {
    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `program` in `scratch` with a clean, offline, credential-free environment, killing it
/// after [`TOOL_TIMEOUT`].
fn run<I, S>(program: &Path, args: I, scratch: &Scratch) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let home = scratch.home();
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let path =
        std::env::join_paths(std::iter::once(venv_bin()).chain(std::env::split_paths(&inherited)))
            .expect("PATH entries contain no separator");
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(scratch.path())
        .env_clear()
        .env("PATH", path)
        .env("HOME", &home)
        .env("LANG", "C.UTF-8")
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", home.join(".aws/config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join(".aws/credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("SAM_CLI_TELEMETRY", "0");
    for proxy in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
        command.env(proxy, DEAD_PROXY);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
    // Drained on their own threads so a chatty tool cannot block on a full pipe.
    let stdout = Drain::start(child.stdout.take());
    let stderr = Drain::start(child.stderr.take());
    let Some(status) = wait_bounded(&mut child, program) else {
        // Not joined: a stray grandchild could hold the pipes open forever.
        panic!(
            "{} did not finish within {TOOL_TIMEOUT:?} and was killed; output so far:\n{}{}",
            program.display(),
            stdout.so_far(),
            stderr.so_far()
        );
    };
    Output {
        status,
        stdout: stdout.finish(),
        stderr: stderr.finish(),
    }
}

/// The exit status, or `None` if the child was killed for running past [`TOOL_TIMEOUT`].
fn wait_bounded(child: &mut Child, program: &Path) -> Option<ExitStatus> {
    let deadline = Instant::now() + TOOL_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Err(e) => panic!("wait for {}: {e}", program.display()),
        }
    }
}

/// A pipe read to the end on its own thread, into a buffer that can be looked at any time.
struct Drain {
    bytes: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

impl Drain {
    fn start(pipe: Option<impl Read + Send + 'static>) -> Self {
        let bytes = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bytes);
        let reader = thread::spawn(move || {
            let Some(mut pipe) = pipe else { return };
            let mut chunk = [0; 8192];
            while let Ok(n @ 1..) = pipe.read(&mut chunk) {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&chunk[..n]);
            }
        });
        Self { bytes, reader }
    }

    fn so_far(&self) -> String {
        text_of(&self.bytes)
    }

    fn finish(self) -> String {
        let _ = self.reader.join();
        text_of(&self.bytes)
    }
}

fn text_of(bytes: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&bytes.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

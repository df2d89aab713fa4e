//! A local AWS emulator (moto server) for tests and `make pipeline`: started from the project's
//! `.venv` on a free loopback port, stopped when dropped. Never used in Lambda.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long moto may take to answer its first request (a cold Python start takes 1-3 s).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(100);
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where `make venv` installs moto, relative to the repository.
pub const MOTO_SERVER: &str = ".venv/bin/moto_server";

/// A running `moto_server`.
pub struct Moto {
    child: Child,
    endpoint: String,
    log: PathBuf,
}

impl Moto {
    /// Starts `binary` on `127.0.0.1:<free port>`, logging to `log_dir`, and waits until it
    /// answers.
    pub fn start(binary: &Path, log_dir: &Path) -> Result<Self, String> {
        if !binary.is_file() {
            return Err(format!(
                "{} is missing: run `make venv` (or `make test`), which installs moto into .venv",
                binary.display()
            ));
        }
        let port = free_port().map_err(|e| format!("no free loopback port: {e}"))?;
        let log = log_dir.join(format!("moto-{port}.log"));
        let out =
            std::fs::File::create(&log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("clone log handle: {e}"))?;
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start {}: {e}", binary.display()))?;
        let mut moto = Self {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        moto.wait_ready(SocketAddr::from(([127, 0, 0, 1], port)))?;
        Ok(moto)
    }

    /// `http://127.0.0.1:<port>`, for [`crate::aws::sdk_config_for`].
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Changes this server's moto configuration (`POST /moto-api/config`): e.g.
    /// `{"stepfunctions": {"execute_state_machine": true}}` makes Step Functions really run the
    /// ASL of state machines instead of leaving every execution `RUNNING`.
    pub fn configure(&self, config: &serde_json::Value) -> Result<(), String> {
        let url = format!("{}/moto-api/config", self.endpoint);
        http()
            .post(&url)
            .header("Content-Type", "application/json")
            .send(config.to_string())
            .map(|_| ())
            .map_err(|e| format!("configure moto at {url}: {e}"))
    }

    fn wait_ready(&mut self, addr: SocketAddr) -> Result<(), String> {
        let probe = format!("{}/moto-api/", self.endpoint);
        let http = http();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "moto_server exited with {status}; see {}",
                    self.log.display()
                ));
            }
            let listening = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).is_ok();
            if listening && http.get(&probe).call().is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "moto_server did not answer on {addr} within {STARTUP_TIMEOUT:?}; see {}",
                    self.log.display()
                ));
            }
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

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PROBE_TIMEOUT))
        .build()
        .into()
}

/// A port nothing listens on right now (bound, read, released).
fn free_port() -> std::io::Result<u16> {
    TcpListener::bind("127.0.0.1:0")?
        .local_addr()
        .map(|addr| addr.port())
}

/// The production stack's queues and table, created in an emulator the way `template.yaml`
/// declares them: a FIFO job queue with a redrive policy to a FIFO dead-letter queue, and the
/// idempotency and sessions tables (partition key `id`, TTL on `expires_at`).
#[derive(Debug, Clone)]
pub struct PipelineResources {
    pub queue_url: String,
    pub dead_letter_queue_url: String,
    /// The idempotency table.
    pub table: String,
    /// The sessions table (same shape).
    pub sessions_table: String,
}

/// Creates [`PipelineResources`] named after `prefix`.
pub async fn create_pipeline_resources(
    config: &aws_config::SdkConfig,
    prefix: &str,
    visibility_timeout_secs: u32,
    max_receive_count: u32,
) -> Result<PipelineResources, String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let shown = |e: &dyn std::fmt::Display| e.to_string();

    let sqs = aws_sdk_sqs::Client::new(config);
    let fifo = |name: String| {
        sqs.create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::FifoQueue, "true")
    };
    let dead_letter_queue_url = fifo(format!("{prefix}-dlq.fifo"))
        .send()
        .await
        .map_err(|e| {
            format!(
                "create the dead-letter queue: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?
        .queue_url()
        .unwrap_or_default()
        .to_owned();
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(&dead_letter_queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| format!("read the dead-letter queue ARN: {}", shown(&e)))?
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .unwrap_or_default();
    let redrive =
        serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count });
    let queue_url = fifo(format!("{prefix}.fifo"))
        .attributes(
            QueueAttributeName::VisibilityTimeout,
            visibility_timeout_secs.to_string(),
        )
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|e| {
            format!(
                "create the job queue: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?
        .queue_url()
        .unwrap_or_default()
        .to_owned();

    let table = format!("{prefix}-claims");
    create_keyed_table(config, &table).await?;
    let sessions_table = format!("{prefix}-sessions");
    create_keyed_table(config, &sessions_table).await?;
    Ok(PipelineResources {
        queue_url,
        dead_letter_queue_url,
        table,
        sessions_table,
    })
}

/// A table as `template.yaml` declares the idempotency and sessions tables: partition key `id`
/// (S), on demand, TTL on `expires_at`.
pub async fn create_keyed_table(config: &aws_config::SdkConfig, table: &str) -> Result<(), String> {
    use aws_sdk_dynamodb::error::DisplayErrorContext;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        TimeToLiveSpecification,
    };
    let shown = |e: &dyn std::fmt::Display| e.to_string();
    let dynamodb = aws_sdk_dynamodb::Client::new(config);
    let attribute = AttributeDefinition::builder()
        .attribute_name("id")
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| shown(&e))?;
    let key = KeySchemaElement::builder()
        .attribute_name("id")
        .key_type(KeyType::Hash)
        .build()
        .map_err(|e| shown(&e))?;
    dynamodb
        .create_table()
        .table_name(table)
        .attribute_definitions(attribute)
        .key_schema(key)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .map_err(|e| format!("create the table {table}: {}", DisplayErrorContext(e)))?;
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name("expires_at")
        .enabled(true)
        .build()
        .map_err(|e| shown(&e))?;
    dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| format!("enable TTL on {table}: {}", DisplayErrorContext(e)))?;
    Ok(())
}

/// The alerts table (`ALERTS_TABLE`) as `template.yaml` declares it: the same shape as the
/// idempotency and sessions tables (partition key `id` (S), on demand, TTL on `expires_at`;
/// see [`create_keyed_table`]). moto records the TTL setting (`DescribeTimeToLive` reports
/// it) but never deletes expired items: the adapter's reads treat them as absent.
pub async fn alerts_table(config: &aws_config::SdkConfig, name: &str) -> Result<(), String> {
    create_keyed_table(config, name).await
}

/// The timer queue (`TIMER_QUEUE_URL`) as `template.yaml` declares it: a STANDARD queue (a
/// FIFO queue cannot delay single messages). Returns its URL. moto honours `DelaySeconds`.
pub async fn timer_queue(config: &aws_config::SdkConfig, name: &str) -> Result<String, String> {
    let created = aws_sdk_sqs::Client::new(config)
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(|e| {
            format!(
                "create the timer queue {name}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?;
    created
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| format!("create the timer queue {name}: no URL in the answer"))
}

/// The job queue (`JOB_QUEUE_URL`) alone, as `template.yaml` declares it: FIFO, no
/// content-based deduplication (every sender gives a `MessageDeduplicationId`), no dead-letter
/// queue (see [`create_pipeline_resources`] for the whole shape). Returns its URL.
pub async fn job_queue(config: &aws_config::SdkConfig, name: &str) -> Result<String, String> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let name = if name.ends_with(".fifo") {
        name.to_owned()
    } else {
        format!("{name}.fifo")
    };
    let created = aws_sdk_sqs::Client::new(config)
        .create_queue()
        .queue_name(&name)
        .attributes(QueueAttributeName::FifoQueue, "true")
        .attributes(QueueAttributeName::ContentBasedDeduplication, "false")
        .send()
        .await
        .map_err(|e| {
            format!(
                "create the job queue {name}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(e)
            )
        })?;
    created
        .queue_url()
        .map(str::to_owned)
        .ok_or_else(|| format!("create the job queue {name}: no URL in the answer"))
}

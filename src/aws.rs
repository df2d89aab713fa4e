//! AWS SDK configuration shared by every AWS adapter (Secrets Manager, SQS, DynamoDB, Step
//! Functions): one TLS stack (rustls + ring, as ureq uses), the usual environment, and explicit
//! retry and timeout limits so that no call (a cold start above all) can hang for minutes.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_smithy_http_client::tls;
use std::time::Duration;

/// Access key id of the static credentials used against local emulators (moto, LocalStack).
pub const TEST_ACCESS_KEY_ID: &str = "testing";
/// Secret key of the static credentials used against local emulators.
pub const TEST_SECRET_ACCESS_KEY: &str = "testing";

/// Attempts per AWS call, the first included. The SDK's standard retry mode defaults to 3 as
/// well (`RetryConfig::standard()`); set here so that a change of default cannot lengthen a cold
/// start. It retries throttling, 5xx and transient network errors, never 4xx client errors.
/// <https://docs.aws.amazon.com/sdk-for-rust/latest/dg/retries.html>
pub const SDK_MAX_ATTEMPTS: u32 = 3;
/// Base of the SDK's jittered exponential backoff after throttling (the SDK's default is 1 s;
/// other transient errors start from the retry behaviour's own 50 ms).
pub const SDK_INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest single wait between two attempts (the SDK's default is 20 s).
pub const SDK_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// TCP + TLS connection setup to an AWS endpoint (the SDK's default is 3.1 s).
pub const SDK_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One attempt of a call that must answer fast (Secrets Manager at cold start).
pub const QUICK_CALL_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// A whole call that must answer fast, retries and backoff included: under the 10 s Lambda
/// allows for a function's init phase.
/// <https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html>
pub const QUICK_CALL_TIMEOUT: Duration = Duration::from_secs(8);

/// The SDK configuration for production and local runs: region, credentials and endpoint come
/// from the usual sources (Lambda's environment, `AWS_REGION`, `AWS_PROFILE`, …). The SDK itself
/// honours `AWS_ENDPOINT_URL` (and the per-service `AWS_ENDPOINT_URL_<SERVICE>`), which points
/// every client at a local emulator. Retries and the connect timeout are fixed by
/// [`retry_config`] and [`SDK_CONNECT_TIMEOUT`] (they win over `AWS_MAX_ATTEMPTS`).
pub async fn sdk_config() -> SdkConfig {
    loader().load().await
}

/// The SDK configuration for tests against a local emulator at `endpoint`: a fixed region and
/// static test credentials, so nothing on the host (profiles, IMDS) is consulted for them.
pub async fn sdk_config_for(endpoint: &str, region: &str) -> SdkConfig {
    // `Credentials` is aws-credential-types' one type, re-exported by every service crate.
    let credentials = aws_sdk_secretsmanager::config::Credentials::new(
        TEST_ACCESS_KEY_ID,
        TEST_SECRET_ACCESS_KEY,
        None,
        None,
        "whatsapp-agent-lambda-test",
    );
    loader()
        .endpoint_url(endpoint)
        .region(Region::new(region.to_owned()))
        .credentials_provider(credentials)
        .load()
        .await
}

/// The SDK's standard retry mode with our limits: [`SDK_MAX_ATTEMPTS`] attempts, jittered
/// exponential backoff from [`SDK_INITIAL_BACKOFF`] up to [`SDK_MAX_BACKOFF`].
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard()
        .with_max_attempts(SDK_MAX_ATTEMPTS)
        .with_initial_backoff(SDK_INITIAL_BACKOFF)
        .with_max_backoff(SDK_MAX_BACKOFF)
}

/// Timeouts for a call that must answer fast (Secrets Manager at cold start): per attempt
/// [`QUICK_CALL_ATTEMPT_TIMEOUT`], in all [`QUICK_CALL_TIMEOUT`]. Timeouts already set in
/// `shared` win, so a test (or an operator) can tighten them. Not part of the shared
/// configuration: SQS long polls (20 s) and synchronous Step Functions executions (minutes)
/// legitimately take longer.
pub fn quick_call_timeouts(shared: Option<&TimeoutConfig>) -> TimeoutConfig {
    let quick = TimeoutConfig::builder()
        .connect_timeout(SDK_CONNECT_TIMEOUT)
        .operation_attempt_timeout(QUICK_CALL_ATTEMPT_TIMEOUT)
        .operation_timeout(QUICK_CALL_TIMEOUT);
    match shared {
        Some(shared) => shared.to_builder().take_unset_from(quick).build(),
        None => quick.build(),
    }
}

/// `aws_config::defaults` with our HTTPS client (the SDK crates are built without default
/// features, so there is no default client to fall back on), retries and connect timeout.
fn loader() -> ConfigLoader {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .retry_config(retry_config())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(SDK_CONNECT_TIMEOUT)
                .build(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shared_config_sets_retries_and_connect_timeout() {
        let config = sdk_config_for("http://127.0.0.1:9", "eu-west-1").await;
        let retry = config.retry_config().expect("retry config");
        assert_eq!(retry.max_attempts(), SDK_MAX_ATTEMPTS);
        assert_eq!(retry.initial_backoff(), SDK_INITIAL_BACKOFF);
        assert_eq!(retry.max_backoff(), SDK_MAX_BACKOFF);
        let timeouts = config.timeout_config().expect("timeout config");
        assert_eq!(timeouts.connect_timeout(), Some(SDK_CONNECT_TIMEOUT));
        // Long polls and synchronous executions must not be cut short by the shared config.
        assert_eq!(timeouts.operation_timeout(), None);
        assert_eq!(timeouts.operation_attempt_timeout(), None);
    }

    #[test]
    fn quick_call_timeouts_bound_the_whole_call_unless_already_set() {
        let timeouts = quick_call_timeouts(None);
        assert_eq!(timeouts.operation_timeout(), Some(QUICK_CALL_TIMEOUT));
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(QUICK_CALL_ATTEMPT_TIMEOUT)
        );
        assert!(QUICK_CALL_TIMEOUT < Duration::from_secs(10));

        let tight = TimeoutConfig::builder()
            .operation_timeout(Duration::from_secs(1))
            .build();
        let timeouts = quick_call_timeouts(Some(&tight));
        assert_eq!(timeouts.operation_timeout(), Some(Duration::from_secs(1)));
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(QUICK_CALL_ATTEMPT_TIMEOUT)
        );
        assert_eq!(timeouts.connect_timeout(), Some(SDK_CONNECT_TIMEOUT));
    }
}

//! AWS SDK configuration shared by every AWS adapter (Secrets Manager, SQS, DynamoDB, Step
//! Functions): one TLS stack (rustls + ring, as ureq uses), the usual environment, and explicit
//! retry and timeout limits so that no call (a cold start above all) can hang for minutes.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use std::time::Duration;

/// Amazon Trust Services' roots (Amazon Root CA 1 to 4, and Starfield Services Root CA G2,
/// which cross-signs them), copied from Debian's ca-certificates: every AWS endpoint's
/// certificate chains to one of them. <https://www.amazontrust.com/repository/>
const AMAZON_ROOTS: &str = include_str!("amazon-roots.pem");
/// A PEM bundle trusted in addition to Amazon's roots (a TLS-inspecting proxy, an emulator
/// over HTTPS): the variable the AWS CLI and the other AWS SDKs read for the same purpose.
pub const CA_BUNDLE_VAR: &str = "AWS_CA_BUNDLE";

/// Access key id of the static credentials used against local emulators (moto, LocalStack).
pub const TEST_ACCESS_KEY_ID: &str = "testing";
/// Secret key of the static credentials used against local emulators.
pub const TEST_SECRET_ACCESS_KEY: &str = "testing";

/// DynamoDB service error codes worth retrying (throttling and DynamoDB's own trouble), for
/// the tables' adapters (sessions, alerts).
pub(crate) const DYNAMODB_RETRYABLE_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
    "TransactionConflictException",
];

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
    let mut loader = loader();
    if env_has_credentials(|name| std::env::var_os(name)) {
        // Lambda puts the function role's credentials in the environment, where the default
        // chain would find them first as well; building that chain also builds every other
        // provider (profile, web identity with its STS client, ECS, IMDS): skipping it took
        // the SDK configuration from 0.42 to 0.18 ms of a cold start on the bench machine.
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    loader.load().await
}

/// Whether the environment holds static credentials (`AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY`, both non-empty), as Lambda's always does.
fn env_has_credentials(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        .iter()
        .all(|name| var(name).is_some_and(|value| !value.is_empty()))
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

/// What a failed SDK call says, whichever service: the service's error code and whether it is
/// one of `retryable`; without an answer from the service, `unreachable` (a timeout or a
/// connection failure) or `unreadable response` (both retryable), else `request not built`.
pub fn failure_code<E, R>(error: &SdkError<E, R>, retryable: &[&str]) -> (String, bool)
where
    E: ProvideErrorMetadata,
{
    match error {
        SdkError::ServiceError(_) => {
            let code = error.code().unwrap_or("unknown");
            (code.to_owned(), retryable.contains(&code))
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
            ("unreachable".to_owned(), true)
        }
        SdkError::ResponseError(_) => ("unreadable response".to_owned(), true),
        _ => ("request not built".to_owned(), false),
    }
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

/// The roots the SDK's HTTPS client trusts: Amazon's, plus the bundle named by
/// [`CA_BUNDLE_VAR`] if any. Not the system store: reading and parsing its ~150 certificates
/// (the bundle file, then once more the whole certificate directory) took 3 to 5 ms of every
/// cold start, measured by `make bench`, to trust roots no AWS endpoint uses.
fn trust_store(ca_bundle: Option<&std::ffi::OsStr>) -> TrustStore {
    let store = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(AMAZON_ROOTS.as_bytes());
    let Some(path) = ca_bundle else {
        return store;
    };
    match std::fs::read(path) {
        Ok(pem) => store.with_pem_certificate(pem),
        Err(error) => {
            tracing::error!(
                path = %path.to_string_lossy(),
                %error,
                "{CA_BUNDLE_VAR} cannot be read: trusting Amazon's roots only"
            );
            store
        }
    }
}

/// `aws_config::defaults` with our HTTPS client (the SDK crates are built without default
/// features, so there is no default client to fall back on), retries and connect timeout.
fn loader() -> ConfigLoader {
    let ca_bundle = std::env::var_os(CA_BUNDLE_VAR);
    let tls_context = TlsContext::builder()
        .with_trust_store(trust_store(ca_bundle.as_deref()))
        .build()
        .unwrap_or_default();
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(tls_context)
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

    #[test]
    fn static_credentials_need_both_keys_non_empty() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, value)| std::ffi::OsString::from(value))
            }
        };
        const BOTH: &[(&str, &str)] = &[
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ];
        assert!(env_has_credentials(env(BOTH)));
        assert!(!env_has_credentials(env(&[("AWS_ACCESS_KEY_ID", "AKIA")])));
        assert!(!env_has_credentials(env(&[
            ("AWS_ACCESS_KEY_ID", "AKIA"),
            ("AWS_SECRET_ACCESS_KEY", "")
        ])));
        assert!(!env_has_credentials(env(&[])));
    }

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
    fn amazon_roots_are_the_five_amazon_trust_services_certificates() {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let roots: Vec<_> = CertificateDer::pem_slice_iter(AMAZON_ROOTS.as_bytes())
            .collect::<Result<_, _>>()
            .expect("the embedded roots are valid PEM");
        assert_eq!(roots.len(), 5);
        for name in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
            "Starfield Services Root Certificate Authority - G2",
        ] {
            let found = roots
                .iter()
                .any(|der| der.windows(name.len()).any(|w| w == name.as_bytes()));
            assert!(found, "{name} missing from the embedded roots");
        }
    }

    #[test]
    fn an_unreadable_ca_bundle_keeps_amazons_roots_and_does_not_panic() {
        let missing = std::ffi::OsStr::new("/nonexistent/ca-bundle.pem");
        let store = format!("{:?}", trust_store(Some(missing)));
        assert!(store.contains("enable_native_roots: false"), "{store}");
        let extra = std::env::temp_dir().join(format!("ca-bundle-{}.pem", std::process::id()));
        std::fs::write(&extra, AMAZON_ROOTS).expect("temp file");
        let with_bundle = format!("{:?}", trust_store(Some(extra.as_os_str())));
        std::fs::remove_file(&extra).ok();
        assert!(with_bundle.len() > store.len(), "the bundle was not added");
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

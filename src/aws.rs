//! AWS SDK configuration shared by every AWS adapter (Secrets Manager now; SQS, DynamoDB and
//! Step Functions later): one TLS stack (rustls + ring, as ureq uses) and the usual environment.

use aws_config::{BehaviorVersion, ConfigLoader, Region, SdkConfig};
use aws_smithy_http_client::tls;

/// Access key id of the static credentials used against local emulators (moto, LocalStack).
pub const TEST_ACCESS_KEY_ID: &str = "testing";
/// Secret key of the static credentials used against local emulators.
pub const TEST_SECRET_ACCESS_KEY: &str = "testing";

/// The SDK configuration for production and local runs: region, credentials and endpoint come
/// from the usual sources (Lambda's environment, `AWS_REGION`, `AWS_PROFILE`, …). The SDK itself
/// honours `AWS_ENDPOINT_URL` (and the per-service `AWS_ENDPOINT_URL_<SERVICE>`), which points
/// every client at a local emulator.
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

/// `aws_config::defaults` with our HTTPS client: the SDK crates are built without default
/// features, so there is no default client to fall back on.
fn loader() -> ConfigLoader {
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest()).http_client(http_client)
}

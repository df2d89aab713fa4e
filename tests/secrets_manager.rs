//! Loading the secrets from Secrets Manager, against a real moto server.

mod support;

use support::moto::Moto;
use whatsapp_agent_lambda::aws::sdk_config_for;
use whatsapp_agent_lambda::secrets::{self, SecretsError, from_secrets_manager};

const REGION: &str = "us-east-1";
/// Set only for the child run of `load_finds_secrets_manager_through_aws_endpoint_url`.
const CHILD_SECRET_ID: &str = "TEST_CHILD_SECRET_ID";

/// Starts moto and stores `value` under `name`; returns moto (keep it alive) and the config.
async fn moto_with_secret(name: &str, value: &str) -> (Moto, aws_config::SdkConfig) {
    let moto = Moto::start();
    let config = sdk_config_for(moto.endpoint(), REGION).await;
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create the secret in moto");
    (moto, config)
}

#[tokio::test]
async fn loads_all_four_fields_from_a_json_secret() {
    let (_moto, config) = moto_with_secret(
        "whatsapp/prod",
        r#"{"app_secret":"app-s3cret","access_token":"EAAG-token","verify_token":"verify-me","agent_token":"agent-bearer"}"#,
    )
    .await;
    let secrets = from_secrets_manager(&config, "whatsapp/prod")
        .await
        .unwrap();
    assert_eq!(secrets.app_secret.expose(), "app-s3cret");
    assert_eq!(secrets.access_token.expose(), "EAAG-token");
    assert_eq!(secrets.verify_token.expose(), "verify-me");
    assert_eq!(
        secrets.agent_token.as_ref().map(|t| t.expose()),
        Some("agent-bearer")
    );
}

#[tokio::test]
async fn missing_secret_is_a_not_found_error_naming_the_secret() {
    let moto = Moto::start();
    let config = sdk_config_for(moto.endpoint(), REGION).await;
    let error = from_secrets_manager(&config, "whatsapp/does-not-exist")
        .await
        .unwrap_err();
    assert!(matches!(error, SecretsError::NotFound { .. }), "{error:?}");
    assert!(
        error.to_string().contains("whatsapp/does-not-exist"),
        "{error}"
    );
}

#[tokio::test]
async fn secret_lacking_access_token_names_the_key_and_no_value() {
    let (_moto, config) = moto_with_secret(
        "whatsapp/partial",
        r#"{"app_secret":"app-s3cret","verify_token":"verify-me","agent_token":"agent-bearer"}"#,
    )
    .await;
    let error = from_secrets_manager(&config, "whatsapp/partial")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            SecretsError::MissingKey {
                key: "access_token"
            }
        ),
        "{error:?}"
    );
    let message = format!("{error} {error:?}");
    assert!(message.contains("access_token"), "{message}");
    for value in ["app-s3cret", "verify-me", "agent-bearer"] {
        assert!(!message.contains(value), "{message}");
    }
}

#[tokio::test]
async fn non_json_secret_is_an_error() {
    let (_moto, config) = moto_with_secret("whatsapp/plain", "just-a-plain-token").await;
    let error = from_secrets_manager(&config, "whatsapp/plain")
        .await
        .unwrap_err();
    assert!(matches!(error, SecretsError::NotJsonObject(_)), "{error:?}");
    assert!(!error.to_string().contains("just-a-plain-token"), "{error}");
}

/// `secrets::load` builds its SDK config from the environment alone (as in Lambda): run it in a
/// child process of this test binary whose environment points `AWS_ENDPOINT_URL` at moto, so
/// no test mutates its own process environment.
#[tokio::test]
async fn load_finds_secrets_manager_through_aws_endpoint_url() {
    let (moto, _config) = moto_with_secret(
        "whatsapp/from-env",
        r#"{"app_secret":"app-s3cret","access_token":"EAAG-token","verify_token":"verify-me"}"#,
    )
    .await;
    let missing = std::env::temp_dir().join("no-such-aws-config");
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_loads_secrets_from_the_environment",
            "--ignored",
        ])
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_CONFIG_FILE", &missing)
        .env("AWS_SHARED_CREDENTIALS_FILE", &missing)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env(CHILD_SECRET_ID, "whatsapp/from-env")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
#[ignore = "child of load_finds_secrets_manager_through_aws_endpoint_url"]
async fn child_loads_secrets_from_the_environment() {
    let Ok(secret_id) = std::env::var(CHILD_SECRET_ID) else {
        return;
    };
    let secrets = secrets::load(Some(&secret_id), |_| None).await.unwrap();
    assert_eq!(secrets.app_secret.expose(), "app-s3cret");
    assert_eq!(secrets.access_token.expose(), "EAAG-token");
    assert!(secrets.agent_token.is_none());
}

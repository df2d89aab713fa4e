//! Loading the secrets from Secrets Manager, against a real moto server; faults (throttling,
//! an unreachable or hanging endpoint) against loopback fakes; re-reading the access token.

mod support;

use aws_config::timeout::TimeoutConfig;
use lambda_http::Request;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::fakes::header;
use support::moto::Moto;
use support::net::free_port;
use whatsapp_agent_lambda::aws::sdk_config_for;
use whatsapp_agent_lambda::dev::LoopbackServer;
use whatsapp_agent_lambda::domain::PhoneNumberId;
use whatsapp_agent_lambda::domain::{OutgoingMessage, Recipient};
use whatsapp_agent_lambda::entry::local::handler;
use whatsapp_agent_lambda::graph::{GraphClient, Messenger};
use whatsapp_agent_lambda::secrets::{
    Secret, SecretsError, SecretsManagerToken, TokenSource, from_secrets_manager,
};
use whatsapp_agent_lambda::webhook::answer::response;

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
async fn loads_all_five_fields_from_a_json_secret() {
    let (_moto, config) = moto_with_secret(
        "whatsapp/prod",
        r#"{"app_secret":"app-s3cret","access_token":"EAAG-token","verify_token":"verify-me","agent_token":"agent-bearer","alert_token":"alert-bearer"}"#,
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
    assert_eq!(secrets.alert_token.expose(), "alert-bearer");
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

/// The cold start builds its SDK config from the environment alone (as in Lambda): run it in a
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
    let config = whatsapp_agent_lambda::aws::sdk_config().await;
    let secrets = from_secrets_manager(&config, &secret_id).await.unwrap();
    assert_eq!(secrets.app_secret.expose(), "app-s3cret");
    assert_eq!(secrets.access_token.expose(), "EAAG-token");
    assert!(secrets.agent_token.is_none());
}

// ---------------------------------------------------------------- faults and token refresh

/// A fake Secrets Manager speaking the JSON protocol: counts `GetSecretValue` calls and answers
/// each with `answer(n)` (n from 0) after `delay`.
fn fake_secrets_manager(
    delay: Duration,
    answer: impl Fn(usize) -> (u16, String) + Send + Sync + 'static,
) -> (LoopbackServer, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let answer = Arc::new(answer);
    let server = LoopbackServer::start(handler(move |request: Request| {
        let counter = counter.clone();
        let answer = answer.clone();
        async move {
            let target = header(&request, "x-amz-target");
            assert_eq!(target.as_deref(), Some("secretsmanager.GetSecretValue"));
            let n = counter.fetch_add(1, Ordering::SeqCst);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let (status, body) = answer(n);
            response(status, "application/x-amz-json-1.1", body)
        }
    }));
    (server, calls)
}

/// A `GetSecretValue` answer holding `secret` (the JSON document) as `SecretString`.
fn secret_value(name: &str, secret: &str) -> (u16, String) {
    let body = serde_json::json!({
        "ARN": format!("arn:aws:secretsmanager:{REGION}:123456789012:secret:{name}-AbCdEf"),
        "Name": name,
        "SecretString": secret,
        "VersionId": "00000000-0000-0000-0000-000000000001",
        "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1_795_000_000.0
    });
    (200, body.to_string())
}

fn document(access_token: &str) -> String {
    serde_json::json!({
        "app_secret": "app-s3cret",
        "access_token": access_token,
        "verify_token": "verify-me"
    })
    .to_string()
}

fn closed_port_endpoint() -> String {
    let port = free_port();
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn throttled_secrets_manager_is_retried_three_times_then_named_clearly() {
    let (server, calls) = fake_secrets_manager(Duration::ZERO, |_| {
        (
            400,
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_owned(),
        )
    });
    let config = sdk_config_for(&server.url(), REGION).await;
    let started = Instant::now();
    let error = from_secrets_manager(&config, "whatsapp/prod")
        .await
        .unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3, "SDK_MAX_ATTEMPTS attempts");
    assert!(
        matches!(error, SecretsError::Throttled { attempts: 3, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("whatsapp/prod")
            && message.contains("ThrottlingException")
            && message.contains("Rate exceeded"),
        "{message}"
    );
    // Two jittered backoffs of at most 0.5 s and 1 s.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unreachable_secrets_manager_fails_quickly_naming_the_secret() {
    let config = sdk_config_for(&closed_port_endpoint(), REGION).await;
    let started = Instant::now();
    let error = from_secrets_manager(&config, "whatsapp/prod")
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SecretsError::Unreachable { secret_id, .. } if secret_id == "whatsapp/prod"),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("whatsapp/prod") && message.contains("3 attempts"),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn hanging_secrets_manager_is_cut_off_by_the_operation_timeout() {
    let (server, _calls) = fake_secrets_manager(Duration::from_secs(30), |_| {
        secret_value("whatsapp/prod", &document("never"))
    });
    // The production limits are 3 s per attempt and 8 s in all (unit-tested in `aws`); a
    // tighter operation timeout set on the shared configuration wins, which keeps this short.
    let config = sdk_config_for(&server.url(), REGION)
        .await
        .to_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(1))
                .build(),
        )
        .build();
    let started = Instant::now();
    let error = from_secrets_manager(&config, "whatsapp/prod")
        .await
        .unwrap_err();
    assert!(
        matches!(error, SecretsError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("whatsapp/prod"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn token_refresh_reads_the_rotated_access_token() {
    let (_moto, config) = moto_with_secret("whatsapp/rotating", &document("EAAG-old")).await;
    aws_sdk_secretsmanager::Client::new(&config)
        .put_secret_value()
        .secret_id("whatsapp/rotating")
        .secret_string(document("EAAG-new"))
        .send()
        .await
        .unwrap();
    let tokens = SecretsManagerToken::new(&config, "whatsapp/rotating", Secret::from("EAAG-old"));
    assert_eq!(tokens.current().expose(), "EAAG-old");
    assert_eq!(tokens.refresh().await.unwrap().expose(), "EAAG-new");
    assert_eq!(tokens.current().expose(), "EAAG-new");
}

#[tokio::test]
async fn concurrent_token_refreshes_read_the_secret_once() {
    let (server, calls) = fake_secrets_manager(Duration::from_millis(200), |n| {
        secret_value("whatsapp/prod", &document(&format!("EAAG-{n}")))
    });
    let config = sdk_config_for(&server.url(), REGION).await;
    let tokens = Arc::new(SecretsManagerToken::new(
        &config,
        "whatsapp/prod",
        Secret::from("EAAG-old"),
    ));
    let refreshes: Vec<_> = (0..10)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.refresh().await.unwrap().expose().to_owned() })
        })
        .collect();
    for refresh in refreshes {
        assert_eq!(refresh.await.unwrap(), "EAAG-0");
    }
    // A refresh shortly after reuses it too.
    assert_eq!(tokens.refresh().await.unwrap().expose(), "EAAG-0");
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // Outside the reuse window, the secret is read again.
    let tokens = SecretsManagerToken::new(&config, "whatsapp/prod", Secret::from("EAAG-old"))
        .with_reuse_window(Duration::ZERO);
    assert_eq!(tokens.refresh().await.unwrap().expose(), "EAAG-1");
    assert_eq!(tokens.refresh().await.unwrap().expose(), "EAAG-2");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn token_refresh_refuses_an_empty_access_token() {
    let (server, _calls) = fake_secrets_manager(Duration::ZERO, |_| {
        secret_value("whatsapp/prod", &document(""))
    });
    let config = sdk_config_for(&server.url(), REGION).await;
    let tokens = SecretsManagerToken::new(&config, "whatsapp/prod", Secret::from("EAAG-old"));
    let error = tokens.refresh().await.unwrap_err();
    assert!(
        matches!(
            error,
            SecretsError::EmptyKey {
                key: "access_token",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("whatsapp/prod"), "{error}");
    // The token in use stays; a refresh moments later does not read again.
    assert_eq!(tokens.current().expose(), "EAAG-old");
    assert!(matches!(
        tokens.refresh().await,
        Err(SecretsError::RefreshFailed { .. })
    ));
}

/// The production wiring: the Graph API refuses the old token (190), the client re-reads the
/// secret from Secrets Manager (moto), and the retry carries the rotated token.
#[tokio::test]
async fn graph_client_rereads_a_rotated_token_from_secrets_manager() {
    let (_moto, config) = moto_with_secret("whatsapp/graph", &document("EAAG-old")).await;
    aws_sdk_secretsmanager::Client::new(&config)
        .put_secret_value()
        .secret_id("whatsapp/graph")
        .secret_string(document("EAAG-new"))
        .send()
        .await
        .unwrap();
    let bearers: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = bearers.clone();
    let graph = LoopbackServer::start(handler(move |request: Request| {
        let seen = seen.clone();
        async move {
            let bearer = header(&request, "authorization").unwrap_or_default();
            seen.lock().unwrap().push(bearer.clone());
            if bearer == "Bearer EAAG-new" {
                response(
                    200,
                    "application/json",
                    r#"{"messages":[{"id":"wamid.OUT"}]}"#,
                )
            } else {
                response(
                    401,
                    "application/json",
                    r#"{"error":{"message":"Error validating access token","type":"OAuthException","code":190,"fbtrace_id":"Zz"}}"#,
                )
            }
        }
    }));
    let tokens = Arc::new(SecretsManagerToken::new(
        &config,
        "whatsapp/graph",
        Secret::from("EAAG-old"),
    ));
    let client =
        GraphClient::with_token_source(&graph.url(), "v25.0", tokens, Duration::from_secs(5));
    let id = client
        .send(
            &PhoneNumberId::from("106540352242922"),
            &Recipient::Phone("14155551234".to_owned()),
            &OutgoingMessage::Text {
                body: "hi".to_owned(),
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(id.as_str(), "wamid.OUT");
    assert_eq!(
        *bearers.lock().unwrap(),
        vec!["Bearer EAAG-old", "Bearer EAAG-new"]
    );
}

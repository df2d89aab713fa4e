//! The Secrets Manager adapter: reads the JSON secret named by `WHATSAPP_SECRET_ID`. The only
//! place `aws_sdk_secretsmanager` types appear; SDK errors become [`SecretsError`] here.

use super::{Secrets, SecretsError};
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;

/// Error codes that mean "you may not read this secret" (IAM, KMS, or credentials).
const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDeniedException",
    "DecryptionFailure",
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "ExpiredTokenException",
];

/// Reads `secret_id` (name or ARN) and parses it with [`Secrets::from_json`].
pub async fn from_secrets_manager(
    config: &aws_config::SdkConfig,
    secret_id: &str,
) -> Result<Secrets, SecretsError> {
    let client = aws_sdk_secretsmanager::Client::new(config);
    let output = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|error| convert(secret_id, error))?;
    let Some(text) = output.secret_string() else {
        return Err(SecretsError::NotAString {
            secret_id: secret_id.to_owned(),
        });
    };
    let secrets = Secrets::from_json(text).inspect_err(|error| {
        tracing::error!(secret_id, %error, "secret has the wrong shape");
    })?;
    secrets.log_gaps("secrets-manager");
    tracing::info!(
        secret_id,
        agent_token = secrets.agent_token.is_some(),
        "secrets loaded from Secrets Manager"
    );
    Ok(secrets)
}

/// Keeps the SDK error's code and message, not its type.
fn convert<R>(secret_id: &str, error: SdkError<GetSecretValueError, R>) -> SecretsError
where
    R: std::fmt::Debug,
{
    let secret_id = secret_id.to_owned();
    let Some(service) = error.as_service_error() else {
        // Dispatch failure, timeout, unreadable response: nothing answered us usefully.
        return SecretsError::Unreachable {
            secret_id,
            message: DisplayErrorContext(&error).to_string(),
        };
    };
    if service.is_resource_not_found_exception() {
        return SecretsError::NotFound { secret_id };
    }
    let code = service.code().unwrap_or("Unknown").to_owned();
    let message = service
        .message()
        .map(str::to_owned)
        .unwrap_or_else(|| DisplayErrorContext(&error).to_string());
    if ACCESS_DENIED_CODES.contains(&code.as_str()) {
        return SecretsError::AccessDenied {
            secret_id,
            message: format!("{code}: {message}"),
        };
    }
    SecretsError::Service {
        secret_id,
        code,
        message,
    }
}

//! Where the Graph API access token comes from while the function runs: the token in use now,
//! and a way to re-read it when Meta refuses it (a rotated or expired system user token).
//! [`StaticToken`] (environment variables, tests) never changes; the Secrets Manager source
//! ([`super::SecretsManagerToken`]) re-reads the secret.

use super::{Secret, SecretsError};
use crate::BoxFuture;

/// The Graph API access token in use, and how to re-read it.
pub trait TokenSource: Send + Sync {
    /// The token to send now.
    fn current(&self) -> Secret;

    /// Re-reads the token (it may have been rotated) and returns the one to use from now on.
    /// Implementations refresh one at a time and may hand back a refresh that has just
    /// happened instead of reading again. The same token as before means "nothing newer".
    fn refresh(&self) -> BoxFuture<'_, Result<Secret, SecretsError>>;
}

/// A token that never changes: read once from the environment (local runs) or given by a test.
/// Its refresh returns the same token, so a refused token is not retried.
#[derive(Debug, Clone, Default)]
pub struct StaticToken(Secret);

impl StaticToken {
    pub fn new(token: Secret) -> Self {
        Self(token)
    }
}

impl TokenSource for StaticToken {
    fn current(&self) -> Secret {
        self.0.clone()
    }

    fn refresh(&self) -> BoxFuture<'_, Result<Secret, SecretsError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn static_token_refreshes_to_itself() {
        let source = StaticToken::new(Secret::from("EAAG-token"));
        assert_eq!(source.current().expose(), "EAAG-token");
        assert_eq!(source.refresh().await.unwrap().expose(), "EAAG-token");
    }
}

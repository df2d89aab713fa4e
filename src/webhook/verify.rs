//! Webhook authenticity: the `X-Hub-Signature-256` HMAC over the exact body bytes, and the
//! `hub.verify_token` handshake. Both compare in constant time.
//! <https://developers.facebook.com/docs/graph-api/webhooks/getting-started#event-notifications>

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The header Meta signs every POST with.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";
const PREFIX: &str = "sha256=";
const SHA256_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused: one variant per failure mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no app secret configured: nothing can be verified")]
    EmptySecret,
    #[error("missing X-Hub-Signature-256 header")]
    MissingHeader,
    #[error("more than one X-Hub-Signature-256 header")]
    DuplicateHeader,
    #[error("signature does not start with sha256=")]
    MissingPrefix,
    #[error("signature is not hex")]
    BadHex,
    #[error("signature has the wrong length")]
    WrongLength,
    #[error("signature does not match the body")]
    Mismatch,
}

/// Verifies `header` (`sha256=<hex>`) against `body` with `secret`. An empty secret never
/// verifies, so a misconfigured function refuses everything rather than accepting anything.
pub fn verify_signature(
    header: Option<&str>,
    secret: &[u8],
    body: &[u8],
) -> Result<(), VerifyError> {
    if secret.is_empty() {
        return Err(VerifyError::EmptySecret);
    }
    let header = header.ok_or(VerifyError::MissingHeader)?;
    let hex_digest = header
        .trim()
        .strip_prefix(PREFIX)
        .ok_or(VerifyError::MissingPrefix)?;
    if hex_digest.len() != SHA256_LEN * 2 {
        return Err(if hex_digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            VerifyError::WrongLength
        } else {
            VerifyError::BadHex
        });
    }
    // Hex digits are accepted in either case. Meta sends lowercase, but `AB` and `ab` are the
    // same byte: what is compared (in constant time) is the 32-byte MAC, so an uppercase
    // spelling of the right digest is the right digest, and no spelling of a wrong one passes.
    // The `sha256=` prefix, by contrast, must be exactly Meta's.
    let mut expected = [0u8; SHA256_LEN];
    hex::decode_to_slice(hex_digest, &mut expected).map_err(|_| VerifyError::BadHex)?;
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| VerifyError::EmptySecret)?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| VerifyError::Mismatch)
}

/// Signs `body` the way Meta does: `sha256=<lowercase hex>`. For tests, events and the demo.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

/// Compares a presented token with the configured one in constant time. An empty configured
/// token never matches.
pub fn token_matches(configured: &[u8], presented: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    !configured.is_empty() && bool::from(configured.ct_eq(presented))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"test-app-secret";
    const BODY: &[u8] = br#"{"object":"whatsapp_business_account","entry":[]}"#;

    #[test]
    fn accepts_the_signature_of_the_exact_body() {
        let header = sign(SECRET, BODY);
        assert_eq!(verify_signature(Some(&header), SECRET, BODY), Ok(()));
    }

    #[test]
    fn matches_the_rfc4231_hmac_sha256_test_vector() {
        // RFC 4231 test case 2.
        let header = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            header,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn accepts_uppercase_hex_of_the_same_digest_only() {
        let lower = sign(SECRET, BODY);
        let upper = format!("sha256={}", lower[PREFIX.len()..].to_ascii_uppercase());
        assert_eq!(verify_signature(Some(&upper), SECRET, BODY), Ok(()));
        let other = sign(SECRET, b"{}");
        let other_upper = format!("sha256={}", other[PREFIX.len()..].to_ascii_uppercase());
        assert_eq!(
            verify_signature(Some(&other_upper), SECRET, BODY),
            Err(VerifyError::Mismatch)
        );
        let upper_prefix = lower.replacen("sha256=", "SHA256=", 1);
        assert_eq!(
            verify_signature(Some(&upper_prefix), SECRET, BODY),
            Err(VerifyError::MissingPrefix)
        );
    }

    #[test]
    fn rejects_tampered_body() {
        let header = sign(SECRET, BODY);
        let tampered = br#"{"object":"whatsapp_business_account","entry":[1]}"#;
        assert_eq!(
            verify_signature(Some(&header), SECRET, tampered),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn rejects_another_secret() {
        let header = sign(b"other", BODY);
        assert_eq!(
            verify_signature(Some(&header), SECRET, BODY),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn rejects_missing_header() {
        assert_eq!(
            verify_signature(None, SECRET, BODY),
            Err(VerifyError::MissingHeader)
        );
    }

    #[test]
    fn rejects_missing_or_wrong_prefix() {
        let hex = sign(SECRET, BODY)[PREFIX.len()..].to_owned();
        assert_eq!(
            verify_signature(Some(&hex), SECRET, BODY),
            Err(VerifyError::MissingPrefix)
        );
        let sha1 = format!("sha1={hex}");
        assert_eq!(
            verify_signature(Some(&sha1), SECRET, BODY),
            Err(VerifyError::MissingPrefix)
        );
    }

    #[test]
    fn rejects_non_hex_and_truncated_signatures() {
        let bad_hex = format!("sha256={}", "zz".repeat(SHA256_LEN));
        assert_eq!(
            verify_signature(Some(&bad_hex), SECRET, BODY),
            Err(VerifyError::BadHex)
        );
        let truncated = &sign(SECRET, BODY)[..40];
        assert_eq!(
            verify_signature(Some(truncated), SECRET, BODY),
            Err(VerifyError::WrongLength)
        );
    }

    #[test]
    fn empty_secret_never_verifies() {
        let header = sign(b"", BODY);
        assert_eq!(
            verify_signature(Some(&header), b"", BODY),
            Err(VerifyError::EmptySecret)
        );
    }

    #[test]
    fn verify_token_compares_whole_tokens() {
        assert!(token_matches(b"abc", b"abc"));
        assert!(!token_matches(b"abc", b"abd"));
        assert!(!token_matches(b"abc", b"ab"));
        assert!(!token_matches(b"", b""));
    }
}

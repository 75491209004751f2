//! Opaque credentials the authorization server hands out: client ids and secrets, authorization codes,
//! refresh tokens, session and flow ids. Each is 256 random bits in base64url behind a prefix that
//! names its kind (so logs and secret scanners recognise one), and only its SHA-256 is stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub const CLIENT_SECRET_PREFIX: &str = "cas_cs_";
pub const CODE_PREFIX: &str = "cas_ac_";
pub const REFRESH_TOKEN_PREFIX: &str = "cas_rt_";
pub const SESSION_PREFIX: &str = "cas_ss_";
pub const FLOW_PREFIX: &str = "cas_fl_";
pub const ENROLMENT_PREFIX: &str = "cas_en_";

/// A new random credential: `prefix` + 43 base64url characters. Only `[A-Za-z0-9_-]`, so it survives
/// HTTP Basic, form and URL encodings unchanged whichever way a client library applies them.
pub fn generate(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A public identifier (client ids, token ids, grant ids): 128 random bits.
pub fn generate_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// What is stored: lowercase hex SHA-256. High-entropy values need no slow password hash.
pub fn hash(credential: &str) -> String {
    hex::encode(Sha256::digest(credential.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_prefixed_distinct_and_url_safe() {
        let first = generate(REFRESH_TOKEN_PREFIX);
        let second = generate(REFRESH_TOKEN_PREFIX);
        assert!(first.starts_with(REFRESH_TOKEN_PREFIX), "prefix names the kind");
        assert_eq!(first.len(), REFRESH_TOKEN_PREFIX.len() + 43, "256 bits in base64url");
        assert_ne!(first, second, "two draws differ");
        assert!(first.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'), "url safe");
        assert_eq!(hash(&first).len(), 64, "hex SHA-256");
        assert_ne!(hash(&first), hash(&second), "distinct hashes");
    }
}

//! API keys: `cas_<public id>_<secret>`. Only the SHA-256 of the whole key is stored; the public id
//! names the key in listings and revocations without revealing anything that authenticates.

use base64::Engine;
use rand::RngCore;
use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

const PREFIX: &str = "cas_";
const PUBLIC_ID_LEN: usize = 12;
const SECRET_BYTES: usize = 32;

/// A freshly minted key: `secret` is shown once and never stored.
pub struct NewKey {
    pub public_id: String,
    pub secret: String,
    pub hash: String,
}

pub fn generate_key() -> NewKey {
    let mut rng = rand::rng();
    let public_id = Alphanumeric.sample_string(&mut rng, PUBLIC_ID_LEN).to_ascii_lowercase();
    let mut secret_bytes = [0u8; SECRET_BYTES];
    rng.fill_bytes(&mut secret_bytes);
    let secret_part = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret_bytes);
    let secret = format!("{PREFIX}{public_id}_{secret_part}");
    let hash = hash_key(&secret);
    NewKey { public_id, secret, hash }
}

/// Lowercase hex SHA-256 of the whole key string.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A cheap shape check before any database work: refuses garbage without a lookup.
pub fn looks_like_key(token: &str) -> bool {
    let Some(rest) = token.strip_prefix(PREFIX) else { return false };
    let Some((public_id, secret)) = rest.split_once('_') else { return false };
    public_id.len() == PUBLIC_ID_LEN
        && public_id.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit())
        && secret.len() == 43
        && secret.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_the_documented_shape_and_distinct_hashes() {
        let first = generate_key();
        let second = generate_key();
        assert!(looks_like_key(&first.secret), "generated key {} must pass the shape check", first.public_id);
        assert!(first.secret.contains(&first.public_id), "the public id is part of the key");
        assert_ne!(first.hash, second.hash, "two keys never share a hash");
        assert_eq!(first.hash, hash_key(&first.secret), "the stored hash is the hash of the whole key");
        assert_eq!(first.hash.len(), 64, "hex SHA-256");
    }

    #[test]
    fn malformed_tokens_are_refused_before_any_lookup() {
        let key = generate_key().secret;
        for token in ["", "cas_", "Bearer x", &key[..key.len() - 1], &key.replace("cas_", "cat_"), &format!("{key}x")] {
            assert!(!looks_like_key(token), "{token:?} must not look like a key");
        }
    }
}

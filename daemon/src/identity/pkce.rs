//! PKCE (RFC 7636), S256 only: `plain` would let anyone who sees the authorization request redeem the
//! code, so it is refused, as is a request without a challenge.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A challenge as sent: base64url without padding of a SHA-256, so exactly 43 characters.
pub fn is_valid_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

/// A verifier: 43 to 128 characters of `[A-Za-z0-9-._~]`.
pub fn is_valid_verifier(verifier: &str) -> bool {
    (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~'))
}

pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `verifier` answers `challenge`, compared in constant time.
pub fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    is_valid_verifier(verifier) && bool::from(s256(verifier).as_bytes().ct_eq(challenge.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rfc_7636_appendix_b_example_verifies() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256(verifier), challenge, "S256 of the RFC example");
        assert!(is_valid_challenge(challenge), "the example challenge is well formed");
        assert!(verifier_matches(verifier, challenge), "the example verifier matches");
        assert!(!verifier_matches(&verifier.replace('d', "e"), challenge), "another verifier does not");
        assert!(!verifier_matches(challenge, challenge), "the challenge itself is not the verifier (plain downgrade)");
    }

    #[test]
    fn malformed_verifiers_and_challenges_are_refused() {
        for verifier in ["", "short", &"a".repeat(42), &"a".repeat(129), &format!("{}!", "a".repeat(50))] {
            assert!(!is_valid_verifier(verifier), "verifier {verifier:?}");
        }
        assert!(is_valid_verifier(&"a~.-_".repeat(10)), "every allowed character");
        for challenge in ["", &"a".repeat(42), &"a".repeat(44), &format!("{}=", "a".repeat(42)), &"+".repeat(43)] {
            assert!(!is_valid_challenge(challenge), "challenge {challenge:?}");
        }
    }
}

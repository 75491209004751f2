//! Skill signatures: Ed25519 over a skill's name and its bundle digest.
//!
//! The signed message is the bytes
//!
//! ```text
//! castellan-skill-signature-v1\n NAME \n DIGEST
//! ```
//!
//! with no spaces: `b"castellan-skill-signature-v1\n"`, the skill's name, `b"\n"`, then the digest text
//! as [`crate::digest_of`] gives it (`sha256:` and 64 lowercase hex digits), with no trailing newline.
//! The name is bound so that a signature cannot be moved to another skill with the same content;
//! neither a checked skill name nor a digest holds a newline, so the message splits one way only.
//!
//! A signature lives in the skill folder's root as [`SIGNATURE_FILE`], JSON
//! `{"key": "ed25519:BASE64", "signature": "BASE64"}` (standard base64 with padding): `key` is the
//! signer's raw 32-byte public key, the same text a profile's `skills.signing_keys` lists, and
//! `signature` the 64-byte Ed25519 signature. Verification uses `verify_strict` (no malleable or
//! small-order signatures and keys).

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

/// The signature file's name, in the skill folder's root; it is not part of the skill's content.
pub const SIGNATURE_FILE: &str = ".castellan-signature.json";

/// The largest signature file read: real ones are under 200 bytes.
pub const MAX_SIGNATURE_FILE_BYTES: u64 = 4096;

/// What starts a public key's text.
const PUBLIC_KEY_PREFIX: &str = "ed25519:";

/// What starts every signed message; the version changes if the message ever does.
const SIGNED_MESSAGE_PREFIX: &[u8] = b"castellan-skill-signature-v1\n";

/// Padded base64 of a 32-byte public key.
const PUBLIC_KEY_BASE64_LEN: usize = 44;

/// Padded base64 of a 64-byte signature.
const SIGNATURE_BASE64_LEN: usize = 88;

/// The signature file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// The signer's public key: `ed25519:` and the standard base64 of its 32 bytes.
    pub key: String,
    /// The standard base64 of the 64-byte Ed25519 signature over [`signed_message`].
    pub signature: String,
}

/// Why a key could not be read or a signature was refused. No message holds key material, and
/// public keys are shown only by their first characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signing key is not an unencrypted PKCS#8 PEM Ed25519 private key.
    #[error(
        "the signing key is not usable: {reason}; expected an unencrypted PKCS#8 PEM Ed25519 private key, as `openssl genpkey -algorithm ed25519` writes"
    )]
    PrivateKeyUnreadable { reason: &'static str },
    /// A public key's text is not `ed25519:` and the base64 of a valid 32-byte Ed25519 key.
    #[error("the public key is malformed: {reason}")]
    MalformedKey { reason: &'static str },
    /// The signature's text is not the base64 of 64 bytes.
    #[error("the signature is malformed: {reason}")]
    MalformedSignature { reason: &'static str },
    /// The signature names a well-formed key that is not among the trusted ones.
    #[error("the signature is by key {key_start}, which is not among the trusted signing keys")]
    KeyNotTrusted {
        /// The key's first characters, enough to tell keys apart in a message.
        key_start: String,
    },
    /// The signature does not verify: the content, the name or the signature changed.
    #[error("the signature does not match this skill's name and content")]
    BadSignature,
}

/// The bytes that are signed for skill `name` with bundle digest `digest` (see the module doc).
pub fn signed_message(name: &str, digest: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNED_MESSAGE_PREFIX.len() + name.len() + 1 + digest.len());
    message.extend_from_slice(SIGNED_MESSAGE_PREFIX);
    message.extend_from_slice(name.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(digest.as_bytes());
    message
}

/// Reads an Ed25519 private key from PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
pub fn signing_key_from_pem(text: &str) -> Result<SigningKey, SignatureError> {
    // The underlying errors are mapped to fixed reasons so that nothing of the text is repeated.
    SigningKey::from_pkcs8_pem(text.trim()).map_err(|error| {
        let reason = match error {
            ed25519_dalek::pkcs8::Error::Asn1(_) => "it is not PEM with a `PRIVATE KEY` label holding PKCS#8",
            ed25519_dalek::pkcs8::Error::PublicKey(_) => "it is not an Ed25519 key",
            ed25519_dalek::pkcs8::Error::KeyMalformed => "its key bytes are malformed",
            _ => "it could not be decoded",
        };
        SignatureError::PrivateKeyUnreadable { reason }
    })
}

/// A public key as text: `ed25519:` and the standard base64 of its 32 bytes.
pub fn public_key_text(key: &VerifyingKey) -> String {
    format!("{PUBLIC_KEY_PREFIX}{}", BASE64.encode(key.as_bytes()))
}

/// Parses a public key's text (as [`public_key_text`] writes it): a valid Ed25519 point that is not
/// of small order.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, SignatureError> {
    let malformed = |reason| SignatureError::MalformedKey { reason };
    let encoded = text.strip_prefix(PUBLIC_KEY_PREFIX).ok_or(malformed("it does not start with `ed25519:`"))?;
    if encoded.len() != PUBLIC_KEY_BASE64_LEN {
        return Err(malformed("it is not the padded base64 of 32 bytes"));
    }
    let bytes = BASE64.decode(encoded).map_err(|_| malformed("it is not standard base64 with padding"))?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| malformed("it is not the padded base64 of 32 bytes"))?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| malformed("it is not a valid Ed25519 public key"))?;
    if key.is_weak() {
        return Err(malformed("it is a weak (small-order) Ed25519 key"));
    }
    Ok(key)
}

/// Signs skill `name` with bundle digest `digest`. Ed25519 signing is deterministic: no randomness.
pub fn sign(name: &str, digest: &str, key: &SigningKey) -> Signature {
    let signature = key.sign(&signed_message(name, digest));
    Signature { key: public_key_text(&key.verifying_key()), signature: BASE64.encode(signature.to_bytes()) }
}

/// Verifies that `signature` signs skill `name` with bundle digest `digest` and is made by one of
/// the `trusted` keys.
pub fn verify(name: &str, digest: &str, signature: &Signature, trusted: &[VerifyingKey]) -> Result<(), SignatureError> {
    let key = parse_public_key(&signature.key)?;
    if !trusted.iter().any(|trusted_key| trusted_key.as_bytes() == key.as_bytes()) {
        let key_start: String = signature.key.chars().take(PUBLIC_KEY_PREFIX.len() + 8).collect();
        return Err(SignatureError::KeyNotTrusted { key_start: format!("{key_start}…") });
    }
    let malformed = |reason| SignatureError::MalformedSignature { reason };
    if signature.signature.len() != SIGNATURE_BASE64_LEN {
        return Err(malformed("it is not the padded base64 of 64 bytes"));
    }
    let bytes = BASE64.decode(&signature.signature).map_err(|_| malformed("it is not standard base64 with padding"))?;
    let bytes: [u8; 64] = bytes.try_into().map_err(|_| malformed("it is not the padded base64 of 64 bytes"))?;
    let ed25519_signature = ed25519_dalek::Signature::from_bytes(&bytes);
    key.verify_strict(&signed_message(name, digest), &ed25519_signature).map_err(|_| SignatureError::BadSignature)
}

/// Writes `signature` as [`SIGNATURE_FILE`] in the folder `dir`: pretty JSON and a newline, written
/// to a temporary file in the same folder and renamed over the old one, so a reader sees the old
/// signature or the new one, never half of one.
pub fn write_signature(dir: &Path, signature: &Signature) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(signature).map_err(std::io::Error::other)?;
    text.push('\n');
    let temporary = dir.join(format!("{SIGNATURE_FILE}.{}.tmp", std::process::id()));
    let written = (|| {
        // `create_new` refuses to follow or reuse anything already at the temporary name.
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, dir.join(SIGNATURE_FILE))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;

    use super::*;
    use crate::test_folder::TestFolder;

    /// Written by `openssl genpkey -algorithm ed25519`; a test key, used nowhere else.
    const OPENSSL_TEST_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIGVxgpudg7JS4bWFEY5i/fVKESW4uLsZoQ/XMWc972ki
-----END PRIVATE KEY-----
";

    const DIGEST: &str = "sha256:0f343b0931126a20f133d67c2b018a3b5e8d3c7e1d1a8a0f5f7c9f0e3b1f4a2c";

    fn test_key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_pem_key_written_by_ed25519_dalek_reads_back_as_the_same_key() {
        let key = test_key(7);
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "the openssl label");
        let read = signing_key_from_pem(&pem).unwrap();
        assert_eq!(read.to_bytes(), key.to_bytes());
    }

    #[test]
    fn a_pem_key_written_by_openssl_reads_and_signs() {
        let key = signing_key_from_pem(OPENSSL_TEST_KEY_PEM).unwrap();
        let signature = sign("notes", DIGEST, &key);
        assert_eq!(verify("notes", DIGEST, &signature, &[key.verifying_key()]), Ok(()));
    }

    #[test]
    fn unusable_pem_is_refused_without_echoing_it() {
        let public_pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        let truncated = OPENSSL_TEST_KEY_PEM.replace("972ki", "");
        for text in ["", "not a key", public_pem, truncated.as_str()] {
            let error = signing_key_from_pem(text).unwrap_err();
            assert!(matches!(error, SignatureError::PrivateKeyUnreadable { .. }), "{text:?}: {error:?}");
            assert!(!error.to_string().contains("MC4CAQ"), "{text:?}: the message holds no key material: {error}");
        }
    }

    #[test]
    fn public_key_text_round_trips_and_bad_text_is_refused() {
        let key = test_key(1).verifying_key();
        let text = public_key_text(&key);
        assert!(text.starts_with("ed25519:") && text.len() == 8 + 44, "{text}");
        assert_eq!(parse_public_key(&text), Ok(key));
        // Little-endian y coordinates: y = 2 has no x on the curve; y = 1 is the identity, of order 1.
        let with_y = |y: u8| {
            let mut bytes = [0_u8; 32];
            bytes[0] = y;
            format!("ed25519:{}", BASE64.encode(bytes))
        };
        let not_a_point = with_y(2);
        let identity = with_y(1);
        let unpadded = text.trim_end_matches('=').to_string();
        let cases = [
            (text.trim_start_matches("ed25519:").to_string(), "it does not start with `ed25519:`"),
            (format!("ed25519:{}", BASE64.encode([1_u8; 31])), "it is not the padded base64 of 32 bytes"),
            (unpadded, "it is not the padded base64 of 32 bytes"),
            (format!("ed25519:{}", "*".repeat(44)), "it is not standard base64 with padding"),
            (not_a_point, "it is not a valid Ed25519 public key"),
            (identity, "it is a weak (small-order) Ed25519 key"),
        ];
        for (text, reason) in cases {
            assert_eq!(parse_public_key(&text), Err(SignatureError::MalformedKey { reason }), "{text}");
        }
    }

    #[test]
    fn a_signature_verifies_for_its_name_and_digest_only() {
        let key = test_key(2);
        let trusted = [test_key(9).verifying_key(), key.verifying_key()];
        let signature = sign("release-notes", DIGEST, &key);
        assert_eq!(verify("release-notes", DIGEST, &signature, &trusted), Ok(()));

        let tampered_digest = DIGEST.replace("0f34", "0f35");
        assert_eq!(
            verify("release-notes", &tampered_digest, &signature, &trusted),
            Err(SignatureError::BadSignature),
            "another content"
        );
        assert_eq!(
            verify("release-notes-2", DIGEST, &signature, &trusted),
            Err(SignatureError::BadSignature),
            "another skill with the same content"
        );
    }

    #[test]
    fn an_untrusted_or_malformed_signature_is_refused_with_its_own_variant() {
        let key = test_key(3);
        let signature = sign("notes", DIGEST, &key);
        let error = verify("notes", DIGEST, &signature, &[test_key(4).verifying_key()]).unwrap_err();
        assert!(matches!(error, SignatureError::KeyNotTrusted { .. }), "{error:?}");
        assert!(error.to_string().len() < 100, "no long base64 in: {error}");
        assert_eq!(verify("notes", DIGEST, &signature, &[]).unwrap_err(), error, "nothing trusted");

        let trusted = [key.verifying_key()];
        let truncated = Signature { signature: signature.signature[..60].to_string(), ..signature.clone() };
        assert_eq!(
            verify("notes", DIGEST, &truncated, &trusted),
            Err(SignatureError::MalformedSignature { reason: "it is not the padded base64 of 64 bytes" })
        );
        let not_base64 = Signature { signature: "!".repeat(88), ..signature.clone() };
        assert_eq!(
            verify("notes", DIGEST, &not_base64, &trusted),
            Err(SignatureError::MalformedSignature { reason: "it is not standard base64 with padding" })
        );
        let flipped = {
            let mut bytes = BASE64.decode(&signature.signature).unwrap();
            bytes[0] ^= 1;
            Signature { signature: BASE64.encode(bytes), ..signature.clone() }
        };
        assert_eq!(verify("notes", DIGEST, &flipped, &trusted), Err(SignatureError::BadSignature));
        let bad_key = Signature { key: "rsa:abc".into(), ..signature };
        assert!(matches!(verify("notes", DIGEST, &bad_key, &trusted), Err(SignatureError::MalformedKey { .. })));
    }

    #[test]
    fn the_signature_file_is_pretty_json_that_reads_back_and_refuses_unknown_fields() {
        let folder = TestFolder::new("signed");
        let signature = sign("signed", DIGEST, &test_key(5));
        write_signature(folder.path(), &signature).unwrap();
        write_signature(folder.path(), &signature).unwrap();
        let text = std::fs::read_to_string(folder.path().join(SIGNATURE_FILE)).unwrap();
        assert!(text.starts_with("{\n  \"key\": \"ed25519:") && text.ends_with("}\n"), "{text}");
        assert_eq!(serde_json::from_str::<Signature>(&text).unwrap(), signature);
        let names: Vec<_> = std::fs::read_dir(folder.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(names, [SIGNATURE_FILE], "no temporary file is left behind");
        assert!(serde_json::from_str::<Signature>(r#"{"key": "k", "signature": "s", "extra": 1}"#).is_err());
    }
}

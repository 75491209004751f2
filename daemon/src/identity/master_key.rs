//! The master key: the one secret that unlocks what Castellan keeps encrypted at rest (token signing
//! keys now, the secret store later). It comes from `CASTELLAN_MASTER_KEY`, or from a key file that is
//! created on first start with mode 0600 next to the SQLite database.
//!
//! Sealed values are `v1.` + base64url(nonce ‖ AES-256-GCM ciphertext); the purpose string is bound
//! in as associated data, so a sealed signing key cannot be replayed as, say, a sealed secret.
//!
//! Keys for other uses (the audit checkpoint's signing key) are derived from it, one per purpose
//! string: `HMAC-SHA256(master key, purpose)`.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

const SEALED_PREFIX: &str = "v1.";
const NONCE_LEN: usize = 12;

/// The environment variable holding the key: 32 bytes as 64 hex digits or base64 (either alphabet).
pub const MASTER_KEY_ENV: &str = "CASTELLAN_MASTER_KEY";

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error(
        "{MASTER_KEY_ENV} must be 32 bytes written as 64 hex digits or as base64; generate one with `openssl rand -hex 32`"
    )]
    Malformed,
    #[error("master key file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("a sealed value could not be opened: wrong master key or corrupted data")]
    Open,
}

/// The key itself. Not `Debug`, not `Clone`-able into logs: it only seals and opens.
pub struct MasterKey {
    cipher: Aes256Gcm,
    /// HMAC-SHA256 keyed with the key, for [`MasterKey::derive`] (the key bytes themselves are not kept).
    derivation: Hmac<Sha256>,
    /// SHA-256 of the key, hex, first 16 digits: lets operators tell keys apart without revealing one.
    pub fingerprint: String,
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        let fingerprint = hex::encode(Sha256::digest(bytes))[..16].to_string();
        // A 32-byte slice always makes an AES-256 key.
        let cipher = Aes256Gcm::new(bytes.into());
        // HMAC pads a key shorter than SHA-256's 64-byte block with zeros (RFC 2104, section 2), so
        // keying with the padded block is HMAC under the 32 bytes, without a fallible constructor.
        let mut block = [0u8; 64];
        block[..bytes.len()].copy_from_slice(bytes);
        let derivation = <Hmac<Sha256> as Mac>::new(&block.into());
        MasterKey { cipher, derivation, fingerprint }
    }

    /// A 32-byte key for `purpose`, derived from this one; different purposes give unrelated keys.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = self.derivation.clone();
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Parses the environment variable's text.
    pub fn parse(text: &str) -> Result<Self, MasterKeyError> {
        let text = text.trim();
        let decoded = if text.len() == 64 && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            hex::decode(text).ok()
        } else {
            let engines = [
                base64::engine::general_purpose::STANDARD,
                base64::engine::general_purpose::STANDARD_NO_PAD,
                base64::engine::general_purpose::URL_SAFE,
                URL_SAFE_NO_PAD,
            ];
            engines.iter().find_map(|engine| engine.decode(text).ok())
        };
        let bytes: [u8; 32] = decoded.and_then(|bytes| bytes.try_into().ok()).ok_or(MasterKeyError::Malformed)?;
        Ok(Self::from_bytes(&bytes))
    }

    /// The key from `CASTELLAN_MASTER_KEY` when set, else from `file` (created when missing).
    pub fn load(env_value: Option<&str>, file: &Path) -> Result<Self, MasterKeyError> {
        match env_value.filter(|value| !value.trim().is_empty()) {
            Some(value) => Self::parse(value),
            None => Self::from_file(file),
        }
    }

    /// Like [`MasterKey::load`], but a missing key file is an error instead of a new key: for admin
    /// commands, which must seal with the daemon's key, never with one of their own.
    pub fn load_existing(env_value: Option<&str>, file: &Path) -> Result<Self, MasterKeyError> {
        match env_value.filter(|value| !value.trim().is_empty()) {
            Some(value) => Self::parse(value),
            None if !file.exists() => Err(MasterKeyError::File {
                path: file.to_path_buf(),
                reason: format!(
                    "there is no such file and {MASTER_KEY_ENV} is not set; admin commands never create the \
                     master key: give them the daemon's ({MASTER_KEY_ENV}, secrets.master_key_file or \
                     CASTELLAN_DATA_DIR)"
                ),
            }),
            None => Self::from_file(file),
        }
    }

    fn from_file(path: &Path) -> Result<Self, MasterKeyError> {
        let failed = |reason: String| MasterKeyError::File { path: path.to_path_buf(), reason };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map_err(|_| failed("does not hold a 32-byte key in hex".into())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
                    // The data directory: owner only, like the database's.
                    castellan_schema::create_private_directory(parent).map_err(|error| failed(error.to_string()))?;
                }
                write_private_file(path, &format!("{}\n", hex::encode(bytes))).map_err(failed)?;
                tracing::warn!(path = %path.display(), "created a new master key file; back it up with the database");
                Ok(Self::from_bytes(&bytes))
            }
            Err(error) => Err(failed(error.to_string())),
        }
    }

    /// Encrypts `plaintext` for `purpose`.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> String {
        let mut nonce_bytes = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce_bytes);
        let nonce = Nonce::from(nonce_bytes);
        // Encryption only fails for inputs beyond GCM's size limits (64 GiB); ours are bytes.
        let ciphertext = self.cipher.encrypt(&nonce, Payload { msg: plaintext, aad: purpose.as_bytes() });
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend(ciphertext.unwrap_or_default());
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    /// Decrypts a value sealed for the same `purpose` under the same key.
    pub fn open(&self, purpose: &str, sealed: &str) -> Result<Vec<u8>, MasterKeyError> {
        let encoded = sealed.strip_prefix(SEALED_PREFIX).ok_or(MasterKeyError::Open)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| MasterKeyError::Open)?;
        if bytes.len() <= NONCE_LEN {
            return Err(MasterKeyError::Open);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| MasterKeyError::Open)?;
        self.cipher
            .decrypt(&Nonce::from(nonce), Payload { msg: ciphertext, aad: purpose.as_bytes() })
            .map_err(|_| MasterKeyError::Open)
    }
}

#[cfg(unix)]
fn write_private_file(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|error| error.to_string())?;
    // `mode` is filtered by the umask; the key is owner-only whatever the umask says.
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(|error| error.to_string())?;
    file.write_all(contents.as_bytes()).and_then(|()| file.sync_all()).map_err(|error| error.to_string())
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, contents: &str) -> Result<(), String> {
    std::fs::write(path, contents).map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_purpose() {
        let key = MasterKey::from_bytes(&[7u8; 32]);
        let sealed = key.seal("signing-key:a", b"private");
        assert!(!sealed.contains("private"), "the plaintext does not show through");
        assert_eq!(key.open("signing-key:a", &sealed).unwrap(), b"private", "round trip");
        assert!(key.open("signing-key:b", &sealed).is_err(), "another purpose cannot open it");
        let other = MasterKey::from_bytes(&[8u8; 32]);
        assert!(other.open("signing-key:a", &sealed).is_err(), "another key cannot open it");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(key.open("signing-key:a", &String::from_utf8(tampered).unwrap()).is_err(), "tampering is detected");
        assert_ne!(key.seal("p", b"x"), key.seal("p", b"x"), "every seal uses a fresh nonce");
    }

    #[test]
    fn derived_keys_are_hmac_of_the_purpose_under_the_key() {
        let bytes = [7u8; 32];
        let key = MasterKey::from_bytes(&bytes);
        let mut expected = <Hmac<Sha256> as Mac>::new_from_slice(&bytes).unwrap();
        expected.update(b"castellan.audit.checkpoint.v1");
        let expected: [u8; 32] = expected.finalize().into_bytes().into();
        assert_eq!(key.derive("castellan.audit.checkpoint.v1"), expected, "HMAC-SHA256(key, purpose)");
        assert_ne!(key.derive("a"), key.derive("b"), "one key per purpose");
        assert_ne!(MasterKey::from_bytes(&[8u8; 32]).derive("a"), key.derive("a"), "one key per master key");
    }

    #[test]
    fn the_environment_key_is_hex_or_base64_and_nothing_else() {
        let hex_key = "11".repeat(32);
        let base64_key = base64::engine::general_purpose::STANDARD.encode([0x11u8; 32]);
        let from_hex = MasterKey::parse(&hex_key).unwrap();
        let from_base64 = MasterKey::parse(&base64_key).unwrap();
        assert_eq!(from_hex.fingerprint, from_base64.fingerprint, "both spellings give the same key");
        for bad in ["", "short", &"11".repeat(31), &"zz".repeat(32)] {
            assert!(MasterKey::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn a_missing_key_file_is_created_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("castellan-master-{}", std::process::id()));
        let path = dir.join("master.key");
        let _ = std::fs::remove_dir_all(&dir);
        let first = MasterKey::load(None, &path).unwrap();
        let second = MasterKey::load(Some(""), &path).unwrap();
        assert_eq!(first.fingerprint, second.fingerprint, "the file's key is reused");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "only the owner may read the key file");
        }
        let from_env = MasterKey::load(Some(&"22".repeat(32)), &path).unwrap();
        assert_ne!(from_env.fingerprint, first.fingerprint, "the environment wins over the file");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The `skills` section.

use super::{Decoder, Node};
use crate::skills::{SIGNING_KEY_PREFIX, SkillsSettings};

pub(super) fn decode_skills(decoder: &mut Decoder, node: Option<Node>) -> SkillsSettings {
    let mut settings = SkillsSettings::default();
    let Some(mut fields) = node.as_ref().and_then(|node| decoder.fields(node, &["dirs", "signing_keys"])) else {
        return settings;
    };
    if let Some(dirs) = fields.take("dirs") {
        for item in decoder.items(&dirs).unwrap_or_default() {
            if let Some(path) = decoder.nonempty_plain(&item) {
                settings.dirs.push(path.into());
            }
        }
    }
    if let Some(keys) = fields.take("signing_keys") {
        for item in decoder.items(&keys).unwrap_or_default() {
            let Some(key) = decoder.nonempty_plain(&item) else { continue };
            match check_signing_key(&key) {
                Ok(()) if settings.signing_keys.contains(&key) => decoder.at_value(&item, "this key is listed twice"),
                Ok(()) => settings.signing_keys.push(key),
                Err(reason) => decoder.at_value(&item, reason),
            }
        }
    }
    settings
}

/// `ed25519:` then standard base64 (with padding) of exactly 32 bytes. Whether the bytes are a
/// valid curve point is checked where keys are used; this catches the typing mistakes.
fn check_signing_key(key: &str) -> Result<(), String> {
    let Some(encoded) = key.strip_prefix(SIGNING_KEY_PREFIX) else {
        return Err(format!("a signing key starts with `{SIGNING_KEY_PREFIX}`"));
    };
    match base64_decoded_len(encoded) {
        Some(32) => Ok(()),
        Some(other) => Err(format!("a signing key is 32 bytes; this one decodes to {other}")),
        None => Err("a signing key's part after `ed25519:` is standard base64 (A-Z, a-z, 0-9, +, /, = padding)".into()),
    }
}

/// The decoded length of standard padded base64, or `None` when it is not that.
fn base64_decoded_len(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let padding = bytes.iter().rev().take_while(|byte| **byte == b'=').count();
    if padding > 2 {
        return None;
    }
    let body = &bytes[..bytes.len() - padding];
    if !body.iter().all(|byte| byte.is_ascii_alphanumeric() || *byte == b'+' || *byte == b'/') {
        return None;
    }
    Some(bytes.len() / 4 * 3 - padding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_keys_are_checked_for_prefix_alphabet_and_length() {
        let good = format!("ed25519:{}=", "A".repeat(43));
        assert_eq!(check_signing_key(&good), Ok(()));
        for bad in ["AAAA", "ed25519:", "ed25519:AAAA", "ed25519:@@@@", "rsa:AAAA"] {
            assert!(check_signing_key(bad).is_err(), "{bad}");
        }
        let long = format!("ed25519:{}", "A".repeat(48));
        assert!(check_signing_key(&long).unwrap_err().contains("36"), "the length is named");
    }
}

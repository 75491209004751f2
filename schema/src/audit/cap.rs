//! The size cap of stored audit fields: a value longer than the cap keeps its beginning and ends
//! with a marker naming its full size and SHA-256, so the row stays evidence of what was sent
//! (the hash can be compared with a copy of the original) without storing it whole.
//!
//! The cap is applied before the row is hashed into the chain: the chain covers what is stored, so
//! `castellan audit verify` checks capped rows like any other.

use sha2::{Digest, Sha256};

use super::NewExecution;

/// `…[truncated: {bytes} bytes, sha256 {hex}]` is at most this long (a 20-digit size).
pub const MARKER_MAX_BYTES: usize = "…[truncated: ".len() + 20 + " bytes, sha256 ".len() + 64 + "]".len();

/// The marker that ends a capped value.
pub fn truncation_marker(original: &str) -> String {
    let digest = hex::encode(Sha256::digest(original.as_bytes()));
    format!("…[truncated: {} bytes, sha256 {digest}]", original.len())
}

/// `value` if it fits in `max_bytes`, else its first bytes (cut on a character boundary) and the
/// marker, together at most `max_bytes` long (or the marker alone, if `max_bytes` is smaller).
pub fn cap_field(value: String, max_bytes: usize) -> String {
    if value.len() <= max_bytes {
        return value;
    }
    let marker = truncation_marker(&value);
    let mut cut = max_bytes.saturating_sub(marker.len());
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut capped = String::with_capacity(cut + marker.len());
    capped.push_str(&value[..cut]);
    capped.push_str(&marker);
    capped
}

/// Caps every free-text field of `row` a caller can make long (arguments, result, error message,
/// the server and tool names as written, and the reasons and names of its hook decisions).
pub fn cap_row(row: &mut NewExecution, max_bytes: usize) {
    let cap = |value: &mut String| *value = cap_field(std::mem::take(value), max_bytes);
    cap(&mut row.server);
    cap(&mut row.tool);
    cap(&mut row.input);
    row.output.as_mut().map(cap);
    row.error_message.as_mut().map(cap);
    for decision in &mut row.hook_events {
        decision.reason.as_mut().map(cap);
        decision.server.as_mut().map(cap);
        decision.tool.as_mut().map(cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_untouched_and_long_ones_keep_size_and_hash() {
        assert_eq!(cap_field("{\"id\":1}".into(), 1024), "{\"id\":1}");
        let exact = "x".repeat(1024);
        assert_eq!(cap_field(exact.clone(), 1024), exact, "a value of exactly the cap is whole");

        let original = "a".repeat(262_144);
        let capped = cap_field(original.clone(), 65_536);
        assert!(capped.len() <= 65_536, "the stored value fits the cap: {} bytes", capped.len());
        let digest = hex::encode(Sha256::digest(original.as_bytes()));
        assert!(
            capped.ends_with(&format!("…[truncated: 262144 bytes, sha256 {digest}]")),
            "the marker keeps the size and hash: {}",
            &capped[capped.len() - 120..]
        );
        assert!(capped.starts_with(&"a".repeat(60_000)), "the beginning is kept");
    }

    #[test]
    fn the_cut_respects_character_boundaries() {
        for max in 1024..1032 {
            let capped = cap_field("é".repeat(2000), max);
            assert!(capped.len() <= max, "cap {max}: {} bytes", capped.len());
            assert!(capped.contains("…[truncated: 4000 bytes"), "cap {max}: {capped}");
        }
    }
}

//! Tool names as clients see them: `{server}__{tool}` on the aggregated endpoint, the bare name on
//! a server's own endpoint, always within `[A-Za-z0-9_-]{1,64}` (what model APIs accept). A name
//! outside that is shortened deterministically: a readable prefix plus a hash of the original, so
//! the mapping is stable across restarts and replicas. An empty tool name is shortened too, so that
//! `{server}__` never appears: `split_prefixed` of any aggregated name gives back its server.

use sha2::{Digest, Sha256};

pub const MAX_EXPOSED_LEN: usize = 64;
pub const SEPARATOR: &str = "__";

fn allowed(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

/// The name a client sees for `tool` of `server`; `prefixed` on the aggregated endpoint.
pub fn exposed_name(server: &str, tool: &str, prefixed: bool) -> String {
    let full = if prefixed { format!("{server}{SEPARATOR}{tool}") } else { tool.to_string() };
    if !tool.is_empty() && full.len() <= MAX_EXPOSED_LEN && full.bytes().all(allowed) {
        return full;
    }
    let digest = hex::encode(&Sha256::digest(format!("{server}\0{tool}").as_bytes())[..4]);
    let readable: String = tool.chars().map(|c| if c.is_ascii() && allowed(c as u8) { c } else { '_' }).collect();
    let head = if prefixed { format!("{server}{SEPARATOR}") } else { String::new() };
    let room = MAX_EXPOSED_LEN.saturating_sub(head.len() + 1 + digest.len());
    let readable: String = readable.chars().take(room).collect();
    format!("{head}{readable}_{digest}")
}

/// Splits an aggregated name into (server, exposed tool part). Server names never hold `__`.
pub fn split_prefixed(name: &str) -> Option<(&str, &str)> {
    let (server, tool) = name.split_once(SEPARATOR)?;
    (!server.is_empty() && !tool.is_empty()).then_some((server, tool))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass_through_and_odd_ones_are_shortened_stably() {
        assert_eq!(exposed_name("customers", "get_customer", true), "customers__get_customer");
        assert_eq!(exposed_name("customers", "get_customer", false), "get_customer");
        let long = "x".repeat(80);
        let shortened = exposed_name("srv", &long, true);
        assert!(shortened.len() <= MAX_EXPOSED_LEN, "shortened to {}", shortened.len());
        assert_eq!(shortened, exposed_name("srv", &long, true), "deterministic");
        assert_ne!(
            exposed_name("srv", "a.b", false),
            exposed_name("srv", "a:b", false),
            "distinct originals stay distinct"
        );
        assert!(exposed_name("srv", "naïve", false).bytes().all(allowed), "non-ASCII replaced");
    }

    /// Found by the `tool_names` fuzz target: an empty tool name was exposed as `srv__`, which
    /// `split_prefixed` refuses, so the tool was listed but could not be called.
    #[test]
    fn an_empty_tool_name_is_shortened_and_splits_back_to_its_server() {
        for prefixed in [false, true] {
            let name = exposed_name("srv", "", prefixed);
            assert!(!name.is_empty() && name.len() <= MAX_EXPOSED_LEN && name.bytes().all(allowed), "{name:?}");
        }
        let name = exposed_name("srv", "", true);
        assert_ne!(name, "srv__");
        assert_eq!(split_prefixed(&name), Some(("srv", exposed_name("srv", "", false).as_str())), "{name:?}");
    }

    #[test]
    fn split_needs_both_halves() {
        assert_eq!(split_prefixed("customers__get_customer"), Some(("customers", "get_customer")));
        assert_eq!(split_prefixed("customers__a__b"), Some(("customers", "a__b")), "only the first separator splits");
        for bad in ["customers", "__tool", "customers__", ""] {
            assert_eq!(split_prefixed(bad), None, "{bad:?}");
        }
    }
}

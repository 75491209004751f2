//! `castellan::mcp::names`: the tool names clients see.
//!
//! Checked for every valid server name (`castellan_config::ServerName`: `[a-z0-9-]{1,48}`) and any tool
//! name, as the module documents:
//! - an exposed name is always within `[A-Za-z0-9_-]{1,64}`, and the same inputs give the same name;
//! - a name already within that set passes through unchanged (`{server}__{tool}` when prefixed),
//!   unless the tool name is empty;
//! - `split_prefixed` of a prefixed name gives back exactly the server, so a name never resolves to
//!   another server's tool;
//! - `split_prefixed` of any text splits at the first `__` into two non-empty halves.
#![no_main]

use arbitrary::Arbitrary;
use castellan::mcp::names::{MAX_EXPOSED_LEN, SEPARATOR, exposed_name, split_prefixed};
use castellan_config::{SERVER_NAME_MAX_LEN, ServerName};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    server: String,
    tool: String,
    other_server: String,
    other_tool: String,
    text: String,
}

fn allowed(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_EXPOSED_LEN
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A valid server name made from arbitrary text (the text itself when it is valid).
fn server_name(text: &str) -> String {
    if let Ok(name) = ServerName::parse(text) {
        return name.as_str().to_string();
    }
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";
    let mut name: String =
        text.bytes().take(SERVER_NAME_MAX_LEN).map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()])).collect();
    if name.is_empty() {
        name.push('a');
    }
    assert!(ServerName::parse(&name).is_ok(), "{name:?}");
    name
}

fn check(server: &str, tool: &str) {
    for prefixed in [false, true] {
        let name = exposed_name(server, tool, prefixed);
        assert!(allowed(&name), "exposed_name({server:?}, {tool:?}, {prefixed}) = {name:?}");
        assert_eq!(name, exposed_name(server, tool, prefixed), "deterministic");
        let full = if prefixed { format!("{server}{SEPARATOR}{tool}") } else { tool.to_string() };
        if !tool.is_empty() && allowed(&full) {
            assert_eq!(name, full, "a name within the set passes through");
        }
    }
    let name = exposed_name(server, tool, true);
    let (split_server, rest) = split_prefixed(&name).unwrap_or_else(|| panic!("{name:?} does not split"));
    assert_eq!(split_server, server, "{name:?} splits to another server");
    assert!(!rest.is_empty());
}

fuzz_target!(|input: Input| {
    let server = server_name(&input.server);
    let other_server = server_name(&input.other_server);
    check(&server, &input.tool);
    check(&other_server, &input.other_tool);
    check(&server, &input.other_tool);

    // Two servers never share an exposed name.
    if server != other_server {
        assert_ne!(exposed_name(&server, &input.tool, true), exposed_name(&other_server, &input.other_tool, true));
    }

    // Whatever a client sends: arbitrary server names and tools never panic, and splitting is exact.
    let _ = exposed_name(&input.server, &input.tool, true);
    let _ = exposed_name(&input.server, &input.tool, false);
    if let Some((server, tool)) = split_prefixed(&input.text) {
        assert!(!server.is_empty() && !tool.is_empty());
        assert!(!server.contains(SEPARATOR), "split at the first separator");
        assert_eq!(format!("{server}{SEPARATOR}{tool}"), input.text);
    } else if let Some((server, tool)) = input.text.split_once(SEPARATOR) {
        assert!(server.is_empty() || tool.is_empty(), "{:?} has two halves but was not split", input.text);
    }
});

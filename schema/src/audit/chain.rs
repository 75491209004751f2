//! The audit hash chain: how one row's hash is computed from its predecessor's and its fields.
//!
//! `row_hash = hex(SHA-256(encoding))`, where the encoding is the domain tag, the previous
//! row's hash, then every field in a fixed order. Each string is its byte length (u64, big
//! endian) followed by its bytes; an optional string is a 0 byte when absent, else a 1 byte and
//! the string; timestamps are RFC 3339 UTC strings with exactly six fractional digits;
//! `duration_ms` is eight big-endian bytes. No two different rows share an encoding.
//!
//! The `kind` column came later: a tool call (the only kind before it) is encoded exactly as
//! before, so rows written earlier still verify; any other kind appends its name as a string
//! after `duration_ms`, so a row cannot be moved from one kind to another unnoticed.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{ExecutionRow, NewExecution};
use crate::time::rfc3339_micros;

/// The `prev_hash` of the first row: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Versions the encoding; a future change of fields gets a new tag.
const DOMAIN_TAG: &[u8] = b"castellan.mcp_tool_executions.v1";

/// The hash of `row` when it follows a row whose hash is `prev_hash`.
pub fn chain_hash(prev_hash: &str, row: &NewExecution) -> String {
    ChainFields::from(row).hash(prev_hash)
}

/// The hashed fields of a row, borrowed from either a new row or a stored one.
pub(crate) struct ChainFields<'a> {
    server: &'a str,
    tool: &'a str,
    kind: &'a str,
    input: &'a str,
    output: Option<&'a str>,
    status: &'a str,
    error_message: Option<&'a str>,
    user_id: Option<&'a str>,
    session_id: Option<&'a str>,
    trace_id: &'a str,
    started_at: DateTime<Utc>,
    completed_at: DateTime<Utc>,
    duration_ms: i64,
}

impl<'a> From<&'a NewExecution> for ChainFields<'a> {
    fn from(row: &'a NewExecution) -> ChainFields<'a> {
        ChainFields {
            server: &row.server,
            tool: &row.tool,
            kind: row.kind.as_str(),
            input: &row.input,
            output: row.output.as_deref(),
            status: row.status.as_str(),
            error_message: row.error_message.as_deref(),
            user_id: row.user_id.as_deref(),
            session_id: row.session_id.as_deref(),
            trace_id: &row.trace_id,
            started_at: row.started_at,
            completed_at: row.completed_at,
            duration_ms: row.duration_ms,
        }
    }
}

impl<'a> From<&'a ExecutionRow> for ChainFields<'a> {
    fn from(row: &'a ExecutionRow) -> ChainFields<'a> {
        ChainFields {
            server: &row.server,
            tool: &row.tool,
            kind: &row.kind,
            input: &row.input,
            output: row.output.as_deref(),
            status: &row.status,
            error_message: row.error_message.as_deref(),
            user_id: row.user_id.as_deref(),
            session_id: row.session_id.as_deref(),
            trace_id: &row.trace_id,
            started_at: row.started_at,
            completed_at: row.completed_at,
            duration_ms: row.duration_ms,
        }
    }
}

impl ChainFields<'_> {
    pub(crate) fn hash(&self, prev_hash: &str) -> String {
        let mut hasher = Sha256::new();
        put_bytes(&mut hasher, DOMAIN_TAG);
        put_str(&mut hasher, prev_hash);
        put_str(&mut hasher, self.server);
        put_str(&mut hasher, self.tool);
        put_str(&mut hasher, self.input);
        put_optional_str(&mut hasher, self.output);
        put_str(&mut hasher, self.status);
        put_optional_str(&mut hasher, self.error_message);
        put_optional_str(&mut hasher, self.user_id);
        put_optional_str(&mut hasher, self.session_id);
        put_str(&mut hasher, self.trace_id);
        put_str(&mut hasher, &rfc3339_micros(self.started_at));
        put_str(&mut hasher, &rfc3339_micros(self.completed_at));
        hasher.update(self.duration_ms.to_be_bytes());
        if self.kind != super::ExecutionKind::Tool.as_str() {
            put_str(&mut hasher, self.kind);
        }
        hex::encode(hasher.finalize())
    }
}

fn put_bytes(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

fn put_str(hasher: &mut Sha256, text: &str) {
    put_bytes(hasher, text.as_bytes());
}

fn put_optional_str(hasher: &mut Sha256, text: Option<&str>) {
    match text {
        None => hasher.update([0u8]),
        Some(text) => {
            hasher.update([1u8]);
            put_str(hasher, text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample() -> NewExecution {
        let started_at = Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).single().expect("valid date")
            + chrono::TimeDelta::microseconds(123_456);
        NewExecution {
            server: "customers".into(),
            tool: "get_customer".into(),
            kind: super::super::ExecutionKind::Tool,
            input: r#"{"id":1}"#.into(),
            output: Some(r#"{"name":"Ada"}"#.into()),
            status: crate::audit::ExecutionStatus::Success,
            error_message: None,
            user_id: Some("alice".into()),
            session_id: Some("session-1".into()),
            trace_id: "trace-1".into(),
            started_at,
            completed_at: started_at + chrono::TimeDelta::milliseconds(12),
            duration_ms: 12,
            hook_events: Vec::new(),
        }
    }

    #[test]
    fn genesis_is_64_zeros() {
        assert_eq!(GENESIS_HASH.len(), 64);
        assert!(GENESIS_HASH.bytes().all(|byte| byte == b'0'));
    }

    /// The encoding of a tool call is the v1 encoding from before the `kind` column (computed
    /// independently of this code), so rows written before it still verify.
    #[test]
    fn a_tool_call_hashes_as_before_the_kind_column() {
        assert_eq!(
            chain_hash(GENESIS_HASH, &sample()),
            "0c7a8fc6e1096a0efe17c399abfb06a047295ae25f944809f52f712d5bd00d4b"
        );
    }

    #[test]
    fn is_deterministic_lowercase_hex() {
        let first = chain_hash(GENESIS_HASH, &sample());
        let second = chain_hash(GENESIS_HASH, &sample());
        assert_eq!(first, second, "same input, same hash");
        assert_eq!(first.len(), 64);
        assert!(
            first.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte)),
            "lowercase hex: {first}"
        );
    }

    #[test]
    fn every_field_changes_the_hash() {
        type Edit = fn(&mut NewExecution);
        let edits: Vec<(&str, Edit)> = vec![
            ("server", |row| row.server.push('x')),
            ("tool", |row| row.tool.push('x')),
            ("kind resource", |row| row.kind = super::super::ExecutionKind::Resource),
            ("kind prompt", |row| row.kind = super::super::ExecutionKind::Prompt),
            ("input", |row| row.input = r#"{"id":2}"#.into()),
            ("output changed", |row| row.output = Some("{}".into())),
            ("output removed", |row| row.output = None),
            ("status", |row| row.status = crate::audit::ExecutionStatus::ToolError),
            ("error_message added", |row| row.error_message = Some("boom".into())),
            ("error_message empty", |row| row.error_message = Some(String::new())),
            ("user_id changed", |row| row.user_id = Some("mallory".into())),
            ("user_id removed", |row| row.user_id = None),
            ("session_id", |row| row.session_id = None),
            ("trace_id", |row| row.trace_id.push('x')),
            ("started_at", |row| {
                row.started_at += chrono::TimeDelta::microseconds(1);
            }),
            ("completed_at", |row| {
                row.completed_at += chrono::TimeDelta::microseconds(1);
            }),
            ("duration_ms", |row| row.duration_ms += 1),
        ];
        let original = chain_hash(GENESIS_HASH, &sample());
        let mut seen = std::collections::HashSet::from([original.clone()]);
        for (field, edit) in edits {
            let mut row = sample();
            edit(&mut row);
            let changed = chain_hash(GENESIS_HASH, &row);
            assert_ne!(changed, original, "changing {field} must change the hash");
            assert!(seen.insert(changed), "changing {field} collided with another edit");
        }
        assert_ne!(chain_hash(&"1".repeat(64), &sample()), original, "prev_hash is part of the hash");
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let mut split_one = sample();
        split_one.server = "ab".into();
        split_one.tool = "c".into();
        let mut split_two = sample();
        split_two.server = "a".into();
        split_two.tool = "bc".into();
        assert_ne!(chain_hash(GENESIS_HASH, &split_one), chain_hash(GENESIS_HASH, &split_two));
    }

    #[test]
    fn sub_microsecond_precision_is_ignored() {
        let mut with_nanos = sample();
        with_nanos.started_at += chrono::TimeDelta::nanoseconds(999);
        assert_eq!(
            chain_hash(GENESIS_HASH, &with_nanos),
            chain_hash(GENESIS_HASH, &sample()),
            "the hash covers what the database stores: microseconds"
        );
    }
}

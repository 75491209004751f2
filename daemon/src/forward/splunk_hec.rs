//! Splunk HTTP Event Collector: `POST {url}/services/collector/event` with
//! `Authorization: Splunk {token}`; the body is event objects one after the other (not an array),
//! each `{"time", "host", "source", "sourcetype", "event", "fields"}`. HEC answers
//! `{"text":"Success","code":0}`.

use super::ForwardTable;
use super::encode::{EncodeContext, epoch_seconds, idempotency_key};
use super::rows::OutgoingRow;

pub const PATH: &str = "/services/collector/event";

/// One event object. `time` is written as a number with its microseconds (an f64 would round
/// them away); `fields` are indexed fields, flat strings only, as HEC requires.
pub fn encode_event(context: &EncodeContext<'_>, table: ForwardTable, row: &OutgoingRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"time\":");
    out.extend_from_slice(epoch_seconds(&row.time).as_bytes());
    out.extend_from_slice(b",\"host\":");
    write_json(&mut out, &context.host);
    out.extend_from_slice(b",\"source\":\"castellan\",\"sourcetype\":");
    write_json(&mut out, &format!("castellan:{}", table.as_str()));
    out.extend_from_slice(b",\"event\":");
    out.extend_from_slice(row.event.as_bytes());
    out.extend_from_slice(b",\"fields\":{\"idempotency_key\":");
    write_json(&mut out, &idempotency_key(context.installation, table, row.id));
    out.extend_from_slice(b"}}");
    out
}

/// Events separated by newlines (HEC reads a stream of objects; whitespace between them is allowed).
pub fn assemble<'p>(pieces: impl ExactSizeIterator<Item = &'p [u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    for (index, piece) in pieces.enumerate() {
        if index > 0 {
            body.push(b'\n');
        }
        body.extend_from_slice(piece);
    }
    body
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Serializing a string or a `Value` into a Vec cannot fail; write an empty string if it ever did.
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.extend_from_slice(b"\"\"");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::forward::rows::Severity;
    use chrono::{TimeZone, Utc};
    use serde_json::{Value, json};

    fn row(id: i64) -> OutgoingRow {
        OutgoingRow {
            id,
            time: Utc.timestamp_micros(1_780_000_000_123_456).unwrap(),
            severity: Severity::Info,
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            event: json!({"id": id, "tool": "get \"customer\"\n", "status": "success"}).to_string(),
        }
    }

    fn context() -> EncodeContext<'static> {
        EncodeContext { host: "gw-1", installation: "inst", observed_at: Utc.timestamp_micros(0).unwrap() }
    }

    #[test]
    fn a_batch_is_a_stream_of_event_objects_with_their_metadata() {
        let pieces: Vec<Vec<u8>> = [1, 2, 3].map(|id| encode_event(&context(), ForwardTable::Audit, &row(id))).into();
        let body = assemble(pieces.iter().map(Vec::as_slice));
        let events: Vec<Value> =
            serde_json::Deserializer::from_slice(&body).into_iter::<Value>().collect::<Result<_, _>>().unwrap();
        assert_eq!(events.len(), 3, "three concatenated objects: {}", String::from_utf8_lossy(&body));
        assert!(!body.starts_with(b"["), "not an array");
        let first = &events[0];
        assert_eq!(first["host"], json!("gw-1"));
        assert_eq!(first["source"], json!("castellan"));
        assert_eq!(first["sourcetype"], json!("castellan:mcp_tool_executions"));
        assert_eq!(first["event"]["tool"], json!("get \"customer\"\n"), "the row, escaped once");
        assert_eq!(first["fields"], json!({"idempotency_key": "castellan:inst:mcp_tool_executions:1"}));
        assert_eq!(events[2]["fields"]["idempotency_key"], json!("castellan:inst:mcp_tool_executions:3"));
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with("{\"time\":1780000000.123456,"), "epoch seconds with microseconds: {text}");
    }
}

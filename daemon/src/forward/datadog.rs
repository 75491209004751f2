//! Datadog logs intake (v2): `POST {url}/api/v2/logs` with `DD-API-KEY: {token}` and
//! `Content-Type: application/json`; the body is a JSON array of log objects (at most 1,000, at
//! most 5 MB). Datadog answers 202.
//!
//! The row goes in `message` as JSON text (Datadog parses a JSON message into attributes). No
//! `timestamp` attribute is sent: Datadog drops logs stamped more than 18 hours in the past, so a
//! backlog would vanish; the row's own times are inside the message.

use serde_json::json;

use super::ForwardTable;
use super::encode::{EncodeContext, idempotency_key};
use super::rows::OutgoingRow;

pub const PATH: &str = "/api/v2/logs";

/// Datadog's limit of entries per array.
pub const MAX_EVENTS: usize = 1000;

/// One log object.
pub fn encode_log(context: &EncodeContext<'_>, table: ForwardTable, row: &OutgoingRow) -> Vec<u8> {
    let log = json!({
        "ddsource": "castellan",
        "service": "castellan",
        "hostname": context.host,
        "ddtags": format!("table:{}", table.as_str()),
        "status": row.severity.datadog_status(),
        "message": row.event,
        "idempotency_key": idempotency_key(context.installation, table, row.id),
    });
    serde_json::to_vec(&log).unwrap_or_default()
}

/// The JSON array of the log objects.
pub fn assemble<'p>(pieces: impl ExactSizeIterator<Item = &'p [u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    body.push(b'[');
    for (index, piece) in pieces.enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(piece);
    }
    body.push(b']');
    body
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::forward::rows::Severity;
    use chrono::{TimeZone, Utc};
    use serde_json::Value;

    #[test]
    fn a_batch_is_an_array_of_logs_whose_message_is_the_row() {
        let context =
            EncodeContext { host: "gw-1", installation: "inst", observed_at: Utc.timestamp_micros(0).unwrap() };
        let pieces: Vec<Vec<u8>> = [5, 6]
            .map(|id| {
                let row = OutgoingRow {
                    id,
                    time: Utc.timestamp_micros(1_780_000_000_000_000).unwrap(),
                    severity: Severity::Error,
                    trace_id: String::new(),
                    event: json!({"id": id, "status": "upstream_error"}).to_string(),
                };
                encode_log(&context, ForwardTable::AiRequests, &row)
            })
            .into();
        let body: Value = serde_json::from_slice(&assemble(pieces.iter().map(Vec::as_slice))).unwrap();
        let logs = body.as_array().unwrap();
        assert_eq!(logs.len(), 2);
        let first = &logs[0];
        assert_eq!(first["ddsource"], json!("castellan"));
        assert_eq!(first["service"], json!("castellan"));
        assert_eq!(first["hostname"], json!("gw-1"));
        assert_eq!(first["ddtags"], json!("table:ai_requests"));
        assert_eq!(first["status"], json!("error"));
        assert_eq!(first["idempotency_key"], json!("castellan:inst:ai_requests:5"));
        let message: Value = serde_json::from_str(first["message"].as_str().unwrap()).unwrap();
        assert_eq!(message, json!({"id": 5, "status": "upstream_error"}), "the message is the row as JSON text");
        assert_eq!(assemble(std::iter::empty()), b"[]", "an empty batch is an empty array");
    }
}

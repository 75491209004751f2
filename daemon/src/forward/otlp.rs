//! OTLP/HTTP logs in JSON: `POST {url}/v1/logs` with `Content-Type: application/json` and, when
//! the sink has a token, `Authorization: Bearer {token}`. The body is an `ExportLogsServiceRequest`
//! in the OTLP JSON encoding: lowerCamelCase field names, 64-bit integers (times, `intValue`) as
//! decimal strings, enums (`severityNumber`) as integers, `traceId` as hex. The collector answers
//! 200 with an `ExportLogsServiceResponse`, whose `partialSuccess` counts records it rejected.

use serde_json::{Value, json};

use super::ForwardTable;
use super::encode::{EncodeContext, epoch_nanos, idempotency_key};
use super::rows::OutgoingRow;

pub const PATH: &str = "/v1/logs";

/// One `LogRecord`. Its body is the row as JSON text; the table, key and id are attributes.
pub fn encode_log_record(context: &EncodeContext<'_>, table: ForwardTable, row: &OutgoingRow) -> Vec<u8> {
    let mut record = json!({
        "timeUnixNano": epoch_nanos(&row.time),
        "observedTimeUnixNano": epoch_nanos(&context.observed_at),
        "severityNumber": row.severity.otlp_number(),
        "severityText": row.severity.text(),
        "body": {"stringValue": row.event},
        "attributes": [
            string_attribute("castellan.table", table.as_str()),
            string_attribute("castellan.idempotency_key", &idempotency_key(context.installation, table, row.id)),
            {"key": "castellan.id", "value": {"intValue": row.id.to_string()}},
        ],
    });
    if let Some(trace_id) = otlp_trace_id(&row.trace_id)
        && let Some(fields) = record.as_object_mut()
    {
        fields.insert("traceId".to_owned(), Value::String(trace_id));
    }
    serde_json::to_vec(&record).unwrap_or_default()
}

/// The request: one resource (`service.name` and `host.name`), one scope, the records.
pub fn assemble<'p>(context: &EncodeContext<'_>, pieces: impl ExactSizeIterator<Item = &'p [u8]>) -> Vec<u8> {
    let resource = json!({
        "attributes": [string_attribute("service.name", "castellan"), string_attribute("host.name", context.host)],
    });
    let mut body = Vec::new();
    body.extend_from_slice(b"{\"resourceLogs\":[{\"resource\":");
    body.extend_from_slice(resource.to_string().as_bytes());
    body.extend_from_slice(b",\"scopeLogs\":[{\"scope\":{\"name\":\"castellan\"},\"logRecords\":[");
    for (index, piece) in pieces.enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(piece);
    }
    body.extend_from_slice(b"]}]}]}");
    body
}

/// How many records an answer says were rejected, with its message: `None` for a full success
/// (no `partialSuccess`, or one that only carries a warning).
pub fn rejected_records(answer: &[u8]) -> Option<(u64, String)> {
    let answer: Value = serde_json::from_slice(answer).ok()?;
    let partial = answer.get("partialSuccess")?;
    // An int64: a decimal string in OTLP JSON, though a number is accepted too.
    let rejected = match partial.get("rejectedLogRecords")? {
        Value::String(text) => text.parse().ok()?,
        Value::Number(number) => number.as_u64()?,
        _ => return None,
    };
    let message = partial.get("errorMessage").and_then(Value::as_str).unwrap_or_default().to_owned();
    (rejected > 0).then_some((rejected, message))
}

fn string_attribute(key: &str, value: &str) -> Value {
    json!({"key": key, "value": {"stringValue": value}})
}

/// A W3C trace id (32 hex digits, not all zero) in lower case; anything else is not sent as one.
fn otlp_trace_id(trace_id: &str) -> Option<String> {
    let valid = trace_id.len() == 32
        && trace_id.bytes().all(|byte| byte.is_ascii_hexdigit())
        && trace_id.bytes().any(|byte| byte != b'0');
    valid.then(|| trace_id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::forward::rows::Severity;
    use chrono::{TimeZone, Utc};

    fn record(trace_id: &str) -> Value {
        let context = EncodeContext {
            host: "gw-1",
            installation: "inst",
            observed_at: Utc.timestamp_micros(1_780_000_001_000_000).unwrap(),
        };
        let row = OutgoingRow {
            id: 9_007_199_254_740_993,
            time: Utc.timestamp_micros(1_780_000_000_000_001).unwrap(),
            severity: Severity::Warn,
            trace_id: trace_id.into(),
            event: json!({"decision": "deny"}).to_string(),
        };
        let piece = encode_log_record(&context, ForwardTable::HookEvents, &row);
        let body: Value = serde_json::from_slice(&assemble(&context, [piece.as_slice()].into_iter())).unwrap();
        let resource_logs = &body["resourceLogs"][0];
        assert_eq!(
            resource_logs["resource"]["attributes"][0],
            json!({"key": "service.name", "value": {"stringValue": "castellan"}})
        );
        assert_eq!(resource_logs["scopeLogs"][0]["scope"]["name"], json!("castellan"));
        resource_logs["scopeLogs"][0]["logRecords"][0].clone()
    }

    #[test]
    fn a_record_follows_the_otlp_json_encoding() {
        let record = record("0AF7651916CD43DD8448EB211C80319C");
        assert_eq!(record["timeUnixNano"], json!("1780000000000001000"), "int64 as a decimal string");
        assert_eq!(record["observedTimeUnixNano"], json!("1780000001000000000"));
        assert_eq!(record["severityNumber"], json!(13), "an enum as its integer");
        assert_eq!(record["severityText"], json!("WARN"));
        assert_eq!(record["traceId"], json!("0af7651916cd43dd8448eb211c80319c"), "hex");
        assert_eq!(record["body"]["stringValue"], json!(r#"{"decision":"deny"}"#), "the row as JSON text");
        let attributes = record["attributes"].as_array().unwrap();
        assert!(attributes.contains(&json!({"key": "castellan.table", "value": {"stringValue": "hook_events"}})));
        assert!(attributes.contains(&json!({
            "key": "castellan.idempotency_key",
            "value": {"stringValue": "castellan:inst:hook_events:9007199254740993"}
        })));
        assert!(
            attributes.contains(&json!({"key": "castellan.id", "value": {"intValue": "9007199254740993"}})),
            "an id beyond 2^53 survives as a string: {attributes:?}"
        );
        let keys: Vec<&String> = record.as_object().unwrap().keys().collect();
        assert!(keys.iter().all(|key| !key.contains('_')), "camelCase field names: {keys:?}");
    }

    #[test]
    fn only_a_valid_trace_id_is_sent_as_one() {
        for invalid in ["", "not-hex-not-hex-not-hex-not-hex!", "00000000000000000000000000000000", "abc"] {
            assert!(record(invalid).get("traceId").is_none(), "{invalid:?}");
        }
    }

    #[test]
    fn a_partial_success_counts_its_rejected_records() {
        let cases: [(&str, Option<(u64, String)>); 5] = [
            ("{}", None),
            (r#"{"partialSuccess":{"rejectedLogRecords":"3","errorMessage":"too old"}}"#, Some((3, "too old".into()))),
            (r#"{"partialSuccess":{"rejectedLogRecords":2}}"#, Some((2, String::new()))),
            (r#"{"partialSuccess":{"rejectedLogRecords":"0","errorMessage":"a warning"}}"#, None),
            ("not json", None),
        ];
        for (answer, expected) in cases {
            assert_eq!(rejected_records(answer.as_bytes()), expected, "{answer}");
        }
    }
}

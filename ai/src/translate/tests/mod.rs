//! Translation tests: realistic fixtures per direction, refusals, streams fed event by event, and
//! a property test of the Anthropic -> OpenAI -> Anthropic round trip.

mod properties;
mod refusals;
mod requests;
mod responses;
mod streams;

use serde_json::Value;

use super::{RequestOptions, TranslateError};
use crate::format::WireFormat;

pub(super) fn translate_request(
    from: WireFormat,
    to: WireFormat,
    body: &Value,
    stream: bool,
) -> Result<Value, TranslateError> {
    let options = RequestOptions { upstream_model: "upstream-model", stream };
    let bytes = super::request(from, to, body.to_string().as_bytes(), &options)?;
    Ok(serde_json::from_slice(&bytes).expect("translated body is JSON"))
}

pub(super) fn translate_response(
    upstream: WireFormat,
    client: WireFormat,
    body: &Value,
) -> Result<Value, TranslateError> {
    let bytes =
        super::response_created_at(upstream, client, body.to_string().as_bytes(), "client-model", 1_700_000_000)?;
    Ok(serde_json::from_slice(&bytes).expect("translated body is JSON"))
}

/// A diff-friendly assertion message: both sides pretty-printed.
pub(super) fn differs(name: &str, actual: &Value, expected: &Value) -> String {
    format!(
        "{name}: translation differs\n--- actual\n{}\n--- expected\n{}",
        serde_json::to_string_pretty(actual).unwrap_or_default(),
        serde_json::to_string_pretty(expected).unwrap_or_default()
    )
}

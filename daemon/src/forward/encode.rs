//! What the three encoders share: the context of a run, the idempotency key, and the packing of
//! encoded events into requests that stay under a size limit.
//!
//! Each encoder turns one row into one piece (a HEC event object, a Datadog log object, an OTLP
//! log record) and joins pieces into a body, so a batch is encoded once and split by size without
//! encoding anything twice.

use std::ops::Range;

use chrono::{DateTime, Utc};

use super::rows::OutgoingRow;
use super::{ForwardTable, SinkKind, datadog, otlp, splunk_hec};

/// The most bytes one request body carries (before any compression): under Datadog's 5 MB and
/// OTLP's recommended 20 MiB; a single larger event is sent alone.
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// What every event of a run shares.
#[derive(Debug, Clone, Copy)]
pub struct EncodeContext<'a> {
    /// The host name the events say they come from.
    pub host: &'a str,
    /// This installation's id (see [`super::installation_id`]), part of every idempotency key.
    pub installation: &'a str,
    /// When the run read the rows: OTLP's `observedTimeUnixNano`.
    pub observed_at: DateTime<Utc>,
}

/// The key a sink or its consumer drops duplicates by: `castellan:{installation}:{table}:{id}`.
/// The same row always gets the same key; two installations never share one.
pub fn idempotency_key(installation: &str, table: ForwardTable, id: i64) -> String {
    format!("castellan:{installation}:{}:{id}", table.as_str())
}

/// One row as the kind's piece.
pub fn encode_row(kind: SinkKind, context: &EncodeContext<'_>, table: ForwardTable, row: &OutgoingRow) -> Vec<u8> {
    match kind {
        SinkKind::SplunkHec => splunk_hec::encode_event(context, table, row),
        SinkKind::DatadogLogs => datadog::encode_log(context, table, row),
        SinkKind::OtlpLogs => otlp::encode_log_record(context, table, row),
    }
}

/// The request body holding `pieces`, in order.
pub fn assemble<'p>(
    kind: SinkKind,
    context: &EncodeContext<'_>,
    pieces: impl ExactSizeIterator<Item = &'p [u8]>,
) -> Vec<u8> {
    match kind {
        SinkKind::SplunkHec => splunk_hec::assemble(pieces),
        SinkKind::DatadogLogs => datadog::assemble(pieces),
        SinkKind::OtlpLogs => otlp::assemble(context, pieces),
    }
}

/// Consecutive ranges of pieces whose sizes add up to at most `max_bytes` each (a piece larger on
/// its own gets a range of its own), covering every piece in order.
pub fn pack(sizes: &[usize], max_bytes: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut bytes = 0usize;
    for (index, size) in sizes.iter().enumerate() {
        if index > start && bytes.saturating_add(*size) > max_bytes {
            ranges.push(start..index);
            start = index;
            bytes = 0;
        }
        bytes = bytes.saturating_add(*size);
    }
    if start < sizes.len() {
        ranges.push(start..sizes.len());
    }
    ranges
}

/// `time` as whole and fractional seconds since the epoch, to the microsecond (`1780000000.000001`);
/// times before the epoch are the epoch.
pub fn epoch_seconds(time: &DateTime<Utc>) -> String {
    let micros = time.timestamp_micros().max(0);
    format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000)
}

/// `time` in nanoseconds since the epoch as a decimal string (OTLP's int64 encoding); 0 outside
/// the range of an i64 of nanoseconds or before the epoch.
pub fn epoch_nanos(time: &DateTime<Utc>) -> String {
    time.timestamp_nanos_opt().unwrap_or(0).max(0).to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn pieces_are_packed_in_order_under_the_limit() {
        let max = 10;
        type Case = (&'static [usize], &'static [(usize, usize)]);
        let cases: [Case; 6] = [
            (&[], &[]),
            (&[3, 3, 3], &[(0, 3)]),
            (&[4, 4, 4], &[(0, 2), (2, 3)]),
            (&[20, 1, 1], &[(0, 1), (1, 3)]),
            (&[1, 20, 1], &[(0, 1), (1, 2), (2, 3)]),
            (&[5, 5, 5, 5], &[(0, 2), (2, 4)]),
        ];
        for (sizes, expected) in cases {
            let ranges: Vec<(usize, usize)> =
                pack(sizes, max).into_iter().map(|range| (range.start, range.end)).collect();
            assert_eq!(ranges, expected, "sizes {sizes:?} under {max}");
        }
    }

    #[test]
    fn keys_name_the_installation_table_and_id() {
        assert_eq!(idempotency_key("9f2c", ForwardTable::Audit, 42), "castellan:9f2c:mcp_tool_executions:42");
        assert_eq!(idempotency_key("9f2c", ForwardTable::HookEvents, 1), "castellan:9f2c:hook_events:1");
    }

    #[test]
    fn times_keep_their_microseconds() {
        let time = Utc.timestamp_micros(1_780_000_000_000_042).unwrap();
        assert_eq!(epoch_seconds(&time), "1780000000.000042");
        assert_eq!(epoch_nanos(&time), "1780000000000042000");
        let before_epoch = Utc.timestamp_micros(-5).unwrap();
        assert_eq!(epoch_seconds(&before_epoch), "0.000000", "clamped to the epoch");
        assert_eq!(epoch_nanos(&before_epoch), "0");
    }
}

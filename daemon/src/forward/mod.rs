//! Forwarding: audit rows, AI request rows and hook decisions sent to a SIEM (Splunk HEC, Datadog
//! logs, OTLP/HTTP JSON logs), each table read in id order from a durable per-sink cursor.
//!
//! [`forward_once`] is one run of a sink's job: the scheduler calls it periodically. A run reads
//! `batch` rows after the cursor, encodes them as one request, POSTs it and moves the cursor only
//! after a 2xx; it goes round the sink's tables until they are caught up or its budget is spent.
//!
//! Invariants:
//! - the cursor moves only past rows the sink accepted (2xx) or rejected for good (a 4xx other
//!   than the credential and address ones, recorded in the report); a sink that is down or refuses
//!   the credential leaves it where it was, so nothing is lost and the next run resends;
//! - delivery is at least once: a stop between the POST and the cursor's commit resends a batch,
//!   and every event carries an idempotency key (`castellan:{installation}:{table}:{id}`) that a
//!   sink or its consumer can drop duplicates by;
//! - the cursor never passes a row that may still appear below it: an `ai_requests` row still
//!   `started` holds its table back (it is sent once it has ended), and on PostgreSQL a run reads
//!   only up to a watermark below which every writer has committed ([`watermark`]);
//! - every body passes the process's redactor just before it leaves, so a secret set after a row
//!   was written does not leave either; the sink's token is never in a report or an error.

mod datadog;
mod delivery;
mod encode;
mod installation;
mod otlp;
mod report;
mod rows;
mod run;
mod splunk_hec;
mod watermark;

use std::fmt;

pub use encode::{EncodeContext, idempotency_key};
pub use installation::{INSTALLATION_ID_KEY, installation_id};
pub use report::{ForwardError, ForwardReport, RejectedBatch, TableReport};
pub use rows::{OutgoingRow, Severity};
pub use run::forward_once;

/// The wire format a sink speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkKind {
    /// Splunk's HTTP Event Collector, `POST {url}/services/collector/event`.
    SplunkHec,
    /// Datadog's logs intake, `POST {url}/api/v2/logs`.
    DatadogLogs,
    /// An OpenTelemetry collector's OTLP/HTTP logs endpoint in JSON, `POST {url}/v1/logs`.
    OtlpLogs,
}

impl SinkKind {
    pub const ALL: [SinkKind; 3] = [SinkKind::SplunkHec, SinkKind::DatadogLogs, SinkKind::OtlpLogs];

    /// The name a profile gives the kind (`kind: splunk_hec`).
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::SplunkHec => "splunk_hec",
            SinkKind::DatadogLogs => "datadog",
            SinkKind::OtlpLogs => "otlp",
        }
    }

    /// The kind a profile's name names, if it is one of [`SinkKind::ALL`].
    pub fn parse(name: &str) -> Option<SinkKind> {
        SinkKind::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    /// The path appended to the sink's `url`.
    pub fn path(self) -> &'static str {
        match self {
            SinkKind::SplunkHec => splunk_hec::PATH,
            SinkKind::DatadogLogs => datadog::PATH,
            SinkKind::OtlpLogs => otlp::PATH,
        }
    }

    /// The most events one request carries: Datadog takes at most 1,000 per array.
    pub fn max_batch(self) -> usize {
        match self {
            SinkKind::DatadogLogs => datadog::MAX_EVENTS,
            SinkKind::SplunkHec | SinkKind::OtlpLogs => 10_000,
        }
    }
}

impl fmt::Display for SinkKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A table whose rows can be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ForwardTable {
    /// `mcp_tool_executions`, the hash-chained audit trail.
    Audit,
    AiRequests,
    HookEvents,
}

impl ForwardTable {
    pub const ALL: [ForwardTable; 3] = [ForwardTable::Audit, ForwardTable::AiRequests, ForwardTable::HookEvents];

    /// The table's name: in profiles, in the cursor's key, in idempotency keys and in the events.
    pub fn as_str(self) -> &'static str {
        match self {
            ForwardTable::Audit => "mcp_tool_executions",
            ForwardTable::AiRequests => "ai_requests",
            ForwardTable::HookEvents => "hook_events",
        }
    }

    /// The table a name names, if it is one of [`ForwardTable::ALL`].
    pub fn parse(name: &str) -> Option<ForwardTable> {
        ForwardTable::ALL.into_iter().find(|table| table.as_str() == name)
    }
}

impl fmt::Display for ForwardTable {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// One sink, resolved: the caller has read the profile and the secret store.
#[derive(Clone, PartialEq, Eq)]
pub struct Sink {
    /// The sink's name: the key of its cursors, and what reports and errors call it.
    pub name: String,
    pub kind: SinkKind,
    /// The base URL (`https://splunk.example:8088`); the kind's path is appended (and not doubled
    /// when the URL already ends with it).
    pub url: String,
    /// The credential: a HEC token, a Datadog API key, or for OTLP a bearer token (none when empty).
    pub token: String,
    /// The tables to forward, in the order each round visits them.
    pub tables: Vec<ForwardTable>,
    /// Rows per request, at most; clamped to 1 ..= the kind's [`SinkKind::max_batch`].
    pub batch: usize,
}

/// The token is never printed, not even in a debug dump of the configuration.
impl fmt::Debug for Sink {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Sink")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &castellan_schema::redact_url(&self.url))
            .field("token", &if self.token.is_empty() { "" } else { "[hidden]" })
            .field("tables", &self.tables)
            .field("batch", &self.batch)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn kind_and_table_names_round_trip() {
        for kind in SinkKind::ALL {
            assert_eq!(SinkKind::parse(kind.as_str()), Some(kind), "{kind}");
        }
        for table in ForwardTable::ALL {
            assert_eq!(ForwardTable::parse(table.as_str()), Some(table), "{table}");
        }
        let names: Vec<&str> = SinkKind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(names, ["splunk_hec", "datadog", "otlp"], "the profile's kind names");
        let tables: Vec<&str> = ForwardTable::ALL.iter().map(|table| table.as_str()).collect();
        assert_eq!(tables, ["mcp_tool_executions", "ai_requests", "hook_events"], "the cursor's table names");
        assert_eq!(SinkKind::parse("splunk"), None, "an unknown kind");
        assert_eq!(ForwardTable::parse("audit"), None, "tables go by their real names");
    }

    #[test]
    fn a_debug_dump_of_a_sink_hides_its_token() {
        let sink = Sink {
            name: "siem".into(),
            kind: SinkKind::SplunkHec,
            url: "https://user:pw-in-url@splunk.example:8088".into(),
            token: "hec-token-4a7f".into(),
            tables: vec![ForwardTable::Audit],
            batch: 500,
        };
        let dump = format!("{sink:?}");
        assert!(!dump.contains("hec-token-4a7f"), "token in {dump}");
        assert!(!dump.contains("pw-in-url"), "URL password in {dump}");
        assert!(dump.contains("[hidden]"), "{dump}");
    }
}

//! What a run did ([`ForwardReport`], one line for `job_runs.detail`) and why one stopped
//! ([`ForwardError`]). Neither ever holds the sink's token: quoted answers pass [`excerpt`], which
//! removes it and every secret the redactor knows before cutting them short.

use std::fmt;
use std::time::Duration;

use crate::redaction::Redactor;

use super::ForwardTable;
use super::delivery::EXCERPT_CHARS;

/// A batch the sink refused for good (a 4xx other than the credential and address ones), or the
/// records an OTLP collector's partial success rejected: passed over, the cursor moved past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedBatch {
    pub table: ForwardTable,
    pub first_id: i64,
    pub last_id: i64,
    /// The HTTP status (200 for a partial success).
    pub status: u16,
    /// The start of the sink's answer, redacted.
    pub excerpt: String,
}

/// One table's part of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: ForwardTable,
    /// Rows the sink accepted in this run.
    pub sent: u64,
    /// The cursor after the run: the last id delivered (or passed over).
    pub cursor: i64,
    pub rejected: Vec<RejectedBatch>,
    /// Nothing more to send now (as opposed to: the budget ended first).
    pub caught_up: bool,
    /// An `ai_requests` row still in flight, from which on nothing was sent.
    pub held_at: Option<i64>,
    /// PostgreSQL: the table stayed locked by a writer; left for the next run.
    pub busy: bool,
}

impl TableReport {
    pub fn new(table: ForwardTable, cursor: i64) -> TableReport {
        TableReport { table, sent: 0, cursor, rejected: Vec::new(), caught_up: false, held_at: None, busy: false }
    }
}

/// What one run of a sink did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardReport {
    pub sink: String,
    pub tables: Vec<TableReport>,
    pub elapsed: Duration,
}

impl ForwardReport {
    /// Rows accepted over all tables.
    pub fn sent(&self) -> u64 {
        self.tables.iter().map(|table| table.sent).sum()
    }

    /// Every table had nothing more to send when the run ended.
    pub fn caught_up(&self) -> bool {
        self.tables.iter().all(|table| table.caught_up)
    }

    pub fn table(&self, table: ForwardTable) -> Option<&TableReport> {
        self.tables.iter().find(|report| report.table == table)
    }

    pub fn rejected(&self) -> impl Iterator<Item = &RejectedBatch> {
        self.tables.iter().flat_map(|table| table.rejected.iter())
    }
}

/// One line: `sink siem: 1500 rows sent in 0.31 s, caught up; mcp_tool_executions: 1000 sent,
/// cursor 1000; hook_events: 480 sent, cursor 500, rejected 21-40 (HTTP 400: ...)`.
impl fmt::Display for ForwardReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.caught_up() { "caught up" } else { "backlog left for the next run" };
        write!(
            formatter,
            "sink {}: {} rows sent in {:.2} s, {state}",
            self.sink,
            self.sent(),
            self.elapsed.as_secs_f64()
        )?;
        for table in &self.tables {
            write!(formatter, "; {}: {} sent, cursor {}", table.table, table.sent, table.cursor)?;
            if let Some(id) = table.held_at {
                write!(formatter, ", waiting for request {id} to end")?;
            }
            if table.busy {
                write!(formatter, ", table busy")?;
            }
            for rejected in &table.rejected {
                write!(
                    formatter,
                    ", rejected {}-{} (HTTP {}: {})",
                    rejected.first_id, rejected.last_id, rejected.status, rejected.excerpt
                )?;
            }
        }
        Ok(())
    }
}

/// Why a run stopped. Every cursor stays where the last accepted batch left it: nothing is lost,
/// and the next run starts from there. No variant holds the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// The sink's configuration cannot be used (it is never printed: a URL may hold credentials).
    #[error("sink {sink}: {problem}")]
    Unusable { sink: String, problem: String },
    #[error("sink {sink}: the database failed while forwarding: {message}")]
    Database { sink: String, message: String },
    /// 401, 403, 404, 405, 407 or a redirect: the token or the URL is wrong.
    #[error(
        "sink {sink} answered {table} rows with HTTP {status} ({excerpt}): check the sink's token and url; \
         {delivered} rows were delivered before, the cursor stays at {cursor}"
    )]
    Misconfigured { sink: String, table: ForwardTable, status: u16, excerpt: String, delivered: u64, cursor: i64 },
    /// Transient failures (connection, timeout, 408, 429, 5xx) until the retries or the budget ran out.
    #[error(
        "sink {sink} is unavailable for {table} rows ({last}, {attempts} attempts): {delivered} rows were \
         delivered before, the cursor stays at {cursor} and the next run resends"
    )]
    Unavailable { sink: String, table: ForwardTable, attempts: u32, last: String, delivered: u64, cursor: i64 },
}

/// The start of a sink's answer fit for a report: the token and every known secret removed
/// (before cutting, so no part of one is left), control characters as spaces, at most
/// [`EXCERPT_CHARS`] characters.
pub fn excerpt(answer: &str, token: &str, redactor: &Redactor) -> String {
    let without_token = if token.is_empty() { answer.to_owned() } else { answer.replace(token, "[REDACTED:token]") };
    let redacted = redactor.redact(&without_token);
    let mut out = String::new();
    for (count, character) in redacted.trim().chars().enumerate() {
        if count == EXCERPT_CHARS {
            out.push_str("...");
            break;
        }
        out.push(if character.is_control() { ' ' } else { character });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_report_is_one_line_naming_each_table() {
        let mut hooks = TableReport::new(ForwardTable::HookEvents, 500);
        hooks.sent = 480;
        hooks.caught_up = true;
        hooks.rejected.push(RejectedBatch {
            table: ForwardTable::HookEvents,
            first_id: 21,
            last_id: 40,
            status: 400,
            excerpt: "{\"text\":\"Invalid data format\",\"code\":6}".into(),
        });
        let mut ai = TableReport::new(ForwardTable::AiRequests, 12);
        ai.caught_up = true;
        ai.held_at = Some(13);
        let report =
            ForwardReport { sink: "siem".into(), tables: vec![hooks, ai], elapsed: Duration::from_millis(310) };
        let line = report.to_string();
        assert!(!line.contains('\n'), "one line: {line}");
        assert_eq!(
            line,
            "sink siem: 480 rows sent in 0.31 s, caught up; hook_events: 480 sent, cursor 500, rejected 21-40 \
             (HTTP 400: {\"text\":\"Invalid data format\",\"code\":6}); ai_requests: 0 sent, cursor 12, waiting for \
             request 13 to end"
        );
        assert_eq!(report.rejected().count(), 1);
    }

    #[test]
    fn an_excerpt_holds_no_token_no_secret_and_no_control_character() {
        let redactor = Redactor::new([("hec", "registered-secret-value")]);
        let answer = format!(
            "bad token tok-123456 in\r\n{{\"echo\":\"registered-secret-value\"}}{}",
            "x".repeat(EXCERPT_CHARS * 2)
        );
        let text = excerpt(&answer, "tok-123456", &redactor);
        assert!(!text.contains("tok-123456"), "{text}");
        assert!(!text.contains("registered-secret-value"), "{text}");
        assert!(text.contains("[REDACTED:hec]"), "{text}");
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert_eq!(text.chars().count(), EXCERPT_CHARS + 3, "cut short with an ellipsis");
    }

    #[test]
    fn errors_say_what_to_do_and_never_hold_the_token() {
        let errors = [
            ForwardError::Misconfigured {
                sink: "siem".into(),
                table: ForwardTable::Audit,
                status: 403,
                excerpt: excerpt(
                    "{\"text\":\"Invalid token tok-SECRET-1\",\"code\":4}",
                    "tok-SECRET-1",
                    &Redactor::default(),
                ),
                delivered: 0,
                cursor: 7,
            },
            ForwardError::Unavailable {
                sink: "siem".into(),
                table: ForwardTable::HookEvents,
                attempts: 4,
                last: "HTTP 503".into(),
                delivered: 1000,
                cursor: 1000,
            },
        ];
        for error in errors {
            let text = error.to_string();
            assert!(!text.contains("tok-SECRET-1"), "{text}");
            assert!(text.contains("the cursor stays at"), "{text}");
        }
    }
}

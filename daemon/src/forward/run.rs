//! One run of a sink: rounds over its tables, one batch of each per round (so a long backlog in
//! one table does not starve the others), until every table is caught up or the budget is spent.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use castellan_schema::jobs::{advance_forward_cursor, forward_cursor};
use chrono::Utc;
use sea_orm::DatabaseConnection;
use serde::de::IgnoredAny;
use tokio::time::Instant;

use super::delivery::{Delivered, Target, TargetProblem, Undelivered, deliver};
use super::encode::{EncodeContext, MAX_REQUEST_BYTES, assemble, encode_row, pack};
use super::report::{ForwardError, ForwardReport, RejectedBatch, TableReport, excerpt};
use super::watermark::{Watermark, committed_up_to};
use super::{ForwardTable, Sink, SinkKind, installation_id, rows};
use crate::redaction::Redactor;

/// Sends what `sink`'s tables hold after their cursors, `sink.batch` rows a request, until all are
/// caught up or `budget` is spent (a request under way then is finished or times out). Each
/// cursor moves after its batch's 2xx, or past a batch rejected for good (reported). Errors when
/// the sink stays unavailable through the retries, refuses the credential or address, or the
/// database fails: the cursors stay at the last batch delivered, and the next run resends.
#[tracing::instrument(skip_all, fields(sink = %sink.name, kind = %sink.kind))]
pub async fn forward_once(
    db: &DatabaseConnection,
    client: &reqwest::Client,
    sink: &Sink,
    budget: Duration,
) -> Result<ForwardReport, ForwardError> {
    let started = Instant::now();
    let deadline = started + budget;
    let database_error =
        |error: &dyn std::fmt::Display| ForwardError::Database { sink: sink.name.clone(), message: error.to_string() };
    let target = Target::of(sink)
        .map_err(|problem| ForwardError::Unusable { sink: sink.name.clone(), problem: describe(problem) })?;
    let installation = installation_id(db).await.map_err(|error| database_error(&error))?;
    let mut tables: Vec<TableState> = Vec::new();
    for table in &sink.tables {
        if tables.iter().any(|state| state.report.table == *table) {
            continue;
        }
        let cursor = forward_cursor(db, &sink.name, table.as_str()).await.map_err(|error| database_error(&error))?;
        tables.push(TableState { report: TableReport::new(*table, cursor), watermark: None, ahead: None });
    }
    let run = Run {
        db,
        client,
        sink,
        target,
        context: EncodeContext { host: host_name(), installation: &installation, observed_at: Utc::now() },
        batch: sink.batch.clamp(1, sink.kind.max_batch()),
        deadline,
        redactor: crate::redaction::current(),
    };
    let mut failure = None;
    'rounds: loop {
        for state in tables.iter_mut().filter(|state| !state.report.caught_up) {
            if Instant::now() >= deadline {
                break 'rounds;
            }
            if let Err(stop) = run.one_batch(state).await {
                failure = Some((stop, state.report.table, state.report.cursor));
                break 'rounds;
            }
        }
        if tables.iter().all(|state| state.report.caught_up) {
            break;
        }
    }
    if let Some((stop, table, cursor)) = failure {
        let delivered = tables.iter().map(|state| state.report.sent).sum();
        let error = run.error(stop, table, cursor, delivered);
        tracing::warn!(error = %error, "forwarding stopped");
        return Err(error);
    }
    let report = ForwardReport {
        sink: sink.name.clone(),
        tables: tables.into_iter().map(|state| state.report).collect(),
        elapsed: started.elapsed(),
    };
    tracing::info!(sent = report.sent(), caught_up = report.caught_up(), "forwarded");
    Ok(report)
}

struct TableState {
    report: TableReport,
    /// Taken once per run, before the table's first read.
    watermark: Option<Watermark>,
    /// The next batch, read while the last one was being sent.
    ahead: Option<Prepared>,
}

/// A batch read and encoded, not sent yet.
struct Prepared {
    /// The id the batch was read after.
    after: i64,
    rows: Vec<rows::OutgoingRow>,
    /// Each row encoded for the sink's kind.
    pieces: Vec<Vec<u8>>,
    caught_up: bool,
    held_at: Option<i64>,
}

/// Why a batch stopped the run.
enum Stop {
    Database(String),
    Undelivered(Undelivered),
}

fn database(table: ForwardTable, error: &dyn std::fmt::Display) -> Stop {
    Stop::Database(format!("{table}: {error}"))
}

struct Run<'a> {
    db: &'a DatabaseConnection,
    client: &'a reqwest::Client,
    sink: &'a Sink,
    target: Target,
    context: EncodeContext<'a>,
    batch: usize,
    deadline: Instant,
    redactor: std::sync::Arc<Redactor>,
}

impl Run<'_> {
    /// Sends and commits one batch of `state`'s table (one request or, past the size limit,
    /// several in order), reading and encoding the next batch while this one is on its way.
    async fn one_batch(&self, state: &mut TableState) -> Result<(), Stop> {
        let table = state.report.table;
        let watermark = match state.watermark {
            Some(watermark) => watermark,
            None => {
                let watermark = committed_up_to(self.db, table).await.map_err(|error| database(table, &error))?;
                state.watermark = Some(watermark);
                watermark
            }
        };
        match watermark {
            Watermark::Busy => {
                state.report.busy = true;
                state.report.caught_up = true;
                return Ok(());
            }
            Watermark::UpTo(highest) if highest <= state.report.cursor => {
                state.report.caught_up = true;
                return Ok(());
            }
            Watermark::UpTo(_) | Watermark::Unbounded => {}
        }
        let bound = watermark.bound();
        let batch = match state.ahead.take() {
            // Read ahead from where the last batch ended, which is where the cursor is unless
            // that batch was cut short by the budget.
            Some(batch) if batch.after == state.report.cursor => batch,
            _ => self.prepare(table, state.report.cursor, bound).await?,
        };
        let next_after = batch.rows.last().map(|row| row.id).filter(|_| !batch.caught_up);
        let read_next = async {
            match next_after {
                Some(after) => Some(self.prepare(table, after, bound).await),
                None => None,
            }
        };
        let (sent, next) = tokio::join!(self.send(&mut state.report, &batch), read_next);
        sent?;
        state.ahead = next.transpose()?;
        Ok(())
    }

    /// The batch after `after`, read and encoded.
    async fn prepare(&self, table: ForwardTable, after: i64, bound: Option<i64>) -> Result<Prepared, Stop> {
        let fetched = rows::read_after(self.db, table, after, bound, self.batch, &self.redactor)
            .await
            .map_err(|error| database(table, &error))?;
        let pieces = fetched.rows.iter().map(|row| encode_row(self.sink.kind, &self.context, table, row)).collect();
        Ok(Prepared { after, rows: fetched.rows, pieces, caught_up: fetched.caught_up, held_at: fetched.held_at })
    }

    /// POSTs `batch` (split by size) and moves the cursor after each request.
    async fn send(&self, report: &mut TableReport, batch: &Prepared) -> Result<(), Stop> {
        let kind = self.sink.kind;
        let table = report.table;
        let sizes: Vec<usize> = batch.pieces.iter().map(Vec::len).collect();
        for range in pack(&sizes, MAX_REQUEST_BYTES) {
            if Instant::now() >= self.deadline {
                return Ok(());
            }
            let (Some(first), Some(last)) = (batch.rows.get(range.start), batch.rows.get(range.end.saturating_sub(1)))
            else {
                continue;
            };
            let (first_id, last_id, count) = (first.id, last.id, range.len() as u64);
            let pieces = batch.pieces.get(range).unwrap_or_default();
            let body = assemble(kind, &self.context, pieces.iter().map(Vec::as_slice));
            let body = redact_body(kind, body, &self.redactor);
            match deliver(self.client, &self.target, Bytes::from(body), self.deadline).await {
                Ok(Delivered::Accepted { rejected_records: None }) => report.sent += count,
                Ok(Delivered::Accepted { rejected_records: Some((rejected, message)) }) => {
                    report.sent += count.saturating_sub(rejected);
                    let answer = format!("{rejected} of {count} records rejected: {message}");
                    self.reject(report, first_id, last_id, 200, &answer);
                }
                Ok(Delivered::Rejected { status, answer }) => self.reject(report, first_id, last_id, status, &answer),
                Err(undelivered) => return Err(Stop::Undelivered(undelivered)),
            }
            advance_forward_cursor(self.db, &self.sink.name, table.as_str(), last_id)
                .await
                .map_err(|error| database(table, &error))?;
            report.cursor = last_id;
        }
        if batch.caught_up {
            report.caught_up = true;
            report.held_at = batch.held_at;
        }
        Ok(())
    }

    fn reject(&self, report: &mut TableReport, first_id: i64, last_id: i64, status: u16, answer: &str) {
        let excerpt = excerpt(answer, &self.sink.token, &self.redactor);
        tracing::warn!(table = %report.table, first_id, last_id, status, answer = %excerpt, "the sink rejected a batch; it is passed over");
        report.rejected.push(RejectedBatch { table: report.table, first_id, last_id, status, excerpt });
    }

    fn error(&self, stop: Stop, table: ForwardTable, cursor: i64, delivered: u64) -> ForwardError {
        let sink = self.sink.name.clone();
        match stop {
            Stop::Database(message) => ForwardError::Database { sink, message },
            Stop::Undelivered(Undelivered::Misconfigured { status, answer }) => ForwardError::Misconfigured {
                sink,
                table,
                status,
                excerpt: excerpt(&answer, &self.sink.token, &self.redactor),
                delivered,
                cursor,
            },
            Stop::Undelivered(Undelivered::Unavailable { attempts, last }) => {
                ForwardError::Unavailable { sink, table, attempts, last, delivered, cursor }
            }
        }
    }
}

/// The body after the redactor's pass over the whole text. The events' strings were redacted one
/// by one when they were read; this pass also catches what the envelope adds. Should it ever break the
/// body's syntax (a secret that is all digits, matched inside a number), the string-by-string
/// redacted body is sent: a rejected batch would be passed over and lost.
fn redact_body(kind: SinkKind, body: Vec<u8>, redactor: &Redactor) -> Vec<u8> {
    let redacted = match redactor.redact_bytes(&body) {
        Cow::Borrowed(_) => return body,
        Cow::Owned(redacted) => redacted,
    };
    let still_valid = match kind {
        SinkKind::SplunkHec => {
            serde_json::Deserializer::from_slice(&redacted).into_iter::<IgnoredAny>().all(|event| event.is_ok())
        }
        SinkKind::DatadogLogs | SinkKind::OtlpLogs => serde_json::from_slice::<IgnoredAny>(&redacted).is_ok(),
    };
    if still_valid {
        redacted
    } else {
        tracing::warn!("a secret's value matched the syntax of a forwarded body; its strings stay redacted");
        body
    }
}

fn describe(problem: TargetProblem) -> String {
    match problem {
        TargetProblem::NotHttp => "its url is not an absolute http:// or https:// URL".to_owned(),
        TargetProblem::TokenNotAHeader => {
            "its token cannot be sent in an HTTP header (it holds a control character or a line break)".to_owned()
        }
        TargetProblem::TokenInClear => {
            "its url is plain http:// to a host that is not loopback, which would send the token in clear; \
             use https://"
                .to_owned()
        }
    }
}

/// This machine's name, as the events' `host`: the kernel's, else `/etc/hostname`, else `castellan`.
fn host_name() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|path| {
                let name = std::fs::read_to_string(path).ok()?;
                let name = name.trim();
                (!name.is_empty()).then(|| name.to_owned())
            })
            .unwrap_or_else(|| "castellan".to_owned())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn the_body_pass_redacts_but_never_breaks_the_syntax() {
        let redactor = Redactor::new([("key", "opaque-secret-9"), ("pin", "12345678")]);
        let body = br#"[{"message":"leaked opaque-secret-9"}]"#.to_vec();
        let redacted = redact_body(SinkKind::DatadogLogs, body, &redactor);
        assert_eq!(redacted, br#"[{"message":"leaked [REDACTED:key]"}]"#.to_vec());
        let numeric = br#"{"time":12345678.5,"event":{}}"#.to_vec();
        assert_eq!(
            redact_body(SinkKind::SplunkHec, numeric.clone(), &redactor),
            numeric,
            "a secret matched inside a number leaves the body as it was"
        );
    }
}

//! The rows a run sends: read after a cursor in id order, each turned into one event (its columns
//! as stored, timestamps in RFC 3339 with microseconds) with the time, severity and trace id the
//! encoders put in their envelopes.
//!
//! An event is serialized once, here, from the row's own strings after the redactor has seen each
//! of them (so escapes are not in the way); the encoders embed the text as it is.

use std::borrow::Cow;

use castellan_schema::entity::{ai_requests, hook_events, mcp_tool_executions};
use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;

use super::ForwardTable;
use crate::redaction::Redactor;

/// How serious an event is, for the sinks that have a level (OTLP severity, Datadog status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    /// OTLP's `severityText`.
    pub fn text(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warn => "WARN",
            Severity::Error => "ERROR",
        }
    }

    /// OTLP's `severityNumber` (the first number of each range: INFO 9, WARN 13, ERROR 17).
    pub fn otlp_number(self) -> u8 {
        match self {
            Severity::Info => 9,
            Severity::Warn => 13,
            Severity::Error => 17,
        }
    }

    /// Datadog's `status`.
    pub fn datadog_status(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warn => "warn",
            Severity::Error => "error",
        }
    }
}

/// One row on its way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRow {
    pub id: i64,
    /// When it happened: `started_at` of a tool call or AI request, `created_at` of a decision.
    pub time: DateTime<Utc>,
    pub severity: Severity,
    pub trace_id: String,
    /// The row's columns as a JSON object (text), every string redacted.
    pub event: String,
}

/// What one read found.
#[derive(Debug, Default)]
pub struct Fetched {
    pub rows: Vec<OutgoingRow>,
    /// The table has nothing more to send now: fewer rows than asked for, or held back.
    pub caught_up: bool,
    /// The id of an `ai_requests` row still `started`: nothing from it on is sent yet.
    pub held_at: Option<i64>,
}

/// Up to `limit` rows of `table` with `after < id` (and `id <= up_to` when given), in id order,
/// their strings passed through `redactor`.
pub async fn read_after(
    db: &DatabaseConnection,
    table: ForwardTable,
    after: i64,
    up_to: Option<i64>,
    limit: usize,
    redactor: &Redactor,
) -> Result<Fetched, DbErr> {
    let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
    let rows: Vec<OutgoingRow> = match table {
        ForwardTable::Audit => {
            let mut query = mcp_tool_executions::Entity::find().filter(mcp_tool_executions::Column::Id.gt(after));
            if let Some(up_to) = up_to {
                query = query.filter(mcp_tool_executions::Column::Id.lte(up_to));
            }
            let models = query.order_by_asc(mcp_tool_executions::Column::Id).limit(limit_u64).all(db).await?;
            models.iter().map(|model| audit_row(model, redactor)).collect()
        }
        ForwardTable::AiRequests => {
            let mut query = ai_requests::Entity::find().filter(ai_requests::Column::Id.gt(after));
            if let Some(up_to) = up_to {
                query = query.filter(ai_requests::Column::Id.lte(up_to));
            }
            let models = query.order_by_asc(ai_requests::Column::Id).limit(limit_u64).all(db).await?;
            let held_at = models.iter().find(|model| is_in_flight(model)).map(|model| model.id);
            let rows: Vec<OutgoingRow> = models
                .iter()
                .take_while(|model| !is_in_flight(model))
                .map(|model| ai_request_row(model, redactor))
                .collect();
            return Ok(Fetched { caught_up: held_at.is_some() || models.len() < limit, rows, held_at });
        }
        ForwardTable::HookEvents => {
            let mut query = hook_events::Entity::find().filter(hook_events::Column::Id.gt(after));
            if let Some(up_to) = up_to {
                query = query.filter(hook_events::Column::Id.lte(up_to));
            }
            let models = query.order_by_asc(hook_events::Column::Id).limit(limit_u64).all(db).await?;
            models.iter().map(|model| hook_event_row(model, redactor)).collect()
        }
    };
    let caught_up = rows.len() < limit;
    Ok(Fetched { rows, caught_up, held_at: None })
}

/// A request that has not ended: its row will still change, so it is not sent yet.
fn is_in_flight(model: &ai_requests::Model) -> bool {
    model.status == castellan_schema::ai_requests::AiRequestStatus::Started.as_str()
}

fn timestamp(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The event's JSON text (serializing these structs into a Vec cannot fail).
fn to_json(event: &impl Serialize) -> String {
    serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned())
}

type Text<'a> = Cow<'a, str>;

fn text<'a>(redactor: &Redactor, value: &'a str) -> Text<'a> {
    redactor.redact(value)
}

fn optional<'a>(redactor: &Redactor, value: &'a Option<String>) -> Option<Text<'a>> {
    value.as_deref().map(|value| redactor.redact(value))
}

#[derive(Serialize)]
struct AuditEvent<'a> {
    id: i64,
    kind: Text<'a>,
    server: Text<'a>,
    tool: Text<'a>,
    status: Text<'a>,
    error_message: Option<Text<'a>>,
    user_id: Option<Text<'a>>,
    session_id: Option<Text<'a>>,
    trace_id: Text<'a>,
    started_at: String,
    completed_at: String,
    duration_ms: i64,
    input: Text<'a>,
    output: Option<Text<'a>>,
    prev_hash: &'a str,
    row_hash: &'a str,
}

pub fn audit_row(model: &mcp_tool_executions::Model, redactor: &Redactor) -> OutgoingRow {
    let severity = match model.status.as_str() {
        "success" => Severity::Info,
        "timeout" | "failed" => Severity::Error,
        _ => Severity::Warn,
    };
    let event = AuditEvent {
        id: model.id,
        kind: text(redactor, &model.kind),
        server: text(redactor, &model.server),
        tool: text(redactor, &model.tool),
        status: text(redactor, &model.status),
        error_message: optional(redactor, &model.error_message),
        user_id: optional(redactor, &model.user_id),
        session_id: optional(redactor, &model.session_id),
        trace_id: text(redactor, &model.trace_id),
        started_at: timestamp(&model.started_at),
        completed_at: timestamp(&model.completed_at),
        duration_ms: model.duration_ms,
        input: text(redactor, &model.input),
        output: optional(redactor, &model.output),
        // Hex digests: nothing a secret could hide in, and redacting them would break the chain.
        prev_hash: &model.prev_hash,
        row_hash: &model.row_hash,
    };
    OutgoingRow {
        id: model.id,
        time: model.started_at,
        severity,
        trace_id: model.trace_id.clone(),
        event: to_json(&event),
    }
}

#[derive(Serialize)]
struct AiRequestEvent<'a> {
    id: i64,
    user_id: Option<Text<'a>>,
    api_key_id: Option<Text<'a>>,
    session_id: Option<Text<'a>>,
    trace_id: Text<'a>,
    endpoint: Text<'a>,
    provider: Text<'a>,
    model: Text<'a>,
    upstream_model: Text<'a>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    cache_read_tokens: Option<i64>,
    cache_write_tokens: Option<i64>,
    cost_microdollars: Option<i64>,
    latency_ms: Option<i64>,
    ttft_ms: Option<i64>,
    status: Text<'a>,
    error_message: Option<Text<'a>>,
    streamed: bool,
    started_at: String,
    completed_at: Option<String>,
}

pub fn ai_request_row(model: &ai_requests::Model, redactor: &Redactor) -> OutgoingRow {
    let severity = match model.status.as_str() {
        "success" => Severity::Info,
        "upstream_error" | "failed" => Severity::Error,
        _ => Severity::Warn,
    };
    let event = AiRequestEvent {
        id: model.id,
        user_id: optional(redactor, &model.user_id),
        api_key_id: optional(redactor, &model.api_key_id),
        session_id: optional(redactor, &model.session_id),
        trace_id: text(redactor, &model.trace_id),
        endpoint: text(redactor, &model.endpoint),
        provider: text(redactor, &model.provider),
        model: text(redactor, &model.model),
        upstream_model: text(redactor, &model.upstream_model),
        input_tokens: model.input_tokens,
        output_tokens: model.output_tokens,
        cache_read_tokens: model.cache_read_tokens,
        cache_write_tokens: model.cache_write_tokens,
        cost_microdollars: model.cost_microdollars,
        latency_ms: model.latency_ms,
        ttft_ms: model.ttft_ms,
        status: text(redactor, &model.status),
        error_message: optional(redactor, &model.error_message),
        streamed: model.streamed,
        started_at: timestamp(&model.started_at),
        completed_at: model.completed_at.as_ref().map(timestamp),
    };
    OutgoingRow {
        id: model.id,
        time: model.started_at,
        severity,
        trace_id: model.trace_id.clone(),
        event: to_json(&event),
    }
}

#[derive(Serialize)]
struct HookEvent<'a> {
    id: i64,
    event: Text<'a>,
    decision: Text<'a>,
    handler: Text<'a>,
    reason: Option<Text<'a>>,
    server: Option<Text<'a>>,
    tool: Option<Text<'a>>,
    user_id: Option<Text<'a>>,
    trace_id: Text<'a>,
    created_at: String,
}

pub fn hook_event_row(model: &hook_events::Model, redactor: &Redactor) -> OutgoingRow {
    let severity = if model.decision == "allow" { Severity::Info } else { Severity::Warn };
    let event = HookEvent {
        id: model.id,
        event: text(redactor, &model.event),
        decision: text(redactor, &model.decision),
        handler: text(redactor, &model.handler),
        reason: optional(redactor, &model.reason),
        server: optional(redactor, &model.server),
        tool: optional(redactor, &model.tool),
        user_id: optional(redactor, &model.user_id),
        trace_id: text(redactor, &model.trace_id),
        created_at: timestamp(&model.created_at),
    };
    OutgoingRow {
        id: model.id,
        time: model.created_at,
        severity,
        trace_id: model.trace_id.clone(),
        event: to_json(&event),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use chrono::TimeZone;
    use serde_json::{Value, json};

    fn at(micros: i64) -> DateTime<Utc> {
        Utc.timestamp_micros(1_780_000_000_000_000 + micros).unwrap()
    }

    #[test]
    fn an_audit_event_carries_every_column_as_stored() {
        let model = mcp_tool_executions::Model {
            id: 7,
            server: "customers".into(),
            tool: "get_customer".into(),
            kind: "tool".into(),
            input: r#"{"id":1}"#.into(),
            output: Some(r#"{"content":["secret-in-the-output"]}"#.into()),
            status: "denied".into(),
            error_message: Some("rule no-destructive".into()),
            user_id: Some("alice".into()),
            session_id: None,
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            started_at: at(1),
            completed_at: at(4_001),
            duration_ms: 4,
            prev_hash: "aa".into(),
            row_hash: "bb".into(),
        };
        let row = audit_row(&model, &Redactor::new([("key", "secret-in-the-output")]));
        assert_eq!(row.severity, Severity::Warn, "a denial is a warning");
        assert_eq!(row.time, at(1), "the event time is when the call started");
        let event: Value = serde_json::from_str(&row.event).unwrap();
        assert_eq!(event["output"], json!(r#"{"content":["[REDACTED:key]"]}"#), "strings are redacted");
        let event = event.as_object().unwrap();
        let keys: Vec<&str> = event.keys().map(String::as_str).collect();
        for column in [
            "id",
            "kind",
            "server",
            "tool",
            "status",
            "error_message",
            "user_id",
            "session_id",
            "trace_id",
            "started_at",
            "completed_at",
            "duration_ms",
            "input",
            "output",
            "prev_hash",
            "row_hash",
        ] {
            assert!(keys.contains(&column), "{column} in {keys:?}");
        }
        assert_eq!(event["input"], json!(r#"{"id":1}"#), "input is the stored text, not re-encoded");
        assert_eq!(event["started_at"], json!("2026-05-28T20:26:40.000001Z"), "microseconds, UTC");
        assert_eq!(event["session_id"], Value::Null, "a NULL column is null");
    }

    #[test]
    fn severities_follow_the_status() {
        let cases = [("success", Severity::Info), ("tool_error", Severity::Warn), ("failed", Severity::Error)];
        for (status, severity) in cases {
            let model = mcp_tool_executions::Model {
                id: 1,
                server: String::new(),
                tool: String::new(),
                kind: "tool".into(),
                input: String::new(),
                output: None,
                status: status.into(),
                error_message: None,
                user_id: None,
                session_id: None,
                trace_id: String::new(),
                started_at: at(0),
                completed_at: at(0),
                duration_ms: 0,
                prev_hash: String::new(),
                row_hash: String::new(),
            };
            assert_eq!(audit_row(&model, &Redactor::default()).severity, severity, "{status}");
        }
        for (decision, severity) in [("allow", Severity::Info), ("deny", Severity::Warn)] {
            let model = hook_events::Model {
                id: 1,
                event: "PreToolUse".into(),
                decision: decision.into(),
                handler: "builtin:deny_tools".into(),
                reason: None,
                server: None,
                tool: None,
                user_id: None,
                trace_id: String::new(),
                created_at: at(0),
            };
            assert_eq!(hook_event_row(&model, &Redactor::default()).severity, severity, "{decision}");
        }
    }
}

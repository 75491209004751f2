//! `GET /api/v1/costs` and `GET /api/v1/ai-requests`: operators' read access to the AI gateway's
//! request log. Admin tier, guarded like every other `/api/v1` endpoint; parameters are parsed
//! into domain types before the database is asked, and a bad one is a 400 naming it.

use actix_web::{HttpRequest, HttpResponse, web};
use castellan_schema::ai_requests::{self, AiRequestFilter, AiRequestRow, AiRequestStatus, CostsBy, LIST_MAX_LIMIT};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::cli::costs::{DEFAULT_SINCE, costs_json, parse_since};
use crate::http::{ApiError, AppState};

/// How many rows `GET /api/v1/ai-requests` returns without `limit`.
const DEFAULT_LIMIT: u64 = 100;

/// The parameters of `GET /api/v1/costs`.
#[derive(Debug, PartialEq, Eq)]
struct CostsQuery {
    by: CostsBy,
    since: DateTime<Utc>,
    user: Option<String>,
}

/// Every `name=value` of `query`, refusing names not in `known` and names given twice.
fn parameters(query: &str, known: &[&str]) -> Result<Vec<(String, String)>, String> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if !known.contains(&name.as_ref()) {
            return Err(format!("unknown parameter `{name}`; known parameters: {}", known.join(", ")));
        }
        if seen.iter().any(|(seen_name, _)| *seen_name == name) {
            return Err(format!("`{name}` is given twice"));
        }
        seen.push((name.into_owned(), value.into_owned()));
    }
    Ok(seen)
}

fn since(value: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    parse_since(value, now).map_err(|message| format!("`since`: {message}"))
}

fn user(value: String) -> Result<String, String> {
    if value.is_empty() {
        return Err("`user` must not be empty".to_string());
    }
    Ok(value)
}

impl CostsQuery {
    fn parse(query: &str, now: DateTime<Utc>) -> Result<CostsQuery, String> {
        let mut parsed = CostsQuery { by: CostsBy::User, since: since(DEFAULT_SINCE, now)?, user: None };
        for (name, value) in parameters(query, &["by", "since", "user"])? {
            match name.as_str() {
                "by" => {
                    parsed.by = CostsBy::parse(&value)
                        .ok_or_else(|| "`by` must be one of user, model, provider, day".to_string())?;
                }
                "since" => parsed.since = since(&value, now)?,
                _ => parsed.user = Some(user(value)?),
            }
        }
        Ok(parsed)
    }
}

/// The parameters of `GET /api/v1/ai-requests`.
fn list_filter(query: &str, now: DateTime<Utc>) -> Result<AiRequestFilter, String> {
    let mut filter = AiRequestFilter { since: None, user: None, status: None, limit: DEFAULT_LIMIT };
    for (name, value) in parameters(query, &["since", "user", "status", "limit"])? {
        match name.as_str() {
            "since" => filter.since = Some(since(&value, now)?),
            "user" => filter.user = Some(user(value)?),
            "status" => {
                filter.status = Some(AiRequestStatus::parse(&value).ok_or_else(|| {
                    format!("`status` must be one of {}", ai_requests::AI_REQUEST_STATUSES.join(", "))
                })?);
            }
            _ => {
                filter.limit = value
                    .parse::<u64>()
                    .ok()
                    .filter(|limit| (1..=LIST_MAX_LIMIT).contains(limit))
                    .ok_or_else(|| format!("`limit` must be a whole number from 1 to {LIST_MAX_LIMIT}"))?;
            }
        }
    }
    Ok(filter)
}

fn unavailable(error: &castellan_schema::DbError) -> HttpResponse {
    tracing::error!(%error, "reading ai_requests failed");
    ApiError::Unavailable("the database is unavailable; try again".into()).into_response()
}

/// `GET /api/v1/costs?by=user|model|provider|day&since=DURATION|RFC3339&user=U`: spend grouped,
/// the same document as `castellan costs --json`. Defaults: by user, the last 30 days.
#[tracing::instrument(skip_all)]
pub async fn costs(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(response) = super::admin(&state, &request).await {
        return response;
    }
    let query = match CostsQuery::parse(request.query_string(), Utc::now()) {
        Ok(query) => query,
        Err(message) => return ApiError::BadRequest(message).into_response(),
    };
    match ai_requests::costs(&state.db, query.by, query.since, query.user.as_deref()).await {
        Ok(groups) => HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(costs_json(
            query.by,
            query.since,
            query.user.as_deref(),
            &groups,
        )),
        Err(error) => unavailable(&error),
    }
}

/// `GET /api/v1/ai-requests?since=&user=&status=&limit=`: the newest requests, newest first
/// (`limit` 100 by default, at most 10,000).
#[tracing::instrument(skip_all)]
pub async fn list(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(response) = super::admin(&state, &request).await {
        return response;
    }
    let filter = match list_filter(request.query_string(), Utc::now()) {
        Ok(filter) => filter,
        Err(message) => return ApiError::BadRequest(message).into_response(),
    };
    match ai_requests::list(&state.db, &filter).await {
        Ok(rows) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(json!({"ai_requests": rows.iter().map(row_json).collect::<Vec<_>>()})),
        Err(error) => unavailable(&error),
    }
}

pub(super) fn row_json(row: &AiRequestRow) -> Value {
    json!({
        "id": row.id,
        "user_id": row.user_id,
        "api_key_id": row.api_key_id,
        "session_id": row.session_id,
        "trace_id": row.trace_id,
        "endpoint": row.endpoint,
        "provider": row.provider,
        "model": row.model,
        "upstream_model": row.upstream_model,
        "input_tokens": row.input_tokens,
        "output_tokens": row.output_tokens,
        "cache_read_tokens": row.cache_read_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "cost_microdollars": row.cost_microdollars,
        "cost_usd": row.cost_microdollars.map(crate::cli::costs::format_usd),
        "latency_ms": row.latency_ms,
        "ttft_ms": row.ttft_ms,
        "status": row.status,
        "error_message": row.error_message,
        "streamed": row.streamed,
        "started_at": row.started_at.to_rfc3339(),
        "completed_at": row.completed_at.map(|at| at.to_rfc3339()),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 3, 12, 0, 0).single().expect("a valid instant")
    }

    #[test]
    fn costs_parameters_parse_with_defaults() {
        let thirty_days_ago = Utc.with_ymd_and_hms(2026, 11, 3, 12, 0, 0).single().expect("a valid instant");
        let cases = [
            ("", CostsQuery { by: CostsBy::User, since: thirty_days_ago, user: None }),
            (
                "by=day&since=2026-12-01T00:00:00Z&user=alice",
                CostsQuery {
                    by: CostsBy::Day,
                    since: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().expect("a valid instant"),
                    user: Some("alice".into()),
                },
            ),
            (
                "by=provider&since=12h",
                CostsQuery {
                    by: CostsBy::Provider,
                    since: Utc.with_ymd_and_hms(2026, 12, 3, 0, 0, 0).single().expect("a valid instant"),
                    user: None,
                },
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(CostsQuery::parse(query, now()), Ok(expected), "{query:?}");
        }
    }

    #[test]
    fn bad_parameters_say_what_is_wrong() {
        let cases = [
            ("by=week", "`by` must be one of"),
            ("since=yesterday", "`since`"),
            ("usr=alice", "unknown parameter `usr`"),
            ("by=day&by=user", "given twice"),
            ("user=", "`user` must not be empty"),
        ];
        for (query, expected) in cases {
            let message = CostsQuery::parse(query, now()).expect_err(query);
            assert!(message.contains(expected), "{query:?} gave {message:?}");
        }
        let list_cases = [
            ("limit=0", "`limit` must be a whole number from 1 to 10000"),
            ("limit=10001", "`limit`"),
            ("limit=ten", "`limit`"),
            ("status=ok", "`status` must be one of started, success"),
            ("by=user", "unknown parameter `by`"),
        ];
        for (query, expected) in list_cases {
            let message = list_filter(query, now()).expect_err(query);
            assert!(message.contains(expected), "{query:?} gave {message:?}");
        }
    }

    #[test]
    fn list_parameters_parse() {
        let filter = list_filter("since=1h&user=bob&status=budget_exceeded&limit=10000", now()).expect("valid");
        assert_eq!(
            filter,
            AiRequestFilter {
                since: Some(Utc.with_ymd_and_hms(2026, 12, 3, 11, 0, 0).single().expect("a valid instant")),
                user: Some("bob".into()),
                status: Some(AiRequestStatus::BudgetExceeded),
                limit: 10_000,
            }
        );
        assert_eq!(list_filter("", now()).expect("empty").limit, DEFAULT_LIMIT, "the default limit");
    }
}

//! Reading `ai_requests`: the newest rows, spend grouped for reports, and spend for budgets.
//!
//! The sums are computed by the database (`GROUP BY`), on SQLite and PostgreSQL alike; the day of a
//! row is its UTC date, taken with each backend's own function (SQLite `strftime('%Y-%m-%d', ..)`,
//! PostgreSQL `to_char(.. AT TIME ZONE 'UTC', 'YYYY-MM-DD')`). Sums are cast to `BIGINT` because
//! PostgreSQL's `SUM(bigint)` is `numeric`.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, FromQueryResult, QueryFilter, QueryOrder, QuerySelect,
};

use super::{AiRequestRow, AiRequestStatus};
use crate::entity::ai_requests as entity;
use crate::error::DbResult;
use crate::time::truncate_to_micros;

/// The most rows one [`list`] call returns.
pub const LIST_MAX_LIMIT: u64 = 10_000;

/// Which rows [`list`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AiRequestFilter {
    /// Only rows started at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Only rows whose `user_id` is this.
    pub user: Option<String>,
    pub status: Option<AiRequestStatus>,
    /// At most this many rows, capped at [`LIST_MAX_LIMIT`].
    pub limit: u64,
}

impl Default for AiRequestFilter {
    fn default() -> AiRequestFilter {
        AiRequestFilter { since: None, user: None, status: None, limit: 100 }
    }
}

/// The newest rows matching `filter`, newest first (by `started_at`, then id).
#[tracing::instrument(skip_all, fields(limit = filter.limit))]
pub async fn list(db: &DatabaseConnection, filter: &AiRequestFilter) -> DbResult<Vec<AiRequestRow>> {
    let mut query = entity::Entity::find();
    if let Some(since) = filter.since {
        query = query.filter(entity::Column::StartedAt.gte(truncate_to_micros(since)));
    }
    if let Some(user) = &filter.user {
        query = query.filter(entity::Column::UserId.eq(user.as_str()));
    }
    if let Some(status) = filter.status {
        query = query.filter(entity::Column::Status.eq(status.as_str()));
    }
    let rows = query
        .order_by_desc(entity::Column::StartedAt)
        .order_by_desc(entity::Column::Id)
        .limit(filter.limit.min(LIST_MAX_LIMIT))
        .all(db)
        .await?;
    Ok(rows.into_iter().map(AiRequestRow::from).collect())
}

/// The rows of one trace, oldest first (bounded like [`list`]).
#[tracing::instrument(skip_all)]
pub async fn by_trace_id(db: &DatabaseConnection, trace_id: &str) -> DbResult<Vec<AiRequestRow>> {
    let rows = entity::Entity::find()
        .filter(entity::Column::TraceId.eq(trace_id))
        .order_by_asc(entity::Column::Id)
        .limit(LIST_MAX_LIMIT)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(AiRequestRow::from).collect())
}

/// What [`costs`] groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CostsBy {
    /// `user_id` (an empty key for rows without one).
    User,
    /// The model as asked.
    Model,
    Provider,
    /// The UTC date the request started, `YYYY-MM-DD`.
    Day,
}

impl CostsBy {
    pub const ALL: [CostsBy; 4] = [CostsBy::User, CostsBy::Model, CostsBy::Provider, CostsBy::Day];

    pub fn as_str(self) -> &'static str {
        match self {
            CostsBy::User => "user",
            CostsBy::Model => "model",
            CostsBy::Provider => "provider",
            CostsBy::Day => "day",
        }
    }

    /// `user`, `model`, `provider` or `day`.
    pub fn parse(text: &str) -> Option<CostsBy> {
        CostsBy::ALL.into_iter().find(|by| by.as_str() == text)
    }

    /// The grouping expression on `backend`: built from fixed text only.
    fn key_expression(self, backend: DbBackend) -> &'static str {
        match (self, backend) {
            (CostsBy::User, _) => "COALESCE(user_id, '')",
            (CostsBy::Model, _) => "model",
            (CostsBy::Provider, _) => "provider",
            (CostsBy::Day, DbBackend::Postgres) => "to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            // Stored as RFC 3339 text in UTC; `strftime` normalizes any offset to UTC anyway.
            (CostsBy::Day, _) => "strftime('%Y-%m-%d', started_at)",
        }
    }
}

/// The spend of one group of requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CostGroup {
    /// The user, model, provider or `YYYY-MM-DD` the group is of.
    pub key: String,
    /// Every request in the group, whatever its status (in flight and refused ones included).
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    /// The sum of the known costs.
    pub cost_microdollars: i64,
    /// Requests that ended, may have gone upstream (not refused) and have no cost (the model has
    /// no price): money spent that [`Self::cost_microdollars`] does not include.
    pub unpriced_requests: i64,
}

#[derive(Debug, FromQueryResult)]
struct CostGroupResult {
    group_key: Option<String>,
    requests: i64,
    input_tokens: i64,
    output_tokens: i64,
    cache_read_tokens: i64,
    cache_write_tokens: i64,
    cost_microdollars: i64,
    unpriced_requests: i64,
}

/// `CAST(COALESCE(SUM(expression), 0) AS BIGINT)`.
fn sum(expression: &str) -> SimpleExpr {
    Expr::cust(format!("CAST(COALESCE(SUM({expression}), 0) AS BIGINT)"))
}

/// The SQL condition "this row ended, may have gone upstream, and has no cost".
fn unpriced_condition() -> String {
    let not_upstream: Vec<String> = AiRequestStatus::ALL
        .into_iter()
        .filter(|status| *status == AiRequestStatus::Started || !status.may_have_gone_upstream())
        .map(|status| format!("'{}'", status.as_str()))
        .collect();
    format!("cost_microdollars IS NULL AND status NOT IN ({})", not_upstream.join(", "))
}

/// Spend of the requests started at or after `since` (only `user`'s, when given), grouped `by`.
/// Days come oldest first; other groups most expensive first (then by key).
#[tracing::instrument(skip_all, fields(by = by.as_str()))]
pub async fn costs(
    db: &DatabaseConnection,
    by: CostsBy,
    since: DateTime<Utc>,
    user: Option<&str>,
) -> DbResult<Vec<CostGroup>> {
    let key = by.key_expression(db.get_database_backend());
    let mut query = entity::Entity::find()
        .select_only()
        .expr_as(Expr::cust(key), "group_key")
        .expr_as(Expr::cust("CAST(COUNT(*) AS BIGINT)"), "requests")
        .expr_as(sum("input_tokens"), "input_tokens")
        .expr_as(sum("output_tokens"), "output_tokens")
        .expr_as(sum("cache_read_tokens"), "cache_read_tokens")
        .expr_as(sum("cache_write_tokens"), "cache_write_tokens")
        .expr_as(sum("cost_microdollars"), "cost_microdollars")
        .expr_as(sum(&format!("CASE WHEN {} THEN 1 ELSE 0 END", unpriced_condition())), "unpriced_requests")
        .filter(entity::Column::StartedAt.gte(truncate_to_micros(since)));
    if let Some(user) = user {
        query = query.filter(entity::Column::UserId.eq(user));
    }
    let results = query.group_by(Expr::cust(key)).into_model::<CostGroupResult>().all(db).await?;
    let mut groups: Vec<CostGroup> = results
        .into_iter()
        .map(|result| CostGroup {
            key: result.group_key.unwrap_or_default(),
            requests: result.requests,
            input_tokens: result.input_tokens,
            output_tokens: result.output_tokens,
            cache_read_tokens: result.cache_read_tokens,
            cache_write_tokens: result.cache_write_tokens,
            cost_microdollars: result.cost_microdollars,
            unpriced_requests: result.unpriced_requests,
        })
        .collect();
    match by {
        CostsBy::Day => groups.sort_by(|a, b| a.key.cmp(&b.key)),
        _ => groups.sort_by(|a, b| b.cost_microdollars.cmp(&a.cost_microdollars).then_with(|| a.key.cmp(&b.key))),
    }
    Ok(groups)
}

/// What one (user, key, model) spent: a budget account's starting point.
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct SpendGroup {
    pub user_id: Option<String>,
    pub api_key_id: Option<String>,
    pub model: String,
    /// The sum of the known costs (unpriced requests add nothing).
    pub cost_microdollars: i64,
}

/// The known cost of every request that is no longer `started`, started at or after `since`,
/// grouped by user, API key and model: what the budgets load at the start of a period. Requests in
/// flight are left out: their reservations are the budget ledger's business until they end.
#[tracing::instrument(skip_all)]
pub async fn spend_since(db: &DatabaseConnection, since: DateTime<Utc>) -> DbResult<Vec<SpendGroup>> {
    let groups = entity::Entity::find()
        .select_only()
        .column(entity::Column::UserId)
        .column(entity::Column::ApiKeyId)
        .column(entity::Column::Model)
        .expr_as(sum("cost_microdollars"), "cost_microdollars")
        .filter(entity::Column::StartedAt.gte(truncate_to_micros(since)))
        .filter(entity::Column::Status.ne(AiRequestStatus::Started.as_str()))
        .group_by(entity::Column::UserId)
        .group_by(entity::Column::ApiKeyId)
        .group_by(entity::Column::Model)
        .order_by_asc(entity::Column::UserId)
        .order_by_asc(entity::Column::ApiKeyId)
        .order_by_asc(entity::Column::Model)
        .into_model::<SpendGroup>()
        .all(db)
        .await?;
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_by_round_trips() {
        for by in CostsBy::ALL {
            assert_eq!(CostsBy::parse(by.as_str()), Some(by), "{by:?}");
        }
        for bad in ["", "users", "User", "week"] {
            assert_eq!(CostsBy::parse(bad), None, "{bad:?} is not a grouping");
        }
    }

    #[test]
    fn unpriced_leaves_out_refusals_and_requests_in_flight() {
        assert_eq!(
            unpriced_condition(),
            "cost_microdollars IS NULL AND status NOT IN ('started', 'denied', 'rate_limited', 'budget_exceeded')"
        );
    }
}

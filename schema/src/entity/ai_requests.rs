//! The `ai_requests` table: one row per AI gateway request, `started` before it goes upstream.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ai_requests")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The principal's subject (user name), not a foreign key: these rows outlive users.
    #[sea_orm(column_type = "Text", nullable)]
    pub user_id: Option<String>,
    /// The public id of the API key the caller used, when it used one (per-key budgets).
    #[sea_orm(column_type = "Text", nullable)]
    pub api_key_id: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub session_id: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub trace_id: String,
    /// `messages`, `chat_completions`, `responses` or `gemini`.
    #[sea_orm(column_type = "Text")]
    pub endpoint: String,
    #[sea_orm(column_type = "Text")]
    pub provider: String,
    /// The model as the caller asked for it.
    #[sea_orm(column_type = "Text")]
    pub model: String,
    /// The model name sent to the provider.
    #[sea_orm(column_type = "Text")]
    pub upstream_model: String,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    /// NULL when the model has no price (or the request has not ended): never a made-up cost.
    pub cost_microdollars: Option<i64>,
    pub latency_ms: Option<i64>,
    pub ttft_ms: Option<i64>,
    /// One of [`crate::ai_requests::AI_REQUEST_STATUSES`].
    #[sea_orm(column_type = "Text")]
    pub status: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_message: Option<String>,
    pub streamed: bool,
    pub started_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

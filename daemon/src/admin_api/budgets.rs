//! `GET /api/v1/budgets`: every budget account now, with the spend in `ai_requests` and what the
//! daemon holds reserved for requests in flight.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::http::{ApiError, AppState};

pub async fn budgets(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(response) = super::admin(&state, &request).await {
        return response;
    }
    let ai = state.ai.load();
    match crate::ai::budget_status::budget_status(&state.db, ai.budgets(), Some(state.ai.budgets()), chrono::Utc::now())
        .await
    {
        Ok(statuses) => {
            HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(json!({ "budgets": statuses }))
        }
        Err(error) => {
            tracing::error!(%error, "reading budget spend failed");
            ApiError::Unavailable("the database is unavailable; try again".into()).into_response()
        }
    }
}

//! The admin API (`/api/v1/...`): operators' read access to what Castellan recorded and, in
//! [`events`], to what happens now. Admin tier only, and our own access tokens need the `admin`
//! scope and the gateway's audience (`identity::may_use_admin_api`).

mod ai;
mod budgets;
mod events;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde_json::json;

use crate::http::{ApiError, AppState};
use crate::identity::{AdminRefusal, Audience, AuthError, may_use_admin_api};

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/api/v1/traces/{trace_id}", web::get().to(trace))
        .route("/api/v1/events", web::get().to(events::events))
        .route("/api/v1/costs", web::get().to(ai::costs))
        .route("/api/v1/ai-requests", web::get().to(ai::list))
        .route("/api/v1/budgets", web::get().to(budgets::budgets));
}

/// Authenticates an admin, or the error response. A token must be for the whole of Castellan (the
/// audience `{public_url}/mcp`): one issued for a single server's resource (`/mcp/{server}`) does
/// not open the admin API.
async fn admin(state: &AppState, request: &HttpRequest) -> Result<crate::identity::Principal, HttpResponse> {
    let authorization = request.headers().get("authorization").and_then(|value| value.to_str().ok());
    match state.authenticator.authenticate(authorization, Audience::Mcp(None), Utc::now()).await {
        Ok(principal) => match may_use_admin_api(&principal) {
            Ok(()) => Ok(principal),
            Err(AdminRefusal::Tier) => {
                Err(ApiError::Forbidden("the admin API needs the admin tier".into()).into_response())
            }
            Err(AdminRefusal::Scope) => Err(HttpResponse::Forbidden()
                .insert_header(("WWW-Authenticate", "Bearer error=\"insufficient_scope\", scope=\"admin\""))
                .json(json!({"error": "the admin API needs a token with the admin scope"}))),
        },
        Err(AuthError::Unavailable) => {
            Err(ApiError::Unavailable("the identity store is unavailable; try again".into()).into_response())
        }
        Err(_) => Err(HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer"))
            .json(json!({"error": "an admin credential is required"}))),
    }
}

/// `GET /api/v1/traces/{trace_id}`: everything recorded under one trace id: the model requests, the
/// hook decisions and the tool executions (a refused credential never reaches either).
async fn trace(request: HttpRequest, state: web::Data<AppState>, trace_id: web::Path<String>) -> HttpResponse {
    if let Err(response) = admin(&state, &request).await {
        return response;
    }
    let trace_id = trace_id.into_inner();
    if trace_id.len() != 32 || !trace_id.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')) {
        return ApiError::BadRequest("a trace id is 32 lowercase hex digits".into()).into_response();
    }
    let hooks = match castellan_schema::hook_events::by_trace_id(&state.db, &trace_id).await {
        Ok(rows) => rows,
        Err(error) => {
            tracing::error!(%error, "reading a trace failed");
            return ApiError::Unavailable("the database is unavailable; try again".into()).into_response();
        }
    };
    let hook_events: Vec<serde_json::Value> = hooks
        .iter()
        .map(|row| {
            json!({
                "id": row.id, "event": row.event, "decision": row.decision, "handler": row.handler,
                "reason": row.reason, "server": row.server, "tool": row.tool, "user_id": row.user_id,
                "created_at": row.created_at.to_rfc3339(),
            })
        })
        .collect();
    let model_requests = match castellan_schema::ai_requests::by_trace_id(&state.db, &trace_id).await {
        Ok(rows) => rows.iter().map(ai::row_json).collect::<Vec<_>>(),
        Err(error) => {
            tracing::error!(%error, "reading a trace failed");
            return ApiError::Unavailable("the database is unavailable; try again".into()).into_response();
        }
    };
    match castellan_schema::audit::by_trace_id(&state.db, &trace_id).await {
        Ok(rows) => {
            let executions: Vec<serde_json::Value> = rows
                .iter()
                .map(|row| {
                    json!({
                        "id": row.id, "server": row.server, "tool": row.tool, "status": row.status,
                        "user_id": row.user_id, "session_id": row.session_id,
                        "started_at": row.started_at.to_rfc3339(), "completed_at": row.completed_at.to_rfc3339(),
                        "duration_ms": row.duration_ms, "error_message": row.error_message,
                        "input": row.input, "output": row.output,
                    })
                })
                .collect();
            HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(json!({
                "trace_id": trace_id,
                "ai_requests": model_requests,
                "hook_events": hook_events,
                "tool_executions": executions,
            }))
        }
        Err(error) => {
            tracing::error!(%error, "reading a trace failed");
            ApiError::Unavailable("the database is unavailable; try again".into()).into_response()
        }
    }
}

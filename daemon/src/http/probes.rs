//! The small endpoints: liveness, readiness and the Prometheus scrape.

use std::sync::atomic::Ordering;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::AppState;

pub(super) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

pub(super) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let mut reasons = Vec::new();
    if castellan_schema::ping(&state.db).await.is_err() {
        reasons.push("database unreachable");
    }
    if !state.migrations_applied.load(Ordering::Acquire) {
        reasons.push("migrations not applied");
    }
    if !state.converged_once.load(Ordering::Acquire) {
        reasons.push("mcp servers not yet started");
    }
    if !state.gateway.audit.is_available() {
        reasons.push("audit writer cannot commit");
    }
    if reasons.is_empty() {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({"status": "not ready", "reasons": reasons}))
    }
}

pub(super) async fn metrics(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
    let authorization = request.headers().get("authorization").map(|value| value.as_bytes());
    if !state.metrics_access.allows(authorization) {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", r#"Bearer realm="metrics""#))
            .json(json!({"error": "/metrics needs Authorization: Bearer <metrics.token>"}));
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}

//! The HTTP surface: shared state, the one place errors become statuses, and the small endpoints
//! (health, readiness, metrics, protected-resource metadata). The MCP transport is in `mcp::http`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::StatusCode;
use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, HttpResponse, web};
use arc_swap::ArcSwap;
use castellan_actors::Metrics;
use castellan_actors::metrics::AuthOutcome;
use chrono::Utc;
use rand::RngCore;
use sea_orm::DatabaseConnection;
use serde_json::json;

use crate::identity::authority::Authority;
use crate::identity::client_metadata::ClientMetadataResolver;
use crate::identity::{Audience, AuthError, Authenticator, Principal};
use crate::mcp::gateway::Gateway;

/// What every handler shares.
pub struct AppState {
    pub gateway: Arc<Gateway>,
    pub authenticator: Authenticator,
    pub metrics: Metrics,
    /// `metrics.token`: who may read `/metrics`.
    pub metrics_access: crate::metrics_access::MetricsAccess,
    pub db: DatabaseConnection,
    pub public_url: String,
    pub allowed_origins: ArcSwap<Vec<String>>,
    /// `http://` + the bound socket address: clients that reach Castellan by its address rather than
    /// its public URL send this origin.
    pub listen_origin: String,
    /// `server.allow_anonymous`: serve requests without a credential as the anonymous tier.
    pub allow_anonymous: AtomicBool,
    pub converged_once: Arc<AtomicBool>,
    pub migrations_applied: AtomicBool,
    /// The authorization server: issuer, keys, revocations, clients.
    pub authority: Arc<Authority>,
    /// Client ID Metadata Documents, when `identity.client_metadata_documents` is on.
    pub client_metadata: Option<ClientMetadataResolver>,
    /// WebAuthn, when `server.public_url` can be a passkey origin.
    pub passkeys: Option<crate::web::passkeys::Passkeys>,
    /// The secret store behind `${secret:NAME}`.
    pub secrets: Arc<crate::secrets::SecretStore>,
    pub registration_limiter: crate::identity::address_limiter::AddressLimiter,
    /// `server.trusted_proxies`: whose `X-Forwarded-For` names the client (the rate-limit buckets
    /// themselves are in the governance snapshot, `gateway.policies`).
    pub trusted_proxies: crate::rate_limit::TrustedProxies,
    /// The size and time bounds of request bodies.
    pub bodies: crate::http_body::BodyBounds,
    /// Per-address bound on authorization requests that name a metadata-document client id.
    pub metadata_fetch_limiter: crate::identity::address_limiter::AddressLimiter,
    /// Per-address bound on new passkey ceremonies and authorization flows (each is a stored row).
    pub flow_limiter: crate::identity::address_limiter::AddressLimiter,
}

pub fn configure(config: &mut web::ServiceConfig) {
    use crate::mcp::http as mcp;
    config
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .configure(crate::oauth::configure)
        .configure(crate::web::configure)
        .configure(crate::admin_api::configure)
        .configure(crate::hook_endpoint::configure)
        .route("/mcp", web::post().to(|request, body, state| mcp::post(request, body, state, None)))
        .route("/mcp", web::get().to(|request, state| mcp::get(request, state, None)))
        .route("/mcp", web::delete().to(|request, state| mcp::delete(request, state, None)))
        .route(
            "/mcp/{server}",
            web::post().to(|request, body, state, server| mcp::post(request, body, state, Some(server))),
        )
        .route("/mcp/{server}", web::get().to(|request, state, server| mcp::get(request, state, Some(server))))
        .route("/mcp/{server}", web::delete().to(|request, state, server| mcp::delete(request, state, Some(server))));
}

/// A JSON error body with a status; messages are for users, never internal detail.
pub fn json_error(status: u16, message: &str) -> HttpResponse {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).json(json!({"error": message}))
}

/// The trace id: from a valid W3C `traceparent`, else a new random one.
pub fn trace_id_for(request: &HttpRequest) -> String {
    let header = request.headers().get("traceparent").and_then(|value| value.to_str().ok());
    header.and_then(parse_traceparent).map(|(trace, _)| trace.to_string()).unwrap_or_else(|| random_hex(16))
}

/// A W3C Trace Context `traceparent` (version-trace_id-parent_id-flags), strictly: lowercase hex
/// of the right lengths, a known version (`ff` is invalid; a future version may carry more fields),
/// and neither id all zeros. Returns the trace id and the parent id.
pub fn parse_traceparent(value: &str) -> Option<(&str, &str)> {
    let value = value.trim();
    let mut parts = value.split('-');
    let (version, trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |text: &str, len: usize| {
        text.len() == len && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
    };
    let valid = hex(version, 2)
        && version != "ff"
        && (version != "00" || parts.next().is_none())
        && hex(trace, 32)
        && hex(parent, 16)
        && hex(flags, 2)
        && trace.bytes().any(|byte| byte != b'0')
        && parent.bytes().any(|byte| byte != b'0');
    valid.then_some((trace, parent))
}

/// The `traceparent` Castellan sends on: the same trace, a new span of its own, sampled.
pub fn outgoing_traceparent(trace_id: &str) -> String {
    let mut span = random_hex(8);
    while span.bytes().all(|byte| byte == b'0') {
        span = random_hex(8);
    }
    format!("00-{trace_id}-{span}-01")
}

pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    hex::encode(buffer)
}

/// A 429 for a rate-limited request: `Retry-After` in whole seconds (at least 1) and the
/// RateLimit headers of draft-ietf-httpapi-ratelimit-headers.
pub fn too_many_requests(
    policy: &crate::rate_limit::Policy,
    retry_after: std::time::Duration,
    body: serde_json::Value,
) -> HttpResponse {
    let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
    HttpResponse::TooManyRequests()
        .insert_header(("Retry-After", seconds.to_string()))
        .insert_header(("RateLimit-Policy", policy.header()))
        .insert_header(("RateLimit", format!("{};r=0;t={seconds}", policy.name())))
        .insert_header(("Cache-Control", "no-store"))
        .json(body)
}

/// The client's address: the peer, or what a trusted proxy says in `X-Forwarded-For`.
pub fn client_address(state: &AppState, request: &HttpRequest) -> std::net::IpAddr {
    let forwarded: Vec<&str> =
        request.headers().get_all("x-forwarded-for").filter_map(|value| value.to_str().ok()).collect();
    state.trusted_proxies.client_address(request.peer_addr().map(|peer| peer.ip()), &forwarded)
}

/// DNS-rebinding defence: a browser's Origin must be ours or explicitly allowed. Non-browser
/// clients send no Origin and pass.
pub fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get("origin") else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    let origin = origin.trim_end_matches('/');
    let own = state.public_url.trim_end_matches('/');
    let own_origin = own
        .find("://")
        .and_then(|scheme_end| own[scheme_end + 3..].find('/').map(|path| &own[..scheme_end + 3 + path]))
        .unwrap_or(own);
    origin.eq_ignore_ascii_case(own_origin)
        || origin.eq_ignore_ascii_case(&state.listen_origin)
        || state.allowed_origins.load().iter().any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
}

/// The challenge parameters shared by 401 and 403 answers (RFC 6750 §3, RFC 9728 §5.1). Every value
/// is quoted and none contains a quote, so clients that scan for `name="..."` read them right.
fn bearer_challenge(state: &AppState, request: &HttpRequest, error: Option<(&str, &str)>) -> String {
    let metadata =
        format!("{}/.well-known/oauth-protected-resource{}", state.public_url.trim_end_matches('/'), request.path());
    let scope = crate::oauth::metadata::MCP_SCOPE;
    match error {
        None => format!("Bearer resource_metadata=\"{metadata}\", scope=\"{scope}\""),
        Some((code, description)) => format!(
            "Bearer error=\"{code}\", error_description=\"{}\", resource_metadata=\"{metadata}\", scope=\"{scope}\"",
            description.replace(['"', '\\'], "'")
        ),
    }
}

/// Authenticates the request for an MCP endpoint, or builds the 401 with the RFC 9728 challenge,
/// or the 403 `insufficient_scope` when the credential's scopes do not reach the MCP surface.
pub async fn authenticate(
    state: &AppState,
    request: &HttpRequest,
    trace_id: &str,
    server: Option<&str>,
) -> Result<Principal, HttpResponse> {
    let authorization = request.headers().get("authorization").and_then(|value| value.to_str().ok());
    let outcome = state.authenticator.authenticate(authorization, Audience::Mcp(server), Utc::now()).await;
    let decision = match &outcome {
        Ok(_) => AuthOutcome::Ok,
        Err(AuthError::Missing) => AuthOutcome::Missing,
        Err(AuthError::Invalid) => AuthOutcome::Invalid,
        Err(AuthError::Expired) => AuthOutcome::Expired,
        Err(AuthError::Unavailable) => AuthOutcome::Unavailable,
        Err(AuthError::Token(_)) => AuthOutcome::InvalidToken,
    };
    state.metrics.auth_decision(decision);
    let label = decision.as_str();
    match outcome {
        Ok(principal) if crate::identity::has_scope(&principal, crate::oauth::metadata::MCP_SCOPE) => Ok(principal),
        Ok(principal) => {
            tracing::info!(trace_id, subject = %principal.subject, "token lacks the mcp:tools scope");
            let challenge =
                bearer_challenge(state, request, Some(("insufficient_scope", "the token does not grant mcp:tools")));
            Err(HttpResponse::Forbidden()
                .insert_header(("WWW-Authenticate", challenge))
                .json(json!({"error": "insufficient_scope"})))
        }
        Err(AuthError::Missing) if state.allow_anonymous.load(Ordering::Relaxed) => Ok(Principal::anonymous()),
        Err(AuthError::Unavailable) => {
            tracing::error!(trace_id, "identity store unavailable");
            Err(json_error(503, "the identity store is unavailable; try again"))
        }
        Err(error) => {
            tracing::info!(trace_id, outcome = label, reason = %error, "authentication refused");
            state.gateway.bus.publish(castellan_actors::Event::AuthDecision {
                outcome: label.to_string(),
                subject: None,
                reason: error.to_string(),
                trace_id: trace_id.to_string(),
            });
            let description = error.to_string();
            let challenge = match error {
                AuthError::Missing => bearer_challenge(state, request, None),
                _ => bearer_challenge(state, request, Some(("invalid_token", &description))),
            };
            Err(HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", challenge))
                .json(json!({"error": description})))
        }
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
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

async fn metrics(state: web::Data<AppState>, request: HttpRequest) -> HttpResponse {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_traceparents_are_followed() {
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let parent = "00f067aa0ba902b7";
        let cases = [
            (format!("00-{trace}-{parent}-01"), true, "the specification's example"),
            (format!("00-{trace}-{parent}-00"), true, "not sampled"),
            (format!("01-{trace}-{parent}-01-extra"), true, "a future version may carry more"),
            (format!("00-{trace}-{parent}-01-extra"), false, "version 00 has exactly four fields"),
            (format!("ff-{trace}-{parent}-01"), false, "version ff is invalid"),
            (format!("00-{}-{parent}-01", trace.to_uppercase()), false, "upper-case hex"),
            (format!("00-{}-{parent}-01", "0".repeat(32)), false, "an all-zero trace id"),
            (format!("00-{trace}-{}-01", "0".repeat(16)), false, "an all-zero parent id"),
            (format!("00-{}-{parent}-01", &trace[..31]), false, "a short trace id"),
            (format!("00-{trace}-{parent}"), false, "no flags"),
            ("garbage".to_string(), false, "not a traceparent"),
        ];
        for (value, valid, what) in cases {
            assert_eq!(parse_traceparent(&value).is_some(), valid, "{what}: {value}");
        }
        let outgoing = outgoing_traceparent(trace);
        assert_eq!(parse_traceparent(&outgoing).map(|(id, _)| id), Some(trace), "what we send is valid: {outgoing}");
    }
}

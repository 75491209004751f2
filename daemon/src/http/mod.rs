//! The HTTP surface, one concern a file: the application state (`state.rs`), the route table
//! (`routes.rs`), authentication of the MCP endpoints (`auth.rs`), the one error mapping
//! (`error.rs`), the probes (`probes.rs`), and here the small request helpers (trace id, client
//! address, Origin, the 429). The MCP transport is in `mcp::http`.

mod auth;
mod error;
mod probes;
mod routes;
mod state;

pub use auth::{authenticate, identify};
pub use error::ApiError;
pub use routes::configure;
pub use state::AppState;

use actix_web::http::header::HeaderMap;
use actix_web::{HttpRequest, HttpResponse};

/// The trace id: from a valid W3C `traceparent`, else a new random one.
pub fn trace_id_for(request: &HttpRequest) -> String {
    let header = request.headers().get("traceparent").and_then(|value| value.to_str().ok());
    header
        .and_then(crate::trace::parse_traceparent)
        .map(|(trace, _)| trace.to_string())
        .unwrap_or_else(|| crate::trace::random_hex(16))
}

/// A 429 for a rate-limited request: `Retry-After` in whole seconds (at least 1) and the
/// RateLimit headers of draft-ietf-httpapi-ratelimit-headers.
pub fn too_many_requests(
    policy: &crate::governance::rate_limit::Policy,
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

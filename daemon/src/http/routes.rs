//! Every route of the HTTP surface, in one table (the no-bypass test walks the same list).

use actix_web::web;

/// Mounts every route.
pub fn configure(config: &mut web::ServiceConfig) {
    use crate::mcp::http as mcp;
    config
        // The tool-call routes first: a request is matched against the routes in order, and the
        // busiest path should not pay for every pattern before it (none of them overlaps these).
        .route("/mcp", web::post().to(|request, body, state| mcp::post(request, body, state, None)))
        .route("/mcp", web::get().to(|request, state| mcp::get(request, state, None)))
        .route("/mcp", web::delete().to(|request, state| mcp::delete(request, state, None)))
        .route(
            "/mcp/{server}",
            web::post().to(|request, body, state, server| mcp::post(request, body, state, Some(server))),
        )
        .route("/mcp/{server}", web::get().to(|request, state, server| mcp::get(request, state, Some(server))))
        .route("/mcp/{server}", web::delete().to(|request, state, server| mcp::delete(request, state, Some(server))))
        .route("/healthz", web::get().to(super::probes::healthz))
        .route("/readyz", web::get().to(super::probes::readyz))
        .route("/metrics", web::get().to(super::probes::metrics))
        .configure(crate::oauth::configure)
        .configure(crate::web::configure)
        .configure(crate::admin_api::configure)
        .configure(crate::skills::api::configure)
        .configure(crate::hooks::endpoint::configure)
        .configure(crate::ai::http::configure);
}

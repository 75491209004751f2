//! Extensions' HTTP routes, mounted at `/ext/{id}/` behind the governed chain: a thin adapter that
//! authenticates the caller, states the request in the chain's terms (kind `route`, server
//! `ext:{id}`, the method and path as the name, the declared access as the RBAC target), and runs
//! the extension's handler as the chain's execute step. The row is committed before the handler's
//! response leaves; a refusal at any step is a finished row and the handler never runs.
//!
//! The handler runs on the HTTP worker's own task (actix handlers are not `Send`), so the chain's
//! execute step hands over to it by a pair of channels: "go" when the chain admits the request,
//! then the handler's status back.

use std::sync::{Arc, Mutex};

use actix_web::HttpMessage;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use castellan_extension::{Access, CallContext, Ordered, Routes};
use castellan_schema::audit::ExecutionKind;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::governance::{Executed, HookIdentity, Outcome, RbacTarget, Request, Resolution, Target, Upstream};
use crate::http::AppState;
use crate::identity::AuthError;

/// One extension's routes, as mounted.
#[derive(Clone)]
pub struct Mounted {
    pub id: &'static str,
    pub routes: Routes,
    pub assets: Vec<castellan_extension::Asset>,
    /// Prerendered pages: path under `pages/`, and the HTML.
    pub pages: Vec<(String, Arc<str>)>,
    pub config: Option<Value>,
}

/// Every extension's routes, assets and pages (rendered now), in start order. Fails on a page that
/// does not render or whose path is not a plain relative path.
pub fn collect(extensions: &Ordered, profile: &castellan_config::Profile) -> Result<Vec<Mounted>, String> {
    let mut mounted = Vec::new();
    for extension in extensions.iter() {
        let id = extension.metadata().id;
        let config = extension.config_prefix().and_then(|prefix| profile.extensions.get(prefix).cloned());
        let assets = extension.required_assets();
        let mut pages = Vec::new();
        for page in extension.page_prerenderers() {
            let path = page.path().trim_matches('/').to_string();
            let plain = !path.is_empty()
                && path.split('/').all(|part| {
                    !part.is_empty()
                        && part != ".."
                        && part.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte))
                });
            if !plain {
                return Err(format!("extension {id}: the page path `{}` is not a plain relative path", page.path()));
            }
            let html =
                page.render(config.as_ref()).map_err(|reason| format!("extension {id}: page {path}: {reason}"))?;
            pages.push((path, Arc::from(html)));
        }
        let routes = extension.router();
        if routes.is_none() && assets.is_empty() && pages.is_empty() {
            continue;
        }
        // Without routes of its own, its pages are for signed-in users.
        let routes = routes.unwrap_or_else(|| Routes { access: Access::default(), configure: Arc::new(|_| {}) });
        mounted.push(Mounted { id, routes, assets, pages, config });
    }
    Ok(mounted)
}

/// Mounts each extension's assets (public, at `/ext/{id}/assets/...`) and its routes (governed).
pub fn configure(config: &mut web::ServiceConfig, mounted: &[Mounted]) {
    for extension in mounted {
        for asset in &extension.assets {
            let asset = asset.clone();
            config.route(
                &format!("/ext/{}/assets/{}", extension.id, asset.path.trim_start_matches('/')),
                web::get().to(move || {
                    let asset = asset.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type(asset.content_type)
                            .insert_header(("X-Content-Type-Options", "nosniff"))
                            .body(asset.bytes)
                    }
                }),
            );
        }
        let (id, access, routes) = (extension.id, extension.routes.access.clone(), extension.routes.configure.clone());
        let section = extension.config.clone();
        let pages = extension.pages.clone();
        let scope = web::scope(&format!("/ext/{id}"))
            .wrap(actix_web::middleware::from_fn(move |request, next| {
                govern(id, access.clone(), section.clone(), request, next)
            }))
            .configure(move |scope| {
                routes(scope);
                for (path, html) in &pages {
                    let html = Arc::clone(html);
                    scope.route(
                        &format!("/pages/{path}"),
                        web::get().to(move || {
                            let html = Arc::clone(&html);
                            async move {
                                HttpResponse::Ok()
                                    .content_type("text/html; charset=utf-8")
                                    .insert_header(("X-Content-Type-Options", "nosniff"))
                                    .insert_header(("Content-Security-Policy", "default-src 'self'"))
                                    .body(html.to_string())
                            }
                        }),
                    );
                }
            });
        config.service(scope);
    }
}

/// The chain's execute step for a route: tells the handler to run and waits for its status.
struct RouteUpstream {
    go: Mutex<Option<oneshot::Sender<()>>>,
    done: Mutex<Option<oneshot::Receiver<u16>>>,
}

impl Upstream for RouteUpstream {
    fn execute<'a>(&'a self, _target: &'a Target, _arguments: Value) -> BoxFuture<'a, Executed> {
        Box::pin(async move {
            let go = self.go.lock().ok().and_then(|mut go| go.take());
            let done = self.done.lock().ok().and_then(|mut done| done.take());
            let (Some(go), Some(done)) = (go, done) else {
                return Executed::Failed("the route was already run".into());
            };
            if go.send(()).is_err() {
                return Executed::Cancelled;
            }
            match done.await {
                Ok(status) if status < 400 => Executed::Answered(Ok(json!({"status": status}))),
                Ok(status) => {
                    Executed::Answered(Err(json!({"code": status, "message": format!("the route answered {status}")})))
                }
                Err(_) => Executed::Cancelled,
            }
        })
    }
}

async fn govern(
    id: &'static str,
    access: Access,
    config: Option<Value>,
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = request.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(request.into_response(HttpResponse::InternalServerError().finish()));
    };
    // Read what the chain needs now: no clone of the request may be held while the handler runs
    // (routing needs it unshared).
    let (trace_id, client, name, arguments, authorization) = {
        let http = request.request();
        let name = format!("{} {}", http.method(), http.path());
        let arguments = json!({"method": http.method().as_str(), "path": http.path(), "query": http.query_string()});
        let authorization =
            http.headers().get("authorization").and_then(|value| value.to_str().ok()).map(str::to_string);
        (crate::http::trace_id_for(http), crate::http::client_address(&state, http), name, arguments, authorization)
    };
    let principal =
        match crate::http::identify(&state, authorization.as_deref(), crate::identity::Audience::AnyOwn, &trace_id)
            .await
        {
            Ok(principal) => principal,
            Err(AuthError::Unavailable) => {
                let body = json!({"error": "the identity store is unavailable; try again"});
                return Ok(request.into_response(HttpResponse::ServiceUnavailable().json(body)));
            }
            Err(error) => {
                let challenge = format!("Bearer realm=\"{}\"", state.public_url.trim_end_matches('/'));
                let response = HttpResponse::Unauthorized()
                    .insert_header(("WWW-Authenticate", challenge))
                    .json(json!({"error": error.to_string()}));
                return Ok(request.into_response(response));
            }
        };
    let chain_request = Request {
        principal: &principal,
        client,
        kind: ExecutionKind::Route,
        requested: &name,
        arguments,
        session_id: None,
        trace_id: &trace_id,
        hook: HookIdentity { tool_use_id: format!("route:{trace_id}") },
    };
    let target = Target {
        server: format!("ext:{id}"),
        name: name.clone(),
        rbac: RbacTarget::Access { min_tier: access.min_tier, scopes: access.scopes.clone() },
        definition_hash: None,
    };
    let (go_sender, go) = oneshot::channel();
    let (done, done_receiver) = oneshot::channel();
    let upstream = RouteUpstream { go: Mutex::new(Some(go_sender)), done: Mutex::new(Some(done_receiver)) };
    let governed = state.gateway.govern_with(chain_request, Resolution::Found(target), &upstream);
    tokio::pin!(governed);
    let mut pending = Some(request);
    let mut handled = None;
    let governed = tokio::select! {
        governed = &mut governed => governed,
        Ok(()) = go => {
            if let Some(request) = pending.take() {
                let caller = crate::extension_tools::caller(&principal, &trace_id);
                request.extensions_mut().insert(CallContext { caller, db: state.db.clone(), config });
                let response = next.call(request).await.map(ServiceResponse::map_into_boxed_body);
                let status = match &response {
                    Ok(response) => response.status().as_u16(),
                    Err(error) => error.as_response_error().status_code().as_u16(),
                };
                let _ = done.send(status);
                handled = Some(response);
            }
            governed.await
        }
    };
    let refusal = match (governed.outcome, handled) {
        // The handler ran but its row is not recorded: its answer is withheld.
        (Outcome::AuditUnavailable(message), Some(_)) => {
            return Err(actix_web::error::ErrorServiceUnavailable(message));
        }
        (_, Some(response)) => return response,
        (Outcome::RateLimited { policy, retry_after }, None) => {
            let body = json!({"error": format!("rate limited by {}", policy.limit)});
            crate::http::too_many_requests(&policy, retry_after, body)
        }
        (Outcome::Forbidden(message), None) => HttpResponse::Forbidden().json(json!({"error": message})),
        (other, None) => {
            let message = other.error_message().unwrap_or_else(|| "the route did not run".to_string());
            HttpResponse::ServiceUnavailable().json(json!({"error": message}))
        }
    };
    match pending {
        Some(request) => Ok(request.into_response(refusal)),
        None => Err(actix_web::error::ErrorServiceUnavailable("the route did not run")),
    }
}

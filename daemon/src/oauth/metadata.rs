//! Discovery: RFC 8414 authorization server metadata, the JWKS, and RFC 9728 protected resource
//! metadata. The issuer string is `server.public_url` exactly, in every document.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::http::ApiError;
use crate::http::AppState;

/// The scope every MCP endpoint needs.
pub const MCP_SCOPE: &str = "mcp:tools";

pub fn authorization_server_document(state: &AppState) -> Value {
    let issuer = &state.authority.issuer;
    let mut document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth/introspect"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["mcp:tools", "offline_access", "admin", "user", "service", "a2a", "mcp", "anonymous"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": state.authority.settings.client_metadata_documents,
        "protected_resources": [state.authority.mcp_resource(None)],
        "subject_types_supported": ["public"],
    });
    if state.authority.settings.dynamic_registration
        && let Some(object) = document.as_object_mut()
    {
        object.insert("registration_endpoint".into(), json!(format!("{issuer}/oauth/register")));
    }
    document
}

/// Public, cacheable for a short while, readable by browser-based clients.
fn public_json(body: Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .json(body)
}

pub async fn authorization_server(state: web::Data<AppState>) -> HttpResponse {
    public_json(authorization_server_document(&state))
}

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=60"))
        .insert_header(("Access-Control-Allow-Origin", "*"))
        .content_type("application/jwk-set+json")
        .body(state.authority.keys.jwks().to_string())
}

/// RFC 9728: the root document describes the origin; `/mcp` and `/mcp/{server}` describe those
/// resources (404 for a server that is not configured).
pub async fn protected_resource(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let issuer = &state.authority.issuer;
    let resource_path = request.path().trim_start_matches("/.well-known/oauth-protected-resource");
    let known = match resource_path {
        "" | "/mcp" => true,
        path => {
            path.strip_prefix("/mcp/").is_some_and(|server| state.gateway.configured_servers.load().contains(server))
        }
    };
    if !known {
        return ApiError::NotFound("no protected resource at this path".into()).into_response();
    }
    public_json(json!({
        "resource": format!("{issuer}{resource_path}"),
        "authorization_servers": [issuer],
        "scopes_supported": [MCP_SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": "Castellan MCP gateway",
    }))
}

//! The OAuth 2.1 authorization server's HTTP surface: discovery documents, the token, revocation,
//! introspection, userinfo, registration and authorization endpoints. Decisions live in
//! `crate::identity`; this module parses requests and maps outcomes to RFC-shaped responses.

pub mod authorize;
pub mod metadata;
pub mod register;
pub mod token;

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde_json::json;

use crate::http::AppState;
use crate::identity::grants::GrantError;

pub fn configure(config: &mut web::ServiceConfig) {
    config
        .route("/.well-known/oauth-authorization-server", web::get().to(metadata::authorization_server))
        .route("/.well-known/openid-configuration", web::get().to(metadata::authorization_server))
        .route("/.well-known/jwks.json", web::get().to(metadata::jwks))
        .route("/.well-known/oauth-protected-resource", web::get().to(metadata::protected_resource))
        .route("/.well-known/oauth-protected-resource/{tail:.*}", web::get().to(metadata::protected_resource))
        .route("/oauth/token", web::post().to(token::token))
        .route("/oauth/revoke", web::post().to(token::revoke))
        .route("/oauth/introspect", web::post().to(token::introspect))
        .route("/oauth/userinfo", web::get().to(token::userinfo))
        .route("/oauth/userinfo", web::post().to(token::userinfo))
        .route("/oauth/register", web::post().to(register::register))
        .route("/oauth/authorize", web::get().to(authorize::authorize))
        .route("/oauth/authorize/continue", web::get().to(authorize::resume))
        .route("/oauth/consent", web::post().to(authorize::consent));
}

/// Form parameters with duplicates refused (RFC 6749 §3.1: a parameter appears at most once).
pub struct Form {
    values: HashMap<String, String>,
}

impl Form {
    pub fn parse(text: &[u8]) -> Result<Form, String> {
        let mut values = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(text) {
            if values.insert(name.to_string(), value.to_string()).is_some() {
                return Err(format!("parameter {name:?} is repeated"));
            }
        }
        Ok(Form { values })
    }

    /// A present, non-empty parameter (an empty value is treated as absent, RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str).filter(|value| !value.is_empty())
    }
}

/// A form POST body: requires the form content type.
pub fn read_form(request: &HttpRequest, body: &[u8]) -> Result<Form, GrantError> {
    let content_type = request.headers().get("content-type").and_then(|value| value.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(GrantError::InvalidRequest("the body must be application/x-www-form-urlencoded".into()));
    }
    Form::parse(body).map_err(GrantError::InvalidRequest)
}

/// How the client presented itself: HTTP Basic, or `client_id` (and perhaps `client_secret`) in the body.
pub struct ClientCredentials {
    pub client_id: String,
    pub secret: Option<String>,
    pub used_basic: bool,
}

/// Whether the request tried HTTP Basic client authentication, well formed or not. RFC 6749 §5.2:
/// a client that used the Authorization header gets the `WWW-Authenticate` challenge with its 401,
/// also when the header could not even be decoded.
pub fn attempted_basic(request: &HttpRequest) -> bool {
    request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.split_whitespace().next().is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic")))
}

/// Reads client authentication (RFC 6749 §2.3). Using two methods at once is an error; a body
/// `client_id` next to Basic is tolerated when it names the same client (some libraries send both).
pub fn client_credentials(request: &HttpRequest, form: &Form) -> Result<ClientCredentials, GrantError> {
    let basic = request.headers().get("authorization").and_then(|value| value.to_str().ok()).and_then(|value| {
        let (scheme, encoded) = value.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("basic").then(|| encoded.trim().to_string())
    });
    match basic {
        Some(encoded) => {
            let decoded =
                base64::engine::general_purpose::STANDARD.decode(encoded).map_err(|_| GrantError::InvalidClient)?;
            let text = String::from_utf8(decoded).map_err(|_| GrantError::InvalidClient)?;
            let (id, secret) = text.split_once(':').ok_or(GrantError::InvalidClient)?;
            let decode = |part: &str| {
                url::form_urlencoded::parse(format!("x={part}").as_bytes()).next().map(|(_, value)| value.to_string())
            };
            let (id, secret) =
                (decode(id).ok_or(GrantError::InvalidClient)?, decode(secret).ok_or(GrantError::InvalidClient)?);
            if form.get("client_secret").is_some() {
                return Err(GrantError::InvalidRequest("use one client authentication method, not two".into()));
            }
            if form.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(GrantError::InvalidRequest(
                    "client_id in the body differs from the authenticated client".into(),
                ));
            }
            Ok(ClientCredentials { client_id: id, secret: Some(secret), used_basic: true })
        }
        None => {
            let client_id = form.get("client_id").ok_or(GrantError::InvalidClient)?.to_string();
            Ok(ClientCredentials {
                client_id,
                secret: form.get("client_secret").map(str::to_string),
                used_basic: false,
            })
        }
    }
}

/// The one mapping of [`GrantError`] to an HTTP response (RFC 6749 §5.2).
pub fn grant_error(error: &GrantError, used_basic: bool) -> HttpResponse {
    let status = match error {
        GrantError::InvalidClient => StatusCode::UNAUTHORIZED,
        GrantError::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
        GrantError::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::BAD_REQUEST,
    };
    let mut body = json!({"error": error.code()});
    if let (Some(description), Some(object)) = (error.description(), body.as_object_mut()) {
        object.insert("error_description".into(), json!(description));
    }
    let mut response = HttpResponse::build(status);
    response.insert_header(("Cache-Control", "no-store")).insert_header(("Pragma", "no-cache"));
    if matches!(error, GrantError::InvalidClient) && used_basic {
        response.insert_header(("WWW-Authenticate", "Basic realm=\"castellan\""));
    }
    response.json(body)
}

/// A JSON answer that must never be cached (tokens, introspection).
pub fn no_store_json(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).insert_header(("Pragma", "no-cache")).json(body)
}

/// Whether `resource` (RFC 8707) is one of this server's: `/mcp` or `/mcp/{configured server}`.
pub fn is_own_resource(state: &AppState, resource: &str) -> bool {
    let gateway = state.authority.mcp_resource(None);
    if resource == gateway {
        return true;
    }
    resource
        .strip_prefix(&format!("{gateway}/"))
        .is_some_and(|server| state.gateway.configured_servers.load().contains(server))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_basic_authorization_header_is_an_attempt_at_basic_authentication() {
        let cases = [
            (Some("Basic dXNlcjpwYXNz"), true),
            (Some("Basic !!!not-base64"), true),
            (Some("basic"), true),
            (Some("Bearer abc"), false),
            (None, false),
        ];
        for (header, expected) in cases {
            let mut request = actix_web::test::TestRequest::default();
            if let Some(header) = header {
                request = request.insert_header(("authorization", header));
            }
            assert_eq!(attempted_basic(&request.to_http_request()), expected, "{header:?}");
        }
    }
}

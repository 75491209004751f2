//! The provider side of the AI gateway: the URL, headers and body of one upstream attempt, and
//! sending it with the route's fallbacks. The caller's credential never leaves: the request
//! upstream carries the provider's key (`providers.*.api_key`, resolved from the secret store at
//! the moment of sending) and only the client headers that mean something to the provider
//! (`anthropic-version`, `anthropic-beta`, byte for byte).

use std::time::Duration;

use actix_web::http::header::HeaderMap;
use castellan_ai::format::WireFormat;
use castellan_config::ProviderKind;

use super::policy::Provider;

/// The Anthropic API version sent when the client sent none (a client of another format).
pub const DEFAULT_ANTHROPIC_VERSION: &str = "2023-06-01";

/// Client headers passed to an Anthropic provider unchanged.
const ANTHROPIC_PASSED_HEADERS: [&str; 2] = ["anthropic-version", "anthropic-beta"];

/// What the client asked for, as far as the provider's request depends on it.
pub struct ClientCall<'a> {
    pub endpoint: WireFormat,
    /// Count tokens instead of generating.
    pub count_tokens: bool,
    pub streamed: bool,
    pub headers: &'a HeaderMap,
    /// The query string, forwarded to a provider of the same format (Claude Code's `beta=true`).
    pub query: &'a str,
}

/// The wire format a provider speaks for a client's endpoint: OpenAI's Responses stay Responses.
pub fn upstream_format(kind: ProviderKind, endpoint: WireFormat) -> WireFormat {
    match (kind, endpoint) {
        (ProviderKind::Anthropic, _) => WireFormat::Messages,
        (ProviderKind::OpenAi, WireFormat::Responses) => WireFormat::Responses,
        (ProviderKind::OpenAi, _) => WireFormat::ChatCompletions,
        (ProviderKind::Gemini, _) => WireFormat::Gemini,
    }
}

/// The URL of one attempt. Base URLs follow each SDK's convention: Anthropic and Gemini without a
/// version path, OpenAI with `/v1`.
pub fn upstream_url(provider: &Provider, call: &ClientCall<'_>, upstream_model: &str) -> String {
    let base = provider.base_url.trim_end_matches('/');
    let same_format = upstream_format(provider.kind, call.endpoint) == call.endpoint;
    let query = if same_format && !call.query.is_empty() && provider.kind == ProviderKind::Anthropic {
        format!("?{}", call.query)
    } else {
        String::new()
    };
    match upstream_format(provider.kind, call.endpoint) {
        WireFormat::Messages if call.count_tokens => format!("{base}/v1/messages/count_tokens{query}"),
        WireFormat::Messages => format!("{base}/v1/messages{query}"),
        WireFormat::ChatCompletions => format!("{base}/chat/completions"),
        WireFormat::Responses => format!("{base}/responses"),
        WireFormat::Gemini => {
            let method = match (call.count_tokens, call.streamed) {
                (true, _) => "countTokens",
                (false, true) => "streamGenerateContent?alt=sse",
                (false, false) => "generateContent",
            };
            format!("{base}/v1beta/models/{}:{method}", percent_encode_path(upstream_model))
        }
    }
}

/// The headers of one attempt: content type, the provider's key in its own header, the client's
/// Anthropic version and betas (same format) or our default, and the profile's extra headers.
pub fn upstream_headers(
    provider: &Provider,
    call: &ClientCall<'_>,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<reqwest::header::HeaderMap, String> {
    use reqwest::header::{HeaderMap as Outgoing, HeaderName, HeaderValue};
    let mut headers = Outgoing::new();
    headers.insert(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let key = provider.api_key.render(secret, None).map_err(|_| {
        format!("the API key of provider '{}' is not available (a secret it names is not set)", provider.name)
    })?;
    let key_value = |prefix: &str| {
        HeaderValue::from_str(&format!("{prefix}{key}"))
            .map(|mut value| {
                value.set_sensitive(true);
                value
            })
            .map_err(|_| format!("the API key of provider '{}' is not a valid header value", provider.name))
    };
    let extension = match &provider.extension_kind {
        Some(kind) => Some(crate::extensions::llm_provider(kind).ok_or_else(|| {
            format!("provider '{}': the provider kind `{kind}` is not built into this binary", provider.name)
        })?),
        None => None,
    };
    if let Some(extension) = extension {
        for (name, value) in extension.credential_headers(&key) {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("provider '{}': its kind names a bad header", provider.name))?;
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| format!("the API key of provider '{}' is not a valid header value", provider.name))?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
    }
    match provider.kind {
        _ if extension.is_some() && provider.kind != ProviderKind::Anthropic => {}
        ProviderKind::Anthropic => {
            if extension.is_none() {
                headers.insert(HeaderName::from_static("x-api-key"), key_value("")?);
            }
            let same_format = call.endpoint == WireFormat::Messages;
            for name in ANTHROPIC_PASSED_HEADERS {
                if same_format {
                    for value in call.headers.get_all(name) {
                        if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                            headers.append(HeaderName::from_static(name), value);
                        }
                    }
                }
            }
            if !headers.contains_key("anthropic-version") {
                headers.insert(
                    HeaderName::from_static("anthropic-version"),
                    HeaderValue::from_static(DEFAULT_ANTHROPIC_VERSION),
                );
            }
        }
        ProviderKind::OpenAi => {
            headers.insert(reqwest::header::AUTHORIZATION, key_value("Bearer ")?);
        }
        ProviderKind::Gemini => {
            headers.insert(HeaderName::from_static("x-goog-api-key"), key_value("")?);
        }
    }
    for (name, template) in &provider.headers {
        let value = template
            .render(secret, None)
            .map_err(|_| format!("a header of provider '{}' names a secret that is not set", provider.name))?;
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("provider '{}': bad header name", provider.name))?;
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| format!("provider '{}': a header value is not valid", provider.name))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    Ok(headers)
}

/// Why one attempt got no usable answer.
#[derive(Debug)]
pub enum AttemptError {
    /// Connecting failed, or the connection broke before an answer.
    Connection(String),
    /// No answer head within the provider's timeout.
    Timeout(Duration),
}

impl AttemptError {
    pub fn message(&self) -> String {
        match self {
            AttemptError::Connection(message) => message.clone(),
            AttemptError::Timeout(after) => format!("the provider did not answer within {} s", after.as_secs().max(1)),
        }
    }
}

/// Sends one attempt; the answer's head is in, its body not yet read.
pub async fn send(
    provider: &Provider,
    url: &str,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
) -> Result<reqwest::Response, AttemptError> {
    let request = provider.client.post(url).headers(headers).body(body);
    match tokio::time::timeout(provider.timeout, request.send()).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) if error.is_timeout() => Err(AttemptError::Timeout(provider.timeout)),
        // reqwest's error text may carry the URL, never a header: still, say only what happened.
        Ok(Err(error)) if error.is_connect() => {
            Err(AttemptError::Connection(format!("provider '{}' could not be reached", provider.name)))
        }
        Ok(Err(_)) => Err(AttemptError::Connection(format!("the connection to provider '{}' failed", provider.name))),
        Err(_) => Err(AttemptError::Timeout(provider.timeout)),
    }
}

/// Whether an answer's status lets the next fallback be tried (before any byte went to the client).
pub fn worth_a_fallback(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status) || status == 529
}

/// A model name as one path segment (Gemini puts it in the URL).
fn percent_encode_path(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_cannot_leave_their_path_segment() {
        assert_eq!(percent_encode_path("gemini-2.5-flash"), "gemini-2.5-flash");
        assert_eq!(percent_encode_path("../x?y"), "..%2Fx%3Fy", "no new segment, no query");
    }

    #[test]
    fn fallbacks_are_tried_on_overload_and_server_errors_only() {
        for (status, expected) in
            [(429, true), (500, true), (503, true), (529, true), (400, false), (401, false), (404, false), (200, false)]
        {
            assert_eq!(worth_a_fallback(status), expected, "{status}");
        }
    }
}

//! How federation talks to issuers: through the guarded outbound client, in the shape
//! `openidconnect` takes, with one rule of its own: `https`, or plain `http` to loopback only.

use std::future::Future;
use std::pin::Pin;

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use url::{Host, Url};

use crate::identity::outbound::{GuardedClient, OutboundError};

/// The largest discovery document, key set or token response read.
const MAX_RESPONSE_BYTES: usize = 512 * 1024;

/// The guarded client in the shape `openidconnect` takes.
pub(super) struct IssuerHttp(pub(super) GuardedClient);

impl<'c> AsyncHttpClient<'c> for IssuerHttp {
    type Error = OutboundError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, OutboundError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

/// Sends one request for `openidconnect` through the guarded client: the transport rule and the SSRF
/// check first, redirects never followed, the body capped.
async fn send(client: &GuardedClient, request: HttpRequest) -> Result<HttpResponse, OutboundError> {
    let url = Url::parse(&request.uri().to_string()).map_err(|_| OutboundError::UnsupportedUrl)?;
    check_transport(&url)?;
    client.check_url(&url)?;
    let request = reqwest::Request::try_from(request).map_err(|_| OutboundError::UnsupportedUrl)?;
    let mut response = client.http().execute(request).await.map_err(|error| transport_error(&url, &error))?;
    let mut answer = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        answer = answer.header(name, value);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|error| transport_error(&url, &error))? {
        if body.len().saturating_add(chunk.len()) > MAX_RESPONSE_BYTES {
            return Err(OutboundError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    answer.body(body).map_err(|_| OutboundError::Transport("the response could not be read".into()))
}

/// `https`, or `http` to a loopback host.
pub fn check_transport(url: &Url) -> Result<(), OutboundError> {
    let loopback = match url.host() {
        Some(Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(address)) => address.is_loopback(),
        Some(Host::Ipv6(address)) => address.is_loopback(),
        None => return Err(OutboundError::UnsupportedUrl),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(OutboundError::NotHttps),
        _ => Err(OutboundError::UnsupportedUrl),
    }
}

fn transport_error(url: &Url, error: &reqwest::Error) -> OutboundError {
    tracing::warn!(host = url.host_str().unwrap_or_default(), error = %error_chain(error), "request to a federated issuer failed");
    if error.is_timeout() {
        OutboundError::Timeout
    } else {
        OutboundError::Transport("could not complete the request".into())
    }
}

pub(super) use crate::identity::outbound::error_chain;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn plain_http_is_only_for_loopback_issuers() {
        let cases = [
            ("https://idp.example.com", Ok(())),
            ("http://127.0.0.1:8080", Ok(())),
            ("http://127.8.9.10", Ok(())),
            ("http://localhost:9000/realms/a", Ok(())),
            ("http://[::1]:9000", Ok(())),
            ("http://idp.example.com", Err(OutboundError::NotHttps)),
            ("http://10.0.0.5", Err(OutboundError::NotHttps)),
            ("http://localhost.example.com", Err(OutboundError::NotHttps)),
            ("ftp://idp.example.com", Err(OutboundError::UnsupportedUrl)),
        ];
        for (url, expected) in cases {
            assert_eq!(check_transport(&Url::parse(url).unwrap()), expected, "{url}");
        }
    }
}

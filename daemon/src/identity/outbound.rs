//! The one outbound HTTP client. Every request Castellan makes to another server (client metadata
//! documents, federated issuers' discovery documents and keys) goes through `GuardedClient`, which
//! refuses special-use destinations (the SSRF guard), never follows redirects, ignores proxy
//! environment variables, and bounds time and body size.
//!
//! How the SSRF guard works, and why it holds against DNS rebinding:
//! * IP-literal hosts never reach a DNS resolver (hyper connects to them directly), so `check_url`
//!   judges them before any request is made.
//! * Host names are resolved by `GuardedResolver`, the client's only resolver. It drops every
//!   forbidden address and fails when none remains. The connector dials exactly the addresses the
//!   resolver returned; there is no second lookup between the check and the connection, so a name
//!   whose records change between two queries (rebinding) cannot steer a connection to an address
//!   that was not checked. Dropping rather than failing on a mixed answer is therefore safe: a name
//!   that publishes one public and one private address only ever gets the public one dialled.
//! * Redirects are not followed, so a public server cannot bounce us to a private one; proxies from
//!   the environment are ignored, so the connection goes where the resolver said.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{ACCEPT, AGE, CACHE_CONTROL, CONTENT_TYPE, HeaderMap};
use url::{Host, Url};

/// What the outbound client may do. `Default` is the guarded production setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Allow loopback, private, link-local and other special-use destinations. This switches the SSRF
    /// guard off: only for tests and for destinations the operator trusts (an issuer on the internal
    /// network).
    pub allow_private_addresses: bool,
    /// Refuse `http://` URLs.
    pub require_https: bool,
    /// PEM bundles trusted in addition to the platform's root certificates (a test CA, a corporate CA).
    pub extra_root_certificates_pem: Vec<Vec<u8>>,
    /// How long establishing a connection may take.
    pub connect_timeout: Duration,
    /// How long a whole request may take, from connecting until the last byte of the body.
    pub timeout: Duration,
    /// The largest response body `get` reads; a larger one is an error, never truncated.
    pub max_body_bytes: usize,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        OutboundPolicy {
            allow_private_addresses: false,
            require_https: true,
            extra_root_certificates_pem: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// Why an outbound request was refused or failed. Messages are safe to show to users; the detail
/// (the transport error chain) goes to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error(
        "{0} is, or resolves only to, a private, loopback or other special-use address, which Castellan does not contact"
    )]
    ForbiddenAddress(String),
    #[error("only https URLs may be fetched")]
    NotHttps,
    #[error("the URL cannot be fetched: only http and https URLs with a host are supported")]
    UnsupportedUrl,
    #[error("the server answered with a redirect, which Castellan does not follow")]
    Redirect,
    #[error("the response body is larger than the allowed size")]
    TooLarge,
    #[error("the server did not answer in time")]
    Timeout,
    #[error("the server answered with HTTP status {0}")]
    Status(u16),
    #[error("the request failed: {0}")]
    Transport(String),
    #[error("the outbound HTTP client could not be configured: {0}")]
    Configuration(String),
}

/// A successful (2xx) response, read in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedBody {
    pub status: u16,
    /// The `Content-Type` header as sent, when it is valid text.
    pub content_type: Option<String>,
    pub body: Vec<u8>,
    /// How long the response may be reused according to `Cache-Control` (`max-age` less `Age`; zero
    /// for `no-store` or `no-cache`); `None` when the server said nothing.
    pub cache_max_age: Option<Duration>,
}

/// The guarded client. Cheap to clone; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct GuardedClient {
    http: reqwest::Client,
    allow_private_addresses: bool,
    require_https: bool,
    max_body_bytes: usize,
}

impl GuardedClient {
    pub fn new(policy: OutboundPolicy) -> Result<Self, OutboundError> {
        let mut builder = castellan_actors::http_client::builder(policy.connect_timeout)
            .use_rustls_tls()
            .no_proxy()
            .https_only(policy.require_https)
            .timeout(policy.timeout)
            .dns_resolver(Arc::new(GuardedResolver { allow_private_addresses: policy.allow_private_addresses }));
        for (index, pem) in policy.extra_root_certificates_pem.iter().enumerate() {
            let certificates = reqwest::Certificate::from_pem_bundle(pem).unwrap_or_default();
            if certificates.is_empty() {
                return Err(OutboundError::Configuration(format!(
                    "extra root certificate bundle {} contains no PEM certificate",
                    index + 1
                )));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().map_err(|error| {
            tracing::error!(error = %error_chain(&error), "building the outbound HTTP client failed");
            OutboundError::Configuration("the TLS settings or root certificates were not accepted".into())
        })?;
        Ok(GuardedClient {
            http,
            allow_private_addresses: policy.allow_private_addresses,
            require_https: policy.require_https,
            max_body_bytes: policy.max_body_bytes,
        })
    }

    /// The same client (same guard, same connection pool) with another body cap, for a use whose
    /// documents are smaller than the policy allows (client metadata documents: 5 KiB).
    pub fn with_max_body_bytes(&self, max_body_bytes: usize) -> GuardedClient {
        GuardedClient { max_body_bytes, ..self.clone() }
    }

    /// Refuses URLs this client must not fetch: other schemes, `http` when https is required, and
    /// IP-literal hosts that are special-use addresses. Host names are judged later, by the resolver.
    /// Callers of `http()` must pass every URL through this first: IP literals never reach the resolver.
    pub fn check_url(&self, url: &Url) -> Result<(), OutboundError> {
        match url.scheme() {
            "https" => {}
            "http" if !self.require_https => {}
            "http" => return Err(OutboundError::NotHttps),
            _ => return Err(OutboundError::UnsupportedUrl),
        }
        let host = url.host().ok_or(OutboundError::UnsupportedUrl)?;
        if self.allow_private_addresses {
            return Ok(());
        }
        let literal = match host {
            Host::Ipv4(address) => Some(IpAddr::V4(address)),
            Host::Ipv6(address) => Some(IpAddr::V6(address)),
            Host::Domain(_) => None,
        };
        match literal {
            Some(address) if is_forbidden_address(address) => Err(OutboundError::ForbiddenAddress(host.to_string())),
            _ => Ok(()),
        }
    }

    /// GETs `url` with the given `Accept` header. Refuses forbidden destinations before connecting,
    /// never follows redirects (a 3xx is `Redirect`), turns any other non-2xx status into `Status`,
    /// and reads at most the body cap (more is `TooLarge`, never a truncated body).
    pub async fn get(&self, url: &Url, accept: &str) -> Result<FetchedBody, OutboundError> {
        self.check_url(url)?;
        let host = url.host_str().unwrap_or_default();
        let response =
            self.http.get(url.clone()).header(ACCEPT, accept).send().await.map_err(|error| classify(&error, host))?;
        let status = response.status();
        if status.is_redirection() {
            return Err(OutboundError::Redirect);
        }
        if !status.is_success() {
            return Err(OutboundError::Status(status.as_u16()));
        }
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|value| value.to_str().ok()).map(str::to_owned);
        let cache_max_age = cache_max_age(response.headers());
        let body = self.read_capped_body(response, host).await?;
        Ok(FetchedBody { status: status.as_u16(), content_type, body, cache_max_age })
    }

    /// The underlying client, already guarded (redirects off, no proxies, resolver filtered,
    /// timeouts), for libraries that take a `reqwest::Client` (openidconnect). It does not check
    /// IP-literal hosts nor cap bodies: pass every URL through `check_url` first.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn read_capped_body(&self, mut response: reqwest::Response, host: &str) -> Result<Vec<u8>, OutboundError> {
        let cap = self.max_body_bytes;
        if response.content_length().is_some_and(|length| length > u64::try_from(cap).unwrap_or(u64::MAX)) {
            return Err(OutboundError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| classify(&error, host))? {
            if body.len().saturating_add(chunk.len()) > cap {
                return Err(OutboundError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// True for addresses Castellan never contacts unless private addresses are allowed: the RFC 6890
/// special-use blocks (IANA special-purpose registries) that are not globally reachable, plus all
/// IPv6 outside global unicast. IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64,
/// 6to4) are judged by the IPv4 address they lead to.
pub fn is_forbidden_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(address) => is_forbidden_ipv4(address),
        IpAddr::V6(address) => is_forbidden_ipv6(address),
    }
}

const FORBIDDEN_IPV4: [(Ipv4Addr, u32); 15] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network", including the unspecified address
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private (RFC 1918)
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space, carrier-grade NAT (RFC 6598)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local, where cloud metadata services live
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private (RFC 1918)
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast (deprecated)
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private (RFC 1918)
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, including the limited broadcast address
];

const FORBIDDEN_IPV6: [(Ipv6Addr, u32); 12] = [
    (Ipv6Addr::UNSPECIFIED, 128),
    (Ipv6Addr::LOCALHOST, 128),
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use NAT64 (RFC 8215)
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),     // discard-only
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23),    // IETF protocol assignments: Teredo, benchmarking, ORCHID
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20),    // documentation (RFC 9637)
    (Ipv6Addr::new(0x5f00, 0, 0, 0, 0, 0, 0, 0), 16),    // segment routing SIDs
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),     // unique local
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),    // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),    // site-local (deprecated)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),     // multicast
];

fn is_forbidden_ipv4(address: Ipv4Addr) -> bool {
    let bits = address.to_bits();
    FORBIDDEN_IPV4.iter().any(|&(network, prefix)| {
        let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        bits & mask == network.to_bits() & mask
    })
}

fn is_forbidden_ipv6(address: Ipv6Addr) -> bool {
    if let Some(embedded) = embedded_ipv4(address) {
        return is_forbidden_ipv4(embedded);
    }
    let listed = FORBIDDEN_IPV6.iter().any(|&(network, prefix)| in_ipv6_prefix(address, network, prefix));
    // Everything outside 2000::/3 (global unicast) is unassigned or reserved.
    listed || !in_ipv6_prefix(address, Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3)
}

fn in_ipv6_prefix(address: Ipv6Addr, network: Ipv6Addr, prefix: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
    address.to_bits() & mask == network.to_bits() & mask
}

/// The IPv4 address an IPv6 address leads to: IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
/// `::a.b.c.d` (including `::` and `::1`, which embed forbidden 0.0.0.0/8 addresses), the NAT64
/// well-known prefix `64:ff9b::/96`, and 6to4 `2002:aabb:ccdd::/48`.
fn embedded_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = address.to_bits();
    let low_32 = Ipv4Addr::from_bits((bits & u128::from(u32::MAX)) as u32);
    if let Some(mapped) = address.to_ipv4_mapped() {
        return Some(mapped);
    }
    if bits >> 32 == 0 || bits >> 32 == 0x0064_ff9b_0000_0000_0000_0000 {
        return Some(low_32);
    }
    if bits >> 112 == 0x2002 {
        return Some(Ipv4Addr::from_bits(((bits >> 80) & u128::from(u32::MAX)) as u32));
    }
    None
}

/// The client's only DNS resolver: resolves through the system (tokio) and keeps only addresses
/// that pass the guard.
#[derive(Debug)]
struct GuardedResolver {
    allow_private_addresses: bool,
}

/// The host resolved, but only to forbidden addresses. Found again in the error chain by `classify`.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to forbidden addresses")]
struct ResolutionRefused {
    host: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{host} could not be resolved")]
struct ResolutionFailed {
    host: String,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private_addresses = self.allow_private_addresses;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), 0)).await {
                Ok(addresses) => addresses.collect(),
                Err(_) => Vec::new(),
            };
            if resolved.is_empty() {
                return Err(Box::new(ResolutionFailed { host }) as Box<dyn StdError + Send + Sync>);
            }
            let permitted: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|address| allow_private_addresses || !is_forbidden_address(address.ip()))
                .collect();
            if permitted.len() < resolved.len() {
                tracing::debug!(
                    host,
                    dropped = resolved.len() - permitted.len(),
                    "dropped forbidden resolved addresses"
                );
            }
            if permitted.is_empty() {
                return Err(Box::new(ResolutionRefused { host }) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(permitted.into_iter()) as Addrs)
        })
    }
}

/// Turns a reqwest error into a message for users; the full chain goes to the log.
fn classify(error: &reqwest::Error, host: &str) -> OutboundError {
    let chain = error_chain(error);
    let mut cause: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(refused) = current.downcast_ref::<ResolutionRefused>() {
            tracing::warn!(host, "outbound request refused: the host resolves only to forbidden addresses");
            return OutboundError::ForbiddenAddress(refused.host.clone());
        }
        if current.is::<ResolutionFailed>() {
            tracing::warn!(host, error = %chain, "outbound request failed: name resolution");
            return OutboundError::Transport("the host name could not be resolved".into());
        }
        cause = current.source();
    }
    tracing::warn!(host, error = %chain, "outbound request failed");
    if error.is_timeout() {
        OutboundError::Timeout
    } else if error.is_connect() && chain.contains("certificate") {
        OutboundError::Transport("the server's TLS certificate was not accepted".into())
    } else if error.is_connect() {
        OutboundError::Transport("could not connect to the server".into())
    } else if error.is_body() || error.is_decode() {
        OutboundError::Transport("the response could not be read".into())
    } else {
        OutboundError::Transport("the request could not be completed".into())
    }
}

/// An error with its causes, for logs (never for responses: causes may name internal detail).
pub(crate) fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}

/// Reads `Cache-Control` (`max-age`, `no-store`, `no-cache`) and `Age`. An unreadable `max-age`
/// counts as zero (stale), as RFC 9111 asks; the smallest of several wins.
fn cache_max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age: Option<Duration> = None;
    let mut must_not_reuse = false;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(text) = value.to_str() else { continue };
        for directive in text.split(',') {
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name.trim(), argument.trim().trim_matches('"')),
                None => (directive.trim(), ""),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                must_not_reuse = true;
            } else if name.eq_ignore_ascii_case("max-age") {
                let seconds = if !argument.is_empty() && argument.bytes().all(|byte| byte.is_ascii_digit()) {
                    Duration::from_secs(argument.parse::<u64>().unwrap_or(u64::MAX))
                } else {
                    Duration::ZERO
                };
                max_age = Some(max_age.map_or(seconds, |earlier| earlier.min(seconds)));
            }
        }
    }
    if must_not_reuse {
        return Some(Duration::ZERO);
    }
    let age = headers
        .get(AGE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs);
    max_age.map(|max_age| max_age.saturating_sub(age))
}

#[cfg(test)]
pub(crate) mod test_server {
    //! A tiny HTTP/1.1 responder on loopback for tests: answers every connection with one canned
    //! response (after an optional delay) and records what it saw.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub struct TestServer {
        pub address: SocketAddr,
        connections: Arc<AtomicUsize>,
        request_heads: Arc<Mutex<Vec<String>>>,
        task: tokio::task::JoinHandle<()>,
    }

    impl TestServer {
        pub async fn start(response: Vec<u8>, delay: Duration) -> TestServer {
            TestServer::start_with(|_| response, delay).await
        }

        /// Like `start`, for a response that must know the server's address (a document naming its URL).
        pub async fn start_with(make_response: impl FnOnce(SocketAddr) -> Vec<u8>, delay: Duration) -> TestServer {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let response = make_response(address);
            let connections = Arc::new(AtomicUsize::new(0));
            let request_heads = Arc::new(Mutex::new(Vec::new()));
            let (counter, heads) = (connections.clone(), request_heads.clone());
            let task = tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let (response, heads) = (response.clone(), heads.clone());
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buffer = [0_u8; 1024];
                        while !head.windows(4).any(|window| window == b"\r\n\r\n") && head.len() < 16 * 1024 {
                            match stream.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(read) => head.extend_from_slice(&buffer[..read]),
                            }
                        }
                        heads.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                        tokio::time::sleep(delay).await;
                        let _ = stream.write_all(&response).await;
                        let _ = stream.shutdown().await;
                    });
                }
            });
            TestServer { address, connections, request_heads, task }
        }

        /// Answers every request with `status_line`, `headers` and `body` (Content-Length added).
        pub async fn answering(status_line: &str, headers: &[(&str, &str)], body: &[u8]) -> TestServer {
            TestServer::start(response(status_line, headers, body, true), Duration::ZERO).await
        }

        pub fn url(&self, path: &str) -> url::Url {
            url::Url::parse(&format!("http://{}{path}", self.address)).unwrap()
        }

        pub fn connections(&self) -> usize {
            self.connections.load(Ordering::SeqCst)
        }

        pub fn request_heads(&self) -> Vec<String> {
            self.request_heads.lock().unwrap().clone()
        }
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    pub fn response(status_line: &str, headers: &[(&str, &str)], body: &[u8], content_length: bool) -> Vec<u8> {
        let mut text = format!("HTTP/1.1 {status_line}\r\nConnection: close\r\n");
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        if content_length {
            text.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        text.push_str("\r\n");
        let mut bytes = text.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::test_server::{TestServer, response};
    use super::*;

    type Headers<'a> = &'a [(&'a str, &'a str)];

    fn policy(allow_private_addresses: bool) -> OutboundPolicy {
        OutboundPolicy {
            allow_private_addresses,
            require_https: false,
            extra_root_certificates_pem: Vec::new(),
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            max_body_bytes: 64,
        }
    }

    fn client(policy: OutboundPolicy) -> GuardedClient {
        GuardedClient::new(policy).expect("the test policy builds a client")
    }

    const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBjzCCATWgAwIBAgIUT68D+7iHihUKE+/XBmApkGEgniIwCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRY2FzdGVsbGFuIHRlc3QgQ0EwIBcNMjYxMTI1MjI1MzA0WhgP
MjEyNjExMDEyMjUzMDRaMBwxGjAYBgNVBAMMEWNhc3RlbGxhbiB0ZXN0IENBMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEStpPiNoGmqYumG4UOjPG0RNKBfTgfYWS
7XlLkKXzvrIh4LofdPRsn6cGu6S5ZL8RN00Mpc7oTKKeq4NARhxbA6NTMFEwHQYD
VR0OBBYEFHmvYq3vYGs/yzKC5urWqURoS8fpMB8GA1UdIwQYMBaAFHmvYq3vYGs/
yzKC5urWqURoS8fpMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIh
AM7HcRP/KR80yEPhVCbaEviNpJMY3P7eRh6DNQ8GDtSBAiBe8W+86QIurq9uL0DW
NO5wR/QPAQOD5fKzzwXKpAAIfw==
-----END CERTIFICATE-----
";

    #[test]
    fn special_use_addresses_are_forbidden_and_public_ones_are_not() {
        let cases: &[(&str, bool, &str)] = &[
            ("0.0.0.0", true, "unspecified"),
            ("0.1.2.3", true, "this network 0/8"),
            ("10.0.0.1", true, "private 10/8"),
            ("10.255.255.255", true, "private 10/8, top"),
            ("100.64.0.1", true, "CGNAT 100.64/10"),
            ("100.127.255.254", true, "CGNAT 100.64/10, top"),
            ("100.100.100.200", true, "Alibaba metadata, CGNAT"),
            ("127.0.0.1", true, "loopback"),
            ("127.255.255.254", true, "loopback 127/8, top"),
            ("169.254.169.254", true, "cloud metadata, link-local"),
            ("169.254.0.1", true, "link-local"),
            ("172.16.0.1", true, "private 172.16/12"),
            ("172.31.255.255", true, "private 172.16/12, top"),
            ("192.0.0.192", true, "Oracle metadata, IETF protocol assignments"),
            ("192.0.2.1", true, "TEST-NET-1"),
            ("192.88.99.1", true, "6to4 relay anycast"),
            ("192.168.1.1", true, "private 192.168/16"),
            ("198.18.0.1", true, "benchmarking 198.18/15"),
            ("198.19.255.255", true, "benchmarking 198.18/15, top"),
            ("198.51.100.7", true, "TEST-NET-2"),
            ("203.0.113.9", true, "TEST-NET-3"),
            ("224.0.0.1", true, "multicast"),
            ("239.255.255.250", true, "multicast SSDP"),
            ("240.0.0.1", true, "reserved 240/4"),
            ("255.255.255.255", true, "broadcast"),
            ("1.1.1.1", false, "public"),
            ("8.8.8.8", false, "public"),
            ("9.255.255.255", false, "just below 10/8"),
            ("11.0.0.1", false, "just above 10/8"),
            ("100.63.255.255", false, "just below CGNAT"),
            ("100.128.0.1", false, "just above CGNAT"),
            ("126.255.255.255", false, "just below loopback"),
            ("128.0.0.1", false, "just above loopback"),
            ("169.253.255.255", false, "just below link-local"),
            ("169.255.0.1", false, "just above link-local"),
            ("172.15.255.255", false, "just below 172.16/12"),
            ("172.32.0.1", false, "just above 172.16/12"),
            ("192.0.1.1", false, "between 192.0.0/24 and TEST-NET-1"),
            ("192.167.255.255", false, "just below 192.168/16"),
            ("192.169.0.1", false, "just above 192.168/16"),
            ("198.17.255.255", false, "just below benchmarking"),
            ("198.20.0.1", false, "just above benchmarking"),
            ("203.0.114.1", false, "just above TEST-NET-3"),
            ("223.255.255.255", false, "just below multicast"),
            ("::", true, "IPv6 unspecified"),
            ("::1", true, "IPv6 loopback"),
            ("::ffff:127.0.0.1", true, "IPv4-mapped loopback"),
            ("::ffff:10.0.0.1", true, "IPv4-mapped private"),
            ("::ffff:169.254.169.254", true, "IPv4-mapped metadata"),
            ("::127.0.0.1", true, "IPv4-compatible loopback"),
            ("::ffff:0:7f00:1", true, "IPv4-translated, outside global unicast"),
            ("64:ff9b::7f00:1", true, "NAT64 of loopback"),
            ("64:ff9b::a9fe:a9fe", true, "NAT64 of metadata"),
            ("64:ff9b:1::808:808", true, "local-use NAT64"),
            ("100::1", true, "discard-only"),
            ("2001::1", true, "Teredo"),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", true, "Teredo with a public server"),
            ("2001:2::1", true, "benchmarking"),
            ("2001:1ff::1", true, "IETF protocol assignments 2001::/23, top"),
            ("2001:db8::1", true, "documentation"),
            ("2002:7f00:1::1", true, "6to4 of loopback"),
            ("2002:a00:1::1", true, "6to4 of 10.0.0.1"),
            ("2002:c0a8:101::1", true, "6to4 of 192.168.1.1"),
            ("3fff::1", true, "documentation 3fff::/20"),
            ("4000::1", true, "reserved, outside 2000::/3"),
            ("5f00::1", true, "segment routing"),
            ("fc00::1", true, "unique local"),
            ("fd00:ec2::254", true, "AWS IPv6 metadata, unique local"),
            ("fe80::1", true, "link-local"),
            ("febf::1", true, "link-local, top"),
            ("fec0::1", true, "site-local"),
            ("ff02::1", true, "multicast all nodes"),
            ("ff05::2", true, "multicast site"),
            ("2606:4700:4700::1111", false, "public IPv6"),
            ("2001:4860:4860::8888", false, "public IPv6"),
            ("2001:200::1", false, "just above 2001::/23"),
            ("2a00:1450:4001::1", false, "public IPv6"),
            ("::ffff:8.8.8.8", false, "IPv4-mapped public"),
            ("64:ff9b::808:808", false, "NAT64 of a public address"),
            ("2002:808:808::1", false, "6to4 of a public address"),
        ];
        for (text, forbidden, why) in cases {
            let address: IpAddr = text.parse().unwrap_or_else(|_| panic!("{text} parses"));
            assert_eq!(is_forbidden_address(address), *forbidden, "{text} ({why}) forbidden should be {forbidden}");
        }
    }

    #[test]
    fn check_url_refuses_schemes_plain_http_and_forbidden_literals() {
        let guarded = client(OutboundPolicy { require_https: true, ..policy(false) });
        let cases: &[(&str, Result<(), OutboundError>)] = &[
            ("https://example.com/doc", Ok(())),
            ("https://8.8.8.8/doc", Ok(())),
            ("http://example.com/doc", Err(OutboundError::NotHttps)),
            ("ftp://example.com/doc", Err(OutboundError::UnsupportedUrl)),
            ("file:///etc/passwd", Err(OutboundError::UnsupportedUrl)),
            ("https://127.0.0.1/doc", Err(OutboundError::ForbiddenAddress("127.0.0.1".into()))),
            ("https://127.1/doc", Err(OutboundError::ForbiddenAddress("127.0.0.1".into()))),
            ("https://0x7f000001/doc", Err(OutboundError::ForbiddenAddress("127.0.0.1".into()))),
            ("https://[::1]/doc", Err(OutboundError::ForbiddenAddress("[::1]".into()))),
            ("https://[::ffff:169.254.169.254]/", Err(OutboundError::ForbiddenAddress("[::ffff:a9fe:a9fe]".into()))),
        ];
        for (url, expected) in cases {
            let parsed = Url::parse(url).unwrap();
            assert_eq!(&guarded.check_url(&parsed), expected, "check_url({url})");
        }
        let permissive = client(policy(true));
        let loopback = Url::parse("http://127.0.0.1/doc").unwrap();
        assert_eq!(permissive.check_url(&loopback), Ok(()), "allow_private_addresses admits loopback literals");
    }

    #[test]
    fn extra_root_certificates_must_be_pem_certificates() {
        let good =
            OutboundPolicy { extra_root_certificates_pem: vec![TEST_CA_PEM.as_bytes().to_vec()], ..policy(false) };
        assert!(GuardedClient::new(good).is_ok(), "a PEM certificate is accepted as an extra root");
        let bad = OutboundPolicy { extra_root_certificates_pem: vec![b"not a certificate".to_vec()], ..policy(false) };
        let error = GuardedClient::new(bad).expect_err("garbage is refused");
        assert!(matches!(error, OutboundError::Configuration(_)), "garbage PEM is a configuration error: {error:?}");
        assert!(error.to_string().contains("bundle 1"), "the message names the bundle: {error}");
    }

    #[tokio::test]
    async fn loopback_literals_are_refused_before_connecting() {
        let server = TestServer::answering("200 OK", &[], b"{}").await;
        let guarded = client(policy(false));
        let result = guarded.get(&server.url("/doc"), "application/json").await;
        assert_eq!(result, Err(OutboundError::ForbiddenAddress("127.0.0.1".into())), "127.0.0.1 is refused");
        let result = guarded.get(&Url::parse("http://[::1]:9/doc").unwrap(), "application/json").await;
        assert_eq!(result, Err(OutboundError::ForbiddenAddress("[::1]".into())), "[::1] is refused");
        assert_eq!(server.connections(), 0, "the server saw no connection");
    }

    #[tokio::test]
    async fn host_names_resolving_to_loopback_are_refused_before_connecting() {
        let server = TestServer::answering("200 OK", &[], b"{}").await;
        let guarded = client(policy(false));
        let url = Url::parse(&format!("http://localhost:{}/doc", server.address.port())).unwrap();
        let result = guarded.get(&url, "application/json").await;
        assert_eq!(result, Err(OutboundError::ForbiddenAddress("localhost".into())), "localhost is refused");
        assert_eq!(server.connections(), 0, "the server saw no connection");
    }

    #[tokio::test]
    async fn loopback_is_fetched_when_private_addresses_are_allowed() {
        let headers = [("Content-Type", "application/json"), ("Cache-Control", "public, max-age=60"), ("Age", "10")];
        let server = TestServer::answering("200 OK", &headers, br#"{"ok":true}"#).await;
        let guarded = client(policy(true));
        let fetched = guarded.get(&server.url("/doc"), "application/json").await.expect("loopback is fetched");
        assert_eq!(fetched.status, 200, "status");
        assert_eq!(fetched.content_type.as_deref(), Some("application/json"), "content type");
        assert_eq!(fetched.body, br#"{"ok":true}"#.to_vec(), "body");
        assert_eq!(fetched.cache_max_age, Some(Duration::from_secs(50)), "max-age less Age");
        let heads = server.request_heads();
        assert_eq!(heads.len(), 1, "one request: {heads:?}");
        let head = heads[0].to_ascii_lowercase();
        assert!(head.starts_with("get /doc http/1.1"), "a GET of the path: {head}");
        assert!(head.contains("accept: application/json"), "the Accept header is sent: {head}");
        assert!(
            head.contains(&format!("user-agent: {}", castellan_actors::http_client::USER_AGENT)),
            "our User-Agent is sent: {head}"
        );

        let localhost = Url::parse(&format!("http://localhost:{}/doc", server.address.port())).unwrap();
        let fetched = guarded.get(&localhost, "application/json").await.expect("localhost is fetched when allowed");
        assert_eq!(fetched.body, br#"{"ok":true}"#.to_vec(), "body through the resolver");
    }

    #[tokio::test]
    async fn plain_http_is_refused_when_https_is_required() {
        let server = TestServer::answering("200 OK", &[], b"{}").await;
        let guarded = client(OutboundPolicy { require_https: true, ..policy(true) });
        let result = guarded.get(&server.url("/doc"), "application/json").await;
        assert_eq!(result, Err(OutboundError::NotHttps), "http is refused");
        assert_eq!(server.connections(), 0, "the server saw no connection");
    }

    #[tokio::test]
    async fn redirects_are_refused_and_not_followed() {
        let target = TestServer::answering("200 OK", &[], b"{}").await;
        let location = target.url("/elsewhere").to_string();
        let redirecting = TestServer::answering("302 Found", &[("Location", &location)], b"").await;
        let guarded = client(policy(true));
        let result = guarded.get(&redirecting.url("/doc"), "application/json").await;
        assert_eq!(result, Err(OutboundError::Redirect), "a 302 is an error");
        assert_eq!(redirecting.connections(), 1, "the redirecting server was asked once");
        assert_eq!(target.connections(), 0, "the redirect target saw no connection");
    }

    #[tokio::test]
    async fn bodies_over_the_cap_are_refused_not_truncated() {
        let guarded = client(policy(true));
        let exact = TestServer::answering("200 OK", &[], &[b'a'; 64]).await;
        let fetched = guarded.get(&exact.url("/"), "*/*").await.expect("a body of exactly the cap is read");
        assert_eq!(fetched.body.len(), 64, "the whole body");

        let declared = TestServer::answering("200 OK", &[], &[b'a'; 65]).await;
        let result = guarded.get(&declared.url("/"), "*/*").await;
        assert_eq!(result, Err(OutboundError::TooLarge), "a Content-Length over the cap");

        let streamed = TestServer::start(response("200 OK", &[], &[b'a'; 4096], false), Duration::ZERO).await;
        let result = guarded.get(&streamed.url("/"), "*/*").await;
        assert_eq!(result, Err(OutboundError::TooLarge), "a body without Content-Length that runs over the cap");

        let larger = guarded.with_max_body_bytes(8192);
        let streamed = TestServer::start(response("200 OK", &[], &[b'a'; 4096], false), Duration::ZERO).await;
        let fetched = larger.get(&streamed.url("/"), "*/*").await.expect("a larger cap reads it");
        assert_eq!(fetched.body.len(), 4096, "the whole streamed body");
    }

    #[tokio::test]
    async fn a_slow_server_hits_the_timeout() {
        let server = TestServer::start(response("200 OK", &[], b"{}", true), Duration::from_secs(10)).await;
        let guarded = client(OutboundPolicy { timeout: Duration::from_millis(200), ..policy(true) });
        let started = std::time::Instant::now();
        let result = guarded.get(&server.url("/"), "*/*").await;
        assert_eq!(result, Err(OutboundError::Timeout), "the request times out");
        assert!(started.elapsed() < Duration::from_secs(2), "the timeout is honoured: {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn non_success_statuses_are_errors() {
        let guarded = client(policy(true));
        for (status_line, code) in
            [("404 Not Found", 404), ("500 Internal Server Error", 500), ("401 Unauthorized", 401)]
        {
            let server = TestServer::answering(status_line, &[], b"nope").await;
            let result = guarded.get(&server.url("/"), "*/*").await;
            assert_eq!(result, Err(OutboundError::Status(code)), "{status_line} is an error");
        }
        let server = TestServer::answering("204 No Content", &[], b"").await;
        let fetched = guarded.get(&server.url("/"), "*/*").await.expect("2xx is returned to the caller");
        assert_eq!(fetched.status, 204, "the caller sees the exact 2xx status");
    }

    #[test]
    fn cache_headers_give_a_max_age() {
        let cases: &[(Headers, Option<u64>, &str)] = &[
            (&[], None, "no header"),
            (&[("cache-control", "max-age=300")], Some(300), "max-age"),
            (&[("cache-control", "public, Max-Age=\"120\"")], Some(120), "quoted, mixed case"),
            (&[("cache-control", "max-age=300"), ("age", "100")], Some(200), "less Age"),
            (&[("cache-control", "max-age=30"), ("age", "100")], Some(0), "Age beyond max-age"),
            (&[("cache-control", "max-age=300, no-store")], Some(0), "no-store wins"),
            (&[("cache-control", "no-cache")], Some(0), "no-cache"),
            (&[("cache-control", "max-age=-5")], Some(0), "negative is stale"),
            (&[("cache-control", "max-age=soon")], Some(0), "garbage is stale"),
            (&[("cache-control", "max-age=99999999999999999999999")], Some(u64::MAX), "overflow saturates"),
            (&[("cache-control", "max-age=600"), ("cache-control", "max-age=60")], Some(60), "smallest wins"),
            (&[("cache-control", "private")], None, "no max-age"),
        ];
        for (headers, expected, why) in cases {
            let mut map = HeaderMap::new();
            for (name, value) in *headers {
                map.append(reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
            }
            assert_eq!(cache_max_age(&map), expected.map(Duration::from_secs), "{why}: {headers:?}");
        }
    }
}

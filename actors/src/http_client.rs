//! Where every outbound HTTP client is built: upstream MCP servers (`upstream::http`), HTTP hooks,
//! the SSRF-guarded fetcher of client-supplied URLs (`identity::outbound`) and the `castellan hook`
//! shim. All of them follow no redirects (a redirect could take a request, and its credential,
//! somewhere nobody configured), bound the time to connect, and name themselves; each purpose then
//! adds what it needs (the guard's resolver and TLS roots, a total timeout, a pool setting).

use std::time::Duration;

/// What every outbound request sends as `User-Agent`.
pub const USER_AGENT: &str = concat!("castellan/", env!("CARGO_PKG_VERSION"));

/// The common base of every outbound client: no redirects, `connect_timeout`, our user agent.
pub fn builder(connect_timeout: Duration) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(connect_timeout)
        .user_agent(USER_AGENT)
}

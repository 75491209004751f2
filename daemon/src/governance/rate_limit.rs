//! Rate limits (`rate_limits` in the profile): one GCRA bucket per principal and class, the rate
//! being the class's base rate times the principal's tier multiplier and the burst that rate times
//! `burst_multiplier`. A `tools/call` may also meet a bucket of its server (`servers`) and of its tool
//! (`tools`), scaled the same way. Principals are keyed by subject; anonymous callers by client
//! address (an IPv6 address by its /64), which comes from `X-Forwarded-For` only when the peer is a
//! trusted proxy.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use castellan_config::{RateClass, RateLimitSettings, Tier};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::identity::{Credential, Principal};

/// Whose bucket a request draws from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BucketKey {
    Subject(String),
    Address(IpAddr),
}

type Bucket = RateLimiter<BucketKey, DefaultKeyedStateStore<BucketKey>, DefaultClock, StateInformationMiddleware>;

/// The answer for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    Allowed { policy: Policy, remaining: u32 },
    Limited { policy: Policy, retry_after: Duration },
}

/// Which limit of the profile a bucket enforces. Its name is what a 429 shows (`RateLimit-Policy`,
/// `RateLimit`, the JSON error) and what the audit row says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// `per_second.<class>`: named by the class (`mcp_tool_call`).
    Class(RateClass),
    /// `servers.<server>`: named `server <server>`.
    Server(Arc<str>),
    /// `tools.<server>__<tool>`: named `tool <server>__<tool>`.
    Tool(Arc<str>),
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Class(class) => f.write_str(class.as_str()),
            Limit::Server(server) => write!(f, "server {server}"),
            Limit::Tool(tool) => write!(f, "tool {tool}"),
        }
    }
}

/// What the `RateLimit-Policy` header describes: the burst and the seconds to refill it.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub limit: Limit,
    pub burst: u32,
    pub window_seconds: u64,
}

impl Policy {
    /// The policy's name in the RateLimit headers: the limit's name, a structured-field string
    /// (server and tool names hold neither `"` nor `\`, so it needs no escaping).
    pub fn name(&self) -> String {
        format!("\"{}\"", self.limit)
    }

    /// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers): `"name";q=BURST;w=WINDOW`.
    pub fn header(&self) -> String {
        format!("{};q={};w={}", self.name(), self.burst, self.window_seconds)
    }
}

/// One bucket per principal for one limit at one tier.
struct Metered {
    bucket: Bucket,
    policy: Policy,
}

impl Metered {
    fn new(limit: Limit, (rate, burst): (f64, u32)) -> Option<Metered> {
        let period = Duration::from_secs_f64(1.0 / rate.max(1e-6));
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)?;
        let bucket = RateLimiter::keyed(quota.allow_burst(burst)).with_middleware::<StateInformationMiddleware>();
        let window_seconds = (f64::from(burst.get()) / rate).ceil().max(1.0) as u64;
        Some(Metered { bucket, policy: Policy { limit, burst: burst.get(), window_seconds } })
    }

    fn check(&self, key: &BucketKey) -> Admission {
        match self.bucket.check_key(key) {
            Ok(snapshot) => {
                Admission::Allowed { policy: self.policy.clone(), remaining: snapshot.remaining_burst_capacity() }
            }
            Err(not_until) => Admission::Limited {
                policy: self.policy.clone(),
                retry_after: not_until.wait_time_from(self.bucket.clock().now()),
            },
        }
    }
}

/// The buckets of one tier of one `servers` or `tools` entry.
type ByTier = BTreeMap<Tier, Metered>;

/// The compiled buckets of one profile's `rate_limits`; part of the governance snapshot, rebuilt
/// when the limits change (and only then: a rebuilt bucket forgets what was spent).
pub struct Limits {
    settings: RateLimitSettings,
    classes: BTreeMap<(RateClass, Tier), Metered>,
    servers: BTreeMap<String, ByTier>,
    /// By server, then by the tool as the server's own endpoint names it: found without building
    /// the `server__tool` string on every call.
    tools: BTreeMap<String, BTreeMap<String, ByTier>>,
}

impl Limits {
    fn build(settings: RateLimitSettings) -> Self {
        let mut classes = BTreeMap::new();
        for class in RateClass::ALL {
            for tier in Tier::ALL {
                if let Some(metered) = Metered::new(Limit::Class(class), settings.quota(class, tier)) {
                    classes.insert((class, tier), metered);
                }
            }
        }
        let by_tier = |limit: Limit, base_rate: f64| -> ByTier {
            Tier::ALL
                .into_iter()
                .filter_map(|tier| Some((tier, Metered::new(limit.clone(), settings.scaled(base_rate, tier))?)))
                .collect()
        };
        let mut servers = BTreeMap::new();
        for (server, base_rate) in &settings.servers {
            servers.insert(server.to_string(), by_tier(Limit::Server(server.as_str().into()), *base_rate));
        }
        let mut tools: BTreeMap<String, BTreeMap<String, ByTier>> = BTreeMap::new();
        for ((server, tool), base_rate) in &settings.tools {
            let limit = Limit::Tool(format!("{server}{}{tool}", crate::mcp::names::SEPARATOR).into());
            tools.entry(server.to_string()).or_default().insert(tool.clone(), by_tier(limit, *base_rate));
        }
        Limits { settings, classes, servers, tools }
    }

    fn every_bucket(&self) -> impl Iterator<Item = &Bucket> {
        let servers = self.servers.values().flat_map(BTreeMap::values);
        let tools = self.tools.values().flat_map(BTreeMap::values).flat_map(BTreeMap::values);
        self.classes.values().chain(servers).chain(tools).map(|metered| &metered.bucket)
    }
}

/// What a `tools/call` asks for, as far as rate limits care: the server, and the tool as the
/// server's own endpoint names it (the part after `__` on `/mcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToolCallTarget<'a> {
    pub server: &'a str,
    pub tool: &'a str,
}

impl Limits {
    /// The limits of `settings`: `previous` itself when its settings are the same, so a reload that
    /// leaves the limits alone keeps what every bucket has spent.
    pub fn compile(settings: &RateLimitSettings, previous: Option<&Arc<Limits>>) -> Arc<Limits> {
        match previous {
            Some(previous) if previous.settings == *settings => Arc::clone(previous),
            _ => Arc::new(Limits::build(settings.clone())),
        }
    }

    /// Takes one request of `class` from the principal's bucket.
    pub fn check(&self, class: RateClass, principal: &Principal, client: IpAddr) -> Admission {
        let limiters = self;
        match limiters.classes.get(&(class, principal.tier)) {
            Some(metered) => metered.check(&bucket_key(principal, client)),
            None => Admission::Allowed { policy: unmetered(class), remaining: 0 },
        }
    }

    /// Takes one `tools/call` from the principal's buckets: its tool's and its server's when the
    /// profile limits them, and `mcp_tool_call`'s. `target` is None when the call names no tool
    /// that could belong to a server; only the class applies then.
    ///
    /// governor cannot look at a bucket without taking from it, nor give a cell back, so a call
    /// refused by one bucket has spent a cell in each bucket checked before it. The most specific
    /// is checked first (tool, server, class): a call its tool or server refuses then costs nothing
    /// from the class budget that the principal's other tools share, and what a refusal further on
    /// wastes is at most one cell of the narrower buckets, which only matters while the principal is
    /// over the broader limit anyway.
    pub fn check_tool_call(
        &self,
        principal: &Principal,
        client: IpAddr,
        target: Option<ToolCallTarget<'_>>,
    ) -> Admission {
        let limiters = self;
        let tier = principal.tier;
        let tool = target.and_then(|target| limiters.tools.get(target.server)?.get(target.tool)?.get(&tier));
        let server = target.and_then(|target| limiters.servers.get(target.server)?.get(&tier));
        let class = limiters.classes.get(&(RateClass::McpToolCall, tier));
        take_from_each(&[tool, server, class], &bucket_key(principal, client))
    }

    /// Takes one request to a server that is not a tool call (a resource, a prompt, a listing):
    /// the server's bucket when the profile limits it, then `mcp_tool_call`'s, which resources
    /// and prompts share with tools.
    pub fn check_server_request(&self, principal: &Principal, client: IpAddr, server: Option<&str>) -> Admission {
        let limiters = self;
        let tier = principal.tier;
        let server = server.and_then(|server| limiters.servers.get(server)?.get(&tier));
        let class = limiters.classes.get(&(RateClass::McpToolCall, tier));
        take_from_each(&[server, class], &bucket_key(principal, client))
    }

    /// Forgets buckets that are full again (run periodically: bounds memory to recent callers).
    pub fn sweep(&self) {
        for bucket in self.every_bucket() {
            bucket.retain_recent();
            bucket.shrink_to_fit();
        }
    }
}

/// `server.trusted_proxies`: whose `X-Forwarded-For` names the client.
pub struct TrustedProxies {
    proxies: ArcSwap<Vec<(IpAddr, u8)>>,
}

impl TrustedProxies {
    pub fn new(trusted_proxies: &[String]) -> Self {
        TrustedProxies { proxies: ArcSwap::from_pointee(parse_proxies(trusted_proxies)) }
    }

    /// Applies a reloaded profile.
    pub fn apply(&self, trusted_proxies: &[String]) {
        self.proxies.store(Arc::new(parse_proxies(trusted_proxies)));
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the right-most address
    /// of `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_address(&self, peer: Option<IpAddr>, forwarded_for: &[&str]) -> IpAddr {
        let peer = peer.map(canonical).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let trusted = self.proxies.load();
        let is_trusted =
            |address: IpAddr| trusted.iter().any(|(network, prefix)| in_network(address, *network, *prefix));
        if !is_trusted(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for.iter().flat_map(|line| line.split(',')).map(str::trim).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(address) = parse_hop(hop) else { break };
            client = address;
            if !is_trusted(address) {
                break;
            }
        }
        client
    }
}

/// Takes a cell from each bucket in turn (most specific first) until one refuses: the refusal, or
/// the admission of the bucket with the least left.
fn take_from_each(buckets: &[Option<&Metered>], key: &BucketKey) -> Admission {
    let mut tightest = Admission::Allowed { policy: unmetered(RateClass::McpToolCall), remaining: u32::MAX };
    for metered in buckets.iter().flatten() {
        match metered.check(key) {
            limited @ Admission::Limited { .. } => return limited,
            allowed @ Admission::Allowed { remaining, .. } => {
                if matches!(tightest, Admission::Allowed { remaining: least, .. } if remaining < least) {
                    tightest = allowed;
                }
            }
        }
    }
    tightest
}

/// The policy reported for a class that has no bucket (its quota could not be built).
fn unmetered(class: RateClass) -> Policy {
    Policy { limit: Limit::Class(class), burst: 0, window_seconds: 0 }
}

fn bucket_key(principal: &Principal, client: IpAddr) -> BucketKey {
    match principal.credential {
        Credential::Anonymous => BucketKey::Address(bucket_address(client)),
        _ => BucketKey::Subject(principal.subject.clone()),
    }
}

fn parse_proxies(entries: &[String]) -> Vec<(IpAddr, u8)> {
    entries
        .iter()
        .filter_map(|entry| castellan_config::parse_cidr(entry))
        .map(|(ip, prefix)| (canonical(ip), prefix))
        .collect()
}

/// An IPv4-mapped IPv6 address is the IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// Anonymous IPv6 callers are keyed by their /64, which is what one host can freely choose within.
fn bucket_address(address: IpAddr) -> IpAddr {
    match canonical(address) {
        IpAddr::V6(v6) => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            IpAddr::from(segments)
        }
        v4 => v4,
    }
}

fn in_network(address: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(address), IpAddr::V4(network)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(address) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(address), IpAddr::V6(network)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(address) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

/// One `X-Forwarded-For` entry: an address, perhaps with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(canonical(address));
    }
    if let Ok(socket) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical(socket.ip()));
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn user(name: &str) -> Principal {
        Principal {
            subject: name.into(),
            tier: Tier::User,
            scopes: vec![],
            credential: Credential::ApiKey { public_id: "k".into() },
        }
    }

    #[test]
    fn a_fresh_principal_gets_exactly_the_burst_then_waits() {
        let mut settings = RateLimitSettings::default();
        settings.per_second.insert(RateClass::McpToolCall, 2.0);
        let limits = Limits::compile(&settings, None);
        let client = IpAddr::from([10, 0, 0, 1]);
        let admitted = (0..20)
            .filter(|_| {
                matches!(limits.check(RateClass::McpToolCall, &user("alice"), client), Admission::Allowed { .. })
            })
            .count();
        assert_eq!(admitted, 6, "rate 2/s × burst multiplier 3");
        match limits.check(RateClass::McpToolCall, &user("alice"), client) {
            Admission::Limited { retry_after, policy } => {
                assert!(
                    retry_after <= Duration::from_millis(500),
                    "the next cell is due within 1/rate: {retry_after:?}"
                );
                assert_eq!(policy.header(), r#""mcp_tool_call";q=6;w=3"#, "policy header");
            }
            other => panic!("expected a limit: {other:?}"),
        }
        assert!(
            matches!(limits.check(RateClass::McpToolCall, &user("bob"), client), Admission::Allowed { .. }),
            "another principal has its own bucket"
        );
        assert!(
            matches!(limits.check(RateClass::Oauth, &user("alice"), client), Admission::Allowed { .. }),
            "another class too"
        );
    }

    fn server(name: &str) -> castellan_config::ServerName {
        castellan_config::ServerName::parse(name).unwrap()
    }

    /// mcp_tool_call 5/s, burst multiplier 1, `get_customer` 2/s, the `billing` server 3/s.
    fn tool_and_server_limits() -> Arc<Limits> {
        let mut settings = RateLimitSettings { burst_multiplier: 1.0, ..RateLimitSettings::default() };
        settings.per_second.insert(RateClass::McpToolCall, 5.0);
        settings.tools.insert((server("customers"), "get_customer".into()), 2.0);
        settings.servers.insert(server("billing"), 3.0);
        Limits::compile(&settings, None)
    }

    fn target<'a>(server: &'a str, tool: &'a str) -> Option<ToolCallTarget<'a>> {
        Some(ToolCallTarget { server, tool })
    }

    /// The limit that refused each of `count` calls, or "" for an admitted one.
    fn outcomes(
        limits: &Limits,
        principal: &Principal,
        target: Option<ToolCallTarget<'_>>,
        count: usize,
    ) -> Vec<String> {
        let client = IpAddr::from([10, 0, 0, 1]);
        (0..count)
            .map(|_| match limits.check_tool_call(principal, client, target) {
                Admission::Allowed { .. } => String::new(),
                Admission::Limited { policy, .. } => policy.limit.to_string(),
            })
            .collect()
    }

    #[test]
    fn a_tool_limit_refuses_before_the_class_is_spent() {
        let limits = tool_and_server_limits();
        let alice = user("alice");
        let tool = "tool customers__get_customer";
        assert_eq!(
            outcomes(&limits, &alice, target("customers", "get_customer"), 6),
            ["", "", tool, tool, tool, tool],
            "the tool's burst of 2, then its limit"
        );
        assert_eq!(
            outcomes(&limits, &alice, target("customers", "list_customers"), 4),
            ["", "", "", "mcp_tool_call"],
            "another tool of the server has the class's 5 less the 2 admitted: refused calls took nothing from it"
        );
        assert_eq!(
            outcomes(&limits, &user("bob"), target("customers", "get_customer"), 3),
            ["", "", tool],
            "another principal has its own tool bucket"
        );
        match limits.check_tool_call(&alice, IpAddr::from([10, 0, 0, 1]), target("customers", "get_customer")) {
            Admission::Limited { policy, .. } => {
                assert_eq!(policy.header(), r#""tool customers__get_customer";q=2;w=1"#, "the policy names the tool")
            }
            other => panic!("expected a limit: {other:?}"),
        }
    }

    #[test]
    fn a_server_limit_is_shared_by_its_tools_and_scaled_by_tier() {
        let limits = tool_and_server_limits();
        let alice = user("alice");
        let billing = "server billing";
        let mut seen = outcomes(&limits, &alice, target("billing", "invoice"), 2);
        seen.extend(outcomes(&limits, &alice, target("billing", "refund"), 2));
        assert_eq!(seen, ["", "", "", billing], "one bucket of 3 for every tool of the server");
        assert_eq!(
            outcomes(&limits, &alice, target("customers", "list_customers"), 2),
            ["", ""],
            "other servers are not limited by it"
        );
        assert_eq!(
            outcomes(&limits, &alice, target("customers", "list_customers"), 1),
            ["mcp_tool_call"],
            "alice's 5 class cells are spent: 3 on billing, 2 on customers; the refused billing call took none"
        );
        assert_eq!(
            outcomes(&limits, &user("bob"), None, 6),
            ["", "", "", "", "", "mcp_tool_call"],
            "a call without a target meets the class only"
        );
        let service = Principal { tier: Tier::Service, ..user("svc") };
        let admitted =
            outcomes(&limits, &service, target("billing", "invoice"), 20).iter().filter(|o| o.is_empty()).count();
        assert_eq!(admitted, 15, "service: 3/s × 5, burst multiplier 1");
        let anonymous = Principal { credential: Credential::Anonymous, tier: Tier::Anonymous, ..user("") };
        assert_eq!(
            outcomes(&limits, &anonymous, target("customers", "get_customer"), 2),
            ["", "tool customers__get_customer"],
            "anonymous: 2/s × 0.5 = 1/s, burst 1, keyed by address"
        );
    }

    #[test]
    fn a_reload_that_changes_server_or_tool_limits_applies_them() {
        let limits = tool_and_server_limits();
        let alice = user("alice");
        assert_eq!(
            outcomes(&limits, &alice, target("customers", "get_customer"), 3),
            ["", "", "tool customers__get_customer"]
        );
        let mut settings = RateLimitSettings { burst_multiplier: 1.0, ..RateLimitSettings::default() };
        settings.per_second.insert(RateClass::McpToolCall, 5.0);
        settings.servers.insert(server("customers"), 1.0);
        let limits = Limits::compile(&settings, Some(&limits));
        assert_eq!(
            outcomes(&limits, &alice, target("customers", "get_customer"), 2),
            ["", "server customers"],
            "the tool limit is gone, the server limit is in force"
        );
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let limits = TrustedProxies::new(&["10.0.0.0/8".to_string()]);
        let outside = IpAddr::from([203, 0, 113, 9]);
        let proxy = IpAddr::from([10, 1, 2, 3]);
        let cases: [(IpAddr, &[&str], IpAddr, &str); 5] = [
            (outside, &["198.51.100.7"], outside, "an untrusted peer's header is ignored"),
            (proxy, &["198.51.100.7"], IpAddr::from([198, 51, 100, 7]), "a trusted proxy names the client"),
            (proxy, &["6.6.6.6, 198.51.100.7, 10.9.9.9"], IpAddr::from([198, 51, 100, 7]), "right-most untrusted hop"),
            (
                proxy,
                &["garbage, 198.51.100.7"],
                IpAddr::from([198, 51, 100, 7]),
                "the walk stops at the first untrusted address",
            ),
            (proxy, &["198.51.100.7:4711"], IpAddr::from([198, 51, 100, 7]), "ports are dropped"),
        ];
        for (peer, header, expected, what) in cases {
            assert_eq!(limits.client_address(Some(peer), header), expected, "{what}");
        }
        assert_eq!(
            bucket_address("2001:db8::1".parse().unwrap()),
            bucket_address("2001:db8::ffff".parse().unwrap()),
            "one /64, one bucket"
        );
    }
}

//! Rate limits (`rate_limits` in the profile): one GCRA bucket per principal and class, the rate
//! being the class's base rate times the principal's tier multiplier and the burst that rate times
//! `burst_multiplier`. Principals are keyed by subject; anonymous callers by client address (an
//! IPv6 address by its /64), which comes from `X-Forwarded-For` only when the peer is a trusted proxy.

use std::collections::BTreeMap;
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

/// What the `RateLimit-Policy` header describes: the burst and the seconds to refill it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub class: RateClass,
    pub burst: u32,
    pub window_seconds: u64,
}

impl Policy {
    /// `RateLimit-Policy` (draft-ietf-httpapi-ratelimit-headers): `"class";q=BURST;w=WINDOW`.
    pub fn header(&self) -> String {
        format!("\"{}\";q={};w={}", self.class.as_str(), self.burst, self.window_seconds)
    }
}

struct Limiters {
    settings: RateLimitSettings,
    buckets: BTreeMap<(RateClass, Tier), (Arc<Bucket>, Policy)>,
}

impl Limiters {
    fn build(settings: RateLimitSettings) -> Self {
        let mut buckets = BTreeMap::new();
        for class in RateClass::ALL {
            for tier in Tier::ALL {
                let (rate, burst) = settings.quota(class, tier);
                let period = Duration::from_secs_f64(1.0 / rate.max(1e-6));
                let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
                let Some(quota) = Quota::with_period(period) else { continue };
                let limiter =
                    RateLimiter::keyed(quota.allow_burst(burst)).with_middleware::<StateInformationMiddleware>();
                let window_seconds = (f64::from(burst.get()) / rate).ceil().max(1.0) as u64;
                let policy = Policy { class, burst: burst.get(), window_seconds };
                buckets.insert((class, tier), (Arc::new(limiter), policy));
            }
        }
        Limiters { settings, buckets }
    }
}

/// The buckets of this replica, rebuilt when the profile's limits change (and only then: a rebuilt
/// bucket forgets what was spent).
pub struct RateLimits {
    limiters: ArcSwap<Limiters>,
    trusted_proxies: ArcSwap<Vec<(IpAddr, u8)>>,
}

impl RateLimits {
    pub fn new(settings: &RateLimitSettings, trusted_proxies: &[String]) -> Self {
        RateLimits {
            limiters: ArcSwap::from_pointee(Limiters::build(settings.clone())),
            trusted_proxies: ArcSwap::from_pointee(parse_proxies(trusted_proxies)),
        }
    }

    /// Applies a reloaded profile.
    pub fn apply(&self, settings: &RateLimitSettings, trusted_proxies: &[String]) {
        if self.limiters.load().settings != *settings {
            self.limiters.store(Arc::new(Limiters::build(settings.clone())));
        }
        self.trusted_proxies.store(Arc::new(parse_proxies(trusted_proxies)));
    }

    /// Takes one request of `class` from the principal's bucket.
    pub fn check(&self, class: RateClass, principal: &Principal, client: IpAddr) -> Admission {
        let key = match principal.credential {
            Credential::Anonymous => BucketKey::Address(bucket_address(client)),
            _ => BucketKey::Subject(principal.subject.clone()),
        };
        let limiters = self.limiters.load();
        let Some((bucket, policy)) = limiters.buckets.get(&(class, principal.tier)) else {
            return Admission::Allowed { policy: Policy { class, burst: 0, window_seconds: 0 }, remaining: 0 };
        };
        match bucket.check_key(&key) {
            Ok(snapshot) => Admission::Allowed { policy: *policy, remaining: snapshot.remaining_burst_capacity() },
            Err(not_until) => {
                Admission::Limited { policy: *policy, retry_after: not_until.wait_time_from(bucket.clock().now()) }
            }
        }
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the right-most address
    /// of `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_address(&self, peer: Option<IpAddr>, forwarded_for: &[&str]) -> IpAddr {
        let peer = peer.map(canonical).unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let trusted = self.trusted_proxies.load();
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

    /// Forgets buckets that are full again (run periodically: bounds memory to recent callers).
    pub fn sweep(&self) {
        for (bucket, _) in self.limiters.load().buckets.values() {
            bucket.retain_recent();
            bucket.shrink_to_fit();
        }
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
        let limits = RateLimits::new(&settings, &[]);
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

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let limits = RateLimits::new(&RateLimitSettings::default(), &["10.0.0.0/8".to_string()]);
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

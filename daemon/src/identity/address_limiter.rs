//! Token buckets for the unauthenticated endpoints whose requests cost something: registrations (a
//! row each), authorization requests naming a metadata-document URL (an outbound fetch each), and
//! passkey ceremonies and authorization flows (a row each until they expire). Each address has its
//! own bucket; registrations also share one global bucket, so many addresses together (a botnet, or
//! the 16 million loopback addresses of one host) are bounded too. Time is a parameter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Beyond this many tracked addresses, full buckets are forgotten first.
const MAX_TRACKED: usize = 100_000;

/// A bucket's size and refill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub burst: f64,
    pub refill_per_second: f64,
}

impl Rate {
    /// The tokens a bucket holding `tokens` at `at` holds at `now`.
    fn refilled(self, tokens: f64, at: Instant, now: Instant) -> f64 {
        (tokens + now.saturating_duration_since(at).as_secs_f64() * self.refill_per_second).min(self.burst)
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This address used its share.
    Address,
    /// Every address together used the endpoint's share.
    Global,
}

pub struct AddressLimiter {
    per_address: Rate,
    global: Option<(Rate, Mutex<(f64, Instant)>)>,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl AddressLimiter {
    /// A burst of `burst` requests per address, refilled at `refill_per_second`.
    pub fn new(burst: f64, refill_per_second: f64) -> Self {
        AddressLimiter {
            per_address: Rate { burst, refill_per_second },
            global: None,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The same, plus one bucket all addresses share; it starts full at `now`.
    pub fn with_global(self, global: Rate, now: Instant) -> Self {
        AddressLimiter { global: Some((global, Mutex::new((global.burst, now)))), ..self }
    }

    /// Dynamic registration: 10 in a burst per address, then one every 6 s; and 50 in a burst from
    /// all addresses together, then one a second.
    pub fn for_registrations(now: Instant) -> Self {
        Self::new(10.0, 1.0 / 6.0).with_global(Rate { burst: 50.0, refill_per_second: 1.0 }, now)
    }

    /// Metadata-document fetches: 10 in a burst per address, then one every 6 s.
    pub fn for_metadata_fetches() -> Self {
        Self::new(10.0, 1.0 / 6.0)
    }

    /// Passkey ceremonies and authorization flows: 30 in a burst, then one a second.
    pub fn for_flows() -> Self {
        Self::new(30.0, 1.0)
    }

    /// Takes one token from `address`'s bucket if there is one.
    pub fn allow(&self, address: IpAddr, now: Instant) -> bool {
        self.check(address, now).is_ok()
    }

    /// Takes one token from `address`'s bucket and one from the global bucket, or none when either
    /// is empty (a refused request costs the address nothing, so a flood from others does not drain
    /// a real client's own share).
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Refusal> {
        let rate = self.per_address;
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > MAX_TRACKED {
            buckets.retain(|_, (tokens, at)| rate.refilled(*tokens, *at, now) < rate.burst);
        }
        let (tokens, at) = buckets.entry(address).or_insert((rate.burst, now));
        *tokens = rate.refilled(*tokens, *at, now);
        *at = now;
        if *tokens < 1.0 {
            return Err(Refusal::Address);
        }
        if let Some((global_rate, global)) = &self.global {
            let mut global = global.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let (global_tokens, global_at) = &mut *global;
            *global_tokens = global_rate.refilled(*global_tokens, *global_at, now);
            *global_at = now;
            if *global_tokens < 1.0 {
                return Err(Refusal::Global);
            }
            *global_tokens -= 1.0;
        }
        *tokens -= 1.0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_a_slow_refill_per_address() {
        let start = Instant::now();
        let limiter = AddressLimiter::for_metadata_fetches();
        let address = IpAddr::from([10, 0, 0, 1]);
        let allowed = (0..20).filter(|_| limiter.allow(address, start)).count();
        assert_eq!(allowed, 10, "a burst of ten");
        assert!(!limiter.allow(address, start + Duration::from_secs(1)), "one second refills less than one");
        assert!(limiter.allow(address, start + Duration::from_secs(7)), "six seconds refill one");
        assert!(limiter.allow(IpAddr::from([10, 0, 0, 2]), start), "another address has its own bucket");
        let flows = AddressLimiter::for_flows();
        assert_eq!((0..40).filter(|_| flows.allow(address, start)).count(), 30, "flows: a burst of thirty");
    }

    #[test]
    fn registrations_from_many_addresses_share_a_global_bound() {
        let start = Instant::now();
        let limiter = AddressLimiter::for_registrations(start);
        let mut outcomes = Vec::new();
        // 100 addresses, 10 each, all at once: what filled the 1,000-client cap in 2 s before.
        for host in 0..100u8 {
            for _ in 0..10 {
                outcomes.push(limiter.check(IpAddr::from([127, 0, 1, host]), start));
            }
        }
        let allowed = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(allowed, 50, "the global burst bounds the flood");
        assert!(outcomes.contains(&Err(Refusal::Global)), "refusals name the global bucket");
        let real_client = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(limiter.check(real_client, start), Err(Refusal::Global), "while the global bucket is empty");
        assert_eq!(
            limiter.check(real_client, start + Duration::from_millis(1_100)),
            Ok(()),
            "a second later the global bucket has refilled one, and the refused attempt cost this address nothing"
        );
        let after = start + Duration::from_secs(1_000);
        let allowed = (0..100).filter(|_| limiter.check(IpAddr::from([127, 0, 2, 1]), after).is_ok()).count();
        assert_eq!(allowed, 10, "the per-address bound still holds once the global bucket is full again");
    }
}

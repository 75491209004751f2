//! Per-address token buckets for the unauthenticated endpoints whose requests cost something:
//! registrations (a row each), authorization requests naming a metadata-document URL (an outbound
//! fetch each), and passkey ceremonies and authorization flows (a row each until they expire).
//! Time is a parameter.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Beyond this many tracked addresses, full buckets are forgotten first.
const MAX_TRACKED: usize = 100_000;

pub struct AddressLimiter {
    burst: f64,
    refill_per_second: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl AddressLimiter {
    /// A burst of `burst` requests per address, refilled at `refill_per_second`.
    pub fn new(burst: f64, refill_per_second: f64) -> Self {
        AddressLimiter { burst, refill_per_second, buckets: Mutex::new(HashMap::new()) }
    }

    /// Dynamic registration and metadata-document fetches: 10 in a burst, then one every 6 s.
    pub fn for_registrations() -> Self {
        Self::new(10.0, 1.0 / 6.0)
    }

    /// Passkey ceremonies and authorization flows: 30 in a burst, then one a second.
    pub fn for_flows() -> Self {
        Self::new(30.0, 1.0)
    }

    /// Takes one token from `address`'s bucket if there is one.
    pub fn allow(&self, address: IpAddr, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > MAX_TRACKED {
            let (burst, refill) = (self.burst, self.refill_per_second);
            buckets.retain(|_, (tokens, at)| *tokens + now.duration_since(*at).as_secs_f64() * refill < burst);
        }
        let (tokens, at) = buckets.entry(address).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.refill_per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_a_slow_refill_per_address() {
        let limiter = AddressLimiter::for_registrations();
        let address = IpAddr::from([10, 0, 0, 1]);
        let start = Instant::now();
        let allowed = (0..20).filter(|_| limiter.allow(address, start)).count();
        assert_eq!(allowed, 10, "a burst of ten");
        assert!(!limiter.allow(address, start + std::time::Duration::from_secs(1)), "one second refills less than one");
        assert!(limiter.allow(address, start + std::time::Duration::from_secs(7)), "six seconds refill one");
        assert!(limiter.allow(IpAddr::from([10, 0, 0, 2]), start), "another address has its own bucket");
        let flows = AddressLimiter::for_flows();
        assert_eq!((0..40).filter(|_| flows.allow(address, start)).count(), 30, "flows: a burst of thirty");
    }
}

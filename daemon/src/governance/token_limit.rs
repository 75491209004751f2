//! Tokens per minute per principal for AI requests (`rate_limits.tokens_per_minute`, times the
//! tier's multiplier): a token bucket that a request draws its estimate from (input counted
//! locally plus the output it may produce) before it goes upstream, and that is corrected with
//! the real usage when it ends, so a caller who asks for large `max_tokens` but gets short answers
//! is not throttled for tokens it never used.
//!
//! Time is a parameter (`Instant`), so the tests run without sleeping.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many buckets may exist before idle full ones are dropped.
const SWEEP_AT: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Tokens available; negative after a request used more than it reserved.
    available: f64,
    at: Instant,
}

/// The buckets of one compiled `rate_limits`; the snapshot carries it over across reloads that
/// do not change the limit.
pub struct TokenLimits {
    /// Base tokens per minute, before the tier multiplier.
    per_minute: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// What a request took from its bucket, returned when it settles.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenReservation {
    key: String,
    capacity: f64,
    reserved: u64,
}

impl TokenLimits {
    pub fn new(per_minute: u64) -> Self {
        TokenLimits { per_minute: per_minute as f64, buckets: Mutex::new(HashMap::new()) }
    }

    pub fn per_minute(&self) -> u64 {
        self.per_minute as u64
    }

    /// Takes `estimate` tokens from `key`'s bucket (capacity: a minute's worth at `multiplier`),
    /// or says how long until they are there. A request larger than a whole minute's worth
    /// passes when the bucket is full, so it is slowed, never refused for ever.
    pub fn reserve(
        &self,
        key: &str,
        multiplier: f64,
        estimate: u64,
        now: Instant,
    ) -> Result<TokenReservation, Duration> {
        let capacity = (self.per_minute * multiplier).max(1.0);
        let rate_per_second = capacity / 60.0;
        let mut buckets = self.lock();
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, bucket| refilled(*bucket, capacity, rate_per_second, now) < capacity);
        }
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket { available: capacity, at: now });
        let available = refilled(*bucket, capacity, rate_per_second, now);
        let needed = (estimate as f64).min(capacity);
        if available < needed {
            let wait = (needed - available) / rate_per_second;
            *bucket = Bucket { available, at: now };
            return Err(Duration::from_secs_f64(wait.clamp(0.001, 3_600.0)));
        }
        *bucket = Bucket { available: available - estimate as f64, at: now };
        Ok(TokenReservation { key: key.to_string(), capacity, reserved: estimate })
    }

    /// Corrects the bucket with the tokens the request really used: unused ones go back, an
    /// excess is owed (the bucket goes below zero and refills from there).
    pub fn settle(&self, reservation: TokenReservation, used: u64, now: Instant) {
        let rate_per_second = reservation.capacity / 60.0;
        let mut buckets = self.lock();
        if let Some(bucket) = buckets.get_mut(&reservation.key) {
            let available = refilled(*bucket, reservation.capacity, rate_per_second, now);
            let correction = reservation.reserved as f64 - used as f64;
            bucket.available = (available + correction).min(reservation.capacity);
            bucket.at = now;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Bucket>> {
        // Every update is one assignment: a poisoned lock still holds consistent buckets.
        self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn refilled(bucket: Bucket, capacity: f64, rate_per_second: f64, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.available + elapsed * rate_per_second).min(capacity)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_minute_of_tokens_then_the_rate_with_the_tier_multiplier() {
        let limits = TokenLimits::new(6_000);
        let start = Instant::now();
        limits.reserve("alice", 1.0, 6_000, start).expect("a full minute's worth at once");
        let wait = limits.reserve("alice", 1.0, 100, start).expect_err("then empty");
        assert_eq!(wait.as_millis(), 1_000, "100 tokens at 100 a second");
        limits.reserve("alice", 1.0, 100, start + Duration::from_secs(1)).expect("refilled after a second");
        limits.reserve("admin", 10.0, 60_000, start).expect("a tier multiplier of 10 holds ten times as much");
    }

    #[test]
    fn settling_returns_what_was_not_used_and_owes_what_was_exceeded() {
        let limits = TokenLimits::new(1_000);
        let start = Instant::now();
        let held = limits.reserve("bob", 1.0, 900, start).unwrap();
        limits.settle(held, 100, start);
        limits.reserve("bob", 1.0, 900, start).expect("800 unused tokens came back");
        let limits = TokenLimits::new(1_000);
        let held = limits.reserve("carol", 1.0, 100, start).unwrap();
        limits.settle(held, 1_000, start);
        assert!(limits.reserve("carol", 1.0, 1, start).is_err(), "the excess is owed before anything more");
    }

    #[test]
    fn a_request_larger_than_a_minute_waits_for_a_full_bucket_instead_of_being_refused_for_ever() {
        let limits = TokenLimits::new(1_000);
        let start = Instant::now();
        limits.reserve("dave", 1.0, 5_000, start).expect("passes on a full bucket");
        assert!(limits.reserve("dave", 1.0, 5_000, start + Duration::from_secs(59)).is_err());
        assert!(
            limits.reserve("dave", 1.0, 5_000, start + Duration::from_secs(300)).is_ok(),
            "once the debt is repaid"
        );
    }
}

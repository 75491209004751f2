//! When a scheduled job runs next: its period plus jitter after a success, exponential backoff after
//! failures. Pure functions; the randomness is a parameter.

use std::time::Duration;

use rand::Rng;

use crate::mcp_server::backoff_delay;

/// The longest a failing job waits between attempts, unless its own period is longer: a forwarding
/// job whose sink was down for an hour resumes within five minutes of the sink's return.
pub const MAX_FAILURE_BACKOFF: Duration = Duration::from_secs(300);

/// The largest jitter fraction accepted: a run is never delayed by more than half a period.
pub const MAX_JITTER: f64 = 0.5;

/// A job that runs every `period`, each run delayed by up to `jitter × period` more so replicas
/// and jobs that share a period do not fire in step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Every {
    period: Duration,
    jitter: f64,
}

impl Every {
    /// `jitter` is clamped to `0..=MAX_JITTER`; a zero period becomes one second.
    pub fn new(period: Duration, jitter: f64) -> Every {
        let jitter = if jitter.is_finite() { jitter.clamp(0.0, MAX_JITTER) } else { 0.0 };
        Every { period: period.max(Duration::from_secs(1)), jitter }
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    /// The wait before the next run, after `consecutive_failures` failed runs in a row (0 after a
    /// success). Never shorter than the period after a success, so a job never runs more often
    /// than it was asked to.
    pub fn next_delay(&self, consecutive_failures: u32, rng: &mut impl Rng) -> Duration {
        if consecutive_failures == 0 {
            let extra = self.period.mul_f64(self.jitter * rng.random_range(0.0..1.0));
            return self.period + extra;
        }
        backoff_delay(self.period, self.period.max(MAX_FAILURE_BACKOFF), consecutive_failures.saturating_add(1), rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn after_a_success_the_delay_is_the_period_plus_at_most_its_jitter() {
        let mut rng = StdRng::seed_from_u64(7);
        for (period, jitter) in [(60, 0.0), (60, 0.1), (3600, 0.5), (5, 0.25)] {
            let every = Every::new(Duration::from_secs(period), jitter);
            let delays: Vec<Duration> = (0..2000).map(|_| every.next_delay(0, &mut rng)).collect();
            let (low, high) = (Duration::from_secs(period), Duration::from_secs(period).mul_f64(1.0 + jitter));
            assert!(delays.iter().all(|delay| *delay >= low && *delay <= high), "{period}s ±{jitter}: within bounds");
            if jitter > 0.0 {
                let spread =
                    delays.iter().max().copied().unwrap_or_default() - delays.iter().min().copied().unwrap_or_default();
                assert!(spread > (high - low) / 2, "{period}s ±{jitter}: the jitter spreads the runs ({spread:?})");
            }
        }
    }

    #[test]
    fn failures_back_off_exponentially_to_a_cap_and_a_success_resets() {
        let mut rng = StdRng::seed_from_u64(11);
        let every = Every::new(Duration::from_secs(5), 0.1);
        let approximately = |delay: Duration, expected: u64| {
            let expected = Duration::from_secs(expected);
            delay >= expected.mul_f64(0.8) && delay <= expected.mul_f64(1.2)
        };
        for (failures, expected) in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 160)] {
            let delay = every.next_delay(failures, &mut rng);
            assert!(approximately(delay, expected), "after {failures} failures about {expected}s, got {delay:?}");
        }
        for failures in [6, 10, 40, u32::MAX] {
            assert!(every.next_delay(failures, &mut rng) <= MAX_FAILURE_BACKOFF, "capped after {failures} failures");
        }
        assert!(every.next_delay(0, &mut rng) <= Duration::from_secs(5).mul_f64(1.1), "a success resets");
        let daily = Every::new(Duration::from_secs(86_400), 0.0);
        assert!(daily.next_delay(3, &mut rng) <= Duration::from_secs(86_400), "a long period is its own cap");
    }

    #[test]
    fn nonsense_settings_are_clamped() {
        let mut rng = StdRng::seed_from_u64(3);
        assert_eq!(Every::new(Duration::ZERO, 0.0).period(), Duration::from_secs(1), "no busy loop");
        for jitter in [f64::NAN, f64::INFINITY, -1.0, 9.0] {
            let delay = Every::new(Duration::from_secs(10), jitter).next_delay(0, &mut rng);
            assert!(delay >= Duration::from_secs(10) && delay <= Duration::from_secs(15), "{jitter}: {delay:?}");
        }
    }
}

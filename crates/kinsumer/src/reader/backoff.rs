//! Capped exponential backoff with full jitter.

use std::time::Duration;

use rand::Rng;

/// Delays for consecutive retries: `base × 2^attempt`, capped, with full jitter.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub(crate) fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            attempt: 0,
        }
    }

    /// The delay before the next retry; each call doubles the ceiling up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        let millis = ceiling.as_millis().max(1) as u64;
        // Full jitter, but never less than a quarter of the ceiling.
        Duration::from_millis(rand::rng().random_range(millis / 4..=millis))
    }

    /// How many retries in a row so far.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to the first delay after a success.
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut max_seen = Duration::ZERO;
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(d <= Duration::from_secs(2), "{d:?}");
            max_seen = max_seen.max(d);
        }
        assert!(max_seen >= Duration::from_millis(500), "{max_seen:?}");
        assert_eq!(b.attempts(), 20);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}

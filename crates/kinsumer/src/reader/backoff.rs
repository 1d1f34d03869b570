//! Capped exponential backoff with full jitter, and the readers' retry policy
//! built on it.

use std::time::Duration;

use rand::Rng;

use crate::error::ServiceErrorKind;

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

/// How long a shard reader waits before retrying a failed call, by what failed.
///
/// - A connection-level failure (`Transient`: a timeout, a reset or refused
///   connection, a 5xx) says nothing about load: the service may answer the
///   very next call. Those are retried at about the pace a healthy reader calls
///   anyway (`connection_cap`: the throttle delay when polling), so that after
///   an outage every reader notices within about one such interval that the
///   service is back.
/// - Anything else retryable (throttling, a resource in use) means the service
///   answered and asked for less: capped exponential backoff with jitter, up to
///   [`RetryPolicy::SLOW_CAP`].
///
/// One failure in a row or many make one episode ([`RetryPolicy::failures`]),
/// so that it is logged once; a success ([`RetryPolicy::reset`]) ends it.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    connection: Backoff,
    slow: Backoff,
    failures: u32,
}

impl RetryPolicy {
    /// The first delay of either kind (or `connection_cap`, if shorter).
    pub(crate) const BASE: Duration = Duration::from_millis(100);
    /// The longest delay after throttling and other answers that ask for less.
    pub(crate) const SLOW_CAP: Duration = Duration::from_secs(5);

    pub(crate) fn new(connection_cap: Duration) -> Self {
        RetryPolicy {
            connection: Backoff::new(Self::BASE.min(connection_cap), connection_cap),
            slow: Backoff::new(Self::BASE, Self::SLOW_CAP),
            failures: 0,
        }
    }

    /// The delay before retrying a call that failed with `kind`.
    pub(crate) fn next_delay(&mut self, kind: ServiceErrorKind) -> Duration {
        self.failures = self.failures.saturating_add(1);
        match kind {
            ServiceErrorKind::Transient => self.connection.next_delay(),
            _ => self.slow.next_delay(),
        }
    }

    /// Failures in a row so far (0: not in an episode of failures).
    pub(crate) fn failures(&self) -> u32 {
        self.failures
    }

    /// Back to the first delays after a success.
    pub(crate) fn reset(&mut self) {
        self.connection.reset();
        self.slow.reset();
        self.failures = 0;
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

    /// The longest of `n` delays in a row for failures of `kind`.
    fn longest(policy: &mut RetryPolicy, kind: ServiceErrorKind, n: usize) -> Duration {
        (0..n)
            .map(|_| policy.next_delay(kind))
            .max()
            .unwrap_or_default()
    }

    #[test]
    fn connection_failures_retry_at_about_the_throttle_delay_however_long_they_last() {
        let throttle = Duration::from_millis(250);
        let mut policy = RetryPolicy::new(throttle);
        // A long outage: never more than the cap, and the cap is reached.
        let delays: Vec<Duration> = (0..1000)
            .map(|_| policy.next_delay(ServiceErrorKind::Transient))
            .collect();
        assert!(delays.iter().all(|d| *d <= throttle), "{delays:?}");
        // Jittered, but never close to a busy loop.
        assert!(
            delays[10..].iter().all(|d| *d >= throttle / 5),
            "{delays:?}"
        );
        assert!(delays.iter().any(|d| *d > throttle / 2), "{delays:?}");
        // The first retry is quick.
        policy.reset();
        assert!(policy.next_delay(ServiceErrorKind::Transient) <= RetryPolicy::BASE);
    }

    #[test]
    fn throttling_backs_off_exponentially_to_the_slow_cap_with_jitter() {
        let mut policy = RetryPolicy::new(Duration::from_millis(250));
        let delays: Vec<Duration> = (0..200)
            .map(|_| policy.next_delay(ServiceErrorKind::Throttled))
            .collect();
        assert!(delays[0] <= RetryPolicy::BASE, "{delays:?}");
        assert!(
            delays.iter().all(|d| *d <= RetryPolicy::SLOW_CAP),
            "{delays:?}"
        );
        // Well past the connection cap, and jittered (not one fixed value).
        let late = &delays[20..];
        assert!(
            late.iter().all(|d| *d >= RetryPolicy::SLOW_CAP / 5),
            "{late:?}"
        );
        let distinct: std::collections::BTreeSet<_> = late.iter().collect();
        assert!(distinct.len() > 10, "{late:?}");
        // Other answers that ask for less back off the same way.
        let mut policy = RetryPolicy::new(Duration::from_millis(250));
        let longest = longest(&mut policy, ServiceErrorKind::ResourceInUse, 50);
        assert!(longest > Duration::from_secs(1), "{longest:?}");
    }

    #[test]
    fn each_kind_keeps_its_own_pace_within_one_episode() {
        let throttle = Duration::from_millis(200);
        let mut policy = RetryPolicy::new(throttle);
        longest(&mut policy, ServiceErrorKind::Throttled, 30);
        // A connection failure in the middle of throttling is still retried quickly.
        assert!(policy.next_delay(ServiceErrorKind::Transient) <= RetryPolicy::BASE);
        assert!(longest(&mut policy, ServiceErrorKind::Transient, 30) <= throttle);
        // And throttling keeps its long delays.
        assert!(policy.next_delay(ServiceErrorKind::Throttled) >= RetryPolicy::SLOW_CAP / 5);
        // One episode: logged once, counted throughout; a success ends it.
        assert_eq!(policy.failures(), 62);
        policy.reset();
        assert_eq!(policy.failures(), 0);
        assert!(policy.next_delay(ServiceErrorKind::Throttled) <= RetryPolicy::BASE);
    }
}

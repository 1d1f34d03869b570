//! The one wall clock of a consumer.
//!
//! It reads the system time once and then advances with `tokio::time`, so
//! `LastUpdate` values keep moving in tests that pause and advance tokio's time,
//! and stay in step with the system clock otherwise.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// A wall clock anchored at creation and driven by tokio's (pausable) time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    base_nanos: i64,
    base_instant: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let base_nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Clock {
            base_nanos,
            base_instant: Instant::now(),
        }
    }

    /// Now, in Unix nanoseconds.
    pub(crate) fn now_nanos(&self) -> i64 {
        let elapsed = i64::try_from(self.base_instant.elapsed().as_nanos()).unwrap_or(i64::MAX);
        self.base_nanos.saturating_add(elapsed)
    }
}

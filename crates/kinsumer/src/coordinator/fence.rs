//! Lease fencing by the local clock: records are handed out only while this
//! client can show, by its own clock, that its leases are still valid.
//!
//! A lease stays ours while our heartbeat is fresh: others judge us dead no
//! sooner than one lease duration after our last heartbeat was sent (less any
//! clock skew). So the fence is open until `last heartbeat sent + lease
//! duration - margin` (margin: a quarter lease, which also bounds the clock
//! skew tolerated between hosts). Once it has closed (a stall: GC, SIGSTOP, a
//! frozen VM, or heartbeats failing — noticed by the caller asking for a
//! record or by the first heartbeat after the lapse), it reopens only after a
//! heartbeat sent after the closing succeeded *and* a shard check started
//! after the closing re-read the leases, dropped those taken by others and
//! touched the rest — so nothing more is handed out from a shard that was lost
//! during the stall, nor from one whose takeover was decided during the stall
//! and lands later (the touch makes such a capture fail; see
//! `Coordinator::try_shard_check`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::Waker;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The fence shared by the heartbeat, the coordinator and the caller's end of delivery.
#[derive(Debug)]
pub(crate) struct Fence {
    base: Instant,
    /// Valid for `lease - margin` after a heartbeat was sent.
    validity: Duration,
    /// Open while now (ms since `base`) is before this.
    open_until: AtomicU64,
    /// Number of times the fence closed.
    closings: AtomicU64,
    /// The last closing that was re-validated.
    revalidated: AtomicU64,
    /// When the fence last closed (ms since `base`).
    closed_at: AtomicU64,
    /// When the last successful heartbeat was sent (ms since `base`).
    last_beat: AtomicU64,
    /// Wakes the coordinator to re-validate at once.
    pub(crate) closed: Notify,
    waker: Mutex<Option<Waker>>,
}

impl Fence {
    pub(crate) fn new(lease: Duration) -> Self {
        Fence {
            base: Instant::now(),
            validity: lease - lease / 4,
            open_until: AtomicU64::new(0),
            closings: AtomicU64::new(0),
            revalidated: AtomicU64::new(0),
            closed_at: AtomicU64::new(0),
            last_beat: AtomicU64::new(0),
            closed: Notify::new(),
            waker: Mutex::new(None),
        }
    }

    /// Now, in milliseconds since the fence was made.
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn validity_ms(&self) -> u64 {
        u64::try_from(self.validity.as_millis()).unwrap_or(u64::MAX)
    }

    /// True while records may be handed out.
    pub(crate) fn is_open(&self) -> bool {
        self.now_ms() < self.open_until.load(Ordering::Acquire)
    }

    /// Called by whoever finds the fence closed: records the closing once
    /// and asks the coordinator to re-validate.
    pub(crate) fn close(&self) {
        let closings = self.closings.load(Ordering::Acquire);
        if self.revalidated.load(Ordering::Acquire) == closings
            && self
                .closings
                .compare_exchange(closings, closings + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.closed_at.store(self.now_ms(), Ordering::Release);
            self.closed.notify_one();
        }
    }

    /// Registers the caller's waker, to be woken when the fence reopens.
    pub(crate) fn wait(&self, waker: &Waker) {
        let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(waker.clone());
    }

    /// A heartbeat sent at `sent_ms` succeeded.
    pub(crate) fn heartbeat(&self, sent_ms: u64) {
        self.last_beat.fetch_max(sent_ms, Ordering::AcqRel);
        let until = self.open_until.load(Ordering::Acquire);
        if until != 0 && sent_ms >= until {
            // The leases lapsed before this heartbeat was sent, even if nobody
            // asked for a record meanwhile: others may have taken them since,
            // so they must be re-validated rather than simply extended.
            self.close();
            return;
        }
        if self.revalidated.load(Ordering::Acquire) == self.closings.load(Ordering::Acquire) {
            self.open_until
                .fetch_max(sent_ms.saturating_add(self.validity_ms()), Ordering::AcqRel);
            self.wake();
        }
    }

    /// True while a closing waits to be re-validated by a shard check.
    pub(crate) fn is_revalidating(&self) -> bool {
        self.revalidated.load(Ordering::Acquire) < self.closings.load(Ordering::Acquire)
    }

    /// The closings counter and the time, taken at the start of a shard check.
    pub(crate) fn check_started(&self) -> (u64, u64) {
        (self.closings.load(Ordering::Acquire), self.now_ms())
    }

    /// A shard check that started at `started` finished and dropped every
    /// lease others hold: reopens the fence if that covers the last closing.
    pub(crate) fn check_finished(&self, (closings, started_ms): (u64, u64)) {
        let current = self.closings.load(Ordering::Acquire);
        let closed_at = self.closed_at.load(Ordering::Acquire);
        let beat = self.last_beat.load(Ordering::Acquire);
        if current == closings
            && self.revalidated.load(Ordering::Acquire) < current
            && started_ms >= closed_at
            && beat >= closed_at
        {
            self.revalidated.store(current, Ordering::Release);
            self.open_until
                .fetch_max(beat.saturating_add(self.validity_ms()), Ordering::AcqRel);
            self.wake();
        }
    }

    fn wake(&self) {
        let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = waker {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_with_heartbeats_and_after_a_stall_only_once_revalidated() {
        let fence = Fence::new(Duration::from_secs(2));
        assert!(!fence.is_open());
        fence.heartbeat(fence.now_ms());
        assert!(fence.is_open());
        tokio::time::advance(Duration::from_millis(1400)).await;
        assert!(fence.is_open());
        // A stall: no heartbeat for 5 s.
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!fence.is_open());
        fence.close();
        // A heartbeat alone does not reopen it.
        fence.heartbeat(fence.now_ms());
        assert!(!fence.is_open());
        // A check that started before the closing does not either.
        let early = (1, fence.now_ms() - 10);
        fence.check_finished(early);
        assert!(!fence.is_open());
        // A check that started after it does.
        let check = fence.check_started();
        fence.check_finished(check);
        assert!(fence.is_open());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lapse_nobody_noticed_is_revalidated_not_extended() {
        let fence = Fence::new(Duration::from_secs(2));
        fence.heartbeat(fence.now_ms());
        assert!(!fence.is_revalidating());
        // Heartbeats fail for longer than the validity; the caller does not
        // ask for records meanwhile, so nobody closes the fence.
        tokio::time::advance(Duration::from_secs(3)).await;
        fence.heartbeat(fence.now_ms());
        assert!(
            !fence.is_open(),
            "a heartbeat after a lapse does not reopen"
        );
        assert!(fence.is_revalidating());
        tokio::time::advance(Duration::from_millis(10)).await;
        let check = fence.check_started();
        fence.heartbeat(fence.now_ms());
        fence.check_finished(check);
        assert!(fence.is_open());
        assert!(!fence.is_revalidating());
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_overtaken_by_a_new_closing_does_not_reopen() {
        let fence = Fence::new(Duration::from_secs(2));
        fence.heartbeat(fence.now_ms());
        tokio::time::advance(Duration::from_secs(3)).await;
        fence.close();
        tokio::time::advance(Duration::from_millis(10)).await;
        fence.heartbeat(fence.now_ms());
        let check = fence.check_started();
        fence.check_finished(check);
        assert!(fence.is_open());
        tokio::time::advance(Duration::from_secs(3)).await;
        let check = fence.check_started();
        fence.close();
        fence.heartbeat(fence.now_ms());
        fence.check_finished(check);
        assert!(
            !fence.is_open(),
            "the check began before the second closing"
        );
    }
}

//! A shard's delivery cursor: the batches in flight and the checkpoint
//! watermark derived from them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::batch::BatchProgress;
use crate::record::{Position, ShardId};

/// One lease's view of delivery: batches sent, how far the caller got, and
/// whether the lease was revoked (then nothing more is handed out from it).
#[derive(Debug)]
pub(crate) struct ShardCursor {
    shard: ShardId,
    state: Mutex<CursorState>,
    revoked: AtomicBool,
}

#[derive(Debug)]
struct CursorState {
    in_flight: VecDeque<Arc<BatchProgress>>,
    /// The processed position so far (starts at the checkpoint).
    watermark: Option<Position>,
    /// The position of the last record read from the shard (where a restarted reader resumes).
    last_read: Option<Position>,
}

impl ShardCursor {
    /// A cursor for a lease whose checkpoint is `checkpoint`.
    pub(crate) fn new(shard: ShardId, checkpoint: Option<Position>) -> Self {
        ShardCursor {
            shard,
            state: Mutex::new(CursorState {
                in_flight: VecDeque::new(),
                watermark: checkpoint.clone(),
                last_read: checkpoint,
            }),
            revoked: AtomicBool::new(false),
        }
    }

    pub(crate) fn shard(&self) -> &ShardId {
        &self.shard
    }

    fn lock(&self) -> MutexGuard<'_, CursorState> {
        // A poisoned lock only means a panic elsewhere; the counters stay consistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a batch about to be sent, read up to `last_read`.
    pub(crate) fn track(&self, progress: Arc<BatchProgress>, last_read: Position) {
        let mut state = self.lock();
        state.in_flight.push_back(progress);
        state.last_read = Some(last_read);
    }

    /// Where a (re)started reader should continue.
    pub(crate) fn last_read(&self) -> Option<Position> {
        self.lock().last_read.clone()
    }

    /// The processed position: the last record marked done, where marking a
    /// record done also counts every earlier record of the shard.
    pub(crate) fn watermark(&self) -> Option<Position> {
        let mut state = self.lock();
        if let Some(j) = state.in_flight.iter().rposition(|b| b.done() > 0) {
            let batch = Arc::clone(&state.in_flight[j]);
            let done = batch.done();
            if let Some(position) = batch.position(done - 1) {
                state.watermark = Some(position);
            }
            let finished = if done >= batch.len() { j + 1 } else { j };
            state.in_flight.drain(..finished);
        }
        state.watermark.clone()
    }

    /// True when every record handed to the caller has been processed.
    pub(crate) fn is_quiescent(&self) -> bool {
        let state = self.lock();
        match state.in_flight.iter().rposition(|b| b.taken() > 0) {
            Some(j) => state.in_flight[j].done() >= state.in_flight[j].taken(),
            None => true,
        }
    }

    /// True when every record sent has been processed.
    pub(crate) fn is_drained(&self) -> bool {
        self.watermark();
        self.lock().in_flight.is_empty()
    }

    /// Stops handing out records of this lease.
    pub(crate) fn revoke(&self) {
        self.revoked.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_revoked(&self) -> bool {
        self.revoked.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::positions::PositionLog;
    use crate::record::SequenceNumber;

    fn batch(seqs: &[&str]) -> Arc<BatchProgress> {
        let mut log = PositionLog::with_capacity(seqs.len());
        for s in seqs {
            log.push(&SequenceNumber::new(*s), None);
        }
        Arc::new(BatchProgress::new(log))
    }

    fn at(s: &str) -> Option<Position> {
        Some(Position::after(SequenceNumber::new(s)))
    }

    #[test]
    fn watermark_follows_processed_records_across_batches() {
        let cursor = ShardCursor::new(ShardId::new("s"), at("5"));
        assert_eq!(cursor.watermark(), at("5"));
        let a = batch(&["10", "11", "12"]);
        let b = batch(&["20", "21"]);
        cursor.track(Arc::clone(&a), Position::after(SequenceNumber::new("12")));
        cursor.track(Arc::clone(&b), Position::after(SequenceNumber::new("21")));
        assert_eq!(cursor.watermark(), at("5"));
        a.set_taken(2);
        assert!(!cursor.is_quiescent());
        a.mark_done(2);
        assert!(cursor.is_quiescent());
        assert_eq!(cursor.watermark(), at("11"));
        a.mark_done(3);
        b.mark_done(1);
        assert_eq!(cursor.watermark(), at("20"));
        assert!(!cursor.is_drained());
        b.mark_done(2);
        assert!(cursor.is_drained());
        assert_eq!(cursor.watermark(), at("21"));
        assert_eq!(cursor.last_read(), at("21"));
    }

    #[test]
    fn acknowledging_a_later_batch_covers_earlier_ones() {
        let cursor = ShardCursor::new(ShardId::new("s"), None);
        let a = batch(&["1", "2"]);
        let b = batch(&["3", "4"]);
        cursor.track(Arc::clone(&a), Position::after(SequenceNumber::new("2")));
        cursor.track(Arc::clone(&b), Position::after(SequenceNumber::new("4")));
        b.mark_done(1);
        assert_eq!(cursor.watermark(), at("3"));
        // Done never moves backwards.
        b.mark_done(0);
        assert_eq!(cursor.watermark(), at("3"));
    }
}

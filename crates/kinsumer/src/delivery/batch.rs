//! A batch of records from one shard on its way to the caller, and the
//! progress counters the committer reads from it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::OwnedSemaphorePermit;

use super::cursor::ShardCursor;
use super::positions::PositionLog;
use crate::record::{Position, Record};

/// How far the caller got through one batch. Shared by the caller's side
/// (which bumps the counters once per record) and the committer.
#[derive(Debug)]
pub(crate) struct BatchProgress {
    positions: PositionLog,
    /// Records handed to the caller.
    taken: AtomicU32,
    /// Records processed (handed and finished, or acknowledged).
    done: AtomicU32,
}

impl BatchProgress {
    pub(crate) fn new(positions: PositionLog) -> Self {
        BatchProgress {
            positions,
            taken: AtomicU32::new(0),
            done: AtomicU32::new(0),
        }
    }

    pub(crate) fn len(&self) -> u32 {
        u32::try_from(self.positions.len()).unwrap_or(u32::MAX)
    }

    pub(crate) fn taken(&self) -> u32 {
        self.taken.load(Ordering::SeqCst)
    }

    pub(crate) fn set_taken(&self, n: u32) {
        self.taken.store(n, Ordering::SeqCst);
    }

    pub(crate) fn done(&self) -> u32 {
        self.done.load(Ordering::Acquire)
    }

    /// Marks the first `n` records processed (never moves backwards).
    pub(crate) fn mark_done(&self, n: u32) {
        self.done.fetch_max(n, Ordering::AcqRel);
    }

    /// The position of record `index`.
    pub(crate) fn position(&self, index: u32) -> Option<Position> {
        self.positions.get(index as usize)
    }
}

/// Acknowledges one record in manual mode (and with it every earlier record of its shard).
#[derive(Clone, Debug)]
pub(crate) struct AckToken {
    progress: Arc<BatchProgress>,
    index: u32,
}

impl AckToken {
    pub(crate) fn ack(&self) {
        self.progress.mark_done(self.index + 1);
    }
}

/// Records of one shard, fetched together, travelling to the caller.
#[derive(Debug)]
pub(crate) struct Batch {
    pub(crate) cursor: Arc<ShardCursor>,
    pub(crate) progress: Arc<BatchProgress>,
    records: std::vec::IntoIter<Record>,
    next_index: u32,
    pub(crate) retrieved: SystemTime,
    /// Buffer space this batch holds until the caller is through it.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Batch {
    pub(crate) fn new(
        cursor: Arc<ShardCursor>,
        progress: Arc<BatchProgress>,
        records: Vec<Record>,
        retrieved: SystemTime,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Self {
        Batch {
            cursor,
            progress,
            records: records.into_iter(),
            next_index: 0,
            retrieved,
            _permit: permit,
        }
    }

    /// The next record and its index, unless the shard was revoked meanwhile.
    /// Returns `None` at the end of the batch or when revoked.
    pub(crate) fn take_next(&mut self) -> Option<(Record, u32)> {
        let index = self.next_index;
        let record = self.records.next()?;
        // Announce the hand-out before checking for revocation: whoever revokes
        // then either sees it taken (and waits for it) or we see the revocation.
        self.progress.set_taken(index + 1);
        if self.cursor.is_revoked() {
            self.progress.set_taken(index);
            self.records = Vec::new().into_iter();
            return None;
        }
        self.next_index = index + 1;
        Some((record, index))
    }

    /// An acknowledgement token for record `index`.
    pub(crate) fn ack_token(&self, index: u32) -> AckToken {
        AckToken {
            progress: Arc::clone(&self.progress),
            index,
        }
    }
}

//! The two ends of delivery: readers send batches (waiting for buffer space),
//! the caller takes records one at a time.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

use super::batch::{Batch, BatchProgress};
use super::cursor::ShardCursor;
use crate::config::AckMode;
use crate::coordinator::fence::Fence;
use crate::error::Error;
use crate::record::Record;
use crate::stats::StatReceiver;

/// Creates the delivery pair for a buffer of `buffer_size` records.
pub(crate) fn channel(
    buffer_size: usize,
    mode: AckMode,
    stats: Arc<dyn StatReceiver>,
    fence: Arc<Fence>,
) -> (Sender, Receiver) {
    let buffer_size = buffer_size.clamp(1, Semaphore::MAX_PERMITS);
    // Every batch holds at least one permit, so the channel never holds more
    // batches than the buffer has records.
    let (batch_tx, batch_rx) = mpsc::channel(buffer_size);
    let (error_tx, error_rx) = mpsc::channel(16);
    let permits = Arc::new(Semaphore::new(buffer_size));
    (
        Sender {
            batches: batch_tx,
            errors: error_tx,
            permits,
            buffer_size,
        },
        Receiver {
            batches: batch_rx,
            errors: error_rx,
            current: None,
            pending: None,
            mode,
            stats,
            fence,
        },
    )
}

/// The readers' end: cloned into every reader and the coordinator.
#[derive(Clone, Debug)]
pub(crate) struct Sender {
    batches: mpsc::Sender<Batch>,
    errors: mpsc::Sender<Error>,
    permits: Arc<Semaphore>,
    buffer_size: usize,
}

impl Sender {
    /// Sends a batch, waiting for buffer space. Returns false if cancelled or
    /// the caller's end is gone.
    pub(crate) async fn send(
        &self,
        cursor: Arc<ShardCursor>,
        progress: Arc<BatchProgress>,
        records: Vec<Record>,
        retrieved: SystemTime,
        cancel: &CancellationToken,
    ) -> bool {
        let wanted = u32::try_from(records.len().min(self.buffer_size)).unwrap_or(u32::MAX);
        let permit = tokio::select! {
            permit = Arc::clone(&self.permits).acquire_many_owned(wanted) => match permit {
                Ok(p) => p,
                Err(_) => return false,
            },
            _ = cancel.cancelled() => return false,
        };
        let batch = Batch::new(cursor, progress, records, retrieved, Some(permit));
        tokio::select! {
            sent = self.batches.send(batch) => sent.is_ok(),
            _ = cancel.cancelled() => false,
        }
    }

    /// Reports a background failure to the caller (through `next()`).
    pub(crate) async fn report(&self, error: Error) {
        // Fails only when the caller's end is gone, and then nobody is left to tell.
        let _ = self.errors.send(error).await;
    }
}

/// The caller's end.
pub(crate) struct Receiver {
    batches: mpsc::Receiver<Batch>,
    errors: mpsc::Receiver<Error>,
    current: Option<Batch>,
    /// Automatic mode: the index (in `current`) of the last record handed out,
    /// which counts as processed when the caller comes back for the next one.
    pending: Option<u32>,
    mode: AckMode,
    stats: Arc<dyn StatReceiver>,
    /// Records are handed out only while the leases are valid by the local clock.
    fence: Arc<Fence>,
}

impl Receiver {
    /// Marks the last record handed out as processed (automatic mode).
    pub(crate) fn finish_pending(&mut self) {
        if let (Some(index), Some(batch)) = (self.pending.take(), &self.current) {
            batch.progress.mark_done(index + 1);
        }
    }

    /// The next record, an error from background work, or `None` once every
    /// sender is gone.
    pub(crate) fn poll_next_record(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Record, Error>>> {
        self.finish_pending();
        loop {
            if let Some(batch) = &mut self.current {
                if !self.fence.is_open() {
                    self.fence.close();
                    self.fence.wait(cx.waker());
                    if !self.fence.is_open() {
                        // Failures still come through while records are held back.
                        if let Poll::Ready(Some(error)) = self.errors.poll_recv(cx) {
                            return Poll::Ready(Some(Err(error)));
                        }
                        return Poll::Pending;
                    }
                }
                if let Some((mut record, index)) = batch.take_next() {
                    match self.mode {
                        AckMode::Auto => self.pending = Some(index),
                        AckMode::Manual => record.ack = Some(batch.ack_token(index)),
                    }
                    self.stats.record_delivered(
                        &record.shard_id,
                        record.approximate_arrival,
                        batch.retrieved,
                    );
                    return Poll::Ready(Some(Ok(record)));
                }
                self.current = None;
            }
            if let Poll::Ready(Some(error)) = self.errors.poll_recv(cx) {
                return Poll::Ready(Some(Err(error)));
            }
            match self.batches.poll_recv(cx) {
                Poll::Ready(Some(batch)) => {
                    if !batch.cursor.is_revoked() {
                        self.current = Some(batch);
                    }
                }
                Poll::Ready(None) => {
                    return match self.errors.poll_recv(cx) {
                        Poll::Ready(Some(error)) => Poll::Ready(Some(Err(error))),
                        Poll::Ready(None) => Poll::Ready(None),
                        Poll::Pending => Poll::Pending,
                    };
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

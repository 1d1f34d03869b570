//! A lease this client holds, and the state of its reader.

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::delivery::ShardCursor;
use crate::reader::backoff::Backoff;
use crate::record::Position;

/// Where a held lease is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Being read.
    Reading,
    /// The shard is closed and was read to its end; finished once the caller is through.
    Ended,
    /// Being given up: nothing more is handed out; released once the caller
    /// is through what it has, or at the deadline.
    Releasing { deadline: Instant },
}

/// A lease held by this client.
#[derive(Debug)]
pub(crate) struct HeldLease {
    pub(crate) cursor: Arc<ShardCursor>,
    pub(crate) phase: Phase,
    /// The running reader, if any.
    pub(crate) reader: Option<CancellationToken>,
    /// The position last written to the store.
    pub(crate) committed: Option<Position>,
    /// When a failed reader may be started again.
    pub(crate) restart_at: Option<Instant>,
    pub(crate) restarts: Backoff,
}

impl HeldLease {
    pub(crate) fn new(cursor: Arc<ShardCursor>, committed: Option<Position>) -> Self {
        HeldLease {
            cursor,
            phase: Phase::Reading,
            reader: None,
            committed,
            restart_at: None,
            restarts: Backoff::new(
                std::time::Duration::from_millis(200),
                std::time::Duration::from_secs(10),
            ),
        }
    }

    /// Stops handing out records and stops the reader.
    pub(crate) fn stop_reading(&mut self) {
        self.cursor.revoke();
        if let Some(cancel) = self.reader.take() {
            cancel.cancel();
        }
    }
}

//! What every shard reader shares: where to start, turning fetched records
//! (and KPL aggregates) into a batch for delivery, and pausing between retries.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::backoff::RetryPolicy;
use super::deagg::{deaggregate, is_aggregated, Deaggregated};
use super::ReaderContext;
use crate::delivery::{BatchProgress, PositionLog, ShardCursor};
use crate::error::{Error, ServiceError};
use crate::kinesis::{RawRecord, StartingPosition};
use crate::record::{Position, Record, ShardId};

/// SubscribeToShard may be called once a second per shard and consumer.
const SUBSCRIBE_INTERVAL: Duration = Duration::from_secs(1);

/// One shard's reader state, whatever the transport (polling or fan-out).
pub(crate) struct ReaderCore {
    pub(crate) ctx: ReaderContext,
    pub(crate) cursor: Arc<ShardCursor>,
    pub(crate) cancel: CancellationToken,
    pub(crate) shard: ShardId,
    /// How long to wait before retrying a failed call.
    pub(crate) backoff: RetryPolicy,
}

impl ReaderCore {
    pub(crate) fn new(
        ctx: ReaderContext,
        cursor: Arc<ShardCursor>,
        cancel: CancellationToken,
    ) -> Self {
        // A connection-level failure is retried at about the pace a healthy reader calls: the
        // throttle delay when polling, once a second (SubscribeToShard's limit) with fan-out.
        let connection_cap = match ctx.fan_out_consumer {
            Some(_) => ctx.config.throttle_delay.max(SUBSCRIBE_INTERVAL),
            None => ctx.config.throttle_delay,
        };
        ReaderCore {
            ctx,
            shard: cursor.shard().clone(),
            cursor,
            cancel,
            backoff: RetryPolicy::new(connection_cap),
        }
    }

    /// Where to (re)start: after the last record read, or inside an aggregate.
    pub(crate) fn starting_position(&self) -> (StartingPosition, Option<Position>) {
        match self.cursor.last_read() {
            None => (
                StartingPosition::Initial(self.ctx.config.initial_position),
                None,
            ),
            Some(p) if p.sub_sequence.is_none() => (StartingPosition::After(p.sequence), None),
            Some(p) => (StartingPosition::At(p.sequence.clone()), Some(p)),
        }
    }

    /// Turns a page into records (splitting KPL aggregates) and sends them as one batch.
    pub(crate) async fn deliver(
        &mut self,
        raw: Vec<RawRecord>,
        skip_through: Option<Position>,
    ) -> bool {
        let retrieved = SystemTime::now();
        let mut records = Vec::with_capacity(raw.len());
        let mut positions = PositionLog::with_capacity(raw.len());
        let mut last_read = None;
        for r in raw {
            last_read = Some(Position::after(r.sequence_number.clone()));
            self.split_record(r, skip_through.as_ref(), &mut records, &mut positions);
        }
        let Some(last_read) = last_read else {
            return true;
        };
        if records.is_empty() {
            // Everything was already processed (resumed inside an aggregate).
            return true;
        }
        debug!(records = records.len(), "batch fetched");
        let progress = Arc::new(BatchProgress::new(positions));
        self.cursor.track(Arc::clone(&progress), last_read);
        self.ctx
            .sender
            .send(
                Arc::clone(&self.cursor),
                progress,
                records,
                retrieved,
                &self.cancel,
            )
            .await
    }

    fn split_record(
        &self,
        raw: RawRecord,
        skip_through: Option<&Position>,
        records: &mut Vec<Record>,
        positions: &mut PositionLog,
    ) {
        if !self.ctx.config.deaggregate || !is_aggregated(&raw.data) {
            positions.push(&raw.sequence_number, None);
            records.push(self.plain(raw));
            return;
        }
        match deaggregate(raw.data.clone()) {
            Deaggregated::Plain(_) => {
                positions.push(&raw.sequence_number, None);
                records.push(self.plain(raw));
            }
            Deaggregated::Corrupt { reason, .. } => {
                warn!(shard = %self.shard, sequence = %raw.sequence_number, %reason,
                    "record has the KPL magic number but is not a valid aggregate; delivering it as a plain record");
                self.ctx.config.stats.corrupt_aggregate(&self.shard);
                positions.push(&raw.sequence_number, None);
                records.push(self.plain(raw));
            }
            Deaggregated::Aggregated(users) => {
                let count = users.len();
                for (i, user) in users.into_iter().enumerate() {
                    let sub = user.sub_sequence_number;
                    let processed = skip_through.is_some_and(|skip| {
                        skip.sequence == raw.sequence_number
                            && skip.sub_sequence.is_some_and(|s| sub <= s)
                    });
                    if processed {
                        continue;
                    }
                    // The last user record completes the Kinesis record.
                    let position_sub = if i + 1 == count { None } else { Some(sub) };
                    positions.push(&raw.sequence_number, position_sub);
                    records.push(Record {
                        data: user.data,
                        partition_key: user.partition_key.to_string(),
                        explicit_hash_key: user.explicit_hash_key.map(|k| k.to_string()),
                        sequence_number: raw.sequence_number.clone(),
                        sub_sequence_number: Some(sub),
                        shard_id: self.shard.clone(),
                        approximate_arrival: raw.approximate_arrival,
                        ack: None,
                    });
                }
            }
        }
    }

    /// A record handed out as Kinesis returned it (moving, not copying, its fields).
    fn plain(&self, raw: RawRecord) -> Record {
        Record {
            data: raw.data,
            partition_key: raw.partition_key,
            explicit_hash_key: None,
            sequence_number: raw.sequence_number,
            sub_sequence_number: None,
            shard_id: self.shard.clone(),
            approximate_arrival: raw.approximate_arrival,
            ack: None,
        }
    }

    /// Counts a retry of `operation` after `e`, logs the first of an episode,
    /// and waits as the retry policy says for `e`'s kind; false if cancelled.
    pub(crate) async fn retry_pause(&mut self, operation: &'static str, e: &ServiceError) -> bool {
        self.ctx.config.stats.retried(operation, Some(&self.shard));
        if self.backoff.failures() == 0 {
            warn!(shard = %self.shard, operation, error = %e, "call failed; retrying with backoff");
        }
        let delay = self.backoff.next_delay(e.kind);
        self.sleep_until(Instant::now() + delay).await
    }

    pub(crate) async fn sleep_until(&self, deadline: Instant) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep_until(deadline) => true,
        }
    }

    pub(crate) fn error(&self, operation: &'static str, source: ServiceError) -> Error {
        Error::Kinesis {
            operation,
            stream: self.ctx.stream.to_string(),
            shard: Some(self.shard.clone()),
            source,
        }
    }
}

//! The polling shard reader: GetRecords in a loop, one task per owned shard.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::backoff::Backoff;
use super::deagg::{deaggregate, is_aggregated, Deaggregated};
use crate::delivery::{BatchProgress, PositionLog, Sender, ShardCursor};
use crate::error::{Error, ServiceError, ServiceErrorKind};
use crate::kinesis::{KinesisTransport, RawRecord, StartingPosition};
use crate::record::{Position, Record, ShardId};
use crate::Config;

/// What a reader needs besides its shard.
#[derive(Clone)]
pub(crate) struct ReaderContext {
    pub(crate) stream: Arc<str>,
    pub(crate) transport: Arc<dyn KinesisTransport>,
    pub(crate) config: Arc<Config>,
    pub(crate) sender: Sender,
}

/// Why a reader stopped.
#[derive(Debug)]
pub(crate) enum ReaderExit {
    /// The shard is closed and every record was read (and sent).
    ShardEnd,
    /// Cancelled (lease given up, lost, or consumer stopping).
    Cancelled,
    /// A failure retrying cannot fix here; the coordinator decides.
    Failed(Error),
}

/// Reads `cursor`'s shard from where the cursor says until cancelled, the
/// shard ends, or a non-retryable failure.
pub(crate) async fn read_shard(
    ctx: ReaderContext,
    cursor: Arc<ShardCursor>,
    cancel: CancellationToken,
) -> ReaderExit {
    let shard = cursor.shard().clone();
    let mut reader = PollingReader {
        ctx,
        cursor,
        cancel,
        shard,
        backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(5)),
    };
    reader.run().await
}

struct PollingReader {
    ctx: ReaderContext,
    cursor: Arc<ShardCursor>,
    cancel: CancellationToken,
    shard: ShardId,
    backoff: Backoff,
}

impl PollingReader {
    async fn run(&mut self) -> ReaderExit {
        let mut iterator: Option<String> = None;
        // Inside a KPL aggregate, user records up to this position were already processed.
        let mut skip_through: Option<Position> = None;
        let mut next_call = Instant::now();
        loop {
            let it = match iterator.take() {
                Some(it) => it,
                None => {
                    let (from, skip) = self.starting_position();
                    skip_through = skip;
                    match self.call_shard_iterator(&from).await {
                        Ok(it) => it,
                        Err(exit) => return exit,
                    }
                }
            };
            if !self.sleep_until(next_call).await {
                return ReaderExit::Cancelled;
            }
            next_call = Instant::now() + self.ctx.config.throttle_delay;
            let call = self
                .ctx
                .transport
                .get_records(&it, self.ctx.config.max_records_per_call);
            let page = tokio::select! {
                _ = self.cancel.cancelled() => return ReaderExit::Cancelled,
                r = tokio::time::timeout(self.ctx.config.call_timeout, call) => match r {
                    Ok(r) => r,
                    Err(_) => Err(ServiceError::new(ServiceErrorKind::Transient, "GetRecords timed out")),
                },
            };
            let page = match page {
                Ok(page) => page,
                Err(e) if e.kind == ServiceErrorKind::ExpiredIterator => {
                    debug!(shard = %self.shard, "shard iterator expired; renewing it");
                    self.ctx
                        .config
                        .stats
                        .retried("GetRecords", Some(&self.shard));
                    continue;
                }
                Err(e) if e.is_retryable() => {
                    iterator = Some(it);
                    if !self.retry_pause("GetRecords", &e).await {
                        return ReaderExit::Cancelled;
                    }
                    continue;
                }
                Err(e) => return ReaderExit::Failed(self.error("GetRecords", e)),
            };
            self.backoff.reset();
            let lag = page
                .millis_behind_latest
                .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
            self.ctx
                .config
                .stats
                .records_fetched(&self.shard, page.records.len(), lag);
            if !page.records.is_empty() {
                let skip = skip_through.take();
                if !self.deliver(page.records, skip).await {
                    return ReaderExit::Cancelled;
                }
            }
            match page.next_iterator {
                Some(next) => iterator = Some(next),
                None => return ReaderExit::ShardEnd,
            }
        }
    }

    /// Where to (re)start: after the last record read, or inside an aggregate.
    fn starting_position(&self) -> (StartingPosition, Option<Position>) {
        match self.cursor.last_read() {
            None => (
                StartingPosition::Initial(self.ctx.config.initial_position),
                None,
            ),
            Some(p) if p.sub_sequence.is_none() => (StartingPosition::After(p.sequence), None),
            Some(p) => (StartingPosition::At(p.sequence.clone()), Some(p)),
        }
    }

    async fn call_shard_iterator(&mut self, from: &StartingPosition) -> Result<String, ReaderExit> {
        loop {
            let call = self
                .ctx
                .transport
                .shard_iterator(&self.ctx.stream, &self.shard, from);
            let result = tokio::select! {
                _ = self.cancel.cancelled() => return Err(ReaderExit::Cancelled),
                r = tokio::time::timeout(self.ctx.config.call_timeout, call) => match r {
                    Ok(r) => r,
                    Err(_) => Err(ServiceError::new(ServiceErrorKind::Transient, "GetShardIterator timed out")),
                },
            };
            match result {
                Ok(it) => return Ok(it),
                Err(e) if e.is_retryable() => {
                    if !self.retry_pause("GetShardIterator", &e).await {
                        return Err(ReaderExit::Cancelled);
                    }
                }
                Err(e) => return Err(ReaderExit::Failed(self.error("GetShardIterator", e))),
            }
        }
    }

    /// Turns a page into records (splitting KPL aggregates) and sends them as one batch.
    async fn deliver(&mut self, raw: Vec<RawRecord>, skip_through: Option<Position>) -> bool {
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

    async fn retry_pause(&mut self, operation: &'static str, e: &ServiceError) -> bool {
        self.ctx.config.stats.retried(operation, Some(&self.shard));
        if self.backoff.attempts() == 0 {
            warn!(shard = %self.shard, operation, error = %e, "call failed; retrying with backoff");
        }
        let delay = self.backoff.next_delay();
        self.sleep_until(Instant::now() + delay).await
    }

    async fn sleep_until(&self, deadline: Instant) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep_until(deadline) => true,
        }
    }

    fn error(&self, operation: &'static str, source: ServiceError) -> Error {
        Error::Kinesis {
            operation,
            stream: self.ctx.stream.to_string(),
            shard: Some(self.shard.clone()),
            source,
        }
    }
}

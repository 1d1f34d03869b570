//! The polling shard reader: GetRecords in a loop, one task per owned shard.

use std::time::Duration;

use tokio::time::Instant;
use tracing::debug;

use super::core::ReaderCore;
use super::ReaderExit;
use crate::error::{ServiceError, ServiceErrorKind};
use crate::kinesis::StartingPosition;
use crate::record::Position;

/// Reads the core's shard with GetRecords until cancelled, the shard ends, or a
/// non-retryable failure.
pub(crate) async fn read_shard(mut reader: ReaderCore) -> ReaderExit {
    reader.poll().await
}

impl ReaderCore {
    async fn poll(&mut self) -> ReaderExit {
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
}

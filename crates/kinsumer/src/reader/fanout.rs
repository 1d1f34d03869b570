//! The enhanced fan-out shard reader: SubscribeToShard, re-subscribing after
//! each subscription ends, until the shard ends or the lease goes.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tracing::{debug, warn};

use super::core::ReaderCore;
use super::ReaderExit;
use crate::error::{ServiceError, ServiceErrorKind};
use crate::kinesis::fanout::{Subscription, SubscriptionEvent};
use crate::kinesis::{RawRecord, StartingPosition};
use crate::record::{Position, SequenceNumber};

/// How a subscription ended.
enum SubscriptionEnd {
    /// The closed shard was read to its end.
    ShardEnd,
    /// The service ended it (AWS does after five minutes) or it went quiet:
    /// subscribe again, at once if it brought events, after a pause if not.
    Renew {
        /// Whether it delivered at least one event.
        productive: bool,
    },
    /// It failed with a retryable error: subscribe again after a pause.
    Retry(ServiceError),
    /// Cancelled, or a failure retrying cannot fix.
    Exit(ReaderExit),
}

/// Reads the core's shard through the fan-out consumer `consumer_arn` until
/// cancelled, the shard ends, or a non-retryable failure.
pub(crate) async fn read_shard(mut reader: ReaderCore, consumer_arn: Arc<str>) -> ReaderExit {
    let mut continuation: Option<SequenceNumber> = None;
    loop {
        let (from, skip_through) = resume_position(&reader, continuation.as_ref());
        let subscription = match subscribe(&mut reader, &consumer_arn, &from).await {
            Ok(subscription) => subscription,
            Err(exit) => return exit,
        };
        let end = reader
            .follow(subscription, &from, skip_through, &mut continuation)
            .await;
        match end {
            SubscriptionEnd::ShardEnd => return ReaderExit::ShardEnd,
            SubscriptionEnd::Renew { productive: true } => {
                debug!(shard = %reader.shard, "subscription ended; subscribing again");
            }
            SubscriptionEnd::Renew { productive: false } => {
                // A subscription that ends without an event must not turn into a busy loop.
                let e = ServiceError::new(
                    ServiceErrorKind::Transient,
                    "the subscription ended without an event",
                );
                if !reader.retry_pause("SubscribeToShard", &e).await {
                    return ReaderExit::Cancelled;
                }
            }
            SubscriptionEnd::Retry(e) => {
                if !reader.retry_pause("SubscribeToShard", &e).await {
                    return ReaderExit::Cancelled;
                }
            }
            SubscriptionEnd::Exit(exit) => return exit,
        }
    }
}

/// Where the next subscription starts: after the last record read (inside an
/// aggregate when it stopped there), else after the last continuation point,
/// else at the initial position.
fn resume_position(
    reader: &ReaderCore,
    continuation: Option<&SequenceNumber>,
) -> (StartingPosition, Option<Position>) {
    match (reader.cursor.last_read(), continuation) {
        (None, Some(c)) => (StartingPosition::After(c.clone()), None),
        _ => reader.starting_position(),
    }
}

/// Opens a subscription, retrying what heals (including `ResourceInUse`, which
/// AWS answers to a new subscription within 5 s of the previous one).
async fn subscribe(
    reader: &mut ReaderCore,
    consumer_arn: &str,
    from: &StartingPosition,
) -> Result<Subscription, ReaderExit> {
    loop {
        let call = reader
            .ctx
            .transport
            .subscribe_to_shard(consumer_arn, &reader.shard, from);
        let result = tokio::select! {
            _ = reader.cancel.cancelled() => return Err(ReaderExit::Cancelled),
            r = tokio::time::timeout(reader.ctx.config.call_timeout, call) => match r {
                Ok(r) => r,
                Err(_) => Err(ServiceError::new(ServiceErrorKind::Transient, "SubscribeToShard timed out")),
            },
        };
        match result {
            Ok(subscription) => return Ok(subscription),
            Err(e) if e.is_retryable() => {
                if !reader.retry_pause("SubscribeToShard", &e).await {
                    return Err(ReaderExit::Cancelled);
                }
            }
            Err(e) => return Err(ReaderExit::Failed(reader.error("SubscribeToShard", e))),
        }
    }
}

impl ReaderCore {
    /// Delivers a subscription's events until it ends.
    async fn follow(
        &mut self,
        mut subscription: Subscription,
        from: &StartingPosition,
        mut skip_through: Option<Position>,
        continuation: &mut Option<SequenceNumber>,
    ) -> SubscriptionEnd {
        let idle = self.subscription_idle_timeout();
        let mut children_announced = false;
        let mut productive = false;
        let mut skipped_before_start = 0usize;
        loop {
            let next = tokio::select! {
                _ = self.cancel.cancelled() => return SubscriptionEnd::Exit(ReaderExit::Cancelled),
                next = tokio::time::timeout(idle, subscription.next()) => next,
            };
            let event = match next {
                Err(_) => {
                    debug!(shard = %self.shard, ?idle, "no subscription event; subscribing again");
                    self.ctx
                        .config
                        .stats
                        .retried("SubscribeToShard", Some(&self.shard));
                    return SubscriptionEnd::Renew { productive };
                }
                Ok(None) if children_announced => return SubscriptionEnd::ShardEnd,
                Ok(None) => return SubscriptionEnd::Renew { productive },
                Ok(Some(Err(e))) if e.is_retryable() => return SubscriptionEnd::Retry(e),
                Ok(Some(Err(e))) => {
                    return SubscriptionEnd::Exit(ReaderExit::Failed(
                        self.error("SubscribeToShard", e),
                    ))
                }
                Ok(Some(Ok(event))) => event,
            };
            self.backoff.reset();
            productive = true;
            let SubscriptionEvent {
                mut records,
                continuation: next_continuation,
                millis_behind_latest,
                child_shards,
            } = event;
            let lag = millis_behind_latest
                .map(|ms| Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
            self.ctx
                .config
                .stats
                .records_fetched(&self.shard, records.len(), lag);
            // A service that ignores the requested start re-sends records already read.
            let before = records.len();
            records.retain(|r| !precedes_start(r, from));
            if records.len() < before && skipped_before_start == 0 {
                warn!(shard = %self.shard, skipped = before - records.len(),
                    "the subscription sent records before the requested start; skipping them");
            }
            skipped_before_start += before - records.len();
            if !records.is_empty() && !self.deliver(records, skip_through.take()).await {
                return SubscriptionEnd::Exit(ReaderExit::Cancelled);
            }
            let at_end = next_continuation.is_none();
            if let Some(c) = next_continuation {
                *continuation = Some(c);
            }
            if !child_shards.is_empty() {
                debug!(shard = %self.shard, children = ?child_shards, "shard closed; children announced");
                children_announced = true;
                if at_end {
                    return SubscriptionEnd::ShardEnd;
                }
            }
        }
    }

    /// How long a subscription may stay silent before it is presumed dead.
    /// AWS sends an event at least every few seconds, even without records.
    fn subscription_idle_timeout(&self) -> Duration {
        self.ctx.config.call_timeout * 3
    }
}

/// True for a record before where the subscription was asked to start.
fn precedes_start(record: &RawRecord, from: &StartingPosition) -> bool {
    match from {
        StartingPosition::Initial(_) => false,
        StartingPosition::After(sequence) => record.sequence_number <= *sequence,
        StartingPosition::At(sequence) => record.sequence_number < *sequence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::InitialPosition;

    fn raw(sequence: &str) -> RawRecord {
        RawRecord {
            data: bytes::Bytes::new(),
            partition_key: "k".into(),
            sequence_number: SequenceNumber::new(sequence),
            approximate_arrival: None,
        }
    }

    #[test]
    fn records_before_the_requested_start_are_recognised() {
        let five = SequenceNumber::new("5");
        let after = StartingPosition::After(five.clone());
        let at = StartingPosition::At(five);
        assert!(precedes_start(&raw("4"), &after));
        assert!(precedes_start(&raw("5"), &after));
        assert!(!precedes_start(&raw("6"), &after));
        assert!(!precedes_start(&raw("5"), &at));
        assert!(precedes_start(&raw("4"), &at));
        // Sequence numbers compare as numbers, not strings.
        assert!(!precedes_start(&raw("10"), &after));
        let initial = StartingPosition::Initial(InitialPosition::TrimHorizon);
        assert!(!precedes_start(&raw("1"), &initial));
    }
}

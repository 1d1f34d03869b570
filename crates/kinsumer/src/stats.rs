//! The stats receiver: how a consumer reports what it does, without logging it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::record::ShardId;

/// Receives the consumer's events. Every method has a no-op default, so an
/// implementation overrides only what it wants. Methods are called on hot paths:
/// keep them cheap and never block.
///
/// The first three are the Go library's `Checkpoint`, `EventsFromKinesis` and
/// `EventToClient`.
pub trait StatReceiver: Send + Sync + 'static {
    /// A checkpoint was written for `shard`.
    fn checkpoint(&self, _shard: &ShardId) {}
    /// `records` records were fetched from `shard`; `lag` is how far the shard's
    /// reader is behind its tip, where Kinesis reports it.
    fn records_fetched(&self, _shard: &ShardId, _records: usize, _lag: Option<Duration>) {}
    /// A record was handed to the caller; `arrival` is when Kinesis accepted it,
    /// `retrieved` when this client fetched it.
    fn record_delivered(
        &self,
        _shard: &ShardId,
        _arrival: Option<SystemTime>,
        _retrieved: SystemTime,
    ) {
    }
    /// This client took the lease of `shard`.
    fn lease_acquired(&self, _shard: &ShardId) {}
    /// This client gave the lease of `shard` up on purpose (rebalance or stop).
    fn lease_released(&self, _shard: &ShardId) {}
    /// This client found that another client holds the lease of `shard`, and stopped reading it.
    fn lease_lost(&self, _shard: &ShardId) {}
    /// `shard` was read to its end and marked finished.
    fn shard_finished(&self, _shard: &ShardId) {}
    /// A call failed and will be retried; `operation` names the call.
    fn retried(&self, _operation: &'static str, _shard: Option<&ShardId>) {}
    /// A record looked like a KPL aggregate but could not be decoded; it was
    /// delivered as a plain record.
    fn corrupt_aggregate(&self, _shard: &ShardId) {}
}

/// The default receiver: ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopStats;

impl StatReceiver for NoopStats {}

/// A receiver that feeds the [`metrics`] crate, with series named `kinsumer_*`
/// and labelled by `stream` and `shard`.
///
/// Install any `metrics` recorder (e.g. a Prometheus exporter) to collect them.
#[derive(Debug, Clone)]
pub struct MetricsStats {
    stream: Arc<str>,
}

impl MetricsStats {
    /// A receiver that labels every series with `stream`.
    pub fn new(stream: impl AsRef<str>) -> Self {
        MetricsStats {
            stream: Arc::from(stream.as_ref()),
        }
    }

    fn labels(&self, shard: &ShardId) -> [(&'static str, String); 2] {
        [
            ("stream", self.stream.to_string()),
            ("shard", shard.to_string()),
        ]
    }
}

impl StatReceiver for MetricsStats {
    fn checkpoint(&self, shard: &ShardId) {
        metrics::counter!("kinsumer_checkpoints_total", &self.labels(shard)).increment(1);
    }

    fn records_fetched(&self, shard: &ShardId, records: usize, lag: Option<Duration>) {
        let labels = self.labels(shard);
        metrics::counter!("kinsumer_records_fetched_total", &labels).increment(records as u64);
        if let Some(lag) = lag {
            metrics::gauge!("kinsumer_millis_behind_latest", &labels).set(lag.as_millis() as f64);
        }
    }

    fn record_delivered(
        &self,
        shard: &ShardId,
        arrival: Option<SystemTime>,
        _retrieved: SystemTime,
    ) {
        let labels = self.labels(shard);
        metrics::counter!("kinsumer_records_delivered_total", &labels).increment(1);
        if let Some(age) = arrival.and_then(|a| SystemTime::now().duration_since(a).ok()) {
            metrics::histogram!("kinsumer_record_age_seconds", &labels).record(age.as_secs_f64());
        }
    }

    fn lease_acquired(&self, shard: &ShardId) {
        metrics::counter!("kinsumer_leases_acquired_total", &self.labels(shard)).increment(1);
        metrics::gauge!("kinsumer_lease_owned", &self.labels(shard)).set(1.0);
    }

    fn lease_released(&self, shard: &ShardId) {
        metrics::counter!("kinsumer_leases_released_total", &self.labels(shard)).increment(1);
        metrics::gauge!("kinsumer_lease_owned", &self.labels(shard)).set(0.0);
    }

    fn lease_lost(&self, shard: &ShardId) {
        metrics::counter!("kinsumer_leases_lost_total", &self.labels(shard)).increment(1);
        metrics::gauge!("kinsumer_lease_owned", &self.labels(shard)).set(0.0);
    }

    fn shard_finished(&self, shard: &ShardId) {
        metrics::counter!("kinsumer_shards_finished_total", &self.labels(shard)).increment(1);
    }

    fn retried(&self, operation: &'static str, _shard: Option<&ShardId>) {
        metrics::counter!("kinsumer_retries_total", "stream" => self.stream.to_string(), "operation" => operation)
            .increment(1);
    }

    fn corrupt_aggregate(&self, shard: &ShardId) {
        metrics::counter!("kinsumer_corrupt_aggregates_total", &self.labels(shard)).increment(1);
    }
}

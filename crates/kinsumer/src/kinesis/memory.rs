//! An in-memory Kinesis stream: for the embedded demo, benchmarks, and tests
//! of code that consumes records, with failures that can be injected.
//!
//! Shards hash partition keys with MD5 as Kinesis does; splits and merges
//! close parents and create children with parent links.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::fanout::{ConsumerDescription, ConsumerStatus, Subscription, SubscriptionEvent};
use super::{
    hash_key, KinesisTransport, PutEntry, PutOutcome, RawRecord, RecordsPage, ShardDescription,
    StartingPosition,
};
use crate::error::{ServiceError, ServiceErrorKind};
use crate::record::{InitialPosition, SequenceNumber, ShardId};

/// The operations failures can be injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// DescribeStreamSummary.
    DescribeStream,
    /// ListShards.
    ListShards,
    /// GetShardIterator.
    GetShardIterator,
    /// GetRecords.
    GetRecords,
    /// PutRecords.
    PutRecords,
    /// DescribeStreamConsumer (by name or ARN).
    DescribeStreamConsumer,
    /// RegisterStreamConsumer.
    RegisterStreamConsumer,
    /// SubscribeToShard.
    SubscribeToShard,
}

/// An in-memory Kinesis. Cheap to clone; clones share the streams.
#[derive(Clone, Default)]
pub struct MemoryKinesis {
    inner: Arc<Mutex<State>>,
    /// Woken when records are added or subscriptions must end.
    changed: Arc<Notify>,
}

#[derive(Default)]
struct State {
    streams: HashMap<String, Stream>,
    next_sequence: u128,
    faults: HashMap<Operation, VecDeque<ServiceErrorKind>>,
    calls: HashMap<Operation, u64>,
    consumers: Vec<ConsumerDescription>,
    subscriptions: HashMap<(String, ShardId), OpenSubscription>,
    next_subscription: u64,
    /// How long a subscription lasts (AWS: five minutes); `None` for the default.
    subscription_lifetime: Option<Duration>,
}

/// The subscription of one consumer to one shard that is open now.
struct OpenSubscription {
    id: u64,
    started: Instant,
}

/// AWS refuses a second subscription of a consumer to a shard within 5 s of the first.
const RESUBSCRIBE_GUARD: Duration = Duration::from_secs(5);
/// AWS ends every subscription after five minutes.
const SUBSCRIPTION_LIFETIME: Duration = Duration::from_secs(300);
/// The most records one subscription event carries.
const EVENT_RECORDS: usize = 1_000;

struct Stream {
    shards: Vec<Shard>,
    next_shard: usize,
}

struct Shard {
    description: ShardDescription,
    /// Inclusive hash key range.
    range: (u128, u128),
    records: Vec<RawRecord>,
}

/// Sequence numbers start high so they have the length of real ones.
const FIRST_SEQUENCE: u128 = 49_000_000_000_000_000_000_000_000_000_000_000;

impl MemoryKinesis {
    /// An empty Kinesis with no streams.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a stream of `shards` shards splitting the hash key space evenly
    /// (replacing any stream of that name).
    pub fn create_stream(&self, name: &str, shards: usize) {
        let shards = shards.max(1);
        let width = u128::MAX / shards as u128;
        let list = (0..shards)
            .map(|i| {
                let start = width * i as u128;
                let end = if i + 1 == shards {
                    u128::MAX
                } else {
                    start + width - 1
                };
                Shard::new(i, None, None, (start, end))
            })
            .collect();
        self.lock().streams.insert(
            name.to_string(),
            Stream {
                shards: list,
                next_shard: shards,
            },
        );
    }

    /// Deletes a stream.
    pub fn delete_stream(&self, name: &str) {
        self.lock().streams.remove(name);
    }

    /// Ids of the open shards of a stream.
    pub fn open_shards(&self, stream: &str) -> Vec<ShardId> {
        self.lock()
            .streams
            .get(stream)
            .map(|s| {
                s.shards
                    .iter()
                    .filter(|sh| sh.description.ending_sequence.is_none())
                    .map(|sh| sh.description.id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Splits an open shard at the middle of its hash range into two children.
    /// Returns the children's ids.
    pub fn split_shard(
        &self,
        stream: &str,
        shard: &ShardId,
    ) -> Result<(ShardId, ShardId), ServiceError> {
        let mut state = self.lock();
        let ending = SequenceNumber::new(state.next_sequence.max(FIRST_SEQUENCE).to_string());
        let s = state
            .streams
            .get_mut(stream)
            .ok_or_else(|| not_found(stream))?;
        let parent = s
            .shards
            .iter_mut()
            .find(|sh| &sh.description.id == shard && sh.description.ending_sequence.is_none())
            .ok_or_else(|| not_found(shard.as_str()))?;
        parent.description.ending_sequence = Some(ending);
        let (start, end) = parent.range;
        let mid = start + (end - start) / 2;
        let (a, b) = (s.next_shard, s.next_shard + 1);
        s.next_shard += 2;
        let left = Shard::new(a, Some(shard.clone()), None, (start, mid));
        let right = Shard::new(b, Some(shard.clone()), None, (mid + 1, end));
        let ids = (left.description.id.clone(), right.description.id.clone());
        s.shards.push(left);
        s.shards.push(right);
        drop(state);
        self.changed.notify_waiters();
        Ok(ids)
    }

    /// Merges two open shards with adjacent hash ranges. Returns the child's id.
    pub fn merge_shards(
        &self,
        stream: &str,
        first: &ShardId,
        second: &ShardId,
    ) -> Result<ShardId, ServiceError> {
        let mut state = self.lock();
        let ending = SequenceNumber::new(state.next_sequence.max(FIRST_SEQUENCE).to_string());
        let s = state
            .streams
            .get_mut(stream)
            .ok_or_else(|| not_found(stream))?;
        let range_of = |id: &ShardId, shards: &[Shard]| {
            shards
                .iter()
                .find(|sh| &sh.description.id == id && sh.description.ending_sequence.is_none())
                .map(|sh| sh.range)
        };
        let ra = range_of(first, &s.shards).ok_or_else(|| not_found(first.as_str()))?;
        let rb = range_of(second, &s.shards).ok_or_else(|| not_found(second.as_str()))?;
        let (lo, hi) = if ra.0 < rb.0 { (ra, rb) } else { (rb, ra) };
        if lo.1.checked_add(1) != Some(hi.0) {
            return Err(ServiceError::new(
                ServiceErrorKind::InvalidRequest,
                "shards to merge must have adjacent hash key ranges",
            ));
        }
        for sh in s.shards.iter_mut() {
            if &sh.description.id == first || &sh.description.id == second {
                sh.description.ending_sequence = Some(ending.clone());
            }
        }
        let child = Shard::new(
            s.next_shard,
            Some(first.clone()),
            Some(second.clone()),
            (lo.0, hi.1),
        );
        s.next_shard += 1;
        let id = child.description.id.clone();
        s.shards.push(child);
        drop(state);
        self.changed.notify_waiters();
        Ok(id)
    }

    /// Makes the next `count` calls of `operation` fail with `kind`.
    pub fn inject_failures(&self, operation: Operation, kind: ServiceErrorKind, count: usize) {
        let mut state = self.lock();
        let queue = state.faults.entry(operation).or_default();
        queue.extend(std::iter::repeat_n(kind, count));
    }

    /// How many calls of `operation` were made.
    pub fn calls(&self, operation: Operation) -> u64 {
        self.lock().calls.get(&operation).copied().unwrap_or(0)
    }

    /// Total records stored in a stream (all shards).
    pub fn record_count(&self, stream: &str) -> usize {
        self.lock()
            .streams
            .get(stream)
            .map(|s| s.shards.iter().map(|sh| sh.records.len()).sum())
            .unwrap_or(0)
    }

    /// The enhanced fan-out consumers registered on a stream.
    pub fn consumers(&self, stream: &str) -> Vec<ConsumerDescription> {
        let arn = stream_arn(stream);
        self.lock()
            .consumers
            .iter()
            .filter(|c| c.stream_arn == arn)
            .cloned()
            .collect()
    }

    /// Makes subscriptions opened from now on end after `lifetime` (AWS: five minutes).
    pub fn set_subscription_lifetime(&self, lifetime: Duration) {
        self.lock().subscription_lifetime = Some(lifetime);
    }

    /// Ends every open subscription now, as AWS does when one expires.
    pub fn end_subscriptions(&self) {
        self.lock().subscriptions.clear();
        self.changed.notify_waiters();
    }

    /// How many subscriptions are open now.
    pub fn open_subscriptions(&self) -> usize {
        self.lock().subscriptions.len()
    }

    fn begin(&self, operation: Operation) -> Result<MutexGuard<'_, State>, ServiceError> {
        let mut state = self.lock();
        *state.calls.entry(operation).or_default() += 1;
        if let Some(kind) = state.faults.get_mut(&operation).and_then(|q| q.pop_front()) {
            return Err(ServiceError::new(
                kind,
                format!("injected {kind:?} failure of {operation:?}"),
            ));
        }
        Ok(state)
    }
}

impl Shard {
    fn new(
        index: usize,
        parent: Option<ShardId>,
        adjacent: Option<ShardId>,
        range: (u128, u128),
    ) -> Self {
        Shard {
            description: ShardDescription {
                id: ShardId::new(format!("shardId-{index:012}")),
                parent,
                adjacent_parent: adjacent,
                hash_range: Some(range),
                ending_sequence: None,
            },
            range,
            records: Vec::new(),
        }
    }
}

impl Shard {
    /// The index of the first record at or after `from`.
    fn start_index(&self, from: &StartingPosition) -> usize {
        match from {
            StartingPosition::Initial(InitialPosition::TrimHorizon) => 0,
            StartingPosition::Initial(InitialPosition::Latest) => self.records.len(),
            StartingPosition::Initial(InitialPosition::AtTimestamp(t)) => self
                .records
                .iter()
                .position(|r| r.approximate_arrival.is_some_and(|a| a >= *t))
                .unwrap_or(self.records.len()),
            StartingPosition::After(seq) => {
                self.records.partition_point(|r| r.sequence_number <= *seq)
            }
            StartingPosition::At(seq) => self.records.partition_point(|r| r.sequence_number < *seq),
        }
    }

    /// The shards that follow this one.
    fn children(&self, shards: &[Shard]) -> Vec<ShardId> {
        shards
            .iter()
            .filter(|c| c.description.parents().any(|p| p == &self.description.id))
            .map(|c| c.description.id.clone())
            .collect()
    }
}

/// The ARN the in-memory Kinesis gives a stream.
fn stream_arn(stream: &str) -> String {
    format!("arn:aws:kinesis:us-east-1:000000000000:stream/{stream}")
}

fn not_found(what: &str) -> ServiceError {
    ServiceError::new(ServiceErrorKind::NotFound, format!("{what} not found"))
}

/// Iterators encode stream, shard index and record index.
fn encode_iterator(stream: &str, shard: usize, index: usize) -> String {
    format!("{shard}/{index}/{stream}")
}

fn decode_iterator(it: &str) -> Option<(&str, usize, usize)> {
    let mut parts = it.splitn(3, '/');
    let shard = parts.next()?.parse().ok()?;
    let index = parts.next()?.parse().ok()?;
    Some((parts.next()?, shard, index))
}

#[async_trait]
impl KinesisTransport for MemoryKinesis {
    async fn describe_stream(&self, stream: &str) -> Result<(), ServiceError> {
        let state = self.begin(Operation::DescribeStream)?;
        state
            .streams
            .get(stream)
            .map(|_| ())
            .ok_or_else(|| not_found(stream))
    }

    async fn list_shards(&self, stream: &str) -> Result<Vec<ShardDescription>, ServiceError> {
        let state = self.begin(Operation::ListShards)?;
        let s = state.streams.get(stream).ok_or_else(|| not_found(stream))?;
        Ok(s.shards.iter().map(|sh| sh.description.clone()).collect())
    }

    async fn shard_iterator(
        &self,
        stream: &str,
        shard: &ShardId,
        from: &StartingPosition,
    ) -> Result<String, ServiceError> {
        let state = self.begin(Operation::GetShardIterator)?;
        let s = state.streams.get(stream).ok_or_else(|| not_found(stream))?;
        let (i, sh) = s
            .shards
            .iter()
            .enumerate()
            .find(|(_, sh)| &sh.description.id == shard)
            .ok_or_else(|| not_found(shard.as_str()))?;
        Ok(encode_iterator(stream, i, sh.start_index(from)))
    }

    async fn get_records(&self, iterator: &str, limit: u32) -> Result<RecordsPage, ServiceError> {
        let state = self.begin(Operation::GetRecords)?;
        let (stream, shard, index) = decode_iterator(iterator).ok_or_else(|| {
            ServiceError::new(ServiceErrorKind::InvalidRequest, "malformed shard iterator")
        })?;
        let s = state.streams.get(stream).ok_or_else(|| not_found(stream))?;
        let sh = s.shards.get(shard).ok_or_else(|| not_found("shard"))?;
        let end = sh.records.len().min(index + limit as usize);
        let records = sh
            .records
            .get(index..end)
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        let closed = sh.description.ending_sequence.is_some();
        let at_end = end >= sh.records.len();
        let next_iterator = if closed && at_end {
            None
        } else {
            Some(encode_iterator(stream, shard, end))
        };
        let child_shards = if next_iterator.is_none() {
            sh.children(&s.shards)
        } else {
            Vec::new()
        };
        let behind = if at_end {
            0
        } else {
            sh.records
                .last()
                .zip(sh.records.get(end))
                .and_then(|(last, next)| {
                    last.approximate_arrival?
                        .duration_since(next.approximate_arrival?)
                        .ok()
                })
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        };
        Ok(RecordsPage {
            records,
            next_iterator,
            millis_behind_latest: Some(behind),
            child_shards,
        })
    }

    async fn put_records(
        &self,
        stream: &str,
        entries: Vec<PutEntry>,
    ) -> Result<Vec<PutOutcome>, ServiceError> {
        self.put_entries(stream, entries)
    }

    async fn consumer_by_name(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<Option<ConsumerDescription>, ServiceError> {
        let state = self.begin(Operation::DescribeStreamConsumer)?;
        if !state.streams.contains_key(stream) {
            return Err(not_found(stream));
        }
        let arn = stream_arn(stream);
        Ok(state
            .consumers
            .iter()
            .find(|c| c.stream_arn == arn && c.name == name)
            .cloned())
    }

    async fn consumer_by_arn(&self, arn: &str) -> Result<ConsumerDescription, ServiceError> {
        let mut state = self.begin(Operation::DescribeStreamConsumer)?;
        let consumer = state
            .consumers
            .iter_mut()
            .find(|c| c.arn == arn)
            .ok_or_else(|| not_found(arn))?;
        let found = consumer.clone();
        // A new consumer is CREATING when first described, ACTIVE afterwards.
        consumer.status = ConsumerStatus::Active;
        Ok(found)
    }

    async fn register_consumer(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<ConsumerDescription, ServiceError> {
        let mut state = self.begin(Operation::RegisterStreamConsumer)?;
        if !state.streams.contains_key(stream) {
            return Err(not_found(stream));
        }
        let stream_arn = stream_arn(stream);
        if state
            .consumers
            .iter()
            .any(|c| c.stream_arn == stream_arn && c.name == name)
        {
            return Err(ServiceError::new(
                ServiceErrorKind::ResourceInUse,
                format!("consumer {name} already exists"),
            ));
        }
        let consumer = ConsumerDescription {
            name: name.to_string(),
            arn: format!("{stream_arn}/consumer/{name}:{}", state.consumers.len() + 1),
            status: ConsumerStatus::Creating,
            stream_arn,
        };
        state.consumers.push(consumer.clone());
        Ok(consumer)
    }

    async fn subscribe_to_shard(
        &self,
        consumer_arn: &str,
        shard: &ShardId,
        from: &StartingPosition,
    ) -> Result<Subscription, ServiceError> {
        let mut state = self.begin(Operation::SubscribeToShard)?;
        let consumer = state
            .consumers
            .iter()
            .find(|c| c.arn == consumer_arn)
            .ok_or_else(|| not_found(consumer_arn))?;
        if consumer.status != ConsumerStatus::Active {
            return Err(ServiceError::new(
                ServiceErrorKind::ResourceInUse,
                format!("consumer {consumer_arn} is not ACTIVE"),
            ));
        }
        let stream = consumer
            .stream_arn
            .rsplit_once(":stream/")
            .map(|(_, name)| name.to_string())
            .unwrap_or_default();
        let s = state
            .streams
            .get(&stream)
            .ok_or_else(|| not_found(&stream))?;
        let (shard_index, sh) = s
            .shards
            .iter()
            .enumerate()
            .find(|(_, sh)| &sh.description.id == shard)
            .ok_or_else(|| not_found(shard.as_str()))?;
        let next = sh.start_index(from);
        let key = (consumer_arn.to_string(), shard.clone());
        let now = Instant::now();
        if state
            .subscriptions
            .get(&key)
            .is_some_and(|open| now.duration_since(open.started) < RESUBSCRIBE_GUARD)
        {
            return Err(ServiceError::new(
                ServiceErrorKind::ResourceInUse,
                format!(
                    "another subscription to {shard} by {consumer_arn} started less than 5 s ago"
                ),
            ));
        }
        state.next_subscription += 1;
        let id = state.next_subscription;
        // A newer subscription replaces the open one, which ends.
        state
            .subscriptions
            .insert(key.clone(), OpenSubscription { id, started: now });
        let ends_at = now + state.subscription_lifetime.unwrap_or(SUBSCRIPTION_LIFETIME);
        drop(state);
        self.changed.notify_waiters();
        let cursor = SubscriptionCursor {
            kinesis: self.clone(),
            stream,
            shard_index,
            next,
            key,
            id,
            ends_at,
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(
            cursor,
            |mut cursor| async move {
                let event = cursor.next_event().await?;
                Some((Ok(event), cursor))
            },
        )))
    }
}

/// Where one in-memory subscription is.
struct SubscriptionCursor {
    kinesis: MemoryKinesis,
    stream: String,
    shard_index: usize,
    next: usize,
    key: (String, ShardId),
    id: u64,
    ends_at: Instant,
    done: bool,
}

impl SubscriptionCursor {
    /// The next event; `None` when the subscription is over.
    async fn next_event(&mut self) -> Option<SubscriptionEvent> {
        loop {
            if self.done || Instant::now() >= self.ends_at {
                return None;
            }
            let notify = Arc::clone(&self.kinesis.changed);
            let changed = notify.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(event) = self.poll_event() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(self.ends_at) => return None,
            }
        }
    }

    /// An event if there is something to push; sets `done` when the subscription ends.
    fn poll_event(&mut self) -> Option<SubscriptionEvent> {
        let state = self.kinesis.lock();
        if state.subscriptions.get(&self.key).map(|s| s.id) != Some(self.id) {
            self.done = true;
            return None;
        }
        let Some(s) = state.streams.get(&self.stream) else {
            self.done = true;
            return None;
        };
        let sh = s.shards.get(self.shard_index)?;
        let end = sh.records.len().min(self.next + EVENT_RECORDS);
        let records = sh
            .records
            .get(self.next..end)
            .map(<[_]>::to_vec)
            .unwrap_or_default();
        self.next = end;
        let at_end = end >= sh.records.len();
        if at_end && sh.description.ending_sequence.is_some() {
            self.done = true;
            return Some(SubscriptionEvent {
                records,
                continuation: None,
                millis_behind_latest: Some(0),
                child_shards: sh.children(&s.shards),
            });
        }
        let last = records.last()?.sequence_number.clone();
        Some(SubscriptionEvent {
            records,
            continuation: Some(last),
            millis_behind_latest: Some(0),
            child_shards: Vec::new(),
        })
    }
}

impl Drop for SubscriptionCursor {
    fn drop(&mut self) {
        let mut state = self.kinesis.lock();
        if state.subscriptions.get(&self.key).map(|s| s.id) == Some(self.id) {
            state.subscriptions.remove(&self.key);
        }
    }
}

/// Convenience for tests and the demo: writes one record directly.
impl MemoryKinesis {
    fn put_entries(
        &self,
        stream: &str,
        entries: Vec<PutEntry>,
    ) -> Result<Vec<PutOutcome>, ServiceError> {
        let mut state = self.begin(Operation::PutRecords)?;
        let now = SystemTime::now();
        let State {
            streams,
            next_sequence,
            ..
        } = &mut *state;
        let s = streams.get_mut(stream).ok_or_else(|| not_found(stream))?;
        let mut outcomes = Vec::with_capacity(entries.len());
        for entry in entries {
            let key = hash_key(&entry.partition_key, entry.explicit_hash_key.as_deref());
            let Some(sh) = s.shards.iter_mut().find(|sh| {
                sh.description.ending_sequence.is_none() && sh.range.0 <= key && key <= sh.range.1
            }) else {
                outcomes.push(PutOutcome::Failed {
                    code: "InternalFailure".into(),
                    message: "no open shard covers the hash key".into(),
                });
                continue;
            };
            *next_sequence = (*next_sequence).max(FIRST_SEQUENCE) + 1;
            let sequence_number = SequenceNumber::new(next_sequence.to_string());
            sh.records.push(RawRecord {
                data: entry.data,
                partition_key: entry.partition_key,
                sequence_number: sequence_number.clone(),
                approximate_arrival: Some(now),
            });
            outcomes.push(PutOutcome::Written {
                shard_id: sh.description.id.clone(),
                sequence_number,
            });
        }
        drop(state);
        self.changed.notify_waiters();
        Ok(outcomes)
    }

    /// Puts one record; returns its shard and sequence number.
    pub fn put(
        &self,
        stream: &str,
        partition_key: &str,
        data: Bytes,
    ) -> Result<(ShardId, SequenceNumber), ServiceError> {
        let outcome = self.put_entries(
            stream,
            vec![PutEntry {
                partition_key: partition_key.to_string(),
                data,
                explicit_hash_key: None,
            }],
        )?;
        match outcome.into_iter().next() {
            Some(PutOutcome::Written {
                shard_id,
                sequence_number,
            }) => Ok((shard_id, sequence_number)),
            Some(PutOutcome::Failed { code, message }) => Err(ServiceError::new(
                ServiceErrorKind::Other,
                format!("{code}: {message}"),
            )),
            None => Err(ServiceError::new(ServiceErrorKind::Other, "no outcome")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn split_closes_parent_and_routes_new_records_to_children() {
        let k = MemoryKinesis::new();
        k.create_stream("s", 1);
        let parent = ShardId::new("shardId-000000000000");
        for i in 0..10 {
            k.put("s", &format!("k{i}"), Bytes::from("x")).expect("put");
        }
        let (a, b) = k.split_shard("s", &parent).expect("split");
        for i in 0..10 {
            let (shard, _) = k.put("s", &format!("k{i}"), Bytes::from("y")).expect("put");
            assert!(shard == a || shard == b);
        }
        let shards = k.list_shards("s").await.expect("list");
        assert_eq!(shards.len(), 3);
        assert!(shards[0].ending_sequence.is_some());
        assert_eq!(shards[1].parent.as_ref(), Some(&parent));
        let it = k
            .shard_iterator(
                "s",
                &parent,
                &StartingPosition::Initial(InitialPosition::TrimHorizon),
            )
            .await
            .expect("iterator");
        let page = k.get_records(&it, 100).await.expect("records");
        assert_eq!(page.records.len(), 10);
        assert!(page.next_iterator.is_none(), "closed shard read to its end");
        assert_eq!(page.child_shards, vec![a, b]);
    }

    #[tokio::test]
    async fn after_and_at_sequence_positions() {
        let k = MemoryKinesis::new();
        k.create_stream("s", 1);
        let shard = ShardId::new("shardId-000000000000");
        let seqs: Vec<SequenceNumber> = (0..5)
            .map(|i| k.put("s", "key", Bytes::from(vec![i])).expect("put").1)
            .collect();
        let read = |from: StartingPosition| {
            let k = k.clone();
            let shard = shard.clone();
            async move {
                let it = k
                    .shard_iterator("s", &shard, &from)
                    .await
                    .expect("iterator");
                let page = k.get_records(&it, 100).await.expect("records");
                page.records
                    .into_iter()
                    .map(|r| r.data[0])
                    .collect::<Vec<u8>>()
            }
        };
        assert_eq!(
            read(StartingPosition::After(seqs[1].clone())).await,
            vec![2, 3, 4]
        );
        assert_eq!(
            read(StartingPosition::At(seqs[1].clone())).await,
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            read(StartingPosition::Initial(InitialPosition::Latest)).await,
            Vec::<u8>::new()
        );
    }

    #[tokio::test]
    async fn injected_failures_come_first() {
        let k = MemoryKinesis::new();
        k.create_stream("s", 1);
        k.inject_failures(Operation::ListShards, ServiceErrorKind::Throttled, 2);
        assert_eq!(
            k.list_shards("s").await.map_err(|e| e.kind),
            Err(ServiceErrorKind::Throttled)
        );
        assert!(k.list_shards("s").await.is_err());
        assert!(k.list_shards("s").await.is_ok());
        assert_eq!(k.calls(Operation::ListShards), 3);
    }
}

//! Transport: the Kinesis operations the consumer needs, behind one narrow trait.
//!
//! [`aws::AwsKinesis`] talks to Kinesis through the AWS SDK; [`memory::MemoryKinesis`]
//! is an in-memory stream for the embedded demo and for users' tests.

pub mod aws;
pub mod fanout;
pub mod memory;
pub mod role;

use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{ServiceError, ServiceErrorKind};
use crate::record::{InitialPosition, SequenceNumber, ShardId};
use fanout::{ConsumerDescription, Subscription};

/// One shard as ListShards describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardDescription {
    /// The shard's id.
    pub id: ShardId,
    /// The shard it was split from, or the first of the two it was merged from.
    pub parent: Option<ShardId>,
    /// The second parent of a merge.
    pub adjacent_parent: Option<ShardId>,
    /// The inclusive range of 128-bit hash keys the shard serves, when known (ListShards
    /// reports it; the leader's cached shard list does not keep it).
    pub hash_range: Option<(u128, u128)>,
    /// Set once the shard is closed (split or merged away); no record is added after it.
    pub ending_sequence: Option<SequenceNumber>,
}

impl ShardDescription {
    /// The shard's parents still named (zero, one or two).
    pub fn parents(&self) -> impl Iterator<Item = &ShardId> {
        self.parent.iter().chain(self.adjacent_parent.iter())
    }
}

/// The 128-bit hash key Kinesis routes a record by: the explicit hash key when
/// given (a decimal number), else the MD5 of the partition key, big-endian.
pub fn hash_key(partition_key: &str, explicit_hash_key: Option<&str>) -> u128 {
    if let Some(key) = explicit_hash_key.and_then(|k| k.parse::<u128>().ok()) {
        return key;
    }
    use md5::{Digest, Md5};
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// Where a shard iterator starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartingPosition {
    /// The initial position of a shard without a checkpoint.
    Initial(InitialPosition),
    /// Just after this record (`AFTER_SEQUENCE_NUMBER`).
    After(SequenceNumber),
    /// At this record (`AT_SEQUENCE_NUMBER`), used to resume inside a KPL aggregate.
    At(SequenceNumber),
}

/// One record as GetRecords returns it.
#[derive(Clone, Debug)]
pub struct RawRecord {
    /// The payload (possibly a KPL aggregate).
    pub data: Bytes,
    /// The partition key.
    pub partition_key: String,
    /// The sequence number.
    pub sequence_number: SequenceNumber,
    /// When Kinesis accepted the record.
    pub approximate_arrival: Option<SystemTime>,
}

/// The answer to one GetRecords call.
#[derive(Clone, Debug, Default)]
pub struct RecordsPage {
    /// The records, in order.
    pub records: Vec<RawRecord>,
    /// The iterator for the next call; `None` once a closed shard is read to its end.
    pub next_iterator: Option<String>,
    /// How far behind the tip of the shard this page is, in milliseconds.
    pub millis_behind_latest: Option<i64>,
    /// The shards that follow a closed shard (reported by some services at its end).
    pub child_shards: Vec<ShardId>,
}

/// One record to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutEntry {
    /// The partition key, which picks the shard.
    pub partition_key: String,
    /// The payload.
    pub data: Bytes,
    /// A hash key that overrides the partition key's hash, if set.
    pub explicit_hash_key: Option<String>,
}

/// The outcome of one entry of a PutRecords call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// Written.
    Written {
        /// The shard it went to.
        shard_id: ShardId,
        /// Its sequence number.
        sequence_number: SequenceNumber,
    },
    /// Not written; `code` says why (e.g. `ProvisionedThroughputExceededException`).
    Failed {
        /// The error code.
        code: String,
        /// The error message.
        message: String,
    },
}

/// The Kinesis operations the consumer uses. Implementations classify their
/// failures into a [`ServiceError`] so that callers decide retry or give up by kind.
#[async_trait]
pub trait KinesisTransport: Send + Sync + 'static {
    /// Checks that the stream exists (DescribeStreamSummary).
    async fn describe_stream(&self, stream: &str) -> Result<(), ServiceError>;
    /// Every shard of the stream, open and closed, with parent links, following all pages.
    async fn list_shards(&self, stream: &str) -> Result<Vec<ShardDescription>, ServiceError>;
    /// A shard iterator starting at `from`.
    async fn shard_iterator(
        &self,
        stream: &str,
        shard: &ShardId,
        from: &StartingPosition,
    ) -> Result<String, ServiceError>;
    /// Up to `limit` records from `iterator`.
    async fn get_records(&self, iterator: &str, limit: u32) -> Result<RecordsPage, ServiceError>;
    /// Writes up to 500 records in one call; one outcome per entry, in order.
    async fn put_records(
        &self,
        stream: &str,
        entries: Vec<PutEntry>,
    ) -> Result<Vec<PutOutcome>, ServiceError>;

    /// The stream's enhanced fan-out consumer of this name, if registered
    /// (DescribeStreamConsumer by stream and name).
    async fn consumer_by_name(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<Option<ConsumerDescription>, ServiceError> {
        let _ = (stream, name);
        Err(fan_out_unsupported())
    }

    /// The enhanced fan-out consumer with this ARN (DescribeStreamConsumer).
    async fn consumer_by_arn(&self, arn: &str) -> Result<ConsumerDescription, ServiceError> {
        let _ = arn;
        Err(fan_out_unsupported())
    }

    /// Registers an enhanced fan-out consumer on the stream (RegisterStreamConsumer);
    /// `ResourceInUse` when one of that name exists.
    async fn register_consumer(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<ConsumerDescription, ServiceError> {
        let _ = (stream, name);
        Err(fan_out_unsupported())
    }

    /// Opens a SubscribeToShard subscription of `consumer_arn` to `shard` from `from`.
    async fn subscribe_to_shard(
        &self,
        consumer_arn: &str,
        shard: &ShardId,
        from: &StartingPosition,
    ) -> Result<Subscription, ServiceError> {
        let _ = (consumer_arn, shard, from);
        Err(fan_out_unsupported())
    }
}

/// What a transport without enhanced fan-out answers to its operations.
fn fan_out_unsupported() -> ServiceError {
    ServiceError::new(
        ServiceErrorKind::InvalidRequest,
        "this transport does not implement enhanced fan-out; use polling (the default read mode)",
    )
}

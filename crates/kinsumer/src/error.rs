//! The one error type of the crate, and the classified failure of an AWS call.

use std::fmt;
use std::time::Duration;

use crate::record::ShardId;

/// A shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, with the context needed to act on it.
///
/// The Go library's errors map as follows: `ErrRunTwice` → [`Error::RunTwice`],
/// `ErrNoStreamName` → [`Error::NoStreamName`], `ErrNoApplicationName` →
/// [`Error::NoApplicationName`], `ErrThisClientNotInDynamo` →
/// [`Error::ClientNotInTable`], `ErrNoShardsAssigned` → [`Error::NoShardsAssigned`],
/// `ErrStreamBusy` → [`Error::StreamBusy`], `ErrNoSuchStream` → [`Error::NoSuchStream`],
/// every `ErrConfigInvalid…` → [`Error::Config`]. `ErrNoKinesisInterface` and
/// `ErrNoDynamoInterface` cannot happen in Rust: the constructors take the clients by value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `run()` was called on a consumer that already ran.
    #[error("run() can only be called once on a Kinsumer; build a new one to run again")]
    RunTwice,
    /// The stream name is empty.
    #[error("need a Kinesis stream name; pass a non-empty stream name")]
    NoStreamName,
    /// The application name is empty.
    #[error(
        "need an application name for the DynamoDB table names; pass a non-empty application name"
    )]
    NoApplicationName,
    /// A name cannot be used (e.g. characters DynamoDB does not allow in table names).
    #[error("invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// Which name.
        what: &'static str,
        /// The name given.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// This client's row vanished from the clients table while it was running.
    #[error("this client ({client}) is not in the clients table {table}; was the table emptied or deleted while it ran?")]
    ClientNotInTable {
        /// The client id.
        client: String,
        /// The clients table.
        table: String,
    },
    /// Shards exist but none could be assigned (kept for parity with the Go library).
    #[error("the stream has shards, but none were assigned to this client")]
    NoShardsAssigned,
    /// The stream does not exist.
    #[error("Kinesis stream {stream:?} does not exist (check the name, region and account)")]
    NoSuchStream {
        /// The stream name.
        stream: String,
    },
    /// The stream is being created, deleted or resharded.
    #[error("Kinesis stream {stream:?} is busy (being created, updated or deleted); retry when it is ACTIVE")]
    StreamBusy {
        /// The stream name.
        stream: String,
    },
    /// The coordination tables are missing or not active.
    #[error("DynamoDB table(s) {} do not exist or are not ACTIVE; call create_required_tables() (CLI: --create-tables) first", tables.join(", "))]
    TablesMissing {
        /// The missing tables.
        tables: Vec<String>,
    },
    /// The enhanced fan-out consumer cannot be used.
    #[error("enhanced fan-out consumer {consumer} {problem}")]
    FanOutConsumer {
        /// The consumer's ARN (or name).
        consumer: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// An invalid configuration value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A Kinesis call failed.
    #[error(
        "Kinesis {operation} on stream {stream:?}{} failed: {source}",
        shard_suffix(shard)
    )]
    Kinesis {
        /// The API operation.
        operation: &'static str,
        /// The stream.
        stream: String,
        /// The shard, where the call was about one.
        shard: Option<ShardId>,
        /// The classified failure.
        source: ServiceError,
    },
    /// A DynamoDB call failed.
    #[error("DynamoDB {operation} on table {table:?} failed: {source}")]
    Store {
        /// The API operation.
        operation: &'static str,
        /// The table.
        table: String,
        /// The classified failure.
        source: ServiceError,
    },
    /// Some records of a batch publish could not be written after retries.
    #[error("{} of {total} records could not be written to stream {stream:?} (first: {})", failed.len(), failed.first().map(|f| f.message.as_str()).unwrap_or("-"))]
    PublishIncomplete {
        /// The stream.
        stream: String,
        /// How many records were given.
        total: usize,
        /// The records that were not written, by their index in the input.
        failed: Vec<FailedPut>,
    },
    /// A check `run()` makes before it starts (the stream, the tables, this
    /// client's first row) got no answer in time, or its connection failed
    /// (refused, reset, a 5xx): the endpoint, the region or the network is
    /// wrong, or the service is down.
    #[error("cannot reach {service}: {operation} on {resource} failed ({source}); check the endpoint URL, the region, and that the network (proxy, firewall, VPC endpoint) lets this host reach {service}")]
    Unreachable {
        /// `"Kinesis"` or `"DynamoDB"`.
        service: &'static str,
        /// The API operation.
        operation: &'static str,
        /// What the call was about, e.g. `stream "events"` or `table "app_clients"`.
        resource: String,
        /// The classified failure (`Transient`).
        source: ServiceError,
    },
    /// The consumer is not running (call `run()` first) or has stopped.
    #[error("the consumer is not running; call run() first")]
    NotRunning,
}

fn shard_suffix(shard: &Option<ShardId>) -> String {
    match shard {
        Some(s) => format!(", shard {s}"),
        None => String::new(),
    }
}

impl Error {
    /// True for failures that retrying cannot heal (missing stream or tables,
    /// access denied, bad configuration).
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::Kinesis { source, .. } | Error::Store { source, .. } => matches!(
                source.kind,
                ServiceErrorKind::NotFound | ServiceErrorKind::AccessDenied
            ),
            Error::NoSuchStream { .. }
            | Error::TablesMissing { .. }
            | Error::Config(_)
            | Error::ClientNotInTable { .. }
            | Error::NoStreamName
            | Error::NoApplicationName
            | Error::InvalidName { .. } => true,
            _ => false,
        }
    }
}

/// One record a batch publish could not write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedPut {
    /// Its index in the batch given to `publish_batch`.
    pub index: usize,
    /// The error code Kinesis returned.
    pub code: String,
    /// The error message Kinesis returned.
    pub message: String,
}

/// An invalid configuration value (the Go library's `ErrConfigInvalid…`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Throttle delay below 200 ms (Kinesis allows 5 reads per second per shard).
    #[error("throttle delay {0:?} is below the minimum of 200ms (preferably 250ms); use with_throttle_delay(Duration::from_millis(250))")]
    ThrottleDelay(Duration),
    /// Commit frequency is zero.
    #[error("commit frequency must be greater than zero; use with_commit_frequency(Duration::from_secs(1))")]
    CommitFrequency,
    /// Shard-check frequency is zero.
    #[error("shard-check frequency must be greater than zero; use with_shard_check_frequency(Duration::from_secs(1))")]
    ShardCheckFrequency,
    /// Leader-action frequency is zero or shorter than the shard-check frequency.
    #[error("leader-action frequency ({leader:?}) must be greater than zero and at least the shard-check frequency ({shard_check:?})")]
    LeaderActionFrequency {
        /// The leader-action frequency given.
        leader: Duration,
        /// The shard-check frequency.
        shard_check: Duration,
    },
    /// Buffer size is zero.
    #[error("buffer size must be at least 1 record; use with_buffer_size(100)")]
    BufferSize,
    /// DynamoDB read or write capacity is zero.
    #[error("DynamoDB read/write capacity cannot be 0; set with_dynamo_read_capacity(10) and with_dynamo_write_capacity(10), or use with_on_demand_billing()")]
    DynamoCapacity,
    /// DynamoDB waiter delay is zero.
    #[error("DynamoDB waiter delay must be greater than zero; use with_dynamo_waiter_delay(Duration::from_secs(3))")]
    DynamoWaiterDelay,
    /// Lease duration too short for the heartbeat to renew it.
    #[error("lease duration {lease:?} must be at least 300ms and at least the shard-check frequency ({shard_check:?}); use with_lease_duration(Duration::from_secs(2))")]
    LeaseDuration {
        /// The lease duration given.
        lease: Duration,
        /// The shard-check frequency.
        shard_check: Duration,
    },
    /// Max records per GetRecords call outside 1..=10000.
    #[error("max records per GetRecords call must be between 1 and 10000, got {0}")]
    MaxRecords(u32),
    /// A timeout of zero.
    #[error("{0} timeout must be greater than zero")]
    Timeout(&'static str),
    /// A fan-out consumer ARN that is not a Kinesis stream consumer ARN.
    #[error("{0:?} is not a Kinesis stream consumer ARN (arn:aws:kinesis:REGION:ACCOUNT:stream/STREAM/consumer/NAME:CREATED); copy it from `aws kinesis list-stream-consumers` or use with_fan_out_consumer_name")]
    FanOutConsumerArn(String),
    /// A fan-out consumer name Kinesis would refuse.
    #[error(
        "fan-out consumer name {0:?} is invalid: use 1 to 128 letters, digits, '_', '.' or '-'"
    )]
    FanOutConsumerName(String),
}

/// What kind of failure an AWS call ended in; decides retry or give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceErrorKind {
    /// The stream, shard or table does not exist.
    NotFound,
    /// Throttled (provisioned throughput or request rate exceeded).
    Throttled,
    /// A shard iterator expired (they live 5 minutes).
    ExpiredIterator,
    /// The resource is being changed (e.g. stream not ACTIVE, table being created).
    ResourceInUse,
    /// A conditional write found the item in another state.
    ConditionFailed,
    /// The credentials are missing or not allowed to do this.
    AccessDenied,
    /// The request was rejected as invalid.
    InvalidRequest,
    /// A timeout, a reset connection or a 5xx: worth retrying.
    Transient,
    /// Anything else.
    Other,
}

/// A classified failure of one AWS (or in-memory backend) call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ServiceError {
    /// The kind, which decides whether to retry.
    pub kind: ServiceErrorKind,
    /// The service's message.
    pub message: String,
}

impl ServiceError {
    /// A failure of the given kind.
    pub fn new(kind: ServiceErrorKind, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            message: message.into(),
        }
    }

    /// True when retrying with backoff can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ServiceErrorKind::Throttled
                | ServiceErrorKind::Transient
                | ServiceErrorKind::ResourceInUse
                | ServiceErrorKind::ExpiredIterator
        )
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_fix() {
        let e = Error::TablesMissing {
            tables: vec!["app_clients".into(), "app_checkpoints".into()],
        };
        let text = e.to_string();
        assert!(text.contains("app_clients, app_checkpoints"), "{text}");
        assert!(text.contains("create_required_tables()"), "{text}");
        assert!(e.is_fatal());

        let e = Error::Kinesis {
            operation: "GetRecords",
            stream: "s".into(),
            shard: Some(ShardId::new("shardId-1")),
            source: ServiceError::new(ServiceErrorKind::Throttled, "slow down"),
        };
        assert!(e.to_string().contains("shard shardId-1"));
        assert!(!e.is_fatal());
    }

    #[test]
    fn an_unreachable_service_says_what_to_check() {
        let e = Error::Unreachable {
            service: "DynamoDB",
            operation: "PutItem",
            resource: "table \"app_clients\"".into(),
            source: ServiceError::new(ServiceErrorKind::Transient, "no answer within 4s"),
        };
        assert_eq!(
            e.to_string(),
            "cannot reach DynamoDB: PutItem on table \"app_clients\" failed (Transient: no \
             answer within 4s); check the endpoint URL, the region, and that the network \
             (proxy, firewall, VPC endpoint) lets this host reach DynamoDB"
        );
        // It may heal: only run() gives up on it.
        assert!(!e.is_fatal());
    }

    #[test]
    fn retryable_kinds() {
        assert!(ServiceError::new(ServiceErrorKind::Transient, "").is_retryable());
        assert!(!ServiceError::new(ServiceErrorKind::NotFound, "").is_retryable());
        assert!(!ServiceError::new(ServiceErrorKind::ConditionFailed, "").is_retryable());
    }
}

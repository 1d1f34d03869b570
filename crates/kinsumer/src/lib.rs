//! kinsumer: consume an AWS Kinesis stream with a cluster of clients, coordinated through DynamoDB.

pub mod config;
pub mod error;
pub mod kinesis;
pub mod record;
pub mod stats;
pub mod store;
pub(crate) mod delivery;

pub use config::{AckMode, Billing, Config};
pub use error::{ConfigError, Error, FailedPut, Result, ServiceError, ServiceErrorKind};
pub use record::{ClientId, InitialPosition, Position, Record, SequenceNumber, ShardId};
pub use stats::{MetricsStats, NoopStats, StatReceiver};

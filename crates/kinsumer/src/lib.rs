//! kinsumer: consume an AWS Kinesis stream with a cluster of clients,
//! coordinated through DynamoDB — the Rust successor of the Go library
//! `twitchscience/kinsumer`.
//!
//! Many processes of one *application* share one stream: each holds leases on
//! some shards, reads them, and checkpoints what the caller has processed.
//! Shards move when clients join or leave, and a crashed client's shards are
//! taken over within seconds. Delivery is at least once, and exactly once
//! across graceful moves and restarts.
//!
//! Layers (one module each): [`config`], [`kinesis`] (transport), [`store`]
//! (coordination state), `coordinator` (membership, leader, assignment,
//! hand-off), `reader` (shard readers, KPL de-aggregation), `delivery`
//! (buffer, acknowledgements, checkpoint watermarks).
//!
//! # Example (in memory, no AWS)
//!
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use kinsumer::{Config, Kinsumer};
//! use kinsumer::kinesis::memory::MemoryKinesis;
//! use kinsumer::store::memory::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> kinsumer::Result<()> {
//! let kinesis = MemoryKinesis::new();
//! kinesis.create_stream("events", 2);
//! let store = MemoryStore::new("billing");
//! let mut consumer = Kinsumer::with_backends(
//!     Arc::new(kinesis.clone()), Arc::new(store), "events", "worker-1", Config::new())?;
//! consumer.create_required_tables().await?;
//! consumer.publish("customer-42", Bytes::from_static(b"hello")).await?;
//! consumer.run().await?;
//! let record = consumer.next().await.expect("a record")?;
//! assert_eq!(&record.data[..], b"hello");
//! consumer.stop().await;
//! # Ok(()) }
//! ```

mod clock;
pub mod config;
mod consumer;
pub mod coordinator;
pub(crate) mod delivery;
pub mod error;
pub mod kinesis;
pub mod publish;
pub mod reader;
pub mod record;
pub mod stats;
pub mod store;

pub use config::{AckMode, Billing, Config, FanOutConsumer, ReadMode};
pub use consumer::Kinsumer;
pub use coordinator::status::{ClientStatus, ClusterState, ShardStatus};
pub use error::{ConfigError, Error, FailedPut, Result, ServiceError, ServiceErrorKind};
pub use kinesis::role::AssumeRole;
pub use kinesis::PutEntry;
pub use record::{ClientId, InitialPosition, Position, Record, SequenceNumber, ShardId};
pub use stats::{MetricsStats, NoopStats, StatReceiver};

//! Coordination state: clients, leases with checkpoints, and metadata (leader and
//! shard cache), behind one narrow trait.
//!
//! [`dynamo::DynamoStore`] keeps them in the Go library's three DynamoDB tables;
//! [`memory::MemoryStore`] keeps them in memory for the embedded demo and for tests.
//! Every change of a lease's owner is a conditional write.

pub mod dynamo;
pub mod memory;
pub mod schema;
pub(crate) mod timed;

use std::time::Duration;

use async_trait::async_trait;

use crate::config::Billing;
use crate::error::Result;
use crate::kinesis::ShardDescription;
use crate::record::{ClientId, Position, ShardId};

/// A row of `<app>_clients`: one running consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRow {
    /// The client's id (`ID`).
    pub id: ClientId,
    /// The client's human-readable name (`Name`).
    pub name: String,
    /// The time of its last heartbeat, Unix nanoseconds (`LastUpdate`).
    pub last_update: i64,
    /// How it reads the stream, e.g. `polling` or `fan-out <consumer ARN>`
    /// (`ReadMode`; absent in rows written by the Go library).
    pub read_mode: Option<String>,
}

/// A row of `<app>_checkpoints`: a shard's lease and checkpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointRow {
    /// The shard (`Shard`).
    pub shard: ShardId,
    /// The last processed position (`SequenceNumber`, `SubSequenceNumber`), if any.
    pub position: Option<Position>,
    /// The time of the last change, Unix nanoseconds (`LastUpdate`).
    pub last_update: i64,
    /// The client holding the lease (`OwnerID`), if any.
    pub owner_id: Option<ClientId>,
    /// That client's name (`OwnerName`).
    pub owner_name: Option<String>,
    /// When the shard was fully processed, Unix nanoseconds (`Finished`).
    pub finished: Option<i64>,
}

/// The `Leader` item of `<app>_metadata`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderRow {
    /// The leader's client id, absent when leadership was given up.
    pub id: Option<ClientId>,
    /// The leader's name.
    pub name: Option<String>,
    /// Its last renewal, Unix nanoseconds.
    pub last_update: i64,
}

/// The `ShardCache` item of `<app>_metadata`: the leader's view of the stream.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ShardCache {
    /// Shards not yet finished, sorted by id, with their parents.
    pub shards: Vec<ShardDescription>,
    /// When the leader wrote it, Unix nanoseconds.
    pub last_update: i64,
}

/// A lease write: who writes, when, and with what position.
#[derive(Clone, Debug)]
pub struct LeaseWrite<'a> {
    /// The shard.
    pub shard: &'a ShardId,
    /// The writing client.
    pub owner: &'a ClientId,
    /// Its name.
    pub owner_name: &'a str,
    /// Now, Unix nanoseconds.
    pub now: i64,
}

/// The coordination state the consumer keeps. All reads are strongly consistent.
#[async_trait]
pub trait CoordinationStore: Send + Sync + 'static {
    /// The table names this store uses.
    fn tables(&self) -> &schema::TableNames;

    /// Creates the three tables if they do not exist and waits until they are
    /// ACTIVE, checking every `waiter_delay`. Safe when several processes call it at once.
    async fn create_tables(&self, billing: Billing, waiter_delay: Duration) -> Result<()>;
    /// Deletes the three tables and waits until they are gone.
    async fn delete_tables(&self, waiter_delay: Duration) -> Result<()>;
    /// Ok when all three tables exist and are ACTIVE; otherwise `Error::TablesMissing`.
    async fn check_tables(&self) -> Result<()>;

    /// Writes (creates or refreshes) a client row.
    async fn put_client(&self, row: &ClientRow) -> Result<()>;
    /// Deletes a client row.
    async fn delete_client(&self, id: &ClientId) -> Result<()>;
    /// Deletes a client row only if its `LastUpdate` is older than `cutoff`.
    async fn reap_client(&self, id: &ClientId, cutoff: i64) -> Result<bool>;
    /// Every client row, sorted by id.
    async fn list_clients(&self) -> Result<Vec<ClientRow>>;

    /// Every checkpoint row.
    async fn list_checkpoints(&self) -> Result<Vec<CheckpointRow>>;
    /// One checkpoint row.
    async fn get_checkpoint(&self, shard: &ShardId) -> Result<Option<CheckpointRow>>;
    /// Takes the lease if it is free (no owner), already ours, or — when
    /// `expired_owner` is given — still held by that owner with `LastUpdate`
    /// unchanged at the given value. Keeps the checkpoint. Returns the row as
    /// written, or `None` when the condition failed.
    async fn capture_lease(
        &self,
        lease: LeaseWrite<'_>,
        expired_owner: Option<(&ClientId, i64)>,
    ) -> Result<Option<CheckpointRow>>;
    /// Writes the checkpoint (and `Finished` when `finished`), if the lease is
    /// still ours. Returns false when it is not.
    async fn commit_lease(
        &self,
        lease: LeaseWrite<'_>,
        position: Option<&Position>,
        finished: bool,
    ) -> Result<bool>;
    /// Writes the checkpoint and gives the lease up, if it is still ours.
    /// Returns false when it is not.
    async fn release_lease(
        &self,
        lease: LeaseWrite<'_>,
        position: Option<&Position>,
    ) -> Result<bool>;

    /// The leader item, if any.
    async fn get_leader(&self) -> Result<Option<LeaderRow>>;
    /// Becomes or stays leader if there is none, it is us, or the leader's
    /// `LastUpdate` is at or before `cutoff`. Returns whether we are leader.
    async fn claim_leadership(
        &self,
        id: &ClientId,
        name: &str,
        now: i64,
        cutoff: i64,
    ) -> Result<bool>;
    /// Gives leadership up if we hold it.
    async fn release_leadership(&self, id: &ClientId, now: i64) -> Result<()>;
    /// The cached shard list, if the leader wrote one.
    async fn get_shard_cache(&self) -> Result<Option<ShardCache>>;
    /// Replaces the cached shard list.
    async fn put_shard_cache(&self, cache: &ShardCache) -> Result<()>;
}
